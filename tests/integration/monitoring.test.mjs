// monitoring.test.mjs — what a Prometheus/Grafana user installs from
// contrib/: the alerting rules pass `promtool check rules` and their unit
// tests (`promtool test rules`); the daemon's /metrics, with two real engines
// behind it, passes `promtool check metrics` with no warning; and every
// PromQL expression of the Grafana dashboard parses (each is wrapped in a
// recording rule and checked by promtool) and names only metrics that the
// daemon's or the engines' /metrics really export.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, startEngine, engineModel, request, repoRoot, tempDir, sleep } from './helpers.mjs';

const PROM = path.join(repoRoot, 'contrib/prometheus');
const GRAFANA = path.join(repoRoot, 'contrib/grafana/llmcached.json');
const skipEngines = engineModel.skip;

/** promtool ARGS (stdin: input), as { code, out }. promtool comes with Debian's prometheus (test deps). */
function promtool(args, input) {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 60000 });
  assert.ok(!r.error, `promtool: ${r.error} (scripts/deps.sh test installs Debian's prometheus)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The sample names of a Prometheus text exposition. */
const sampleNames = (text) => new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)[0]));

let engines = [], d, metricsText = '', engineText = '';
before(async () => {
  if (skipEngines) return;
  engines = await Promise.all([startEngine(), startEngine()]);
  d = await startDaemon({
    args: [...engines.flatMap((e) => ['--upstream', `${e.base}/v1`]), '--semantic', 'no', '--health-interval', '200ms',
      '--verify-rate', '1', '--prices', 'stories260K=3/15'],
  });
  for (let i = 0; i < 3; i++) {
    const r = await request(`${d.url}/completions`, { body: { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 64, stop: ['.'], temperature: 0 } });
    assert.equal(r.status, 200, r.text);
  }
  await sleep(600); // a few health intervals: the engines' metrics are scraped
  metricsText = (await request(`${d.origin}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).text;
  engineText = (await request(`${engines[0].base}/metrics`, { method: 'GET' })).text;
});
after(async () => {
  if (skipEngines) return;
  const r = await d.stop();
  for (const e of engines) await e.stop();
  assert.equal(r.code, 0, r.output.slice(-2000));
});

test('the alerting rules pass promtool check rules and their unit tests', () => {
  const c = promtool(['check', 'rules', path.join(PROM, 'llmcached.rules.yml')]);
  assert.equal(c.code, 0, c.out);
  assert.match(c.out, /SUCCESS: 7 rules found/);
  for (const a of ['LlmcachedDown', 'LlmcachedUpstreamErrorRate', 'LlmcachedHitRateCollapse', 'LlmcachedStoreNearBudget',
    'LlmcachedPersistenceErrors', 'LlmcachedBackendDown']) {
    assert.match(readFileSync(path.join(PROM, 'llmcached.rules.test.yml'), 'utf8'), new RegExp(`alertname: ${a}\\n`), `${a} is unit-tested`);
  }
  const r = spawnSync('promtool', ['test', 'rules', 'llmcached.rules.test.yml'], { cwd: PROM, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // The unit tests can fail: the same tests against a rule file whose
  // upstream-error threshold is ten times higher do.
  const dir = tempDir('llmc-rules-');
  writeFileSync(path.join(dir, 'llmcached.rules.yml'),
    readFileSync(path.join(PROM, 'llmcached.rules.yml'), 'utf8').replace('rate(llmcached_upstream_calls_total[5m])) > 0.05\n', 'rate(llmcached_upstream_calls_total[5m])) > 0.5\n'));
  writeFileSync(path.join(dir, 't.yml'), readFileSync(path.join(PROM, 'llmcached.rules.test.yml')));
  const bad = spawnSync('promtool', ['test', 'rules', 't.yml'], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stdout + bad.stderr, /LlmcachedUpstreamErrorRate/);
});

test('/metrics with two engines behind the daemon passes promtool check metrics with no warning', { skip: skipEngines }, () => {
  for (const m of ['llmcached_lookups_total', 'llmcached_backend_healthy', 'llmcached_backend_kv_cache_usage',
    'llmcached_persist_errors_total', 'llmcached_verify_total', 'llmcached_cost_saved_total']) {
    assert.ok(sampleNames(metricsText).has(m), `${m} in /metrics`);
  }
  const r = promtool(['check', 'metrics'], metricsText);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out.trim(), '', `promtool check metrics warned:\n${r.out}`);
  // and it does warn: a counter without _total
  const w = promtool(['check', 'metrics'], '# HELP x_count_bad a.\n# TYPE x_count_bad counter\nx_count_bad 1\n');
  assert.match(w.out, /counter metrics should have "_total" suffix/);
});

/** Every PromQL expression of the dashboard, with Grafana's variables given values. */
function grafanaExprs() {
  const dash = JSON.parse(readFileSync(GRAFANA, 'utf8'));
  const out = [];
  const walk = (panels) => {
    for (const p of panels) {
      for (const t of p.targets || []) out.push({ panel: p.title, expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(dash.panels);
  const vars = { __rate_interval: '5m', __range: '6h', __interval: '1m', instance: '.*' };
  return out.map(({ panel, expr }) => ({ panel, expr: expr.replace(/\$\{?(\w+)(?::\w+)?\}?/g, (m, v) => vars[v] ?? m) }));
}

function checkExprs(exprs) {
  const dir = tempDir('llmc-grafana-');
  const file = path.join(dir, 'exprs.rules.yml');
  writeFileSync(file, `groups:\n  - name: grafana\n    rules:\n${exprs.map((e, i) =>
    `      - record: grafana_expr_${i}\n        expr: ${JSON.stringify(e.expr)}\n`).join('')}`);
  return promtool(['check', 'rules', file]);
}

test('every PromQL expression of the Grafana dashboard parses', () => {
  const exprs = grafanaExprs();
  assert.ok(exprs.length >= 30, `${exprs.length} expressions`);
  for (const e of exprs) assert.doesNotMatch(e.expr, /\$/, `a variable left in ${e.panel}: ${e.expr}`);
  const r = checkExprs(exprs);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  // A broken expression is caught.
  const bad = checkExprs([{ expr: 'sum by (model (rate(llmcached_lookups_total[5m]))' }]);
  assert.notEqual(bad.code, 0);
  // Each subject the issue asks for has a panel.
  const titles = exprs.map((e) => e.panel).join('\n');
  for (const t of [/Hit rate by tier/, /Hit rate by model/, /Hit vs upstream latency/, /Tokens saved/, /Money saved/,
    /answers changed upstream/, /Store size/, /Evictions/, /Prefix cache hit rate per (backend|engine)/, /KV cache usage/]) {
    assert.match(titles, t);
  }
});

test('the Grafana dashboard names only metrics that /metrics exports (ours and the engines\' vllm:*)', { skip: skipEngines }, () => {
  const ours = sampleNames(metricsText), theirs = sampleNames(engineText);
  const named = new Set();
  const dash = readFileSync(GRAFANA, 'utf8');
  for (const e of grafanaExprs()) for (const m of e.expr.matchAll(/\b(llmcached_[a-z_]+|vllm:[a-z_:]+)/g)) named.add(m[1]);
  for (const m of dash.matchAll(/label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) named.add(m[1]);
  assert.ok(named.size >= 20, [...named].join(' '));
  const missing = [...named].filter((m) => !(m.startsWith('vllm:') ? theirs : ours).has(m));
  assert.deepEqual(missing, [], `named by the dashboard, exported by nobody: ${missing.join(', ')}`);
});
