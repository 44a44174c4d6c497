//! The mirror's request flow: route → upstream selection → upstream request → client response.
//! Generic over the platform's body type; never reads a blob.

pub mod blobs;
pub mod budget;
pub mod manifests;
pub mod markers;
pub mod memo;
pub mod no_store;
pub mod query;
pub mod realm;
pub mod refill;
mod request;
pub mod respond;
pub mod token_ahead;
pub mod token_endpoint;
pub mod upstream;

use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::challenge::RepoScope;
use crate::config::{Config, ConfigError, Upstream};
use crate::error::{ErrorCode, OciError};
use crate::policy::{normalise_accept, CacheStatus};
use crate::ports::{Fetcher, Store};
use crate::reference::RepoName;
use crate::route::{self, Resource, Route};
use crate::select::select;
pub use no_store::MaybeStore;
use request::client_credential;
pub(crate) use request::private_headers;
pub use request::{Plan, Request};
use respond::{oci_error, to_client, LinkRewrite, API_VERSION, API_VERSION_HEADER};
pub use upstream::{Budget, Identity, Session};

use crate::flights::{Landing, Role};
use crate::ports::Acquired;
use query::{query, upstream_url};

/// A response body: a runtime stream the bytes never leave (the upstream's, or a store's),
/// a few bytes of our own, or nothing.
#[derive(Debug)]
pub enum Reply<B> {
    Stream(B),
    Bytes(Vec<u8>),
    Empty,
}

/// A client request as the core sees it: method, full URL (with the Host), headers.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: Method,
    pub url: url::Url,
    pub headers: HeaderMap,
    /// The request body, read only where the mirror needs one (`POST /token`).
    pub body: Vec<u8>,
}

/// The token the mirror's own token endpoint hands out to clients without credentials (and when an
/// upstream has no token auth): it stands for "no credentials", so the shared cache serves them.
pub const ANONYMOUS_TOKEN: &str = "edgemirror-anonymous";
/// The `service` in the mirror's challenge on `/v2/`.
pub const SERVICE: &str = "edgemirror";

/// What happened, for the request's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub route: &'static str,
    pub upstream: Option<String>,
    /// How the upstream was chosen: host, prefix, ns or default.
    pub by: Option<&'static str>,
    pub error: Option<String>,
    /// The cache's part: hit, miss, revalidated, stale or bypass.
    pub cache: &'static str,
    /// The full `Cache-Status` value, with the reason a response was not stored.
    pub cache_status: String,
    /// The mirror's own Bearer challenge for this request, sent with a 401.
    pub challenge: Option<String>,
    /// The signature policy's verdict on a served manifest (`edgemirror-signature`).
    pub signature: Option<String>,
    /// Upstream tokens to fetch after the answer (a token request's scopes; see `token_ahead`).
    pub ahead: Vec<token_ahead::Ahead>,
}

/// Handles one request. `config` is the parsed configuration or why it is invalid.
pub async fn handle<F: Fetcher, S: Store<Body = F::Body>>(
    config: Result<&Config, &ConfigError>,
    session: &Session<'_, F>,
    store: &S,
    req: &Incoming,
) -> (http::Response<Reply<F::Body>>, Outcome) {
    let route = route::parse(&req.method, req.url.path());
    handle_route(config, session, store, req, route).await
}

/// Handles one request whose route was parsed already (by the front door).
pub async fn handle_route<F: Fetcher, S: Store<Body = F::Body>>(
    config: Result<&Config, &ConfigError>,
    session: &Session<'_, F>,
    store: &S,
    req: &Incoming,
    route: Result<Route, OciError>,
) -> (http::Response<Reply<F::Body>>, Outcome) {
    let mut outcome = Outcome {
        cache: CacheStatus::Bypass.short(),
        ..Default::default()
    };
    let answer = match route {
        Ok(route) => serve(config, session, store, req, route, &mut outcome).await,
        Err(e) => Err(e),
    };
    let (mut resp, cache) = match answer {
        Ok(answer) => {
            outcome.signature = answer
                .0
                .headers()
                .get(crate::cosign::gate::SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            answer
        }
        Err(e) => {
            outcome.error = Some(e.to_string());
            let cache = if outcome.upstream.is_some() {
                CacheStatus::Miss {
                    stored: Err("error"),
                }
            } else {
                CacheStatus::Bypass
            };
            (oci_error(&req.method, &e), cache)
        }
    };
    if req.url.path().starts_with("/v2") {
        if let Ok(v) = HeaderValue::from_str(&cache.header()) {
            resp.headers_mut().insert("cache-status", v);
        }
    }
    if resp.status() == StatusCode::UNAUTHORIZED {
        if let Some(v) = outcome
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
    outcome.cache = cache.short();
    outcome.cache_status = cache.header();
    (resp, outcome)
}

type Answer<B> = Result<(http::Response<Reply<B>>, CacheStatus), OciError>;

async fn serve<F: Fetcher, S: Store<Body = F::Body>>(
    config: Result<&Config, &ConfigError>,
    session: &Session<'_, F>,
    store: &S,
    req: &Incoming,
    route: Route,
    outcome: &mut Outcome,
) -> Answer<F::Body> {
    outcome.route = route.kind();
    let config = match (config, &route) {
        (Err(e), Route::Health) => {
            return Ok((health(Err(e), session.secret), CacheStatus::Bypass))
        }
        (Err(e), _) => {
            return Err(OciError::new(
                ErrorCode::Unavailable,
                format!("mirror configuration is invalid: {e}"),
            ));
        }
        (Ok(c), _) => c,
    };
    memo::configure(config.manifest_memory);
    let (name, resource) = match route {
        Route::Landing => {
            let origin = req.url.origin().ascii_serialization();
            let host = origin
                .split_once("://")
                .map_or(origin.as_str(), |(_, h)| h)
                .to_string();
            let html = crate::landing::page(&origin, &host, config);
            return Ok((
                small(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    html.into_bytes(),
                ),
                CacheStatus::Bypass,
            ));
        }
        Route::Health => return Ok((health(Ok(config), session.secret), CacheStatus::Bypass)),
        Route::ApiBase => {
            // Like Docker Hub: a challenge until the client shows a token. Clients take their login
            // (or an anonymous token) from the mirror's token endpoint only when challenged here.
            if req.headers.contains_key(http::header::AUTHORIZATION) {
                return Ok((
                    small(StatusCode::OK, "application/json", b"{}".to_vec()),
                    CacheStatus::Bypass,
                ));
            }
            outcome.challenge = Some(format!(
                "Bearer realm=\"{}/token\",service=\"{SERVICE}\"",
                req.url.origin().ascii_serialization()
            ));
            return Err(OciError::new(
                ErrorCode::Unauthorized,
                "authentication required (an anonymous token from the realm will do)",
            ));
        }
        Route::Token => {
            let (resp, ahead) = token_endpoint::serve(config, session, req).await?;
            outcome.ahead = ahead;
            return Ok((resp, CacheStatus::Bypass));
        }
        Route::Registry { name, resource } => (name, resource),
    };
    registry(config, session, store, req, &name, resource, outcome).await
}

/// A registry request (manifest, blob, tags, referrers): the upstream chosen, the request
/// planned, and the flow answered from the shared store, or from none for a client's own login.
async fn registry<F: Fetcher, S: Store<Body = F::Body>>(
    config: &Config,
    session: &Session<'_, F>,
    store: &S,
    req: &Incoming,
    name: &RepoName,
    resource: Resource,
    outcome: &mut Outcome,
) -> Answer<F::Body> {
    let q = query(&req.url)?;
    let host = upstream::host_of(&req.url);
    let sel = select(config, &host, name, q.ns.as_deref())?;
    outcome.upstream = Some(sel.upstream.name.clone());
    outcome.by = Some(sel.by);
    // If the upstream refuses, the client is sent to the mirror's own token endpoint.
    outcome.challenge = Some(format!(
        "Bearer realm=\"{}/token\",service=\"{}\",scope=\"{}\"",
        req.url.origin().ascii_serialization(),
        sel.upstream.name,
        RepoScope::pull(name.as_str())
    ));
    let authorization = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client_auth = client_credential(config, sel.upstream, authorization);
    let url = upstream_url(sel.upstream, &sel.name, &resource, &q)?;
    let accept: Vec<&str> = req
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let plan = Plan {
        client_auth: client_auth.as_deref(),
        method: &req.method,
        upstream: sel.upstream,
        name: &sel.name,
        headers: upstream_headers(req, &accept, &resource),
        resource,
        url,
        scope: RepoScope::pull(sel.name.as_str()).to_string(),
        accept: normalise_accept(&accept),
        range: req
            .headers
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        link: LinkRewrite {
            upstream_name: sel.name.as_str(),
            client_name: name.as_str(),
            ns: q.ns.as_deref(),
        },
    };
    match plan.client_auth {
        // Fetched with a client's own credentials: no shared store is read or written.
        Some(_) => {
            dispatch(&Request {
                session,
                store: &MaybeStore::<S>::Nothing,
                plan: &plan,
                landing: Landing::none(),
            })
            .await
        }
        None => {
            dispatch(&Request {
                session,
                store: &MaybeStore::Shared(store),
                plan: &plan,
                landing: Landing::none(),
            })
            .await
        }
    }
}

/// The client's headers the upstream sees: its Accept list (for a manifest without one, every
/// current type), and Range for a blob.
fn upstream_headers(req: &Incoming, accept: &[&str], resource: &Resource) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if !accept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&accept.join(", ")) {
            headers.insert(ACCEPT, v);
        }
    } else if let Resource::Manifest(_) = resource {
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(crate::policy::ACCEPT_ALL_MANIFESTS),
        );
    }
    if let (Resource::Blob(_), Some(range)) = (resource, req.headers.get(RANGE)) {
        headers.insert(RANGE, range.clone());
    }
    headers
}

async fn dispatch<F: Fetcher, S: Store<Body = F::Body>>(
    r: &Request<'_, F, MaybeStore<'_, S>>,
) -> Answer<F::Body> {
    match &r.resource {
        // Through the signature policy, which passes uncovered repositories straight on.
        Resource::Manifest(reference) => crate::cosign::gate::serve(r, reference).await,
        Resource::Blob(digest) => blobs::serve(r, digest).await,
        Resource::TagsList | Resource::Referrers(_) => {
            let resp = r.send(r.method.clone()).await?;
            let out = r.relay(r.method, resp).await;
            Ok((
                out,
                CacheStatus::Miss {
                    stored: Err("not cached"),
                },
            ))
        }
    }
}

pub(crate) fn small<B>(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> http::Response<Reply<B>> {
    let mut resp = http::Response::new(Reply::Empty);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    *resp.body_mut() = Reply::Bytes(body);
    resp
}

/// `/healthz` for a request that did not come through the front door (which answers it itself,
/// with the Worker's variable names).
fn health<B>(
    config: Result<&Config, &ConfigError>,
    secret: &dyn Fn(&str) -> Option<String>,
) -> http::Response<Reply<B>> {
    let env = crate::health::Environment { names: &[], secret };
    let (status, body) = crate::health::report(config, config, &env);
    small(
        status,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}
