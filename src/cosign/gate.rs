//! The policy in the manifest flow. A GET of a manifest in a covered repository is answered by
//! the cache flow as usual (`mirror::manifests`), then held back until the digest it serves has a
//! verdict: kept from before (no upstream request), or checked now. Denied (enforce): the body is
//! let go unread and the client gets `403 DENIED` naming the policy. Served: the
//! `edgemirror-signature` header says why (and the request's log line repeats it).
//!
//! A verified index that was checked now is read (within the manifest budget, then handed back to
//! the runtime byte for byte) to keep a verdict for each platform manifest it lists: clients fetch
//! those by digest next, and they carry no signature of their own.
//!
//! HEAD is not gated: it serves no manifest bytes, and clients that resolve with HEAD (containerd)
//! then GET the manifest, whose refusal carries the message they show.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};

use super::verdict::{decide, Decision, Verdict};
use super::{check, keys, memory};
use crate::error::{ErrorCode, OciError};
use crate::mirror::respond::DIGEST_HEADER;
use crate::mirror::{budget, manifests, Reply, Request};
use crate::policy::{CacheStatus, MAX_MANIFEST};
use crate::ports::{Fetcher, Store};
use crate::reference::{Digest, Reference};

/// The response header (and log field) with the policy's verdict.
pub const SIGNATURE_HEADER: &str = "edgemirror-signature";
/// Platform manifests of one index given the index's verdict, at most.
const MAX_LISTED: usize = 256;

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

pub async fn serve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    reference: &Reference,
) -> Answer<F::Body> {
    let rule = match r.upstream.verify.rule_for(r.name.as_str()) {
        Some(rule) if *r.method == Method::GET => rule,
        _ => return manifests::serve(r, reference).await,
    };
    let (resp, cache) = manifests::serve(r, reference).await?;
    if resp.status() != StatusCode::OK {
        return Ok((resp, cache));
    }
    let digest = resp
        .headers()
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| Digest::parse(d).ok());
    let Some(digest) = digest else {
        let e = OciError::new(
            ErrorCode::Denied,
            format!(
                "signature policy {}: the manifest's digest is unknown",
                rule.name
            ),
        );
        return Err(let_go(r, resp, e));
    };
    let (verdict, index_keys) = match keys::load(&rule.keys, r.session.secret) {
        // Keys are checked at start; one gone since is a configuration fault: nothing passes.
        Err(why) => (Verdict::Unsigned(why), None),
        Ok(keys) => {
            let fp = keys::fingerprint(&keys);
            let key = memory::key(&r.upstream.name, r.name, &digest, &fp);
            match memory::recall(r.store, &key).await {
                Some(v) => (v, None),
                None => {
                    let v = check::check(r, &keys, &digest).await;
                    memory::keep(r.store, &key, &v, r.upstream.ttls.manifest);
                    (v, Some(fp))
                }
            }
        }
    };
    let header = match decide(rule, &digest, &verdict) {
        Decision::Deny(e) => return Err(let_go(r, resp, e)),
        Decision::Serve { header } => header,
    };
    let mut resp = match (index_keys, verdict.is_valid() && is_index(&resp)) {
        (Some(fp), true) => list_children(r, resp, &digest, &fp).await?,
        _ => resp,
    };
    if let Ok(v) = HeaderValue::from_str(&header) {
        resp.headers_mut().insert(SIGNATURE_HEADER, v);
    }
    Ok((resp, cache))
}

/// Lets go of a refused manifest's body unread and answers `e` instead.
fn let_go<F: Fetcher, S>(
    r: &Request<'_, F, S>,
    resp: http::Response<Reply<F::Body>>,
    e: OciError,
) -> OciError {
    if let Reply::Stream(body) = resp.into_body() {
        r.session.fetcher.discard(body);
    }
    e
}

fn is_index<B>(resp: &http::Response<B>) -> bool {
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.starts_with("application/vnd.oci.image.index.v1+json")
        || ct.starts_with("application/vnd.docker.distribution.manifest.list.v2+json")
}

/// Keeps a `Listed` verdict for every platform manifest of a verified index, and answers with the
/// index's very bytes.
async fn list_children<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    resp: http::Response<Reply<F::Body>>,
    index: &Digest,
    fp: &str,
) -> Result<http::Response<Reply<F::Body>>, OciError> {
    let (parts, body) = resp.into_parts();
    let Reply::Stream(body) = body else {
        return Ok(http::Response::from_parts(parts, body));
    };
    let fetcher = r.session.fetcher;
    let size = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(MAX_MANIFEST as u64);
    let Some(reservation) = budget::reserve(fetcher, size, r.session.timeout_ms).await else {
        fetcher.discard(body);
        return Err(OciError::new(
            ErrorCode::Unavailable,
            "the mirror is reading as many manifests as it can at once; retry shortly",
        ));
    };
    let bytes = fetcher
        .read_small(body, MAX_MANIFEST)
        .await
        .filter(|b| index.matches(b))
        .ok_or_else(|| {
            OciError::new(ErrorCode::Unavailable, "the index could not be read again")
                .with_status(502)
        })?;
    let listed = Verdict::Listed {
        index: index.to_string(),
    };
    for child in children(&bytes) {
        let key = memory::key(&r.upstream.name, r.name, &child, fp);
        memory::keep(r.store, &key, &listed, r.upstream.ttls.manifest);
    }
    let body = fetcher.body_of(bytes);
    drop(reservation);
    Ok(http::Response::from_parts(parts, Reply::Stream(body)))
}

/// The digests of the manifests an index lists.
pub fn children(index: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(index) else {
        return vec![];
    };
    v["manifests"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| Digest::parse(m["digest"].as_str()?).ok())
                .take(MAX_LISTED)
                .collect()
        })
        .unwrap_or_default()
}
