//! The admin API's door: the allow-list, the admin token and the limit on failed attempts, all
//! before any body is read into wasm; then the body, within its bound, and `admin::handle`.

use http::header::AUTHORIZATION;
use http::Method;

use super::{admitted, read_bounded, Arrival, Ports};
use crate::admin::{self, Admin, ConfigStore};
use crate::config::{Config, ConfigError};
use crate::gate::ADMIN_FAILURES;
use crate::ports::Fetcher;
use crate::stats::{page, report, StatsSource};

/// `/_admin/…`: on only when `ADMIN_TOKEN` is set and the config store is bound. The allow-list
/// applies; the token is checked, and failed attempts limited per client, before any body is read
/// into wasm; a body is read only up to `admin::MAX_BODY` whatever its framing.
pub(super) async fn admin_door<F, S, K, C, D>(
    ports: &Ports<'_, F, S, K, C, D>,
    base: Result<&Config, &ConfigError>,
    arrival: Arrival<F::Body>,
    client: &str,
    now: u64,
) -> (http::Response<Vec<u8>>, Option<serde_json::Value>)
where
    F: Fetcher,
    C: ConfigStore,
    D: StatsSource,
{
    let Arrival {
        method,
        url,
        headers,
        body,
        declared_length,
        ip,
        ..
    } = arrival;
    let path = url.path();
    let refuse = |resp: http::Response<Vec<u8>>, body: F::Body| async {
        // Never into wasm: a small body is dropped by the runtime (so the client reads the
        // answer, not a reset), a large one is cut off.
        ports.fetcher.drain(body, admin::MAX_BODY).await;
        (resp, None)
    };
    let base = match admitted(base, &ip) {
        Ok(c) => c,
        Err(e) => return refuse(admin::error(e), body).await,
    };
    let token = (ports.secret)("ADMIN_TOKEN").filter(|t| !t.is_empty());
    let name = (ports.secret)("ADMIN_TOKEN_NAME").unwrap_or_else(|| "admin".into());
    let (Some(token), Some(store)) = (token, ports.config_store) else {
        return refuse(admin::no_such_endpoint(), body).await;
    };
    let admin = Admin {
        token: &token,
        name: &name,
    };
    let failures = &ports.isolate.failures;
    // The borrow ends here, before any await.
    let blocked = failures
        .borrow()
        .blocked("admin", client, ADMIN_FAILURES, now);
    if let Some(retry) = blocked {
        return refuse(admin::too_many_attempts(retry), body).await;
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !admin::authorized(&admin, authorization) {
        failures
            .borrow_mut()
            .record("admin", client, ADMIN_FAILURES, now);
        return refuse(admin::unauthorized(), body).await;
    }
    if let Some(view) = stats_view(path) {
        ports.fetcher.discard(body);
        return (stats(ports.stats, &method, view, now).await, None);
    }
    let bytes = if method == Method::PUT {
        match read_bounded(ports.fetcher, body, declared_length, admin::MAX_BODY).await {
            Some(b) => b,
            None => return (admin::too_large(), None),
        }
    } else {
        ports.fetcher.discard(body);
        Vec::new()
    };
    admin::handle(
        base,
        store,
        Some(&admin),
        &method,
        path,
        authorization,
        &bytes,
    )
    .await
}

/// `/_admin/stats` (JSON) or `/_admin/stats/page` (HTML): which one, if either.
fn stats_view(path: &str) -> Option<bool> {
    match path {
        "/_admin/stats" => Some(false),
        "/_admin/stats/page" => Some(true),
        _ => None,
    }
}

/// The stats as JSON or as the page: "off" (with how to turn them on) without the binding, 503
/// when the database could not be read.
async fn stats<D: StatsSource>(
    source: Option<&D>,
    method: &Method,
    page: bool,
    now: u64,
) -> http::Response<Vec<u8>> {
    if method != Method::GET && method != Method::HEAD {
        return admin::error(
            crate::error::OciError::new(
                crate::error::ErrorCode::Unsupported,
                "the stats are read with GET",
            )
            .with_status(405),
        );
    }
    let (status, body) = match source {
        None if page => (200, page::render_off().into_bytes()),
        None => (200, report::off_json().into_bytes()),
        Some(s) => match s.report(now).await {
            Ok(r) if page => (200, page::render(&r).into_bytes()),
            Ok(r) => (200, r.to_json().into_bytes()),
            Err(e) => {
                return admin::error(crate::error::OciError::new(
                    crate::error::ErrorCode::Unavailable,
                    format!(
                        "the stats database could not be read: {}",
                        crate::error::clip(&e)
                    ),
                ))
            }
        },
    };
    let kind = if page {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    let mut r = http::Response::new(if method == Method::HEAD {
        Vec::new()
    } else {
        body
    });
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}
