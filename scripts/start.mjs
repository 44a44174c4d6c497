// `npm start`: the built worker on 127.0.0.1 (Miniflare/workerd, see serve.mjs) with what a
// deployment binds — R2 (BLOBS), the admin store (CONFIG), the coordinator, and pull counters
// (RATELIMIT) when RATE_LIMIT is set — state kept under .state/, a front that answers TLS hellos at once (no 10 s client
// stalls), and the configuration's state printed before "listening".
//
//   npm start -- [--port 8787] [--state .state] [--no-r2] [--var NAME:VALUE]... [--env-file .dev.vars]
//
// Variables, later ones winning: npm start's own defaults (`LOCAL_DEFAULTS`); wrangler.toml [vars]; the env file (`.dev.vars` by default, as
// wrangler dev reads it: NAME=value lines, for secrets such as HUB_CREDS or ADMIN_TOKEN);
// EDGEMIRROR_<NAME> environment variables; --var NAME:VALUE. PORT sets the default port.
// The scheduled prewarm runs on `curl 'http://127.0.0.1:8787/cdn-cgi/handler/scheduled'`.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMirror, varsFromConfig } from './serve.mjs';
import { startTlsRejectingFront } from './tls_front.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What `npm start` sets unless a variable says otherwise. BLOB_FILL: the local R2 simulator
 *  writes at ~190 MB/s, so a blob split between it and the client holds the client to that pace;
 *  filled after the answer, a first pull goes at the upstream's pace (docs/cold-path.md). */
export const LOCAL_DEFAULTS = { BLOB_FILL: 'after-answer' };

/** `NAME=value` lines (dotenv, as wrangler's .dev.vars): `#` comments, optional `export `,
 *  values in "double quotes" (with \n escapes) or 'single quotes' or bare. */
export function parseEnvFile(text) {
  const out = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`not NAME=value: ${JSON.stringify(line.slice(0, 40))}`);
    let v = m[2];
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\n/g, '\n').replace(/\\"/g, '"');
    else if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, '');
    out[m[1]] = v;
  }
  return out;
}

/** The command line: { port, state, r2, envFile, vars }. */
export function parseArgs(argv, env = process.env) {
  const o = { port: Number(env.PORT ?? 8787), state: path.join(ROOT, '.state'), r2: true, envFile: null, vars: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') && a.startsWith('--') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--port') o.port = Number(value());
    else if (flag === '--state') o.state = path.resolve(value());
    else if (flag === '--no-r2') o.r2 = false;
    else if (flag === '--env-file') o.envFile = path.resolve(value());
    else if (flag === '--var') {
      const v = value();
      const at = v.indexOf(':');
      if (at < 1) throw new Error(`--var takes NAME:VALUE, got ${JSON.stringify(v)}`);
      o.vars[v.slice(0, at)] = v.slice(at + 1);
    } else throw new Error(`unknown option ${a} (see scripts/start.mjs)`);
  }
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error('--port takes a port number');
  return o;
}

/** The configuration's state, from /healthz, as lines for the console. */
export function describeHealth(status, h) {
  if (status !== 200) {
    return [`configuration INVALID: ${h.field}: ${h.problem}`, 'every registry request gets 503 until it is fixed', ...(h.warnings ?? []).map((w) => `warning: ${w}`)];
  }
  const lines = [`configuration: ${(h.source ?? []).join(' + ')}`];
  for (const u of h.upstreams ?? []) {
    const routes = [...u.prefixes.map((p) => `/${p}/`), ...u.hosts.map((x) => `host ${x}`), ...u.ns.map((n) => `ns=${n}`)];
    lines.push(`  ${u.name}${u.name === h.default ? ' (default)' : ''} → ${u.registry}${routes.length ? `  [${routes.join(', ')}]` : ''}`);
  }
  for (const p of h.problems ?? []) lines.push(`problem: ${p}`);
  for (const w of h.warnings ?? []) lines.push(`warning: ${w}`);
  for (const n of h.notes ?? []) lines.push(`note: ${n}`);
  return lines;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const vars = { ...LOCAL_DEFAULTS, ...(await varsFromConfig()) };
  const envFile = o.envFile ?? path.join(ROOT, '.dev.vars');
  if (existsSync(envFile)) {
    const fromFile = parseEnvFile(readFileSync(envFile, 'utf8'));
    Object.assign(vars, fromFile);
    console.log(`variables and secrets from ${path.relative(process.cwd(), envFile) || envFile}: ${Object.keys(fromFile).join(', ') || 'none'}`);
  } else if (o.envFile) throw new Error(`${o.envFile} does not exist`);
  Object.assign(vars, o.vars);
  // The front takes the clients' port first (a port in use fails before workerd starts);
  // workerd gets a port of its own.
  let mirrorPort = 0;
  const front = await startTlsRejectingFront({ port: o.port, targetPort: () => mirrorPort });
  // Pull counters only when a limit is asked for: the default 100/6h would stop a developer's
  // 101st local pull.
  const rateLimit = vars.RATE_LIMIT !== undefined && String(vars.RATE_LIMIT).trim() !== 'off';
  const mirror = await startMirror({ port: 0, vars, state: o.state, r2: o.r2, kv: true, rateLimit, coordinator: true, triggers: true });
  mirrorPort = Number(new URL(mirror.url).port);
  const r = await fetch(`${mirror.url}/healthz`);
  for (const line of describeHealth(r.status, await r.json())) console.log(line);
  if (vars.BLOB_FILL === 'after-answer') console.log('blobs: from 4 MiB, stored after each answer, fetched a second time (BLOB_FILL=after-answer; --var BLOB_FILL:with-answer stores them from the answer itself)');
  console.log(`edgemirror listening on ${front.url} (state in ${o.state}); prewarm now: curl '${front.url}/cdn-cgi/handler/scheduled'; Ctrl-C stops it`);
  const stop = async () => { await front.stop(); await mirror.stop(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] === fileURLToPath(import.meta.url) || process.argv[1]?.endsWith('serve.mjs')) {
  main().catch((e) => {
    const hint = e.code === 'EADDRINUSE' ? ' (another port: npm start -- --port N)' : '';
    console.error(`npm start: ${e.message}${hint}`);
    process.exit(1);
  });
}
