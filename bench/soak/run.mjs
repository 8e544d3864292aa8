// bench/soak/run.mjs — a soak (issue 16): a mixed workload for MINUTES
// against one daemon with a small --memory, sampling its RSS, open file
// descriptors, store bytes and request latency every SAMPLE_S seconds.
//
// Workload (C concurrent clients, each looping): repeated questions (exact
// hits), new questions (misses, stored, evicting under the small budget),
// streams (half of them dropped by the client mid-way), admin deletes of
// entries just stored, slow clients that send their request a byte at a
// time, and idle connections left to the idle timeout.
//
// Fails (exit 1) when, after the warm-up (the first WARMUP share of the
// run), RSS grows by more than RSS_BOUND_MB over its warm-up level, or open
// fds by more than FD_BOUND over theirs: a leak shows as steady growth.
//
//   node bench/soak/run.mjs      (make soak MINUTES=30)
import fs from 'node:fs';
import net from 'node:net';
import { startDaemon, spawnMock, request, sleep, tempDir } from '../../tests/integration/helpers.mjs';

const MINUTES = Number(process.env.MINUTES || 30);
const C = Number(process.env.CLIENTS || 8);
const SAMPLE_S = Number(process.env.SAMPLE_S || 10);
const WARMUP = 0.2;
const RSS_BOUND_MB = Number(process.env.RSS_BOUND_MB || 32);
const FD_BOUND = Number(process.env.FD_BOUND || 64);

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

const mock = await spawnMock();
const d = await startDaemon({ upstream: mock.url, dataDir: tempDir(), args: ['--memory', '4mb', '--semantic', 'no', '--idle-timeout', '5s', '--header-timeout', '5s', '--flush-interval', '200ms'] });
const end = Date.now() + MINUTES * 60000;
const lat = [];
const counts = { hit: 0, miss: 0, stream: 0, dropped: 0, deleted: 0, slow: 0, idle: 0, errors: 0 };
let seq = 0;
const body = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });

async function one() {
  const r = Math.random();
  const t0 = Date.now();
  try {
    if (r < 0.45) { // hits among a small hot set
      const x = await request(`${d.url}/chat/completions`, { body: body(`hot question ${Math.floor(Math.random() * 50)}`) });
      if (x.status !== 200) counts.errors++;
      counts.hit++;
    } else if (r < 0.7) { // misses with sizeable answers: the budget evicts
      const x = await request(`${d.url}/chat/completions`, { body: body(`new question ${seq++} [mock:size=4000]`) });
      if (x.status !== 200) counts.errors++;
      counts.miss++;
      if (Math.random() < 0.2) {
        const key = x.headers.get('x-llm-cache-key');
        if (key) {
          await request(`${d.origin}/admin/keys/${key}`, { method: 'DELETE', headers: { authorization: `Bearer ${d.adminToken}` } });
          counts.deleted++;
        }
      }
    } else if (r < 0.85) { // streams, half dropped mid-way
      const ac = new AbortController();
      const drop = Math.random() < 0.5;
      const res = await fetch(`${d.url}/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body(`stream ${drop ? seq++ : Math.floor(Math.random() * 20)} [mock:chunks=6] [mock:chunk_delay=20]`, { stream: true })) });
      const reader = res.body.getReader();
      if (drop) { await reader.read(); ac.abort(); counts.dropped++; } else { while (!(await reader.read()).done); counts.stream++; }
    } else if (r < 0.95) { // a slow client: the request a few bytes at a time
      await new Promise((resolve) => {
        const b = JSON.stringify(body(`slow ${Math.floor(Math.random() * 50)}`));
        const req = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
        const s = net.connect(d.port, '127.0.0.1');
        let i = 0;
        const iv = setInterval(() => { if (i < req.length) s.write(req.slice(i, i += 40)); }, 10);
        s.on('data', () => {});
        s.on('error', () => {});
        s.on('close', () => { clearInterval(iv); resolve(); });
        setTimeout(() => s.destroy(), 10000);
      });
      counts.slow++;
    } else { // an idle connection left to the idle timeout
      const s = net.connect(d.port, '127.0.0.1');
      s.on('error', () => {});
      setTimeout(() => s.destroy(), 8000);
      counts.idle++;
    }
  } catch { counts.errors++; }
  lat.push(Date.now() - t0);
}

const samples = [];
const sampler = setInterval(async () => {
  const l = lat.splice(0).sort((a, b) => a - b);
  let store = null;
  try { store = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json.store; } catch { /* */ }
  const s = { t: Math.round((Date.now() - (end - MINUTES * 60000)) / 1000), rssMB: rss(d.pid), fds: fds(d.pid), storeBytes: store ? store.bytes : null, n: l.length, p50: l[l.length >> 1] || 0, p99: l[Math.floor(l.length * 0.99)] || 0 };
  samples.push(s);
  console.log(`t=${s.t}s rss=${s.rssMB.toFixed(1)}MB fds=${s.fds} store=${s.storeBytes} reqs=${s.n} p50=${s.p50}ms p99=${s.p99}ms`);
}, SAMPLE_S * 1000);

console.log(`soak: ${MINUTES} min, ${C} clients, --memory 4mb; bounds after ${WARMUP * 100}% warm-up: RSS +${RSS_BOUND_MB} MB, fds +${FD_BOUND}`);
await Promise.all(Array.from({ length: C }, async () => { while (Date.now() < end) await one(); }));
clearInterval(sampler);
const warm = samples.filter((s) => s.t <= MINUTES * 60 * WARMUP);
const after = samples.filter((s) => s.t > MINUTES * 60 * WARMUP);
const base = { rss: Math.max(...warm.map((s) => s.rssMB)), fds: Math.max(...warm.map((s) => s.fds)) };
const peak = { rss: Math.max(...after.map((s) => s.rssMB)), fds: Math.max(...after.map((s) => s.fds)) };
const ok = warm.length > 0 && after.length > 0 && peak.rss - base.rss <= RSS_BOUND_MB && peak.fds - base.fds <= FD_BOUND;
const r = await d.stop();
await mock.close();
console.log(`soak: ${JSON.stringify(counts)}`);
console.log(`soak: warm-up peak RSS ${base.rss.toFixed(1)} MB, fds ${base.fds}; after warm-up peak RSS ${peak.rss.toFixed(1)} MB (+${(peak.rss - base.rss).toFixed(1)}), fds ${peak.fds} (+${peak.fds - base.fds}); daemon exit ${r.code}: ${ok && r.code === 0 ? 'PASS' : 'FAIL'}`);
process.exit(ok && r.code === 0 ? 0 : 1);
