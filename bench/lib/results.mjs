// Every sample of the run, filled by the measure/ modules, read by rows.mjs, report.mjs and
// targets.mjs, and written whole to the JSON as `raw`.
import { SYSTEMS } from './config.mjs';
import { pct } from './tools.mjs';

export const results = { manifest: {}, blob: {}, many: {}, pull: {}, memory: {}, wasm: {}, wrk: {}, burst: {}, burstMemory: {}, followers: {} };
for (const k of ['manifest', 'blob', 'many', 'pull', 'burst', 'burstMemory']) for (const s of SYSTEMS) results[k][s] = [];
for (const s of SYSTEMS) results.followers[s] = null;

/** p50/p99 over the warm requests of every repetition together. */
export function pooled(name, method, q, key = null) {
  const all = results.manifest[name].flatMap((r) => (key ? r[method].warm[key] : r[method].warm)?.times ?? []);
  return all.length ? pct(all, q) : null;
}
