// A registry client in a few lines, for tests that pull many images at once: manifests (an index
// is followed to every platform), config and layers, every digest checked against the bytes, and
// optionally a Range request on each layer checked against the same bytes.
import crypto from 'node:crypto';
import { request } from './http.mjs';
import { ACCEPT_ALL } from './upstreams.mjs';

const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** An HTTP GET as bytes (lib/http.mjs's request()); rejects on a cut body or a timeout. */
export function get(agent, port, path, headers = {}, timeout = 60_000) {
  return request({ port, path }, { headers, agent, timeout });
}

/**
 * Pulls `name:ref` from the registry on 127.0.0.1:`port`, checking every digest.
 * `range`: also fetch a slice of each layer with Range and compare it with the whole.
 * -> { requests, bytes, blobs: [digest] }; throws with what was wrong.
 */
export async function pullImage({ port, name, ref, agent, range = false }) {
  let requests = 0, bytes = 0;
  const fetchOk = async (path, headers, want) => {
    requests++;
    const r = await get(agent, port, path, headers);
    bytes += r.body.length;
    if (r.status !== (headers.range ? 206 : 200)) throw new Error(`${path}: ${r.status} ${r.body.toString().slice(0, 200)}`);
    if (want && !headers.range && sha256(r.body) !== want) throw new Error(`${path}: bytes do not match ${want}`);
    return r;
  };
  const manifests = [];
  const top = await fetchOk(`/v2/${name}/manifests/${ref}`, { accept: ACCEPT_ALL }, ref.startsWith('sha256:') ? ref : null);
  const digest = top.headers['docker-content-digest'];
  if (digest !== sha256(top.body)) throw new Error(`${name}:${ref}: Docker-Content-Digest ${digest} is not the bytes' digest`);
  const doc = JSON.parse(top.body);
  if (doc.manifests) {
    for (const m of doc.manifests) {
      const r = await fetchOk(`/v2/${name}/manifests/${m.digest}`, { accept: ACCEPT_ALL }, m.digest);
      manifests.push(JSON.parse(r.body));
    }
  } else {
    manifests.push(doc);
  }
  const blobs = [];
  for (const m of manifests) {
    for (const b of [m.config, ...m.layers]) {
      const whole = await fetchOk(`/v2/${name}/blobs/${b.digest}`, {}, b.digest);
      if (whole.body.length !== b.size) throw new Error(`${b.digest}: ${whole.body.length} bytes, manifest says ${b.size}`);
      blobs.push(b.digest);
      if (range && b.size > 16) {
        const from = Math.floor(b.size / 3), to = Math.min(b.size - 1, from + 4096);
        const part = await fetchOk(`/v2/${name}/blobs/${b.digest}`, { range: `bytes=${from}-${to}` });
        if (!part.body.equals(whole.body.subarray(from, to + 1))) throw new Error(`${b.digest}: Range ${from}-${to} differs from the whole`);
      }
    }
  }
  return { requests, bytes, blobs };
}
