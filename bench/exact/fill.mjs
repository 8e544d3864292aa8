// fill.mjs — send N distinct chat requests (each a cache miss that gets
// stored) to a server, C at a time, and report what came back.
//
//   node bench/exact/fill.mjs URL N [C] [NONCE]
//
// Prints one line: FILL n=… ok=… non200=… errors=… resp_bytes=… secs=…
// resp_bytes is the sum of the response bodies: the part of each cache entry
// that is the answer itself, subtracted by run.sh to get the per-entry
// overhead. Uses node:http with keep-alive so the client stays cheap.
import http from 'node:http';

const [url, nArg, cArg, nonce = String(Date.now())] = process.argv.slice(2);
const n = Number(nArg);
const c = Number(cArg || 16);
if (!url || !(n > 0)) {
  console.error('usage: node fill.mjs URL N [CONCURRENCY] [NONCE]');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: c });
let next = 0;
let ok = 0;
let non200 = 0;
let errors = 0;
let bytes = 0;

function one(i) {
  const body = JSON.stringify({
    model: 'bench-model',
    messages: [{ role: 'user', content: `Fill entry ${i} of run ${nonce}: name one fact about the number ${i}.` }],
  });
  return new Promise((resolve) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let len = 0;
      res.on('data', (d) => { len += d.length; });
      res.on('end', () => {
        if (res.statusCode === 200) { ok++; bytes += len; } else non200++;
        resolve();
      });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body);
  });
}

async function worker() {
  while (next < n) await one(next++);
}

const t0 = performance.now();
await Promise.all(Array.from({ length: c }, worker));
agent.destroy();
console.log(`FILL n=${n} ok=${ok} non200=${non200} errors=${errors} resp_bytes=${bytes} secs=${((performance.now() - t0) / 1000).toFixed(1)}`);
