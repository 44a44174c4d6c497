// A first pull's manifest GET with the network in it: every upstream exchange of the worker held
// CFG.wan.upstreamMs (an upstream that far away: Miniflare's outboundService), and the client
// CFG.wan.clientMs of round trip from the worker (slept between the token's answer and the GET).
// The flow docker, containerd and podman use: the mirror's challenge, a token from its realm, the
// GET with it. edgemirror is measured with the scope in the token request (it fetches the upstream
// token ahead) and without one (it cannot: what the pull costs without fetching ahead), on its
// first contact with the registry and for a second repository (the realm known); the
// pass-through control does the same pair through its /v2/auth.
import { request } from '../../../tests/e2e/lib/http.mjs';
import { within } from '../../../tests/e2e/lib/proc.mjs';
import { CFG, CONTROL_PORTS, MANIFEST_REF, PULL_REF } from '../config.mjs';
import { log } from '../log.mjs';
import { startPinnedMirror } from '../build.mjs';
import { mirrorTable } from '../systems.mjs';
import { freshControl, stopControl } from '../controls.mjs';
import { results } from '../results.mjs';
import { newAgent } from '../tools.mjs';
import { tokenThenRequest } from '../client.mjs';

const REPOS = [MANIFEST_REF.repo, PULL_REF.split(':')[0]];
const path = (repo) => `/v2/${repo}/manifests/latest`;

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
      out.push(await tokenThenRequest(base, `/token?${q}`, path(repo), { agent, gapMs: CFG.wan.clientMs }));
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
      out.push(await tokenThenRequest(c.base, `/v2/auth?${q}`, path(repo), { agent, gapMs: CFG.wan.clientMs }));
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
