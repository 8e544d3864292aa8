// kvevents.test.mjs — the KV prefix tier's event path, black box: an
// llmcached-engine publishing vLLM-format KV events (--kv-events), read by an
// independent decoder (kv_events_sub.py: pyzmq + msgpack-python), and
// checked against the engine's own /tokenize and the block-hash rule of
// include/llmcache.h computed here with node's crypto (not our C code).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKvEngine, stopProc, haveEngine, ENGINE, MODEL, TOK } from './kvengine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SUB = path.join(here, 'kv_events_sub.py');
// Debian's interpreter, where python3-zmq and python3-msgpack install (a
// python3 earlier on PATH, e.g. pyenv's, would not see them)
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const havePy = spawnSync(PY, ['-c', 'import zmq, msgpack']).status === 0;
const skip = haveEngine && havePy ? false : `skip: needs ${ENGINE}, the test model and python3-zmq/msgpack`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const startEngine = (extra) => startKvEngine(['--workers', '2', ...extra]);

// The independent subscriber: collects decoded batches.
async function subscribe(e) {
  const p = spawn(PY, [SUB, e.pub, e.replay], { stdio: ['pipe', 'pipe', 'pipe'] });
  const s = { proc: p, batches: [], replayed: [], replayEnd: 0, err: '' };
  let buf = '';
  p.stderr.on('data', (d) => { s.err += d; });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('subscriber did not start: ' + s.err)), 10000);
    p.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (o.ready) { clearTimeout(t); resolve(); }
        else if (o.replay_end) s.replayEnd++;
        else if (o.replay !== undefined) s.replayed.push(o);
        else s.batches.push(o);
      }
    });
  });
  await sleep(300); // ZeroMQ's slow joiner: the subscription reaches the PUB socket
  return s;
}

async function post(base, p, body) {
  const r = await fetch(base + p, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}

// include/llmcache.h's block hash v1, written again here.
function blockHash(parent, tokens) {
  const b = Buffer.alloc(8 + 32 + 4 + 4 * tokens.length + 8);
  b.write('LLMCKV1', 0, 'latin1');
  if (parent) parent.copy(b, 8);
  b.writeUInt32LE(tokens.length, 40);
  tokens.forEach((t, i) => b.writeInt32LE(t, 44 + 4 * i));
  return createHash('sha256').update(b).digest();
}
export function chainHashes(tokens, B) {
  const out = [];
  let parent = null;
  for (let i = 0; i + B <= tokens.length; i += B) {
    parent = blockHash(parent, tokens.slice(i, i + B));
    out.push(parent.readBigUInt64BE(24)); // the wire's int hash: last 8 bytes
  }
  return out;
}

const events = (s, type) => s.batches.flatMap((b) => b.events).filter((e) => e.type === type);
async function until(f, ms = 10000) {
  const t0 = Date.now();
  while (!f()) { if (Date.now() - t0 > ms) return false; await sleep(20); }
  return true;
}

const PROMPT = 'Once upon a time, there was a little dog named Max. Max liked to run in the park '
  + 'with his friend Tim. One day, Max found a big red ball under a tree.';

let eng, sub;
before(async () => { if (!skip) { eng = await startEngine(['--num-blocks', '24']); sub = await subscribe(eng); } });
after(async () => { if (sub) sub.proc.stdin.end(); await stopProc(sub?.proc); await stopProc(eng?.proc); });

test('BlockStored carries the prompt blocks: hashes = block-hash rule over /tokenize', { skip }, async () => {
  const tok = await post(eng.base, '/tokenize', { prompt: PROMPT });
  assert.equal(tok.status, 200);
  const tokens = tok.body.tokens;
  const want = chainHashes(tokens, 16);
  assert.ok(want.length >= 2, `prompt of ${tokens.length} tokens has 2+ full blocks`);
  const r = await post(eng.base, '/v1/completions', { prompt: PROMPT, max_tokens: 4, temperature: 0 });
  assert.equal(r.status, 200);
  assert.ok(await until(() => events(sub, 'BlockStored').length > 0), 'no BlockStored: ' + sub.err);
  const stored = events(sub, 'BlockStored');
  const first = stored[0];
  assert.equal(first.parent_block_hash, null);
  assert.equal(first.block_size, 16);
  assert.equal(first.medium, 'GPU');
  assert.equal(first.lora_id, null);
  const got = stored.flatMap((e) => e.block_hashes).map(BigInt);
  assert.deepEqual(got.slice(0, want.length), want);
  assert.deepEqual(first.token_ids.slice(0, want.length * 16), tokens.slice(0, want.length * 16));
  assert.equal(first.token_ids.length, 16 * first.block_hashes.length);
  // batches: dp_rank 0, sequence numbers 0, 1, 2, ... with no gap
  sub.batches.forEach((b, i) => { assert.equal(b.seq, i); assert.equal(b.dp_rank, 0); });
});

test('eviction publishes BlockRemoved for blocks that were stored; reset publishes AllBlocksCleared', { skip }, async () => {
  // 24 blocks in the pool: a few other long prompts push the first one out
  for (let i = 0; i < 6; i++) {
    const r = await post(eng.base, '/v1/completions', { prompt: `Tim ${i} saw a big bird in the sky and it was ${i} times blue and happy, the end of story ${i}.`, max_tokens: 24, temperature: 0 });
    assert.equal(r.status, 200);
  }
  assert.ok(await until(() => events(sub, 'BlockRemoved').length > 0), 'no BlockRemoved');
  const stored = new Set(events(sub, 'BlockStored').flatMap((e) => e.block_hashes).map(String));
  const removed = events(sub, 'BlockRemoved').flatMap((e) => e.block_hashes).map(String);
  for (const h of removed) assert.ok(stored.has(h), `removed ${h} was never stored`);
  const m = await (await fetch(eng.base + '/metrics')).text();
  const ev = Number(m.match(/kv_block_evictions_total\{[^}]*\} (\d+)/)[1]);
  assert.equal(removed.length, ev, 'one removal per eviction the engine counted');

  const r = await post(eng.base, '/reset_prefix_cache', {});
  assert.equal(r.status, 200);
  assert.ok(await until(() => events(sub, 'AllBlocksCleared').length === 1), 'no AllBlocksCleared');
  const last = sub.batches.at(-1).events.at(-1);
  assert.equal(last.type, 'AllBlocksCleared');
  const after1 = await (await fetch(eng.base + '/metrics')).text();
  assert.match(after1, /llmcached_engine:kv_blocks_cached\{[^}]*\} 0\n/);
});

test('the replay socket returns the buffered batches from a sequence number', { skip }, async () => {
  const n = sub.batches.length;
  assert.ok(n >= 3);
  sub.proc.stdin.write('replay 1\n');
  assert.ok(await until(() => sub.replayEnd === 1), 'no replay end marker');
  assert.deepEqual(sub.replayed.map((b) => b.replay), sub.batches.slice(1).map((b) => b.seq));
  assert.deepEqual(sub.replayed.map((b) => b.events), sub.batches.slice(1).map((b) => b.events));
});

test('vLLM seed metric names: cache_config_info and gpu_cache_usage_perc', { skip }, async () => {
  const m = await (await fetch(eng.base + '/metrics')).text();
  assert.match(m, /^vllm:cache_config_info\{block_size="16",enable_prefix_caching="True",num_gpu_blocks="24",model_name="stories260K"\} 1$/m);
  const a = m.match(/^vllm:gpu_cache_usage_perc\{[^}]*\} (\S+)$/m);
  const b = m.match(/^vllm:kv_cache_usage_perc\{[^}]*\} (\S+)$/m);
  assert.ok(a && b);
  assert.equal(a[1], b[1]);
});

test('bad --kv-events endpoints fail at start with a clear message', { skip }, async () => {
  const r = spawnSync(ENGINE, ['--model', MODEL, '--tokenizer', TOK, '--listen', '127.0.0.1:0',
    '--kv-events', 'http://nope'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad option --kv-events/);
  const r2 = spawnSync(ENGINE, ['--model', MODEL, '--tokenizer', TOK, '--listen', '127.0.0.1:0',
    '--kv-events', 'tcp://256.1.1.1:1'], { encoding: 'utf8' });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /--kv-events: cannot bind tcp:\/\/256\.1\.1\.1:1/);
});
