//! The upstream client: the runtime's `fetch` with `redirect: "manual"`, a bound on the wait for
//! response headers, and a bound on the whole body (`body_deadline`).

use futures::future::{select, Either};
use futures::pin_mut;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::convert::{headers_from_runtime, headers_to_runtime, Body};
use crate::ports::{FetchError, Fetcher, UpstreamRequest};

pub struct RuntimeFetcher;

/// Bound on reading a small body (token JSON, an error envelope, a manifest) once headers came.
const SMALL_BODY_TIMEOUT_MS: u32 = 30_000;

// The body is read on the JavaScript side and comes into wasm once, as one array of its exact
// length: chunk by chunk into a growing Vec it would be copied per chunk and the Vec's doubling
// would leave up to twice its size in linear memory, which never shrinks.
#[wasm_bindgen(inline_js = r#"
export async function read_limited(stream, limit, ms) {
  const reader = stream.getReader();
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), late]);
      if (next === null) {
        reader.cancel().catch(() => {});
        return null;
      }
      if (next.done) break;
      const chunk = next.value instanceof Uint8Array ? next.value : new Uint8Array(next.value);
      total += chunk.byteLength;
      if (total > limit) {
        reader.cancel().catch(() => {});
        return null;
      }
      chunks.push(chunk);
    }
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export function stream_over(bytes) {
  return new Response(bytes).body;
}
"#)]
extern "C" {
    /// The whole body as one `Uint8Array`, or `null` when it is over `limit` bytes, fails, or is
    /// not done within `ms`.
    #[wasm_bindgen(catch)]
    async fn read_limited(
        stream: web_sys::ReadableStream,
        limit: f64,
        ms: f64,
    ) -> Result<JsValue, JsValue>;
    /// A runtime stream over a JS-owned array.
    #[wasm_bindgen(catch)]
    fn stream_over(bytes: &js_sys::Uint8Array) -> Result<Option<web_sys::ReadableStream>, JsValue>;
}

/// Reads and drops up to `limit` bytes of a request body the mirror refuses, on the JavaScript
/// side (nothing enters wasm), so a small body is consumed and the client reads the answer instead
/// of a reset; past `limit` the stream is cancelled.
pub async fn drain(body: Body, limit: usize) {
    if let Some(stream) = body {
        let _ = read_limited(stream, limit as f64, f64::from(SMALL_BODY_TIMEOUT_MS)).await;
    }
}

fn unreachable(e: JsValue) -> FetchError {
    FetchError::Unreachable(
        e.as_string()
            .or_else(|| js_sys::Error::from(e).message().as_string())
            .unwrap_or_default(),
    )
}

impl Fetcher for RuntimeFetcher {
    type Body = Body;

    async fn fetch(
        &self,
        req: &UpstreamRequest,
        timeout_ms: u32,
    ) -> Result<http::Response<Body>, FetchError> {
        let controller = web_sys::AbortController::new().map_err(unreachable)?;
        let init = web_sys::RequestInit::new();
        init.set_method(req.method.as_str());
        init.set_redirect(web_sys::RequestRedirect::Manual);
        init.set_signal(Some(&controller.signal()));
        init.set_headers(&JsValue::from(
            headers_to_runtime(&req.headers).map_err(|e| FetchError::Unreachable(e.to_string()))?,
        ));
        let request = web_sys::Request::new_with_str_and_init(req.url.as_str(), &init)
            .map_err(unreachable)?;
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let response = JsFuture::from(global.fetch_with_request(&request));
        let timer = worker::Delay::from(std::time::Duration::from_millis(timeout_ms.into()));
        pin_mut!(response);
        pin_mut!(timer);
        let resp = match select(response, timer).await {
            Either::Left((result, _)) => result.map_err(unreachable)?,
            Either::Right(_) => {
                controller.abort();
                return Err(FetchError::Timeout);
            }
        };
        let resp: web_sys::Response = resp.dyn_into().map_err(unreachable)?;
        // A body that stops mid-way is cut after the same bound as the wait for headers.
        let mut out = http::Response::new(resp.body());
        *out.status_mut() =
            http::StatusCode::from_u16(resp.status()).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *out.headers_mut() = headers_from_runtime(&resp.headers());
        let length = out
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(length), true) = (length, out.body().is_some()) {
            super::body_deadline::bound_body(&controller, timeout_ms, length);
        }
        Ok(out)
    }

    async fn read_small(&self, body: Body, limit: usize) -> Option<Vec<u8>> {
        let Some(stream) = body else {
            return Some(Vec::new());
        };
        let array = read_limited(stream, limit as f64, SMALL_BODY_TIMEOUT_MS.into())
            .await
            .ok()?
            .dyn_into::<js_sys::Uint8Array>()
            .ok()?;
        // One copy into wasm, into a Vec of exactly the body's length.
        Some(array.to_vec())
    }

    fn body_of(&self, bytes: Vec<u8>) -> Body {
        // A JS-owned copy; the Vec is freed on return, so wasm holds the bytes no longer.
        let array = js_sys::Uint8Array::from(bytes.as_slice());
        drop(bytes);
        // `Response` takes any array; should it refuse, the body is empty: the client sees a
        // short body against the Content-Length (and retries), and the store keeps nothing.
        stream_over(&array).ok().flatten()
    }

    fn tee(&self, body: Body) -> (Body, Body) {
        match body {
            None => (None, None),
            Some(stream) => {
                let pair = stream.tee();
                (pair.get(0).dyn_into().ok(), pair.get(1).dyn_into().ok())
            }
        }
    }

    async fn pause(&self, ms: u32) {
        worker::Delay::from(std::time::Duration::from_millis(ms.into())).await;
    }

    async fn verify_ecdsa_p256(
        &self,
        spki: &[u8],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<bool, String> {
        super::ecdsa::verify(spki, message, signature).await
    }

    async fn coordinate(&self, key: &str, lease_ms: u32) -> crate::ports::Acquired {
        super::coordinator::acquire(key, lease_ms).await
    }

    async fn land(&self, key: &str, ok: bool, payload: Option<&str>) {
        super::coordinator::land(key, ok, payload).await
    }

    async fn drain(&self, body: Body, limit: usize) {
        drain(body, limit).await
    }

    fn discard(&self, body: Body) {
        if let Some(stream) = body {
            // The promise only reports the cancellation; nothing waits for it.
            let _ = stream.cancel();
        }
    }
}
