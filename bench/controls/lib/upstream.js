// The controls' way to a token-auth registry, as an anonymous client would go: a Bearer token per
// repository scope (learnt from the 401 challenge, kept in the isolate while it works), and a blob's
// 307 to another host followed without the Authorization. Nothing is coalesced: two requests that
// miss the token at once fetch it twice, as the popular JS proxies do.
const tokens = new Map(); // scope -> token (a string: safe to share between requests)

/** { realm, service } of a `WWW-Authenticate: Bearer realm="…",service="…"` header. */
export function parseChallenge(h) {
  const out = {};
  for (const m of (h ?? '').matchAll(/(\w+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

const scopeOf = (path) => {
  const repo = /^\/v2\/(.+?)\/(?:manifests|blobs)\//.exec(path)?.[1];
  return repo ? `repository:${repo}:pull` : null;
};

/** GET/HEAD `path` from the registry at `base` with the control's own anonymous token. */
export async function upstreamFetch(base, path, { method = 'GET', headers = {} } = {}) {
  const scope = scopeOf(path);
  let token = scope ? tokens.get(scope) : null;
  for (let attempt = 0; ; attempt++) {
    const h = new Headers(headers);
    if (token) h.set('authorization', `Bearer ${token}`);
    const r = await fetch(base + path, { method, headers: h, redirect: 'manual' });
    if (r.status === 401 && attempt === 0) {
      const c = parseChallenge(r.headers.get('www-authenticate'));
      await r.body?.cancel();
      const q = new URLSearchParams({ service: c.service ?? '' });
      if (scope) q.set('scope', scope);
      const t = await fetch(`${c.realm}?${q}`);
      if (t.status !== 200) return t;
      const j = await t.json();
      token = j.token ?? j.access_token;
      if (scope) tokens.set(scope, token);
      continue;
    }
    if ([301, 302, 303, 307, 308].includes(r.status) && r.headers.get('location')) {
      const next = new URL(r.headers.get('location'), base + path);
      await r.body?.cancel();
      const h2 = new Headers(headers);
      h2.delete('authorization'); // the registry's token is not for the blob host
      return fetch(next, { method, headers: h2 });
    }
    return r;
  }
}
