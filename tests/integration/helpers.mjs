// helpers.mjs — shared helpers of the integration tests.
//
// Purpose: every integration test needs the same scaffolding: a mock upstream
// on a free loopback port, the real daemon binary started against it on
// another free port with its own temporary data directory, an official
// `openai` client pointed at the daemon, and a clean stop. Keeping that here
// means each test file reads as the behaviour it checks.
//
// Design / invariants:
// - The daemon binary is `${LLMCACHED_BUILD}/llmcached` (LLMCACHED_BUILD is
//   set by scripts/run-tests.sh; default build/rel). startDaemon() resolves
//   only after GET /health answered 200, and rejects with the daemon's own
//   output if it exits or stays unhealthy for `readyTimeoutMs`.
// - Ports: the OS picks a free port (listen on 0, close, reuse). A daemon that
//   fails to bind because another process took the port in between is retried
//   on a new port (3 tries).
// - Every daemon started here is killed when the test process exits, even if a
//   test throws before stop(); temp dirs made by tempDir() are removed then too
//   (unless LLMC_KEEP_TMP=1, for post-mortems).
// - Clients are made with maxRetries 0: the SDK's automatic retries would
//   hide upstream calls and error statuses from the tests.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startMock } from './mock-upstream.mjs';

export { startMock };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

const live = new Set(); // child processes still running
const tmpDirs = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  if (process.env.LLMC_KEEP_TMP !== '1') {
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  }
});

/** Absolute path of the build directory holding the binaries under test. */
export function buildDir() {
  return path.resolve(repoRoot, process.env.LLMCACHED_BUILD || 'build/rel');
}

/** Absolute path of the daemon binary under test. */
export function daemonPath() {
  return path.join(buildDir(), 'llmcached');
}

/** True when the daemon binary exists (tests use it to skip with a clear message). */
export function haveDaemon() {
  try {
    fs.accessSync(daemonPath(), fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory, removed at process exit. */
export function tempDir(prefix = 'llmc-test-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** redis-cli against 127.0.0.1:port; its trimmed output. */
export const redisCli = (port, ...args) =>
  execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

/**
 * Start a real redis-server on 127.0.0.1:port (no persistence, files in
 * dir, extra arguments appended); resolves to the process once it answers
 * PING. stopRedisServer(p) SIGKILLs it and resolves once it exited.
 */
export async function startRedisServer(port, dir, extra = []) {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try { if (redisCli(port, 'PING') === 'PONG') return p; } catch { /* not yet */ }
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}
export const stopRedisServer = (p) => new Promise((r) => {
  if (!p || p.exitCode !== null) return r();
  p.once('exit', r);
  p.kill('SIGKILL');
});

/** GET url; resolves to the status, or 0 when nothing answered. */
async function probe(url, timeoutMs = 1000) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/**
 * Start the daemon.
 * opts:
 *   upstream      base URL of the upstream (e.g. mock.url), passed as --upstream
 *   dataDir       data directory (default: a fresh tempDir())
 *   adminToken    passed as --admin-token (default 'test-admin'; null = omit)
 *   args          extra command-line flags (array of strings)
 *   env           extra environment variables
 *   port          listen port (default: a free one)
 *   readyTimeoutMs how long to wait for GET /health = 200 (default 20000)
 *   bin           the executable (default daemonPath())
 * Resolves to { url (…/v1), origin, port, dataDir, adminToken, proc, pid,
 *   output(), stop(), kill(signal) }.
 *   output()  everything the daemon wrote to stdout+stderr so far (string)
 *   stop({signal='SIGTERM', timeoutMs=10000}) resolves to
 *             { code, signal, output } once the process exited (SIGKILL after
 *             timeoutMs); idempotent.
 *   kill(sig) sends a signal, e.g. 'SIGKILL' for crash tests; await
 *             d.exited for the exit.
 */
export async function startDaemon(opts = {}) {
  const bin = opts.bin || daemonPath();
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`daemon binary not found: ${bin} (build it with make)`);
  }
  const dataDir = opts.dataDir || tempDir('llmc-data-');
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = opts.port || (await freePort());
    try {
      return await startOnce({ ...opts, dataDir, port, bin });
    } catch (e) {
      lastErr = e;
      // Only a lost port race is worth another try.
      if (opts.port || !/address already in use|EADDRINUSE|bind/i.test(e.message)) throw e;
    }
  }
  throw lastErr;
}

async function startOnce({ bin, port, dataDir, upstream, adminToken, args = [], env = {}, readyTimeoutMs = 20000 }) {
  const argv = ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir];
  if (upstream) argv.push('--upstream', upstream);
  const token = adminToken === undefined ? 'test-admin' : adminToken;
  if (token !== null) argv.push('--admin-token', token);
  argv.push(...args);

  const proc = spawn(bin, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  const keep = (d) => {
    out += d.toString();
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  // The 'exit' event can precede the last output; 'close' waits for the pipes.
  const closed = new Promise((resolve) => proc.on('close', resolve));

  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitInfo) {
      await closed;
      throw new Error(`llmcached exited during start (code ${exitInfo.code}, signal ${exitInfo.signal}):\n` +
        `  ${bin} ${argv.join(' ')}\n${out}`);
    }
    if ((await probe(`${origin}/health`, 500)) === 200) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await closed;
      throw new Error(`llmcached not healthy after ${readyTimeoutMs} ms:\n  ${bin} ${argv.join(' ')}\n${out}`);
    }
    await sleep(25);
  }

  let stopping = null;
  return {
    url: `${origin}/v1`,
    origin,
    port,
    dataDir,
    adminToken: token,
    argv,
    proc,
    pid: proc.pid,
    exited,
    output: () => out,
    kill(sig = 'SIGTERM') {
      if (!exitInfo) proc.kill(sig);
    },
    stop({ signal = 'SIGTERM', timeoutMs = 10000 } = {}) {
      if (!stopping) {
        stopping = (async () => {
          if (!exitInfo) {
            proc.kill(signal);
            const t = setTimeout(() => { if (!exitInfo) proc.kill('SIGKILL'); }, timeoutMs);
            await exited;
            clearTimeout(t);
          }
          await closed;
          return { ...exitInfo, output: out };
        })();
      }
      return stopping;
    },
  };
}

/**
 * The mock upstream in its own node process (for load tests: thousands of
 * streams should not share the event loop of the test that drives them).
 * opts: port (default: a free one), args (extra CLI flags, e.g. ['--delay', '5']).
 * Resolves to { url, origin, port, stats() (a Promise of the JSON of
 * GET /__mock/stats), reset(), close() }.
 */
export async function spawnMock(opts = {}) {
  const port = opts.port || (await freePort());
  const proc = spawn(process.execPath, [path.join(here, 'mock-upstream.mjs'), '--port', String(port), ...(opts.args || [])],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => { live.delete(proc); resolve(code); }));
  let gone = false;
  exited.then(() => { gone = true; });
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (gone) throw new Error(`mock upstream exited at start:\n${out}`);
    if ((await probe(`${origin}/health`, 500)) === 200) break;
    if (i > 400) { proc.kill('SIGKILL'); throw new Error(`mock upstream not up after 10 s:\n${out}`); }
    await sleep(25);
  }
  return {
    url: `${origin}/v1`,
    origin,
    port,
    proc,
    stats: async () => (await fetch(`${origin}/__mock/stats`)).json(),
    reset: async () => { await (await fetch(`${origin}/__mock/reset`, { method: 'POST' })).arrayBuffer(); },
    close: async () => { if (!gone) proc.kill('SIGTERM'); await exited; },
  };
}

/**
 * An official OpenAI client pointed at baseURL (a daemon's or the mock's
 * `url`). Retries are off so every call is one HTTP request.
 */
export function makeClient(baseURL, opts = {}) {
  return new OpenAI({ baseURL, apiKey: 'sk-test-key', maxRetries: 0, timeout: 30000, ...opts });
}

/** The X-LLM-Cache header of a fetch Response (or Headers), lower-cased names. */
export function cacheStatus(resOrHeaders) {
  const h = resOrHeaders.headers || resOrHeaders;
  return h.get('x-llm-cache');
}

/**
 * One raw HTTP request with fetch (for what the SDK hides: exact status,
 * headers, malformed bodies). body: string/Buffer sent as-is, or an object
 * sent as JSON. Resolves to { status, headers, text, json } (json null when
 * the body is not JSON).
 */
export async function request(url, { method = 'POST', headers = {}, body, timeoutMs = 30000 } = {}) {
  const h = { ...headers };
  let b = body;
  if (b !== undefined && typeof b !== 'string' && !Buffer.isBuffer(b)) {
    b = JSON.stringify(b);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const r = await fetch(url, { method, headers: h, body: b, signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

/**
 * Parse an SSE body into its `data:` payloads: JSON objects, and the string
 * '[DONE]' for the terminator. Throws on a data line that is not JSON.
 */
export function parseSSE(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    out.push(data === '[DONE]' ? data : JSON.parse(data));
  }
  return out;
}

/** The upstream call serial carried by a mock answer (chat/completion/embedding object or chunk). */
export function mockSerial(obj) {
  if (obj && typeof obj.mock_serial === 'number') return obj.mock_serial;
  const text = obj?.choices?.[0]?.message?.content ?? obj?.choices?.[0]?.text ?? '';
  const m = /serial=(\d+)/.exec(text || '');
  return m ? Number(m[1]) : null;
}

/** The reference engine and its test model (shared data), or why a test must skip. */
export const engineModel = (() => {
  const data = process.env.LLMC_SHARED_DATA || path.resolve(repoRoot, '../shared/data');
  const model = path.join(data, 'models/stories260K.bin');
  const tok = path.join(data, 'models/tok512.bin');
  const bin = path.join(buildDir(), 'llmcached-engine');
  const skip = fs.existsSync(model) && fs.existsSync(tok) && fs.existsSync(bin) ? false
    : `needs ${bin} and the test model in ${data}/models`;
  return { model, tok, bin, skip };
})();

/**
 * Start llmcached-engine (vLLM-format metrics, prefix caching) on a free
 * port with the shared test model; extra: more flags (e.g. --workers 2). Resolves to { proc, base (origin),
 * stop() } once it listens; killed at exit like every child started here.
 */
export async function startEngine(extra = []) {
  const { model, tok, bin } = engineModel;
  const p = spawn(bin, ['--model', model, '--tokenizer', tok, '--listen', '127.0.0.1:0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(p);
  p.on('exit', () => live.delete(p));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('engine did not start')), 20000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    p.on('exit', (c) => { clearTimeout(t); reject(new Error(`engine exited ${c}`)); });
  });
  return {
    proc: p,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (p.exitCode !== null || p.signalCode) return;
      const done = new Promise((r) => p.on('exit', r));
      p.kill('SIGTERM');
      await done;
    },
  };
}
