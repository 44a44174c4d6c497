// The fast local mirror: the built worker in workerd through the Miniflare API (wrangler dev's own
// proxy streams large bodies ~100x slower). Used by `npm start` and by the end-to-end tests.
//
//   `node scripts/serve.mjs` runs scripts/start.mjs (npm start: options there).
import { Miniflare } from 'miniflare';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SCRIPT = path.join(ROOT, 'build/worker/shim.mjs');
const VAR_NAMES = ['UPSTREAMS', 'DEFAULT_UPSTREAM', 'UPSTREAM_TIMEOUT_MS', 'PREWARM', 'PREWARM_BUDGET', 'CONFIG_RELOAD_SECS', 'ADMIN_TOKEN', 'ADMIN_TOKEN_NAME', 'ALLOW_CIDRS', 'TRUSTED_CIDRS', 'RATE_LIMIT', 'UPSTREAM_SECRETS', 'STORE_MAX_BYTES', 'STORE_MAX_IDLE_DAYS', 'MANIFEST_MEMORY', 'BLOB_FILL'];

/** The built worker as Miniflare runs it, with variables `vars` and an R2 bucket as BLOBS (`r2`). */
function workerOptions({ vars, r2, cache = true }) {
  return {
    scriptPath: SCRIPT,
    modules: true,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2026-04-01',
    bindings: vars,
    cache,
    r2Buckets: r2 ? ['BLOBS'] : [],
  };
}

/** Starts Miniflare with `options` on 127.0.0.1:port; every line the runtime prints goes to
 *  `onLog` (else the console). Returns { url, mf, stop }. */
async function launch(options, port, onLog) {
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: run npm run build`);
  const mf = new Miniflare({
    ...options,
    host: '127.0.0.1',
    port,
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        let buf = '';
        stream.on('data', (chunk) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (onLog) onLog(line); else console.log(line);
          }
        });
      }
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return { url, mf, stop: () => mf.dispose() };
}

/** Starts the worker on 127.0.0.1:port. `vars` are the Worker's variables; `r2` binds an R2 bucket
 *  as BLOBS, `kv` a KV namespace as CONFIG (the admin API's store), `rateLimit` one as RATELIMIT
 *  (per-client pull counters), `d1` a D1 database as STATS (inventory and stats; the worker
 *  creates its tables on first use); `state` persists KV/R2/D1/cache under that directory (else in memory), except the Cache API
 *  with `freshCache`; `cache: false` turns the Cache API into Miniflare's no-op (nothing is kept);
 *  `onLog(line)` gets
 *  every line the worker prints. Returns { url, mf, stop }. */
export async function startMirror({ port = 8787, vars = {}, state, r2 = false, cache = true, kv = false, rateLimit = false, freshCache = false, coordinator = false, triggers = false, d1 = false, outboundDelayMs = 0, onLog } = {}) {
  const persist = state ? { kvPersist: path.join(state, 'kv'), r2Persist: path.join(state, 'r2'), d1Persist: path.join(state, 'd1'), ...(freshCache ? {} : { cachePersist: path.join(state, 'cache') }) } : {};
  return launch({
    ...workerOptions({ vars, r2, cache }),
    kvNamespaces: [...(kv ? ['CONFIG'] : []), ...(rateLimit ? ['RATELIMIT'] : [])],
    durableObjects: coordinator ? { COORDINATOR: 'Coordinator' } : {},
    // `triggers`: /cdn-cgi/handler/scheduled runs the cron handler (the local prewarm).
    unsafeTriggerHandlers: triggers,
    d1Databases: d1 ? ['STATS'] : [],
    ...(outboundDelayMs > 0 ? { outboundService: delayedOutbound(outboundDelayMs) } : {}),
    ...persist,
  }, port, onLog);
}

/** An outbound service (Miniflare's `outboundService`) that holds each of the worker's upstream
 *  requests `ms` before sending it, redirects not followed: an upstream `ms` of round trip away
 *  (the benchmark's WAN rows; `outboundDelayMs` of startMirror). */
export function delayedOutbound(ms) {
  return async (req) => {
    await new Promise((r) => setTimeout(r, ms));
    const body = ['GET', 'HEAD'].includes(req.method) ? undefined : await req.arrayBuffer();
    return fetch(req.url, { method: req.method, headers: req.headers, body, redirect: 'manual' });
  };
}

/** Several instances of the worker in one workerd, each its own isolate, answering on one port
 *  by Host (`<name>.test`), sharing the Cache API, the R2 bucket and, with `coordinator`, one
 *  Durable Object namespace (what a fleet of isolates shares in production). Returns
 *  { url, mf, stop }. */
export async function startMirrorFleet({ port, names = ['a', 'b'], vars = {}, r2 = true, coordinator = true, onLog } = {}) {
  const first = { COORDINATOR: 'Coordinator' };
  const others = { COORDINATOR: { className: 'Coordinator', scriptName: names[0] } };
  const workers = names.map((name, i) => ({
    ...workerOptions({ vars, r2 }),
    name,
    routes: [`${name}.test/*`],
    durableObjects: !coordinator ? {} : i === 0 ? first : others,
  }));
  return launch({ workers }, port, onLog);
}

/** wrangler.toml's [vars], with EDGEMIRROR_* environment overrides. */
export async function varsFromConfig() {
  const { unstable_readConfig } = await import('wrangler');
  const config = unstable_readConfig({ config: path.join(ROOT, 'wrangler.toml') });
  const vars = { ...(config.vars ?? {}) };
  for (const name of VAR_NAMES) {
    const v = process.env[`EDGEMIRROR_${name}`];
    if (v !== undefined) vars[name] = v;
  }
  return vars;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await import('./start.mjs'); // `npm start`'s launcher
}
