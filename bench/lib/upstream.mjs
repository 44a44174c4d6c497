// The upstream side: the harness's registries (plain, Docker-Hub-like hub with its token server and
// blob host), the anonymous tokens a direct client fetches, and the count of requests they received.
import { sleep } from '../../tests/e2e/lib/proc.mjs';
import { request } from '../../tests/e2e/lib/http.mjs';
import { ROOT } from './config.mjs';
import { onCleanup } from './cleanup.mjs';
import { U } from './harness.mjs';

export let up; // the upstreams: { plain, hub, token, logs, stop() }

export async function startUpstreams() {
  up = await U.startUpstreams({ root: ROOT });
  onCleanup('upstreams', () => up.stop());
  return up;
}

const tokenCache = { value: null, at: 0 };
const TOKEN_REPOS = ['library/alpine', 'library/multi', 'library/big', 'library/many', 'library/huge', 'library/large'];
export async function fetchToken(repos = TOKEN_REPOS, agent) {
  const q = new URLSearchParams({ service: U.SERVICE });
  for (const r of repos) q.append('scope', `repository:${r}:pull`);
  const r = await request(`${up.token}/token?${q}`, { agent });
  if (r.status !== 200) throw new Error(`token server: ${r.status} ${r.body}`);
  const j = JSON.parse(r.body);
  return j.token ?? j.access_token;
}
/** An anonymous pull token for the direct hub, fetched once and renewed well before it expires. */
export async function directToken() {
  if (!tokenCache.value || Date.now() - tokenCache.at > 120_000) {
    tokenCache.value = await fetchToken();
    tokenCache.at = Date.now();
  }
  return tokenCache.value;
}

// upstream requests, from the hub's access log, the token server's and the blob host's logs
export function markUpstream() {
  return { hub: U.logOffset(up.logs.hub), token: U.logOffset(up.logs.token), blobs: U.logOffset(up.logs.blobs) };
}
export async function upstreamSince(m) {
  await sleep(300); // the servers log after they answer
  const hub = U.readRequests(up.logs.hub, m.hub);
  const token = U.readJsonLines(up.logs.token, m.token).filter((e) => 'scopes' in e);
  const blobs = U.readJsonLines(up.logs.blobs, m.blobs).filter((e) => 'm' in e);
  return {
    total: hub.length + token.length + blobs.length,
    get: hub.filter((q) => q.method === 'GET').length,
    head: hub.filter((q) => q.method === 'HEAD').length,
    token: token.length,
    blobHost: blobs.length,
    hub: hub.map((q) => `${q.method} ${q.path} ${q.status}`),
  };
}
