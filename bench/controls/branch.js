// Control for issue 13's other design of blob coalescing: followers receive a branch of the leader's
// stream, instead of waiting for the leader's store commit (edgemirror's choice). workerd forbids
// reading a stream in another request's handler than the one that made it, so the in-flight map lives
// in a Durable Object (FLIGHT, one per blob digest), whose requests share one I/O context: the leader
// fetches upstream; every request arriving before the upstream's answer is in (≈ the first byte)
// gets a tee() branch of that body, one more branch goes into R2; requests arriving later wait for
// the R2 write and stream from R2. tee() buffers for the slowest branch: that is the cost measured.
import { upstreamFetch } from './lib/upstream.js';
import { answer, blobHeaders, putR2 } from './lib/answer.js';

/** Splits a stream into n branches with repeated tee(). */
function branches(body, n) {
  const out = [];
  let rest = body;
  for (let i = 0; i < n - 1; i++) { const [a, b] = rest.tee(); out.push(a); rest = b; }
  out.push(rest);
  return out;
}

export class Flight {
  constructor(state, env) { this.env = env; this.flight = null; }

  async fetch(req) {
    const env = this.env;
    const url = new URL(req.url);
    const digest = url.pathname.split('/').pop();
    const held = await env.BLOBS.get(digest);
    if (held) return answer(req, held.body, blobHeaders(digest, held.size), 'hit');
    let f = this.flight;
    if (f && f.open) return new Promise((resolve) => f.waiting.push(resolve)); // a branch of the leader's body
    if (f) { await f.landed; return this.fetch(req); } // too late for a branch: the R2 write
    f = this.flight = { open: true, waiting: [], landed: null };
    let land, write = Promise.resolve();
    f.landed = new Promise((r) => { land = r; });
    try {
      const up = await upstreamFetch(env.UPSTREAM, url.pathname);
      f.open = false;
      if (up.status !== 200) {
        const body = await up.arrayBuffer();
        for (const w of f.waiting) w(new Response(body, { status: up.status, headers: up.headers }));
        return new Response(body, { status: up.status, headers: up.headers });
      }
      const size = Number(up.headers.get('content-length'));
      const bs = branches(up.body, f.waiting.length + 2);
      write = putR2(env, digest, bs.pop(), size);
      f.waiting.forEach((w, i) => w(answer(req, bs[i + 1], blobHeaders(digest, size), 'branch')));
      console.log(JSON.stringify({ msg: 'branches', key: digest, followers: f.waiting.length }));
      return answer(req, bs[0], blobHeaders(digest, size), 'miss');
    } catch (e) { // the leader's failure reaches its followers at once
      for (const w of f.waiting) w(new Response(String(e), { status: 502 }));
      return new Response(String(e), { status: 502 });
    } finally {
      f.open = false;
      write.finally(() => { land(); if (this.flight === f) this.flight = null; });
    }
  }
}

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(url.pathname);
    if (!m) return new Response('{}', { headers: { 'content-type': 'application/json' } });
    const stub = env.FLIGHT.get(env.FLIGHT.idFromName(m[2]));
    return stub.fetch(req);
  },
};
