//! The front door on fakes, as the worker runs it: who may come in (allow-list, trusted networks,
//! the mirror's own login), failed logins and admin attempts, the pull limit (exact under a burst),
//! bounded bodies read only after the admin token passed, and the one log line.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use common::*;
use edgemirror::admin::MemoryStore as Mem;
use edgemirror::config::{Config, ConfigError, Vars};
use edgemirror::front::{serve, Arrival, Departure, Isolate, Ports};
use edgemirror::mirror::Reply;
use edgemirror::ports::PullCounts;
use futures::executor::block_on;
use http::{HeaderMap, HeaderValue, Method};
use rstest::rstest;

const ADMIN_TOKEN: &str = "adm-token-1";

/// Pull counters like KV's: a read may yield to other requests before it answers.
#[derive(Default)]
struct FakePulls {
    stored: RefCell<HashMap<String, u64>>,
    interleave: Cell<bool>,
    reads: Cell<usize>,
}

impl PullCounts for FakePulls {
    async fn count(&self, key: &str) -> Result<u64, String> {
        self.reads.set(self.reads.get() + 1);
        if self.interleave.get() {
            yield_now().await;
        }
        Ok(self.stored.borrow().get(key).copied().unwrap_or(0))
    }
    fn record(&self, key: &str, count: u64, _keep_secs: u64) {
        self.stored.borrow_mut().insert(key.to_string(), count);
    }
}

/// A mirror's front door: the variables and secrets it runs with, and its isolate.
struct Door {
    net: FakeNet,
    store: FakeStore,
    pulls: FakePulls,
    admin_store: Mem,
    isolate: Isolate,
    config: Result<Config, ConfigError>,
    secrets: HashMap<&'static str, String>,
    now_ms: Cell<u64>,
}

fn door(vars: Vars, secrets: &[(&'static str, &str)]) -> Door {
    let vars = Vars {
        upstreams: Some(TABLE),
        ..vars
    };
    Door {
        net: FakeNet::new(hub),
        store: FakeStore::default(),
        pulls: FakePulls::default(),
        admin_store: Mem::default(),
        isolate: Isolate::default(),
        config: Config::from_vars(&vars),
        secrets: secrets.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        now_ms: Cell::new(1_000_000),
    }
}

/// One request as a client sends it.
struct Ask<'a> {
    method: Method,
    path: &'a str,
    auth: Option<&'a str>,
    ip: &'a str,
    body: Vec<u8>,
    declared: Option<u64>,
}

fn get<'a>(path: &'a str, ip: &'a str) -> Ask<'a> {
    Ask {
        method: Method::GET,
        path,
        auth: None,
        ip,
        body: Vec::new(),
        declared: None,
    }
}

impl<'a> Ask<'a> {
    fn auth(self, auth: &'a str) -> Self {
        Ask {
            auth: Some(auth),
            ..self
        }
    }
    fn put(self, body: &[u8], declared: Option<u64>) -> Self {
        Ask {
            method: Method::PUT,
            body: body.to_vec(),
            declared,
            ..self
        }
    }
    fn post(self, body: &[u8]) -> Self {
        Ask {
            method: Method::POST,
            body: body.to_vec(),
            declared: Some(body.len() as u64),
            ..self
        }
    }
}

impl Door {
    fn arrival(&self, ask: Ask<'_>) -> Arrival<Vec<u8>> {
        let mut headers = HeaderMap::new();
        if let Some(a) = ask.auth {
            headers.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        Arrival {
            method: ask.method,
            url: url::Url::parse(&format!("http://mirror.test{}", ask.path)).unwrap(),
            headers,
            body: ask.body,
            declared_length: ask.declared,
            ip: ask.ip.to_string(),
            id: "req-1".into(),
            now_ms: self.now_ms.get(),
        }
    }

    async fn serve_one(&self, ask: Ask<'_>) -> Departure<Vec<u8>> {
        let secret = |name: &str| self.secrets.get(name).cloned();
        let ports = Ports {
            fetcher: &self.net,
            store: &self.store,
            pulls: Some(&self.pulls),
            config_store: Some(&self.admin_store),
            stats: None::<&edgemirror::stats::NoStats>,
            secret: &secret,
            names: &[],
            isolate: &self.isolate,
            timeout_ms: 1_000,
        };
        let config = self.config.as_ref();
        serve(&ports, config, config, self.arrival(ask)).await
    }

    fn call(&self, ask: Ask<'_>) -> Departure<Vec<u8>> {
        block_on(self.serve_one(ask))
    }

    fn upstream_requests(&self) -> usize {
        self.net.seen.borrow().len()
    }
}

fn status(d: &Departure<Vec<u8>>) -> u16 {
    d.response.status().as_u16()
}

fn code(d: &Departure<Vec<u8>>) -> String {
    error_code(&d.response)
}

const MANIFEST_PATH: &str = "/v2/alpine/manifests/latest";

/// Who may come in: each case is one request from `ip`, with the mirror's variables and
/// secrets; the status it gets and whether any upstream was asked.
#[rstest]
#[case::open_mirror(&[], None, "203.0.113.9", None, 200, true)]
#[case::outside_the_allow_list(&[("ALLOW_CIDRS", "10.0.0.0/8")], None, "203.0.113.9", None, 403, false)]
#[case::inside_the_allow_list(&[("ALLOW_CIDRS", "10.0.0.0/8")], None, "10.1.2.3", None, 200, true)]
#[case::trusted_is_always_allowed(&[("ALLOW_CIDRS", "10.0.0.0/8"), ("TRUSTED_CIDRS", "203.0.113.0/24")], None, "203.0.113.9", None, 200, true)]
#[case::ipv4_mapped_client(&[("ALLOW_CIDRS", "10.0.0.0/8")], None, "::ffff:10.1.2.3", None, 200, true)]
#[case::mirror_login_missing(&[], Some("ci:pw"), "203.0.113.9", None, 401, false)]
#[case::mirror_login_wrong(&[], Some("ci:pw"), "203.0.113.9", Some("ci:nope"), 401, false)]
#[case::mirror_login_right(&[], Some("ci:pw"), "203.0.113.9", Some("ci:pw"), 200, true)]
#[case::trusted_needs_no_mirror_login(&[("TRUSTED_CIDRS", "203.0.113.0/24")], Some("ci:pw"), "203.0.113.9", None, 200, true)]
fn who_may_come_in(
    #[case] vars: &[(&str, &str)],
    #[case] mirror_login: Option<&str>,
    #[case] ip: &str,
    #[case] login: Option<&str>,
    #[case] want: u16,
    #[case] asked_upstream: bool,
) {
    let var = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let v = Vars {
        allow_cidrs: var("ALLOW_CIDRS"),
        trusted_cidrs: var("TRUSTED_CIDRS"),
        ..Default::default()
    };
    let secrets: Vec<(&'static str, &str)> = mirror_login
        .map(|l| ("MIRROR_CREDENTIALS", l))
        .into_iter()
        .collect();
    let d = door(v, &secrets);
    let basic = login.map(edgemirror::authorization::basic);
    let ask = get(MANIFEST_PATH, ip);
    let ask = match basic.as_deref() {
        Some(b) => ask.auth(b),
        None => ask,
    };
    let out = d.call(ask);
    assert_eq!(
        status(&out),
        want,
        "{}",
        String::from_utf8_lossy(&body(&out.response))
    );
    assert_eq!(d.upstream_requests() > 0, asked_upstream);
    assert_eq!(out.log.status, want);
    if want == 401 {
        assert_eq!(
            out.response.headers()["www-authenticate"],
            r#"Bearer realm="http://mirror.test/token",service="edgemirror""#
        );
    }
    // The mirror's own login never went upstream.
    if let Some(b) = basic.as_deref() {
        for r in d.net.seen.borrow().iter() {
            assert_ne!(
                r.headers.get("authorization").map(|v| v.to_str().unwrap()),
                Some(b)
            );
        }
    }
    // `/healthz` stays open to everyone.
    assert_eq!(status(&d.call(get("/healthz", ip))), 200);
}

#[test]
fn the_token_endpoint_issues_mirror_tokens_that_then_pass() {
    let d = door(Vars::default(), &[("MIRROR_CREDENTIALS", "ci:pw")]);
    let login = edgemirror::authorization::basic("ci:pw");
    let out = d.call(get("/token?service=edgemirror", "203.0.113.9").auth(&login));
    assert_eq!(status(&out), 200);
    assert_eq!(
        (out.log.route, out.log.user.as_deref()),
        (Some("token"), Some("ci"))
    );
    let v: serde_json::Value = serde_json::from_slice(&body(&out.response)).unwrap();
    let token = format!("Bearer {}", v["token"].as_str().unwrap());
    assert_eq!(d.upstream_requests(), 0, "issued by the mirror itself");
    let out = d.call(get(MANIFEST_PATH, "203.0.113.9").auth(&token));
    assert_eq!(status(&out), 200);
    assert!(d.net.seen.borrow().iter().all(|r| r
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap())
        != Some(&token)));
}

#[test]
fn pulls_are_limited_with_headers_and_blobs_do_not_count() {
    let d = door(
        Vars {
            rate_limit: Some("2/1h"),
            ..Default::default()
        },
        &[],
    );
    let ip = "198.51.100.7";
    for left in ["1", "0"] {
        let out = d.call(get(MANIFEST_PATH, ip));
        assert_eq!(status(&out), 200);
        assert_eq!(out.response.headers()["x-ratelimit-remaining"], left);
    }
    let seen = d.upstream_requests();
    let out = d.call(get(MANIFEST_PATH, ip));
    assert_eq!(
        (status(&out), code(&out).as_str()),
        (429, "TOOMANYREQUESTS")
    );
    assert_eq!(out.response.headers()["ratelimit-remaining"], "0;w=3600");
    assert!(out.response.headers().contains_key("retry-after"));
    assert_eq!(
        d.upstream_requests(),
        seen,
        "a limited pull reaches no upstream"
    );
    let blob = d.call(get(&format!("/v2/alpine/blobs/{SHA}"), ip));
    assert_eq!(status(&blob), 200, "blobs are not pulls");
    assert_eq!(blob.response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        status(&d.call(get(MANIFEST_PATH, "198.51.100.8"))),
        200,
        "another client"
    );
}

#[test]
fn requests_that_take_no_pull_read_the_store_once_per_isolate() {
    let d = door(
        Vars {
            rate_limit: Some("5/1h"),
            ..Default::default()
        },
        &[],
    );
    let ip = "198.51.100.20";
    // Another isolate counted two pulls of this client; this one has counted none.
    let key = edgemirror::ratelimit::counter_key(
        ip,
        edgemirror::ratelimit::Limit::parse("5/1h").unwrap(),
        d.now_ms.get() / 1000,
    );
    d.pulls.stored.borrow_mut().insert(key, 2);
    for _ in 0..3 {
        let blob = d.call(get(&format!("/v2/alpine/blobs/{SHA}"), ip));
        assert_eq!(status(&blob), 200);
        assert_eq!(blob.response.headers()["x-ratelimit-remaining"], "3");
    }
    assert_eq!(d.pulls.reads.get(), 1, "one read, then the isolate's count");
    // A pull still reads the store before it is taken.
    let out = d.call(get(MANIFEST_PATH, ip));
    assert_eq!(out.response.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(d.pulls.reads.get(), 2);
}

/// 20 concurrent manifest GETs, every KV read yielding to the others first: exactly 3 pass.
#[test]
fn a_concurrent_burst_gets_exactly_the_limit() {
    let d = door(
        Vars {
            rate_limit: Some("3/1h"),
            ..Default::default()
        },
        &[],
    );
    d.pulls.interleave.set(true);
    d.net.interleave.set(true);
    let all = (0..20).map(|_| d.serve_one(get(MANIFEST_PATH, "198.51.100.9")));
    let statuses: Vec<u16> = block_on(futures::future::join_all(all))
        .iter()
        .map(status)
        .collect();
    assert!(
        d.pulls.reads.get() >= 20,
        "every request read the store first"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 17);
}

#[test]
fn wrong_passwords_are_limited_per_client_with_no_upstream_contact() {
    let wrong = edgemirror::authorization::basic("alice:wrong");
    let d = door(Vars::default(), &[("MIRROR_CREDENTIALS", "ci:pw")]);
    let mut statuses = vec![];
    for _ in 0..12 {
        statuses.push(status(&d.call(get("/token", "192.0.2.51").auth(&wrong))));
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429; 2]);
    let right = edgemirror::authorization::basic("ci:pw");
    let locked = d.call(get("/token", "192.0.2.51").auth(&right));
    assert_eq!(
        status(&locked),
        429,
        "the right password too, until the window ends"
    );
    assert!(locked.response.headers().contains_key("retry-after"));
    assert_eq!(
        status(&d.call(get("/token", "192.0.2.52").auth(&right))),
        200,
        "another client"
    );
    d.now_ms.set(d.now_ms.get() + 600_000);
    assert_eq!(
        status(&d.call(get("/token", "192.0.2.51").auth(&right))),
        200,
        "a new window"
    );
}

fn admin_door() -> Door {
    door(
        Vars {
            allow_cidrs: Some("10.0.0.0/8"),
            ..Default::default()
        },
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    )
}

const BEARER: &str = "Bearer adm-token-1";
const UPSTREAM: &[u8] = br#"{"registry": "http://extra.test", "prefixes": ["extra"]}"#;

#[test]
fn the_admin_api_obeys_the_allow_list_and_exists_only_with_its_token_and_store() {
    let d = admin_door();
    let out = d.call(get("/_admin/upstreams", "203.0.113.9").auth(BEARER));
    assert_eq!((status(&out), code(&out).as_str()), (403, "DENIED"));
    assert_eq!(out.log.route, Some("admin"));
    assert_eq!(
        status(&d.call(get("/_admin/upstreams", "10.0.0.1").auth(BEARER))),
        200
    );
    let off = door(Vars::default(), &[]);
    assert_eq!(
        status(&off.call(get("/_admin/upstreams", "10.0.0.1").auth(BEARER))),
        404
    );
}

#[test]
fn failed_admin_attempts_lock_a_client_out() {
    let d = admin_door();
    let statuses: Vec<u16> = (0..7)
        .map(|i| {
            let auth = format!("Bearer guess-{i}");
            status(&d.call(get("/_admin/upstreams", "10.0.0.2").auth(&auth)))
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let locked = d.call(get("/_admin/upstreams", "10.0.0.2").auth(BEARER));
    assert_eq!(status(&locked), 429);
    assert!(locked.response.headers().contains_key("retry-after"));
    assert_eq!(
        status(&d.call(get("/_admin/upstreams", "10.0.0.3").auth(BEARER))),
        200
    );
}

/// The token is checked before any body is read; a body is read up to 64 KiB whatever its framing.
#[rstest]
#[case::no_token(None, 1_000, Some(1_000), 401, 0)]
#[case::wrong_token(Some("Bearer nope"), 1_000, Some(1_000), 401, 0)]
#[case::declared_too_large(Some(BEARER), 100_000, Some(100_000), 413, 0)]
#[case::chunked_too_large(Some(BEARER), 100_000, None, 413, 0)]
#[case::good(Some(BEARER), UPSTREAM.len(), None, 200, UPSTREAM.len())]
fn admin_bodies_are_read_only_after_the_token_and_within_a_bound(
    #[case] auth: Option<&str>,
    #[case] len: usize,
    #[case] declared: Option<u64>,
    #[case] want: u16,
    #[case] read: usize,
) {
    let d = admin_door();
    let body: Vec<u8> = if len == UPSTREAM.len() {
        UPSTREAM.to_vec()
    } else {
        vec![b'a'; len]
    };
    let ask = get("/_admin/upstreams/extra", "10.0.0.4").put(&body, declared);
    let ask = match auth {
        Some(a) => ask.auth(a),
        None => ask,
    };
    let out = d.call(ask);
    assert_eq!(
        status(&out),
        want,
        "{}",
        String::from_utf8_lossy(&body_of(&out))
    );
    assert_eq!(
        d.net.bytes_read.get(),
        read,
        "bytes of the body read into the core"
    );
    if want == 200 {
        assert_eq!(out.notes.len(), 1, "the change is logged");
        assert!(d.admin_store.0.borrow().is_some());
    }
}

fn body_of(d: &Departure<Vec<u8>>) -> Vec<u8> {
    match d.response.body() {
        Reply::Bytes(b) | Reply::Stream(b) => b.clone(),
        Reply::Empty => vec![],
    }
}

#[test]
fn the_token_form_is_read_within_its_bound() {
    let d = door(Vars::default(), &[]);
    let big = vec![b'a'; 20_000];
    let out = d.call(get("/token", "192.0.2.60").post(&big));
    assert_eq!(status(&out), 413);
    let out =
        d.call(get("/token", "192.0.2.60").post(b"grant_type=refresh_token&service=docker.io"));
    assert_eq!(status(&out), 400, "read and parsed");
}

#[test]
fn one_log_line_says_what_happened_and_holds_no_credential() {
    let d = door(Vars::default(), &[]);
    let login = edgemirror::authorization::basic("alice:secret");
    let out = d.call(get(MANIFEST_PATH, "192.0.2.70").auth(&login));
    let line = out.log.to_json();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["msg"], "request");
    assert_eq!(v["route"], "manifest");
    assert_eq!(v["upstream"], "docker.io");
    assert_eq!(v["id"], "req-1");
    assert_eq!(v["status"], status(&out));
    assert!(v.get("cache_status").is_some());
    assert!(
        !line.to_lowercase().contains("authorization") && !line.contains(&login[6..]),
        "{line}"
    );
    assert_eq!(out.response.headers()["x-request-id"], "req-1");
}

#[test]
fn the_stats_are_behind_the_admin_token_and_say_how_to_turn_them_on() {
    let d = admin_door();
    assert_eq!(status(&d.call(get("/_admin/stats", "10.0.0.7"))), 401);
    assert_eq!(status(&d.call(get("/_admin/stats/page", "10.0.0.7"))), 401);
    let out = d.call(get("/_admin/stats", "10.0.0.7").auth(BEARER));
    assert_eq!(status(&out), 200);
    let edgemirror::mirror::Reply::Bytes(b) = out.response.body() else {
        panic!("a JSON body")
    };
    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
    assert_eq!(v["enabled"], false);
    assert!(v["how"].as_str().unwrap().contains("STATS"));
    let page = d.call(get("/_admin/stats/page", "10.0.0.7").auth(BEARER));
    let edgemirror::mirror::Reply::Bytes(b) = page.response.body() else {
        panic!("an HTML body")
    };
    let html = String::from_utf8_lossy(b);
    assert!(
        html.contains("Stats are off") && html.contains("wrangler d1 create"),
        "{html}"
    );
}

/// The log line counts what a request sent upstream (the stats' source): every request, and the
/// manifest GETs apart; a hit sends nothing.
#[test]
fn the_log_line_counts_upstream_requests_and_manifest_gets() {
    let d = door(Vars::default(), &[]);
    let out = d.call(get(MANIFEST_PATH, "203.0.113.9"));
    assert_eq!(status(&out), 200);
    let sent = d.net.seen.borrow().clone();
    assert_eq!(out.log.upstream_requests as usize, sent.len());
    let manifest_gets = sent
        .iter()
        .filter(|r| r.method == http::Method::GET && r.url.path().contains("/manifests/"))
        .count();
    assert!(manifest_gets >= 1);
    assert_eq!(out.log.manifest_gets as usize, manifest_gets);
    let again = d.call(get(MANIFEST_PATH, "203.0.113.9"));
    assert_eq!(again.log.cache, Some("hit"));
    assert_eq!(
        (again.log.upstream_requests, again.log.manifest_gets),
        (0, 0)
    );
    let line = again.log.to_json();
    assert!(
        !line.contains("upstream_requests"),
        "zeros are left out of the line: {line}"
    );
}
