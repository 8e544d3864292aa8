// xlmr.test.mjs — the one-line model switch: the daemon's semantic tier on
// an XLM-RoBERTa sentence encoder (`--embed-backend bert --embed-model-path
// DIR`), real daemon, mock upstream.
//
// The models are the random-weight ones tests/unit/test_embed_bert.c builds
// under $LLMCACHED_BUILD/xlmr-ref (tests/embed_bert/make_xlmr_ref.py; the
// unit tests run first). Random weights make cosine meaningless between
// different questions, so the hit asserted is between texts the tokenizer
// maps to the same ids (NFKC: a full-width question mark and letters), which
// the exact tier keeps apart: the request reached the XLM-R tokenizer and
// encoder inside the daemon.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, startDaemon, request, buildDir } from './helpers.mjs';

const refDir = path.join(buildDir(), 'xlmr-ref');
const have = fs.existsSync(path.join(refDir, 'e5-bf16', 'model.safetensors'));
const skip = have ? false : `no XLM-R fixtures in ${refDir} (the bert unit test builds them with python3-torch)`;

let mock, d;
const ask = (content, headers = {}) =>
  request(`${d.url}/chat/completions`, {
    headers: { authorization: 'Bearer sk-xlmr', ...headers },
    body: { model: 'mock-gpt', messages: [{ role: 'user', content }] },
  });
const status = (r) => r.headers.get('x-llm-cache');

before(async () => {
  if (skip) return;
  mock = await startMock();
  d = await startDaemon({
    upstream: mock.url,
    // 0.899 + the short-text boost (0.10): a hit needs cosine >= 0.999
    args: ['--embed-backend', 'bert', '--embed-model-path', path.join(refDir, 'e5-bf16'),
      '--semantic-threshold', '0.899'],
  });
});
after(async () => {
  if (skip) return;
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, r.output.slice(-2000));
});

test('an XLM-R model with a prompt is the semantic tier\'s encoder', { skip }, async () => {
  const st = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
  // bert:<folder>@<weights hash>+p<prompt hash>: E5's "query: " from its config
  assert.match(st.semantic.model, /^bert:e5-bf16@[0-9a-f]{16}\+p[0-9a-f]{8}$/);
});

test('texts NFKC makes equal hit semantically; another question misses', { skip }, async () => {
  const a = await ask(`Какая река самая длинная в Европе ${process.pid}?`);
  assert.equal(status(a), 'MISS');
  const b = await ask(`Какая река самая длинная в Европе ${process.pid}？`); // U+FF1F
  assert.equal(status(b), 'HIT-SEMANTIC');
  assert.ok(Number(b.headers.get('x-llm-cache-similarity')) >= 0.9999);
  const c = await ask(`Wie ist das Wetter morgen ${process.pid}?`);
  assert.equal(status(c), 'MISS');
});

test('a model directory that is not a model leaves the daemon up without the semantic tier', { skip }, async () => {
  const m2 = await startMock();
  const bad = await startDaemon({
    upstream: m2.url,
    args: ['--embed-backend', 'bert', '--embed-model-path', path.join(refDir, 'no-such-model')],
  });
  try {
    const q = `what is the weather ${process.pid}`;
    const r = await request(`${bad.url}/chat/completions`, {
      headers: { authorization: 'Bearer sk-xlmr' },
      body: { model: 'mock-gpt', messages: [{ role: 'user', content: q }] },
    });
    assert.equal(r.status, 200);
    assert.match(bad.output(), /semantic tier off: embedder 'bert'.*no-such-model/);
  } finally {
    const r = await bad.stop();
    await m2.close();
    assert.equal(r.code, 0);
  }
});

// The same option string drives the tools: llmcached-embed (vectors, --eval)
// and llmcached-semantic-eval (what `make eval-semantic EMBED=...` runs).
test('llmcached-embed and llmcached-semantic-eval take the daemon\'s --embed-* options', { skip }, async () => {
  const { spawnSync } = await import('node:child_process');
  const opts = ['--embed-backend', 'bert', '--embed-model-path', path.join(refDir, 'e5-bf16')];
  const texts = 'Какая река самая длинная?\nКакая река самая длинная？\nWie ist das Wetter morgen?\n';
  const r = spawnSync(path.join(buildDir(), 'llmcached-embed'), [...opts, '--cosine'], { input: texts, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(m.length, 3);
  assert.ok(m[0][1] > 0.999999); // NFKC twins: the same ids
  assert.ok(m[0][2] < 0.9999);
  // "" switches the model's prompt off: other vectors, other cosines
  const r2 = spawnSync(path.join(buildDir(), 'llmcached-embed'), [...opts, '--embed-query-prefix', '', '--cosine'], { input: texts, encoding: 'utf8' });
  assert.equal(r2.status, 0, r2.stderr);
  assert.notEqual(JSON.parse(r2.stdout.split('\n')[0])[2], m[0][2]);
  const bad = spawnSync(path.join(buildDir(), 'llmcached-embed'), ['--embed-backend', 'bert', '--embed-model-path', path.join(refDir, 'no-such-model')], { input: 'x\n', encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /cannot open the bert embedder/);

  const dir = fs.mkdtempSync(path.join(buildDir(), 'xlmr-eval-'));
  const pairs = path.join(dir, 'pairs.jsonl');
  fs.writeFileSync(pairs, [
    { a: 'Какая река самая длинная в Европе?', b: 'Какая река самая длинная в Европе？', label: 1 },
    { a: 'Wie ist das Wetter morgen in Berlin?', b: 'Wie ist das Wetter heute in Berlin?', label: 0 },
  ].map((o) => JSON.stringify(o)).join('\n') + '\n');
  const ev = spawnSync(path.join(buildDir(), 'llmcached-semantic-eval'), ['--file', pairs, '--thresholds', '0.9', '--lexicon', 'none', ...opts], { encoding: 'utf8' });
  assert.equal(ev.status, 0, ev.stderr);
  assert.match(ev.stdout + ev.stderr, /encoder:? bert:e5-bf16@[0-9a-f]{16}\+p[0-9a-f]{8}/);
  fs.rmSync(dir, { recursive: true, force: true });
});
