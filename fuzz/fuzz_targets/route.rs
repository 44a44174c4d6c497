//! Route parser: any method and raw path → a route or an OCI error, never a panic. A route that
//! names a repository carries a name, tag or digest that parses again on its own.
#![no_main]
use edgemirror::reference::{Digest, Reference, RepoName};
use edgemirror::route::{self, Resource, Route};
use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = http::Method::from_bytes(METHODS[m as usize % METHODS.len()].as_bytes())
        .expect("known method");
    let path = String::from_utf8_lossy(rest);
    match route::parse(&method, &path) {
        Ok(Route::Registry { name, resource }) => {
            assert!(
                method == http::Method::GET || method == http::Method::HEAD,
                "write method routed: {method} {path:?}"
            );
            assert!(RepoName::parse(name.as_str()).is_ok());
            match resource {
                Resource::Manifest(r) => assert!(Reference::parse(r.as_str()).is_ok()),
                Resource::Blob(d) | Resource::Referrers(d) => {
                    assert!(Digest::parse(d.as_str()).is_ok())
                }
                Resource::TagsList => {}
            }
            assert!(
                name.as_str().split('/').all(|c| c != ".." && c != "."),
                "traversal routed: {path:?}"
            );
        }
        Ok(_) => {}
        Err(e) => assert!(
            (400..500).contains(&e.status),
            "{path:?} gave status {}",
            e.status
        ),
    }
});
