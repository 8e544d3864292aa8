// semantic.test.mjs — the semantic tier end to end (built-in USE-lite
// encoder, real daemon, openai client, mock upstream).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, startDaemon, request, makeClient, mockSerial, tempDir, repoRoot, sleep } from './helpers.mjs';

const modelDir = path.join(repoRoot, 'data/models/use-lite');
const haveModel = fs.existsSync(path.join(modelDir, 'model.json'));
const skip = haveModel ? false : 'USE-lite weights absent (scripts/fetch-use-model.sh fetches them)';

let mock, d, dir;
let n = 0;
const tag = () => (curTag = `${process.pid}x${++n}`);
// Each test's tag goes into a system message: it gives the test a partition
// of its own while the query texts stay exactly as written (a tag inside the
// query would move cosines from run to run).
let curTag = '';
const ask = (base, content, { model = 'mock-gpt', history = [], headers = {}, extra = {} } = {}) =>
  request(`${base}/chat/completions`, {
    headers: { authorization: 'Bearer sk-sem', ...headers },
    body: { model, messages: [{ role: 'system', content: `test ${curTag}` }, ...history, { role: 'user', content }], ...extra },
  });
const status = (r) => r.headers.get('x-llm-cache');

before(async () => {
  if (skip) return;
  mock = await startMock();
  dir = tempDir();
  d = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--embed-model-path', modelDir, '--flush-interval', '50ms'] });
});
after(async () => {
  if (skip) return;
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, r.output.slice(-2000));
});

test('a paraphrase hits; an unrelated question misses', { skip }, async () => {
  const t = tag();
  const a = await ask(d.url, `Could you please explain step by step how I can reset the admin password of my home wifi router to the factory default?`);
  assert.equal(status(a), 'MISS');
  const b = await ask(d.url, `Can you please explain step by step how I can reset the admin password of my home wifi router to the factory default?`);
  assert.equal(status(b), 'HIT-SEMANTIC');
  assert.ok(Number(b.headers.get('x-llm-cache-similarity')) >= 0.8);
  assert.equal(b.headers.get('x-llm-cache-key'), a.headers.get('x-llm-cache-key'));
  assert.equal(mockSerial(b.json), mockSerial(a.json));
  const c = await ask(d.url, `What is the best way to cook rice?`);
  assert.equal(status(c), 'MISS');
});

test('a streamed request is answered from a semantic hit as a valid stream', { skip }, async () => {
  const t = tag();
  await ask(d.url, `Could you please tell me which mountain is the tallest in the whole world and how high its summit is above sea level?`);
  const client = makeClient(d.url, { apiKey: 'sk-sem' });
  const { data, response } = await client.chat.completions.create({
    model: 'mock-gpt', stream: true, messages: [{ role: 'system', content: `test ${curTag}` }, { role: 'user', content: `Can you please tell me which mountain is the tallest in the whole world and how high its summit is above sea level?` }],
  }).withResponse();
  assert.equal(response.headers.get('x-llm-cache'), 'HIT-SEMANTIC');
  let text = '';
  for await (const c of data) text += c.choices[0]?.delta?.content || '';
  assert.match(text, /mock/);
});

test('the same question after another conversation, tenant or model misses', { skip }, async () => {
  const t = tag();
  const h1 = [{ role: 'user', content: 'I live in Paris.' }, { role: 'assistant', content: 'Nice!' }];
  const h2 = [{ role: 'user', content: 'I live in Tokyo.' }, { role: 'assistant', content: 'Nice!' }];
  await ask(d.url, `Could you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`, { history: h1 });
  const same = await ask(d.url, `Can you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`, { history: h1 });
  assert.equal(status(same), 'HIT-SEMANTIC');
  const other = await ask(d.url, `Can you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`, { history: h2 });
  assert.equal(status(other), 'MISS');
  const tenant = await ask(d.url, `Can you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`, { history: h1, headers: { authorization: 'Bearer sk-other' } });
  assert.equal(status(tenant), 'MISS');
  const model = await ask(d.url, `Can you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`, { history: h1, model: 'mock-gpt-mini' });
  assert.equal(status(model), 'MISS');
});

test('the guard refuses a near question that asks something else', { skip }, async () => {
  const t = tag();
  await ask(d.url, `How many calories are in 2 eggs?`);
  const r = await ask(d.url, `How many calories are in 3 eggs?`);
  assert.equal(status(r), 'MISS');
  const neg = await ask(d.url, `Why is the sky blue?`);
  assert.equal(status(neg), 'MISS');
  const neg2 = await ask(d.url, `Why is the sky not blue?`);
  assert.equal(status(neg2), 'MISS');
});

test('per-request threshold and exact-only policy', { skip }, async () => {
  const t = tag();
  await ask(d.url, `How do I make a good cup of coffee?`);
  const strict = await ask(d.url, `How can I make a good cup of coffee?`, { headers: { 'x-llm-cache-threshold': '0.999' } });
  assert.equal(status(strict), 'MISS');
  // Code generation is exact-only: a reworded request never reuses the code.
  await ask(d.url, `Write a Python function that sorts a list of numbers`);
  const code = await ask(d.url, `Write a Python function which sorts a list of numbers`);
  assert.equal(status(code), 'MISS');
});

test('deleted entries take their vectors with them; restart keeps semantic hits', { skip }, async () => {
  const t = tag();
  const a = await ask(d.url, `What is the boiling point of water at sea level?`);
  const key = a.headers.get('x-llm-cache-key');
  await ask(d.url, `Could you tell me who wrote the famous English novel Pride and Prejudice, and roughly when it was first published?`);
  const del = await request(`${d.origin}/admin/keys/${key}`, { method: 'DELETE', headers: { authorization: `Bearer ${d.adminToken}` } });
  assert.equal(del.status, 200);
  const after = await ask(d.url, `At sea level, what is the boiling point of water?`);
  assert.equal(status(after), 'MISS');
  await sleep(200); // one flush interval
  await d.stop();
  d = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--embed-model-path', modelDir, '--flush-interval', '50ms'] });
  const r = await ask(d.url, `Can you tell me who wrote the famous English novel Pride and Prejudice, and roughly when it was first published?`);
  assert.equal(status(r), 'HIT-SEMANTIC');
});

test('expiry and eviction remove vectors too', { skip }, async () => {
  // d2 runs the fp32 reference encoder: /stats names the precision beside
  // the model (the main daemon's is what --embed-precision auto chose).
  const d2 = await startDaemon({ upstream: mock.url, args: ['--embed-model-path', modelDir, '--ttl', '2', '--persist', 'no', '--embed-precision', 'fp32'] });
  try {
    const auth = (x) => ({ method: 'GET', headers: { authorization: `Bearer ${x.adminToken}` } });
    const s0 = await request(`${d2.origin}/stats`, auth(d2));
    assert.equal(s0.json.semantic.precision, 'fp32', JSON.stringify(s0.json.semantic));
    const s1 = await request(`${d.origin}/stats`, auth(d));
    assert.match(s1.json.semantic.precision, /^(int8|fp16|fp32)/, JSON.stringify(s1.json.semantic));
    assert.equal(s1.json.semantic.model, s0.json.semantic.model);
    const t = tag();
    await ask(d2.url, `Could you explain in simple terms why the speed of light in a vacuum is the same for every observer?`);
    assert.equal(status(await ask(d2.url, `Can you explain in simple terms why the speed of light in a vacuum is the same for every observer?`)), 'HIT-SEMANTIC');
    await sleep(2600); // TTLs count whole seconds: a 2 s entry is surely dead by now
    assert.equal(status(await ask(d2.url, `Can you explain in simple terms why the speed of light in a vacuum is the same for every observer?`)), 'MISS');
    const s = await request(`${d2.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d2.adminToken}` } });
    assert.ok(s.json.semantic && s.json.semantic.indexed <= 1, JSON.stringify(s.json.semantic));
  } finally {
    await d2.stop();
  }
  // Eviction: a 48 KB budget, one question and its paraphrase, then enough
  // other answers to push it out. Its vector goes with it, and the index
  // never holds more vectors than the store holds entries.
  const d3 = await startDaemon({ upstream: mock.url, args: ['--embed-model-path', modelDir, '--memory', '48kb', '--persist', 'no'] });
  try {
    const t = tag();
    const first = `Could you explain in simple terms why leaves change their colour from green to red and yellow every autumn?`;
    const para = `Can you explain in simple terms why leaves change their colour from green to red and yellow every autumn?`;
    await ask(d3.url, first);
    assert.equal(status(await ask(d3.url, para)), 'HIT-SEMANTIC');
    const topics = ['volcanoes', 'tides', 'rainbows', 'earthquakes', 'glaciers', 'comets', 'deserts', 'coral reefs'];
    for (let i = 0; i < 40; i++)
      await ask(d3.url, `Please write a long essay number ${i} about ${topics[i % topics.length]} [mock:size=3000]`);
    const s = await request(`${d3.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d3.adminToken}` } });
    assert.ok(s.json.store.evictions > 0, JSON.stringify(s.json.store));
    assert.ok(s.json.semantic.indexed <= s.json.store.entries, JSON.stringify(s.json));
    assert.equal(status(await ask(d3.url, para)), 'MISS');
  } finally {
    await d3.stop();
  }
});

test('a reworded paraphrase hits through WordNet synonyms; without them the guard refuses it', { skip: skip || (!fs.existsSync('/usr/share/wordnet/index.noun') && 'WordNet absent (scripts/deps.sh installs wordnet-base)') }, async () => {
  const q1 = `Which method of the table class can be employed to acquire the entire quantity of rows that are stored in the table object?`;
  const q2 = `Which method of the table class can be used to get the total amount of rows that are kept in the table object?`;
  const t = tag();
  assert.equal(status(await ask(d.url, q1)), 'MISS');
  const hit = await ask(d.url, q2);
  assert.equal(status(hit), 'HIT-SEMANTIC');
  const d2 = await startDaemon({ upstream: mock.url, args: ['--embed-model-path', modelDir, '--persist', 'no', '--semantic-lexicon', ''] });
  try {
    assert.equal(status(await ask(d2.url, q1)), 'MISS');
    const miss = await ask(d2.url, q2);
    assert.equal(status(miss), 'MISS');
    assert.match(miss.headers.get('x-llm-cache-reason') || '', /guard/);
  } finally {
    await d2.stop();
  }
});

test('--semantic-query user-turns compares whole conversations instead of keying on them', { skip }, async () => {
  const q = (v) => `${v} you please tell me which museums in this city are the most worth visiting for someone who loves modern art and history?`;
  const h1 = [{ role: 'user', content: 'I am spending a week in Paris this spring.' }, { role: 'assistant', content: 'Lovely!' }];
  const h2 = [{ role: 'user', content: 'I am spending a week in Paris this spring.' }, { role: 'assistant', content: 'How nice, enjoy it.' }];
  const h3 = [{ role: 'user', content: 'I am spending a week in Tokyo this spring.' }, { role: 'assistant', content: 'Lovely!' }];
  const t = tag();
  // Default: the earlier turns are part of the partition, so another
  // assistant reply is another conversation.
  await ask(d.url, q('Could'), { history: h1 });
  assert.equal(status(await ask(d.url, q('Can'), { history: h2 })), 'MISS');
  const d2 = await startDaemon({ upstream: mock.url, args: ['--embed-model-path', modelDir, '--persist', 'no', '--semantic-query', 'user-turns'] });
  try {
    const first = await ask(d2.url, q('Could'), { history: h1 });
    assert.equal(status(first), 'MISS');
    const hit = await ask(d2.url, q('Can'), { history: h2 });
    assert.equal(status(hit), 'HIT-SEMANTIC');
    assert.equal(hit.headers.get('x-llm-cache-key'), first.headers.get('x-llm-cache-key'));
    // The user turns are compared, so another city is not served...
    assert.equal(status(await ask(d2.url, q('Can'), { history: h3 })), 'MISS');
    // ...and the exact tier still keys on everything.
    assert.equal(status(await ask(d2.url, q('Could'), { history: h1 })), 'HIT-EXACT');
  } finally {
    await d2.stop();
  }
});

// The openai client, in this test's partition, with Cache-Control: max-age
// when maxAge is given.
const chatMaxAge = (content, maxAge) => makeClient(d.url, { apiKey: 'sk-sem' }).chat.completions.create(
  { model: 'mock-gpt', messages: [{ role: 'system', content: `test ${curTag}` }, { role: 'user', content }] },
  maxAge === undefined ? {} : { headers: { 'Cache-Control': `max-age=${maxAge}` } }).withResponse();

test('max-age > 0 holds on the semantic tier: a stale entry is never a semantic hit', { skip }, async () => {
  const t = tag();
  const chat = chatMaxAge;
  const original = `Could you please explain in detail how the process of photosynthesis turns sunlight, water and carbon dioxide into sugar inside the leaves of a plant?`;
  const paraphrase = `Can you please explain in detail how the process of photosynthesis turns sunlight, water and carbon dioxide into sugar inside the leaves of a plant?`;
  const a = await chat(original);
  assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
  // Young: a paraphrase within max-age is a semantic hit.
  const young = await chat(paraphrase, 60);
  assert.equal(young.response.headers.get('x-llm-cache'), 'HIT-SEMANTIC');
  await sleep(2200);
  // 2 s old, the client accepts 1 s: neither the paraphrase ...
  const p = await chat(paraphrase, 1);
  assert.equal(p.response.headers.get('x-llm-cache'), 'MISS');
  assert.notEqual(mockSerial(p.data), mockSerial(a.data));
});

test('max-age > 0: the exact request refused as too old is not served as HIT-SEMANTIC', { skip }, async () => {
  const t = tag();
  const chat = chatMaxAge;
  const question = `Could you please describe the main differences between the climate of the northern and the southern coast of Spain throughout the year?`;
  const a = await chat(question);
  assert.equal(a.response.headers.get('x-llm-cache'), 'MISS');
  await sleep(2200);
  const b = await chat(question, 1);
  assert.equal(b.response.headers.get('x-llm-cache'), 'MISS');
  assert.notEqual(mockSerial(b.data), mockSerial(a.data));
  // The refreshed answer is young: served under the same limit, exactly.
  const c = await chat(question, 1);
  assert.equal(c.response.headers.get('x-llm-cache'), 'HIT-EXACT');
  assert.equal(mockSerial(c.data), mockSerial(b.data));
});

test('the lower-case copy of a stored question hits (normalised before embedding)', { skip }, async () => {
  const t = tag();
  const a = await ask(d.url, `What is the capital of France?`);
  assert.equal(status(a), 'MISS');
  for (const q of [`what is the capital of france`, `WHAT'S THE CAPITAL OF FRANCE ?`, `  What’s the capital of France!`]) {
    const r = await ask(d.url, q);
    assert.equal(status(r), 'HIT-SEMANTIC', `${q}: ${r.headers.get('x-llm-cache-reason')}`);
    assert.equal(mockSerial(r.json), mockSerial(a.json));
  }
  // Case still matters to the guard where it names something: another
  // capital is refused although the sentence is the same template.
  const other = await ask(d.url, `What is the capital of Germany?`);
  assert.equal(status(other), 'MISS');
});

const admin = { authorization: 'Bearer test-admin' };
const metric = async (base, line) => {
  const r = await request(`${base.replace(/\/v1$/, '')}/metrics`, { method: 'GET', headers: admin });
  const m = r.text.split('\n').find((l) => l.startsWith(line + ' '));
  return m ? Number(m.split(' ').pop()) : NaN;
};

test('every semantic miss says why, in X-LLM-Cache-Reason and /metrics', { skip }, async () => {
  const t = tag();
  const empty0 = await metric(d.url, 'llmcached_semantic_lookups_total{reason="empty_partition"}');
  const first = await ask(d.url, `How many calories are in 2 boiled eggs?`);
  assert.equal(first.headers.get('x-llm-cache-reason'), 'semantic: empty partition');
  assert.equal(await metric(d.url, 'llmcached_semantic_lookups_total{reason="empty_partition"}'), empty0 + 1);
  const num = await ask(d.url, `How many calories are in 3 boiled eggs?`);
  assert.equal(status(num), 'MISS');
  assert.equal(num.headers.get('x-llm-cache-reason'), 'semantic: guard: number 3 vs 2');
  const far = await ask(d.url, `Which team won the first football world cup?`);
  const m = /^semantic: below threshold \((0\.\d{3}) < (0\.\d{3})\)$/.exec(far.headers.get('x-llm-cache-reason') || '');
  assert.ok(m, far.headers.get('x-llm-cache-reason'));
  assert.ok(Number(m[1]) < Number(m[2]));
  assert.ok(await metric(d.url, 'llmcached_semantic_lookups_total{reason="guard"}') >= 1);
  assert.ok(await metric(d.url, 'llmcached_semantic_lookups_total{reason="below_threshold"}') >= 1);
  // A hit carries no semantic reason.
  const hit = await ask(d.url, `how many calories are in 2 boiled eggs`);
  assert.equal(status(hit), 'HIT-SEMANTIC');
  assert.equal(hit.headers.get('x-llm-cache-reason'), null);
});

test('an overloaded encoder is skipped: misses go upstream at once, answers are indexed later', { skip }, async () => {
  const t = tag();
  // Budget 0: a lookup that would wait at all is skipped; one worker.
  const d2 = await startDaemon({ upstream: mock.url, args: ['--embed-model-path', modelDir, '--persist', 'no',
    '--embed-threads', '1', '--semantic-budget', '0'] });
  try {
    const N = 24;
    const qs = Array.from({ length: N }, (_, i) => `In which year did expedition number ${i + 1} reach the summit of the highest mountain in the Alps?`);
    const rs = await Promise.all(qs.map((q) => ask(d2.url, q)));
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(status(r), 'MISS');
      assert.ok(r.json.choices[0].message.content.startsWith('mock['));
    }
    const skipped = rs.filter((r) => r.headers.get('x-llm-cache-reason') === 'semantic: skipped (overload)').length;
    assert.ok(skipped >= 1, 'a burst of 24 with one worker and no budget skips some lookups');
    assert.equal(await metric(d2.url, 'llmcached_semantic_skipped_total{reason="overload"}'), skipped);
    // Every skipped answer was stored and is embedded + indexed off the request path.
    let indexed = 0;
    for (let i = 0; i < 100 && indexed < skipped; i++) {
      indexed = await metric(d2.url, 'llmcached_semantic_deferred_total{outcome="indexed"}');
      if (indexed < skipped) await sleep(100);
    }
    assert.equal(indexed, skipped);
    assert.equal(await metric(d2.url, 'llmcached_semantic_deferred_total{outcome="dropped"}'), 0);
    // A skipped question's lower-case copy is now a semantic hit; the exact one an exact hit.
    const i = rs.findIndex((r) => r.headers.get('x-llm-cache-reason') === 'semantic: skipped (overload)');
    const again = await ask(d2.url, qs[i]);
    assert.equal(status(again), 'HIT-EXACT');
    const lower = await ask(d2.url, qs[i].toLowerCase());
    assert.equal(status(lower), 'HIT-SEMANTIC', lower.headers.get('x-llm-cache-reason'));
    assert.equal(mockSerial(lower.json), mockSerial(rs[i].json));
  } finally {
    await d2.stop();
  }
});
