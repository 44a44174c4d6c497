// Faults between the mirror and its upstreams, end to end: a fault-injecting proxy sits in front of
// the Docker-Hub-like registry, its token server, its blob host (which, like S3, refuses any
// request carrying Authorization) and the plain registry. Each case arms a fault, pulls a fresh
// image's manifest or layer through the mirror (Cache API mirror and R2 mirror), and records what
// the client saw and how fast, what reached the upstream, what the next request saw, and what the
// stores hold for that digest (must be nothing or the right bytes). The table is written to
// test-output/faults.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { mirrorWith, ROOT, outputFile } from './lib/world.mjs';
import { startUpstreams, pushImage, MEDIA } from './lib/upstreams.mjs';
import { proxyUpstreams } from './lib/faultproxy.mjs';
import { sleep } from './lib/proc.mjs';
import { skopeo, startTlsRejectingFront } from './lib/clients.mjs';

const OFFSET = Number(process.env.EDGEMIRROR_PORT_OFFSET ?? 0);
const PROXY = { hub: 15500 + OFFSET, token: 15501 + OFFSET, blobs: 15502 + OFFSET, plain: 15503 + OFFSET };
const MIRRORS = { cache: 18770, r2: 18771 };
const FRONT = 18775; // skopeo's TLS-rejecting front
const TIMEOUT_MS = 2000; // UPSTREAM_TIMEOUT_MS of both mirrors
const TAG_TTL = 2; // seconds: a `warm` case waits this out so its tag must be revalidated
const LAYER_BYTES = 512 * 1024;
// A body must be done within the upstream timeout plus its length at 64 KiB/s (src/platform/body_deadline.rs).
const BODY_DEADLINE_MS = TIMEOUT_MS + (LAYER_BYTES * 1000) / (64 * 1024);
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** One GET through the mirror, as a client sees it: never throws. */
function pull(port, p, accept) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, headers: accept ? { accept } : {}, timeout: 30_000 }, (res) => {
      const chunks = [];
      const done = (error) => {
        const body = Buffer.concat(chunks);
        let code = null;
        try { code = JSON.parse(body).errors[0].code; } catch { /* not an OCI error */ }
        resolve({ status: res.statusCode, code, body, ms: Date.now() - t0, error, retryAfter: res.headers['retry-after'], warning: res.headers.warning });
      };
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done(null));
      res.on('error', (e) => done(e.code ?? e.message));
      res.on('aborted', () => done('aborted'));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout (30 s)')));
    req.on('error', (e) => resolve({ status: 0, code: null, body: Buffer.alloc(0), ms: Date.now() - t0, error: e.message }));
    req.end();
  });
}

// The cases. `via`: which upstream the mirror pulls through ('hub': token auth and 307 to the
// blob host; 'plain': no auth, bytes from the registry itself). `what`: 'blob' or 'manifest' (by
// tag). `arm`: [listener, rule] pairs. `expect`: what the client must see.
const CASES = [
  { id: 'registry 500 once', via: 'plain', what: 'blob', arm: [['plain', { fault: 'status', code: 500, path: /\/blobs\// }]], expect: { status: 200 } },
  { id: 'registry 502 once', via: 'hub', what: 'manifest', arm: [['hub', { fault: 'status', code: 502, method: 'GET', path: /\/manifests\// }]], expect: { status: 200 } },
  { id: 'registry 503 + Retry-After: 1, once', via: 'plain', what: 'blob', arm: [['plain', { fault: 'status', code: 503, retryAfter: 1, path: /\/blobs\// }]], expect: { status: 200 } },
  { id: 'registry 503 + Retry-After: 120', via: 'plain', what: 'blob', arm: [['plain', { fault: 'status', code: 503, retryAfter: 120, path: /\/blobs\// }]], expect: { status: 503, code: 'UNAVAILABLE', retryAfter: '120' } },
  { id: 'registry 429 + Retry-After: 30', via: 'hub', what: 'manifest', arm: [['hub', { fault: 'status', code: 429, retryAfter: 30, path: /\/manifests\// }]], expect: { status: 429, code: 'TOOMANYREQUESTS', retryAfter: '30' } },
  { id: 'registry 429, no Retry-After', via: 'plain', what: 'blob', arm: [['plain', { fault: 'status', code: 429, path: /\/blobs\// }]], expect: { status: 429, code: 'TOOMANYREQUESTS' } },
  { id: 'registry 500 every time', via: 'plain', what: 'blob', arm: [['plain', { fault: 'status', code: 500, path: /\/blobs\//, times: 2 }]], expect: { status: 502, code: 'UNAVAILABLE' } },
  { id: 'registry hangs before headers', via: 'plain', what: 'blob', arm: [['plain', { fault: 'hang', path: /\/blobs\// }]], expect: { status: 504, code: 'UNAVAILABLE', withinMs: TIMEOUT_MS + 1500 } },
  { id: 'registry slow (1 s) but within the timeout', via: 'plain', what: 'blob', arm: [['plain', { fault: 'delay', ms: 1000, path: /\/blobs\// }]], expect: { status: 200 } },
  { id: 'token server hangs', via: 'hub', what: 'manifest', arm: [['token', { fault: 'hang' }]], expect: { status: 504, code: 'UNAVAILABLE', withinMs: TIMEOUT_MS + 1500 } },
  { id: 'token server 500 once', via: 'hub', what: 'blob', arm: [['token', { fault: 'status', code: 500 }]], expect: { status: 200 } },
  { id: 'token server answers invalid JSON', via: 'hub', what: 'manifest', arm: [['token', { fault: 'badjson' }]], expect: { status: 502, code: 'UNAVAILABLE' } },
  { id: 'token already expired, once', via: 'hub', what: 'manifest', arm: [['token', { fault: 'expired' }]], expect: { status: 200 } },
  { id: 'token always expired', via: 'hub', what: 'blob', arm: [['token', { fault: 'expired', times: 2 }]], expect: { status: 502, code: 'UNAVAILABLE' } },
  { id: 'blob host hangs', via: 'hub', what: 'blob', arm: [['blobs', { fault: 'hang' }]], expect: { status: 504, code: 'UNAVAILABLE', withinMs: TIMEOUT_MS + 1500 } },
  { id: 'blob host 503 once', via: 'hub', what: 'blob', arm: [['blobs', { fault: 'status', code: 503 }]], expect: { status: 200 } },
  { id: 'redirect loop', via: 'hub', what: 'blob', arm: [['blobs', { fault: 'loop', times: 5 }]], expect: { status: 502, code: 'UNAVAILABLE' } },
  { id: 'redirect to an S3-like host that refuses any credentials', via: 'hub', what: 'blob', arm: [], expect: { status: 200 } },
  { id: 'blob stalls mid-body', via: 'hub', what: 'blob', arm: [['blobs', { fault: 'stall', after: 64 * 1024 }]], expect: { cut: true, withinMs: BODY_DEADLINE_MS + 2000 }, stores: ['cache', 'r2'] },
  { id: 'blob connection reset mid-body', via: 'plain', what: 'blob', arm: [['plain', { fault: 'reset', after: 100 * 1024, path: /\/blobs\// }]], expect: { cut: true }, stores: ['cache', 'r2'] },
  { id: 'blob shorter than Content-Length', via: 'hub', what: 'blob', arm: [['blobs', { fault: 'short', missing: 1000 }]], expect: { cut: true }, stores: ['cache', 'r2'] },
  { id: 'blob with other bytes (same length)', via: 'plain', what: 'blob', arm: [['plain', { fault: 'wrong', path: /\/blobs\// }]], expect: { badDigest: true }, stores: ['cache', 'r2'] },
  { id: 'manifest with other bytes', via: 'plain', what: 'manifest', arm: [['plain', { fault: 'wrong', method: 'GET', path: /\/manifests\// }]], expect: { status: 502, code: 'DIGEST_INVALID' } },
  { id: 'manifest shorter than Content-Length', via: 'hub', what: 'manifest', arm: [['hub', { fault: 'short', missing: 10, method: 'GET', path: /\/manifests\// }]], expect: { status: 502, code: 'UNAVAILABLE' } },
  { id: 'manifest stalls mid-body', via: 'plain', what: 'manifest', arm: [['plain', { fault: 'stall', after: 20, method: 'GET', path: /\/manifests\// }]], expect: { status: 502, code: 'UNAVAILABLE', withinMs: TIMEOUT_MS + 3000 } },
  // A tag pulled once, then past its TTL: the revalidating HEAD meets the fault.
  { id: 'stale tag, revalidation HEAD 500 (twice)', via: 'hub', what: 'manifest', warm: true, arm: [['hub', { fault: 'status', code: 500, method: 'HEAD', path: /\/manifests\//, times: 2 }]], expect: { status: 200, stale: true } },
  { id: 'stale tag, revalidation HEAD hangs', via: 'plain', what: 'manifest', warm: true, arm: [['plain', { fault: 'hang', method: 'HEAD', path: /\/manifests\// }]], expect: { status: 200, stale: true, withinMs: TIMEOUT_MS + 1500 } },
  { id: 'stale tag, upstream says 404 now', via: 'plain', what: 'manifest', warm: true, arm: [['plain', { fault: 'status', code: 404, method: 'HEAD', path: /\/manifests\//, body: '' }]], expect: { status: 404 } },
];

describe('faults between the mirror and its upstreams', { timeout: 900_000 }, () => {
  let up, proxies, mirrors = {};
  const rows = [];

  before(async () => {
    fs.mkdirSync(ROOT, { recursive: true });
    up = await startUpstreams({ root: ROOT });
    proxies = await proxyUpstreams(up, PROXY, path.join(ROOT, 'logs', 'faultproxy.log'));
    const vars = {
      UPSTREAMS: {
        'docker.io': { registry: proxies.urls.hub, prefixes: ['docker.io'], ns: ['docker.io'], library: true, tag_ttl: TAG_TTL, stale_if_error: '1h' },
        plain: { registry: proxies.urls.plain, prefixes: ['plain'], tag_ttl: TAG_TTL, stale_if_error: '1h' },
      },
      UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
      RATE_LIMIT: 'off',
    };
    mirrors.cache = await mirrorWith({ port: MIRRORS.cache, vars });
    mirrors.r2 = await mirrorWith({ port: MIRRORS.r2, vars, r2: true });
  }, { timeout: 300_000 });

  after(async () => {
    if (rows.length) {
      const head = '| case | store | client saw | ms | upstream requests (fault) | next request | stored afterwards |\n|---|---|---|---:|---|---|---|\n';
      fs.writeFileSync(outputFile('faults.md'), head + rows.map((r) => `| ${r.join(' | ')} |`).join('\n') + '\n');
    }
    await mirrors.cache?.stop();
    await mirrors.r2?.stop();
    await proxies?.stop();
    await up?.stop();
  }, { timeout: 60_000 });

  /** What each store holds under the mirror's key for this content: 'nothing', 'verified' or 'BAD'. */
  async function stored(mirror, upstream, repo, kind, digest) {
    const key = `https://edgemirror.cache/v1/${encodeURIComponent(upstream)}/${repo}/${kind}/${digest}`;
    const out = [];
    const caches = await mirror.mf.getCaches();
    const hit = await caches.default.match(key);
    if (hit) out.push(`cache ${sha256(Buffer.from(await hit.arrayBuffer())) === digest ? 'verified' : 'BAD'}`);
    if (mirror === mirrors.r2) {
      const obj = await (await mirror.mf.getR2Bucket('BLOBS')).get(key.replace('https://edgemirror.cache/v1/', ''));
      if (obj) out.push(`R2 ${sha256(Buffer.from(await obj.arrayBuffer())) === digest ? 'verified' : 'BAD'}`);
    }
    return out.length ? out.join(', ') : 'nothing';
  }

  const describeResult = (r, want) => {
    if (r.status === 0) return `no answer (${r.error})`;
    const bits = [`${r.status}`];
    if (r.code) bits.push(r.code);
    if (r.retryAfter) bits.push(`Retry-After ${r.retryAfter}`);
    if (r.warning) bits.push('stale (Warning 110)');
    if (r.error) bits.push(`body cut after ${r.body.length} B (${r.error})`);
    else if (r.status === 200 && want) bits.push(sha256(r.body) === want ? 'digest ok' : 'DIGEST MISMATCH');
    return bits.join(' ');
  };

  for (const c of CASES) {
    for (const store of c.stores ?? ['cache']) {
      it(`${c.id} (${store})`, { timeout: 90_000 }, async () => {
        const mirror = mirrors[store];
        const slug = c.id.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
        const img = await pushImage(`faults/${slug}-${store}`, { layerBytes: LAYER_BYTES });
        const upstream = c.via === 'hub' ? 'docker.io' : 'plain';
        const name = c.via === 'hub' ? img.repo : `plain/${img.repo}`;
        const [p, want, accept] = c.what === 'blob'
          ? [`/v2/${name}/blobs/${img.layer.digest}`, img.layer.digest, undefined]
          : [`/v2/${name}/manifests/latest`, img.manifest.digest, MEDIA.dockerManifest];
        if (c.warm) {
          const first = await pull(MIRRORS[store], p, accept);
          assert.equal(first.status, 200, 'the warm-up pull');
          await sleep(TAG_TTL * 1000 + 1200);
        }
        for (const [listener, rule] of c.arm) proxies.arm(listener, rule);
        const from = proxies.mark();
        const r = await pull(mirror.port ?? MIRRORS[store], p, accept);
        const seen = proxies.requests(from);
        const unfired = proxies.pending();
        proxies.disarm();
        await sleep(1500); // stores commit after the response
        const held = await stored(mirror, upstream, img.repo, c.what === 'blob' ? 'blobs' : 'manifests', want);
        const next = await pull(MIRRORS[store], p, accept);
        const faults = seen.filter((q) => q.fault).length;
        rows.push([c.id, store, describeResult(r, want), r.ms,
          `${seen.length} (${faults} faulted)`, describeResult(next, want), held]);

        assert.equal(unfired, 0, 'every armed fault fired');
        const e = c.expect;
        if (e.status !== undefined) assert.equal(r.status, e.status, describeResult(r, want));
        if (e.code) assert.equal(r.code, e.code, describeResult(r, want));
        if (e.retryAfter) assert.equal(r.retryAfter, e.retryAfter);
        if (e.status === 200) assert.equal(sha256(r.body), want, 'the client got the right bytes');
        if (e.cut) assert.ok(r.error || r.body.length < LAYER_BYTES, `the body must be cut short: ${describeResult(r, want)}`);
        if (e.badDigest) assert.notEqual(sha256(r.body), want, 'the client can tell the bytes are wrong');
        if (e.withinMs) assert.ok(r.ms <= e.withinMs, `answered in ${r.ms} ms, bound ${e.withinMs}`);
        if (e.stale) assert.match(r.warning ?? '', /^110 /, 'served stale, with a Warning');
        assert.ok(!held.includes('BAD'), `a store holds bad bytes: ${held}`);
        if (r.status !== 200 || r.error || e.badDigest) {
          assert.ok(!/verified|BAD/.test(held) || held === 'nothing' || !r.error, `nothing stored after a failure: ${held}`);
        }
        assert.equal(next.status, 200, `next request: ${describeResult(next, want)}`);
        assert.equal(sha256(next.body), want, 'next request: right bytes');
        assert.ok(seen.every((q) => !(q.proxy === 'blobs' && q.authz)), 'the blob host never gets Authorization');
      });
    }
  }

  it('a real client (skopeo, no retries of its own) pulls an image whose every blob fails once upstream', { timeout: 180_000 }, async () => {
    const img = await pushImage('faults/skopeo-retry', { layers: 3, layerBytes: 300 * 1024 });
    const front = await startTlsRejectingFront({ port: FRONT, targetPort: MIRRORS.r2 });
    const dir = path.join(ROOT, 'faults-skopeo');
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      proxies.arm('hub', { fault: 'status', code: 502, method: 'GET', path: /\/manifests\// });
      for (const l of img.layers) proxies.arm('blobs', { fault: 'status', code: 503, path: new RegExp(l.digest.slice(7)) });
      proxies.arm('token', { fault: 'status', code: 500 });
      const from = proxies.mark();
      const r = await skopeo(['copy', '--retry-times', '0', '--src-tls-verify=false', `docker://${front.host}/${img.repo}:latest`, `dir:${dir}`], { timeout: 120_000 });
      const unfired = proxies.pending();
      proxies.disarm();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(unfired, 0, 'every fault fired');
      const seen = proxies.requests(from);
      rows.push(['skopeo copy, every layer 503 once, manifest 502 once, token 500 once', 'r2', 'exit 0, digests verified by skopeo', '-', `${seen.length} (${seen.filter((q) => q.fault).length} faulted)`, '-', '-']);
      for (const l of img.layers) {
        assert.equal(sha256(fs.readFileSync(path.join(dir, l.digest.slice(7)))), l.digest);
      }
    } finally {
      proxies.disarm();
      await front.stop();
    }
  });

  it('no request of the whole suite carried Authorization to the blob host', () => {
    const all = proxies.requests(0);
    assert.ok(all.some((q) => q.proxy === 'blobs'), 'the blob host was used');
    assert.deepEqual(all.filter((q) => q.proxy === 'blobs' && q.authz), []);
  });
});
