// Login pass-through and operator credentials against the real token server: a private repository
// (anonymous pulls refused upstream) is pulled by skopeo and ctr with alice's login through the
// mirror's own challenge and token endpoint; anonymous pulls right after are still refused (no cache
// leak); a wrong password is a 401; with operator credentials, anonymous clients pull it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startWorld, mirrorWith, upstreamTable, raw, ociCode, ROOT } from './lib/world.mjs';
import { skopeo, startTlsRejectingFront, startContainerd, startDockerd, writeHostsToml } from './lib/clients.mjs';
import { ACCEPT_ALL, USER } from './lib/upstreams.mjs';

const PORT = 18780, FRONT = 18781, OP = 18782, OP_FRONT = 18783;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const copy = (front, creds) => {
  const dir = path.join(ROOT, 'cred-copy', String(Math.random()).slice(2));
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  return skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', ...(creds ? ['--src-creds', creds] : ['--src-no-creds']), `docker://${front.host}/library/private:latest`, `dir:${dir}`], { timeout: 120_000 });
};

describe('who may pull what', { timeout: 300_000 }, () => {
  let w, front, op, opFront;
  before(async () => {
    w = await startWorld({ port: PORT });
    front = await startTlsRejectingFront({ port: FRONT, targetPort: PORT });
    op = await mirrorWith({ port: OP, vars: { UPSTREAMS: upstreamTable(w.up, { credentials: 'HUB_CREDS' }), HUB_CREDS: `${USER.username}:${USER.password}` } });
    opFront = await startTlsRejectingFront({ port: OP_FRONT, targetPort: OP });
  }, { timeout: 240_000 });
  after(async () => { await opFront?.stop(); await op?.stop(); await front?.stop(); await w?.stop(); }, { timeout: 60_000 });

  it('an anonymous pull of a private image gets the mirror\'s own challenge (GET and HEAD)', async () => {
    for (const method of ['GET', 'HEAD']) {
      const r = await raw({ port: PORT, method, path: '/v2/private/manifests/latest', headers: { accept: ACCEPT_ALL } });
      assert.equal(r.status, 401);
      assert.equal(r.headers['www-authenticate'], `Bearer realm="http://127.0.0.1:${PORT}/token",service="docker.io",scope="repository:private:pull"`);
    }
  });

  it('skopeo --src-creds pulls it through the mirror; the token server saw the rewritten scope', async () => {
    const m = w.mark();
    const r = await copy(front, `${USER.username}:${USER.password}`);
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    const tokens = w.since(m).token.filter((t) => t.account === USER.username);
    assert.ok(tokens.length >= 1, JSON.stringify(w.since(m).token));
    assert.ok(tokens.every((t) => t.scopes.every((s) => s === 'repository:library/private:pull')), JSON.stringify(tokens.map((t) => t.scopes)));
    const served = w.mirror.entries(m.mirror).filter((e) => e.msg === 'request' && e.route === 'manifest' && e.status === 200);
    assert.ok(served.length >= 1 && served.every((e) => /client's credentials/.test(e.cache_status)), 'served with the client\'s token, never stored');
  });

  it('an anonymous client right after is still refused (nothing leaked through a cache)', async () => {
    const r = await copy(front, null);
    assert.notEqual(r.code, 0);
    const digest = w.images['library/private:latest'].digest;
    for (const p of ['/v2/private/manifests/latest', `/v2/private/manifests/${digest}`]) {
      const x = await raw({ port: PORT, path: p, headers: { accept: ACCEPT_ALL } });
      assert.equal(x.status, 401, p);
    }
  });

  it('a wrong password is a 401 with an OCI error', async () => {
    const r = await copy(front, `${USER.username}:wrong`);
    assert.notEqual(r.code, 0);
    const t = await raw({ port: PORT, path: '/token?service=docker.io&scope=repository:private:pull', headers: { authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}` } });
    assert.equal(t.status, 401);
    assert.equal(ociCode(t), 'UNAUTHORIZED');
  });

  it('ctr --user pulls it through hosts.toml', async () => {
    const root = path.join(ROOT, 'ctr-cred');
    fs.rmSync(root, { recursive: true, force: true });
    const cd = await startContainerd({ root });
    try {
      const hosts = path.join(root, 'certs.d');
      writeHostsToml({ dir: hosts, mirror: `http://127.0.0.1:${PORT}` });
      const denied = await cd.ctr(['images', 'pull', '--hosts-dir', hosts, 'docker.io/library/private:latest'], { timeout: 60_000 });
      assert.notEqual(denied.code, 0, 'anonymous is refused');
      const r = await cd.ctr(['images', 'pull', '--hosts-dir', hosts, '--user', `${USER.username}:${USER.password}`, 'docker.io/library/private:latest'], { timeout: 120_000 });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const ls = await cd.ctr(['images', 'ls']);
      assert.ok(ls.stdout.includes(w.images['library/private:latest'].digest));
    } finally {
      await cd.stop();
    }
  });

  it('dockerd with registry-mirrors and a Docker Hub login pulls it through the mirror', async () => {
    const d = await startDockerd({ root: ROOT, mirror: `http://127.0.0.1:${PORT}` });
    try {
      await d.docker(['rmi', '-f', 'library/private', 'alpine']);
      await d.docker(['image', 'prune', '-af']);
      const denied = await d.docker(['pull', 'library/private']);
      assert.notEqual(denied.code, 0, 'without a login it is refused');
      // What `docker login` writes for Docker Hub (it cannot reach Docker Hub here to check it).
      const auth = Buffer.from(`${USER.username}:${USER.password}`).toString('base64');
      fs.writeFileSync(path.join(ROOT, 'docker-cli', 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth } } }));
      const m = w.mark();
      const r = await d.docker(['pull', 'library/private']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`Digest: ${w.images['library/private:latest'].digest}`));
      await sleep(300);
      assert.ok(w.since(m).token.some((t) => t.account === USER.username), 'alice\'s login reached the realm through the mirror');
      assert.ok(!w.since(m).hub.some((q) => q.ua.startsWith('docker/')), 'dockerd never reached the upstream directly');
    } finally {
      fs.rmSync(path.join(ROOT, 'docker-cli', 'config.json'), { force: true });
      await d.docker(['rmi', '-f', 'library/private']);
      await d.stop();
    }
  });

  it('with operator credentials, anonymous clients pull the private image', async () => {
    const r = await copy(opFront, null);
    assert.equal(r.code, 0, r.stderr);
  });
});
