//! Manifests through the cache. By digest: immutable entries, verified against the digest before
//! they are stored or served. By tag: a tag record (tag → digest, per normalised Accept list) kept
//! for the tag TTL, then revalidated with a HEAD (not a pull on Docker Hub); served stale only when
//! the upstream fails, never after a 404.
//!
//! Memory: a hit is answered with the store's own body stream, so its bytes never enter wasm. A
//! miss reads the bytes into wasm once, to hash them, within the isolate's manifest budget
//! (`budget`), and hands them back to the runtime once (`Fetcher::body_of`) before they go to the
//! client and the store.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

mod memory;
mod miss;

use super::budget;
use super::respond::{oci_error, passed_headers, API_VERSION, API_VERSION_HEADER, DIGEST_HEADER};
use super::{Reply, Request};
use crate::cache_key;
use crate::digest::Algorithm;
use crate::error::{ErrorCode, OciError};
use crate::policy::{
    decide, freshness, CacheStatus, Decision, Facts, Freshness, Kind, MAX_MANIFEST,
};
use crate::ports::{Fetcher, Store, StoredManifest, StoredTag, TagRecord};
use crate::reference::{Digest, Reference, Tag};
use miss::{fetch, store_record};

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

/// A manifest response built from what the mirror holds (headers from the record or the store's
/// metadata, the body as the store gives it).
fn cached_response<B>(
    media_type: &str,
    digest: &str,
    size: u64,
    reply: Reply<B>,
) -> http::Response<Reply<B>> {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(media_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(digest) {
        h.insert(DIGEST_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        h.insert(ETAG, v);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    let mut resp = http::Response::new(reply);
    *resp.headers_mut() = h;
    resp
}

/// Whether this client takes `media_type` (a client that sends no Accept list takes any).
fn accepted<F: Fetcher, S>(r: &Request<'_, F, S>, media_type: &str) -> bool {
    r.accept.is_empty() || crate::policy::accepts(&r.accept, media_type)
}

/// The store key of the manifest `digest` (as a record names it) in this request's repository.
fn digest_key<F: Fetcher, S>(r: &Request<'_, F, S>, digest: &str) -> Option<String> {
    let digest = Digest::parse(digest).ok()?;
    Some(cache_key::manifest(&r.upstream.name, r.name, &digest))
}

/// The 503 for a request that found no room in the manifest budget: the client retries shortly.
fn busy<B>(method: &Method) -> http::Response<Reply<B>> {
    let e = OciError::new(
        ErrorCode::Unavailable,
        "the mirror is reading as many manifests as it can at once; retry shortly",
    );
    let mut resp = oci_error(method, &e);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(budget::RETRY_AFTER_SECS));
    resp
}

pub async fn serve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    reference: &Reference,
) -> Answer<F::Body> {
    match reference {
        Reference::Digest(d) => by_digest(r, d).await,
        Reference::Tag(t) => by_tag(r, t).await,
    }
}

async fn by_digest<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    digest: &Digest,
) -> Answer<F::Body> {
    let key = cache_key::manifest(&r.upstream.name, r.name, digest);
    if let Some(answer) = memory::digest_hit(r, &key) {
        return Ok(answer);
    }
    if let Some(answer) = held_by_digest(r, &key, digest).await {
        return Ok(answer);
    }
    // A burst for one cold digest makes one upstream GET; the others answer from the store.
    match r.coalesce(&key, follow_ms(r)).await {
        Some(leader) => fetch(&leader, Some(digest), None).await,
        None => match held_by_digest(r, &key, digest).await {
            Some(answer) => Ok(answer),
            None => fetch(r, Some(digest), None).await,
        },
    }
}

/// How long a follower waits for a manifest's flight: its leader's exchange, and a token fetch.
fn follow_ms<F: Fetcher, S>(r: &Request<'_, F, S>) -> u32 {
    r.session.timeout_ms.saturating_mul(2)
}

/// The stored manifest `digest`, if held in a type this client takes.
async fn held_by_digest<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    key: &str,
    digest: &Digest,
) -> Option<(http::Response<Reply<F::Body>>, CacheStatus)> {
    let m = r.store.manifest(key).await?;
    if !accepted(r, &m.media_type) {
        // Held in a type this client does not take: fetched for its Accept list instead.
        r.session.fetcher.discard(m.body);
        return None;
    }
    let rec = TagRecord {
        digest: digest.to_string(),
        media_type: m.media_type,
        size: m.size,
        stored_at: r.session.now,
    };
    let reply = memory::fill(r, None, &rec, m.body).await?;
    let resp = cached_response(&rec.media_type, digest.as_str(), rec.size, reply);
    let ttl = r.upstream.ttls.manifest;
    Some((resp, CacheStatus::Hit { ttl }))
}

async fn by_tag<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag: &Tag,
) -> Answer<F::Body> {
    let tag_key = cache_key::tag(&r.upstream.name, r.name, tag, &r.accept);
    if let Some(answer) = memory::tag_hit(r, &tag_key) {
        return Ok(answer);
    }
    let mut may_wait = true;
    loop {
        // The first look of a GET also asks what a cold tag needs next; a look after waiting
        // for another request's resolution asks again only for the record.
        let (stored, ahead) = if may_wait && *r.method == Method::GET {
            look_with_marker(r, &tag_key).await?
        } else {
            (r.store.tag(&tag_key).await, Ahead::default())
        };
        let fresh = stored.as_ref().is_some_and(|t| is_fresh(r, &t.record));
        // A burst for one cold, expired or stale tag makes one resolution upstream; the others
        // look again once it landed.
        if !fresh && may_wait {
            may_wait = false;
            let record = stored.map(|t| record_only(r, t));
            match r.coalesce(&tag_key, follow_ms(r)).await {
                None => continue,
                Some(leader) => return by_record(&leader, &tag_key, record, ahead).await,
            }
        }
        return by_record(r, &tag_key, stored, ahead).await;
    }
}

fn is_fresh<F: Fetcher, S>(r: &Request<'_, F, S>, record: &TagRecord) -> bool {
    let ttls = r.upstream.ttls;
    let f = freshness(
        record.stored_at,
        ttls.tag,
        ttls.stale_if_error,
        r.session.now,
    );
    matches!(f, Freshness::Fresh { .. })
}

/// What a GET of a tag with no record needs after its lookup, learned beside it: whether the
/// repository is held (the marker, asked with the record: one round trip to the store for
/// both), and whether the upstream token was fetched (as soon as the record was known to be
/// absent, while the marker's lookup may still be out).
#[derive(Default)]
struct Ahead {
    /// `None` where the marker was not asked.
    held: Option<bool>,
    token_fetched: bool,
}

/// The tag's record, with `Ahead` learned beside it. A token exchange that failed is the
/// request's answer (not asked again after waiting for another request's resolution).
async fn look_with_marker<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
) -> Result<(Option<StoredTag<F::Body>>, Ahead), OciError> {
    let record_then_token = async {
        let stored = r.store.tag(tag_key).await;
        let token = match stored {
            None => Some(r.prefetch_token().await),
            Some(_) => None,
        };
        (stored, token)
    };
    let ((stored, token), held) = crate::join::both(record_then_token, repository_held(r)).await;
    let ahead = Ahead {
        held: Some(held),
        token_fetched: token.transpose()?.is_some(),
    };
    Ok((stored, ahead))
}

/// The record of a stored tag, its bytes let go (they are read again when needed).
fn record_only<F: Fetcher, S>(r: &Request<'_, F, S>, t: StoredTag<F::Body>) -> StoredTag<F::Body> {
    if let Some(body) = t.body {
        r.session.fetcher.discard(body);
    }
    StoredTag {
        record: t.record,
        body: None,
    }
}

/// A tag answered from its record as the TTLs say: served while fresh, revalidated with a HEAD
/// when stale, resolved again when expired or absent.
async fn by_record<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
    stored: Option<StoredTag<F::Body>>,
    ahead: Ahead,
) -> Answer<F::Body> {
    let Some(StoredTag { record, body }) = stored else {
        return resolve(r, tag_key, Hint::None(ahead)).await;
    };
    let ttls = r.upstream.ttls;
    let now = r.session.now;
    match freshness(record.stored_at, ttls.tag, ttls.stale_if_error, now) {
        Freshness::Fresh { remaining } => match from_record(r, tag_key, &record, body).await {
            Some(resp) => Ok((resp, CacheStatus::Hit { ttl: remaining })),
            None => fetch(r, None, Some(tag_key)).await,
        },
        stale_or_expired => {
            // Not served as they are: the bytes are read again if the tag still names them.
            if let Some(b) = body {
                r.session.fetcher.discard(b);
            }
            match stale_or_expired {
                Freshness::Stale => revalidate(r, tag_key, record).await,
                _ => resolve(r, tag_key, Hint::ExpiredRecord).await,
            }
        }
    }
}

/// What suggests a tag's manifest may already be held.
enum Hint {
    /// No record for this Accept list: the repository's marker decides (with what was learned
    /// beside the record's lookup).
    None(Ahead),
    /// A record past its TTL: the tag most likely still names what it named.
    ExpiredRecord,
}

/// No usable record for this Accept list. A GET goes upstream at once, unless something of this
/// repository is held (an expired record, a manifest stored for another tag or Accept list, or
/// prewarmed): then a HEAD first (not a pull on Docker Hub), and when the digest it names is held,
/// that is served and no GET is made. A cold repository so costs one upstream exchange, not two.
async fn resolve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
    hint: Hint,
) -> Answer<F::Body> {
    if *r.method == Method::HEAD {
        return fetch(r, None, Some(tag_key)).await;
    }
    if let Hint::None(ahead) = hint {
        // Either way (a HEAD first, or the GET) the request goes upstream with a token: fetched
        // while the store is asked whether the repository is held, unless both are known.
        let held = match ahead {
            Ahead {
                held: Some(held),
                token_fetched: true,
            } => held,
            _ => {
                let (held, token) = crate::join::both(repository_held(r), r.prefetch_token()).await;
                token?;
                held
            }
        };
        if !held {
            return fetch(r, None, Some(tag_key)).await;
        }
    }
    let resp = r.send(Method::HEAD).await?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let found = match (
        resp.status(),
        header(DIGEST_HEADER),
        header(CONTENT_TYPE.as_str()),
    ) {
        (StatusCode::OK, Some(digest), Some(media_type)) => Some((digest, media_type)),
        _ => None,
    };
    if let Some((digest, media_type)) = found {
        r.session.fetcher.discard(resp.into_body());
        let rec = TagRecord {
            digest,
            media_type,
            size: 0,
            stored_at: r.session.now,
        };
        if let Some((reply, size)) = held_manifest(r, &rec).await {
            let rec = TagRecord { size, ..rec };
            let facts = Facts {
                client_credentials: r.client_auth.is_some(),
                status: 200,
                head: true,
                has_digest_header: true,
                ..Default::default()
            };
            // Storing the record is best effort; the answer is the same either way.
            let _ = store_record(r, tag_key, facts, rec.clone(), None);
            return Ok((
                cached_response(&rec.media_type, &rec.digest, rec.size, reply),
                CacheStatus::Revalidated,
            ));
        }
        return fetch(r, None, Some(tag_key)).await;
    }
    if resp.status().is_success() {
        r.session.fetcher.discard(resp.into_body());
        return fetch(r, None, Some(tag_key)).await;
    }
    let out = r.relay(&Method::GET, resp).await;
    Ok((
        out,
        CacheStatus::Miss {
            stored: Err("not a 200"),
        },
    ))
}

async fn repository_held<F: Fetcher, S: Store<Body = F::Body>>(r: &Request<'_, F, S>) -> bool {
    let key = cache_key::repository_held(&r.upstream.name, r.name);
    r.store.note(&key).await.is_some()
}

/// The manifest a record points at, if held and accepted, as the reply (nothing for a HEAD) with
/// its size: from the isolate's memory, else the store's (not hashed again when streamed as it
/// is: writes are verified before they are stored; see `memory::fill` for when it is read).
async fn held_manifest<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    rec: &TagRecord,
) -> Option<(Reply<F::Body>, u64)> {
    if !accepted(r, &rec.media_type) {
        return None;
    }
    let key = digest_key(r, &rec.digest)?;
    if let Some((reply, kept)) = memory::held(r, &key) {
        return Some((reply, kept.size));
    }
    let m = r.store.manifest(&key).await?;
    let rec = TagRecord {
        media_type: m.media_type,
        size: m.size,
        ..rec.clone()
    };
    let reply = memory::fill(r, None, &rec, m.body).await?;
    Some((reply, rec.size))
}

/// A tag response from a record: a HEAD needs only the record, a GET the manifest's bytes too:
/// those kept with the record (`body`), else the held manifest. The isolate's memory keeps the
/// record (and the bytes, when read).
async fn from_record<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
    rec: &TagRecord,
    body: Option<F::Body>,
) -> Option<http::Response<Reply<F::Body>>> {
    if !accepted(r, &rec.media_type) {
        if let Some(b) = body {
            r.session.fetcher.discard(b);
        }
        return None;
    }
    let (reply, size) = match body {
        Some(b) => (memory::fill(r, Some(tag_key), rec, b).await?, rec.size),
        None if *r.method == Method::HEAD => {
            memory::keep_record(r, tag_key, rec);
            (Reply::Empty, rec.size)
        }
        None => {
            let held = held_manifest(r, rec).await?;
            memory::keep_record(r, tag_key, rec);
            held
        }
    };
    Some(cached_response(&rec.media_type, &rec.digest, size, reply))
}

/// A stale record: one HEAD upstream decides. Same digest: serve what is held and restart the TTL.
/// New digest: fetch it. 404 (or any other client error): forget the tag and say so. Upstream down
/// (5xx, 429, unreachable, timeout): serve the stale record with a warning.
async fn revalidate<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
    mut rec: TagRecord,
) -> Answer<F::Body> {
    match r.send(Method::HEAD).await {
        Ok(resp) if resp.status() == StatusCode::OK => {
            let same = resp
                .headers()
                .get(DIGEST_HEADER)
                .and_then(|v| v.to_str().ok())
                == Some(rec.digest.as_str());
            r.session.fetcher.discard(resp.into_body());
            if same {
                rec.stored_at = r.session.now;
                r.store
                    .put_tag(tag_key, &rec, None, keep_tag(r), r.landing.clone());
                if let Some(out) = from_record(r, tag_key, &rec, None).await {
                    return Ok((out, CacheStatus::Revalidated));
                }
            }
            return fetch(r, None, Some(tag_key)).await;
        }
        Ok(resp)
            if resp.status().is_server_error()
                || resp.status() == StatusCode::TOO_MANY_REQUESTS =>
        {
            r.session.fetcher.discard(resp.into_body());
        }
        Ok(resp) => {
            r.store.delete_tag(tag_key);
            memory::forget(tag_key);
            let out = r.relay(r.method, resp).await;
            return Ok((
                out,
                CacheStatus::Miss {
                    stored: Err("not a 200"),
                },
            ));
        }
        Err(_) => {}
    }
    match from_record(r, tag_key, &rec, None).await {
        Some(mut out) => {
            out.headers_mut().insert(
                "warning",
                HeaderValue::from_static("110 edgemirror \"Response is Stale\""),
            );
            Ok((out, CacheStatus::Stale))
        }
        None => fetch(r, None, Some(tag_key)).await,
    }
}

/// How long a tag record is kept in the store: through its stale window.
fn keep_tag<F: Fetcher, S: Store>(r: &Request<'_, F, S>) -> u64 {
    r.upstream
        .ttls
        .tag
        .saturating_add(r.upstream.ttls.stale_if_error)
}
