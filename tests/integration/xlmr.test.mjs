// xlmr.test.mjs — the one-line model switch: the daemon's semantic tier on
// BERT and XLM-RoBERTa sentence encoders (`--embed-backend bert
// --embed-model-path DIR`), real daemon, mock upstream; and the same options
// in the tools.
//
// The models are the random-weight ones tests/unit/test_embed_bert.c builds
// under $LLMCACHED_BUILD/bert-ref and xlmr-ref (make_ref.py,
// make_xlmr_ref.py; the unit tests run first). Random weights make cosine
// meaningless between different questions, so the hit asserted is between
// texts the tokenizer maps to the same ids, which the exact tier keeps apart:
// the request reached the tokenizer and encoder inside the daemon.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, startDaemon, request, buildDir } from './helpers.mjs';

const refDir = path.join(buildDir(), 'xlmr-ref');
const have = fs.existsSync(path.join(refDir, 'e5-bf16', 'model.safetensors')) &&
  fs.existsSync(path.join(buildDir(), 'bert-ref', 'cls-f16', 'model.safetensors'));
const skip = have ? false : `no XLM-R fixtures in ${refDir} (the bert unit test builds them with python3-torch)`;

let mock;
const ask = (d, content) =>
  request(`${d.url}/chat/completions`, {
    headers: { authorization: 'Bearer sk-xlmr' },
    body: { model: 'mock-gpt', messages: [{ role: 'user', content }] },
  });
const status = (r) => r.headers.get('x-llm-cache');

before(async () => {
  if (skip) return;
  mock = await startMock();
});
after(async () => {
  if (skip) return;
  await mock.close();
});

// One line switches the encoder: a BERT (uncased, CLS pooling as BGE's), an
// XLM-R with only tokenizer.json (our Unigram reader), and an E5-style XLM-R
// with its "query: " prompt and sentencepiece.bpe.model (libsentencepiece).
// For each,
// two texts its tokenizer maps to the same ids (letter case for the uncased
// BERT, NFKC's full-width '？' for the XLM-R ones) hit semantically, which
// only the encoder can make happen (the exact tier keeps them apart), and
// another question misses.
const bertDir = path.join(buildDir(), 'bert-ref');
const models = [
  { dir: path.join(bertDir, 'cls-f16'), name: /^bert:cls-f16@[0-9a-f]{16}$/,
    a: 'Which river is the longest in Europe', b: 'WHICH river IS the longest in Europe', q: '?', q2: '?' },
  { dir: path.join(refDir, 'xlmr-json-f16'), name: /^bert:xlmr-json-f16@[0-9a-f]{16}$/,
    a: 'Какая река самая длинная в Европе', b: 'Какая река самая длинная в Европе', q: '?', q2: '？' },
  // bert:<folder>@<weights hash>+p<prompt hash>: E5's "query: " from its config
  { dir: path.join(refDir, 'e5-bf16'), name: /^bert:e5-bf16@[0-9a-f]{16}\+p[0-9a-f]{8}$/,
    a: 'Welcher Fluss ist der längste in Europa', b: 'Welcher Fluss ist der längste in Europa', q: '?', q2: '？' },
];

for (const m of models) {
  test(`make run ARGS="--embed-backend bert --embed-model-path ${path.basename(m.dir)}": the semantic tier runs on it`, { skip }, async () => {
    const d = await startDaemon({
      upstream: mock.url,
      // 0.899 + the short-text boost (0.10): a hit needs cosine >= 0.999
      args: ['--embed-backend', 'bert', '--embed-model-path', m.dir, '--semantic-threshold', '0.899'],
    });
    try {
      const st = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
      assert.match(st.semantic.model, m.name);
      const a = await ask(d, `${m.a} ${process.pid}${m.q}`);
      assert.equal(status(a), 'MISS');
      const b = await ask(d, `${m.b} ${process.pid}${m.q2}`);
      assert.equal(status(b), 'HIT-SEMANTIC');
      assert.ok(Number(b.headers.get('x-llm-cache-similarity')) >= 0.9999);
      const c = await ask(d, `How do I cook brown rice in a pot ${process.pid}?`);
      assert.equal(status(c), 'MISS');
    } finally {
      const r = await d.stop();
      assert.equal(r.code, 0, r.output.slice(-2000));
    }
  });
}

test('a model directory that is not a model leaves the daemon up without the semantic tier', { skip }, async () => {
  const bad = await startDaemon({
    upstream: mock.url,
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
  assert.match(ev.stdout + ev.stderr, /encoder bert:e5-bf16@[0-9a-f]{16}\+p[0-9a-f]{8}/);
  fs.rmSync(dir, { recursive: true, force: true });
});
