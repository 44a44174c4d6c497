//! The trust boundary on fakes: tokens belong to the identity that obtained them and the registry
//! they came from; clients' logins go only to upstreams configured to take them; credentials go
//! only to realms the upstream is allowed to use.

mod common;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::Reply;
use edgemirror::ports::{FetchError, UpstreamRequest};
use http::{Method, Response};

const SECRET: &[u8] = br#"{"schemaVersion":2,"org":"secret"}"#;
const PUBLIC: &[u8] = br#"{"schemaVersion":2,"public":true}"#;
const PRIVATE: &[u8] = br#"{"schemaVersion":2,"private":true}"#;
const ALICE: &str = "Basic YWxpY2U6c2VjcmV0"; // alice:secret

fn basic(user_pass: &str) -> String {
    edgemirror::mirror::upstream::basic(user_pass)
}

fn manifest(body: &[u8]) -> Result<Response<Vec<u8>>, FetchError> {
    resp(
        200,
        &[
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("docker-content-digest", &sha(body)),
            ("content-length", &body.len().to_string()),
        ],
        body,
    )
}

/// Registries that give each login its own token and serve each repository to one of them:
/// - hub.test (realm auth.test): `library/private` for alice, `library/alpine` for anyone.
/// - same.test (realm on its own origin): `org/secret` for the account `high` only.
/// - ghcr.test (realm on its own origin): public `o/i`; refuses any login (a Docker Hub password
///   is wrong there).
/// - sneaky.test: an https-less or foreign realm, to see who gets credentials.
fn registries(req: &UpstreamRequest) -> Result<Response<Vec<u8>>, FetchError> {
    let auth = req
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let challenge = |realm: &str| {
        resp(
            401,
            &[(
                "www-authenticate",
                &format!(r#"Bearer realm="{realm}",service="reg""#),
            )],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
    };
    let token = |t: &str| {
        resp(
            200,
            &[],
            format!(r#"{{"token":"{t}","expires_in":300}}"#).as_bytes(),
        )
    };
    let host = req.url.host_str().unwrap().to_string();
    let bearer = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    match (host.as_str(), req.url.path()) {
        ("auth.test", "/token") | ("same.test", "/token") | ("evil.test", "/token") => {
            match auth.as_deref() {
                None => token("tok-anon"),
                Some(a) if a == ALICE => token("tok-alice"),
                Some(a) if a == basic("low:pw-low") => token("tok-low"),
                Some(a) if a == basic("high:pw-high") => token("tok-high"),
                Some(_) => resp(401, &[], b"{}"),
            }
        }
        ("ghcr.test", "/token") => match auth {
            None => token("tok-ghcr"),
            Some(_) => resp(401, &[], b"{}"),
        },
        ("hub.test", p) => match (p, bearer) {
            ("/v2/library/private/manifests/latest", Some("tok-alice")) => manifest(PRIVATE),
            ("/v2/library/alpine/manifests/latest", Some(_)) => manifest(PUBLIC),
            _ => challenge("http://auth.test/token"),
        },
        ("same.test", p) => match (p, bearer) {
            ("/v2/org/secret/manifests/latest", Some("tok-high")) => manifest(SECRET),
            (_, Some(_)) if p.starts_with("/v2/org/secret/") => resp(
                403,
                &[],
                br#"{"errors":[{"code":"DENIED","message":"not for this account"}]}"#,
            ),
            _ => challenge("http://same.test/token"),
        },
        ("ghcr.test", p) => match (p, bearer) {
            ("/v2/o/i/manifests/latest", Some("tok-ghcr")) => manifest(PUBLIC),
            _ => challenge("http://ghcr.test/token"),
        },
        ("sneaky.test", _) => challenge("http://evil.test/token"),
        ("tls.test", _) => challenge("http://tls.test/token"),
        (h, p) => panic!("unexpected request to {h}{p}"),
    }
}

struct Mirror {
    w: World,
}

fn mirror(table: &str) -> Mirror {
    let mut w = World::new(FakeNet::new(registries));
    w.config = Config::from_vars(&Vars {
        upstreams: Some(table),
        ..Default::default()
    })
    .unwrap();
    Mirror { w }
}

fn secret(name: &str) -> Option<String> {
    match name {
        "LOW_CREDS" => Some("low:pw-low".into()),
        "HIGH_CREDS" | "OP_CREDS" => Some("high:pw-high".into()),
        _ => None,
    }
}

impl Mirror {
    fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Response<Reply<Vec<u8>>> {
        self.w.call(&secret, method, url, headers, b"")
    }
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Response<Reply<Vec<u8>>> {
        self.call(Method::GET, url, headers)
    }
    /// Authorization values one host received, in order.
    fn auth_to(&self, host: &str) -> Vec<Option<String>> {
        self.w
            .net
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url.host_str() == Some(host))
            .map(|r| {
                r.headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
            })
            .collect()
    }
}

fn token_of(r: &Response<Reply<Vec<u8>>>) -> String {
    let v: serde_json::Value = serde_json::from_slice(&body(r)).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Row 1: two upstreams on one registry with different operator accounts. What `priv` fetched with
/// `high`'s token is never served through `pub`, whose account `low` may not read it.
#[test]
fn operator_tokens_belong_to_the_credential_that_obtained_them() {
    let m = mirror(
        r#"{
        "pub": {"registry": "http://same.test", "prefixes": ["pub"], "credentials": "LOW_CREDS"},
        "priv": {"registry": "http://same.test", "hosts": ["priv.mirror.test"], "credentials": "HIGH_CREDS"}
    }"#,
    );
    let r = m.get(
        "http://priv.mirror.test/v2/org/secret/manifests/latest",
        &[],
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body(&r)));
    assert_eq!(body(&r), SECRET);
    let stored_before = m.w.store.manifests.borrow().len();
    let seen_before = m.w.net.seen.borrow().len();

    let r = m.get("http://mirror.test/v2/pub/org/secret/manifests/latest", &[]);
    assert_eq!(
        r.status(),
        403,
        "the upstream's refusal for pub's own account"
    );
    assert_ne!(body(&r), SECRET);
    assert_eq!(
        m.w.store.manifests.borrow().len(),
        stored_before,
        "nothing stored for pub"
    );
    let pub_requests: Vec<_> = m.w.net.seen.borrow()[seen_before..]
        .iter()
        .filter(|r| r.url.path().starts_with("/v2/"))
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
        })
        .collect();
    assert!(!pub_requests.is_empty());
    assert!(
        pub_requests
            .iter()
            .all(|a| a.as_deref() != Some("Bearer tok-high")),
        "high's token never went out for pub: {pub_requests:?}"
    );
    // And again, with everything warm: still refused, still nothing served from a cache.
    let r = m.get("http://mirror.test/v2/pub/org/secret/manifests/latest", &[]);
    assert_eq!(r.status(), 403);
}

/// Row 1, the anonymous side: an upstream without credentials never borrows an operator's token.
#[test]
fn anonymous_pulls_never_use_an_operator_token() {
    let m = mirror(
        r#"{
        "anon": {"registry": "http://same.test", "prefixes": ["anon"]},
        "priv": {"registry": "http://same.test", "hosts": ["priv.mirror.test"], "credentials": "HIGH_CREDS"}
    }"#,
    );
    assert_eq!(
        m.get(
            "http://priv.mirror.test/v2/org/secret/manifests/latest",
            &[]
        )
        .status(),
        200
    );
    let r = m.get(
        "http://mirror.test/v2/anon/org/secret/manifests/latest",
        &[],
    );
    assert_ne!(r.status(), 200);
    assert_ne!(body(&r), SECRET);
}

const HUB_AND_GHCR: &str = r#"{
    "docker.io": {"registry": "http://hub.test", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true, "realms": ["http://auth.test"]},
    "ghcr.io": {"registry": "http://ghcr.test", "prefixes": ["ghcr.io"], "ns": ["ghcr.io"]}
}"#;

/// Row 2: a Docker Hub login never reaches ghcr.io's realm, and public ghcr.io pulls keep working
/// while logged in (through the token endpoint, and with Basic on the registry request).
#[test]
fn client_logins_go_only_to_upstreams_that_take_them() {
    let m = mirror(HUB_AND_GHCR);
    let t = m.get(
        "http://mirror.test/token?service=ghcr.io&scope=repository:ghcr.io/o/i:pull",
        &[("authorization", ALICE)],
    );
    assert_eq!(t.status(), 200, "{}", String::from_utf8_lossy(&body(&t)));
    let token = token_of(&t);
    let r = m.get(
        "http://mirror.test/v2/ghcr.io/o/i/manifests/latest",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body(&r)));
    assert_eq!(body(&r), PUBLIC);
    // skopeo-style: Basic on the registry request itself.
    let r = m.get(
        "http://mirror.test/v2/ghcr.io/o/i/manifests/latest",
        &[("authorization", ALICE)],
    );
    assert_eq!(r.status(), 200);
    assert!(
        m.auth_to("ghcr.test")
            .iter()
            .all(|a| a.as_deref() != Some(ALICE)),
        "alice's password never reached ghcr.io: {:?}",
        m.auth_to("ghcr.test")
    );
    // The default upstream still takes her login.
    let t = m.get(
        "http://mirror.test/token?service=docker.io&scope=repository:private:pull",
        &[("authorization", ALICE)],
    );
    assert_eq!(t.status(), 200);
    let r = m.get(
        "http://mirror.test/v2/private/manifests/latest",
        &[("authorization", &format!("Bearer {}", token_of(&t)))],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), PRIVATE);
}

/// Row 2: a token the mirror handed out for one upstream is not sent to another.
#[test]
fn a_clients_token_for_one_upstream_never_reaches_another() {
    let m = mirror(
        r#"{
        "docker.io": {"registry": "http://hub.test", "prefixes": ["docker.io"], "library": true, "realms": ["http://auth.test"]},
        "ghcr.io": {"registry": "http://ghcr.test", "prefixes": ["ghcr.io"], "client_logins": true}
    }"#,
    );
    let t = m.get(
        "http://mirror.test/token?service=docker.io&scope=repository:private:pull",
        &[("authorization", ALICE)],
    );
    let token = token_of(&t);
    let r = m.get(
        "http://mirror.test/v2/ghcr.io/o/i/manifests/latest",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(r.status(), 200);
    assert!(
        m.auth_to("ghcr.test")
            .iter()
            .all(|a| a.as_deref().is_none_or(|a| !a.contains("tok-alice"))),
        "{:?}",
        m.auth_to("ghcr.test")
    );
}

/// Row 10: operator credentials go to a realm on the registry's own origin or one listed for the
/// upstream; anywhere else (or plain http from an https registry) is a 502 that says why.
#[test]
fn operator_credentials_never_reach_an_unlisted_realm() {
    let m = mirror(
        r#"{"s": {"registry": "http://sneaky.test", "prefixes": ["s"], "credentials": "OP_CREDS"}}"#,
    );
    let r = m.get("http://mirror.test/v2/s/x/manifests/latest", &[]);
    assert_eq!(r.status(), 502, "{}", String::from_utf8_lossy(&body(&r)));
    assert!(String::from_utf8_lossy(&body(&r)).contains("realm"));
    assert!(
        m.auth_to("evil.test").iter().all(Option::is_none),
        "no credentials to evil.test: {:?}",
        m.auth_to("evil.test")
    );
}

#[test]
fn credentials_never_go_to_a_plain_http_realm_of_an_https_registry() {
    let m = mirror(
        r#"{"t": {"registry": "https://tls.test", "prefixes": ["t"], "credentials": "OP_CREDS"}}"#,
    );
    let r = m.get("http://mirror.test/v2/t/x/manifests/latest", &[]);
    assert_eq!(r.status(), 502);
    assert!(m
        .w
        .net
        .seen
        .borrow()
        .iter()
        .all(|r| r.url.scheme() == "https" || r.headers.get("authorization").is_none()));
}

/// Row 10: a realm listed for the upstream gets them, and the token works.
#[test]
fn a_listed_realm_gets_the_operators_credentials() {
    let m = mirror(
        r#"{"s": {"registry": "http://sneaky.test", "prefixes": ["s"], "credentials": "OP_CREDS", "realms": ["http://evil.test"]}}"#,
    );
    let _ = m.get("http://mirror.test/v2/s/x/manifests/latest", &[]);
    assert_eq!(
        m.auth_to("evil.test"),
        [Some(basic("high:pw-high"))],
        "the listed realm was asked with the operator's login"
    );
}

/// Row 10 for clients' logins too: the token endpoint sends them only to an allowed realm.
#[test]
fn client_logins_never_reach_an_unlisted_realm() {
    let m =
        mirror(r#"{"docker.io": {"registry": "http://sneaky.test", "prefixes": ["docker.io"]}}"#);
    let t = m.get(
        "http://mirror.test/token?service=docker.io&scope=repository:x:pull",
        &[("authorization", ALICE)],
    );
    assert_eq!(t.status(), 502, "{}", String::from_utf8_lossy(&body(&t)));
    assert!(m.auth_to("evil.test").iter().all(Option::is_none));
}
