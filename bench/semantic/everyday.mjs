// bench/semantic/everyday.mjs — the semantic tier on the paraphrases people type.
//
// tests/data/everyday.jsonl is the team's own set (issue 11), written by hand
// for this project: groups of questions that support bots, assistants and RAG
// front-ends get, each asked first in one wording (stored: a MISS answered
// by the mock upstream), then in several other wordings (casing, punctuation,
// contractions, rewordings: each should be served the group's answer), then
// as near-misses that must not be served (another entity, number, antonym,
// open vs close, enable vs disable). Everything goes through the real daemon
// over HTTP, in file order, against the mock upstream, whose answers name the
// request they answer (mock[h=...]), so a served answer is checked against the
// one the group's first question got.
//
// Groups are split in two halves by the file's "split" field: "tune" (odd
// groups; used while choosing settings) and "report" (even groups; the figures
// to quote). Prints, per half: paraphrases served right / served wrong, the
// same for rewordings only (paraphrases that still differ after case,
// punctuation and contraction folding), and near-misses served; and the
// reasons the misses gave (X-LLM-Cache-Reason).
//
//   LLMCACHED_BUILD=build/rel node bench/semantic/everyday.mjs [FILE] [-- daemon args]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnMock, startDaemon } from '../../tests/integration/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const file = (dash >= 0 ? argv.slice(0, dash) : argv)[0] || path.join(here, '../../tests/data/everyday.jsonl');
const groups = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

// What normalisation alone makes equal (a rough copy, only to label rows).
const fold = (s) => s.toLowerCase().replace(/[’‘]/g, "'").replace(/\bwhat's\b/g, 'what is')
  .replace(/\bwhere's\b/g, 'where is').replace(/\bwho's\b/g, 'who is').replace(/\s+/g, ' ')
  .replace(/[\s.?!,;:]+$/, '').trim();

const mock = await spawnMock();
const d = await startDaemon({ upstream: mock.url,
  args: ['--persist', 'no', '--log-level', 'warn', '--semantic-budget', '10s', ...extra] });

async function ask(text) {
  const r = await fetch(`${d.url}/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer everyday' },
    body: JSON.stringify({ model: 'mock-gpt', temperature: 0, messages: [{ role: 'user', content: text }] }) });
  const j = await r.json();
  return { status: r.status, cache: r.headers.get('x-llm-cache'), reason: r.headers.get('x-llm-cache-reason') || '',
    sim: r.headers.get('x-llm-cache-similarity'), content: j.choices?.[0]?.message?.content ?? '' };
}

const zero = () => ({ para: 0, right: 0, wrong: 0, rew: 0, rewRight: 0, rewWrong: 0, near: 0, nearServed: 0, bypass: 0 });
const tally = { tune: zero(), report: zero() };
const reasons = {};
const wrongs = [];
const missed = [];
for (const g of groups) {
  const t = tally[g.split] || (tally[g.split] = zero());
  const first = await ask(g.ask);
  if (first.status !== 200 || first.cache === 'BYPASS') { t.bypass++; console.log(`  BYPASS (${first.reason}): ${g.ask}`); continue; }
  for (const p of g.paraphrases) {
    const r = await ask(p);
    const reworded = fold(p) !== fold(g.ask);
    t.para++; t.rew += reworded;
    const hit = r.cache && r.cache.startsWith('HIT');
    if (hit && r.content === first.content) { t.right++; t.rewRight += reworded; }
    else if (hit) { t.wrong++; t.rewWrong += reworded; wrongs.push(`paraphrase served another answer: ${p}`); }
    else {
      const k = r.reason.replace(/\(.*\)/, '').replace(/ \d.*$/, '').trim() || '(none)';
      reasons[k] = (reasons[k] || 0) + 1;
      missed.push(`${g.split} ${r.reason.padEnd(44)} ${g.ask} | ${p}`);
    }
  }
  for (const n of g.near_misses) {
    const r = await ask(n);
    t.near++;
    if (r.cache && r.cache.startsWith('HIT')) { t.nearServed++; wrongs.push(`near-miss served (${r.sim}): ${n}  [stored: ${g.ask}]`); }
  }
}
const pct = (a, b) => (b ? (100 * a / b).toFixed(1) : '-') + '%';
console.log(`everyday set ${path.relative(process.cwd(), file)}: ${groups.length} groups; daemon defaults${extra.length ? ' + ' + extra.join(' ') : ''}`);
console.log('half    | paraphrases served right / wrong | rewordings only: right / wrong | near-misses served');
for (const [k, t] of Object.entries(tally))
  console.log(`${k.padEnd(7)} | ${String(t.para).padStart(4)}: ${pct(t.right, t.para).padStart(6)} / ${pct(t.wrong, t.para).padStart(5)}`
    + `          | ${String(t.rew).padStart(4)}: ${pct(t.rewRight, t.rew).padStart(6)} / ${pct(t.rewWrong, t.rew).padStart(5)}`
    + `        | ${String(t.near).padStart(4)}: ${pct(t.nearServed, t.near)}${t.bypass ? `  (${t.bypass} groups bypassed)` : ''}`);
console.log('reasons paraphrases missed (X-LLM-Cache-Reason):', JSON.stringify(reasons));
if (process.env.VERBOSE) for (const m of missed) console.log('  MISS', m);
for (const w of wrongs) console.log('  WRONG', w);
await d.stop();
await mock.close();
