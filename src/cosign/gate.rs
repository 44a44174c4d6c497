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
//!
//! Size: the flows are generic over the platform's fetcher and store (two of each in the worker,
//! so four copies of whatever is generic over both). Only the store's two touches (recall, keep)
//! are generic over the store here; the rest (`judge`) over the fetcher alone.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::response::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::keys::{self, PublicKey};
use super::policy::Rule;
use super::verdict::{decide, Decision, Verdict};
use super::{check, memory};
use crate::error::{ErrorCode, OciError};
use crate::flights::Role;
use crate::mirror::respond::DIGEST_HEADER;
use crate::mirror::{budget, manifests, MaybeStore, Plan, Reply, Request, Session};
use crate::policy::{CacheStatus, MAX_MANIFEST};
use crate::ports::{Fetcher, Store};
use crate::reference::{Digest, Reference};

/// The response header (and log field) with the policy's verdict.
pub const SIGNATURE_HEADER: &str = "edgemirror-signature";
/// Platform manifests of one index given the index's verdict, at most.
const MAX_LISTED: usize = 256;

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

pub async fn serve<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, MaybeStore<'_, S>>,
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
    let (parts, reply) = resp.into_parts();
    let prepared = prepare(r.plan, r.session.secret, rule, &parts.headers);
    let recalled = match &prepared {
        Ok(p) => memory::recall(r.store, &p.key).await,
        Err(_) => None,
    };
    let (resp, keep) =
        judge::<F, S>(r.session, r.plan, rule, prepared, recalled, parts, reply).await?;
    for (key, verdict) in keep {
        memory::keep(r.store, &key, &verdict, r.upstream.ttls.manifest);
    }
    Ok((resp, cache))
}

/// What a manifest's check needs before anything is fetched.
struct Prepared {
    digest: Digest,
    keys: Vec<PublicKey>,
    fingerprint: String,
    /// Where its verdict is kept.
    key: String,
}

/// The digest served and the rule's keys; `Err` (no digest, a key gone since start: nothing passes).
fn prepare(
    plan: &Plan<'_>,
    secret: &dyn Fn(&str) -> Option<String>,
    rule: &Rule,
    headers: &HeaderMap,
) -> Result<Prepared, (Option<Digest>, String)> {
    let digest = headers
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| Digest::parse(d).ok())
        .ok_or((None, "the manifest's digest is unknown".to_string()))?;
    let keys = keys::load(&rule.keys, secret).map_err(|why| (Some(digest.clone()), why))?;
    let fingerprint = keys::fingerprint(&keys);
    let key = memory::key(&plan.upstream.name, plan.name, &digest, &fingerprint);
    Ok(Prepared {
        digest,
        keys,
        fingerprint,
        key,
    })
}

/// The verdict (recalled, or checked now) and the rule's decision: the response to send and the
/// verdicts to keep.
async fn judge<F: Fetcher, S: Store<Body = F::Body>>(
    session: &Session<'_, F>,
    plan: &Plan<'_>,
    rule: &Rule,
    prepared: Result<Prepared, (Option<Digest>, String)>,
    recalled: Option<Verdict>,
    parts: Parts,
    reply: Reply<F::Body>,
) -> Result<(http::Response<Reply<F::Body>>, Vec<(String, Verdict)>), OciError> {
    let fetcher = session.fetcher;
    let let_go = |reply: Reply<F::Body>, e: OciError| {
        if let Reply::Stream(body) = reply {
            fetcher.discard(body);
        }
        e
    };
    let p = match prepared {
        Ok(p) => p,
        Err((Some(digest), why)) => {
            return match decide(rule, &digest, &Verdict::Unsigned(why)) {
                Decision::Deny(e) => Err(let_go(reply, e)),
                Decision::Serve { header } => Ok((with_header(parts, reply, &header), vec![])),
            };
        }
        Err((None, why)) => {
            let e = OciError::new(
                ErrorCode::Denied,
                format!("signature policy {}: {why}", rule.name),
            );
            return Err(let_go(reply, e));
        }
    };
    let (verdict, fresh) = match recalled {
        Some(v) => (v, false),
        None => checked::<F, S>(session, plan, &p).await,
    };
    let header = match decide(rule, &p.digest, &verdict) {
        Decision::Deny(e) => return Err(let_go(reply, e)),
        Decision::Serve { header } => header,
    };
    let mut keep = Vec::new();
    let reply = if fresh && verdict.is_valid() && is_index(&parts.headers) {
        let (reply, children) = read_index(session, &parts.headers, &p.digest, reply).await?;
        let listed = Verdict::Listed {
            index: p.digest.to_string(),
        };
        for child in children {
            let key = memory::key(&plan.upstream.name, plan.name, &child, &p.fingerprint);
            keep.push((key, listed.clone()));
        }
        reply
    } else {
        reply
    };
    if fresh {
        keep.push((p.key, verdict));
    }
    Ok((with_header(parts, reply, &header), keep))
}

/// A verdict checked now, once for a burst: the isolate's first request for a digest checks it,
/// the others wait for its landing and take its verdict from the isolate's memory (a refusal is
/// not remembered: they check for themselves). `true` when checked by this request.
async fn checked<F: Fetcher, S: Store<Body = F::Body>>(
    session: &Session<'_, F>,
    plan: &Plan<'_>,
    p: &Prepared,
) -> (Verdict, bool) {
    let check = || check::check::<F, S>(session, plan, &p.keys, &p.digest);
    match session.flights.join(&p.key, session.now) {
        Role::Leader(landing) => {
            let v = check().await;
            memory::remember_here(&p.key, &v);
            if !v.is_valid() {
                landing.failed();
            }
            (v, true)
        }
        Role::Follower => {
            let pause = |ms| session.fetcher.pause(ms);
            let wait_ms = session.timeout_ms.saturating_mul(2);
            match session.flights.wait(&p.key, pause, wait_ms).await {
                Some(true) => match memory::recall_here(&p.key) {
                    Some(v) => (v, false),
                    None => (check().await, true),
                },
                _ => (check().await, true),
            }
        }
        Role::Landed => match memory::recall_here(&p.key) {
            Some(v) => (v, false),
            None => (check().await, true),
        },
    }
}

fn with_header<B>(mut parts: Parts, reply: Reply<B>, header: &str) -> http::Response<Reply<B>> {
    if let Ok(v) = HeaderValue::from_str(header) {
        parts.headers.insert(SIGNATURE_HEADER, v);
    }
    http::Response::from_parts(parts, reply)
}

fn is_index(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.starts_with("application/vnd.oci.image.index.v1+json")
        || ct.starts_with("application/vnd.docker.distribution.manifest.list.v2+json")
}

/// A verified index's bytes, read within the manifest budget and handed back to the runtime as
/// they are, with the platform manifests it lists.
async fn read_index<F: Fetcher>(
    session: &Session<'_, F>,
    headers: &HeaderMap,
    index: &Digest,
    reply: Reply<F::Body>,
) -> Result<(Reply<F::Body>, Vec<Digest>), OciError> {
    let Reply::Stream(body) = reply else {
        return Ok((reply, vec![]));
    };
    let fetcher = session.fetcher;
    let size = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(MAX_MANIFEST as u64);
    let Some(reservation) = budget::reserve(fetcher, size, session.timeout_ms).await else {
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
    let listed = children(&bytes);
    let body = fetcher.body_of(bytes);
    drop(reservation);
    Ok((Reply::Stream(body), listed))
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
