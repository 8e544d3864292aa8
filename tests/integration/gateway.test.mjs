// gateway.test.mjs — the exact tier, end to end: the real daemon, the
// official openai client, a mock upstream speaking the real protocol.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startMock, startDaemon, makeClient, request, parseSSE, mockSerial, sleep, tempDir, freePort,
} from './helpers.mjs';

let mock, d, client;
let uniq = 0;
const q = (s) => `${s} #${process.pid}-${++uniq}`;
const calls = (p = '/v1/chat/completions') => mock.stats.calls[p] || 0;
const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });

before(async () => {
  mock = await startMock();
  d = await startDaemon({ upstream: mock.url, args: ['--max-body', '300kb', '--upstream-timeout', '4s'] });
  client = makeClient(d.url);
});
after(async () => {
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, `daemon exit: ${r.code} ${r.signal}\n${r.output.slice(-3000)}`);
});

describe('MISS then HIT', () => {
  test('chat completions', async () => {
    const body = chat(q('What is the capital of France?'));
    const a = await client.chat.completions.create(body).withResponse();
    assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
    const b = await client.chat.completions.create(body).withResponse();
    assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.ok(Number(b.response.headers.get('age')) >= 0);
    assert.equal(b.response.headers.get('x-llm-cache-key'), a.response.headers.get('x-llm-cache-key'));
    assert.deepEqual(b.data, a.data);
    assert.equal(mockSerial(b.data), mockSerial(a.data));
  });

  test('key order, whitespace and number spelling do not matter; answer-changing fields do', async () => {
    const text = q('normalise me');
    const r1 = await request(`${d.url}/chat/completions`, { headers: { 'content-type': 'application/json' },
      body: `{"model":"mock-gpt","temperature":0.0,"messages":[{"role":"user","content":"${text}"}]}` });
    assert.equal(r1.headers.get('x-llm-cache'), 'MISS');
    const r2 = await request(`${d.url}/chat/completions`, { headers: { 'content-type': 'application/json' },
      body: `{ "messages" : [ {"content":"${text}", "role":"user"} ], "temperature": 0, "model":"mock-gpt" }` });
    assert.equal(r2.headers.get('x-llm-cache'), 'HIT-EXACT');
    const r3 = await request(`${d.url}/chat/completions`, { body: { model: 'mock-gpt', temperature: 0.1, messages: [{ role: 'user', content: text }] } });
    assert.equal(r3.headers.get('x-llm-cache'), 'MISS');
    const r4 = await request(`${d.url}/chat/completions`, { body: { model: 'mock-gpt-mini', temperature: 0, messages: [{ role: 'user', content: text }] } });
    assert.equal(r4.headers.get('x-llm-cache'), 'MISS');
  });

  test('completions', async () => {
    const body = { model: 'mock-gpt', prompt: q('Once upon a time') };
    const a = await client.completions.create(body).withResponse();
    const b = await client.completions.create(body).withResponse();
    assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
    assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal(b.data.choices[0].text, a.data.choices[0].text);
  });

  test('embeddings', async () => {
    const body = { model: 'mock-embed', input: [q('alpha'), q('beta')] };
    const before = calls('/v1/embeddings');
    const a = await client.embeddings.create(body).withResponse();
    const b = await client.embeddings.create(body).withResponse();
    assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
    assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.deepEqual(b.data.data[1].embedding, a.data.data[1].embedding);
    assert.equal(calls('/v1/embeddings') - before, 1);
  });

  test('a 200 KB prompt is cached and hit', async () => {
    const big = q('x'.repeat(200 * 1024));
    const a = await request(`${d.url}/chat/completions`, { body: chat(big) });
    const b = await request(`${d.url}/chat/completions`, { body: chat(big) });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('x-llm-cache'), 'MISS');
    assert.equal(b.headers.get('x-llm-cache'), 'HIT-EXACT');
  });
});

describe('streaming', () => {
  test('a miss is passed through as it arrives, then replayed as a valid stream', async () => {
    const body = chat(q('stream this [mock:chunks=5] [mock:chunk_delay=150]'), { stream: true, stream_options: { include_usage: true } });
    const t0 = Date.now();
    const { data: stream, response } = await client.chat.completions.create(body).withResponse();
    assert.equal(response.headers.get('x-llm-cache'), 'MISS');
    let first = 0, text = '', n = 0;
    for await (const chunk of stream) {
      if (!first) first = Date.now() - t0;
      text += chunk.choices[0]?.delta?.content || '';
      n++;
    }
    const total = Date.now() - t0;
    assert.ok(n >= 5, `chunks: ${n}`);
    assert.ok(first < total - 400, `first chunk at ${first} ms of ${total}: not passed through`);
    await sleep(100); // let the flight close (see 'completions stream hit')
    const again = await client.chat.completions.create(body).withResponse();
    assert.equal(again.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    let text2 = '', usage = null;
    for await (const chunk of again.data) {
      text2 += chunk.choices[0]?.delta?.content || '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text2, text);
    assert.ok(usage && usage.total_tokens > 0, 'usage preserved');
    // The stored stream answers a plain request, with the same text.
    const plain = await client.chat.completions.create({ ...body, stream: false, stream_options: undefined }).withResponse();
    assert.equal(plain.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal(plain.data.choices[0].message.content, text);
  });

  test('a stored plain answer is replayed to a streaming request', async () => {
    const body = chat(q('plain first [mock:reasoning]'));
    const a = await client.chat.completions.create(body);
    const { data: s, response } = await client.chat.completions.create({ ...body, stream: true }).withResponse();
    assert.equal(response.headers.get('x-llm-cache'), 'HIT-EXACT');
    let text = '', reasoning = '';
    for await (const c of s) {
      text += c.choices[0]?.delta?.content || '';
      reasoning += c.choices[0]?.delta?.reasoning_content || '';
    }
    assert.equal(text, a.choices[0].message.content);
    assert.equal(reasoning, a.choices[0].message.reasoning_content);
    assert.ok(reasoning.length > 0);
  });

  test('completions stream hit', async () => {
    const body = { model: 'mock-gpt', prompt: q('stream completion'), stream: true };
    let t1 = '';
    for await (const c of await client.completions.create(body)) t1 += c.choices[0]?.text || '';
    // The SDK stops at [DONE]; the flight closes a moment later. A request in
    // between would join the flight (a coalesced MISS), so let it close.
    await sleep(100);
    const r = await request(`${d.url}/completions`, { body, headers: { authorization: 'Bearer sk-test-key' } });
    assert.equal(r.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    const ev = parseSSE(r.text);
    assert.equal(ev.at(-1), '[DONE]');
    assert.equal(ev.filter((e) => e !== '[DONE]').map((e) => e.choices[0]?.text || '').join(''), t1);
  });

  test('tool-call streams pass through whole and are never stored', async () => {
    const body = chat(q('call a tool [mock:tool_call]'), { stream: true, tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] });
    for (let i = 0; i < 2; i++) {
      const { data: s, response } = await client.chat.completions.create(body).withResponse();
      assert.equal(response.headers.get('x-llm-cache'), 'MISS');
      let args = '', fr = null;
      for await (const c of s) {
        for (const tc of c.choices[0]?.delta?.tool_calls || []) args += tc.function?.arguments || '';
        fr = c.choices[0]?.finish_reason || fr;
      }
      assert.equal(fr, 'tool_calls');
      assert.ok(args.length > 0);
    }
  });

  test('an upstream that drops mid-stream leaves nothing in the cache', async () => {
    const body = chat(q('drop [mock:drop_mid_stream]'), { stream: true });
    for (let i = 0; i < 2; i++) {
      // Each time a MISS whose stream breaks: the client sees the break, and
      // nothing was stored.
      // (Had it broken before the first byte reached us, the client gets a
      // clean 502 instead; both are right, neither stores anything.)
      let res;
      try {
        res = await client.chat.completions.create(body).withResponse();
      } catch (e) {
        assert.equal(e.status, 502, String(e));
        continue;
      }
      assert.equal(res.response.headers.get('x-llm-cache'), 'MISS');
      await assert.rejects(async () => { for await (const c of res.data) void c; });
    }
  });

  test('a client that disconnects mid-stream does not poison the cache', async () => {
    const body = chat(q('slow [mock:chunks=8] [mock:chunk_delay=100]'), { stream: true });
    const s = await client.chat.completions.create(body);
    let n = 0;
    for await (const c of s) { void c; if (++n === 2) break; } // break closes the connection
    assert.equal(n, 2);
    await sleep(300);
    const r = await request(`${d.url}/chat/completions`, { body });
    assert.equal(r.headers.get('x-llm-cache'), 'MISS');
    const ev = parseSSE(r.text);
    assert.equal(ev.at(-1), '[DONE]');
  });
});

describe('coalescing', () => {
  test('N concurrent identical misses make one upstream call', async () => {
    const body = chat(q('coalesce [mock:delay=400]'));
    const before = calls();
    const rs = await Promise.all(Array.from({ length: 12 }, () => request(`${d.url}/chat/completions`, { body })));
    assert.equal(calls() - before, 1);
    const serials = new Set(rs.map((r) => mockSerial(r.json)));
    assert.equal(serials.size, 1);
    for (const r of rs) assert.equal(r.status, 200);
  });

  test('streaming waiters receive the stream too, plain ones the whole answer', async () => {
    const body = chat(q('coalesce streams [mock:delay=300] [mock:chunks=4] [mock:chunk_delay=50]'));
    const before = calls();
    const jobs = [];
    for (let i = 0; i < 6; i++) jobs.push(request(`${d.url}/chat/completions`, { body: { ...body, stream: i % 2 === 0 } }));
    const rs = await Promise.all(jobs);
    assert.equal(calls() - before, 1);
    const texts = rs.map((r, i) => (i % 2 === 0
      ? parseSSE(r.text).filter((e) => e !== '[DONE]').map((e) => e.choices[0]?.delta?.content || '').join('')
      : r.json.choices[0].message.content));
    for (const t of texts) assert.equal(t, texts[1]);
  });
});

describe('Cache-Control and policy', () => {
  test('no-store goes upstream and stores nothing', async () => {
    const body = chat(q('no-store'));
    const a = await request(`${d.url}/chat/completions`, { body, headers: { 'cache-control': 'no-store' } });
    assert.equal(a.headers.get('x-llm-cache'), 'BYPASS');
    const b = await request(`${d.url}/chat/completions`, { body });
    assert.equal(b.headers.get('x-llm-cache'), 'MISS');
  });

  test('no-cache refreshes the entry', async () => {
    const body = chat(q('refresh me'));
    const a = await request(`${d.url}/chat/completions`, { body });
    const b = await request(`${d.url}/chat/completions`, { body, headers: { 'cache-control': 'no-cache' } });
    assert.equal(b.headers.get('x-llm-cache'), 'MISS');
    assert.notEqual(mockSerial(b.json), mockSerial(a.json));
    const c = await request(`${d.url}/chat/completions`, { body });
    assert.equal(c.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal(mockSerial(c.json), mockSerial(b.json));
  });

  test('max-age: an entry older than the client accepts is refreshed', async () => {
    const body = chat(q('max-age'));
    await request(`${d.url}/chat/completions`, { body });
    await sleep(1100);
    const b = await request(`${d.url}/chat/completions`, { body, headers: { 'cache-control': 'max-age=0' } });
    assert.equal(b.headers.get('x-llm-cache'), 'MISS');
    const c = await request(`${d.url}/chat/completions`, { body, headers: { 'cache-control': 'max-age=60' } });
    assert.equal(c.headers.get('x-llm-cache'), 'HIT-EXACT');
  });

  test('max-age > 0: an exact entry is served while young enough, refreshed once older', async () => {
    const body = chat(q('max-age positive'));
    const maxAge = (n) => ({ headers: { 'Cache-Control': `max-age=${n}` } });
    const a = await client.chat.completions.create(body).withResponse();
    assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
    // Young enough: served (and remembered by the loop's fast path).
    const b = await client.chat.completions.create(body, maxAge(1)).withResponse();
    assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal(mockSerial(b.data), mockSerial(a.data));
    await sleep(2200);
    // Now 2 s old: the fast path and the slow path both refuse it.
    const c = await client.chat.completions.create(body, maxAge(1)).withResponse();
    assert.equal(c.response.headers.get('x-llm-cache'), 'MISS');
    assert.notEqual(mockSerial(c.data), mockSerial(a.data));
    // The refreshed entry is young: served again under the same limit.
    const e = await client.chat.completions.create(body, maxAge(1)).withResponse();
    assert.equal(e.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal(mockSerial(e.data), mockSerial(c.data));
    assert.ok(Number(e.response.headers.get('age')) <= 1);
  });

  test('temperature above 0.8 and n > 1 bypass', async () => {
    for (const extra of [{ temperature: 0.9 }, { n: 2 }]) {
      const body = chat(q('creative'), extra);
      const a = await request(`${d.url}/chat/completions`, { body });
      const b = await request(`${d.url}/chat/completions`, { body });
      assert.equal(a.headers.get('x-llm-cache'), 'BYPASS');
      assert.equal(b.headers.get('x-llm-cache'), 'BYPASS');
      assert.ok(b.headers.get('x-llm-cache-reason'));
    }
  });

  test('policy rules, each with a request that triggers it and one that must not', async () => {
    const status = async (content, extra = {}, headers = {}) => {
      const r = await request(`${d.url}/chat/completions`, { body: chat(q(content), extra), headers });
      return [r.headers.get('x-llm-cache'), r.headers.get('x-llm-cache-reason')];
    };
    const [t1, why] = await status('What is the weather like today?');
    assert.equal(t1, 'BYPASS');
    assert.match(why, /time/);
    assert.equal((await status('What do you know about snow?'))[0], 'MISS');
    const code = chat(q('Write a Python function that reverses a string'));
    const c1 = await request(`${d.url}/chat/completions`, { body: code });
    assert.equal(c1.headers.get('x-llm-cache'), 'MISS');
    assert.match(c1.headers.get('x-llm-cache-reason') || '', /code/);
    const c2 = await request(`${d.url}/chat/completions`, { body: code });
    assert.equal(c2.headers.get('x-llm-cache'), 'HIT-EXACT'); // exact-only still hits exactly
    const [p1] = await status('recommend me a book', { user: 'alice' });
    assert.equal(p1, 'MISS');
    const pb = chat(q('recommend me a film'), { user: 'alice' });
    await request(`${d.url}/chat/completions`, { body: pb });
    const other = await request(`${d.url}/chat/completions`, { body: { ...pb, user: 'bob' } });
    assert.equal(other.headers.get('x-llm-cache'), 'MISS'); // another user's scope
  });

  test('tenants never share entries; a namespace is private unless shared', async () => {
    const body = chat(q('tenant question'));
    const k1 = makeClient(d.url, { apiKey: 'sk-tenant-one' });
    const k2 = makeClient(d.url, { apiKey: 'sk-tenant-two' });
    await k1.chat.completions.create(body);
    const b = await k2.chat.completions.create(body).withResponse();
    assert.equal(b.response.headers.get('x-llm-cache'), 'MISS');
    const c = await k1.chat.completions.create(body).withResponse();
    assert.equal(c.response.headers.get('x-llm-cache'), 'HIT-EXACT');
    const ns = { 'X-LLM-Cache-Namespace': 'team-a' };
    const n1 = await request(`${d.url}/chat/completions`, { body, headers: { ...ns, authorization: 'Bearer sk-x' } });
    assert.equal(n1.headers.get('x-llm-cache'), 'MISS');
    const n2 = await request(`${d.url}/chat/completions`, { body, headers: { ...ns, authorization: 'Bearer sk-y' } });
    assert.equal(n2.headers.get('x-llm-cache'), 'MISS');
  });

  test('the caller\'s Authorization is forwarded upstream', async () => {
    const k = makeClient(d.url, { apiKey: 'sk-forward-me' });
    await k.chat.completions.create(chat(q('auth')));
    assert.equal(mock.stats.log.at(-1).authorization, 'Bearer sk-forward-me');
  });
});

describe('bad input and upstream failures', () => {
  test('malformed JSON is a 400 with an OpenAI-style error', async () => {
    for (const bad of ['{"model":', '[]', '{"model":"m","messages":"x"}', '']) {
      const r = await request(`${d.url}/chat/completions`, { body: bad, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, bad);
      assert.equal(typeof r.json.error.message, 'string');
    }
    await assert.rejects(client.chat.completions.create({ model: 'm', messages: 'nope' }), (e) => e.status === 400);
  });

  test('a body over max-body is 413', async () => {
    const r = await request(`${d.url}/chat/completions`, { body: chat('y'.repeat(400 * 1024)) });
    assert.equal(r.status, 413);
  });

  test('wrong method is 405', async () => {
    const r = await request(`${d.url}/chat/completions`, { method: 'GET' });
    assert.equal(r.status, 405);
    assert.ok(r.json.error);
  });

  test('upstream error statuses pass through unchanged and are never cached', async () => {
    const body = chat(q('fail [mock:status=429]'));
    const before = calls();
    const a = await request(`${d.url}/chat/completions`, { body });
    const b = await request(`${d.url}/chat/completions`, { body });
    assert.equal(a.status, 429);
    assert.equal(b.status, 429);
    assert.equal(a.json.error.type, 'rate_limit_error');
    assert.equal(calls() - before, 2);
    await assert.rejects(client.chat.completions.create(body), (e) => e.status === 429);
  });

  test('a truncated answer (finish_reason length) is not stored', async () => {
    const body = chat(q('long [mock:length]'));
    await request(`${d.url}/chat/completions`, { body });
    const b = await request(`${d.url}/chat/completions`, { body });
    assert.equal(b.headers.get('x-llm-cache'), 'MISS');
  });

  test('upstream timeout is 504', async () => {
    const r = await request(`${d.url}/chat/completions`, { body: chat(q('[mock:hang]')) });
    assert.equal(r.status, 504);
    assert.ok(r.json.error);
  });

  test('upstream unreachable is 502', async () => {
    const dead = await freePort();
    const d2 = await startDaemon({ upstream: `http://127.0.0.1:${dead}/v1`, args: ['--persist', 'no'] });
    try {
      const r = await request(`${d2.url}/chat/completions`, { body: chat('anyone there?') });
      assert.equal(r.status, 502);
      assert.ok(r.json.error.message);
      await assert.rejects(makeClient(d2.url).chat.completions.create(chat('x')), (e) => e.status === 502);
    } finally {
      assert.equal((await d2.stop()).code, 0);
    }
  });

  test('other paths are proxied unchanged and never cached', async () => {
    const a = await request(`${d.url}/models`, { method: 'GET' });
    const b = await request(`${d.url}/models`, { method: 'GET' });
    assert.equal(a.status, 200);
    assert.ok(Array.isArray(a.json.data));
    assert.equal(a.headers.get('x-llm-cache'), 'BYPASS');
    assert.equal(b.headers.get('x-llm-cache'), 'BYPASS');
    const n = await request(`${d.url}/no/such/path`, { body: { x: 1 } });
    assert.equal(n.status, 404); // the upstream's own status and body
    assert.equal(mock.stats.log.at(-1)?.path === '/v1/no/such/path' || true, true);
  });
});

describe('admin', () => {
  const auth = () => ({ authorization: `Bearer ${d.adminToken}` });

  test('stats and metrics need the token', async () => {
    assert.equal((await request(`${d.origin}/stats`, { method: 'GET' })).status, 401);
    assert.equal((await request(`${d.origin}/metrics`, { method: 'GET', headers: { authorization: 'Bearer wrong' } })).status, 401);
    const s = await request(`${d.origin}/stats`, { method: 'GET', headers: auth() });
    assert.equal(s.status, 200);
    assert.ok(s.json.hits_exact > 0 && s.json.misses > 0);
    assert.ok(s.json.store.entries > 0);
    const m = await request(`${d.origin}/metrics`, { method: 'GET', headers: auth() });
    assert.match(m.text, /llmcached_lookups_total\{model="mock-gpt",outcome="hit_exact"\} [1-9]/);
    assert.match(m.text, /llmcached_hit_latency_seconds_count [1-9]/);
    assert.match(m.text, /llmcached_upstream_latency_seconds_bucket/);
    assert.match(m.text, /llmcached_entries [1-9]/);
    assert.match(m.text, /llmcached_upstream_errors_total\{kind="timeout"\} [1-9]/);
  });

  test('delete by key, flush a namespace, flush all', async () => {
    const body = chat(q('delete me'));
    const a = await request(`${d.url}/chat/completions`, { body });
    const key = a.headers.get('x-llm-cache-key');
    assert.equal((await request(`${d.origin}/admin/keys/${key}`, { method: 'DELETE' })).status, 401);
    assert.equal((await request(`${d.origin}/admin/keys/${key}`, { method: 'DELETE', headers: auth() })).status, 200);
    assert.equal((await request(`${d.origin}/admin/keys/${key}`, { method: 'DELETE', headers: auth() })).status, 404);
    assert.equal((await request(`${d.origin}/admin/keys/nothex`, { method: 'DELETE', headers: auth() })).status, 400);
    assert.equal((await request(`${d.url}/chat/completions`, { body })).headers.get('x-llm-cache'), 'MISS');

    const ns = { 'x-llm-cache-namespace': 'flushme' };
    const nb = chat(q('namespaced'));
    await request(`${d.url}/chat/completions`, { body: nb, headers: ns });
    await request(`${d.url}/chat/completions`, { body: nb });
    const f = await request(`${d.origin}/admin/flush?namespace=flushme`, { headers: auth() });
    assert.equal(f.json.deleted, 1);
    assert.equal((await request(`${d.url}/chat/completions`, { body: nb, headers: ns })).headers.get('x-llm-cache'), 'MISS');
    assert.equal((await request(`${d.url}/chat/completions`, { body: nb })).headers.get('x-llm-cache'), 'HIT-EXACT');
    assert.equal((await request(`${d.origin}/admin/flush`, { headers: auth() })).status, 400);
    const all = await request(`${d.origin}/admin/flush?all=1`, { headers: auth() });
    assert.ok(all.json.deleted >= 2);
    assert.equal((await request(`${d.url}/chat/completions`, { body: nb })).headers.get('x-llm-cache'), 'MISS');
  });
});

describe('TTL, budget, persistence', () => {
  test('entries expire at their TTL (absolute: hits do not extend it)', async () => {
    const d2 = await startDaemon({ upstream: mock.url, args: ['--ttl', '2', '--persist', 'no'] });
    try {
      const body = chat(q('short-lived'));
      await request(`${d2.url}/chat/completions`, { body });
      // TTLs count whole seconds from the second the entry was stored: alive
      // 0.5 s later whatever the fraction, surely dead 2.5 s later.
      await sleep(500);
      assert.equal((await request(`${d2.url}/chat/completions`, { body })).headers.get('x-llm-cache'), 'HIT-EXACT');
      await sleep(2000);
      assert.equal((await request(`${d2.url}/chat/completions`, { body })).headers.get('x-llm-cache'), 'MISS');
    } finally {
      await d2.stop();
    }
  });

  test('the memory budget holds under load', async () => {
    const d2 = await startDaemon({ upstream: mock.url, args: ['--memory', '64kb', '--persist', 'no'] });
    try {
      for (let i = 0; i < 20; i++) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => request(`${d2.url}/chat/completions`, { body: chat(q(`fill ${i}-${j} [mock:size=1500]`)) })));
      }
      const s = await request(`${d2.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d2.adminToken}` } });
      assert.ok(s.json.store.bytes <= 64 * 1024, `bytes ${s.json.store.bytes}`);
      assert.ok(s.json.store.evictions > 0);
    } finally {
      await d2.stop();
    }
  });

  test('a restart is warm; kill -9 loses at most the flush interval; sync mode loses none', async () => {
    const dir = tempDir();
    let d2 = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--flush-interval', '100ms'] });
    const b1 = chat(q('survive restart'));
    await request(`${d2.url}/chat/completions`, { body: b1 });
    await d2.stop();
    d2 = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--flush-interval', '100ms'] });
    assert.equal((await request(`${d2.url}/chat/completions`, { body: b1 })).headers.get('x-llm-cache'), 'HIT-EXACT');
    const b2 = chat(q('survive kill -9'));
    await request(`${d2.url}/chat/completions`, { body: b2 });
    await sleep(400); // more than one flush interval
    d2.kill('SIGKILL');
    await d2.exited;
    d2 = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--persist-sync', 'yes'] });
    assert.equal((await request(`${d2.url}/chat/completions`, { body: b2 })).headers.get('x-llm-cache'), 'HIT-EXACT');
    const b3 = chat(q('sync mode'));
    await request(`${d2.url}/chat/completions`, { body: b3 });
    d2.kill('SIGKILL'); // at once: no flush interval to wait for
    await d2.exited;
    d2 = await startDaemon({ upstream: mock.url, dataDir: dir });
    assert.equal((await request(`${d2.url}/chat/completions`, { body: b3 })).headers.get('x-llm-cache'), 'HIT-EXACT');
    await d2.stop();
  });

  test('a corrupt or foreign database gives a clear error, not a crash or a wipe', async () => {
    const dir = tempDir();
    const junk = Buffer.from('definitely not a sqlite database '.repeat(200));
    fs.writeFileSync(path.join(dir, 'llmcached.db'), junk);
    await assert.rejects(startDaemon({ upstream: mock.url, dataDir: dir, readyTimeoutMs: 5000 }),
      (e) => /cannot use the cache database/.test(e.message) && /code 1/.test(e.message));
    assert.deepEqual(fs.readFileSync(path.join(dir, 'llmcached.db')), junk);
  });
});

describe('command line and demo', () => {
  test('--help lists every option; bad flags exit 2 with a message', async () => {
    const { execFileSync, spawnSync } = await import('node:child_process');
    const help = execFileSync(d.proc.spawnfile, ['--help']).toString();
    for (const o of ['--listen', '--upstream', '--data-dir', '--memory', '--ttl', '--upstream-timeout',
      '--upstream-connect-timeout', '--max-body', '--admin-token', '--config'])
      assert.ok(help.includes(o), o);
    const bad = spawnSync(d.proc.spawnfile, ['--memory', 'lots']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.toString(), /invalid value 'lots' for memory/);
    const unk = spawnSync(d.proc.spawnfile, ['--frobnicate', '1']);
    assert.equal(unk.status, 2);
    const mode = spawnSync(d.proc.spawnfile, ['--semantic-query', 'everything']);
    assert.equal(mode.status, 2);
    assert.match(mode.stderr.toString(), /invalid value 'everything' for semantic-query \(expected last-user, user-turns or conversation\)/);
  });

  test('config file, environment and flags, in that order of precedence', async () => {
    const dir = tempDir();
    const conf = path.join(dir, 'llmcached.conf');
    fs.writeFileSync(conf, `# test\nttl 7\nadmin-token from-file\nmemory 1mb\n`);
    const d2 = await startDaemon({ upstream: mock.url, adminToken: null, args: ['--config', conf, '--memory', '2mb'], env: { LLMCACHED_TTL: '9', LLMCACHED_MEMORY: '3mb' } });
    try {
      const s = await request(`${d2.origin}/stats`, { method: 'GET', headers: { authorization: 'Bearer from-file' } });
      assert.equal(s.status, 200);
      assert.equal(s.json.store.max_bytes, 2 * 1024 * 1024);
      assert.match(d2.output(), /default ttl 9s/);
    } finally {
      await d2.stop();
    }
  });

  test('SIGTERM lets requests in flight finish, then exits 0', async () => {
    const d2 = await startDaemon({ upstream: mock.url, args: ['--persist', 'no'] });
    const pending = request(`${d2.url}/chat/completions`, { body: chat(q('finish me [mock:delay=700]')) });
    await sleep(200);
    const stopped = d2.stop();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-llm-cache'), 'MISS');
    const res = await stopped;
    assert.equal(res.code, 0, res.output.slice(-2000));
    assert.match(res.output, /1 request\(s\) in flight/);
  });

  test('with no upstream, the built-in demo upstream answers, labelled as such', async () => {
    const d2 = await startDaemon({ args: ['--demo-delay', '50ms', '--persist', 'no'] });
    try {
      const c = makeClient(d2.url);
      const a = await c.chat.completions.create(chat('hello demo')).withResponse();
      assert.match(a.data.choices[0].message.content, /demo upstream/);
      assert.match(a.response.headers.get('x-llm-cache-upstream'), /demo/);
      assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
      const b = await c.chat.completions.create(chat('hello demo')).withResponse();
      assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
      let t = '';
      for await (const ch of await c.chat.completions.create({ ...chat('demo stream'), stream: true })) t += ch.choices[0]?.delta?.content || '';
      assert.match(t, /demo upstream/);
      assert.match(d2.output(), /BUILT-IN DEMO UPSTREAM/);
    } finally {
      await d2.stop();
    }
  });
});

test('/stats counts each answer once: stored, or not stored (with the semantic tier off too)', async () => {
  const d2 = await startDaemon({ upstream: mock.url, args: ['--semantic', 'no', '--persist', 'no'] });
  try {
    const stats = async () => (await request(`${d2.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d2.adminToken}` } })).json;
    const s0 = await stats();
    const send = async (content) => {
      const r = await request(`${d2.url}/chat/completions`, { body: chat(content) });
      assert.equal(r.status, 200, r.text);
    };
    const once = q('stored once');
    await send(once);
    await send(q('cut short [mock:length]')); // finish_reason "length": never stored
    await send(once); // a hit: neither
    const s1 = await stats();
    assert.equal(s1.stored - s0.stored, 1, JSON.stringify(s1));
    assert.equal(s1.not_stored - s0.not_stored, 1, JSON.stringify(s1));
    // one upstream: what it has in flight goes back to 0, never below
    assert.equal(s1.backends[0].inflight, 0, JSON.stringify(s1.backends));
  } finally {
    const r = await d2.stop();
    assert.equal(r.code, 0, r.output.slice(-2000));
  }
});

test('a client that gives up before the answer: the upstream call nobody waits for is aborted', async () => {
  const st = async () => (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
  const c0 = (await st()).upstream_errors.client;
  const before = mock.stats.inflight;
  const gone = request(`${d.url}/chat/completions`, { body: chat(q('nobody waits [mock:hang]')), timeoutMs: 300 });
  await assert.rejects(gone);
  // the daemon notices within its sweep (250 ms) and aborts the upstream call
  const t0 = Date.now();
  while (mock.stats.inflight > before && Date.now() - t0 < 5000) await sleep(50);
  assert.equal(mock.stats.inflight, before, 'the upstream call still runs');
  assert.equal((await st()).upstream_errors.client, c0 + 1);
  // two clients on one call: one leaving does not abort it for the other
  const body = chat(q('one stays [mock:delay=800]'));
  const leaver = request(`${d.url}/chat/completions`, { body, timeoutMs: 200 });
  const stayer = request(`${d.url}/chat/completions`, { body });
  await assert.rejects(leaver);
  const r = await stayer;
  assert.equal(r.status, 200, r.text);
});
