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
mod tests {
    use super::*;
    use crate::config::Vars;
    use futures::executor::block_on;

    type Mem = MemoryStore;

    const ADMIN: Admin = Admin {
        token: "s3cret-admin-token",
        name: "ops",
    };

    fn base() -> Config {
        Config::from_vars(&Vars {
            upstreams: Some(r#"{"docker.io": {"registry": "https://hub", "prefixes": ["docker.io"], "library": true}}"#),
            upstream_secrets: Some("HUB_CREDS, ACCESS_ID"),
            ..Default::default()
        })
        .unwrap()
    }

    fn call(
        store: &Mem,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value, Option<serde_json::Value>) {
        let (r, log) = block_on(handle(
            &base(),
            store,
            Some(&ADMIN),
            &method,
            path,
            auth,
            body.as_bytes(),
        ));
        (
            r.status().as_u16(),
            serde_json::from_slice(r.body()).unwrap(),
            log,
        )
    }

    const AUTH: Option<&str> = Some("Bearer s3cret-admin-token");

    #[test]
    fn add_change_and_remove_an_upstream() {
        let s = Mem::default();
        let (st, _, log) = call(
            &s,
            Method::PUT,
            "/_admin/upstreams/extra",
            AUTH,
            r#"{"registry": "http://127.0.0.1:15000", "prefixes": ["extra"]}"#,
        );
        assert_eq!(st, 200);
        let log = log.unwrap();
        assert_eq!(
            (log["who"].as_str(), log["op"].as_str()),
            (Some("ops"), Some("put"))
        );
        assert!(
            !log.to_string().contains("s3cret"),
            "the token's name, never its value"
        );
        let (st, list, _) = call(&s, Method::GET, "/_admin/upstreams", AUTH, "");
        assert_eq!(st, 200);
        assert_eq!(list["upstreams"].as_array().unwrap().len(), 2);
        let (_, one, _) = call(&s, Method::GET, "/_admin/upstreams/extra", AUTH, "");
        assert_eq!(
            (one["registry"].as_str(), one["source"].as_str()),
            (Some("http://127.0.0.1:15000"), Some("stored"))
        );
        call(
            &s,
            Method::PUT,
            "/_admin/upstreams/extra",
            AUTH,
            r#"{"registry": "http://127.0.0.1:15100", "prefixes": ["extra"], "tag_ttl": "1h"}"#,
        );
        let (_, one, _) = call(&s, Method::GET, "/_admin/upstreams/extra", AUTH, "");
        assert_eq!(
            (one["registry"].as_str(), one["tag_ttl"].as_u64()),
            (Some("http://127.0.0.1:15100"), Some(3600))
        );
        assert_eq!(
            call(&s, Method::DELETE, "/_admin/upstreams/extra", AUTH, "").0,
            200
        );
        assert_eq!(
            call(&s, Method::GET, "/_admin/upstreams/extra", AUTH, "").0,
            404
        );
        // A static upstream is hidden by a stored null.
        assert_eq!(
            call(&s, Method::DELETE, "/_admin/upstreams/docker.io", AUTH, "").0,
            200
        );
        let (merged, _) = base().with_overrides(s.0.borrow().as_deref().unwrap());
        assert!(merged.upstreams.is_empty());
    }

    #[test]
    fn invalid_entries_are_rejected_when_written_and_nothing_changes() {
        let s = Mem::default();
        for body in [
            r#"{"registry": "ftp://x"}"#,
            r#"{"registry": "https://x", "prefixes": ["docker.io"]}"#,
            "[1]",
            "not json",
            r#"{"registry": "https://x", "headers": {"X-A": "a value"}}"#,
        ] {
            let (st, e, log) = call(&s, Method::PUT, "/_admin/upstreams/bad", AUTH, body);
            assert_eq!(st, 400, "{body}");
            assert!(e["errors"][0]["message"].is_string());
            assert!(log.is_none());
        }
        assert_eq!(*s.0.borrow(), None);
    }

    /// Whoever holds the admin token must not be able to send the mirror's own secrets, or secrets
    /// not meant for upstreams, to a registry of their choosing.
    #[test]
    fn stored_upstreams_name_only_designated_secrets() {
        let s = Mem::default();
        for (body, secret) in [
            (
                r#"{"registry": "https://evil.example", "credentials": "ADMIN_TOKEN"}"#,
                "ADMIN_TOKEN",
            ),
            (
                r#"{"registry": "https://evil.example", "credentials": "MIRROR_CREDENTIALS"}"#,
                "MIRROR_CREDENTIALS",
            ),
            (
                r#"{"registry": "https://evil.example", "headers": {"X-Steal": "ADMIN_TOKEN"}}"#,
                "ADMIN_TOKEN",
            ),
            (
                r#"{"registry": "https://evil.example", "credentials": "OTHER_SECRET"}"#,
                "OTHER_SECRET",
            ),
            (
                r#"{"registry": "https://evil.example", "headers": {"X-Steal": "OTHER_SECRET"}}"#,
                "OTHER_SECRET",
            ),
        ] {
            let (st, e, log) = call(&s, Method::PUT, "/_admin/upstreams/evil", AUTH, body);
            assert_eq!(st, 400, "{body}");
            let m = e["errors"][0]["message"].as_str().unwrap();
            assert!(m.contains("UPSTREAMS.evil."), "{m}");
            assert!(log.is_none(), "{secret}: nothing stored");
        }
        assert_eq!(*s.0.borrow(), None);
        // A secret listed in UPSTREAM_SECRETS may be named.
        let ok = r#"{"registry": "https://reg.example", "prefixes": ["reg"], "credentials": "HUB_CREDS", "headers": {"X-Id": "ACCESS_ID"}}"#;
        assert_eq!(
            call(&s, Method::PUT, "/_admin/upstreams/reg", AUTH, ok).0,
            200
        );
    }

    #[test]
    fn wrong_missing_or_almost_right_tokens_get_401_and_change_nothing() {
        let s = Mem::default();
        for auth in [
            None,
            Some("Bearer "),
            Some("Bearer s3cret-admin-toke"),
            Some("Bearer s3cret-admin-tokenX"),
            Some("Basic s3cret-admin-token"),
            Some("bearer s3cret-admin-token"),
            Some("s3cret-admin-token"),
        ] {
            let (st, e, _) = call(
                &s,
                Method::PUT,
                "/_admin/upstreams/x",
                auth,
                r#"{"registry": "https://x"}"#,
            );
            assert_eq!(st, 401, "{auth:?}");
            assert_eq!(e["errors"][0]["code"], "UNAUTHORIZED");
        }
        assert_eq!(*s.0.borrow(), None);
    }

    #[test]
    fn without_a_token_the_api_does_not_exist() {
        let s = Mem::default();
        let (r, _) = block_on(handle(
            &base(),
            &s,
            None,
            &Method::GET,
            "/_admin/upstreams",
            AUTH,
            b"",
        ));
        assert_eq!(r.status(), 404);
    }

    #[test]
    fn other_paths_and_methods() {
        let s = Mem::default();
        assert_eq!(call(&s, Method::GET, "/_admin/other", AUTH, "").0, 404);
        assert_eq!(
            call(&s, Method::GET, "/_admin/upstreams/a/b", AUTH, "").0,
            404
        );
        assert_eq!(
            call(&s, Method::POST, "/_admin/upstreams/a", AUTH, "").0,
            405
        );
        assert_eq!(
            call(&s, Method::DELETE, "/_admin/upstreams/none", AUTH, "").0,
            404
        );
    }

    #[test]
    fn only_the_exact_token_is_authorized() {
        assert!(authorized(&ADMIN, AUTH));
        for a in [
            None,
            Some("Bearer "),
            Some("Bearer s3cret-admin-toke"),
            Some("s3cret-admin-token"),
        ] {
            assert!(!authorized(&ADMIN, a), "{a:?}");
        }
        let empty = Admin {
            token: "",
            name: "x",
        };
        assert!(!authorized(&empty, Some("Bearer ")));
        assert_eq!(unauthorized().status(), 401);
        assert_eq!(too_many_attempts(30).headers()["retry-after"], "30");
        assert_eq!(too_large().status(), 413);
    }
}
