// Server process memory (RSS) while layers stream through: pass-through, cold and stored.
import { request } from '../../../tests/e2e/lib/http.mjs';
import { sleep } from '../../../tests/e2e/lib/proc.mjs';
import { CFG } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { up } from '../upstream.mjs';
import { sys, mirror, proxyHub, freshMirror, freshProxyHub, waitBlobsStored, blobHeaders } from '../systems.mjs';
import { results } from '../results.mjs';
import { curlGet } from '../curl.mjs';
import { hr, sampleRss, idleRssMb } from '../tools.mjs';

const blobUrl = (base, blob, prefix = '') => `${base}/v2/${prefix}${blob.repo}/blobs/${blob.digest}`;

export async function measureMemory(big, huge, stored) {
  big = { ...big, repo: 'library/big' };
  await mirrorMemory(big, huge, stored);
  await proxyMemory(stored);
  // direct, for reference: the same layer through the hub's redirect (no process of ours streams it)
  results.memory.direct.coldStoredMBps = (await curlGet(blobUrl(up.hub, stored), { headers: await blobHeaders('direct'), follow: true, expectBytes: stored.size, timeoutSec: 600 })).mbps;
}

/** edgemirror: idle; the big and the huge layer passed through (Range: bytes=0- is never stored);
 *  a layer the mirror stores (≤ its 512 MiB limit) cold, sampled until it logged the R2 write; and
 *  the huge one as a plain GET (over the limit: streamed, not stored). */
async function mirrorMemory(big, huge, stored) {
  const mem = results.memory;
  await freshMirror();
  await request(`${sys.mirror.base}/v2/`);
  const pid = mirror.pid;
  mem.mirror = { pid, idleMb: await idleRssMb(pid), passThrough: [] };
  mem.direct = { passThrough: [] };
  for (const [what, blob] of [['big', big], ['huge', huge]]) {
    for (let i = 0; i < (what === 'big' ? CFG.reps : 1); i++) await passThrough(pid, what, blob);
  }
  if (huge !== stored) { // first: after a stored blob, the runtime's RSS stays up
    mem.mirror.coldHuge = await coldGet(pid, huge);
    if (!mem.mirror.coldHuge.stored) {
      anomaly(`a ${CFG.hugeMb} MiB blob is streamed but never stored, in R2 either (${mem.mirror.coldHuge.cacheStatus}): ` +
        'policy.rs applies MAX_STORED_BLOB (the Cache API\'s 512 MiB limit) to every store');
    }
  }
  mem.mirror.coldStored = await coldGet(pid, stored);
  if (!mem.mirror.coldStored.stored) anomaly(`the mirror did not store the ${CFG.storedMb} MiB blob: ${mem.mirror.coldStored.cacheStatus}`);
  mem.mirror.idleAfterMb = await idleRssMb(pid);
}

/** One `Range: bytes=0-` GET through the mirror (never stored) with workerd's peak RSS, and the same
 *  request to the hub directly for its throughput. */
async function passThrough(pid, what, blob) {
  const mem = results.memory;
  const sampler = sampleRss(pid);
  const r = await curlGet(blobUrl(sys.mirror.base, blob), { headers: ['range: bytes=0-'], expectBytes: blob.size, timeoutSec: 600 });
  const s = sampler.stop();
  mem.mirror.passThrough.push({ what, sizeMb: blob.size / 2 ** 20, mbps: r.mbps, code: r.code, cacheStatus: r.headers['cache-status'], peakMb: s.peakMb });
  log(`pass-through ${what} (${(blob.size / 2 ** 20).toFixed(0)} MiB): ${r.mbps.toFixed(0)} MB/s, workerd peak RSS ${s.peakMb.toFixed(0)} MiB`);
  const d = await curlGet(blobUrl(up.hub, blob), { headers: [...await blobHeaders('direct'), 'range: bytes=0-'], follow: true, expectBytes: blob.size, timeoutSec: 600 });
  mem.direct.passThrough.push({ what, mbps: d.mbps });
}

/** A plain GET of a blob the mirror does not hold, sampled until it logged the store write. */
async function coldGet(pid, blob) {
  const beforeMb = await idleRssMb(pid, 500);
  const sampler = sampleRss(pid);
  const t0 = hr();
  const r = await curlGet(blobUrl(sys.mirror.base, blob), { expectBytes: blob.size, timeoutSec: 600 });
  const cs = r.headers['cache-status'] ?? '';
  const willStore = /; stored/.test(cs);
  if (willStore) await waitBlobsStored([blob.digest], 300_000);
  const s = sampler.stop();
  log(`cold ${(blob.size / 2 ** 20).toFixed(0)} MiB: ${r.mbps.toFixed(0)} MB/s, workerd peak RSS ${s.peakMb.toFixed(0)} MiB (${cs})`);
  return { sizeMb: blob.size / 2 ** 20, mbps: r.mbps, beforeMb, peakMb: s.peakMb, cacheStatus: cs, stored: willStore, untilStoredSecs: (hr() - t0) / 1000 };
}

/** distribution's proxy: idle, then the stored layer cold (written to its disk while streamed). */
async function proxyMemory(stored) {
  const mem = results.memory;
  await freshProxyHub();
  await request(`${sys.proxy.base}/v2/`);
  const ppid = proxyHub.pid;
  mem.proxy = { pid: ppid, idleMb: await idleRssMb(ppid) };
  const sampler = sampleRss(ppid);
  const r = await curlGet(blobUrl(sys.proxy.base, stored), { expectBytes: stored.size, timeoutSec: 600 });
  await sleep(500);
  const s = sampler.stop();
  mem.proxy.coldStored = { mbps: r.mbps, peakMb: s.peakMb };
  log(`distribution proxy cold (${CFG.storedMb} MiB): ${r.mbps.toFixed(0)} MB/s, peak RSS ${s.peakMb.toFixed(0)} MiB`);
}
