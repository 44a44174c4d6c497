//! Blobs through the store: a hit (whole or a single range) is served from the store without the
//! upstream; a miss streams from the upstream to the client and, split by the runtime, to the
//! store, which commits it only if its bytes hash to the digest (or, with `BLOB_FILL=after-answer`,
//! is fetched again for the store once the client's answer has been sent: `refill`).

use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::refill::Refill;
use super::respond::{API_VERSION, API_VERSION_HEADER, DIGEST_HEADER};
use super::{Reply, Request};
use crate::cache_key;
use crate::error::{ErrorCode, OciError};
use crate::policy::{decide, CacheStatus, Decision, Facts, Kind};
use crate::ports::{BlobFill, BlobLookup, Fetcher, RangeSpec, Store};
use crate::reference::Digest;

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

pub async fn serve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    digest: &Digest,
) -> Answer<F::Body> {
    let key = cache_key::blob(&r.upstream.name, r.name, digest);
    let range = r.range.as_deref().map(RangeSpec::parse);
    // A Range the mirror does not understand (several ranges, another unit, nonsense): a stored
    // blob is answered whole (RFC 9110 lets a server ignore a Range); a cold one goes upstream
    // with the Range as it is, and is not stored.
    if let Some(None) = range {
        return match r.store.blob(&key, None, *r.method == Method::HEAD).await {
            BlobLookup::Found { body, size, span } => Ok((
                hit(digest, body, size, span),
                CacheStatus::Hit {
                    ttl: r.upstream.ttls.blob,
                },
            )),
            _ => miss(r, &key, digest, true).await,
        };
    }
    let range = range.flatten();
    match r.store.blob(&key, range, *r.method == Method::HEAD).await {
        BlobLookup::Found { body, size, span } => Ok((
            hit(digest, body, size, span),
            CacheStatus::Hit {
                ttl: r.upstream.ttls.blob,
            },
        )),
        BlobLookup::Unsatisfiable { size } => {
            let e = OciError::new(
                ErrorCode::RangeInvalid,
                format!("range outside the blob's {size} bytes"),
            );
            let mut resp = super::respond::oci_error(r.method, &e);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
            Ok((
                resp,
                CacheStatus::Hit {
                    ttl: r.upstream.ttls.blob,
                },
            ))
        }
        BlobLookup::Missing if range.is_some() => miss(r, &key, digest, true).await,
        // A burst for one cold blob makes one upstream GET: the others wait for its store write
        // to land, then stream from the store.
        BlobLookup::Missing => match r.coalesce(&key, FOLLOW_MS).await {
            Some(leader) => miss(&leader, &key, digest, false).await,
            None => match r.store.blob(&key, None, false).await {
                BlobLookup::Found { body, size, span } => {
                    let ttl = r.upstream.ttls.blob;
                    Ok((hit(digest, body, size, span), CacheStatus::Hit { ttl }))
                }
                _ => miss(r, &key, digest, false).await,
            },
        },
    }
}

/// How long a follower waits for a blob's flight (its leader streams the whole blob to the
/// store first); after it, the follower fetches the blob itself.
const FOLLOW_MS: u32 = 120_000;

fn hit<B>(
    digest: &Digest,
    body: Option<B>,
    size: u64,
    span: Option<(u64, u64)>,
) -> http::Response<Reply<B>> {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(digest.as_str()) {
        h.insert(DIGEST_HEADER, v);
    }
    h.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    let status = match span {
        Some((a, b)) => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(b - a + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
                h.insert(CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(size));
            StatusCode::OK
        }
    };
    let mut resp = http::Response::new(body.map_or(Reply::Empty, Reply::Stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = h;
    resp
}

async fn miss<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    key: &str,
    digest: &Digest,
    ranged: bool,
) -> Answer<F::Body> {
    let resp = r.send(r.method.clone()).await?;
    let content_length = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let facts = Facts {
        client_credentials: r.client_auth.is_some(),
        status: resp.status().as_u16(),
        head: *r.method == Method::HEAD,
        content_length,
        store_limit: Some(r.store.max_blob()),
        ..Default::default()
    };
    let decision = if ranged {
        Decision::Uncacheable("range request")
    } else {
        decide(Kind::Blob, &facts, &r.upstream.ttls)
    };
    let (resp, stored) = match (decision, content_length) {
        (Decision::Cacheable { ttl, .. }, Some(size)) if matches!(r.store.blob_fill(), BlobFill::AfterAnswer { from } if size >= from) =>
        {
            // The client's answer is the upstream's body as it is; the store's copy is fetched
            // again once that answer has been sent (`refill`).
            r.store.fill_after(Refill {
                upstream: r.upstream.name.clone(),
                name: r.name.clone(),
                digest: digest.clone(),
                key: key.to_string(),
                size,
                keep_secs: ttl,
                landing: r.landing.clone(),
            });
            (resp, Ok(()))
        }
        (Decision::Cacheable { ttl, .. }, Some(size)) => {
            let (parts, body) = resp.into_parts();
            let (to_client, to_store) = r.session.fetcher.tee(body);
            let landing = r.landing.clone();
            r.store
                .put_blob(key, digest.as_str(), size, to_store, ttl, landing);
            (http::Response::from_parts(parts, to_client), Ok(()))
        }
        (d, _) => {
            // Nothing will land: followers fetch for themselves.
            r.landing.failed();
            (resp, Err(d.reason()))
        }
    };
    let out = r.relay(r.method, resp).await;
    Ok((out, CacheStatus::Miss { stored }))
}
