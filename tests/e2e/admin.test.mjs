// Changing upstreams at runtime through the admin API (KV-backed), and a private upstream behind a
// header-checking front (as with Cloudflare Access): the Access headers reach that upstream's own
// host only, never the token realm on another host nor the blob host it redirects to.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startWorld, mirrorWith, raw, ociCode } from './lib/world.mjs';
import { ACCEPT_ALL, PORTS } from './lib/upstreams.mjs';
import { request } from './lib/http.mjs';
import { ADMIN_TOKEN as TOKEN, ACCESS } from './lib/secrets.mjs';

const PORT = 18786, NO_ADMIN = 18785, FRONT = 15500;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('runtime upstream table and private upstreams', { timeout: 180_000 }, () => {
  let w, noAdmin, front, frontSeen = [];
  const admin = async (method, path, body, token = TOKEN, ip = '127.0.0.1') => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const r = await request({ port: PORT, path }, { method, body: data, headers: { 'cf-connecting-ip': ip, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) } });
    const text = r.body.toString();
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };

  before(async () => {
    // The "tunnel": lets a request through to the hub only with both Access headers.
    front = http.createServer((req, res) => {
      const ok = req.headers['cf-access-client-id'] === ACCESS.id && req.headers['cf-access-client-secret'] === ACCESS.secret;
      frontSeen.push({ path: req.url, ok });
      if (!ok) { res.writeHead(403, { 'content-type': 'application/json' }); return res.end('{"errors":[{"code":"DENIED","message":"access"}]}'); }
      const up = http.request({ host: '127.0.0.1', port: PORTS.hub, method: req.method, path: req.url, headers: req.headers }, (u) => { res.writeHead(u.statusCode, u.headers); u.pipe(res); });
      up.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(up);
    }).listen(FRONT, '127.0.0.1');
    const headers = { 'CF-Access-Client-Id': 'ACCESS_ID', 'CF-Access-Client-Secret': 'ACCESS_SECRET' };
    w = await startWorld({
      port: PORT,
      kv: true,
      vars: {
        ADMIN_TOKEN: TOKEN, ADMIN_TOKEN_NAME: 'ci-admin', CONFIG_RELOAD_SECS: '1', ACCESS_ID: ACCESS.id, ACCESS_SECRET: ACCESS.secret,
        UPSTREAMS: {
          'docker.io': { registry: `http://127.0.0.1:${PORTS.hub}`, prefixes: ['docker.io'], ns: ['docker.io'], library: true },
          private: { registry: `http://127.0.0.1:${FRONT}`, prefixes: ['private'], headers },
          nokey: { registry: `http://127.0.0.1:${FRONT}`, prefixes: ['nokey'] },
        },
      },
    });
    noAdmin = await mirrorWith({ port: NO_ADMIN, kv: true, vars: { UPSTREAMS: { x: { registry: 'http://127.0.0.1:9' } } } });
  }, { timeout: 120_000 });
  after(async () => { await noAdmin?.stop(); await w?.stop(); front?.closeAllConnections?.(); front?.close(); }, { timeout: 30_000 });

  it('adds an upstream, pulls through it by prefix and ns, points it elsewhere, deletes it: no restart', async () => {
    assert.equal((await raw({ port: PORT, path: '/v2/extra.test/library/alpine/manifests/latest' })).status, 404);
    let r = await admin('PUT', '/_admin/upstreams/extra', { registry: `http://127.0.0.1:${PORTS.plain}`, prefixes: ['extra.test'], ns: ['extra.test'] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await sleep(1200);
    let m = w.mark();
    const byPrefix = await raw({ port: PORT, path: '/v2/extra.test/library/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(byPrefix.status, 200);
    const byNs = await raw({ port: PORT, path: '/v2/library/alpine/manifests/3.19?ns=extra.test', headers: { accept: ACCEPT_ALL } });
    assert.equal(byNs.status, 200);
    await sleep(300);
    assert.ok(w.since(m).plain.length >= 2, 'the plain registry served it');
    // Point it at the hub (token auth; library/ applied).
    r = await admin('PUT', '/_admin/upstreams/extra', { registry: `http://127.0.0.1:${PORTS.hub}`, prefixes: ['extra.test'], library: true, tag_ttl: '1h' });
    assert.equal(r.status, 200);
    const listed = await admin('GET', '/_admin/upstreams/extra');
    assert.equal(listed.json.tag_ttl, 3600);
    await sleep(1200);
    m = w.mark();
    assert.equal((await raw({ port: PORT, path: '/v2/extra.test/multi/manifests/latest', headers: { accept: ACCEPT_ALL } })).status, 200);
    await sleep(300);
    assert.ok(w.since(m).hub.some((q) => q.path === '/v2/library/multi/manifests/latest'), 'now the hub serves it');
    assert.equal((await admin('DELETE', '/_admin/upstreams/extra')).status, 200);
    await sleep(1200);
    m = w.mark();
    const gone = await raw({ port: PORT, path: '/v2/extra.test/library/alpine/manifests/latest' });
    assert.equal(gone.status, 404);
    assert.equal(ociCode(gone), 'NAME_UNKNOWN');
    await sleep(300);
    assert.deepEqual([w.since(m).hub, w.since(m).plain], [[], []], 'refused without asking any upstream');
    const changes = w.mirror.entries().filter((e) => e.msg === 'admin change');
    assert.deepEqual(changes.map((c) => [c.who, c.op, c.upstream]), [['ci-admin', 'put', 'extra'], ['ci-admin', 'put', 'extra'], ['ci-admin', 'delete', 'extra']]);
  });

  it('wrong, missing or almost-right tokens get 401 and change nothing; invalid entries get 400', async () => {
    // From a client of their own: five failures are the most a client gets before it is locked out.
    for (const token of [null, 'wrong', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()]) {
      const r = await admin('PUT', '/_admin/upstreams/evil', { registry: 'http://127.0.0.1:9', prefixes: ['evil'] }, token, '192.0.2.201');
      assert.equal(r.status, 401, String(token));
      assert.equal(r.json.errors[0].code, 'UNAUTHORIZED');
    }
    const bad = await admin('PUT', '/_admin/upstreams/evil', { registry: 'ftp://x' });
    assert.equal(bad.status, 400);
    assert.match(bad.json.errors[0].message, /UPSTREAMS\.evil\.registry/);
    const list = await admin('GET', '/_admin/upstreams');
    assert.ok(!list.json.upstreams.some((u) => u.name === 'evil'));
    assert.ok(!JSON.stringify(list.json).includes(ACCESS.secret), 'secrets are shown by name only');
    assert.equal(list.json.upstreams.find((u) => u.name === 'private').headers['cf-access-client-secret'], 'ACCESS_SECRET');
    // An invalid entry that got into KV anyway is skipped with a log line; the mirror keeps serving.
    const kv = await w.mirror.mf.getKVNamespace('CONFIG');
    await kv.put('upstreams', JSON.stringify({ broken: { registry: 'ftp://x' } }));
    await sleep(1200);
    assert.equal((await raw({ port: PORT, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } })).status, 200);
    assert.ok(w.mirror.entries().some((e) => e.msg === 'stored upstream skipped' && e.field === 'UPSTREAMS.broken.registry'));
    await kv.delete('upstreams');
  });

  it('admin routes do not exist without a token', async () => {
    const r = await raw({ port: NO_ADMIN, path: '/_admin/upstreams', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 404);
  });

  it('a private upstream is pulled with its Access headers, which never reach the realm or the blob host', async () => {
    frontSeen = [];
    const m = w.mark();
    const man = await raw({ port: PORT, path: '/v2/private/library/big/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(man.status, 200, man.body.toString());
    const layer = JSON.parse(man.body).layers[0];
    const blob = await raw({ port: PORT, path: `/v2/private/library/big/blobs/${layer.digest}` });
    assert.equal(blob.status, 200);
    assert.equal(blob.body.length, layer.size);
    await sleep(300);
    assert.ok(frontSeen.length >= 2 && frontSeen.every((s) => s.ok), JSON.stringify(frontSeen));
    const s = w.since(m);
    assert.ok(s.blobs.length >= 1, 'the blob came from the blob host');
    assert.ok(s.blobs.every((b) => b.access === false && b.authz === null), JSON.stringify(s.blobs));
    assert.ok(s.token.length >= 1, 'a token was fetched from the realm');
    // The same front without the headers configured: refused.
    const refused = await raw({ port: PORT, path: '/v2/nokey/library/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(refused.status, 403);
    assert.equal(ociCode(refused), 'DENIED');
  });
});
