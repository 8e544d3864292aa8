// dashboard.test.mjs — the /dashboard page, served by the real daemon: the
// page and its script are served without the token and reference nothing
// off the machine; the script's functions turn a real /stats into the
// numbers shown; and the page's script, run against a small stand-in for
// the browser's DOM, fills the page from the daemon's /stats.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, startDaemon, request, sleep } from './helpers.mjs';

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
});

/** A stand-in for the few browser APIs the page uses. */
function fakeBrowser(origin, token) {
  const els = new Map();
  const el = (id) => {
    if (!els.has(id)) els.set(id, { id, textContent: '', value: '', attrs: {}, listeners: {},
      setAttribute(k, v) { this.attrs[k] = v; }, addEventListener(k, f) { this.listeners[k] = f; } });
    return els.get(id);
  };
  const store = new Map(token ? [['llmcached-token', token]] : []);
  const timers = [];
  const realFetch = globalThis.fetch;
  const g = {
    document: { getElementById: el },
    sessionStorage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) },
    fetch: (u, o) => realFetch(new URL(u, origin), o),
    setInterval: (f) => { timers.push(f); return timers.length; },
  };
  return { g, el, store, timers };
}

async function withGlobals(g, f) {
  const saved = {};
  for (const k of Object.keys(g)) { saved[k] = globalThis[k]; Object.defineProperty(globalThis, k, { value: g[k], configurable: true, writable: true }); }
  try { return await f(); } finally {
    for (const k of Object.keys(g)) Object.defineProperty(globalThis, k, { value: saved[k], configurable: true, writable: true });
  }
}

test('the page script fills the page from /stats, and says so when the token is wrong', async () => {
  const js = (await request(`${d.origin}/dashboard.js`, { method: 'GET' })).text;
  const st = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json;
  // A token kept from an earlier visit: the page polls at once.
  const b = fakeBrowser(d.origin, d.adminToken);
  await withGlobals(b.g, async () => {
    await load(js);
    for (let i = 0; i < 50 && !b.el('hit_rate').textContent.includes('%'); i++) await sleep(20);
  });
  const rate = (st.hits_exact + st.hits_semantic) / st.lookups;
  assert.match(b.el('hit_rate').textContent, /^\d+\.\d%$/);
  assert.ok(Math.abs(parseFloat(b.el('hit_rate').textContent) - 100 * rate) < 15, b.el('hit_rate').textContent);
  assert.match(b.el('hit_p99').textContent, /(µs|ms) \/ /);
  assert.match(b.el('speedup').textContent, /^\d+×$/);
  assert.match(b.el('path_hits').attrs.d, /^M0,/);
  assert.equal(b.el('err').textContent, '');
  assert.equal(b.timers.length, 1, 'polls every 2 s');
  // A wrong token typed into the form: an error on the page, no numbers.
  const w = fakeBrowser(d.origin, null);
  await withGlobals(w.g, async () => {
    await load(js);
    w.el('token').value = 'not-the-token';
    w.el('login').listeners.submit({ preventDefault() {} });
    for (let i = 0; i < 50 && !w.el('err').textContent; i++) await sleep(20);
  });
  assert.equal(w.el('err').textContent, 'wrong admin token');
  assert.equal(w.el('hit_rate').textContent, '');
  assert.equal(w.store.get('llmcached-token'), 'not-the-token');
});
