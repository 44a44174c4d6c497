//! Names, tags, digests and references: every accepted value round-trips through its own parser,
//! and the `library/` form of an accepted name is accepted too.
#![no_main]
use edgemirror::error::OciError;
use edgemirror::reference::{looks_like_registry_host, Digest, Reference, RepoName, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(n) = RepoName::parse(&s) {
        assert_eq!(n.as_str(), s);
        match n.with_library_namespace() {
            Ok(l) => assert!(RepoName::parse(l.as_str()).is_ok() && l.as_str().contains('/')),
            Err(e) => assert!(OciError::from(e).status == 400 && !n.as_str().contains('/')),
        }
        let _ = looks_like_registry_host(n.first_component());
    }
    if let Ok(t) = Tag::parse(&s) {
        assert_eq!(t.as_str(), s);
        assert!(t.as_str().len() <= 128);
    }
    if let Ok(d) = Digest::parse(&s) {
        assert_eq!(d.as_str(), s);
        assert!(s.starts_with(d.algorithm()));
    }
    if let Ok(r) = Reference::parse(&s) {
        assert_eq!(r.as_str(), s);
    }
    for e in [
        RepoName::parse(&s).err(),
        Tag::parse(&s).err(),
        Digest::parse(&s).err(),
    ]
    .into_iter()
    .flatten()
    .map(OciError::from)
    {
        assert!((400..500).contains(&e.status));
        // Error bodies quote the input clipped: never the whole of a huge value.
        assert!(
            e.body().len() < 2048,
            "error body of {} bytes",
            e.body().len()
        );
    }
});
