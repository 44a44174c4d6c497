// Manifest HEAD and GET by tag: cold (the first request after a fresh start) and warm series; the
// same through the pass-through control (cold: it holds nothing) and the Cache API control (warm);
// and warm series of edgemirror with MANIFEST_MEMORY=0 (every hit a store lookup).
import { request } from '../../../tests/e2e/lib/http.mjs';
import { sleep } from '../../../tests/e2e/lib/proc.mjs';
import { CONTROL_PORTS, MANIFEST_REF, SECOND_REF, SYSTEMS, manifestPath, secondPath, perRepN } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { U } from '../harness.mjs';
import { fetchToken, markUpstream, upstreamSince } from '../upstream.mjs';
import { sys, secondMirror, noStoreMirror } from '../systems.mjs';
import { ctl, freshControl } from '../controls.mjs';
import { results } from '../results.mjs';
import { hr, pct, newAgent } from '../tools.mjs';
import { tokenThenRequest } from '../client.mjs';

/** Cold: the first request for the manifest after a fresh start with empty storage (the process has
 *  answered one GET /v2/ first). Direct: a new client's first request: anonymous token, then the
 *  request (after its GET /v2/ got the 401 challenge), as every client of a token-auth registry pays. */
async function coldManifest(name, method) {
  const s = sys[name];
  await s.fresh();
  const agent = newAgent(), tokenAgent = newAgent();
  try {
    await request(`${s.base}/v2/`, { agent });
    const mark = markUpstream();
    let t0 = hr(), headers = { accept: U.ACCEPT_ALL }, firstWithToken = null;
    if (name === 'direct') {
      const tok = await fetchToken([MANIFEST_REF.repo], tokenAgent);
      headers.authorization = `Bearer ${tok}`;
    }
    const r = await request(`${s.base}${manifestPath}`, { method, headers, agent });
    const ms = hr() - t0;
    if (r.status !== 200) throw new Error(`${name} cold ${method} ${manifestPath}: ${r.status} ${r.body}`);
    const upstream = await upstreamSince(mark);
    if (name === 'direct') { // also: the first request on a new connection with a token already held
      const a2 = newAgent();
      firstWithToken = (await request(`${s.base}${manifestPath}`, { method, headers, agent: a2 })).ms;
      a2.destroy();
    }
    return { ms, firstWithToken, cacheStatus: r.headers['cache-status'] ?? null, upstream, agent };
  } finally { tokenAgent.destroy(); }
}

/** Cold, as docker, containerd and podman ask: after the mirror's `GET /v2/` challenge, a token
 *  from its `/token` for the repository's scope, then the GET with it (timed from the token
 *  request, as the pass-through control's first request is). Fresh instance, empty storage. */
async function coldDockerFlow() {
  const s = sys.mirror;
  await s.fresh();
  const agent = newAgent();
  try {
    await request(`${s.base}/v2/`, { agent });
    const mark = markUpstream();
    const q = new URLSearchParams({ service: 'edgemirror', scope: `repository:${MANIFEST_REF.repo}:pull` });
    const ms = await tokenThenRequest(s.base, `/token?${q}`, manifestPath, { agent });
    return { ms, upstream: await upstreamSince(mark) };
  } finally { agent.destroy(); }
}

/** Warm: `n` requests one after another on one keep-alive connection, after 10 unrecorded ones. */
async function warmSeries(name, method, n, agent, p = manifestPath) {
  const s = sys[name] ?? ctl[name] ?? others[name];
  const headers = { accept: U.ACCEPT_ALL, ...(await s.headers?.() ?? {}) };
  const url = `${s.base}${p}`;
  const times = [];
  let notHit = 0;
  for (let i = 0; i < n + 10; i++) {
    const r = await request(url, { method, headers, agent });
    // GET /v2/ (the floor series) may answer the mirror's own Bearer challenge: 401, no store, no upstream
    if (r.status !== 200 && !(p === '/v2/' && r.status === 401)) throw new Error(`${name} warm ${method} ${p}: ${r.status} ${r.body}`);
    if (['mirror', 'cache', 'store'].includes(name) && p === manifestPath && !/hit/.test(r.headers['cache-status'] ?? '')) notHit++;
    if (i >= 10) times.push(r.ms);
  }
  return { n, p50: pct(times, 0.5), p99: pct(times, 0.99), mean: times.reduce((a, b) => a + b, 0) / n, notHit,
    times: times.map((t) => +t.toFixed(3)) };
}

/** Instances of this phase besides the systems and controls: `store`, edgemirror with
 *  MANIFEST_MEMORY=0. */
const others = {};

/** One repetition: every system, HEAD then GET, each cold then warm. */
export async function measureManifests(rep) {
  for (const name of SYSTEMS) {
    const out = { rep };
    for (const method of ['HEAD', 'GET']) {
      const cold = await coldManifest(name, method);
      await sys[name].settle();
      // A second repository, cold, on the instance that has answered one: what a fresh instance's
      // first request pays once (its code's first run, the stores' first use, the registry's realm)
      // left out.
      const second = name === 'mirror' && method === 'GET' ? await coldSecond(sys.mirror.base) : null;
      if (second) await sys[name].settle();
      const m = markUpstream();
      const warm = await warmSeries(name, method, perRepN(), cold.agent);
      const u = await upstreamSince(m);
      delete u.hub;
      warm.upstreamDuringSeries = u; // what the upstream side received during the n + 10 warm requests
      if (name === 'mirror' && method === 'GET') { // the runtime's floor: GET /v2/ touches no store and no upstream
        warm.floorV2 = await warmSeries(name, 'GET', perRepN(), cold.agent, '/v2/');
      }
      cold.agent.destroy();
      out[method] = { secondRepoMs: second, coldMs: cold.ms, coldFirstWithTokenMs: cold.firstWithToken, coldCacheStatus: cold.cacheStatus, coldUpstream: cold.upstream, warm };
      if (warm.notHit) anomaly(`${name} warm ${method}: ${warm.notHit} of ${warm.n + 10} responses were not cache hits`);
    }
    if (name === 'mirror') {
      out.dockerFlow = await coldDockerFlow();
      await sys.mirror.settle();
    }
    results.manifest[name].push(out);
    log(`manifest ${name} rep ${rep}: HEAD cold ${out.HEAD.coldMs.toFixed(1)} ms, warm p50 ${out.HEAD.warm.p50.toFixed(2)}; GET cold ${out.GET.coldMs.toFixed(1)} ms, warm p50 ${out.GET.warm.p50.toFixed(2)}`);
  }
  await controlManifests(rep);
  await storeManifests(rep);
  await noStoreManifests(rep);
}

/** edgemirror with no store (`noStoreMirror`), fresh: its first manifest GET after a `GET /v2/`,
 *  as row ¹'s, then a second repository on it, as row ¹⁶'s. Beside the pass-through control's
 *  same two, they tell the local stores' share of the first GET from the first run of the code. */
async function noStoreManifests(rep) {
  const m = await noStoreMirror();
  const agent = newAgent();
  try {
    await request(`${m.base}/v2/`, { agent });
    const t0 = hr();
    const r = await request(`${m.base}${manifestPath}`, { headers: { accept: U.ACCEPT_ALL }, agent });
    const firstMs = hr() - t0;
    if (r.status !== 200) throw new Error(`no-store mirror GET ${manifestPath}: ${r.status} ${r.body}`);
    await sleep(300); // as after row ¹'s request
    const secondRepoMs = await coldSecond(m.base);
    results.manifest.noStore.push({ rep, firstMs, secondRepoMs });
    log(`manifest, edgemirror with no store rep ${rep}: first GET ${firstMs.toFixed(1)} ms, a second repository ${secondRepoMs.toFixed(1)} ms`);
  } finally {
    agent.destroy();
    await m.stop();
  }
}

/** edgemirror with MANIFEST_MEMORY=0: the isolate keeps no manifest, so every warm hit is the
 *  store's (the tag's record and its bytes from the Cache API), as the Cache API control's is. */
async function storeManifests(rep) {
  const m = await secondMirror(CONTROL_PORTS.store, { vars: { MANIFEST_MEMORY: '0' } });
  others.store = { base: m.base };
  const out = { rep };
  try {
    for (const method of ['HEAD', 'GET']) {
      const agent = newAgent();
      try {
        const r = await request(`${others.store.base}${manifestPath}`, { method, headers: { accept: U.ACCEPT_ALL }, agent });
        if (r.status !== 200) throw new Error(`store-only mirror ${method} ${manifestPath}: ${r.status} ${r.body}`);
        await sleep(300); // its store writes run after the answer
        const warm = await warmSeries('store', method, perRepN(), agent);
        if (warm.notHit) anomaly(`store-only mirror warm ${method}: ${warm.notHit} of ${warm.n + 10} responses were not hits`);
        out[method] = { warm };
      } finally { agent.destroy(); }
    }
  } finally { await m.stop(); }
  results.manifest.store.push(out);
  log(`manifest store-only mirror rep ${rep}: warm p50 HEAD ${out.HEAD.warm.p50.toFixed(2)} / GET ${out.GET.warm.p50.toFixed(2)} ms`);
}

/** A GET of `secondPath`, cold, on a new connection, ms. */
async function coldSecond(base) {
  const agent = newAgent();
  try {
    const t0 = hr();
    const r = await request(`${base}${secondPath}`, { headers: { accept: U.ACCEPT_ALL }, agent });
    if (r.status !== 200) throw new Error(`${base}${secondPath}: ${r.status} ${r.body}`);
    return hr() - t0;
  } finally { agent.destroy(); }
}

/** The pass-through control: a client's first request through it (GET /v2/ answered first, as for
 *  the systems), i.e. a token from its /v2/auth (forwarded to the upstream's realm) and the request
 *  with it; it holds nothing, so every request is this one. The Cache API control: the first request
 *  after a fresh start (its fill), then the warm series. */
async function controlManifests(rep) {
  const out = { rep };
  for (const method of ['HEAD', 'GET']) {
    const c = await freshControl('pass');
    const agent = newAgent();
    try {
      await request(`${c.base}/v2/`, { agent });
      const q = new URLSearchParams({ scope: `repository:${MANIFEST_REF.repo}:pull` });
      out[method] = { coldMs: await tokenThenRequest(c.base, `/v2/auth?${q}`, manifestPath, { agent, method }) };
      if (method === 'GET') { // a second repository: its token (the realm known) and the GET
        const q2 = new URLSearchParams({ scope: `repository:${SECOND_REF.repo}:pull` });
        const a2 = newAgent();
        try { out.secondRepoMs = await tokenThenRequest(c.base, `/v2/auth?${q2}`, secondPath, { agent: a2 }); } finally { a2.destroy(); }
      }
    } finally { agent.destroy(); }
  }
  results.manifest.pass.push(out);
  const cache = { rep };
  for (const method of ['HEAD', 'GET']) {
    const c = await freshControl('cache');
    const agent = newAgent();
    try {
      await request(`${c.base}/v2/`, { agent });
      const t0 = hr();
      const r = await request(`${c.base}${manifestPath}`, { method, headers: { accept: U.ACCEPT_ALL }, agent });
      if (r.status !== 200) throw new Error(`Cache API control ${method} ${manifestPath}: ${r.status} ${r.body}`);
      const coldMs = hr() - t0;
      await sleep(300); // its put runs after the answer
      const warm = await warmSeries('cache', method, perRepN(), agent);
      if (warm.notHit) anomaly(`Cache API control warm ${method}: ${warm.notHit} of ${warm.n + 10} responses were not hits`);
      cache[method] = { coldMs, warm };
      if (method === 'GET') cache.secondRepoMs = await coldSecond(c.base);
    } finally { agent.destroy(); }
  }
  results.manifest.cache.push(cache);
  log(`manifest controls rep ${rep}: pass-through first HEAD ${out.HEAD.coldMs.toFixed(1)} / GET ${out.GET.coldMs.toFixed(1)} ms; ` +
    `Cache API control warm p50 HEAD ${cache.HEAD.warm.p50.toFixed(2)} / GET ${cache.GET.warm.p50.toFixed(2)} ms`);
}
