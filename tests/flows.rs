//! The mirror's flows on an in-memory network: token auth with one retry, redirects that drop
//! credentials, error mapping, and bad input that never reaches an upstream.

mod common;

use std::cell::RefCell;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::{handle, Incoming, Reply, Session};
use edgemirror::ports::FetchError;
use edgemirror::token::TokenCache;
use futures::executor::block_on;
use http::{HeaderMap, Method, Response};
use rstest::rstest;

#[test]
fn manifest_by_tag_with_token_auth_is_passed_through_byte_for_byte() {
    let w = World::new(FakeNet::new(hub));
    let (r, outcome) = w.request(
        Method::GET,
        "http://mirror.test/v2/alpine/manifests/latest",
        &[
            ("accept", "application/vnd.oci.image.index.v1+json"),
            (
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            ),
        ],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), MANIFEST);
    assert_eq!(h_cache(&r), "edgemirror; fwd=miss; stored");
    let h = r.headers();
    assert_eq!(h["docker-content-digest"], sha(MANIFEST).as_str());
    assert_eq!(
        h["content-type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(h["content-length"], MANIFEST.len().to_string().as_str());
    assert_eq!(h["etag"], "\"x\"");
    assert_eq!(h["docker-distribution-api-version"], "registry/2.0");
    assert!(h.get("x-internal").is_none());
    assert_eq!(outcome.upstream.as_deref(), Some("docker.io"));
    assert_eq!(outcome.by, Some("default"));
    assert_eq!(
        w.net.urls(),
        [
            // Nothing of this repository is held: no HEAD first (it could save no pull), the GET
            // at once; its 401 names the realm.
            "GET http://hub.test/v2/library/alpine/manifests/latest",
            "GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Falpine%3Apull",
            "GET http://hub.test/v2/library/alpine/manifests/latest",
        ]
    );
    assert_eq!(w.net.auth_of(0), None);
    assert_eq!(w.net.auth_of(1), None, "anonymous token request");
    assert_eq!(w.net.auth_of(2).as_deref(), Some("Bearer tok-1"));
    let accept = w.net.seen.borrow()[2].headers["accept"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(accept, "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json");

    // The token is kept: the next request for the same scope goes straight through with it.
    let (r, _) = w.request(
        Method::HEAD,
        "http://mirror.test/v2/library/alpine/manifests/missing",
        &[],
    );
    assert_eq!(r.status(), 404);
    assert!(matches!(r.body(), Reply::Empty));
    assert_eq!(w.net.urls().len(), 4);
    assert_eq!(w.net.auth_of(3).as_deref(), Some("Bearer tok-1"));
}

#[test]
fn blob_redirect_to_another_host_drops_authorization() {
    let w = World::new(FakeNet::new(hub));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), b"LAYERBYTES");
    assert_eq!(
        r.headers()["docker-content-digest"],
        SHA,
        "named by the digest asked for"
    );
    let urls = w.net.urls();
    assert_eq!(
        urls.last().unwrap(),
        &format!("GET http://cdn.test/data/{SHA}")
    );
    let n = urls.len();
    assert_eq!(
        w.net.auth_of(n - 2).as_deref(),
        Some("Bearer tok-1"),
        "the registry gets the token"
    );
    assert_eq!(w.net.auth_of(n - 1), None, "the CDN never does");
}

#[test]
fn range_requests_reach_the_blob_host_and_come_back_206() {
    let w = World::new(FakeNet::new(hub));
    let (r, _) = w.request(
        Method::GET,
        &format!("http://mirror.test/v2/alpine/blobs/{SHA}"),
        &[("range", "bytes=0-3")],
    );
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-3/10");
    assert_eq!(body(&r), b"LAYE");
}

#[test]
fn same_origin_redirect_keeps_authorization_and_loops_are_bounded() {
    let w = World::new(FakeNet::new(|req| {
        let n: u32 = req
            .url
            .query()
            .and_then(|q| q.strip_prefix("hop="))
            .map_or(0, |n| n.parse().unwrap());
        resp(
            302,
            &[("location", &format!("/v2/x/blobs/{SHA}?hop={}", n + 1))],
            b"",
        )
    }));
    let (r, _) = w.get(&format!("/v2/plain/x/blobs/{SHA}"));
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "UNAVAILABLE");
    assert_eq!(
        w.net.urls().len(),
        6,
        "the first request and five redirects"
    );
}

#[rstest]
#[case(Err(FetchError::Timeout), 504, "UNAVAILABLE")]
#[case(Err(FetchError::Unreachable("refused".into())), 502, "UNAVAILABLE")]
#[case(resp(500, &[], b"boom"), 502, "UNAVAILABLE")]
#[case(resp(503, &[("retry-after", "7")], b""), 503, "UNAVAILABLE")]
#[case(resp(429, &[("retry-after", "30")], b""), 429, "TOOMANYREQUESTS")]
#[case(resp(403, &[], b"no"), 403, "DENIED")]
#[case(resp(404, &[], b"<Error>NoSuchKey</Error>"), 404, "MANIFEST_UNKNOWN")]
#[case(resp(404, &[], br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#), 404, "NAME_UNKNOWN")]
#[case(resp(401, &[], b""), 401, "UNAUTHORIZED")]
#[case(resp(302, &[("location", "ftp://x/y")], b""), 502, "UNAVAILABLE")]
fn upstream_failures_become_oci_errors(
    #[case] answer: Result<Response<Vec<u8>>, FetchError>,
    #[case] status: u16,
    #[case] code: &str,
) {
    let answer = RefCell::new(Some(answer));
    let w = World::new(FakeNet::new(move |_| {
        answer.borrow_mut().take().unwrap_or(resp(599, &[], b""))
    }));
    let (r, outcome) = w.get("/v2/plain/x/manifests/latest");
    assert_eq!(r.status(), status);
    assert_eq!(error_code(&r), code);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(outcome.upstream.is_some());
    if status == 429 || status == 503 {
        assert!(r.headers().contains_key("retry-after"));
    }
}

#[test]
fn upstream_404_envelope_is_forwarded() {
    let w = World::new(FakeNet::new(hub));
    let (r, _) = w.get("/v2/alpine/manifests/missing");
    assert_eq!(r.status(), 404);
    assert!(String::from_utf8(body(&r))
        .unwrap()
        .contains("upstream says no"));
}

#[rstest]
#[case(resp(401, &[], b""), 401, "UNAUTHORIZED")]
#[case(resp(200, &[], b"not json"), 502, "UNAVAILABLE")]
#[case(resp(200, &[], br#"{"token":"tok-1","expires_in":0}"#), 200, "")]
#[case(resp(500, &[], b""), 502, "UNAVAILABLE")]
fn token_endpoint_answers(
    #[case] token: Result<Response<Vec<u8>>, FetchError>,
    #[case] status: u16,
    #[case] code: &str,
) {
    // The same answer every time it is asked (a token that is not kept is asked for again).
    let token = token.unwrap();
    let (parts, body) = token.into_parts();
    let w = World::new(FakeNet::new(move |req| {
        if req.url.host_str() == Some("auth.test") {
            let mut r = Response::new(body.clone());
            *r.status_mut() = parts.status;
            return Ok(r);
        }
        hub(req)
    }));
    let (r, _) = w.get("/v2/alpine/manifests/latest");
    assert_eq!(r.status(), status);
    if !code.is_empty() {
        assert_eq!(error_code(&r), code);
    }
    // An expired or refused token is never kept.
    assert!(w.tokens.borrow().is_empty());
}

#[test]
fn tags_list_pagination_goes_upstream_and_links_come_back_to_the_mirror() {
    let w = World::new(FakeNet::new(|req| {
        assert_eq!(
            req.url.as_str(),
            "http://plain.test/v2/x/tags/list?n=2&last=a"
        );
        resp(
            200,
            &[
                ("content-type", "application/json"),
                ("link", "</v2/x/tags/list?last=b&n=2>; rel=\"next\""),
            ],
            br#"{"name":"x","tags":["b"]}"#,
        )
    }));
    let (r, _) = w.get("/v2/x/tags/list?n=2&last=a&ns=plain.test");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["link"],
        "</v2/x/tags/list?last=b&n=2&ns=plain.test>; rel=\"next\""
    );
}

/// Bad input: a clear 4xx, and no upstream ever hears of it.
#[rstest]
#[case(Method::GET, "/v2/Alpine/manifests/latest", 400, "NAME_INVALID")]
#[case(Method::GET, "/v2/alpine/manifests/-x", 404, "MANIFEST_UNKNOWN")]
#[case(Method::GET, "/v2/alpine/blobs/sha256:zz", 400, "DIGEST_INVALID")]
// URL parsing (WHATWG, as in workerd) resolves %2e%2e as "..": the path becomes /manifests/latest.
#[case(Method::GET, "/v2/%2e%2e/manifests/latest", 404, "NAME_UNKNOWN")]
#[case(Method::GET, "/v2/a%2fb/manifests/latest", 400, "NAME_INVALID")]
#[case(Method::PUT, "/v2/alpine/manifests/latest", 405, "UNSUPPORTED")]
#[case(Method::POST, "/v2/alpine/blobs/uploads/", 405, "UNSUPPORTED")]
#[case(Method::DELETE, "/v2/alpine/manifests/latest", 405, "UNSUPPORTED")]
#[case(Method::GET, "/v2/_catalog", 405, "UNSUPPORTED")]
#[case(Method::GET, "/v2/quay.io/x/y/manifests/latest", 404, "NAME_UNKNOWN")]
#[case(
    Method::GET,
    "/v2/x/manifests/latest?ns=evil.example.com",
    404,
    "NAME_UNKNOWN"
)]
#[case(
    Method::GET,
    "/v2/x/tags/list?n=many",
    400,
    "PAGINATION_NUMBER_INVALID"
)]
#[case(
    Method::GET,
    "/v2/x/tags/list?last=..%2F",
    400,
    "PAGINATION_NUMBER_INVALID"
)]
#[case(
    Method::GET,
    "/v2/x/tags/list?next_page=a%20b",
    400,
    "PAGINATION_NUMBER_INVALID"
)]
#[case(Method::GET, "/nope", 404, "NAME_UNKNOWN")]
#[case(
    Method::GET,
    "/v2/x/manifests/latest?ns=docker.io&ns=evil.example.com",
    400,
    "NAME_INVALID"
)]
#[case(
    Method::GET,
    "/v2/x/manifests/latest?ns=docker.io&ns=docker.io",
    400,
    "NAME_INVALID"
)]
fn bad_input_never_reaches_an_upstream(
    #[case] method: Method,
    #[case] path: &str,
    #[case] status: u16,
    #[case] code: &str,
) {
    let w = World::new(FakeNet::new(|req| {
        panic!("no request expected, got {}", req.url)
    }));
    let (r, _) = w.request(method.clone(), &format!("http://mirror.test{path}"), &[]);
    assert_eq!(r.status(), status, "{path}");
    if method != Method::HEAD {
        assert_eq!(error_code(&r), code, "{path}");
    }
    assert!(w.net.urls().is_empty());
}

#[test]
fn invalid_configuration_answers_every_request_with_the_field() {
    let net = FakeNet::new(|req| panic!("no request expected, got {}", req.url));
    let tokens = RefCell::new(TokenCache::default());
    let bad = Config::from_vars(&Vars {
        upstreams: Some(r#"{"x":{"registry":"ftp://h"}}"#),
        ..Default::default()
    })
    .unwrap_err();
    let session = Session {
        fetcher: &net,
        tokens: &tokens,
        flights: &Default::default(),
        now: 0,
        timeout_ms: 1_000,
        secret: &|_| None,
        budget: None,
    };
    let incoming = |path: &str| Incoming {
        method: Method::GET,
        url: url::Url::parse(&format!("http://m.test{path}")).unwrap(),
        headers: HeaderMap::new(),
        body: Vec::new(),
    };
    let store = FakeStore::default();
    let (r, _) = block_on(handle(
        Err(&bad),
        &session,
        &store,
        &incoming("/v2/alpine/manifests/latest"),
    ));
    assert_eq!(r.status(), 503);
    assert!(String::from_utf8(body(&r))
        .unwrap()
        .contains("UPSTREAMS.x.registry"));
    let (r, _) = block_on(handle(Err(&bad), &session, &store, &incoming("/healthz")));
    assert_eq!(r.status(), 503);
    assert!(String::from_utf8(body(&r))
        .unwrap()
        .contains("UPSTREAMS.x.registry"));
}

#[test]
fn api_base_answers_like_a_registry_with_a_challenge() {
    let w = World::new(FakeNet::new(|req| {
        panic!("no request expected, got {}", req.url)
    }));
    let (r, _) = w.get("/v2/");
    assert_eq!(r.status(), 401, "a challenge, like Docker Hub's");
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="http://mirror.test/token",service="edgemirror""#
    );
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let (r, _) = w.request(
        Method::GET,
        "http://mirror.test/v2/",
        &[("authorization", "Bearer edgemirror-anonymous")],
    );
    assert_eq!(r.status(), 200);
    // The anonymous token comes at once, without any upstream.
    let (t, _) = w.get("/token?service=edgemirror&scope=repository:alpine:pull");
    assert_eq!(t.status(), 200);
    assert!(String::from_utf8(body(&t))
        .unwrap()
        .contains("edgemirror-anonymous"));
}

#[test]
fn a_401_from_a_redirect_target_is_not_answered_with_a_token() {
    let w = World::new(FakeNet::new(|req| match req.url.host_str().unwrap() {
        "plain.test" => resp(307, &[("location", "http://cdn.test/blob")], b""),
        "cdn.test" => resp(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="http://other-realm.test/t""#,
            )],
            b"",
        ),
        other => panic!("the mirror contacted {other}"),
    }));
    let (r, _) = w.get(&format!("/v2/plain/x/blobs/{SHA}"));
    assert_eq!(r.status(), 401);
    assert_eq!(
        w.net.urls(),
        [
            format!("GET http://plain.test/v2/x/blobs/{SHA}"),
            "GET http://cdn.test/blob".to_string()
        ]
    );
    assert!(w.tokens.borrow().is_empty());
}

#[test]
fn upstreams_are_asked_for_identity_encoding() {
    let w = World::new(FakeNet::new(hub));
    w.get("/v2/alpine/manifests/latest");
    assert!(w
        .net
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url.host_str() == Some("hub.test"))
        .all(|r| r.headers["accept-encoding"] == "identity"));
}

#[test]
fn quay_style_page_tokens_go_upstream() {
    let w = World::new(FakeNet::new(|req| {
        assert_eq!(req.url.query(), Some("n=100&next_page=gAAAA-x_y%3D"));
        resp(
            200,
            &[("content-type", "application/json")],
            br#"{"name":"x","tags":[]}"#,
        )
    }));
    let (r, _) = w.get("/v2/plain/x/tags/list?n=100&next_page=gAAAA-x_y%3D");
    assert_eq!(r.status(), 200);
}

#[test]
fn an_upstreams_private_headers_reach_its_own_origin_only() {
    let table = r#"{"private": {"registry": "http://private.test", "prefixes": ["private"], "headers": {"CF-Access-Client-Id": "ACCESS_ID"}}}"#;
    let net = FakeNet::new(|req| match (req.url.host_str().unwrap(), req.url.path()) {
        ("private.test", "/token") => resp(200, &[], br#"{"token":"t","expires_in":300}"#),
        ("private.test", _) if req.headers.get("authorization").is_none() => resp(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="http://private.test/token",service="p""#,
            )],
            b"",
        ),
        ("private.test", _) => resp(307, &[("location", "http://cdn.test/blob")], b""),
        ("cdn.test", _) => resp(200, &[("content-length", "4")], b"blob"),
        (other, _) => panic!("the mirror contacted {other}"),
    });
    let mut w = World::new(net);
    w.config = Config::from_vars(&Vars {
        upstreams: Some(table),
        ..Default::default()
    })
    .unwrap();
    let secret = |name: &str| (name == "ACCESS_ID").then(|| "id-123".to_string());
    let session = Session {
        fetcher: &w.net,
        tokens: &w.tokens,
        flights: &w.flights,
        now: 1_000,
        timeout_ms: 1_000,
        secret: &secret,
        budget: None,
    };
    let incoming = Incoming {
        method: Method::GET,
        url: url::Url::parse(&format!("http://m.test/v2/private/x/blobs/{SHA}")).unwrap(),
        headers: HeaderMap::new(),
        body: Vec::new(),
    };
    let (r, _) = block_on(handle(Ok(&w.config), &session, &w.store, &incoming));
    assert_eq!(r.status(), 200);
    for req in w.net.seen.borrow().iter() {
        let has = req
            .headers
            .get("cf-access-client-id")
            .map(|v| v.to_str().unwrap().to_string());
        let want = (req.url.host_str() == Some("private.test")).then(|| "id-123".to_string());
        assert_eq!(has, want, "{}", req.url);
    }
    // Without the secret, a clear error and no request.
    let n = w.net.urls().len();
    let none = |_: &str| None;
    let session = Session {
        fetcher: &w.net,
        tokens: &w.tokens,
        flights: &w.flights,
        now: 1_000,
        timeout_ms: 1_000,
        secret: &none,
        budget: None,
    };
    let incoming = Incoming {
        method: Method::GET,
        url: url::Url::parse("http://m.test/v2/private/y/manifests/latest").unwrap(),
        headers: HeaderMap::new(),
        body: Vec::new(),
    };
    let (r, _) = block_on(handle(Ok(&w.config), &session, &w.store, &incoming));
    assert_eq!(r.status(), 503);
    assert!(String::from_utf8(body(&r))
        .unwrap()
        .contains("secret ACCESS_ID"));
    assert_eq!(w.net.urls().len(), n);
}

/// A hub whose first `fail` answers to the CDN are `status` (with `retry_after`), then normal.
fn flaky_cdn(fail: usize, status: u16, retry_after: Option<&'static str>) -> FakeNet {
    let left = RefCell::new(fail);
    FakeNet::new(move |req| {
        if req.url.host_str() == Some("cdn.test") && *left.borrow() > 0 {
            *left.borrow_mut() -= 1;
            let h: Vec<(&str, &str)> = retry_after.iter().map(|v| ("retry-after", *v)).collect();
            return resp(status, &h, b"busy");
        }
        hub(req)
    })
}

#[rstest]
// (failures, status, Retry-After) -> (client status, requests to the CDN, pauses)
#[case(1, 500, None, 200, 2, vec![250])]
#[case(1, 502, None, 200, 2, vec![250])]
#[case(1, 503, Some("1"), 200, 2, vec![1000])]
#[case(1, 503, Some("60"), 503, 1, vec![])]
#[case(1, 429, None, 429, 1, vec![])]
#[case(1, 429, Some("2"), 200, 2, vec![2000])]
#[case(2, 500, None, 502, 2, vec![250])]
#[case(1, 404, None, 404, 1, vec![])]
fn fast_failures_are_retried_once(
    #[case] fail: usize,
    #[case] status: u16,
    #[case] retry_after: Option<&'static str>,
    #[case] want: u16,
    #[case] cdn_requests: usize,
    #[case] pauses: Vec<u32>,
) {
    let w = World::new(flaky_cdn(fail, status, retry_after));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), want);
    if want == 200 {
        assert_eq!(body(&r), b"LAYERBYTES");
    }
    assert_eq!(w.net.requests_to("cdn.test"), cdn_requests);
    assert_eq!(*w.net.pauses.borrow(), pauses);
}

#[test]
fn a_refused_connection_is_retried_once_and_a_timeout_is_not() {
    let left = RefCell::new(1);
    let w = World::new(FakeNet::new(move |req| {
        if req.url.host_str() == Some("cdn.test") && *left.borrow() > 0 {
            *left.borrow_mut() -= 1;
            return Err(FetchError::Unreachable("connection reset".into()));
        }
        hub(req)
    }));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), 200);
    assert_eq!(*w.net.pauses.borrow(), vec![250]);

    let w = World::new(FakeNet::new(|req| {
        if req.url.host_str() == Some("cdn.test") {
            Err(FetchError::Timeout)
        } else {
            hub(req)
        }
    }));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), 504);
    assert_eq!(
        w.net.requests_to("cdn.test"),
        1,
        "a timeout is not repeated"
    );
}

/// A hub whose token endpoint hands out `expired` tokens before good ones; the registry answers
/// them with `error="invalid_token"`, as distribution and Docker Hub do.
fn skewed_realm(expired: usize) -> FakeNet {
    let issued = RefCell::new(0);
    FakeNet::new(move |req| {
        let auth = req
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        match (req.url.host_str().unwrap(), req.url.path()) {
            ("auth.test", "/token") => {
                *issued.borrow_mut() += 1;
                let n = *issued.borrow();
                let value = if n <= expired {
                    format!("stale-{n}")
                } else {
                    "tok-1".into()
                };
                resp(
                    200,
                    &[],
                    format!(r#"{{"token":"{value}","expires_in":300}}"#).as_bytes(),
                )
            }
            ("hub.test", _)
                if auth
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer stale-")) =>
            {
                resp(
                    401,
                    &[(
                        "www-authenticate",
                        r#"Bearer realm="http://auth.test/token",service="hub",error="invalid_token""#,
                    )],
                    b"",
                )
            }
            _ => hub(req),
        }
    })
}

#[rstest]
#[case(1, 200, 2)]
#[case(2, 502, 2)]
fn a_token_refused_as_invalid_is_fetched_once_more(
    #[case] expired: usize,
    #[case] want: u16,
    #[case] token_requests: usize,
) {
    let w = World::new(skewed_realm(expired));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), want, "{}", String::from_utf8_lossy(&body(&r)));
    assert_eq!(w.net.requests_to("auth.test"), token_requests);
    if want == 502 {
        assert!(
            String::from_utf8_lossy(&body(&r)).contains("refuses the tokens its own realm issues")
        );
    }
}

#[test]
fn a_token_refused_for_its_scope_is_not_fetched_again() {
    // The anonymous token has no access to a private repository: the client must log in.
    let w = World::new(FakeNet::new(|req| match req.url.host_str().unwrap() {
        "auth.test" => resp(200, &[], br#"{"token":"anon","expires_in":300}"#),
        _ => resp(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="http://auth.test/token",service="hub",error="insufficient_scope""#,
            )],
            b"",
        ),
    }));
    let (r, _) = w.get(&format!("/v2/library/alpine/blobs/{SHA}"));
    assert_eq!(r.status(), 401);
    assert_eq!(w.net.requests_to("auth.test"), 1);
}

#[test]
fn a_manifest_request_without_accept_asks_upstream_for_every_current_type() {
    let w = World::new(FakeNet::new(hub));
    let (r, _) = w.get("/v2/alpine/manifests/latest");
    assert_eq!(r.status(), 200);
    let seen = w.net.seen.borrow();
    let accept = seen.last().unwrap().headers["accept"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(accept, edgemirror::policy::ACCEPT_ALL_MANIFESTS);
}

#[test]
fn a_burst_of_cold_requests_for_one_repository_fetches_one_token() {
    let w = World::new(FakeNet::new(hub));
    let paths: Vec<String> = (0..16)
        .map(|_| format!("/v2/library/alpine/blobs/{SHA}"))
        .collect();
    let answers = w.get_all(&paths);
    assert!(answers
        .iter()
        .all(|r| r.status() == 200 && body(r) == b"LAYERBYTES"));
    assert_eq!(
        w.net.requests_to("auth.test"),
        1,
        "one token fetch for the whole burst"
    );
    assert!(!w.tokens.borrow().is_fetching(
        "http://hub.test|anonymous",
        "repository:library/alpine:pull",
        1_000
    ));
}

#[test]
fn a_failed_token_fetch_is_not_waited_for_again() {
    // The realm is down: every request of the burst gets its answer (502), none hangs, and the
    // mark of the failed fetch is gone.
    let w = World::new(FakeNet::new(|req| match req.url.host_str() {
        Some("auth.test") => Err(FetchError::Unreachable("down".into())),
        _ => hub(req),
    }));
    let paths: Vec<String> = (0..4)
        .map(|_| format!("/v2/library/alpine/blobs/{SHA}"))
        .collect();
    let answers = w.get_all(&paths);
    assert!(
        answers.iter().all(|r| r.status() == 502),
        "{:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert!(!w.tokens.borrow().is_fetching(
        "http://hub.test|anonymous",
        "repository:library/alpine:pull",
        1_000
    ));
}

/// A plain registry whose tags `t0`… are manifests just under the 4 MiB limit.
fn big_manifests(n: usize) -> (FakeNet, Vec<Vec<u8>>) {
    let manifests: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut m = format!(r#"{{"schemaVersion":2,"i":{i},"pad":""#).into_bytes();
            m.resize(edgemirror::policy::MAX_MANIFEST - 64, b'x');
            m.extend_from_slice(br#""}"#);
            m
        })
        .collect();
    let served = manifests.clone();
    let net = FakeNet::new(move |req| {
        let i = req
            .url
            .path()
            .strip_prefix("/v2/big/manifests/t")
            .and_then(|s| s.parse::<usize>().ok());
        let Some(m) = i.and_then(|i| served.get(i)) else {
            return resp(404, &[], b"");
        };
        resp(
            200,
            &[
                (
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                ),
                ("docker-content-digest", &sha(m)),
                ("content-length", &m.len().to_string()),
            ],
            m,
        )
    });
    (net, manifests)
}

#[test]
fn concurrent_cold_manifests_are_read_a_budget_at_a_time_and_all_verified() {
    use edgemirror::mirror::budget;
    let (net, manifests) = big_manifests(8);
    let w = World::new(net);
    let paths: Vec<String> = (0..8)
        .map(|i| format!("/v2/plain/big/manifests/t{i}"))
        .collect();
    let answers = w.get_all(&paths);
    for (r, m) in answers.iter().zip(&manifests) {
        assert_eq!(r.status(), 200);
        assert_eq!(body(r), *m);
        assert_eq!(r.headers()["docker-content-digest"], sha(m).as_str());
    }
    let peak = w.net.budget_peak.get();
    assert!(peak <= budget::MANIFEST_BYTES, "{peak} held at once");
    assert!(
        peak >= 4 * manifests[0].len() as u64,
        "four were read side by side: {peak}"
    );
    assert!(
        w.net.pauses.borrow().iter().all(|&p| p <= budget::ROOM.cap)
            && !w.net.pauses.borrow().is_empty(),
        "the others waited for room: {:?}",
        w.net.pauses.borrow()
    );
    assert_eq!(budget::held(), 0, "every reservation was given back");
    assert_eq!(w.store.manifests.borrow().len(), 8);
}

#[test]
fn a_manifest_that_gets_no_budget_waits_the_upstream_timeout_then_is_a_503_with_retry_after() {
    use edgemirror::mirror::budget;
    let (net, manifests) = big_manifests(1);
    let w = World::new(net);
    let hog = budget::try_reserve(budget::MANIFEST_BYTES).expect("the budget starts empty");
    let (r, _) = w.get("/v2/plain/big/manifests/t0");
    assert_eq!(r.status(), 503);
    assert_eq!(error_code(&r), "UNAVAILABLE");
    assert_eq!(r.headers()["retry-after"], "1");
    let pauses = w.net.pauses.borrow().clone();
    assert_eq!(
        pauses,
        budget::ROOM.pauses(1_000),
        "waited the session's upstream timeout, looking again sooner at first"
    );
    assert_eq!(w.net.bytes_read.get(), 0, "the body was never read");
    assert_eq!(
        w.net.discarded.get(),
        1,
        "the GET's body was let go (a cold repository: no HEAD first)"
    );
    assert!(w.store.manifests.borrow().is_empty() && w.store.tags.borrow().is_empty());
    assert_eq!(
        budget::held(),
        budget::MANIFEST_BYTES,
        "only the hog holds any"
    );
    drop(hog);
    let (r, _) = w.get("/v2/plain/big/manifests/t0");
    assert_eq!(r.status(), 200, "room again once the budget is given back");
    assert_eq!(body(&r), manifests[0]);
}

#[test]
fn a_cold_repository_on_a_registry_whose_realm_is_known_gets_its_token_first() {
    let w = World::new(FakeNet::new(hub));
    // The first request learns the realm from the registry's 401.
    let (r, _) = w.get("/v2/library/alpine/manifests/missing");
    assert_eq!(r.status(), 404);
    let n = w.net.urls().len();
    assert_eq!(n, 3, "401, token, 404: {:?}", w.net.urls());
    // Another repository (another scope, no token yet): the token first, no 401 round trip.
    let (r, _) = w.get("/v2/library/other/manifests/latest");
    assert_eq!(r.status(), 404);
    assert_eq!(
        w.net.urls()[n..],
        [
            "GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Fother%3Apull",
            "GET http://hub.test/v2/library/other/manifests/latest",
        ]
    );
    assert_eq!(w.net.auth_of(n + 1).as_deref(), Some("Bearer tok-1"));
}

#[test]
fn a_realm_that_moved_is_followed_when_the_registry_refuses_the_token_fetched_first() {
    // The registry's realm moves after the first challenge: tokens of the old realm are refused.
    let moved = std::rc::Rc::new(std::cell::Cell::new(false));
    let m = moved.clone();
    let w = World::new(FakeNet::new(move |req| {
        let auth = req
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        match (req.url.host_str().unwrap(), auth.as_deref()) {
            ("auth.test", _) => resp(200, &[], br#"{"token":"old","expires_in":300}"#),
            ("auth2.test", _) => resp(200, &[], br#"{"token":"new","expires_in":300}"#),
            ("hub.test", Some("Bearer new")) => resp(404, &[], b""),
            ("hub.test", Some("Bearer old")) if !m.get() => resp(404, &[], b""),
            ("hub.test", _) => {
                let realm = if m.get() {
                    "http://auth2.test/token"
                } else {
                    "http://auth.test/token"
                };
                resp(
                    401,
                    &[(
                        "www-authenticate",
                        &format!(r#"Bearer realm="{realm}",service="hub""#),
                    )],
                    b"",
                )
            }
            _ => resp(404, &[], b""),
        }
    }));
    let (r, _) = w.get("/v2/library/a/manifests/missing");
    assert_eq!(r.status(), 404);
    moved.set(true);
    let n = w.net.urls().len();
    let (r, _) = w.get("/v2/library/b/manifests/missing");
    assert_eq!(r.status(), 404, "{:?}", w.net.urls());
    let urls = w.net.urls()[n..].to_vec();
    assert!(
        urls[0].starts_with("GET http://auth.test/token"),
        "{urls:?}"
    );
    assert!(
        urls[2].starts_with("GET http://auth2.test/token"),
        "the new realm: {urls:?}"
    );
    assert_eq!(urls.len(), 4, "{urls:?}");
}

/// distribution answers a client that accepts only OCI types, for a Docker v2 image, with a
/// signed schema 1 manifest. The mirror answers `404 MANIFEST_UNKNOWN` saying why, and stores
/// nothing (schema 1's digest cannot be checked against its bytes).
#[rstest]
#[case(Method::GET)]
#[case(Method::HEAD)]
fn schema1_fallback_is_a_clear_404_and_not_stored(#[case] method: Method) {
    let w = World::new(FakeNet::new(|req| {
        let schema1 = br#"{"schemaVersion":1,"signatures":[]}"#;
        resp(
            200,
            &[
                (
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                ),
                ("docker-content-digest", SHA),
                ("content-length", &schema1.len().to_string()),
            ],
            if req.method == Method::HEAD {
                b""
            } else {
                schema1
            },
        )
    }));
    let oci = [("accept", "application/vnd.oci.image.manifest.v1+json")];
    let url = "http://mirror.test/v2/plain/x/manifests/v1";
    let (r, _) = w.request(method.clone(), url, &oci);
    assert_eq!(r.status(), 404);
    if method == Method::GET {
        assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
        assert!(String::from_utf8(body(&r)).unwrap().contains("schema 1"));
    }
    assert!(w.store.manifests.borrow().is_empty());
    assert!(w.store.tags.borrow().is_empty());
}
