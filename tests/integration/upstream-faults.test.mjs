// upstream-faults.test.mjs — an upstream that breaks the protocol under a
// request (issue 16): a chunked body cut in the middle of a chunk and the
// connection closed, a connection reset (RST) half-way through the answer,
// a 200 whose body is not JSON — each for a plain and a streamed request.
//
// What must hold, every time: the client gets a clear answer — a plain
// request a 5xx with an OpenAI-style JSON error (the official client raises
// an APIError with a message), a stream either that same error before its
// first byte or a stream that ends without `data: [DONE]`; nothing is
// stored (the same request again is a MISS that reaches the upstream
// again); the daemon keeps serving and exits cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, startDaemon, makeClient, request, parseSSE } from './helpers.mjs';

let mock, d, client;
let uniq = 0;
const q = (s) => `${s} #${process.pid}-${++uniq}`;
const calls = () => mock.stats.calls['/v1/chat/completions'] || 0;
const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });

before(async () => {
  mock = await startMock();
  d = await startDaemon({ upstream: mock.url, args: ['--upstream-timeout', '5s'] });
  client = makeClient(d.url, { maxRetries: 0 });
});
after(async () => {
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, `daemon exit: ${r.code} ${r.signal}\n${r.output.slice(-3000)}`);
});

/** A streamed request read to its end or its break: { status, headers, text, broke }. */
async function streamRaw(body) {
  const res = await fetch(`${d.url}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  let text = '';
  let broke = false;
  const dec = new TextDecoder();
  try {
    for await (const b of res.body) text += dec.decode(b, { stream: true });
  } catch {
    broke = true; // the daemon cut the stream: also a clear end
  }
  return { status: res.status, headers: res.headers, text, broke };
}

const FAULTS = ['truncate_chunked', 'reset_mid_stream', 'bad_json'];

for (const fault of FAULTS) {
  test(`${fault}, plain: a 5xx JSON error, nothing stored`, async () => {
    const body = chat(q(`plain ${fault} [mock:${fault}] [mock:size=3000]`));
    for (let i = 0; i < 2; i++) {
      const before = calls();
      const r = await request(`${d.url}/chat/completions`, { body });
      assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}: ${r.text.slice(0, 200)}`);
      assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string' && r.json.error.message.length > 0,
        `not an OpenAI-style error: ${r.text.slice(0, 200)}`);
      assert.notEqual(r.headers.get('x-llm-cache'), 'HIT');
      assert.equal(calls() - before, 1, 'each try reaches the upstream: nothing was stored');
    }
    // The official client sees an APIError carrying the message.
    await assert.rejects(client.chat.completions.create(body), (e) => e.status >= 500 && /\S/.test(e.message));
  });

  test(`${fault}, stream: an error or a stream without [DONE], nothing stored`, async () => {
    const body = chat(q(`stream ${fault} [mock:${fault}] [mock:chunks=8]`), { stream: true });
    for (let i = 0; i < 2; i++) {
      const before = calls();
      const r = await streamRaw(body);
      if (r.status !== 200) {
        assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}`);
        assert.ok(JSON.parse(r.text).error.message.length > 0);
      } else {
        assert.equal(r.headers.get('x-llm-cache'), 'MISS');
        assert.ok(!/^data: \[DONE\]/m.test(r.text), `a broken upstream stream ended with [DONE]:\n${r.text.slice(-300)}`);
      }
      assert.equal(calls() - before, 1, 'each try reaches the upstream: nothing was stored');
    }
  });
}

test('after every fault the daemon still answers, and a good request is cached', async () => {
  const body = chat(q('healthy after faults'));
  const a = await request(`${d.url}/chat/completions`, { body });
  assert.equal(a.status, 200);
  assert.equal(a.headers.get('x-llm-cache'), 'MISS');
  const b = await request(`${d.url}/chat/completions`, { body });
  assert.match(b.headers.get('x-llm-cache'), /^HIT/);
  const s = await streamRaw(chat(q('healthy stream'), { stream: true }));
  assert.equal(parseSSE(s.text).at(-1), '[DONE]');
});
