//! Manifests through the cache. By digest: immutable entries, verified against the digest before
//! they are stored or served. By tag: a tag record (tag → digest, per normalised Accept list) kept
//! for the tag TTL, then revalidated with a HEAD (not a pull on Docker Hub); served stale only when
//! the upstream fails, never after a 404.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use sha2::Digest as _;

use super::respond::{passed_headers, API_VERSION, API_VERSION_HEADER, DIGEST_HEADER};
use super::{Reply, Request};
use crate::cache_key;
use crate::error::{ErrorCode, OciError};
use crate::policy::{
    decide, freshness, CacheStatus, Decision, Facts, Freshness, Kind, MAX_MANIFEST,
};
use crate::ports::{Fetcher, Store, StoredManifest, TagRecord};
use crate::reference::{Digest, Reference, Tag};

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

/// `sha256:<hex>` / `sha512:<hex>` of `bytes`, in the algorithm of `like`.
pub fn digest_of(bytes: &[u8], like: &str) -> String {
    if like.starts_with("sha512:") {
        format!("sha512:{}", hex(&sha2::Sha512::digest(bytes)))
    } else {
        format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest response built from what the mirror holds.
fn cached_response<B>(
    method: &Method,
    media_type: &str,
    digest: &str,
    size: u64,
    body: Option<Vec<u8>>,
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
    let reply = match body {
        Some(b) if *method != Method::HEAD => Reply::Bytes(b),
        _ => Reply::Empty,
    };
    let mut resp = http::Response::new(reply);
    *resp.headers_mut() = h;
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
    if let Some(m) = r.store.manifest(&key).await {
        if r.accept.is_empty() || crate::policy::accepts(&r.accept, &m.media_type) {
            let size = m.body.len() as u64;
            let resp =
                cached_response(r.method, &m.media_type, digest.as_str(), size, Some(m.body));
            return Ok((
                resp,
                CacheStatus::Hit {
                    ttl: r.upstream.ttls.manifest,
                },
            ));
        }
    }
    fetch(r, Some(digest), None).await
}

async fn by_tag<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag: &Tag,
) -> Answer<F::Body> {
    let tag_key = cache_key::tag(&r.upstream.name, r.name, tag, &r.accept);
    let ttls = r.upstream.ttls;
    let Some(record) = r.store.tag(&tag_key).await else {
        return resolve(r, &tag_key).await;
    };
    match freshness(
        record.stored_at,
        ttls.tag,
        ttls.stale_if_error,
        r.session.now,
    ) {
        Freshness::Fresh { remaining } => match from_record(r, &record).await {
            Some(resp) => Ok((resp, CacheStatus::Hit { ttl: remaining })),
            None => fetch(r, None, Some(&tag_key)).await,
        },
        Freshness::Expired => resolve(r, &tag_key).await,
        Freshness::Stale => revalidate(r, &tag_key, record).await,
    }
}

/// No usable record for this Accept list: for a GET, a HEAD first (not a pull on Docker Hub). When
/// the digest it names is already held (stored for another client's Accept list, or prewarmed),
/// that is served and no GET is made.
async fn resolve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: &str,
) -> Answer<F::Body> {
    if *r.method == Method::HEAD {
        return fetch(r, None, Some(tag_key)).await;
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
        if let Some(held) = held_manifest(r, &rec).await {
            let rec = TagRecord {
                size: held.len() as u64,
                ..rec
            };
            let facts = Facts {
                status: 200,
                head: true,
                has_digest_header: true,
                ..Default::default()
            };
            // Storing the record is best effort; the answer is the same either way.
            let _ = store_record(r, tag_key, facts, rec.clone());
            return Ok((
                cached_response(
                    r.method,
                    &rec.media_type,
                    &rec.digest,
                    held.len() as u64,
                    Some(held),
                ),
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

/// The stored bytes of the manifest a record points at, if held, accepted, and intact.
async fn held_manifest<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    rec: &TagRecord,
) -> Option<Vec<u8>> {
    if !r.accept.is_empty() && !crate::policy::accepts(&r.accept, &rec.media_type) {
        return None;
    }
    let digest = Digest::parse(&rec.digest).ok()?;
    let m = r
        .store
        .manifest(&cache_key::manifest(&r.upstream.name, r.name, &digest))
        .await?;
    (digest_of(&m.body, &rec.digest) == rec.digest).then_some(m.body)
}

/// A tag response from a record: a HEAD needs only the record, a GET the stored manifest too.
async fn from_record<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    rec: &TagRecord,
) -> Option<http::Response<Reply<F::Body>>> {
    if *r.method == Method::HEAD {
        if !r.accept.is_empty() && !crate::policy::accepts(&r.accept, &rec.media_type) {
            return None;
        }
        return Some(cached_response(
            r.method,
            &rec.media_type,
            &rec.digest,
            rec.size,
            None,
        ));
    }
    let body = held_manifest(r, rec).await?;
    Some(cached_response(
        r.method,
        &rec.media_type,
        &rec.digest,
        body.len() as u64,
        Some(body),
    ))
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
                r.store.put_tag(tag_key, &rec, keep_tag(r));
                if let Some(out) = from_record(r, &rec).await {
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
    match from_record(r, &rec).await {
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

/// A miss: fetch upstream, verify, store what the policy allows, answer.
async fn fetch<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    want: Option<&Digest>,
    tag_key: Option<&str>,
) -> Answer<F::Body> {
    let resp = r.send(r.method.clone()).await?;
    let status = resp.status();
    let declared_len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = declared_len.is_some_and(|n| n > MAX_MANIFEST as u64);
    if status != StatusCode::OK || too_big {
        let why = if too_big {
            "larger than the manifest limit"
        } else {
            "not a 200"
        };
        let out = r.relay(r.method, resp).await;
        return Ok((out, CacheStatus::Miss { stored: Err(why) }));
    }
    let (parts, body) = resp.into_parts();
    let announced = parts
        .headers
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let media_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    if *r.method == Method::HEAD {
        r.session.fetcher.discard(body);
        let stored = match (tag_key, &announced, &media_type, declared_len) {
            (Some(key), Some(digest), Some(mt), Some(size)) => {
                let facts = Facts {
                    status: 200,
                    head: true,
                    has_digest_header: true,
                    ..Default::default()
                };
                store_record(
                    r,
                    key,
                    facts,
                    TagRecord {
                        digest: digest.clone(),
                        media_type: mt.clone(),
                        size,
                        stored_at: r.session.now,
                    },
                )
            }
            _ => Err("HEAD without Docker-Content-Digest"),
        };
        let mut out = http::Response::new(Reply::Empty);
        *out.headers_mut() = passed_headers(&parts.headers);
        return Ok((out, CacheStatus::Miss { stored }));
    }

    let bytes = r
        .session
        .fetcher
        .read_small(body, MAX_MANIFEST)
        .await
        .ok_or_else(|| {
            OciError::new(
                ErrorCode::Unavailable,
                format!(
                    "upstream {} sent an unreadable or oversized manifest",
                    r.upstream.name
                ),
            )
            .with_status(502)
        })?;
    if declared_len.is_some_and(|n| n != bytes.len() as u64) {
        return Err(
            OciError::new(ErrorCode::Unavailable, "upstream sent a truncated manifest")
                .with_status(502),
        );
    }
    let like = want
        .map(Digest::as_str)
        .or(announced.as_deref())
        .unwrap_or("sha256:");
    let actual = digest_of(&bytes, like);
    let expected = want.map(|d| d.as_str().to_string()).or(announced.clone());
    if expected.as_ref().is_some_and(|e| *e != actual) {
        return Err(OciError::new(
            ErrorCode::DigestInvalid,
            format!(
                "upstream {} sent a manifest whose bytes do not match its digest",
                r.upstream.name
            ),
        )
        .with_status(502));
    }
    let mut headers = passed_headers(&parts.headers);
    if let Ok(v) = HeaderValue::from_str(&actual) {
        headers.insert(DIGEST_HEADER, v);
    }
    let stored = match &media_type {
        None => Err("no Content-Type"),
        Some(mt) => {
            let facts = Facts {
                status: 200,
                digest_ok: true,
                has_digest_header: announced.is_some(),
                content_length: Some(bytes.len() as u64),
                ..Default::default()
            };
            let stored = match (
                Digest::parse(&actual),
                decide(Kind::DigestManifest, &facts, &r.upstream.ttls),
            ) {
                (Ok(d), Decision::Cacheable { ttl, .. }) => {
                    let key = cache_key::manifest(&r.upstream.name, r.name, &d);
                    r.store.put_manifest(
                        &key,
                        StoredManifest {
                            body: bytes.clone(),
                            media_type: mt.clone(),
                        },
                        ttl,
                    );
                    Ok(())
                }
                (_, d) => Err(d.reason()),
            };
            match tag_key {
                Some(key) if stored.is_ok() => {
                    let rec = TagRecord {
                        digest: actual.clone(),
                        media_type: mt.clone(),
                        size: bytes.len() as u64,
                        stored_at: r.session.now,
                    };
                    store_record(r, key, facts, rec)
                }
                _ => stored,
            }
        }
    };
    let mut out = http::Response::new(Reply::Bytes(bytes));
    *out.headers_mut() = headers;
    Ok((out, CacheStatus::Miss { stored }))
}

fn store_record<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    key: &str,
    facts: Facts,
    rec: TagRecord,
) -> Result<(), &'static str> {
    match decide(Kind::TagRecord, &facts, &r.upstream.ttls) {
        Decision::Cacheable { .. } => {
            r.store.put_tag(key, &rec, keep_tag(r));
            Ok(())
        }
        d => Err(d.reason()),
    }
}
