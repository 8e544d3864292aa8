// mock.test.mjs — the mock upstream checked with the official openai client.
//
// The daemon's integration tests trust the mock to speak the real protocol;
// these tests hold it to that: the SDK's own parsers (JSON, SSE stream
// iterator, base64 embeddings, error classes) must accept what it sends, and
// every control a test may use must do what mock-upstream.mjs says.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startMock, spawnMock, startDaemon, makeClient, request, parseSSE, mockSerial, freePort, sleep, tempDir } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let mock;
let client;

before(async () => {
  mock = await startMock();
  client = makeClient(mock.url);
});
after(async () => {
  await mock.close();
});
beforeEach(() => mock.reset());

const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });

/** Wait until cond() holds (polling), at most ms; returns its last value. */
async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
  return cond();
}

/** Drain an SDK stream, keeping each chunk and the time it arrived. */
async function drain(stream) {
  const chunks = [];
  const times = [];
  for await (const c of stream) {
    chunks.push(c);
    times.push(performance.now());
  }
  return { chunks, times };
}

test('chat: deterministic content, new serial per call, counted per path', async () => {
  const a = await client.chat.completions.create(chat('hello there'));
  const b = await client.chat.completions.create(chat('hello there'));
  const c = await client.chat.completions.create(chat('something else'));
  assert.equal(a.object, 'chat.completion');
  assert.equal(a.choices[0].message.role, 'assistant');
  assert.equal(a.choices[0].finish_reason, 'stop');
  assert.ok(a.usage.total_tokens > 0);
  assert.equal(mockSerial(a), 1);
  assert.equal(mockSerial(b), 2);
  assert.equal(a.mock_hash, b.mock_hash);
  assert.notEqual(a.mock_hash, c.mock_hash);
  assert.notEqual(a.id, b.id);
  assert.equal(a.choices[0].message.content.replace(/serial=\d+/, ''), b.choices[0].message.content.replace(/serial=\d+/, ''));
  assert.match(a.choices[0].message.content, /echo: hello there/);
  assert.equal(mock.stats.calls['/v1/chat/completions'], 3);
  assert.equal(mock.stats.log[0].authorization, 'Bearer sk-test-key');
});

test('chat hash ignores key order and the stream flag', async () => {
  const r1 = await request(`${mock.url}/chat/completions`, { body: '{"model":"mock-gpt","temperature":0,"messages":[{"role":"user","content":"k"}]}' });
  const r2 = await request(`${mock.url}/chat/completions`, { body: '{ "messages" : [ {"content":"k","role":"user"} ], "temperature":0, "model":"mock-gpt" }' });
  const r3 = await request(`${mock.url}/chat/completions`, { body: '{"model":"mock-gpt","temperature":0.5,"messages":[{"role":"user","content":"k"}]}' });
  assert.equal(r1.json.mock_hash, r2.json.mock_hash);
  assert.notEqual(r1.json.mock_hash, r3.json.mock_hash);
  const s = await client.chat.completions.create({ ...chat('k', { temperature: 0 }), stream: true });
  const { chunks } = await drain(s);
  assert.equal(chunks[0].mock_hash, r1.json.mock_hash);
  assert.equal(r1.headers.get('x-mock-hash'), r1.json.mock_hash);
  assert.equal(r1.headers.get('x-mock-serial'), '1');
});

test('chat stream: SDK iterator, role chunk, deltas over time, finish, usage, [DONE]', async () => {
  const whole = await client.chat.completions.create(chat('stream me [mock:chunks=5]'));
  const stream = await client.chat.completions.create({
    ...chat('stream me [mock:chunks=5]'), stream: true, stream_options: { include_usage: true },
  });
  const t0 = performance.now();
  const { chunks } = await drain(stream);
  assert.ok(performance.now() - t0 >= 0);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const deltas = chunks.filter((c) => c.choices.length && typeof c.choices[0].delta.content === 'string' && c.choices[0].delta.content !== '');
  assert.equal(deltas.length, 5);
  const text = deltas.map((c) => c.choices[0].delta.content).join('');
  assert.equal(text.replace(/serial=\d+/, ''), whole.choices[0].message.content.replace(/serial=\d+/, ''));
  const fin = chunks.find((c) => c.choices.length && c.choices[0].finish_reason);
  assert.equal(fin.choices[0].finish_reason, 'stop');
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.completion_tokens > 0);
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for all chunks');

  // Raw wire format: each event is "data: {json}\n\n", the last is [DONE].
  const raw = await request(`${mock.url}/chat/completions`, { body: { ...chat('raw'), stream: true } });
  assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
  assert.match(raw.text, /^data: \{/);
  assert.ok(raw.text.endsWith('data: [DONE]\n\n'));
  const ev = parseSSE(raw.text);
  assert.equal(ev[ev.length - 1], '[DONE]');
  assert.ok(!ev.some((e) => e !== '[DONE]' && e.usage), 'no usage chunk unless include_usage');
});

test('chat stream: chunk_delay spaces the events in time', async () => {
  const stream = await client.chat.completions.create({ ...chat('slow [mock:chunks=4] [mock:chunk_delay=40]'), stream: true });
  const { times } = await drain(stream);
  assert.ok(times.length >= 6);
  const span = times[times.length - 1] - times[0];
  // 6 events after the first, 40 ms apart: at least ~200 ms from first to last.
  assert.ok(span >= 180, `events spread over ${span.toFixed(0)} ms`);
});

test('delay control: before the first byte, from a tag or a header', async () => {
  let t = performance.now();
  await client.chat.completions.create(chat('wait [mock:delay=150]'));
  assert.ok(performance.now() - t >= 140);
  t = performance.now();
  await client.chat.completions.create(chat('wait by header'), { headers: { 'x-mock-delay': '120' } });
  assert.ok(performance.now() - t >= 110);
  assert.deepEqual(mock.stats.log[1].controls, { delay: '120' });
});

test('tool calls: non-stream message.tool_calls and streamed argument deltas', async () => {
  const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
  const r = await client.chat.completions.create(chat('call a tool [mock:tool_call]', { tools }));
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.content, null);
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].function.name, 'lookup');
  const args = JSON.parse(m.tool_calls[0].function.arguments);
  assert.equal(args.hash, r.mock_hash);

  const s = await client.chat.completions.create({ ...chat('two tools [mock:tool_call=2] [mock:chunks=3]', { tools }), stream: true });
  const { chunks } = await drain(s);
  const acc = [];
  let argDeltas = 0;
  let finish = null;
  for (const c of chunks) {
    const ch = c.choices[0];
    if (!ch) continue;
    if (ch.finish_reason) finish = ch.finish_reason;
    for (const tc of ch.delta.tool_calls || []) {
      acc[tc.index] ??= { id: '', name: '', arguments: '' };
      if (tc.id) acc[tc.index].id = tc.id;
      if (tc.function?.name) acc[tc.index].name = tc.function.name;
      if (tc.function?.arguments) { acc[tc.index].arguments += tc.function.arguments; argDeltas++; }
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(acc.length, 2);
  assert.ok(argDeltas >= 4, 'arguments split across chunks');
  for (const [i, tc] of acc.entries()) {
    assert.match(tc.id, /^call_/);
    assert.equal(tc.name, 'lookup');
    assert.equal(JSON.parse(tc.arguments).i, i);
  }
});

test('reasoning: reasoning_content in the message and as stream deltas', async () => {
  const r = await client.chat.completions.create(chat('think [mock:reasoning]'));
  assert.match(r.choices[0].message.reasoning_content, /^reasoning\[h=/);
  const { chunks } = await drain(await client.chat.completions.create({ ...chat('think [mock:reasoning]'), stream: true }));
  const reasoning = chunks.map((c) => c.choices[0]?.delta?.reasoning_content || '').join('');
  const content = chunks.map((c) => c.choices[0]?.delta?.content || '').join('');
  assert.equal(reasoning.replace(/serial=\d+/, ''), r.choices[0].message.reasoning_content.replace(/serial=\d+/, ''));
  assert.ok(content.length > 0);
  const firstContent = chunks.findIndex((c) => c.choices[0]?.delta?.content);
  const lastReasoning = chunks.findLastIndex((c) => c.choices[0]?.delta?.reasoning_content);
  assert.ok(lastReasoning < firstContent, 'reasoning precedes content');
});

test('length control and size control', async () => {
  const r = await client.chat.completions.create(chat('long [mock:length] [mock:size=5000]'));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.choices[0].message.content.length, 5000);
});

test('errors surface as APIError with the injected status and an OpenAI error body', async () => {
  await assert.rejects(client.chat.completions.create(chat('boom [mock:status=500]')), (e) => {
    assert.ok(e instanceof OpenAI.APIError);
    assert.ok(e instanceof OpenAI.InternalServerError);
    assert.equal(e.status, 500);
    assert.equal(e.type, 'server_error');
    assert.match(e.message, /mock injected status 500/);
    return true;
  });
  await assert.rejects(client.chat.completions.create({ ...chat('slow down [mock:status=429]'), stream: true }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'mock-gpt', prompt: 'x' }, { headers: { 'x-mock-status': '401' } }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(client.embeddings.create({ model: 'mock-embed', input: 'x [mock:status=503]' }),
    (e) => e instanceof OpenAI.APIError && e.status === 503);
  // Protocol errors of the mock itself are OpenAI-shaped too.
  const bad = await request(`${mock.url}/chat/completions`, { body: '{"model": "m", "messages": [' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.type, 'invalid_request_error');
  const nomsg = await request(`${mock.url}/chat/completions`, { body: { model: 'm' } });
  assert.equal(nomsg.status, 400);
  const wrong = await request(`${mock.url}/chat/completions`, { method: 'GET' });
  assert.equal(wrong.status, 405);
  const unknown = await request(`${mock.url}/nope`, { body: {} });
  assert.equal(unknown.status, 404);
  assert.equal(mock.stats.calls['/v1/chat/completions'], 4, 'injected errors and bad bodies count as calls; GET does not');
});

test('stream_error: an SSE error event mid-stream makes the SDK iterator throw', async () => {
  const s = await client.chat.completions.create({ ...chat('err [mock:stream_error] [mock:chunks=6]'), stream: true });
  let got = 0;
  await assert.rejects((async () => { for await (const _c of s) got++; })(), (e) => e instanceof OpenAI.APIError && /mock stream error/.test(e.message));
  assert.ok(got >= 1, 'some chunks arrived before the error');
});

test('drop_mid_stream: the connection dies, the SDK reports it', async () => {
  const s = await client.chat.completions.create({ ...chat('drop [mock:drop_mid_stream] [mock:chunks=6]'), stream: true });
  let got = 0;
  await assert.rejects((async () => { for await (const _c of s) got++; })());
  assert.ok(got >= 1 && got < 8, `got ${got} chunks before the drop`);
  await assert.rejects(client.chat.completions.create(chat('drop whole [mock:drop_mid_stream]')), (e) => e instanceof Error);
  assert.ok(await until(() => mock.stats.inflight === 0));
});

test('bad_json: a 200 whose body (or one stream event) is not JSON', async () => {
  const r = await request(`${mock.url}/chat/completions`, { body: chat('[mock:bad_json]') });
  assert.equal(r.status, 200);
  assert.equal(r.json, null);
  const quiet = makeClient(mock.url, { logLevel: 'off' }); // the SDK logs unparsable events
  await assert.rejects(quiet.chat.completions.create(chat('[mock:bad_json]')));
  const s = await quiet.chat.completions.create({ ...chat('[mock:bad_json]'), stream: true });
  await assert.rejects((async () => { for await (const _c of s) { /* drain */ } })());
});

/** The raw bytes of one request to the mock and how its connection ended. */
function rawExchange(content, stream) {
  return new Promise((resolve) => {
    const b = JSON.stringify(chat(content, stream ? { stream: true } : {}));
    const u = new URL(mock.url);
    const s = net.connect(Number(u.port), u.hostname);
    const got = [];
    let how = 'end';
    s.on('data', (x) => got.push(x));
    s.on('error', (e) => { how = e.code; });
    s.on('end', () => { how = 'fin'; });
    s.on('close', () => resolve({ text: Buffer.concat(got).toString('latin1'), how }));
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`);
  });
}

test('truncate_chunked: a chunked 200 cut inside a chunk, then FIN', async () => {
  for (const stream of [false, true]) {
    const r = await rawExchange('[mock:truncate_chunked] [mock:chunks=6]', stream);
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(r.text, /\r\ntransfer-encoding: chunked\r\n/i);
    assert.equal(r.how, 'fin');
    // Walk the chunks: the last one announced is longer than what came.
    let rest = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
    let cut = false;
    while (rest.length) {
      const m = /^([0-9a-f]+)\r\n/.exec(rest);
      assert.ok(m, `a chunk header expected: ${rest.slice(0, 40)}`);
      const n = parseInt(m[1], 16);
      assert.ok(n > 0, 'no terminating zero chunk');
      rest = rest.slice(m[0].length);
      if (rest.length < n + 2) { cut = true; assert.ok(rest.length > 0 && rest.length < n); break; }
      rest = rest.slice(n + 2);
    }
    assert.ok(cut, 'the body ends inside a chunk');
  }
});

test('reset_mid_stream: half the answer, then a TCP reset', async () => {
  for (const stream of [false, true]) {
    const r = await rawExchange('[mock:reset_mid_stream] [mock:chunks=6]', stream);
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.equal(r.how, 'ECONNRESET');
    assert.ok(!r.text.includes('[DONE]'));
  }
});

test('hang and stall: nothing (more) is sent until the client gives up; in-flight is counted', async () => {
  const hold = new AbortController();
  let settled = false;
  const p = client.chat.completions.create(chat('never [mock:hang]'), { signal: hold.signal }).finally(() => { settled = true; });
  p.catch(() => {}); // awaited below; keep a failed assertion from leaving it unhandled
  assert.ok(await until(() => mock.stats.inflight === 1), 'the call reached the mock');
  await sleep(200);
  assert.equal(settled, false, 'no answer');
  hold.abort();
  await assert.rejects(p, (e) => e instanceof OpenAI.APIUserAbortError);
  assert.ok(await until(() => mock.stats.inflight === 0), 'client gone: the hanging call is over');
  // The SDK's own timeout ends such a call too.
  const short = makeClient(mock.url, { timeout: 200 });
  await assert.rejects(short.chat.completions.create(chat('never again [mock:hang]')), (e) => e instanceof OpenAI.APIConnectionTimeoutError);

  const ac = new AbortController();
  const r = await fetch(`${mock.url}/chat/completions`, {
    method: 'POST', body: JSON.stringify({ ...chat('[mock:stall_mid_stream] [mock:chunks=6]'), stream: true }), signal: ac.signal,
  });
  const reader = r.body.getReader();
  let text = '';
  const readMore = async () => { const { value } = await reader.read(); text += Buffer.from(value).toString(); };
  await readMore();
  const more = await Promise.race([readMore().then(() => 'more'), sleep(150).then(() => 'stalled')]);
  if (more === 'more') await Promise.race([readMore(), sleep(150)]);
  assert.ok(text.startsWith('data: '));
  assert.ok(!text.includes('[DONE]'), 'a stalled stream never finishes');
  ac.abort();
});

test('completions: text_completion, stream and not', async () => {
  const r = await client.completions.create({ model: 'mock-gpt', prompt: 'Once upon a time' });
  assert.equal(r.object, 'text_completion');
  assert.match(r.choices[0].text, /echo: Once upon a time/);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const { chunks } = await drain(await client.completions.create({
    model: 'mock-gpt', prompt: 'Once upon a time', stream: true, stream_options: { include_usage: true },
  }));
  const text = chunks.map((c) => c.choices[0]?.text || '').join('');
  assert.equal(text.replace(/serial=\d+/, ''), r.choices[0].text.replace(/serial=\d+/, ''));
  assert.ok(chunks.length >= 5);
  assert.ok(chunks[chunks.length - 1].usage);
  assert.equal(mock.stats.calls['/v1/completions'], 2);
});

test('embeddings: deterministic unit vectors, float and base64 agree', async () => {
  const f = await client.embeddings.create({ model: 'mock-embed', input: ['alpha', 'beta'], encoding_format: 'float' });
  const b = await client.embeddings.create({ model: 'mock-embed', input: ['alpha', 'beta'] }); // SDK asks for base64
  assert.equal(mock.stats.log[1].controls.encoding_format, undefined);
  assert.equal(f.data.length, 2);
  assert.deepEqual(f.data.map((d) => d.index), [0, 1]);
  for (let i = 0; i < 2; i++) {
    const x = f.data[i].embedding;
    const y = Array.from(b.data[i].embedding);
    assert.equal(x.length, 64);
    assert.deepEqual(y, x);
    const norm = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5);
  }
  assert.notDeepEqual(f.data[0].embedding, f.data[1].embedding);
  const again = await client.embeddings.create({ model: 'mock-embed', input: 'alpha', encoding_format: 'float', dimensions: 64 });
  assert.deepEqual(again.data[0].embedding, f.data[0].embedding);
  const small = await client.embeddings.create({ model: 'mock-embed', input: 'alpha', encoding_format: 'float', dimensions: 8 });
  assert.equal(small.data[0].embedding.length, 8);
  assert.ok(f.usage.prompt_tokens > 0);
  assert.equal(mockSerial(again), 3);
});

test('models list; /health and /v1/models are not counted as calls', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('mock-gpt'));
  const one = await client.models.retrieve('mock-gpt');
  assert.equal(one.id, 'mock-gpt');
  await assert.rejects(client.models.retrieve('nope'), (e) => e.status === 404);
  assert.equal((await request(`${mock.origin}/health`, { method: 'GET' })).status, 200);
  assert.equal(mock.stats.total, 0);
});

test('HTTP stats and reset endpoints', async () => {
  await client.chat.completions.create(chat('count me'));
  await client.embeddings.create({ model: 'mock-embed', input: 'x' });
  const s = await request(`${mock.origin}/__mock/stats`, { method: 'GET' });
  assert.equal(s.json.total, 2);
  assert.equal(s.json.calls['/v1/embeddings'], 1);
  assert.equal(s.json.log[0].path, '/v1/chat/completions');
  const r = await request(`${mock.origin}/__mock/reset`, { method: 'POST' });
  assert.equal(r.status, 200);
  assert.equal(mock.stats.total, 0);
  assert.equal(mock.stats.serial, 0);
});

test('concurrent calls: in-flight and its peak are recorded', async () => {
  // Hanging calls stay open until aborted: the overlap does not depend on timing.
  const acs = [1, 2, 3, 4].map(() => new AbortController());
  const ps = acs.map((ac, i) => client.chat.completions.create(chat(`par ${i} [mock:hang]`), { signal: ac.signal }).catch((e) => e));
  assert.ok(await until(() => mock.stats.inflight === 4), `in flight: ${mock.stats.inflight}`);
  assert.equal(mock.stats.maxInflight, 4);
  for (const ac of acs) ac.abort();
  for (const e of await Promise.all(ps)) assert.ok(e instanceof OpenAI.APIUserAbortError);
  assert.ok(await until(() => mock.stats.inflight === 0), 'aborted calls end');
  assert.equal(mock.stats.maxInflight, 4);
});

test('command line: --port, prints its URL, answers, exits on SIGTERM', async () => {
  const port = await freePort();
  const p = spawn(process.execPath, [path.join(here, 'mock-upstream.mjs'), '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(); });
    p.on('exit', () => reject(new Error('mock exited: ' + out)));
  });
  assert.equal(out.trim(), `mock-upstream listening on http://127.0.0.1:${port}/v1`);
  const r = await makeClient(`http://127.0.0.1:${port}/v1`).chat.completions.create(chat('cli'));
  assert.equal(mockSerial(r), 1);
  const code = await new Promise((resolve) => { p.removeAllListeners('exit'); p.on('exit', resolve); p.kill('SIGTERM'); });
  assert.equal(code, 0);
});

test('close() ends hanging connections', async () => {
  const m2 = await startMock();
  const c2 = makeClient(m2.url, { timeout: 5000 });
  const p = c2.chat.completions.create(chat('[mock:hang]'));
  await sleep(30);
  const t = performance.now();
  await m2.close();
  assert.ok(performance.now() - t < 5000, 'close() does not wait for the hanging call');
  await assert.rejects(p, (e) => e instanceof OpenAI.APIConnectionError);
});

// The helpers the daemon tests rely on, exercised with stand-in executables
// (shell scripts) so that their failure paths are checked too.
test('helpers: startDaemon waits for /health, passes the flags, stop() reports the exit', async () => {
  const dir = tempDir('llmc-helper-');
  const bin = path.join(dir, 'fake-daemon');
  // Serves /health by running the mock on the --listen port; logs its argv.
  fs.writeFileSync(bin, `#!/bin/sh\necho "argv: $*"\nport=\${2##*:}\nexec "${process.execPath}" "${path.join(here, 'mock-upstream.mjs')}" --port "$port"\n`, { mode: 0o755 });
  const d = await startDaemon({ bin, upstream: 'http://127.0.0.1:9/v1', args: ['--extra', 'x'] });
  assert.equal((await request(`${d.origin}/health`, { method: 'GET' })).status, 200);
  assert.match(d.output(), new RegExp(`argv: --listen 127.0.0.1:${d.port} --data-dir ${d.dataDir} --upstream http://127.0.0.1:9/v1 --admin-token test-admin --extra x`));
  const r = await d.stop();
  assert.equal(r.code, 0);
  assert.equal(await d.stop(), r, 'stop() is idempotent');
});

test('helpers: startDaemon rejects with the output of a daemon that dies at start', async () => {
  const dir = tempDir('llmc-helper-');
  const bin = path.join(dir, 'dying-daemon');
  fs.writeFileSync(bin, '#!/bin/sh\necho "fatal: bad config" >&2\nexit 3\n', { mode: 0o755 });
  await assert.rejects(startDaemon({ bin }), /exited during start \(code 3[\s\S]*fatal: bad config/);
  await assert.rejects(startDaemon({ bin: path.join(dir, 'missing') }), /not found/);
});

test('helpers: parseSSE and mockSerial', () => {
  const ev = parseSSE('data: {"a":1}\n\n: comment\n\ndata: {"mock_serial":7}\r\n\r\ndata: [DONE]\n\n');
  assert.deepEqual(ev, [{ a: 1 }, { mock_serial: 7 }, '[DONE]']);
  assert.equal(mockSerial(ev[1]), 7);
  assert.equal(mockSerial({ choices: [{ message: { content: 'mock[h=x] serial=12 echo' } }] }), 12);
  assert.throws(() => parseSSE('data: {nope\n\n'));
});

test('n > 1: that many choices, streamed per index', async () => {
  const r = await client.chat.completions.create(chat('several', { n: 3 }));
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.match(r.choices[2].message.content, / \[choice 2\]$/);
  const { chunks } = await drain(await client.chat.completions.create({ ...chat('several', { n: 3 }), stream: true }));
  const text = [0, 1].map((i) => chunks.map((c) => (c.choices[0]?.index === i ? c.choices[0].delta.content || '' : '')).join(''));
  assert.equal(text[1].replace(/serial=\d+/, ''), r.choices[1].message.content.replace(/serial=\d+/, ''));
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason === 'stop').length, 3);
});

test('helpers: spawnMock runs the mock in its own process', async () => {
  const m = await spawnMock();
  const r = await makeClient(m.url).chat.completions.create(chat('child process'));
  assert.equal(mockSerial(r), 1);
  assert.equal((await m.stats()).calls['/v1/chat/completions'], 1);
  await m.reset();
  assert.equal((await m.stats()).total, 0);
  await m.close();
  assert.equal((await request(`${m.origin}/health`, { method: 'GET' }).catch(() => ({ status: 0 }))).status, 0);
});
