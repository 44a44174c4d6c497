// Every sample of the run, filled by the measure/ modules, read by rows.mjs, report.mjs and
// targets.mjs, and written whole to the JSON as `raw`.
import { SYSTEMS } from './config.mjs';
import { pct } from './tools.mjs';

export const results = { manifest: {}, blob: {}, many: {}, pull: {}, memory: {}, wasm: {}, wrk: {}, burst: {}, burstMemory: {}, followers: {},
  fleet: [], cpu: [], coldStart: [], wan: [] };
for (const k of ['manifest', 'blob', 'many', 'pull', 'burst', 'burstMemory']) for (const s of SYSTEMS) results[k][s] = [];
for (const s of SYSTEMS) results.followers[s] = null;
// the control workers' samples (lib/controls.mjs), beside the systems' in the same families
results.manifest.pass = []; results.manifest.cache = []; results.manifest.store = []; results.manifest.noStore = [];
results.blob.pass = []; results.blob.cache = []; results.blob.r2 = []; results.blob.local = [];
results.many.r2 = []; results.pull.pass = []; results.pull.r2 = []; results.pull.local = []; results.pull.noStore = [];
results.followers.branch = null;

/** The phases that ran (`--only` leaves some out: their rows are absent, their targets skipped). */
export const ran = new Set();

/** p50/p99 over the warm requests of every repetition together. */
export function pooled(name, method, q, key = null) {
  const all = results.manifest[name].flatMap((r) => (key ? r[method].warm[key] : r[method].warm)?.times ?? []);
  return all.length ? pct(all, q) : null;
}
