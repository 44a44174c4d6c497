// Hostile requests against the built worker, sent as raw bytes on a socket so nothing on the way
// tidies them up: traversal, encoded slashes, bad names/tags/digests, CRLF and NUL, absolute URLs
// and `@`, `?ns=`/prefixes/hosts naming unconfigured or private hosts, huge headers, other methods.
// Every upstream sits behind the fault proxy, whose log (with the upstreams' own logs) must show
// no request at all. Each answer must be a 4xx; one from the mirror must be an OCI error. The
// runtime's HTTP parser refuses some before the Worker runs (that is recorded as such). Afterwards
// the same runtime still serves a whole pull. The table goes to test-output/hostile.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import http from 'node:http';
import { mirrorWith, ROOT, outputFile, BIG_MB } from './lib/world.mjs';
import { startUpstreams, makeImages, logOffset, readRequests, readJsonLines } from './lib/upstreams.mjs';
import { proxyUpstreams } from './lib/faultproxy.mjs';
import { pullImage } from './lib/pull.mjs';
import { sleep } from './lib/proc.mjs';

const OFFSET = Number(process.env.EDGEMIRROR_PORT_OFFSET ?? 0);
const PROXY = { hub: 15510 + OFFSET, token: 15511 + OFFSET, blobs: 15512 + OFFSET, plain: 15513 + OFFSET };
const PORT = 18772;
const D = `sha256:${'0'.repeat(64)}`;

/** Sends `request` (a string or Buffer, sent as it is) and reads the answer until the server closes. */
function sendRaw(port, request, timeout = 10_000) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, '127.0.0.1', () => s.end(request));
    const done = (error) => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const head = (split < 0 ? all : all.subarray(0, split)).toString('latin1');
      const body = split < 0 ? Buffer.alloc(0) : all.subarray(split + 4);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      const headers = Object.fromEntries(head.split('\r\n').slice(1).map((l) => l.split(/:\s*/)).map(([k, ...v]) => [k.toLowerCase(), v.join(':')]));
      resolve({ status, headers, body, error });
    };
    s.setTimeout(timeout, () => { s.destroy(); done('timeout'); });
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => done(null));
    s.on('error', (e) => done(e.code));
  });
}

const req = (method, target, headers = {}) => {
  const lines = [`${method} ${target} HTTP/1.1`, ...(headers.Host ? [] : ['Host: 127.0.0.1']), 'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return lines.join('\r\n') + '\r\n\r\n';
};

// [label, raw request]
const CASES = [
  ['traversal ..', req('GET', '/v2/../../etc/passwd/manifests/latest')],
  ['traversal to admin', req('GET', '/v2/../admin/config')],
  ['traversal %2e%2e', req('GET', '/v2/%2e%2e/%2e%2e/manifests/latest')],
  ['encoded slash %2f', req('GET', '/v2/library%2falpine/manifests/latest')],
  ['encoded backslash', req('GET', '/v2/library%5c..%5calpine/manifests/latest')],
  ['double slash', req('GET', '/v2//alpine/manifests/latest')],
  ['uppercase name', req('GET', '/v2/Library/Alpine/manifests/latest')],
  ['illegal character in name', req('GET', '/v2/alp$ne/manifests/latest')],
  ['name of 300 characters', req('GET', `/v2/${'a'.repeat(300)}/manifests/latest`)],
  ['name of 3000 components', req('GET', `/v2/${'a/'.repeat(3000)}b/manifests/latest`)],
  ['library/ makes the name too long', req('GET', `/v2/${'a'.repeat(250)}/manifests/latest`)],
  ['tag of 129 characters', req('GET', `/v2/alpine/manifests/${'t'.repeat(129)}`)],
  ['tag starting with a dot', req('GET', '/v2/alpine/manifests/.latest')],
  ['digest too short', req('GET', '/v2/alpine/blobs/sha256:abc')],
  ['digest uppercase hex', req('GET', `/v2/alpine/blobs/sha256:${'A'.repeat(64)}`)],
  ['digest unknown algorithm', req('GET', `/v2/alpine/blobs/md5:${'0'.repeat(32)}`)],
  ['digest as a tag of a blob', req('GET', '/v2/alpine/blobs/latest')],
  ['CRLF encoded in path', req('GET', '/v2/alpine/manifests/latest%0d%0aX-Injected:%201')],
  ['CRLF encoded in ns', req('GET', '/v2/alpine/manifests/latest?ns=docker.io%0d%0aX-Injected:%201')],
  ['raw CR in path', `GET /v2/alpine/manifests/lat\rest HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`],
  ['NUL encoded in path', req('GET', '/v2/alpine/manifests/lat%00est')],
  ['raw NUL in path', `GET /v2/alpine/manifests/lat\0est HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`],
  ['NUL in a header', req('GET', '/v2/unknown-host-test/x/manifests/latest', { Accept: 'a\0b' })],
  ['absolute URL as target', req('GET', 'http://evil.example/v2/alpine/manifests/latest')],
  ['absolute URL in the name', req('GET', '/v2/http://evil.example/x/manifests/latest')],
  ['@ in the name', req('GET', '/v2/user@evil.example/x/manifests/latest')],
  ['@ after the host', req('GET', '/v2/alpine@evil/manifests/latest')],
  ['unconfigured registry as prefix', req('GET', '/v2/evil.example.com/x/manifests/latest')],
  ['private address as prefix', req('GET', '/v2/127.0.0.1:15000/library/alpine/manifests/latest')],
  ['localhost as prefix', req('GET', '/v2/localhost:15000/library/alpine/manifests/latest')],
  ['metadata address as prefix', req('GET', '/v2/169.254.169.254/latest/manifests/latest')],
  ['IPv6 loopback as prefix', req('GET', '/v2/[::1]:15000/x/manifests/latest')],
  ['ns naming an unconfigured registry', req('GET', '/v2/alpine/manifests/latest?ns=evil.example.com')],
  ['ns naming a private address', req('GET', '/v2/alpine/manifests/latest?ns=127.0.0.1:15000')],
  ['ns naming a built-in registry not configured', req('GET', '/v2/alpine/manifests/latest?ns=ghcr.io')],
  ['two ns values', req('GET', '/v2/alpine/manifests/latest?ns=docker.io&ns=evil.example.com')],
  ['Host naming the upstream', req('GET', '/v2/127.0.0.1:15000/x/manifests/latest', { Host: '127.0.0.1:15000' })],
  ['huge Accept header (60 KB)', req('GET', '/v2/evil.example.com/x/manifests/latest', { Accept: 'a/b, '.repeat(12_000) })],
  ['huge Authorization (100 KB)', req('GET', '/v2/evil.example.com/x/manifests/latest', { Authorization: `Bearer ${'x'.repeat(100_000)}` })],
  ['1000 headers', req('GET', '/v2/evil.example.com/x/manifests/latest', Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`X-H${i}`, 'v'])))],
  ['huge Range header', req('GET', `/v2/evil.example.com/x/blobs/${D}`, { Range: `bytes=${'0-1,'.repeat(5000)}0-1` })],
  ['PUT a manifest', req('PUT', '/v2/alpine/manifests/latest', { 'Content-Length': '2' }) + '{}'],
  ['DELETE a blob', req('DELETE', `/v2/alpine/blobs/${D}`)],
  ['POST an upload', req('POST', '/v2/alpine/blobs/uploads/', { 'Content-Length': '0' })],
  ['PATCH an upload', req('PATCH', '/v2/alpine/blobs/uploads/x', { 'Content-Length': '0' })],
  ['OPTIONS', req('OPTIONS', '/v2/alpine/manifests/latest')],
  ['TRACE', req('TRACE', '/v2/alpine/manifests/latest')],
  ['CONNECT', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'],
  ['unknown method', req('BREW', '/v2/alpine/manifests/latest')],
  ['catalog', req('GET', '/v2/_catalog')],
  ['tags list with bad n', req('GET', '/v2/alpine/tags/list?n=-1')],
  ['tags list with huge n', req('GET', '/v2/alpine/tags/list?n=99999999999999999999')],
];

describe('hostile requests', { timeout: 600_000 }, () => {
  let up, proxies, mirror, images;
  const rows = [];

  before(async () => {
    fs.mkdirSync(ROOT, { recursive: true });
    up = await startUpstreams({ root: ROOT });
    images = await makeImages({ root: ROOT, bigMb: BIG_MB });
    proxies = await proxyUpstreams(up, PROXY, path.join(ROOT, 'logs', 'hostile-proxy.log'));
    mirror = await mirrorWith({ port: PORT, vars: { UPSTREAMS: {
      'docker.io': { registry: proxies.urls.hub, prefixes: ['docker.io'], ns: ['docker.io'], library: true },
      plain: { registry: proxies.urls.plain, hosts: ['plain.localhost'], prefixes: ['plain'], ns: ['plain.test'] },
    }, RATE_LIMIT: 'off' } });
  }, { timeout: 300_000 });

  after(async () => {
    if (rows.length) {
      fs.writeFileSync(outputFile('hostile.md'), '| request | status | error code | answered by |\n|---|---|---|---|\n'
        + rows.map((r) => `| ${r.join(' | ')} |`).join('\n') + '\n');
    }
    await mirror?.stop();
    await proxies?.stop();
    await up?.stop();
  }, { timeout: 60_000 });

  it('every hostile request gets a 4xx, an OCI error when the Worker answers, and no upstream is contacted', async () => {
    const from = proxies.mark();
    const logs = Object.fromEntries(Object.entries(up.logs).map(([k, f]) => [k, logOffset(f)]));
    const mirrorFrom = mirror.mark();
    const problems = [];
    for (const [label, request] of CASES) {
      const r = await sendRaw(PORT, request);
      let code = null;
      try { code = JSON.parse(r.body).errors[0].code; } catch { /* not JSON */ }
      // The Worker's answers carry the registry API header; workerd's own parser errors do not.
      const byWorker = r.headers['docker-distribution-api-version'] === 'registry/2.0';
      rows.push([label, r.status || `no answer (${r.error})`, code ?? '-', byWorker ? 'the mirror (OCI error)' : r.status ? 'the runtime\'s HTTP parser, before the Worker' : 'connection closed by the runtime']);
      if (byWorker && !(r.status >= 400 && r.status < 500)) problems.push(`${label}: status ${r.status} ${r.body.toString().slice(0, 200)}`);
      if (byWorker && (!code || r.headers['content-type'] !== 'application/json')) problems.push(`${label}: not an OCI error: ${r.body.toString().slice(0, 200)}`);
    }
    assert.deepEqual(problems, []);
    await sleep(500); // access logs are written after the response
    assert.deepEqual(proxies.requests(from).map((q) => `${q.proxy} ${q.method} ${q.path}`), [], 'the fault proxy saw nothing');
    assert.deepEqual(readRequests(up.logs.plain, logs.plain), [], 'plain registry saw nothing');
    assert.deepEqual(readRequests(up.logs.hub, logs.hub), [], 'hub saw nothing');
    assert.deepEqual(readJsonLines(up.logs.token, logs.token), [], 'token server saw nothing');
    assert.deepEqual(readJsonLines(up.logs.blobs, logs.blobs), [], 'blob host saw nothing');
    // workerd refuses some requests itself (answering 400/500/501) before any Worker code runs;
    // none of them may be one the Worker could have answered.
    const byRuntime = rows.filter((r) => !r[3].startsWith('the mirror')).map((r) => r[0]);
    assert.deepEqual(byRuntime.sort(), ['CONNECT', 'NUL in a header', 'absolute URL as target', 'raw CR in path', 'raw NUL in path', 'unknown method'].sort());
    const panics = mirror.lines.slice(mirrorFrom).filter((l) => /panicked|RuntimeError|unreachable executed/i.test(l));
    assert.deepEqual(panics, [], 'no panic in the Worker');
    const byWorker = rows.filter((r) => r[3].startsWith('the mirror')).length;
    assert.ok(byWorker >= CASES.length - 10, `most cases reach the Worker (${byWorker} of ${CASES.length})`);
  });

  it('paths the URL parser resolves before the Worker (.., backslash) act as the path they resolve to', async () => {
    // workerd (like Cloudflare's edge) applies WHATWG URL rules: `a/../b` is `b`, a backslash is `/`.
    // The Worker never sees the raw form, so these are ordinary requests for a name the client
    // could have asked for directly; nothing outside /v2/<name>/ is reachable this way.
    const pairs = [
      ['/v2/library/../private/manifests/latest', '/v2/private/manifests/latest'],
      ['/v2/library\\alpine/manifests/latest', '/v2/library/alpine/manifests/latest'],
      ['/v2/x/../../admin/config', '/admin/config'],
      ['/token?scope=repository:evil.example.com/x:pull', null],
    ];
    for (const [hostile, clean] of pairs) {
      const a = await sendRaw(PORT, req('GET', hostile, { Accept: 'application/vnd.docker.distribution.manifest.v2+json' }));
      if (clean) {
        const b = await sendRaw(PORT, req('GET', clean, { Accept: 'application/vnd.docker.distribution.manifest.v2+json' }));
        assert.equal(a.status, b.status, `${hostile} vs ${clean}`);
        assert.deepEqual(a.body, b.body, `${hostile} vs ${clean}`);
        rows.push([`${hostile} (resolved by the URL parser)`, a.status, '-', `the mirror, as ${clean}`]);
      } else {
        // A token for a foreign scope: the anonymous token, made by the mirror, no upstream asked.
        const from = proxies.mark();
        assert.equal(a.status, 200);
        assert.equal(JSON.parse(a.body).token, 'edgemirror-anonymous');
        assert.deepEqual(proxies.requests(from), []);
        rows.push([`${hostile}`, a.status, '-', 'the mirror (anonymous token, no upstream)']);
      }
    }
  });

  it('afterwards the same runtime serves whole pulls, every digest checked', async () => {
    const agent = new http.Agent({ keepAlive: true });
    for (const [name, ref] of [['alpine', 'latest'], ['library/multi', 'oci'], ['plain/library/alpine', '3.19']]) {
      const r = await pullImage({ port: PORT, name, ref, agent, range: true });
      assert.ok(r.blobs.length >= 2, `${name}:${ref} pulled ${r.blobs.length} blobs`);
    }
    agent.destroy();
    assert.ok(proxies.requests(0).length > 0, 'and those went upstream through the proxy');
    assert.ok(images['library/alpine:latest'].digest);
  });
});
