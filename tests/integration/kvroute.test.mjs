// kvroute.test.mjs — gateways that route on the engines' KV events
// (--kv-events): a prefix goes where the engines say it is held (not where
// the gateway last sent it), a gateway started late learns the history
// through the replay socket, two gateways in front of the same four engines
// agree (from a gateway's first request for a prefix on: it waits for the
// prefix's tokens), a prefix every engine evicted goes back where it was
// last held, and bad --kv-events options stop the daemon with a clear
// message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon, request, daemonPath, sleep } from './helpers.mjs';
import { startKvEngine, stopProc, haveEngine, ENGINE } from './kvengine.mjs';

const skip = haveEngine ? false : `needs ${ENGINE} and the test model`;
const startEngine = () => startKvEngine(['--workers', '1', '--num-blocks', '48']);
const stop = (e) => stopProc(e.proc);

let engines = [];
const gateways = [];
const gateway = async (extra = []) => {
  const g = await startDaemon({
    args: [...engines.flatMap((e) => ['--upstream', `${e.base}/v1`]), '--route-policy', 'prefix-affinity',
      ...engines.flatMap((e, i) => ['--kv-events', `${i}=${e.pub},${e.replay}`]),
      // a generous wait for tokens: on a loaded CI machine /tokenize may take
      // longer than the 50 ms default, and these tests assert the waited path
      '--semantic', 'no', '--health-interval', '500ms', '--persist', 'no', '--kv-tokenize-wait', '2s', ...extra],
  });
  gateways.push(g);
  return g;
};
before(async () => {
  if (skip) return;
  engines = await Promise.all([startEngine(), startEngine(), startEngine(), startEngine()]);
});
after(async () => {
  for (const g of gateways) {
    const r = await g.stop();
    assert.equal(r.code, 0, r.output.slice(-2000));
  }
  for (const e of engines) await stop(e);
});

const stats = async (g) => (await request(`${g.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${g.adminToken}` } })).json;
// ~100 tokens of a tenant's system prompt, then the question, as bench/prefix sends them
const SYS = (t) => `System: You are the helper of tenant ${t}. Once upon a time there was a kind old king `
  + `who ruled a small land by the sea. He had a big red castle and a little dog named ${t}. `
  + 'Every day the king walked in the garden and talked to the birds and the flowers.';
const prompt = (t, q) => `${SYS(t)}\nUser: question ${q}?\nAssistant:`;
const body = (p) => ({ model: 'stories260K', prompt: p, max_tokens: 2, temperature: 0 });
const nostore = { 'cache-control': 'no-store' };

const chatBody = (t, q) => ({ model: 'stories260K', max_tokens: 2, temperature: 0,
  messages: [{ role: 'system', content: SYS(t) }, { role: 'user', content: `question ${q}?` }] });

// Send through gateway g (a prompt, or a chat body); which backend served it
// (from g's own counters).
async function sendVia(g, p) {
  const before = (await stats(g)).backends.map((b) => b.requests);
  const chat = typeof p !== 'string';
  const r = await request(`${g.url}/${chat ? 'chat/completions' : 'completions'}`, { body: chat ? p : body(p), headers: nostore });
  assert.equal(r.status, 200, r.text);
  const after = (await stats(g)).backends.map((b) => b.requests);
  return { backend: after.findIndex((v, i) => v > before[i]), cached: r.json.usage.prompt_tokens_details?.cached_tokens ?? 0 };
}
const direct = async (e, p) => {
  const r = await fetch(`${e.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(p)) });
  assert.equal(r.status, 200);
  await r.json();
};
async function until(f, ms = 10000) {
  const t0 = Date.now();
  while (!(await f())) { if (Date.now() - t0 > ms) return false; await sleep(50); }
  return true;
}
// the gateway has tokenized n prefixes and its index holds blocks of backend i
const warm = (g, n, i) => until(async () => {
  const k = (await stats(g)).kv_events;
  return k.tokenize.cache_entries >= n && (i === undefined || k.backends[i].blocks > 0);
});

test('a gateway started after the engines learns what they hold through replay, and routes there', { skip }, async () => {
  // engine 2 holds tenant 'late' before any gateway exists (seq 0.. published to nobody)
  await direct(engines[2], prompt('late', 0));
  await sleep(100);
  const g = await gateway();
  // the next event from engine 2 (seq > 0) makes the gateway replay 0..seq-1
  await direct(engines[2], 'Tim had a ball and a kite and a red hat and he played all day long in the park with his dog.');
  assert.ok(await until(async () => (await stats(g)).kv_events.backends[2].replayed > 0), 'no replay');
  // the gateway's view of engine 2 is exactly what engine 2 caches
  const cachedOn = async (e) => Number((await (await fetch(`${e.base}/metrics`)).text())
    .match(/llmcached_engine:kv_blocks_cached\{[^}]*\} (\d+)/)[1]);
  assert.ok(await until(async () => (await stats(g)).kv_events.backends[2].blocks === await cachedOn(engines[2])),
    `index ${(await stats(g)).kv_events.backends[2].blocks} vs engine ${await cachedOn(engines[2])}`);
  assert.ok(await cachedOn(engines[2]) >= 6);
  // the first request waits for the prefix's tokens, then goes by the events
  const s = await sendVia(g, prompt('late', 1));
  assert.equal(s.backend, 2);
  assert.ok(s.cached >= 64, `cached ${s.cached}`);
  const st = await stats(g);
  assert.ok(st.router.on_events >= 1, JSON.stringify(st.router));
  assert.ok(st.kv_events.tokenize.calls >= 1 && st.kv_events.tokenize.mean_ms > 0);
});

test('routes by what the engines hold now, not by what it sent: after an eviction the prefix follows the blocks', { skip }, async () => {
  const g = gateways[0];
  const first = await sendVia(g, prompt('moving', 0));
  assert.ok(await warm(g, 2, first.backend));
  const a = first.backend, b = (a + 1) % 4;
  // b gets the prefix directly (the gateway never sent it there) ...
  await direct(engines[b], prompt('moving', 1));
  // ... and a evicts it: other long prompts sent straight to a fill its 48 blocks
  for (let i = 0; i < 6; i++) await direct(engines[a], `${SYS('filler' + i)}\nUser: x\nAssistant:`);
  assert.ok(await until(async () => {
    const r = await fetch(`${engines[a].base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: SYS('moving') }) });
    const toks = (await r.json()).tokens;
    const m = await (await fetch(`${engines[a].base}/metrics`)).text();
    return toks.length > 0 && /kv_block_evictions_total\{[^}]*\} [1-9]/.test(m);
  }));
  await sleep(200); // the BlockRemoved events reach the gateway
  const s = await sendVia(g, prompt('moving', 2));
  assert.equal(s.backend, b, `the tree would say ${a}; the events say ${b}`);
  assert.ok(s.cached >= 64, `cached ${s.cached}`);
});

test('two gateways in front of the same four engines send a prefix to the same engine', { skip }, async () => {
  const [g1] = gateways;
  const g2 = await gateway();
  const seen = [];
  for (let t = 0; t < 3; t++) {
    // each gateway's first request of a tenant is routed before its tokens are known
    await sendVia(g1, prompt(`fleet${t}`, 0));
    await sendVia(g2, prompt(`fleet${t}`, 1));
  }
  assert.ok(await warm(g2, 3));
  await sleep(200);
  for (let t = 0; t < 3; t++) {
    const picks = [];
    for (let q = 2; q < 6; q++) picks.push((await sendVia(q % 2 ? g1 : g2, prompt(`fleet${t}`, q))).backend);
    assert.equal(new Set(picks).size, 1, `tenant ${t} split across engines ${picks}`);
    seen.push(picks[0]);
  }
  const s1 = await stats(g1), s2 = await stats(g2);
  assert.ok(s1.router.on_events >= 6 && s2.router.on_events >= 6, JSON.stringify([s1.router, s2.router]));
});

test("a gateway's first request for a prefix another gateway placed goes to the same engine", { skip }, async () => {
  const [g1, g2] = gateways;
  const placed = [];
  for (let t = 0; t < 4; t++) placed.push((await sendVia(g1, prompt(`first${t}`, 0))).backend);
  await sleep(200); // their BlockStored events reach g2
  const w0 = (await stats(g2)).kv_events.tokenize;
  for (let t = 0; t < 4; t++) {
    // g2 has never seen the prefix: its tree knows nothing, the events do
    const s = await sendVia(g2, prompt(`first${t}`, 1));
    assert.equal(s.backend, placed[t], `tenant first${t}: g1 placed it on ${placed[t]}, g2 sent it to ${s.backend}`);
    assert.ok(s.cached >= 64, `cached ${s.cached}`);
  }
  const w1 = (await stats(g2)).kv_events.tokenize;
  assert.ok(w1.waits - w0.waits >= 4, JSON.stringify(w1));
  assert.equal(w1.wait_timeouts, w0.wait_timeouts, JSON.stringify(w1));
});

test('chat requests route on the events too: the backend renders their messages for the gateway', { skip }, async () => {
  const [g1, g2] = gateways;
  const placed = [];
  for (let t = 0; t < 3; t++) placed.push((await sendVia(g1, chatBody(`chat${t}`, 0))).backend);
  await sleep(200);
  const r0 = (await stats(g2)).router.on_events;
  for (let t = 0; t < 3; t++) {
    const s = await sendVia(g2, chatBody(`chat${t}`, 1)); // another question, another gateway
    assert.equal(s.backend, placed[t], `chat tenant ${t}: placed on ${placed[t]}, sent to ${s.backend}`);
    assert.ok(s.cached >= 64, `cached ${s.cached}`);
  }
  assert.ok((await stats(g2)).router.on_events >= r0 + 3);
});

test('a prefix every engine evicted goes back to the engine that held it last, from any gateway', { skip }, async () => {
  const [g1, g2] = gateways;
  const a = (await sendVia(g1, prompt('gone', 0))).backend;
  const evictions = async () => Number(((await (await fetch(`${engines[a].base}/metrics`)).text())
    .match(/kv_block_evictions_total\{[^}]*\} (\d+)/) || [0, 0])[1]);
  const e0 = await evictions();
  // a evicts it: long prompts sent straight to a, more blocks than its pool holds
  for (let i = 0; i < 10; i++) await direct(engines[a], `${SYS('gonefill' + i)}\nUser: x\nAssistant:`);
  assert.ok(await evictions() > e0);
  await sleep(200); // the BlockRemoved events reach the gateways
  const r0 = (await stats(g2)).router.remembered;
  const s = await sendVia(g2, prompt('gone', 1)); // g2 never sent it anywhere
  assert.ok(s.cached <= 16, `cached ${s.cached}: beyond the first block (every prompt's) nobody holds it`);
  assert.equal(s.backend, a, `last held on ${a}, sent to ${s.backend}`);
  assert.equal((await stats(g2)).router.remembered, r0 + 1);
  assert.ok((await stats(g2)).kv_events.index_remembered > 0);
});

test('the wait for tokens is bounded: a prefix whose tokens do not come in time is routed by the tree', { skip }, async () => {
  const g = await gateway(['--kv-tokenize-wait', '300ms']);
  await sendVia(g, prompt('park0', 0)); // events seen: the block size is known
  assert.ok(await warm(g, 1));
  const w0 = (await stats(g)).kv_events.tokenize;
  // every engine stopped: /tokenize hangs, so the new prefix waits its 300 ms
  for (const e of engines) e.proc.kill('SIGSTOP');
  let r;
  try {
    r = request(`${g.url}/completions`, { body: body(prompt('park1', 0)), headers: nostore, timeoutMs: 20000 });
    await sleep(800);
  } finally {
    for (const e of engines) e.proc.kill('SIGCONT');
  }
  assert.equal((await r).status, 200);
  const st = await stats(g);
  assert.equal(st.kv_events.tokenize.wait_timeouts, w0.wait_timeouts + 1, JSON.stringify(st.kv_events.tokenize));
  assert.ok(await until(async () => (await stats(g)).backends.every((b) => b.inflight === 0)));
});

test('a request parked for its tokens whose client leaves is dropped: never routed, nothing left in flight', { skip }, async () => {
  const g = await gateway(['--kv-tokenize-wait', '5s']);
  await sendVia(g, prompt('leave0', 0)); // events seen: the block size is known
  assert.ok(await warm(g, 1));
  const before = (await stats(g)).backends.map((b) => b.requests);
  // every engine stopped: /tokenize hangs, so the new prefix stays parked
  for (const e of engines) e.proc.kill('SIGSTOP');
  try {
    await assert.rejects(request(`${g.url}/completions`, { body: body(prompt('leave1', 0)), headers: nostore, timeoutMs: 300 }));
    await sleep(700); // the gateway's sweep notices the client left
  } finally {
    for (const e of engines) e.proc.kill('SIGCONT');
  }
  await sleep(300); // the tokens arrive: the parked flight finds nobody waiting
  const st = await stats(g);
  assert.deepEqual(st.backends.map((b) => b.requests), before, 'the parked request reached a backend');
  assert.ok(st.backends.every((b) => b.inflight === 0), JSON.stringify(st.backends));
  const s = await sendVia(g, prompt('leave1', 1)); // and the gateway still routes
  assert.ok(s.backend >= 0);
});

test('bad --kv-events stops the daemon with a clear message', { skip }, () => {
  const up = engines.flatMap((e) => ['--upstream', `${e.base}/v1`]);
  const run = (...a) => spawnSync(daemonPath(), ['--listen', '127.0.0.1:0', '--persist', 'no', '--semantic', 'no', ...up, ...a], { encoding: 'utf8', timeout: 10000 });
  let r = run('--kv-events', '7=tcp://127.0.0.1:1');
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /neither an upstream's index/);
  r = run('--kv-events', '0=http://127.0.0.1:1');
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /want BACKEND=tcp:\/\/HOST:PORT/);
  r = run('--kv-events', '0=tcp://127.0.0.1:1', '--kv-events', '0=tcp://127.0.0.1:2');
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /backend 0 given twice/);
});
