//! `WWW-Authenticate` parsing: any header value → challenges; a Bearer challenge's realm is always
//! an http(s) URL with a host (the mirror sends a request to it).
#![no_main]
use edgemirror::challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let all = challenge::parse(&s);
    for c in &all {
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        assert!(!c.scheme.is_empty());
    }
    if let Some(b) = challenge::bearer(&s) {
        assert!(matches!(b.realm.scheme(), "http" | "https"));
        assert!(all.iter().any(|c| c.scheme == "bearer"));
    }
});
