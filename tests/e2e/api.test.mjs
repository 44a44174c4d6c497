// The registry API through the real worker in workerd, against real CNCF distribution upstreams:
// manifests of every kind byte for byte, blobs through a 307 to the blob host, Range, tags, token
// auth, routing, bad input and upstream failures.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { startWorld, mirrorWith, raw, ociCode, MIRROR_PORT } from './lib/world.mjs';
import { ACCEPT_ALL, MEDIA, fetchManifest } from './lib/upstreams.mjs';

const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
const TAGS = ['library/alpine:latest', 'library/alpine:3.19', 'library/alpine:oci', 'library/multi:latest', 'library/multi:oci', 'library/big:latest'];

describe('registry API through the mirror', { timeout: 300_000 }, () => {
  let w, start;
  before(async () => { w = await startWorld(); start = w.mark(); }, { timeout: 240_000 });
  after(async () => { await w?.stop(); }, { timeout: 60_000 });

  it('answers /v2/ like a registry: a challenge, then 200 with a token', async () => {
    const r = await raw({ path: '/v2/' });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], `Bearer realm="http://127.0.0.1:${MIRROR_PORT}/token",service="edgemirror"`);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
    const t = JSON.parse((await raw({ path: '/token?service=edgemirror&scope=repository:alpine:pull' })).body);
    const ok = await raw({ path: '/v2/', headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(ok.status, 200);
  });

  for (const tag of TAGS) {
    it(`serves ${tag} byte for byte (GET and HEAD, by tag and by digest)`, async () => {
      const want = w.images[tag];
      const [name, ref] = tag.split(':');
      const short = name.replace(/^library\//, '');
      for (const reference of [ref, want.digest]) {
        const get = await raw({ path: `/v2/${short}/manifests/${reference}`, headers: { accept: ACCEPT_ALL } });
        assert.equal(get.status, 200, get.body.toString());
        assert.equal(sha256(get.body), want.digest, 'bytes hash to the upstream digest');
        assert.equal(get.headers['docker-content-digest'], want.digest);
        assert.equal(get.headers['content-type'], want.mediaType);
        assert.equal(Number(get.headers['content-length']), get.body.length);
        assert.ok(get.headers.etag, 'ETag passed through');
        const head = await raw({ method: 'HEAD', path: `/v2/${name}/manifests/${reference}`, headers: { accept: ACCEPT_ALL } });
        assert.equal(head.status, 200);
        assert.equal(head.body.length, 0);
        assert.equal(head.headers['docker-content-digest'], want.digest);
        assert.equal(head.headers['content-type'], want.mediaType);
        assert.equal(Number(head.headers['content-length']), get.body.length);
      }
    });
  }

  it('forwards the Accept list: a v2s2-only client gets v2s2, never an index it did not ask for', async () => {
    const r = await raw({ path: '/v2/multi/manifests/latest', headers: { accept: MEDIA.dockerList } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], MEDIA.dockerList);
    const oci = await raw({ path: '/v2/alpine/manifests/oci', headers: { accept: MEDIA.ociManifest } });
    assert.equal(oci.headers['content-type'], MEDIA.ociManifest);
  });

  it('streams the big layer through the 307 redirect; the blob host never sees Authorization', async () => {
    const m = w.mark();
    const { digest, size } = w.images.bigLayer;
    const r = await raw({ path: `/v2/big/blobs/${digest}`, timeout: 120_000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, size);
    assert.equal(sha256(r.body), digest);
    assert.equal(r.headers['docker-content-digest'], digest);
    const head = await raw({ method: 'HEAD', path: `/v2/big/blobs/${digest}` });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), size);
    const s = w.since(m);
    assert.ok(s.hub.some((q) => q.status === 307 && q.path.endsWith(digest)), 'the hub redirected the blob');
    const fromMirror = s.blobs.filter((b) => b.path.includes(digest.slice(7)));
    assert.ok(fromMirror.length >= 1, 'the mirror fetched from the blob host');
    for (const b of s.blobs) assert.equal(b.authz, null, `blob host got Authorization: ${JSON.stringify(b)}`);
  });

  it('passes Range requests through as 206 with Content-Range', async () => {
    const { digest, size } = w.images.bigLayer;
    const whole = await raw({ port: 15000, path: `/v2/library/big/blobs/${digest}`, headers: { range: 'bytes=1000-1999' } });
    const r = await raw({ path: `/v2/big/blobs/${digest}`, headers: { range: 'bytes=1000-1999' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 1000-1999/${size}`);
    assert.equal(r.body.length, 1000);
    assert.deepEqual(r.body, whole.body);
  });

  it('fetches one anonymous token per repository scope, with library/ in it, and reuses it', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await raw({ method: 'HEAD', path: '/v2/alpine/manifests/3.19', headers: { accept: ACCEPT_ALL } })).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    // Over the whole suite so far: every scope was asked for once (tokens live 300 s).
    const requests = w.since(start).token;
    const scopes = requests.flatMap((t) => t.scopes);
    assert.ok(scopes.includes('repository:library/alpine:pull'));
    assert.ok(scopes.every((s) => /^repository:library\/[a-z]+:pull$/.test(s)), scopes.join(' '));
    assert.equal(new Set(scopes).size, scopes.length, `a scope was fetched twice: ${scopes.join(' ')}`);
    assert.ok(requests.every((t) => t.account === ''), 'anonymous');
  });

  it('lists tags, passing n/last to the upstream', async () => {
    const m = w.mark();
    const r = await raw({ path: '/v2/alpine/tags/list?n=2&last=3.19' });
    assert.equal(r.status, 200);
    const list = JSON.parse(r.body.toString());
    assert.ok(list.tags.includes('latest'));
    await new Promise((r) => setTimeout(r, 200));
    const q = w.since(m).hub.filter((x) => x.path === '/v2/library/alpine/tags/list' && x.status === 200);
    assert.equal(q.length, 1);
    assert.equal(q[0].query, 'n=2&last=3.19');
    // distribution 2.8 sends no Link here; its rewriting is covered by the native tests.
  });

  it('passes referrers through (distribution 2.8 has no referrers API: its 404 comes back as an OCI error)', async () => {
    const m = w.mark();
    const r = await raw({ path: `/v2/alpine/referrers/${w.images['library/alpine:latest'].digest}` });
    assert.equal(r.status, 404);
    assert.match(ociCode(r), /^[A-Z_]+$/);
    assert.ok(w.since(m).hub.some((q) => q.path.includes('/referrers/')), 'the request reached the upstream');
  });

  it('routes by path prefix, by ?ns= and by host name', async () => {
    const want = await fetchManifest('127.0.0.1:15000', 'library/alpine:latest');
    const m = w.mark();
    const cases = [
      { path: '/v2/plain/library/alpine/manifests/latest', headers: {}, by: 'prefix' },
      { path: '/v2/library/alpine/manifests/latest?ns=plain.test', headers: {}, by: 'ns' },
      { path: '/v2/library/alpine/manifests/latest', headers: { host: `plain.localhost:${MIRROR_PORT}` }, by: 'host' },
      { path: '/v2/docker.io/alpine/manifests/latest', headers: {}, by: 'prefix', upstream: 'docker.io' },
    ];
    for (const c of cases) {
      const r = await raw({ path: c.path, headers: { accept: ACCEPT_ALL, ...c.headers } });
      assert.equal(r.status, 200, `${c.path}: ${r.body}`);
      assert.equal(r.headers['docker-content-digest'], want.digest);
    }
    const log = w.since(m).mirror.filter((e) => e.msg === 'request');
    assert.deepEqual(log.map((e) => [e.by, e.upstream]), cases.map((c) => [c.by, c.upstream ?? 'plain']));
    await new Promise((r) => setTimeout(r, 200));
    // Three routes to the same upstream name and Accept list: one fetch, then the cache.
    assert.ok(w.since(m).plain.filter((q) => q.method === 'GET').length >= 1);
  });

  const BAD = [
    // [method, path, status, code]
    ['GET', '/v2/Alpine/manifests/latest', 400, 'NAME_INVALID'],
    // Neither a tag nor a digest: no such manifest (the spec's only manifest failure), not asked upstream.
    ['GET', '/v2/alpine/manifests/-latest', 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/alpine/manifests/${'a'.repeat(129)}`, 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/${'a/'.repeat(130)}x/manifests/latest`, 400, 'NAME_INVALID'],
    ['GET', '/v2/alpine/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/alpine/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/alpine/manifests/sha256:XYZ', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/a%2fb/manifests/latest', 400, 'NAME_INVALID'],
    ['GET', '/v2/alpine/manifests/lat%00est', 400, 'NAME_INVALID'],
    ['GET', '/v2/..%2f..%2fetc/manifests/latest', 400, 'NAME_INVALID'],
    ['GET', '/v2/user@evil.example/x/manifests/latest', 400, 'NAME_INVALID'],
    ['GET', '/v2/evil.example.com/x/manifests/latest', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/169.254.169.254/latest/manifests/latest', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/quay.io/x/manifests/latest', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/alpine/manifests/latest?ns=evil.example.com', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/alpine/manifests/latest?ns=ghcr.io', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/alpine/tags/list?n=lots', 400, 'PAGINATION_NUMBER_INVALID'],
    ['GET', '/v2/_catalog', 405, 'UNSUPPORTED'],
    ['PUT', '/v2/alpine/manifests/latest', 405, 'UNSUPPORTED'],
    ['DELETE', '/v2/alpine/manifests/latest', 405, 'UNSUPPORTED'],
    ['POST', '/v2/alpine/blobs/uploads/', 405, 'UNSUPPORTED'],
    ['PATCH', '/v2/alpine/blobs/uploads/1234', 405, 'UNSUPPORTED'],
    ['DELETE', `/v2/alpine/blobs/sha256:${'0'.repeat(64)}`, 405, 'UNSUPPORTED'],
    ['OPTIONS', '/v2/', 405, 'UNSUPPORTED'],
    ['GET', '/v2/alpine', 404, 'NAME_UNKNOWN'],
    ['GET', '/admin', 404, 'NAME_UNKNOWN'],
  ];

  it('answers bad input with a clear OCI 4xx and never contacts an upstream', async () => {
    const m = w.mark();
    for (const [method, path, status, code] of BAD) {
      const r = await raw({ method, path });
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.equal(ociCode(r), code, `${method} ${path}`);
      assert.equal(r.headers['content-type'], 'application/json');
    }
    await new Promise((r) => setTimeout(r, 300)); // access logs are written after the response
    const s = w.since(m);
    assert.deepEqual([s.plain, s.hub, s.token, s.blobs], [[], [], [], []], 'no upstream saw any of it');
    // The runtime is still healthy afterwards.
    assert.equal((await raw({ path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } })).status, 200);
  });

  it('maps an unknown manifest to the upstream\'s 404 OCI error', async () => {
    const r = await raw({ path: '/v2/alpine/manifests/nope', headers: { accept: ACCEPT_ALL } });
    assert.equal(r.status, 404);
    assert.equal(ociCode(r), 'MANIFEST_UNKNOWN');
  });
});

describe('upstream failures and configuration errors', { timeout: 120_000 }, () => {
  let mirror, bad, hang;
  const PORT = 18790, BAD_PORT = 18791, HANG_PORT = 18799;
  before(async () => {
    // Accepts connections and never answers.
    hang = net.createServer((c) => c.on('error', () => {})).listen(HANG_PORT, '127.0.0.1');
    mirror = await mirrorWith({
      port: PORT,
      vars: {
        UPSTREAMS: { dead: { registry: 'http://127.0.0.1:9', prefixes: ['dead'] }, hang: { registry: `http://127.0.0.1:${HANG_PORT}`, prefixes: ['hang'] } },
        DEFAULT_UPSTREAM: '',
        UPSTREAM_TIMEOUT_MS: '700',
      },
    });
    bad = await mirrorWith({ port: BAD_PORT, vars: { UPSTREAMS: JSON.stringify({ bad: { registry: 'ftp://x' } }) } });
  }, { timeout: 60_000 });
  after(async () => {
    await mirror?.stop(); await bad?.stop();
    hang?.closeAllConnections?.(); hang?.close();
  }, { timeout: 30_000 });

  it('an unreachable upstream is a quick 502', async () => {
    const t = Date.now();
    const r = await raw({ port: PORT, path: '/v2/dead/x/manifests/latest' });
    assert.equal(r.status, 502);
    assert.equal(ociCode(r), 'UNAVAILABLE');
    assert.ok(Date.now() - t < 5000);
  });

  it('an upstream that never answers is a 504 after UPSTREAM_TIMEOUT_MS', async () => {
    const t = Date.now();
    const r = await raw({ port: PORT, path: '/v2/hang/x/manifests/latest' });
    const ms = Date.now() - t;
    assert.equal(r.status, 504);
    assert.equal(ociCode(r), 'UNAVAILABLE');
    assert.ok(ms >= 600 && ms < 10_000, `took ${ms} ms`);
  });

  it('no default upstream: an unmatched name is NAME_UNKNOWN', async () => {
    const r = await raw({ port: PORT, path: '/v2/alpine/manifests/latest' });
    assert.equal(r.status, 404);
    assert.equal(ociCode(r), 'NAME_UNKNOWN');
  });

  it('an invalid table answers every request with an OCI error naming the field, and logs it once', async () => {
    for (const path of ['/v2/alpine/manifests/latest', '/v2/', '/v2/x/blobs/sha256:' + '0'.repeat(64)]) {
      const r = await raw({ port: BAD_PORT, path });
      assert.equal(r.status, 503, path);
      assert.equal(ociCode(r), 'UNAVAILABLE');
      assert.match(r.body.toString(), /UPSTREAMS\.bad\.registry/);
    }
    const health = await raw({ port: BAD_PORT, path: '/healthz' });
    assert.equal(health.status, 503);
    assert.equal(JSON.parse(health.body.toString()).field, 'UPSTREAMS.bad.registry');
    const logged = bad.entries().filter((e) => e.msg === 'invalid configuration');
    assert.equal(logged.length, 1);
  });
});
