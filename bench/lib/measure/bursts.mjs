// Concurrent cold pulls (issue 13): N clients pull one image nobody holds yet, all at the same
// moment, through distribution's proxy and through edgemirror (which coalesces the misses of one
// isolate: one upstream exchange per tag, manifest and blob, the others wait for the store write).
// A fresh image for every N and repetition, so every burst is cold; pull times, the upstream
// requests of the whole burst, and the servers' memory after the largest N. Also: one big layer
// fetched cold by several clients at once, the leader's and the followers' time to first byte.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { request } from '../../../tests/e2e/lib/http.mjs';
import { CFG, ROOT } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { onCleanup } from '../cleanup.mjs';
import { U } from '../harness.mjs';
import { markUpstream, upstreamSince } from '../upstream.mjs';
import { sys, mirror, proxyHub, waitBlobsStored } from '../systems.mjs';
import { results } from '../results.mjs';
import { pullImage, timedGet } from '../client.mjs';
import { freshControl, stopControl, waitControlStored } from '../controls.mjs';
import { hr, median, sampleRss, idleRssMb, listenOverflows } from '../tools.mjs';

/** The systems of these rows: direct has nothing to coalesce (each client is its own). */
export const BURST_SYSTEMS = ['proxy', 'mirror'];
const RUN_ID = crypto.randomUUID().slice(0, 8);
const pushed = []; // { repo, digests } of the images pushed by this run, removed at the end

/** The isolate's wasm memory in bytes, from edgemirror's /healthz. */
async function wasmBytes() {
  const r = await request(`${sys.mirror.base}/healthz`, { timeout: 30_000 });
  const v = Number(r.headers['edgemirror-wasm-memory']);
  if (!(v > 0)) anomaly(`/healthz: edgemirror-wasm-memory ${r.headers['edgemirror-wasm-memory']} (HTTP ${r.status})`);
  return v > 0 ? v : null;
}

/** A fresh image (random layers) in the upstreams' shared storage, so both systems meet it cold. */
export async function pushBurstImage(rep, n, { kind = 'burst', layerBytes = CFG.burst.layerBytes } = {}) {
  const repo = `library/${kind}-${RUN_ID}-r${rep}-n${n}`;
  if (!pushed.length) onCleanup('burst images', removePushed);
  const img = await U.pushImage(repo, { layers: CFG.burst.layers, layerBytes });
  const manifest = JSON.parse(img.manifest.bytes);
  pushed.push({ repo, digests: [img.manifest.digest, manifest.config.digest, ...img.layers.map((l) => l.digest)] });
  return img;
}

/** The upstream storage is kept between runs; the burst images are not (random, used once). */
function removePushed() {
  const v2 = path.join(ROOT, 'data', 'upstream', 'docker', 'registry', 'v2');
  for (const { repo, digests } of pushed.splice(0)) {
    fs.rmSync(path.join(v2, 'repositories', repo), { recursive: true, force: true });
    for (const d of digests) fs.rmSync(path.join(v2, 'blobs', 'sha256', d.slice(7, 9), d.slice(7)), { recursive: true, force: true });
  }
}

/** The hub's requests counted by "METHOD path status" (a compact view of what was asked twice). */
export function hubCounts(u) {
  const c = {};
  for (const q of u.hub) c[q] = (c[q] ?? 0) + 1;
  delete u.hub;
  u.hubCounts = c;
  return u;
}

/** `n` clients pull `img` at once from `base` (with `headers`; system `name`'s when not given). */
export async function burst(name, n, img, { base = sys[name]?.base, headers = null, label = sys[name]?.label ?? name } = {}) {
  const s = { base, label };
  headers ??= await sys[name].headers();
  const m = markUpstream(), lo = listenOverflows();
  const t0 = hr();
  const h = (i) => (typeof headers === 'function' ? headers(i) : headers);
  const out = await Promise.allSettled(Array.from({ length: n }, (_, i) =>
    pullImage(s.base, img.repo, 'latest', { manifestDigest: img.manifest.digest, headers: h(i), idleMs: 150_000, deadlineMs: 300_000 })));
  const wallMs = hr() - t0;
  const overflows = listenOverflows() - lo;
  const upstream = hubCounts(await upstreamSince(m));
  const ok = out.filter((o) => o.status === 'fulfilled').map((o) => o.value);
  const failed = out.filter((o) => o.status === 'rejected').map((o) => o.reason?.message ?? String(o.reason));
  if (failed.length) anomaly(`${s.label}, ${n} concurrent cold pulls: ${failed.length} failed, e.g. ${failed[0]}`);
  return {
    n, repo: img.repo, configDigest: JSON.parse(img.manifest.bytes).config.digest, wallMs, listenOverflows: overflows, upstream, failed,
    times: ok.map((p) => +p.ms.toFixed(2)), manifestMs: ok.map((p) => +p.manifestMs.toFixed(2)),
    bytesPerPull: ok[0]?.bytes ?? null,
  };
}

/** One repetition: fresh instances; for each N a fresh image, N clients at once, then the same N
 *  clients again once it is held (warm: nothing to coalesce); the servers' RSS during and after the
 *  largest N, and edgemirror's wasm memory before and after. Then the small-layer series (full runs). */
export async function measureBursts(rep) {
  const ns = CFG.burst.ns;
  const series = [['main', CFG.burst.layerBytes], ...(CFG.burst.smallLayerBytes ? [['small', CFG.burst.smallLayerBytes]] : [])];
  const images = {};
  for (const [sname, layerBytes] of series) {
    images[sname] = [];
    for (const n of ns) images[sname].push(await pushBurstImage(rep, n, { kind: sname === 'main' ? 'burst' : 'small', layerBytes }));
  }
  const order = rep % 2 ? [...BURST_SYSTEMS].reverse() : BURST_SYSTEMS; // neither always meets the hub first
  for (const name of order) {
    const s = sys[name];
    await s.fresh();
    await request(`${s.base}/v2/`);
    const pid = name === 'mirror' ? mirror.pid : proxyHub.pid;
    const mem = { rep, n: ns.at(-1), idleMb: await idleRssMb(pid, 500) };
    if (name === 'mirror') mem.wasmIdleBytes = await wasmBytes();
    for (const [sname] of series) {
      for (const [i, n] of ns.entries()) {
        const last = sname === 'main' && i === ns.length - 1;
        const sampler = last ? sampleRss(pid) : null;
        const b = await burst(name, n, images[sname][i]);
        await s.settle(); // edgemirror: until its store writes are done
        if (last) {
          mem.peakMb = sampler.stop().peakMb;
          mem.afterMb = await idleRssMb(pid, 500);
          if (name === 'mirror') mem.wasmAfterBytes = await wasmBytes();
        }
        results.burst[name].push({ rep, series: sname, warm: false, ...b });
        const w = await burst(name, n, images[sname][i]); // the same clients, the image now held
        results.burst[name].push({ rep, series: sname, warm: true, ...w });
        log(`${n} concurrent pulls (${sname}) ${name} rep ${rep}: cold p50 ${fmt(median(b.times))} ms, max ${fmt(Math.max(...b.times))} ms, ` +
          `${b.upstream.total} upstream (${b.upstream.get} GET, ${b.upstream.head} HEAD, ${b.upstream.token} token, ${b.upstream.blobHost} blob host)` +
          (b.listenOverflows ? `, ${b.listenOverflows} listen-queue overflows` : '') + `; warm p50 ${fmt(median(w.times))} ms, ${w.upstream.total} upstream`);
      }
    }
    results.burstMemory[name].push(mem);
    log(`after ${ns.at(-1)} concurrent pulls ${name}: RSS ${mem.afterMb.toFixed(0)} MiB (peak ${mem.peakMb.toFixed(0)}, idle ${mem.idleMb.toFixed(0)})` +
      (name === 'mirror' ? `, wasm memory ${fmt(mem.wasmAfterBytes / 2 ** 20)} MiB (idle ${fmt(mem.wasmIdleBytes / 2 ** 20)})` : ''));
  }
}
const fmt = (v) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(0));

/** CFG.burst.followers clients GET the big layer at once, cold: edgemirror's leader streams it from
 *  the upstream into R2, the followers wait for that write to land and stream from R2; the branch
 *  control's followers get a tee() branch of the leader's stream; distribution streams to each. The
 *  serving process's peak RSS until the last client and the store write are done. */
export async function measureFollowers(big) {
  const n = CFG.burst.followers;
  for (const name of [...BURST_SYSTEMS, 'branch']) {
    let base, pid, label;
    if (name === 'branch') {
      const c = await freshControl('branch');
      [base, pid, label] = [c.base, c.pid, 'branch control'];
    } else {
      const s = sys[name];
      await s.fresh();
      await request(`${s.base}/v2/`);
      [base, pid, label] = [s.base, name === 'mirror' ? mirror.pid : proxyHub.pid, s.label];
    }
    const url = `${base}/v2/library/big/blobs/${big.digest}`;
    const idleMb = await idleRssMb(pid, 500);
    const sampler = sampleRss(pid);
    const m = markUpstream();
    const out = await Promise.allSettled(Array.from({ length: n }, () => timedGet(url, { idleMs: 180_000, deadlineMs: 600_000 })));
    const upstream = hubCounts(await upstreamSince(m));
    const clients = out.map((o) => (o.status === 'fulfilled'
      ? { headersMs: o.value.headersMs, firstByteMs: o.value.firstByteMs, ms: o.value.ms, cacheStatus: o.value.headers['cache-status'] ?? null,
        ok: o.value.digest === big.digest && o.value.bytes === big.size }
      : { error: o.reason?.message ?? String(o.reason) }));
    const bad = clients.filter((c) => !c.ok);
    if (bad.length) anomaly(`${label}, ${n} clients for one cold ${(big.size / 2 ** 20).toFixed(0)} MiB blob: ${bad.length} failed or wrong bytes: ${bad[0].error ?? 'digest/size mismatch'}`);
    // the leader: edgemirror's / the control's one answer that went upstream (cache-status miss);
    // distribution has no such mark: the client answered first
    const marked = name !== 'proxy';
    const good = clients.map((c, i) => [c, i]).filter(([c]) => c.ok);
    let leader = good.find(([c]) => marked && /miss/.test(c.cacheStatus ?? ''));
    if (!leader && good.length) leader = good.reduce((a, b) => (b[0].headersMs < a[0].headersMs ? b : a));
    if (marked && good.filter(([c]) => /miss/.test(c.cacheStatus ?? '')).length !== 1) {
      anomaly(`${label}, ${n} clients for one cold blob: ${good.filter(([c]) => /miss/.test(c.cacheStatus ?? '')).length} answers went upstream (expected 1): ${clients.map((c) => c.cacheStatus).join(' | ')}`);
    }
    if (name === 'mirror') await waitBlobsStored([big.digest]);
    else if (name === 'branch') await waitControlStored('branch', [big.digest]);
    else await sys[name].settle();
    const peakMb = sampler.stop().peakMb;
    results.followers[name] = { n, sizeMb: big.size / 2 ** 20, leader: leader?.[1] ?? null, clients, upstream, idleMb, peakMb };
    if (name === 'branch') await stopControl('branch');
    const f = good.filter(([, i]) => i !== leader?.[1]).map(([c]) => c);
    log(`${n} clients, one cold ${(big.size / 2 ** 20).toFixed(0)} MiB blob, ${name}: leader TTFB ${fmt(leader?.[0].firstByteMs)} / total ${fmt(leader?.[0].ms)} ms; ` +
      `followers TTFB median ${fmt(median(f.map((c) => c.firstByteMs)))} / total ${fmt(median(f.map((c) => c.ms)))} ms; ${upstream.total} upstream; peak RSS ${fmt(peakMb)} MiB (idle ${fmt(idleMb)})`);
  }
}
