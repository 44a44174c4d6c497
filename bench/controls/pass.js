// Control: a plain pass-through Docker registry proxy of the class most people deploy (e.g.
// cloudflare-docker-proxy), no cache. `GET /v2/` relays the upstream's 401 with the challenge's realm
// rewritten to this worker's /v2/auth; /v2/auth learns the upstream's realm from a fresh `GET /v2/`
// and forwards the token request there; every other request goes upstream with the client's
// Authorization, and a blob's 307 is followed here without it. One log line per request.
import { parseChallenge } from './lib/upstream.js';

const FORWARDED = ['accept', 'authorization', 'range', 'user-agent', 'if-none-match'];

function unauthorized(origin, service) {
  return new Response(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }), {
    status: 401,
    headers: { 'content-type': 'application/json', 'www-authenticate': `Bearer realm="${origin}/v2/auth",service="${service}"` },
  });
}

async function handle(req, env) {
  const url = new URL(req.url);
  const headers = new Headers();
  for (const k of FORWARDED) if (req.headers.has(k)) headers.set(k, req.headers.get(k));
  if (url.pathname === '/v2/') {
    const r = await fetch(`${env.UPSTREAM}/v2/`, { headers });
    if (r.status !== 401) return r;
    await r.body?.cancel();
    return unauthorized(url.origin, parseChallenge(r.headers.get('www-authenticate')).service ?? '');
  }
  if (url.pathname === '/v2/auth') {
    const r = await fetch(`${env.UPSTREAM}/v2/`);
    if (r.status !== 401) return r;
    await r.body?.cancel();
    const c = parseChallenge(r.headers.get('www-authenticate'));
    const q = new URLSearchParams(url.search);
    q.set('service', c.service ?? '');
    const th = new Headers();
    if (req.headers.has('authorization')) th.set('authorization', req.headers.get('authorization'));
    return fetch(`${c.realm}?${q}`, { headers: th });
  }
  const r = await fetch(`${env.UPSTREAM}${url.pathname}${url.search}`, { method: req.method, headers, redirect: 'manual' });
  if (r.status === 401) {
    await r.body?.cancel();
    return unauthorized(url.origin, parseChallenge(r.headers.get('www-authenticate')).service ?? '');
  }
  if ([301, 302, 303, 307, 308].includes(r.status) && r.headers.get('location')) {
    await r.body?.cancel();
    headers.delete('authorization');
    return fetch(new URL(r.headers.get('location'), env.UPSTREAM), { method: req.method, headers });
  }
  return r;
}

export default {
  async fetch(req, env) {
    const r = await handle(req, env);
    console.log(JSON.stringify({ method: req.method, path: new URL(req.url).pathname, status: r.status }));
    return r;
  },
};
