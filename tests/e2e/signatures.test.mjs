// The signature policy end to end: keys made here, images and cosign signatures written into the
// real registry exactly as cosign lays them out (fixtures/cosign-sign.py), the built worker with a
// `verify` policy per upstream, and real clients (skopeo, ctr, dockerd with registry-mirrors).
// Signed images (single-platform and a multi-arch index) pull; unsigned, another key, another
// digest, a tampered payload and a tampered signature are refused with 403 DENIED and a message the
// client shows; warn mode serves and logs; uncovered repositories are untouched; a warm signed pull
// asks the upstream nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWorld, mirrorWith, upstreamTable, raw, ociCode, ROOT } from './lib/world.mjs';
import { startContainerd, startDockerd, writeHostsToml, skopeo, startTlsRejectingFront } from './lib/clients.mjs';
import { PORTS, ACCEPT_ALL, pushImage } from './lib/upstreams.mjs';
import { run, sleep } from './lib/proc.mjs';

const PORT = 18730;
const FRONT_PORT = 18731;
const BAD_PORT = 18732;
const MIRROR = `http://127.0.0.1:${PORT}`;
const PLAIN = `127.0.0.1:${PORTS.plain}`;
const SIGNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cosign-sign.py');
const KEYS = path.join(ROOT, 'cosign-keys');
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

// The policy under test, on every upstream of the world.
const VERIFY = [
  { name: 'signed-only', repos: ['signed/*'], keys: ['COSIGN_KEY_TEST', 'COSIGN_KEY_SPARE'], mode: 'enforce' },
  { name: 'warn-only', repos: ['warned/*'], keys: ['COSIGN_KEY_TEST'], mode: 'warn' },
];

/** Copies `from` (name:tag, in the plain registry) to `to` with an annotation of its own (a digest
 *  of its own), blobs mounted across repositories. -> the new top manifest's digest */
async function clone(from, to, note) {
  const [fr, ft] = from.split(':');
  const [tr, tt] = to.split(':');
  const base = `http://${PLAIN}/v2`;
  const get = async (ref) => {
    const r = await fetch(`${base}/${fr}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL }, signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200, `${from} ${ref}`);
    return { bytes: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') };
  };
  const put = async (ref, bytes, type) => {
    const r = await fetch(`${base}/${tr}/manifests/${ref}`, { method: 'PUT', body: bytes, headers: { 'content-type': type }, signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 201, `put ${to} ${ref}`);
  };
  const mountAll = async (m) => {
    const j = JSON.parse(m.bytes);
    for (const d of [j.config, ...j.layers]) {
      const r = await fetch(`${base}/${tr}/blobs/uploads/?mount=${d.digest}&from=${fr}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      assert.equal(r.status, 201, `mount ${d.digest} into ${tr}`);
    }
  };
  const top = await get(ft);
  const j = JSON.parse(top.bytes);
  if (j.manifests) {
    for (const c of j.manifests) {
      const child = await get(c.digest);
      await mountAll(child);
      await put(c.digest, child.bytes, child.type);
    }
  } else {
    await mountAll(top);
  }
  j.annotations = { ...(j.annotations ?? {}), 'org.example.edgemirror-test': note };
  const bytes = Buffer.from(JSON.stringify(j));
  await put(tt, bytes, top.type);
  return { digest: sha256(bytes), platforms: (j.manifests ?? []).map((c) => c.digest) };
}

/** Signs `digest` in `repo` with key `key` as cosign would (options: payloadDigest, tamper). */
async function sign(repo, digest, key, { payloadDigest, tamper } = {}) {
  const args = [SIGNER, 'sign', '--key', path.join(KEYS, `${key}.key`), '--registry', PLAIN, '--repo', repo, '--digest', digest];
  if (payloadDigest) args.push('--payload-digest', payloadDigest);
  if (tamper) args.push('--tamper', tamper);
  const r = await run('python3', args, { timeout: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Mirror log lines of manifest requests under `repo`. */
const manifestLines = (entries, repo) => entries.filter((e) => e.msg === 'request' && e.route === 'manifest' && e.path.includes(`/${repo}/`));

describe('cosign signature policy', { timeout: 600_000 }, () => {
  let w, front, cases, signed, multi;
  before(async () => {
    fs.rmSync(KEYS, { recursive: true, force: true });
    for (const k of ['trusted', 'spare', 'stranger']) {
      const r = await run('python3', [SIGNER, 'keygen', KEYS, k], { timeout: 20_000 });
      assert.equal(r.code, 0, r.stderr);
    }
    const pub = (k) => fs.readFileSync(path.join(KEYS, `${k}.pub`), 'utf8');
    w = await startWorld({ port: PORT, ttls: { verify: VERIFY }, vars: { COSIGN_KEY_TEST: pub('trusted'), COSIGN_KEY_SPARE: pub('spare') } });
    front = await startTlsRejectingFront({ port: FRONT_PORT, targetPort: PORT });
    // A fresh suffix per run: repositories (and so digests) never met by a client's store before.
    const run_ = crypto.randomBytes(3).toString('hex');
    signed = { repo: `signed/alpine-${run_}`, ...(await clone('library/alpine:oci', `signed/alpine-${run_}:latest`, run_)) };
    await sign(signed.repo, signed.digest, 'trusted');
    multi = { repo: `signed/multi-${run_}`, ...(await clone('library/multi:oci', `signed/multi-${run_}:latest`, run_)) };
    await sign(multi.repo, multi.digest, 'trusted');
    // The refused ones: fresh images of random layers (a digest each), signed wrongly or not at all.
    const bad = async (name, how) => {
      const repo = `signed/${name}-${run_}`;
      const img = await pushImage(repo, { layerBytes: 1024 });
      await how(repo, img.manifest.digest);
      return { name, repo, digest: img.manifest.digest };
    };
    cases = [
      await bad('unsigned', async () => {}),
      await bad('otherkey', (r, d) => sign(r, d, 'stranger')),
      await bad('otherdigest', (r, d) => sign(r, d, 'trusted', { payloadDigest: signed.digest })),
      await bad('tamperedpayload', (r, d) => sign(r, d, 'trusted', { tamper: 'payload' })),
      await bad('tamperedsig', (r, d) => sign(r, d, 'trusted', { tamper: 'signature' })),
    ];
  }, { timeout: 240_000 });
  after(async () => {
    await front?.stop();
    await w?.stop();
  }, { timeout: 60_000 });

  const WHY = {
    unsigned: /no signature \(sha256-[0-9a-f]{64}\.sig not found\)/,
    otherkey: /no signature in sha256-[0-9a-f]{64}\.sig verifies with key COSIGN_KEY_TEST or COSIGN_KEY_SPARE/,
    otherdigest: /the signature is valid but signs another manifest \(sha256:[0-9a-f]{64}\)/,
    // The payload's bytes or the signature changed after signing: no key verifies it.
    tamperedpayload: /no signature in sha256-[0-9a-f]{64}\.sig verifies with key COSIGN_KEY_TEST or COSIGN_KEY_SPARE/,
    tamperedsig: /no signature in sha256-[0-9a-f]{64}\.sig verifies with key COSIGN_KEY_TEST or COSIGN_KEY_SPARE/,
  };
  const refusal = (c) => new RegExp(`manifest ${c.digest} refused by signature policy signed-only: ${WHY[c.name].source}`);

  it('skopeo copies a signed image and a signed multi-arch index; the platform manifests pass by their index', async () => {
    for (const img of [signed, multi]) {
      const m = w.mark();
      const dir = path.join(ROOT, 'skopeo-sig', img.repo.replace(/\//g, '_'));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      const r = await skopeo(['copy', '--all', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${img.repo}:latest`, `dir:${dir}`], { timeout: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(fs.readFileSync(path.join(dir, 'manifest.json'))), img.digest, 'the signed bytes');
      const lines = manifestLines(w.mirror.entries(m.mirror), img.repo).filter((e) => e.method === 'GET');
      const top = lines.find((e) => e.path.endsWith('/latest'));
      assert.match(top?.signature ?? '', /^verified; key=COSIGN_KEY_TEST; policy=signed-only$/, JSON.stringify(lines));
      for (const p of img.platforms) {
        assert.ok(fs.existsSync(path.join(dir, `${p.slice(7)}.manifest.json`)), `platform ${p}`);
        const line = lines.find((e) => e.path.endsWith(p));
        assert.equal(line?.signature, `verified; index=${img.digest}; policy=signed-only`, JSON.stringify(lines));
      }
    }
  });

  it('a warm signed pull makes no upstream request', async () => {
    await sleep(300); // the first pulls' store writes land
    const m = w.mark();
    for (const img of [signed, multi]) {
      const dir = path.join(ROOT, 'skopeo-sig', `warm-${img.repo.replace(/\//g, '_')}`);
      fs.rmSync(dir, { recursive: true, force: true });
      const r = await skopeo(['copy', '--all', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${img.repo}:latest`, `dir:${dir}`], { timeout: 120_000 });
      assert.equal(r.code, 0, r.stderr);
    }
    await sleep(300);
    const s = w.since(m);
    const served = s.mirror.filter((e) => e.msg === 'request' && e.route === 'manifest' && e.status === 200);
    assert.ok(served.length >= 4, 'the mirror served the manifests');
    assert.deepEqual(s.hub.map((q) => `${q.method} ${q.path}`), [], 'no registry request');
    assert.deepEqual(s.blobs, [], 'no blob-host request');
    assert.deepEqual(s.token, [], 'no token request');
  });

  it('skopeo: every wrongly signed image is refused with 403 DENIED and the reason', async () => {
    for (const c of cases) {
      const dir = path.join(ROOT, 'skopeo-sig', `bad-${c.name}`);
      const r = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${c.repo}:latest`, `dir:${dir}`], { timeout: 60_000 });
      assert.notEqual(r.code, 0, c.name);
      assert.match(r.stderr, /denied/i, `${c.name}: ${r.stderr}`);
      assert.match(r.stderr, refusal(c), `${c.name}: ${r.stderr}`);
      // By digest too, and nothing of the manifest in the answer.
      const res = await raw({ port: PORT, path: `/v2/${c.repo}/manifests/${c.digest}`, headers: { Accept: ACCEPT_ALL } });
      assert.equal(res.status, 403, c.name);
      assert.equal(ociCode(res), 'DENIED');
      assert.match(JSON.parse(res.body).errors[0].message, refusal(c));
    }
  });

  it('ctr (HEAD first, ?ns=docker.io) pulls the signed image and index; the refused ones fail with the message', async () => {
    const root = path.join(ROOT, 'ctr-sig');
    fs.rmSync(root, { recursive: true, force: true });
    const cd = await startContainerd({ root });
    try {
      const hostsDir = path.join(root, 'certs.d');
      writeHostsToml({ dir: hostsDir, mirror: MIRROR });
      for (const img of [signed, multi]) {
        const r = await cd.ctr(['images', 'pull', '--hosts-dir', hostsDir, `docker.io/${img.repo}:latest`], { timeout: 120_000 });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const ls = await cd.ctr(['images', 'ls']);
        assert.ok(ls.stdout.includes(img.digest), `ctr holds ${img.repo} as ${img.digest}`);
      }
      for (const c of cases) {
        const r = await cd.ctr(['images', 'pull', '--hosts-dir', hostsDir, `docker.io/${c.repo}:latest`], { timeout: 60_000 });
        assert.notEqual(r.code, 0, c.name);
        assert.match(r.stderr + r.stdout, /403 Forbidden/, c.name);
        assert.match(r.stderr + r.stdout, refusal(c), `${c.name}: ${r.stderr}`);
      }
    } finally {
      await cd.stop();
    }
  });

  it('dockerd with registry-mirrors pulls the signed ones; a refused one fails, the message in the daemon log and on a direct pull', async () => {
    // Through the TLS-rejecting front: dockerd, like skopeo, tries HTTPS first (a 10 s stall
    // against workerd's plain port).
    const d = await startDockerd({ root: path.join(ROOT, 'dockerd-sig'), mirror: front.url });
    try {
      for (const img of [signed, multi]) {
        const m = w.mark();
        const pull = await d.docker(['pull', `${img.repo}:latest`]);
        assert.equal(pull.code, 0, pull.stderr + pull.stdout);
        assert.match(pull.stdout, new RegExp(`Digest: ${img.digest}`));
        await sleep(200);
        const s = w.since(m);
        assert.ok(manifestLines(s.mirror, img.repo).some((e) => e.status === 200), 'the mirror served it');
        assert.ok(!s.hub.some((q) => q.ua.startsWith('docker/')), 'dockerd never reached the upstream directly');
      }
      const c = cases[0];
      const from = fs.statSync(d.log).size;
      const viaMirror = await d.docker(['pull', `${c.repo}:latest`]);
      assert.notEqual(viaMirror.code, 0);
      // dockerd falls back from a failing mirror to the registry itself (here a dead port) and
      // reports that last error; the mirror's refusal is in its log.
      const log = fs.readFileSync(d.log).subarray(from).toString();
      assert.match(log, refusal(c), 'dockerd logged the refusal');
      // Pulled from the mirror by name (no fallback), the CLI shows the refusal itself.
      for (const c of cases) {
        const direct = await d.docker(['pull', `${front.host}/${c.repo}:latest`]);
        assert.notEqual(direct.code, 0, c.name);
        assert.match(direct.stderr, /denied/, c.name);
        assert.match(direct.stderr, refusal(c), `${c.name}: ${direct.stderr}`);
      }
    } finally {
      await d.stop();
    }
  });

  it('warn mode serves an unsigned image with the header and a log line', async () => {
    const img = await pushImage(`warned/app-${crypto.randomBytes(3).toString('hex')}`, { layerBytes: 1024 });
    const m = w.mark();
    const dir = path.join(ROOT, 'skopeo-sig', 'warned');
    fs.rmSync(dir, { recursive: true, force: true });
    const r = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${img.repo}:latest`, `dir:${dir}`], { timeout: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(fs.readFileSync(path.join(dir, 'manifest.json'))), img.manifest.digest);
    const res = await raw({ port: PORT, path: `/v2/${img.repo}/manifests/latest`, headers: { Accept: ACCEPT_ALL } });
    assert.equal(res.status, 200);
    assert.match(res.headers['edgemirror-signature'], /^unverified; policy=warn-only; mode=warn; reason=no signature/);
    const lines = manifestLines(w.mirror.entries(m.mirror), img.repo);
    assert.ok(lines.some((e) => e.status === 200 && /^unverified; policy=warn-only/.test(e.signature ?? '')), JSON.stringify(lines));
  });

  it('uncovered repositories are untouched, and HEAD is not gated', async () => {
    const m = w.mark();
    const res = await raw({ port: PORT, path: '/v2/library/alpine/manifests/latest', headers: { Accept: ACCEPT_ALL } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['edgemirror-signature'], undefined);
    await sleep(200);
    assert.ok(!w.since(m).hub.some((q) => q.path.endsWith('.sig')), 'no signature looked for');
    const head = await raw({ port: PORT, method: 'HEAD', path: `/v2/${cases[0].repo}/manifests/latest`, headers: { Accept: ACCEPT_ALL } });
    assert.equal(head.status, 200, 'HEAD serves no manifest bytes: the GET is refused');
    assert.equal(head.headers['docker-content-digest'], cases[0].digest);
  });

  it('keys are checked at start: a key that is not set, or not a public key, makes the configuration invalid', async () => {
    const pem = fs.readFileSync(path.join(KEYS, 'trusted.pub'), 'utf8');
    const priv = fs.readFileSync(path.join(KEYS, 'trusted.key'), 'utf8');
    for (const [vars, problem] of [
      [{ COSIGN_KEY_TEST: pem }, 'key COSIGN_KEY_SPARE is not set'],
      [{ COSIGN_KEY_TEST: pem, COSIGN_KEY_SPARE: priv }, 'key COSIGN_KEY_SPARE holds a private key; the mirror takes the public key (cosign.pub)'],
    ]) {
      const bad = await mirrorWith({ port: BAD_PORT, vars: { UPSTREAMS: upstreamTable(w.up, { verify: VERIFY }), ...vars } });
      try {
        const health = await raw({ port: BAD_PORT, path: '/healthz' });
        assert.equal(health.status, 503);
        const body = JSON.parse(health.body);
        assert.equal(body.field, 'UPSTREAMS.docker.io.verify[0].keys');
        assert.equal(body.problem, problem);
        for (const line of priv.split('\n').slice(1, -2)) assert.ok(!health.body.toString().includes(line), 'the key is never shown');
        const pull = await raw({ port: BAD_PORT, path: `/v2/${signed.repo}/manifests/latest` });
        assert.equal(pull.status, 503);
      } finally {
        await bad.stop();
      }
    }
  });
});
