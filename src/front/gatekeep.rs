//! The gate: who may come in (the allow-list, the limit on failed logins, the mirror's own login)
//! and how many pulls they have left, decided before any upstream is asked.

use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{HeaderValue, Method};

use super::{Caller, LimitShown, Ports, Stop};
use crate::config::Config;
use crate::error::{ErrorCode, OciError};
use crate::gate::{self, LoginDecision, LOGIN_FAILURES};
use crate::mirror::{self, Incoming, ANONYMOUS_TOKEN};
use crate::mirror_auth::{MirrorCredentials, TOKEN_LIFETIME};
use crate::ports::{Fetcher, PullCounts};
use crate::ratelimit::{self, Decision, Limit};
use crate::route::{Resource, Route};

/// Who may come in and how many pulls they have left, decided before any upstream is asked:
/// the allow-list, the limit on failed logins, the mirror's own login, the pull limit.
pub(super) async fn gatekeep<F, S, K, C, D>(
    ports: &Ports<'_, F, S, K, C, D>,
    cfg: &Config,
    req: &mut Incoming,
    route: &Result<Route, OciError>,
    caller: &Caller<'_>,
) -> Result<LimitShown, Box<Stop<F::Body>>>
where
    F: Fetcher,
    K: PullCounts,
{
    let (ip, client, now) = (caller.ip, caller.client, caller.now);
    gate::admit(cfg, ip).map_err(|e| Stop::error(&req.method, &e, None))?;
    if caller.presents_password {
        let blocked = ports
            .isolate
            .failures
            .borrow()
            .blocked("login", client, LOGIN_FAILURES, now);
        if let Some(retry_after) = blocked {
            let e = OciError::new(
                ErrorCode::TooManyRequests,
                format!("too many failed logins; retry in {retry_after} s"),
            );
            let mut stop = Stop::error(&req.method, &e, None);
            stop.response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            return Err(stop);
        }
    }
    let mirror_creds =
        (ports.secret)("MIRROR_CREDENTIALS").and_then(|s| MirrorCredentials::parse(&s));
    if let Some(mc) = mirror_creds {
        let trusted = ratelimit::any_contains(&cfg.trusted, ip);
        mirror_login(ports, &mc, trusted, req, caller)?;
    }
    if !req.url.path().starts_with("/v2/") {
        return Ok(None);
    }
    // What Docker Hub counts as a pull: a manifest GET.
    let counts = req.method == Method::GET
        && matches!(
            route,
            Ok(Route::Registry {
                resource: Resource::Manifest(_),
                ..
            })
        );
    match pull_limit(ports, cfg, ip, counts, now).await {
        PullVerdict::Pass(shown) => Ok(shown.map(|(limit, remaining)| (limit, remaining, None))),
        PullVerdict::Deny { limit, retry_after } => {
            let e = OciError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "pull rate limit of {} per {} s reached; retry in {retry_after} s",
                    limit.count, limit.window
                ),
            );
            Err(Stop::error(
                &req.method,
                &e,
                Some((limit, 0, Some(retry_after))),
            ))
        }
    }
}

/// With `MIRROR_CREDENTIALS`: `/token` issues mirror tokens for the mirror's own logins, and a
/// registry request must show one (or the login itself) unless the client is trusted. A mirror
/// login or token never goes further: the request goes on as the mirror's own identity (the
/// anonymous token means exactly that).
fn mirror_login<F, S, K, C, D>(
    ports: &Ports<'_, F, S, K, C, D>,
    mc: &MirrorCredentials,
    trusted: bool,
    req: &mut Incoming,
    caller: &Caller<'_>,
) -> Result<(), Box<Stop<F::Body>>>
where
    F: Fetcher,
{
    let now = caller.now;
    match gate::mirror_login(mc, trusted, req, now) {
        LoginDecision::Refuse => {
            if caller.presents_password {
                let mut failures = ports.isolate.failures.borrow_mut();
                failures.record("login", caller.client, LOGIN_FAILURES, now);
            }
            let e = OciError::new(
                ErrorCode::Unauthorized,
                "this mirror requires its own login",
            );
            let mut stop = Stop::error(&req.method, &e, None);
            let challenge = format!(
                "Bearer realm=\"{}/token\",service=\"{}\"",
                req.url.origin().ascii_serialization(),
                mirror::SERVICE
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                stop.response
                    .headers_mut()
                    .insert(http::header::WWW_AUTHENTICATE, v);
            }
            Err(stop)
        }
        LoginDecision::IssueToken(user) => {
            let token = mc.issue(&user, now);
            Err(Box::new(Stop {
                response: mirror::token_endpoint::token_response(&token, TOKEN_LIFETIME),
                route: Some("token"),
                user: Some(user),
            }))
        }
        LoginDecision::Pass { strip } => {
            if strip {
                let anonymous = format!("Bearer {ANONYMOUS_TOKEN}");
                if let Ok(v) = HeaderValue::from_str(&anonymous) {
                    req.headers.insert(AUTHORIZATION, v);
                }
            }
            Ok(())
        }
    }
}

/// The pull limit's verdict.
pub enum PullVerdict {
    /// Go on; with the limit and remaining pulls when limits apply to this client.
    Pass(Option<(Limit, u64)>),
    Deny {
        limit: Limit,
        retry_after: u64,
    },
}

/// Pull counting per client: only manifest GETs count (one store read and one write each). The
/// count is decided and taken in one synchronous step on this isolate's `Counters` (exact under
/// concurrency here); the shared store carries it to other isolates as it propagates. Other
/// requests show the remaining count from the isolate's counters, or one read when it has none
/// (kept then: a client's blobs and pings cost one store read per isolate and window, not one each).
/// The store failing means no limit (fail-open).
async fn pull_limit<F, S, K: PullCounts, C, D>(
    ports: &Ports<'_, F, S, K, C, D>,
    cfg: &Config,
    ip: &str,
    counts: bool,
    now: u64,
) -> PullVerdict {
    let (Some(limit), Some(pulls)) = (cfg.rate_limit, ports.pulls) else {
        return PullVerdict::Pass(None);
    };
    let client = ratelimit::client_key(ip).filter(|_| !ratelimit::any_contains(&cfg.trusted, ip));
    let Some(client) = client else {
        return PullVerdict::Pass(None);
    };
    let key = ratelimit::counter_key(&client, limit, now);
    let counters = &ports.isolate.counters;
    if !counts {
        if let Some(n) = counters.borrow().local(&key) {
            return PullVerdict::Pass(Some((limit, limit.count.saturating_sub(n))));
        }
    }
    let Ok(stored) = pulls.count(&key).await else {
        return PullVerdict::Pass(None);
    };
    if !counts {
        let seen = counters.borrow_mut().remember(&key, stored, limit, now);
        return PullVerdict::Pass(Some((limit, limit.count.saturating_sub(seen))));
    }
    // No await between reading this isolate's count and taking the pull: concurrent requests
    // each see the one before them.
    let (decision, count) = {
        let mut c = counters.borrow_mut();
        let d = c.take(&key, stored, limit, now);
        (d, c.local(&key).unwrap_or(0))
    };
    match decision {
        Decision::Deny { retry_after } => PullVerdict::Deny { limit, retry_after },
        Decision::Allow { remaining } => {
            // The window's start is in the key; the store keeps a value at least 60 s.
            pulls.record(&key, count, ratelimit::window_left(limit, now) + 60);
            PullVerdict::Pass(Some((limit, remaining)))
        }
    }
}
