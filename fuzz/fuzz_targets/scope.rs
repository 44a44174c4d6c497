//! Token scope rewriting (login pass-through): a client's scope maps to `repository:<upstream
//! name>:pull` for the chosen upstream only, never to another registry, never with push.
#![no_main]
use edgemirror::config::{Config, Vars};
use edgemirror::mirror::token_endpoint::rewrite_scope;
use edgemirror::reference::RepoName;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const TABLE: &str = r#"{
  "docker.io": {"registry": "http://127.0.0.1:15100", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true},
  "ghcr.io": {"registry": "http://127.0.0.1:15200", "hosts": ["ghcr.localhost"], "prefixes": ["ghcr.io", "gh"], "ns": ["ghcr.io"]}
}"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        Config::from_vars(&Vars {
            upstreams: Some(TABLE),
            default_upstream: Some("docker.io"),
            ..Default::default()
        })
        .expect("test table")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (host, scope) = text.split_once('\n').unwrap_or(("mirror.example", &text));
    let config = config();
    let up = &config.upstreams[which as usize % config.upstreams.len()];
    if let Some(out) = rewrite_scope(config, host, up, scope) {
        let name = out
            .strip_prefix("repository:")
            .and_then(|s| s.strip_suffix(":pull"))
            .expect("pull scope");
        assert!(RepoName::parse(name).is_ok(), "{out:?}");
        assert!(!out.contains("push") || name.contains("push"));
        if up.library && !name.contains('/') {
            panic!("library upstream scope without namespace: {out:?}");
        }
    }
});
