//! Committing a blob only when its bytes are right, with every byte moved by the runtime's native
//! streams (no JavaScript or wasm in the data path):
//! - R2: a `FixedLengthStream` of the announced size and R2's own SHA-256/512 check on `put`.
//! - Cache API: the body is stored under a pending key through a `FixedLengthStream`, then read
//!   back and hashed by the runtime's `DigestStream` (after the client's response, so hashing never
//!   slows the client). Only when the digest matches is the entry copied to its real key; the
//!   pending one is always removed.

use wasm_bindgen::prelude::*;

use crate::digest::Digest;

#[wasm_bindgen(inline_js = r#"
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

export function fixed_length(body, size) {
  const fixed = new FixedLengthStream(size);
  body.pipeTo(fixed.writable).catch(() => {});
  return fixed.readable;
}

export async function cache_put_verified(body, key, algorithm, expectedHex, size, headers) {
  const cache = caches.default;
  const pending = `${key}${key.includes('?') ? '&' : '?'}pending=${crypto.randomUUID()}`;
  try {
    // The client's branch runs at the speed of this put only; hashing happens afterwards.
    await cache.put(pending, new Response(fixed_length(body, size), { headers }));
    const stored = await cache.match(pending);
    if (!stored) throw new Error('pending entry vanished');
    const digest = new crypto.DigestStream(algorithm);
    await stored.body.pipeTo(digest);
    if (hex(await digest.digest) !== expectedHex) throw new Error('digest mismatch');
    const verified = await cache.match(pending);
    if (!verified) throw new Error('pending entry vanished');
    await cache.put(key, verified);
  } finally {
    await cache.delete(pending);
  }
}
"#)]
extern "C" {
    fn fixed_length(body: &web_sys::ReadableStream, size: f64) -> web_sys::ReadableStream;
    #[wasm_bindgen(catch)]
    async fn cache_put_verified(
        body: &web_sys::ReadableStream,
        key: &str,
        algorithm: &str,
        expected_hex: &str,
        size: f64,
        headers: &JsValue,
    ) -> Result<JsValue, JsValue>;
}

/// A stream of announced length: it errors if the body is longer or shorter.
pub fn with_length(body: &web_sys::ReadableStream, size: u64) -> web_sys::ReadableStream {
    fixed_length(body, size as f64)
}

/// Stores `body` in the Cache API under `key` if it is `size` bytes hashing to `digest`.
pub async fn cache_put(
    body: &web_sys::ReadableStream,
    key: &str,
    digest: &Digest,
    size: u64,
    headers: &web_sys::Headers,
) -> Result<(), String> {
    let alg = digest.algorithm_kind().runtime_name();
    cache_put_verified(body, key, alg, digest.hex(), size as f64, headers.as_ref())
        .await
        .map(|_| ())
        .map_err(|e| {
            e.as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_default()
        })
}
