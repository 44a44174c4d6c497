//! Configuration: any set of variable values and any stored overrides → a table or a named error;
//! every upstream of an accepted table has an http(s) registry URL and a sane timeout.
#![no_main]
use edgemirror::config::{Config, Vars};
use libfuzzer_sys::fuzz_target;

fn check(c: &Config) {
    for u in &c.upstreams {
        let url = url::Url::parse(&u.registry).expect("registry URL of an accepted table parses");
        assert!(matches!(url.scheme(), "http" | "https"), "{}", u.registry);
        // Credentials never go to plain http from an https registry.
        if u.registry.starts_with("https:") {
            assert!(
                u.realms.iter().all(|r| r.starts_with("https:")),
                "{:?}",
                u.realms
            );
        }
        // Whatever is accepted as a secret's name looks like one, and is none of the mirror's own.
        for name in u.credentials.iter().chain(u.headers.iter().map(|(_, s)| s)) {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(
                !edgemirror::config::is_mirror_own(name),
                "{name}"
            );
        }
    }
    if let Some(d) = c.default {
        assert!(d < c.upstreams.len());
    }
    assert!(c.manifest_memory <= edgemirror::mirror::memo::MAX_CAPACITY);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Fields separated by NUL: UPSTREAMS, DEFAULT_UPSTREAM, UPSTREAM_TIMEOUT_MS, PREWARM,
    // PREWARM_BUDGET, ALLOW_CIDRS, TRUSTED_CIDRS, RATE_LIMIT, then KV overrides, then
    // UPSTREAM_SECRETS, STORE_MAX_BYTES, STORE_MAX_IDLE_DAYS, MANIFEST_MEMORY, BLOB_FILL (last, so
    // older seeds keep their meaning).
    let mut f = text.split('\0');
    let mut next = || f.next();
    let vars = Vars {
        upstreams: next(),
        default_upstream: next(),
        upstream_timeout_ms: next(),
        prewarm: next(),
        prewarm_budget: next(),
        allow_cidrs: next(),
        trusted_cidrs: next(),
        rate_limit: next(),
        upstream_secrets: None,
        store_max_bytes: None,
        store_max_idle_days: None,
        manifest_memory: None,
        blob_fill: None,
    };
    let overrides = next();
    let vars = Vars {
        upstream_secrets: next(),
        store_max_bytes: next(),
        store_max_idle_days: next(),
        manifest_memory: next(),
        blob_fill: next(),
        ..vars
    };
    let base = match Config::from_vars(&vars) {
        Ok(c) => c,
        Err(_) => Config::built_in(),
    };
    check(&base);
    if let Some(o) = overrides {
        let (c, _skipped) = base.with_overrides(o);
        check(&c);
    }
});
