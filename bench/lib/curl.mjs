// Blob downloads with curl, one at a time or all at once.
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../tests/e2e/lib/proc.mjs';
import { ROOT } from './config.mjs';
import { hr, listenOverflows } from './tools.mjs';

/** One GET with curl to /dev/null. -> { code, bytes, secs, mbps, headers (of the last response) } */
export async function curlGet(url, { headers = [], follow = false, expectBytes, timeoutSec = 300 } = {}) {
  const hfile = path.join(ROOT, 'curl-headers.txt');
  fs.rmSync(hfile, { force: true });
  const args = ['-sS', '-o', '/dev/null', '-D', hfile, '--max-time', String(timeoutSec), '-w', '%{http_code} %{size_download} %{time_total}'];
  if (follow) args.push('-L');
  for (const h of headers) args.push('-H', h);
  args.push(url);
  const r = await run('curl', args, { timeout: (timeoutSec + 10) * 1000 });
  const [code, bytes, secs] = r.stdout.trim().split(' ').map(Number);
  if (!(code === 200 || code === 206) || (expectBytes != null && bytes !== expectBytes)) {
    throw new Error(`curl ${url}: HTTP ${code}, ${bytes} bytes (expected ${expectBytes}) ${r.stderr.trim()}`);
  }
  return { code, bytes, secs, mbps: bytes / secs / 1e6, headers: lastHeaders(hfile) };
}

/** The header fields of the last response in curl's -D file (after redirects), lower-cased names. */
function lastHeaders(hfile) {
  const last = {};
  try {
    const blocks = fs.readFileSync(hfile, 'latin1').split(/\r?\n\r?\n/).filter((b) => b.trim());
    for (const l of (blocks.at(-1) ?? '').split(/\r?\n/).slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) last[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
  } catch { return {}; }
  return last;
}

/** All `urls` at once from one curl (--parallel). -> { wallMs, bytes, mbps } */
export async function curlParallel(urls, { headers = [], follow = false, expectBytesEach, timeoutSec = 120 } = {}) {
  const cfg = path.join(ROOT, 'curl-parallel.cfg');
  fs.writeFileSync(cfg, urls.map((u) => `url = "${u}"\noutput = "/dev/null"\n`).join(''));
  const args = ['-sS', '-Z', '--parallel-immediate', '--parallel-max', String(Math.min(urls.length, 300)),
    '--max-time', String(timeoutSec), '-w', '%{http_code} %{size_download}\n', '-K', cfg];
  if (follow) args.push('-L');
  for (const h of headers) args.push('-H', h);
  const t0 = hr(), lo = listenOverflows();
  const r = await run('curl', args, { timeout: (timeoutSec + 10) * 1000 });
  const wallMs = hr() - t0;
  const overflows = listenOverflows() - lo;
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number));
  // with -L, each hop is written; keep the final answers
  const finals = lines.filter(([c]) => c !== 307 && c !== 302);
  const bad = finals.filter(([c, b]) => c !== 200 || (expectBytesEach != null && b !== expectBytesEach));
  if (finals.length !== urls.length || bad.length) {
    throw new Error(`curl --parallel: ${finals.length}/${urls.length} answers, bad: ${JSON.stringify(bad.slice(0, 5))} ${r.stderr.slice(0, 500)}`);
  }
  const bytes = finals.reduce((a, [, b]) => a + b, 0);
  return { wallMs, bytes, mbps: bytes / (wallMs / 1000) / 1e6, listenOverflows: overflows };
}
