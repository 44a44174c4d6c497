//! The admin API's endpoints: who may call them, what each answers, and what a change does.
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

#[rstest::rstest]
#[case(Method::GET, "/_admin/other", 404)]
#[case(Method::GET, "/_admin/upstreams/a/b", 404)]
#[case(Method::POST, "/_admin/upstreams/a", 405)]
#[case(Method::DELETE, "/_admin/upstreams/none", 404)]
fn other_paths_and_methods(#[case] method: Method, #[case] path: &str, #[case] status: u16) {
    assert_eq!(call(&Mem::default(), method, path, AUTH, "").0, status);
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
