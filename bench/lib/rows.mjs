// The table's rows from the samples: one value per system (medians over the repetitions) and the
// matching control worker's (`control`: which one, lib/controls.mjs), with the cell formatting shared
// by the table and the targets. Rows of phases that did not run (--only) are left out.
import { CFG, PULL_REF, SYSTEMS, perRepN } from './config.mjs';
import { results, pooled, ran } from './results.mjs';
import { CONTROLS } from './controls.mjs';
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

/** -> [{ key, label, unit, better, warm, cold, values: { direct, proxy, mirror, control }, control,
 *  digits, cells? }], in the table's order. `control` names the control worker of values.control. */
export function buildRows(big, huge, stored, manyN) {
  const R = [];
  const row = (key, label, unit, better, values, { digits = 1, cells, warm = false, cold = false, control = null } = {}) =>
    R.push({ key, label, unit, better, warm, cold, values: { control: null, ...values }, control, digits, cells });
  if (ran.has('manifests')) manifestRows(row);
  transferRows(row, big, manyN);
  if (ran.has('memory')) memoryRows(row, big, huge, stored);
  if (ran.has('bursts')) burstRows(row);
  if (ran.has('followers')) followerRows(row, big);
  if (ran.has('fleet')) fleetRows(row);
  if (ran.has('cpu')) cpuRows(row);
  const w = results.wasm;
  if (ran.has('wasm')) {
    row('wasm', 'Bundle: build/index_bg.wasm, raw / gzip -9', 'bytes', 'lower', { direct: null, proxy: null, mirror: w.gzipBytes },
      { digits: 0, cells: { direct: '—', proxy: '—', mirror: `${w.rawBytes.toLocaleString('en-US')} / ${w.gzipBytes.toLocaleString('en-US')} (${(w.gzipBytes / 1024).toFixed(0)} KiB)` } });
  }
  if (ran.has('wrk')) wrkRows(row);
  if (ran.has('wan')) wanRows(row);
  const order = ['manifest_', 'wan_', 'blob_', 'many_', 'pull_', 'upstream_', 'burst_', 'fleet_', 'rss_', 'cpu_', 'start_', 'wasm', 'wrk_'];
  const rank = (r) => order.findIndex((p) => r.key.startsWith(p));
  return R.map((r, i) => [r, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([r]) => r);
}

/** A control's cell: its value and its tag (the footnote says which control each tag is). */
export const controlCell = (r) => (r.cells?.control ? `${r.cells.control} ${CONTROLS[r.control].tag}`
  : r.control && r.values.control != null ? `${fmtNum(r.values.control, r.digits)} ${CONTROLS[r.control].tag}` : '—');

/** The WAN rows: a first pull's token and manifest GET with the upstream and the client away. */
function wanRows(row) {
  const w = results.wan;
  const { upstreamMs, clientMs } = CFG.wan;
  for (const [i, which] of [[0, 'first contact with the registry'], [1, 'a second repository (realm known)']]) {
    row(`wan_ahead_${i}`, `Token + manifest GET, ${upstreamMs} ms to the upstream, ${clientMs} ms to the client, ${which}¹⁴`, 'ms', 'lower',
      { direct: null, proxy: null, mirror: medianBy(w, (r) => r.scoped[i]), control: medianBy(w, (r) => r.control[i]) }, { digits: 0, cold: true, control: 'pass' });
    row(`wan_noscope_${i}`, `The same, the token asked without a scope (nothing fetched ahead)¹⁴`, 'ms', 'lower',
      { direct: null, proxy: null, mirror: medianBy(w, (r) => r.unscoped[i]), control: medianBy(w, (r) => r.control[i]) }, { digits: 0, cold: true, control: 'pass' });
  }
}

function manifestRows(row) {
  const man = results.manifest;
  const poolCtl = (method, q) => {
    const all = man.cache.flatMap((r) => r[method]?.warm?.times ?? []);
    return all.length ? pct(all, q) : null;
  };
  for (const method of ['HEAD', 'GET']) {
    row(`manifest_${method.toLowerCase()}_cold`, `Manifest ${method} by tag, cold¹`, 'ms', 'lower',
      { ...per((s) => medianBy(man[s], (r) => r[method].coldMs)), control: medianBy(man.pass, (r) => r[method].coldMs) }, { cold: true, control: 'pass' });
    if (method === 'GET') {
      row('manifest_get_cold_token', 'Manifest GET by tag, cold, after the client\'s `/token` (as docker asks)¹³', 'ms', 'lower',
        { direct: null, proxy: null, mirror: medianBy(man.mirror.filter((r) => r.dockerFlow), (r) => r.dockerFlow.ms), control: medianBy(man.pass, (r) => r.GET.coldMs) },
        { cold: true, control: 'pass' });
      row('manifest_get_cold_second', 'Manifest GET by tag, cold, a second repository on the same instance¹⁶', 'ms', 'lower',
        { direct: null, proxy: null, mirror: medianBy(man.mirror, (r) => r.GET.secondRepoMs), control: medianBy(man.pass, (r) => r.secondRepoMs) },
        { cold: true, control: 'pass' });
      if (man.noStore.length) {
        row('manifest_get_cold_nostore', 'Manifest GET by tag, cold, edgemirror with no store (Miniflare\'s Cache API off, no R2)¹⁷', 'ms', 'lower',
          { direct: null, proxy: null, mirror: medianBy(man.noStore, (r) => r.firstMs), control: medianBy(man.pass, (r) => r.GET.coldMs) },
          { cold: true, control: 'pass' });
        row('manifest_get_cold_nostore_second', 'The same, a second repository on that instance¹⁶ ¹⁷', 'ms', 'lower',
          { direct: null, proxy: null, mirror: medianBy(man.noStore, (r) => r.secondRepoMs), control: medianBy(man.pass, (r) => r.secondRepoMs) },
          { cold: true, control: 'pass' });
      }
    }
    const n = perRepN() * CFG.reps;
    for (const [q, qs] of [[0.5, 'p50'], [0.99, 'p99']]) {
      row(`manifest_${method.toLowerCase()}_warm_${qs}`, `Manifest ${method} by tag, warm ${qs} (n=${n})`, 'ms', 'lower',
        { ...per((s) => pooled(s, method, q)), control: poolCtl(method, q) }, { digits: 2, warm: true, control: 'cache' });
    }
    if (man.store.length) {
      for (const [q, qs] of [[0.5, 'p50'], [0.99, 'p99']]) {
        row(`manifest_${method.toLowerCase()}_warm_store_${qs}`, `The same, ${qs}, every hit from the store (\`MANIFEST_MEMORY=0\`)¹⁵`, 'ms', 'lower',
          { direct: null, proxy: null, mirror: pooled('store', method, q), control: poolCtl(method, q) }, { digits: 2, warm: true, control: 'cache' });
      }
    }
  }
}

/** Blob throughput, pulls and their upstream requests. */
function transferRows(row, big, manyN) {
  const bl = results.blob, mn = results.many, pl = results.pull;
  if (ran.has('blobs')) {
    row('blob_big_cold', `Blob GET ${mib(big.size)} MiB, cold²`, 'MB/s', 'higher',
      { ...per((s) => medianBy(bl[s], (r) => r.coldMBps)), control: medianBy(bl.r2, (r) => r.coldMBps) }, { digits: 0, cold: true, control: 'r2' });
    row('blob_big_cold_pass', `Blob GET ${mib(big.size)} MiB, first GET against the pass-through control²`, 'MB/s', 'higher',
      { direct: null, proxy: null, mirror: medianBy(bl.mirror, (r) => r.coldMBps), control: medianBy(bl.pass, (r) => r.coldMBps) }, { digits: 0, cold: true, control: 'pass' });
    row('blob_big_cold_local', `Blob GET ${mib(big.size)} MiB, first GET, the local default (\`npm start\`: \`BLOB_FILL=after-answer\`) against the pass-through control²`, 'MB/s', 'higher',
      { direct: null, proxy: null, mirror: medianBy(bl.local, (r) => r.coldMBps), control: medianBy(bl.pass, (r) => r.coldMBps) }, { digits: 0, cold: true, control: 'pass' });
    row('blob_big_cold_cache', `Blob GET ${mib(big.size)} MiB, first GET against a Cache API fill (no R2)²`, 'MB/s', 'higher',
      { direct: null, proxy: null, mirror: medianBy(bl.mirror, (r) => r.coldMBps), control: medianBy(bl.cache, (r) => r.coldMBps) }, { digits: 0, cold: true, control: 'cache' });
    row('blob_big_warm', `Blob GET ${mib(big.size)} MiB, warm`, 'MB/s', 'higher',
      { ...per((s) => medianBy(bl[s], (r) => r.warmMBps)), control: medianBy(bl.r2, (r) => r.warmMBps) }, { digits: 0, warm: true, control: 'r2' });
  }
  if (ran.has('many')) {
    row('many_cold', `${manyN} concurrent 1 MiB blob GETs, cold (aggregate)⁸`, 'MB/s', 'higher',
      { ...per((s) => medianBy(mn[s], (r) => r.coldMBps)), control: medianBy(mn.r2, (r) => r.coldMBps) }, { digits: 0, cold: true, control: 'r2' });
    row('many_warm', `${manyN} concurrent 1 MiB blob GETs, warm (aggregate)`, 'MB/s', 'higher',
      { ...per((s) => medianBy(mn[s], (r) => r.warmMBps)), control: medianBy(mn.r2, (r) => r.warmMBps) }, { digits: 0, warm: true, control: 'r2' });
  }
  if (!ran.has('pulls')) return;
  row('pull_cold', `skopeo copy --all ${PULL_REF}, cold³`, 's', 'lower',
    { ...per((s) => medianBy(pl[s], (r) => r.coldSecs)), control: medianBy(pl.pass, (r) => r.coldSecs) }, { digits: 2, cold: true, control: 'pass' });
  row('pull_cold_local', `skopeo copy --all ${PULL_REF}, cold, the local default (\`npm start\`: \`BLOB_FILL=after-answer\`)³`, 's', 'lower',
    { direct: null, proxy: null, mirror: medianBy(pl.local, (r) => r.coldSecs), control: medianBy(pl.pass, (r) => r.coldSecs) }, { digits: 2, cold: true, control: 'pass' });
  if (pl.noStore.length) {
    row('pull_cold_nostore', `skopeo copy --all ${PULL_REF}, cold, edgemirror with no store (Miniflare's Cache API off, no R2)³ ¹⁷`, 's', 'lower',
      { direct: null, proxy: null, mirror: medianBy(pl.noStore, (r) => r.coldSecs), control: medianBy(pl.pass, (r) => r.coldSecs) }, { digits: 2, cold: true, control: 'pass' });
    row('pull_cold_nostore_used', `The same pull again on that instance (cold still: nothing is kept), against the control's second pull³ ¹⁷`, 's', 'lower',
      { direct: null, proxy: null, mirror: medianBy(pl.noStore, (r) => r.usedSecs), control: medianBy(pl.pass, (r) => r.usedSecs) }, { digits: 2, cold: true, control: 'pass' });
  }
  row('pull_warm', `skopeo copy --all ${PULL_REF}, warm`, 's', 'lower',
    { ...per((s) => medianBy(pl[s], (r) => r.warmSecs)), control: medianBy(pl.r2, (r) => r.warmSecs) }, { digits: 2, warm: true, control: 'r2' });
  for (const [k, label, f, warm] of [
    ['upstream_cold', 'Upstream requests per pull, cold⁴', (r) => r.coldUpstream, false],
    ['upstream_warm', 'Upstream requests per pull, warm (within the tag TTL)⁴', (r) => r.warmUpstream, true],
    ['upstream_after_ttl', `Upstream requests per pull, after the tag TTL⁴ ⁵`, (r) => r.afterTtlUpstream, false],
  ]) {
    const u = per((s) => medianUpstream(pl[s], f));
    const c = k === 'upstream_cold' ? medianUpstream(pl.pass, f) : null;
    row(k, label, 'requests', 'lower', { ...per((s) => u[s]?.total ?? null), control: c?.total ?? null },
      { digits: 0, warm, cells: per((s) => upstreamCell(u[s])), control: c ? 'pass' : null });
  }
}

/** A burst's aggregate throughput: every client's bytes over the burst's wall time, MB/s (median over
 *  the repetitions). */
export function burstMBps(name, n, { series = 'main', warm = false } = {}) {
  return median(results.burst[name].filter((r) => r.n === n && r.bytesPerPull && (r.series ?? 'main') === series && !!r.warm === warm)
    .map((r) => (r.times.length * r.bytesPerPull) / (r.wallMs / 1000) / 1e6));
}

/** The keys of the concurrent-pull rows, one per CFG.burst.ns entry (the same in smoke and full runs). */
export const BURST_ROLES = ['single', 'mid', 'max'];

/** The bursts of system `name` for one N, series and warmth. */
export const burstsOf = (name, n, { series = 'main', warm = false } = {}) =>
  results.burst[name].filter((r) => r.n === n && (r.series ?? 'main') === series && !!r.warm === warm);

/** Concurrent pulls: pull times pooled over the repetitions, the upstream requests of one burst (the
 *  median repetition's), memory after the largest N; then the same N clients again, warm (the
 *  machine's own cost of N clients at once); then the small-layer series. */
function burstRows(row) {
  const b = CFG.burst, bm = results.burstMemory;
  const ns = b.ns, nMax = ns.at(-1);
  const series = [['main', '', b.layerBytes], ...(b.smallLayerBytes ? [['small', 's', b.smallLayerBytes]] : [])];
  for (const [sname, kp, bytes] of series) {
    const what = sname === 'main' ? 'of one image' : `of one image of ${b.layers} × ${(bytes / 1024).toFixed(0)} KiB layers`;
    for (const warm of [false, true]) {
      ns.forEach((n, i) => {
        const role = BURST_ROLES[i];
        const bursts = (s) => burstsOf(s, n, { series: sname, warm });
        const times = (s) => bursts(s).flatMap((r) => r.times);
        const samples = times('mirror').length || n * CFG.reps;
        const failed = (s) => bursts(s).reduce((a, r) => a + r.failed.length, 0);
        const note = (s, v, digits) => (failed(s) ? `${fmtNum(v, digits)} (${failed(s)} failed)` : fmtNum(v, digits));
        const kw = warm ? 'warm' : 'cold';
        const qs = warm || sname !== 'main' ? [[0.5, 'p50']] : [[0.5, 'p50'], [0.99, 'p99']];
        for (const [q, qn] of qs) {
          const values = per((s) => (times(s).length ? pct(times(s), q) : null));
          row(`burst_${kp}${role}_${warm ? 'warm_' : ''}${qn}`, `${n} concurrent ${kw} pull${n > 1 ? 's' : ''} ${what}, ${qn} pull time (n=${samples})⁹`, 'ms', 'lower', values,
            { digits: 0, cold: !warm, warm, cells: per((s) => (s === 'direct' ? '—' : note(s, values[s], 0))) });
        }
        if (warm && sname !== 'main') return;
        const u = per((s) => medianUpstream(bursts(s), (r) => r.upstream));
        row(`burst_${kp}${role}_${warm ? 'warm_' : ''}upstream`, `${n} concurrent ${kw} pull${n > 1 ? 's' : ''} ${what}: upstream requests, whole burst⁴ ⁹`, 'requests', 'lower',
          per((s) => u[s]?.total ?? null), { digits: 0, cold: !warm, warm, cells: per((s) => (s === 'direct' ? '—' : upstreamCell(u[s]))) });
      });
    }
  }
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
}

/** The big layer fetched cold by several clients at once: edgemirror (followers wait for the R2
 *  commit), the branch control (followers get a tee() branch), distribution. */
function followerRows(row, big) {
  const f = results.followers, nf = CFG.burst.followers;
  const lead = (s) => (f[s] && f[s].leader != null ? f[s].clients[f[s].leader] : null);
  const others = (s) => (f[s] ? f[s].clients.filter((c, i) => c.ok && i !== f[s].leader) : []);
  const pair = (a, b) => (a == null ? '—' : `${fmtNum(a, 0)} / ${fmtNum(b, 0)}`);
  const withCtl = (fn) => ({ ...per(fn), control: fn('branch') });
  const ctlCell = (fn) => ({ ...per(fn), control: fn('branch') });
  row('burst_big_leader', `Blob GET ${mib(big.size)} MiB, cold, ${nf} clients at once: the leader, time to first byte / total¹⁰`, 'ms', 'lower',
    withCtl((s) => lead(s)?.ms ?? null), { digits: 0, cold: true, control: 'branch', cells: ctlCell((s) => pair(lead(s)?.firstByteMs, lead(s)?.ms)) });
  row('burst_big_followers_ttfb', `The same: the other ${nf - 1} clients, time to first byte, median¹⁰`, 'ms', 'lower',
    withCtl((s) => median(others(s).map((c) => c.firstByteMs))), { digits: 0, cold: true, control: 'branch' });
  row('burst_big_followers', `The same: the other ${nf - 1} clients, total, median¹⁰`, 'ms', 'lower',
    withCtl((s) => median(others(s).map((c) => c.ms))), { digits: 0, cold: true, control: 'branch' });
  row('burst_big_rss', `The same: server process peak RSS (idle before)¹⁰`, 'MiB', 'lower',
    withCtl((s) => f[s]?.peakMb ?? null), { digits: 0, cold: true, control: 'branch',
      cells: ctlCell((s) => (f[s]?.peakMb != null ? `${fmtNum(f[s].peakMb, 0)} (${fmtNum(f[s].idleMb, 0)})` : '—')) });
  row('burst_big_upstream', `The same: upstream requests⁴ ¹⁰`, 'requests', 'lower', withCtl((s) => f[s]?.upstream.total ?? null),
    { digits: 0, cold: true, control: 'branch', cells: ctlCell((s) => (f[s] ? upstreamCell(f[s].upstream) : '—')) });
}

/** A burst split over two isolates of one workerd, with and without the coordinating Durable Object. */
function fleetRows(row) {
  const n = CFG.burst.fleetN;
  for (const [coord, k, what] of [[true, 'do', 'with the Durable Object'], [false, 'nodo', 'without it (coordinator unbound)']]) {
    const runs = results.fleet.filter((r) => r.coordinator === coord);
    const times = runs.flatMap((r) => r.times);
    const failed = runs.reduce((a, r) => a + r.failed.length, 0);
    for (const [q, qs] of [[0.5, 'p50'], [0.99, 'p99']]) {
      const v = times.length ? pct(times, q) : null;
      row(`fleet_${k}_${qs}`, `${n} concurrent cold pulls over 2 isolates, ${what}: ${qs} pull time (n=${times.length})¹¹`, 'ms', 'lower',
        { direct: null, proxy: null, mirror: v }, { digits: 0, cold: true, cells: { direct: '—', proxy: '—', mirror: failed ? `${fmtNum(v, 0)} (${failed} failed)` : fmtNum(v, 0) } });
    }
    const u = medianUpstream(runs, (r) => r.upstream);
    row(`fleet_${k}_upstream`, `The same, ${what}: upstream requests, whole burst⁴ ¹¹`, 'requests', 'lower',
      { direct: null, proxy: null, mirror: u?.total ?? null }, { digits: 0, cold: true, cells: { direct: '—', proxy: '—', mirror: upstreamCell(u) } });
  }
}

/** CPU per request in the workerd process, and a fresh instance's first answer. */
function cpuRows(row) {
  const c = results.cpu;
  const perReq = (what, system) => median(c.filter((x) => x.what === what && x.system === system).map((x) => x.perReqMs));
  const n = CFG.cpu.requests;
  row('cpu_v2', `CPU per request, \`GET /v2/\` answered by the worker itself (${n} requests × ${CFG.cpu.blocks})¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: perReq('v2', 'mirror'), control: perReq('v2', 'log') }, { digits: 3, warm: true, control: 'log' });
  if (c.some((x) => x.system === 'rust')) {
    row('cpu_v2_rust', `The same, against the smallest workers-rs worker (Rust → wasm, one log line)¹²`, 'ms', 'lower',
      { direct: null, proxy: null, mirror: perReq('v2', 'mirror'), control: perReq('v2', 'rust') }, { digits: 3, warm: true, control: 'rust' });
  }
  row('cpu_v2_ratelimit', `The same, with \`RATELIMIT\` bound (the default pull limit; a ping takes no pull)¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: perReq('v2_ratelimit', 'mirror'), control: perReq('v2', 'log') }, { digits: 3, warm: true, control: 'log' });
  row('cpu_manifest', `CPU per request, warm manifest GET by tag (a hit from the isolate's memory; ${n} requests × ${CFG.cpu.blocks})¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: perReq('manifest', 'mirror'), control: perReq('manifest', 'cache') }, { digits: 3, warm: true, control: 'cache' });
  row('cpu_manifest_store', `The same, every hit from the store (\`MANIFEST_MEMORY=0\`)¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: perReq('manifest_store', 'mirror'), control: perReq('manifest', 'cache') }, { digits: 3, warm: true, control: 'cache' });
  row('cpu_blob', `CPU per request, warm 1 MiB blob GET (an R2 hit; ${Math.ceil(n / 5)} requests × ${CFG.cpu.blocks})¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: perReq('blob', 'mirror'), control: perReq('blob', 'r2') }, { digits: 3, warm: true, control: 'r2' });
  const cs = (system, f) => median(results.coldStart.filter((x) => x.system === system).map(f));
  row('start_first_answer', `Cold start: a fresh instance's first answer, from the start (until ready)¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: cs('mirror', (x) => x.firstAnswerMs), control: cs('log', (x) => x.firstAnswerMs) },
    { digits: 0, cold: true, control: 'log', cells: { direct: '—', proxy: '—', mirror: `${fmtNum(cs('mirror', (x) => x.firstAnswerMs), 0)} (${fmtNum(cs('mirror', (x) => x.startMs), 0)})` } });
  row('start_first_request', `Cold start: the first request after ready (\`GET /v2/\`)¹²`, 'ms', 'lower',
    { direct: null, proxy: null, mirror: cs('mirror', (x) => x.firstAnswerMs - x.startMs), control: cs('log', (x) => x.firstAnswerMs - x.startMs) },
    { digits: 1, cold: true, control: 'log' });
  if (results.coldStart.some((x) => x.system === 'rust')) {
    row('start_first_answer_rust', `The same start, against the smallest workers-rs worker¹²`, 'ms', 'lower',
      { direct: null, proxy: null, mirror: cs('mirror', (x) => x.firstAnswerMs), control: cs('rust', (x) => x.firstAnswerMs) },
      { digits: 0, cold: true, control: 'rust' });
    row('start_first_request_rust', `The same first request, against the smallest workers-rs worker¹²`, 'ms', 'lower',
      { direct: null, proxy: null, mirror: cs('mirror', (x) => x.firstAnswerMs - x.startMs), control: cs('rust', (x) => x.firstAnswerMs - x.startMs) },
      { digits: 1, cold: true, control: 'rust' });
  }
}

/** wrk on a warm manifest: the median run, and every run's p99 (the tail differs between runs). */
function wrkRows(row) {
  const w = results.wrk;
  const med = (s, f) => median((w[s]?.runs ?? []).map(f));
  const title = `Warm manifest GET by digest, wrk -t${CFG.wrk.threads} -c${CFG.wrk.conns} -d${CFG.wrk.secs}s⁷`;
  row('wrk_rps', `${title}, median of ${CFG.wrkRuns} runs`, 'req/s', 'higher',
    { ...per((s) => med(s, (r) => r.rps)), control: med('cacheHit', (r) => r.rps) }, { digits: 0, warm: true, control: 'cache' });
  row('wrk_p99', 'The same, wrk p99 latency, median run⁷', 'ms', 'lower',
    { ...per((s) => med(s, (r) => wrkMs(r.latencyP99))), control: med('cacheHit', (r) => wrkMs(r.latencyP99)) }, { digits: 0, warm: true, control: 'cache' });
  const list = (s) => (w[s]?.runs ?? []).map((r) => fmtNum(wrkMs(r.latencyP99), 0)).join(', ') || '—';
  const maxOf = (s) => { const v = (w[s]?.runs ?? []).map((r) => wrkMs(r.latencyP99)); return v.length ? Math.max(...v) : null; };
  row('wrk_p99_runs', 'The same, every run\'s p99 (the ratio: the worst runs)⁷', 'ms', 'lower',
    { ...per(maxOf), control: maxOf('cacheHit') }, { digits: 0, warm: true, control: 'cache', cells: { ...per(list), control: list('cacheHit') } });
}

/** The memory phase: pass-through and stored-while-streamed throughput, and RSS. */
function memoryRows(row, big, huge, stored) {
  const mm = results.memory, bl = results.blob;
  const ptPeak = (what) => { const v = (mm.mirror?.passThrough ?? []).filter((p) => p.what === what).map((p) => p.peakMb); return v.length ? Math.max(...v) : null; };
  row('blob_big_passthrough', `Blob GET ${mib(big.size)} MiB, \`Range: bytes=0-\` (never stored: pass-through)²`, 'MB/s', 'higher',
    { direct: median((mm.direct?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)), proxy: null,
      mirror: median((mm.mirror?.passThrough ?? []).filter((p) => p.what === 'big').map((p) => p.mbps)), control: medianBy(bl.pass, (r) => r.coldMBps) }, { digits: 0, control: 'pass' });
  row('blob_stored_cold', `Blob GET ${mib(stored.size)} MiB, cold, stored while streamed`, 'MB/s', 'higher',
    { direct: mm.direct?.coldStoredMBps, proxy: mm.proxy?.coldStored?.mbps, mirror: mm.mirror?.coldStored?.mbps }, { digits: 0, cold: true });
  row('rss_idle', 'Server process RSS, idle⁶', 'MiB', 'lower', { direct: null, proxy: mm.proxy?.idleMb, mirror: mm.mirror?.idleMb }, { digits: 0 });
  row('rss_passthrough_big', `Server process peak RSS, ${mib(big.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('big') }, { digits: 0 });
  row('rss_passthrough_huge', `Server process peak RSS, ${mib(huge.size)} MiB pass-through`, 'MiB', 'lower', { direct: null, proxy: null, mirror: ptPeak('huge') }, { digits: 0 });
  row('rss_cold_big', `Server process peak RSS, ${mib(big.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: medianBy(bl.proxy, (r) => r.coldPeakMb), mirror: medianBy(bl.mirror, (r) => r.coldPeakMb), control: medianBy(bl.r2, (r) => r.coldPeakMb) }, { digits: 0, control: 'r2' });
  row('rss_cold_stored', `Server process peak RSS, ${mib(stored.size)} MiB cold, stored while streamed (R2 / disk)`, 'MiB', 'lower',
    { direct: null, proxy: mm.proxy?.coldStored?.peakMb, mirror: mm.mirror?.coldStored?.peakMb }, { digits: 0 });
  if (mm.mirror?.coldHuge) {
    row('rss_cold_huge', `Server process peak RSS, ${mib(huge.size)} MiB plain GET (${mm.mirror.coldHuge.stored ? 'stored' : 'over the store limit: not stored'})`, 'MiB', 'lower',
      { direct: null, proxy: null, mirror: mm.mirror.coldHuge.peakMb }, { digits: 0 });
  }
}
