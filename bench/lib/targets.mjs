// The project's performance targets, checked against the rows.
import { CFG } from './config.mjs';
import { results } from './results.mjs';
import { median } from './tools.mjs';
import { fmtNum, ratio, upstreamCell, medianUpstream, burstMBps } from './rows.mjs';

const mib1 = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** -> [{ target, met, detail }] */
export function evaluateTargets(rows, big) {
  const by = Object.fromEntries(rows.map((r) => [r.key, r]));
  const v = (k, s) => by[k]?.values[s];
  const t = [];
  const add = (target, met, detail) => t.push({ target, met, detail });
  for (const m of ['head', 'get']) {
    for (const q of ['p50', 'p99']) {
      const k = `manifest_${m}_warm_${q}`;
      add(`warm manifest ${m.toUpperCase()} ${q} below direct`, v(k, 'mirror') < v(k, 'direct'), `${fmtNum(v(k, 'mirror'), 2)} vs ${fmtNum(v(k, 'direct'), 2)} ms`);
    }
  }
  for (const k of ['manifest_head_cold', 'manifest_get_cold', 'pull_cold']) {
    add(`cold ≤ 1.5× direct (${by[k].label})`, v(k, 'mirror') <= 1.5 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`);
  }
  for (const k of ['blob_big_cold', 'blob_big_warm', 'many_cold', 'many_warm']) {
    add(`blob throughput ≥ 0.9× direct (${by[k].label})`, v(k, 'mirror') >= 0.9 * v(k, 'direct'), `${ratio(v(k, 'mirror'), v(k, 'direct'))}×`);
  }
  if (results.memory.mirror) memoryTargets(add, big);
  add('warm re-pull within the TTL: 0 upstream requests', v('upstream_warm', 'mirror') === 0, by.upstream_warm.cells.mirror);
  const after = medianUpstream(results.pull.mirror, (r) => r.afterTtlUpstream);
  add('re-pull after the TTL: HEAD only', !!after && after.total > 0 && after.total === after.head, upstreamCell(after));
  for (const r of rows.filter((x) => x.warm)) {
    const a = r.values.mirror, b = r.values.proxy;
    const met = a != null && b != null && (r.better === 'lower' ? a < b || (a === 0 && b === 0) : a > b);
    add(`ahead of distribution's proxy: ${r.label}`, met, `${r.cells?.mirror ?? fmtNum(a, r.digits)} vs ${r.cells?.proxy ?? fmtNum(b, r.digits)} ${r.unit}`);
  }
  burstTargets(add, v);
  add('wasm ≤ 400 KiB gzip', results.wasm.gzipBytes <= 400 * 1024, `${(results.wasm.gzipBytes / 1024).toFixed(0)} KiB`);
  return t;
}

function memoryTargets(add, big) {
  const mm = results.memory.mirror;
  const peak = (what) => Math.max(...mm.passThrough.filter((p) => p.what === what).map((p) => p.peakMb));
  const [bigPeak, hugePeak] = [peak('big'), peak('huge')];
  add(`memory flat in layer size, pass-through (peak − idle ≤ 64 MiB, and ${mm.passThrough.find((p) => p.what === 'huge')?.sizeMb.toFixed(0)} MiB ≤ ${mib1(big.size)} + 32 MiB)`,
    Math.max(bigPeak, hugePeak) - mm.idleMb <= 64 && hugePeak <= bigPeak + 32,
    `idle ${mm.idleMb.toFixed(0)} MiB, peak ${bigPeak.toFixed(0)} MiB (${mib1(big.size)}) / ${hugePeak.toFixed(0)} MiB (${CFG.hugeMb} MiB)`);
  const coldBig = median(results.blob.mirror.map((r) => r.coldPeakMb - r.idleMb));
  const coldStored = mm.coldStored.peakMb - mm.coldStored.beforeMb;
  add(`memory flat in layer size, cold and stored to R2 (growth over idle ≤ 64 MiB for ${mib1(big.size)} and ${CFG.storedMb} MiB)`,
    coldStored <= 64 && coldBig <= 64,
    `+${coldBig.toFixed(0)} MiB (${mib1(big.size)}) / +${coldStored.toFixed(0)} MiB (${CFG.storedMb} MiB) over the RSS just before`);
}

/** Concurrent cold pulls: a burst of the largest N costs edgemirror's clients at most 1.5× a single
 *  cold pull (p50), and as many upstream requests as one pull. */
function burstTargets(add, v) {
  const ns = CFG.burst.ns, nMax = ns.at(-1);
  const [one, many] = [v('burst_single_p50', 'mirror'), v('burst_max_p50', 'mirror')];
  const [pOne, pMany] = [v('burst_single_p50', 'proxy'), v('burst_max_p50', 'proxy')];
  add(`p50 at N=${nMax} ≤ 1.5 × N=1 (edgemirror, concurrent cold pulls of one image)`,
    one != null && many != null && many <= 1.5 * one,
    `${fmtNum(many, 0)} vs ${fmtNum(one, 0)} ms (${ratio(many, one)}×); distribution's proxy ${fmtNum(pMany, 0)} vs ${fmtNum(pOne, 0)} ms (${ratio(pMany, pOne)}×); ` +
    `aggregate ${fmtNum(burstMBps('mirror', nMax), 0)} MB/s at N=${nMax} vs ${fmtNum(burstMBps('mirror', ns[0]), 0)} MB/s at N=${ns[0]} (distribution: ${fmtNum(burstMBps('proxy', nMax), 0)} vs ${fmtNum(burstMBps('proxy', ns[0]), 0)})`);
  const [uOne, uMany] = [v('burst_single_upstream', 'mirror'), v('burst_max_upstream', 'mirror')];
  add(`upstream requests of ${nMax} concurrent cold pulls = of 1 (edgemirror coalesces)`,
    uOne != null && uMany != null && uMany === uOne,
    `${uMany} vs ${uOne}; distribution's proxy ${v('burst_max_upstream', 'proxy')} vs ${v('burst_single_upstream', 'proxy')}`);
}
