//! The one thing the core needs from the platform: an HTTP client that does not follow redirects.
//! The body type is opaque: in the worker it is the runtime's stream (bytes never enter wasm), in
//! native tests a `Vec<u8>`.

use http::{HeaderMap, Method};

use crate::flights::Landing;

/// A request to an upstream (registry, token realm or blob host).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: url::Url,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No response headers within the configured time.
    Timeout,
    /// Connection refused, reset, DNS failure… The text is for logs.
    Unreachable(String),
}

#[allow(async_fn_in_trait)] // wasm is single-threaded; no Send bound wanted
pub trait Fetcher {
    type Body;
    /// Sends `req` with redirects *not* followed, waiting at most `timeout_ms` for headers.
    async fn fetch(
        &self,
        req: &UpstreamRequest,
        timeout_ms: u32,
    ) -> Result<http::Response<Self::Body>, FetchError>;
    /// Reads a small body (token JSON, error envelopes), or `None` when it is over `limit` or fails.
    async fn read_small(&self, body: Self::Body, limit: usize) -> Option<Vec<u8>>;
    /// Lets go of a body that will not be read.
    fn discard(&self, body: Self::Body);
    /// Asks the other isolates (a Durable Object per object) who fetches `key`: this request
    /// (`Lead`, for up to `lease_ms`), nobody any more because it just landed (`Landed`, with
    /// what the leader shared, if anything), or nobody could say in time (`Busy`, `Unavailable`:
    /// fetch alone). Without the binding: `Unavailable`.
    async fn coordinate(&self, _key: &str, _lease_ms: u32) -> Acquired {
        Acquired::Unavailable
    }
    /// Tells the other isolates that the lead on `key` ended (`ok`), sharing `payload` (a token
    /// the leader fetched for the same identity). Without the binding: nothing.
    async fn land(&self, _key: &str, _ok: bool, _payload: Option<&str>) {}
    /// Lets go of a refused request's body: up to `limit` bytes are consumed where they are (never
    /// in wasm), so the client reads the answer rather than a reset; past it the body is cut off.
    async fn drain(&self, body: Self::Body, _limit: usize) {
        self.discard(body)
    }
    /// Splits a body into two that each yield every byte (one for the client, one for a store).
    fn tee(&self, body: Self::Body) -> (Self::Body, Self::Body);
    /// Hands bytes the core read and checked (a verified manifest) back to the runtime as a body.
    /// Called once per body: the runtime keeps its own copy and `bytes` is freed right away, so
    /// what the client and the store get never needs the core's memory again.
    fn body_of(&self, bytes: Vec<u8>) -> Self::Body;
    /// Waits `ms` milliseconds (before a retry).
    async fn pause(&self, ms: u32);
    /// Whether `signature` (`r || s`) is an ECDSA P-256 / SHA-256 signature of `message` by the key
    /// `spki` (SubjectPublicKeyInfo DER): the signature policy's one piece of crypto (`cosign`),
    /// WebCrypto in the worker. `Err` when it cannot tell (the key does not import): fails closed.
    async fn verify_ecdsa_p256(
        &self,
        _spki: &[u8],
        _message: &[u8],
        _signature: &[u8; 64],
    ) -> Result<bool, String> {
        Err("no ECDSA verifier on this platform".into())
    }
}

/// What the other isolates say about a miss (see `Fetcher::coordinate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Lead,
    Landed(Option<String>),
    Busy,
    Unavailable,
}

/// Pull counters shared by every isolate (KV in the worker): eventually consistent, no
/// compare-and-set. A count is read before a pull is decided and written after.
#[allow(async_fn_in_trait)]
pub trait PullCounts {
    /// The stored count under `key` (0 when none); an error means "unknown" (no limit applies).
    async fn count(&self, key: &str) -> Result<u64, String>;
    /// Stores `count` under `key` for `keep_secs`, after the response (deferred by the platform).
    fn record(&self, key: &str, count: u64, keep_secs: u64);
}

/// A tag's resolution as last seen upstream: enough to answer a HEAD and find the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub stored_at: u64,
}

/// A tag's record as stored, with the manifest's bytes when they were kept beside it, so one
/// store lookup answers a warm GET by tag. Whoever gets a body passes it on or discards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTag<B> {
    pub record: TagRecord,
    pub body: Option<B>,
}

/// A manifest as the store holds it: its bytes as the upstream sent them, as a body of the
/// platform's (in the worker the store's own stream, so a hit never brings the bytes into wasm),
/// with the media type and length kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest<B> {
    pub body: B,
    pub media_type: String,
    /// The body's length in bytes (the response's Content-Length).
    pub size: u64,
}

/// A single byte range a client asked for (`Range: bytes=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-`
    From(u64),
    /// `bytes=a-b` (inclusive)
    FromTo(u64, u64),
    /// `bytes=-n`
    Suffix(u64),
}

impl RangeSpec {
    /// Parses one `bytes=` range; anything else (several ranges, other units) is `None`.
    pub fn parse(header: &str) -> Option<RangeSpec> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let num = |s: &str| {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                None
            } else {
                s.parse::<u64>().ok()
            }
        };
        match (a.trim(), b.trim()) {
            ("", n) => num(n).filter(|n| *n > 0).map(RangeSpec::Suffix),
            (a, "") => num(a).map(RangeSpec::From),
            (a, b) => match (num(a), num(b)) {
                (Some(a), Some(b)) if a <= b => Some(RangeSpec::FromTo(a, b)),
                _ => None,
            },
        }
    }

    /// The span an optional range asks of an object of `size` bytes: `Ok(None)` for the whole
    /// object, `Err(OutsideObject)` when the range lies outside it.
    pub fn span(range: Option<RangeSpec>, size: u64) -> Result<Option<(u64, u64)>, OutsideObject> {
        match range {
            None => Ok(None),
            Some(r) => r.resolve(size).map(Some).ok_or(OutsideObject),
        }
    }

    /// The inclusive byte span this range covers in an object of `size` bytes, if satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match self {
            RangeSpec::From(a) if a < size => Some((a, size - 1)),
            RangeSpec::FromTo(a, b) if a < size => Some((a, b.min(size - 1))),
            RangeSpec::Suffix(n) => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }
}

/// A range that lies outside the object it asks of (answered `416`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideObject;

/// A blob looked up in a store.
#[derive(Debug)]
pub enum BlobLookup<B> {
    /// `body` is `None` for a HEAD; `span` is the inclusive byte span served when a range was asked.
    Found {
        body: Option<B>,
        size: u64,
        span: Option<(u64, u64)>,
    },
    /// Stored, but the range asked for lies outside it.
    Unsatisfiable {
        size: u64,
    },
    Missing,
}

/// How a blob fetched on a miss reaches the store (`BLOB_FILL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BlobFill {
    /// The upstream's body is split by the runtime: one branch to the client, one to the store.
    /// One upstream GET; the client goes at the pace of both.
    #[default]
    WithAnswer,
    /// Blobs of `from` bytes or more: the client's answer is the upstream's body untouched; once
    /// it has been sent, the blob is fetched again and stored (`mirror::refill`). Two upstream
    /// GETs; the client goes at the upstream's pace even when the store is slower (as local
    /// simulators are). Smaller blobs are split as with `WithAnswer`: their store write is short,
    /// and a second GET would cost more than it saves.
    AfterAnswer { from: u64 },
}

/// The smallest blob `BLOB_FILL=after-answer` stores after the answer: at the local R2
/// simulator's ~190 MB/s its write would hold the client ~20 ms; below it, a second GET costs
/// about as much as it saves (a pull of 1 MiB layers measured slower with every blob refilled).
pub const AFTER_ANSWER_FROM: u64 = 4 << 20;

/// Where the mirror keeps what it fetched. Writes happen after the response (the platform defers
/// them); a blob is committed only if its bytes hash to its digest and its length is as announced.
#[allow(async_fn_in_trait)]
pub trait Store {
    type Body;
    async fn tag(&self, key: &str) -> Option<StoredTag<Self::Body>>;
    /// Every put takes the leader's `Landing` (or `Landing::none()`): dropped when the write has
    /// ended, after `failed()` if it did not commit (see `mirror::flights`). `body`, when given,
    /// is the manifest's verified bytes (`record.size` of them), kept with the record.
    fn put_tag(
        &self,
        key: &str,
        record: &TagRecord,
        body: Option<Self::Body>,
        keep_secs: u64,
        landing: Landing,
    );
    fn delete_tag(&self, key: &str);
    /// A stored manifest, its body unread. Whoever gets it either passes the body on or discards it.
    async fn manifest(&self, key: &str) -> Option<StoredManifest<Self::Body>>;
    /// Keeps a manifest whose bytes were verified against its digest; `size` is their exact length
    /// (a body of any other length is not kept).
    fn put_manifest(
        &self,
        key: &str,
        manifest: StoredManifest<Self::Body>,
        keep_secs: u64,
        landing: Landing,
    );
    async fn blob(&self, key: &str, range: Option<RangeSpec>, head: bool)
        -> BlobLookup<Self::Body>;
    fn put_blob(
        &self,
        key: &str,
        digest: &str,
        size: u64,
        body: Self::Body,
        keep_secs: u64,
        landing: Landing,
    );
    /// How blobs fetched on a miss are stored.
    fn blob_fill(&self) -> BlobFill {
        BlobFill::WithAnswer
    }
    /// Takes a blob to fetch again and store after the answer (`BlobFill::AfterAnswer`); the
    /// platform runs it (`mirror::refill::run`) once the answer's body has been sent. A store
    /// that cannot says its flight failed, so followers fetch for themselves.
    fn fill_after(&self, refill: crate::mirror::refill::Refill) {
        refill.landing.failed();
    }
    /// The largest blob `put_blob` keeps.
    fn max_blob(&self) -> u64 {
        crate::policy::MAX_STORED_BLOB
    }
    /// Whether this is the mirror's shared store: only requests it serves may be answered from
    /// the isolate's memory of it (`mirror::memo`).
    fn shared(&self) -> bool {
        true
    }
    /// A small note of the mirror's own (the prewarm cursor).
    async fn note(&self, key: &str) -> Option<String>;
    fn put_note(&self, key: &str, value: &str, keep_secs: u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("bytes=0-99", Some(RangeSpec::FromTo(0, 99)))]
    #[case("bytes=100-", Some(RangeSpec::From(100)))]
    #[case("bytes=-10", Some(RangeSpec::Suffix(10)))]
    #[case(" bytes= 5 - 6 ", Some(RangeSpec::FromTo(5, 6)))]
    #[case("bytes=-0", None)]
    #[case("bytes=9-1", None)]
    #[case("bytes=0-1,3-4", None)]
    #[case("items=0-1", None)]
    #[case("bytes=a-b", None)]
    #[case("bytes=+1-2", None)]
    #[case("bytes=-", None)]
    #[case("bytes=99999999999999999999999-", None)]
    fn ranges_parse(#[case] h: &str, #[case] want: Option<RangeSpec>) {
        assert_eq!(RangeSpec::parse(h), want);
    }

    #[rstest]
    #[case(RangeSpec::FromTo(0, 9), 100, Some((0, 9)))]
    #[case(RangeSpec::FromTo(90, 200), 100, Some((90, 99)))]
    #[case(RangeSpec::From(99), 100, Some((99, 99)))]
    #[case(RangeSpec::From(100), 100, None)]
    #[case(RangeSpec::Suffix(10), 100, Some((90, 99)))]
    #[case(RangeSpec::Suffix(1000), 100, Some((0, 99)))]
    #[case(RangeSpec::From(0), 0, None)]
    fn ranges_resolve(#[case] r: RangeSpec, #[case] size: u64, #[case] want: Option<(u64, u64)>) {
        assert_eq!(r.resolve(size), want);
    }
}
