// Per-client pull limits in KV and the network allow-list, end to end. Clients are told apart by
// CF-Connecting-IP (set by Cloudflare in production; set by the test here, as local dev passes a
// client's value through). Limited or refused requests never reach an upstream.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorld, mirrorWith, upstreamTable, raw, ociCode } from './lib/world.mjs';
import { ACCEPT_ALL } from './lib/upstreams.mjs';
import { skopeo, startTlsRejectingFront } from './lib/clients.mjs';
import { MIRROR_LOGIN } from './lib/secrets.mjs';

const PORT = 18778, ALLOW = 18779, LOGIN = 18777, LOGIN_FRONT = 18776, WINDOW = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('rate limits and access control', { timeout: 120_000 }, () => {
  let w, allow, login, loginFront;
  const pull = (ip, path = '/v2/alpine/manifests/latest', port = PORT) => raw({ port, path, headers: { accept: ACCEPT_ALL, 'cf-connecting-ip': ip, authorization: 'Bearer edgemirror-anonymous' } });
  before(async () => {
    w = await startWorld({ port: PORT, rateLimit: true, vars: { RATE_LIMIT: `3/${WINDOW}`, TRUSTED_CIDRS: '10.9.9.0/24' } });
    allow = await mirrorWith({ port: ALLOW, vars: { UPSTREAMS: upstreamTable(w.up), ALLOW_CIDRS: '10.0.0.0/8, 2001:db8::/32' } });
    login = await mirrorWith({ port: LOGIN, vars: { UPSTREAMS: upstreamTable(w.up), MIRROR_CREDENTIALS: `${MIRROR_LOGIN.user}:${MIRROR_LOGIN.password}`, TRUSTED_CIDRS: '10.9.9.0/24' } });
    loginFront = await startTlsRejectingFront({ port: LOGIN_FRONT, targetPort: LOGIN });
  }, { timeout: 120_000 });
  after(async () => { await loginFront?.stop(); await login?.stop(); await allow?.stop(); await w?.stop(); }, { timeout: 30_000 });

  it('N manifest GETs pass, the next gets 429 with the headers; blobs do not count; the window resets', async () => {
    // Start at the beginning of a window so the test never straddles two.
    await sleep((WINDOW - ((Date.now() / 1000) % WINDOW)) * 1000 + 50);
    const ip = '192.0.2.10';
    for (const left of [2, 1, 0]) {
      const r = await pull(ip);
      assert.equal(r.status, 200);
      assert.equal(r.headers['ratelimit-limit'], `3;w=${WINDOW}`);
      assert.equal(r.headers['ratelimit-remaining'], `${left};w=${WINDOW}`);
      assert.equal(r.headers['x-ratelimit-remaining'], String(left));
      await sleep(100); // the count is written after the response (KV)
    }
    const m = w.mark();
    const limited = await pull(ip);
    assert.equal(limited.status, 429);
    assert.equal(ociCode(limited), 'TOOMANYREQUESTS');
    assert.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= WINDOW);
    assert.equal(limited.headers['ratelimit-remaining'], `0;w=${WINDOW}`);
    await sleep(200);
    assert.deepEqual([w.since(m).hub, w.since(m).token], [[], []], 'a limited pull never reaches an upstream');
    // Blobs are not pulls.
    const man = JSON.parse((await raw({ port: 15000, path: '/v2/library/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } })).body);
    const blob = await pull(ip, `/v2/alpine/blobs/${man.layers[0].digest}`);
    assert.equal(blob.status, 200);
    assert.equal(blob.headers['ratelimit-remaining'], `0;w=${WINDOW}`, 'every registry response shows what is left');
    // Another client has its own count; a trusted network has none.
    assert.equal((await pull('192.0.2.11')).status, 200);
    for (let i = 0; i < 5; i++) {
      const t = await pull('10.9.9.7');
      assert.equal(t.status, 200);
      assert.equal(t.headers['ratelimit-limit'], undefined);
    }
    await sleep(WINDOW * 1000);
    assert.equal((await pull(ip)).status, 200, 'a new window');
  });

  it('an IPv6 client is counted by its /64', async () => {
    await sleep((WINDOW - ((Date.now() / 1000) % WINDOW)) * 1000 + 50);
    for (const ip of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3']) assert.equal((await pull(ip)).status, 200);
    await sleep(100);
    assert.equal((await pull('2001:db8:1:2::99')).status, 429);
    assert.equal((await pull('2001:db8:1:3::1')).status, 200, 'another /64');
  });

  it('outside the allow-list: 403 before any upstream is contacted', async () => {
    const m = w.mark();
    const denied = await pull('192.0.2.50', '/v2/alpine/manifests/latest', ALLOW);
    assert.equal(denied.status, 403);
    assert.equal(ociCode(denied), 'DENIED');
    const token = await raw({ port: ALLOW, path: '/token?service=edgemirror', headers: { 'cf-connecting-ip': '192.0.2.50' } });
    assert.equal(token.status, 403);
    await sleep(200);
    assert.deepEqual([w.since(m).hub, w.since(m).token, w.since(m).blobs], [[], [], []]);
    assert.equal((await pull('10.1.2.3', '/v2/alpine/manifests/latest', ALLOW)).status, 200);
    assert.equal((await pull('2001:db8::5', '/v2/alpine/manifests/latest', ALLOW)).status, 200);
    assert.equal((await raw({ port: ALLOW, path: '/healthz', headers: { 'cf-connecting-ip': '192.0.2.50' } })).status, 200, 'health stays open');
  });

  it('with mirror credentials: no login, no pull (and no upstream contact); skopeo logs in to the mirror', async () => {
    const m = w.mark();
    const anon = await raw({ port: LOGIN, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL } });
    assert.equal(anon.status, 401);
    assert.equal(anon.headers['www-authenticate'], `Bearer realm="http://127.0.0.1:${LOGIN}/token",service="edgemirror"`);
    assert.equal((await raw({ port: LOGIN, path: '/v2/alpine/manifests/latest', headers: { authorization: 'Bearer edgemirror-anonymous' } })).status, 401);
    const basic = (u, p) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
    assert.equal((await raw({ port: LOGIN, path: '/token?service=edgemirror', headers: { authorization: basic(MIRROR_LOGIN.user, 'wrong') } })).status, 401);
    await sleep(200);
    assert.deepEqual([w.since(m).hub, w.since(m).token], [[], []], 'refused without any upstream');
    const t = JSON.parse((await raw({ port: LOGIN, path: '/token?service=edgemirror', headers: { authorization: basic(MIRROR_LOGIN.user, MIRROR_LOGIN.password) } })).body);
    assert.equal((await raw({ port: LOGIN, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL, authorization: `Bearer ${t.token}` } })).status, 200);
    assert.equal((await raw({ port: LOGIN, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL, 'cf-connecting-ip': '10.9.9.1' } })).status, 200, 'trusted networks need no login');
    const dir = `/tmp/em-e2e/login-copy-${Date.now()}`;
    const denied = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', '--src-no-creds', `docker://${loginFront.host}/library/alpine:latest`, `dir:${dir}-a`]);
    assert.notEqual(denied.code, 0);
    const r = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', '--src-creds', `${MIRROR_LOGIN.user}:${MIRROR_LOGIN.password}`, `docker://${loginFront.host}/library/alpine:latest`, `dir:${dir}-b`]);
    assert.equal(r.code, 0, r.stderr);
  });
});
