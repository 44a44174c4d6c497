// What a process holds, read from /proc: resident memory and open sockets, and the workerd
// process Miniflare started for this node process.
import fs from 'node:fs';

/** Resident set size in kB, or null when the process is gone. */
export function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}

/** Open sockets (TCP, UDP, unix) of a process, from its file descriptors. */
export function socketCount(pid) {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++; } catch { /* closed meanwhile */ }
  }
  return n;
}

/** The workerd processes Miniflare runs for this node process (children named workerd). */
export function findWorkerd() {
  const mine = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/s.exec(stat);
      if (m && m[1] === 'workerd' && Number(m[2]) === process.pid) mine.push(Number(d));
    } catch { /* gone */ }
  }
  return mine;
}
