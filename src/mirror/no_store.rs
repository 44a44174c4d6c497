//! The store for requests made with a client's own credentials: it holds nothing and keeps nothing,
//! so what one client's login fetched never reaches another client.

use crate::flights::Landing;
use crate::ports::{Store, StoredManifest};

/// The store for requests made with a client's own credentials: holds nothing, keeps nothing.
pub struct NoStore<B>(std::marker::PhantomData<B>);

impl<B> Default for NoStore<B> {
    fn default() -> Self {
        NoStore(std::marker::PhantomData)
    }
}

impl<B> Store for NoStore<B> {
    type Body = B;
    async fn tag(&self, _: &str) -> Option<crate::ports::StoredTag<B>> {
        None
    }
    fn put_tag(&self, _: &str, _: &crate::ports::TagRecord, _: Option<B>, _: u64, _: Landing) {}
    fn delete_tag(&self, _: &str) {}
    async fn manifest(&self, _: &str) -> Option<StoredManifest<B>> {
        None
    }
    fn put_manifest(&self, _: &str, _: StoredManifest<B>, _: u64, _: Landing) {}
    async fn blob(
        &self,
        _: &str,
        _: Option<crate::ports::RangeSpec>,
        _: bool,
    ) -> crate::ports::BlobLookup<B> {
        crate::ports::BlobLookup::Missing
    }
    fn put_blob(&self, _: &str, _: &str, _: u64, _: B, _: u64, _: Landing) {}
    async fn note(&self, _: &str) -> Option<String> {
        None
    }
    fn put_note(&self, _: &str, _: &str, _: u64) {}
}
