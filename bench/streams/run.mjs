// bench/streams/run.mjs — can one llmcached hold N concurrent slow streams?
//
// Starts the mock upstream in its own process (each stream: CHUNKS events,
// CHUNK_DELAY ms apart, so every stream stays open for seconds), the daemon
// (release build), then opens N streaming chat requests at once, all
// distinct (no coalescing, no cache hits), and counts the ones that end with
// a complete stream ([DONE]). Prints the daemon's peak RSS and its CPU time,
// and the same N straight to the mock as the baseline in the same run.
//
// Every request is a new question, so with the semantic tier on (the default
// daemon, as `make run` starts it) each one is a semantic miss: the run shows
// what the tier costs a burst of misses. The same N go through a second
// daemon started with `--semantic no`, and the first-byte ratio (semantic on
// / off, p50 and p99; issue 11's bar: at most 1.3) is printed, with how many
// lookups the tier made and how many it skipped as over budget.
//
//   node bench/streams/run.mjs [N=5000]   (make bench-streams N=5000)
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import { spawnMock, startDaemon } from '../../tests/integration/helpers.mjs';

const N = Number(process.argv[2] || process.env.N || 5000);
const CHUNKS = Number(process.env.CHUNKS || 8);
const DELAY = Number(process.env.CHUNK_DELAY || 500);

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function stream(base, i) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ model: 'mock-gpt', stream: true,
      messages: [{ role: 'user', content: `slow stream ${i} [mock:chunks=${CHUNKS}] [mock:chunk_delay=${DELAY}]` }] });
    const u = new URL(base + '/chat/completions');
    const t0 = Date.now();
    let first = 0;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (d) => { if (!first) first = Date.now() - t0; text += d; });
      res.on('end', () => resolve({ ok: res.statusCode === 200 && text.includes('data: [DONE]'), first, total: Date.now() - t0 }));
      res.on('error', () => resolve({ ok: false }));
    });
    req.on('error', () => resolve({ ok: false }));
    req.end(body);
  });
}

function rssKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(s)[1]);
  } catch { return 0; }
}
function cpuSec(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // clock ticks (USER_HZ = 100)
  } catch { return 0; }
}

async function run(label, base) {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: N }, (_, i) => stream(base, `${label}-${i}`)));
  const ok = rs.filter((r) => r.ok);
  const firsts = ok.map((r) => r.first).sort((a, b) => a - b);
  const p = (q) => firsts[Math.min(firsts.length - 1, Math.floor(q * firsts.length))] ?? NaN;
  return { label, ok: ok.length, wall: Date.now() - t0, ttfb50: p(0.5), ttfb99: p(0.99) };
}

async function metrics(d) {
  const r = await fetch(`${d.url.replace(/\/v1$/, '')}/metrics`, { headers: { authorization: 'Bearer test-admin' } });
  const out = {};
  for (const l of (await r.text()).split('\n')) {
    const m = /^llmcached_semantic_(lookups|skipped|deferred)_total\{(?:reason|outcome)="(\w+)"\} (\d+)/.exec(l);
    if (m) out[`${m[1]}.${m[2]}`] = Number(m[3]);
  }
  return out;
}

const mock = await spawnMock();
console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0].model}; N=${N} streams of ${CHUNKS} chunks ${DELAY} ms apart`);
console.log(`command: node bench/streams/run.mjs ${N}`);
const base = await run('direct', mock.url);

// The default daemon (semantic tier on), then the same with --semantic no:
// the baseline of what the tier adds. ORDER=off-first swaps them (to see
// that the order does not decide the ratio).
async function daemonRun(label, args) {
  const dm = await startDaemon({ upstream: mock.url, args: ['--persist', 'no', '--log-level', 'warn', ...args] });
  const c0 = cpuSec(dm.pid);
  const r = await run(label, dm.url);
  r.cpu = cpuSec(dm.pid) - c0;
  r.rss = rssKb(dm.pid);
  r.metrics = await metrics(dm);
  await dm.stop();
  return r;
}
let ours, semOff;
if (process.env.ORDER === 'off-first') {
  semOff = await daemonRun('sem-off', ['--semantic', 'no']);
  ours = await daemonRun('llmcached', []);
} else {
  ours = await daemonRun('llmcached', []);
  semOff = await daemonRun('sem-off', ['--semantic', 'no']);
}
for (const r of [base, semOff, ours])
  console.log(`${r.label.padEnd(10)} complete ${r.ok}/${N}  wall ${r.wall} ms  first byte p50 ${r.ttfb50} ms p99 ${r.ttfb99} ms`);
console.log(`llmcached peak RSS ${(ours.rss / 1024).toFixed(1)} MiB, CPU ${ours.cpu.toFixed(2)} s for ${N} streams (--semantic no: ${(semOff.rss / 1024).toFixed(1)} MiB, ${semOff.cpu.toFixed(2)} s)`);
console.log(`llmcached/direct complete streams: ${(ours.ok / Math.max(1, base.ok)).toFixed(3)}`);
const m = ours.metrics;
const looked = Object.entries(m).filter(([k]) => k.startsWith('lookups.') && k !== 'lookups.skipped').reduce((a, [, v]) => a + v, 0);
console.log(`semantic tier: ${looked} lookups, ${m['skipped.overload'] ?? 0} skipped (over --semantic-budget)`);
console.log(`first byte, semantic on / off (same run; bar <= 1.3): p50 ${(ours.ttfb50 / semOff.ttfb50).toFixed(2)}x, p99 ${(ours.ttfb99 / semOff.ttfb99).toFixed(2)}x`);
await mock.close();
process.exit(ours.ok === N && semOff.ok === N ? 0 : 1);
