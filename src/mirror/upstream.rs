//! Talking to an upstream registry: bearer tokens kept per (registry, identity, scope) and one
//! retry on 401, credentials sent only to realms the upstream may use. The request on the wire
//! (budget, retry, redirects that drop `Authorization` when the origin changes) is `hops`.

use std::cell::RefCell;

use http::header::{ACCEPT_ENCODING, USER_AGENT, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::backoff::{look_until, Backoff, Look};
use crate::challenge::{self, BearerChallenge};
use crate::config::Upstream;
use crate::error::{ErrorCode, OciError};
use crate::flights::Flights;
use crate::ports::{Acquired, Fetcher};
use crate::token::{identity_key, Token, TokenCache};

mod hops;

pub use super::realm::{credentials_may_go_to, RealmRequest};
pub use crate::authorization::basic;
pub use hops::{Budget, MAX_REDIRECTS};

/// How often a request waiting for another's token fetch looks for the token: after 1 ms,
/// doubling up to every 5 ms (a look is a timer and a table lookup; a token fetch takes one
/// upstream round trip, two on first contact, and the pause is added to the pull's wait).
const PEER_POLL: Backoff = Backoff { first: 1, cap: 5 };
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
    /// The isolate's misses in flight (see `flights`).
    pub flights: &'a Flights,
    pub now: u64,
    pub timeout_ms: u32,
    /// A secret's value by name (upstream header values live in secrets, not in the configuration).
    pub secret: &'a dyn Fn(&str) -> Option<String>,
    /// Counts the upstream requests made (a request's log line and stats), and stops them past a
    /// limit (the scheduled prewarm: the platform's subrequest limit).
    pub budget: Option<&'a Budget>,
}

fn unavailable(status: u16, message: String) -> OciError {
    OciError::new(ErrorCode::Unavailable, message).with_status(status)
}

/// `host` or `host:port` of a URL (what host routing and messages use).
pub(crate) fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// What one upstream request is for: the upstream, the repository scope a token must cover, the
/// upstream's private headers (its own origin only) and whose credentials it carries.
pub struct Call<'a> {
    pub upstream: &'a Upstream,
    pub scope: &'a str,
    pub private: &'a HeaderMap,
    pub identity: Identity<'a>,
}

/// How an upstream request is authenticated across its attempts.
struct Auth {
    /// What a token realm (or a registry asking for Basic) gets: `Basic …`, if anything.
    login: Option<String>,
    /// The token cache key when the tokens this identity obtains may be kept and shared.
    key: Option<String>,
    /// The `Authorization` sent now.
    header: Option<String>,
    /// Whether `header` came from the cache (or a peer), so a refusal forgets it.
    from_cache: bool,
    asked_peer: bool,
    /// Tokens fetched for this request so far.
    fresh: u32,
    /// The realm a token was fetched from before the first attempt (`token_first`).
    first_realm: Option<url::Url>,
}

impl Auth {
    /// An identity's authentication before its first attempt: nothing sent yet.
    fn new(login: Option<String>, key: Option<String>) -> Auth {
        Auth {
            login,
            key,
            header: None,
            from_cache: false,
            asked_peer: false,
            fresh: 0,
            first_realm: None,
        }
    }
}

/// What to do after the registry refused an attempt.
enum Next<B> {
    Retry,
    Answer(http::Response<B>),
}

impl<F: Fetcher> Session<'_, F> {
    /// Sends `method url` for `call`, authenticating and following redirects. Returns the final
    /// response (any status) for the caller to map.
    pub async fn send(
        &self,
        call: &Call<'_>,
        method: Method,
        url: url::Url,
        mut headers: HeaderMap,
    ) -> Result<http::Response<F::Body>, OciError> {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Bytes as stored: a compressed answer would make HEAD and GET lengths disagree.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let mut auth = match call.identity {
            Identity::Client(value) => {
                let (resp, _) = self
                    .follow(&method, url, headers, Some(value), call.private)
                    .await?;
                return Ok(resp);
            }
            Identity::ClientLogin(value) => self.start(call, Some(value.to_string()), false).await,
            Identity::Mirror { credentials } => {
                self.start(call, credentials.map(basic), true).await
            }
        };
        self.token_first(call, &mut auth).await?;
        loop {
            let (resp, from_registry) = self
                .follow(
                    &method,
                    url.clone(),
                    headers.clone(),
                    auth.header.as_deref(),
                    call.private,
                )
                .await?;
            // A 401 from a host the registry redirected to is that host's answer, not a challenge
            // the mirror may answer with a token (it would fetch one from a realm nobody configured).
            if resp.status() != StatusCode::UNAUTHORIZED || !from_registry {
                return Ok(resp);
            }
            match self.refused(call, &mut auth, resp).await? {
                Next::Retry => continue,
                Next::Answer(resp) => return Ok(resp),
            }
        }
    }

    /// The authentication a request starts with: a kept token (or one a request beside it is
    /// fetching right now), else none until the registry asks.
    async fn start(&self, call: &Call<'_>, login: Option<String>, keep: bool) -> Auth {
        // A token belongs to the registry and to the credential that obtained it: two upstreams
        // on one registry with different accounts never share one.
        let key = keep.then(|| token_key(call, login.as_deref()));
        let mut auth = Auth::new(login, key);
        let Some(key) = auth.key.as_deref() else {
            return auth;
        };
        let cached = self
            .tokens
            .borrow()
            .get(key, call.scope, self.now)
            .map(Token::header_value);
        auth.header = match cached {
            None if self.tokens.borrow().is_fetching(key, call.scope, self.now) => {
                auth.asked_peer = true;
                self.peer_token(key, call.scope).await
            }
            cached => cached,
        };
        auth.from_cache = auth.header.is_some();
        auth
    }

    /// A scope with no token yet, on a registry whose realm is known from an earlier challenge:
    /// the token is fetched before the request, not after a 401 (one round trip less on every
    /// cold repository). It counts as the request's first fresh token, so a realm that fails or
    /// whose tokens the registry refuses is answered as before; a registry that names another
    /// realm now gets a token from that one.
    async fn token_first(&self, call: &Call<'_>, auth: &mut Auth) -> Result<(), OciError> {
        if auth.header.is_some() || auth.key.is_none() {
            return Ok(());
        }
        let Some(challenge) = self.tokens.borrow().realm_of(&call.upstream.registry) else {
            return Ok(());
        };
        auth.fresh = 1;
        let token = self.token_for(call, &challenge, auth).await?;
        auth.header = Some(token.header_value());
        auth.first_realm = Some(challenge.realm);
        // Kept in the cache by the fetch: a refusal forgets it, and no peer has a better one.
        auth.from_cache = true;
        auth.asked_peer = true;
        Ok(())
    }

    /// Fetches ahead the token `call` will need (see `token_ahead`): nothing when it is kept or
    /// being fetched; with `discover`, the realm discovered with an anonymous `GET /v2/` when this
    /// registry's is not known yet (a registry without token auth is not asked again for a
    /// while), else nothing then. The token is marked as being fetched from the start, so a
    /// request arriving meanwhile waits for it. The error is the token exchange's, as the
    /// request would meet it (a failed discovery is not one: the request meets the 401 itself).
    pub async fn fetch_ahead(&self, call: &Call<'_>, discover: bool) -> Result<(), OciError> {
        let Identity::Mirror { credentials } = call.identity else {
            return Ok(());
        };
        let login = credentials.map(basic);
        let key = token_key(call, login.as_deref());
        let registry = call.upstream.registry.as_str();
        {
            let tokens = self.tokens.borrow();
            if tokens.get(&key, call.scope, self.now).is_some()
                || tokens.is_fetching(&key, call.scope, self.now)
                || tokens.lacks_realm(registry, self.now)
            {
                return Ok(());
            }
        }
        let known = self.tokens.borrow().realm_of(registry).is_some();
        if !known && !discover {
            return Ok(());
        }
        let _mark = FetchMark::new(self.tokens, &key, call.scope, self.now);
        if !known {
            match self.realm_of(registry, call.private).await {
                Ok(Some(c)) => self.tokens.borrow_mut().learn_realm(registry, &c),
                Ok(None) => {
                    self.tokens.borrow_mut().learn_no_realm(registry, self.now);
                    return Ok(());
                }
                Err(_) => return Ok(()),
            }
        }
        // The realm is known now: the token as a pull would fetch it first.
        self.token_first(call, &mut Auth::new(login, Some(key)))
            .await
    }

    /// The registry answered 401: answer its challenge (a token, or Basic), or give its answer back.
    async fn refused(
        &self,
        call: &Call<'_>,
        auth: &mut Auth,
        resp: http::Response<F::Body>,
    ) -> Result<Next<F::Body>, OciError> {
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let challenge = challenge::bearer(&header);
        if let Some(c) = &challenge {
            self.tokens
                .borrow_mut()
                .learn_realm(&call.upstream.registry, c);
        }
        let Some(challenge) = challenge else {
            // A registry that asks for Basic gets the login at hand, if there is one, once.
            let basic_asked = challenge::parse(&header)
                .iter()
                .any(|c| c.scheme == "basic");
            return Ok(match (&auth.login, basic_asked && auth.header.is_none()) {
                (Some(login), true) => {
                    self.fetcher.discard(resp.into_body());
                    auth.header = Some(login.clone());
                    Next::Retry
                }
                _ => Next::Answer(resp),
            });
        };
        // A token just fetched and refused: for a missing scope that is the answer (the
        // repository needs a login); an invalid one (expired on arrival: a realm with a skewed
        // clock) gets one more fetch, and then the mirror gives up on this upstream.
        let invalid = challenge.error.as_deref() == Some("invalid_token");
        if auth
            .first_realm
            .take()
            .is_some_and(|r| r != challenge.realm)
        {
            // The realm moved since it was learned: its token was no answer to this challenge.
            auth.fresh = 0;
        }
        match auth.fresh {
            0 => {}
            1 if invalid => {}
            1 => return Ok(Next::Answer(resp)),
            _ => {
                self.fetcher.discard(resp.into_body());
                return Err(unavailable(
                    502,
                    format!(
                        "upstream {} refuses the tokens its own realm issues",
                        call.upstream.name
                    ),
                ));
            }
        }
        self.fetcher.discard(resp.into_body());
        if let (Some(key), true) = (auth.key.as_deref(), auth.from_cache) {
            self.tokens.borrow_mut().forget(key, call.scope);
            auth.from_cache = false;
        }
        if let (Some(key), false) = (auth.key.clone(), auth.asked_peer) {
            auth.asked_peer = true;
            if let Some(token) = self.peer_token(&key, call.scope).await {
                auth.header = Some(token);
                auth.from_cache = true;
                return Ok(Next::Retry);
            }
        }
        auth.fresh += 1;
        let token = self.token_for(call, &challenge, auth).await?;
        auth.header = Some(token.header_value());
        Ok(Next::Retry)
    }

    /// A token for this request. The mirror's own identity's first fetch is shared with the other
    /// isolates (when a coordinator is bound): one of them asks the realm, the others get its
    /// token. Anything else (a retry after a refused token, a client's login) is fetched here.
    async fn token_for(
        &self,
        call: &Call<'_>,
        challenge: &BearerChallenge,
        auth: &Auth,
    ) -> Result<Token, OciError> {
        let Some(key) = auth.key.as_deref().filter(|_| auth.fresh == 1) else {
            return self.fetch_token(call, challenge, auth).await;
        };
        let shared_key = format!("token|{key}|{}", call.scope);
        let lease_ms = self.timeout_ms.saturating_mul(2);
        match self.fetcher.coordinate(&shared_key, lease_ms).await {
            Acquired::Landed(Some(shared)) => match Token::from_shared(&shared, self.now) {
                Some(token) => {
                    let mut tokens = self.tokens.borrow_mut();
                    tokens.put(key, call.scope, token.clone(), self.now);
                    Ok(token)
                }
                None => self.fetch_token(call, challenge, auth).await,
            },
            Acquired::Lead => {
                let fetched = self.fetch_token(call, challenge, auth).await;
                let shared = fetched.as_ref().ok().map(Token::to_shared);
                let ok = fetched.is_ok();
                self.fetcher.land(&shared_key, ok, shared.as_deref()).await;
                fetched
            }
            _ => self.fetch_token(call, challenge, auth).await,
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

    /// The token another request of this isolate is fetching for `scope`, once it has it (polled;
    /// no future is shared across requests). `None` when nobody is fetching it, or after the
    /// upstream timeout or `PEER_WAIT_MAX_MS`, whichever is shorter.
    async fn peer_token(&self, key: &str, scope: &str) -> Option<String> {
        let look = || {
            let tokens = self.tokens.borrow();
            match tokens.get(key, scope, self.now) {
                Some(t) => Look::Done(Some(t.header_value())),
                None if !tokens.is_fetching(key, scope, self.now) => Look::Done(None),
                None => Look::Wait,
            }
        };
        let bound = self.timeout_ms.min(PEER_WAIT_MAX_MS);
        look_until(look, |ms| self.fetcher.pause(ms), PEER_POLL, bound)
            .await
            .flatten()
    }

    /// A fresh token from the realm `challenge` names, kept (and marked as being fetched while it
    /// is) when this identity's tokens may be shared.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        challenge: &BearerChallenge,
        auth: &Auth,
    ) -> Result<Token, OciError> {
        let _mark = auth
            .key
            .as_deref()
            .map(|key| FetchMark::new(self.tokens, key, call.scope, self.now));
        let ask = RealmRequest {
            upstream: call.upstream,
            realm: &challenge.realm,
            service: challenge.service.as_deref(),
            scopes: &[call.scope.to_string()],
            login: auth.login.as_deref(),
            private: call.private,
        };
        let body = self.exchange(&ask).await?;
        let token = Token::from_response(&body, self.now).ok_or_else(|| {
            unavailable(
                502,
                format!(
                    "token endpoint of upstream {} sent no usable token",
                    call.upstream.name
                ),
            )
        })?;
        if let Some(key) = auth.key.as_deref() {
            self.tokens
                .borrow_mut()
                .put(key, call.scope, token.clone(), self.now);
        }
        Ok(token)
    }
}

/// Where the tokens an identity obtains from a registry are kept: the registry and the credential
/// (never the credential itself), so two upstreams on one registry with different accounts never
/// share one.
fn token_key(call: &Call<'_>, login: Option<&str>) -> String {
    format!("{}|{}", call.upstream.registry, identity_key(login))
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
