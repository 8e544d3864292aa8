// verify.test.mjs — --verify-rate: a sample of hits is asked upstream again
// in the background and the fresh answer compared with the one served
// (server/verify.c), against the real daemon and the mock upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startMock, startDaemon, request, makeClient, repoRoot, sleep, daemonPath } from './helpers.mjs';

const modelDir = path.join(repoRoot, 'data/models/use-lite');
const haveModel = fs.existsSync(path.join(modelDir, 'model.json'));

let mock;
before(async () => {
  mock = await startMock();
});
after(async () => {
  await mock.close();
});

const chat = (content, extra = {}) => ({ model: 'mock-gpt', messages: [{ role: 'user', content }], ...extra });
const ask = (d, content, extra) =>
  request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-verify' }, body: chat(content, extra) });
const stats = async (d) =>
  (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;

/** Wait until /stats shows n comparisons or errors, then return its verify section. */
async function settled(d, n) {
  for (let i = 0; i < 100; i++) {
    const v = (await stats(d)).verify;
    if (v && v.exact.same + v.exact.changed + v.semantic.same + v.semantic.changed + v.errors >= n) return v;
    await sleep(100);
  }
  return (await stats(d)).verify;
}

test('every hit re-asked: an unchanged answer counts as the same, a changed one as stale', async () => {
  const d = await startDaemon({ upstream: mock.url, args: ['--verify-rate', '1', '--semantic', 'no', '--persist', 'no'] });
  try {
    const q = `What is the tallest building in the world? ${process.pid}`;
    assert.equal((await ask(d, q)).headers.get('x-llm-cache'), 'MISS');
    const before = mock.stats.total;
    const hit = await ask(d, q);
    assert.equal(hit.headers.get('x-llm-cache'), 'HIT-EXACT');
    let v = await settled(d, 1);
    assert.equal(mock.stats.total, before + 1, 'one re-ask upstream');
    // Without an encoder only identical answers are the same: the mock's
    // answers carry a per-call serial, so this one "changed".
    assert.deepEqual([v.exact.same, v.exact.changed], [0, 1], JSON.stringify(v));
    const last = mock.stats.log[mock.stats.log.length - 1];
    assert.equal(last.stream, false, 'asked in one piece');
    assert.equal(last.authorization, 'Bearer sk-verify', 'the caller\'s credentials are forwarded');
    // A streamed hit is re-asked as a plain request too, and counted.
    const client = makeClient(d.url, { apiKey: 'sk-verify' });
    const s = await client.chat.completions.create({ ...chat(q), stream: true });
    for await (const _ of s);
    v = await settled(d, 2);
    assert.equal(v.exact.same + v.exact.changed, 2, JSON.stringify(v));
    assert.equal(v.sampled, 2);
    // The served entry is untouched: verification measures, it does not write.
    assert.equal((await ask(d, q)).json.choices[0].message.content, hit.json.choices[0].message.content);
    const m = await request(`${d.origin}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } });
    assert.match(m.text, /llmcached_verify_total\{tier="exact",outcome="changed"\} \d+/);
  } finally {
    await d.stop();
  }
});

test('with the encoder, a reworded fresh answer is the same, another statement is stale; semantic hits count apart', { skip: !haveModel && 'USE-lite weights absent' }, async () => {
  const d = await startDaemon({ upstream: mock.url, args: ['--verify-rate', '1', '--embed-model-path', modelDir, '--persist', 'no'] });
  try {
    const q = `Could you please explain step by step how to repot a large fern without hurting its roots? ${process.pid}`;
    await ask(d, q);
    assert.equal((await ask(d, q)).headers.get('x-llm-cache'), 'HIT-EXACT');
    let v = await settled(d, 1);
    assert.deepEqual([v.exact.same, v.exact.changed], [1, 0], JSON.stringify(v)); // only the serial differs
    const drift = `Please summarise the sales figures from the quarterly report for the board [mock:drift] ${process.pid}`;
    await ask(d, drift);
    assert.equal((await ask(d, drift)).headers.get('x-llm-cache'), 'HIT-EXACT');
    v = await settled(d, 2);
    assert.deepEqual([v.exact.same, v.exact.changed], [1, 1], JSON.stringify(v));
    assert.equal(v.exact.stale_rate, 0.5);
    const para = `Can you please explain step by step how to repot a large fern without hurting its roots? ${process.pid}`;
    assert.equal((await ask(d, para)).headers.get('x-llm-cache'), 'HIT-SEMANTIC');
    v = await settled(d, 3);
    assert.equal(v.semantic.same + v.semantic.changed, 1, JSON.stringify(v));
  } finally {
    await d.stop();
  }
});

test('a semantic hit the model answers otherwise teaches its entry to refuse such queries', { skip: !haveModel && 'USE-lite weights absent' }, async () => {
  const d = await startDaemon({ upstream: mock.url, args: ['--verify-rate', '1', '--embed-model-path', modelDir, '--persist', 'no'] });
  try {
    // [mock:drift]: every upstream call says something else, as when the
    // similar question was not the same question.
    const a = `Could you please tell me which documents I need to bring to renew a passport at the embassy? [mock:drift] ${process.pid}`;
    const p = `Can you please tell me which documents I need to bring to renew a passport at the embassy? [mock:drift] ${process.pid}`;
    await ask(d, a);
    const hit = await ask(d, p);
    assert.equal(hit.headers.get('x-llm-cache'), 'HIT-SEMANTIC');
    const v = await settled(d, 1);
    assert.deepEqual([v.semantic.same, v.semantic.changed], [0, 1], JSON.stringify(v));
    // The same question again: the entry's learned floor turns it away.
    const again = await ask(d, p);
    assert.equal(again.headers.get('x-llm-cache'), 'MISS');
    assert.match(again.headers.get('x-llm-cache-reason') || '', /answered such a question differently/);
    // The exact question is still served from it.
    assert.equal((await ask(d, a)).headers.get('x-llm-cache'), 'HIT-EXACT');
  } finally {
    await d.stop();
  }
});

test('off by default; an upstream that fails a re-ask is counted and the hit is still served', async () => {
  const d0 = await startDaemon({ upstream: mock.url, args: ['--semantic', 'no', '--persist', 'no'] });
  try {
    const q = `How many moons does Mars have? ${process.pid}`;
    await ask(d0, q);
    const before = mock.stats.total;
    assert.equal((await ask(d0, q)).headers.get('x-llm-cache'), 'HIT-EXACT');
    await sleep(300);
    assert.equal(mock.stats.total, before, 'no re-ask when the rate is 0');
    assert.equal((await stats(d0)).verify, undefined);
  } finally {
    await d0.stop();
  }
  const m2 = await startMock();
  const d = await startDaemon({ upstream: m2.url, args: ['--verify-rate', '1', '--semantic', 'no', '--persist', 'no', '--upstream-connect-timeout', '500ms'] });
  try {
    const q = `How many moons does Jupiter have? ${process.pid}`;
    await ask(d, q);
    await m2.close(); // the upstream goes away
    assert.equal((await ask(d, q)).headers.get('x-llm-cache'), 'HIT-EXACT');
    const v = await settled(d, 1);
    assert.equal(v.errors, 1, JSON.stringify(v));
    assert.equal(v.exact.same + v.exact.changed, 0);
  } finally {
    await d.stop();
  }
});

test('a re-ask still waiting on the upstream does not hold up shutdown', async () => {
  const d = await startDaemon({ upstream: mock.url, args: ['--verify-rate', '1', '--semantic', 'no', '--persist', 'no', '--forward-headers', 'x-mock-*'] });
  const q = `Name three rivers in Africa. ${process.pid}`;
  await ask(d, q);
  // Client headers go upstream with the re-ask: this one makes the mock hang.
  const hit = await request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-verify', 'x-mock-hang': '1' }, body: chat(q) });
  assert.equal(hit.headers.get('x-llm-cache'), 'HIT-EXACT');
  await sleep(300);
  const t0 = Date.now();
  const r = await d.stop();
  assert.equal(r.code, 0, r.output.slice(-2000));
  assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
});

test('bad --verify-rate and --verify-similarity exit 2 with a message', () => {
  for (const [flag, val, re] of [['--verify-rate', '1.5', /verify-rate \(expected 0 to 1\)/], ['--verify-rate', '-0.1', /verify-rate/], ['--verify-similarity', '3', /verify-similarity/]]) {
    const r = spawnSync(daemonPath(), [flag, val]);
    assert.equal(r.status, 2, `${flag} ${val}`);
    assert.match(r.stderr.toString(), re);
  }
});
