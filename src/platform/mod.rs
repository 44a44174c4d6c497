//! The only code that touches the Workers runtime: the fetch entry point, the upstream client,
//! configuration from the environment, and conversions between runtime and `http` types.

mod body_deadline;
mod convert;
mod env;
mod fetch;
mod ratelimit;
mod store;
mod verify;

use std::cell::RefCell;

use std::cell::Cell;

use wasm_bindgen::JsCast;
use worker::{event, Context, Env, Request, ScheduleContext, ScheduledEvent};

use crate::gate::{Failures, LoginDecision, ADMIN_FAILURES, LOGIN_FAILURES};
use crate::mirror::{handle, Session};
use crate::token::TokenCache;

thread_local! {
    /// Upstream tokens live as long as the isolate; wasm is single-threaded and no borrow is held
    /// across an await.
    static TOKENS: &'static RefCell<TokenCache> = Box::leak(Box::new(RefCell::new(TokenCache::default())));
    /// Failed logins and admin attempts per client, in this isolate.
    static FAILURES: RefCell<Failures> = RefCell::new(Failures::default());
}

/// Largest `/token` form read (containerd's OAuth2 password form is a few hundred bytes).
const FORM_MAX: usize = 16 * 1024;

/// A request body read into wasm up to `limit` bytes whatever its framing (chunked included);
/// `None` when it is longer (or unreadable): the caller answers 413.
async fn read_bounded(req: &Request, limit: usize) -> Option<Vec<u8>> {
    use crate::ports::Fetcher as _;
    if declared_length(req).is_some_and(|n| n > limit) {
        return None;
    }
    fetch::RuntimeFetcher
        .read_small(req.inner().body(), limit)
        .await
}

/// The mirror's challenge on a refused mirror login.
fn refuse_login(incoming: &crate::mirror::Incoming) -> worker::Result<web_sys::Response> {
    use crate::error::{ErrorCode, OciError};
    let origin = incoming.url.origin().ascii_serialization();
    let challenge = format!(
        "Bearer realm=\"{origin}/token\",service=\"{}\"",
        crate::mirror::SERVICE
    );
    let mut resp = crate::mirror::respond::oci_error(
        &incoming.method,
        &OciError::new(
            ErrorCode::Unauthorized,
            "this mirror requires its own login",
        ),
    );
    if let Ok(v) = http::HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    worker::console_log!(
        "{}",
        serde_json::json!({"msg": "request", "method": incoming.method.as_str(), "path": incoming.url.path(), "status": 401, "error": "mirror login required"})
    );
    convert::outgoing(resp)
}

/// With `MIRROR_CREDENTIALS`: `/token` issues mirror tokens for the mirror's own logins, and a
/// registry request must show one (or the login itself) unless the client is trusted. A mirror
/// login or token never goes further: the request goes on as the mirror's own identity (the
/// anonymous token means exactly that). `Some` is the answer when the request ends here.
fn mirror_login(
    mc: &crate::mirror_auth::MirrorCredentials,
    trusted: bool,
    incoming: &mut crate::mirror::Incoming,
    client: &str,
    now: u64,
) -> Option<worker::Result<web_sys::Response>> {
    match crate::gate::mirror_login(mc, trusted, incoming, now) {
        LoginDecision::Refuse => {
            if crate::gate::presents_password(incoming) {
                FAILURES.with(|f| f.borrow_mut().record("login", client, LOGIN_FAILURES, now));
            }
            Some(refuse_login(incoming))
        }
        LoginDecision::IssueToken(user) => {
            let token = mc.issue(&user, now);
            let resp = crate::mirror::token_endpoint::token_response(
                &token,
                crate::mirror_auth::TOKEN_LIFETIME,
            );
            worker::console_log!(
                "{}",
                serde_json::json!({"msg": "request", "method": incoming.method.as_str(), "path": "/token", "status": 200, "route": "token", "user": user})
            );
            Some(convert::outgoing(resp))
        }
        LoginDecision::Pass { strip } => {
            if strip {
                let anonymous = format!("Bearer {}", crate::mirror::ANONYMOUS_TOKEN);
                if let Ok(v) = http::HeaderValue::from_str(&anonymous) {
                    incoming.headers.insert(http::header::AUTHORIZATION, v);
                }
            }
            None
        }
    }
}

type LimitHeaders = Option<(crate::ratelimit::Limit, u64, Option<u64>)>;

fn add_limit_headers(h: &mut http::HeaderMap, limit: LimitHeaders) {
    let Some((limit, remaining, retry_after)) = limit else {
        return;
    };
    for (name, value) in crate::ratelimit::headers(limit, remaining) {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Some(r) = retry_after {
        h.insert(http::header::RETRY_AFTER, http::HeaderValue::from(r));
    }
}

/// An answer given before the request reaches the mirror's flow (access denied, rate limited).
fn answer_early(
    incoming: &crate::mirror::Incoming,
    e: crate::error::OciError,
    limit: LimitHeaders,
) -> worker::Result<web_sys::Response> {
    let mut resp = crate::mirror::respond::oci_error(&incoming.method, &e);
    add_limit_headers(resp.headers_mut(), limit);
    worker::console_log!(
        "{}",
        serde_json::json!({"msg": "request", "method": incoming.method.as_str(), "path": incoming.url.path(), "status": e.status, "error": e.to_string(), "cache": "bypass"})
    );
    convert::outgoing(resp)
}

/// Cloudflare's ray id when there is one (it ties the line to Cloudflare's own logs), else random.
fn request_id(req: &Request) -> String {
    match req.headers().get("cf-ray") {
        Ok(Some(ray))
            if !ray.is_empty()
                && ray.len() <= 64
                && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            ray
        }
        _ => format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64),
    }
}

/// `/_admin/…`: on only when the `ADMIN_TOKEN` secret is set (and `CONFIG` is bound to keep
/// changes). The allow-list applies; the token is checked, and failed attempts limited per client,
/// before any body is read into wasm; a body is read only up to `admin::MAX_BODY`.
async fn admin_request(
    req: Request,
    env: &Env,
    ip: &str,
    client: &str,
    now: u64,
) -> worker::Result<web_sys::Response> {
    let method =
        http::Method::from_bytes(req.inner().method().as_bytes()).unwrap_or(http::Method::GET);
    let path = req.path();
    // A refused request's body is never read into wasm: a small one is dropped on the JS side
    // (so the client gets the answer, not a reset), a large one is cut off.
    let refuse = |resp: http::Response<Vec<u8>>| async {
        fetch::drain(req.inner().body(), crate::admin::MAX_BODY).await;
        resp
    };
    let answer = |resp: http::Response<Vec<u8>>| {
        worker::console_log!(
            "{}",
            serde_json::json!({"msg": "request", "method": method.as_str(), "path": path, "route": "admin", "status": resp.status().as_u16()})
        );
        let (parts, body) = resp.into_parts();
        convert::outgoing(http::Response::from_parts(
            parts,
            crate::mirror::Reply::Bytes(body),
        ))
    };
    let base = match env::config(env) {
        Ok(c) => c,
        Err(e) => {
            return convert::outgoing(crate::mirror::respond::oci_error(
                &http::Method::GET,
                &crate::error::OciError::new(
                    crate::error::ErrorCode::Unavailable,
                    format!("mirror configuration is invalid: {e}"),
                ),
            ))
        }
    };
    if let Err(e) = crate::gate::admit(&base, ip) {
        let mut resp = http::Response::new(e.body());
        *resp.status_mut() = http::StatusCode::FORBIDDEN;
        return answer(refuse(resp).await);
    }
    let token = env::var(env, "ADMIN_TOKEN").filter(|t| !t.is_empty());
    let name = env::var(env, "ADMIN_TOKEN_NAME").unwrap_or_else(|| "admin".into());
    let (Some(token), Some(store)) = (&token, env::KvConfig::bound(env)) else {
        // No token or no store: the admin API does not exist (and no body is read).
        let (resp, _) =
            crate::admin::handle(&base, &NoStore, None, &method, &path, None, &[]).await;
        return answer(refuse(resp).await);
    };
    let admin = crate::admin::Admin { token, name: &name };
    if let Some(retry) = FAILURES.with(|f| f.borrow().blocked("admin", client, ADMIN_FAILURES, now))
    {
        return answer(refuse(crate::admin::too_many_attempts(retry)).await);
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    if !crate::admin::authorized(&admin, authorization.as_deref()) {
        FAILURES.with(|f| f.borrow_mut().record("admin", client, ADMIN_FAILURES, now));
        return answer(refuse(crate::admin::unauthorized()).await);
    }
    let body = if method == http::Method::PUT {
        match read_bounded(&req, crate::admin::MAX_BODY).await {
            Some(b) => b,
            None => return answer(crate::admin::too_large()),
        }
    } else {
        Vec::new()
    };
    let (resp, change) = crate::admin::handle(
        &base,
        &store,
        Some(&admin),
        &method,
        &path,
        authorization.as_deref(),
        &body,
    )
    .await;
    if let Some(line) = change {
        worker::console_log!("{line}");
    }
    answer(resp)
}

/// A request body's declared length, if it has a readable one.
fn declared_length(req: &Request) -> Option<usize> {
    req.headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
}

/// A store for an admin API that is off: never read.
struct NoStore;

impl crate::admin::ConfigStore for NoStore {
    async fn overrides(&self) -> Result<Option<String>, String> {
        Ok(None)
    }
    async fn put_overrides(&self, _: &str) -> Result<(), String> {
        Err("no configuration store".into())
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    console_error_panic_hook::set_once();
    let started = worker::Date::now().as_millis();
    let now = started / 1000;
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_default();
    // Failures are counted per client as the rate limit counts pulls (an IPv6 client by its /64).
    let client = crate::ratelimit::client_key(&ip).unwrap_or_else(|| ip.clone());
    if crate::admin::is_admin_path(&req.path()) {
        return admin_request(req, &env, &ip, &client, now).await;
    }
    let config = env::effective(&env, started).await;
    // Only the token endpoint's form is read, up to FORM_MAX whatever the framing.
    let body = if req.path() == "/token" && req.inner().method() == "POST" {
        match read_bounded(&req, FORM_MAX).await {
            Some(b) => b,
            None => {
                let e = crate::error::OciError::new(
                    crate::error::ErrorCode::Unsupported,
                    format!("request body larger than {FORM_MAX} bytes"),
                )
                .with_status(413);
                return convert::outgoing(crate::mirror::respond::oci_error(
                    &http::Method::POST,
                    &e,
                ));
            }
        }
    } else {
        Vec::new()
    };
    let mut incoming = match convert::incoming(&req, body) {
        Ok(incoming) => incoming,
        Err(e) => {
            return convert::outgoing(crate::mirror::respond::oci_error(
                &req.inner().method().parse().unwrap_or_default(),
                &e,
            ))
        }
    };
    // Who may come in, and how many pulls they have left: decided before any upstream is asked.
    let presents_password = crate::gate::presents_password(&incoming);
    let mut limit_headers = None;
    if let (Ok(cfg), true) = (&config, incoming.url.path() != "/healthz") {
        if let Err(e) = crate::gate::admit(cfg, &ip) {
            return answer_early(&incoming, e, None);
        }
        let blocked = presents_password
            .then(|| FAILURES.with(|f| f.borrow().blocked("login", &client, LOGIN_FAILURES, now)))
            .flatten();
        if let Some(retry_after) = blocked {
            let e = crate::error::OciError::new(
                crate::error::ErrorCode::TooManyRequests,
                format!("too many failed logins; retry in {retry_after} s"),
            );
            let mut resp = crate::mirror::respond::oci_error(&incoming.method, &e);
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after),
            );
            return convert::outgoing(resp);
        }
        let mirror_creds = env::var(&env, "MIRROR_CREDENTIALS")
            .and_then(|s| crate::mirror_auth::MirrorCredentials::parse(&s));
        if let Some(mc) = mirror_creds {
            let trusted = crate::ratelimit::any_contains(&cfg.trusted, &ip);
            if let Some(resp) = mirror_login(&mc, trusted, &mut incoming, &client, now) {
                return resp;
            }
        }
        if incoming.url.path().starts_with("/v2/") {
            let counts = incoming.method == http::Method::GET
                && matches!(
                    crate::route::parse(&incoming.method, incoming.url.path()),
                    Ok(crate::route::Route::Registry {
                        resource: crate::route::Resource::Manifest(_),
                        ..
                    })
                );
            match ratelimit::check(&env, &ctx, cfg, &ip, counts, now).await {
                ratelimit::Verdict::Deny { limit, retry_after } => {
                    let e = crate::error::OciError::new(
                        crate::error::ErrorCode::TooManyRequests,
                        format!(
                            "pull rate limit of {} per {} s reached; retry in {retry_after} s",
                            limit.count, limit.window
                        ),
                    );
                    return answer_early(&incoming, e, Some((limit, 0, Some(retry_after))));
                }
                ratelimit::Verdict::Pass(l) => {
                    limit_headers = l.map(|(limit, remaining)| (limit, remaining, None))
                }
            }
        }
    }
    let tokens = TOKENS.with(|t| *t);
    let timeout_ms = config
        .as_ref()
        .map_or(crate::config::DEFAULT_TIMEOUT_MS, |c| c.upstream_timeout_ms);
    let fetcher = fetch::RuntimeFetcher;
    let secret = |name: &str| env::var(&env, name);
    let session = Session {
        fetcher: &fetcher,
        tokens,
        now,
        timeout_ms,
        secret: &secret,
    };
    let store = store::RuntimeStore {
        ctx: store::Deferred::Request(&ctx),
        bucket: env.bucket("BLOBS").ok(),
    };
    let (mut resp, outcome) = handle(
        config.as_ref().map(|c| c.as_ref()),
        &session,
        &store,
        &incoming,
    )
    .await;
    // A password the upstream (or the mirror) refused: counted against the client.
    if presents_password && resp.status() == http::StatusCode::UNAUTHORIZED {
        FAILURES.with(|f| f.borrow_mut().record("login", &client, LOGIN_FAILURES, now));
    }
    let id = request_id(&req);
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    add_limit_headers(resp.headers_mut(), limit_headers);
    if incoming.url.path() == "/healthz" {
        // The isolate's wasm memory (it only grows): for operators watching for leaks.
        let memory = wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>();
        let size = js_sys::ArrayBuffer::from(memory.buffer()).byte_length();
        resp.headers_mut()
            .insert("edgemirror-wasm-memory", http::HeaderValue::from(size));
    }
    let bytes = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let line = serde_json::json!({
        "msg": "request",
        "id": id,
        "bytes": bytes,
        "method": incoming.method.as_str(),
        "path": incoming.url.path(),
        "route": outcome.route,
        "upstream": outcome.upstream,
        "by": outcome.by,
        "status": resp.status().as_u16(),
        "cache": outcome.cache,
        "cache_status": outcome.cache_status,
        "ms": worker::Date::now().as_millis().saturating_sub(started),
        "error": outcome.error,
    });
    worker::console_log!("{line}");
    convert::outgoing(resp)
}

/// The cron trigger: warm the configured images (see `prewarm`), one log line per image.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = match env::effective(&env, worker::Date::now().as_millis()).await {
        Ok(c) => c,
        Err(_) => return, // already logged as an invalid configuration
    };
    let bucket = env.bucket("BLOBS").ok();
    let blobs = bucket.is_some();
    let store = store::RuntimeStore {
        ctx: store::Deferred::Schedule(&ctx),
        bucket,
    };
    let fetcher = fetch::RuntimeFetcher;
    let budgeted = crate::prewarm::Budgeted {
        inner: &fetcher,
        limit: config.prewarm_budget,
        used: Cell::new(0),
    };
    let tokens = TOKENS.with(|t| *t);
    let now = worker::Date::now().as_millis() / 1000;
    let secret = |name: &str| env::var(&env, name);
    let session = Session {
        fetcher: &budgeted,
        tokens,
        now,
        timeout_ms: config.upstream_timeout_ms,
        secret: &secret,
    };
    for r in crate::prewarm::run(&config, &session, &store, blobs).await {
        worker::console_log!(
            "{}",
            serde_json::json!({
                "msg": "prewarm", "cron": event.cron(), "image": r.image, "result": r.result,
                "manifests": r.manifests, "blobs_fetched": r.blobs_fetched, "blobs_held": r.blobs_held, "error": r.error,
            })
        );
    }
    worker::console_log!(
        "{}",
        serde_json::json!({"msg": "prewarm done", "upstream_requests": budgeted.used.get(), "budget": config.prewarm_budget})
    );
}
