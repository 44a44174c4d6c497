// The build the run measures, pinned at the start.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sleep } from '../../tests/e2e/lib/proc.mjs';
import { HERE, REPO } from './config.mjs';
import { log, anomalies, anomaly } from './log.mjs';

/** The built worker's fingerprint (shim, JS glue and wasm under `root`). */
const BUILD_FILES = ['build/worker/shim.mjs', 'build/index.js', 'build/index_bg.wasm'];
function buildFingerprint(root = REPO) {
  const h = crypto.createHash('sha256');
  for (const f of BUILD_FILES) h.update(fs.readFileSync(path.join(root, f)));
  return h.digest('hex').slice(0, 16);
}

export function assertBuilt() {
  if (!fs.existsSync(path.join(REPO, 'build', 'worker', 'shim.mjs')) || !fs.existsSync(path.join(REPO, 'build', 'index_bg.wasm'))) {
    throw new Error('build/worker/shim.mjs or build/index_bg.wasm is missing: run npm run build');
  }
}

/** The worker is read at every mirror start, and a cold row needs a fresh mirror, so a build made
 *  while the benchmark runs would mix two builds in one table. The run pins the build it starts
 *  with: a copy of build/ and of scripts/serve.mjs in bench/.pinned/, and startMirror is imported
 *  from that copy (so it runs the pinned build, with serve.mjs's own, current options; node still
 *  resolves miniflare from the repository's node_modules). Waits for a build in progress to end. */
export const PINNED = path.join(HERE, '.pinned');
export let pinned = null; // { fingerprint, wasmMtime }
let pinnedStartMirror = null, pinnedStartFleet = null; // scripts/serve.mjs's startMirror / startMirrorFleet, from the pinned copy
export async function pinBuild() {
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
        ({ startMirror: pinnedStartMirror, startMirrorFleet: pinnedStartFleet } = await import(pathToFileURL(path.join(PINNED, 'scripts', 'serve.mjs')).href));
        return pinned;
      }
    }
    if (Date.now() > until) throw new Error('build/ kept changing for 2 min: cannot pin a build');
    log('build/ is being written: waiting');
    await sleep(3000);
  }
}

/** scripts/serve.mjs's startMirror on the pinned build; notes (once) a rebuild since the pin. */
export function startPinnedMirror(options) {
  noteRebuild();
  return pinnedStartMirror(options);
}
/** scripts/serve.mjs's startMirrorFleet (two isolates in one workerd) on the pinned build. */
export function startPinnedFleet(options) {
  noteRebuild();
  return pinnedStartFleet(options);
}
function noteRebuild() {
  if (buildFingerprint() !== pinned.fingerprint && !anomalies.some((a) => a.startsWith('build/ changed'))) {
    anomaly(`build/ changed during the run (${pinned.fingerprint} -> ${buildFingerprint()}); the run keeps using the build it pinned at the start`);
  }
}
