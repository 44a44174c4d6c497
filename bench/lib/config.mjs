// The benchmark's command line (`--smoke`, `--reps N`, `--big-mb N`), the configuration it makes,
// and the fixed ports, paths and images every part of the run shares.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'); // bench/
export const REPO = path.resolve(HERE, '..');
export const ROOT = '/tmp/em-bench';
export const PROXY_PORTS = { plain: 16200, hub: 16201 };
export const MIRROR_PORT = 19787;
export const WRK_CONTROL_PORT = 19789; // the constant-answer worker beside the wrk row
export const FRONT_PORT = 19788; // TLS-rejecting front of the mirror, for skopeo (see clients.mjs)

const USAGE = 'usage: node bench/run.mjs [--smoke] [--reps N] [--big-mb N]';
const argv = process.argv.slice(2);
for (const a of argv) {
  if (!['--smoke', '--reps', '--big-mb'].includes(a) && !/^\d+$/.test(a)) {
    console.error(`unknown argument ${a}\n${USAGE}`);
    process.exit(2);
  }
}
export const SMOKE = argv.includes('--smoke');
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
  wrk: { threads: 2, conns: 32, secs: SMOKE ? 2 : 10 },
  shortTagTtl: 3, // seconds, for the "re-pull after the tag TTL" row
  // concurrent cold pulls (measure/bursts.mjs): N clients pull one fresh image at once (manifest by
  // tag, then config + layers), for each N; the last N is the one the memory rows and the target use
  burst: {
    ns: SMOKE ? [1, 4, 8] : [1, 16, 64],
    layers: 3,
    layerBytes: SMOKE ? 256 * 1024 : 4 * 2 ** 20,
    followers: 8, // clients that GET the big layer (CFG.bigMb) cold at once
  },
  deadlineMs: SMOKE ? 240_000 : 20 * 60_000,
};

export const MANIFEST_REF = { repo: 'library/alpine', tag: 'latest' };
export const PULL_REF = 'library/multi:latest';
export const manifestPath = `/v2/${MANIFEST_REF.repo}/manifests/${MANIFEST_REF.tag}`;
/** Warm manifest requests per series and repetition: CFG.latencyN over all repetitions together. */
export const perRepN = () => Math.ceil(CFG.latencyN / CFG.reps);

/** The columns of the table, in order: sys[name] in systems.mjs, results[*][name] in results.mjs. */
export const SYSTEMS = ['direct', 'proxy', 'mirror'];
