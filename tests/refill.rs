//! `BLOB_FILL=after-answer`, on fakes: a blob miss (of at least the size it names) answers with
//! the upstream's body untouched and leaves a refill; the refill fetches the blob again as the mirror and stores it only if it is
//! the blob announced (size, then digest); the leader's flight lands with that write.

mod common;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::flights::Role;
use edgemirror::mirror::refill::{run, Refill, Skipped};
use edgemirror::ports::{BlobFill, AFTER_ANSWER_FROM};
use futures::executor::block_on;
use http::Method;
use rstest::rstest;

const LAYER: &[u8] = b"LAYERBYTES";

fn blob_path() -> String {
    format!("/v2/library/alpine/blobs/{}", sha(LAYER))
}

/// A world whose store fills after the answer, and whose blob host serves `LAYER`.
fn after_answer() -> World {
    let w = World::new(FakeNet::new(hub));
    w.store.fill.set(BlobFill::AfterAnswer { from: 0 });
    w
}

fn take_refill(w: &World) -> Refill {
    let mut refills = w.store.refills.borrow_mut();
    assert_eq!(refills.len(), 1, "one refill left by the answer");
    refills.remove(0)
}

fn refill(w: &World, r: Refill) -> Result<(), Skipped> {
    block_on(run(&w.config, &w.session(), &w.store, r))
}

#[test]
fn the_answer_is_the_upstreams_body_and_the_store_fills_after() {
    let w = after_answer();
    let (r, outcome) = w.get(&blob_path());
    assert_eq!((r.status().as_u16(), body(&r)), (200, LAYER.to_vec()));
    assert_eq!(outcome.cache, "miss");
    assert!(w.store.blobs.borrow().is_empty(), "nothing stored yet");
    assert_eq!(w.net.requests_to("cdn.test"), 1);
    let job = take_refill(&w);
    assert_eq!((job.size, job.digest.as_str()), (10, sha(LAYER).as_str()));
    assert_eq!(refill(&w, job), Ok(()));
    assert_eq!(
        w.net.requests_to("cdn.test"),
        2,
        "fetched again for the store"
    );
    let (r, _) = w.get(&blob_path());
    assert_eq!(body(&r), LAYER);
    assert!(h_cache(&r).contains("hit"), "{}", h_cache(&r));
    assert_eq!(w.net.requests_to("cdn.test"), 2);
}

#[test]
fn a_blob_of_exactly_the_threshold_is_refilled() {
    let w = World::new(FakeNet::new(hub));
    w.store.fill.set(BlobFill::AfterAnswer {
        from: LAYER.len() as u64,
    });
    w.get(&blob_path());
    assert_eq!(take_refill(&w).size, 10);
    assert!(w.store.blobs.borrow().is_empty());
}

#[test]
fn the_refill_goes_as_the_mirror_and_drops_the_token_on_the_redirect() {
    let w = after_answer();
    w.get(&blob_path());
    let job = take_refill(&w);
    let before = w.net.seen.borrow().len();
    refill(&w, job).unwrap();
    let seen = w.net.seen.borrow();
    let again: Vec<_> = seen[before..].iter().collect();
    let registry = again.iter().find(|r| r.url.host_str() == Some("hub.test"));
    assert_eq!(
        registry.and_then(|r| r.headers.get("authorization")),
        Some(&http::HeaderValue::from_static("Bearer tok-1")),
        "the kept token"
    );
    let cdn = again.iter().find(|r| r.url.host_str() == Some("cdn.test"));
    assert!(cdn.is_some_and(|r| !r.headers.contains_key("authorization")));
}

#[test]
fn the_leaders_flight_lands_with_the_refills_write() {
    let w = after_answer();
    w.get(&blob_path());
    assert_eq!(
        w.flights.flying(),
        1,
        "the flight waits for the store write"
    );
    refill(&w, take_refill(&w)).unwrap();
    assert_eq!(w.flights.flying(), 0);
    let key = w.store.blobs.borrow().keys().next().cloned().unwrap();
    assert!(matches!(w.flights.join(&key, w.now.get()), Role::Landed));
}

#[test]
fn followers_during_the_refill_are_answered_from_the_store() {
    let w = after_answer();
    w.get(&blob_path());
    let job = take_refill(&w);
    w.net.interleave.set(true);
    let session = w.session();
    let followers: Vec<_> = (0..3)
        .map(|_| {
            incoming(
                Method::GET,
                &format!("http://mirror.test{}", blob_path()),
                &[],
                b"",
            )
        })
        .collect();
    let answers = futures::future::join_all(
        followers
            .iter()
            .map(|i| edgemirror::mirror::handle(Ok(&w.config), &session, &w.store, i)),
    );
    let (answers, stored) = block_on(futures::future::join(
        answers,
        run(&w.config, &session, &w.store, job),
    ));
    assert_eq!(stored, Ok(()));
    for (r, _) in &answers {
        assert_eq!(body(r), LAYER);
        assert!(h_cache(r).contains("hit"), "{}", h_cache(r));
    }
    assert_eq!(w.net.requests_to("cdn.test"), 2, "{:?}", w.net.urls());
    assert!(
        w.store.refills.borrow().is_empty(),
        "no follower left a refill"
    );
}

/// Second answers that must not be stored, and what the refill says about them.
#[rstest]
#[case::another_size(b"LAYERBYTES+".as_slice(), "200 with 11 bytes")]
#[case::gone(b"".as_slice(), "answered 404")]
fn a_second_answer_unlike_the_first_is_not_stored(#[case] second: &[u8], #[case] why: &str) {
    let second = second.to_vec();
    let cdn_gets = std::cell::Cell::new(0);
    let w = World::new(FakeNet::new(move |req| {
        if req.url.host_str() != Some("cdn.test") {
            return hub(req);
        }
        cdn_gets.set(cdn_gets.get() + 1);
        match (cdn_gets.get(), second.is_empty()) {
            (1, _) => resp(200, &[("content-length", "10")], LAYER),
            (_, true) => resp(404, &[], b"<Error>NoSuchKey</Error>"),
            (_, false) => resp(
                200,
                &[("content-length", &second.len().to_string())],
                &second,
            ),
        }
    }));
    w.store.fill.set(BlobFill::AfterAnswer { from: 0 });
    w.get(&blob_path());
    let got = refill(&w, take_refill(&w));
    assert!(
        matches!(&got, Err(Skipped::Upstream(m)) if m.contains(why)),
        "{got:?}"
    );
    assert!(w.store.blobs.borrow().is_empty());
    assert_eq!(w.flights.flying(), 0, "the flight ended");
    assert_eq!(
        w.store.refused.get(),
        0,
        "turned away before the store saw it"
    );
}

#[test]
fn a_second_answer_with_other_bytes_is_refused_by_the_store() {
    let cdn_gets = std::cell::Cell::new(0);
    let w = World::new(FakeNet::new(move |req| {
        if req.url.host_str() != Some("cdn.test") {
            return hub(req);
        }
        cdn_gets.set(cdn_gets.get() + 1);
        let bytes: &[u8] = if cdn_gets.get() == 1 {
            LAYER
        } else {
            b"LAYERBYTEZ"
        };
        resp(200, &[("content-length", "10")], bytes)
    }));
    w.store.fill.set(BlobFill::AfterAnswer { from: 0 });
    w.get(&blob_path());
    assert_eq!(refill(&w, take_refill(&w)), Ok(()), "handed to the store");
    assert_eq!(w.store.refused.get(), 1, "the digest did not match");
    assert!(w.store.blobs.borrow().is_empty());
    // The failed flight is not a landing: the next request leads again.
    let (r, _) = w.get(&blob_path());
    assert!(h_cache(&r).contains("miss"));
}

#[test]
fn an_upstream_gone_from_the_configuration_stores_nothing() {
    let mut w = after_answer();
    w.get(&blob_path());
    let job = take_refill(&w);
    w.config.upstreams.retain(|u| u.name != "docker.io");
    let before = w.net.seen.borrow().len();
    assert_eq!(refill(&w, job), Err(Skipped::UpstreamGone));
    assert_eq!(w.net.seen.borrow().len(), before, "nothing sent");
    assert_eq!(w.flights.flying(), 0);
}

/// Answers that leave no refill: nothing of theirs is stored in either mode.
#[rstest]
#[case::head(Method::HEAD, &[])]
#[case::range(Method::GET, &[("range", "bytes=0-3")])]
#[case::client_login(Method::GET, &[("authorization", "Basic dTpw")])]
fn answers_the_store_would_not_keep_leave_no_refill(
    #[case] method: Method,
    #[case] headers: &[(&str, &str)],
) {
    let mut w = after_answer();
    // A login may go to the fake hub's realm.
    for u in &mut w.config.upstreams {
        u.realms.push("http://auth.test".into());
    }
    let (r, _) = w.request(
        method,
        &format!("http://mirror.test{}", blob_path()),
        headers,
    );
    assert!(
        r.status().is_success(),
        "{} {:?}",
        r.status(),
        String::from_utf8_lossy(&body(&r))
    );
    assert!(w.store.refills.borrow().is_empty());
    assert!(w.store.blobs.borrow().is_empty());
}

#[rstest]
#[case::with_answer(BlobFill::WithAnswer)]
#[case::after_answer_for_larger_blobs(BlobFill::AfterAnswer { from: 11 })]
fn a_split_answer_is_one_upstream_get(#[case] fill: BlobFill) {
    let w = World::new(FakeNet::new(hub));
    w.store.fill.set(fill);
    let (r, _) = w.get(&blob_path());
    assert_eq!(body(&r), LAYER);
    assert!(w.store.refills.borrow().is_empty());
    assert_eq!(
        w.store.blobs.borrow().len(),
        1,
        "stored from the same answer"
    );
    assert_eq!(w.net.requests_to("cdn.test"), 1);
}

#[rstest]
#[case(None, BlobFill::WithAnswer)]
#[case(Some(""), BlobFill::WithAnswer)]
#[case(Some("with-answer"), BlobFill::WithAnswer)]
#[case(Some(" after-answer "), BlobFill::AfterAnswer { from: AFTER_ANSWER_FROM })]
fn blob_fill_is_read(#[case] text: Option<&str>, #[case] want: BlobFill) {
    let c = Config::from_vars(&Vars {
        blob_fill: text,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.blob_fill, want);
}

#[rstest]
#[case("after")]
#[case("AFTER-ANSWER")]
#[case("with-answer,after-answer")]
#[case("1")]
fn a_bad_blob_fill_names_the_variable(#[case] text: &str) {
    let e = Config::from_vars(&Vars {
        blob_fill: Some(text),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.field, "BLOB_FILL");
    assert!(e.problem.contains("after-answer"), "{}", e.problem);
}
