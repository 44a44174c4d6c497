//! The one thing the core needs from the platform: an HTTP client that does not follow redirects.
//! The body type is opaque: in the worker it is the runtime's stream (bytes never enter wasm), in
//! native tests a `Vec<u8>`.

use http::{HeaderMap, Method};

/// A request to an upstream (registry, token realm or blob host).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: url::Url,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No response headers within the configured time.
    Timeout,
    /// Connection refused, reset, DNS failure… The text is for logs.
    Unreachable(String),
}

#[allow(async_fn_in_trait)] // wasm is single-threaded; no Send bound wanted
pub trait Fetcher {
    type Body;
    /// Sends `req` with redirects *not* followed, waiting at most `timeout_ms` for headers.
    async fn fetch(&self, req: &UpstreamRequest, timeout_ms: u32) -> Result<http::Response<Self::Body>, FetchError>;
    /// Reads a small body (token JSON, error envelopes), or `None` when it is over `limit` or fails.
    async fn read_small(&self, body: Self::Body, limit: usize) -> Option<Vec<u8>>;
    /// Lets go of a body that will not be read.
    fn discard(&self, body: Self::Body);
}
