// fleet-cluster.test.mjs — llmcached instances sharing one cache on a real
// Redis Cluster of 3 primaries, built here with `redis-server
// --cluster-enabled yes` and `redis-cli --cluster create`: entries spread
// over every primary, every instance hits every entry, and a reshard (slots
// moved with redis-cli --cluster reshard) while requests run makes no
// client error and no wrong answer. (Failover is tested on the client in
// tests/unit/test_redis.c.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { startMock, startDaemon, request, mockSerial, sleep, tempDir, freePort } from './helpers.mjs';

let haveRedis = true;
try { execFileSync('redis-server', ['--version']); } catch { haveRedis = false; }
const skip = haveRedis ? false : 'redis-server absent (scripts/deps.sh test installs it)';

const dir = tempDir('llmc-cluster-');
const nodes = []; // { port, proc }
let mock, A, R;
const prefix = `cl${process.pid}:`;
const cli = (port, ...a) => execFileSync('redis-cli', ['-p', String(port), ...a], { encoding: 'utf8' }).trim();

async function startNode() {
  let port;
  do port = await freePort(); while (port > 55000); // the bus is port + 10000
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'],
  { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try { if (cli(port, 'PING') === 'PONG') return { port, proc }; } catch { /* not yet */ }
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}

const chat = (i) => ({ model: 'mock-gpt', messages: [{ role: 'user', content: `cluster entry ${i} of ${process.pid}` }] });
const ask = (d, body) => request(`${d.url}/chat/completions`, { headers: { authorization: 'Bearer sk-cluster' }, body });
const status = (r) => r.headers.get('x-llm-cache');
const N = 30;
const serials = [];

before(async () => {
  if (skip) return;
  for (let i = 0; i < 3; i++) nodes.push(await startNode());
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    if (nodes.every((n) => cli(n.port, 'CLUSTER', 'INFO').includes('cluster_state:ok'))) break;
    await sleep(50);
  }
  mock = await startMock();
  const url = `redis-cluster://127.0.0.1:${nodes[0].port},127.0.0.1:${nodes[1].port}`;
  const args = ['--store', url, '--store-prefix', prefix, '--store-timeout', '200ms', '--persist', 'no', '--semantic', 'no'];
  A = await startDaemon({ upstream: mock.url, args });
  // R's near cache holds a few entries only: its hits are read from the cluster
  R = await startDaemon({ upstream: mock.url, args: [...args, '--memory', '8kb'] });
});
after(async () => {
  if (skip) return;
  for (const d of [A, R]) assert.equal((await d.stop()).code, 0);
  await mock.close();
  for (const n of nodes) n.proc.kill('SIGKILL');
});

test('entries spread over every primary; every instance hits every entry', { skip }, async () => {
  for (let i = 0; i < N; i++) {
    const r = await ask(A, chat(i));
    assert.equal(status(r), 'MISS');
    serials[i] = mockSerial(r.json);
  }
  await sleep(300);
  for (const n of nodes) {
    const keys = cli(n.port, '--scan', '--pattern', `${prefix}e:*`).split('\n').filter(Boolean);
    assert.ok(keys.length > 0, `primary ${n.port} holds none of the entries`);
  }
  for (let i = 0; i < N; i++) {
    const r = await ask(R, chat(i));
    assert.equal(status(r), 'HIT-EXACT', `entry ${i}`);
    assert.equal(mockSerial(r.json), serials[i]);
  }
  const s = (await request(`${R.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${R.adminToken}` } })).json;
  assert.equal(s.store_backend.kind, 'redis-cluster');
  assert.ok(s.store_backend.fetch_hits >= N - 8, JSON.stringify(s.store_backend));
});

test('a reshard while requests run: no client error, no wrong answer, hits after', { skip }, async () => {
  const ids = nodes.map((n) => cli(n.port, 'CLUSTER', 'MYID'));
  let running = true, errors = 0, wrong = 0, answered = 0;
  const load = (async () => {
    while (running) {
      for (let i = 0; i < N && running; i++) {
        try {
          const r = await ask(R, chat(i));
          if (r.status !== 200) errors++;
          else if (status(r) === 'HIT-EXACT' && mockSerial(r.json) !== serials[i]) wrong++;
          else answered++;
        } catch { errors++; }
      }
    }
  })();
  // move 2000 slots from the first primary to the second, key by key
  await new Promise((resolve, reject) => {
    const p = spawn('redis-cli', ['--cluster', 'reshard', `127.0.0.1:${nodes[0].port}`, '--cluster-from', ids[0],
      '--cluster-to', ids[1], '--cluster-slots', '2000', '--cluster-yes'], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`reshard exited ${code}`))));
  });
  running = false;
  await load;
  assert.equal(errors, 0);
  assert.equal(wrong, 0);
  assert.ok(answered > 0);
  for (let i = 0; i < N; i++) {
    let r;
    for (let k = 0; k < 20; k++) {
      r = await ask(R, chat(i));
      if (status(r) === 'HIT-EXACT') break;
      await sleep(50);
    }
    assert.equal(status(r), 'HIT-EXACT', `entry ${i} after the reshard`);
    assert.equal(mockSerial(r.json), serials[i]);
  }
  const s = (await request(`${R.origin}/stats`, { method: 'GET', headers: { authorization: `Bearer ${R.adminToken}` } })).json;
  assert.ok(s.store_backend.redirects > 0, JSON.stringify(s.store_backend));
});
