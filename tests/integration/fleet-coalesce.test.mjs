// fleet-coalesce.test.mjs — coalescing across the instances of a fleet on a
// real Redis (redis-server started here on a free port): three instances
// asked the same new question at once (plain, then streamed through the
// official openai client) against a slow mock upstream make exactly one
// upstream call (counted at the mock) and every client gets the same answer;
// an answer that cannot be stored (upstream 500) lets the waiters go
// upstream at once rather than one after another; the lock holder
// SIGKILLed mid-call leaves the others answering (one goes upstream once
// the lock expires); --store-coalesce no turns it off; Redis
// killed: the same question still answered everywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  startMock, startDaemon, startRedisServer, stopRedisServer, redisCli, makeClient, request, mockSerial, sleep, tempDir, freePort,
} from './helpers.mjs';

let haveRedis = true;
try { execFileSync('redis-server', ['--version']); } catch { haveRedis = false; }
const skip = haveRedis ? false : 'redis-server absent (scripts/deps.sh test installs it)';

let redis = null, redisPort, mock, A, B, C;
const prefix = `coal${process.pid}:`;
const redisDir = tempDir('llmc-redis-');
const LOCK_TTL = 1500;

const startRedis = (port) => startRedisServer(port, redisDir);
const cli = (...args) => redisCli(redisPort, ...args);
const stopRedis = () => stopRedisServer(redis);

const daemon = (args = []) => startDaemon({
  upstream: mock.url,
  args: ['--store', `redis://127.0.0.1:${redisPort}/0`, '--store-prefix', prefix, '--store-timeout', '100ms',
    '--store-lock-ttl', `${LOCK_TTL}ms`, '--persist', 'no', '--upstream-timeout', '5s',
    '--semantic', 'no', ...args],
});
const admin = (d) => ({ authorization: `Bearer ${d.adminToken}` });
const stats = async (d) => (await request(`${d.origin}/stats`, { method: 'GET', headers: admin(d) })).json;
let n = 0;
const uniq = (s) => `${s} [${process.pid}-${++n}]`;
const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });
const ask = (d, body) => request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-fleet' }, body });
const status = (r) => r.headers.get('x-llm-cache');
const reason = (r) => r.headers.get('x-llm-cache-reason');
const upstreamCalls = () => Object.entries(mock.stats.calls)
  .filter(([p]) => p.includes('chat/completions')).reduce((a, [, v]) => a + v, 0);

before(async () => {
  if (skip) return;
  redisPort = await freePort();
  redis = await startRedis(redisPort);
  mock = await startMock();
  [A, B, C] = await Promise.all([daemon(), daemon(), daemon()]);
});
after(async () => {
  if (skip) return;
  for (const d of [B, C]) {
    const r = await d.stop();
    assert.equal(r.code, 0, r.output.slice(-3000));
  }
  await A.stop();
  await mock.close();
  await stopRedis();
});

test('the same new question on three instances at once: one upstream call, one answer', { skip }, async () => {
  const body = chat(uniq('What is coalescing? [mock:delay=400]'));
  const before0 = upstreamCalls();
  const rs = await Promise.all([A, B, C].map((d) => ask(d, body)));
  assert.equal(upstreamCalls() - before0, 1);
  for (const r of rs) assert.equal(r.status, 200);
  assert.deepEqual(rs.map(status).sort(), ['HIT-EXACT', 'HIT-EXACT', 'MISS']);
  for (const r of rs.filter((x) => status(x) === 'HIT-EXACT')) assert.equal(reason(r), 'coalesced (fleet)');
  const serials = new Set(rs.map((r) => mockSerial(r.json)));
  assert.equal(serials.size, 1);
  const st = await Promise.all([A, B, C].map(stats));
  const sum = (k) => st.reduce((a, s) => a + s.fleet_coalescing[k], 0);
  assert.equal(sum('locks_taken'), 1);
  assert.equal(sum('waits_served'), 2);
  assert.equal(sum('waits_timed_out'), 0);
  // the holder released its lock once the answer was stored
  let left = '1';
  for (let i = 0; i < 50 && left !== '0'; i++) {
    left = cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', `${prefix}l:*`);
    if (left !== '0') await sleep(20);
  }
  assert.equal(left, '0');
  const m = await request(`${A.origin}/metrics`, { method: 'GET', headers: admin(A) });
  assert.match(m.text || JSON.stringify(m.json), /llmcached_fleet_waits_served_total \d+/);
});

test('streamed on three instances at once: one upstream call, the same valid SSE text', { skip }, async () => {
  const body = chat(uniq('Stream a coalesced answer [mock:delay=400]'));
  const before0 = upstreamCalls();
  const one = async (d) => {
    const client = makeClient(d.url, { apiKey: 'sk-fleet' });
    const { data, response } = await client.chat.completions.create({ ...body, stream: true }).withResponse();
    let text = '';
    for await (const ch of data) text += ch.choices[0]?.delta?.content || '';
    return { text, cache: response.headers.get('x-llm-cache') };
  };
  const rs = await Promise.all([A, B, C].map(one));
  assert.equal(upstreamCalls() - before0, 1);
  assert.deepEqual(rs.map((r) => r.cache).sort(), ['HIT-EXACT', 'HIT-EXACT', 'MISS']);
  assert.ok(rs[0].text.length > 0);
  for (const r of rs) assert.equal(r.text, rs[0].text);
});

test('an answer that cannot be stored (upstream 500): the waiters go upstream at once, not in turn', { skip }, async () => {
  const body = chat(uniq('Upstream fails [mock:status=500] [mock:delay=300]'));
  const before0 = upstreamCalls();
  const st0 = await Promise.all([A, B, C].map(stats));
  const rs = await Promise.all([A, B, C].map((d) => ask(d, body)));
  for (const r of rs) assert.equal(r.status, 500);
  assert.equal(upstreamCalls() - before0, 3);
  const st = await Promise.all([A, B, C].map(stats));
  const delta = (k) => st.reduce((a, s, i) => a + s.fleet_coalescing[k] - st0[i].fleet_coalescing[k], 0);
  // one lock, marked "not stored" by its holder: nobody took it after it
  assert.equal(delta('locks_taken'), 1);
  assert.equal(delta('waits_timed_out'), 0);
  assert.equal(rs.filter((r) => reason(r) === "coalescing: the fleet's answer was not storable").length, 2);
});

test('--store-coalesce no: each instance goes upstream itself', { skip }, async () => {
  const [D, E] = await Promise.all([daemon(['--store-coalesce', 'no']), daemon(['--store-coalesce', 'no'])]);
  try {
    const body = chat(uniq('Not coalesced [mock:delay=300]'));
    const before0 = upstreamCalls();
    const rs = await Promise.all([D, E].map((d) => ask(d, body)));
    for (const r of rs) assert.equal(status(r), 'MISS');
    assert.equal(upstreamCalls() - before0, 2);
  } finally {
    await Promise.all([D.stop(), E.stop()]);
  }
});

test('the lock holder SIGKILLed mid-call: the others still answer, after the lock expires', { skip }, async () => {
  const body = chat(uniq('Holder dies [mock:delay=700]'));
  const before0 = upstreamCalls();
  const a = ask(A, body).catch((e) => e); // A takes the lock and calls upstream
  for (let i = 0; i < 100 && upstreamCalls() === before0; i++) await sleep(10);
  assert.equal(upstreamCalls() - before0, 1, 'A never called upstream');
  const t0 = Date.now();
  const others = Promise.all([B, C].map((d) => ask(d, body)));
  await sleep(100);
  A.kill('SIGKILL');
  await a;
  const rs = await others;
  const ms = Date.now() - t0;
  for (const r of rs) assert.equal(r.status, 200);
  assert.equal(mockSerial(rs[0].json), mockSerial(rs[1].json));
  // one of B and C took the expired lock and asked once; the other waited for it
  assert.equal(upstreamCalls() - before0, 2);
  assert.deepEqual(rs.map(status).sort(), ['HIT-EXACT', 'MISS']);
  assert.ok(ms >= LOCK_TTL - 200 && ms < LOCK_TTL + 3000, `answered after ${ms} ms`);
});

test('Redis killed: the same new question is still answered by every instance', { skip }, async () => {
  await stopRedis();
  const body = chat(uniq('No Redis [mock:delay=100]'));
  const rs = await Promise.all([B, C].map((d) => ask(d, body)));
  for (const r of rs) {
    assert.equal(r.status, 200);
    assert.equal(status(r), 'MISS');
    assert.equal(reason(r), 'store_unavailable');
  }
});
