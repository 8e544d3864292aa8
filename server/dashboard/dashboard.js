// dashboard.js — the /dashboard page: polls /stats with the admin token and
// shows what the cache is worth.
//
// Design: everything the page shows is computed by pure functions
// (summarize, models, backends, tierRates, chart, the formats), exported so
// that tests/integration/dashboard.test.mjs checks them against a real
// daemon and then checks the page itself in a real (headless) Chromium.
// main() only polls, keeps the history and writes the results into the DOM.
// Invariants: nothing is loaded from anywhere but this daemon; every text
// that comes from /stats (model names, backend URLs) is escaped before it
// goes into markup; a value that is not known yet shows as '–', never 0.

/** The numbers the page shows, from one /stats object. */
export function summarize(st) {
  const lat = st.latency_seconds || {};
  const hit = lat.hit || {};
  const up = lat.upstream || {};
  let tokens = 0;
  let cost = 0;
  for (const m of Object.values(st.models || {})) {
    tokens += (m.tokens_saved_prompt || 0) + (m.tokens_saved_completion || 0);
    cost += m.cost_saved || 0;
  }
  const v = st.verify;
  const rate = (t) => (t && t.same + t.changed > 0 ? t.changed / (t.same + t.changed) : null);
  return {
    version: st.version,
    lookups: st.lookups || 0,
    hitRate: st.lookups > 0 ? (st.hits_exact + st.hits_semantic) / st.lookups : null,
    hitsExact: st.hits_exact || 0,
    hitsSemantic: st.hits_semantic || 0,
    hitP50: hit.p50 ?? null,
    hitP99: hit.p99 ?? null,
    upstreamP50: up.p50 ?? null,
    upstreamP99: up.p99 ?? null,
    speedup: hit.p50 > 0 && up.p50 > 0 ? up.p50 / hit.p50 : null,
    tokensSaved: tokens,
    costSaved: cost,
    staleRate: v ? rate(v.exact) : null,
    semanticChangedRate: v ? rate(v.semantic) : null,
    entries: st.store ? st.store.entries : null,
    bytes: st.store ? st.store.bytes : null,
    maxBytes: st.store ? st.store.max_bytes : null,
  };
}

/** One row per model of /stats: requests, hit rate, tokens and money saved; most requests first. */
export function models(st) {
  return Object.entries(st.models || {})
    .map(([name, m]) => {
      const req = (m.hit_exact || 0) + (m.hit_semantic || 0) + (m.miss || 0) + (m.bypass || 0);
      return {
        name,
        requests: req,
        hitRate: req > 0 ? ((m.hit_exact || 0) + (m.hit_semantic || 0)) / req : null,
        hitsExact: m.hit_exact || 0,
        hitsSemantic: m.hit_semantic || 0,
        tokensSaved: (m.tokens_saved_prompt || 0) + (m.tokens_saved_completion || 0),
        costSaved: m.cost_saved || 0,
      };
    })
    .sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name));
}

/** One row per upstream backend (several --upstream): health, load and the engine's scraped figures. */
export function backends(st) {
  return (st.backends || []).map((b) => ({
    url: b.url,
    healthy: !!b.healthy,
    inflight: b.inflight ?? 0,
    requests: b.requests ?? 0,
    failures: b.failures ?? 0,
    scraped: b.prefix_cache_queries !== undefined,
    prefixHitRate: b.prefix_cache_hit_rate ?? null,
    kvUsage: b.kv_cache_usage ?? null,
    running: b.requests_running ?? null,
  }));
}

/** Hit rate of each tier between two /stats (null when no lookup happened in between). */
export function tierRates(prev, cur) {
  const dl = prev ? (cur.lookups || 0) - (prev.lookups || 0) : cur.lookups || 0;
  if (!(dl > 0)) return { exact: null, semantic: null };
  const de = (cur.hits_exact || 0) - (prev ? prev.hits_exact || 0 : 0);
  const ds = (cur.hits_semantic || 0) - (prev ? prev.hits_semantic || 0 : 0);
  return { exact: de / dl, semantic: ds / dl };
}

/** An SVG path through values scaled into w x h (y up; null or NaN: a gap). */
export function sparkline(values, w, h, { log = false, min, max } = {}) {
  const f = (x) => (x == null || Number.isNaN(x) || (log && x <= 0) ? null : log ? Math.log10(x) : x);
  const ys = values.map(f);
  const real = ys.filter((y) => y != null);
  if (!real.length) return '';
  const lo = min != null ? f(min) : Math.min(...real);
  const hi = max != null ? f(max) : Math.max(...real);
  const span = hi - lo || 1;
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  let d = '';
  let pen = false;
  ys.forEach((y, i) => {
    if (y == null) { pen = false; return; }
    const px = +(i * step).toFixed(2);
    const py = +(h - ((y - lo) / span) * h).toFixed(2);
    d += `${pen ? 'L' : 'M'}${px},${py}`;
    pen = true;
  });
  return d;
}

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** The last value that is a number, or null. */
export function last(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null && !Number.isNaN(values[i])) return values[i];
  return null;
}

/**
 * A line chart as SVG markup: y axis with labelled ticks (linear, or one tick
 * per decade on a log scale), x axis in seconds before now, one line per
 * series and a legend with each series' current value.
 *   series: [{ name, color, values }]  (values: one per sample, null = gap)
 *   opts: { times (ms, one per sample), now (ms), yLabel, fmt (tick and value
 *          format), log, min, max, w, h }
 */
export function chart(series, opts) {
  const { times = [], now = Date.now(), yLabel = '', fmt = String, log = false } = opts;
  const W = opts.w || 640, H = opts.h || 200, L = 64, R = 12, T = 10, B = 30;
  const pw = W - L - R, ph = H - T - B;
  const all = series.flatMap((s) => s.values).filter((v) => v != null && !Number.isNaN(v) && (!log || v > 0));
  let lo = opts.min, hi = opts.max;
  if (lo == null) lo = all.length ? Math.min(...all) : log ? 1e-4 : 0;
  if (hi == null) hi = all.length ? Math.max(...all) : 1;
  let ticks = [];
  if (log) {
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.ceil(Math.log10(hi));
    if (hi <= lo) hi = lo * 10;
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    if (hi <= lo) hi = lo + 1;
    for (let i = 0; i <= 4; i++) ticks.push(lo + ((hi - lo) * i) / 4);
  }
  const y = (v) => {
    const f = log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo);
    return +(T + ph - f * ph).toFixed(2);
  };
  const span = Math.max(times.length ? now - times[0] : 0, 60000);
  const x = (t) => +(L + pw - ((now - t) / span) * pw).toFixed(2);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(yLabel)}">`;
  svg += `<g class="axis" stroke="#bbb">`;
  svg += `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}"/><line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}"/></g>`;
  for (const t of ticks) {
    const yy = y(t);
    svg += `<line x1="${L}" x2="${L + pw}" y1="${yy}" y2="${yy}" stroke="#eee"/>`;
    svg += `<text class="ytick" x="${L - 4}" y="${yy + 4}" text-anchor="end">${esc(fmt(t))}</text>`;
  }
  const steps = span >= 240000 ? 60000 : 30000;
  for (let a = 0; a <= span; a += steps) {
    const xx = x(now - a);
    svg += `<line x1="${xx}" x2="${xx}" y1="${T + ph}" y2="${T + ph + 4}" stroke="#bbb"/>`;
    svg += `<text class="xtick" x="${xx}" y="${T + ph + 16}" text-anchor="middle">${a ? `-${a / 1000}s` : 'now'}</text>`;
  }
  svg += `<text class="ylabel" x="12" y="${T + ph / 2}" transform="rotate(-90 12 ${T + ph / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
  for (const s of series) {
    let d = '', pen = false;
    s.values.forEach((v, i) => {
      if (v == null || Number.isNaN(v) || (log && v <= 0) || times[i] == null) { pen = false; return; }
      const vv = Math.min(Math.max(v, lo), hi);
      d += `${pen ? 'L' : 'M'}${x(times[i])},${y(vv)}`;
      pen = true;
    });
    svg += `<path class="line" d="${d}" fill="none" stroke="${esc(s.color)}" stroke-width="1.8"/>`;
    // a dot on the current value (a single sample draws no line)
    for (let i = s.values.length - 1; i >= 0; i--) {
      const v = s.values[i];
      if (v == null || Number.isNaN(v) || (log && v <= 0) || times[i] == null) continue;
      svg += `<circle cx="${x(times[i])}" cy="${y(Math.min(Math.max(v, lo), hi))}" r="3" fill="${esc(s.color)}"/>`;
      break;
    }
  }
  svg += '</svg>';
  const legend = series.map((s) => `<span class="key"><i style="background:${esc(s.color)}"></i>${esc(s.name)}: <b class="now">${esc(fmtValue(last(s.values), fmt))}</b></span>`).join('');
  return `${svg}<div class="legend">${legend}</div>`;
}

const fmtValue = (v, fmt) => (v == null ? '–' : fmt(v));

export function fmtPct(x) { return x == null ? '–' : `${(100 * x).toFixed(1)}%`; }
export function fmtSeconds(s) {
  if (s == null) return '–';
  return s < 1e-3 ? `${(s * 1e6).toFixed(0)} µs` : s < 1 ? `${(s * 1e3).toFixed(1)} ms` : `${s.toFixed(2)} s`;
}
export function fmtBytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
/** Money with enough precision for small savings (at least two significant
 *  digits below a dollar): $0.0012, $0.00036, $0.000075, $12.34. */
export function fmtMoney(x) {
  if (x == null) return '–';
  if (x === 0) return '$0.00';
  if (Math.abs(x) >= 1) return `$${x.toFixed(2)}`;
  const decimals = Math.min(8, Math.max(4, 1 - Math.floor(Math.log10(Math.abs(x)))));
  return `$${x.toFixed(decimals)}`;
}
export function fmtInt(n) { return n == null ? '–' : String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }

const HISTORY = 150; // samples kept: 5 minutes at one every 2 s
const GREEN = '#1a7f4b', BLUE = '#2563eb', GREY = '#777', ORANGE = '#d97706';

function main() {
  const $ = (id) => document.getElementById(id);
  const hist = { t: [], exact: [], semantic: [], hitP50: [], hitP99: [], upP50: [], upP99: [] };
  let token = sessionStorage.getItem('llmcached-token') || '';
  let timer = null;
  let prev = null;
  const set = (id, text) => { $(id).textContent = text; };
  function fail(msg) {
    set('err', msg);
    $('content').hidden = true;
  }
  async function poll() {
    let st;
    try {
      const r = await fetch('/stats', { headers: { authorization: `Bearer ${token}` } });
      if (r.status === 401) {
        fail('Wrong admin token: /stats refused it (401). Enter the token the daemon was started with (--admin-token, or the one it logged at start).');
        return;
      }
      if (!r.ok) { fail(`/stats answered HTTP ${r.status}`); return; }
      st = await r.json();
    } catch (e) { fail(`cannot reach /stats: ${e}`); return; }
    set('err', '');
    $('content').hidden = false;
    const s = summarize(st);
    set('version', s.version ? `${s.version}${st.demo_upstream ? ' (demo upstream)' : ''}` : '');
    set('hit_rate', fmtPct(s.hitRate));
    set('lookups', fmtInt(s.lookups));
    set('hits', `${fmtInt(s.hitsExact)} / ${fmtInt(s.hitsSemantic)}`);
    set('hit_p99', `${fmtSeconds(s.hitP50)} / ${fmtSeconds(s.hitP99)}`);
    set('up_p99', `${fmtSeconds(s.upstreamP50)} / ${fmtSeconds(s.upstreamP99)}`);
    set('speedup', s.speedup == null ? '–' : `${s.speedup.toFixed(0)}×`);
    set('tokens_saved', fmtInt(s.tokensSaved));
    set('money_saved', fmtMoney(s.costSaved));
    set('stale', fmtPct(s.staleRate));
    set('changed', fmtPct(s.semanticChangedRate));
    set('entries', `${fmtInt(s.entries)} / ${fmtBytes(s.bytes)}`);
    set('budget', s.maxBytes ? `${fmtPct(s.bytes / s.maxBytes)} of ${fmtBytes(s.maxBytes)}` : '–');

    const tr = tierRates(prev, st);
    prev = st;
    const row = { t: Date.now(), exact: tr.exact, semantic: tr.semantic, hitP50: s.hitP50, hitP99: s.hitP99, upP50: s.upstreamP50, upP99: s.upstreamP99 };
    for (const k of Object.keys(hist)) {
      hist[k].push(row[k]);
      if (hist[k].length > HISTORY) hist[k].shift();
    }
    $('chart_hits').innerHTML = chart([
      { name: 'exact', color: GREEN, values: hist.exact },
      { name: 'semantic', color: BLUE, values: hist.semantic },
    ], { times: hist.t, yLabel: 'hit rate (%)', fmt: (v) => `${Math.round(v * 100)}%`, min: 0, max: 1 });
    $('chart_lat').innerHTML = chart([
      { name: 'hit p50', color: GREEN, values: hist.hitP50 },
      { name: 'hit p99', color: '#7cc49b', values: hist.hitP99 },
      { name: 'upstream p50', color: GREY, values: hist.upP50 },
      { name: 'upstream p99', color: ORANGE, values: hist.upP99 },
    ], { times: hist.t, yLabel: 'seconds (log scale)', fmt: fmtSeconds, log: true });

    $('models').innerHTML = models(st).map((m) => `<tr><td>${esc(m.name)}</td><td class="n">${fmtInt(m.requests)}</td>` +
      `<td class="n">${fmtPct(m.hitRate)}</td><td class="n">${fmtInt(m.hitsExact)} / ${fmtInt(m.hitsSemantic)}</td>` +
      `<td class="n">${fmtInt(m.tokensSaved)}</td><td class="n">${fmtMoney(m.costSaved)}</td></tr>`).join('') ||
      '<tr><td colspan="6">no requests yet</td></tr>';
    const bs = backends(st);
    $('backends_panel').hidden = bs.length === 0;
    set('route_policy', st.route_policy || '');
    $('backends').innerHTML = bs.map((b) => `<tr><td>${esc(b.url)}</td>` +
      `<td class="${b.healthy ? 'up' : 'down'}">${b.healthy ? 'healthy' : 'down'}</td>` +
      `<td class="n">${fmtInt(b.requests)}</td><td class="n">${fmtInt(b.failures)}</td><td class="n">${fmtInt(b.inflight)}</td>` +
      `<td class="n">${b.scraped ? fmtPct(b.prefixHitRate) : '–'}</td><td class="n">${b.scraped ? fmtPct(b.kvUsage) : '–'}</td>` +
      `<td class="n">${b.scraped ? fmtInt(b.running) : '–'}</td></tr>`).join('');
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value;
    sessionStorage.setItem('llmcached-token', token);
    if (!timer) timer = setInterval(poll, 2000);
    poll();
  });
  if (token) { timer = setInterval(poll, 2000); poll(); }
}

if (typeof document !== 'undefined') main();
