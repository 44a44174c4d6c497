// What an operator meets running the mirror locally with `npm start` (scripts/start.mjs, the
// built worker, as `npm start` runs it after `build.sh --if-stale`): it serves within seconds and
// first prints the configuration's state (source, upstreams, a typo'd variable); variables and
// secrets come from an env file and --var; a TLS hello is answered at once (no 10 s stall for
// skopeo/podman); podman's registries.conf, as the README and the landing page write it, routes a
// non-Docker-Hub upstream (tested with skopeo --registries-conf, podman not being installed here);
// blobs are filled after the answer (BLOB_FILL=after-answer, npm start's default); the cron
// handler runs on /cdn-cgi/handler/scheduled; a PREWARM entry routing nowhere is refused
// at start, naming the entry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import { startUpstreams, makeImages, USER, logOffset, readRequests } from './lib/upstreams.mjs';
import { ROOT, BIG_MB, LOG_DIR, upstreamTable, raw } from './lib/world.mjs';
import { skopeo } from './lib/clients.mjs';
import { devArgs } from '../../scripts/dev.mjs';
import { parseArgs, parseEnvFile, LOCAL_DEFAULTS } from '../../scripts/start.mjs';

const PORT = 18743, BAD_PORT = 18744;
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, 'operator');

/** `node scripts/start.mjs args…`; resolves when it prints "listening" (or rejects on exit).
 *  -> { lines, ms, stop } */
function npmStart(args) {
  const child = spawn(process.execPath, [path.join(REPO, 'scripts/start.mjs'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const started = Date.now();
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `operator.test.mjs-${args[args.indexOf('--port') + 1]}.log`);
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGINT');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stop(); reject(new Error(`not listening after 30 s:\n${lines.join('\n')}`)); }, 30_000);
    let buf = '';
    const onData = (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        // zz-logs.test.mjs checks these too: no secret from the env file may be printed.
        fs.appendFileSync(logFile, line + '\n');
        if (line.startsWith('edgemirror listening on')) {
          clearTimeout(timer);
          resolve({ lines, ms: Date.now() - started, stop });
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`npm start exited ${code}:\n${lines.join('\n')}`)); });
  });
}

/** The worker's JSON log lines among what npm start printed. */
const logged = (lines) => lines.flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });

describe('npm start, as an operator runs it', { timeout: 300_000 }, () => {
  let up, mirror, images;
  before(async () => {
    fs.rmSync(DIR, { recursive: true, force: true });
    fs.mkdirSync(DIR, { recursive: true });
    up = await startUpstreams({ root: ROOT });
    images = await makeImages({ root: ROOT, bigMb: BIG_MB });
    // Secrets and a typo'd variable in the env file (.dev.vars's format); the table by --var.
    fs.writeFileSync(path.join(DIR, 'dev.vars'), [
      '# as wrangler dev reads .dev.vars',
      'UPSTREAM=\'{"oops": {}}\'',
      'PREWARM=["plain/library/alpine:latest"]',
      'PREWARM_BUDGET="20"',
      'RATE_LIMIT="500/1h"',
      `HUB_CREDS="${USER.username}:${USER.password}"`,
    ].join('\n'));
    // The hub upstream names a secret that only the env file sets.
    const table = upstreamTable(up);
    table['docker.io'].credentials = 'HUB_CREDS';
    mirror = await npmStart(['--port', String(PORT), '--state', path.join(DIR, 'state'), '--env-file', path.join(DIR, 'dev.vars'), '--var', `UPSTREAMS:${JSON.stringify(table)}`]);
  }, { timeout: 300_000 });
  after(async () => {
    await mirror?.stop();
    await up?.stop();
  }, { timeout: 60_000 });

  it('serves within seconds and first prints the configuration: source, upstreams, a typo', () => {
    assert.ok(mirror.ms < 10_000, `listening after ${mirror.ms} ms`);
    const out = mirror.lines.join('\n');
    const at = (s) => { const i = out.indexOf(s); assert.ok(i >= 0, `${s} in:\n${out}`); return i; };
    const listening = at('edgemirror listening on http://127.0.0.1:18743');
    assert.ok(at('configuration: UPSTREAMS variable') < listening);
    assert.ok(at(`  plain → ${up.plain}  [/plain/, host plain.localhost, ns=plain.test]`) < listening);
    assert.ok(at(`  docker.io (default) → ${up.hub}`) < listening);
    assert.ok(at('warning: UPSTREAM is not a variable edgemirror reads (ignored): did you mean UPSTREAMS?') < listening);
    at('variables and secrets from');
  });

  it('/healthz says the same: degraded by the typo, the source named', async () => {
    const r = await raw({ port: PORT, path: '/healthz' });
    assert.equal(r.status, 200);
    const h = JSON.parse(r.body.toString());
    assert.equal(h.status, 'degraded');
    assert.match(h.source[0], /^UPSTREAMS variable/);
    assert.match(h.warnings[0], /did you mean UPSTREAMS\?/);
    assert.deepEqual(h.problems, [], 'HUB_CREDS came from the env file');
  });

  it('binds the pull counters when RATE_LIMIT is set', async () => {
    const r = await raw({ port: PORT, path: '/v2/plain/library/alpine/manifests/latest', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit-limit'], '500;w=3600');
  });

  it('answers a TLS ClientHello at once (clients fall back to HTTP without a 10 s stall)', async () => {
    const t0 = Date.now();
    await new Promise((resolve, reject) => {
      const s = net.connect(PORT, '127.0.0.1', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])));
      s.on('error', () => {});
      s.on('close', resolve);
      setTimeout(() => { s.destroy(); reject(new Error('the TLS hello was not answered within 2 s')); }, 2000).unref();
    });
    assert.ok(Date.now() - t0 < 2000);
  });

  it("podman's registries.conf pulls through a non-Docker-Hub upstream and the default (skopeo --registries-conf)", async () => {
    // As the landing page writes it: the default upstream's mirror is the mirror itself, another
    // upstream's is the mirror with its path prefix. plain.test does not resolve: only the mirror can answer.
    const conf = path.join(DIR, 'registries.conf');
    fs.writeFileSync(conf, `
[[registry]]
prefix = "plain.test"
location = "plain.test"
[[registry.mirror]]
location = "127.0.0.1:${PORT}/plain"
insecure = true

[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"
[[registry.mirror]]
location = "127.0.0.1:${PORT}"
insecure = true
`);
    const mark = mirror.lines.length;
    for (const [ref, upstream] of [['plain.test/library/alpine:latest', 'plain'], ['docker.io/library/alpine:latest', 'docker.io']]) {
      const dir = path.join(DIR, `pulled-${upstream}`);
      fs.rmSync(dir, { recursive: true, force: true });
      const r = await skopeo(['--registries-conf', conf, 'copy', '--retry-times', '0', `docker://${ref}`, `dir:${dir}`], { timeout: 60_000 });
      assert.equal(r.code, 0, `${ref}: ${r.stderr}`);
      assert.ok(fs.existsSync(path.join(dir, 'manifest.json')), 'pulled: manifest and layers in dir:');
      assert.ok(r.ms < 8000, `${ref} took ${r.ms} ms (a TLS stall is 10 s)`);
      await new Promise((res) => setTimeout(res, 200));
      const served = logged(mirror.lines.slice(mark)).filter((e) => e.msg === 'request' && e.status === 200 && e.upstream === upstream);
      assert.ok(served.some((e) => e.route === 'manifest') && served.some((e) => e.route === 'blob'), `${ref}: manifest and blobs served by the mirror from ${upstream}: ${JSON.stringify(served)}`);
    }
  });

  it('fills a big blob after the answer by default (BLOB_FILL=after-answer): the upstream\'s bytes at once, stored from a second GET', async () => {
    assert.match(mirror.lines.join('\n'), /blobs: from 4 MiB, stored after each answer/);
    const { digest, size } = images.bigLayer;
    const blobPath = `/v2/library/big/blobs/${digest}`;
    const sha = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
    // The plain registry, and the token-auth hub whose blobs are redirected to another host.
    for (const [prefix, log] of [['/plain', up.logs.plain], ['', up.logs.hub]]) {
      const mark = mirror.lines.length, from = logOffset(log);
      const get = () => raw({ port: PORT, path: `/v2${prefix}/library/big/blobs/${digest}`, timeout: 60_000 });
      const first = await get();
      assert.equal(first.status, 200);
      assert.match(first.headers['cache-status'], /fwd=miss; stored/);
      assert.equal(first.body.length, size);
      assert.equal(sha(first.body), digest);
      const until = Date.now() + 60_000;
      const stored = () => logged(mirror.lines.slice(mark)).find((e) => e.msg === 'stored' && e.what === 'blob');
      while (!stored() && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
      assert.ok(stored(), mirror.lines.slice(mark).join('\n'));
      const second = await get();
      assert.match(second.headers['cache-status'], /hit/);
      assert.equal(sha(second.body), digest);
      const gets = readRequests(log, from).filter((r) => r.method === 'GET' && r.path === blobPath && r.status < 400);
      assert.equal(gets.length, 2, `${prefix || 'hub'}: the answer's GET and the store's: ${JSON.stringify(gets)}`);
    }
    // The pulls before (layers under 4 MiB) were stored from their answers; no refill was
    // turned away.
    const lines = logged(mirror.lines);
    assert.ok(lines.some((e) => e.msg === 'stored' && e.what === 'blob' && e.key.startsWith('docker.io/library/alpine/')));
    assert.deepEqual(lines.filter((e) => e.msg === 'refill skipped'), []);
  });

  it('runs the scheduled prewarm on /cdn-cgi/handler/scheduled', async () => {
    const mark = mirror.lines.length;
    const r = await raw({ port: PORT, path: '/cdn-cgi/handler/scheduled', timeout: 60_000 });
    assert.equal(r.status, 200);
    const until = Date.now() + 30_000;
    let done;
    while (!(done = logged(mirror.lines.slice(mark)).find((e) => e.msg === 'prewarm done')) && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(done, mirror.lines.slice(mark).join('\n'));
    assert.equal(done.budget, 20, 'PREWARM_BUDGET from the env file');
    const image = logged(mirror.lines.slice(mark)).find((e) => e.msg === 'prewarm');
    assert.equal(image?.image, 'plain/library/alpine:latest');
    assert.equal(image?.error ?? null, null, JSON.stringify(image));
  });

  it('refuses a PREWARM entry that routes to no upstream at start, naming it', async () => {
    const bad = await npmStart(['--port', String(BAD_PORT), '--state', path.join(DIR, 'state-bad'), '--env-file', path.join(DIR, 'dev.vars'),
      '--var', `UPSTREAMS:${JSON.stringify(upstreamTable(up))}`, '--var', 'PREWARM:["plain/library/alpine:latest", "nope.example/x:1"]']);
    try {
      const out = bad.lines.join('\n');
      assert.match(out, /configuration INVALID: PREWARM\[1\]: "nope\.example\/x:1" routes to no upstream/);
      const r = await raw({ port: BAD_PORT, path: '/healthz' });
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.body.toString()).field, 'PREWARM[1]');
    } finally {
      await bad.stop();
    }
  });
});

describe('the local commands\' arguments', { timeout: 10_000 }, () => {
  it('npm run dev -- --port N gives wrangler one --port (it refused two)', () => {
    const args = devArgs(['--port', '23002', '--var', 'A:b']);
    assert.equal(args.filter((a) => a === '--port').length, 1);
    assert.deepEqual(args.slice(-4), ['--port', '23002', '--var', 'A:b']);
    assert.ok(devArgs([], { PORT: '23003' }).join(' ').includes('--port 23003'));
    assert.ok(devArgs(['--port=23004']).every((a) => a !== '--port'));
  });

  it('npm start takes --port/--var/--env-file and a .dev.vars-style file', () => {
    const o = parseArgs(['--port', '23002', '--var', 'UPSTREAMS:{"a":{"registry":"https://a"}}', '--no-r2'], {});
    assert.equal(o.port, 23002);
    assert.equal(o.r2, false);
    assert.equal(o.vars.UPSTREAMS, '{"a":{"registry":"https://a"}}');
    assert.equal(parseArgs([], { PORT: '23005' }).port, 23005);
    assert.throws(() => parseArgs(['--port', 'x'], {}));
    assert.throws(() => parseArgs(['--bogus'], {}));
    assert.deepEqual(LOCAL_DEFAULTS, { BLOB_FILL: 'after-answer' });
    assert.deepEqual(parseEnvFile('# c\nA=1\nexport B="two\\nlines"\nC=\'{"x": 1}\'\nD=bare # note\n'), { A: '1', B: 'two\nlines', C: '{"x": 1}', D: 'bare' });
  });
});
