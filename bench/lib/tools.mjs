// Small tools: timing, statistics, hashing, waiting, and what the kernel and /proc tell about
// listen queues and process memory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { sleep } from '../../tests/e2e/lib/proc.mjs';
import { rssKb } from '../../tests/e2e/lib/procstats.mjs';

export const hr = () => Number(process.hrtime.bigint()) / 1e6; // ms
export const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
export const pct = (xs, q) => { // nearest rank
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.max(0, Math.ceil(q * v.length) - 1)];
};
export const sha256 = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
export const newAgent = () => new http.Agent({ keepAlive: true, maxSockets: 1 });

export async function waitFor(fn, { timeout, interval = 100 }) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) return null;
    await sleep(interval);
  }
}

/** The kernel's count of connections dropped because a listen queue was full (all sockets). */
export function listenOverflows() {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0].split(/\s+/), vals = lines[1].split(/\s+/);
    return Number(vals[names.indexOf('ListenOverflows')]);
  } catch { return null; }
}

/** Samples a process's RSS every `everyMs` until stop(): -> { peakMb, lastMb, samples } */
export function sampleRss(pid, everyMs = 20) {
  let peak = rssKb(pid) ?? 0, n = 1;
  const t = setInterval(() => { const r = rssKb(pid); if (r != null) { n++; if (r > peak) peak = r; } }, everyMs);
  return { stop: () => { clearInterval(t); const last = rssKb(pid); if (last > peak) peak = last; return { peakMb: peak / 1024, lastMb: last / 1024, samples: n }; } };
}
export async function idleRssMb(pid, ms = 1000) {
  const s = sampleRss(pid, 50);
  await sleep(ms);
  return s.stop().lastMb;
}
