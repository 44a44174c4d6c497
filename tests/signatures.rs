//! The signature policy through the mirror's flow, natively: a fake registry holding images and
//! cosign signatures made here with p256 (the worker verifies with WebCrypto; the fake network
//! with p256), and the mirror's answers, upstream requests and kept verdicts.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine;
use common::*;
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::{handle, Reply, Session};
use futures::executor::block_on;
use http::{Method, Response};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A registry at plain.test without auth: path → (content type, bytes).
type Objects = Rc<RefCell<HashMap<String, (String, Vec<u8>)>>>;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn pem(k: &SigningKey) -> String {
    let point = k.verifying_key().to_encoded_point(false);
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(point.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

struct Registry {
    objects: Objects,
}

impl Registry {
    fn put(&self, repo: &str, reference: &str, ct: &str, bytes: &[u8]) {
        let kind = if ct.is_empty() { "blobs" } else { "manifests" };
        self.objects.borrow_mut().insert(
            format!("/v2/{repo}/{kind}/{reference}"),
            (ct.to_string(), bytes.to_vec()),
        );
    }
    /// A manifest under its digest and `tag`; returns the digest.
    fn manifest(&self, repo: &str, tag: &str, ct: &str, bytes: &[u8]) -> String {
        let d = sha(bytes);
        self.put(repo, &d, ct, bytes);
        self.put(repo, tag, ct, bytes);
        d
    }
    fn image(&self, repo: &str, tag: &str, nonce: &str) -> String {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[],"annotations":{{"n":"{nonce}"}}}}"#
        );
        self.manifest(repo, tag, OCI_MANIFEST, m.as_bytes())
    }
    /// A cosign signature of `signed` (the payload names `names`), as cosign stores it.
    fn sign(&self, repo: &str, signed: &str, names: &str, k: &SigningKey, tamper: Option<&str>) {
        let mut payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"plain.test/{repo}"}},"image":{{"docker-manifest-digest":"{names}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes();
        let sig: Signature = k.sign(&payload);
        let mut der = sig.to_der().as_bytes().to_vec();
        match tamper {
            Some("signature") => *der.last_mut().unwrap() ^= 1,
            Some("payload") => payload.extend_from_slice(b" "),
            _ => {}
        }
        let pd = sha(&payload);
        self.put(repo, &pd, "", &payload);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{pd}","size":1}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{pd}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{b64}"}}}}]}}"#,
            payload.len()
        );
        let tag = format!("{}.sig", signed.replace(':', "-"));
        self.put(repo, &tag, OCI_MANIFEST, m.as_bytes());
    }
}

struct Mirror {
    w: World,
    reg: Registry,
    keys: HashMap<String, String>,
}

fn mirror() -> Mirror {
    edgemirror::cosign::memory::forget_all();
    let objects: Objects = Rc::default();
    let o = objects.clone();
    let net = FakeNet::new(move |req| {
        if req.url.host_str() != Some("plain.test") {
            return resp(404, &[], b"");
        }
        match o.borrow().get(req.url.path()) {
            Some((ct, bytes)) => {
                let mut h = vec![("content-length", bytes.len().to_string())];
                if !ct.is_empty() {
                    h.push(("content-type", ct.clone()));
                    h.push(("docker-content-digest", sha(bytes)));
                }
                let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let body = if req.method == Method::HEAD {
                    &[][..]
                } else {
                    bytes
                };
                resp(200, &h, body)
            }
            None => resp(
                404,
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#,
            ),
        }
    });
    let mut w = World::new(net);
    w.config = Config::from_vars(&Vars {
        upstreams: Some(
            r#"{"plain": {"registry": "http://plain.test", "prefixes": ["plain"], "verify": [
                {"name": "myorg", "repos": ["myorg/*"], "keys": ["COSIGN_KEY_A", "COSIGN_KEY_C"]},
                {"repos": ["warned/**"], "keys": ["COSIGN_KEY_A"], "mode": "warn"}
            ]}}"#,
        ),
        ..Default::default()
    })
    .unwrap();
    let keys = HashMap::from([
        ("COSIGN_KEY_A".to_string(), pem(&key(1))),
        ("COSIGN_KEY_C".to_string(), pem(&key(3))),
    ]);
    Mirror {
        w,
        reg: Registry { objects },
        keys,
    }
}

impl Mirror {
    fn send(&self, method: Method, path: &str) -> Response<Reply<Vec<u8>>> {
        let secret = |n: &str| self.keys.get(n).cloned();
        let session = Session {
            fetcher: &self.w.net,
            tokens: &self.w.tokens,
            flights: &self.w.flights,
            now: self.w.now.get(),
            timeout_ms: 1_000,
            secret: &secret,
            budget: None,
        };
        let req = incoming(
            method,
            &format!("http://mirror.test/v2/plain/{path}"),
            &[],
            b"",
        );
        block_on(handle(Ok(&self.w.config), &session, &self.w.store, &req)).0
    }
    fn get(&self, path: &str) -> Response<Reply<Vec<u8>>> {
        self.send(Method::GET, path)
    }
    fn upstream_requests(&self) -> usize {
        self.w.net.seen.borrow().len()
    }
    fn sig_requests(&self) -> usize {
        self.w
            .net
            .urls()
            .iter()
            .filter(|u| u.contains(".sig") || u.contains("/blobs/"))
            .count()
    }
}

fn verdict(r: &Response<Reply<Vec<u8>>>) -> String {
    r.headers()
        .get("edgemirror-signature")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn message(r: &Response<Reply<Vec<u8>>>) -> String {
    let v: serde_json::Value = serde_json::from_slice(&body(r)).unwrap();
    v["errors"][0]["message"].as_str().unwrap().to_string()
}

#[test]
fn a_signed_image_is_served_and_a_warm_pull_asks_the_upstream_nothing() {
    let m = mirror();
    let d = m.reg.image("myorg/app", "v1", "a");
    m.reg.sign("myorg/app", &d, &d, &key(1), None);
    let r = m.get("myorg/app/manifests/v1");
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body(&r)));
    assert_eq!(verdict(&r), "verified; key=COSIGN_KEY_A; policy=myorg");
    assert_eq!(sha(&body(&r)), d, "the manifest's very bytes");
    assert_eq!(
        m.sig_requests(),
        2,
        "the .sig manifest and its payload: {:?}",
        m.w.net.urls()
    );
    let before = m.upstream_requests();
    let warm = m.get("myorg/app/manifests/v1");
    assert_eq!(warm.status(), 200);
    assert_eq!(verdict(&warm), "verified; key=COSIGN_KEY_A; policy=myorg");
    let by_digest = m.get(&format!("myorg/app/manifests/{d}"));
    assert_eq!(by_digest.status(), 200);
    assert_eq!(m.upstream_requests(), before, "warm: {:?}", m.w.net.urls());
    // Another isolate (nothing in memory) finds the verdict in the store.
    edgemirror::cosign::memory::forget_all();
    assert_eq!(m.get(&format!("myorg/app/manifests/{d}")).status(), 200);
    assert_eq!(m.upstream_requests(), before);
    // Any of the rule's keys will do.
    let d2 = m.reg.image("myorg/app", "v2", "c");
    m.reg.sign("myorg/app", &d2, &d2, &key(3), None);
    assert_eq!(
        verdict(&m.get("myorg/app/manifests/v2")),
        "verified; key=COSIGN_KEY_C; policy=myorg"
    );
}

#[test]
fn a_verified_index_covers_the_platform_manifests_it_lists() {
    let m = mirror();
    let c1 = m.reg.image("myorg/multi", "amd64-only", "c1");
    let c2 = m.reg.image("myorg/multi", "arm64-only", "c2");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{c1}","size":1}},{{"mediaType":"{OCI_MANIFEST}","digest":"{c2}","size":1}}]}}"#
    );
    let i = m
        .reg
        .manifest("myorg/multi", "latest", OCI_INDEX, index.as_bytes());
    m.reg.sign("myorg/multi", &i, &i, &key(1), None);
    // A platform manifest asked for before its index: it has no signature of its own.
    let early = m.get(&format!("myorg/multi/manifests/{c1}"));
    assert_eq!(early.status(), 403);
    let r = m.get("myorg/multi/manifests/latest");
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), index.as_bytes(), "byte for byte");
    let sigs = m.sig_requests();
    for c in [&c1, &c2] {
        let r = m.get(&format!("myorg/multi/manifests/{c}"));
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body(&r)));
        assert_eq!(verdict(&r), format!("verified; index={i}; policy=myorg"));
    }
    assert_eq!(
        m.sig_requests(),
        sigs,
        "no signature fetched for the platform manifests"
    );
}

#[test]
fn without_a_valid_signature_enforce_denies_naming_the_policy() {
    let m = mirror();
    type Signs = Box<dyn Fn(&Registry, &str)>;
    let cases: Vec<(&str, Signs, &str)> = vec![
        ("unsigned", Box::new(|_, _| {}), "no signature (sha256-"),
        (
            "otherkey",
            Box::new(|r, d| r.sign("myorg/otherkey", d, d, &key(2), None)),
            "verifies with key COSIGN_KEY_A or COSIGN_KEY_C",
        ),
        (
            "otherdigest",
            Box::new(|r, d| {
                let other = format!("sha256:{}", "e".repeat(64));
                r.sign("myorg/otherdigest", d, &other, &key(1), None)
            }),
            "signs another manifest (sha256:eeee",
        ),
        (
            "tamperedpayload",
            Box::new(|r, d| r.sign("myorg/tamperedpayload", d, d, &key(1), Some("payload"))),
            "verifies with key",
        ),
        (
            "tamperedsig",
            Box::new(|r, d| r.sign("myorg/tamperedsig", d, d, &key(1), Some("signature"))),
            "verifies with key",
        ),
    ];
    for (name, sign, why) in cases {
        let repo = format!("myorg/{name}");
        let d = m.reg.image(&repo, "latest", name);
        sign(&m.reg, &d);
        let discarded = m.w.net.discarded.get();
        for path in [
            format!("{repo}/manifests/latest"),
            format!("{repo}/manifests/{d}"),
        ] {
            let r = m.get(&path);
            assert_eq!(r.status(), 403, "{name}");
            assert_eq!(error_code(&r), "DENIED");
            let msg = message(&r);
            assert!(
                msg.starts_with(&format!("manifest {d} refused by signature policy myorg: ")),
                "{msg}"
            );
            assert!(msg.contains(why), "{name}: {msg}");
            assert!(!msg.contains("BEGIN"), "no key in messages");
        }
        assert!(
            m.w.net.discarded.get() > discarded,
            "{name}: the manifest's body let go unread"
        );
        // Not kept: the next pull checks again.
        let seen = m.sig_requests();
        m.get(&format!("{repo}/manifests/{d}"));
        assert!(m.sig_requests() > seen, "{name}: a refusal is not kept");
    }
}

#[test]
fn warn_serves_with_the_reason_and_uncovered_repositories_are_untouched() {
    let m = mirror();
    let d = m.reg.image("warned/team/app", "latest", "w");
    let r = m.get("warned/team/app/manifests/latest");
    assert_eq!(r.status(), 200);
    assert_eq!(sha(&body(&r)), d);
    assert!(
        verdict(&r)
            .starts_with("unverified; policy=plain.verify[1]; mode=warn; reason=no signature"),
        "{}",
        verdict(&r)
    );
    let free = m.reg.image("library/alpine", "latest", "f");
    let before = m.upstream_requests();
    let r = m.get("library/alpine/manifests/latest");
    assert_eq!(r.status(), 200);
    assert_eq!(sha(&body(&r)), free);
    assert_eq!(verdict(&r), "");
    assert_eq!(
        m.sig_requests(),
        1,
        "only warned/'s .sig was looked for: {:?}",
        m.w.net.urls()
    );
    assert!(m.upstream_requests() - before <= 2);
    // `myorg/*` covers one level only.
    m.reg.image("myorg/team/app", "latest", "deep");
    assert_eq!(m.get("myorg/team/app/manifests/latest").status(), 200);
}

#[test]
fn head_is_not_gated_and_a_moved_tag_is_checked_again() {
    let m = mirror();
    let d = m.reg.image("myorg/moving", "latest", "one");
    m.reg.sign("myorg/moving", &d, &d, &key(1), None);
    assert_eq!(
        m.send(Method::HEAD, "myorg/moving/manifests/latest")
            .status(),
        200
    );
    assert_eq!(m.get("myorg/moving/manifests/latest").status(), 200);
    // The tag moves to an unsigned manifest; once its record is stale the new digest is checked.
    let d2 = m.reg.image("myorg/moving", "latest", "two");
    m.w.now.set(m.w.now.get() + 3_600);
    let r = m.get("myorg/moving/manifests/latest");
    assert_eq!(r.status(), 403);
    assert!(message(&r).contains(&d2), "{}", message(&r));
    // HEAD of the unsigned manifest still answers (no bytes served); its GET does not.
    assert_eq!(
        m.send(Method::HEAD, &format!("myorg/moving/manifests/{d2}"))
            .status(),
        200
    );
}

#[test]
fn keys_are_checked_at_start_and_stored_upstreams_name_only_designated_ones() {
    let m = mirror();
    let check = |keys: &HashMap<String, String>| {
        edgemirror::cosign::keys::check(&m.w.config, &|n| keys.get(n).cloned())
    };
    assert_eq!(check(&m.keys), Ok(()));
    let mut missing = m.keys.clone();
    missing.remove("COSIGN_KEY_C");
    let e = check(&missing).unwrap_err();
    assert_eq!(e.field, "UPSTREAMS.plain.verify[0].keys");
    assert_eq!(e.problem, "key COSIGN_KEY_C is not set");
    let mut private = m.keys.clone();
    private.insert(
        "COSIGN_KEY_A".into(),
        "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----".into(),
    );
    let e = check(&private).unwrap_err();
    assert!(
        e.problem.contains("private key") && !e.problem.contains("MIGH"),
        "{}",
        e.problem
    );
    // The admin API's stored upstreams may name only the secrets in UPSTREAM_SECRETS.
    let base = Config::from_vars(&Vars {
        upstreams: Some(TABLE),
        upstream_secrets: Some("COSIGN_KEY_A"),
        ..Default::default()
    })
    .unwrap();
    let (_, skipped) = base.with_overrides(r#"{"s": {"registry": "http://s.test", "prefixes": ["s"], "verify": [{"repos": ["a/*"], "keys": ["COSIGN_KEY_B"]}]}}"#);
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].problem.contains("COSIGN_KEY_B is not listed"),
        "{}",
        skipped[0].problem
    );
    let (ok, skipped) = base.with_overrides(r#"{"s": {"registry": "http://s.test", "prefixes": ["s"], "verify": [{"repos": ["a/*"], "keys": ["COSIGN_KEY_A"]}]}}"#);
    assert!(skipped.is_empty());
    assert_eq!(
        ok.upstreams
            .iter()
            .find(|u| u.name == "s")
            .unwrap()
            .verify
            .rules
            .len(),
        1
    );
}

#[test]
fn a_burst_for_a_cold_signed_image_checks_its_signature_once() {
    let m = mirror();
    let d = m.reg.image("myorg/burst", "latest", "b");
    m.reg.sign("myorg/burst", &d, &d, &key(1), None);
    m.w.net.interleave.set(true);
    let secret = |n: &str| m.keys.get(n).cloned();
    let session = Session {
        fetcher: &m.w.net,
        tokens: &m.w.tokens,
        flights: &m.w.flights,
        now: m.w.now.get(),
        timeout_ms: 1_000,
        secret: &secret,
        budget: None,
    };
    let reqs: Vec<_> = (0..16)
        .map(|_| {
            incoming(
                Method::GET,
                "http://mirror.test/v2/plain/myorg/burst/manifests/latest",
                &[],
                b"",
            )
        })
        .collect();
    let all = reqs
        .iter()
        .map(|req| handle(Ok(&m.w.config), &session, &m.w.store, req));
    let answers = block_on(futures::future::join_all(all));
    for (r, _) in &answers {
        assert_eq!(r.status(), 200);
        assert_eq!(verdict(r), "verified; key=COSIGN_KEY_A; policy=myorg");
    }
    let sig = m.w.net.urls().iter().filter(|u| u.contains(".sig")).count();
    assert_eq!(sig, 1, "{:?}", m.w.net.urls());
}

#[test]
fn the_upstream_table_refuses_a_bad_policy_naming_the_field() {
    let e = Config::from_vars(&Vars {
        upstreams: Some(r#"{"hub": {"registry": "http://hub.test", "verify": [{"repos": ["a/*"], "keys": ["-----BEGIN PUBLIC KEY-----"]}]}}"#),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.field, "UPSTREAMS.hub.verify[0].keys");
    assert!(!e.problem.contains("BEGIN"), "{}", e.problem);
    let e = Config::from_vars(&Vars {
        upstreams: Some(
            r#"{"hub": {"registry": "http://hub.test", "verify": {"repos": ["a/*"]}}}"#,
        ),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.field, "UPSTREAMS.hub.verify");
}
