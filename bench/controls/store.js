// Control: a registry cache of the simplest kind, answering from the Cache API (`caches.default`)
// and, when an R2 bucket is bound as BLOBS, blobs from R2. A miss goes upstream (lib/upstream.js:
// anonymous token, 307 followed), the body is tee()d to the client and into the store; later
// requests are hits. No coalescing, no revalidation (a tag is held for good), no checks: the floor
// of what a cache in this runtime costs, for edgemirror's hits and fills to be compared with.
// Started twice by the benchmark: without R2 ("Cache API control") and with it ("R2 control").
import { upstreamFetch } from './lib/upstream.js';
import { answer, blobHeaders, putR2 } from './lib/answer.js';

const KEEP = ['content-type', 'content-length', 'docker-content-digest'];

async function fromCache(req, env, ctx, path) {
  const key = `https://control.cache${path}`;
  const hit = await caches.default.match(key);
  if (hit) return answer(req, hit.body, hit.headers, 'hit');
  const up = await upstreamFetch(env.UPSTREAM, path, { headers: { accept: req.headers.get('accept') ?? '*/*' } });
  if (up.status !== 200) return up;
  const headers = new Headers({ 'cache-control': 'public, max-age=31536000' });
  for (const k of KEEP) if (up.headers.has(k)) headers.set(k, up.headers.get(k));
  const [a, b] = up.body.tee();
  ctx.waitUntil(caches.default.put(key, new Response(b, { headers }))
    .then(() => console.log(JSON.stringify({ msg: 'stored', what: 'cache', key: path }))));
  return answer(req, a, headers, 'miss');
}

async function fromR2(req, env, ctx, path, digest) {
  const obj = req.method === 'HEAD' ? await env.BLOBS.head(digest) : await env.BLOBS.get(digest);
  if (obj) return answer(req, obj.body ?? null, blobHeaders(digest, obj.size), 'hit');
  const up = await upstreamFetch(env.UPSTREAM, path);
  if (up.status !== 200) return up;
  const size = Number(up.headers.get('content-length'));
  const [a, b] = up.body.tee();
  ctx.waitUntil(putR2(env, digest, b, size));
  return answer(req, a, blobHeaders(digest, size), 'miss');
}

async function handle(req, env, ctx) {
  const url = new URL(req.url);
  if (url.pathname === '/v2/') return new Response('{}', { headers: { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' } });
  const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
  if (!m || !['GET', 'HEAD'].includes(req.method)) return new Response('not found', { status: 404 });
  if (m[2] === 'blobs' && env.BLOBS) return fromR2(req, env, ctx, url.pathname, m[3]);
  return fromCache(req, env, ctx, url.pathname);
}

export default {
  async fetch(req, env, ctx) {
    const r = await handle(req, env, ctx);
    console.log(JSON.stringify({ method: req.method, path: new URL(req.url).pathname, status: r.status }));
    return r;
  },
};
