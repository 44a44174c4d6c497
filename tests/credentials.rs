//! Who may pull what, on fakes: the mirror's own challenge when the upstream refuses it, its token
//! endpoint passing the client's login to the upstream realm with rewritten scopes, requests made
//! with a client's token never touching a shared store, and operator credentials.

mod common;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::Reply;
use edgemirror::ports::UpstreamRequest;
use http::{Method, Response};

const PRIVATE: &[u8] = br#"{"schemaVersion":2,"private":true}"#;
const ALICE: &str = "Basic YWxpY2U6c2VjcmV0"; // alice:secret
/// The hub's realm (auth.test) is on another origin: listed, so logins may go there.
const TABLE: &str = r#"{
    "docker.io": {"registry": "http://hub.test", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true, "realms": ["http://auth.test"]},
    "plain": {"registry": "http://plain.test", "prefixes": ["plain"], "ns": ["plain.test"]}
}"#;
const TABLE_CREDS: &str = r#"{
    "docker.io": {"registry": "http://hub.test", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true, "credentials": "HUB_CREDS", "realms": ["http://auth.test"]},
    "ghcr.io": {"registry": "http://ghcr.test", "prefixes": ["ghcr.io"]}
}"#;

/// A hub where only alice may pull library/private (tokens say who they are for).
fn private_hub(req: &UpstreamRequest) -> Result<Response<Vec<u8>>, edgemirror::ports::FetchError> {
    let auth = req
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let challenge = [(
        "www-authenticate",
        r#"Bearer realm="http://auth.test/token",service="hub""#,
    )];
    match (req.url.host_str().unwrap(), req.url.path()) {
        ("auth.test", "/token") => match auth.as_deref() {
            Some(ALICE) => resp(
                200,
                &[],
                br#"{"token":"tok-alice","expires_in":300,"refresh_token":"r-123"}"#,
            ),
            Some(_) => resp(401, &[], b"{}"),
            None => resp(200, &[], br#"{"token":"tok-anon","expires_in":300}"#),
        },
        ("hub.test", "/v2/") => resp(401, &challenge, b""),
        ("hub.test", p) if p.starts_with("/v2/library/private/manifests/") => match auth.as_deref()
        {
            Some("Bearer tok-alice") => resp(
                200,
                &[
                    ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                    ("docker-content-digest", &sha(PRIVATE)),
                ],
                PRIVATE,
            ),
            _ => resp(
                401,
                &challenge,
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
        },
        (host, path) => panic!("unexpected request to {host}{path}"),
    }
}

type Secrets = Box<dyn Fn(&str) -> Option<String>>;

struct Env {
    w: World,
    secret: Secrets,
}

fn env(table: &str, creds: Option<&'static str>) -> Env {
    let mut w = World::new(FakeNet::new(private_hub));
    w.config = Config::from_vars(&Vars {
        upstreams: Some(table),
        ..Default::default()
    })
    .unwrap();
    Env {
        w,
        secret: Box::new(move |name| {
            (name == "HUB_CREDS")
                .then(|| creds.map(str::to_string))
                .flatten()
        }),
    }
}

impl Env {
    fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response<Reply<Vec<u8>>> {
        self.w
            .call(&*self.secret, method, url, headers, body.as_bytes())
    }
}

fn json(r: &Response<Reply<Vec<u8>>>) -> serde_json::Value {
    serde_json::from_slice(&body(r)).unwrap()
}

#[test]
fn a_refused_pull_gets_the_mirrors_own_challenge_for_get_and_head() {
    let e = env(TABLE, None);
    for method in [Method::GET, Method::HEAD] {
        let r = e.call(
            method,
            "http://mirror.test:8080/v2/private/manifests/latest",
            &[],
            "",
        );
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="http://mirror.test:8080/token",service="docker.io",scope="repository:private:pull""#
        );
    }
}

#[test]
fn the_token_endpoint_passes_the_login_on_with_rewritten_scopes_and_no_refresh_token() {
    let e = env(TABLE, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/token?service=docker.io&scope=repository:private:pull,push&scope=repository:quay.io/x/y:pull&scope=registry:catalog:*",
        &[("authorization", ALICE)],
        "",
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body(&r)));
    let t = json(&r);
    assert_eq!(
        t["token"], "emu~docker.io~tok-alice",
        "the upstream's token, marked for the upstream it belongs to"
    );
    assert_eq!(t["access_token"], t["token"]);
    assert!(t.get("refresh_token").is_none());
    let realm = w_last(&e, "auth.test");
    assert_eq!(
        realm.url.query(),
        Some("service=hub&scope=repository%3Alibrary%2Fprivate%3Apull"),
        "library/ added, pull only, others dropped"
    );
    assert_eq!(realm.headers["authorization"], ALICE);
}

#[test]
fn containerds_password_form_works_and_other_grants_do_not() {
    let e = env(TABLE, None);
    let r = e.call(Method::POST, "http://mirror.test/token", &[], "grant_type=password&username=alice&password=secret&service=docker.io&scope=repository%3Aprivate%3Apull&client_id=containerd");
    assert_eq!(r.status(), 200);
    assert_eq!(json(&r)["token"], "emu~docker.io~tok-alice");
    assert_eq!(w_last(&e, "auth.test").headers["authorization"], ALICE);
    let r = e.call(
        Method::POST,
        "http://mirror.test/token",
        &[],
        "grant_type=refresh_token&refresh_token=r-123&service=docker.io",
    );
    assert_eq!(r.status(), 400);
}

#[test]
fn a_wrong_password_is_a_401_oci_error() {
    let e = env(TABLE, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/token?service=docker.io&scope=repository:private:pull",
        &[("authorization", "Basic YWxpY2U6bm9wZQ==")],
        "",
    );
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
}

#[test]
fn a_clients_token_goes_upstream_as_it_is_and_nothing_it_fetches_is_shared() {
    let e = env(TABLE, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/v2/private/manifests/latest",
        &[("authorization", "Bearer emu~docker.io~tok-alice")],
        "",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        w_last(&e, "hub.test").headers["authorization"],
        "Bearer tok-alice",
        "the upstream gets its own token"
    );
    assert_eq!(body(&r), PRIVATE);
    assert_eq!(
        h_cache(&r),
        "edgemirror; fwd=miss; detail=\"fetched with a client's credentials\""
    );
    assert!(
        e.w.store.tags.borrow().is_empty() && e.w.store.manifests.borrow().is_empty(),
        "nothing stored"
    );
    assert!(
        e.w.tokens.borrow().is_empty(),
        "the client's token is not the mirror's to keep"
    );
    // Right after, an anonymous client is refused, as before.
    let anon = e.call(
        Method::GET,
        "http://mirror.test/v2/private/manifests/latest",
        &[],
        "",
    );
    assert_eq!(anon.status(), 401);
    let digest = sha(PRIVATE);
    let anon = e.call(
        Method::GET,
        &format!("http://mirror.test/v2/private/manifests/{digest}"),
        &[],
        "",
    );
    assert_ne!(anon.status(), 200, "not by digest either");
}

#[test]
fn with_operator_credentials_anonymous_clients_pull_the_private_image() {
    let e = env(TABLE_CREDS, Some("alice:secret"));
    let r = e.call(
        Method::GET,
        "http://mirror.test/v2/private/manifests/latest",
        &[],
        "",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), PRIVATE);
    let realm = w_last(&e, "auth.test");
    assert_eq!(
        realm.headers["authorization"], ALICE,
        "the operator's credentials went to the realm"
    );
    assert!(
        e.w.net
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url.host_str() == Some("hub.test"))
            .all(|r| r.headers.get("authorization").map(|v| v.to_str().unwrap()) != Some(ALICE)),
        "never to the registry itself"
    );
    // An upstream that names a secret that is not set: a clear error.
    let e = env(TABLE_CREDS, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/v2/private/manifests/latest",
        &[],
        "",
    );
    assert_eq!(r.status(), 503);
    assert!(String::from_utf8(body(&r))
        .unwrap()
        .contains("credentials secret HUB_CREDS is not set"));
}

fn w_last(e: &Env, host: &str) -> UpstreamRequest {
    e.w.net
        .seen
        .borrow()
        .iter()
        .rev()
        .find(|r| r.url.host_str() == Some(host))
        .cloned()
        .expect("a request to that host")
}

#[test]
fn docker_login_without_a_scope_is_checked_against_the_default_upstream() {
    let e = env(TABLE, None);
    let ok = e.call(
        Method::GET,
        "http://mirror.test/token?service=edgemirror&account=alice",
        &[("authorization", ALICE)],
        "",
    );
    assert_eq!(ok.status(), 200);
    let bad = e.call(
        Method::GET,
        "http://mirror.test/token?service=edgemirror&account=alice",
        &[("authorization", "Basic YWxpY2U6bm9wZQ==")],
        "",
    );
    assert_eq!(bad.status(), 401);
}

#[test]
fn token_requests_for_no_configured_upstream_are_refused() {
    let e = env(TABLE, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/token?service=evil&scope=repository:quay.io/x:pull",
        &[("authorization", ALICE)],
        "",
    );
    assert_eq!(r.status(), 404);
    assert!(e.w.net.urls().is_empty());
}

#[test]
fn a_clients_basic_login_on_a_registry_request_is_exchanged_for_that_request_alone() {
    let e = env(TABLE, None);
    let r = e.call(
        Method::GET,
        "http://mirror.test/v2/private/manifests/latest",
        &[("authorization", ALICE)],
        "",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), PRIVATE);
    assert_eq!(w_last(&e, "auth.test").headers["authorization"], ALICE);
    assert!(e.w.tokens.borrow().is_empty(), "alice's token is not kept");
    assert!(e.w.store.manifests.borrow().is_empty(), "nothing stored");
    assert_eq!(
        e.call(
            Method::GET,
            "http://mirror.test/v2/private/manifests/latest",
            &[],
            ""
        )
        .status(),
        401
    );
}
