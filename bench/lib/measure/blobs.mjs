// Blob throughput: one big layer cold and warm, and many 1 MiB blobs fetched at once; the same
// through the control workers (R2 fill and hit; the pass-through's and a Cache API fill's first GET).
import { request } from '../../../tests/e2e/lib/http.mjs';
import { SYSTEMS } from '../config.mjs';
import { log } from '../log.mjs';
import { up, markUpstream, upstreamSince } from '../upstream.mjs';
import { sys, mirror, proxyHub, waitBlobsStored, blobHeaders, localDefaultMirror } from '../systems.mjs';
import { results } from '../results.mjs';
import { curlGet, curlParallel } from '../curl.mjs';
import { sampleRss, idleRssMb, waitFor } from '../tools.mjs';
import { freshControl, stopControl, waitControlStored, passToken } from '../controls.mjs';

/** The big layer (library/big), cold then warm, with the streaming process's RSS during the cold GET. */
export async function measureBigBlob(rep, big) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    await request(`${s.base}/v2/`);
    const url = `${s.base}/v2/library/big/blobs/${big.digest}`;
    const headers = await blobHeaders(name);
    // the process that streams (and stores) the bytes: its RSS before and during the cold GET
    const pid = name === 'mirror' ? mirror.pid : name === 'proxy' ? proxyHub.pid : null;
    const idleMb = pid ? await idleRssMb(pid, 500) : null;
    const sampler = pid ? sampleRss(pid) : null;
    const cold = await curlGet(url, { headers, follow: true, expectBytes: big.size });
    if (name === 'mirror') await waitBlobsStored([big.digest]);
    else await s.settle();
    const rss = sampler?.stop();
    const warm = await curlGet(url, { headers, follow: true, expectBytes: big.size });
    results.blob[name].push({ rep, coldMBps: cold.mbps, warmMBps: warm.mbps, idleMb, coldPeakMb: rss?.peakMb ?? null });
    log(`big blob ${name} rep ${rep}: cold ${cold.mbps.toFixed(0)} MB/s, warm ${warm.mbps.toFixed(0)} MB/s`);
  }
  await measureLocalDefault(rep, big);
  for (const name of rep % 2 ? ['pass', 'cache', 'r2'] : ['r2', 'cache', 'pass']) {
    const c = await freshControl(name);
    const url = `${c.base}/v2/library/big/blobs/${big.digest}`;
    const headers = name === 'pass' ? [`authorization: Bearer ${await passToken(['library/big'])}`] : [];
    const idleMb = await idleRssMb(c.pid, 500);
    const sampler = sampleRss(c.pid);
    const cold = await curlGet(url, { headers, expectBytes: big.size });
    if (name !== 'pass') await waitControlStored(name, [big.digest]);
    const rss = sampler.stop();
    const warm = name === 'pass' ? null : await curlGet(url, { headers, expectBytes: big.size });
    results.blob[name].push({ rep, coldMBps: cold.mbps, warmMBps: warm?.mbps ?? null, idleMb, coldPeakMb: rss.peakMb });
    log(`big blob, ${name} control rep ${rep}: first GET ${cold.mbps.toFixed(0)} MB/s` + (warm ? `, warm ${warm.mbps.toFixed(0)} MB/s` : '') + `, peak RSS ${rss.peakMb.toFixed(0)} MiB`);
    await stopControl(name);
  }
}

/** The big layer through edgemirror as `npm start` runs it (`localDefaultMirror`: R2 on disk,
 *  BLOB_FILL=after-answer, the coordinator): the first GET, the wait until the refill stored it, and the
 *  next GET (a hit); `upstream`: what reached the hub, its token server and blob host from the
 *  token request on. */
async function measureLocalDefault(rep, big) {
  let stored = false;
  const onLog = (line) => { if (line.includes('"msg":"stored"') && line.includes(big.digest.slice(7))) stored = true; };
  const m = await localDefaultMirror(`local-${rep}`, { onLog });
  try {
    const url = `${m.base}/v2/library/big/blobs/${big.digest}`;
    // As clients ask, and as the pass-through control's client is given its token before its
    // timed GET: the challenge, then a token for the repository from the mirror's /token.
    await request(`${m.base}/v2/`);
    const mark = markUpstream();
    const t = await request(`${m.base}/token?service=edgemirror&scope=repository:library/big:pull`);
    if (t.status !== 200) throw new Error(`local default /token: ${t.status} ${t.body}`);
    const headers = [`authorization: Bearer ${JSON.parse(t.body).token}`];
    const idleMb = await idleRssMb(m.pid, 500);
    const sampler = sampleRss(m.pid);
    const cold = await curlGet(url, { headers, expectBytes: big.size });
    const t0 = Date.now();
    const landed = await waitFor(() => stored, { timeout: 120_000, interval: 50 });
    const rss = sampler.stop();
    if (!landed) throw new Error('the local default did not store the big layer within 120 s');
    const storedAfterMs = Date.now() - t0;
    const warm = await curlGet(url, { headers, expectBytes: big.size });
    const upstream = await upstreamSince(mark);
    results.blob.local.push({ rep, coldMBps: cold.mbps, warmMBps: warm.mbps, storedAfterMs, upstream, idleMb, coldPeakMb: rss.peakMb });
    log(`big blob, local default (BLOB_FILL=after-answer) rep ${rep}: first GET ${cold.mbps.toFixed(0)} MB/s, stored ${storedAfterMs} ms after it (peak RSS ${rss.peakMb.toFixed(0)} MiB, idle ${idleMb.toFixed(0)}), warm ${warm.mbps.toFixed(0)} MB/s; the blob host served ${upstream.blobHost} GET(s)`);
  } finally {
    await m.stop();
  }
}

/** Warm bursts per system and repetition: one burst of 64 small GETs takes ~100 ms, so one alone
 *  is mostly jitter (and, on a fresh instance, the first run of the hit's code). */
const WARM_BURSTS = 5;

/** `WARM_BURSTS` bursts of `urls` at once: the median burst (by MB/s), with every burst's MB/s. */
async function warmBursts(urls, opts) {
  const runs = [];
  for (let i = 0; i < WARM_BURSTS; i++) runs.push(await curlParallel(urls, opts));
  const sorted = [...runs].sort((a, b) => a.mbps - b.mbps);
  const listenOverflows = runs.reduce((a, r) => a + (r.listenOverflows ?? 0), 0);
  return { ...sorted[Math.floor(sorted.length / 2)], listenOverflows, burstsMBps: runs.map((r) => +r.mbps.toFixed(0)) };
}

/** `many` 1 MiB blobs (library/many) at once, cold then warm. */
export async function measureMany(rep, many) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    await request(`${s.base}/v2/`);
    const urls = many.map((b) => `${s.base}/v2/library/many/blobs/${b.digest}`);
    const headers = await blobHeaders(name);
    const m = markUpstream();
    const cold = await curlParallel(urls, { headers, follow: true, expectBytesEach: 1 << 20 });
    if (name === 'mirror') await waitBlobsStored(many.map((b) => b.digest));
    else await s.settle();
    const coldUp = await upstreamSince(m);
    const warm = await warmBursts(urls, { headers, follow: true, expectBytesEach: 1 << 20 });
    const row = { rep, coldMBps: cold.mbps, coldWallMs: cold.wallMs, warmMBps: warm.mbps, warmWallMs: warm.wallMs, warmBurstsMBps: warm.burstsMBps, coldUpstream: coldUp,
      listenOverflows: { cold: cold.listenOverflows, warm: warm.listenOverflows } };
    if (name === 'direct') { // reference: the same blobs from the plain registry (Go, no redirect)
      const plain = await curlParallel(many.map((b) => `${up.plain}/v2/library/many/blobs/${b.digest}`), { expectBytesEach: 1 << 20 });
      row.plainMBps = plain.mbps;
      row.plainListenOverflows = plain.listenOverflows;
    }
    results.many[name].push(row);
    log(`${many.length} x 1 MiB ${name} rep ${rep}: cold ${cold.wallMs.toFixed(0)} ms, warm ${warm.wallMs.toFixed(0)} ms` +
      ` (listen queue overflows: ${cold.listenOverflows} cold, ${warm.listenOverflows} warm; upstream tokens fetched cold: ${coldUp.token})`);
  }
  const c = await freshControl('r2');
  const urls = many.map((b) => `${c.base}/v2/library/many/blobs/${b.digest}`);
  const m = markUpstream();
  const cold = await curlParallel(urls, { expectBytesEach: 1 << 20 });
  await waitControlStored('r2', many.map((b) => b.digest));
  const coldUp = await upstreamSince(m);
  const warm = await warmBursts(urls, { expectBytesEach: 1 << 20 });
  results.many.r2.push({ rep, coldMBps: cold.mbps, warmMBps: warm.mbps, warmBurstsMBps: warm.burstsMBps, coldUpstream: coldUp });
  log(`${many.length} x 1 MiB, R2 control rep ${rep}: cold ${cold.wallMs.toFixed(0)} ms, warm ${warm.wallMs.toFixed(0)} ms (upstream tokens fetched cold: ${coldUp.token})`);
  await stopControl('r2');
}
