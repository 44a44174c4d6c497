// How the store controls answer: a registry response from held bytes (HEAD without the body), and
// the blob fill shared by store.js and branch.js: the upstream body tee()d to the client and into R2.

/** A 200 with the registry's headers; for HEAD, no body. */
export function answer(req, body, headers, status) {
  const h = new Headers(headers);
  h.set('cache-status', `control; ${status}`);
  if (req.method === 'HEAD') {
    body?.cancel?.();
    return new Response(null, { headers: h });
  }
  return new Response(body, { headers: h });
}

export const blobHeaders = (digest, size) => ({
  'content-type': 'application/octet-stream', 'content-length': String(size), 'docker-content-digest': digest,
});

/** Streams `body` (`size` bytes) into R2 under `key`; logs `{"msg":"stored",...}` once it landed
 *  (the benchmark waits for that line before its warm request). */
export function putR2(env, key, body, size) {
  return env.BLOBS.put(key, body.pipeThrough(new FixedLengthStream(size)))
    .then(() => console.log(JSON.stringify({ msg: 'stored', what: 'blob', key })))
    .catch((e) => console.log(JSON.stringify({ msg: 'store write failed', what: 'blob', key, error: String(e) })));
}
