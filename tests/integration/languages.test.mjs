// languages.test.mjs — which languages the text rules serve, end to end:
// a Russian time question is bypassed with the reason the policy gave, a
// Russian question that only contains a time word's letters ("завтрак",
// breakfast) is cached, and /stats names each rule's languages as the
// phrase tables have them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, startDaemon, makeClient, request } from './helpers.mjs';

let mock, d, client;
const chat = (content) => ({ model: 'mock-gpt', messages: [{ role: 'user', content: `${content} (${process.pid})` }] });
const calls = () => mock.stats.calls['/v1/chat/completions'] || 0;

before(async () => {
  mock = await startMock();
  d = await startDaemon({ upstream: mock.url });
  client = makeClient(d.url);
});
after(async () => {
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, `daemon exit: ${r.code} ${r.signal}\n${r.output.slice(-3000)}`);
});

test('a Russian "what is the weather today" is BYPASS, every time, with the reason', async () => {
  const body = chat('Какая погода сегодня в Москве?');
  const before = calls();
  for (let i = 0; i < 2; i++) {
    const { response } = await client.chat.completions.create(body).withResponse();
    assert.equal(response.headers.get('x-llm-cache'), 'BYPASS');
    assert.equal(response.headers.get('x-llm-cache-reason'), 'time-relative');
  }
  assert.equal(calls() - before, 2); // never served from the cache
  const upper = await client.chat.completions.create(chat('ЧТО БЫЛО ВЧЕРА?')).withResponse();
  assert.equal(upper.response.headers.get('x-llm-cache'), 'BYPASS'); // Cyrillic case folded
});

test('a Russian question with no time word is cached ("завтрак" is not "завтра")', async () => {
  const body = chat('Как приготовить завтрак из яиц?');
  const a = await client.chat.completions.create(body).withResponse();
  assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
  const b = await client.chat.completions.create(body).withResponse();
  assert.equal(b.response.headers.get('x-llm-cache'), 'HIT-EXACT');
  assert.deepEqual(b.data.choices[0].message, a.data.choices[0].message);
});

test('/stats says which languages each feature serves', async () => {
  const s = await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } });
  assert.equal(s.status, 200);
  const l = s.json.languages;
  assert.deepEqual(l.policy, { time: ['en', 'ru'], finance: ['en', 'ru'], code: ['en'] });
  assert.deepEqual(l.guard, ['en']);
  for (const k of ['normalisation', 'cosine', 'partitioning', 'numbers']) assert.equal(l[k], 'any');
  assert.ok(s.json.requests >= 5); // the existing keys are still there
});
