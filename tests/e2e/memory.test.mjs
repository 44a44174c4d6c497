// Memory under a burst of large manifests (issue 12, row 5): 32 manifests just under the 4 MiB limit
// are pulled through the mirror at once (cold: every one a miss), then 32 at once again, warm (hits
// from the store). The isolate's wasm memory (`/healthz`, `edgemirror-wasm-memory`) only ever grows,
// and a Workers isolate has 128 MB for everything: it must stay within 32 MiB. Every body must still
// hash to its digest. Figures land in test-output/memory.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startWorld, ROOT, outputFile, raw as sharedRaw } from './lib/world.mjs';
import { PORTS } from './lib/upstreams.mjs';

// 18795 would be free by `PORT =` but cache.test.mjs uses it (LIAR_MIRROR + 1).
const PORT = 18789;
const COUNT = 32;
const MIB = 1024 * 1024;
/** policy::MAX_MANIFEST (4 MiB), which is also CNCF distribution's limit for a manifest body. */
const MAX_MANIFEST = 4 * MIB;
const LIMIT = 32 * MIB;
const REPO = 'memory/big';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** A request to the mirror on a connection of its own (lib/http.mjs's default): with Node's
 *  keep-alive agent, a burst reusing sockets left idle by the previous burst now and then meets one
 *  workerd is closing at that moment ("socket hang up" before any byte, a client-side race). */
const raw = ({ timeout = 30_000, ...req }) => sharedRaw({ port: PORT, timeout, ...req });

/** Pushes `count` tags t0… of REPO to the plain registry, each an OCI manifest a few KiB under
 *  MAX_MANIFEST (a large annotation), sharing one config and one layer.
 *  -> [{ tag, digest, size }] */
async function pushBigManifests(count) {
  const base = `http://127.0.0.1:${PORTS.plain}/v2/${REPO}`;
  const blob = async (bytes) => {
    const digest = sha256(bytes);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
    const loc = new URL(start.headers.get('location'), base);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(30_000) });
    if (put.status !== 201) throw new Error(`push blob: ${put.status}`);
    return { digest, size: bytes.length };
  };
  const layer = await blob(crypto.randomBytes(64 * 1024));
  const config = await blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const out = [];
  for (let i = 0; i < count; i++) {
    const shell = (pad) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
      annotations: { 'org.example.nonce': crypto.randomUUID(), 'org.example.pad': pad } }));
    const pad = 'x'.repeat(MAX_MANIFEST - 4096 - shell('').length);
    const bytes = shell(pad);
    const tag = `t${i}`;
    const put = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { 'content-type': OCI_MANIFEST }, signal: AbortSignal.timeout(60_000) });
    if (put.status !== 201) throw new Error(`push manifest ${tag}: ${put.status} ${await put.text()}`);
    out.push({ tag, digest: sha256(bytes), size: bytes.length });
  }
  return out;
}

async function wasmMemory() {
  const r = await raw({ path: '/healthz', timeout: 30_000 });
  assert.equal(r.status, 200);
  const bytes = Number(r.headers['edgemirror-wasm-memory']);
  assert.ok(bytes > 0, `edgemirror-wasm-memory: ${r.headers['edgemirror-wasm-memory']}`);
  return bytes;
}

/** GETs every path at once through the mirror; each answer's body must hash to its digest. */
async function pullAll(paths, want) {
  const answers = await Promise.all(paths.map((p) => raw({ path: p, headers: { accept: OCI_MANIFEST }, timeout: 180_000 })));
  answers.forEach((r, i) => {
    const m = want[i];
    assert.equal(r.status, 200, `${paths[i]}: ${r.status} ${r.body.toString().slice(0, 300)}`);
    assert.equal(r.body.length, m.size, `${paths[i]}: length`);
    assert.equal(sha256(r.body), m.digest, `${paths[i]}: the body hashes to its digest`);
    assert.equal(r.headers['docker-content-digest'], m.digest);
    assert.equal(r.headers['content-type'], OCI_MANIFEST);
  });
  return answers;
}

const mib = (n) => (n / MIB).toFixed(1);

describe('wasm memory under 32 concurrent 4 MiB manifests', { timeout: 600_000 }, () => {
  let w, manifests;
  const figures = {};
  before(async () => {
    const state = path.join(ROOT, 'memory-state');
    fs.rmSync(state, { recursive: true, force: true });
    w = await startWorld({ port: PORT, r2: true, state });
    manifests = await pushBigManifests(COUNT);
  }, { timeout: 300_000 });
  after(async () => {
    const rows = [['before', figures.before], ['after 32 cold', figures.cold], ['after 32 warm', figures.warm]];
    fs.writeFileSync(outputFile('memory.md'), [
      `# wasm memory, ${COUNT} concurrent manifests of ${mib(manifests?.[0]?.size ?? 0)} MiB`,
      '',
      `Limit: ${mib(LIMIT)} MiB (the isolate's wasm linear memory, from /healthz; it never shrinks).`,
      '',
      '| when | wasm memory (bytes) | MiB |',
      '|---|---:|---:|',
      ...rows.map(([k, v]) => `| ${k} | ${v ?? 'n/a'} | ${v === undefined ? 'n/a' : mib(v)} |`),
      '',
    ].join('\n'));
    await w?.stop();
  }, { timeout: 60_000 });

  it('32 cold misses at once keep wasm memory within 32 MiB, every body verified', { timeout: 240_000 }, async () => {
    figures.before = await wasmMemory();
    const paths = manifests.map((m) => `/v2/plain/${REPO}/manifests/${m.tag}`);
    const m = w.mark();
    const answers = await pullAll(paths, manifests);
    assert.ok(answers.every((r) => String(r.headers['cache-status']).includes('fwd=miss')), answers.map((r) => r.headers['cache-status']).join(' | '));
    figures.cold = await wasmMemory();
    const gets = w.since(m).plain.filter((q) => q.method === 'GET' && q.path.includes('/manifests/'));
    assert.equal(gets.length, COUNT, 'each manifest fetched once');
    assert.ok(figures.cold <= LIMIT, `wasm memory after ${COUNT} cold: ${mib(figures.cold)} MiB (before: ${mib(figures.before)} MiB)`);
  });

  it('32 warm hits at once (one manifest, then all, by tag and by digest) stay within 32 MiB', { timeout: 240_000 }, async () => {
    await sleep(2000); // store writes run after the responses
    const m = w.mark();
    const one = Array.from({ length: COUNT }, () => manifests[0]);
    const hit = (answers) => assert.ok(answers.every((r) => String(r.headers['cache-status']).includes('hit')), answers.map((r) => r.headers['cache-status']).join(' | '));
    hit(await pullAll(one.map((x) => `/v2/plain/${REPO}/manifests/${x.tag}`), one));
    hit(await pullAll(manifests.map((x) => `/v2/plain/${REPO}/manifests/${x.tag}`), manifests));
    hit(await pullAll(manifests.map((x) => `/v2/plain/${REPO}/manifests/${x.digest}`), manifests));
    // A HEAD hit answers from the store's metadata.
    const head = await raw({ method: 'HEAD', path: `/v2/plain/${REPO}/manifests/${manifests[1].digest}`, headers: { accept: OCI_MANIFEST }, timeout: 30_000 });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), manifests[1].size);
    assert.equal(head.headers['docker-content-digest'], manifests[1].digest);
    assert.ok(String(head.headers['cache-status']).includes('hit'));
    await sleep(300);
    assert.deepEqual(w.since(m).plain.filter((q) => q.method === 'GET'), [], 'no GET reached the registry');
    figures.warm = await wasmMemory();
    assert.ok(figures.warm <= LIMIT, `wasm memory after warm hits: ${mib(figures.warm)} MiB (after cold: ${mib(figures.cold)} MiB)`);
  });
});
