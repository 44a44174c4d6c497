// CPU per request and the cold start (issue 17): the workerd process's CPU time (utime + stime from
// /proc/<pid>/stat) over a block of sequential requests, edgemirror's and the matching control's
// blocks interleaved (`GET /v2/` vs a one-log-line worker, a manifest hit vs the Cache API control's,
// a 1 MiB blob hit vs the R2 control's; a manifest hit from the store, MANIFEST_MEMORY=0; `GET /v2/`
// of the smallest workers-rs worker, W); and a fresh instance's first answer, vs the smallest JS
// worker and W.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { request } from '../../../tests/e2e/lib/http.mjs';
import { sleep } from '../../../tests/e2e/lib/proc.mjs';
import { CFG, CONTROL_PORTS, manifestPath } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { U } from '../harness.mjs';
import { sys, mirror, freshMirror, settleMirror, waitBlobsStored, secondMirror } from '../systems.mjs';
import { freshControl, stopControl, waitControlStored, ctl, buildRustControl } from '../controls.mjs';
import { results } from '../results.mjs';
import { hr, newAgent, median } from '../tools.mjs';

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100);

/** The process's user + system CPU time so far, ms (all its threads). */
function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** Requests per system in the unrecorded pass before the blocks. */
const WARM_PASS = 300;

/** Whether control W built (in the CPU phase), for the cold start's rows. */
let rustBuilt = false;

/** `n` sequential requests on one keep-alive connection (after 10 unrecorded), the process's CPU over them. */
async function block(base, path, pid, n, check) {
  const agent = newAgent();
  try {
    const headers = { accept: U.ACCEPT_ALL };
    for (let i = 0; i < 10; i++) await request(`${base}${path}`, { headers, agent });
    await sleep(200); // let the runtime finish what the warm-up left (log lines, waitUntil)
    const c0 = cpuMs(pid), t0 = hr();
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const r = await request(`${base}${path}`, { headers, agent });
      if (!check(r)) bad++;
    }
    const wallMs = hr() - t0;
    await sleep(100); // work the requests left behind (log lines) is theirs
    const cpu = cpuMs(pid) - c0;
    if (bad) anomaly(`CPU block ${base}${path}: ${bad} of ${n} answers not as expected`);
    return { n, cpuMs: cpu, perReqMs: cpu / n, wallMs };
  } finally { agent.destroy(); }
}

/** `blob`: a 1 MiB blob of library/many, for the warm blob row (an R2 hit, vs the R2 control's). */
export async function measureCpu(blob) {
  const n = CFG.cpu.requests, nBlob = Math.ceil(n / 5);
  const blobPath = `/v2/library/many/blobs/${blob.digest}`;
  await freshMirror();
  const warm = await request(`${sys.mirror.base}${manifestPath}`, { headers: { accept: U.ACCEPT_ALL } });
  if (warm.status !== 200) throw new Error(`CPU phase: mirror manifest ${warm.status}`);
  await request(`${sys.mirror.base}${blobPath}`);
  await waitBlobsStored([blob.digest]);
  await settleMirror();
  await freshControl('log');
  rustBuilt = await buildRustControl();
  const rust = rustBuilt ? await freshControl('rust') : null;
  const cache = await freshControl('cache');
  await request(`${cache.base}${manifestPath}`, { headers: { accept: U.ACCEPT_ALL } });
  const r2 = await freshControl('r2');
  await request(`${r2.base}${blobPath}`);
  await waitControlStored('r2', [blob.digest]);
  await sleep(300);
  // A second instance with RATELIMIT bound (the default limit): what the pull limit adds to a
  // request that takes no pull.
  const rl = await secondMirror(CONTROL_PORTS.wan, { rateLimit: true });
  // A third with MANIFEST_MEMORY=0: a manifest hit from the store, as the Cache API control's.
  const st = await secondMirror(CONTROL_PORTS.store, { vars: { MANIFEST_MEMORY: '0' } });
  if ((await request(`${st.base}${manifestPath}`, { headers: { accept: U.ACCEPT_ALL } })).status !== 200) throw new Error('CPU phase: store-only mirror manifest');
  await sleep(300);
  const hit = (r) => r.status === 200 && /hit/.test(r.headers['cache-status'] ?? '');
  const v2 = (r) => r.status === 200 || r.status === 401;
  const plan = [
    ['v2', 'mirror', () => [sys.mirror.base, '/v2/', mirror.pid, v2]],
    ['v2', 'log', () => [ctl.log.base, '/v2/', ctl.log.pid, v2]],
    ...(rust ? [['v2', 'rust', () => [rust.base, '/v2/', rust.pid, v2]]] : []),
    ['v2_ratelimit', 'mirror', () => [rl.base, '/v2/', rl.pid, v2]],
    ['manifest', 'mirror', () => [sys.mirror.base, manifestPath, mirror.pid, hit]],
    ['manifest', 'cache', () => [ctl.cache.base, manifestPath, ctl.cache.pid, hit]],
    ['manifest_store', 'mirror', () => [st.base, manifestPath, st.pid, hit]],
    ['blob', 'mirror', () => [sys.mirror.base, blobPath, mirror.pid, hit, nBlob]],
    ['blob', 'r2', () => [ctl.r2.base, blobPath, ctl.r2.pid, hit, nBlob]],
  ];
  try {
    // One unrecorded pass first: V8 recompiles a worker's hot functions in the background after its
    // first requests, and that CPU would land in the first block of whichever system (a fresh
    // instance's first requests are the cold-start rows').
    for (const [, , args] of plan) {
      const [base, path, pid, check, count = n] = args();
      await block(base, path, pid, Math.min(count, WARM_PASS), check);
    }
    for (let b = 0; b < CFG.cpu.blocks; b++) {
      for (const [what, system, args] of (b % 2 ? [...plan].reverse() : plan)) {
        const [base, path, pid, check, count = n] = args();
        const r = await block(base, path, pid, count, check);
        results.cpu.push({ block: b, what, system, ...r });
        log(`CPU ${what} ${system} block ${b}: ${r.perReqMs.toFixed(3)} ms/request (${r.cpuMs.toFixed(0)} ms over ${count}, wall ${(r.wallMs / count).toFixed(2)} ms/request)`);
      }
    }
  } finally { await rl.stop(); await st.stop(); }
  for (const c of ['log', 'rust', 'cache', 'r2']) await stopControl(c);
}

/** A fresh instance's first answer to `GET /v2/`, from the call that starts it: edgemirror (the
 *  pinned build through scripts/serve.mjs) and the one-log-line control, in turn. */
export async function measureColdStart() {
  // W beside L: what any Rust → wasm worker's first request costs in this runtime, against
  // what edgemirror's own code adds (the first run of more code: V8 compiles a wasm function
  // when it is first called).
  const systems = ['mirror', 'log', ...(rustBuilt ? ['rust'] : [])];
  for (let i = 0; i < CFG.cpu.coldStarts; i++) {
    for (const system of i % 2 ? [...systems].reverse() : systems) {
      const c = system === 'mirror' ? await freshMirror() : await freshControl(system);
      results.coldStart.push({ i, system, startMs: c.startMs, firstAnswerMs: c.firstAnswerMs });
      if (system !== 'mirror') await stopControl(system);
    }
  }
  const m = (s, f) => median(results.coldStart.filter((x) => x.system === s).map(f))?.toFixed(0);
  log(`cold start, first answer (ready): edgemirror ${m('mirror', (x) => x.firstAnswerMs)} (${m('mirror', (x) => x.startMs)}) ms, ` +
    `log-line control ${m('log', (x) => x.firstAnswerMs)} (${m('log', (x) => x.startMs)}) ms` +
    (rustBuilt ? `, W ${m('rust', (x) => x.firstAnswerMs)} (${m('rust', (x) => x.startMs)}) ms` : ''));
}
