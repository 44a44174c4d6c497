// A registry client as a puller is: GET the manifest by tag, then every blob it names at once, each
// body hashed while it streams and checked against its digest. Timed to the response headers, the
// first body byte and the last one. Used by the concurrent-pull rows (measure/bursts.mjs); and a
// first request after a token, as clients make it (the cold manifest and WAN rows).
import crypto from 'node:crypto';
import http from 'node:http';
import { request } from '../../tests/e2e/lib/http.mjs';
import { sleep } from '../../tests/e2e/lib/proc.mjs';
import { U } from './harness.mjs';
import { hr } from './tools.mjs';

/**
 * One GET on a connection of its own, the body hashed (and kept when `keep`), redirects followed
 * (the hub answers blob GETs 307 to its blob host). Rejects on an error status, on `idleMs` without
 * a byte, after `deadlineMs` in all and on a body cut short.
 * -> { status, headers, bytes, digest, headersMs, firstByteMs, ms, body? } (times from the call)
 */
export function timedGet(url, { headers = {}, keep = false, idleMs = 60_000, deadlineMs = 300_000, redirects = 3 } = {}) {
  const t0 = hr();
  return new Promise((resolve, reject) => {
    let req, settled = false;
    const deadline = setTimeout(() => fail(new Error(`deadline of ${deadlineMs} ms: GET ${url}`)), deadlineMs);
    const fail = (e) => { if (settled) return; settled = true; clearTimeout(deadline); req?.destroy(); reject(e); };
    const done = (v) => { if (settled) return; settled = true; clearTimeout(deadline); resolve(v); };
    const go = (target, left, hdrs) => {
      req = http.request(target, { headers: hdrs, agent: false, timeout: idleMs }, (res) => {
        if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location && left > 0) {
          res.resume();
          const next = new URL(res.headers.location, target);
          // like a client: the registry's Authorization is not sent to another host
          const h = next.host === new URL(target).host ? hdrs : Object.fromEntries(Object.entries(hdrs).filter(([k]) => k.toLowerCase() !== 'authorization'));
          go(next, left - 1, h);
          return;
        }
        const headersMs = hr() - t0;
        if (res.statusCode !== 200) {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => fail(new Error(`GET ${url}: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`)));
          res.on('error', fail);
          return;
        }
        const h = crypto.createHash('sha256'), chunks = [];
        let bytes = 0, firstByteMs = null;
        res.on('data', (c) => {
          if (firstByteMs == null) firstByteMs = hr() - t0;
          bytes += c.length;
          h.update(c);
          if (keep) chunks.push(c);
        });
        res.on('end', () => {
          if (!res.complete) return fail(new Error(`body cut: GET ${url}`));
          done({ status: res.statusCode, headers: res.headers, bytes, digest: 'sha256:' + h.digest('hex'), headersMs,
            firstByteMs: firstByteMs ?? hr() - t0, ms: hr() - t0, body: keep ? Buffer.concat(chunks) : undefined });
        });
        res.on('error', fail);
        res.on('aborted', () => fail(new Error(`body cut: GET ${url}`)));
      });
      req.on('timeout', () => fail(new Error(`no byte for ${idleMs} ms: GET ${url}`)));
      req.on('error', fail);
      req.end();
    };
    go(new URL(url), redirects, headers);
  });
}

/**
 * One client's pull of `repo:tag` from `base`: the manifest by tag (its digest checked against
 * `manifestDigest`), then the config and every layer at once, each checked against its digest and size.
 * -> { ms, manifestMs, blobs, bytes }; rejects on any failure or mismatch.
 */
export async function pullImage(base, repo, tag, { manifestDigest, headers = {}, idleMs = 60_000, deadlineMs = 300_000 } = {}) {
  const t0 = hr();
  const m = await timedGet(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: U.ACCEPT_ALL, ...headers }, keep: true, idleMs, deadlineMs });
  if (manifestDigest && m.digest !== manifestDigest) throw new Error(`${repo}:${tag}: manifest ${m.digest}, expected ${manifestDigest}`);
  const manifest = JSON.parse(m.body);
  const blobs = [manifest.config, ...manifest.layers];
  const got = await Promise.all(blobs.map((b) => timedGet(`${base}/v2/${repo}/blobs/${b.digest}`, { headers, idleMs, deadlineMs })));
  got.forEach((g, i) => {
    if (g.digest !== blobs[i].digest || g.bytes !== blobs[i].size) {
      throw new Error(`${repo}: blob ${blobs[i].digest} (${blobs[i].size} bytes) came as ${g.digest} (${g.bytes} bytes)`);
    }
  });
  return { ms: hr() - t0, manifestMs: m.ms, blobs: blobs.length, bytes: got.reduce((a, g) => a + g.bytes, 0) };
}

/**
 * A client's first request as docker, containerd and podman make it after the registry's
 * challenge: a token from `tokenPath` on `base`, then `method path` with it, on `agent`;
 * `gapMs` slept between them (the client's round trip). Throws on any answer but 200.
 * -> ms from the token request to the end of the answer
 */
export async function tokenThenRequest(base, tokenPath, path, { agent, method = 'GET', gapMs = 0 } = {}) {
  const t0 = hr();
  const t = await request(`${base}${tokenPath}`, { agent });
  if (t.status !== 200) throw new Error(`${base}${tokenPath}: ${t.status} ${t.body}`);
  if (gapMs > 0) await sleep(gapMs);
  const token = JSON.parse(t.body).token;
  const r = await request(`${base}${path}`, { method, headers: { accept: U.ACCEPT_ALL, authorization: `Bearer ${token}` }, agent });
  const ms = hr() - t0;
  if (r.status !== 200) throw new Error(`${method} ${base}${path} with the token of ${tokenPath}: ${r.status} ${r.body}`);
  return ms;
}
