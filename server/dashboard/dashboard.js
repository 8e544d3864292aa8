// dashboard.js — the /dashboard page: polls /stats with the admin token and
// shows what the cache is worth. The pure functions are exported so that
// tests/integration/dashboard.test.mjs checks them against a real daemon.

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
  };
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

const HISTORY = 150; // samples kept: 5 minutes at one every 2 s

function main() {
  const $ = (id) => document.getElementById(id);
  const hist = { hit: [], up: [], rate: [] };
  let token = sessionStorage.getItem('llmcached-token') || '';
  let timer = null;
  const set = (id, text) => { $(id).textContent = text; };
  async function poll() {
    let st;
    try {
      const r = await fetch('/stats', { headers: { authorization: `Bearer ${token}` } });
      if (r.status === 401) { set('err', 'wrong admin token'); return; }
      if (!r.ok) { set('err', `/stats: HTTP ${r.status}`); return; }
      st = await r.json();
    } catch (e) { set('err', String(e)); return; }
    set('err', '');
    const s = summarize(st);
    set('version', s.version || '');
    set('hit_rate', fmtPct(s.hitRate));
    set('hits', `${s.hitsExact} / ${s.hitsSemantic}`);
    set('hit_p99', `${fmtSeconds(s.hitP50)} / ${fmtSeconds(s.hitP99)}`);
    set('up_p99', `${fmtSeconds(s.upstreamP50)} / ${fmtSeconds(s.upstreamP99)}`);
    set('speedup', s.speedup == null ? '–' : `${s.speedup.toFixed(0)}×`);
    set('saved', `${s.tokensSaved} / ${s.costSaved.toFixed(2)}`);
    set('stale', fmtPct(s.staleRate));
    set('changed', fmtPct(s.semanticChangedRate));
    set('entries', `${s.entries ?? '–'} / ${fmtBytes(s.bytes)}`);
    for (const [k, x] of [['rate', s.hitRate], ['hit', s.hitP99], ['up', s.upstreamP99]]) {
      hist[k].push(x);
      if (hist[k].length > HISTORY) hist[k].shift();
    }
    $('path_hits').setAttribute('d', sparkline(hist.rate, 600, 90, { min: 0, max: 1 }));
    const all = hist.hit.concat(hist.up).filter((x) => x > 0);
    const range = all.length ? { log: true, min: Math.min(...all), max: Math.max(...all) } : { log: true };
    $('path_hit').setAttribute('d', sparkline(hist.hit, 600, 90, range));
    $('path_up').setAttribute('d', sparkline(hist.up, 600, 90, range));
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
