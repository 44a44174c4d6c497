// One end-to-end world: the loopback upstreams with real images, and the built worker in workerd
// (Miniflare) configured to mirror them. The mirror's log lines are kept for assertions.
import fs from 'node:fs';
import path from 'node:path';
import { startUpstreams, makeImages, logOffset, readRequests, readJsonLines } from './upstreams.mjs';
import { startMirror } from '../../../scripts/serve.mjs';
import { request } from './http.mjs';

export const ROOT = process.env.EDGEMIRROR_E2E_ROOT ?? '/tmp/em-e2e';
export const MIRROR_PORT = 18787;
export const BIG_MB = Number(process.env.EDGEMIRROR_BIG_MB ?? 110);

/** The upstream table the tests run with: a Docker-Hub-like default and a plain registry. */
export function upstreamTable(up, extra = {}) {
  return {
    // The hub's realm (the token server) is on another origin: listed, so logins may go there.
    'docker.io': { registry: up.hub, prefixes: ['docker.io'], ns: ['docker.io'], library: true, realms: [up.token], ...extra },
    plain: { registry: up.plain, hosts: ['plain.localhost'], prefixes: ['plain'], ns: ['plain.test'], ...extra },
  };
}

/** Every mirror's log lines of the whole end-to-end run, one file per test process, so a last
 *  check can read them all (tests/e2e/zz-logs.test.mjs). */
export const LOG_DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../test-output/mirror-logs');

/** A mirror on `port` whose log lines land in `lines` (parsed when JSON) and in LOG_DIR. */
export async function mirrorWith({ port, vars, ...options }) {
  const lines = [];
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const file = path.join(LOG_DIR, `${path.basename(process.argv[1] ?? 'run')}-${port}.log`);
  const m = await startMirror({ port, vars, ...options, onLog: (l) => { lines.push(l); fs.appendFileSync(file, l + '\n'); } });
  const entries = (from = 0) => lines.slice(from).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  return { ...m, lines, entries, mark: () => lines.length };
}

/** Upstreams with images, and a mirror on `port` (options: `ttls` merged into every upstream,
 *  `r2`, `state`, `freshCache`, as for startMirror). */
export async function startWorld({ port = MIRROR_PORT, ttls = {}, vars = {}, ...mirrorOptions } = {}) {
  fs.mkdirSync(ROOT, { recursive: true });
  const up = await startUpstreams({ root: ROOT });
  try {
    const images = await makeImages({ root: ROOT, bigMb: BIG_MB });
    const mirror = await mirrorWith({ port, vars: { UPSTREAMS: upstreamTable(up, ttls), ...vars }, ...mirrorOptions });
    /** Byte offsets of every upstream log, to read what happened after a point. */
    const mark = () => ({ mirror: world.mirror.mark(), ...Object.fromEntries(Object.entries(up.logs).map(([k, f]) => [k, logOffset(f)])) });
    const since = (m) => ({
      mirror: world.mirror.entries(m.mirror),
      plain: readRequests(up.logs.plain, m.plain),
      hub: readRequests(up.logs.hub, m.hub),
      token: readJsonLines(up.logs.token, m.token),
      blobs: readJsonLines(up.logs.blobs, m.blobs),
    });
    const world = { up, images, mirror, mark, since };
    // The mirror may be replaced by a test (a restart): stop whichever runs now.
    world.stop = async () => { await world.mirror.stop(); await up.stop(); };
    return world;
  } catch (e) {
    await up.stop();
    throw e;
  }
}

/** A raw HTTP request to the mirror (path sent exactly as given, Host settable): lib/http.mjs's
 *  request(), on a connection of its own unless an `agent` is passed. -> { status, headers, body, ms } */
export function raw({ port = MIRROR_PORT, method = 'GET', path: p, headers = {}, timeout = 15000, agent, body }) {
  return request({ port, path: p }, { method, headers, timeout, agent, body });
}

export function ociCode(res) {
  try { return JSON.parse(res.body.toString()).errors[0].code; } catch { return `not an OCI error: ${res.body.toString().slice(0, 200)}`; }
}

/** Where tests write what a person should look at (throughput tables…). */
export function outputFile(name) {
  const dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../test-output');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
