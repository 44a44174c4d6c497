// The trust boundary end to end, tried as an attacker would: the mirror's own logins never go
// upstream (trusted clients included), a client's login goes only to the upstream that takes it,
// failed logins and admin attempts are limited per client, pull limits are exact under a burst,
// the admin API obeys the allow-list and never reads an unauthenticated body into wasm, and a
// credential pasted into the configuration is never echoed. Figures go to test-output/trust.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startWorld, mirrorWith, upstreamTable, raw, ociCode, outputFile, ROOT } from './lib/world.mjs';
import { ACCEPT_ALL, USER } from './lib/upstreams.mjs';
import { skopeo, startTlsRejectingFront } from './lib/clients.mjs';
import { ADMIN_TOKEN, MIRROR_LOGIN } from './lib/secrets.mjs';
import { request } from './lib/http.mjs';

const PORT = 18760, LOGIN = 18761, ADMIN = 18762, NO_ADMIN = 18763, BAD = 18764, FRONT = 18765, RECORDER = 18766;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const basic = (u, p) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const figures = [];

/** A plain-HTTP front that forwards to `target` and records every request's Authorization. */
function recorder(port, target) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url, authorization: req.headers.authorization ?? null });
    const t = new URL(target);
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (u) => {
      res.writeHead(u.statusCode, u.headers);
      u.pipe(res);
    });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  }).listen(port, '127.0.0.1');
  return { seen, stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

/** The isolate's wasm memory in bytes, as /healthz reports it. */
async function wasmMemory(port) {
  const r = await raw({ port, path: '/healthz' });
  return Number(r.headers['edgemirror-wasm-memory']);
}

/** A chunked PUT of `mb` MiB (no Content-Length), streamed; resolves with the status, or
 *  'reset' when the server closed the connection before answering. */
function bigPut(port, p, mb, authorization) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: p, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } }, (res) => {
      // The answer came before the body was sent: stop sending.
      resolve(res.statusCode);
      req.destroy();
    });
    req.on('error', () => resolve('reset'));
    req.setTimeout(60_000, () => req.destroy());
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let sent = 0;
    const pump = () => {
      while (sent < mb) {
        sent++;
        if (!req.write(chunk)) return req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('the trust boundary', { timeout: 600_000 }, () => {
  let w, login, admin, noAdmin, bad, front, rec;
  before(async () => {
    // The world's mirror is replaced by one with a second upstream on the hub (it needs the
    // upstreams' addresses first).
    w = await startWorld({ port: PORT, rateLimit: true, vars: { RATE_LIMIT: '3/1h' } });
    await w.mirror.stop();
    w.mirror = await mirrorWith({
      port: PORT,
      rateLimit: true,
      vars: {
        RATE_LIMIT: '3/1h',
        UPSTREAMS: { ...upstreamTable(w.up), other: { registry: w.up.hub, prefixes: ['other'], library: true, realms: [w.up.token] } },
      },
    });
    front = await startTlsRejectingFront({ port: FRONT, targetPort: PORT });
    rec = recorder(RECORDER, w.up.hub);
    login = await mirrorWith({
      port: LOGIN,
      vars: {
        UPSTREAMS: { 'docker.io': { registry: `http://127.0.0.1:${RECORDER}`, prefixes: ['docker.io'], library: true, realms: [w.up.token] } },
        MIRROR_CREDENTIALS: `${MIRROR_LOGIN.user}:${MIRROR_LOGIN.password}`,
        TRUSTED_CIDRS: '10.9.9.0/24',
      },
    });
    admin = await mirrorWith({ port: ADMIN, kv: true, vars: { UPSTREAMS: upstreamTable(w.up), ADMIN_TOKEN, ALLOW_CIDRS: '10.0.0.0/8, 127.0.0.1' } });
    noAdmin = await mirrorWith({ port: NO_ADMIN, kv: true, vars: { UPSTREAMS: upstreamTable(w.up) } });
    bad = await mirrorWith({
      port: BAD,
      vars: {
        UPSTREAMS: {
          p: { registry: w.up.hub, prefixes: ['p'], credentials: 'alice:S3cretPassw0rd' },
        },
      },
    });
  }, { timeout: 240_000 });
  after(async () => {
    fs.writeFileSync(outputFile('trust.md'), `# Trust boundary, end to end\n\n| check | figure |\n|---|---|\n${figures.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`);
    for (const x of [bad, noAdmin, admin, login, front]) await x?.stop();
    await rec?.stop();
    await w?.stop();
  }, { timeout: 60_000 });

  it('row 3: a trusted client\'s mirror login and mirror token never leave the mirror', async () => {
    const trusted = { 'cf-connecting-ip': '10.9.9.7', accept: ACCEPT_ALL };
    const token = JSON.parse((await raw({ port: LOGIN, path: '/token?service=edgemirror', headers: { ...trusted, authorization: basic(MIRROR_LOGIN.user, MIRROR_LOGIN.password) } })).body).token;
    assert.match(token, /^em1\./, 'a trusted client with a mirror login gets a mirror token, not an upstream round trip');
    const m = w.mark();
    rec.seen.length = 0;
    for (const authorization of [basic(MIRROR_LOGIN.user, MIRROR_LOGIN.password), `Bearer ${token}`]) {
      const r = await raw({ port: LOGIN, path: '/v2/alpine/manifests/latest', headers: { ...trusted, authorization } });
      assert.equal(r.status, 200, r.body.toString());
    }
    await sleep(300);
    const leaked = rec.seen.filter((s) => s.authorization && (s.authorization.includes(token) || s.authorization === basic(MIRROR_LOGIN.user, MIRROR_LOGIN.password)));
    assert.deepEqual(leaked, [], 'the registry never saw the mirror login or token');
    const realm = w.since(m).token;
    assert.ok(realm.length >= 1 && realm.every((t) => t.account === ''), `the realm was asked anonymously only: ${JSON.stringify(realm)}`);
    figures.push(['row 3: mirror login/token seen by the registry or realm (trusted client)', `${leaked.length} of ${rec.seen.length} registry requests, ${realm.filter((t) => t.account !== '').length} of ${realm.length} token requests`]);
  });

  it('row 2: a Docker Hub login reaches only the upstream that takes logins; public pulls elsewhere keep working', async () => {
    const m = w.mark();
    const dir = path.join(ROOT, 'trust-copy', String(Math.random()).slice(2));
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const r = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', '--src-creds', `${USER.username}:${USER.password}`, `docker://127.0.0.1:${FRONT}/other/alpine:latest`, `dir:${dir}`], { timeout: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    const realm = w.since(m).token;
    assert.ok(realm.length >= 1 && realm.every((t) => t.account !== USER.username), JSON.stringify(realm));
    // The default upstream still takes her login.
    const m2 = w.mark();
    const ok = await skopeo(['copy', '--src-tls-verify=false', '--retry-times', '0', '--src-creds', `${USER.username}:${USER.password}`, `docker://127.0.0.1:${FRONT}/library/private:latest`, `dir:${dir}-private`], { timeout: 120_000 });
    assert.equal(ok.code, 0, ok.stderr);
    await sleep(300);
    assert.ok(w.since(m2).token.some((t) => t.account === USER.username));
    figures.push(['row 2: token requests with alice\'s login through an upstream that does not take logins', `${realm.filter((t) => t.account === USER.username).length} of ${realm.length}`]);
  });

  it('row 11: a burst of 20 concurrent manifest GETs with RATE_LIMIT=3/1h gives exactly 3 passes', async () => {
    const ip = '192.0.2.77';
    const all = await Promise.all(Array.from({ length: 20 }, () => raw({ port: PORT, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL, 'cf-connecting-ip': ip, authorization: 'Bearer edgemirror-anonymous' } })));
    const statuses = all.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 3, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 17);
    await sleep(200);
    const next = await raw({ port: PORT, path: '/v2/alpine/manifests/latest', headers: { accept: ACCEPT_ALL, 'cf-connecting-ip': ip } });
    assert.equal(next.status, 429);
    figures.push(['row 11: passes of 20 concurrent GETs at 3/1h', `${statuses.filter((s) => s === 200).length} (then the next: ${next.status})`]);
  });

  it('row 12: wrong passwords at /token are limited per client, with no upstream contact past the limit', async () => {
    const ip = '192.0.2.99';
    const m = w.mark();
    const statuses = [];
    for (let i = 0; i < 30; i++) {
      const r = await raw({ port: PORT, path: '/token?service=docker.io&scope=repository:private:pull', headers: { 'cf-connecting-ip': ip, authorization: basic(USER.username, 'wrong') } });
      statuses.push(r.status);
    }
    const right = await raw({ port: PORT, path: '/token?service=docker.io&scope=repository:private:pull', headers: { 'cf-connecting-ip': ip, authorization: basic(USER.username, USER.password) } });
    await sleep(300);
    const relayed = w.since(m).token.length;
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
    assert.deepEqual(statuses.slice(10), Array(20).fill(429));
    assert.equal(right.status, 429, 'the right password too, until the window ends');
    assert.ok(Number(right.headers['retry-after']) > 0);
    assert.equal(ociCode(right), 'TOOMANYREQUESTS');
    assert.equal(relayed, 10, 'only the first 10 reached the realm');
    const other = await raw({ port: PORT, path: '/token?service=docker.io&scope=repository:private:pull', headers: { 'cf-connecting-ip': '192.0.2.100', authorization: basic(USER.username, USER.password) } });
    assert.equal(other.status, 200, 'another client is not affected');
    figures.push(['row 12: of 30 wrong passwords + the right one from one client, relayed to the realm', `${relayed} (then 429 with Retry-After ${right.headers['retry-after']} s)`]);
  });

  it('row 7: the admin API obeys ALLOW_CIDRS and limits failed attempts per client', async () => {
    const get = (ip, token) => raw({ port: ADMIN, path: '/_admin/upstreams', headers: { 'cf-connecting-ip': ip, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    const outside = await get('192.0.2.1', ADMIN_TOKEN);
    assert.equal(outside.status, 403);
    assert.equal(ociCode(outside), 'DENIED');
    assert.equal((await get('10.1.1.1', ADMIN_TOKEN)).status, 200);
    const guesses = [];
    for (let i = 0; i < 8; i++) guesses.push((await get('10.1.1.2', `guess-${i}`)).status);
    assert.deepEqual(guesses, [401, 401, 401, 401, 401, 429, 429, 429]);
    const locked = await get('10.1.1.2', ADMIN_TOKEN);
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers['retry-after']) > 0);
    assert.equal((await get('10.1.1.3', ADMIN_TOKEN)).status, 200, 'another client is not affected');
    figures.push(['row 7: admin from outside ALLOW_CIDRS; 8 wrong tokens from one client', `403; ${guesses.join(' ')}`]);
  });

  it('row 8: the admin API cannot point an upstream at the mirror\'s own secrets', async () => {
    for (const body of [{ registry: 'http://127.0.0.1:9', credentials: 'ADMIN_TOKEN' }, { registry: 'http://127.0.0.1:9', headers: { 'X-Steal': 'MIRROR_CREDENTIALS' } }]) {
      const data = Buffer.from(JSON.stringify(body));
      const r = await request({ port: ADMIN, path: '/_admin/upstreams/steal' }, { method: 'PUT', body: data, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'content-length': data.length, 'cf-connecting-ip': '10.1.1.1' } });
      assert.equal(r.status, 400, r.body.toString());
    }
  });

  it('row 4: an unauthenticated 100 MB chunked PUT to the admin API leaves wasm memory where it was', async () => {
    const rows = [];
    for (const [label, port, auth, want] of [
      ['admin API on, no token', ADMIN, null, 401],
      ['admin API on, wrong token', ADMIN, 'Bearer nope', 401],
      ['admin API off', NO_ADMIN, null, 404],
      ['admin API on, right token (body past the 64 KiB cap)', ADMIN, `Bearer ${ADMIN_TOKEN}`, 413],
    ]) {
      const before = await wasmMemory(port);
      const status = await bigPut(port, '/_admin/upstreams/x', 100, auth);
      const after = await wasmMemory(port);
      assert.ok(status === want || status === 'reset', `${label}: ${status}`);
      rows.push(`${label}: ${status}, wasm ${(before / 2 ** 20).toFixed(2)} → ${(after / 2 ** 20).toFixed(2)} MiB`);
      assert.ok(after - before <= 1024 * 1024, `${label}: wasm memory grew from ${before} to ${after}`);
    }
    figures.push(['row 4: 100 MiB chunked PUT to /_admin', rows.join('; ')]);
  });

  it('row 6: a credential pasted into the configuration is never echoed', async () => {
    const health = await raw({ port: BAD, path: '/healthz' });
    assert.equal(health.status, 503);
    assert.match(health.body.toString(), /UPSTREAMS\.p\.credentials/);
    const pull = await raw({ port: BAD, path: '/v2/p/x/manifests/latest' });
    assert.equal(pull.status, 503);
    for (const text of [health.body.toString(), pull.body.toString(), bad.lines.join('\n')]) {
      assert.ok(!text.includes('S3cretPassw0rd'), text.slice(0, 300));
    }
    figures.push(['row 6: /healthz, a 503 body and the log with a pasted credential', 'no trace of the value']);
  });
});
