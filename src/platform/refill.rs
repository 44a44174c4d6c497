//! `BLOB_FILL=after-answer` on the platform: the answer's body is watched on its way to the
//! client (a `FixedLengthStream` the runtime pipes into, no byte through wasm), and once it has
//! been sent the blob is fetched again and stored (`mirror::refill::run`), after the response.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{Context, Env};

use super::convert::Body;
use super::store::{Deferred, RuntimeStore};
use crate::config::Config;
use crate::mirror::refill::{run, Refill, REFILL_BUDGET};
use crate::mirror::Reply;
use crate::ports::BlobFill;

#[wasm_bindgen(inline_js = r#"
export function watched(body, size) {
  const fixed = new FixedLengthStream(size);
  const sent = body.pipeTo(fixed.writable).then(() => true, () => false);
  return [fixed.readable, sent];
}
"#)]
extern "C" {
    /// `[readable, sent]`: the body as the client reads it, and a promise settled (never
    /// rejected) once the body has been sent or cut.
    fn watched(body: &web_sys::ReadableStream, size: f64) -> js_sys::Array;
}

/// Hands `refill` to the runtime: the answer's body is swapped for a watched one and the refill
/// runs after it has been sent (or at once, for an answer without a body), into the bucket and
/// inventory of the request's `store`.
pub fn after_answer(
    response: &mut http::Response<Reply<Body>>,
    refill: Refill,
    store: &RuntimeStore,
    config: Rc<Config>,
    env: Env,
    ctx: &Context,
) {
    let sent = match response.body_mut() {
        Reply::Stream(Some(stream)) => {
            let pair = watched(stream, refill.size as f64);
            *stream = pair.get(0).unchecked_into();
            Some(js_sys::Promise::from(pair.get(1)))
        }
        _ => None,
    };
    // The same request's context, for the store writes the refill starts (they run in it).
    let js: &JsValue = ctx.as_ref().as_ref();
    let own = Context::new(js.clone().unchecked_into());
    let bindings = (store.bucket.clone(), store.inventory.clone());
    ctx.wait_until(refill_when_sent(sent, refill, bindings, config, env, own));
}

async fn refill_when_sent(
    sent: Option<js_sys::Promise>,
    refill: Refill,
    (bucket, inventory): (Option<worker::Bucket>, Option<super::stats::Db>),
    config: Rc<Config>,
    env: Env,
    ctx: Context,
) {
    if let Some(sent) = sent {
        // Settled either way: a cut answer still leaves the store to fill.
        let _ = wasm_bindgen_futures::JsFuture::from(sent).await;
    }
    let store = RuntimeStore {
        ctx: Deferred::Request(&ctx),
        bucket,
        inventory,
        fill: BlobFill::WithAnswer,
        after: Default::default(),
    };
    let secret = |name: &str| super::env::var(&env, name);
    let budget = crate::mirror::Budget::new(REFILL_BUDGET);
    let session = super::background_session(&secret, &budget, config.upstream_timeout_ms);
    let key = refill.key.clone();
    if let Err(why) = run(&config, &session, &store, refill).await {
        worker::console_warn!(
            "{}",
            serde_json::json!({"msg": "refill skipped", "key": crate::cache_key::object_name(&key), "reason": why.to_string()})
        );
    }
}
