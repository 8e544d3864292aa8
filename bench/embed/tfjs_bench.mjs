// tfjs_bench.mjs — the baseline of bench/embed: the reference TensorFlow.js
// run of USE lite (the same model files, the tokenizer of
// @tensorflow-models/universal-sentence-encoder@1.3.3, the wasm backend),
// measured exactly as bench_embed.c measures the C encoder.
//
//   node tfjs_bench.mjs MODEL_DIR TEXTS_FILE [--backend wasm|cpu] [--threads N]
//                       [--long FILE]
//
// Prints "RESULT tfjs_single ...", "RESULT tfjs_batch32 ..." and, with
// --long (one 25-35-word text a line), "RESULT tfjs_long ..." lines (short
// queries = texts of <= 16 tokens, as in bench_embed.c).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import * as tfconv from '@tensorflow/tfjs-converter';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('@tensorflow-models/universal-sentence-encoder/dist/tokenizer/index.js');

const [dir, textsFile] = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const backend = opt('--backend', 'wasm');
const threads = Number(opt('--threads', '1'));

if (backend === 'wasm' && wasm.setThreadsCount) wasm.setThreadsCount(threads);
await tf.setBackend(backend);
await tf.ready();

const manifest = JSON.parse(readFileSync(`${dir}/model.json`, 'utf8'));
const specs = [];
const bufs = [];
for (const g of manifest.weightsManifest) {
  specs.push(...g.weights);
  for (const p of g.paths) bufs.push(readFileSync(`${dir}/${p}`));
}
const all = Buffer.concat(bufs);
const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
const model = await tfconv.loadGraphModel(
  tf.io.fromMemory({ modelTopology: manifest.modelTopology, weightSpecs: specs, weightData }));
const tokenizer = new Tokenizer(JSON.parse(readFileSync(`${dir}/vocab.json`, 'utf8')));

async function embed(texts) {
  const enc = texts.map((t) => tokenizer.encode(t));
  const idx = [];
  enc.forEach((ids, i) => ids.forEach((_, j) => idx.push([i, j])));
  const indices = tf.tensor2d(idx, [idx.length, 2], 'int32');
  const values = tf.tensor1d(enc.flat(), 'int32');
  const out = await model.executeAsync({ indices, values });
  const data = await out.data();
  indices.dispose();
  values.dispose();
  out.dispose();
  return data;
}

const texts = readFileSync(textsFile, 'utf8').split('\n').filter((s) => s.length);
const short = texts.filter((t) => tokenizer.encode(t).length <= 16);
const pct = (v, p) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.round(p * (s.length - 1))];
};
for (let i = 0; i < Math.min(20, short.length); i++) await embed([short[i]]); // warm-up

// process CPU time (user + system) in ms: the machine may be shared
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const lat = [];
const cpu = [];
let t0 = performance.now();
let c0 = cpuMs();
for (const t of short) {
  const a = performance.now();
  const ca = cpuMs();
  await embed([t]);
  lat.push(performance.now() - a);
  cpu.push(cpuMs() - ca);
}
let secs = (performance.now() - t0) / 1e3;
let csecs = (cpuMs() - c0) / 1e3;
console.log(`RESULT tfjs_single n=${short.length} p50_ms=${pct(lat, 0.5).toFixed(3)} ` +
  `p99_ms=${pct(lat, 0.99).toFixed(3)} per_s=${(short.length / secs).toFixed(1)} ` +
  `cpu_p50_ms=${pct(cpu, 0.5).toFixed(3)} per_cpu_s=${(short.length / csecs).toFixed(1)}`);

const blat = [];
const bcpu = [];
let nb = 0;
t0 = performance.now();
c0 = cpuMs();
for (let i = 0; i + 32 <= texts.length; i += 32) {
  const a = performance.now();
  const ca = cpuMs();
  await embed(texts.slice(i, i + 32));
  blat.push(performance.now() - a);
  bcpu.push(cpuMs() - ca);
  nb++;
}
secs = (performance.now() - t0) / 1e3;
csecs = (cpuMs() - c0) / 1e3;
console.log(`RESULT tfjs_batch32 n=${nb * 32} p50_ms=${pct(blat, 0.5).toFixed(3)} ` +
  `p99_ms=${pct(blat, 0.99).toFixed(3)} per_s=${(nb * 32 / secs).toFixed(1)} ` +
  `cpu_p50_ms=${pct(bcpu, 0.5).toFixed(3)} per_cpu_s=${(nb * 32 / csecs).toFixed(1)}`);
const longFile = opt('--long', '');
if (longFile) {
  const longs = readFileSync(longFile, 'utf8').split('\n').filter((s) => s.length);
  const llat = [];
  const lcpu = [];
  for (const t of longs) {
    await embed([t]); // as bench_embed.c: each text once to warm, then timed
    const a = performance.now();
    const ca = cpuMs();
    await embed([t]);
    llat.push(performance.now() - a);
    lcpu.push(cpuMs() - ca);
  }
  console.log(`RESULT tfjs_long n=${longs.length} p50_ms=${pct(llat, 0.5).toFixed(3)} ` +
    `p99_ms=${pct(llat, 0.99).toFixed(3)} cpu_p50_ms=${pct(lcpu, 0.5).toFixed(3)}`);
}
console.log(`INFO tfjs backend=${tf.getBackend()} threads=${threads} tfjs-core=${tf.version_core}`);
