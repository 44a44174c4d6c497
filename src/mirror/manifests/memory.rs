//! The isolate's memory of manifests (`mirror::memo`) as the flows use it: a fresh tag or a
//! digest answered from it, filled by misses (bytes verified as fetched) and by store hits (bytes
//! read once, within the manifest budget, and checked against their digest).

use std::rc::Rc;

use super::*;
use crate::mirror::memo::{self, Kept, ENTRY_MAX};

/// Whether this request may use the isolate's memory: the requests the shared store serves.
fn usable<F: Fetcher, S: Store>(r: &Request<'_, F, S>) -> bool {
    r.store.shared() && memo::enabled()
}

/// The reply for a kept manifest: nothing for a HEAD, its bytes for a GET (`None` without them).
fn reply_of<F: Fetcher, S>(
    r: &Request<'_, F, S>,
    bytes: Option<Rc<[u8]>>,
) -> Option<Reply<F::Body>> {
    if *r.method == Method::HEAD {
        return Some(Reply::Empty);
    }
    Some(Reply::Bytes(bytes?.to_vec()))
}

/// A tag answered from memory: its record fresh and of a type this client takes; for a GET, the
/// bytes kept with it or under its digest.
pub(super) fn tag_hit<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    tag_key: &str,
) -> Option<(http::Response<Reply<F::Body>>, CacheStatus)> {
    if !usable(r) {
        return None;
    }
    let kept = memo::recall(tag_key)?;
    let ttls = r.upstream.ttls;
    let rec = &kept.record;
    let Freshness::Fresh { remaining } =
        freshness(rec.stored_at, ttls.tag, ttls.stale_if_error, r.session.now)
    else {
        return None;
    };
    if !accepted(r, &rec.media_type) {
        return None;
    }
    let bytes = match kept.bytes {
        Some(b) => Some(b),
        None if *r.method == Method::HEAD => None,
        None => recall_digest(r, &rec.digest)?.bytes,
    };
    let reply = reply_of(r, bytes)?;
    let resp = cached_response(&rec.media_type, &rec.digest, rec.size, reply);
    Some((resp, CacheStatus::MemoryHit { ttl: remaining }))
}

fn recall_digest<F: Fetcher, S>(r: &Request<'_, F, S>, digest: &str) -> Option<Kept> {
    memo::recall(&digest_key(r, digest)?)
}

/// A manifest by digest answered from memory, when kept with bytes in a type this client takes.
pub(super) fn digest_hit<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    key: &str,
) -> Option<(http::Response<Reply<F::Body>>, CacheStatus)> {
    let (reply, rec) = held(r, key)?;
    let resp = cached_response(&rec.media_type, &rec.digest, rec.size, reply);
    let ttl = r.upstream.ttls.manifest;
    Some((resp, CacheStatus::MemoryHit { ttl }))
}

/// The manifest kept under a digest's `key`, as the reply (nothing for a HEAD), with its record.
pub(super) fn held<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    key: &str,
) -> Option<(Reply<F::Body>, TagRecord)> {
    if !usable(r) {
        return None;
    }
    let kept = memo::recall(key)?;
    if kept.bytes.is_none() || !accepted(r, &kept.record.media_type) {
        return None;
    }
    Some((reply_of(r, kept.bytes)?, kept.record))
}

/// Keeps a manifest this request verified (a miss's bytes) under its digest and, with a tag, the
/// tag's record. Only what the store was asked to keep.
pub(super) fn keep_verified<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    tag_key: Option<&str>,
    rec: &TagRecord,
    bytes: Rc<[u8]>,
) {
    if !usable(r) {
        return;
    }
    let kept = Kept {
        record: rec.clone(),
        bytes: Some(bytes),
    };
    if let Some(key) = digest_key(r, &rec.digest) {
        memo::keep(&key, kept.clone());
    }
    if let Some(tag_key) = tag_key {
        memo::keep(tag_key, kept);
    }
}

/// A tag's record the store was given without bytes (a HEAD's, or a revalidated one): kept with
/// the bytes memory holds for that digest, if any.
pub(super) fn keep_record<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    tag_key: &str,
    rec: &TagRecord,
) {
    if !usable(r) {
        return;
    }
    let bytes = memo::recall(tag_key)
        .filter(|k| k.record.digest == rec.digest)
        .and_then(|k| k.bytes)
        .or_else(|| recall_digest(r, &rec.digest).and_then(|k| k.bytes));
    let kept = Kept {
        record: rec.clone(),
        bytes,
    };
    memo::keep(tag_key, kept);
}

/// A tag the store forgot (the upstream said it is gone).
pub(super) fn forget(tag_key: &str) {
    memo::forget(tag_key);
}

/// A store hit's body as the reply: read into memory and kept when small enough and the manifest
/// budget has room, its bytes checked against `rec.digest` first (`None` when they do not match:
/// not served, the caller goes upstream); else the store's stream as it is.
pub(super) async fn fill<F: Fetcher, S: Store>(
    r: &Request<'_, F, S>,
    tag_key: Option<&str>,
    rec: &TagRecord,
    body: F::Body,
) -> Option<Reply<F::Body>> {
    if *r.method == Method::HEAD {
        r.session.fetcher.discard(body);
        if let Some(tag_key) = tag_key {
            keep_record(r, tag_key, rec);
        }
        return Some(Reply::Empty);
    }
    let reservation = (usable(r) && rec.size <= ENTRY_MAX)
        .then(|| budget::try_reserve(rec.size))
        .flatten();
    let Some(reservation) = reservation else {
        return Some(Reply::Stream(body));
    };
    let bytes = r
        .session
        .fetcher
        .read_small(body, ENTRY_MAX as usize)
        .await?;
    let actual = Algorithm::of_digest_str(&rec.digest).of(&bytes);
    if actual.as_str() != rec.digest || bytes.len() as u64 != rec.size {
        return None;
    }
    let bytes: Rc<[u8]> = bytes.into();
    keep_verified(r, tag_key, rec, bytes.clone());
    drop(reservation);
    Some(Reply::Bytes(bytes.to_vec()))
}
