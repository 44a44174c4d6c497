//! A `Fetcher` that counts what one request sent upstream: every request, and manifest GETs
//! (what Docker Hub counts as pulls) apart, for the request's log line and the stats.

use std::cell::Cell;

use http::Method;

use crate::ports::{Acquired, FetchError, Fetcher, UpstreamRequest};

pub struct Counting<'a, F> {
    pub inner: &'a F,
    pub requests: Cell<u32>,
    pub manifest_gets: Cell<u32>,
}

impl<'a, F> Counting<'a, F> {
    pub fn new(inner: &'a F) -> Self {
        Counting {
            inner,
            requests: Cell::new(0),
            manifest_gets: Cell::new(0),
        }
    }
}

/// A GET of a manifest on a registry's API (`/v2/<name>/manifests/<ref>`).
fn is_manifest_get(req: &UpstreamRequest) -> bool {
    req.method == Method::GET
        && req.url.path().starts_with("/v2/")
        && req.url.path().contains("/manifests/")
}

impl<F: Fetcher> Fetcher for Counting<'_, F> {
    type Body = F::Body;
    async fn fetch(
        &self,
        req: &UpstreamRequest,
        timeout_ms: u32,
    ) -> Result<http::Response<F::Body>, FetchError> {
        self.requests.set(self.requests.get().saturating_add(1));
        if is_manifest_get(req) {
            self.manifest_gets
                .set(self.manifest_gets.get().saturating_add(1));
        }
        self.inner.fetch(req, timeout_ms).await
    }
    async fn read_small(&self, body: F::Body, limit: usize) -> Option<Vec<u8>> {
        self.inner.read_small(body, limit).await
    }
    fn discard(&self, body: F::Body) {
        self.inner.discard(body)
    }
    async fn coordinate(&self, key: &str, lease_ms: u32) -> Acquired {
        self.inner.coordinate(key, lease_ms).await
    }
    async fn land(&self, key: &str, ok: bool, payload: Option<&str>) {
        self.inner.land(key, ok, payload).await
    }
    async fn drain(&self, body: F::Body, limit: usize) {
        self.inner.drain(body, limit).await
    }
    fn tee(&self, body: F::Body) -> (F::Body, F::Body) {
        self.inner.tee(body)
    }
    fn body_of(&self, bytes: Vec<u8>) -> F::Body {
        self.inner.body_of(bytes)
    }
    async fn pause(&self, ms: u32) {
        self.inner.pause(ms).await
    }
}
