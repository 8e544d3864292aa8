// kvrehash.test.mjs — the gateway against engines whose KV event hashes it
// cannot reproduce (vLLM's seeded hashes): vllm_kv_pub.py publishes
// vLLM-shaped events with random 32-byte hashes and the real token_ids; the
// gateway re-hashes the tokens and still routes a prefix to the backend that
// holds it. Then the recovery paths: a sequence gap filled from the replay
// socket, and a gap the replay cannot fill (clear + relearn). The gateway's
// --kv-events come from LLMCACHED_KV_EVENTS as a list.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, request, sleep } from './helpers.mjs';
import { startKvEngine, stopProc, haveEngine, ENGINE } from './kvengine.mjs';

const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const havePy = spawnSync(PY, ['-c', 'import zmq, msgpack']).status === 0;
const skip = haveEngine && havePy ? false : `needs ${ENGINE}, the test model and python3-zmq/msgpack`;
const PUB = path.join(path.dirname(fileURLToPath(import.meta.url)), 'vllm_kv_pub.py');
const BS = 16;

// A publisher: { proc, pub, replay, cmd(obj) -> reply }
function startPub() {
  const proc = spawn(PY, [PUB], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout });
  const waiting = [];
  let first;
  const ready = new Promise((r) => { first = r; });
  lines.on('line', (l) => {
    if (l.startsWith('pub ')) { const [, pub, , replay] = l.split(' '); first({ pub, replay }); return; }
    waiting.shift()(JSON.parse(l));
  });
  const cmd = (o) => new Promise((r) => { waiting.push(r); proc.stdin.write(JSON.stringify(o) + '\n'); });
  return ready.then((e) => ({ proc, ...e, cmd }));
}

let engines = [], pubs = [], g;
before(async () => {
  if (skip) return;
  engines = await Promise.all([0, 1].map(() => startKvEngine(['--workers', '1'])));
  pubs = await Promise.all([startPub(), startPub()]);
  g = await startDaemon({
    args: [...engines.flatMap((e) => ['--upstream', `${e.base}/v1`]), '--route-policy', 'prefix-affinity',
      '--semantic', 'no', '--health-interval', '500ms', '--persist', 'no'],
    env: { LLMCACHED_KV_EVENTS: pubs.map((p, i) => `${i}=${p.pub},${p.replay}`).join(' ') },
  });
  for (const p of pubs) assert.ok((await p.cmd({ op: 'wait_sub' })).ok, 'the gateway never subscribed');
});
after(async () => {
  if (g) { const r = await g.stop(); assert.equal(r.code, 0, r.output.slice(-2000)); }
  for (const p of pubs) { p.proc.stdin.end(); p.proc.kill('SIGTERM'); }
  for (const e of engines) await stopProc(e.proc);
});

const stats = async () => (await request(`${g.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${g.adminToken}` } })).json;
const SYS = (t) => `System: You are the helper of tenant ${t}. Once upon a time there was a kind old king `
  + `who ruled a small land by the sea. He had a big red castle and a little dog named ${t}. `
  + 'Every day the king walked in the garden and talked to the birds and the flowers.';
const prompt = (t, q) => `${SYS(t)}\nUser: question ${q}?\nAssistant:`;
const tokens = async (text) => (await (await fetch(`${engines[0].base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: text }) })).json()).tokens;
async function until(f, ms = 10000) {
  const t0 = Date.now();
  while (!(await f())) { if (Date.now() - t0 > ms) return false; await sleep(50); }
  return true;
}
async function send(p) {
  const before = (await stats()).backends.map((b) => b.requests);
  const r = await request(`${g.url}/completions`, { body: { model: 'stories260K', prompt: p, max_tokens: 2, temperature: 0 }, headers: { 'cache-control': 'no-store' } });
  assert.equal(r.status, 200, r.text);
  return (await stats()).backends.map((b) => b.requests).findIndex((v, i) => v > before[i]);
}
// the first request of a tenant is routed by the tree and makes the gateway tokenize its prefix
async function warmTenant(t) {
  const n = (await stats()).kv_events.tokenize.cache_entries;
  const b = await send(prompt(t, 0));
  assert.ok(await until(async () => (await stats()).kv_events.tokenize.cache_entries > n), 'not tokenized');
  return b;
}
const messages = (i, n) => until(async () => (await stats()).kv_events.backends[i].messages >= n);

test('opaque engine hashes: the gateway re-hashes token_ids and routes the prefix to the engine holding it', { skip }, async () => {
  const tree = await warmTenant('alpha');
  const x = 1 - tree; // the tree would keep alpha on `tree`: the events must move it
  const toks = await tokens(SYS('alpha'));
  const nb = Math.floor(toks.length / BS);
  assert.ok(nb >= 4, `only ${toks.length} tokens`);
  // two events, the second chained to the first by the engine's (opaque) parent hash
  const half = Math.floor(nb / 2);
  const a = await pubs[x].cmd({ op: 'store', tokens: toks.slice(0, half * BS), bs: BS });
  await pubs[x].cmd({ op: 'store', tokens: toks.slice(half * BS, nb * BS), bs: BS, parent: a.hashes.at(-1) });
  assert.ok(await messages(x, 2));
  const s0 = await stats();
  assert.equal(s0.kv_events.backends[x].blocks, nb);
  assert.equal(s0.kv_events.rehashed, nb);
  for (let q = 1; q < 4; q++) assert.equal(await send(prompt('alpha', q)), x, `question ${q}`);
  assert.ok((await stats()).router.on_events >= 3);
});

test('a gap in the sequence is filled from the replay socket', { skip }, async () => {
  const tree = await warmTenant('gamma');
  const x = 1 - tree;
  const toks = await tokens(SYS('gamma'));
  const before = (await stats()).kv_events.backends[x];
  // gamma's batch is kept for replay but never published: the next batch shows the gap
  await pubs[x].cmd({ op: 'store', tokens: toks, bs: BS, publish: false });
  await pubs[x].cmd({ op: 'store', tokens: (await tokens(SYS('filler'))).slice(0, BS), bs: BS });
  assert.ok(await until(async () => (await stats()).kv_events.backends[x].replayed > before.replayed));
  const k = (await stats()).kv_events.backends[x];
  assert.equal(k.gaps, before.gaps + 1);
  assert.equal(k.resyncs, before.resyncs);
  assert.ok(k.blocks > before.blocks, `${k.blocks} blocks`);
  assert.equal(await send(prompt('gamma', 1)), x);
});

test('a gap the replay cannot fill clears the backend and relearns from what follows', { skip }, async () => {
  const x = 1 - await warmTenant('eps');
  const before = (await stats()).kv_events.backends[x];
  // a batch neither published nor kept: lost for good
  await pubs[x].cmd({ op: 'store', tokens: await tokens(SYS('delta')), bs: BS, publish: false, keep: false });
  const toks = await tokens(SYS('eps'));
  await pubs[x].cmd({ op: 'store', tokens: toks, bs: BS });
  assert.ok(await until(async () => (await stats()).kv_events.backends[x].resyncs > before.resyncs));
  const k = (await stats()).kv_events.backends[x];
  assert.equal(k.gaps, before.gaps + 1);
  assert.equal(k.blocks, Math.floor(toks.length / BS), 'what was held before the gap is forgotten');
  assert.equal(await send(prompt('eps', 1)), x, 'relearned from the batch after the gap');
});
