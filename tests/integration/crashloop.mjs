// crashloop.mjs — kill -9 under write load, restart, count what was lost
// (issue 16). Used by crashloop.test.mjs (a short run in `make test`) and by
// `make crash-loop CYCLES=N` (node tests/integration/crashloop.mjs N).
//
// One cycle: the daemon (its data directory kept across cycles) answers a
// stream of distinct cacheable requests from C concurrent clients; at a
// random moment 300-1500 ms in, it gets SIGKILL. Every request answered
// 200 MISS before the kill is "acknowledged". After a restart each
// acknowledged request is asked again: HIT-EXACT means its entry survived.
// Bound: with --persist-sync yes nothing acknowledged is lost; by default
// only entries acknowledged within the last --flush-interval before the
// kill may be (plus scheduling slack on a loaded machine, SLACK_MS).
import { startDaemon, startMock, request, sleep } from './helpers.mjs';

const SLACK_MS = 250;

async function cycle(mock, dataDir, sync, flushMs, n) {
  const args = ['--semantic', 'no', '--flush-interval', `${flushMs}ms`, '--persist-sync', sync ? 'yes' : 'no', '--threads', '2'];
  const d = await startDaemon({ upstream: mock.url, dataDir, args });
  const acked = []; // { content, at }
  let stop = false;
  let k = 0;
  const client = async (c) => {
    while (!stop) {
      const content = `crash loop cycle ${n} client ${c} request ${k++} ${process.pid}`;
      try {
        const r = await request(`${d.url}/chat/completions`, { body: { model: 'mock-gpt', messages: [{ role: 'user', content }] }, timeoutMs: 5000 });
        if (r.status === 200 && r.headers.get('x-llm-cache') === 'MISS') acked.push({ content, at: Date.now() });
      } catch { /* killed mid-request: not acknowledged */ }
    }
  };
  const clients = [0, 1, 2, 3].map(client);
  await sleep(300 + Math.floor(Math.random() * 1200));
  d.kill('SIGKILL');
  const killedAt = Date.now();
  stop = true;
  await Promise.all(clients);
  await d.exited;
  const d2 = await startDaemon({ upstream: mock.url, dataDir, args });
  let lost = 0;
  let oldestLostMs = 0;
  try {
    for (const a of acked) {
      const r = await request(`${d2.url}/chat/completions`, { body: { model: 'mock-gpt', messages: [{ role: 'user', content: a.content }] } });
      if (r.headers.get('x-llm-cache') !== 'HIT-EXACT') {
        lost++;
        oldestLostMs = Math.max(oldestLostMs, killedAt - a.at);
      }
    }
  } finally {
    await d2.stop();
  }
  return { acked: acked.length, lost, oldestLostMs };
}

/** Run `cycles` kill -9 cycles in one persistence mode; returns a summary and whether the bound held. */
export async function crashLoop({ cycles = 3, sync = false, flushMs = 1000, dataDir, log = () => {} } = {}) {
  const mock = await startMock();
  let acked = 0;
  let lost = 0;
  let oldest = 0;
  let held = true;
  try {
    for (let i = 0; i < cycles; i++) {
      const r = await cycle(mock, dataDir, sync, flushMs, i);
      acked += r.acked;
      lost += r.lost;
      oldest = Math.max(oldest, r.oldestLostMs);
      const ok = sync ? r.lost === 0 : r.oldestLostMs <= flushMs + SLACK_MS;
      held &&= ok;
      log(`cycle ${i + 1}: ${r.acked} acknowledged, ${r.lost} lost${r.lost ? ` (oldest ${r.oldestLostMs} ms before the kill)` : ''}${ok ? '' : '  BOUND BROKEN'}`);
    }
  } finally {
    await mock.close();
  }
  const bound = sync ? 'nothing lost' : `only entries acknowledged in the last ${flushMs} ms (+${SLACK_MS} ms slack)`;
  return { mode: sync ? '--persist-sync yes' : `--flush-interval ${flushMs}ms`, cycles, acked, lost, oldestLostMs: oldest, bound, held };
}

// make crash-loop CYCLES=N
if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const { tempDir } = await import('./helpers.mjs');
  const cycles = Number(process.argv[2] || 10);
  let ok = true;
  for (const sync of [false, true]) {
    const r = await crashLoop({ cycles, sync, dataDir: tempDir(), log: (l) => console.log(`  ${l}`) });
    console.log(`crash-loop ${r.mode}: ${r.cycles} cycles, ${r.acked} acknowledged, ${r.lost} lost, oldest lost ${r.oldestLostMs} ms before the kill; bound (${r.bound}): ${r.held ? 'held' : 'BROKEN'}`);
    ok &&= r.held;
  }
  process.exit(ok ? 0 : 1);
}
