// routing.test.mjs — several engines behind the gateway: prefix affinity
// holds, a killed backend is routed around without losing a request, and
// the engines' prefix-cache metrics show up in the gateway's /stats.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, startEngine as startEngineProc, engineModel, request, sleep } from './helpers.mjs';

const skip = engineModel.skip;
const startEngine = () => startEngineProc(['--workers', '2']);
const stop = (e) => e.stop();

let engines = [], d;
before(async () => {
  if (skip) return;
  engines = await Promise.all([startEngine(), startEngine(), startEngine()]);
  d = await startDaemon({
    args: [...engines.flatMap((e) => ['--upstream', `${e.base}/v1`]), '--route-policy', 'prefix-affinity',
      '--semantic', 'no', '--health-interval', '300ms', '--persist', 'no'],
  });
});
after(async () => {
  if (skip) return;
  const r = await d.stop();
  for (const e of engines) await stop(e);
  assert.equal(r.code, 0, r.output.slice(-2000));
});

const stats = async () => (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
const SYS = (t) => `Once upon a time there was a kind old king who ruled a small land by the sea, tenant ${t}. `;
const complete = (prompt) => request(`${d.url}/completions`, {
  body: { model: 'stories260K', prompt, max_tokens: 4, temperature: 0 },
  headers: { 'cache-control': 'no-store' }, // every request reaches an engine
});

test('requests sharing a long prefix stick to one backend', { skip }, async () => {
  const before = (await stats()).backends.map((b) => b.requests);
  for (let i = 0; i < 6; i++) {
    const r = await complete(SYS('alpha') + `Question ${i}:`);
    assert.equal(r.status, 200, r.text);
  }
  const after = (await stats()).backends.map((b) => b.requests);
  const delta = after.map((v, i) => v - before[i]);
  assert.equal(Math.max(...delta), 6, `split: ${delta}`);
  // A different prefix may go elsewhere; the router says what it did.
  const s = await stats();
  assert.equal(s.route_policy, 'prefix-affinity');
  assert.ok(s.router.affinity >= 5, JSON.stringify(s.router));
});

test('the engines\' prefix-cache metrics are scraped and shown', { skip }, async () => {
  await sleep(800); // a few health intervals
  const s = await stats();
  const scraped = s.backends.filter((b) => b.prefix_cache_queries !== undefined);
  assert.equal(scraped.length, 3);
  assert.ok(scraped.some((b) => b.prefix_cache_hits > 0), JSON.stringify(s.backends));
  const m = await request(`${d.origin}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } });
  assert.match(m.text, /llmcached_backend_prefix_cache_hit_rate\{backend="http:\/\/127\.0\.0\.1:\d+\/v1"\} 0\.\d+/);
});

test('a killed backend is routed around and no request is lost', { skip }, async () => {
  // Find the backend holding the 'beta' prefix, then kill it.
  const before = (await stats()).backends.map((b) => b.requests);
  assert.equal((await complete(SYS('beta') + 'Q0:')).status, 200);
  const after = (await stats()).backends.map((b) => b.requests);
  const victim = after.findIndex((v, i) => v > before[i]);
  engines[victim].proc.kill('SIGKILL');
  await new Promise((r) => engines[victim].proc.on('exit', r));
  for (let i = 1; i <= 6; i++) {
    const r = await complete(SYS('beta') + `Q${i}:`);
    assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.text}`);
  }
  await sleep(700);
  const s = await stats();
  assert.equal(s.backends[victim].healthy, false);
});
