//! Fakes shared by the flow tests: a scripted network that records requests, a counting store,
//! a Docker-Hub-like upstream, and a `World` that runs requests through the mirror.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use edgemirror::config::{Config, Vars};
use edgemirror::flights::{Flights, Landing};
use edgemirror::mirror::refill::Refill;
use edgemirror::mirror::{handle, Incoming, Outcome, Reply, Session};
use edgemirror::ports::{
    BlobFill, BlobLookup, FetchError, Fetcher, RangeSpec, Store, StoredManifest, StoredTag,
    TagRecord, UpstreamRequest,
};
use edgemirror::token::TokenCache;
use futures::executor::block_on;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use sha2::Digest as _;

pub const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
pub const TABLE: &str = r#"{
    "docker.io": {"registry": "http://hub.test", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true},
    "plain": {"registry": "http://plain.test", "prefixes": ["plain"], "ns": ["plain.test"]}
}"#;

pub type Handler = Box<dyn Fn(&UpstreamRequest) -> Result<Response<Vec<u8>>, FetchError>>;

/// A scripted network that records every request.
pub struct FakeNet {
    pub handler: Handler,
    pub seen: RefCell<Vec<UpstreamRequest>>,
    /// Every pause before a retry, in milliseconds.
    pub pauses: RefCell<Vec<u32>>,
    /// When set, every fetch, body read and pause lets other tasks run first (requests
    /// interleave as they do in one isolate).
    pub interleave: Cell<bool>,
    /// Bytes read into the core with `read_small` (what enters wasm in the worker).
    pub bytes_read: Cell<usize>,
    /// Bodies let go unread.
    pub discarded: Cell<usize>,
    /// The most manifest budget ever held while a body was being read.
    pub budget_peak: Cell<u64>,
}

/// Pending once, then ready: lets the executor run the other futures of a join.
pub struct YieldNow(bool);

/// Lets the other futures of a join run first (as requests interleave in one isolate).
pub fn yield_now() -> YieldNow {
    YieldNow(false)
}

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl FakeNet {
    pub fn new(
        handler: impl Fn(&UpstreamRequest) -> Result<Response<Vec<u8>>, FetchError> + 'static,
    ) -> Self {
        FakeNet {
            handler: Box::new(handler),
            seen: RefCell::new(Vec::new()),
            pauses: RefCell::new(Vec::new()),
            interleave: Cell::new(false),
            bytes_read: Cell::new(0),
            discarded: Cell::new(0),
            budget_peak: Cell::new(0),
        }
    }
    /// How many requests went to `host`.
    pub fn requests_to(&self, host: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|r| r.url.host_str() == Some(host))
            .count()
    }
    pub fn urls(&self) -> Vec<String> {
        self.seen
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }
    pub fn auth_of(&self, i: usize) -> Option<String> {
        self.seen.borrow()[i]
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
    }
}

impl Fetcher for FakeNet {
    type Body = Vec<u8>;
    async fn fetch(
        &self,
        req: &UpstreamRequest,
        _timeout_ms: u32,
    ) -> Result<Response<Vec<u8>>, FetchError> {
        if self.interleave.get() {
            YieldNow(false).await;
        }
        self.seen.borrow_mut().push(req.clone());
        (self.handler)(req)
    }
    async fn read_small(&self, body: Vec<u8>, limit: usize) -> Option<Vec<u8>> {
        let held = edgemirror::mirror::budget::held();
        self.budget_peak.set(self.budget_peak.get().max(held));
        if self.interleave.get() {
            // A body takes a while to arrive: other requests run meanwhile.
            YieldNow(false).await;
        }
        if body.len() > limit {
            return None;
        }
        self.bytes_read.set(self.bytes_read.get() + body.len());
        Some(body)
    }
    fn discard(&self, _body: Vec<u8>) {
        self.discarded.set(self.discarded.get() + 1);
    }
    fn tee(&self, body: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        (body.clone(), body)
    }
    fn body_of(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    async fn pause(&self, ms: u32) {
        if self.interleave.get() {
            YieldNow(false).await;
        }
        self.pauses.borrow_mut().push(ms);
    }
    /// What WebCrypto does in the worker, with the pure-Rust p256 crate.
    async fn verify_ecdsa_p256(
        &self,
        spki: &[u8],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<bool, String> {
        use p256::ecdsa::signature::Verifier;
        // The SPKI's 26-byte prefix is checked by `cosign::keys`; the point follows it.
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(spki.get(26..).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
        Ok(key.verify(message, &sig).is_ok())
    }
}

/// An in-memory store that counts what it is asked, and (like R2's sha256 check) refuses a blob
/// whose bytes do not hash to its digest or whose length is not the announced one (and, like a
/// fixed-length put, a manifest whose length is not the announced one).
#[derive(Default)]
pub struct FakeStore {
    pub tags: RefCell<HashMap<String, StoredTag<Vec<u8>>>>,
    /// Tag lookups that came with the manifest's bytes.
    pub tag_bodies_served: Cell<usize>,
    pub manifests: RefCell<HashMap<String, StoredManifest<Vec<u8>>>>,
    /// Stored manifests handed out (each a body the caller passes on or discards).
    pub manifest_hits: Cell<usize>,
    pub blobs: RefCell<HashMap<String, Vec<u8>>>,
    pub refused: Cell<usize>,
    pub notes: RefCell<HashMap<String, String>>,
    /// When set, a note lookup answers only once this says so (it looks again each time the task
    /// is polled, 100 times at most): for tests of what runs beside a lookup.
    pub note_gate: RefCell<Option<Box<dyn Fn() -> bool>>>,
    /// A gated note lookup that answered without the gate opening.
    pub note_gave_up: Cell<bool>,
    /// Note lookups asked (each counted when it starts).
    pub notes_asked: Cell<usize>,
    /// The same as `note_gate`, for tag lookups.
    pub tag_gate: RefCell<Option<Box<dyn Fn() -> bool>>>,
    pub tag_gave_up: Cell<bool>,
    /// How blobs are filled (`BLOB_FILL`), and the refills left by answers (`fill_after`).
    pub fill: Cell<BlobFill>,
    /// Notes written (`put_note`), each write counted.
    pub note_puts: Cell<usize>,
    pub refills: RefCell<Vec<Refill>>,
}

pub fn sha(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Ready once `gate` (if set) says so: it looks again each time the task is polled, 100 times at
/// most, and notes in `gave_up` a lookup that answered with the gate still shut.
async fn gated(gate: &RefCell<Option<Box<dyn Fn() -> bool>>>, gave_up: &Cell<bool>) {
    let mut polls = 0;
    std::future::poll_fn(|cx| {
        let open = gate.borrow().as_ref().is_none_or(|g| g());
        polls += 1;
        if open || polls > 100 {
            gave_up.set(gave_up.get() || !open);
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

impl Store for FakeStore {
    type Body = Vec<u8>;
    async fn tag(&self, key: &str) -> Option<StoredTag<Vec<u8>>> {
        gated(&self.tag_gate, &self.tag_gave_up).await;
        let t = self.tags.borrow().get(key).cloned()?;
        if t.body.is_some() {
            self.tag_bodies_served.set(self.tag_bodies_served.get() + 1);
        }
        Some(t)
    }
    fn put_tag(
        &self,
        key: &str,
        record: &TagRecord,
        body: Option<Vec<u8>>,
        _keep: u64,
        landing: Landing,
    ) {
        // Like the runtime's: bytes of another length than the record's are not kept.
        if body.as_ref().is_some_and(|b| b.len() as u64 != record.size) {
            self.refused.set(self.refused.get() + 1);
            return landing.failed();
        }
        let t = StoredTag {
            record: record.clone(),
            body,
        };
        self.tags.borrow_mut().insert(key.to_string(), t);
    }
    fn delete_tag(&self, key: &str) {
        self.tags.borrow_mut().remove(key);
    }
    async fn manifest(&self, key: &str) -> Option<StoredManifest<Vec<u8>>> {
        let m = self.manifests.borrow().get(key).cloned()?;
        self.manifest_hits.set(self.manifest_hits.get() + 1);
        Some(m)
    }
    fn put_manifest(&self, key: &str, m: StoredManifest<Vec<u8>>, _keep: u64, landing: Landing) {
        if m.body.len() as u64 != m.size {
            self.refused.set(self.refused.get() + 1);
            return landing.failed();
        }
        self.manifests.borrow_mut().insert(key.to_string(), m);
    }
    async fn blob(&self, key: &str, range: Option<RangeSpec>, head: bool) -> BlobLookup<Vec<u8>> {
        let blobs = self.blobs.borrow();
        let Some(b) = blobs.get(key) else {
            return BlobLookup::Missing;
        };
        let size = b.len() as u64;
        let Ok(span) = RangeSpec::span(range, size) else {
            return BlobLookup::Unsatisfiable { size };
        };
        let body = span.map_or(b.clone(), |(a, z)| b[a as usize..=z as usize].to_vec());
        BlobLookup::Found {
            body: (!head).then_some(body),
            size,
            span,
        }
    }
    fn put_blob(
        &self,
        key: &str,
        digest: &str,
        size: u64,
        body: Vec<u8>,
        _keep: u64,
        landing: Landing,
    ) {
        if sha(&body) != digest || body.len() as u64 != size {
            self.refused.set(self.refused.get() + 1);
            return landing.failed();
        }
        self.blobs.borrow_mut().insert(key.to_string(), body);
    }
    fn blob_fill(&self) -> BlobFill {
        self.fill.get()
    }
    fn fill_after(&self, refill: Refill) {
        self.refills.borrow_mut().push(refill);
    }
    async fn note(&self, key: &str) -> Option<String> {
        self.notes_asked.set(self.notes_asked.get() + 1);
        gated(&self.note_gate, &self.note_gave_up).await;
        self.notes.borrow().get(key).cloned()
    }
    fn put_note(&self, key: &str, value: &str, _keep: u64) {
        self.note_puts.set(self.note_puts.get() + 1);
        self.notes
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
    }
}

pub fn resp(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response<Vec<u8>>, FetchError> {
    let mut r = Response::new(body.to_vec());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Ok(r)
}

/// A Docker-Hub-like registry at hub.test: bearer tokens from auth.test, blobs 307 to cdn.test.
pub fn hub(req: &UpstreamRequest) -> Result<Response<Vec<u8>>, FetchError> {
    let authed = req
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap())
        == Some("Bearer tok-1");
    match (req.url.host_str().unwrap(), req.url.path()) {
        ("auth.test", "/token") => resp(200, &[], br#"{"token":"tok-1","expires_in":300}"#),
        ("hub.test", _) if !authed => resp(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="http://auth.test/token",service="hub",scope="repository:library/alpine:pull""#,
            )],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        ),
        ("hub.test", "/v2/library/alpine/manifests/latest") => resp(
            200,
            &[
                (
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                ),
                ("docker-content-digest", &sha(MANIFEST)),
                ("content-length", &MANIFEST.len().to_string()),
                ("etag", "\"x\""),
                ("x-internal", "secret"),
            ],
            MANIFEST,
        ),
        ("hub.test", "/v2/library/alpine/manifests/missing") => resp(
            404,
            &[],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"upstream says no"}]}"#,
        ),
        ("hub.test", p) if p.starts_with("/v2/library/alpine/blobs/") => resp(
            307,
            &[("location", &format!("http://cdn.test/data/{SHA}"))],
            b"",
        ),
        ("cdn.test", _) => match req.headers.get("range") {
            Some(_) => resp(
                206,
                &[("content-range", "bytes 0-3/10"), ("content-length", "4")],
                b"LAYE",
            ),
            None => resp(200, &[("content-length", "10")], b"LAYERBYTES"),
        },
        _ => resp(404, &[], b"<Error>NoSuchKey</Error>"),
    }
}

pub struct World {
    pub net: FakeNet,
    pub tokens: RefCell<TokenCache>,
    pub flights: Flights,
    pub store: FakeStore,
    pub config: Config,
    pub now: Cell<u64>,
}

impl World {
    pub fn new(net: FakeNet) -> World {
        let config = Config::from_vars(&Vars {
            upstreams: Some(TABLE),
            ..Default::default()
        })
        .unwrap();
        // Each world is a fresh isolate: nothing in its memory.
        edgemirror::mirror::memo::clear();
        edgemirror::mirror::markers::clear();
        World {
            net,
            tokens: RefCell::new(TokenCache::default()),
            flights: Flights::default(),
            store: FakeStore::default(),
            config,
            now: Cell::new(1_000),
        }
    }
    pub fn session(&self) -> Session<'_, FakeNet> {
        Session {
            fetcher: &self.net,
            tokens: &self.tokens,
            flights: &self.flights,
            now: self.now.get(),
            timeout_ms: 1_000,
            secret: &|_| None,
            budget: None,
        }
    }
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (Response<Reply<Vec<u8>>>, Outcome) {
        let session = self.session();
        block_on(handle(
            Ok(&self.config),
            &session,
            &self.store,
            &incoming(method, url, headers, b""),
        ))
    }
    /// One request with these secrets (operator credentials) and this body, at time 1000.
    pub fn call(
        &self,
        secret: &dyn Fn(&str) -> Option<String>,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response<Reply<Vec<u8>>> {
        let session = Session {
            fetcher: &self.net,
            tokens: &self.tokens,
            flights: &self.flights,
            now: 1_000,
            timeout_ms: 1_000,
            secret,
            budget: None,
        };
        let req = incoming(method, url, headers, body);
        block_on(handle(Ok(&self.config), &session, &self.store, &req)).0
    }
    /// GETs of `paths` at once, interleaved at every upstream request and pause.
    pub fn get_all(&self, paths: &[String]) -> Vec<Response<Reply<Vec<u8>>>> {
        self.net.interleave.set(true);
        let session = self.session();
        let incoming: Vec<Incoming> = paths
            .iter()
            .map(|p| Incoming {
                method: Method::GET,
                url: url::Url::parse(&format!("http://mirror.test{p}")).unwrap(),
                headers: HeaderMap::new(),
                body: Vec::new(),
            })
            .collect();
        let all = incoming
            .iter()
            .map(|i| handle(Ok(&self.config), &session, &self.store, i));
        let out = block_on(futures::future::join_all(all))
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        self.net.interleave.set(false);
        out
    }
    pub fn get(&self, path: &str) -> (Response<Reply<Vec<u8>>>, Outcome) {
        self.request(Method::GET, &format!("http://mirror.test{path}"), &[])
    }
}

/// A client's request as the core sees it.
pub fn incoming(method: Method, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Incoming {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Incoming {
        method,
        url: url::Url::parse(url).unwrap(),
        headers: h,
        body: body.to_vec(),
    }
}

pub fn body(r: &Response<Reply<Vec<u8>>>) -> Vec<u8> {
    match r.body() {
        Reply::Stream(b) | Reply::Bytes(b) => b.clone(),
        Reply::Empty => Vec::new(),
    }
}

pub fn h_cache(r: &Response<Reply<Vec<u8>>>) -> String {
    r.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub fn error_code(r: &Response<Reply<Vec<u8>>>) -> String {
    let v: serde_json::Value = serde_json::from_slice(&body(r)).expect("an OCI error envelope");
    v["errors"][0]["code"].as_str().unwrap().to_string()
}
