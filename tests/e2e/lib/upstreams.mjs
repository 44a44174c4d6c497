// Loopback upstream registries for the e2e tests (all on 127.0.0.1):
//   plain :15000  CNCF distribution 2.8 (`docker-registry`), no auth
//   hub   :15100  Docker-Hub-like distribution: Bearer auth (realm :15101/token, service
//                 testbed-registry), blob GET/HEAD answered 307 to the blob server
//   token :15101  fixtures/token-server.py (alice:alice-pa55; anonymous = pull, none on library/private)
//   blobs :15300  fixtures/blob-server.py (the redirect target, like S3/a CDN)
// Both registries share ROOT/data/upstream. Also: test images (makeImages) and log readers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertPortFree, daemon, run, waitPort, waitUntil } from './proc.mjs';

export { waitUntil };

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
/** EDGEMIRROR_PORT_OFFSET moves every upstream port (e.g. 1000: a benchmark beside a test run). */
const OFFSET = Number(process.env.EDGEMIRROR_PORT_OFFSET ?? 0);
export const PORTS = { plain: 15000 + OFFSET, hub: 15100 + OFFSET, token: 15101 + OFFSET, blobs: 15300 + OFFSET };
export const SERVICE = 'testbed-registry';
// A password no message of the mirror's could contain by chance (zz-logs looks for it in every line).
export const USER = { username: 'alice', password: 'alice-pa55' };
export const PRIVATE_REPOS = ['library/private'];

function registryYml(name, root, port, extra = '') {
  return `# rendered by tests/e2e/lib/upstreams.mjs
version: 0.1
log:
  level: info
  formatter: json
  fields:
    service: ${name}
storage:
  filesystem:
    rootdirectory: ${root}/data/upstream
  delete:
    enabled: true
${extra}http:
  addr: 127.0.0.1:${port}
  secret: edgemirror-e2e-not-secret
  headers:
    X-Content-Type-Options: [nosniff]
`;
}

/**
 * Start the four upstream servers under `root` (logs/, data/, conf/).
 * `bigMb` is not used here (images are built by makeImages); accepted for symmetry.
 * -> { plain, hub, token, blobs (base URLs), logs: {plain, hub, token, blobs}, stop() }
 */
export async function startUpstreams({ root, bigMb = 120 } = {}) {
  if (!root) throw new Error('startUpstreams: root is required');
  for (const d of ['logs', 'conf', 'data/upstream']) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const p of Object.values(PORTS)) await assertPortFree(p);
  const logs = Object.fromEntries(Object.keys(PORTS).map((k) => [k, path.join(root, 'logs', `${k}.log`)]));
  const keydir = path.join(root, 'data', 'tokenkeys');

  fs.writeFileSync(path.join(root, 'conf', 'plain.yml'), registryYml('upstream-plain', root, PORTS.plain));
  fs.writeFileSync(path.join(root, 'conf', 'hub.yml'), registryYml('upstream-hub', root, PORTS.hub, `\
  redirect:
    disable: false
middleware:
  storage:
    - name: redirect
      options:
        baseurl: http://127.0.0.1:${PORTS.blobs}/
auth:
  token:
    realm: http://127.0.0.1:${PORTS.token}/token
    service: ${SERVICE}
    issuer: testbed-issuer
    rootcertbundle: ${keydir}/cert.pem
`));

  const procs = [];
  const stop = async () => { await Promise.all(procs.map((p) => p.stop())); };
  try {
    const start = (name, cmd, args) => { const d = daemon(name, cmd, args, { log: logs[name] }); procs.push(d); return d; };
    const plain = start('plain', 'docker-registry', ['serve', path.join(root, 'conf', 'plain.yml')]);
    const token = start('token', 'python3', [path.join(FIXTURES, 'token-server.py'),
      '--listen', `127.0.0.1:${PORTS.token}`, '--keydir', keydir, '--service', SERVICE,
      '--user', `${USER.username}:${USER.password}`, ...PRIVATE_REPOS.flatMap((r) => ['--private', r])]);
    const blobs = start('blobs', 'python3', [path.join(FIXTURES, 'blob-server.py'),
      '--listen', `127.0.0.1:${PORTS.blobs}`, '--root', path.join(root, 'data', 'upstream')]);
    await waitPort(PORTS.token, token); // it writes cert.pem before listening; the hub needs it
    const hub = start('hub', 'docker-registry', ['serve', path.join(root, 'conf', 'hub.yml')]);
    await Promise.all([waitPort(PORTS.plain, plain), waitPort(PORTS.blobs, blobs), waitPort(PORTS.hub, hub)]);
  } catch (e) {
    await stop();
    throw e;
  }
  const url = (p) => `http://127.0.0.1:${p}`;
  return { plain: url(PORTS.plain), hub: url(PORTS.hub), token: url(PORTS.token), blobs: url(PORTS.blobs), logs, stop };
}

// ---------------------------------------------------------------- images

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
};
export const ACCEPT_ALL = Object.values(MEDIA).join(', ');

// name:tag -> [layout, format]; v2s2 = Docker schema2 (what Docker Hub serves), oci = as built
const IMAGES = {
  'library/alpine:latest': ['small', 'v2s2'],
  'library/alpine:3.19': ['small', 'v2s2'],
  'library/alpine:oci': ['small', 'oci'],
  'library/multi:latest': ['multi', 'v2s2'],
  'library/multi:oci': ['multi', 'oci'],
  'library/big:latest': ['big', 'v2s2'],
  'library/private:latest': ['small', 'v2s2'],
};

async function busyboxPath(root) {
  const st = await run('dpkg-query', ['-W', '-f=${Status}', 'busybox-static']).catch(() => null);
  if (st?.stdout.includes('install ok installed') && fs.existsSync('/bin/busybox')) return '/bin/busybox';
  const pkgs = path.join(root, 'pkgs');
  const bb = path.join(pkgs, 'bb', 'bin', 'busybox');
  if (!fs.existsSync(bb)) {
    fs.mkdirSync(pkgs, { recursive: true });
    await run('apt-get', ['download', 'busybox-static'], { cwd: pkgs, timeout: 120000, check: true });
    const deb = fs.readdirSync(pkgs).find((f) => /^busybox-static_.*\.deb$/.test(f));
    await run('dpkg-deb', ['-x', path.join(pkgs, deb), path.join(pkgs, 'bb')], { check: true });
  }
  return bb;
}

/** Top-level manifest of name:tag as stored in `registry` (plain HTTP, no auth). */
export async function fetchManifest(registry, nameTag) {
  const [name, tag] = nameTag.split(':');
  const res = await fetch(`http://${registry}/v2/${name}/manifests/${tag}`,
    { headers: { Accept: ACCEPT_ALL }, signal: AbortSignal.timeout(10000) });
  if (res.status !== 200) return null;
  const raw = Buffer.from(await res.arrayBuffer());
  return { raw, digest: 'sha256:' + crypto.createHash('sha256').update(raw).digest('hex'),
    mediaType: res.headers.get('content-type'), size: raw.length };
}

/**
 * Build the test images (fixtures/mkimage.py) and push them into `registry` with skopeo.
 * Cached: skipped when ROOT/data/images.json matches (same registry, bigMb, digests still served).
 * -> { 'library/alpine:latest': {digest, mediaType, size[, platforms: {'linux/amd64': digest, ...}]},
 *      ..., bigLayer: {digest, size} }
 */
export async function makeImages({ root, registry = `127.0.0.1:${PORTS.plain}`, bigMb = 120 } = {}) {
  if (!root) throw new Error('makeImages: root is required');
  const marker = path.join(root, 'data', 'images.json');
  try {
    const m = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if (m.registry === registry && m.bigMb === bigMb) {
      const now = await Promise.all(Object.keys(IMAGES).map((t) => fetchManifest(registry, t)));
      if (now.every((r, i) => r?.digest === m.images[Object.keys(IMAGES)[i]].digest)) return m.images;
    }
  } catch { /* no usable marker: build */ }

  const bb = await busyboxPath(root);
  const lay = path.join(root, 'layouts');
  fs.rmSync(lay, { recursive: true, force: true });
  fs.mkdirSync(lay, { recursive: true });
  const mk = (kind, ...extra) => run('python3', [path.join(FIXTURES, 'mkimage.py'), kind,
    path.join(lay, kind), '--busybox', bb, ...extra], { timeout: 300000, check: true });
  await Promise.all([mk('small'), mk('multi'), mk('big', '--size-mb', String(bigMb))]);

  const push = (nameTag) => {
    const [layout, fmt] = IMAGES[nameTag];
    const how = fmt === 'v2s2' ? ['--format', 'v2s2'] : ['--preserve-digests'];
    return run('skopeo', ['copy', '-q', '--all', ...how, '--dest-tls-verify=false',
      `oci:${path.join(lay, layout)}:latest`, `docker://${registry}/${nameTag}`], { timeout: 300000, check: true });
  };
  // one chain per repository (tags of one repo in order), repositories in parallel
  const byRepo = {};
  for (const t of Object.keys(IMAGES)) (byRepo[t.split(':')[0]] ??= []).push(t);
  await Promise.all(Object.values(byRepo).map(async (tags) => { for (const t of tags) await push(t); }));

  const images = {};
  for (const t of Object.keys(IMAGES)) {
    const m = await fetchManifest(registry, t);
    if (!m) throw new Error(`makeImages: ${t} not found in ${registry} after push`);
    images[t] = { digest: m.digest, mediaType: m.mediaType, size: m.size };
    const body = JSON.parse(m.raw);
    if (body.manifests) {
      images[t].platforms = Object.fromEntries(body.manifests.map((d) =>
        [`${d.platform.os}/${d.platform.architecture}`, d.digest]));
    }
    if (t === 'library/big:latest') {
      const big = body.layers.reduce((a, b) => (b.size > a.size ? b : a));
      images.bigLayer = { digest: big.digest, size: big.size };
    }
  }
  fs.writeFileSync(marker, JSON.stringify({ registry, bigMb, images }, null, 2));
  return images;
}

/**
 * Pushes a fresh image of random layers straight to the plain registry (the hub shares its
 * storage, so it serves the image too) with the registry API: no skopeo, ~10 ms an image.
 * -> { repo, layers: [{digest, size}], layer (the first), manifest: {digest, bytes} }
 */
export async function pushImage(repo, { layers = 1, layerBytes = 512 * 1024, registry = `127.0.0.1:${PORTS.plain}` } = {}) {
  const base = `http://${registry}/v2/${repo}`;
  const sha = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
  const blob = async (bytes) => {
    const digest = sha(bytes);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(start.headers.get('location'), base);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`push blob to ${repo}: ${put.status}`);
    return { digest, size: bytes.length };
  };
  const made = [];
  for (let i = 0; i < layers; i++) made.push(await blob(crypto.randomBytes(layerBytes)));
  const config = await blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux',
    rootfs: { type: 'layers', diff_ids: made.map((l) => l.digest) }, nonce: crypto.randomUUID() })));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.dockerManifest,
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config.digest, size: config.size },
    layers: made.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', ...l })) }));
  const put = await fetch(`${base}/manifests/latest`, { method: 'PUT', body: manifest, headers: { 'content-type': MEDIA.dockerManifest } });
  if (put.status !== 201) throw new Error(`push manifest to ${repo}: ${put.status}`);
  return { repo, layers: made, layer: made[0], manifest: { digest: sha(manifest), bytes: manifest } };
}

// ---------------------------------------------------------------- logs

/** Current byte size of a log file (0 if missing): pass it later as `fromOffset`. */
export function logOffset(file) {
  try { return fs.statSync(file).size; } catch { return 0; }
}

function linesFrom(file, fromOffset = 0) {
  let buf;
  try { buf = fs.readFileSync(file); } catch { return []; }
  const s = buf.subarray(fromOffset).toString('utf8');
  const lines = s.split('\n');
  lines.pop(); // drop an incomplete last line (or the '' after the final '\n')
  return lines;
}

// distribution's access log (stdout, gorilla CombinedLoggingHandler), one line per request:
// 127.0.0.1 - - [22/Nov/2026:04:40:44 +0000] "HEAD /v2/foo/manifests/latest HTTP/1.1" 404 96 "" "curl/7.88.1"
const ACCESS = /^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"/;

/**
 * Requests a registry answered after `fromOffset`, from its access log lines (the JSON app-log
 * lines in the same file are skipped): [{ method, path, query, status, bytes, user, ua, time }]
 * `path` has no query string (containerd adds ?ns=docker.io); `user` is '-' or the basic-auth user.
 */
export function readRequests(file, fromOffset = 0) {
  const out = [];
  for (const line of linesFrom(file, fromOffset)) {
    const m = ACCESS.exec(line);
    if (!m) continue;
    const [p, q = ''] = m[5].split(/\?(.*)/s);
    out.push({ method: m[4], path: p, query: q, status: Number(m[6]), bytes: m[7] === '-' ? 0 : Number(m[7]),
      user: m[2], ua: m[9], time: m[3] });
  }
  return out;
}

/** JSON objects logged one per line (token and blob servers; also the registries' app log). */
export function readJsonLines(file, fromOffset = 0) {
  const out = [];
  for (const line of linesFrom(file, fromOffset)) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line)); } catch { /* not JSON */ }
  }
  return out;
}
