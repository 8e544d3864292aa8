// service.test.mjs — installing and running llmcached as a service:
// `make install` into a DESTDIR lays out the tree (binaries, the encoder's
// weights, llmcached(8), the commented example configuration, the systemd
// unit, contrib/), the man page and the configuration file cover every
// option of --help (they are generated from the same table), the installed
// daemon starts from the installed configuration with the installed
// weights, the unit passes `systemd-analyze verify`, and the daemon tells a
// service manager READY=1 once it listens and STOPPING=1 on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, startMock, request, buildDir, daemonPath, repoRoot, tempDir } from './helpers.mjs';

const VARIANT = path.basename(buildDir());
const make = (args) => spawnSync('make', ['-s', '--no-print-directory', `VARIANT=${VARIANT}`, ...args],
  { cwd: repoRoot, encoding: 'utf8', timeout: 300000 });
const helpOptions = () => spawnSync(daemonPath(), ['--help'], { encoding: 'utf8' }).stdout
  .split('\n').map((l) => l.match(/^ {2}--([a-z][a-z.-]*)/)?.[1]).filter(Boolean)
  .filter((o) => !['help', 'version', 'print-config', 'help-man'].includes(o));

let dest;
test('make install lays out the tree into DESTDIR', { timeout: 300000 }, () => {
  dest = tempDir('llmc-dest-');
  const r = make(['install', 'PREFIX=/usr', `DESTDIR=${dest}`]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const f of ['usr/bin/llmcached', 'usr/bin/llmcached-replay', 'usr/bin/llmcached-embed']) {
    assert.ok(statSync(path.join(dest, f)).mode & 0o111, `${f} executable`);
  }
  for (const f of ['etc/llmcached/llmcached.conf', 'lib/systemd/system/llmcached.service', 'usr/share/man/man8/llmcached.8',
    'usr/share/man/man1/llmcached-replay.1', 'usr/share/man/man1/llmcached-embed.1',
    'usr/share/llmcached/contrib/llmcached.json', 'usr/share/llmcached/contrib/llmcached.rules.yml']) {
    assert.ok(existsSync(path.join(dest, f)), f);
  }
  for (const f of ['model.json', 'vocab.json', 'group1-shard1of7', 'group1-shard7of7']) {
    assert.deepEqual(readFileSync(path.join(dest, 'usr/share/llmcached/models/use-lite', f)),
      readFileSync(path.join(repoRoot, 'data/models/use-lite', f)), `${f} installed intact`);
  }
  const v = spawnSync(path.join(dest, 'usr/bin/llmcached'), ['--version'], { encoding: 'utf8' });
  assert.match(v.stdout, /^llmcached \d+\.\d+\.\d+/);
  const unit = readFileSync(path.join(dest, 'lib/systemd/system/llmcached.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/llmcached --config \/etc\/llmcached\/llmcached.conf /m);
  for (const k of ['Type=notify', 'DynamicUser=yes', 'StateDirectory=llmcached', 'ProtectSystem=strict', 'NoNewPrivileges=yes']) {
    assert.ok(unit.includes(`\n${k}\n`), k);
  }
  // A second install keeps an edited configuration.
  const conf = path.join(dest, 'etc/llmcached/llmcached.conf');
  writeFileSync(conf, `${readFileSync(conf, 'utf8')}\nmemory 1gb\n`);
  assert.equal(make(['install', 'PREFIX=/usr', `DESTDIR=${dest}`]).status, 0);
  assert.match(readFileSync(conf, 'utf8'), /\nmemory 1gb\n$/);
  // Another PREFIX: configuration and unit under it.
  const d2 = tempDir('llmc-dest-');
  assert.equal(make(['install', 'PREFIX=/opt/llmc', `DESTDIR=${d2}`]).status, 0);
  assert.ok(existsSync(path.join(d2, 'opt/llmc/etc/llmcached/llmcached.conf')));
  assert.match(readFileSync(path.join(d2, 'opt/llmc/lib/systemd/system/llmcached.service'), 'utf8'),
    /^ExecStart=\/opt\/llmc\/bin\/llmcached --config \/opt\/llmc\/etc\/llmcached\/llmcached.conf/m);
});

test('the man page and the example configuration name every option of --help', () => {
  const opts = helpOptions();
  assert.ok(opts.length > 40, opts.join(' '));
  const man = readFileSync(path.join(dest, 'usr/share/man/man8/llmcached.8'), 'utf8');
  const conf = readFileSync(path.join(dest, 'etc/llmcached/llmcached.conf'), 'utf8');
  for (const o of opts) {
    assert.ok(man.includes(`.B \\-\\-${o.replaceAll('-', '\\-')}\n`), `man page: --${o}`);
    if (o === 'config') continue;
    if (o.startsWith('policy.')) assert.ok(conf.includes(`# ${o}: `), `conf: ${o}`);
    else assert.match(conf, new RegExp(`^#${o.replace('.', '\\.')}( |$)`, 'm'), `conf: ${o}`);
  }
  assert.match(conf, /^#embed-model-path \/usr\/share\/llmcached\/models\/use-lite$/m);
  assert.match(conf, /^#data-dir \/var\/lib\/llmcached$/m);
  // groff renders it without a warning
  const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', path.join(dest, 'usr/share/man/man8/llmcached.8')], { encoding: 'utf8' });
  if (!g.error) assert.equal(g.stderr, '', g.stderr);
});

test("the tools' man pages are installed, name every option of their --help and render cleanly", () => {
  for (const tool of ['llmcached-replay', 'llmcached-embed']) {
    const page = path.join(dest, `usr/share/man/man1/${tool}.1`);
    const man = readFileSync(page, 'utf8');
    const h = spawnSync(path.join(dest, 'usr/bin', tool), ['--help'], { encoding: 'utf8' });
    const opts = [...new Set(((h.stdout || '') + (h.stderr || '')).match(/--[a-z][a-z-]*/g))];
    assert.ok(opts.length >= 8, `${tool}: ${opts}`);
    for (const o of opts) assert.ok(man.includes(o.replaceAll('-', '\\-')), `${tool}.1: ${o}`);
    const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', page], { encoding: 'utf8' });
    if (!g.error) assert.equal(g.stderr, '', `${tool}.1: ${g.stderr}`);
  }
});

test('the installed daemon runs on the installed configuration (every option uncommented) and weights', { timeout: 120000 }, async () => {
  const mock = await startMock();
  const conf = readFileSync(path.join(dest, 'etc/llmcached/llmcached.conf'), 'utf8')
    .split('\n').map((l) => (/^#[a-z][a-z-]* \S/.test(l) && !l.startsWith('#upstream ') ? l.slice(1) : l)).join('\n')
    .replace(/^embed-model-path .*$/m, `embed-model-path ${dest}/usr/share/llmcached/models/use-lite`)
    .replace(/^semantic-lexicon .*$/m, 'semantic-lexicon /usr/share/wordnet');
  const file = path.join(tempDir('llmc-conf-'), 'llmcached.conf');
  writeFileSync(file, `${conf}\nupstream ${mock.url}\n`);
  const d = await startDaemon({ bin: path.join(dest, 'usr/bin/llmcached'), adminToken: 'svc-token', args: ['--config', file] });
  try {
    const ask = (content) => request(`${d.url}/chat/completions`, { body: { model: 'm', messages: [{ role: 'user', content }] } });
    assert.equal((await ask('How do I reset my password?')).headers.get('x-llm-cache'), 'MISS');
    assert.equal((await ask('How do I reset my password?')).headers.get('x-llm-cache'), 'HIT-EXACT');
    const st = (await request(`${d.origin}/stats`, { method: 'GET', headers: { authorization: 'Bearer svc-token' } })).json;
    assert.equal(st.semantic.model.startsWith('use'), true, JSON.stringify(st.semantic));
  } finally {
    const r = await d.stop();
    await mock.close();
    assert.equal(r.code, 0, r.output.slice(-2000));
  }
});

const haveAnalyze = !spawnSync('systemd-analyze', ['--version']).error;
test('the unit passes systemd-analyze verify', { skip: haveAnalyze ? false : 'systemd-analyze is not installed' }, () => {
  // verify checks that ExecStart exists: point it at the DESTDIR binary
  const dir = tempDir('llmc-unit-');
  const unit = readFileSync(path.join(dest, 'lib/systemd/system/llmcached.service'), 'utf8')
    .replace('ExecStart=/usr/bin/llmcached', `ExecStart=${dest}/usr/bin/llmcached`);
  writeFileSync(path.join(dir, 'llmcached.service'), unit);
  const haveMan = !spawnSync('man', ['--version']).error;
  const r = spawnSync('systemd-analyze', ['verify', `--man=${haveMan ? 'yes' : 'no'}`, path.join(dir, 'llmcached.service')],
    { encoding: 'utf8', env: { ...process.env, MANPATH: path.join(dest, 'usr/share/man') } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal((r.stdout + r.stderr).trim(), '');
  // and it does complain about a broken unit
  writeFileSync(path.join(dir, 'broken.service'), unit.replace(`ExecStart=${dest}/usr/bin/llmcached`, 'ExecStart=/nonexistent/llmcached'));
  const b = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'broken.service')], { encoding: 'utf8' });
  assert.notEqual(b.status, 0);
  assert.match(b.stdout + b.stderr, /\/nonexistent\/llmcached is not executable/);
});

const havePython = !spawnSync('python3', ['--version']).error;
test('sd_notify: READY=1 once it listens, STOPPING=1 on SIGTERM', { skip: havePython ? false : 'python3 is not installed' }, async () => {
  // A service manager's notification socket: a datagram socket that prints what it receives.
  const sock = path.join(tempDir('llmc-notify-'), 'notify.sock');
  const py = spawn('python3', ['-u', '-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    m = s.recv(4096).decode()
    print(m.replace("\\n", "|"), flush=True)
`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  let got = '';
  py.stdout.on('data', (x) => { got += x; });
  try {
    for (let i = 0; i < 100 && !got.includes('bound'); i++) await new Promise((r) => setTimeout(r, 20));
    const d = await startDaemon({ args: ['--semantic', 'no', '--persist', 'no'], env: { NOTIFY_SOCKET: sock } });
    for (let i = 0; i < 100 && !got.includes('READY=1'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(got, new RegExp(`READY=1\\|STATUS=listening on port ${d.port}\\n`));
    assert.doesNotMatch(got, /STOPPING/);
    const r = await d.stop();
    assert.equal(r.code, 0);
    for (let i = 0; i < 100 && !got.includes('STOPPING=1'); i++) await new Promise((res) => setTimeout(res, 20));
    assert.match(got, /READY=1[^\n]*\nSTOPPING=1\n/);
  } finally {
    py.kill();
  }
});
