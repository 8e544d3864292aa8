// bench/fleet/run.mjs — one llmcached with its embedded store vs llmcached
// instances sharing one Redis, in the same run, same mock upstream, same
// hit workload (`make bench-fleet`).
//
// What it measures:
//  1. Hit throughput and latency with CONNS connections (wrk, walking
//     ENTRIES stored requests): E = embedded store; A = the Redis instance
//     that stored the entries (near-cache hits); B = a second instance that
//     heard of them through the stream (near-cache hits); R = an instance
//     whose near cache (--memory NEAR_MEMORY) holds a few entries only, so
//     nearly every hit is read from Redis. The mock's call counter must not
//     move: every answer was a hit. Bar: A and B ≥ 0.95 × E.
//  2. The same at one connection (latency without queueing), beside Redis's
//     own GET p50 at one connection (redis-benchmark, values of the entries'
//     size). Bar: R's p50 − E's p50 ≤ Redis GET p50 + 0.3 ms.
//  3. B's first semantic hit on A's entry: A stores a question, B's /stats is
//     polled until its index holds it, then the paraphrase is asked of B
//     (must be HIT-SEMANTIC). SEM_ROUNDS questions; p50 and max of the delay.
//     Bar: 50 ms. Then staleness after a delete elsewhere: B holds an entry,
//     A deletes it, B is asked until it no longer serves it. Needs the
//     USE-lite model (make test fetches it).
//  4. Redis SIGKILLed and restarted while wrk runs against A and R: wrk's
//     errors + non-2xx must be 0; after the restart R hits again.
//
// Knobs: DURATION (s per wrk run, 5), CONNS (16), THREADS (2), ENTRIES (2000),
// NEAR_MEMORY (64kb), SEM_ROUNDS (10), ROUNDS (2: wrk runs per server,
// interleaved, mean reported), LLMCACHED (build/rel/llmcached).
// Needs: wrk, redis-server, redis-benchmark, node (scripts/deps.d/bench*.list).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
process.chdir(root);
const env = process.env;
const DURATION = Number(env.DURATION || 5);
const CONNS = Number(env.CONNS || 16);
const THREADS = Number(env.THREADS || 2);
const ENTRIES = Number(env.ENTRIES || 2000);
const NEAR_MEMORY = env.NEAR_MEMORY || '64kb';
const SEM_ROUNDS = Number(env.SEM_ROUNDS || 10);
const ROUNDS = Number(env.ROUNDS || 2);
const LLMCACHED = env.LLMCACHED || 'build/rel/llmcached';
const modelDir = path.join(root, 'data/models/use-lite');
const haveModel = fs.existsSync(path.join(modelDir, 'model.json'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmc-bench-fleet-'));
const procs = [];
const cleanup = () => {
  for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ }
  fs.rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
function post(url, body, headers = {}, method = body === undefined ? 'GET' : 'POST') {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent,
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}
async function waitHealth(origin, p, what) {
  for (let i = 0; i < 400; i++) {
    if (p.exitCode !== null) throw new Error(`${what} exited at start`);
    try { if ((await post(`${origin}/health`)).status === 200) return; } catch { /* not yet */ }
    await sleep(25);
  }
  throw new Error(`${what} not healthy`);
}
function start(cmd, args, log) {
  const out = fs.openSync(path.join(tmp, log), 'w');
  const p = spawn(cmd, args, { stdio: ['ignore', out, out] });
  procs.push(p);
  return p;
}

let redisPort, redis;
const redisCli = (...a) => execFileSync('redis-cli', ['-p', String(redisPort), ...a], { encoding: 'utf8' }).trim();
async function startRedis() {
  redis = start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], 'redis.log');
  for (let i = 0; i < 200; i++) {
    try { if (redisCli('PING') === 'PONG') return; } catch { /* not yet */ }
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}
async function daemon(name, args) {
  const port = await freePort();
  const argv = ['--listen', `127.0.0.1:${port}`, '--upstream', mockUrl, '--admin-token', 'bench', '--data-dir', path.join(tmp, name), ...args];
  const p = start(LLMCACHED, argv, `${name}.log`);
  const origin = `http://127.0.0.1:${port}`;
  await waitHealth(origin, p, `llmcached ${name}`);
  console.log(`${name}: ${LLMCACHED} ${argv.slice(2).join(' ')}`);
  return { name, origin, url: `${origin}/v1/chat/completions`, p };
}
const stats = async (d) => JSON.parse((await post(`${d.origin}/stats`, undefined, { authorization: 'Bearer bench' })).text);
const mockTotal = async () => JSON.parse((await post(`${mockOrigin}/__mock/stats`)).text).total;

// Run each server's wrk ROUNDS times, interleaved (E A B R, R B A E, ...),
// and report the mean: one scheduling hiccup on a shared box moves one run.
function rounds(list, conns, threads, secs) {
  const acc = {};
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [...list].reverse() : list;
    for (const [key, name, d] of order) {
      const o = wrk(`${name} (round ${r + 1})`, d, conns, threads, secs);
      acc[key] = acc[key] || { name, n: 0, rps: 0, p50_us: 0, p99_us: 0, errors: 0, non2xx: 0 };
      for (const k of ['rps', 'p50_us', 'p99_us', 'errors', 'non2xx']) acc[key][k] += o[k];
      acc[key].n++;
    }
  }
  for (const key of Object.keys(acc)) {
    const a = acc[key];
    for (const k of ['rps', 'p50_us', 'p99_us']) a[k] = Math.round(a[k] / a.n);
    console.log(`  mean ${a.name.padEnd(29)} ${String(a.rps).padStart(7)} req/s  p50 ${us(a.p50_us)}  p99 ${us(a.p99_us)}  errors ${a.errors} non-2xx ${a.non2xx}`);
  }
  return acc;
}

function wrk(name, d, conns, threads, secs) {
  const args = ['-t', String(threads), '-c', String(conns), '-d', `${secs}s`, '--latency', '-s', 'bench/exact/wrk.lua', d.url];
  const r = spawnSync('wrk', args, { env: { ...env, BODIES_FILE: bodiesFile }, encoding: 'utf8' });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`wrk failed: ${r.stdout}${r.stderr}`);
  const o = {};
  for (const kv of line.slice(7).split(' ')) { const [k, v] = kv.split('='); o[k] = Number(v); }
  console.log(`  ${name.padEnd(34)} ${String(o.rps).padStart(7)} req/s  p50 ${us(o.p50_us)}  p99 ${us(o.p99_us)}  errors ${o.errors} non-2xx ${o.non2xx}`);
  return o;
}
const us = (u) => (u >= 1000 ? `${(u / 1000).toFixed(2)}ms` : `${u}us`).padStart(8);
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : 'n/a');

// ---------------------------------------------------------------------------
for (const t of ['wrk', 'redis-server', 'redis-benchmark', 'redis-cli'])
  if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) { console.error(`bench-fleet: ${t} not found (make bench-fleet installs it)`); process.exit(1); }
console.log('== bench/fleet: one llmcached (embedded store) vs llmcached instances sharing one Redis ==');
console.log(`command: make bench-fleet (DURATION=${DURATION} CONNS=${CONNS} THREADS=${THREADS} ENTRIES=${ENTRIES} NEAR_MEMORY=${NEAR_MEMORY} SEM_ROUNDS=${SEM_ROUNDS} LLMCACHED=${LLMCACHED})`);
console.log(`machine: nproc=${os.cpus().length}, CPU: ${os.cpus()[0].model}, ${os.type()} ${os.release()}, load average: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`tools: ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().split(' ').slice(0, 3).join(' ')}, node ${process.version}`);

redisPort = await freePort();
await startRedis();
const mockPort = await freePort();
const mockP = start('node', ['tests/integration/mock-upstream.mjs', '--port', String(mockPort)], 'mock.log');
const mockOrigin = `http://127.0.0.1:${mockPort}`;
const mockUrl = `${mockOrigin}/v1`;
await waitHealth(mockOrigin, mockP, 'mock upstream');
const store = ['--store', `redis://127.0.0.1:${redisPort}/0`, '--store-prefix', 'bench:'];
const E = await daemon('E', ['--persist', 'no', '--semantic', 'no']);
const A = await daemon('A', [...store, '--semantic', 'no']);
const B = await daemon('B', [...store, '--semantic', 'no']);

// the workload: ENTRIES distinct chat requests, stored on E and on A
const bodiesFile = path.join(tmp, 'bodies.jsonl');
const bodies = Array.from({ length: ENTRIES }, (_, i) => JSON.stringify({ model: 'bench-model', temperature: 0,
  messages: [{ role: 'user', content: `Fleet bench entry ${i}: name one fact about the number ${i}.` }] }));
fs.writeFileSync(bodiesFile, bodies.join('\n') + '\n');
for (const d of [E, A]) {
  let next = 0, bad = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < bodies.length) { const r = await post(d.url, bodies[next++]); if (r.status !== 200) bad++; }
  }));
  if (bad) throw new Error(`fill of ${d.name}: ${bad} non-200`);
}
await sleep(500); // A's writes reach Redis, B hears of them
const entryBytes = Number(redisCli('MEMORY', 'USAGE', redisCli('--scan', '--pattern', 'bench:e:*').split('\n')[0]));
const R = await daemon('R', [...store, '--semantic', 'no', '--memory', NEAR_MEMORY]);
for (const d of [B, R]) {
  const r = await post(d.url, bodies[7]);
  if (r.headers['x-llm-cache'] !== 'HIT-EXACT') throw new Error(`${d.name} does not hit A's entry (${r.headers['x-llm-cache']})`);
}
console.log(`workload: ${ENTRIES} distinct chat requests (about ${entryBytes} bytes per Redis entry), walked in turn by every wrk connection`);

console.log(`\n-- 1. hit throughput, ${CONNS} connections, ${DURATION} s each, ${ROUNDS} rounds --`);
const calls0 = await mockTotal();
const t1 = rounds([['E', 'E embedded store', E], ['A', 'A Redis, near hits (stored)', A],
  ['B', 'B Redis, near hits (stream)', B], ['R', `R Redis hits (near ${NEAR_MEMORY})`, R]], CONNS, THREADS, DURATION);
const calls1 = await mockTotal();
const sr = (await stats(R)).store_backend || {};
console.log(`  upstream calls during the runs: ${calls1 - calls0} (0: every answer was a hit); R read ${sr.fetch_hits} entries from Redis, ${sr.unavailable} unavailable`);
console.log(`  ratios: A/E ${ratio(t1.A.rps, t1.E.rps)}  B/E ${ratio(t1.B.rps, t1.E.rps)}  R/E ${ratio(t1.R.rps, t1.E.rps)}   (bar: near-cache ≥ 0.95)`);

console.log(`\n-- 2. hit latency, 1 connection, ${DURATION} s each, ${ROUNDS} rounds --`);
const t2 = rounds([['E', 'E embedded store', E], ['A', 'A Redis, near hits', A], ['R', 'R Redis hits', R]], 1, 1, DURATION);
const rb = spawnSync('redis-benchmark', ['-p', String(redisPort), '-t', 'get', '-n', '50000', '-c', '1', '-d', String(entryBytes), '--csv'], { encoding: 'utf8' });
const row = rb.stdout.split('\n').find((l) => l.startsWith('"GET"'));
const getP50 = row ? Number(row.split(',')[4].replace(/"/g, '')) : NaN;
console.log(`  redis-benchmark -t get -n 50000 -c 1 -d ${entryBytes} --csv: ${row}`);
console.log(`  Redis GET p50 ${getP50.toFixed(3)} ms`);
const added = (t2.R.p50_us - t2.E.p50_us) / 1000;
console.log(`  R p50 − E p50 = ${added.toFixed(3)} ms; minus Redis GET p50 = ${(added - getP50).toFixed(3)} ms (bar: ≤ 0.3 ms)`);
console.log(`  A p50 / E p50 = ${ratio(t2.A.p50_us, t2.E.p50_us)}`);

console.log('\n-- 3. B\'s first semantic hit on A\'s entry --');
if (!haveModel) {
  console.log('  skipped: USE-lite model absent (make test fetches it into data/models/use-lite)');
} else {
  const semArgs = ['--store', `redis://127.0.0.1:${redisPort}/0`, '--store-prefix', 'benchsem:', '--embed-model-path', modelDir];
  const SA = await daemon('SA', semArgs), SB = await daemon('SB', semArgs);
  const delays = [];
  let hits = 0;
  for (let i = 0; i < SEM_ROUNDS; i++) {
    const sys = { role: 'system', content: `semantic round ${i} of ${process.pid}` };
    const before = (await stats(SB)).semantic?.indexed ?? 0;
    const a = await post(SA.url, { model: 'bench-model', messages: [sys, { role: 'user', content: 'Could you please explain step by step how I can reset the admin password of my home wifi router?' }] });
    const t0 = performance.now();
    if (a.headers['x-llm-cache'] !== 'MISS') throw new Error('SA did not miss');
    while (((await stats(SB)).semantic?.indexed ?? 0) <= before && performance.now() - t0 < 5000) { /* poll */ }
    delays.push(performance.now() - t0);
    const b = await post(SB.url, { model: 'bench-model', messages: [sys, { role: 'user', content: 'Can you please explain step by step how I can reset the admin password of my home wifi router?' }] });
    if (b.headers['x-llm-cache'] === 'HIT-SEMANTIC') hits++;
  }
  delays.sort((x, y) => x - y);
  console.log(`  ${SEM_ROUNDS} rounds: delay from A's answer to B's index holding it p50 ${delays[delays.length >> 1].toFixed(1)} ms, max ${delays[delays.length - 1].toFixed(1)} ms (bar: 50 ms); the paraphrase was HIT-SEMANTIC on B ${hits}/${SEM_ROUNDS}`);
  // staleness after a delete elsewhere: B holds the entry (near cache and
  // index); A deletes it; B is asked until it stops serving it
  const stale = [];
  for (let i = 0; i < SEM_ROUNDS; i++) {
    const body = { model: 'bench-model', messages: [{ role: 'user', content: `delete round ${i} of ${process.pid}: what is a fact about ${i}?` }] };
    const a = await post(SA.url, body);
    for (let k = 0; k < 200 && (await post(SB.url, body)).headers['x-llm-cache'] !== 'HIT-EXACT'; k++) await sleep(2);
    const d = await post(`${SA.origin}/admin/keys/${a.headers['x-llm-cache-key']}`, undefined, { authorization: 'Bearer bench' }, 'DELETE');
    if (d.status !== 200) throw new Error(`delete answered ${d.status}`);
    const t0 = performance.now();
    while ((await post(SB.url, body)).headers['x-llm-cache'] === 'HIT-EXACT' && performance.now() - t0 < 5000) { /* poll */ }
    stale.push(performance.now() - t0);
  }
  stale.sort((x, y) => x - y);
  console.log(`  staleness after a delete on A: B stopped serving the entry after p50 ${stale[stale.length >> 1].toFixed(1)} ms, max ${stale[stale.length - 1].toFixed(1)} ms (${SEM_ROUNDS} rounds)`);
}

console.log('\n-- 4. Redis SIGKILLed and restarted under load (wrk on A and R, 6 s) --');
const both = Promise.all([A, R].map((d) => new Promise((resolve) => {
  const w = spawn('wrk', ['-t', '1', '-c', '4', '-d', '6s', '-s', 'bench/exact/wrk.lua', d.url], { env: { ...env, BODIES_FILE: bodiesFile } });
  let out = '';
  w.stdout.on('data', (c) => { out += c; });
  w.on('exit', () => resolve({ d: d.name, line: out.split('\n').find((l) => l.startsWith('RESULT ')) || out }));
})));
await sleep(1500);
redis.kill('SIGKILL');
await sleep(2000);
await startRedis();
const res4 = await both;
for (const r of res4) console.log(`  ${r.d}: ${r.line}`);
let back = false;
for (let i = 0; i < 100 && !back; i++) {
  await post(A.url, bodies[3]); // A re-stores what the restarted Redis lost
  back = (await post(R.url, bodies[3])).headers['x-llm-cache'] === 'HIT-EXACT';
  if (!back) await sleep(50);
}
const s4 = (await stats(R)).store_backend || {};
console.log(`  R after the restart: ${back ? 'hits again' : 'NO HIT'}; store_unavailable fetches ${s4.unavailable}, reconnects ${s4.reconnects}`);
process.exit(0);
