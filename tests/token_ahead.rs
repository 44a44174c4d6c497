//! Upstream tokens fetched ahead: a token request's scopes name the tokens its pull will need;
//! fetched after the answer, the pull then makes neither the 401 round trip nor the token
//! exchange, and joins a fetch still in flight instead of starting its own.

mod common;

use common::*;
use edgemirror::mirror::token_ahead::{plan, run, Ahead};
use futures::executor::block_on;
use http::Method;
use rstest::rstest;

fn ahead(upstream: &str, scope: &str) -> Ahead {
    Ahead {
        upstream: upstream.into(),
        scope: scope.into(),
    }
}

fn alpine() -> Vec<Ahead> {
    vec![ahead("docker.io", "repository:library/alpine:pull")]
}

#[test]
fn the_anonymous_token_asks_for_its_scopes_tokens_ahead() {
    let w = World::new(FakeNet::new(hub));
    let (r, outcome) = w.get("/token?service=edgemirror&scope=repository%3Aalpine%3Apull");
    assert_eq!(r.status(), 200);
    assert!(String::from_utf8_lossy(&body(&r)).contains("edgemirror-anonymous"));
    assert_eq!(outcome.ahead, alpine());
    assert!(w.net.urls().is_empty(), "the answer itself goes nowhere");
}

#[rstest]
#[case::library_name(&["repository:alpine:pull"], alpine())]
#[case::by_prefix(&["repository:plain/x/y:pull,push"], vec![ahead("plain", "repository:x/y:pull")])]
#[case::each_once(&["repository:alpine:pull", "repository:library/alpine:pull"], alpine())]
#[case::at_most_two(
    &["repository:a:pull", "repository:b:pull", "repository:c:pull"],
    vec![ahead("docker.io", "repository:library/a:pull"), ahead("docker.io", "repository:library/b:pull")]
)]
fn scopes_become_upstream_scopes(#[case] scopes: &[&str], #[case] want: Vec<Ahead>) {
    let w = World::new(FakeNet::new(hub));
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    assert_eq!(plan(&w.config, "mirror.test", &scopes), want);
}

#[rstest]
#[case::no_scope(&[])]
#[case::registry_scope(&["registry:catalog:*"])]
#[case::bad_name(&["repository:UPPER/Case:pull"])]
#[case::no_name(&["repository::pull"])]
#[case::not_a_scope(&["pull"])]
#[case::traversal(&["repository:../etc:pull"])]
fn scopes_that_name_no_pull_ask_for_nothing(#[case] scopes: &[&str]) {
    let w = World::new(FakeNet::new(hub));
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    assert_eq!(plan(&w.config, "mirror.test", &scopes), vec![]);
}

#[test]
fn a_pull_after_its_token_was_fetched_ahead_goes_straight_to_the_registry() {
    let w = World::new(FakeNet::new(hub));
    block_on(run(&w.config, &w.session(), &alpine()));
    assert_eq!(
        w.net.urls(),
        [
            // A registry met for the first time: its realm from an anonymous GET /v2/.
            "GET http://hub.test/v2/",
            "GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Falpine%3Apull",
        ]
    );
    let (r, _) = w.get("/v2/library/alpine/manifests/latest");
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), MANIFEST);
    assert_eq!(
        w.net.urls()[2..],
        ["GET http://hub.test/v2/library/alpine/manifests/latest"]
    );
    assert_eq!(w.net.auth_of(2).as_deref(), Some("Bearer tok-1"));

    // Kept now: another token request for the scope fetches nothing.
    block_on(run(&w.config, &w.session(), &alpine()));
    assert_eq!(w.net.urls().len(), 3);
    // Another repository on the same registry: its realm is known, only the token is fetched.
    block_on(run(
        &w.config,
        &w.session(),
        &[ahead("docker.io", "repository:library/other:pull")],
    ));
    assert_eq!(
        w.net.urls()[3..],
        ["GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Fother%3Apull"]
    );
}

#[test]
fn a_pull_arriving_while_its_token_is_fetched_ahead_waits_for_that_fetch() {
    let w = World::new(FakeNet::new(hub));
    w.net.interleave.set(true);
    let session = w.session();
    let list = alpine();
    let req = incoming(
        Method::GET,
        "http://mirror.test/v2/library/alpine/manifests/latest",
        &[],
        b"",
    );
    let (_, (r, _)) = block_on(futures::future::join(
        run(&w.config, &session, &list),
        edgemirror::mirror::handle(Ok(&w.config), &session, &w.store, &req),
    ));
    assert_eq!(r.status(), 200);
    assert_eq!(w.net.requests_to("auth.test"), 1, "{:?}", w.net.urls());
    let gets: Vec<String> = w
        .net
        .urls()
        .into_iter()
        .filter(|u| u.contains("/manifests/"))
        .collect();
    assert_eq!(gets.len(), 1, "no 401 round trip: {:?}", w.net.urls());
    assert!(!w.tokens.borrow().is_fetching(
        "http://hub.test|anonymous",
        "repository:library/alpine:pull",
        1_000
    ));
}

#[test]
fn a_token_kept_or_in_flight_is_not_fetched_again() {
    let w = World::new(FakeNet::new(hub));
    w.tokens.borrow_mut().begin_fetch(
        "http://hub.test|anonymous",
        "repository:library/alpine:pull",
        1_000,
    );
    block_on(run(&w.config, &w.session(), &alpine()));
    assert!(w.net.urls().is_empty(), "{:?}", w.net.urls());
}

#[test]
fn a_registry_without_token_auth_is_asked_once_for_a_while() {
    let w = World::new(FakeNet::new(|_| resp(200, &[], b"{}")));
    let list = [ahead("plain", "repository:x:pull")];
    block_on(run(&w.config, &w.session(), &list));
    assert_eq!(w.net.urls(), ["GET http://plain.test/v2/"]);
    block_on(run(&w.config, &w.session(), &list));
    assert_eq!(w.net.urls().len(), 1, "not asked again: {:?}", w.net.urls());
    assert!(!w.tokens.borrow().is_fetching(
        "http://plain.test|anonymous",
        "repository:x:pull",
        1_000
    ));
}

#[test]
fn a_realm_that_fails_leaves_nothing_behind_and_the_pull_fetches_its_own() {
    let w = World::new(FakeNet::new(|req| match req.url.host_str() {
        Some("auth.test") => Err(edgemirror::ports::FetchError::Unreachable("down".into())),
        _ => hub(req),
    }));
    block_on(run(&w.config, &w.session(), &alpine()));
    assert!(!w.tokens.borrow().is_fetching(
        "http://hub.test|anonymous",
        "repository:library/alpine:pull",
        1_000
    ));
    let (r, _) = w.get("/v2/library/alpine/manifests/latest");
    assert_eq!(r.status(), 502, "the realm is still down, and said so");
}

#[test]
fn an_upstream_nobody_configured_is_never_asked() {
    let w = World::new(FakeNet::new(hub));
    block_on(run(
        &w.config,
        &w.session(),
        &[ahead("evil.test", "repository:x:pull")],
    ));
    assert!(w.net.urls().is_empty());
}

/// The hub, with a second repository.
fn hub_and_busybox(
    req: &edgemirror::ports::UpstreamRequest,
) -> Result<http::Response<Vec<u8>>, edgemirror::ports::FetchError> {
    let authed = req
        .headers
        .get("authorization")
        .is_some_and(|v| v == "Bearer tok-1");
    if authed && req.url.path() == "/v2/library/busybox/manifests/latest" {
        let digest = sha(MANIFEST);
        let ct = "application/vnd.docker.distribution.manifest.v2+json";
        return resp(
            200,
            &[("content-type", ct), ("docker-content-digest", &digest)],
            MANIFEST,
        );
    }
    hub(req)
}

/// Which gated lookup of the fake store a test holds back.
type GateOf = fn(
    &FakeStore,
) -> (
    &std::cell::RefCell<Option<Box<dyn Fn() -> bool>>>,
    &std::cell::Cell<bool>,
);

/// busybox's tag, cold, through a mirror that has met the registry (its realm learned on a first
/// repository), with one kind of store lookup (`gate`) answered only once `open` says so: one
/// after the other, that lookup would wait in vain. Checks the answer, that the lookup did not
/// give up, and that the upstream saw the token and the GET only.
fn busybox_with_a_gated_lookup(
    gate: GateOf,
    open: impl Fn(&World) -> bool + 'static,
) -> std::rc::Rc<World> {
    let w = std::rc::Rc::new(World::new(FakeNet::new(hub_and_busybox)));
    assert_eq!(w.get("/v2/library/alpine/manifests/latest").0.status(), 200);
    let n = w.net.urls().len();
    let weak = std::rc::Rc::downgrade(&w);
    *gate(&w.store).0.borrow_mut() =
        Some(Box::new(move || weak.upgrade().is_some_and(|w| open(&w))));
    let (r, _) = w.get("/v2/library/busybox/manifests/latest");
    *gate(&w.store).0.borrow_mut() = None;
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), MANIFEST);
    assert!(
        !gate(&w.store).1.get(),
        "the gated lookup ran beside what opens it"
    );
    assert_eq!(
        w.net.urls()[n..],
        [
            "GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Fbusybox%3Apull",
            "GET http://hub.test/v2/library/busybox/manifests/latest",
        ]
    );
    w
}

#[test]
fn a_cold_tag_asks_the_store_and_fetches_its_token_side_by_side() {
    // The marker's lookup answers only once busybox's token was asked for.
    busybox_with_a_gated_lookup(
        |s| (&s.note_gate, &s.note_gave_up),
        |w| w.net.urls().iter().any(|u| u.contains("library%2Fbusybox")),
    );
}

#[test]
fn a_cold_tag_asks_the_store_for_its_record_and_the_repositorys_marker_in_one_round() {
    // The record's lookup answers only once the marker was asked for (the realm's first
    // repository asked one).
    let w = busybox_with_a_gated_lookup(
        |s| (&s.tag_gate, &s.tag_gave_up),
        |w| w.store.notes_asked.get() > 1,
    );
    assert_eq!(
        w.store.notes_asked.get(),
        2,
        "the marker asked once per cold tag"
    );
}

#[test]
fn a_token_fetched_beside_the_lookup_that_fails_is_the_answer_and_is_not_asked_twice() {
    let w = World::new(FakeNet::new(|req| {
        if req.url.host_str() == Some("auth.test")
            && req.url.query().is_some_and(|q| q.contains("busybox"))
        {
            return resp(200, &[], b"not json");
        }
        hub_and_busybox(req)
    }));
    assert_eq!(w.get("/v2/library/alpine/manifests/latest").0.status(), 200);
    let n = w.net.urls().len();
    let (r, _) = w.get("/v2/library/busybox/manifests/latest");
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "UNAVAILABLE");
    assert_eq!(
        w.net.urls()[n..],
        ["GET http://auth.test/token?service=hub&scope=repository%3Alibrary%2Fbusybox%3Apull"],
        "one token request, and nothing sent to the registry without a token"
    );
}
