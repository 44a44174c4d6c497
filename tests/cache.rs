//! The cache's flows on fakes, with time moved by hand: tag records within and past their TTL, HEAD
//! revalidation, stale-if-error, 404s, Accept variants, digest checks, and blobs from the store.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use edgemirror::mirror::Reply;
use edgemirror::ports::{FetchError, UpstreamRequest};
use http::{Method, Response};

const V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const LAYER: &[u8] = b"0123456789";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Up,
    Fails503,
    Unreachable,
    Gone,
    /// Serves bytes that do not match the digest it announces.
    Lies,
}

/// A registry with one tag whose manifest the test can change, and a blob behind a 307.
struct Upstream {
    manifest: RefCell<Vec<u8>>,
    mode: Cell<Mode>,
    blob: RefCell<Vec<u8>>,
}

fn world() -> (World, Rc<Upstream>) {
    let up = Rc::new(Upstream {
        manifest: RefCell::new(b"{\"v\":1}".to_vec()),
        mode: Cell::new(Mode::Up),
        blob: RefCell::new(LAYER.to_vec()),
    });
    let u = up.clone();
    let net = FakeNet::new(move |req: &UpstreamRequest| {
        match u.mode.get() {
            Mode::Unreachable => return Err(FetchError::Unreachable("down".into())),
            Mode::Fails503 => return resp(503, &[], b""),
            Mode::Gone => {
                return resp(
                    404,
                    &[],
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone"}]}"#,
                )
            }
            _ => {}
        }
        let path = req.url.path();
        if req.url.host_str() == Some("cdn.test") {
            let b = u.blob.borrow().clone();
            // Like S3 and distribution: a range past the end is 416 with the size.
            if req.headers.get("range").is_some_and(|r| r == "bytes=10-") {
                let size = format!("bytes */{}", b.len());
                return resp(416, &[("content-range", &size)], b"");
            }
            return resp(200, &[("content-length", &b.len().to_string())], &b);
        }
        if path.contains("/blobs/") {
            return resp(307, &[("location", "http://cdn.test/layer")], b"");
        }
        let m = u.manifest.borrow().clone();
        let digest = sha(&m);
        let accept = req
            .headers
            .get("accept")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let ct = if accept.contains(INDEX) { INDEX } else { V2 };
        let body = if u.mode.get() == Mode::Lies {
            b"{\"tampered\":1}".to_vec()
        } else {
            m
        };
        resp(
            200,
            &[
                ("content-type", ct),
                ("docker-content-digest", &digest),
                ("content-length", &body.len().to_string()),
            ],
            &body,
        )
    });
    (World::new(net), up)
}

fn get(
    w: &World,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<edgemirror::mirror::Reply<Vec<u8>>> {
    w.request(method, &format!("http://mirror.test{path}"), headers)
        .0
}

fn tag(w: &World) -> Response<edgemirror::mirror::Reply<Vec<u8>>> {
    get(
        w,
        Method::GET,
        "/v2/plain/x/manifests/latest",
        &[("accept", V2)],
    )
}

/// A GET of the upstream's current manifest by its digest.
fn by_digest(w: &World, up: &Upstream) -> Response<edgemirror::mirror::Reply<Vec<u8>>> {
    let digest = sha(&up.manifest.borrow());
    get(
        w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{digest}"),
        &[],
    )
}

fn methods(w: &World) -> Vec<String> {
    w.net
        .seen
        .borrow()
        .iter()
        .map(|r| r.method.to_string())
        .collect()
}

#[test]
fn a_second_pull_within_the_tag_ttl_costs_the_upstream_nothing() {
    let (w, up) = world();
    let first = tag(&w);
    assert_eq!(first.status(), 200);
    assert_eq!(h_cache(&first), "edgemirror; fwd=miss; stored");
    let n = w.net.urls().len();
    w.now.set(w.now.get() + 599);
    let second = tag(&w);
    assert_eq!(second.status(), 200);
    assert_eq!(body(&second), *up.manifest.borrow());
    assert_eq!(
        second.headers()["docker-content-digest"],
        sha(&up.manifest.borrow()).as_str()
    );
    assert_eq!(second.headers()["content-type"], V2);
    assert_eq!(h_cache(&second), "edgemirror; hit; ttl=1; detail=memory");
    assert_eq!(w.net.urls().len(), n, "no upstream request");
    // By digest too.
    let by_digest = get(
        &w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{}", sha(&up.manifest.borrow())),
        &[],
    );
    assert!(h_cache(&by_digest).contains("hit"));
    assert_eq!(w.net.urls().len(), n);
}

#[test]
fn past_the_ttl_one_head_revalidates_and_restarts_the_ttl() {
    let (w, _up) = world();
    tag(&w);
    let before = methods(&w).len();
    w.now.set(w.now.get() + 600);
    let r = tag(&w);
    assert_eq!(r.status(), 200);
    assert!(h_cache(&r).contains("revalidated"), "{}", h_cache(&r));
    assert_eq!(methods(&w)[before..], ["HEAD"], "exactly one HEAD, no GET");
    w.now.set(w.now.get() + 599);
    assert!(h_cache(&tag(&w)).contains("hit"), "the TTL restarted");
    assert_eq!(methods(&w).len(), before + 1);
}

#[test]
fn a_moved_tag_is_fetched_anew() {
    let (w, up) = world();
    tag(&w);
    *up.manifest.borrow_mut() = b"{\"v\":2}".to_vec();
    w.now.set(w.now.get() + 601);
    let r = tag(&w);
    assert_eq!(body(&r), b"{\"v\":2}");
    assert_eq!(
        r.headers()["docker-content-digest"],
        sha(b"{\"v\":2}").as_str()
    );
    let n = methods(&w).len();
    assert_eq!(methods(&w)[n - 2..], ["HEAD", "GET"]);
    assert!(h_cache(&tag(&w)).contains("hit"));
}

#[test]
fn stale_is_served_when_the_upstream_fails_within_the_window_only() {
    for mode in [Mode::Fails503, Mode::Unreachable] {
        let (w, up) = world();
        tag(&w);
        up.mode.set(mode);
        w.now.set(w.now.get() + 600 + 24 * 3600 - 1);
        let r = tag(&w);
        assert_eq!(r.status(), 200);
        assert_eq!(h_cache(&r), "edgemirror; hit; detail=stale-if-error");
        assert!(r.headers()["warning"].to_str().unwrap().starts_with("110"));
        assert_eq!(body(&r), *up.manifest.borrow());
        w.now.set(w.now.get() + 1);
        let r = tag(&w);
        assert!(
            r.status() == 502 || r.status() == 503,
            "past the window the failure shows: {}",
            r.status()
        );
    }
}

#[test]
fn a_tag_deleted_upstream_is_not_served_from_cache() {
    let (w, up) = world();
    tag(&w);
    up.mode.set(Mode::Gone);
    w.now.set(w.now.get() + 601);
    let r = tag(&w);
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
    assert!(w.store.tags.borrow().is_empty(), "record forgotten");
    up.mode.set(Mode::Up);
    assert!(h_cache(&tag(&w)).contains("fwd="), "asked upstream again");
}

#[test]
fn a_tag_whose_manifest_is_held_resolves_with_one_head_and_no_get() {
    let (w, up) = world();
    // Held by digest only (as prewarm or another tag leaves it).
    by_digest(&w, &up);
    let n = methods(&w).len();
    let r = tag(&w);
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), *up.manifest.borrow());
    assert_eq!(methods(&w)[n..], ["HEAD"]);
    assert!(h_cache(&tag(&w)).contains("hit"), "and the record is kept");
    assert_eq!(methods(&w).len(), n + 1);
}

#[test]
fn a_pull_writes_its_repositorys_marker_once_per_window() {
    let (w, up) = world();
    tag(&w);
    assert_eq!(
        w.store.note_puts.get(),
        1,
        "the first manifest stored marks the repository"
    );
    // Another manifest of the repository (a platform's, as an index's pull fetches next).
    *up.manifest.borrow_mut() = b"{\"v\":2}".to_vec();
    assert!(h_cache(&by_digest(&w, &up)).contains("stored"));
    assert_eq!(w.store.note_puts.get(), 1, "marked already");
    // Past the window the marker is written again (the store may have let it go).
    w.now
        .set(w.now.get() + edgemirror::mirror::markers::REWRITE_SECS);
    *up.manifest.borrow_mut() = b"{\"v\":3}".to_vec();
    by_digest(&w, &up);
    assert_eq!(w.store.note_puts.get(), 2);
}

#[test]
fn a_client_never_gets_a_media_type_it_did_not_accept() {
    let (w, _up) = world();
    let index = get(
        &w,
        Method::GET,
        "/v2/plain/x/manifests/latest",
        &[("accept", INDEX)],
    );
    assert_eq!(index.headers()["content-type"], INDEX);
    let n = w.net.urls().len();
    let old_client = tag(&w);
    assert_eq!(
        old_client.headers()["content-type"],
        V2,
        "the media type the upstream names for this Accept list"
    );
    assert!(
        !h_cache(&old_client).contains("hit"),
        "a different Accept list is a different key"
    );
    assert_eq!(
        methods(&w)[n..],
        ["HEAD"],
        "the bytes were held: a HEAD resolves the tag, no GET"
    );
    // Both are now cached, each under its own list.
    assert_eq!(
        get(
            &w,
            Method::GET,
            "/v2/plain/x/manifests/latest",
            &[("accept", INDEX)]
        )
        .headers()["content-type"],
        INDEX
    );
    assert_eq!(tag(&w).headers()["content-type"], V2);
    assert_eq!(w.net.urls().len(), n + 1);
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused_and_not_stored() {
    let (w, up) = world();
    up.mode.set(Mode::Lies);
    let r = tag(&w);
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    assert!(w.store.manifests.borrow().is_empty() && w.store.tags.borrow().is_empty());
    let digest = sha(&up.manifest.borrow());
    let r = get(
        &w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{digest}"),
        &[],
    );
    assert_eq!(r.status(), 502);
    assert!(w.store.manifests.borrow().is_empty());
}

#[test]
fn a_held_manifest_is_served_as_the_stores_body_and_never_read_by_the_core() {
    let (mut w, up) = world();
    // The store's way (the isolate's memory is tested in tests/memo.rs).
    w.config.manifest_memory = 0;
    let m = up.manifest.borrow().clone();
    let digest = sha(&m);
    assert_eq!(tag(&w).status(), 200);
    assert_eq!(
        w.net.bytes_read.get(),
        m.len(),
        "a miss reads the bytes once, to hash them"
    );
    let held: Vec<(Vec<u8>, u64)> = w
        .store
        .manifests
        .borrow()
        .values()
        .map(|s| (s.body.clone(), s.size))
        .collect();
    assert_eq!(
        held,
        [(m.clone(), m.len() as u64)],
        "what was verified is kept"
    );
    // By tag, the bytes kept with the tag's record answer (one store lookup); by digest, the
    // stored manifest.
    for (path, by_tag) in [
        ("/v2/plain/x/manifests/latest".to_string(), true),
        (format!("/v2/plain/x/manifests/{digest}"), false),
    ] {
        let lookups = w.store.manifest_hits.get();
        let with_record = w.store.tag_bodies_served.get();
        let r = get(&w, Method::GET, &path, &[("accept", V2)]);
        assert!(h_cache(&r).contains("hit"), "{path}: {}", h_cache(&r));
        assert!(
            matches!(r.body(), Reply::Stream(b) if *b == m),
            "{path}: the store's own body, passed on"
        );
        assert_eq!(r.headers()["content-length"], m.len().to_string().as_str());
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(r.headers()["content-type"], V2);
        assert_eq!(
            (w.store.manifest_hits.get(), w.store.tag_bodies_served.get()),
            if by_tag {
                (lookups, with_record + 1)
            } else {
                (lookups + 1, with_record)
            },
            "{path}"
        );
    }
    assert_eq!(
        w.net.bytes_read.get(),
        m.len(),
        "no hit brought the bytes into the core"
    );
    // A HEAD by digest answers from the store's metadata and lets its body go unread.
    let discarded = w.net.discarded.get();
    let h = get(
        &w,
        Method::HEAD,
        &format!("/v2/plain/x/manifests/{digest}"),
        &[],
    );
    assert_eq!(h.status(), 200);
    assert!(h_cache(&h).contains("hit"));
    assert!(matches!(h.body(), Reply::Empty));
    assert_eq!(h.headers()["content-length"], m.len().to_string().as_str());
    assert_eq!(w.net.discarded.get(), discarded + 1);
    assert_eq!(w.net.bytes_read.get(), m.len());
    // Held under a type this client does not take: the store's body is let go, the upstream asked.
    let discarded = w.net.discarded.get();
    let r = get(
        &w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{digest}"),
        &[("accept", INDEX)],
    );
    assert!(!h_cache(&r).contains("hit"));
    assert_eq!(w.net.discarded.get(), discarded + 1);
}

#[test]
fn a_head_miss_records_the_tag_and_the_next_head_is_a_hit() {
    let (mut w, _up) = world();
    // The store's way (the isolate's memory is tested in tests/memo.rs).
    w.config.manifest_memory = 0;
    let h1 = get(
        &w,
        Method::HEAD,
        "/v2/plain/x/manifests/latest",
        &[("accept", V2)],
    );
    assert_eq!(h1.status(), 200);
    assert_eq!(h_cache(&h1), "edgemirror; fwd=miss; stored");
    let h2 = get(
        &w,
        Method::HEAD,
        "/v2/plain/x/manifests/latest",
        &[("accept", V2)],
    );
    assert!(h_cache(&h2).contains("hit"));
    assert_eq!(
        h2.headers()["docker-content-digest"],
        h1.headers()["docker-content-digest"]
    );
    assert_eq!(
        h2.headers()["content-length"],
        h1.headers()["content-length"]
    );
    assert!(matches!(h2.body(), edgemirror::mirror::Reply::Empty));
    assert_eq!(methods(&w), ["HEAD"]);
    // A GET needs the bytes: fetched once, then held.
    assert_eq!(tag(&w).status(), 200);
    assert_eq!(methods(&w), ["HEAD", "GET"]);
    // Now the record holds the bytes: a HEAD answers from it and lets the bytes go unread, a
    // GET streams them; neither looks up the stored manifest.
    let (discarded, manifest_lookups) = (w.net.discarded.get(), w.store.manifest_hits.get());
    let h3 = get(
        &w,
        Method::HEAD,
        "/v2/plain/x/manifests/latest",
        &[("accept", V2)],
    );
    assert!(h_cache(&h3).contains("hit") && matches!(h3.body(), edgemirror::mirror::Reply::Empty));
    assert_eq!(
        w.net.discarded.get(),
        discarded + 1,
        "the record's bytes let go"
    );
    assert!(h_cache(&tag(&w)).contains("hit"));
    assert_eq!(w.store.manifest_hits.get(), manifest_lookups);
    assert_eq!(methods(&w), ["HEAD", "GET"]);
}

#[test]
fn blobs_are_stored_on_a_miss_and_served_whole_or_in_ranges_from_the_store() {
    let (w, _up) = world();
    let path = format!("/v2/plain/x/blobs/{}", sha(LAYER));
    let first = get(&w, Method::GET, &path, &[]);
    assert_eq!(body(&first), LAYER);
    assert_eq!(h_cache(&first), "edgemirror; fwd=miss; stored");
    let n = w.net.urls().len();
    let again = get(&w, Method::GET, &path, &[]);
    assert_eq!(body(&again), LAYER);
    assert!(h_cache(&again).contains("hit"));
    let part = get(&w, Method::GET, &path, &[("range", "bytes=2-4")]);
    assert_eq!(part.status(), 206);
    assert_eq!(body(&part), b"234");
    assert_eq!(part.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(part.headers()["content-length"], "3");
    let tail = get(&w, Method::GET, &path, &[("range", "bytes=-3")]);
    assert_eq!(body(&tail), b"789");
    let outside = get(&w, Method::GET, &path, &[("range", "bytes=10-")]);
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], "bytes */10");
    let head = get(&w, Method::HEAD, &path, &[]);
    assert_eq!(head.headers()["content-length"], "10");
    assert_eq!(w.net.urls().len(), n, "all from the store");
}

#[test]
fn a_blob_with_wrong_bytes_is_never_stored() {
    let (w, up) = world();
    *up.blob.borrow_mut() = b"not the layer".to_vec();
    let path = format!("/v2/plain/x/blobs/{}", sha(LAYER));
    get(&w, Method::GET, &path, &[]);
    assert_eq!(w.store.refused.get(), 1);
    assert!(w.store.blobs.borrow().is_empty());
    let n = w.net.urls().len();
    *up.blob.borrow_mut() = LAYER.to_vec();
    let r = get(&w, Method::GET, &path, &[]);
    assert!(
        h_cache(&r).contains("miss"),
        "the next pull goes upstream again"
    );
    assert!(w.net.urls().len() > n);
}

/// A cold range past the end: the upstream's 416 and its `Content-Range: bytes */size` reach the
/// client (which learns the size from it).
#[test]
fn a_cold_range_past_the_end_keeps_the_upstreams_content_range() {
    let (w, _up) = world();
    let path = format!("/v2/plain/x/blobs/{}", sha(LAYER));
    let r = get(&w, Method::GET, &path, &[("range", "bytes=10-")]);
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");
    assert!(body(&r).starts_with(b"{\"errors\""));
}

/// A Range the mirror does not understand, on a stored blob: answered from the store, whole (a
/// server may ignore a Range it cannot satisfy as asked), without the upstream.
#[rstest::rstest]
#[case("bytes=0-1,4-5")]
#[case("bytes=abc")]
#[case("pages=1-2")]
#[case("bytes=5-2")]
fn a_range_not_understood_on_a_stored_blob_is_answered_from_the_store(#[case] range: &str) {
    let (w, _up) = world();
    let path = format!("/v2/plain/x/blobs/{}", sha(LAYER));
    get(&w, Method::GET, &path, &[]);
    let n = w.net.urls().len();
    let r = get(&w, Method::GET, &path, &[("range", range)]);
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), LAYER);
    assert!(h_cache(&r).contains("hit"));
    assert_eq!(w.net.urls().len(), n, "not asked upstream");
}

#[test]
fn range_requests_on_a_miss_pass_through_and_are_not_stored() {
    let (w, _up) = world();
    let path = format!("/v2/plain/x/blobs/{}", sha(LAYER));
    let r = get(&w, Method::GET, &path, &[("range", "bytes=0-1")]);
    assert_eq!(
        h_cache(&r),
        "edgemirror; fwd=miss; detail=\"range request\""
    );
    assert!(w.store.blobs.borrow().is_empty());
}

#[test]
fn tag_ttls_are_per_upstream() {
    let (mut w, _up) = world();
    let plain = w
        .config
        .upstreams
        .iter_mut()
        .find(|u| u.name == "plain")
        .unwrap();
    plain.ttls.tag = 3600;
    tag(&w);
    w.now.set(w.now.get() + 3599);
    assert!(h_cache(&tag(&w)).contains("hit"));
    w.now.set(w.now.get() + 1);
    assert!(h_cache(&tag(&w)).contains("revalidated"));
}
