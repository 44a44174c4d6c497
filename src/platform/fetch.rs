//! The upstream client: the runtime's `fetch` with `redirect: "manual"`, a bound on the wait for
//! response headers, and a bound on the whole body (`body_deadline`).

use futures::future::{select, Either};
use futures::pin_mut;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::convert::{headers_from_runtime, headers_to_runtime, Body};
use crate::ports::{FetchError, Fetcher, UpstreamRequest};

pub struct RuntimeFetcher;

/// Bound on reading a small body (token JSON, an error envelope, a manifest) once headers came.
const SMALL_BODY_TIMEOUT_MS: u64 = 30_000;

async fn read_all(reader: &web_sys::ReadableStreamDefaultReader, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.ok()?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()?
            .as_bool()
            .unwrap_or(true);
        if done {
            return Some(out);
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).ok()?;
        let bytes = js_sys::Uint8Array::new(&value);
        if out.len().saturating_add(bytes.length() as usize) > limit {
            let _ = reader.cancel();
            return None;
        }
        out.extend_from_slice(&bytes.to_vec());
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
        let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        let read = read_all(&reader, limit);
        let timer = worker::Delay::from(std::time::Duration::from_millis(SMALL_BODY_TIMEOUT_MS));
        pin_mut!(read);
        pin_mut!(timer);
        match select(read, timer).await {
            Either::Left((out, _)) => out,
            Either::Right(_) => {
                let _ = reader.cancel();
                None
            }
        }
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

    fn discard(&self, body: Body) {
        if let Some(stream) = body {
            // The promise only reports the cancellation; nothing waits for it.
            let _ = stream.cancel();
        }
    }
}
