//! The `Store` on the platform: the Cache API (per data centre, always there) for tag records,
//! manifests and blobs, and R2 (when the `BLOBS` bucket is bound) as the persistent store for blobs
//! and digest manifests. Writes run after the response, in `wait_until`.

use std::cell::RefCell;
use std::future::Future;

use worker::{Bucket, Cache, Context, Headers, Response, ResponseBody, ScheduleContext};

use super::convert::Body;
use super::verify;
use crate::cache_key::object_name;
use crate::digest::{Algorithm, Digest};
use crate::flights::Landing;
use wasm_bindgen::JsCast;

use crate::mirror::refill::Refill;
use crate::ports::{BlobFill, BlobLookup, RangeSpec, Store, StoredManifest, StoredTag, TagRecord};

/// The header of a tag entry that holds the manifest's bytes as its body: the record as JSON.
/// (An entry without it is a record alone, as JSON in the body.)
const RECORD_HEADER: &str = "edgemirror-tag-record";
use crate::reference::clip;

mod lookup;
use lookup::{cache_blob, r2_blob};

/// Where deferred work goes: a request's or a scheduled event's `wait_until`.
pub enum Deferred<'a> {
    Request(&'a Context),
    Schedule(&'a ScheduleContext),
}

impl Deferred<'_> {
    /// Runs `f` after the response; then tells the coordinator about flights whose last store
    /// write this was (their landing was dropped with `f`).
    fn wait_until(&self, f: impl Future<Output = ()> + 'static) {
        self.wait_until_boxed(Box::pin(f));
    }

    /// One copy of the runtime glue for every kind of deferred write (a smaller wasm).
    fn wait_until_boxed(&self, f: std::pin::Pin<Box<dyn Future<Output = ()>>>) {
        let f = async move {
            f.await;
            super::coordinator::flush(&super::isolate().flights).await;
        };
        match self {
            Deferred::Request(ctx) => ctx.wait_until(f),
            Deferred::Schedule(ctx) => ctx.wait_until(f),
        }
    }
}

pub struct RuntimeStore<'a> {
    pub ctx: Deferred<'a>,
    pub bucket: Option<Bucket>,
    /// The inventory of R2 objects (the `STATS` D1 database), when bound.
    pub inventory: Option<super::stats::Db>,
    /// How blobs fetched on a miss are stored (`BLOB_FILL`).
    pub fill: BlobFill,
    /// The blob this request's answer leaves to fetch again and store (`fill_after`); the
    /// platform takes it once the core has answered (see `super::refill`).
    pub after: RefCell<Option<Refill>>,
}

fn log_failure(what: &str, key: &str, e: impl std::fmt::Display) {
    worker::console_warn!(
        "{}",
        serde_json::json!({"msg": "store write failed", "what": what, "key": object_name(key), "error": clip(&e.to_string())})
    );
}

fn response(
    body: ResponseBody,
    headers: &[(&str, String)],
    keep_secs: u64,
) -> worker::Result<Response> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v)?;
    }
    h.set("cache-control", &format!("public, max-age={keep_secs}"))?;
    Ok(Response::from_body(body)?.with_headers(h))
}

/// Puts `resp` in the Cache API; `landing` is dropped when the write has ended (failed if it did).
async fn cache_put(
    key: String,
    resp: worker::Result<Response>,
    what: &'static str,
    landing: Landing,
) {
    let result = match resp {
        Ok(resp) => Cache::default().put(key.as_str(), resp).await,
        Err(e) => Err(e),
    };
    match result {
        Err(e) => {
            landing.failed();
            log_failure(what, &key, e)
        }
        Ok(()) => worker::console_log!(
            "{}",
            serde_json::json!({"msg": "stored", "what": what, "key": object_name(&key)})
        ),
    }
}

impl RuntimeStore<'_> {
    /// A hit on an R2 object, for the inventory (written at most hourly per object).
    fn touch(&self, key: &str) {
        if let Some(write) = self
            .inventory
            .as_ref()
            .and_then(|db| super::stats::touched(db, object_name(key)))
        {
            match &self.ctx {
                Deferred::Request(ctx) => ctx.wait_until(write),
                Deferred::Schedule(ctx) => ctx.wait_until(write),
            }
        }
    }
}

/// An isolate's first use of each store pays that store's own start (in Miniflare's simulators, a
/// Durable Object and its database opened; measured as milliseconds on the first cold request).
/// One lookup of a key no object has, made after the isolate's first answer (a client's `GET
/// /v2/` comes before its pull), pays it off the pull's path.
pub async fn touch(bucket: Option<Bucket>) {
    let _ = Cache::default().get(TOUCH_KEY, false).await;
    if let Some(b) = bucket {
        let _ = b.head("isolate-started").await;
    }
}

/// A key outside every cached object's (those are under `…/v1/`; R2's are `<upstream>/…`).
const TOUCH_KEY: &str = "https://edgemirror.cache/isolate-started";

impl Store for RuntimeStore<'_> {
    type Body = Body;

    async fn tag(&self, key: &str) -> Option<StoredTag<Body>> {
        let mut resp = Cache::default().get(key, false).await.ok()??;
        let with_bytes = resp.headers().get(RECORD_HEADER).ok().flatten();
        let Some(json) = with_bytes else {
            let record = serde_json::from_str(&resp.text().await.ok()?).ok()?;
            return Some(StoredTag { record, body: None });
        };
        let body = stream_of(&resp);
        let length = resp.headers().get("content-length").ok().flatten();
        match serde_json::from_str::<TagRecord>(&json) {
            Ok(record) if length.and_then(|l| l.parse().ok()) == Some(record.size) => {
                Some(StoredTag {
                    record,
                    body: body.map(Some),
                })
            }
            _ => {
                if let Some(s) = body {
                    let _ = s.cancel();
                }
                None
            }
        }
    }

    fn put_tag(
        &self,
        key: &str,
        record: &TagRecord,
        body: Option<Body>,
        keep_secs: u64,
        landing: Landing,
    ) {
        let Ok(json) = serde_json::to_string(record) else {
            return landing.failed();
        };
        // The bytes came from `Fetcher::body_of` (a JS-owned array of exactly `size` bytes), or
        // none: the record alone.
        let resp = match body.flatten() {
            Some(stream) => response(
                ResponseBody::Stream(stream),
                &[
                    ("content-type", record.media_type.clone()),
                    ("content-length", record.size.to_string()),
                    (RECORD_HEADER, json),
                ],
                keep_secs,
            ),
            None => response(
                ResponseBody::Body(json.into_bytes()),
                &[("content-type", "application/json".into())],
                keep_secs,
            ),
        };
        self.ctx
            .wait_until(cache_put(key.to_string(), resp, "tag", landing));
    }

    fn delete_tag(&self, key: &str) {
        let key = key.to_string();
        self.ctx.wait_until(async move {
            let _ = Cache::default().delete(key.as_str(), false).await;
        });
    }

    async fn manifest(&self, key: &str) -> Option<StoredManifest<Body>> {
        // The stored entry's stream goes to the client as it is: the bytes never enter wasm.
        if let Ok(Some(resp)) = Cache::default().get(key, false).await {
            let header = |name: &str| resp.headers().get(name).ok().flatten();
            let media_type = header("content-type");
            // Entries written before the size header carry their Content-Length.
            let size = header(SIZE_HEADER)
                .or_else(|| header("content-length"))
                .and_then(|v| v.parse::<u64>().ok());
            let body = stream_of(&resp);
            match (media_type, size) {
                (Some(media_type), Some(size)) => {
                    return Some(StoredManifest {
                        body,
                        media_type,
                        size,
                    })
                }
                _ => {
                    if let Some(s) = body {
                        let _ = s.cancel();
                    }
                }
            }
        }
        let object = self
            .bucket
            .as_ref()?
            .get(object_name(key))
            .execute()
            .await
            .ok()??;
        let size = object.size();
        let body = match object.body().map(|b| b.response_body()) {
            Some(Ok(ResponseBody::Stream(s))) => Some(s),
            _ => None,
        };
        let Some(media_type) = object.http_metadata().content_type else {
            if let Some(s) = body {
                let _ = s.cancel();
            }
            return None;
        };
        if body.is_none() && size > 0 {
            return None;
        }
        self.touch(key);
        Some(StoredManifest {
            body,
            media_type,
            size,
        })
    }

    fn put_manifest(&self, key: &str, m: StoredManifest<Body>, keep_secs: u64, landing: Landing) {
        // A manifest always has bytes; a body the runtime could not make is not worth keeping.
        let Some(stream) = m.body else {
            return landing.failed();
        };
        let size = m.size;
        // R2 and the Cache API each get a branch of the runtime's stream. The bytes were read and
        // verified before they became this stream (`Fetcher::body_of`, a JS-owned array), so
        // its length is known and exact: no FixedLengthStream is needed, and workerd refuses to
        // pipe a branch of such a stream into one ("Inter-TransformStream pipeTo").
        let for_cache = match self.bucket.clone() {
            Some(bucket) => {
                let pair = stream.tee();
                let (Ok(for_cache), Ok(for_r2)) = (
                    pair.get(0).dyn_into::<web_sys::ReadableStream>(),
                    pair.get(1).dyn_into::<web_sys::ReadableStream>(),
                ) else {
                    return landing.failed();
                };
                let (name, media_type) = (object_name(key).to_string(), m.media_type.clone());
                let landing = landing.clone();
                let inventory = self.inventory.clone();
                self.ctx.wait_until(async move {
                    let meta = worker::HttpMetadata {
                        content_type: Some(media_type),
                        ..Default::default()
                    };
                    match bucket
                        .put(name.as_str(), for_r2)
                        .http_metadata(meta)
                        .execute()
                        .await
                    {
                        Ok(_) => {
                            worker::console_log!(
                                "{}",
                                serde_json::json!({"msg": "stored", "what": "manifest", "store": "r2", "key": name})
                            );
                            // Followers need not wait for the inventory.
                            drop(landing);
                            if let Some(write) = inventory.and_then(|db| super::stats::stored(db, &name, size)) {
                                write.await;
                            }
                        }
                        Err(e) => {
                            landing.failed();
                            log_failure("manifest", &name, e)
                        }
                    }
                });
                for_cache
            }
            None => stream,
        };
        let resp = response(
            ResponseBody::Stream(for_cache),
            &[
                ("content-type", m.media_type),
                ("content-length", size.to_string()),
                (SIZE_HEADER, size.to_string()),
            ],
            keep_secs,
        );
        self.ctx
            .wait_until(cache_put(key.to_string(), resp, "manifest", landing));
    }

    async fn blob(&self, key: &str, range: Option<RangeSpec>, head: bool) -> BlobLookup<Body> {
        if let Some(bucket) = &self.bucket {
            match r2_blob(bucket, key, range, head).await {
                BlobLookup::Missing => {}
                found => {
                    self.touch(key);
                    return found;
                }
            }
        }
        cache_blob(key, range, head).await
    }

    fn max_blob(&self) -> u64 {
        if self.bucket.is_some() {
            crate::policy::MAX_R2_OBJECT
        } else {
            crate::policy::MAX_STORED_BLOB
        }
    }

    async fn note(&self, key: &str) -> Option<String> {
        Cache::default()
            .get(key, false)
            .await
            .ok()??
            .text()
            .await
            .ok()
    }

    fn put_note(&self, key: &str, value: &str, keep_secs: u64) {
        let resp = response(
            ResponseBody::Body(value.as_bytes().to_vec()),
            &[("content-type", "text/plain".into())],
            keep_secs,
        );
        self.ctx
            .wait_until(cache_put(key.to_string(), resp, "note", Landing::none()));
    }

    fn blob_fill(&self) -> BlobFill {
        self.fill
    }

    fn fill_after(&self, refill: Refill) {
        // One blob per request; a second would be a flow's mistake: let its flight fail.
        if let Some(earlier) = self.after.replace(Some(refill)) {
            earlier.landing.failed();
        }
    }

    fn put_blob(
        &self,
        key: &str,
        digest: &str,
        size: u64,
        body: Body,
        keep_secs: u64,
        landing: Landing,
    ) {
        let Some(body) = body else {
            return landing.failed();
        };
        let Ok(digest) = Digest::parse(digest) else {
            let _ = body.cancel();
            return landing.failed();
        };
        let key = key.to_string();
        match self.bucket.clone() {
            Some(bucket) => {
                let name = object_name(&key).to_string();
                let inventory = self.inventory.clone();
                self.ctx.wait_until(async move {
                    let put = bucket.put(name.as_str(), verify::with_length(&body, size));
                    let put = match digest.algorithm_kind() {
                        Algorithm::Sha512 => put.sha512(digest.bytes()),
                        Algorithm::Sha256 => put.sha256(digest.bytes()),
                    };
                    match put.execute().await {
                        Ok(_) => {
                            worker::console_log!("{}", serde_json::json!({"msg": "stored", "what": "blob", "store": "r2", "key": name}));
                            // Followers need not wait for the inventory.
                            drop(landing);
                            if let Some(write) = inventory.and_then(|db| super::stats::stored(db, &name, size)) {
                                write.await;
                            }
                        }
                        Err(e) => {
                            landing.failed();
                            log_failure("blob", &name, e)
                        }
                    }
                });
            }
            None => {
                self.ctx.wait_until(async move {
                    let stored = match blob_headers(digest.as_str(), size, keep_secs) {
                        Ok(headers) => verify::cache_put(&body, &key, &digest, size, &headers).await,
                        Err(e) => Err(e.to_string()),
                    };
                    match stored {
                        Ok(()) => worker::console_log!("{}", serde_json::json!({"msg": "stored", "what": "blob", "store": "cache", "key": object_name(&key)})),
                        Err(e) => {
                            landing.failed();
                            log_failure("blob", &key, e)
                        }
                    }
                });
            }
        }
    }
}

/// Headers of a blob entry in the Cache API. The size is kept in a header of our own: a cached
/// streamed response need not carry Content-Length.
fn blob_headers(digest: &str, size: u64, keep_secs: u64) -> worker::Result<web_sys::Headers> {
    let h = web_sys::Headers::new()?;
    h.set("content-type", "application/octet-stream")?;
    h.set("content-length", &size.to_string())?;
    h.set(SIZE_HEADER, &size.to_string())?;
    h.set("docker-content-digest", digest)?;
    h.set("cache-control", &format!("public, max-age={keep_secs}"))?;
    Ok(h)
}

const SIZE_HEADER: &str = "x-edgemirror-size";

fn stream_of(resp: &Response) -> Body {
    match resp.body() {
        ResponseBody::Stream(s) => Some(s.clone()),
        _ => None,
    }
}
