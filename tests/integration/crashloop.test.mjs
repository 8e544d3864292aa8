// crashloop.test.mjs — the short crash loop of `make test`: kill -9 under
// write load, restart, count (crashloop.mjs; `make crash-loop CYCLES=N` runs
// the long one). Both persistence modes, two cycles each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crashLoop } from './crashloop.mjs';
import { tempDir } from './helpers.mjs';

test('kill -9 under write load: --persist-sync yes loses nothing', async () => {
  const r = await crashLoop({ cycles: 2, sync: true, dataDir: tempDir() });
  assert.ok(r.acked > 0, 'some writes were acknowledged');
  assert.equal(r.lost, 0, JSON.stringify(r));
});

test('kill -9 under write load: by default only the last flush interval is lost', async () => {
  const r = await crashLoop({ cycles: 2, sync: false, flushMs: 1000, dataDir: tempDir() });
  assert.ok(r.acked > 0, 'some writes were acknowledged');
  assert.ok(r.held, JSON.stringify(r));
});
