//! Coalescing inside one isolate, on fakes: a burst of requests for one cold tag, manifest or blob
//! costs the upstream one exchange; a leader whose store write fails leaves its followers to fetch
//! for themselves; requests with a client's credentials never share anything.

mod common;

use common::*;
use http::Method;

fn blob_path(digest: &str) -> String {
    format!("/v2/library/alpine/blobs/{digest}")
}

/// Requests the registry answered (with a token: the first, anonymous try only gets the 401
/// that names the realm, which Docker Hub does not count as a pull).
fn requests(w: &World, method: &str, path: &str) -> usize {
    w.net
        .seen
        .borrow()
        .iter()
        .filter(|r| r.method.as_str() == method && r.url.path() == path)
        .filter(|r| r.headers.contains_key("authorization"))
        .count()
}

#[test]
fn a_burst_for_one_cold_blob_makes_one_upstream_get() {
    let w = World::new(FakeNet::new(hub));
    let digest = sha(b"LAYERBYTES");
    let answers = w.get_all(&vec![blob_path(&digest); 16]);
    assert!(answers
        .iter()
        .all(|r| r.status() == 200 && body(r) == b"LAYERBYTES"));
    assert_eq!(w.net.requests_to("cdn.test"), 1, "{:?}", w.net.urls());
    assert_eq!(
        answers
            .iter()
            .filter(|r| h_cache(r).contains("hit"))
            .count(),
        15,
        "the followers were answered from the store"
    );
    assert_eq!(w.flights.flying(), 0, "the flight landed");
}

#[test]
fn a_burst_for_one_cold_tag_makes_one_get() {
    let w = World::new(FakeNet::new(hub));
    let path = "/v2/alpine/manifests/latest".to_string();
    let answers = w.get_all(&vec![path; 16]);
    assert!(answers
        .iter()
        .all(|r| r.status() == 200 && body(r) == MANIFEST));
    let upstream = "/v2/library/alpine/manifests/latest";
    assert_eq!(
        (
            requests(&w, "HEAD", upstream),
            requests(&w, "GET", upstream)
        ),
        (0, 1),
        "a cold repository: no HEAD first; {:?}",
        w.net.urls()
    );
}

#[test]
fn a_burst_for_one_cold_manifest_digest_makes_one_get() {
    // Straight by digest, as containerd fetches platform manifests.
    let digest = sha(MANIFEST);
    let path = format!("/v2/alpine/manifests/{digest}");
    let upstream = format!("/v2/library/alpine/manifests/{digest}");
    let w2 = World::new(FakeNet::new(move |req| {
        if req.url.path() == upstream {
            let mut to_hub = req.clone();
            to_hub.url.set_path("/v2/library/alpine/manifests/latest");
            return hub(&to_hub);
        }
        hub(req)
    }));
    let answers = w2.get_all(&vec![path.clone(); 16]);
    assert!(answers
        .iter()
        .all(|r| r.status() == 200 && body(r) == MANIFEST));
    let gets = requests(
        &w2,
        "GET",
        &format!("/v2/library/alpine/manifests/{digest}"),
    );
    assert_eq!(gets, 1, "{:?}", w2.net.urls());
}

/// The fake blob host's bytes do not hash to this digest: the store refuses the leader's write,
/// so each follower fetches for itself (and nothing wrong is stored or served from a store).
#[test]
fn when_the_leaders_write_fails_followers_fetch_for_themselves() {
    let w = World::new(FakeNet::new(hub));
    let answers = w.get_all(&vec![blob_path(SHA); 4]);
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(w.net.requests_to("cdn.test"), 4);
    assert!(w.store.blobs.borrow().is_empty());
    assert_eq!(w.flights.flying(), 0);
}

#[test]
fn ranges_and_client_credentials_do_not_take_part() {
    let w = World::new(FakeNet::new(hub));
    let digest = sha(b"LAYERBYTES");
    let url = format!("http://mirror.test{}", blob_path(&digest));
    for _ in 0..2 {
        let (r, _) = w.request(Method::GET, &url, &[("range", "bytes=0-3")]);
        assert_eq!(r.status(), 206);
    }
    assert_eq!(
        w.net.requests_to("cdn.test"),
        2,
        "a range is fetched as it is"
    );
    assert_eq!(w.flights.flying(), 0, "and leads no flight");
}

#[test]
fn a_burst_after_the_tag_ttl_revalidates_once() {
    let w = World::new(FakeNet::new(hub));
    let path = "/v2/alpine/manifests/latest".to_string();
    assert_eq!(w.get(&path).0.status(), 200);
    let upstream = "/v2/library/alpine/manifests/latest";
    let heads_before = requests(&w, "HEAD", upstream);
    // Past the tag TTL (10 minutes), within stale-if-error: one HEAD revalidates for everyone.
    w.now.set(w.now.get() + 11 * 60);
    let answers = w.get_all(&vec![path; 16]);
    assert!(answers
        .iter()
        .all(|r| r.status() == 200 && body(r) == MANIFEST));
    assert_eq!(
        requests(&w, "HEAD", upstream) - heads_before,
        1,
        "{:?}",
        w.net.urls()
    );
    assert_eq!(
        requests(&w, "GET", upstream),
        1,
        "the manifest itself was held"
    );
}
