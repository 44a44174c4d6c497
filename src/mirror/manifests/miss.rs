//! A manifest miss: the upstream's answer read into wasm within the manifest budget, checked
//! (as long as it said, hashing to the digest asked for or announced, not Docker schema 1),
//! stored as the policy allows (by digest, and with its tag's record), and answered.

use std::rc::Rc;

use super::*;

/// A miss: fetch upstream, verify, store what the policy allows, answer.
pub(super) async fn fetch<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    want: Option<&Digest>,
    tag_key: Option<&str>,
) -> Answer<F::Body> {
    let resp = r.send(r.method.clone()).await?;
    let declared =
        header(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let too_big = declared.is_some_and(|n| n > MAX_MANIFEST as u64);
    if resp.status() != StatusCode::OK || too_big {
        let why = if too_big {
            "larger than the manifest limit"
        } else {
            "not a 200"
        };
        let out = r.relay(r.method, resp).await;
        return Ok((out, CacheStatus::Miss { stored: Err(why) }));
    }
    let (parts, body) = resp.into_parts();
    let announced = header(&parts.headers, DIGEST_HEADER);
    let media_type = header(&parts.headers, CONTENT_TYPE.as_str());
    if media_type.as_deref().is_some_and(is_schema1) {
        r.session.fetcher.discard(body);
        return Err(schema1_refused(&r.upstream.name));
    }
    if *r.method == Method::HEAD {
        r.session.fetcher.discard(body);
        let rec = match (announced, media_type, declared) {
            (Some(digest), Some(media_type), Some(size)) => Some(TagRecord {
                digest,
                media_type,
                size,
                stored_at: r.session.now,
            }),
            _ => None,
        };
        let stored = match (tag_key, rec) {
            (Some(key), Some(rec)) => store_record(r, key, fact_sheet(r, true, None), rec, None),
            _ => Err("HEAD without Docker-Content-Digest"),
        };
        let mut out = http::Response::new(Reply::Empty);
        *out.headers_mut() = passed_headers(&parts.headers);
        return Ok((out, CacheStatus::Miss { stored }));
    }
    // The bytes are read into wasm to be hashed: only so many at once in the isolate. The body
    // waits unread meanwhile (its own deadline still runs).
    let want_bytes = declared.unwrap_or(MAX_MANIFEST as u64);
    let Some(reservation) =
        budget::reserve(r.session.fetcher, want_bytes, r.session.timeout_ms).await
    else {
        r.session.fetcher.discard(body);
        let stored = Err("manifest memory budget full");
        return Ok((busy(r.method), CacheStatus::Miss { stored }));
    };
    let expected = want.map(Digest::as_str).or(announced.as_deref());
    let (bytes, actual) = read_verified(r, body, declared, expected).await?;
    let size = bytes.len() as u64;
    // A small manifest stays in the isolate's memory too (if stored; see `memory`).
    let kept = (size <= crate::mirror::memo::ENTRY_MAX).then(|| Rc::<[u8]>::from(bytes.as_slice()));
    // Verified: from here on the runtime holds the bytes, once, and wasm lets go of them.
    let body = r.session.fetcher.body_of(bytes);
    drop(reservation);
    let mut headers = passed_headers(&parts.headers);
    if let Ok(v) = HeaderValue::from_str(actual.as_str()) {
        headers.insert(DIGEST_HEADER, v);
    }
    // The length read, also when the upstream sent the body chunked.
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    let mut facts = fact_sheet(r, false, Some(size));
    facts.digest_ok = true;
    facts.has_digest_header = announced.is_some();
    let fetched = Fetched {
        body,
        digest: actual,
        media_type,
        size,
        facts,
        kept,
    };
    let (body, stored) = keep(r, tag_key, fetched);
    let mut out = http::Response::new(Reply::Stream(body));
    *out.headers_mut() = headers;
    Ok((out, CacheStatus::Miss { stored }))
}

/// Docker's schema 1 (signed or not): what distribution falls back to when a client accepts none
/// of the types an image has (an OCI-only client asking for a Docker v2 image).
fn is_schema1(media_type: &str) -> bool {
    let t = media_type.split(';').next().unwrap_or("").trim();
    t.eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+prettyjws")
        || t.eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+json")
}

/// Schema 1 is never served: its digest covers a payload without the signature, so its bytes
/// cannot be checked, no current client pulls it, and it is not what the client asked for. The
/// manifest does not exist in a type the client takes: `404 MANIFEST_UNKNOWN`, saying why.
fn schema1_refused(upstream: &str) -> OciError {
    OciError::new(
        ErrorCode::ManifestUnknown,
        format!(
            "upstream {upstream} has this manifest in no type the client accepts (it offered Docker schema 1, which the mirror does not serve): accept application/vnd.docker.distribution.manifest.v2+json too"
        ),
    )
    .with_status(404)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The facts of a 200 answer to this request, for the policy.
fn fact_sheet<F: Fetcher, S>(r: &Request<'_, F, S>, head: bool, size: Option<u64>) -> Facts {
    Facts {
        client_credentials: r.client_auth.is_some(),
        status: 200,
        head,
        has_digest_header: head,
        content_length: size,
        ..Default::default()
    }
}

/// The whole manifest, read and checked: as long as it said, and hashing to the digest asked
/// for or announced (in that digest's algorithm; SHA-256 when neither names one).
async fn read_verified<F: Fetcher, S>(
    r: &Request<'_, F, S>,
    body: F::Body,
    declared: Option<u64>,
    expected: Option<&str>,
) -> Result<(Vec<u8>, Digest), OciError> {
    let name = &r.upstream.name;
    let bad = |m: String| OciError::new(ErrorCode::Unavailable, m).with_status(502);
    let bytes = r
        .session
        .fetcher
        .read_small(body, MAX_MANIFEST)
        .await
        .ok_or_else(|| {
            bad(format!(
                "upstream {name} sent an unreadable or oversized manifest"
            ))
        })?;
    if declared.is_some_and(|n| n != bytes.len() as u64) {
        return Err(bad("upstream sent a truncated manifest".into()));
    }
    let actual = Algorithm::of_digest_str(expected.unwrap_or("sha256:")).of(&bytes);
    if expected.is_some_and(|e| e != actual.as_str()) {
        return Err(OciError::new(
            ErrorCode::DigestInvalid,
            format!("upstream {name} sent a manifest whose bytes do not match its digest"),
        )
        .with_status(502));
    }
    Ok((bytes, actual))
}

/// A verified manifest on its way to the client.
struct Fetched<B> {
    body: B,
    digest: Digest,
    media_type: Option<String>,
    size: u64,
    facts: Facts,
    /// The bytes for the isolate's memory, when small enough.
    kept: Option<Rc<[u8]>>,
}

/// Stores a verified manifest (and the tag's record) when the policy allows: the runtime splits
/// the body, one branch for the client, one for the store. Returns the client's body and what was
/// stored or why not.
fn keep<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    tag_key: Option<&str>,
    m: Fetched<F::Body>,
) -> (F::Body, Result<(), &'static str>) {
    let Some(media_type) = m.media_type else {
        return (m.body, Err("no Content-Type"));
    };
    let ttl = match decide(Kind::DigestManifest, &m.facts, &r.upstream.ttls) {
        Decision::Cacheable { ttl, .. } => ttl,
        d => return (m.body, Err(d.reason())),
    };
    let (mut to_client, to_store) = r.session.fetcher.tee(m.body);
    let key = cache_key::manifest(&r.upstream.name, r.name, &m.digest);
    let stored = StoredManifest {
        body: to_store,
        media_type: media_type.clone(),
        size: m.size,
    };
    r.store.put_manifest(&key, stored, ttl, r.landing.clone());
    let marker = cache_key::repository_held(&r.upstream.name, r.name);
    if r.store.shared() && super::super::markers::due(&marker, r.session.now) {
        r.store.put_note(&marker, "1", ttl);
    }
    let rec = TagRecord {
        digest: m.digest.to_string(),
        media_type,
        size: m.size,
        stored_at: r.session.now,
    };
    let stored = match tag_key {
        Some(tag_key) => {
            // The bytes go with the record too: a warm GET by tag is then one store lookup.
            let (client, with_record) = r.session.fetcher.tee(to_client);
            to_client = client;
            store_record(r, tag_key, m.facts, rec.clone(), Some(with_record))
        }
        None => Ok(()),
    };
    if let Some(bytes) = m.kept {
        memory::keep_verified(r, tag_key.filter(|_| stored.is_ok()), &rec, bytes);
    }
    (to_client, stored)
}

pub(super) fn store_record<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, S>,
    key: &str,
    facts: Facts,
    rec: TagRecord,
    body: Option<F::Body>,
) -> Result<(), &'static str> {
    match decide(Kind::TagRecord, &facts, &r.upstream.ttls) {
        Decision::Cacheable { .. } => {
            if body.is_none() {
                // Stored without bytes: the isolate keeps the record with the bytes it holds for
                // that digest (a caller with bytes keeps them itself: `memory::keep_verified`).
                memory::keep_record(r, key, &rec);
            }
            r.store
                .put_tag(key, &rec, body, keep_tag(r), r.landing.clone());
            Ok(())
        }
        d => {
            if let Some(b) = body {
                r.session.fetcher.discard(b);
            }
            Err(d.reason())
        }
    }
}
