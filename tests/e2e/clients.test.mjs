// Real clients pull real images through the worker: skopeo (every image, all platforms), containerd's
// ctr with a hosts.toml mirror (HEAD-first, ?ns=docker.io) and dockerd with registry-mirrors
// (docker pull + docker run). Fallbacks point at a dead port, and each pull is checked in the
// mirror's and the upstream's logs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startWorld, ROOT, MIRROR_PORT } from './lib/world.mjs';
import { pushImage } from './lib/upstreams.mjs';
import { startContainerd, startDockerd, writeHostsToml, skopeo, startTlsRejectingFront } from './lib/clients.mjs';

const FRONT_PORT = 18788;
const MIRROR = `http://127.0.0.1:${MIRROR_PORT}`;
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Mirror log entries for registry requests of `name`, served from the docker.io upstream. */
const served = (entries, name) => entries.filter((e) => e.msg === 'request' && e.upstream === 'docker.io' && e.path.includes(`/${name}/`) && e.status < 400);

describe('real clients pull through the mirror', { timeout: 900_000 }, () => {
  let w, front, start;
  before(async () => {
    w = await startWorld();
    front = await startTlsRejectingFront({ port: FRONT_PORT, targetPort: MIRROR_PORT });
    start = w.mark();
  }, { timeout: 240_000 });
  after(async () => {
    await front?.stop();
    await w?.stop();
  }, { timeout: 60_000 });

  for (const tag of ['library/alpine:latest', 'library/alpine:3.19', 'library/alpine:oci', 'library/multi:latest', 'library/multi:oci', 'library/big:latest']) {
    it(`skopeo copy --all ${tag}: digests equal the upstream's`, async () => {
      const m = w.mark();
      const dir = path.join(ROOT, 'skopeo', tag.replace(/[/:]/g, '_'));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      const r = await skopeo(['copy', '--all', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${tag}`, `dir:${dir}`], { timeout: 300_000 });
      assert.equal(r.code, 0, r.stderr);
      const want = w.images[tag];
      assert.equal(sha256(fs.readFileSync(path.join(dir, 'manifest.json'))), want.digest);
      for (const digest of Object.values(want.platforms ?? {})) {
        const f = path.join(dir, `${digest.slice(7)}.manifest.json`);
        assert.equal(sha256(fs.readFileSync(f)), digest, `platform manifest ${digest}`);
      }
      // Every layer and config skopeo wrote hashes to its file name.
      for (const f of fs.readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f))) {
        assert.equal(sha256(fs.readFileSync(path.join(dir, f))), `sha256:${f}`);
      }
      const name = tag.split(':')[0];
      assert.ok(served(w.mirror.entries(m.mirror), name).some((e) => e.route === 'manifest'), 'the mirror served it');
      assert.ok(r.ms < 60_000, `skopeo took ${r.ms} ms (TLS stall?)`);
    });
  }

  it('ctr pulls docker.io images through hosts.toml (HEAD first, ?ns=docker.io)', async () => {
    // A fresh content store, so every blob must come through the mirror (no containers run here).
    const root = path.join(ROOT, 'ctr');
    fs.rmSync(root, { recursive: true, force: true });
    const cd = await startContainerd({ root });
    try {
      const hostsDir = path.join(root, 'certs.d');
      writeHostsToml({ dir: hostsDir, mirror: MIRROR });
      for (const tag of ['library/alpine:latest', 'library/multi:oci']) {
        await cd.ctr(['images', 'rm', `docker.io/${tag}`]);
        const m = w.mark();
        const r = await cd.ctr(['images', 'pull', '--hosts-dir', hostsDir, `docker.io/${tag}`], { timeout: 180_000 });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const ls = await cd.ctr(['images', 'ls']);
        const line = ls.stdout.split('\n').find((l) => l.startsWith(`docker.io/${tag} `));
        assert.ok(line?.includes(w.images[tag].digest), `ctr stored ${tag} as the upstream's digest: ${line}`);
        const entries = served(w.mirror.entries(m.mirror), tag.split(':')[0]);
        assert.equal(entries[0]?.method, 'HEAD', 'containerd resolves with HEAD');
        assert.ok(entries.every((e) => e.by === 'ns'), 'routed by ?ns=docker.io');
        assert.ok(entries.some((e) => e.route === 'blob'), 'blobs came through the mirror');
      }
    } finally {
      await cd.stop();
    }
  });

  it('dockerd with registry-mirrors: docker pull alpine and docker run it', async () => {
    const d = await startDockerd({ root: ROOT, mirror: MIRROR });
    try {
      // An empty image store (other tests pull images that share these layers).
      await d.docker(['rmi', '-f', 'alpine', 'library/private']);
      await d.docker(['image', 'prune', '-af']);
      const m = w.mark();
      const pull = await d.docker(['pull', 'alpine']);
      assert.equal(pull.code, 0, pull.stderr + pull.stdout);
      assert.match(pull.stdout, new RegExp(`Digest: ${w.images['library/alpine:latest'].digest}`));
      const runOut = await d.docker(['run', '--rm', '--network', 'none', 'alpine', 'sh', '-c', 'echo hello from $(uname -s)']);
      assert.equal(runOut.code, 0, runOut.stderr);
      assert.equal(runOut.stdout.trim(), 'hello from Linux');
      await sleep(300);
      const s = w.since(m);
      const entries = served(s.mirror, 'library/alpine');
      assert.ok(entries.some((e) => e.route === 'manifest') && entries.some((e) => e.route === 'blob'), 'the mirror served manifest and blobs');
      assert.ok(s.hub.every((q) => q.ua.startsWith('edgemirror/')), 'only the mirror talked to the upstream');
      assert.ok(!s.hub.some((q) => q.ua.startsWith('docker/')), 'dockerd never reached the upstream directly');
    } finally {
      await d.stop();
    }
  });

  it('a first pull of a new repository: its upstream token was fetched at the client\'s /token, so the manifest GET met no 401', async () => {
    const img = await pushImage(`library/ahead${Date.now()}`, { layers: 1, layerBytes: 4096 });
    const m = w.mark();
    const dir = path.join(ROOT, 'skopeo', 'ahead');
    fs.rmSync(dir, { recursive: true, force: true });
    const r = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${img.repo}:latest`, `dir:${dir}`], { timeout: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(fs.readFileSync(path.join(dir, 'manifest.json'))), img.manifest.digest);
    await sleep(300); // the token server's log is written by a pipe
    const s = w.since(m);
    assert.ok(s.mirror.some((e) => e.route === 'token' && e.status === 200), 'skopeo asked the mirror for a token');
    const repo = s.hub.filter((q) => q.path.startsWith(`/v2/${img.repo}/`));
    assert.ok(repo.some((q) => q.path.includes('/manifests/') && q.status === 200), JSON.stringify(repo));
    assert.deepEqual(repo.filter((q) => q.status === 401), [], 'no request of the pull was refused for want of a token');
    const tokens = s.token.filter((t) => JSON.stringify(t.scopes).includes(img.repo));
    assert.equal(tokens.length, 1, `one upstream token for the repository: ${JSON.stringify(tokens)}`);
  });

  it('no credential ever reached the blob host during the whole run', async () => {
    await sleep(200);
    const blobs = w.since(start).blobs;
    assert.ok(blobs.length > 0);
    for (const b of blobs) assert.equal(b.authz, null, JSON.stringify(b));
  });

});
