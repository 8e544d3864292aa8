// embed-precision.test.mjs — --embed-precision end to end: the daemon refuses
// an unknown value with a clear message (exit 2), and the fp32 reference
// encoder serves semantic hits like the default (int8 on VNNI CPUs, which
// semantic.test.mjs exercises), saying in its log which one runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startMock, startDaemon, request, daemonPath, tempDir, repoRoot } from './helpers.mjs';

const modelDir = path.join(repoRoot, 'data/models/use-lite');
const skip = fs.existsSync(path.join(modelDir, 'model.json')) ? false : 'USE-lite weights absent';

test('an unknown --embed-precision is refused with exit 2 and a message', () => {
  const r = spawnSync(daemonPath(), ['--embed-precision', 'int4']);
  assert.equal(r.status, 2);
  assert.match(r.stderr.toString(), /invalid value 'int4' for embed-precision \(expected auto, int8, fp16 or fp32\)/);
});

for (const precision of ['fp32', 'int8']) {
  test(`--embed-precision ${precision}: a paraphrase hits, an unrelated question misses`, { skip }, async () => {
    const mock = await startMock();
    const d = await startDaemon({ upstream: mock.url, dataDir: tempDir(), args: ['--embed-model-path', modelDir, '--embed-precision', precision] });
    const ask = (content) => request(`${d.url}/chat/completions`, {
      headers: { authorization: 'Bearer sk-prec' },
      body: { model: 'mock-gpt', messages: [{ role: 'user', content }] },
    });
    try {
      const a = await ask('Could you please explain step by step how I can reset the admin password of my home wifi router to the factory default?');
      assert.equal(a.headers.get('x-llm-cache'), 'MISS');
      const b = await ask('Can you please explain step by step how I can reset the admin password of my home wifi router to the factory default?');
      assert.equal(b.headers.get('x-llm-cache'), 'HIT-SEMANTIC');
      const c = await ask('What is the best way to cook rice?');
      assert.equal(c.headers.get('x-llm-cache'), 'MISS');
    } finally {
      const r = await d.stop();
      await mock.close();
      assert.equal(r.code, 0, r.output.slice(-2000));
      assert.match(r.output, new RegExp(`embedder use-lite \\(512-d, ${precision}`));
    }
  });
}
