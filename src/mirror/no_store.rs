//! The store as a request sees it: the mirror's store, or nothing at all for requests made with a
//! client's own credentials (what one client's login fetched never reaches another client) and
//! for the signature check's own fetches. One type for both, so the whole flow is compiled once
//! per platform, not once per kind of store (a third of the worker's size, measured).

use crate::flights::Landing;
use crate::ports::{BlobLookup, RangeSpec, Store, StoredManifest, StoredTag, TagRecord};

/// `Shared(store)`: reads and writes go to the mirror's store. `Nothing`: holds nothing, keeps
/// nothing (bodies handed to it are let go unread).
pub enum MaybeStore<'a, S> {
    Shared(&'a S),
    Nothing,
}

impl<S: Store> Store for MaybeStore<'_, S> {
    type Body = S::Body;
    async fn tag(&self, key: &str) -> Option<StoredTag<S::Body>> {
        match self {
            MaybeStore::Shared(s) => s.tag(key).await,
            MaybeStore::Nothing => None,
        }
    }
    fn put_tag(
        &self,
        key: &str,
        record: &TagRecord,
        body: Option<S::Body>,
        keep_secs: u64,
        landing: Landing,
    ) {
        if let MaybeStore::Shared(s) = self {
            s.put_tag(key, record, body, keep_secs, landing)
        }
    }
    fn delete_tag(&self, key: &str) {
        if let MaybeStore::Shared(s) = self {
            s.delete_tag(key)
        }
    }
    async fn manifest(&self, key: &str) -> Option<StoredManifest<S::Body>> {
        match self {
            MaybeStore::Shared(s) => s.manifest(key).await,
            MaybeStore::Nothing => None,
        }
    }
    fn put_manifest(&self, key: &str, m: StoredManifest<S::Body>, keep: u64, landing: Landing) {
        if let MaybeStore::Shared(s) = self {
            s.put_manifest(key, m, keep, landing)
        }
    }
    async fn blob(&self, key: &str, range: Option<RangeSpec>, head: bool) -> BlobLookup<S::Body> {
        match self {
            MaybeStore::Shared(s) => s.blob(key, range, head).await,
            MaybeStore::Nothing => BlobLookup::Missing,
        }
    }
    fn put_blob(
        &self,
        key: &str,
        digest: &str,
        size: u64,
        body: S::Body,
        keep: u64,
        landing: Landing,
    ) {
        if let MaybeStore::Shared(s) = self {
            s.put_blob(key, digest, size, body, keep, landing)
        }
    }
    fn blob_fill(&self) -> crate::ports::BlobFill {
        match self {
            MaybeStore::Shared(s) => s.blob_fill(),
            MaybeStore::Nothing => crate::ports::BlobFill::WithAnswer,
        }
    }
    fn fill_after(&self, refill: super::refill::Refill) {
        match self {
            MaybeStore::Shared(s) => s.fill_after(refill),
            MaybeStore::Nothing => refill.landing.failed(),
        }
    }
    fn max_blob(&self) -> u64 {
        match self {
            MaybeStore::Shared(s) => s.max_blob(),
            MaybeStore::Nothing => crate::policy::MAX_STORED_BLOB,
        }
    }
    fn shared(&self) -> bool {
        match self {
            MaybeStore::Shared(s) => s.shared(),
            MaybeStore::Nothing => false,
        }
    }
    async fn note(&self, key: &str) -> Option<String> {
        match self {
            MaybeStore::Shared(s) => s.note(key).await,
            MaybeStore::Nothing => None,
        }
    }
    fn put_note(&self, key: &str, value: &str, keep: u64) {
        if let MaybeStore::Shared(s) = self {
            s.put_note(key, value, keep)
        }
    }
}
