//! Repository names, tags and digests as the OCI distribution spec defines them, validated by hand
//! (no regex engine in the wasm), plus Docker Hub's defaults.

pub use crate::digest::Digest;
pub(crate) use crate::error::clip;
use crate::error::InputError;

/// Docker Hub's registry name, as clients and containerd's `ns=` spell it.
pub const DOCKER_HUB: &str = "docker.io";
/// The namespace Docker Hub puts single-component ("official") images in.
pub const LIBRARY_NAMESPACE: &str = "library";
/// Docker's limit on a whole repository name.
pub const MAX_NAME_LEN: usize = 255;
/// OCI: a tag is at most 128 characters.
pub const MAX_TAG_LEN: usize = 128;

/// A validated repository name, e.g. `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(name: &str) -> Result<RepoName, InputError> {
        if name.is_empty() {
            return Err(name_invalid(name, "empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(name_invalid(name, "longer than 255 characters"));
        }
        for component in name.split('/') {
            if !is_path_component(component) {
                return Err(name_invalid(
                    name,
                    "each path component must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
                ));
            }
        }
        Ok(RepoName(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first path component (a prefix alias or a registry host, when routing).
    pub fn first_component(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }
    /// Docker Hub's rule: `alpine` means `library/alpine` (refused when that is over-long).
    pub fn with_library_namespace(&self) -> Result<RepoName, InputError> {
        if self.0.contains('/') {
            Ok(self.clone())
        } else {
            RepoName::parse(&format!("{LIBRARY_NAMESPACE}/{}", self.0))
        }
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn name_invalid(name: &str, why: &str) -> InputError {
    InputError::Name(format!("invalid repository name {:?}: {why}", clip(name)))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
pub fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn parse(tag: &str) -> Result<Tag, InputError> {
        let b = tag.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_');
        let rest_ok = b
            .iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || b.len() > MAX_TAG_LEN {
            return Err(InputError::Tag(format!(
                "invalid tag {:?}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                clip(tag)
            )));
        }
        Ok(Tag(tag.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a manifest is requested by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference with a ':' is a digest, anything else must be a tag.
    pub fn parse(reference: &str) -> Result<Reference, InputError> {
        if reference.contains(':') {
            Digest::parse(reference).map(Reference::Digest)
        } else {
            Tag::parse(reference).map(Reference::Tag)
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(t) => t.as_str(),
            Reference::Digest(d) => d.as_str(),
        }
    }
}

/// Docker's rule for "is the first component a registry host": it has a '.' or ':' or is localhost.
pub fn looks_like_registry_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, OciError};
    use rstest::rstest;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[rstest]
    #[case("alpine")]
    #[case("library/alpine")]
    #[case("a/b/c/d")]
    #[case("my-org/my__img")]
    #[case("a.b_c/d--e")]
    #[case("ghcr.io/owner/img")]
    #[case("0/1")]
    fn good_names(#[case] name: &str) {
        assert_eq!(RepoName::parse(name).unwrap().as_str(), name);
    }

    #[rstest]
    #[case("")]
    #[case("Alpine")]
    #[case("library//alpine")]
    #[case("/alpine")]
    #[case("alpine/")]
    #[case("..")]
    #[case("a/../b")]
    #[case("a/./b")]
    #[case("-a")]
    #[case("a-")]
    #[case("a___b")]
    #[case("a.-b")]
    #[case("a..b")]
    #[case("a b")]
    #[case("a%2fb")]
    #[case("a\0b")]
    #[case("a\r\nb")]
    #[case("127.0.0.1:5000/x")]
    #[case("a@b")]
    #[case("é")]
    fn bad_names(#[case] name: &str) {
        let e = RepoName::parse(name).map_err(OciError::from).unwrap_err();
        assert_eq!(e.code, ErrorCode::NameInvalid);
        assert_eq!(e.status, 400);
    }

    #[test]
    fn name_length_limit() {
        let ok = "a".repeat(MAX_NAME_LEN);
        assert!(RepoName::parse(&ok).is_ok());
        assert!(RepoName::parse(&format!("{ok}a")).is_err());
        // The message stays short even for huge input.
        let e = RepoName::parse(&"A".repeat(10_000))
            .map_err(OciError::from)
            .unwrap_err();
        assert!(e.message.len() < 200);
    }

    #[rstest]
    #[case("alpine", "library/alpine")]
    #[case("library/alpine", "library/alpine")]
    #[case("bitnami/redis", "bitnami/redis")]
    fn library_namespace(#[case] name: &str, #[case] want: &str) {
        assert_eq!(
            RepoName::parse(name)
                .unwrap()
                .with_library_namespace()
                .unwrap()
                .as_str(),
            want
        );
    }

    /// Found by fuzzing (scope target): a 250-character official-image name is valid, but
    /// `library/` + it is not, and must not be sent upstream.
    #[test]
    fn library_namespace_that_makes_the_name_too_long_is_refused() {
        let name = RepoName::parse(&"a".repeat(250)).unwrap();
        assert_eq!(
            name.with_library_namespace()
                .map_err(OciError::from)
                .unwrap_err()
                .code,
            ErrorCode::NameInvalid
        );
        assert!(RepoName::parse(&"a".repeat(247))
            .unwrap()
            .with_library_namespace()
            .is_ok());
    }

    #[rstest]
    #[case("latest")]
    #[case("3.19")]
    #[case("_x")]
    #[case("v1.0.0-rc.1_build")]
    #[case("A")]
    fn good_tags(#[case] tag: &str) {
        assert!(matches!(Reference::parse(tag), Ok(Reference::Tag(_))));
    }

    #[rstest]
    #[case("")]
    #[case(".hidden")]
    #[case("-x")]
    #[case("a/b")]
    #[case("a+b")]
    #[case("a b")]
    #[case("a\nb")]
    fn bad_tags(#[case] tag: &str) {
        assert_eq!(
            Reference::parse(tag)
                .map_err(OciError::from)
                .unwrap_err()
                .code,
            ErrorCode::TagInvalid
        );
    }

    #[test]
    fn tag_length_limit() {
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn good_digests() {
        assert!(matches!(Reference::parse(SHA), Ok(Reference::Digest(_))));
        let d512 = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(Digest::parse(&d512).unwrap().algorithm(), "sha512");
    }

    #[rstest]
    #[case("sha256:")]
    #[case("sha256:abc")]
    #[case("md5:0123456789abcdef0123456789abcdef")]
    #[case("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")]
    #[case("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg")]
    #[case("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0")]
    #[case(":0123")]
    #[case("sha256")]
    fn bad_digests(#[case] digest: &str) {
        assert_eq!(
            Digest::parse(digest)
                .map_err(OciError::from)
                .unwrap_err()
                .code,
            ErrorCode::DigestInvalid
        );
    }

    #[rstest]
    #[case("ghcr.io", true)]
    #[case("localhost", true)]
    #[case("host:5000", true)]
    #[case("library", false)]
    #[case("bitnami", false)]
    fn registry_hosts(#[case] c: &str, #[case] want: bool) {
        assert_eq!(looks_like_registry_host(c), want);
    }
}
