// The control workers (bench/controls/*.js, issue 17): small JS workers written for the benchmark,
// each run by a Miniflare of its own (so each has its own workerd process, whose CPU and RSS are its
// own) with the options scripts/serve.mjs gives the mirror (compatibility date, Cache API on, state
// persisted under a directory). Every edgemirror row is compared with the control that does the same
// job in the plainest way: pass-through (no cache), a Cache API hit, an R2 hit or fill.
import fs from 'node:fs';
import path from 'node:path';
import { within, run } from '../../tests/e2e/lib/proc.mjs';
import { rssKb, findWorkerd } from '../../tests/e2e/lib/procstats.mjs';
import { HERE, ROOT, CONTROL_PORTS } from './config.mjs';
import { anomaly } from './log.mjs';
import { onCleanup, workerdPids } from './cleanup.mjs';
import { startTlsRejectingFront } from './harness.mjs';
import { delayedOutbound } from '../../scripts/serve.mjs';
import { up } from './upstream.mjs';
import { hr, waitFor } from './tools.mjs';

/** name -> what it is. `tag` marks the control's cell in the table. */
export const CONTROLS = {
  pass: { tag: 'P', label: 'pass-through proxy (no cache)', script: 'pass.js', front: CONTROL_PORTS.passFront },
  cache: { tag: 'C', label: 'Cache API cache', script: 'store.js' },
  r2: { tag: 'R', label: 'R2 cache (blobs in R2, manifests in the Cache API)', script: 'store.js', r2: true, front: CONTROL_PORTS.r2Front },
  log: { tag: 'L', label: 'a worker answering every request itself with one log line', script: 'log.js' },
  rust: { tag: 'W', label: 'the same as L, the smallest workers-rs worker (Rust → wasm, built as edgemirror is)', script: 'log-rs/build/worker/shim.mjs', root: 'log-rs' },
  branch: { tag: 'B', label: 'followers get a tee() branch of the leader\'s stream (Durable Object)', script: 'branch.js', r2: true, flight: true },
};

/** name -> the running control: { name, tag, label, base, pid, mf, startMs, firstAnswerMs? } */
export const ctl = {};
let starts = 0;
const stored = {}; // name -> keys its "stored" lines named since its start
const fronts = {};

function onLog(name) {
  return (line) => {
    if (!line.includes('"stored"') && !line.includes('store write failed')) return;
    try {
      const e = JSON.parse(line.slice(line.indexOf('{')));
      if (e.msg === 'stored') stored[name].push(e.key);
      else anomaly(`control ${name}: ${e.msg} ${e.key}: ${e.error}`);
    } catch { /* not ours */ }
  };
}

/** Miniflare options of a control, on its port, with a new state directory. */
function options(name, port) {
  const c = CONTROLS[name];
  const state = path.join(ROOT, 'instances', `control-${name}-${++starts}`);
  fs.rmSync(state, { recursive: true, force: true });
  return {
    scriptPath: path.join(HERE, 'controls', c.script),
    // A built worker imports its glue and wasm from the directory above its shim.
    ...(c.root ? { modulesRoot: path.join(HERE, 'controls', c.root) } : {}),
    modules: true,
    modulesRules: [{ type: 'ESModule', include: ['**/*.js', '**/*.mjs'] }, { type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-04-01',
    bindings: { UPSTREAM: up.hub },
    cache: true,
    r2Buckets: c.r2 ? ['BLOBS'] : [],
    durableObjects: c.flight ? { FLIGHT: 'Flight' } : {},
    cachePersist: path.join(state, 'cache'),
    r2Persist: path.join(state, 'r2'),
    durableObjectsPersist: path.join(state, 'do'),
    host: '127.0.0.1',
    port,
    handleRuntimeStdio(stdout, stderr) {
      const handle = onLog(name);
      for (const s of [stdout, stderr]) {
        let buf = '';
        s.on('data', (chunk) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) { handle(buf.slice(0, i)); buf = buf.slice(i + 1); }
        });
      }
    },
  };
}

let registered = false;
/** Stops control `name` if it runs. */
export async function stopControl(name) {
  const c = ctl[name];
  if (!c) return;
  delete ctl[name];
  await c.mf.dispose();
  if (c.pid && rssKb(c.pid) == null) workerdPids.delete(c.pid);
}

/** A fresh instance of control `name` (empty state), on its own port (or `port`): ready, and with its
 *  first answer (`GET /v2/`) timed from the start. -> ctl[name] */
export async function freshControl(name, { port = CONTROL_PORTS[name], outboundDelayMs = 0 } = {}) {
  if (!registered) {
    registered = true;
    onCleanup('control workers', async () => {
      for (const n of Object.keys(ctl)) await stopControl(n);
      for (const f of Object.values(fronts)) await f.stop();
    });
  }
  await stopControl(name);
  const { Miniflare } = await import('miniflare');
  const before = new Set(findWorkerd());
  const t0 = hr();
  const mf = new Miniflare({ ...options(name, port), ...(outboundDelayMs > 0 ? { outboundService: delayedOutbound(outboundDelayMs) } : {}) });
  const ready = await within(mf.ready, 60_000);
  if (ready === 'timeout') { await mf.dispose(); throw new Error(`control ${name} did not start within 60 s`); }
  const startMs = hr() - t0;
  const base = `http://127.0.0.1:${port}`;
  const r = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(30_000) });
  await r.arrayBuffer();
  const firstAnswerMs = hr() - t0;
  const pids = findWorkerd().filter((p) => !before.has(p));
  if (pids.length !== 1) anomaly(`control ${name}: expected one new workerd process, found ${JSON.stringify(pids)}`);
  for (const p of pids) workerdPids.add(p);
  stored[name] = [];
  const c = CONTROLS[name];
  ctl[name] = { name, tag: c.tag, label: c.label, base, pid: pids.at(-1), mf, startMs, firstAnswerMs };
  if (c.front && !fronts[name]) fronts[name] = await startTlsRejectingFront({ port: c.front, targetPort: port });
  return ctl[name];
}

/** Builds control W (`bench/controls/log-rs/build.sh`: worker-build, as edgemirror is built); false,
 *  with an anomaly, when it cannot. */
export async function buildRustControl() {
  const r = await run('bash', [path.join(HERE, 'controls', 'log-rs', 'build.sh')], { timeout: 600_000 });
  if (r.code !== 0) anomaly(`control W did not build (${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-400)}`);
  return r.code === 0;
}

/** A pull token for `repos` from the pass-through control's /v2/auth (which forwards to the upstream's realm). */
export async function passToken(repos) {
  const q = new URLSearchParams();
  for (const r of repos) q.append('scope', `repository:${r}:pull`);
  const r = await fetch(`${ctl.pass.base}/v2/auth?${q}`, { signal: AbortSignal.timeout(30_000) });
  if (r.status !== 200) throw new Error(`pass-through control /v2/auth: ${r.status} ${await r.text()}`);
  return (await r.json()).token;
}

/** host:port that skopeo pulls from for a control (through its TLS-rejecting front). */
export const controlPullHost = (name) => `127.0.0.1:${CONTROLS[name].front}`;

/** Waits until control `name` logged the store write of every key in `keys` (a digest, or a path). */
export async function waitControlStored(name, keys, timeout = 180_000) {
  const ok = await waitFor(() => keys.every((k) => stored[name]?.some((x) => x.includes(k))), { timeout, interval: 50 });
  if (!ok) anomaly(`control ${name}: not every blob was stored within ${timeout / 1000} s`);
  return !!ok;
}
