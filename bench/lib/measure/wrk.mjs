// Warm manifest GETs by digest under wrk, beside two control workers in the same workerd build: a
// constant answer, and the Cache API control's hit of the same manifest (is the tail the local Cache
// API simulator's or edgemirror's?). Several runs each, interleaved; every run's p99 is kept.
import { request } from '../../../tests/e2e/lib/http.mjs';
import { run, within } from '../../../tests/e2e/lib/proc.mjs';
import { CFG, MANIFEST_REF, PROXY_PORTS, SYSTEMS, WRK_CONTROL_PORT } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { U } from '../harness.mjs';
import { up } from '../upstream.mjs';
import { sys, mirror, freshMirror, settleMirror } from '../systems.mjs';
import { freshControl, stopControl, waitControlStored } from '../controls.mjs';
import { results } from '../results.mjs';
import { listenOverflows, sha256 } from '../tools.mjs';

async function wrk(url, headers = {}) {
  const args = [`-t${CFG.wrk.threads}`, `-c${CFG.wrk.conns}`, `-d${CFG.wrk.secs}s`, '--latency', '--timeout', '5s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const lo = listenOverflows();
  const r = await run('wrk', args, { timeout: (CFG.wrk.secs + 30) * 1000 });
  const overflows = listenOverflows() - lo;
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors:(.*)/.exec(out)?.[1]?.trim() ?? null;
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? null;
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? null;
  if (r.code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk ${url} failed: ${r.stderr} ${out}`);
  if (non2xx) anomaly(`wrk ${url}: ${non2xx} non-2xx responses`);
  if (sock) anomaly(`wrk ${url}: socket errors ${sock}`);
  return { rps, non2xx, socketErrors: sock, latencyP50: p50, latencyP99: p99, listenOverflows: overflows };
}

/** wrk's latency ("537.02ms", "1.58s", "812.00us") in ms. */
export function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return null;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2]];
}

/** The same manifest by digest from the plain registry itself and from the caches of it, each
 *  answered once (the mirror's answer must then be a cache hit). -> { direct, proxy, mirror } URLs */
async function warmTargets(images, headers) {
  const digest = images[`${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`].digest;
  const urls = {
    direct: `${up.plain}/v2/${MANIFEST_REF.repo}/manifests/${digest}`,
    proxy: `http://127.0.0.1:${PROXY_PORTS.plain}/v2/${MANIFEST_REF.repo}/manifests/${digest}`,
    mirror: `${sys.mirror.base}/v2/plain/${MANIFEST_REF.repo}/manifests/${digest}`,
  };
  for (const name of SYSTEMS) { // warm them; check the mirror answers from its cache
    const r = await request(urls[name], { headers });
    if (r.status !== 200 || sha256(r.body) !== digest) throw new Error(`wrk warm-up ${name}: ${r.status}`);
  }
  await settleMirror();
  const check = await request(urls.mirror, { headers });
  if (!/hit/.test(check.headers['cache-status'] ?? '')) anomaly(`mirror: manifest by digest not a cache hit before wrk (${check.headers['cache-status']})`);
  return urls;
}

/** The runtime's own tail, in the same workerd build: a JavaScript worker answering a constant 1 KB. */
async function constantWorker() {
  const { Miniflare } = await import('miniflare');
  return new Miniflare({ modules: true, compatibilityDate: '2026-04-01', host: '127.0.0.1', port: WRK_CONTROL_PORT,
    script: `export default { async fetch(req) { return new Response('x'.repeat(1000)); } };` });
}

export async function measureWrk(images) {
  if (!mirror) { await freshMirror(); }
  const headers = { accept: U.ACCEPT_ALL };
  const urls = await warmTargets(images, headers);
  for (const name of SYSTEMS) results.wrk[name] = { url: urls[name], runs: [] };
  const digest = images[`${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`].digest;
  const cache = await freshControl('cache');
  results.wrk.cacheHit = { url: `${cache.base}/v2/${MANIFEST_REF.repo}/manifests/${digest}`, runs: [] };
  const first = await request(results.wrk.cacheHit.url, { headers });
  if (first.status !== 200 || sha256(first.body) !== digest) throw new Error(`wrk: Cache API control ${first.status}`);
  await waitControlStored('cache', [digest]);
  const check = await request(results.wrk.cacheHit.url, { headers });
  if (!/hit/.test(check.headers['cache-status'] ?? '')) anomaly(`Cache API control: not a hit before wrk (${check.headers['cache-status']})`);
  const control = await constantWorker();
  try {
    await within(control.ready, 60_000);
    results.wrk.constant = { url: `http://127.0.0.1:${WRK_CONTROL_PORT}/constant`, runs: [] };
    for (let rep = 0; rep < CFG.wrkRuns; rep++) {
      const names = ['mirror', 'cacheHit', 'constant', 'direct', 'proxy'];
      for (const name of rep % 2 ? [...names].reverse() : names) {
        const w = await wrk(results.wrk[name].url, headers);
        results.wrk[name].runs.push(w);
        log(`wrk ${name} run ${rep}: ${w.rps.toFixed(0)} req/s (p50 ${w.latencyP50}, p99 ${w.latencyP99})`);
      }
    }
  } finally {
    await control.dispose();
    await stopControl('cache');
  }
}
