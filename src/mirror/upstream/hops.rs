//! An upstream request on the wire: counted against the session's budget, repeated once when it
//! failed fast in a way worth repeating, and its redirects followed here, with `Authorization` and
//! the upstream's private headers dropped whenever the origin changes (Docker Hub → CDN, S3
//! presigned URLs).

use std::cell::Cell;

use http::header::{AUTHORIZATION, LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method};

use super::{host_of, unavailable, Session};
use crate::error::OciError;
use crate::ports::{FetchError, Fetcher, UpstreamRequest};
use crate::retry;

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// A count of upstream requests (manifest GETs, what Docker Hub counts as pulls, apart) and the
/// limit they may not pass. Kept in the session rather than in a wrapping fetcher: one fetcher
/// type is one copy of the whole flow in the wasm.
#[derive(Debug, Default)]
pub struct Budget {
    pub limit: u32,
    pub used: Cell<u32>,
    pub manifest_gets: Cell<u32>,
}

impl Budget {
    pub fn new(limit: u32) -> Budget {
        Budget {
            limit,
            ..Budget::default()
        }
    }
    /// A count with no limit.
    pub fn unlimited() -> Budget {
        Budget::new(u32::MAX)
    }
    pub fn spent(&self) -> bool {
        self.used.get() >= self.limit
    }
    /// Takes one request from the budget, if any is left.
    fn take(&self, req: &UpstreamRequest) -> bool {
        if self.spent() {
            return false;
        }
        self.used.set(self.used.get() + 1);
        if is_manifest_get(req) {
            self.manifest_gets
                .set(self.manifest_gets.get().saturating_add(1));
        }
        true
    }
}

/// A GET of a manifest on a registry's API (`/v2/<name>/manifests/<ref>`).
fn is_manifest_get(req: &UpstreamRequest) -> bool {
    req.method == Method::GET
        && req.url.path().starts_with("/v2/")
        && req.url.path().contains("/manifests/")
}

fn fetch_error(host: &str, e: FetchError) -> OciError {
    match e {
        FetchError::Timeout => unavailable(504, format!("upstream {host} did not answer in time")),
        FetchError::Unreachable(_) => unavailable(502, format!("upstream {host} is unreachable")),
    }
}

impl<F: Fetcher> Session<'_, F> {
    /// One request and its redirects. `Authorization` and the `private` headers go to the first
    /// origin only. Also says whether the final answer came from that first origin.
    pub(in crate::mirror) async fn follow(
        &self,
        method: &Method,
        mut url: url::Url,
        mut headers: HeaderMap,
        auth: Option<&str>,
        private: &HeaderMap,
    ) -> Result<(http::Response<F::Body>, bool), OciError> {
        let first_origin = url.origin();
        if let Some(value) = auth.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in private {
            headers.insert(name, value.clone());
        }
        for hop in 0..=MAX_REDIRECTS {
            let req = UpstreamRequest {
                method: method.clone(),
                url: url.clone(),
                headers: headers.clone(),
            };
            let resp = self.fetch_retrying(&req).await?;
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let (true, Some(location)) = (resp.status().is_redirection(), location) else {
                return Ok((resp, url.origin() == first_origin));
            };
            self.fetcher.discard(resp.into_body());
            if hop == MAX_REDIRECTS {
                break;
            }
            let next = url
                .join(&location)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    unavailable(
                        502,
                        format!(
                            "upstream {} redirected to an unusable location",
                            host_of(&url)
                        ),
                    )
                })?;
            if next.origin() != url.origin() {
                headers.remove(AUTHORIZATION);
                for name in private.keys() {
                    headers.remove(name);
                }
            }
            url = next;
        }
        Err(unavailable(
            502,
            format!("more than {MAX_REDIRECTS} redirects from upstream"),
        ))
    }

    /// One request, repeated once when it failed fast in a way worth repeating (see `retry`).
    pub(super) async fn fetch_retrying(
        &self,
        req: &UpstreamRequest,
    ) -> Result<http::Response<F::Body>, OciError> {
        let mut attempt = 1;
        loop {
            let within = self.budget.is_none_or(|b| b.take(req));
            let fetched = match within {
                true => self.fetcher.fetch(req, self.timeout_ms).await,
                false => Err(FetchError::Unreachable(
                    "upstream request budget spent".into(),
                )),
            };
            let wait = match fetched {
                Ok(resp) => {
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok());
                    match retry::after_status(resp.status(), retry_after) {
                        Some(ms) if attempt < retry::ATTEMPTS => {
                            self.fetcher.discard(resp.into_body());
                            ms
                        }
                        _ => return Ok(resp),
                    }
                }
                Err(FetchError::Unreachable(_)) if attempt < retry::ATTEMPTS => retry::PAUSE_MS,
                Err(e) => return Err(fetch_error(&host_of(&req.url), e)),
            };
            attempt += 1;
            self.fetcher.pause(wait).await;
        }
    }
}
