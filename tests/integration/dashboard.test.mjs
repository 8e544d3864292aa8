// dashboard.test.mjs — the /dashboard page, served by the real daemon: the
// page and its script are served without the token and reference nothing
// off the machine; the script's functions turn a real /stats into the
// numbers shown; and the page itself, in a real headless Chromium (Debian's
// chromium driven by puppeteer-core), fills its cards, charts, per-model
// table and per-backend panel from a daemon with two real engines behind
// it, matching /stats, with no console error; a wrong token says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startMock, startDaemon, startEngine, engineModel, request, buildDir, tempDir } from './helpers.mjs';

let mock, d;
before(async () => {
  mock = await startMock();
  d = await startDaemon({ upstream: mock.url, args: ['--semantic', 'no', '--persist', 'no', '--prices', 'mock-gpt=2/8'] });
});
after(async () => {
  const r = await d.stop();
  await mock.close();
  assert.equal(r.code, 0, r.output.slice(-2000));
});

const ask = (content) =>
  request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-dash' }, body: { model: 'mock-gpt', messages: [{ role: 'user', content }] } });
let seq = 0;
const load = async (js) => import(`data:text/javascript;charset=utf-8,${encodeURIComponent(js)}%2F%2F${++seq}`);

test('the page and its script are served without a token, and load nothing from elsewhere', async () => {
  const page = await request(`${d.origin}/dashboard`, { method: 'GET' });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.text, /<script type="module" src="\/dashboard.js"><\/script>/);
  const js = await request(`${d.origin}/dashboard.js`, { method: 'GET' });
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  for (const t of [page.text, js.text]) assert.doesNotMatch(t, /(src|href)=["']?https?:|https?:\/\/(?!127)/);
  assert.equal((await request(`${d.origin}/dashboard`, { method: 'POST', body: '{}' })).status, 405);
  // The data still needs the token.
  assert.equal((await request(`${d.origin}/stats`, { method: 'GET' })).status, 401);
});

test('summarize, sparkline and the formats turn /stats into what the page shows', async () => {
  const m = await load((await request(`${d.origin}/dashboard.js`, { method: 'GET' })).text);
  const q = `Which planet has the most moons? ${process.pid}`;
  await ask(q);
  await ask(q);
  await ask(q);
  const st = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
  const s = m.summarize(st);
  assert.equal(s.hitRate, (st.hits_exact + st.hits_semantic) / st.lookups);
  assert.ok(s.hitsExact >= 2);
  const mm = st.models['mock-gpt'];
  assert.equal(s.tokensSaved, mm.tokens_saved_prompt + mm.tokens_saved_completion);
  assert.ok(s.tokensSaved > 0);
  assert.ok(Math.abs(s.costSaved - mm.cost_saved) < 1e-12 && s.costSaved > 0);
  assert.equal(s.speedup, st.latency_seconds.upstream.p50 / st.latency_seconds.hit.p50);
  assert.ok(s.speedup > 1, 'a hit is faster than the upstream');
  assert.equal(s.staleRate, null); // no --verify-rate: nothing measured
  assert.equal(s.entries, st.store.entries);
  // An empty daemon: nothing to divide by.
  assert.equal(m.summarize({ lookups: 0, store: { entries: 0, bytes: 0 } }).hitRate, null);
  assert.equal(m.summarize({ verify: { exact: { same: 3, changed: 1 }, semantic: { same: 0, changed: 0 } } }).staleRate, 0.25);

  assert.equal(m.sparkline([0, 0.5, 1], 100, 10), 'M0,10L50,5L100,0');
  assert.equal(m.sparkline([0, null, 1], 100, 10), 'M0,10M100,0', 'a gap lifts the pen');
  assert.equal(m.sparkline([0.25], 100, 10, { min: 0, max: 1 }), 'M0,7.5');
  assert.equal(m.sparkline([0.001, 0.1], 100, 10, { log: true }), 'M0,10L100,0');
  assert.equal(m.sparkline([null, NaN], 100, 10), '');
  assert.equal(m.fmtPct(0.5), '50.0%');
  assert.equal(m.fmtPct(null), '–');
  assert.equal(m.fmtSeconds(0.00025), '250 µs');
  assert.equal(m.fmtSeconds(0.0123), '12.3 ms');
  assert.equal(m.fmtSeconds(2.5), '2.50 s');
  assert.equal(m.fmtBytes(1536), '1.5 KB');
  assert.equal(m.fmtMoney(0.0012), '$0.0012', 'small savings are not rounded away');
  assert.equal(m.fmtMoney(0.000075), '$0.000075');
  assert.equal(m.fmtMoney(0.00036), '$0.00036');
  assert.equal(m.fmtMoney(0), '$0.00');
  assert.equal(m.fmtMoney(12.345), '$12.35');
  assert.equal(m.fmtInt(1234567), '1,234,567');
  assert.equal(m.esc('<b a="x">&'), '&lt;b a=&quot;x&quot;&gt;&amp;');

  // Per model and per tier.
  const rows = m.models(st);
  const row = rows.find((r) => r.name === 'mock-gpt');
  assert.equal(row.requests, mm.hit_exact + mm.hit_semantic + mm.miss + mm.bypass);
  assert.equal(row.hitRate, (mm.hit_exact + mm.hit_semantic) / row.requests);
  assert.equal(row.costSaved, mm.cost_saved);
  assert.deepEqual(m.tierRates({ lookups: 10, hits_exact: 2, hits_semantic: 1 }, { lookups: 20, hits_exact: 7, hits_semantic: 2 }),
    { exact: 0.5, semantic: 0.1 });
  assert.deepEqual(m.tierRates({ lookups: 10 }, { lookups: 10 }), { exact: null, semantic: null });
  assert.deepEqual(m.backends({}), []);

  // A chart: labelled axes, a log scale by decades, the current values.
  const svg = m.chart([{ name: 'hit p99', color: '#000', values: [0.0002, null, 0.0004] }, { name: 'up', color: '#111', values: [0.3, 0.5, 0.4] }],
    { times: [0, 2000, 4000], now: 4000, yLabel: 'seconds (log scale)', fmt: m.fmtSeconds, log: true });
  const ticks = [...svg.matchAll(/class="ytick"[^>]*>([^<]*)</g)].map((x) => x[1]);
  assert.deepEqual(ticks, ['100 µs', '1.0 ms', '10.0 ms', '100.0 ms', '1.00 s']);
  assert.match(svg, /seconds \(log scale\)/);
  assert.match(svg, /hit p99: <b class="now">400 µs<\/b>/);
  assert.match(svg, /up: <b class="now">400.0 ms<\/b>/);
  assert.equal((svg.match(/<path class="line" d="M[^"]+"/g) || []).length, 2);
});


// ---- in a real browser ----------------------------------------------------

const CHROMIUM = '/usr/bin/chromium';
const browserSkip = engineModel.skip;

async function launch() {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${tempDir('llmc-chromium-')}`],
  });
}

/** A page that records console errors, page errors and failed or 4xx/5xx loads. */
async function watchedPage(browser) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  const requested = [];
  page.on('request', (r) => requested.push(r.url()));
  await page.setViewport({ width: 1280, height: 1100 });
  return { page, problems, requested };
}

test('in Chromium: the token shows cards, charts, models and backends that match /stats, with no console error', { skip: browserSkip, timeout: 120000 }, async () => {
  const engines = await Promise.all([startEngine(), startEngine()]);
  const g = await startDaemon({
    args: [...engines.flatMap((e) => ['--upstream', `${e.base}/v1`]), '--semantic', 'no', '--persist', 'no',
      '--health-interval', '200ms', '--prices', 'stories260K=3/15'],
  });
  const browser = await launch();
  try {
    const ask = (prompt) => request(`${g.url}/completions`, { body: { model: 'stories260K', prompt, max_tokens: 64, stop: ['.'], temperature: 0 } });
    for (const p of ['Once upon a time', 'Once upon a time', 'Once upon a time', 'The little dog']) assert.equal((await ask(p)).status, 200);
    await new Promise((r) => setTimeout(r, 600)); // the engines' metrics are scraped

    const { page, problems, requested } = await watchedPage(browser);
    await page.goto(`${g.origin}/dashboard`, { waitUntil: 'load' });
    assert.equal(await page.$eval('#content', (e) => e.hidden), true, 'nothing shown before the token');
    await page.type('#token', g.adminToken);
    await page.click('#login button');
    await page.waitForFunction(() => document.querySelector('#hit_rate').textContent.includes('%')
      && document.querySelectorAll('#backends tr').length === 2
      && document.querySelector('#chart_lat svg'), { timeout: 20000 });
    // One more poll (2 s) so that the charts have a line.
    await page.waitForFunction(() => document.querySelectorAll('#chart_lat path.line[d*="L"]').length === 4
      && document.querySelectorAll('#chart_hits path.line[d^="M"]').length === 2, { timeout: 10000 });

    const st = (await request(`${g.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${g.adminToken}` } })).json;
    const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
    const mm = st.models.stories260K;
    const rate = (st.hits_exact + st.hits_semantic) / st.lookups;
    assert.equal(await text('#hit_rate'), `${(100 * rate).toFixed(1)}%`);
    assert.equal(await text('#lookups'), String(st.lookups));
    assert.equal(await text('#hits'), `${st.hits_exact} / ${st.hits_semantic}`);
    assert.equal(await text('#tokens_saved'), String(mm.tokens_saved_prompt + mm.tokens_saved_completion));
    assert.ok(mm.cost_saved > 0 && mm.cost_saved < 0.01, `a small saving: ${JSON.stringify(st)}`);
    const money = await text('#money_saved');
    // two significant digits: within 5%
    assert.ok(Math.abs(parseFloat(money.slice(1)) - mm.cost_saved) / mm.cost_saved <= 0.05, `${money} vs ${mm.cost_saved}`);
    assert.match(await text('#entries'), new RegExp(`^${st.store.entries} / `));

    // The per-model table.
    const models = await page.$$eval('#models tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(models[0].slice(0, 3), ['stories260K', String(mm.hit_exact + mm.hit_semantic + mm.miss + mm.bypass),
      `${(100 * (mm.hit_exact + mm.hit_semantic) / (mm.hit_exact + mm.hit_semantic + mm.miss + mm.bypass)).toFixed(1)}%`]);
    assert.equal(models[0][5], money);

    // The per-backend panel: one row per engine, healthy, the engines' figures.
    assert.equal(await page.$eval('#backends_panel', (e) => e.hidden), false);
    const bs = await page.$$eval('#backends tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.equal(bs.length, 2);
    for (let i = 0; i < 2; i++) {
      const b = st.backends[i];
      assert.equal(bs[i][0], b.url);
      assert.equal(bs[i][1], 'healthy');
      assert.equal(bs[i][2], String(b.requests));
      assert.equal(bs[i][5], `${(100 * b.prefix_cache_hit_rate).toFixed(1)}%`);
      assert.equal(bs[i][6], `${(100 * b.kv_cache_usage).toFixed(1)}%`);
    }
    assert.equal(st.backends.reduce((a, b) => a + b.requests, 0), 2, 'two misses went upstream');

    // Charts: axes with labelled ticks and units, the current values.
    const yt = (id) => page.$$eval(`#${id} .ytick`, (ts) => ts.map((t) => t.textContent));
    assert.deepEqual(await yt('chart_hits'), ['0%', '25%', '50%', '75%', '100%']);
    const lat = await yt('chart_lat');
    assert.ok(lat.length >= 2 && lat.every((t) => /^\d+(\.\d+)? (µs|ms|s)$/.test(t)), lat.join(','));
    assert.match(await text('#chart_lat .ylabel'), /log scale/);
    assert.ok((await page.$$eval('#chart_lat .xtick', (ts) => ts.map((t) => t.textContent))).includes('now'));
    assert.match(await text('#chart_lat .legend'), /hit p50: \d/);

    const out = path.join(buildDir(), 'test-output');
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: path.join(out, 'dashboard.png'), fullPage: true });

    assert.deepEqual(problems, [], 'no console error, no failed load (favicon included)');
    assert.ok(requested.every((u) => u.startsWith(g.origin) || u.startsWith('data:')), requested.join('\n'));
    assert.ok(!requested.some((u) => u.endsWith('/favicon.ico')), 'the icon is inline');

    // A wrong token, in a fresh tab: a clear message, no numbers.
    const w = await watchedPage(browser);
    await w.page.goto(`${g.origin}/dashboard`, { waitUntil: 'load' });
    await w.page.type('#token', 'not-the-token');
    await w.page.click('#login button');
    await w.page.waitForFunction(() => document.querySelector('#err').textContent !== '', { timeout: 10000 });
    assert.match(await w.page.$eval('#err', (e) => e.textContent), /^Wrong admin token/);
    assert.equal(await w.page.$eval('#content', (e) => e.hidden), true);
    await w.page.screenshot({ path: path.join(out, 'dashboard-wrong-token.png') });
  } finally {
    await browser.close();
    const r = await g.stop();
    for (const e of engines) await e.stop();
    assert.equal(r.code, 0, r.output.slice(-2000));
  }
});
