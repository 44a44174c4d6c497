//! Cache keys. Built only from the upstream's name, the repository, the digest or tag and the
//! normalised `Accept` list — never from anything secret. They are URLs because the Cache API
//! keys by URL; R2 uses their path.

use crate::reference::{Digest, RepoName, Tag};

const BASE: &str = "https://edgemirror.cache/v1";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn blob(upstream: &str, name: &RepoName, digest: &Digest) -> String {
    format!(
        "{BASE}/{}/{}/blobs/{}",
        enc(upstream),
        name,
        digest.as_str()
    )
}

pub fn manifest(upstream: &str, name: &RepoName, digest: &Digest) -> String {
    format!(
        "{BASE}/{}/{}/manifests/{}",
        enc(upstream),
        name,
        digest.as_str()
    )
}

/// A tag's record depends on what the client accepts: the same tag may resolve to an index for one
/// client and a single manifest for another.
pub fn tag(upstream: &str, name: &RepoName, tag: &Tag, accept: &[String]) -> String {
    format!(
        "{BASE}/{}/{}/tags/{}?accept={}",
        enc(upstream),
        name,
        tag.as_str(),
        enc(&accept.join(","))
    )
}

/// "Something of this repository is held": written with every stored manifest, read when a tag
/// has no record, so a HEAD is sent first only where it can save a pull.
pub fn repository_held(upstream: &str, name: &RepoName) -> String {
    format!("{BASE}/{}/{}/held", enc(upstream), name)
}

/// The object name in R2 for a cache key.
pub fn object_name(key: &str) -> &str {
    key.strip_prefix(BASE)
        .map_or(key, |k| k.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_upstreams_repositories_and_accept_lists() {
        let n = RepoName::parse("library/alpine").unwrap();
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let t = Tag::parse("latest").unwrap();
        assert_eq!(
            blob("docker.io", &n, &d),
            format!(
                "https://edgemirror.cache/v1/docker.io/library/alpine/blobs/sha256:{}",
                "a".repeat(64)
            )
        );
        assert_ne!(blob("docker.io", &n, &d), blob("ghcr.io", &n, &d));
        assert_ne!(manifest("docker.io", &n, &d), blob("docker.io", &n, &d));
        let one = tag(
            "docker.io",
            &n,
            &t,
            &["application/vnd.oci.image.index.v1+json".into()],
        );
        let other = tag(
            "docker.io",
            &n,
            &t,
            &["application/vnd.docker.distribution.manifest.v2+json".into()],
        );
        assert_ne!(one, other);
        assert!(one.ends_with("accept=application%2Fvnd.oci.image.index.v1%2Bjson"));
        assert_eq!(
            object_name(&blob("a b", &n, &d)),
            format!("a+b/library/alpine/blobs/sha256:{}", "a".repeat(64))
        );
    }
}
