// Self-test of the e2e harness (no mirror involved): upstreams + images, the Docker-Hub-like auth and
// redirect flow, ctr pulling from the plain registry, dockerd with registry-mirrors = the plain
// registry (docker pull alpine; docker run). Run: node tests/e2e/lib/selftest.mjs [ROOT]
import assert from 'node:assert/strict';
import { startUpstreams, makeImages, logOffset, readRequests, readJsonLines, ACCEPT_ALL, USER } from './upstreams.mjs';
import { startContainerd, startDockerd } from './clients.mjs';

const root = process.argv[2] ?? '/tmp/edgemirror-harness';
const timings = {};
const timed = async (name, fn) => { const t = Date.now(); try { return await fn(); } finally { timings[name] = Date.now() - t; } };
const ok = (msg) => console.log(`ok   ${msg}`);
const get = (url, headers = {}, method = 'GET') =>
  fetch(url, { method, headers, redirect: 'manual', signal: AbortSignal.timeout(15000) });
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const token = async (up, scope, creds) => {
  const h = creds ? { Authorization: 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } : {};
  const r = await get(`${up.token}/token?service=testbed-registry&scope=${scope}`, h);
  assert.equal(r.status, 200);
  return (await r.json()).token;
};

const stops = [];
try {
  const up = await timed('startUpstreams', () => startUpstreams({ root }));
  stops.push(up.stop);
  const images = await timed('makeImages', () => makeImages({ root, bigMb: 20 }));
  const alpine = images['library/alpine:latest'];

  // plain registry
  let r = await get(`${up.plain}/v2/library/alpine/manifests/latest`, { Accept: ACCEPT_ALL });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('docker-content-digest'), alpine.digest);
  const man = await r.json();
  ok(`plain serves library/alpine:latest ${alpine.digest}`);

  // hub: 401 + Bearer challenge, token, 307 to the blob server
  const off = { hub: logOffset(up.logs.hub), token: logOffset(up.logs.token), blobs: logOffset(up.logs.blobs) };
  r = await get(`${up.hub}/v2/`);
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate'), /^Bearer realm="http:\/\/127\.0\.0\.1:15101\/token",service="testbed-registry"/);
  ok(`hub /v2/ -> 401 ${r.headers.get('www-authenticate')}`);
  const tok = await token(up, 'repository:library/alpine:pull');
  r = await get(`${up.hub}/v2/library/alpine/manifests/latest`, { ...bearer(tok), Accept: ACCEPT_ALL });
  assert.equal(r.status, 200);
  ok('hub manifest with anonymous token -> 200');
  const layer = man.layers[0];
  r = await get(`${up.hub}/v2/library/alpine/blobs/${layer.digest}`, bearer(tok));
  assert.equal(r.status, 307);
  const loc = r.headers.get('location');
  assert.ok(loc.startsWith('http://127.0.0.1:15300/'), loc);
  r = await get(loc);
  assert.equal(r.status, 200);
  assert.equal((await r.arrayBuffer()).byteLength, layer.size);
  ok(`hub blob -> 307 ${loc.slice(0, 60)}... -> 200 (${layer.size} bytes)`);
  r = await get(loc, { Range: 'bytes=0-9' });
  assert.equal(r.status, 206);
  await r.arrayBuffer();

  // private repository: anonymous token lacks the scope, alice's works
  const anon = await token(up, 'repository:library/private:pull');
  r = await get(`${up.hub}/v2/library/private/manifests/latest`, { ...bearer(anon), Accept: ACCEPT_ALL });
  assert.equal(r.status, 401);
  await r.arrayBuffer();
  const alice = await token(up, 'repository:library/private:pull', USER);
  r = await get(`${up.hub}/v2/library/private/manifests/latest`, { ...bearer(alice), Accept: ACCEPT_ALL });
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  ok('library/private: anonymous -> 401, alice -> 200');

  // the logs tell the story
  await new Promise((res) => setTimeout(res, 200)); // access log lines are written after the response
  const hubReqs = readRequests(up.logs.hub, off.hub);
  assert.deepEqual(hubReqs.map((q) => `${q.method} ${q.path.replace(/sha256:\w+/, 'sha256:…')} ${q.status}`), [
    'GET /v2/ 401', 'GET /v2/library/alpine/manifests/latest 200', 'GET /v2/library/alpine/blobs/sha256:… 307',
    'GET /v2/library/private/manifests/latest 401', 'GET /v2/library/private/manifests/latest 200']);
  const toks = readJsonLines(up.logs.token, off.token);
  assert.deepEqual(toks.map((t) => [t.account, t.scopes[0], t.granted.length]), [
    ['', 'repository:library/alpine:pull', 1], ['', 'repository:library/private:pull', 0],
    ['alice', 'repository:library/private:pull', 1]]);
  const blobLog = readJsonLines(up.logs.blobs, off.blobs);
  assert.deepEqual(blobLog.map((b) => [b.m, b.status, b.authz]), [['GET', 200, null], ['GET', 206, null]]);
  ok('logs: hub requests, token scopes, blob server saw no Authorization');

  // containerd: ctr pull from the plain registry
  const cd = await timed('startContainerd', () => startContainerd({ root }));
  stops.unshift(cd.stop);
  const pull = await timed('ctr pull', () => cd.ctr(['images', 'pull', '--plain-http', '127.0.0.1:15000/library/alpine:latest']));
  assert.equal(pull.code, 0, pull.stderr);
  const ls = await cd.ctr(['images', 'ls', '-q']);
  assert.match(ls.stdout, /127\.0\.0\.1:15000\/library\/alpine:latest/);
  ok(`ctr images pull --plain-http 127.0.0.1:15000/library/alpine:latest (${pull.ms} ms)`);

  // dockerd with registry-mirrors = the plain registry
  const dd = await timed('startDockerd', () => startDockerd({ root, mirror: 'http://127.0.0.1:15000', containerd: cd }));
  stops.unshift(dd.stop);
  ok(`dockerd up (storage driver ${dd.storageDriver})`);
  await dd.docker(['rmi', '-f', 'alpine']); // a rerun with a kept data-root would not pull
  const offPlain = logOffset(up.logs.plain);
  const dp = await timed('docker pull', () => dd.docker(['pull', 'alpine']));
  assert.equal(dp.code, 0, dp.stderr);
  assert.match(dp.stdout, new RegExp(alpine.digest));
  await new Promise((res) => setTimeout(res, 200));
  const mirrored = readRequests(up.logs.plain, offPlain).filter((q) => q.path.startsWith('/v2/library/alpine/'));
  assert.ok(mirrored.some((q) => q.path.includes('/manifests/') && q.status === 200), 'mirror got no manifest GET');
  ok(`docker pull alpine via the mirror (${mirrored.length} requests on the plain registry, ${dp.ms} ms)`);
  const dr = await timed('docker run', () => dd.docker(['run', '--rm', '--network', 'none', 'alpine', 'echo', 'hi']));
  assert.equal(dr.code, 0, dr.stderr);
  assert.equal(dr.stdout.trim(), 'hi');
  ok(`docker run --rm --network none alpine echo hi -> "${dr.stdout.trim()}" (${dr.ms} ms)`);
} finally {
  const t = Date.now();
  for (const s of stops) await s().catch((e) => console.error('stop:', e.message));
  timings.stopAll = Date.now() - t;
  console.log('timings (ms):', JSON.stringify(timings));
}
console.log('selftest passed');
