//! Prewarm on fakes: an index with two platforms is warmed (manifests, and blobs when asked), a
//! later pull costs no upstream GET, the budget stops a run and the cursor resumes it.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::{Budget, Session};
use edgemirror::prewarm::run;
use edgemirror::token::TokenCache;
use futures::executor::block_on;
use http::Method;

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry with `images` tags, each an index of two platform manifests with a config and a layer.
fn registry(images: &[&str]) -> (FakeNet, HashMap<String, (Vec<u8>, &'static str)>) {
    let mut content: HashMap<String, (Vec<u8>, &'static str)> = HashMap::new();
    let mut tags = HashMap::new();
    for image in images {
        let mut platforms = vec![];
        for arch in ["amd64", "arm64"] {
            let layer = format!("layer of {image} {arch}").into_bytes();
            let config = format!("{{\"arch\":\"{arch}\",\"image\":\"{image}\"}}").into_bytes();
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": IMAGE_TYPE,
                "config": {"digest": sha(&config), "size": config.len()},
                "layers": [{"digest": sha(&layer), "size": layer.len()}, {"digest": sha(b"foreign"), "size": 7, "urls": ["https://elsewhere.test/x"]}],
            })).unwrap();
            platforms.push(serde_json::json!({"digest": sha(&manifest), "mediaType": IMAGE_TYPE, "platform": {"architecture": arch, "os": "linux"}}));
            content.insert(sha(&layer), (layer, "application/octet-stream"));
            content.insert(sha(&config), (config, "application/octet-stream"));
            content.insert(sha(&manifest), (manifest, IMAGE_TYPE));
        }
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": platforms})).unwrap();
        tags.insert(format!("/v2/{image}/manifests/latest"), sha(&index));
        content.insert(sha(&index), (index, INDEX_TYPE));
    }
    let c = content.clone();
    let net = FakeNet::new(move |req| {
        let path = req.url.path();
        let digest = tags
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.rsplit('/').next().unwrap().to_string());
        match c.get(&digest) {
            Some((body, media_type)) => resp(
                200,
                &[
                    ("content-type", media_type),
                    ("docker-content-digest", &digest),
                    ("content-length", &body.len().to_string()),
                ],
                body,
            ),
            None => resp(
                404,
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#,
            ),
        }
    });
    (net, content)
}

fn config(images: &[&str], budget: u32) -> Config {
    let list = serde_json::to_string(
        &images
            .iter()
            .map(|i| format!("plain/{i}:latest"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut c = Config::from_vars(&Vars {
        upstreams: Some(TABLE),
        prewarm: Some(&list),
        ..Default::default()
    })
    .unwrap();
    c.prewarm_budget = budget;
    c
}

fn warm(w: &World, config: &Config, blobs: bool) -> Vec<edgemirror::prewarm::Report> {
    let budget = Budget::new(config.prewarm_budget);
    let tokens = RefCell::new(TokenCache::default());
    let session = Session {
        fetcher: &w.net,
        tokens: &tokens,
        flights: &Default::default(),
        now: w.now.get(),
        timeout_ms: 1000,
        secret: &|_| None,
        budget: Some(&budget),
    };
    block_on(run(config, &session, &w.store, blobs))
}

#[test]
fn an_index_is_warmed_with_every_platform_and_its_blobs() {
    let (net, content) = registry(&["team/app"]);
    let w = World::new(net);
    let c = config(&["team/app"], 100);
    let reports = warm(&w, &c, true);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        (r.result, r.manifests, r.blobs_fetched, r.blobs_held),
        ("warmed", 3, 4, 0),
        "{r:?}"
    );
    assert_eq!(
        w.store.blobs.borrow().len(),
        4,
        "configs and layers, not the foreign layer"
    );
    assert!(!w.net.urls().iter().any(|u| u.contains("elsewhere")));
    // A client's pull now costs no upstream GET: the tag, each platform, each blob.
    let n = w.net.urls().len();
    let accept = [(
        "accept",
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
    )];
    let (tag, _) = w.request(
        Method::GET,
        "http://mirror.test/v2/plain/team/app/manifests/latest",
        &accept,
    );
    assert_eq!(tag.status(), 200);
    for (digest, (_, media_type)) in &content {
        let kind = if *media_type == IMAGE_TYPE {
            "manifests"
        } else if *media_type == INDEX_TYPE {
            continue;
        } else {
            "blobs"
        };
        let (resp, _) = w.request(
            Method::GET,
            &format!("http://mirror.test/v2/plain/team/app/{kind}/{digest}"),
            &accept,
        );
        assert_eq!(resp.status(), 200, "{kind} {digest}");
    }
    let methods: Vec<_> = w.net.seen.borrow()[n..]
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert!(
        methods.iter().all(|m| m == "HEAD"),
        "only HEADs at most: {methods:?}"
    );
    // A second run finds everything held.
    let again = warm(&w, &c, true);
    assert_eq!((again[0].blobs_fetched, again[0].blobs_held), (0, 4));
}

#[test]
fn without_a_persistent_store_only_manifests_are_warmed() {
    let (net, _) = registry(&["team/app"]);
    let w = World::new(net);
    let r = warm(&w, &config(&["team/app"], 100), false);
    assert_eq!((r[0].manifests, r[0].blobs_fetched), (3, 0));
    assert!(w.store.blobs.borrow().is_empty());
    assert!(w.net.urls().iter().all(|u| u.contains("/manifests/")));
}

#[test]
fn the_budget_stops_a_run_and_the_next_run_resumes_where_it_stopped() {
    let (net, _) = registry(&["a/one", "b/two", "c/three"]);
    let w = World::new(net);
    // Each image costs three GETs (tag, two platforms; a cold repository gets no HEAD first):
    // 3 requests without blobs.
    let c = config(&["a/one", "b/two", "c/three"], 5);
    let first = warm(&w, &c, false);
    assert_eq!(
        first.iter().map(|r| r.result).collect::<Vec<_>>(),
        ["warmed", "stopped", "skipped"]
    );
    assert_eq!(
        w.store
            .notes
            .borrow()
            .get(edgemirror::prewarm::CURSOR_KEY)
            .map(String::as_str),
        Some("1"),
        "resume at b/two"
    );
    let second = warm(&w, &c, false);
    assert_eq!(
        second.iter().map(|r| r.image.as_str()).collect::<Vec<_>>(),
        [
            "plain/b/two:latest",
            "plain/c/three:latest",
            "plain/a/one:latest"
        ]
    );
    assert_eq!(second[0].result, "warmed");
}

#[test]
fn a_missing_image_fails_alone() {
    let (net, _) = registry(&["a/one"]);
    let w = World::new(net);
    let c = config(&["nope/x", "a/one"], 100);
    let r = warm(&w, &c, false);
    assert_eq!(
        r.iter().map(|r| r.result).collect::<Vec<_>>(),
        ["failed", "warmed"]
    );
    assert!(r[0].error.is_some());
}
