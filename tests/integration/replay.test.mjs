// replay.test.mjs — llmcached-replay, the KPI report: the two example
// workloads replayed through the real daemon (and straight to the mock
// upstream with --direct) give figures that agree with the daemon's own
// /stats and meet the hit-rate targets (FAQ > 30%, creative < 5%); the
// recorded pace is kept; the HTML report opens in Chromium without a
// console error; bad input stops with a clear message and exit status 2
// before anything is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startMock, startDaemon, request, buildDir, repoRoot, tempDir, freePort } from './helpers.mjs';

const REPLAY = path.join(buildDir(), 'llmcached-replay');
const FAQ = path.join(repoRoot, 'examples/faq.jsonl');
const CREATIVE = path.join(repoRoot, 'examples/creative.jsonl');
const PRICES = 'stories260K=2/8';

let mock, d;
before(async () => {
  mock = await startMock();
  d = await startDaemon({ upstream: mock.url, args: ['--semantic', 'no', '--persist', 'no', '--prices', PRICES] });
});
after(async () => {
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, r.output.slice(-2000));
});

/** Run the tool (asynchronously: the mock upstream answers in this process). */
const replay = (args) => new Promise((resolve, reject) => {
  const p = spawn(REPLAY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  p.stdout.on('data', (x) => { stdout += x; });
  p.stderr.on('data', (x) => { stderr += x; });
  const t = setTimeout(() => p.kill('SIGKILL'), 120000);
  p.on('error', reject);
  p.on('close', (status) => { clearTimeout(t); resolve({ status, stdout, stderr }); });
});
const stats = async () => (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
const lines = (f) => readFileSync(f, 'utf8').trim().split('\n').length;

let faqReport;
test('the FAQ workload: figures agree with the daemon\'s /stats and the hit rate meets its > 30% target', async () => {
  const before = await stats();
  const mockBefore = mock.stats.total;
  const r = await replay([FAQ, '--target', d.url, '--direct', mock.url, '--prices', PRICES, '--admin-token', d.adminToken,
    '--pace', 'max', '--concurrency', '4', '--json', '--html', path.join(tempDir('llmc-replay-'), 'faq.html')]);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  faqReport = rep;
  const after = await stats();
  const n = lines(FAQ);
  assert.equal(rep.requests, n);
  assert.equal(rep.answered, n);
  assert.equal(Object.values(rep.outcomes).reduce((a, b) => a + b, 0), n);
  // what the replay saw in X-LLM-Cache is what the daemon counted
  assert.equal(rep.outcomes.hit_exact, after.hits_exact - before.hits_exact);
  assert.equal(rep.outcomes.miss, after.misses - before.misses);
  assert.equal(rep.upstream_calls, after.upstream_calls - before.upstream_calls);
  assert.equal(rep.not_sent_to_inference, 1 - rep.upstream_calls / n);
  // --direct replayed every request to the mock: n calls there, plus the misses
  assert.equal(mock.stats.total - mockBefore, rep.upstream_calls + n);
  // tokens and money saved: the usage of the hits, as the daemon counts them
  const m0 = before.models?.stories260K || { tokens_saved_prompt: 0, tokens_saved_completion: 0, cost_saved: 0 };
  const m1 = after.models.stories260K;
  assert.equal(rep.tokens_saved_prompt, m1.tokens_saved_prompt - m0.tokens_saved_prompt);
  assert.equal(rep.tokens_saved_completion, m1.tokens_saved_completion - m0.tokens_saved_completion);
  assert.ok(rep.tokens_saved_prompt > 0);
  assert.ok(Math.abs(rep.money_saved - (m1.cost_saved - m0.cost_saved)) < 1e-5, `${rep.money_saved} vs ${m1.cost_saved - m0.cost_saved}`);
  // the target
  assert.equal(rep.kinds.length, 1);
  assert.equal(rep.kinds[0].kind, 'faq');
  assert.ok(rep.kinds[0].hit_rate > 0.3 && rep.kinds[0].meets_target === true, JSON.stringify(rep.kinds));
  // latencies: hits from memory, the direct run went to the mock
  for (const k of ['with_cache', 'hits', 'misses', 'direct']) assert.ok(rep.latency_seconds[k].p50 > 0 && rep.latency_seconds[k].p99 >= rep.latency_seconds[k].p50, k);
  assert.ok(rep.latency_seconds.hits.p50 < rep.latency_seconds.misses.p50);
  // staleness: the mock answers every call with a new serial, so every
  // exact hit differs from the fresh answer to the same request
  assert.equal(rep.staleness.hits_compared, rep.outcomes.hit_exact);
  assert.equal(rep.staleness.exact_rate, 1);
  // the text report says the same
  const t = await replay([FAQ, '--target', d.url, '--pace', 'max']);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /hit rate +100\.0% \(exact 100\.0%, semantic 0\.0%\)/, 'all cached by the first run');
  assert.match(t.stdout, /faq +100\.0% of 50 +target > 30%: met/);
  assert.match(t.stdout, /latency direct +n\/a/);
});

test('the creative workload (temperature 1.0) is not cached: under its < 5% target', async () => {
  const r = await replay([CREATIVE, '--target', d.url, '--pace', 'max', '--prices', PRICES, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.requests, lines(CREATIVE));
  assert.equal(rep.outcomes.bypass, rep.requests);
  assert.equal(rep.kinds[0].kind, 'creative');
  assert.equal(rep.kinds[0].meets_target, true);
  assert.equal(rep.money_saved, 0);
});

test('the recorded pace is kept, and tenants are kept apart', async () => {
  const dir = tempDir('llmc-replay-');
  const f = path.join(dir, 'paced.jsonl');
  const q = (t, tenant) => JSON.stringify({ t, tenant, request: { model: 'stories260K', messages: [{ role: 'user', content: `paced ${process.pid}` }] } });
  writeFileSync(f, [q(0, 'a'), q(0.6, 'a'), q(1.2, 'b')].join('\n') + '\n');
  const t0 = Date.now();
  const r = await replay([f, '--target', d.url, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Date.now() - t0 >= 1200, 'the last request left at t = 1.2 s');
  const rep = JSON.parse(r.stdout);
  assert.deepEqual([rep.outcomes.miss, rep.outcomes.hit_exact], [2, 1], 'tenant b does not get tenant a\'s entry');
  // --speed 4: a quarter of the time
  const t1 = Date.now();
  assert.equal((await replay([f, '--target', d.url, '--speed', '4'])).status, 0);
  assert.ok(Date.now() - t1 < 1100);
});

test('the HTML report is self-contained and opens in Chromium without a console error', { timeout: 60000 }, async () => {
  const dir = tempDir('llmc-replay-');
  const html = path.join(dir, 'report.html');
  const r = await replay([FAQ, '--target', d.url, '--direct', mock.url, '--pace', 'max', '--html', html]);
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(html, 'utf8');
  assert.doesNotMatch(text, /(src|href)=["']?https?:/);
  const browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${tempDir('llmc-chromium-')}`],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    const requested = [];
    page.on('request', (q) => requested.push(q.url()));
    await page.goto(`file://${html}`, { waitUntil: 'load' });
    assert.deepEqual(problems, []);
    assert.ok(requested.every((u) => u.startsWith('file:') || u.startsWith('data:')), requested.join('\n'));
    // every request is a hit by now: bars for with cache, hits and direct; misses n/a
    assert.equal(await page.$$eval('#lat rect.bar', (b) => b.length), 3);
    assert.match(await page.$eval('#lat svg', (e) => e.textContent), /missesp50 n\/a · p99 n\/adirect \(no cache\)p50 \d/);
    assert.ok((await page.$$eval('#lat .xtick', (t) => t.map((x) => x.textContent))).some((t) => /ms|µs/.test(t)));
    assert.deepEqual(await page.$$eval('#hits .ytick', (t) => t.map((x) => x.textContent)), ['0%', '25%', '50%', '75%', '100%']);
    assert.match(await page.$eval('#final', (e) => e.textContent), /^100\.0%$/);
    assert.match(await page.$eval('#summary', (e) => e.textContent), /not sent to inference/);
    const out = path.join(buildDir(), 'test-output');
    await page.screenshot({ path: path.join(out, 'replay-report.png'), fullPage: true });
  } finally {
    await browser.close();
  }
});

test('bad input: a clear message, exit status 2, nothing sent', async () => {
  const dir = tempDir('llmc-replay-');
  const bad = path.join(dir, 'bad.jsonl');
  const good = JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'hi' }] });
  const before = mock.stats.total;
  const cases = [
    [[good, good, '{"model": "x", "messages": [}'].join('\n'), /bad\.jsonl:3: not a JSON object/],
    [[good, '[1, 2]'].join('\n'), /bad\.jsonl:2: not a JSON object \(another JSON value\)/],
    [JSON.stringify({ messages: [] }), /bad\.jsonl:1: the request has no "model"/],
    [JSON.stringify({ model: 'm', foo: 1 }), /bad\.jsonl:1: not an OpenAI request/],
    [JSON.stringify({ t: -1, request: { model: 'm', prompt: 'x' } }), /bad\.jsonl:1: "t" must be a number of seconds >= 0/],
    ['', /no requests in the workload/],
  ];
  for (const [content, msg] of cases) {
    writeFileSync(bad, content);
    const r = await replay([bad, '--target', d.url]);
    assert.equal(r.status, 2, `${content}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  writeFileSync(bad, good);
  for (const [args, msg] of [
    [['--target', 'ftp://example.com/v1'], /--target: 'ftp:\/\/example\.com\/v1' is not an http:\/\/ or https:\/\/ URL/],
    [['--target', 'not a url'], /--target: 'not a url' is not an http/],
    [['--target', d.url, '--direct', 'http//oops'], /--direct: 'http\/\/oops' is not an http/],
    [['--target', d.url, '--prices', 'stories260K=cheap'], /--prices: expected MODEL=IN\/OUT/],
    [['--target', d.url, '--concurrency', '0'], /--concurrency: expected 1 to 10000/],
    [['--target', d.url, '--frobnicate'], /unknown option '--frobnicate'/],
    [['--target'], /--target needs a value/],
  ]) {
    const r = await replay([bad, ...args]);
    assert.equal(r.status, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
  assert.equal((await replay([path.join(dir, 'missing.jsonl'), '--target', d.url])).status, 2);
  assert.equal(mock.stats.total, before, 'nothing was sent upstream');
  // nobody listening: exit status 1 and the reason
  const r = await replay([bad, '--target', `http://127.0.0.1:${await freePort()}/v1`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Couldn't connect to server|Connection refused/i);
  assert.match(r.stderr, /no request to http:\/\/127\.0\.0\.1:\d+\/v1 got an answer/);
});
