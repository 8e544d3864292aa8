// fulldisk.test.mjs — issue 16: the data directory on a small filesystem
// that fills up. Needs root to mount a 1 MB tmpfs; elsewhere it is skipped
// with a message (tests/unit/test_persist.c covers the same behaviour with
// an injected I/O error, RLIMIT_FSIZE, without root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startMock, startDaemon, request, sleep, tempDir } from './helpers.mjs';

const dir = tempDir('llmc-fulldisk-');
const mounted = process.getuid && process.getuid() === 0 &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status === 0;

test('a full disk: answers go on, failed writes are kept, logged once, and written when space returns', { skip: mounted ? false : 'cannot mount a tmpfs here (needs root)' }, async () => {
  const mock = await startMock();
  let d;
  try {
    d = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--semantic', 'no', '--flush-interval', '100ms'] });
    const stats = async () => (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${d.adminToken}` } })).json.persist;
    const N = 150;
    const ask = (i) => request(`${d.url}/chat/completions`, { body: { model: 'mock-gpt', messages: [{ role: 'user', content: `full disk ${i} [mock:size=8000]` }] } });
    for (let i = 0; i < N; i++) assert.equal((await ask(i)).status, 200);
    await sleep(500);
    const p = await stats();
    assert.ok(p.errors > 0, JSON.stringify(p));
    assert.ok(p.retained > 0, JSON.stringify(p));
    assert.equal(p.lost, 0);
    const fails = d.output().match(/persistence failing/g) || [];
    assert.equal(fails.length, 1, 'one log line for the burst');
    assert.equal(spawnSync('mount', ['-o', 'remount,size=32m', dir]).status, 0);
    let q;
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      q = await stats();
      if (q.retained === 0) break;
    }
    assert.equal(q.retained, 0, JSON.stringify(q));
    assert.match(d.output(), /persistence recovered after \d+ failed write/);
    const r = await d.stop();
    assert.equal(r.code, 0);
    d = await startDaemon({ upstream: mock.url, dataDir: dir, args: ['--semantic', 'no'] });
    let hits = 0;
    for (let i = 0; i < N; i++) if ((await ask(i)).headers.get('x-llm-cache') === 'HIT-EXACT') hits++;
    assert.equal(hits, N, 'every entry came back after the restart');
  } finally {
    if (d) await d.stop();
    await mock.close();
    spawnSync('umount', [dir]);
  }
});
