//! One registry request planned once (`Plan`), and answered with a session and a store
//! (`Request`): coalescing as leader or follower, sent upstream as the mirror or as the client
//! (whose credentials, the operator's secret or the upstream's private headers, it carries).

use super::*;

/// One registry request on its way to an upstream, planned once: everything the flows need but
/// the session and the store it is answered from (see `Request`).
pub struct Plan<'a> {
    pub method: &'a Method,
    pub upstream: &'a Upstream,
    /// The repository name at the upstream.
    pub name: &'a RepoName,
    pub resource: Resource,
    pub url: url::Url,
    /// Headers for the upstream (Accept, Range, If-None-Match).
    pub headers: HeaderMap,
    pub scope: String,
    /// The client's Accept list, normalised.
    pub accept: Vec<String>,
    /// The client's Range header.
    pub range: Option<String>,
    pub link: LinkRewrite<'a>,
    /// The client's own `Authorization` (login pass-through), if it sent one.
    pub client_auth: Option<&'a str>,
}

/// A planned request with the session and the store it is answered from: the shared store, or
/// `NoStore` for a request made with a client's own credentials.
pub struct Request<'a, F: Fetcher, S> {
    pub session: &'a Session<'a, F>,
    pub store: &'a S,
    pub plan: &'a Plan<'a>,
    /// The flight this request leads, if any: its store writes land it.
    pub landing: Landing,
}

impl<'a, F: Fetcher, S> Request<'a, F, S> {
    /// This request as the leader of a flight.
    pub fn leading(&self, landing: Landing) -> Request<'a, F, S> {
        Request {
            session: self.session,
            store: self.store,
            plan: self.plan,
            landing,
        }
    }

    /// Coalesces a miss of `key`: `Some(leader)` to fetch it (this request with the flight's
    /// landing, or alone when it cannot take part), `None` after another request's flight landed
    /// (look in the store again). Only whole GETs with the mirror's own identity take part.
    pub async fn coalesce(&self, key: &str, follow_ms: u32) -> Option<Request<'a, F, S>> {
        if self.client_auth.is_some() || *self.method != Method::GET {
            return Some(self.leading(Landing::none()));
        }
        match self.session.flights.join(key, self.session.now) {
            // First in this isolate: ask the other isolates (when a coordinator is bound).
            Role::Leader(landing) => match self.session.fetcher.coordinate(key, follow_ms).await {
                Acquired::Lead => {
                    landing.lead_remotely();
                    Some(self.leading(landing))
                }
                // Another isolate's fetch landed: this isolate's followers look in the store too.
                Acquired::Landed(_) => None,
                Acquired::Busy | Acquired::Unavailable => Some(self.leading(landing)),
            },
            Role::Landed => None,
            Role::Follower => {
                let pause = |ms| self.session.fetcher.pause(ms);
                match self.session.flights.wait(key, pause, follow_ms).await {
                    Some(true) => None,
                    // The leader stored nothing, or is too slow: fetch it alone.
                    _ => Some(self.leading(Landing::none())),
                }
            }
        }
    }
}

impl<'a, F: Fetcher, S> std::ops::Deref for Request<'a, F, S> {
    type Target = Plan<'a>;
    fn deref(&self) -> &Plan<'a> {
        self.plan
    }
}

impl<F: Fetcher, S> Request<'_, F, S> {
    pub async fn send(&self, method: Method) -> Result<http::Response<F::Body>, OciError> {
        let private = private_headers(self.upstream, self.session.secret)?;
        let operator = operator_credentials(self.upstream, self.session.secret)?;
        let identity = match self.client_auth {
            Some(value) if value.starts_with("Basic ") => Identity::ClientLogin(value),
            Some(value) => Identity::Client(value),
            None => Identity::Mirror {
                credentials: operator.as_deref(),
            },
        };
        let call = upstream::Call {
            upstream: self.upstream,
            scope: &self.scope,
            private: &private,
            identity,
        };
        self.session
            .send(&call, method, self.url.clone(), self.headers.clone())
            .await
    }

    /// Fetches the token this request will need now, when the mirror's own identity asks and the
    /// registry's realm is known (see `Session::fetch_ahead`): for a caller that has something
    /// else to wait for first. Nothing otherwise; `send` then finds it kept, or fetches it. A
    /// token exchange that fails is the request's answer, as it would be in `send` (not tried
    /// twice).
    pub async fn prefetch_token(&self) -> Result<(), OciError> {
        if self.client_auth.is_some() {
            return Ok(());
        }
        fetch_ahead_as_mirror(self.session, self.upstream, &self.scope, false).await
    }

    /// The upstream's final answer to this request, as the client gets it (for `method`).
    pub async fn relay(
        &self,
        method: &Method,
        resp: http::Response<F::Body>,
    ) -> http::Response<Reply<F::Body>> {
        to_client(
            self.session.fetcher,
            method,
            &self.resource,
            &self.upstream.name,
            resp,
            &self.link,
        )
        .await
    }
}

/// `Session::fetch_ahead` for `scope` of `upstream` with the mirror's own identity (the
/// operator's credentials, if any, and the upstream's private headers). A secret that is not set
/// fetches nothing: the request itself reports it.
pub(super) async fn fetch_ahead_as_mirror<F: Fetcher>(
    session: &Session<'_, F>,
    upstream: &Upstream,
    scope: &str,
    discover: bool,
) -> Result<(), OciError> {
    let (Ok(private), Ok(operator)) = (
        private_headers(upstream, session.secret),
        operator_credentials(upstream, session.secret),
    ) else {
        return Ok(());
    };
    let call = upstream::Call {
        upstream,
        scope,
        private: &private,
        identity: Identity::Mirror {
            credentials: operator.as_deref(),
        },
    };
    session.fetch_ahead(&call, discover).await
}

/// The operator's credentials for an upstream, from the secret it names.
fn operator_credentials(
    upstream: &Upstream,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, OciError> {
    match &upstream.credentials {
        None => Ok(None),
        Some(name) => secret(name)
            .map(|v| Some(v.trim().to_string()))
            .ok_or_else(|| {
                OciError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "upstream {}: credentials secret {name} is not set",
                        upstream.name
                    ),
                )
            }),
    }
}

/// An upstream's own headers, their values read from the secrets they name.
pub(crate) fn private_headers(
    upstream: &Upstream,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<HeaderMap, OciError> {
    let mut out = HeaderMap::new();
    for (name, secret_name) in &upstream.headers {
        let missing = || {
            OciError::new(
                ErrorCode::Unavailable,
                format!(
                    "upstream {}: secret {secret_name} for header {name} is not set",
                    upstream.name
                ),
            )
        };
        let value = secret(secret_name).ok_or_else(missing)?;
        let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            return Err(missing());
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// The client's own credential for this upstream, as it goes upstream: its login (`Basic …`), or
/// the upstream's token inside a token the mirror's endpoint issued for this very upstream. `None`
/// (the mirror's own identity) for anything else: no login for an upstream that does not take
/// them, no token minted for another upstream, nothing the mirror did not hand out.
pub(super) fn client_credential(
    config: &Config,
    up: &Upstream,
    authorization: Option<&str>,
) -> Option<String> {
    let value = authorization?;
    if !config.takes_client_logins(up) {
        return None;
    }
    if value.starts_with("Basic ") {
        return Some(value.to_string());
    }
    let token = value.strip_prefix("Bearer ")?;
    token_endpoint::unwrap_token(&up.name, token).map(|t| format!("Bearer {t}"))
}
