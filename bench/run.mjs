#!/usr/bin/env node
// edgemirror benchmark: the same requests against the upstream directly, against CNCF distribution's
// own pull-through cache (`proxy: remoteurl`) and against edgemirror (the built worker in workerd
// through Miniflare, with R2 bound), all on 127.0.0.1. See bench/README.md for what each row means.
//
//   node bench/run.mjs [--smoke] [--reps N] [--big-mb N] [--only <phase,...>]
//
// Prints one markdown table on stdout (progress goes to stderr) and writes the full results with the
// machine's description to bench/results/<ISO time>.json and bench/results/latest.json (a --smoke run
// writes <ISO time>-smoke.json and latest-smoke.json, so it never replaces the full run's results).
// Every server and subprocess it starts is stopped at the end, on error, on Ctrl-C and at a deadline.
//
// This file is the order of the run; the parts live in bench/lib/: config.mjs (flags, CFG, ports),
// harness.mjs (the e2e upstreams, moved by a port offset), build.mjs (the pinned build),
// upstream.mjs / systems.mjs (the three systems), measure/*.mjs (one family of rows each),
// rows.mjs, targets.mjs and report.mjs (the table, the targets, the JSON).
import fs from 'node:fs';
import path from 'node:path';
import { assertPortFree } from '../tests/e2e/lib/proc.mjs';
import { CFG, ROOT, PROXY_PORTS, MIRROR_PORT, FRONT_PORT, WRK_CONTROL_PORT, CONTROL_PORTS, ONLY, runs } from './lib/config.mjs';
import { log } from './lib/log.mjs';
import { onCleanup, cleanupAll, guardProcess, startWatchdog } from './lib/cleanup.mjs';
import { U } from './lib/harness.mjs';
import { assertBuilt, pinBuild, PINNED } from './lib/build.mjs';
import { machine } from './lib/machine.mjs';
import { pushMany, pushRandom } from './lib/data.mjs';
import { startUpstreams } from './lib/upstream.mjs';
import { startSystems } from './lib/systems.mjs';
import { measureManifests } from './lib/measure/manifests.mjs';
import { measureBigBlob, measureMany } from './lib/measure/blobs.mjs';
import { measurePull } from './lib/measure/pulls.mjs';
import { measureBursts, measureFollowers } from './lib/measure/bursts.mjs';
import { measureFleet } from './lib/measure/fleet.mjs';
import { measureCpu, measureColdStart } from './lib/measure/cpu.mjs';
import { measureMemory } from './lib/measure/memory.mjs';
import { measureWasm } from './lib/measure/wasm.mjs';
import { measureWrk } from './lib/measure/wrk.mjs';
import { measureWan } from './lib/measure/wan.mjs';
import { buildRows } from './lib/rows.mjs';
import { evaluateTargets } from './lib/targets.mjs';
import { renderTable, writeResults } from './lib/report.mjs';
import { ran } from './lib/results.mjs';

guardProcess();

/** Work directories, free ports, the machine's description and the pinned build. -> machine */
async function prepare() {
  assertBuilt();
  for (const d of ['logs', 'conf', 'data']) fs.mkdirSync(path.join(ROOT, d), { recursive: true });
  const removeInstances = () => {
    fs.rmSync(path.join(ROOT, 'instances'), { recursive: true, force: true });
    fs.rmSync(path.join(ROOT, 'pulls'), { recursive: true, force: true });
  };
  removeInstances();
  onCleanup('instance dirs', removeInstances);
  for (const p of [...Object.values(PROXY_PORTS), MIRROR_PORT, FRONT_PORT, WRK_CONTROL_PORT, ...Object.values(CONTROL_PORTS)]) await assertPortFree(p);
  const mach = await machine();
  onCleanup('pinned build', () => fs.rmSync(PINNED, { recursive: true, force: true }));
  mach.build = await pinBuild();
  log(`pinned build ${mach.build.fingerprint} (index_bg.wasm of ${mach.build.wasmMtime})`);
  return mach;
}

/** The upstreams with the harness's images and the benchmark's own blobs. */
async function startData() {
  log('starting the upstreams');
  const up = await startUpstreams();
  log(`building/pushing images (big layer ${CFG.bigMb} MiB; cached between runs)`);
  const images = await U.makeImages({ root: ROOT, bigMb: CFG.bigMb });
  const many = await pushMany(up.plain, CFG.manyBlobs);
  const huge = await pushRandom(up.plain, 'library/huge', CFG.hugeMb);
  const stored = CFG.storedMb === CFG.hugeMb ? huge : await pushRandom(up.plain, 'library/large', CFG.storedMb);
  return { images, data: { big: images.bigLayer, huge, stored, many } };
}

async function main() {
  if (ONLY) log(`--only ${ONLY.join(',')}: the other phases' rows are absent and their targets skipped`);
  log(`mode ${CFG.mode}: reps ${CFG.reps}, big layer ${CFG.bigMb} MiB, ${CFG.latencyN} warm requests per series, ` +
    `${CFG.manyBlobs} concurrent blobs, ${CFG.hugeMb} MiB for the memory rows, concurrent cold pulls N = ${CFG.burst.ns.join(', ')}`);
  const mach = await prepare();
  const { images, data } = await startData();
  const { big, huge, stored, many } = data;
  await startSystems();

  const timings = {};
  // each phase: its key (for --only), what it is called in the log, what it does
  const phase = async (key, name, f) => {
    if (!runs(key)) return;
    const t0 = Date.now();
    log(`== ${name}`);
    await f();
    timings[name] = (Date.now() - t0) / 1000;
    ran.add(key);
  };
  const reps = async (f) => { for (let rep = 0; rep < CFG.reps; rep++) await f(rep); };
  await phase('manifests', 'manifest latency', () => reps(measureManifests));
  await phase('blobs', 'big blob', () => reps((rep) => measureBigBlob(rep, big)));
  await phase('many', 'concurrent blobs', () => reps((rep) => measureMany(rep, many)));
  await phase('pulls', 'skopeo pull', () => reps(measurePull));
  await phase('bursts', 'concurrent cold pulls', () => reps(measureBursts));
  await phase('followers', 'followers of one cold layer', () => measureFollowers(big));
  await phase('fleet', 'concurrent cold pulls over two isolates', () => measureFleet());
  await phase('memory', 'memory', () => measureMemory(big, huge, stored));
  await phase('cpu', 'CPU per request and cold start', async () => { await measureCpu(many[0]); await measureColdStart(); });
  await phase('wasm', 'wasm', async () => measureWasm());
  await phase('wrk', 'wrk', () => measureWrk(images));
  await phase('wan', 'first pull with the network in it', () => reps(measureWan));

  const rows = buildRows(big, huge, stored, many.length);
  const table = renderTable(rows);
  const targets = evaluateTargets(rows, big);
  writeResults({ mach, timings, images, data, rows, table, targets });
}

let code = 0;
const disarm = startWatchdog(CFG.deadlineMs);
try {
  await main();
} catch (e) {
  console.error(e?.stack ?? e);
  code = 1;
} finally {
  await cleanupAll();
  disarm();
}
process.exit(code);
