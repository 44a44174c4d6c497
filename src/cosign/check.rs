//! Checking one manifest digest against the rule's keys: the signature manifest
//! (`sha256-<hex>.sig`) and its payloads are fetched from the same upstream and repository, with
//! the request's own identity (the signature is as private as the image), each read into wasm
//! only up to a small cap; every signature is verified by the platform's ECDSA P-256 (WebCrypto in
//! the worker) against every key, and a verified payload must name the digest.
//! Nothing fetched here is stored: only the verdict is kept (see `memory`).

use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::keys::PublicKey;
use super::signature::{self, Candidate, PayloadProblem, MAX_PAYLOAD, MAX_SIGNATURE_MANIFEST};
use super::verdict::Verdict;
use crate::digest::Digest;
use crate::flights::Landing;
use crate::mirror::{MaybeStore, Plan, Request, Session};
use crate::ports::{Fetcher, Store};
use crate::reference::{Reference, Tag};
use crate::route::Resource;

/// The manifest types a signature manifest comes in (cosign writes OCI; older ones Docker's).
const SIGNATURE_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The verdict on `digest` in the repository `plan` is for. Upstream failures give a negative
/// verdict (fail closed) with the reason. Not generic over the store (nothing fetched here is
/// stored): one copy per platform in the wasm.
pub async fn check<F: Fetcher, S: Store<Body = F::Body>>(
    session: &Session<'_, F>,
    plan: &Plan<'_>,
    keys: &[PublicKey],
    digest: &Digest,
) -> Verdict {
    let none = MaybeStore::<S>::Nothing;
    let r = &Request {
        session,
        store: &none,
        plan,
        landing: Landing::none(),
    };
    let tag = signature::tag_for(digest);
    let Ok(sig) = Tag::parse(&tag) else {
        return Verdict::Unsigned(format!("{digest} has no signature tag"));
    };
    let manifest = match get(
        r,
        Resource::Manifest(Reference::Tag(sig)),
        MAX_SIGNATURE_MANIFEST,
    )
    .await
    {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Verdict::Unsigned(format!("no signature ({tag} not found)")),
        Err(why) => return Verdict::Unsigned(format!("its signature could not be read: {why}")),
    };
    let candidates = match signature::candidates(&manifest) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            return Verdict::Unsigned(format!("{tag} holds no cosign simple-signing signature"))
        }
        Err(why) => return Verdict::Unsigned(why.to_string()),
    };
    let mut problem: Option<PayloadProblem> = None;
    for c in &candidates {
        match one(r, keys, digest, c).await {
            Ok(key) => return Verdict::Signed { key },
            Err(Some(p)) => problem = Some(p),
            Err(None) => {}
        }
    }
    let names: Vec<&str> = keys.iter().map(|k| k.secret.as_str()).collect();
    Verdict::Unsigned(match problem {
        // A signature by a trusted key that vouches for something else says more than "none".
        Some(p) => p.describe(),
        None => format!(
            "no signature in {tag} verifies with key {}",
            names.join(" or ")
        ),
    })
}

/// One signature: `Ok(key)` when it verifies with a key and its payload names `digest`;
/// `Err(Some(problem))` when it verifies but vouches for something else; `Err(None)` otherwise.
async fn one<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, MaybeStore<'_, S>>,
    keys: &[PublicKey],
    digest: &Digest,
    c: &Candidate,
) -> Result<String, Option<PayloadProblem>> {
    if c.payload_size > MAX_PAYLOAD as u64 {
        return Err(None);
    }
    let payload = match get(r, Resource::Blob(c.payload.clone()), MAX_PAYLOAD).await {
        // Digest-addressed bytes are what they say, or nothing.
        Ok(Some(bytes)) if c.payload.matches(&bytes) => bytes,
        _ => return Err(None),
    };
    for key in keys {
        let fetcher = r.session.fetcher;
        if let Ok(true) = fetcher
            .verify_ecdsa_p256(&key.spki, &payload, &c.signature)
            .await
        {
            return signature::check_payload(&payload, digest)
                .map(|()| key.secret.clone())
                .map_err(Some);
        }
    }
    Err(None)
}

/// A small object of `r`'s repository from its upstream: `Ok(None)` for a 404, `Err` for any
/// other failure or an object over `limit` bytes.
async fn get<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, MaybeStore<'_, S>>,
    resource: Resource,
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    let suffix = match &resource {
        Resource::Manifest(t) => format!("manifests/{}", t.as_str()),
        Resource::Blob(d) => format!("blobs/{}", d.as_str()),
        _ => return Err("not a manifest or blob".into()),
    };
    let url = url::Url::parse(&format!("{}/v2/{}/{suffix}", r.upstream.registry, r.name))
        .map_err(|_| "no upstream URL".to_string())?;
    let mut headers = HeaderMap::new();
    if let Resource::Manifest(_) = resource {
        headers.insert(ACCEPT, HeaderValue::from_static(SIGNATURE_ACCEPT));
    }
    let plan = Plan {
        method: &Method::GET,
        upstream: r.upstream,
        name: r.name,
        resource,
        url,
        headers,
        scope: r.scope.clone(),
        accept: vec![],
        range: None,
        link: crate::mirror::respond::LinkRewrite {
            upstream_name: r.link.upstream_name,
            client_name: r.link.client_name,
            ns: r.link.ns,
        },
        client_auth: r.client_auth,
    };
    let sub = Request {
        session: r.session,
        store: r.store,
        plan: &plan,
        landing: Landing::none(),
    };
    let resp = sub.send(Method::GET).await.map_err(|e| e.message)?;
    let fetcher = r.session.fetcher;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            fetcher.discard(resp.into_body());
            return Ok(None);
        }
        s => {
            fetcher.discard(resp.into_body());
            return Err(format!(
                "upstream {} answered {}",
                r.upstream.name,
                s.as_u16()
            ));
        }
    }
    let declared = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        fetcher.discard(resp.into_body());
        return Err(format!("larger than {} KiB", limit / 1024));
    }
    fetcher
        .read_small(resp.into_body(), limit)
        .await
        .map(Some)
        .ok_or_else(|| format!("unreadable or larger than {} KiB", limit / 1024))
}
