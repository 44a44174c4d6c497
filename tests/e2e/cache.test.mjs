// The cache end to end, counted from the upstream's own access log: a second pull within the tag
// TTL costs 0 upstream requests (its manifests answered from the isolate's memory); after it, one HEAD; a re-tag is picked up; with the upstream down
// a cached image still pulls (stale) and an uncached one fails cleanly; R2 survives a restart with
// a fresh Cache API and serves Range; an upstream that lies about bytes never poisons any store.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startWorld, mirrorWith, upstreamTable, raw, ociCode, ROOT, outputFile } from './lib/world.mjs';
import { skopeo, startTlsRejectingFront } from './lib/clients.mjs';
import { ACCEPT_ALL } from './lib/upstreams.mjs';
import { run } from './lib/proc.mjs';

const PORT = 18792, FRONT = 18793, LIAR_PORT = 15400, LIAR_MIRROR = 18794;
const TAG_TTL = 5;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const waitFor = async (f, ms = 20_000) => {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(200)) if (await f()) return;
  throw new Error('timed out waiting for the store');
};
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

describe('cache with split TTLs, R2 and integrity', { timeout: 600_000 }, () => {
  let w, front, state;
  const copy = async (ref) => {
    const dir = path.join(ROOT, 'cache-copy', ref.replace(/[/:]/g, '_'));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    return skopeo(['copy', '--all', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/${ref}`, `dir:${dir}`], { timeout: 180_000 });
  };
  /** Upstream requests (hub registry, token server, blob host) made since mark `m`. */
  const upstreamSince = async (m) => {
    await sleep(300);
    const s = w.since(m);
    return { hub: s.hub, token: s.token, blobs: s.blobs, mirror: s.mirror.filter((e) => e.msg === 'request') };
  };

  before(async () => {
    state = path.join(ROOT, 'mirror-state');
    fs.rmSync(state, { recursive: true, force: true });
    w = await startWorld({ port: PORT, ttls: { tag_ttl: TAG_TTL, stale_if_error: '1h' }, r2: true, state });
    front = await startTlsRejectingFront({ port: FRONT, targetPort: PORT });
    // A tag the test can move: starts as alpine:latest.
    await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', 'docker://127.0.0.1:15000/library/alpine:latest', 'docker://127.0.0.1:15000/library/moving:latest'], { check: true, timeout: 60_000 });
  }, { timeout: 300_000 });
  after(async () => {
    await front?.stop();
    await w?.stop();
  }, { timeout: 60_000 });

  it('a second pull within the tag TTL makes 0 upstream requests', async () => {
    const cold = w.mark();
    assert.equal((await copy('library/multi:latest')).code, 0);
    const first = await upstreamSince(cold);
    assert.ok(first.hub.filter((q) => q.method === 'GET').length >= 3, 'the cold pull went upstream');
    await sleep(1000); // stores are written after the response
    const warm = w.mark();
    const r = await copy('library/multi:latest');
    assert.equal(r.code, 0, r.stderr);
    const second = await upstreamSince(warm);
    assert.deepEqual(second.hub, [], 'no registry request');
    assert.deepEqual(second.blobs, [], 'no blob host request');
    assert.deepEqual(second.token, [], 'no token request');
    const registry = second.mirror.filter((e) => e.route !== 'base' && e.route !== 'token');
    assert.ok(registry.length >= 4 && registry.every((e) => e.cache === 'hit'), JSON.stringify(registry.map((e) => e.cache)));
    // The manifests this isolate fetched are answered from its memory (no store lookup), the
    // blobs from the store.
    const manifests = registry.filter((e) => e.route === 'manifest');
    assert.ok(manifests.length >= 3, JSON.stringify(manifests));
    assert.ok(manifests.every((e) => /detail=memory/.test(e.cache_status)), JSON.stringify(manifests.map((e) => e.cache_status)));
    assert.ok(registry.filter((e) => e.route === 'blob').every((e) => !/memory/.test(e.cache_status)));
    const health = await raw({ port: PORT, path: '/healthz' });
    assert.ok(Number(health.headers['edgemirror-manifest-memory']) > 0, JSON.stringify(health.headers));
  });

  it('after the tag TTL: exactly one upstream HEAD and 0 GETs when unchanged', async () => {
    await sleep(TAG_TTL * 1000 + 500);
    const m = w.mark();
    assert.equal((await copy('library/multi:latest')).code, 0);
    const s = await upstreamSince(m);
    assert.deepEqual(s.hub.map((q) => `${q.method} ${q.path} ${q.status}`), ['HEAD /v2/library/multi/manifests/latest 200']);
    assert.deepEqual(s.blobs, []);
    assert.ok(s.mirror.some((e) => e.cache === 'revalidated'));
  });

  it('a re-tagged image upstream is pulled after the TTL', async () => {
    const before = await raw({ port: PORT, path: '/v2/moving/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(before.headers['docker-content-digest'], w.images['library/alpine:latest'].digest);
    await run('skopeo', ['copy', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', 'docker://127.0.0.1:15000/library/alpine:oci', 'docker://127.0.0.1:15000/library/moving:latest'], { check: true, timeout: 60_000 });
    const still = await raw({ port: PORT, path: '/v2/moving/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(still.headers['docker-content-digest'], w.images['library/alpine:latest'].digest, 'within the TTL the old one is served');
    await sleep(TAG_TTL * 1000 + 500);
    const after = await raw({ port: PORT, path: '/v2/moving/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(after.headers['docker-content-digest'], w.images['library/alpine:oci'].digest);
    assert.equal(sha256(after.body), w.images['library/alpine:oci'].digest);
  });

  it('restarted with the same R2 but a fresh Cache API: 0 upstream blob requests, Range from R2', async () => {
    await w.mirror.stop();
    w.mirror = await mirrorWith({ port: PORT, vars: { UPSTREAMS: upstreamTable(w.up, { tag_ttl: TAG_TTL, stale_if_error: '1h' }) }, r2: true, state, freshCache: true });
    const m = w.mark();
    assert.equal((await copy('library/multi:latest')).code, 0);
    const s = await upstreamSince(m);
    assert.deepEqual(s.blobs, [], 'blobs came from R2');
    // A new isolate learns the registry's realm once (GET /v2/), for the token it fetches ahead
    // when skopeo asks the mirror's /token; otherwise only the tag's resolution goes upstream.
    assert.ok(s.hub.filter((q) => q.path === '/v2/').length <= 1, `one realm discovery at most: ${JSON.stringify(s.hub)}`);
    assert.ok(s.hub.filter((q) => q.path !== '/v2/').every((q) => q.path.includes('/manifests/')), `only tag resolution went upstream: ${JSON.stringify(s.hub)}`);
    const layer = Object.values(w.images['library/multi:latest'].platforms)[0];
    const man = JSON.parse((await raw({ port: PORT, path: `/v2/multi/manifests/${layer}`, headers: { accept: ACCEPT_ALL } })).body);
    const blob = man.layers[0];
    const part = await raw({ port: PORT, path: `/v2/multi/blobs/${blob.digest}`, headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 10-19/${blob.size}`);
    assert.match(part.headers['cache-status'], /hit/);
    const whole = await raw({ port: 15000, path: `/v2/library/multi/blobs/${blob.digest}` });
    assert.deepEqual(part.body, whole.body.subarray(10, 20));
  });

  it('big layer throughput: direct, pass-through, cold and warm for each store (reported, not asserted)', async (t) => {
    const { digest, size } = w.images.bigLayer;
    const speed = async (url, headers = []) => {
      const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{speed_download} %{size_download}', ...headers, url], { timeout: 120_000 });
      const [code, bps, bytes] = r.stdout.trim().split(' ');
      assert.ok(code === '200' || code === '206', `${url}: ${code} ${r.stderr}`);
      assert.equal(Number(bytes), size);
      return Number(bps) / 1e6;
    };
    const median3 = async (f) => { const v = [await f(), await f(), await f()].sort((a, b) => a - b); return v[1]; };
    const blobPath = `/docker/registry/v2/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`;
    const cacheOnly = await mirrorWith({ port: PORT + 10, vars: { UPSTREAMS: upstreamTable(w.up) } });
    try {
      const rows = [];
      rows.push(['blob host directly (the 307 target)', await median3(() => speed(`http://127.0.0.1:15300${blobPath}`))]);
      rows.push(['plain CNCF registry directly', await median3(() => speed(`http://127.0.0.1:15000/v2/library/big/blobs/${digest}`))]);
      // A Range request is never stored: pure pass-through (token, 307 followed, stream handed on).
      rows.push(['edgemirror, uncached pass-through', await median3(() => speed(`${cacheOnly.url}/v2/big/blobs/${digest}`, ['-H', 'range: bytes=0-']))]);
      for (const [label, url] of [['Cache API', cacheOnly.url], ['R2', `http://127.0.0.1:${PORT}`]]) {
        const blob = `${url}/v2/big/blobs/${digest}`;
        const stored = (await raw({ port: Number(new URL(url).port), method: 'HEAD', path: `/v2/big/blobs/${digest}` })).headers['cache-status'];
        if (!/hit/.test(stored)) rows.push([`edgemirror, cold: client + fill ${label}`, await speed(blob)]);
        await waitFor(async () => /hit/.test((await raw({ port: Number(new URL(url).port), method: 'HEAD', path: `/v2/big/blobs/${digest}` })).headers['cache-status']));
        rows.push([`edgemirror, warm: hit from ${label}`, await median3(() => speed(blob))]);
      }
      const direct = rows[0][1];
      const table = [
        `${(size / 2 ** 20).toFixed(0)} MiB layer over 127.0.0.1, curl, MB/s (median of 3 except cold)`,
        '| path | MB/s | ratio to direct |', '|---|---|---|',
        ...rows.map(([label, v]) => `| ${label} | ${v.toFixed(0)} | ${(v / direct).toFixed(2)} |`),
      ].join('\n');
      fs.writeFileSync(outputFile('throughput.md'), table + '\n');
      t.diagnostic(table);
    } finally {
      await cacheOnly.stop();
    }
  });

  it('upstream down: a cached image still pulls (stale), an uncached one fails with an OCI error', async () => {
    // A tag record for this Accept list (the restart above began with an empty Cache API).
    assert.equal((await raw({ port: PORT, path: '/v2/moving/manifests/latest', headers: { accept: ACCEPT_ALL } })).status, 200);
    await sleep(TAG_TTL * 1000 + 500); // the tag records are stale: revalidation must fail over
    await w.up.stop();
    const r = await copy('library/multi:latest');
    assert.equal(r.code, 0, r.stderr);
    // The record stored for this Accept list by the re-tag test.
    const stale = await raw({ port: PORT, path: '/v2/moving/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(stale.status, 200);
    assert.match(stale.headers['cache-status'], /stale/);
    assert.match(stale.headers.warning, /^110 /);
    assert.equal(sha256(stale.body), w.images['library/alpine:oci'].digest);
    const t0 = Date.now();
    const missing = await raw({ port: PORT, path: '/v2/alpine/manifests/3.19', headers: { accept: ACCEPT_ALL } });
    assert.equal(missing.status, 502);
    assert.equal(ociCode(missing), 'UNAVAILABLE');
    assert.ok(Date.now() - t0 < 10_000);
  });
});

describe('an upstream that lies never poisons a store', { timeout: 120_000 }, () => {
  const REAL = Buffer.from('the real layer bytes');
  const DIGEST = sha256(REAL);
  const MANIFEST = Buffer.from('{"schemaVersion":2}');
  let liar, seen = [];
  let mirrors = [];
  before(async () => {
    liar = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const url = new URL(req.url, 'http://x');
      if (url.pathname.endsWith('/manifests/latest')) {
        // Announces the real manifest's digest, sends other bytes.
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha256(MANIFEST), 'content-length': 15 });
        return res.end('{"tampered":11}');
      }
      if (url.pathname.endsWith(`/blobs/${DIGEST}`) && url.pathname.includes('/wrong/')) {
        const bad = Buffer.alloc(REAL.length, 0x41);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bad.length });
        return res.end(bad);
      }
      if (url.pathname.endsWith(`/blobs/${DIGEST}`) && url.pathname.includes('/short/')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': REAL.length });
        res.write(REAL.subarray(0, 5));
        return setTimeout(() => res.socket.destroy(), 50);
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}');
    }).listen(LIAR_PORT, '127.0.0.1');
    const vars = { UPSTREAMS: { liar: { registry: `http://127.0.0.1:${LIAR_PORT}`, prefixes: ['liar'] } } };
    mirrors = [await mirrorWith({ port: LIAR_MIRROR, vars }), await mirrorWith({ port: LIAR_MIRROR + 1, vars, r2: true })];
  }, { timeout: 60_000 });
  after(async () => {
    for (const m of mirrors) await m.stop();
    liar?.closeAllConnections?.();
    liar?.close();
  }, { timeout: 30_000 });

  for (const [i, store] of [[0, 'Cache API'], [1, 'R2']]) {
    it(`${store}: a manifest with wrong bytes is refused; wrong or short blobs are never served from the store`, async () => {
      const port = LIAR_MIRROR + i;
      const m = await raw({ port, path: '/v2/liar/x/manifests/latest' });
      assert.equal(m.status, 502);
      assert.equal(ociCode(m), 'DIGEST_INVALID');
      for (const kind of ['wrong', 'short']) {
        const path = `/v2/liar/${kind}/blobs/${DIGEST}`;
        await raw({ port, path }).catch(() => {}); // the client sees bad bytes or a cut body: its own digest check rejects them
        await sleep(700); // let the store write finish (or fail)
        seen = [];
        const again = await raw({ port, path }).catch((e) => ({ error: e }));
        assert.ok(seen.includes(`GET ${path.replace('/liar', '')}`), `${kind}: the next pull went upstream again (${seen})`);
        if (again.headers) assert.doesNotMatch(again.headers['cache-status'], /hit/);
        const entries = mirrors[i].entries().filter((e) => e.msg === 'stored' && e.what === 'blob');
        assert.deepEqual(entries, [], 'nothing stored');
      }
    });
  }
});
