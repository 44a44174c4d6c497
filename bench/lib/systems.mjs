// The systems under test besides the upstream itself: edgemirror (the pinned build in workerd through
// Miniflare), CNCF distribution's pull-through proxies, and the table `sys` that puts the three
// columns (direct, proxy, mirror) behind one interface.
import fs from 'node:fs';
import path from 'node:path';
import { daemon, waitPort, sleep, within } from '../../tests/e2e/lib/proc.mjs';
import { request } from '../../tests/e2e/lib/http.mjs';
import { rssKb, findWorkerd } from '../../tests/e2e/lib/procstats.mjs';
import { CFG, HERE, ROOT, PROXY_PORTS, MIRROR_PORT, FRONT_PORT, CONTROL_PORTS } from './config.mjs';
import { anomaly } from './log.mjs';
import { onCleanup, workerdPids } from './cleanup.mjs';
import { LOCAL_DEFAULTS } from '../../scripts/start.mjs';
import { startPinnedMirror } from './build.mjs';
import { U, startTlsRejectingFront } from './harness.mjs';
import { up, directToken } from './upstream.mjs';
import { hr, waitFor } from './tools.mjs';

/** direct | proxy | mirror -> { label, base, headers(), fresh(), settle() } */
export const sys = {};
export let mirror = null; // the running mirror: startMirror's handle, plus { pid (workerd's), startMs }
export let proxyHub = null; // distribution's proxy of the hub (restarted empty for cold rows)
let proxyPlain = null; // distribution's proxy of the plain registry (the wrk row)
let mirrorN = 0, mirrorStored = [], lastStoreAt = 0, mirrorErrors = 0, proxyN = 0;

/** How many mirror instances the run started. */
export const mirrorStarts = () => mirrorN;

export function mirrorTable() {
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

/** Another instance of the pinned build on `port` (the run's upstream table, plus `vars` and
 *  startMirror `options`), with its workerd process. -> { base, pid, stop } */
export async function secondMirror(port, { vars = {}, ...options } = {}) {
  const before = new Set(findWorkerd());
  const m = await startPinnedMirror({ port, vars: { UPSTREAMS: mirrorTable(), ...vars }, ...options, onLog: options.onLog ?? (() => {}) });
  return { base: `http://127.0.0.1:${port}`, pid: findWorkerd().filter((p) => !before.has(p)).at(-1), stop: () => m.stop() };
}

/** edgemirror as `npm start` runs it (scripts/start.mjs): its own variable defaults and its
 *  bindings (R2 on disk, the KV config store, the coordinator), with a new, empty state directory
 *  `instances/<label>`, on the local default's port. */
export async function localDefaultMirror(label, { onLog } = {}) {
  const state = path.join(ROOT, 'instances', label);
  fs.rmSync(state, { recursive: true, force: true });
  return secondMirror(CONTROL_PORTS.local, { vars: { ...LOCAL_DEFAULTS }, r2: true, kv: true, coordinator: true, state, onLog });
}

/** edgemirror with no store: no R2 bucket, Miniflare's Cache API a no-op (a lookup misses, a
 *  write is accepted and dropped) and no manifest kept in the isolate (`MANIFEST_MEMORY=0`), on its
 *  own port. It does all of a miss's work but wait for a store, so beside the pass-through control
 *  it tells what the local stores cost from what edgemirror's own path costs. */
export function noStoreMirror() {
  return secondMirror(CONTROL_PORTS.noStore, { vars: { MANIFEST_MEMORY: '0' }, r2: false, cache: false });
}

/** A new mirror with a new, empty state directory (Cache API, R2). */
export async function freshMirror() {
  await stopMirror();
  const state = path.join(ROOT, 'instances', `mirror-${++mirrorN}`);
  fs.rmSync(state, { recursive: true, force: true });
  mirrorStored = [];
  lastStoreAt = Date.now();
  const before = new Set(findWorkerd()); // the control workers' processes are children of this node too
  const t0 = hr();
  mirror = await within(startPinnedMirror({ port: MIRROR_PORT, vars: { UPSTREAMS: mirrorTable() }, state, r2: true, onLog: onMirrorLog }), 60_000);
  if (mirror === 'timeout') { mirror = null; throw new Error('the mirror did not start within 60 s'); }
  mirror.startMs = hr() - t0;
  // the first answer, timed from the start (the cold-start row): before anything else is done
  await request(`http://127.0.0.1:${MIRROR_PORT}/v2/`, { timeout: 30_000 });
  mirror.firstAnswerMs = hr() - t0;
  const pids = findWorkerd().filter((p) => !before.has(p));
  if (pids.length !== 1) anomaly(`expected one new workerd child process, found ${JSON.stringify(pids)}`);
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
export async function freshProxyHub() {
  if (proxyHub) { const p = proxyHub; proxyHub = null; await p.stop(); }
  proxyHub = await startProxy('proxy-hub', PROXY_PORTS.hub, up.hub, U.USER);
  return proxyHub;
}

/** Waits until the mirror has logged no store write for `quietMs` (its writes run after the response). */
export async function settleMirror({ minMs = 300, quietMs = 500, maxMs = 30_000 } = {}) {
  const t0 = Date.now();
  await sleep(minMs);
  while (Date.now() - lastStoreAt < quietMs && Date.now() - t0 < maxMs) await sleep(100);
}
/** Waits for the mirror's 'stored' (or failed) line of each blob digest. */
export async function waitBlobsStored(digests, timeout = 180_000) {
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

/** Defines `sys` and starts what runs the whole time: distribution's proxy of the plain registry
 *  and skopeo's TLS-rejecting front of the mirror. The upstreams must be running. */
export async function startSystems() {
  defineSystems();
  onCleanup('distribution proxies', async () => { await proxyHub?.stop(); await proxyPlain?.stop(); });
  onCleanup('mirror', stopMirror);
  proxyPlain = await startProxy('proxy-plain', PROXY_PORTS.plain, up.plain, null);
  const front = await startTlsRejectingFront({ port: FRONT_PORT, targetPort: MIRROR_PORT });
  onCleanup('tls front', () => front.stop());
  await directToken();
}

/** A system's request headers as curl -H arguments. */
export async function blobHeaders(name) {
  return Object.entries(await sys[name].headers()).map(([k, v]) => `${k}: ${v}`);
}

/** host:port that skopeo pulls from (edgemirror: through the TLS-rejecting front). */
export const pullHost = (name) => (name === 'direct' ? `127.0.0.1:${U.PORTS.hub}`
  : name === 'proxy' ? `127.0.0.1:${PROXY_PORTS.hub}` : `127.0.0.1:${FRONT_PORT}`);
