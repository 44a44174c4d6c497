// The benchmark's command line (`--smoke`, `--reps N`, `--big-mb N`, `--only <phase,...>`), the
// configuration it makes, and the fixed ports, paths and images every part of the run shares.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'); // bench/
export const REPO = path.resolve(HERE, '..');
export const ROOT = '/tmp/em-bench';
export const PROXY_PORTS = { plain: 16200, hub: 16201 };
export const MIRROR_PORT = 19787;
export const WRK_CONTROL_PORT = 19789; // the constant-answer worker beside the wrk row
export const FRONT_PORT = 19788; // TLS-rejecting front of the mirror, for skopeo (see clients.mjs)
// the control workers (bench/controls/*.js, lib/controls.mjs), each in a Miniflare of its own
export const CONTROL_PORTS = { pass: 19790, passFront: 19791, cache: 19792, r2: 19793, r2Front: 19794, log: 19795, branch: 19796, fleet: 19797, wan: 19798, store: 19799, rust: 19800, local: 19801, localFront: 19802, noStore: 19803, noStoreFront: 19804 };

/** The run's phases, in order: `--only` picks some of them (rows of the others are absent). */
export const PHASES = ['manifests', 'blobs', 'many', 'pulls', 'bursts', 'followers', 'fleet', 'memory', 'cpu', 'wasm', 'wrk', 'wan'];

const USAGE = `usage: node bench/run.mjs [--smoke] [--reps N] [--big-mb N] [--only <phase,...>]\n  phases: ${PHASES.join(', ')}`;
const argv = process.argv.slice(2);
for (const [i, a] of argv.entries()) {
  if (argv[i - 1] === '--only') continue;
  if (!['--smoke', '--reps', '--big-mb', '--only'].includes(a) && !/^\d+$/.test(a)) {
    console.error(`unknown argument ${a}\n${USAGE}`);
    process.exit(2);
  }
}
export const SMOKE = argv.includes('--smoke');
/** The phases this run measures (all unless --only). */
export const ONLY = (() => {
  const i = argv.indexOf('--only');
  if (i < 0) return null;
  const names = (argv[i + 1] ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const bad = names.filter((n) => !PHASES.includes(n));
  if (!names.length || bad.length) { console.error(`--only: unknown phase ${bad.join(', ') || '(none given)'}\n${USAGE}`); process.exit(2); }
  return names;
})();
export const runs = (phase) => !ONLY || ONLY.includes(phase);
function numArg(flag, dflt) {
  const i = argv.indexOf(flag);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) { console.error(`${flag} needs a positive whole number`); process.exit(2); }
  return v;
}
export const CFG = {
  mode: SMOKE ? 'smoke' : 'full',
  reps: numArg('--reps', SMOKE ? 1 : 3),
  bigMb: numArg('--big-mb', SMOKE ? 10 : 200),
  latencyN: SMOKE ? 20 : 500, // warm requests per series, pooled over the repetitions
  manyBlobs: SMOKE ? 8 : 64, // concurrent 1 MB blob GETs
  hugeMb: SMOKE ? 50 : 1024, // the layer passed through for the memory rows
  // the layer streamed cold and stored for the memory rows: at most the mirror's 512 MiB store limit
  // (policy.rs MAX_STORED_BLOB); in smoke mode the same blob as hugeMb
  storedMb: SMOKE ? 50 : 500,
  wrk: { threads: 2, conns: 32, secs: SMOKE ? 1 : 8 },
  shortTagTtl: 3, // seconds, for the "re-pull after the tag TTL" row
  // the WAN rows (measure/wan.mjs): every upstream exchange of the worker held this long, and the
  // client this far (round trip) from the worker
  wan: { upstreamMs: 30, clientMs: 15 },
  // concurrent cold pulls (measure/bursts.mjs): N clients pull one fresh image at once (manifest by
  // tag, then config + layers), for each N; the last N is the one the memory rows and the target use
  burst: {
    ns: SMOKE ? [1, 4, 8] : [1, 16, 64],
    layers: 3,
    layerBytes: SMOKE ? 256 * 1024 : 4 * 2 ** 20,
    followers: 8, // clients that GET the big layer (CFG.bigMb) cold at once
    // a second series with small layers, where bandwidth does not dominate (full runs only)
    smallLayerBytes: SMOKE ? null : 128 * 1024,
    fleetN: SMOKE ? 8 : 64, // clients of the two-isolate burst (half through each isolate)
  },
  // CPU per request (measure/cpu.mjs): sequential keep-alive requests per block, blocks per system
  // (interleaved with the control's); cold starts per system
  cpu: { requests: SMOKE ? 200 : 1000, blocks: SMOKE ? 1 : 3, coldStarts: SMOKE ? 1 : 3 },
  wrkRuns: SMOKE ? 1 : 4, // wrk runs per system (the tail differs between runs: every run's p99 is kept)
  deadlineMs: SMOKE ? 240_000 : 20 * 60_000,
};

export const MANIFEST_REF = { repo: 'library/alpine', tag: 'latest' };
export const PULL_REF = 'library/multi:latest';
export const manifestPath = `/v2/${MANIFEST_REF.repo}/manifests/${MANIFEST_REF.tag}`;
/** A second repository's manifest, cold on an instance that answered `manifestPath` already. */
export const SECOND_REF = { repo: 'library/multi', tag: 'latest' };
export const secondPath = `/v2/${SECOND_REF.repo}/manifests/${SECOND_REF.tag}`;
/** Warm manifest requests per series and repetition: CFG.latencyN over all repetitions together. */
export const perRepN = () => Math.ceil(CFG.latencyN / CFG.reps);

/** The columns of the table, in order: sys[name] in systems.mjs, results[*][name] in results.mjs. */
export const SYSTEMS = ['direct', 'proxy', 'mirror'];
