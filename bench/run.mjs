#!/usr/bin/env node
// edgemirror benchmark: the same requests against the upstream directly, against CNCF distribution's
// own pull-through cache (`proxy: remoteurl`) and against edgemirror (the built worker in workerd
// through Miniflare, with R2 bound), all on 127.0.0.1. See bench/README.md for what each row means.
//
//   node bench/run.mjs [--smoke] [--reps N] [--big-mb N]
//
// Prints one markdown table on stdout (progress goes to stderr) and writes the full results with the
// machine's description to bench/results/<ISO time>.json and bench/results/latest.json (a --smoke run
// writes <ISO time>-smoke.json and latest-smoke.json, so it never replaces the full run's results).
// Every server and subprocess it starts is stopped at the end, on error, on Ctrl-C and at a deadline.
import { run } from '../tests/e2e/lib/proc.mjs';
import { rssKb, findWorkerd } from '../tests/e2e/lib/procstats.mjs';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The upstreams must not collide with a test run (15000-15400): the harness moves them by this offset.
// Set before the harness is imported (it reads the variable once, at import).
process.env.EDGEMIRROR_PORT_OFFSET = '1000';
const U = await import('../tests/e2e/lib/upstreams.mjs');
const { daemon, waitPort, assertPortFree, sleep, within } = await import('../tests/e2e/lib/proc.mjs');
const { startTlsRejectingFront } = await import('../tests/e2e/lib/clients.mjs');
let startMirror; // scripts/serve.mjs's, imported from the pinned copy (see pinBuild)

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const ROOT = '/tmp/em-bench';
const PROXY_PORTS = { plain: 16200, hub: 16201 };
const MIRROR_PORT = 19787;
const WRK_CONTROL_PORT = 19789; // the constant-answer worker beside the wrk row
const FRONT_PORT = 19788; // TLS-rejecting front of the mirror, for skopeo (see clients.mjs)

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
for (const a of argv) {
  if (!['--smoke', '--reps', '--big-mb'].includes(a) && !/^\d+$/.test(a)) {
    console.error(`unknown argument ${a}\nusage: node bench/run.mjs [--smoke] [--reps N] [--big-mb N]`);
    process.exit(2);
  }
}
const SMOKE = argv.includes('--smoke');
function numArg(flag, dflt) {
  const i = argv.indexOf(flag);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) { console.error(`${flag} needs a positive whole number`); process.exit(2); }
  return v;
}
const CFG = {
  mode: SMOKE ? 'smoke' : 'full',
  reps: numArg('--reps', SMOKE ? 1 : 3),
  bigMb: numArg('--big-mb', SMOKE ? 10 : 200),
  latencyN: SMOKE ? 20 : 500, // warm requests per series, pooled over the repetitions
  manyBlobs: SMOKE ? 8 : 64, // concurrent 1 MB blob GETs
  hugeMb: SMOKE ? 50 : 1024, // the layer passed through for the memory rows
  // the layer streamed cold and stored for the memory rows: at most the mirror's 512 MiB store limit
  // (policy.rs MAX_STORED_BLOB); in smoke mode the same blob as hugeMb
  storedMb: SMOKE ? 50 : 500,
  wrk: { threads: 2, conns: 32, secs: SMOKE ? 2 : 10 },
  shortTagTtl: 3, // seconds, for the "re-pull after the tag TTL" row
  deadlineMs: SMOKE ? 240_000 : 20 * 60_000,
};
const MANIFEST_REF = { repo: 'library/alpine', tag: 'latest' };
const PULL_REF = 'library/multi:latest';

const T0 = Date.now();
const log = (...a) => console.error(`[bench ${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s]`, ...a);
const anomalies = []; // things that looked wrong, reported in the JSON and at the end
const anomaly = (s) => { anomalies.push(s); log(`NOTE: ${s}`); };

// ---------------------------------------------------------------- cleanup

const cleanups = [];
const onCleanup = (name, fn) => cleanups.push({ name, fn });
async function cleanupAll() {
  while (cleanups.length) {
    const c = cleanups.pop();
    try {
      if (await within(Promise.resolve().then(c.fn), 30_000) === 'timeout') log(`cleanup ${c.name}: timed out`);
    } catch (e) { log(`cleanup ${c.name}: ${e.message}`); }
  }
}
const workerdPids = new Set(); // killed on exit if a cleanup could not run (proc.mjs kills its own daemons)
process.on('exit', () => {
  for (const pid of workerdPids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
});
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15]]) {
  // (the harness's own handler may exit first: then the 'exit' hooks above and in proc.mjs kill what is left)
  process.once(sig, () => { log(`${sig}: stopping`); cleanupAll().finally(() => process.exit(128 + n)); });
}

// Anything unexpected still ends with every server stopped.
process.on('uncaughtException', (e) => {
  console.error(e?.stack ?? e);
  cleanupAll().finally(() => process.exit(1));
});

// ---------------------------------------------------------------- small tools

const hr = () => Number(process.hrtime.bigint()) / 1e6; // ms
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const pct = (xs, q) => { // nearest rank
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.max(0, Math.ceil(q * v.length) - 1)];
};
const sha256 = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
const newAgent = () => new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One HTTP request; the body is read whole. -> { status, headers, body, ms } */
function request(url, { method = 'GET', headers = {}, agent, body, timeout = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = hr();
    const req = http.request(url, { method, headers, agent: agent ?? false, timeout }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ms: hr() - t0 }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeout} ms: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function waitFor(fn, { timeout, interval = 100, what }) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) return null;
    await sleep(interval);
  }
}

/** The kernel's count of connections dropped because a listen queue was full (all sockets). */
function listenOverflows() {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0].split(/\s+/), vals = lines[1].split(/\s+/);
    return Number(vals[names.indexOf('ListenOverflows')]);
  } catch { return null; }
}

/** Samples a process's RSS every `everyMs` until stop(): -> { peakMb, lastMb, samples } */
function sampleRss(pid, everyMs = 20) {
  let peak = rssKb(pid) ?? 0, n = 1;
  const t = setInterval(() => { const r = rssKb(pid); if (r != null) { n++; if (r > peak) peak = r; } }, everyMs);
  return { stop: () => { clearInterval(t); const last = rssKb(pid); if (last > peak) peak = last; return { peakMb: peak / 1024, lastMb: last / 1024, samples: n }; } };
}
async function idleRssMb(pid, ms = 1000) {
  const s = sampleRss(pid, 50);
  await sleep(ms);
  return s.stop().lastMb;
}

// ---------------------------------------------------------------- curl

/** One GET with curl to /dev/null. -> { code, bytes, secs, mbps, headers (of the last response) } */
async function curlGet(url, { headers = [], follow = false, expectBytes, timeoutSec = 300 } = {}) {
  const hfile = path.join(ROOT, 'curl-headers.txt');
  fs.rmSync(hfile, { force: true });
  const args = ['-sS', '-o', '/dev/null', '-D', hfile, '--max-time', String(timeoutSec), '-w', '%{http_code} %{size_download} %{time_total}'];
  if (follow) args.push('-L');
  for (const h of headers) args.push('-H', h);
  args.push(url);
  const r = await run('curl', args, { timeout: (timeoutSec + 10) * 1000 });
  const [code, bytes, secs] = r.stdout.trim().split(' ').map(Number);
  if (!(code === 200 || code === 206) || (expectBytes != null && bytes !== expectBytes)) {
    throw new Error(`curl ${url}: HTTP ${code}, ${bytes} bytes (expected ${expectBytes}) ${r.stderr.trim()}`);
  }
  let last = {};
  try {
    const blocks = fs.readFileSync(hfile, 'latin1').split(/\r?\n\r?\n/).filter((b) => b.trim());
    for (const l of (blocks.at(-1) ?? '').split(/\r?\n/).slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) last[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
  } catch { last = {}; }
  return { code, bytes, secs, mbps: bytes / secs / 1e6, headers: last };
}

/** All `urls` at once from one curl (--parallel). -> { wallMs, bytes, mbps } */
async function curlParallel(urls, { headers = [], follow = false, expectBytesEach, timeoutSec = 120 } = {}) {
  const cfg = path.join(ROOT, 'curl-parallel.cfg');
  fs.writeFileSync(cfg, urls.map((u) => `url = "${u}"\noutput = "/dev/null"\n`).join(''));
  const args = ['-sS', '-Z', '--parallel-immediate', '--parallel-max', String(Math.min(urls.length, 300)),
    '--max-time', String(timeoutSec), '-w', '%{http_code} %{size_download}\n', '-K', cfg];
  if (follow) args.push('-L');
  for (const h of headers) args.push('-H', h);
  const t0 = hr(), lo = listenOverflows();
  const r = await run('curl', args, { timeout: (timeoutSec + 10) * 1000 });
  const wallMs = hr() - t0;
  const overflows = listenOverflows() - lo;
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number));
  // with -L, each hop is written; keep the final answers
  const finals = lines.filter(([c]) => c !== 307 && c !== 302);
  const bad = finals.filter(([c, b]) => c !== 200 || (expectBytesEach != null && b !== expectBytesEach));
  if (finals.length !== urls.length || bad.length) {
    throw new Error(`curl --parallel: ${finals.length}/${urls.length} answers, bad: ${JSON.stringify(bad.slice(0, 5))} ${r.stderr.slice(0, 500)}`);
  }
  const bytes = finals.reduce((a, [, b]) => a + b, 0);
  return { wallMs, bytes, mbps: bytes / (wallMs / 1000) / 1e6, listenOverflows: overflows };
}

// ---------------------------------------------------------------- test data

/** Pushes one blob to the plain registry with the OCI upload API (monolithic: POST, then PUT). */
async function pushBlob(registry, repo, { data, file, digest }) {
  const head = await request(`${registry}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return false;
  const post = await request(`${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
  if (post.status !== 202 || !post.headers.location) throw new Error(`upload POST ${repo}: ${post.status} ${post.body}`);
  const loc = new URL(post.headers.location, registry);
  loc.searchParams.set('digest', digest);
  if (data) {
    const put = await request(loc.toString(), { method: 'PUT', body: data,
      headers: { 'content-type': 'application/octet-stream', 'content-length': data.length } });
    if (put.status !== 201) throw new Error(`upload PUT ${repo}: ${put.status} ${put.body}`);
  } else {
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', file,
      '-H', 'content-type: application/octet-stream', loc.toString()], { timeout: 300_000 });
    if (r.stdout.trim() !== '201') throw new Error(`upload PUT ${repo} (curl): ${r.stdout} ${r.stderr}`);
  }
  return true;
}

/** `n` distinct 1 MiB blobs in library/many (deterministic: AES-CTR keystream of the index). */
async function pushMany(registry, n) {
  const blobs = [];
  let pushed = 0;
  for (let i = 0; i < n; i++) {
    const key = crypto.createHash('sha256').update(`edgemirror-bench-many-${i}`).digest().subarray(0, 16);
    const data = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(1 << 20));
    const digest = sha256(data);
    if (await pushBlob(registry, 'library/many', { data, digest })) pushed++;
    blobs.push({ digest, size: data.length });
  }
  log(`library/many: ${n} blobs of 1 MiB (${pushed} pushed now)`);
  return blobs;
}

/** One random blob of `mb` MiB in `repo` (kept between runs; the file is removed after the push). */
async function pushRandom(registry, repo, mb) {
  const marker = path.join(ROOT, 'data', `${repo.replace('/', '_')}-${mb}.json`);
  try {
    const m = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if ((await request(`${registry}/v2/${repo}/blobs/${m.digest}`, { method: 'HEAD' })).status === 200) return m;
  } catch { /* build it */ }
  const file = path.join(ROOT, 'data', `random-${mb}.bin`);
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(8 << 20);
  for (let left = mb * 2 ** 20; left > 0; left -= chunk.length) {
    const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
    crypto.randomFillSync(c);
    h.update(c);
    fs.writeSync(fd, c);
  }
  fs.closeSync(fd);
  const m = { repo, digest: 'sha256:' + h.digest('hex'), size: mb * 2 ** 20 };
  await pushBlob(registry, repo, { file, digest: m.digest });
  fs.rmSync(file, { force: true });
  fs.writeFileSync(marker, JSON.stringify(m));
  log(`${repo}: one ${mb} MiB blob pushed`);
  return m;
}

// ---------------------------------------------------------------- the three systems

let up; // the upstreams
const sys = {}; // direct | proxy | mirror -> { label, base, headers(), fresh(), settle() }
let mirror = null, mirrorN = 0, mirrorStored = [], lastStoreAt = 0, mirrorErrors = 0;
let proxyHub = null, proxyPlain = null, proxyN = 0;
let front = null;

const tokenCache = { value: null, at: 0 };
const TOKEN_REPOS = ['library/alpine', 'library/multi', 'library/big', 'library/many', 'library/huge', 'library/large'];
async function fetchToken(repos = TOKEN_REPOS, agent) {
  const q = new URLSearchParams({ service: U.SERVICE });
  for (const r of repos) q.append('scope', `repository:${r}:pull`);
  const r = await request(`${up.token}/token?${q}`, { agent });
  if (r.status !== 200) throw new Error(`token server: ${r.status} ${r.body}`);
  const j = JSON.parse(r.body);
  return j.token ?? j.access_token;
}
/** An anonymous pull token for the direct hub, fetched once and renewed well before it expires. */
async function directToken() {
  if (!tokenCache.value || Date.now() - tokenCache.at > 120_000) {
    tokenCache.value = await fetchToken();
    tokenCache.at = Date.now();
  }
  return tokenCache.value;
}

function mirrorTable() {
  return {
    'docker.io': { registry: up.hub, prefixes: ['docker.io'], ns: ['docker.io'], library: true },
    // the same hub under another name with a short tag TTL: the "after the TTL" re-pull
    'short-ttl': { registry: up.hub, prefixes: ['short-ttl'], library: true, tag_ttl: CFG.shortTagTtl },
    plain: { registry: up.plain, prefixes: ['plain'], ns: ['plain.test'] },
  };
}

function onMirrorLog(line) {
  if (line.includes('"stored"') || line.includes('store write failed')) {
    try {
      const e = JSON.parse(line.slice(line.indexOf('{')));
      mirrorStored.push(e);
      lastStoreAt = Date.now();
      if (e.msg !== 'stored') anomaly(`mirror: ${e.msg} ${e.what} ${e.key}: ${e.error}`);
    } catch { /* not ours */ }
  } else if (/"status":5\d\d/.test(line)) {
    mirrorErrors++;
    if (mirrorErrors <= 5) anomaly(`mirror answered 5xx: ${line.slice(0, 300)}`);
  }
}

async function stopMirror() {
  if (!mirror) return;
  const m = mirror;
  mirror = null;
  await m.stop();
  if (m.pid && rssKb(m.pid) == null) workerdPids.delete(m.pid);
}

/** The built worker's fingerprint (shim, JS glue and wasm under `root`). */
const BUILD_FILES = ['build/worker/shim.mjs', 'build/index.js', 'build/index_bg.wasm'];
function buildFingerprint(root = REPO) {
  const h = crypto.createHash('sha256');
  for (const f of BUILD_FILES) h.update(fs.readFileSync(path.join(root, f)));
  return h.digest('hex').slice(0, 16);
}

/** The worker is read at every mirror start, and a cold row needs a fresh mirror, so a build made
 *  while the benchmark runs would mix two builds in one table. The run pins the build it starts
 *  with: a copy of build/ and of scripts/serve.mjs in bench/.pinned/, and startMirror is imported
 *  from that copy (so it runs the pinned build, with serve.mjs's own, current options; node still
 *  resolves miniflare from the repository's node_modules). Waits for a build in progress to end. */
const PINNED = path.join(HERE, '.pinned');
let pinned = null; // { fingerprint, wasmMtime }
async function pinBuild() {
  const until = Date.now() + 120_000;
  for (;;) {
    const newest = Math.max(...BUILD_FILES.map((f) => fs.statSync(path.join(REPO, f)).mtimeMs));
    const before = buildFingerprint();
    if (Date.now() - newest > 5000) {
      fs.rmSync(PINNED, { recursive: true, force: true });
      fs.mkdirSync(path.join(PINNED, 'scripts'), { recursive: true });
      fs.cpSync(path.join(REPO, 'build'), path.join(PINNED, 'build'), { recursive: true });
      fs.copyFileSync(path.join(REPO, 'scripts', 'serve.mjs'), path.join(PINNED, 'scripts', 'serve.mjs'));
      const copy = buildFingerprint(PINNED), after = buildFingerprint();
      if (copy === before && after === before) {
        pinned = { fingerprint: copy, wasmMtime: fs.statSync(path.join(REPO, 'build', 'index_bg.wasm')).mtime.toISOString() };
        ({ startMirror } = await import(pathToFileURL(path.join(PINNED, 'scripts', 'serve.mjs')).href));
        return pinned;
      }
    }
    if (Date.now() > until) throw new Error('build/ kept changing for 2 min: cannot pin a build');
    log('build/ is being written: waiting');
    await sleep(3000);
  }
}

async function freshMirror() {
  await stopMirror();
  if (buildFingerprint() !== pinned.fingerprint && !anomalies.some((a) => a.startsWith('build/ changed'))) {
    anomaly(`build/ changed during the run (${pinned.fingerprint} -> ${buildFingerprint()}); the run keeps using the build it pinned at the start`);
  }
  const state = path.join(ROOT, 'instances', `mirror-${++mirrorN}`);
  fs.rmSync(state, { recursive: true, force: true });
  mirrorStored = [];
  lastStoreAt = Date.now();
  const t0 = hr();
  mirror = await within(startMirror({ port: MIRROR_PORT, vars: { UPSTREAMS: mirrorTable() }, state, r2: true, onLog: onMirrorLog }), 60_000);
  if (mirror === 'timeout') { mirror = null; throw new Error('the mirror did not start within 60 s'); }
  mirror.startMs = hr() - t0;
  const pids = findWorkerd();
  if (pids.length !== 1) anomaly(`expected one workerd child process, found ${JSON.stringify(pids)}`);
  for (const p of pids) workerdPids.add(p);
  mirror.pid = pids.at(-1);
  return mirror;
}

function proxyConfig(name, port, root, remote, credentials) {
  const text = fs.readFileSync(path.join(HERE, 'conf', 'proxy.yml'), 'utf8')
    .replaceAll('@NAME@', name).replaceAll('@ROOT@', root).replaceAll('@PORT@', String(port))
    .replaceAll('@REMOTE@', remote)
    .replaceAll('@CREDENTIALS@', credentials ? `  username: ${credentials.username}\n  password: ${credentials.password}` : '');
  const file = path.join(ROOT, 'conf', `${name}.yml`);
  fs.writeFileSync(file, text);
  return file;
}

/** distribution's proxy with an empty storage root on `port`. */
async function startProxy(name, port, remote, credentials) {
  const root = path.join(ROOT, 'instances', `${name}-${++proxyN}`);
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const conf = proxyConfig(name, port, root, remote, credentials);
  const d = daemon(name, 'docker-registry', ['serve', conf], { log: path.join(ROOT, 'logs', `${name}.log`) });
  await waitPort(port, d, 15_000);
  return d;
}
async function freshProxyHub() {
  if (proxyHub) { const p = proxyHub; proxyHub = null; await p.stop(); }
  proxyHub = await startProxy('proxy-hub', PROXY_PORTS.hub, up.hub, U.USER);
  return proxyHub;
}

/** Waits until the mirror has logged no store write for `quietMs` (its writes run after the response). */
async function settleMirror({ minMs = 300, quietMs = 500, maxMs = 30_000 } = {}) {
  const t0 = Date.now();
  await sleep(minMs);
  while (Date.now() - lastStoreAt < quietMs && Date.now() - t0 < maxMs) await sleep(100);
}
/** Waits for the mirror's 'stored' (or failed) line of each blob digest. */
async function waitBlobsStored(digests, timeout = 180_000) {
  const want = new Set(digests.map((d) => d.slice(7)));
  const ok = await waitFor(() => [...want].every((hex) => mirrorStored.some((e) => e.what === 'blob' && e.key?.includes(hex))),
    { timeout, interval: 100 });
  if (!ok) anomaly(`not every blob was stored by the mirror within ${timeout / 1000} s`);
  return !!ok;
}

function defineSystems() {
  sys.direct = {
    label: 'direct', base: up.hub,
    headers: async () => ({ authorization: `Bearer ${await directToken()}` }),
    fresh: async () => {},
    settle: async () => {},
  };
  sys.proxy = {
    label: 'distribution proxy', base: `http://127.0.0.1:${PROXY_PORTS.hub}`,
    headers: async () => ({}),
    fresh: freshProxyHub,
    settle: () => sleep(300),
  };
  sys.mirror = {
    label: 'edgemirror', base: `http://127.0.0.1:${MIRROR_PORT}`,
    headers: async () => ({}),
    fresh: freshMirror,
    settle: () => settleMirror(),
  };
}
const SYSTEMS = ['direct', 'proxy', 'mirror'];

// ---------------------------------------------------------------- measures

const results = { manifest: {}, blob: {}, many: {}, pull: {}, memory: {}, wasm: {}, wrk: {} };
for (const k of ['manifest', 'blob', 'many', 'pull']) for (const s of SYSTEMS) results[k][s] = [];

const manifestPath = `/v2/${MANIFEST_REF.repo}/manifests/${MANIFEST_REF.tag}`;

/** Cold: the first request for the manifest after a fresh start with empty storage (the process has
 *  answered one GET /v2/ first). Direct: a new client's first request: anonymous token, then the
 *  request (after its GET /v2/ got the 401 challenge), as every client of a token-auth registry pays. */
async function coldManifest(name, method) {
  const s = sys[name];
  await s.fresh();
  const agent = newAgent(), tokenAgent = newAgent();
  try {
    await request(`${s.base}/v2/`, { agent });
    const mark = markUpstream();
    let t0 = hr(), headers = { accept: U.ACCEPT_ALL }, firstWithToken = null;
    if (name === 'direct') {
      const tok = await fetchToken([MANIFEST_REF.repo], tokenAgent);
      headers.authorization = `Bearer ${tok}`;
    }
    const r = await request(`${s.base}${manifestPath}`, { method, headers, agent });
    const ms = hr() - t0;
    if (r.status !== 200) throw new Error(`${name} cold ${method} ${manifestPath}: ${r.status} ${r.body}`);
    const upstream = await upstreamSince(mark);
    if (name === 'direct') { // also: the first request on a new connection with a token already held
      const a2 = newAgent();
      firstWithToken = (await request(`${s.base}${manifestPath}`, { method, headers, agent: a2 })).ms;
      a2.destroy();
    }
    return { ms, firstWithToken, cacheStatus: r.headers['cache-status'] ?? null, upstream, agent };
  } finally { tokenAgent.destroy(); }
}

/** Warm: `n` requests one after another on one keep-alive connection, after 10 unrecorded ones. */
async function warmSeries(name, method, n, agent, p = manifestPath) {
  const s = sys[name];
  const headers = { accept: U.ACCEPT_ALL, ...(await s.headers()) };
  const url = `${s.base}${p}`;
  const times = [];
  let notHit = 0;
  for (let i = 0; i < n + 10; i++) {
    const r = await request(url, { method, headers, agent });
    // GET /v2/ (the floor series) may answer the mirror's own Bearer challenge: 401, no store, no upstream
    if (r.status !== 200 && !(p === '/v2/' && r.status === 401)) throw new Error(`${name} warm ${method} ${p}: ${r.status} ${r.body}`);
    if (name === 'mirror' && p === manifestPath && !/hit/.test(r.headers['cache-status'] ?? '')) notHit++;
    if (i >= 10) times.push(r.ms);
  }
  return { n, p50: pct(times, 0.5), p99: pct(times, 0.99), mean: times.reduce((a, b) => a + b, 0) / n, notHit,
    times: times.map((t) => +t.toFixed(3)) };
}

const perRepN = () => Math.ceil(CFG.latencyN / CFG.reps);
/** p50/p99 over the warm requests of every repetition together. */
function pooled(name, method, q, key = null) {
  const all = results.manifest[name].flatMap((r) => (key ? r[method].warm[key] : r[method].warm)?.times ?? []);
  return all.length ? pct(all, q) : null;
}

async function measureManifests(rep) {
  for (const name of SYSTEMS) {
    const out = { rep };
    for (const method of ['HEAD', 'GET']) {
      const cold = await coldManifest(name, method);
      await sys[name].settle();
      const m = markUpstream();
      const warm = await warmSeries(name, method, perRepN(), cold.agent);
      const u = await upstreamSince(m);
      delete u.hub;
      warm.upstreamDuringSeries = u; // what the upstream side received during the n + 10 warm requests
      if (name === 'mirror' && method === 'GET') { // the runtime's floor: GET /v2/ touches no store and no upstream
        warm.floorV2 = await warmSeries(name, 'GET', perRepN(), cold.agent, '/v2/');
      }
      cold.agent.destroy();
      out[method] = { coldMs: cold.ms, coldFirstWithTokenMs: cold.firstWithToken, coldCacheStatus: cold.cacheStatus, coldUpstream: cold.upstream, warm };
      if (warm.notHit) anomaly(`${name} warm ${method}: ${warm.notHit} of ${warm.n + 10} responses were not cache hits`);
    }
    results.manifest[name].push(out);
    log(`manifest ${name} rep ${rep}: HEAD cold ${out.HEAD.coldMs.toFixed(1)} ms, warm p50 ${out.HEAD.warm.p50.toFixed(2)}; GET cold ${out.GET.coldMs.toFixed(1)} ms, warm p50 ${out.GET.warm.p50.toFixed(2)}`);
  }
}

async function blobHeaders(name) {
  return Object.entries(await sys[name].headers()).map(([k, v]) => `${k}: ${v}`);
}

async function measureBigBlob(rep, big) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    await request(`${s.base}/v2/`);
    const url = `${s.base}/v2/library/big/blobs/${big.digest}`;
    const headers = await blobHeaders(name);
    // the process that streams (and stores) the bytes: its RSS before and during the cold GET
    const pid = name === 'mirror' ? mirror.pid : name === 'proxy' ? proxyHub.pid : null;
    const idleMb = pid ? await idleRssMb(pid, 500) : null;
    const sampler = pid ? sampleRss(pid) : null;
    const cold = await curlGet(url, { headers, follow: true, expectBytes: big.size });
    if (name === 'mirror') await waitBlobsStored([big.digest]);
    else await s.settle();
    const rss = sampler?.stop();
    const warm = await curlGet(url, { headers, follow: true, expectBytes: big.size });
    results.blob[name].push({ rep, coldMBps: cold.mbps, warmMBps: warm.mbps, idleMb, coldPeakMb: rss?.peakMb ?? null });
    log(`big blob ${name} rep ${rep}: cold ${cold.mbps.toFixed(0)} MB/s, warm ${warm.mbps.toFixed(0)} MB/s`);
  }
}

async function measureMany(rep, many) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    await request(`${s.base}/v2/`);
    const urls = many.map((b) => `${s.base}/v2/library/many/blobs/${b.digest}`);
    const headers = await blobHeaders(name);
    const m = markUpstream();
    const cold = await curlParallel(urls, { headers, follow: true, expectBytesEach: 1 << 20 });
    if (name === 'mirror') await waitBlobsStored(many.map((b) => b.digest));
    else await s.settle();
    const coldUp = await upstreamSince(m);
    const warm = await curlParallel(urls, { headers, follow: true, expectBytesEach: 1 << 20 });
    const row = { rep, coldMBps: cold.mbps, coldWallMs: cold.wallMs, warmMBps: warm.mbps, warmWallMs: warm.wallMs, coldUpstream: coldUp,
      listenOverflows: { cold: cold.listenOverflows, warm: warm.listenOverflows } };
    if (name === 'direct') { // reference: the same blobs from the plain registry (Go, no redirect)
      const plain = await curlParallel(many.map((b) => `${up.plain}/v2/library/many/blobs/${b.digest}`), { expectBytesEach: 1 << 20 });
      row.plainMBps = plain.mbps;
      row.plainListenOverflows = plain.listenOverflows;
    }
    results.many[name].push(row);
    log(`${many.length} x 1 MiB ${name} rep ${rep}: cold ${cold.wallMs.toFixed(0)} ms, warm ${warm.wallMs.toFixed(0)} ms` +
      ` (listen queue overflows: ${cold.listenOverflows} cold, ${warm.listenOverflows} warm; upstream tokens fetched cold: ${coldUp.token})`);
  }
}

// upstream requests, from the hub's access log, the token server's and the blob host's logs
function markUpstream() {
  return { hub: U.logOffset(up.logs.hub), token: U.logOffset(up.logs.token), blobs: U.logOffset(up.logs.blobs) };
}
async function upstreamSince(m) {
  await sleep(300); // the servers log after they answer
  const hub = U.readRequests(up.logs.hub, m.hub);
  const token = U.readJsonLines(up.logs.token, m.token).filter((e) => 'scopes' in e);
  const blobs = U.readJsonLines(up.logs.blobs, m.blobs).filter((e) => 'm' in e);
  return {
    total: hub.length + token.length + blobs.length,
    get: hub.filter((q) => q.method === 'GET').length,
    head: hub.filter((q) => q.method === 'HEAD').length,
    token: token.length,
    blobHost: blobs.length,
    hub: hub.map((q) => `${q.method} ${q.path} ${q.status}`),
  };
}

async function skopeoPull(host, ref, label) {
  const dir = path.join(ROOT, 'pulls', label);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const t0 = hr();
  const r = await run('skopeo', ['copy', '--all', '--src-tls-verify=false', '--src-no-creds', '--retry-times', '0',
    `docker://${host}/${ref}`, `dir:${dir}`], { timeout: 180_000 });
  const secs = (hr() - t0) / 1000;
  if (r.code !== 0) throw new Error(`skopeo copy ${host}/${ref} failed (${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-800)}`);
  return secs;
}
const pullHost = (name) => (name === 'direct' ? `127.0.0.1:${U.PORTS.hub}`
  : name === 'proxy' ? `127.0.0.1:${PROXY_PORTS.hub}` : `127.0.0.1:${FRONT_PORT}`);

async function measurePull(rep) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    let m = markUpstream();
    const coldSecs = await skopeoPull(pullHost(name), PULL_REF, `${name}-cold`);
    const coldUp = await upstreamSince(m);
    await s.settle();
    m = markUpstream();
    const warmSecs = await skopeoPull(pullHost(name), PULL_REF, `${name}-warm`);
    const warmUp = await upstreamSince(m);
    const out = { rep, coldSecs, warmSecs, coldUpstream: coldUp, warmUpstream: warmUp };
    if (rep === 0) {
      // after the tag TTL: the mirror's short-ttl upstream (same hub, tag_ttl 3 s): prime, wait, re-pull.
      // direct and distribution have no tag TTL: every tag lookup goes upstream (a third, warm pull).
      const ref = name === 'mirror' ? `short-ttl/${PULL_REF}` : PULL_REF;
      await skopeoPull(pullHost(name), ref, `${name}-prime`);
      await s.settle();
      if (name === 'mirror') await sleep(CFG.shortTagTtl * 1000 + 700);
      m = markUpstream();
      out.afterTtlSecs = await skopeoPull(pullHost(name), ref, `${name}-after-ttl`);
      out.afterTtlUpstream = await upstreamSince(m);
    }
    results.pull[name].push(out);
    log(`pull ${name} rep ${rep}: cold ${coldSecs.toFixed(2)} s (${coldUp.total} upstream), warm ${warmSecs.toFixed(2)} s (${warmUp.total} upstream)` +
      (out.afterTtlUpstream ? `, after TTL ${out.afterTtlUpstream.total} upstream` : ''));
  }
}

const blobUrl = (base, blob, prefix = '') => `${base}/v2/${prefix}${blob.repo}/blobs/${blob.digest}`;

async function measureMemory(big, huge, stored) {
  const mem = results.memory;
  big = { ...big, repo: 'library/big' };
  // edgemirror: idle; the big and the huge layer passed through (Range: bytes=0- is never stored);
  // a layer the mirror stores (≤ its 512 MiB limit) cold, sampled until it logged the R2 write; and
  // the huge one as a plain GET (over the limit: streamed, not stored).
  await freshMirror();
  await request(`${sys.mirror.base}/v2/`);
  const pid = mirror.pid;
  mem.mirror = { pid, idleMb: await idleRssMb(pid), passThrough: [] };
  mem.direct = { passThrough: [] };
  for (const [what, blob] of [['big', big], ['huge', huge]]) {
    for (let i = 0; i < (what === 'big' ? CFG.reps : 1); i++) {
      const sampler = sampleRss(pid);
      const r = await curlGet(blobUrl(sys.mirror.base, blob), { headers: ['range: bytes=0-'], expectBytes: blob.size, timeoutSec: 600 });
      const s = sampler.stop();
      mem.mirror.passThrough.push({ what, sizeMb: blob.size / 2 ** 20, mbps: r.mbps, code: r.code, cacheStatus: r.headers['cache-status'], peakMb: s.peakMb });
      log(`pass-through ${what} (${(blob.size / 2 ** 20).toFixed(0)} MiB): ${r.mbps.toFixed(0)} MB/s, workerd peak RSS ${s.peakMb.toFixed(0)} MiB`);
      const d = await curlGet(blobUrl(up.hub, blob), { headers: [...await blobHeaders('direct'), 'range: bytes=0-'], follow: true, expectBytes: blob.size, timeoutSec: 600 });
      mem.direct.passThrough.push({ what, mbps: d.mbps });
    }
  }
  const coldGet = async (blob) => {
    const beforeMb = await idleRssMb(pid, 500);
    const sampler = sampleRss(pid);
    const t0 = hr();
    const r = await curlGet(blobUrl(sys.mirror.base, blob), { expectBytes: blob.size, timeoutSec: 600 });
    const cs = r.headers['cache-status'] ?? '';
    const willStore = /; stored/.test(cs);
    if (willStore) await waitBlobsStored([blob.digest], 300_000);
    const s = sampler.stop();
    log(`cold ${(blob.size / 2 ** 20).toFixed(0)} MiB: ${r.mbps.toFixed(0)} MB/s, workerd peak RSS ${s.peakMb.toFixed(0)} MiB (${cs})`);
    return { sizeMb: blob.size / 2 ** 20, mbps: r.mbps, beforeMb, peakMb: s.peakMb, cacheStatus: cs, stored: willStore, untilStoredSecs: (hr() - t0) / 1000 };
  };
  if (huge !== stored) { // first: after a stored blob, the runtime's RSS stays up
    mem.mirror.coldHuge = await coldGet(huge);
    if (!mem.mirror.coldHuge.stored) {
      anomaly(`a ${CFG.hugeMb} MiB blob is streamed but never stored, in R2 either (${mem.mirror.coldHuge.cacheStatus}): ` +
        'policy.rs applies MAX_STORED_BLOB (the Cache API\'s 512 MiB limit) to every store');
    }
  }
  mem.mirror.coldStored = await coldGet(stored);
  if (!mem.mirror.coldStored.stored) anomaly(`the mirror did not store the ${CFG.storedMb} MiB blob: ${mem.mirror.coldStored.cacheStatus}`);
  mem.mirror.idleAfterMb = await idleRssMb(pid);

  // distribution's proxy: idle, then the stored layer cold (written to its disk while streamed)
  await freshProxyHub();
  await request(`${sys.proxy.base}/v2/`);
  const ppid = proxyHub.pid;
  mem.proxy = { pid: ppid, idleMb: await idleRssMb(ppid) };
  {
    const sampler = sampleRss(ppid);
    const r = await curlGet(blobUrl(sys.proxy.base, stored), { expectBytes: stored.size, timeoutSec: 600 });
    await sleep(500);
    const s = sampler.stop();
    mem.proxy.coldStored = { mbps: r.mbps, peakMb: s.peakMb };
    log(`distribution proxy cold (${CFG.storedMb} MiB): ${r.mbps.toFixed(0)} MB/s, peak RSS ${s.peakMb.toFixed(0)} MiB`);
  }
  // direct, for reference: the same layer through the hub's redirect (no process of ours streams it)
  mem.direct.coldStoredMBps = (await curlGet(blobUrl(up.hub, stored), { headers: await blobHeaders('direct'), follow: true, expectBytes: stored.size, timeoutSec: 600 })).mbps;
}

function measureWasm() {
  const file = path.join(PINNED, 'build', 'index_bg.wasm'); // the build the run measured
  const raw = fs.readFileSync(file);
  const js = fs.readFileSync(path.join(PINNED, 'build', 'index.js'));
  results.wasm = {
    file: 'build/index_bg.wasm',
    rawBytes: raw.length,
    gzipBytes: zlib.gzipSync(raw, { level: 9 }).length,
    gzipDefaultBytes: zlib.gzipSync(raw).length,
    jsGlueBytes: js.length,
    jsGlueGzipBytes: zlib.gzipSync(js, { level: 9 }).length,
    builtAt: pinned.wasmMtime,
    fingerprint: pinned.fingerprint,
  };
}

async function wrk(url, headers = {}) {
  const args = [`-t${CFG.wrk.threads}`, `-c${CFG.wrk.conns}`, `-d${CFG.wrk.secs}s`, '--latency', '--timeout', '5s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const lo = listenOverflows();
  const r = await run('wrk', args, { timeout: (CFG.wrk.secs + 30) * 1000 });
  const overflows = listenOverflows() - lo;
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors:(.*)/.exec(out)?.[1]?.trim() ?? null;
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? null;
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? null;
  if (r.code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk ${url} failed: ${r.stderr} ${out}`);
  if (non2xx) anomaly(`wrk ${url}: ${non2xx} non-2xx responses`);
  if (sock) anomaly(`wrk ${url}: socket errors ${sock}`);
  return { rps, non2xx, socketErrors: sock, latencyP50: p50, latencyP99: p99, listenOverflows: overflows };
}

async function measureWrk(images) {
  // the same manifest by digest: from the plain registry itself, and from the caches of it
  const digest = images[`${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`].digest;
  const urls = {
    direct: `${up.plain}/v2/${MANIFEST_REF.repo}/manifests/${digest}`,
    proxy: `http://127.0.0.1:${PROXY_PORTS.plain}/v2/${MANIFEST_REF.repo}/manifests/${digest}`,
    mirror: `${sys.mirror.base}/v2/plain/${MANIFEST_REF.repo}/manifests/${digest}`,
  };
  const headers = { accept: U.ACCEPT_ALL };
  for (const name of SYSTEMS) { // warm them; check the mirror answers from its cache
    const r = await request(urls[name], { headers });
    if (r.status !== 200 || sha256(r.body) !== digest) throw new Error(`wrk warm-up ${name}: ${r.status}`);
  }
  await settleMirror();
  const check = await request(urls.mirror, { headers });
  if (!/hit/.test(check.headers['cache-status'] ?? '')) anomaly(`mirror: manifest by digest not a cache hit before wrk (${check.headers['cache-status']})`);
  for (const name of SYSTEMS) results.wrk[name] = { url: urls[name], runs: [] };
  // The runtime's own tail, in the same workerd build: a JavaScript worker answering a constant
  // 1 KB (/constant), and the same 1 KB as a hit from the local Cache API simulator (/cache).
  const { Miniflare } = await import('miniflare');
  const control = new Miniflare({ modules: true, compatibilityDate: '2026-04-01', host: '127.0.0.1', port: WRK_CONTROL_PORT, cache: true,
    script: `export default { async fetch(req) {
      if (new URL(req.url).pathname === '/constant') return new Response('x'.repeat(1000));
      const key = 'https://control.test/1k';
      let hit = await caches.default.match(key);
      if (!hit) {
        await caches.default.put(key, new Response('x'.repeat(1000), { headers: { 'cache-control': 'max-age=3600' } }));
        hit = await caches.default.match(key);
      }
      return new Response(hit.body);
    } };` });
  try {
    await within(control.ready, 60_000);
    results.wrk.constant = { url: `http://127.0.0.1:${WRK_CONTROL_PORT}/constant`, runs: [] };
    results.wrk.cacheHit = { url: `http://127.0.0.1:${WRK_CONTROL_PORT}/cache`, runs: [] };
    await request(results.wrk.cacheHit.url);
    for (let rep = 0; rep < CFG.reps; rep++) {
      for (const name of [...SYSTEMS, 'constant', 'cacheHit']) {
        const w = await wrk(results.wrk[name].url, headers);
        results.wrk[name].runs.push(w);
        log(`wrk ${name} rep ${rep}: ${w.rps.toFixed(0)} req/s (p50 ${w.latencyP50}, p99 ${w.latencyP99})`);
      }
    }
  } finally {
    await control.dispose();
  }
}

/** "N req/s, p99 M ms" of a control run of the wrk row. */
function wrkControl(name) {
  const runs = results.wrk[name]?.runs ?? [];
  return `${fmtNum(median(runs.map((r) => r.rps)), 0)} req/s, p99 ${fmtNum(median(runs.map((r) => wrkMs(r.latencyP99))), 0)} ms`;
}

/** wrk's latency ("537.02ms", "1.58s", "812.00us") in ms. */
function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return null;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2]];
}

// ---------------------------------------------------------------- machine

async function machine() {
  const first = async (cmd, args) => { try { const r = await run(cmd, args, { timeout: 10_000 }); return (r.stdout + r.stderr).trim().split('\n')[0]; } catch { return null; } };
  const pkg = (p) => { try { return JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', p, 'package.json'), 'utf8')).version; } catch { return null; } };
  const git = async (args) => { try { return (await run('git', ['-C', REPO, ...args], { timeout: 10_000 })).stdout.trim(); } catch { return null; } };
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? null,
    memoryBytes: os.totalmem(),
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAvgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
    node: process.version,
    date: new Date().toISOString(),
    tools: {
      distribution: await first('docker-registry', ['--version']),
      skopeo: await first('skopeo', ['--version']),
      curl: await first('curl', ['--version']),
      wrk: await first('wrk', ['-v']),
      miniflare: pkg('miniflare'),
      workerd: pkg('workerd'),
    },
    git: { commit: await git(['rev-parse', 'HEAD']), dirty: !!(await git(['status', '--porcelain', '--untracked-files=no'])) },
  };
}

// ---------------------------------------------------------------- table

const fmtNum = (v, digits) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(digits));
function upstreamCell(u) {
  if (!u) return '—';
  const parts = [[u.get, 'GET'], [u.head, 'HEAD'], [u.token, 'token'], [u.blobHost, 'blob host']].filter(([n]) => n).map(([n, w]) => `${n} ${w}`);
  return parts.length ? `${u.total} (${parts.join(', ')})` : '0';
}
const medianBy = (arr, f) => median(arr.map(f));
/** The upstream counts of the rep whose total is the median (they hardly vary). */
function medianUpstream(arr, f) {
  const xs = arr.map(f).filter(Boolean).sort((a, b) => a.total - b.total);
  return xs.length ? xs[(xs.length - 1) >> 1] : null;
}

function buildRows(big, huge, stored, manyN) {
  const R = [];
  const row = (key, label, unit, better, values, { digits = 1, cells, warm = false, cold = false } = {}) =>
    R.push({ key, label, unit, better, warm, cold, values, digits, cells });
  const man = results.manifest, bl = results.blob, mn = results.many, pl = results.pull;
  const per = (f) => Object.fromEntries(SYSTEMS.map((s) => [s, f(s)]));
  for (const method of ['HEAD', 'GET']) {
    row(`manifest_${method.toLowerCase()}_cold`, `Manifest ${method} by tag, cold¹`, 'ms', 'lower',
      per((s) => medianBy(man[s], (r) => r[method].coldMs)), { cold: true });
    const n = perRepN() * CFG.reps;
    row(`manifest_${method.toLowerCase()}_warm_p50`, `Manifest ${method} by tag, warm p50 (n=${n})`, 'ms', 'lower',
      per((s) => pooled(s, method, 0.5)), { digits: 2, warm: true });
    row(`manifest_${method.toLowerCase()}_warm_p99`, `Manifest ${method} by tag, warm p99 (n=${n})`, 'ms', 'lower',
      per((s) => pooled(s, method, 0.99)), { digits: 2, warm: true });
  }
  const mib = (b) => (b / 2 ** 20).toFixed(0);
  row('blob_big_cold', `Blob GET ${mib(big.size)} MiB, cold²`, 'MB/s', 'higher', per((s) => medianBy(bl[s], (r) => r.coldMBps)), { digits: 0, cold: true });
  row('blob_big_warm', `Blob GET ${mib(big.size)} MiB, warm`, 'MB/s', 'higher', per((s) => medianBy(bl[s], (r) => r.warmMBps)), { digits: 0, warm: true });
  row('many_cold', `${manyN} concurrent 1 MiB blob GETs, cold (aggregate)⁸`, 'MB/s', 'higher', per((s) => medianBy(mn[s], (r) => r.coldMBps)), { digits: 0, cold: true });
  row('many_warm', `${manyN} concurrent 1 MiB blob GETs, warm (aggregate)`, 'MB/s', 'higher', per((s) => medianBy(mn[s], (r) => r.warmMBps)), { digits: 0, warm: true });
  row('pull_cold', `skopeo copy --all ${PULL_REF}, cold³`, 's', 'lower', per((s) => medianBy(pl[s], (r) => r.coldSecs)), { digits: 2, cold: true });
  row('pull_warm', `skopeo copy --all ${PULL_REF}, warm`, 's', 'lower', per((s) => medianBy(pl[s], (r) => r.warmSecs)), { digits: 2, warm: true });
  for (const [k, label, f, warm] of [
    ['upstream_cold', 'Upstream requests per pull, cold⁴', (r) => r.coldUpstream, false],
    ['upstream_warm', 'Upstream requests per pull, warm (within the tag TTL)⁴', (r) => r.warmUpstream, true],
    ['upstream_after_ttl', `Upstream requests per pull, after the tag TTL⁴ ⁵`, (r) => r.afterTtlUpstream, false],
  ]) {
    const u = per((s) => medianUpstream(pl[s], f));
    row(k, label, 'requests', 'lower', per((s) => u[s]?.total ?? null), { digits: 0, warm, cells: per((s) => upstreamCell(u[s])) });
  }
  const mm = results.memory;
  const ptPeak = (what) => { const v = (mm.mirror?.passThrough ?? []).filter((p) => p.what === what).map((p) => p.peakMb); return v.length ? Math.max(...v) : null; };
  row('blob_big_passthrough', `Blob GET ${mib(big.size)} MiB, \`Range: bytes=0-\` (never stored: pass-through)`, 'MB/s', 'higher',
    { direct: median((mm.direct?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)), proxy: null,
      mirror: median((mm.mirror?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)) }, { digits: 0 });
  row('blob_stored_cold', `Blob GET ${mib(stored.size)} MiB, cold, stored while streamed`, 'MB/s', 'higher',
    { direct: mm.direct?.coldStoredMBps, proxy: mm.proxy?.coldStored?.mbps, mirror: mm.mirror?.coldStored?.mbps }, { digits: 0, cold: true });
  row('rss_idle', 'Server process RSS, idle⁶', 'MiB', 'lower', { direct: null, proxy: mm.proxy?.idleMb, mirror: mm.mirror?.idleMb }, { digits: 0 });
  row('rss_passthrough_big', `Server process peak RSS, ${mib(big.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('big') }, { digits: 0 });
  row('rss_passthrough_huge', `Server process peak RSS, ${mib(huge.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('huge') }, { digits: 0 });
  row('rss_cold_big', `Server process peak RSS, ${mib(big.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: medianBy(bl.proxy, (r) => r.coldPeakMb), mirror: medianBy(bl.mirror, (r) => r.coldPeakMb) }, { digits: 0 });
  row('rss_cold_stored', `Server process peak RSS, ${mib(stored.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: mm.proxy?.coldStored?.peakMb, mirror: mm.mirror?.coldStored?.peakMb }, { digits: 0 });
  if (mm.mirror?.coldHuge) {
    row('rss_cold_huge', `Server process peak RSS, ${mib(huge.size)} MiB plain GET (${mm.mirror.coldHuge.stored ? 'stored' : 'over the store limit: not stored'})`, 'MiB', 'lower',
      { direct: null, proxy: null, mirror: mm.mirror.coldHuge.peakMb }, { digits: 0 });
  }
  const w = results.wasm;
  row('wasm', 'Bundle: build/index_bg.wasm, raw / gzip -9', 'bytes', 'lower', { direct: null, proxy: null, mirror: w.gzipBytes },
    { digits: 0, cells: { direct: '—', proxy: '—', mirror: `${w.rawBytes.toLocaleString('en-US')} / ${w.gzipBytes.toLocaleString('en-US')} (${(w.gzipBytes / 1024).toFixed(0)} KiB)` } });
  row('wrk_rps', `Warm manifest GET by digest, wrk -t${CFG.wrk.threads} -c${CFG.wrk.conns} -d${CFG.wrk.secs}s⁷`, 'req/s', 'higher',
    per((s) => median((results.wrk[s]?.runs ?? []).map((r) => r.rps))), { digits: 0, warm: true });
  row('wrk_p99', 'The same, wrk p99 latency⁷', 'ms', 'lower',
    per((s) => median((results.wrk[s]?.runs ?? []).map((r) => wrkMs(r.latencyP99)))), { digits: 0, warm: true });
  const order = ['manifest_', 'blob_', 'many_', 'pull_', 'upstream_', 'rss_', 'wasm', 'wrk_'];
  const rank = (r) => order.findIndex((p) => r.key.startsWith(p));
  return R.map((r, i) => [r, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([r]) => r);
}

function ratio(a, b, better) {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b)) return '—';
  if (b === 0) return a === 0 ? '=' : '—';
  return (a / b).toFixed(2);
}

function manyNote() {
  const mn = results.many;
  const sum = (name, f) => mn[name].reduce((a, r) => a + (f(r) ?? 0), 0);
  const overflows = SYSTEMS.map((s) => `${sys[s].label} ${sum(s, (r) => r.listenOverflows.cold)} cold / ${sum(s, (r) => r.listenOverflows.warm)} warm`).join(', ');
  const any = SYSTEMS.some((s) => sum(s, (r) => r.listenOverflows.cold + r.listenOverflows.warm) > 0);
  const tokens = SYSTEMS.filter((s) => s !== 'direct').map((s) => `${sys[s].label} ${median(mn[s].map((r) => r.coldUpstream.token))}`).join(', ');
  return `⁸ One curl with --parallel, all ${CFG.manyBlobs} at once; MB/s = bytes / wall time. The hub's blob host and token server are Python \`ThreadingHTTPServer\`s, whose listen backlog is 5: connections dropped because a listen queue was full (kernel ListenOverflows, summed over the repetitions): ${overflows}${any ? '; each drop costs the client a SYN retransmit after 1 s, which dominates the rows it happens in' : ''}. The same blobs straight from the plain registry (Go): ${fmtNum(median(mn.direct.map((r) => r.plainMBps)), 0)} MB/s. Token fetches upstream during one cold run (median): ${tokens}.`;
}

function upstreamPerRequest(name, method) {
  const v = median(results.manifest[name].map((r) => r[method].warm.upstreamDuringSeries.total / (r[method].warm.n + 10)));
  return v == null ? '—' : v.toFixed(2);
}

function renderTable(rows) {
  const lines = [
    `| measure | unit | direct | distribution proxy | edgemirror | edgemirror/direct | edgemirror/proxy |`,
    `|---|---|---:|---:|---:|---:|---:|`,
  ];
  for (const r of rows) {
    const cell = (s) => r.cells?.[s] ?? fmtNum(r.values[s], r.digits);
    const dir = r.better === 'lower' ? '↓' : '↑';
    lines.push(`| ${r.label} | ${r.unit} ${dir} | ${cell('direct')} | ${cell('proxy')} | ${cell('mirror')} | ` +
      `${ratio(r.values.mirror, r.values.direct)} | ${ratio(r.values.mirror, r.values.proxy)} |`);
  }
  const m = results.memory;
  lines.push('',
    `↓ lower is better, ↑ higher is better. Medians of ${CFG.reps} repetition(s); all on 127.0.0.1 (${os.availableParallelism?.() ?? os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(2)} at the end); "direct" is the Docker-Hub-like upstream (token auth, blobs answered 307 to a separate blob host), except in the wrk row.`,
    `¹ Cold: for distribution and edgemirror, the first request for the manifest after a fresh start with empty storage (a new Miniflare instance with a new state dir / a new distribution storage root; the process has answered one \`GET /v2/\` first, so start-up is not counted). For direct, a new client's first request: the anonymous token, then the request on a new connection, as every client of a token-auth registry pays (the same upstream exchange the caches make inside; with a token already held the first request took ${fmtNum(median(results.manifest.direct.map((r) => r.HEAD.coldFirstWithTokenMs)), 1)} ms HEAD / ${fmtNum(median(results.manifest.direct.map((r) => r.GET.coldFirstWithTokenMs)), 1)} ms GET). Warm: then ${perRepN()} sequential requests on one keep-alive connection (after 10 unrecorded), node's http client; p50/p99 over all repetitions' requests together. Upstream requests received per warm GET: ${SYSTEMS.map((s) => `${sys[s].label} ${upstreamPerRequest(s, 'GET')}`).join(', ')}. edgemirror's floor in this runtime (\`GET /v2/\`, answered by the worker itself: no store, no upstream): p50 ${fmtNum(pooled('mirror', 'GET', 0.5, 'floorV2'), 2)} ms.`,
    `² Blob rows: curl, MB/s = bytes / total time; cold = the first GET after a fresh start (for direct: the first GET, i.e. the same as warm); warm = the next GET, after edgemirror logged the blob stored (R2 is bound, so blobs go to R2, not the Cache API) / after distribution wrote it. Pass-through: \`Range: bytes=0-\` requests, which edgemirror never stores (direct: the same request to the hub). "Stored while streamed": a ${CFG.storedMb} MiB layer, the first GET after a fresh start, in the memory phase.`,
    `³ skopeo 1.9 \`copy --all\` (2 platforms) to a \`dir:\`, wall time; to edgemirror through a TLS-rejecting TCP front (skopeo first tries HTTPS and would stall 10 s on workerd's port). Cold = on a fresh instance.`,
    `⁴ Requests the upstream side received during the pull: the hub registry's access log (GET/HEAD, incl. 401s), its token server and its blob host (where the 307s point).`,
    `⁵ edgemirror: a second upstream entry for the same hub with \`tag_ttl = ${CFG.shortTagTtl}s\`, pulled once, then again after ${CFG.shortTagTtl + 0.7} s. direct and distribution have no tag TTL (distribution asks the remote for every tag): their value is one more warm pull.`,
    `⁶ RSS of the process that streams the bytes: edgemirror = the workerd process Miniflare runs (the R2 simulator runs inside it), distribution = its registry process; sampled every 20 ms. idle = after start and one request; pass-through = \`Range: bytes=0-\` requests (never stored); cold = a plain GET of a blob not yet held, sampled until edgemirror logged it stored (the ${CFG.bigMb} MiB layer: during the blob rows' cold GETs, median; the ${CFG.storedMb} MiB one; with R2 bound edgemirror stores blobs up to 5 GiB, with the Cache API alone up to 512 MiB). The direct hub redirects, so it streams nothing itself.`,
    `⁷ The wrk row uses the plain (no auth) registry: direct = the plain registry itself, distribution = its proxy of the plain registry, edgemirror = its \`plain\` upstream; the same manifest by digest, warmed once first. wrk runs on the same ${os.availableParallelism?.() ?? os.cpus().length} cores as the server. The runtime's share, under the same wrk in the same workerd: a JavaScript worker answering a constant 1 KB: ${wrkControl('constant')}; the same 1 KB as a hit from the local Cache API simulator (where edgemirror keeps manifests): ${wrkControl('cacheHit')}.`,
    manyNote(),
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------- targets

const mib1 = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
function evaluateTargets(rows, big) {
  const by = Object.fromEntries(rows.map((r) => [r.key, r]));
  const v = (k, s) => by[k]?.values[s];
  const t = [];
  const add = (target, met, detail) => t.push({ target, met, detail });
  for (const m of ['head', 'get']) {
    for (const q of ['p50', 'p99']) {
      const k = `manifest_${m}_warm_${q}`;
      add(`warm manifest ${m.toUpperCase()} ${q} below direct`, v(k, 'mirror') < v(k, 'direct'), `${fmtNum(v(k, 'mirror'), 2)} vs ${fmtNum(v(k, 'direct'), 2)} ms`);
    }
  }
  for (const k of ['manifest_head_cold', 'manifest_get_cold', 'pull_cold']) {
    add(`cold ≤ 1.5× direct (${by[k].label})`, v(k, 'mirror') <= 1.5 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`);
  }
  for (const k of ['blob_big_cold', 'blob_big_warm', 'many_cold', 'many_warm']) {
    add(`blob throughput ≥ 0.9× direct (${by[k].label})`, v(k, 'mirror') >= 0.9 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`);
  }
  const mm = results.memory.mirror;
  if (mm) {
    const peak = (what) => Math.max(...mm.passThrough.filter((p) => p.what === what).map((p) => p.peakMb));
    const [bigPeak, hugePeak] = [peak('big'), peak('huge')];
    add(`memory flat in layer size, pass-through (peak − idle ≤ 64 MiB, and ${mm.passThrough.find((p) => p.what === 'huge')?.sizeMb.toFixed(0)} MiB ≤ ${mib1(big.size)} + 32 MiB)`,
      Math.max(bigPeak, hugePeak) - mm.idleMb <= 64 && hugePeak <= bigPeak + 32,
      `idle ${mm.idleMb.toFixed(0)} MiB, peak ${bigPeak.toFixed(0)} MiB (${mib1(big.size)}) / ${hugePeak.toFixed(0)} MiB (${CFG.hugeMb} MiB)`);
    const coldBig = median(results.blob.mirror.map((r) => r.coldPeakMb - r.idleMb));
    const coldStored = mm.coldStored.peakMb - mm.coldStored.beforeMb;
    add(`memory flat in layer size, cold and stored to R2 (growth over idle ≤ 64 MiB for ${mib1(big.size)} and ${CFG.storedMb} MiB)`,
      coldStored <= 64 && coldBig <= 64,
      `+${coldBig.toFixed(0)} MiB (${mib1(big.size)}) / +${coldStored.toFixed(0)} MiB (${CFG.storedMb} MiB) over the RSS just before`);
  }
  add('warm re-pull within the TTL: 0 upstream requests', v('upstream_warm', 'mirror') === 0, by.upstream_warm.cells.mirror);
  const after = medianUpstream(results.pull.mirror, (r) => r.afterTtlUpstream);
  add('re-pull after the TTL: HEAD only', !!after && after.total > 0 && after.total === after.head, upstreamCell(after));
  for (const r of rows.filter((x) => x.warm)) {
    const a = r.values.mirror, b = r.values.proxy;
    const met = a != null && b != null && (r.better === 'lower' ? a < b || (a === 0 && b === 0) : a > b);
    add(`ahead of distribution's proxy: ${r.label}`, met, `${r.cells?.mirror ?? fmtNum(a, r.digits)} vs ${r.cells?.proxy ?? fmtNum(b, r.digits)} ${r.unit}`);
  }
  add('wasm ≤ 400 KiB gzip', results.wasm.gzipBytes <= 400 * 1024, `${(results.wasm.gzipBytes / 1024).toFixed(0)} KiB`);
  return t;
}

// ---------------------------------------------------------------- main

async function main() {
  log(`mode ${CFG.mode}: reps ${CFG.reps}, big layer ${CFG.bigMb} MiB, ${CFG.latencyN} warm requests per series, ` +
    `${CFG.manyBlobs} concurrent blobs, ${CFG.hugeMb} MiB for the memory rows`);
  if (!fs.existsSync(path.join(REPO, 'build', 'worker', 'shim.mjs')) || !fs.existsSync(path.join(REPO, 'build', 'index_bg.wasm'))) {
    throw new Error('build/worker/shim.mjs or build/index_bg.wasm is missing: run npm run build');
  }
  for (const d of ['logs', 'conf', 'data']) fs.mkdirSync(path.join(ROOT, d), { recursive: true });
  fs.rmSync(path.join(ROOT, 'instances'), { recursive: true, force: true });
  fs.rmSync(path.join(ROOT, 'pulls'), { recursive: true, force: true });
  onCleanup('instance dirs', () => {
    fs.rmSync(path.join(ROOT, 'instances'), { recursive: true, force: true });
    fs.rmSync(path.join(ROOT, 'pulls'), { recursive: true, force: true });
  });
  for (const p of [...Object.values(PROXY_PORTS), MIRROR_PORT, FRONT_PORT, WRK_CONTROL_PORT]) await assertPortFree(p);
  const mach = await machine();
  onCleanup('pinned build', () => fs.rmSync(PINNED, { recursive: true, force: true }));
  mach.build = await pinBuild();
  log(`pinned build ${pinned.fingerprint} (index_bg.wasm of ${pinned.wasmMtime})`);

  log('starting the upstreams');
  up = await U.startUpstreams({ root: ROOT });
  onCleanup('upstreams', () => up.stop());
  log(`building/pushing images (big layer ${CFG.bigMb} MiB; cached between runs)`);
  const images = await U.makeImages({ root: ROOT, bigMb: CFG.bigMb });
  const many = await pushMany(up.plain, CFG.manyBlobs);
  const huge = await pushRandom(up.plain, 'library/huge', CFG.hugeMb);
  const stored = CFG.storedMb === CFG.hugeMb ? huge : await pushRandom(up.plain, 'library/large', CFG.storedMb);
  const big = images.bigLayer;

  defineSystems();
  onCleanup('distribution proxies', async () => { await proxyHub?.stop(); await proxyPlain?.stop(); });
  onCleanup('mirror', stopMirror);
  proxyPlain = await startProxy('proxy-plain', PROXY_PORTS.plain, up.plain, null);
  front = await startTlsRejectingFront({ port: FRONT_PORT, targetPort: MIRROR_PORT });
  onCleanup('tls front', () => front.stop());
  await directToken();
  const timings = {};
  const phase = async (name, f) => { const t0 = Date.now(); log(`== ${name}`); await f(); timings[name] = (Date.now() - t0) / 1000; };

  await phase('manifest latency', async () => { for (let rep = 0; rep < CFG.reps; rep++) await measureManifests(rep); });
  await phase('big blob', async () => { for (let rep = 0; rep < CFG.reps; rep++) await measureBigBlob(rep, big); });
  await phase('concurrent blobs', async () => { for (let rep = 0; rep < CFG.reps; rep++) await measureMany(rep, many); });
  await phase('skopeo pull', async () => { for (let rep = 0; rep < CFG.reps; rep++) await measurePull(rep); });
  await phase('memory', () => measureMemory(big, huge, stored));
  await phase('wasm', async () => measureWasm());
  await phase('wrk', () => measureWrk(images));

  const rows = buildRows(big, huge, stored, many.length);
  const table = renderTable(rows);
  const targets = evaluateTargets(rows, big);
  const mirrorStarts = mirrorN;
  const out = {
    mode: CFG.mode, config: CFG, machine: { ...mach, loadAvgAtEnd: os.loadavg().map((x) => +x.toFixed(2)) }, durationSecs: (Date.now() - T0) / 1000, phaseSecs: timings,
    ports: { upstream: U.PORTS, proxy: PROXY_PORTS, mirror: MIRROR_PORT, front: FRONT_PORT },
    data: { manifest: `${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`, manifestDigest: images[`${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`].digest, pull: PULL_REF, bigLayer: big, huge, stored, many: { repo: 'library/many', count: many.length, size: 1 << 20 } },
    rows: rows.map(({ key, label, unit, better, values, cells, warm, cold }) => ({ key, label, unit, better, warm, cold, values, cells, vsDirect: ratio(values.mirror, values.direct), vsProxy: ratio(values.mirror, values.proxy) })),
    targets, anomalies, raw: results, mirrorInstances: mirrorStarts, table,
  };
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  const suffix = SMOKE ? '-smoke' : '';
  for (const f of [`${stamp}${suffix}.json`, `latest${suffix}.json`]) fs.writeFileSync(path.join(HERE, 'results', f), JSON.stringify(out, null, 2) + '\n');
  fs.writeFileSync(path.join(HERE, 'results', `latest${suffix}.md`), table + '\n');
  console.log(table);
  console.log('\nTargets:');
  for (const t of targets) console.log(`- ${t.met ? 'met   ' : 'MISSED'} ${t.target}: ${t.detail}`);
  if (anomalies.length) { console.log('\nNotes:'); for (const a of anomalies) console.log(`- ${a}`); }
  console.log(`\n(${CFG.mode} run, ${out.durationSecs.toFixed(0)} s; results in bench/results/${stamp}${suffix}.json)`);
}

let code = 0;
const watchdog = setTimeout(() => {
  log(`deadline of ${CFG.deadlineMs / 1000} s passed: stopping everything`);
  cleanupAll().finally(() => process.exit(3));
}, CFG.deadlineMs);
try {
  await main();
} catch (e) {
  console.error(e?.stack ?? e);
  code = 1;
} finally {
  await cleanupAll();
  clearTimeout(watchdog);
}
process.exit(code);
