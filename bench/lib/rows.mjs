// The table's rows from the samples: one value per system (medians over the repetitions), with the
// cell formatting shared by the table and the targets.
import { CFG, PULL_REF, SYSTEMS, perRepN } from './config.mjs';
import { results, pooled } from './results.mjs';
import { median, pct } from './tools.mjs';
import { wrkMs } from './measure/wrk.mjs';

export const fmtNum = (v, digits) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(digits));
export function ratio(a, b) {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b)) return '—';
  if (b === 0) return a === 0 ? '=' : '—';
  return (a / b).toFixed(2);
}
export function upstreamCell(u) {
  if (!u) return '—';
  const parts = [[u.get, 'GET'], [u.head, 'HEAD'], [u.token, 'token'], [u.blobHost, 'blob host']].filter(([n]) => n).map(([n, w]) => `${n} ${w}`);
  return parts.length ? `${u.total} (${parts.join(', ')})` : '0';
}
const medianBy = (arr, f) => median(arr.map(f));
/** The upstream counts of the rep whose total is the median (they hardly vary). */
export function medianUpstream(arr, f) {
  const xs = arr.map(f).filter(Boolean).sort((a, b) => a.total - b.total);
  return xs.length ? xs[(xs.length - 1) >> 1] : null;
}
const per = (f) => Object.fromEntries(SYSTEMS.map((s) => [s, f(s)]));
const mib = (b) => (b / 2 ** 20).toFixed(0);

/** -> [{ key, label, unit, better, warm, cold, values: { direct, proxy, mirror }, digits, cells? }],
 *  in the table's order. */
export function buildRows(big, huge, stored, manyN) {
  const R = [];
  const row = (key, label, unit, better, values, { digits = 1, cells, warm = false, cold = false } = {}) =>
    R.push({ key, label, unit, better, warm, cold, values, digits, cells });
  manifestRows(row);
  transferRows(row, big, manyN);
  memoryRows(row, big, huge, stored);
  burstRows(row, big);
  const w = results.wasm;
  row('wasm', 'Bundle: build/index_bg.wasm, raw / gzip -9', 'bytes', 'lower', { direct: null, proxy: null, mirror: w.gzipBytes },
    { digits: 0, cells: { direct: '—', proxy: '—', mirror: `${w.rawBytes.toLocaleString('en-US')} / ${w.gzipBytes.toLocaleString('en-US')} (${(w.gzipBytes / 1024).toFixed(0)} KiB)` } });
  row('wrk_rps', `Warm manifest GET by digest, wrk -t${CFG.wrk.threads} -c${CFG.wrk.conns} -d${CFG.wrk.secs}s⁷`, 'req/s', 'higher',
    per((s) => median((results.wrk[s]?.runs ?? []).map((r) => r.rps))), { digits: 0, warm: true });
  row('wrk_p99', 'The same, wrk p99 latency⁷', 'ms', 'lower',
    per((s) => median((results.wrk[s]?.runs ?? []).map((r) => wrkMs(r.latencyP99)))), { digits: 0, warm: true });
  const order = ['manifest_', 'blob_', 'many_', 'pull_', 'upstream_', 'burst_', 'rss_', 'wasm', 'wrk_'];
  const rank = (r) => order.findIndex((p) => r.key.startsWith(p));
  return R.map((r, i) => [r, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([r]) => r);
}

function manifestRows(row) {
  const man = results.manifest;
  for (const method of ['HEAD', 'GET']) {
    row(`manifest_${method.toLowerCase()}_cold`, `Manifest ${method} by tag, cold¹`, 'ms', 'lower',
      per((s) => medianBy(man[s], (r) => r[method].coldMs)), { cold: true });
    const n = perRepN() * CFG.reps;
    row(`manifest_${method.toLowerCase()}_warm_p50`, `Manifest ${method} by tag, warm p50 (n=${n})`, 'ms', 'lower',
      per((s) => pooled(s, method, 0.5)), { digits: 2, warm: true });
    row(`manifest_${method.toLowerCase()}_warm_p99`, `Manifest ${method} by tag, warm p99 (n=${n})`, 'ms', 'lower',
      per((s) => pooled(s, method, 0.99)), { digits: 2, warm: true });
  }
}

/** Blob throughput, pulls and their upstream requests. */
function transferRows(row, big, manyN) {
  const bl = results.blob, mn = results.many, pl = results.pull;
  row('blob_big_cold', `Blob GET ${mib(big.size)} MiB, cold²`, 'MB/s', 'higher', per((s) => medianBy(bl[s], (r) => r.coldMBps)), { digits: 0, cold: true });
  row('blob_big_warm', `Blob GET ${mib(big.size)} MiB, warm`, 'MB/s', 'higher', per((s) => medianBy(bl[s], (r) => r.warmMBps)), { digits: 0, warm: true });
  row('many_cold', `${manyN} concurrent 1 MiB blob GETs, cold (aggregate)⁸`, 'MB/s', 'higher', per((s) => medianBy(mn[s], (r) => r.coldMBps)), { digits: 0, cold: true });
  row('many_warm', `${manyN} concurrent 1 MiB blob GETs, warm (aggregate)`, 'MB/s', 'higher', per((s) => medianBy(mn[s], (r) => r.warmMBps)), { digits: 0, warm: true });
  row('pull_cold', `skopeo copy --all ${PULL_REF}, cold³`, 's', 'lower', per((s) => medianBy(pl[s], (r) => r.coldSecs)), { digits: 2, cold: true });
  row('pull_warm', `skopeo copy --all ${PULL_REF}, warm`, 's', 'lower', per((s) => medianBy(pl[s], (r) => r.warmSecs)), { digits: 2, warm: true });
  for (const [k, label, f, warm] of [
    ['upstream_cold', 'Upstream requests per pull, cold⁴', (r) => r.coldUpstream, false],
    ['upstream_warm', 'Upstream requests per pull, warm (within the tag TTL)⁴', (r) => r.warmUpstream, true],
    ['upstream_after_ttl', `Upstream requests per pull, after the tag TTL⁴ ⁵`, (r) => r.afterTtlUpstream, false],
  ]) {
    const u = per((s) => medianUpstream(pl[s], f));
    row(k, label, 'requests', 'lower', per((s) => u[s]?.total ?? null), { digits: 0, warm, cells: per((s) => upstreamCell(u[s])) });
  }
}

/** A burst's aggregate throughput: every client's bytes over the burst's wall time, MB/s (median over
 *  the repetitions). */
export function burstMBps(name, n) {
  return median(results.burst[name].filter((r) => r.n === n && r.bytesPerPull).map((r) => (r.times.length * r.bytesPerPull) / (r.wallMs / 1000) / 1e6));
}

/** The keys of the concurrent-pull rows, one per CFG.burst.ns entry (the same in smoke and full runs). */
export const BURST_ROLES = ['single', 'mid', 'max'];

/** Concurrent cold pulls: pull times pooled over the repetitions, the upstream requests of one
 *  burst (the median repetition's), memory after the largest N, and the big layer's followers. */
function burstRows(row, big) {
  const b = results.burst, bm = results.burstMemory;
  const ns = CFG.burst.ns, nMax = ns.at(-1);
  ns.forEach((n, i) => {
    const role = BURST_ROLES[i];
    const bursts = (s) => b[s].filter((r) => r.n === n);
    const times = (s) => bursts(s).flatMap((r) => r.times);
    const samples = times('mirror').length || n * CFG.reps;
    const failed = (s) => bursts(s).reduce((a, r) => a + r.failed.length, 0);
    const note = (s, v, digits) => (failed(s) ? `${fmtNum(v, digits)} (${failed(s)} failed)` : fmtNum(v, digits));
    for (const [q, qs] of [[0.5, 'p50'], [0.99, 'p99']]) {
      const values = per((s) => (times(s).length ? pct(times(s), q) : null));
      row(`burst_${role}_${qs}`, `${n} concurrent cold pull${n > 1 ? 's' : ''} of one image, ${qs} pull time (n=${samples})⁹`, 'ms', 'lower', values,
        { digits: 0, cold: true, cells: per((s) => (s === 'direct' ? '—' : note(s, values[s], 0))) });
    }
    const u = per((s) => medianUpstream(bursts(s), (r) => r.upstream));
    row(`burst_${role}_upstream`, `${n} concurrent cold pull${n > 1 ? 's' : ''}: upstream requests, whole burst⁴ ⁹`, 'requests', 'lower',
      per((s) => u[s]?.total ?? null), { digits: 0, cold: true, cells: per((s) => (s === 'direct' ? '—' : upstreamCell(u[s]))) });
  });
  const memMed = (s, f) => median(bm[s].map(f));
  row('burst_rss_peak', `${nMax} concurrent cold pulls: server process peak RSS⁹`, 'MiB', 'lower',
    { direct: null, proxy: memMed('proxy', (m) => m.peakMb), mirror: memMed('mirror', (m) => m.peakMb) }, { digits: 0 });
  row('burst_rss_after', `${nMax} concurrent cold pulls: server process RSS after (idle before)⁹`, 'MiB', 'lower',
    { direct: null, proxy: memMed('proxy', (m) => m.afterMb), mirror: memMed('mirror', (m) => m.afterMb) },
    { digits: 0, cells: { direct: '—', ...Object.fromEntries(['proxy', 'mirror'].map((s) => [s, `${fmtNum(memMed(s, (m) => m.afterMb), 0)} (${fmtNum(memMed(s, (m) => m.idleMb), 0)})`])) } });
  const wasmMb = (f) => { const v = memMed('mirror', f); return v == null ? null : v / 2 ** 20; };
  row('burst_wasm_after', `${nMax} concurrent cold pulls: edgemirror wasm memory after (idle before), /healthz⁹`, 'MiB', 'lower',
    { direct: null, proxy: null, mirror: wasmMb((m) => m.wasmAfterBytes) },
    { digits: 1, cells: { direct: '—', proxy: '—', mirror: `${fmtNum(wasmMb((m) => m.wasmAfterBytes), 1)} (${fmtNum(wasmMb((m) => m.wasmIdleBytes), 1)})` } });
  const f = results.followers, nf = CFG.burst.followers;
  const lead = (s) => (f[s] && f[s].leader != null ? f[s].clients[f[s].leader] : null);
  const others = (s) => (f[s] ? f[s].clients.filter((c, i) => c.ok && i !== f[s].leader) : []);
  const pair = (a, b) => (a == null ? '—' : `${fmtNum(a, 0)} / ${fmtNum(b, 0)}`);
  row('burst_big_leader', `Blob GET ${mib(big.size)} MiB, cold, ${nf} clients at once: the leader, time to first byte / total¹⁰`, 'ms', 'lower',
    per((s) => lead(s)?.ms ?? null), { digits: 0, cold: true, cells: per((s) => pair(lead(s)?.firstByteMs, lead(s)?.ms)) });
  row('burst_big_followers', `The same: the other ${nf - 1} clients, time to first byte / total, median¹⁰`, 'ms', 'lower',
    per((s) => median(others(s).map((c) => c.ms))),
    { digits: 0, cold: true, cells: per((s) => pair(median(others(s).map((c) => c.firstByteMs)), median(others(s).map((c) => c.ms)))) });
  row('burst_big_upstream', `The same: upstream requests⁴ ¹⁰`, 'requests', 'lower', per((s) => f[s]?.upstream.total ?? null),
    { digits: 0, cold: true, cells: per((s) => (f[s] ? upstreamCell(f[s].upstream) : '—')) });
}

/** The memory phase: pass-through and stored-while-streamed throughput, and RSS. */
function memoryRows(row, big, huge, stored) {
  const mm = results.memory, bl = results.blob;
  const ptPeak = (what) => { const v = (mm.mirror?.passThrough ?? []).filter((p) => p.what === what).map((p) => p.peakMb); return v.length ? Math.max(...v) : null; };
  row('blob_big_passthrough', `Blob GET ${mib(big.size)} MiB, \`Range: bytes=0-\` (never stored: pass-through)`, 'MB/s', 'higher',
    { direct: median((mm.direct?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)), proxy: null,
      mirror: median((mm.mirror?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)) }, { digits: 0 });
  row('blob_stored_cold', `Blob GET ${mib(stored.size)} MiB, cold, stored while streamed`, 'MB/s', 'higher',
    { direct: mm.direct?.coldStoredMBps, proxy: mm.proxy?.coldStored?.mbps, mirror: mm.mirror?.coldStored?.mbps }, { digits: 0, cold: true });
  row('rss_idle', 'Server process RSS, idle⁶', 'MiB', 'lower', { direct: null, proxy: mm.proxy?.idleMb, mirror: mm.mirror?.idleMb }, { digits: 0 });
  row('rss_passthrough_big', `Server process peak RSS, ${mib(big.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('big') }, { digits: 0 });
  row('rss_passthrough_huge', `Server process peak RSS, ${mib(huge.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('huge') }, { digits: 0 });
  row('rss_cold_big', `Server process peak RSS, ${mib(big.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: medianBy(bl.proxy, (r) => r.coldPeakMb), mirror: medianBy(bl.mirror, (r) => r.coldPeakMb) }, { digits: 0 });
  row('rss_cold_stored', `Server process peak RSS, ${mib(stored.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: mm.proxy?.coldStored?.peakMb, mirror: mm.mirror?.coldStored?.peakMb }, { digits: 0 });
  if (mm.mirror?.coldHuge) {
    row('rss_cold_huge', `Server process peak RSS, ${mib(huge.size)} MiB plain GET (${mm.mirror.coldHuge.stored ? 'stored' : 'over the store limit: not stored'})`, 'MiB', 'lower',
      { direct: null, proxy: null, mirror: mm.mirror.coldHuge.peakMb }, { digits: 0 });
  }
}
