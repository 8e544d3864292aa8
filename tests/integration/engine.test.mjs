// engine.test.mjs — black-box tests of llmcached-engine with the official
// openai client: completions and chat (streaming and not), /tokenize,
// /metrics with vLLM's names, cached_tokens, identical output with prefix
// caching on and off, OpenAI-style errors, the context-length 400.
// (The prefill time a prefix hit saves is measured by bench/prefix/prefill.c.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';

const BUILD = process.env.LLMCACHED_BUILD || path.resolve('build/rel');
const DATA = process.env.LLMC_SHARED_DATA || path.resolve('../shared/data');
const MODEL = path.join(DATA, 'models/stories260K.bin');
const TOK = path.join(DATA, 'models/tok512.bin');
const BIN = path.join(BUILD, 'llmcached-engine');
const haveAll = existsSync(MODEL) && existsSync(TOK) && existsSync(BIN);
const skip = haveAll ? false : `skip: needs ${BIN} and the test model in ${DATA}/models`;

async function startEngine(extra = []) {
  const p = spawn(BIN, ['--model', MODEL, '--tokenizer', TOK, '--listen', '127.0.0.1:0',
    '--workers', '3', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('engine did not start: ' + err)), 20000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    p.on('exit', (code) => { clearTimeout(t); reject(new Error(`engine exited ${code}: ${err}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'test', maxRetries: 0, timeout: 60000 });
  return { proc: p, base, client, stderr: () => err };
}

async function stopEngine(e) {
  if (!e || e.proc.exitCode !== null) return;
  const done = new Promise((r) => e.proc.on('exit', r));
  e.proc.kill('SIGTERM');
  await done;
}

async function metrics(base) {
  const txt = await (await fetch(base + '/metrics')).text();
  const m = {};
  for (const line of txt.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
}
const L = '{model_name="stories260K"}';

async function post(base, p, body, raw = false) {
  const r = await fetch(base + p, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: raw ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

let eng;
before(async () => { if (haveAll) eng = await startEngine(); });
after(async () => { await stopEngine(eng); });

const SYSTEM = 'Once upon a time, there was a little dog named Max. Max liked to run in the park '
  + 'with his friend Tim. One day, Max found a big red ball under a tree. He was very happy. '
  + 'Tim and Max played with the ball all day long, and then they went home to sleep. ';

test('completion at temperature 0 tells the story of Lily', { skip }, async () => {
  const r = await eng.client.completions.create({ model: 'stories260K', prompt: 'Once upon a time',
    max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.match(r.choices[0].text, /^, there was a little girl named Lily\./);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.prompt_tokens, 5);
  assert.equal(r.usage.completion_tokens, 40);
  assert.equal(r.usage.total_tokens, 45);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('streamed completion equals the non-streamed one, with usage at the end', { skip }, async () => {
  const args = { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 30, temperature: 0 };
  const full = await eng.client.completions.create(args);
  const stream = await eng.client.completions.create({ ...args, stream: true,
    stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) { text += ch.text; if (ch.finish_reason) finish = ch.finish_reason; }
  }
  assert.ok(chunks > 5);
  assert.equal(text, full.choices[0].text);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 30);
  assert.equal(usage.prompt_tokens, 5);
});

test('chat completion, streaming and not, agree', { skip }, async () => {
  const args = { model: 'stories260K', temperature: 0, max_tokens: 25,
    messages: [{ role: 'system', content: 'You tell stories.' },
      { role: 'user', content: 'Tell me about a cat.' }] };
  const full = await eng.client.chat.completions.create(args);
  assert.equal(full.object, 'chat.completion');
  assert.equal(full.choices[0].message.role, 'assistant');
  assert.ok(full.choices[0].message.content.length > 0);
  const stream = await eng.client.chat.completions.create({ ...args, stream: true });
  let text = '', role = null, finish = null;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    for (const ch of c.choices) {
      if (ch.delta.role) role = ch.delta.role;
      text += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, 'length');
  // /tokenize over messages gives the prompt token count the usage reports
  const t = await post(eng.base, '/tokenize', { messages: args.messages });
  assert.equal(t.status, 200);
  assert.equal(t.body.count, full.usage.prompt_tokens);
});

test('stop strings end the text before the stop', { skip }, async () => {
  const r = await eng.client.completions.create({ model: 'stories260K', prompt: 'Once upon a time',
    max_tokens: 40, temperature: 0, stop: [' Lily'] });
  assert.equal(r.choices[0].text, ', there was a little girl named');
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('/tokenize returns the ids and the context size', { skip }, async () => {
  const t = await post(eng.base, '/tokenize', { prompt: 'Once upon a time' });
  assert.equal(t.status, 200);
  assert.deepEqual(t.body.tokens, [1, 403, 407, 261, 378]);
  assert.equal(t.body.count, 5);
  assert.equal(t.body.max_model_len, 512);
  const d = await post(eng.base, '/detokenize', { tokens: t.body.tokens });
  assert.equal(d.body.prompt, 'Once upon a time');
});

test('a repeated prefix is served from cached blocks and the metrics move', { skip }, async () => {
  const prompt = SYSTEM + 'Tim said';
  const t = await post(eng.base, '/tokenize', { prompt });
  const n = t.body.count;
  assert.ok(n > 48);
  const m0 = await metrics(eng.base);
  const args = { model: 'stories260K', prompt, max_tokens: 20, temperature: 0 };
  const a = await eng.client.completions.create(args);
  assert.equal(a.usage.prompt_tokens, n);
  assert.equal(a.usage.prompt_tokens_details.cached_tokens, 0);
  const b = await eng.client.completions.create(args);
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, Math.floor((n - 1) / 16) * 16);
  assert.equal(b.choices[0].text, a.choices[0].text);
  // another question after the same system text reuses its blocks
  const c = await eng.client.completions.create({ ...args, prompt: SYSTEM + 'The ball was' });
  assert.ok(c.usage.prompt_tokens_details.cached_tokens >= 48);
  const m1 = await metrics(eng.base);
  const q = 'vllm:prefix_cache_queries_total' + L, h = 'vllm:prefix_cache_hits_total' + L;
  assert.equal(m1[q] - m0[q], n + n + c.usage.prompt_tokens);
  assert.equal(m1[h] - m0[h], b.usage.prompt_tokens_details.cached_tokens
    + c.usage.prompt_tokens_details.cached_tokens);
  const ttft = 'vllm:time_to_first_token_seconds_count' + L;
  assert.equal(m1[ttft] - m0[ttft], 3);
  assert.ok(m1['vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="stories260K"}'] >= 3);
  assert.equal(m1['vllm:num_requests_running' + L], 0);
  const usage = m1['vllm:kv_cache_usage_perc' + L];
  assert.ok(usage >= 0 && usage <= 1);
  assert.equal(m1['vllm:generation_tokens_total' + L] - m0['vllm:generation_tokens_total' + L], 60);
});

test('cache_salt keeps tenants apart', { skip }, async () => {
  const args = { model: 'stories260K', prompt: SYSTEM + 'Mom said', max_tokens: 4, temperature: 0 };
  const a = await eng.client.completions.create({ ...args, cache_salt: 'tenant-a' });
  const a2 = await eng.client.completions.create({ ...args, cache_salt: 'tenant-a' });
  const b = await eng.client.completions.create({ ...args, cache_salt: 'tenant-b' });
  assert.ok(a2.usage.prompt_tokens_details.cached_tokens >= 48);
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal(b.choices[0].text, a.choices[0].text);
});

test('concurrent requests sharing a prefix give the sequential answers', { skip }, async () => {
  const qs = ['Tim said', 'The ball was', 'Then the sun', 'Max barked and', 'The tree was',
    'Mom called', 'A bird sang', 'The park was'];
  const one = (q) => eng.client.completions.create({ model: 'stories260K', prompt: SYSTEM + q,
    max_tokens: 24, temperature: 0 });
  const seq = [];
  for (const q of qs) seq.push((await one(q)).choices[0].text);
  const par = await Promise.all(qs.map(one));
  assert.deepEqual(par.map((r) => r.choices[0].text), seq);
  for (const r of par) assert.ok(r.usage.prompt_tokens_details.cached_tokens >= 48);
  const m = await metrics(eng.base);
  assert.equal(m['vllm:num_requests_running' + L], 0);
  assert.equal(m['vllm:kv_cache_usage_perc' + L], 0);
});

test('identical tokens with prefix caching on and off', { skip }, async () => {
  const off = await startEngine(['--no-prefix-caching', '--num-blocks', '20']);
  try {
    for (const q of ['Tim said', 'The ball was', 'Tim said']) {
      const args = { model: 'stories260K', prompt: SYSTEM + q, max_tokens: 30, temperature: 0 };
      const a = await eng.client.completions.create(args);
      const b = await off.client.completions.create(args);
      assert.equal(a.choices[0].text, b.choices[0].text);
      assert.equal(b.usage.prompt_tokens_details.cached_tokens, 0);
    }
    const m = await metrics(off.base);
    assert.equal(m['vllm:prefix_cache_hits_total' + L], 0);
    // 20 blocks of 16 = 320 tokens: a request that could outgrow the pool is a 400
    await assert.rejects(off.client.completions.create({ model: 'stories260K',
      prompt: SYSTEM + SYSTEM, max_tokens: 200 }),
    (e) => e.status === 400 && /KV blocks/.test(e.message));
  } finally {
    await stopEngine(off);
  }
  assert.doesNotMatch(off.stderr(), /Sanitizer|runtime error/);
  assert.equal(off.proc.exitCode, 0);
});

test('bad requests get OpenAI-style errors', { skip }, async () => {
  const bad = async (p, body, status, param) => {
    const r = await post(eng.base, p, body, typeof body === 'string');
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(typeof r.body.error.message, 'string');
    assert.equal(typeof r.body.error.type, 'string');
    if (param !== undefined) assert.equal(r.body.error.param, param);
  };
  await bad('/v1/completions', '{"prompt": ', 400);
  await bad('/v1/completions', '[1,2]', 400);
  await bad('/v1/completions', { max_tokens: 3 }, 400, 'prompt');
  await bad('/v1/completions', { prompt: 'hi', temperature: 7 }, 400, 'temperature');
  await bad('/v1/completions', { prompt: 'hi', max_tokens: 0 }, 400, 'max_tokens');
  await bad('/v1/completions', { prompt: 'hi', n: 3 }, 400, 'n');
  await bad('/v1/completions', { prompt: [1, 2, 99999] }, 400, 'prompt');
  await bad('/v1/completions', { prompt: 'hi', model: 'gpt-9' }, 404, 'model');
  await bad('/v1/chat/completions', { messages: [] }, 400, 'messages');
  await bad('/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages');
  await bad('/v1/nothing', {}, 404);
  const g = await fetch(eng.base + '/v1/completions');
  assert.equal(g.status, 405);
  // through the official client: a typed error with the status
  await assert.rejects(eng.client.completions.create({ model: 'stories260K', prompt: 'x',
    temperature: 9 }), (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
});

test('a prompt longer than the context gets a clear 400', { skip }, async () => {
  const long = 'The dog ran to the park and played with the ball. '.repeat(80);
  await assert.rejects(eng.client.completions.create({ model: 'stories260K', prompt: long,
    max_tokens: 5 }), (e) => e.status === 400 && /maximum context length is 512 tokens/.test(e.message));
  await assert.rejects(eng.client.chat.completions.create({ model: 'stories260K',
    messages: [{ role: 'user', content: long }] }),
  (e) => e.status === 400 && /maximum context length/.test(e.message));
  // fits, but not with the completion asked for
  await assert.rejects(eng.client.completions.create({ model: 'stories260K', prompt: 'Once',
    max_tokens: 600 }), (e) => e.status === 400 && /maximum context length/.test(e.message));
  // a huge prompt is refused before it is tokenized
  const t0 = performance.now();
  await assert.rejects(eng.client.completions.create({ model: 'stories260K',
    prompt: 'abc def '.repeat(40000), max_tokens: 5 }),
  (e) => e.status === 400 && /maximum context length/.test(e.message));
  assert.ok(performance.now() - t0 < 5000);
  // the engine is still healthy
  assert.equal((await fetch(eng.base + '/health')).status, 200);
  const models = await eng.client.models.list();
  assert.equal(models.data[0].id, 'stories260K');
});

test('a client that goes away mid-stream cancels its request', { skip }, async () => {
  const ac = new AbortController();
  const stream = await eng.client.chat.completions.create({ model: 'stories260K', temperature: 0, max_tokens: 400, stream: true,
    messages: [{ role: 'user', content: 'Tell me a long story.' }] }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of stream) { if (++n === 3) ac.abort(); }
  } catch (e) {
    assert.ok(ac.signal.aborted, String(e));
  }
  assert.ok(n >= 3);
  // the engine notices, frees the request's blocks and keeps serving
  let m;
  for (let i = 0; i < 100; i++) {
    m = await metrics(eng.base);
    if (m['vllm:num_requests_running' + L] === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(m['vllm:num_requests_running' + L], 0);
  assert.equal(m['vllm:kv_cache_usage_perc' + L], 0);
  const r = await eng.client.completions.create({ model: 'stories260K', prompt: 'Once upon a time',
    max_tokens: 5, temperature: 0 });
  assert.equal(r.usage.completion_tokens, 5);
});

test('the engine shuts down cleanly on SIGTERM (no sanitizer reports)', { skip }, async () => {
  const code = new Promise((r) => eng.proc.on('exit', (c, sig) => r([c, sig])));
  eng.proc.kill('SIGTERM');
  const [c, sig] = await code;
  assert.doesNotMatch(eng.stderr(), /Sanitizer|runtime error/);
  assert.equal(sig, null);
  assert.equal(c, 0);
});
