//! A bound on the whole of an upstream body: once headers have come, a body of known length must
//! arrive within the upstream timeout plus its length at `MIN_BODY_RATE`, or the request is
//! aborted. A stalled upstream then ends in a reset for the client (which retries) and a failed
//! put for the store (which holds nothing), not in a hang.
//! Why not an idle timer per chunk: any JavaScript in a body's path (a pull source, a
//! TransformStream, a BYOB pump) cut pass-through from ~800 MB/s to 50–100 MB/s in workerd; the
//! abort is one timer per request and leaves the bytes in the runtime's native streams.

use wasm_bindgen::prelude::*;

/// The slowest average rate, bytes per second, a body may arrive at (a 1 GiB layer: ~4.5 hours).
pub const MIN_BODY_RATE: u64 = 64 * 1024;

#[wasm_bindgen(inline_js = r#"
export function abort_after(controller, ms) {
  setTimeout(() => controller.abort(new Error(`upstream body not done after ${ms} ms`)), ms);
}
"#)]
extern "C" {
    fn abort_after(controller: &web_sys::AbortController, ms: f64);
}

/// Aborts `controller`'s request if its body of `length` bytes is not done in time.
pub fn bound_body(controller: &web_sys::AbortController, timeout_ms: u32, length: u64) {
    let ms = u64::from(timeout_ms).saturating_add(length.saturating_mul(1000) / MIN_BODY_RATE);
    abort_after(controller, ms as f64);
}
