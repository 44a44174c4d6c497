//! Talking to an upstream registry: bearer tokens kept per (registry, identity, scope) and one
//! retry on 401, credentials sent only to realms the upstream may use, and redirects followed here
//! with `Authorization` dropped whenever the origin changes (Docker Hub → CDN, S3 presigned URLs).

use std::cell::RefCell;

use http::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::challenge::{self, BearerChallenge};
use crate::config::Upstream;
use crate::error::{ErrorCode, OciError};
use crate::ports::{FetchError, Fetcher, UpstreamRequest};
use crate::retry;
use crate::token::{identity_key, Token, TokenCache};

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// How often a request waiting for another's token fetch looks for the token.
const PEER_POLL_MS: u32 = 20;
/// The longest wait for another request's token fetch (one whose request went away unseen is
/// marked for up to 30 s); after it a request fetches its own.
const PEER_WAIT_MAX_MS: u32 = 5_000;
/// Largest token or error body read into wasm.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;
pub const USER_AGENT_VALUE: &str = concat!("edgemirror/", env!("CARGO_PKG_VERSION"));

/// Whose credentials a request to an upstream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    /// The mirror's own: anonymous, or the operator's `user:password` for this upstream.
    Mirror { credentials: Option<&'a str> },
    /// A client's own token (`Authorization: Bearer …` from the mirror's token endpoint): sent as
    /// it is, never replaced, and what it fetches is never shared.
    Client(&'a str),
    /// A client's own login (`Authorization: Basic …`, as skopeo sends when `/v2/` asks for none):
    /// exchanged for a token at the upstream's realm for this request alone (never kept).
    ClientLogin(&'a str),
}

/// What the flows share for one request: the platform's client, the token cache, the clock reading.
pub struct Session<'a, F: Fetcher> {
    pub fetcher: &'a F,
    pub tokens: &'a RefCell<TokenCache>,
    pub now: u64,
    pub timeout_ms: u32,
    /// A secret's value by name (upstream header values live in secrets, not in the configuration).
    pub secret: &'a dyn Fn(&str) -> Option<String>,
}

fn unavailable(status: u16, message: String) -> OciError {
    OciError::new(ErrorCode::Unavailable, message).with_status(status)
}

fn fetch_error(host: &str, e: FetchError) -> OciError {
    match e {
        FetchError::Timeout => unavailable(504, format!("upstream {host} did not answer in time")),
        FetchError::Unreachable(_) => unavailable(502, format!("upstream {host} is unreachable")),
    }
}

/// `host` or `host:port` of a URL (what host routing and messages use).
pub(crate) fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// Whether credentials (the operator's or a client's login) may go to `realm` for `upstream`: a
/// realm on the registry's own origin or one listed in its `realms`, and never plain http for an
/// https registry. The error says why, for a 502.
pub fn credentials_may_go_to(upstream: &Upstream, realm: &url::Url) -> Result<(), OciError> {
    let origin = realm.origin().ascii_serialization();
    let registry_tls = upstream.registry.starts_with("https:");
    if registry_tls && realm.scheme() != "https" {
        return Err(unavailable(
            502,
            format!(
                "upstream {} names a plain-http token realm; its credentials are not sent there",
                upstream.name
            ),
        ));
    }
    if origin == upstream.registry || upstream.realms.contains(&origin) {
        return Ok(());
    }
    Err(unavailable(
        502,
        format!(
            "upstream {} names the token realm {origin}, which is not on its own origin nor in its realms; its credentials are not sent there",
            upstream.name
        ),
    ))
}

impl<F: Fetcher> Session<'_, F> {
    /// Sends `method url` to `upstream` for repository scope `scope`, authenticating and
    /// following redirects. Returns the final response (any status) for the caller to map.
    /// `private` headers (an upstream's Access headers) go, like the token, to the registry's own
    /// origin only.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        upstream: &Upstream,
        scope: &str,
        method: Method,
        url: url::Url,
        mut headers: HeaderMap,
        private: &HeaderMap,
        identity: Identity<'_>,
    ) -> Result<http::Response<F::Body>, OciError> {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Bytes as stored: a compressed answer would make HEAD and GET lengths disagree.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        // What the realm gets (`Basic …`), and whether the tokens it gives may be kept and shared.
        let (realm_auth, keep) = match identity {
            Identity::Client(value) => {
                let (resp, _) = self
                    .follow(&method, url, headers, Some(value), private)
                    .await?;
                return Ok(resp);
            }
            Identity::ClientLogin(value) => (Some(value.to_string()), false),
            Identity::Mirror { credentials } => (credentials.map(basic), true),
        };
        // A token belongs to the registry and to the credential that obtained it: two upstreams
        // on one registry with different accounts never share one.
        let token_key = &format!(
            "{}|{}",
            upstream.registry,
            identity_key(realm_auth.as_deref())
        );
        let cached = if keep {
            self.tokens
                .borrow()
                .get(token_key, scope, self.now)
                .map(Token::header_value)
        } else {
            None
        };
        // A request beside this one may be fetching this very token: its answer is waited for once.
        let mut asked_peer = false;
        let cached = match cached {
            None if keep && self.tokens.borrow().is_fetching(token_key, scope, self.now) => {
                asked_peer = true;
                self.peer_token(token_key, scope).await
            }
            cached => cached,
        };
        let mut used_cached = cached.is_some();
        let mut auth = cached;
        let mut fresh_tokens = 0;
        loop {
            let (resp, from_registry) = self
                .follow(
                    &method,
                    url.clone(),
                    headers.clone(),
                    auth.as_deref(),
                    private,
                )
                .await?;
            // A 401 from a host the registry redirected to is that host's answer, not a challenge
            // the mirror may answer with a token (it would fetch one from a realm nobody configured).
            if resp.status() != StatusCode::UNAUTHORIZED || !from_registry {
                return Ok(resp);
            }
            let header = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let Some(challenge) = challenge::bearer(&header) else {
                // A registry that asks for Basic gets the credentials at hand, if there are any.
                match &realm_auth {
                    Some(c)
                        if challenge::parse(&header)
                            .iter()
                            .any(|c| c.scheme == "basic")
                            && auth.is_none() =>
                    {
                        self.fetcher.discard(resp.into_body());
                        auth = Some(c.clone());
                        continue;
                    }
                    _ => return Ok(resp),
                }
            };
            // A token just fetched and refused: for a missing scope that is the answer (the
            // repository needs a login); an invalid one (expired on arrival: a realm with a skewed
            // clock) gets one more fetch, and then the mirror gives up on this upstream.
            let invalid = challenge.error.as_deref() == Some("invalid_token");
            match fresh_tokens {
                0 => {}
                1 if invalid => {}
                1 => return Ok(resp),
                _ => {
                    self.fetcher.discard(resp.into_body());
                    return Err(unavailable(
                        502,
                        format!(
                            "upstream {} refuses the tokens its own realm issues",
                            upstream.name
                        ),
                    ));
                }
            }
            self.fetcher.discard(resp.into_body());
            if used_cached {
                self.tokens.borrow_mut().forget(token_key, scope);
                used_cached = false;
            }
            if keep && !asked_peer {
                asked_peer = true;
                if let Some(token) = self.peer_token(token_key, scope).await {
                    auth = Some(token);
                    used_cached = true;
                    continue;
                }
            }
            fresh_tokens += 1;
            if realm_auth.is_some() {
                credentials_may_go_to(upstream, &challenge.realm)?;
            }
            // The realm gets the private headers only if it is on the registry's own origin.
            let realm_private = if challenge.realm.origin() == url.origin() {
                private.clone()
            } else {
                HeaderMap::new()
            };
            let token = self
                .fetch_token(
                    &upstream.name,
                    scope,
                    &challenge,
                    &realm_private,
                    realm_auth.as_deref(),
                    keep.then_some(token_key.as_str()),
                )
                .await?;
            auth = Some(token.header_value());
        }
    }

    /// The Bearer challenge a registry answers an anonymous `GET /v2/` with (its token realm), if any.
    pub async fn realm_of(
        &self,
        registry: &str,
        private: &HeaderMap,
    ) -> Result<Option<BearerChallenge>, OciError> {
        let url = url::Url::parse(&format!("{registry}/v2/"))
            .map_err(|_| unavailable(502, "bad registry URL".into()))?;
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let (resp, _) = self
            .follow(&Method::GET, url, headers, None, private)
            .await?;
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::bearer);
        self.fetcher.discard(resp.into_body());
        Ok(challenge)
    }

    /// A GET to a token realm with the client's credentials; the answer as it is.
    pub async fn token_request(
        &self,
        url: url::Url,
        authorization: Option<&str>,
        private: &HeaderMap,
    ) -> Result<http::Response<F::Body>, OciError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let (resp, _) = self
            .follow(&Method::GET, url, headers, authorization, private)
            .await?;
        Ok(resp)
    }

    /// One request and its redirects. `Authorization` and the `private` headers go to the first
    /// origin only. Also says whether the final answer came from that first origin.
    async fn follow(
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

    /// The token another request of this isolate is fetching for `scope`, once it has it (polled;
    /// no future is shared across requests). `None` when nobody is fetching it, or after the
    /// upstream timeout or `PEER_WAIT_MAX_MS`, whichever is shorter.
    async fn peer_token(&self, key: &str, scope: &str) -> Option<String> {
        let mut waited = 0;
        loop {
            if let Some(t) = self.tokens.borrow().get(key, scope, self.now) {
                return Some(t.header_value());
            }
            let bound = self.timeout_ms.min(PEER_WAIT_MAX_MS);
            if waited >= bound || !self.tokens.borrow().is_fetching(key, scope, self.now) {
                return None;
            }
            self.fetcher.pause(PEER_POLL_MS).await;
            waited += PEER_POLL_MS;
        }
    }

    /// One request, repeated once when it failed fast in a way worth repeating (see `retry`).
    async fn fetch_retrying(
        &self,
        req: &UpstreamRequest,
    ) -> Result<http::Response<F::Body>, OciError> {
        let mut attempt = 1;
        loop {
            let wait = match self.fetcher.fetch(req, self.timeout_ms).await {
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

    async fn fetch_token(
        &self,
        upstream: &str,
        scope: &str,
        challenge: &BearerChallenge,
        private: &HeaderMap,
        realm_auth: Option<&str>,
        keep_as: Option<&str>,
    ) -> Result<Token, OciError> {
        let _mark = keep_as.map(|key| FetchMark::new(self.tokens, key, scope, self.now));
        let mut url = challenge.realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                q.append_pair("service", service);
            }
            q.append_pair("scope", scope);
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Credentials go to the realm the registry named (that is where they belong).
        let (resp, _) = self
            .follow(&Method::GET, url, headers, realm_auth, private)
            .await?;
        let status = resp.status();
        let body = self
            .fetcher
            .read_small(resp.into_body(), SMALL_BODY_LIMIT)
            .await;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(OciError::new(
                ErrorCode::Unauthorized,
                format!("upstream {upstream} requires authentication for {scope}"),
            ));
        }
        if !status.is_success() {
            return Err(unavailable(
                502,
                format!(
                    "token endpoint of upstream {upstream} answered {}",
                    status.as_u16()
                ),
            ));
        }
        let token = body
            .and_then(|b| Token::from_response(&b, self.now))
            .ok_or_else(|| {
                unavailable(
                    502,
                    format!("token endpoint of upstream {upstream} sent no usable token"),
                )
            })?;
        if let Some(key) = keep_as {
            self.tokens
                .borrow_mut()
                .put(key, scope, token.clone(), self.now);
        }
        Ok(token)
    }
}

/// "This token is being fetched" for as long as the fetch runs, however it ends (an error, or the
/// request dropped mid-way).
struct FetchMark<'a> {
    tokens: &'a RefCell<TokenCache>,
    key: String,
    scope: String,
}

impl<'a> FetchMark<'a> {
    fn new(tokens: &'a RefCell<TokenCache>, key: &str, scope: &str, now: u64) -> Self {
        tokens.borrow_mut().begin_fetch(key, scope, now);
        FetchMark {
            tokens,
            key: key.to_string(),
            scope: scope.to_string(),
        }
    }
}

impl Drop for FetchMark<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tokens.try_borrow_mut() {
            t.end_fetch(&self.key, &self.scope);
        }
    }
}

/// `Basic <base64(user:password)>`.
pub fn basic(credentials: &str) -> String {
    format!("Basic {}", base64(credentials.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_encode_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(basic("alice:secret"), "Basic YWxpY2U6c2VjcmV0");
    }
}
