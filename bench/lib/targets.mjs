// The project's performance targets, checked against the rows: those against direct and
// distribution's proxy, issue 13's (concurrent pulls) and issue 17's (ratios to the control workers
// measured in the same run). A target whose rows are absent (`--only`) is skipped, not failed.
import { CFG } from './config.mjs';
import { results, ran } from './results.mjs';
import { median } from './tools.mjs';
import { fmtNum, ratio, upstreamCell, medianUpstream, burstMBps } from './rows.mjs';

const mib1 = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** -> [{ target, met: true | false | null (skipped), detail }] */
export function evaluateTargets(rows, big) {
  const by = Object.fromEntries(rows.map((r) => [r.key, r]));
  const v = (k, s) => by[k]?.values[s];
  const t = [];
  /** `needs`: the phases whose rows it reads; `f` -> [met, detail] */
  const add = (target, needs, f) => {
    if (!needs.every((p) => ran.has(p))) { t.push({ target, met: null, detail: `skipped: phase ${needs.filter((p) => !ran.has(p)).join(', ')} did not run` }); return; }
    const [met, detail] = f();
    t.push({ target, met: !!met, detail });
  };
  for (const m of ['head', 'get']) {
    for (const q of ['p50', 'p99']) {
      const k = `manifest_${m}_warm_${q}`;
      add(`warm manifest ${m.toUpperCase()} ${q} below direct`, ['manifests'], () => [v(k, 'mirror') < v(k, 'direct'), `${fmtNum(v(k, 'mirror'), 2)} vs ${fmtNum(v(k, 'direct'), 2)} ms`]);
    }
  }
  for (const [k, p] of [['manifest_head_cold', 'manifests'], ['manifest_get_cold', 'manifests'], ['pull_cold', 'pulls']]) {
    add(`cold ≤ 1.5× direct (${by[k]?.label ?? k})`, [p], () => [v(k, 'mirror') <= 1.5 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`]);
  }
  for (const [k, p] of [['blob_big_cold', 'blobs'], ['blob_big_warm', 'blobs'], ['many_cold', 'many'], ['many_warm', 'many']]) {
    add(`blob throughput ≥ 0.9× direct (${by[k]?.label ?? k})`, [p], () => [v(k, 'mirror') >= 0.9 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`]);
  }
  if (ran.has('memory') && ran.has('blobs')) memoryTargets(add, big);
  add('warm re-pull within the TTL: 0 upstream requests', ['pulls'], () => [v('upstream_warm', 'mirror') === 0, by.upstream_warm.cells.mirror]);
  add('re-pull after the TTL: HEAD only', ['pulls'], () => {
    const after = medianUpstream(results.pull.mirror, (r) => r.afterTtlUpstream);
    return [!!after && after.total > 0 && after.total === after.head, upstreamCell(after)];
  });
  // (the warm bursts and every wrk run's p99 are context for other rows, not rows of this target)
  for (const r of rows.filter((x) => x.warm && x.values.proxy != null && !x.key.startsWith('burst_') && x.key !== 'wrk_p99_runs')) {
    const a = r.values.mirror, b = r.values.proxy;
    add(`ahead of distribution's proxy: ${r.label}`, [], () => [a != null && (r.better === 'lower' ? a < b || (a === 0 && b === 0) : a > b),
      `${r.cells?.mirror ?? fmtNum(a, r.digits)} vs ${r.cells?.proxy ?? fmtNum(b, r.digits)} ${r.unit}`]);
  }
  burstTargets(add, v);
  controlTargets(add, v, by);
  add('wasm ≤ 400 KiB gzip', ['wasm'], () => [results.wasm.gzipBytes <= 400 * 1024, `${(results.wasm.gzipBytes / 1024).toFixed(0)} KiB`]);
  return t;
}

/** Issue 17: each as a ratio to the control measured in the same run; the detail names the control
 *  that isolates the cause where one does. */
function controlTargets(add, v, by) {
  const r = (k, c = 'control') => ratio(v(k, 'mirror'), v(k, c));
  const med = (xs) => median(xs);
  add('cold skopeo pull ≤ 1.1× the pass-through control (issue 17)', ['pulls'], () => {
    const r2 = med(results.pull.r2.map((x) => x.coldSecs));
    return [v('pull_cold', 'mirror') <= 1.1 * v('pull_cold', 'control'),
      `${fmtNum(v('pull_cold', 'mirror'), 2)} vs ${fmtNum(v('pull_cold', 'control'), 2)} s (${r('pull_cold')}×); upstream requests ${by.upstream_cold.cells.mirror} vs the control's ${fmtNum(v('upstream_cold', 'control'), 0)}. ` +
      `Cause, isolated by the R2 control (the same pull, each blob tee()d into R2 as edgemirror does): ${fmtNum(r2, 2)} s, ${ratio(r2, v('pull_cold', 'control'))}× the pass-through: storing while streaming costs that much in this runtime; edgemirror is ${ratio(v('pull_cold', 'mirror'), r2)}× the R2 control` + noStoreDetail(v, 'pull_cold_nostore', 'pull_cold_nostore_used', 's', 2)];
  });
  add('first manifest GET ≤ 1.5× the pass-through control (issue 17)', ['manifests'], () => {
    const c = (m) => med(results.manifest.cache.map((x) => x[m]?.coldMs));
    return [v('manifest_get_cold', 'mirror') <= 1.5 * v('manifest_get_cold', 'control'),
      `${fmtNum(v('manifest_get_cold', 'mirror'), 1)} vs ${fmtNum(v('manifest_get_cold', 'control'), 1)} ms (${r('manifest_get_cold')}×); HEAD ${fmtNum(v('manifest_head_cold', 'mirror'), 1)} vs ${fmtNum(v('manifest_head_cold', 'control'), 1)} ms (${r('manifest_head_cold')}×). ` +
      `The Cache API control's first GET does what edgemirror's miss does in the plainest way (its own anonymous token, the upstream GET, a Cache API fill): ${fmtNum(c('GET'), 1)} ms (HEAD ${fmtNum(c('HEAD'), 1)}); the remaining ${fmtNum(v('manifest_get_cold', 'mirror') - c('GET'), 1)} ms (GET) / ${fmtNum(v('manifest_head_cold', 'mirror') - c('HEAD'), 1)} ms (HEAD) are edgemirror's own cold path (upstream round trips in a row, store lookups)` +
      (by.manifest_get_cold_second ? `. A second repository on the same instance (row ¹⁶: the instance's one-time costs paid): ${fmtNum(v('manifest_get_cold_second', 'mirror'), 1)} vs ${fmtNum(v('manifest_get_cold_second', 'control'), 1)} ms (${r('manifest_get_cold_second')}×), the Cache API control ${fmtNum(med(results.manifest.cache.map((x) => x.secondRepoMs)), 1)} ms` : '') + noStoreDetail(v, 'manifest_get_cold_nostore', 'manifest_get_cold_nostore_second', 'ms', 1)];
  });
  for (const k of ['manifest_head_warm_p50', 'manifest_get_warm_p50']) {
    add(`warm hit latency ≤ 1.2× the Cache API control (${by[k]?.label ?? k}; issue 17)`, ['manifests'], () =>
      [v(k, 'mirror') <= 1.2 * v(k, 'control'), `${fmtNum(v(k, 'mirror'), 2)} vs ${fmtNum(v(k, 'control'), 2)} ms (${r(k)}×)` +
        (by.cpu_manifest ? `; CPU per hit ${fmtNum(v('cpu_manifest', 'mirror'), 2)} vs ${fmtNum(v('cpu_manifest', 'control'), 2)} ms (from the isolate's memory; from the store, \`MANIFEST_MEMORY=0\`: ${fmtNum(v('cpu_manifest_store', 'mirror'), 2)} ms)` : '')]);
  }
  for (const [k, p] of [['blob_big_warm', 'blobs'], ['many_warm', 'many']]) {
    add(`warm blob hit ≥ 1/1.2 of the R2 control (${by[k]?.label ?? k}; issue 17)`, [p], () =>
      [v(k, 'mirror') * 1.2 >= v(k, 'control'), `${fmtNum(v(k, 'mirror'), 0)} vs ${fmtNum(v(k, 'control'), 0)} MB/s (${r(k)}×)` +
        (by.cpu_blob ? `; CPU per warm 1 MiB blob GET ${fmtNum(v('cpu_blob', 'mirror'), 3)} vs ${fmtNum(v('cpu_blob', 'control'), 3)} ms (${r('cpu_blob')}×): with ${k === 'many_warm' ? 'many requests at once on 2 cores, the per-request CPU shows' : 'one stream, the per-request CPU hardly counts'}` : '')]);
  }
  add('CPU per request ≤ 1.5× the control: `GET /v2/` vs a one-log-line JS worker (issue 17)', ['cpu'], () =>
    [v('cpu_v2', 'mirror') <= 1.5 * v('cpu_v2', 'control'), `${fmtNum(v('cpu_v2', 'mirror'), 3)} vs ${fmtNum(v('cpu_v2', 'control'), 3)} ms (${r('cpu_v2')}×): both answer without a store or the upstream, so the difference is the worker's own per-request work` +
      (by.cpu_v2_rust ? `. The smallest workers-rs worker (**W**, the same log line in Rust) takes ${fmtNum(v('cpu_v2_rust', 'control'), 3)} ms: the Rust → wasm route itself (glue, the call into wasm, its future) is ${fmtNum(v('cpu_v2_rust', 'control') - v('cpu_v2', 'control'), 3)} ms of the difference, edgemirror's own routing, gate, headers and log line ${fmtNum(v('cpu_v2', 'mirror') - v('cpu_v2_rust', 'control'), 3)} ms (${r('cpu_v2_rust')}× W)` : ' (the wasm call, its routing, headers and log line)')]);
  add('CPU per request ≤ 1.5× the control: warm manifest GET by tag vs a Cache API hit (issue 17)', ['cpu'], () =>
    [v('cpu_manifest', 'mirror') <= 1.5 * v('cpu_manifest', 'control'), `${fmtNum(v('cpu_manifest', 'mirror'), 3)} vs ${fmtNum(v('cpu_manifest', 'control'), 3)} ms (${r('cpu_manifest')}×): a hit from the isolate's memory costs about what a \`GET /v2/\` does (${fmtNum(v('cpu_v2', 'mirror'), 3)} ms)` +
      (by.cpu_manifest_store ? `; from the store (\`MANIFEST_MEMORY=0\`) ${fmtNum(v('cpu_manifest_store', 'mirror'), 3)} ms (${r('cpu_manifest_store')}×)` : '')]);
  add('CPU per request ≤ 1.5× the control: warm 1 MiB blob GET vs an R2 hit (issue 17)', ['cpu'], () =>
    [v('cpu_blob', 'mirror') <= 1.5 * v('cpu_blob', 'control'), `${fmtNum(v('cpu_blob', 'mirror'), 3)} vs ${fmtNum(v('cpu_blob', 'control'), 3)} ms (${r('cpu_blob')}×)`]);
  add(`the local default's first GET of a ${CFG.bigMb} MiB layer ≥ 0.9× the pass-through control (issue 17)`, ['blobs'], () => {
    const local = results.blob.local;
    const mid = (f) => fmtNum(median(local.map(f)), 0);
    return [v('blob_big_cold_local', 'mirror') >= 0.9 * v('blob_big_cold_local', 'control'),
      `${fmtNum(v('blob_big_cold_local', 'mirror'), 0)} vs ${fmtNum(v('blob_big_cold_local', 'control'), 0)} MB/s (${r('blob_big_cold_local')}×), with \`npm start\`'s \`BLOB_FILL=after-answer\`: ` +
      `stored ${mid((x) => x.storedAfterMs)} ms after the answer from a second GET (the blob host served ${mid((x) => x.upstream.blobHost)} GETs per run; workerd's RSS +${mid((x) => x.coldPeakMb - x.idleMb)} MiB over idle until stored), then warm at ${mid((x) => x.warmMBps)} MB/s. ` +
      `The deployed default (\`with-answer\`, one GET split between the client and R2) fills at ${fmtNum(v('blob_big_cold_pass', 'mirror'), 0)} MB/s (${r('blob_big_cold_pass')}×): the local R2 simulator's write rate bounds any worker that stores while it streams (the R2 control's same fill: ${fmtNum(v('blob_big_cold', 'control'), 0)} MB/s; into the Cache API: ${fmtNum(v('blob_big_cold_cache', 'control'), 0)} MB/s)`];
  });
  add('wrk tail: edgemirror\'s worst p99 ≤ 1.5× the Cache API control\'s worst in the same run (is the tail ours? issue 17)', ['wrk'], () => {
    const runs = (s) => (results.wrk[s]?.runs ?? []).map((x) => x.latencyP99).join(', ');
    return [v('wrk_p99_runs', 'mirror') <= 1.5 * v('wrk_p99_runs', 'control'),
      `edgemirror ${runs('mirror')}; Cache API control ${runs('cacheHit')}; constant-answer JS worker ${runs('constant')}`];
  });
}

/** The same row from edgemirror with no store (footnote ¹⁷), fresh and on a used instance, each
 *  against the pass-through control's same: what is left once the local stores are out. */
function noStoreDetail(v, fresh, used, unit, digits) {
  if (v(fresh, 'mirror') == null) return '';
  const pair = (k) => `${fmtNum(v(k, 'mirror'), digits)} vs ${fmtNum(v(k, 'control'), digits)} ${unit} (${ratio(v(k, 'mirror'), v(k, 'control'))}×)`;
  return `. With no store (¹⁷: the local stores answer at once and keep nothing): ${pair(fresh)} on a fresh instance; ${pair(used)} once the instance's code has run`;
}

function memoryTargets(add, big) {
  const mm = results.memory.mirror;
  const peak = (what) => Math.max(...mm.passThrough.filter((p) => p.what === what).map((p) => p.peakMb));
  const [bigPeak, hugePeak] = [peak('big'), peak('huge')];
  add(`memory flat in layer size, pass-through (peak − idle ≤ 64 MiB, and ${mm.passThrough.find((p) => p.what === 'huge')?.sizeMb.toFixed(0)} MiB ≤ ${mib1(big.size)} + 32 MiB)`, [],
    () => [Math.max(bigPeak, hugePeak) - mm.idleMb <= 64 && hugePeak <= bigPeak + 32,
      `idle ${mm.idleMb.toFixed(0)} MiB, peak ${bigPeak.toFixed(0)} MiB (${mib1(big.size)}) / ${hugePeak.toFixed(0)} MiB (${CFG.hugeMb} MiB)`]);
  const coldBig = median(results.blob.mirror.map((r) => r.coldPeakMb - r.idleMb));
  const coldStored = mm.coldStored.peakMb - mm.coldStored.beforeMb;
  const ctl = median(results.blob.r2.map((r) => r.coldPeakMb - r.idleMb));
  add(`memory flat in layer size, cold and stored to R2 (growth over idle ≤ 64 MiB for ${mib1(big.size)} and ${CFG.storedMb} MiB)`, [],
    () => [coldStored <= 64 && coldBig <= 64,
      `+${coldBig.toFixed(0)} MiB (${mib1(big.size)}) / +${coldStored.toFixed(0)} MiB (${CFG.storedMb} MiB) over the RSS just before; the R2 control's fill of ${mib1(big.size)}: +${fmtNum(ctl, 0)} MiB`]);
}

/** Concurrent cold pulls: a burst of the largest N costs edgemirror's clients at most 1.5× a single
 *  cold pull (p50), and as many upstream requests as one pull. */
function burstTargets(add, v) {
  const ns = CFG.burst.ns, nMax = ns.at(-1);
  add(`p50 at N=${nMax} ≤ 1.5 × N=1 (edgemirror, concurrent cold pulls of one image)`, ['bursts'], () => {
    const [one, many] = [v('burst_single_p50', 'mirror'), v('burst_max_p50', 'mirror')];
    const [pOne, pMany] = [v('burst_single_p50', 'proxy'), v('burst_max_p50', 'proxy')];
    const [wOne, wMany] = [v('burst_single_warm_p50', 'mirror'), v('burst_max_warm_p50', 'mirror')];
    return [one != null && many != null && many <= 1.5 * one,
      `${fmtNum(many, 0)} vs ${fmtNum(one, 0)} ms (${ratio(many, one)}×); the same clients warm (nothing to coalesce): ${fmtNum(wMany, 0)} vs ${fmtNum(wOne, 0)} ms (${ratio(wMany, wOne)}×); ` +
      `distribution's proxy ${fmtNum(pMany, 0)} vs ${fmtNum(pOne, 0)} ms (${ratio(pMany, pOne)}×); ` +
      `aggregate ${fmtNum(burstMBps('mirror', nMax), 0)} MB/s at N=${nMax} vs ${fmtNum(burstMBps('mirror', ns[0]), 0)} MB/s at N=${ns[0]} (distribution: ${fmtNum(burstMBps('proxy', nMax), 0)} vs ${fmtNum(burstMBps('proxy', ns[0]), 0)})` +
      (CFG.burst.smallLayerBytes ? `; ${(CFG.burst.smallLayerBytes / 1024).toFixed(0)} KiB layers: cold ${ratio(v('burst_smax_p50', 'mirror'), v('burst_ssingle_p50', 'mirror'))}×, warm ${ratio(v('burst_smax_warm_p50', 'mirror'), v('burst_ssingle_warm_p50', 'mirror'))}×` : '')];
  });
  add(`upstream requests of ${nMax} concurrent cold pulls ≤ of 1 (edgemirror coalesces; the isolate's first pull also meets the 401 that names the realm)`, ['bursts'], () => {
    const [uOne, uMany] = [v('burst_single_upstream', 'mirror'), v('burst_max_upstream', 'mirror')];
    return [uOne != null && uMany != null && uMany <= uOne, `${uMany} vs ${uOne}; distribution's proxy ${v('burst_max_upstream', 'proxy')} vs ${v('burst_single_upstream', 'proxy')}`];
  });
  add(`${CFG.burst.fleetN} cold pulls over 2 isolates with the Durable Object: upstream requests ≤ of 1 pull`, ['fleet', 'bursts'], () =>
    [v('fleet_do_upstream', 'mirror') <= v('burst_single_upstream', 'mirror'),
      `${v('fleet_do_upstream', 'mirror')} vs ${v('burst_single_upstream', 'mirror')} (without it: ${v('fleet_nodo_upstream', 'mirror')})`]);
}
