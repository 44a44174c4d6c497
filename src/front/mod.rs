//! The front door: one request from its arrival to its answer, as plain Rust. The admin API's
//! door; the `/token` form read within a bound; the route parsed once; the gate (allow-list, failed
//! logins, the mirror's own login, the pull limit); the mirror's flow; one log line. The platform
//! turns its request into an `Arrival`, provides the `Ports`, and prints the line.

use std::cell::RefCell;

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::admin::{self, ConfigStore};
use crate::config::{Config, ConfigError};
use crate::error::{ErrorCode, OciError};
use crate::gate::{self, Failures, LOGIN_FAILURES};
use crate::mirror::{self, respond::oci_error, Incoming, Reply, Session};
use crate::ports::{Fetcher, PullCounts, Store};
use crate::ratelimit::{self, Counters, Limit};
use crate::route::{self, Route};
use crate::stats::{inventory::Touches, tally::Tally, StatsSource};
use crate::token::TokenCache;

mod admin_door;
mod gatekeep;

use admin_door::admin_door;
use gatekeep::gatekeep;

/// Largest `/token` form read (containerd's OAuth2 password form is a few hundred bytes).
pub const FORM_MAX: usize = 16 * 1024;

/// What one isolate keeps between requests.
#[derive(Debug, Default)]
pub struct Isolate {
    pub tokens: RefCell<TokenCache>,
    pub failures: RefCell<Failures>,
    pub counters: RefCell<Counters>,
    /// Misses in flight (coalescing).
    pub flights: crate::flights::Flights,
    /// Request counters not written yet (stats).
    pub stats: RefCell<Tally>,
    /// Hits on stored objects not written to the inventory yet.
    pub touches: RefCell<Touches>,
}

/// What the platform provides for a request.
pub struct Ports<'a, F, S, K, C, D = crate::stats::NoStats> {
    pub fetcher: &'a F,
    pub store: &'a S,
    /// Pull counters shared by isolates (the `RATELIMIT` KV namespace), when bound.
    pub pulls: Option<&'a K>,
    /// The admin API's store (the `CONFIG` KV namespace), when bound.
    pub config_store: Option<&'a C>,
    /// Where the stats page reads from (the `STATS` D1 database), when bound.
    pub stats: Option<&'a D>,
    /// A variable's or secret's value by name.
    pub secret: &'a dyn Fn(&str) -> Option<String>,
    /// Names of the Worker's variables, secrets and bindings (for `/healthz`'s typo warnings).
    pub names: &'a [String],
    pub isolate: &'a Isolate,
    pub timeout_ms: u32,
}

/// A request as the platform hands it over: its body not read yet.
pub struct Arrival<B> {
    pub method: Method,
    pub url: url::Url,
    /// The few headers the mirror looks at.
    pub headers: HeaderMap,
    pub body: B,
    pub declared_length: Option<u64>,
    /// `CF-Connecting-IP`.
    pub ip: String,
    pub id: String,
    pub now_ms: u64,
}

/// The one line a request logs. Never a header, a query string or a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub msg: &'static str,
    pub id: String,
    pub method: String,
    pub path: String,
    pub route: Option<&'static str>,
    pub upstream: Option<String>,
    pub by: Option<&'static str>,
    pub status: u16,
    pub cache: Option<&'static str>,
    pub cache_status: Option<String>,
    pub bytes: Option<u64>,
    /// Filled in by the platform when the answer leaves.
    pub ms: Option<u64>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The signature policy's verdict on a served manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Requests sent upstream for this one, and how many of them were manifest GETs.
    #[serde(skip_serializing_if = "is_zero")]
    pub upstream_requests: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub manifest_gets: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LogLine {
    /// What the mirror's flow did.
    fn record(&mut self, outcome: mirror::Outcome) {
        self.route = Some(outcome.route);
        self.upstream = outcome.upstream;
        self.by = outcome.by;
        self.cache = Some(outcome.cache);
        self.cache_status = Some(outcome.cache_status);
        self.error = outcome.error;
        self.signature = outcome.signature;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer and what to log about it.
pub struct Departure<B> {
    pub response: http::Response<Reply<B>>,
    pub log: LogLine,
    /// Further lines (an admin change).
    pub notes: Vec<serde_json::Value>,
    /// Upstream tokens the platform fetches after the answer (`mirror::token_ahead::run`).
    pub ahead: Vec<mirror::token_ahead::Ahead>,
}

/// The pull limit's verdict for a request, with what its headers show.
pub(super) type LimitShown = Option<(Limit, u64, Option<u64>)>;

/// One request through the whole pipeline. `config` is the configuration in force, `base` the
/// static one the admin API edits.
pub async fn serve<F, S, K, C, D>(
    ports: &Ports<'_, F, S, K, C, D>,
    config: Result<&Config, &ConfigError>,
    base: Result<&Config, &ConfigError>,
    arrival: Arrival<F::Body>,
) -> Departure<F::Body>
where
    F: Fetcher,
    S: Store<Body = F::Body>,
    K: PullCounts,
    C: ConfigStore,
    D: StatsSource,
{
    let now = arrival.now_ms / 1000;
    let client = ratelimit::client_key(&arrival.ip).unwrap_or_else(|| arrival.ip.clone());
    let mut log = LogLine {
        msg: "request",
        id: arrival.id.clone(),
        method: arrival.method.to_string(),
        path: arrival.url.path().to_string(),
        ..Default::default()
    };
    if admin::is_admin_path(arrival.url.path()) {
        log.route = Some("admin");
        let (resp, change) = admin_door(ports, base, arrival, &client, now).await;
        return depart(resp.map(Reply::Bytes), log, change.into_iter().collect());
    }
    let (ip, id) = (arrival.ip.clone(), arrival.id.clone());
    let mut req = match incoming(ports.fetcher, arrival).await {
        Ok(req) => req,
        Err((method, e)) => return early(&method, e, log),
    };
    let route = route::parse(&req.method, req.url.path());
    let caller = Caller {
        ip: &ip,
        client: &client,
        now,
        presents_password: gate::presents_password(&req),
    };
    if let Ok(Route::Health) = route {
        // Open to everyone, before the gate: the configuration's state, never a secret.
        let env = crate::health::Environment {
            names: ports.names,
            secret: ports.secret,
        };
        let (status, body) = crate::health::report(config, base, &env);
        let mut resp = mirror::small(
            status,
            "application/json",
            serde_json::to_vec(&body).unwrap_or_default(),
        );
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        log.route = Some("health");
        log.cache = Some("bypass");
        return depart(resp, log, vec![]);
    }
    let mut shown: LimitShown = None;
    if let (Ok(cfg), false) = (config, matches!(route, Ok(Route::Health))) {
        match gatekeep(ports, cfg, &mut req, &route, &caller).await {
            Ok(limit) => shown = limit,
            Err(stop) => {
                log.route = stop.route;
                log.user = stop.user;
                return depart(stop.response, log, vec![]);
            }
        }
    }
    let counts = mirror::Budget::unlimited();
    let session = Session {
        fetcher: ports.fetcher,
        tokens: &ports.isolate.tokens,
        flights: &ports.isolate.flights,
        now,
        timeout_ms: ports.timeout_ms,
        secret: ports.secret,
        budget: Some(&counts),
    };
    let (mut resp, mut outcome) =
        mirror::handle_route(config, &session, ports.store, &req, route).await;
    let ahead = std::mem::take(&mut outcome.ahead);
    // A password the upstream (or the mirror) refused counts against the client.
    if caller.presents_password && resp.status() == StatusCode::UNAUTHORIZED {
        let mut failures = ports.isolate.failures.borrow_mut();
        failures.record("login", &client, LOGIN_FAILURES, now);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    add_limit_headers(resp.headers_mut(), shown);
    log.record(outcome);
    log.upstream_requests = counts.used.get();
    log.manifest_gets = counts.manifest_gets.get();
    Departure {
        ahead,
        ..depart(resp, log, vec![])
    }
}

/// The client's request as the flows see it: the `/token` form read (up to `FORM_MAX` whatever
/// the framing), any other body let go unread.
async fn incoming<F: Fetcher>(
    fetcher: &F,
    arrival: Arrival<F::Body>,
) -> Result<Incoming, (Method, OciError)> {
    let Arrival {
        method,
        url,
        headers,
        body,
        declared_length,
        ..
    } = arrival;
    let form = if url.path() == "/token" && method == Method::POST {
        match read_bounded(fetcher, body, declared_length, FORM_MAX).await {
            Some(form) => form,
            None => return Err((method, too_large(FORM_MAX))),
        }
    } else {
        fetcher.discard(body);
        Vec::new()
    };
    Ok(Incoming {
        method,
        url,
        headers,
        body: form,
    })
}

/// Who sent a request, as the gate counts and limits it.
pub(super) struct Caller<'a> {
    pub(super) ip: &'a str,
    /// The key failures and pulls are counted under (an IPv6 client by its /64).
    pub(super) client: &'a str,
    pub(super) now: u64,
    /// It shows a password (a login to check here or upstream): a refusal counts as a failure.
    pub(super) presents_password: bool,
}

/// A request the gate answered itself.
pub(super) struct Stop<B> {
    pub(super) response: http::Response<Reply<B>>,
    pub(super) route: Option<&'static str>,
    pub(super) user: Option<String>,
}

impl<B> Stop<B> {
    pub(super) fn error(method: &Method, e: &OciError, shown: LimitShown) -> Box<Stop<B>> {
        let mut response = oci_error(method, e);
        add_limit_headers(response.headers_mut(), shown);
        Box::new(Stop {
            response,
            route: None,
            user: None,
        })
    }
}

/// The static configuration, if valid and `ip` may use the mirror at all.
pub(super) fn admitted<'c>(
    base: Result<&'c Config, &ConfigError>,
    ip: &str,
) -> Result<&'c Config, OciError> {
    let base = base.map_err(|e| {
        OciError::new(
            ErrorCode::Unavailable,
            format!("mirror configuration is invalid: {e}"),
        )
    })?;
    gate::admit(base, ip)?;
    Ok(base)
}

/// A request body read up to `limit` bytes whatever its framing; `None` past it (or unreadable).
pub(super) async fn read_bounded<F: Fetcher>(
    fetcher: &F,
    body: F::Body,
    declared: Option<u64>,
    limit: usize,
) -> Option<Vec<u8>> {
    if declared.is_some_and(|n| n > limit as u64) {
        fetcher.drain(body, 0).await;
        return None;
    }
    fetcher.read_small(body, limit).await
}

fn too_large(limit: usize) -> OciError {
    OciError::new(
        ErrorCode::Unsupported,
        format!("request body larger than {limit} bytes"),
    )
    .with_status(413)
}

/// An answer before the route is known (a body past its bound).
fn early<B>(method: &Method, e: OciError, log: LogLine) -> Departure<B> {
    let mut log = log;
    log.error = Some(e.to_string());
    depart(oci_error(method, &e), log, vec![])
}

fn depart<B>(
    response: http::Response<Reply<B>>,
    mut log: LogLine,
    notes: Vec<serde_json::Value>,
) -> Departure<B> {
    log.status = response.status().as_u16();
    log.bytes = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if log.error.is_none() && !response.status().is_success() && log.cache.is_none() {
        log.error = error_message(&response);
    }
    Departure {
        response,
        log,
        notes,
        ahead: Vec::new(),
    }
}

/// The message of an OCI error body the mirror built itself.
fn error_message<B>(response: &http::Response<Reply<B>>) -> Option<String> {
    let Reply::Bytes(body) = response.body() else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = &v["errors"][0];
    Some(format!(
        "{}: {}",
        e["code"].as_str()?,
        e["message"].as_str()?
    ))
}

/// The standard and Docker Hub's pull-limit headers, and `Retry-After` when limited.
pub(super) fn add_limit_headers(h: &mut HeaderMap, shown: LimitShown) {
    let Some((limit, remaining, retry_after)) = shown else {
        return;
    };
    for (name, value) in ratelimit::headers(limit, remaining) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Some(r) = retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(r));
    }
}
