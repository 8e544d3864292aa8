// fleet.test.mjs — several llmcached instances sharing one cache on a real
// Redis (redis-server started here on a free port): what one stores the
// others serve (exact, streamed, semantic), deletes / flushes / TTLs reach
// every instance, a late instance is warm, tenants never cross, bad values
// are never served, and Redis killed, restarted or slow never makes a client
// error — requests go upstream, counted as store_unavailable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startMock, startDaemon, startRedisServer, stopRedisServer, redisCli, makeClient, request, mockSerial, sleep, tempDir, freePort, repoRoot,
} from './helpers.mjs';

const modelDir = path.join(repoRoot, 'data/models/use-lite');
const haveModel = fs.existsSync(path.join(modelDir, 'model.json'));
let haveRedis = true;
try { execFileSync('redis-server', ['--version']); } catch { haveRedis = false; }
const skip = haveRedis ? false : 'redis-server absent (scripts/deps.sh test installs it)';

let redis = null, redisPort, mock, A, B;
const prefix = `fleet${process.pid}:`;
const redisDir = tempDir('llmc-redis-');

const startRedis = (port) => startRedisServer(port, redisDir, ['--enable-debug-command', 'local']);
const cli = (...args) => redisCli(redisPort, ...args);
const stopRedis = () => stopRedisServer(redis);

const daemon = (args = []) => startDaemon({
  upstream: mock.url,
  args: ['--store', `redis://127.0.0.1:${redisPort}/0`, '--store-prefix', prefix, '--store-timeout', '100ms',
    '--persist', 'no', '--upstream-timeout', '5s',
    ...(haveModel ? ['--embed-model-path', modelDir] : ['--semantic', 'no']), ...args],
});
const admin = (d) => ({ authorization: `Bearer ${d.adminToken}` });
const stats = async (d) => (await request(`${d.origin}/stats`, { method: 'GET', headers: admin(d) })).json;
let n = 0;
const uniq = (s) => `${s} [${process.pid}-${++n}]`;
const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });
const ask = (d, body, headers = {}) => request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-fleet', ...headers }, body });
const status = (r) => r.headers.get('x-llm-cache');
/* Ask until the answer's X-LLM-Cache is want (the fleet's writes are
 * asynchronous: a few ms) or ms pass; returns the last response. */
async function until(d, body, want, ms = 3000, headers = {}) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await ask(d, body, headers);
    if (status(r) === want || Date.now() > end) return r;
    await sleep(20);
  }
}

before(async () => {
  if (skip) return;
  redisPort = await freePort();
  redis = await startRedis(redisPort);
  mock = await startMock();
  A = await daemon();
  B = await daemon();
});
after(async () => {
  if (skip) return;
  for (const d of [A, B]) {
    const r = await d.stop();
    assert.equal(r.code, 0, r.output.slice(-3000));
    assert.ok(!r.output.includes('fleetpass'), 'a password was logged');
  }
  await mock.close();
  await stopRedis();
});

test('A stores (plain and streamed), B hits the same answer', { skip }, async () => {
  const body = chat(uniq('What is the capital of France?'));
  const a = await ask(A, body);
  assert.equal(status(a), 'MISS');
  const b = await until(B, body, 'HIT-EXACT');
  assert.equal(status(b), 'HIT-EXACT');
  assert.equal(mockSerial(b.json), mockSerial(a.json));
  // streamed on A, then plain and streamed on B
  const sbody = chat(uniq('Name three rivers'));
  const client = makeClient(A.url, { apiKey: 'sk-fleet' });
  const { data: stream, response } = await client.chat.completions.create({ ...sbody, stream: true }).withResponse();
  assert.equal(response.headers.get('x-llm-cache'), 'MISS');
  let text = '';
  for await (const ch of stream) text += ch.choices[0]?.delta?.content || '';
  const bp = await until(B, sbody, 'HIT-EXACT');
  assert.equal(status(bp), 'HIT-EXACT');
  assert.equal(bp.json.choices[0].message.content, text);
  const cb = makeClient(B.url, { apiKey: 'sk-fleet' });
  const s2 = await cb.chat.completions.create({ ...sbody, stream: true }).withResponse();
  assert.equal(s2.response.headers.get('x-llm-cache'), 'HIT-EXACT');
  let t2 = '';
  for await (const ch of s2.data) t2 += ch.choices[0]?.delta?.content || '';
  assert.equal(t2, text);
});

test('a paraphrase of what A stored is HIT-SEMANTIC on B', { skip: skip || (!haveModel && 'USE-lite weights absent') }, async () => {
  const tag = uniq('t');
  const sys = { role: 'system', content: `fleet ${tag}` };
  const q1 = 'Could you please explain step by step how I can reset the admin password of my home wifi router to the factory default?';
  const q2 = 'Can you please explain step by step how I can reset the admin password of my home wifi router to the factory default?';
  const a = await ask(A, { model: 'mock-gpt', messages: [sys, { role: 'user', content: q1 }] });
  assert.equal(status(a), 'MISS');
  const b = await until(B, { model: 'mock-gpt', messages: [sys, { role: 'user', content: q2 }] }, 'HIT-SEMANTIC');
  assert.equal(status(b), 'HIT-SEMANTIC');
  assert.equal(mockSerial(b.json), mockSerial(a.json));
  // delete on B removes it from A: exact and semantic
  const key = a.headers.get('x-llm-cache-key');
  assert.equal((await request(`${B.origin}/admin/keys/${key}`, { method: 'DELETE', headers: admin(B) })).status, 200);
  const a1 = await until(A, { model: 'mock-gpt', messages: [sys, { role: 'user', content: q1 }] }, 'MISS');
  assert.equal(status(a1), 'MISS');
});

test('delete on B reaches A; a namespace flush reaches every instance and only that namespace', { skip }, async () => {
  const body = chat(uniq('delete me'));
  const a = await ask(A, body);
  assert.equal(status(await ask(A, body)), 'HIT-EXACT');
  assert.equal(status(await until(B, body, 'HIT-EXACT')), 'HIT-EXACT');
  const key = a.headers.get('x-llm-cache-key');
  assert.equal((await request(`${B.origin}/admin/keys/${key}`, { method: 'DELETE', headers: admin(B) })).status, 200);
  assert.equal(status(await until(A, body, 'MISS')), 'MISS');

  const b1 = chat(uniq('in ns1')), b2 = chat(uniq('in ns2'));
  const ns1 = { 'x-llm-cache-namespace': `ns1-${process.pid}` }, ns2 = { 'x-llm-cache-namespace': `ns2-${process.pid}` };
  await ask(A, b1, ns1);
  await ask(A, b2, ns2);
  assert.equal(status(await until(B, b1, 'HIT-EXACT', 3000, ns1)), 'HIT-EXACT');
  assert.equal(status(await until(B, b2, 'HIT-EXACT', 3000, ns2)), 'HIT-EXACT');
  const f = await request(`${A.origin}/admin/flush?namespace=ns1-${process.pid}`, { headers: admin(A) });
  assert.equal(f.status, 200);
  assert.equal(status(await until(B, b1, 'MISS', 3000, ns1)), 'MISS');
  assert.equal(status(await ask(B, b2, ns2)), 'HIT-EXACT');
});

test('an entry stored with max-age=1 expires on both', { skip }, async () => {
  const body = chat(uniq('short lived'));
  const cc = { 'cache-control': 'max-age=1' };
  const first = await ask(A, body, cc);
  assert.equal(status(await until(B, body, 'HIT-EXACT')), 'HIT-EXACT');
  await sleep(2100);
  // both at once: the expired answer is served by neither (one may already
  // serve the other's fresh answer, from Redis or the stream: a new serial)
  const [a, b] = await Promise.all([ask(A, body), ask(B, body)]);
  for (const r of [a, b]) assert.notEqual(mockSerial(r.json), mockSerial(first.json));
  assert.ok(status(a) === 'MISS' || status(b) === 'MISS');
});

test('a wrong Redis password: requests still answered, counted, never logged or shown', { skip }, async () => {
  const D = await startDaemon({ upstream: mock.url,
    args: ['--store', `redis://bob:fleetpass@127.0.0.1:${redisPort}/0`, '--store-prefix', prefix, '--persist', 'no', '--semantic', 'no'] });
  try {
    const r = await ask(D, chat(uniq('auth')));
    assert.equal(r.status, 200);
    await sleep(100);
    const s = await stats(D);
    assert.ok(s.store_backend.auth_failures >= 1, JSON.stringify(s.store_backend));
    assert.equal(s.store_backend.url, `redis://bob:***@127.0.0.1:${redisPort}/0`);
    assert.ok(!JSON.stringify(s).includes('fleetpass'));
  } finally {
    const r = await D.stop();
    assert.equal(r.code, 0);
    assert.ok(r.output.includes('AUTH as bob refused'), r.output.slice(-2000));
    assert.ok(!r.output.includes('fleetpass'), 'the password was logged');
  }
});

test('Redis down at start: the daemon starts cold at once and answers, counted', { skip }, async () => {
  const nobody = await freePort(); // nothing listens there
  const t0 = Date.now();
  const D = await startDaemon({ upstream: mock.url,
    args: ['--store', `redis://127.0.0.1:${nobody}/0`, '--persist', 'no', '--semantic', 'no'] });
  try {
    assert.ok(Date.now() - t0 < 8000, `start took ${Date.now() - t0} ms`);
    const body = chat(uniq('no redis'));
    const r1 = await ask(D, body);
    assert.equal(r1.status, 200);
    assert.equal(status(r1), 'MISS');
    // the answer is still served from this instance's memory
    assert.equal(status(await ask(D, body)), 'HIT-EXACT');
    const r3 = await ask(D, chat(uniq('no redis 2')));
    assert.equal(r3.headers.get('x-llm-cache-reason'), 'store_unavailable');
    assert.ok((await stats(D)).store_unavailable >= 2);
  } finally {
    assert.equal((await D.stop()).code, 0);
  }
});

test('tenants never cross: the same request under another API key misses on every instance', { skip }, async () => {
  const body = chat(uniq('tenant secret'));
  await ask(A, body, { authorization: 'Bearer sk-tenant-one' });
  assert.equal(status(await until(B, body, 'HIT-EXACT', 3000, { authorization: 'Bearer sk-tenant-one' })), 'HIT-EXACT');
  const other = await ask(B, body, { authorization: 'Bearer sk-tenant-two' });
  assert.equal(status(other), 'MISS');
  assert.equal(status(await ask(A, chat(uniq('x')), { authorization: 'Bearer sk-tenant-two' })), 'MISS');
});

test('a third instance started later is warm (exact and semantic); a bad value in Redis is never served', { skip }, async () => {
  const good = chat(uniq('warm start'));
  const bad = chat(uniq('tampered'));
  const sys = { role: 'system', content: `fleet warm ${uniq('w')}` };
  const para = (q) => ({ model: 'mock-gpt', messages: [sys, { role: 'user', content: q }] });
  const q1 = 'Could you please tell me which mountain is the tallest in the whole world and how high its summit is above sea level?';
  const q2 = 'Can you please tell me which mountain is the tallest in the whole world and how high its summit is above sea level?';
  const s1 = await ask(A, para(q1));
  await ask(A, good);
  const rb = await ask(A, bad);
  await sleep(200); // A's writes land
  // B heard of `bad` through the stream and holds it near: compare on a fresh instance
  cli('SET', `${prefix}e:${rb.headers.get('x-llm-cache-key')}`, 'not an llmcached value');
  const C = await daemon();
  try {
    const g = await ask(C, good);
    assert.equal(status(g), 'HIT-EXACT');
    if (haveModel) {
      const p = await ask(C, para(q2));
      assert.equal(status(p), 'HIT-SEMANTIC');
      assert.equal(mockSerial(p.json), mockSerial(s1.json));
    }
    const b = await ask(C, bad);
    assert.equal(status(b), 'MISS');
    assert.notEqual(mockSerial(b.json), mockSerial(rb.json));
    const s = await stats(C);
    assert.ok(s.store_backend.bad_values >= 1, JSON.stringify(s.store_backend));
    assert.ok(s.store_backend.loaded >= 1);
  } finally {
    assert.equal((await C.stop()).code, 0);
  }
});

test('Redis slow: a read slower than --store-timeout falls back to upstream', { skip }, async () => {
  const body = chat(uniq('slow redis'));
  // nothing near for this key on B: B must ask Redis
  const sleeper = spawn('redis-cli', ['-p', String(redisPort), 'DEBUG', 'SLEEP', '1'], { stdio: 'ignore' });
  await sleep(50);
  const t0 = Date.now();
  const r = await ask(B, body);
  const ms = Date.now() - t0;
  await new Promise((res) => sleeper.on('exit', res));
  assert.equal(r.status, 200);
  assert.equal(status(r), 'MISS');
  assert.equal(r.headers.get('x-llm-cache-reason'), 'store_unavailable');
  assert.ok(ms < 900, `took ${ms} ms`);
});

test('Redis SIGKILLed under requests: no client error; restarted: hits resume', { skip }, async () => {
  // a request never asked before misses memory and must ask Redis; one asked
  // before may be a hit from memory: both kinds, all the time
  const seen = Array.from({ length: 6 }, (_, i) => chat(uniq(`kill ${i}`)));
  let errors = 0, answered = 0, unavailable = 0;
  const run = async (d, ms) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      for (const b of [...seen, chat(uniq('kill new')), chat(uniq('kill new'))]) {
        try {
          const r = await ask(d, b);
          if (r.status !== 200) errors++;
          else answered++;
          if (r.headers.get('x-llm-cache-reason') === 'store_unavailable') unavailable++;
        } catch { errors++; }
      }
    }
  };
  const load = Promise.all([run(A, 1500), run(B, 1500)]);
  await sleep(300);
  await stopRedis();
  await load;
  assert.equal(errors, 0);
  assert.ok(answered > 0 && unavailable > 0, `answered ${answered}, unavailable ${unavailable}`);
  const s = await stats(A);
  assert.ok(s.store_backend.unavailable > 0);
  redis = await startRedis(redisPort);
  // caching resumes without restarting llmcached
  const body = chat(uniq('after restart'));
  let hit = null;
  for (let i = 0; i < 100 && !hit; i++) {
    await ask(A, body);
    const r = await ask(B, body);
    if (status(r) === 'HIT-EXACT') hit = r;
    else await sleep(50);
  }
  assert.ok(hit, 'no hit on B after Redis came back');
  let s2;
  for (let i = 0; i < 60; i++) {
    s2 = await stats(B);
    if (s2.store_backend.reconnects >= 1) break;
    await sleep(50);
  }
  assert.ok(s2.store_backend.reconnects >= 1, JSON.stringify(s2.store_backend));
});
