// kvengine.mjs — for the KV event tests (kvevents.test.mjs, kvroute.test.mjs):
// the test model, and llmcached-engine started with --kv-events and a
// replay socket on free ports (both endpoints read from its start line).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { buildDir } from './helpers.mjs';

const DATA = process.env.LLMC_SHARED_DATA || path.resolve('../shared/data');
export const MODEL = path.join(DATA, 'models/stories260K.bin');
export const TOK = path.join(DATA, 'models/tok512.bin');
export const ENGINE = path.join(buildDir(), 'llmcached-engine');
export const haveEngine = existsSync(MODEL) && existsSync(TOK) && existsSync(ENGINE);

// Resolves to { proc, base, pub, replay } once the engine listens.
export function startKvEngine(extra = []) {
  const p = spawn(ENGINE, ['--model', MODEL, '--tokenizer', TOK, '--listen', '127.0.0.1:0',
    '--kv-events', 'tcp://127.0.0.1:*', '--kv-events-replay', 'tcp://127.0.0.1:*', ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('engine did not start: ' + err)), 20000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const k = out.match(/kv events on (\S+) replay (\S+)/);
      if (m && k) {
        clearTimeout(t);
        resolve({ proc: p, base: `http://127.0.0.1:${m[1]}`, pub: k[1], replay: k[2] });
      }
    });
    p.on('exit', (code) => { clearTimeout(t); reject(new Error(`engine exited ${code}: ${err}`)); });
  });
}

export async function stopProc(p) {
  if (!p || p.exitCode !== null || p.signalCode) return;
  const done = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await done;
}
