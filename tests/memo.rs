//! The isolate's memory of manifests (`mirror::memo`): the bookkeeping (capacity, least recently
//! used first, the entry limit), and the flows on fakes: a warm tag or digest answered without a
//! store lookup, only while the tag is fresh, only what the store was given, never for a client's
//! own credentials, a store hit checked before it is kept, and `MANIFEST_MEMORY`.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::memo::{Kept, Memo, ENTRY_MAX, MAX_CAPACITY};
use edgemirror::mirror::Reply;
use edgemirror::ports::{StoredManifest, TagRecord};
use http::{Method, Response};
use rstest::rstest;

const V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn kept(bytes: usize) -> Kept {
    Kept {
        record: TagRecord {
            digest: "sha256:00".into(),
            media_type: V2.into(),
            size: bytes as u64,
            stored_at: 0,
        },
        bytes: Some(vec![7u8; bytes].into()),
    }
}

#[test]
fn the_least_recently_used_go_first_and_the_capacity_holds() {
    let mut m = Memo::new(3 * 1200);
    m.put("a", kept(1000));
    m.put("b", kept(1000));
    m.put("c", kept(1000));
    assert_eq!(m.len(), 3);
    assert!(m.get("a").is_some(), "a used again: b is now the oldest");
    m.put("d", kept(1000));
    assert!(m.get("b").is_none(), "the least recently used went");
    assert!(m.get("a").is_some() && m.get("c").is_some() && m.get("d").is_some());
    assert!(m.used() <= m.capacity());
    // Replacing an entry counts it once.
    let before = m.used();
    m.put("d", kept(1000));
    assert_eq!(m.used(), before);
    m.remove("d");
    m.remove("d");
    assert_eq!(m.len(), 2);
}

#[test]
fn what_does_not_fit_is_not_kept_and_a_smaller_capacity_lets_the_oldest_go() {
    let mut m = Memo::new(MAX_CAPACITY);
    m.put("big", kept(ENTRY_MAX as usize + 1));
    assert!(m.get("big").is_none(), "over the entry limit");
    m.put("ok", kept(ENTRY_MAX as usize));
    assert!(m.get("ok").is_some());
    // A new value too big for the key lets the old one go: it is stale.
    m.put("ok", kept(ENTRY_MAX as usize + 1));
    assert!(m.get("ok").is_none());
    for i in 0..10 {
        m.put(&format!("k{i}"), kept(1000));
    }
    m.set_capacity(3 * 1200);
    assert_eq!(m.len(), 3);
    assert!(m.get("k9").is_some() && m.get("k0").is_none());
    m.set_capacity(0);
    assert!(m.is_empty() && m.used() == 0);
    m.put("a", kept(1));
    assert!(m.is_empty(), "capacity 0 keeps nothing");
    m.set_capacity(u64::MAX);
    assert_eq!(m.capacity(), MAX_CAPACITY);
}

#[rstest]
#[case(None, 4 << 20)]
#[case(Some(""), 4 << 20)]
#[case(Some("0"), 0)]
#[case(Some("65536"), 65536)]
#[case(Some("8MiB"), 8 << 20)]
#[case(Some("512 KiB"), 512 << 10)]
#[case(Some("16MiB"), 16 << 20)]
fn manifest_memory_is_read(#[case] text: Option<&str>, #[case] bytes: u64) {
    let c = Config::from_vars(&Vars {
        manifest_memory: text,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.manifest_memory, bytes);
}

#[rstest]
#[case("17MiB")]
#[case("1GiB")]
#[case("-1")]
#[case("lots")]
#[case("4 MB")]
fn a_bad_manifest_memory_names_the_variable(#[case] text: &str) {
    let e = Config::from_vars(&Vars {
        manifest_memory: Some(text),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.field, "MANIFEST_MEMORY");
}

/// A plain registry with one tag, `latest`, whose manifest the test can change; by digest too.
fn world(manifest: &[u8]) -> (World, Rc<RefCell<Vec<u8>>>) {
    let m = Rc::new(RefCell::new(manifest.to_vec()));
    let up = m.clone();
    let net = FakeNet::new(move |req| {
        let m = up.borrow().clone();
        let path = req.url.path();
        if path.contains("/manifests/") {
            return resp(
                200,
                &[
                    ("content-type", V2),
                    ("docker-content-digest", &sha(&m)),
                    ("content-length", &m.len().to_string()),
                ],
                &m,
            );
        }
        resp(404, &[], b"")
    });
    (World::new(net), m)
}

fn get(w: &World, method: Method, path: &str, accept: &str) -> Response<Reply<Vec<u8>>> {
    let mut h = vec![];
    if !accept.is_empty() {
        h.push(("accept", accept));
    }
    w.request(method, &format!("http://mirror.test{path}"), &h)
        .0
}

const TAG: &str = "/v2/plain/x/manifests/latest";

/// Store lookups so far: tag records and stored manifests handed out.
fn lookups(w: &World) -> (usize, usize) {
    (w.store.tag_bodies_served.get(), w.store.manifest_hits.get())
}

#[test]
fn a_warm_tag_and_its_digest_are_answered_from_memory_with_the_same_bytes_and_headers() {
    let m = br#"{"schemaVersion":2,"m":1}"#;
    let (w, _) = world(m);
    let first = get(&w, Method::GET, TAG, V2);
    assert_eq!(h_cache(&first), "edgemirror; fwd=miss; stored");
    let upstream = w.net.urls().len();
    let before = lookups(&w);
    w.now.set(w.now.get() + 10);
    for method in [Method::GET, Method::HEAD] {
        let r = get(&w, method.clone(), TAG, V2);
        assert_eq!(r.status(), 200);
        assert_eq!(h_cache(&r), "edgemirror; hit; ttl=590; detail=memory");
        assert_eq!(r.headers()["docker-content-digest"], sha(m).as_str());
        assert_eq!(r.headers()["content-type"], V2);
        assert_eq!(r.headers()["content-length"], m.len().to_string().as_str());
        match (method == Method::HEAD, r.body()) {
            (true, Reply::Empty) => {}
            (false, Reply::Bytes(b)) => assert_eq!(b, m),
            (_, other) => panic!("{method}: {other:?}"),
        }
    }
    let by_digest = get(
        &w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{}", sha(m)),
        "",
    );
    assert!(h_cache(&by_digest).ends_with("detail=memory"));
    assert_eq!(body(&by_digest), m);
    assert_eq!(lookups(&w), before, "no store lookup");
    assert_eq!(w.net.urls().len(), upstream, "no upstream request");
}

#[test]
fn past_the_tag_ttl_memory_does_not_answer_and_a_moved_tag_replaces_it() {
    let (w, up) = world(b"{\"v\":1}");
    get(&w, Method::GET, TAG, V2);
    *up.borrow_mut() = b"{\"v\":2}".to_vec();
    w.now.set(w.now.get() + 599);
    assert_eq!(body(&get(&w, Method::GET, TAG, V2)), b"{\"v\":1}", "fresh");
    w.now.set(w.now.get() + 1);
    let r = get(&w, Method::GET, TAG, V2);
    assert_eq!(body(&r), b"{\"v\":2}", "revalidated: the tag moved");
    let r = get(&w, Method::GET, TAG, V2);
    assert_eq!(body(&r), b"{\"v\":2}");
    assert!(h_cache(&r).ends_with("detail=memory"), "{}", h_cache(&r));
}

#[test]
fn a_revalidated_tag_is_answered_from_memory_again_for_another_ttl() {
    let (w, _) = world(b"{\"v\":1}");
    get(&w, Method::GET, TAG, V2);
    w.now.set(w.now.get() + 600);
    assert!(h_cache(&get(&w, Method::GET, TAG, V2)).contains("revalidated"));
    let n = w.net.urls().len();
    w.now.set(w.now.get() + 599);
    let r = get(&w, Method::GET, TAG, V2);
    assert_eq!(h_cache(&r), "edgemirror; hit; ttl=1; detail=memory");
    assert_eq!(w.net.urls().len(), n);
}

#[test]
fn a_store_hit_is_kept_after_its_bytes_are_checked() {
    let m = br#"{"schemaVersion":2,"m":2}"#;
    let (w, _) = world(m);
    get(&w, Method::GET, TAG, V2);
    // Another isolate: the store holds the tag, this isolate's memory nothing.
    edgemirror::mirror::memo::clear();
    let r = get(&w, Method::GET, TAG, V2);
    assert_eq!(h_cache(&r), "edgemirror; hit; ttl=600");
    assert_eq!(body(&r), m);
    let read = w.net.bytes_read.get();
    let r = get(&w, Method::GET, TAG, V2);
    assert!(h_cache(&r).ends_with("detail=memory"));
    assert_eq!(body(&r), m);
    assert_eq!(w.net.bytes_read.get(), read, "read once, when kept");
}

#[test]
fn a_store_hit_whose_bytes_do_not_match_is_not_served_and_goes_upstream() {
    let m = br#"{"schemaVersion":2,"m":3}"#;
    let (w, _) = world(m);
    let digest = sha(m);
    get(&w, Method::GET, TAG, V2);
    edgemirror::mirror::memo::clear();
    for t in w.store.tags.borrow_mut().values_mut() {
        t.body = Some(br#"{"schemaVersion":2,"m":9}"#.to_vec());
    }
    for s in w.store.manifests.borrow_mut().values_mut() {
        *s = StoredManifest {
            body: br#"{"schemaVersion":2,"m":9}"#.to_vec(),
            ..s.clone()
        };
    }
    let n = w.net.urls().len();
    // By digest first: its miss keeps the digest in memory, and the tag's record is still the
    // store's (bad) one.
    for path in [format!("/v2/plain/x/manifests/{digest}"), TAG.to_string()] {
        let r = get(&w, Method::GET, &path, V2);
        assert_eq!(body(&r), m, "{path}: the upstream's bytes, not the store's");
        assert!(h_cache(&r).contains("fwd=miss"), "{path}: {}", h_cache(&r));
    }
    assert_eq!(w.net.urls().len(), n + 2);
}

#[test]
fn a_client_that_does_not_take_the_type_is_not_answered_from_memory() {
    let m = br#"{"schemaVersion":2,"m":4}"#;
    let (w, _) = world(m);
    get(&w, Method::GET, TAG, V2);
    let n = w.net.urls().len();
    let r = get(
        &w,
        Method::GET,
        &format!("/v2/plain/x/manifests/{}", sha(m)),
        INDEX,
    );
    assert!(!h_cache(&r).contains("memory"), "{}", h_cache(&r));
    assert_eq!(w.net.urls().len(), n + 1, "fetched for its Accept list");
}

#[test]
fn a_large_manifest_stays_in_the_store_only() {
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(ENTRY_MAX as usize));
    let (w, _) = world(big.as_bytes());
    get(&w, Method::GET, TAG, V2);
    let r = get(&w, Method::GET, TAG, V2);
    assert_eq!(h_cache(&r), "edgemirror; hit; ttl=600");
    assert!(matches!(r.body(), Reply::Stream(b) if b == big.as_bytes()));
}

#[test]
fn with_manifest_memory_0_every_hit_is_the_stores() {
    let (mut w, _) = world(b"{\"v\":1}");
    w.config = Config::from_vars(&Vars {
        upstreams: Some(TABLE),
        manifest_memory: Some("0"),
        ..Default::default()
    })
    .unwrap();
    get(&w, Method::GET, TAG, V2);
    for _ in 0..2 {
        let r = get(&w, Method::GET, TAG, V2);
        assert_eq!(h_cache(&r), "edgemirror; hit; ttl=600");
    }
    assert_eq!(lookups(&w).0, 2);
}
