//! The admin API, on only when an admin token is set: `GET /_admin/upstreams`, and
//! `GET/PUT/DELETE /_admin/upstreams/NAME`, changing the stored overrides of the upstream table
//! (see `Config::with_overrides`). `Authorization: Bearer <token>` is compared in constant time,
//! and checked (`authorize`) before the platform reads any request body. Stored upstreams may name
//! only the secrets in `UPSTREAM_SECRETS`. Everything it answers is an OCI-style JSON error or
//! JSON; nothing it shows holds a secret.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use subtle::ConstantTimeEq;

use crate::config::{Config, Upstream};
use crate::error::{ErrorCode, OciError};

pub const PREFIX: &str = "/_admin";
/// Largest request body the admin API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Where the overrides live (a KV key in the worker).
#[allow(async_fn_in_trait)]
pub trait ConfigStore {
    async fn overrides(&self) -> Result<Option<String>, String>;
    async fn put_overrides(&self, json: &str) -> Result<(), String>;
}

/// The overrides kept in memory: the store of native tests (and of anything without KV).
#[derive(Debug, Default)]
pub struct MemoryStore(pub std::cell::RefCell<Option<String>>);

impl ConfigStore for MemoryStore {
    async fn overrides(&self) -> Result<Option<String>, String> {
        Ok(self.0.borrow().clone())
    }
    async fn put_overrides(&self, json: &str) -> Result<(), String> {
        *self.0.borrow_mut() = Some(json.to_string());
        Ok(())
    }
}

/// The configured admin token and the name it goes by in logs.
pub struct Admin<'a> {
    pub token: &'a str,
    pub name: &'a str,
}

pub fn is_admin_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_admin/")
}

/// Whether `authorization` carries the admin token (compared in constant time).
pub fn authorized(admin: &Admin<'_>, authorization: Option<&str>) -> bool {
    let presented = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    let equal = bool::from(presented.as_bytes().ct_eq(admin.token.as_bytes()));
    equal && !admin.token.is_empty()
}

/// The answer without the admin token.
pub fn unauthorized() -> http::Response<Vec<u8>> {
    error(OciError::new(
        ErrorCode::Unauthorized,
        "admin token required",
    ))
}

/// The answer for a client over its limit of failed admin attempts.
pub fn too_many_attempts(retry_after: u64) -> http::Response<Vec<u8>> {
    let mut r = error(OciError::new(
        ErrorCode::TooManyRequests,
        format!("too many failed admin attempts; retry in {retry_after} s"),
    ));
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(retry_after),
    );
    r
}

/// The answer for a body past `MAX_BODY`.
pub fn too_large() -> http::Response<Vec<u8>> {
    error(
        OciError::new(
            ErrorCode::Unsupported,
            format!("request body larger than {MAX_BODY} bytes"),
        )
        .with_status(413),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(serde_json::to_vec(value).unwrap_or_default());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// An OCI error as the admin API answers it.
pub fn error(e: OciError) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(e.body());
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if e.status == 401 {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"edgemirror-admin\""),
        );
    }
    r
}

/// An upstream as the API shows it: secrets by name only.
fn describe(u: &Upstream, source: &str) -> serde_json::Value {
    serde_json::json!({
        "name": u.name, "registry": u.registry, "hosts": u.hosts, "prefixes": u.prefixes, "ns": u.ns,
        "library": u.library, "tag_ttl": u.ttls.tag, "manifest_ttl": u.ttls.manifest, "blob_ttl": u.ttls.blob,
        "stale_if_error": u.ttls.stale_if_error,
        "headers": u.headers.iter().map(|(h, secret)| (h.clone(), secret.clone())).collect::<BTreeMap<_, _>>(),
        "source": source,
    })
}

/// The answer while the admin API is off: it does not exist.
pub fn no_such_endpoint() -> http::Response<Vec<u8>> {
    error(OciError::new(ErrorCode::NameUnknown, "no such endpoint").with_status(404))
}

/// An admin answer, and for a change the line to log.
type Answer = (http::Response<Vec<u8>>, Option<serde_json::Value>);

/// Handles one admin request. Returns the response and, for a change, the line to log.
pub async fn handle<C: ConfigStore>(
    base: &Config,
    store: &C,
    admin: Option<&Admin<'_>>,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    let Some(admin) = admin else {
        return (no_such_endpoint(), None);
    };
    if !authorized(admin, authorization) {
        return (unauthorized(), None);
    }
    // `/_admin/upstreams` or `/_admin/upstreams/NAME`.
    let name = match path.strip_prefix("/_admin/upstreams") {
        Some("") | Some("/") => None,
        Some(rest) if rest.starts_with('/') && rest.len() > 1 && !rest[1..].contains('/') => {
            Some(&rest[1..])
        }
        _ => return (no_such_endpoint(), None),
    };
    let stored = match store.overrides().await {
        Ok(s) => s.unwrap_or_else(|| "{}".to_string()),
        Err(e) => return (store_error(e), None),
    };
    let table = Table::new(base, &stored);
    match (method, name) {
        (&Method::GET, None) => (table.list(), None),
        (&Method::GET, Some(n)) => (table.show(n), None),
        (&Method::PUT, Some(n)) => match table.put(n, body) {
            Ok(next) => save(store, &next, admin, "put", n).await,
            Err(e) => (error(e), None),
        },
        (&Method::DELETE, Some(n)) => match table.delete(n) {
            Ok(next) => save(store, &next, admin, "delete", n).await,
            Err(e) => (error(e), None),
        },
        _ => (
            error(OciError::new(
                ErrorCode::Unsupported,
                format!("{method} {path} is not an admin operation"),
            )),
            None,
        ),
    }
}

fn store_error(e: String) -> http::Response<Vec<u8>> {
    error(OciError::new(
        ErrorCode::Unavailable,
        format!("configuration store: {e}"),
    ))
}

fn unknown(name: &str) -> OciError {
    OciError::new(ErrorCode::NameUnknown, format!("no upstream {name:?}"))
}

/// The static table, the stored overrides, and the two merged.
struct Table<'a> {
    base: &'a Config,
    overrides: BTreeMap<String, serde_json::Value>,
    merged: Config,
}

impl<'a> Table<'a> {
    fn new(base: &'a Config, stored: &str) -> Table<'a> {
        Table {
            base,
            overrides: serde_json::from_str(stored).unwrap_or_default(),
            merged: base.with_overrides(stored).0,
        }
    }

    fn source(&self, name: &str) -> &'static str {
        if self.overrides.contains_key(name) {
            "stored"
        } else {
            "static"
        }
    }

    fn list(&self) -> http::Response<Vec<u8>> {
        let list: Vec<_> = self
            .merged
            .upstreams
            .iter()
            .map(|u| describe(u, self.source(&u.name)))
            .collect();
        json(StatusCode::OK, &serde_json::json!({ "upstreams": list }))
    }

    fn show(&self, name: &str) -> http::Response<Vec<u8>> {
        match self.merged.upstreams.iter().find(|u| u.name == name) {
            Some(u) => json(StatusCode::OK, &describe(u, self.source(name))),
            None => error(unknown(name)),
        }
    }

    /// The overrides with `name` set to `body`, checked by the same rules as the static table:
    /// rejected now, not skipped later.
    fn put(mut self, name: &str, body: &[u8]) -> Result<String, OciError> {
        let entry = match serde_json::from_slice(body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return Err(OciError::bad_request(
                    "the body must be a JSON object describing the upstream",
                ))
            }
        };
        self.overrides.insert(name.to_string(), entry);
        let next = serde_json::to_string(&self.overrides).unwrap_or_default();
        match self.base.with_overrides(&next).1.first() {
            Some(e) => Err(OciError::bad_request(format!("{}: {}", e.field, e.problem))),
            None => Ok(next),
        }
    }

    /// The overrides without `name`: a static upstream is hidden by a null override, a stored one
    /// is simply removed.
    fn delete(mut self, name: &str) -> Result<String, OciError> {
        if !self.merged.upstreams.iter().any(|u| u.name == name) {
            return Err(unknown(name));
        }
        if self.base.upstreams.iter().any(|u| u.name == name) {
            self.overrides
                .insert(name.to_string(), serde_json::Value::Null);
        } else {
            self.overrides.remove(name);
        }
        Ok(serde_json::to_string(&self.overrides).unwrap_or_default())
    }
}

async fn save<C: ConfigStore>(
    store: &C,
    next: &str,
    admin: &Admin<'_>,
    op: &str,
    name: &str,
) -> Answer {
    if let Err(e) = store.put_overrides(next).await {
        return (store_error(e), None);
    }
    let registry = serde_json::from_str::<serde_json::Value>(next)
        .ok()
        .and_then(|v| v.get(name).and_then(|u| u.get("registry")).cloned());
    let log = serde_json::json!({"msg": "admin change", "who": admin.name, "op": op, "upstream": name, "registry": registry});
    (
        json(
            StatusCode::OK,
            &serde_json::json!({"upstream": name, "op": op, "stored": true}),
        ),
        Some(log),
    )
}

#[cfg(test)]
mod tests;
