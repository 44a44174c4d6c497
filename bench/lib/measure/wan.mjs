// A first pull's manifest GET with the network in it: every upstream exchange of the worker held
// CFG.wan.upstreamMs (an upstream that far away: Miniflare's outboundService), and the client
// CFG.wan.clientMs of round trip from the worker (slept between the token's answer and the GET).
// The flow docker, containerd and podman use: the mirror's challenge, a token from its realm, the
// GET with it. edgemirror is measured with the scope in the token request (it fetches the upstream
// token ahead) and without one (it cannot: what the pull costs without fetching ahead), on its
// first contact with the registry and for a second repository (the realm known); the
// pass-through control does the same pair through its /v2/auth.
import { request } from '../../../tests/e2e/lib/http.mjs';
import { sleep, within } from '../../../tests/e2e/lib/proc.mjs';
import { CFG, CONTROL_PORTS, MANIFEST_REF, PULL_REF } from '../config.mjs';
import { log } from '../log.mjs';
import { U } from '../harness.mjs';
import { startPinnedMirror } from '../build.mjs';
import { mirrorTable } from '../systems.mjs';
import { freshControl, stopControl } from '../controls.mjs';
import { results } from '../results.mjs';
import { hr, newAgent } from '../tools.mjs';

const REPOS = [MANIFEST_REF.repo, PULL_REF.split(':')[0]];
const path = (repo) => `/v2/${repo}/manifests/latest`;

/** One client's token then GET on `base`, the client's round trip slept between them. */
async function tokenThenGet(base, tokenPath, repo, agent) {
  const t0 = hr();
  const t = await request(`${base}${tokenPath}`, { agent });
  if (t.status !== 200) throw new Error(`wan ${base}${tokenPath}: ${t.status} ${t.body}`);
  await sleep(CFG.wan.clientMs);
  const r = await request(`${base}${path(repo)}`, { headers: { accept: U.ACCEPT_ALL, authorization: `Bearer ${JSON.parse(t.body).token}` }, agent });
  if (r.status !== 200) throw new Error(`wan GET ${path(repo)}: ${r.status} ${r.body}`);
  return hr() - t0;
}

async function mirrorSeries(scoped) {
  const port = CONTROL_PORTS.wan;
  const m = await within(startPinnedMirror({ port, vars: { UPSTREAMS: mirrorTable() }, outboundDelayMs: CFG.wan.upstreamMs, onLog: () => {} }), 60_000);
  if (m === 'timeout') throw new Error('the WAN mirror did not start within 60 s');
  const agent = newAgent();
  try {
    const base = `http://127.0.0.1:${port}`;
    await request(`${base}/v2/`, { agent });
    const out = [];
    for (const repo of REPOS) {
      const q = new URLSearchParams({ service: 'edgemirror', ...(scoped ? { scope: `repository:${repo}:pull` } : {}) });
      out.push(await tokenThenGet(base, `/token?${q}`, repo, agent));
    }
    return out;
  } finally { agent.destroy(); await m.stop(); }
}

async function controlSeries() {
  const c = await freshControl('pass', { port: CONTROL_PORTS.wan, outboundDelayMs: CFG.wan.upstreamMs });
  const agent = newAgent();
  try {
    await request(`${c.base}/v2/`, { agent });
    const out = [];
    for (const repo of REPOS) {
      const q = new URLSearchParams({ scope: `repository:${repo}:pull` });
      out.push(await tokenThenGet(c.base, `/v2/auth?${q}`, repo, agent));
    }
    return out;
  } finally { agent.destroy(); await stopControl('pass'); }
}

/** One repetition: a fresh instance per series, interleaved. */
export async function measureWan(rep) {
  const scoped = await mirrorSeries(true);
  const unscoped = await mirrorSeries(false);
  const control = await controlSeries();
  results.wan.push({ rep, scoped, unscoped, control });
  const f = (a) => a.map((x) => x.toFixed(0)).join(' / ');
  log(`wan rep ${rep} (first / second repository, ms): fetched ahead ${f(scoped)}; no scope ${f(unscoped)}; pass-through control ${f(control)}`);
}
