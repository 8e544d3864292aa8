// bench/hostile/run.mjs — what a hostile client costs the daemon (issue 16).
//
// Two cases from the issue, each against the daemon under test and, when
// BASELINE names another llmcached binary (e.g. a build of an older
// commit), against that one in the same run:
//   header  one request whose single header line is SIZE_MB megabytes with
//           no line end, sent as fast as loopback takes it: the status the
//           client gets, the daemon's CPU seconds and RSS growth meanwhile.
//   loris   N connections each sending one byte of a request a second for
//           SECONDS: how many the daemon still holds open at the end, and
//           the latency of a normal GET /health meanwhile.
//
//   node bench/hostile/run.mjs        (make bench-hostile [SIZE_MB=64] [N=200] [SECONDS=30])
import fs from 'node:fs';
import net from 'node:net';
import { startDaemon, startMock, daemonPath } from '../../tests/integration/helpers.mjs';

const SIZE_MB = Number(process.env.SIZE_MB || 64);
const N = Number(process.env.N || 200);
const SECONDS = Number(process.env.SECONDS || 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function procStat(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const cpu = (Number(st[11]) + Number(st[12])) / 100; // utime + stime, clock ticks
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  return { cpu, rss };
}

async function headerCase(d) {
  const s0 = procStat(d.pid);
  let peak = s0.rss;
  const iv = setInterval(() => { try { peak = Math.max(peak, procStat(d.pid).rss); } catch { /* gone */ } }, 50);
  const t0 = Date.now();
  const r = await new Promise((resolve) => {
    const s = net.connect(d.port, '127.0.0.1');
    let got = '';
    let sent = 0;
    const chunk = Buffer.alloc(1 << 20, 'a');
    const finish = (why) => { s.destroy(); resolve({ why, status: (/^HTTP\/1\.\d (\d+)/.exec(got) || [])[1] || 'none', sentMB: sent / 1048576 }); };
    s.on('data', (b) => { got += b.toString('latin1'); });
    s.on('error', () => finish('reset'));
    s.on('close', () => finish('closed'));
    s.on('connect', async () => {
      s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: ');
      for (let i = 0; i < SIZE_MB && !s.destroyed && !got; i++) {
        if (!s.write(chunk)) await new Promise((r2) => { s.once('drain', r2); s.once('close', r2); });
        sent += chunk.length;
      }
      // everything sent (or answered): wait for the answer or the close
      setTimeout(() => finish(got ? 'answered' : 'no answer in 60 s'), 60000).unref();
      if (got) setTimeout(() => finish('answered'), 200);
    });
  });
  clearInterval(iv);
  await sleep(300);
  const s1 = procStat(d.pid);
  return { ...r, seconds: (Date.now() - t0) / 1000, cpu: s1.cpu - s0.cpu, rssGrowthMB: (peak - s0.rss) / 1048576 };
}

async function lorisCase(d) {
  const socks = [];
  let open = 0;
  for (let i = 0; i < N; i++) {
    const s = net.connect(d.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => { open++; });
    s.on('close', () => { open--; });
    socks.push(s);
  }
  const req = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'z'.repeat(10000);
  let k = 0;
  const lat = [];
  for (let t = 0; t < SECONDS; t++) {
    for (const s of socks) if (!s.destroyed) s.write(req[k]);
    k++;
    const t0 = Date.now();
    try { await fetch(`${d.origin}/health`, { signal: AbortSignal.timeout(5000) }); lat.push(Date.now() - t0); } catch { lat.push(5000); }
    await sleep(1000);
  }
  const stillOpen = open;
  for (const s of socks) s.destroy();
  lat.sort((a, b) => a - b);
  return { connections: N, seconds: SECONDS, stillOpen, healthP50ms: lat[lat.length >> 1], healthMaxMs: lat[lat.length - 1] };
}

async function run(bin, label) {
  const mock = await startMock();
  const d = await startDaemon({ bin, upstream: mock.url, args: ['--persist', 'no', '--semantic', 'no', '--threads', '2'] });
  try {
    const h = await headerCase(d);
    console.log(`${label}: ${SIZE_MB} MB header line: status ${h.status} (${h.why}) after ${h.seconds.toFixed(2)} s, ${h.sentMB.toFixed(0)} MB sent, daemon CPU ${h.cpu.toFixed(2)} s, RSS +${h.rssGrowthMB.toFixed(1)} MB`);
    const l = await lorisCase(d);
    console.log(`${label}: ${l.connections} slowloris connections, 1 byte/s for ${l.seconds} s: ${l.stillOpen} still open; GET /health meanwhile p50 ${l.healthP50ms} ms, max ${l.healthMaxMs} ms`);
    return { h, l };
  } finally {
    await d.stop({ signal: 'SIGKILL' });
    await mock.close();
  }
}

console.log(`bench-hostile: node bench/hostile/run.mjs  SIZE_MB=${SIZE_MB} N=${N} SECONDS=${SECONDS}`);
const cur = await run(process.env.LLMCACHED_BIN || daemonPath(), 'llmcached');
if (process.env.BASELINE) {
  const base = await run(process.env.BASELINE, `baseline ${process.env.BASELINE}`);
  const ratio = base.h.cpu > 0 ? (cur.h.cpu / base.h.cpu).toFixed(3) : 'n/a';
  console.log(`ratio (llmcached / baseline): header CPU ${ratio}; slowloris still open ${cur.l.stillOpen} vs ${base.l.stillOpen}`);
}
process.exit(0);
