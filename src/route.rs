//! Request → `Route`: what a request asks for, decided from its method and raw path before any
//! upstream is chosen. Names contain slashes, so the resource is found from the end of the path.

use crate::error::{ErrorCode, OciError};
use crate::reference::{clip, Digest, Reference, RepoName};

/// A registry resource under a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Manifest(Reference),
    Blob(Digest),
    TagsList,
    Referrers(Digest),
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Manifest(_) => "manifest",
            Resource::Blob(_) => "blob",
            Resource::TagsList => "tags",
            Resource::Referrers(_) => "referrers",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the landing page.
    Landing,
    /// `GET /healthz`.
    Health,
    /// `GET /v2/`: the API version check.
    ApiBase,
    /// `GET`/`POST /token`: the mirror's own token endpoint (login pass-through).
    Token,
    /// `/v2/<name>/<resource>`; `name` is as the client sent it (prefix alias included).
    Registry { name: RepoName, resource: Resource },
}

impl Route {
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Landing => "landing",
            Route::Health => "health",
            Route::ApiBase => "base",
            Route::Token => "token",
            Route::Registry { resource, .. } => resource.kind(),
        }
    }
}

fn unsupported(what: &str) -> OciError {
    OciError::new(
        ErrorCode::Unsupported,
        format!(
            "{what}: this is a pull-through mirror; only GET and HEAD of pull endpoints are served"
        ),
    )
}

fn not_found(path: &str) -> OciError {
    OciError::new(
        ErrorCode::NameUnknown,
        format!("no such endpoint {:?}", clip(path)),
    )
    .with_status(404)
}

/// A manifest's reference. One that is neither a tag nor a digest names no manifest: the
/// distribution spec's only failure for a manifest GET/HEAD is `404 MANIFEST_UNKNOWN`, so that is
/// the answer (never asked upstream). A malformed digest (it has a ':') keeps `DIGEST_INVALID`.
fn manifest_reference(r: &str) -> Result<Reference, OciError> {
    Reference::parse(r).map_err(|e| match e {
        crate::error::InputError::Tag(_) => OciError::new(
            ErrorCode::ManifestUnknown,
            format!("no manifest {:?}: not a tag nor a digest", clip(r)),
        )
        .with_status(404),
        other => other.into(),
    })
}

/// Parses a request's method and raw (still percent-encoded) path.
pub fn parse(method: &http::Method, path: &str) -> Result<Route, OciError> {
    let read = *method == http::Method::GET || *method == http::Method::HEAD;
    // Names, tags and digests never contain '%', so an encoded byte is always bad input; refusing it
    // here means no decoding trick (%2e%2e, %2f, %00) can reach a later stage.
    if path.contains('%')
        || path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return Err(OciError::new(
            ErrorCode::NameInvalid,
            format!("malformed path {:?}", clip(path)),
        ));
    }
    match path {
        "/" if read => return Ok(Route::Landing),
        "/healthz" if read => return Ok(Route::Health),
        "/v2" | "/v2/" if read => return Ok(Route::ApiBase),
        "/token" if *method == http::Method::GET || *method == http::Method::POST => {
            return Ok(Route::Token)
        }
        "/token" => return Err(unsupported(method.as_str())),
        "/v2" | "/v2/" => return Err(unsupported(method.as_str())),
        _ => {}
    }
    let rest = match path.strip_prefix("/v2/") {
        Some(rest) => rest,
        None => return Err(not_found(path)),
    };
    if rest == "_catalog" {
        return Err(unsupported("_catalog"));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let n = parts.len();
    // Uploads: <name>/blobs/uploads/ and <name>/blobs/uploads/<id> are push endpoints.
    let upload_at = (1..n.saturating_sub(1))
        .rev()
        .find(|&i| parts[i] == "blobs" && parts[i + 1] == "uploads");
    if let Some(i) = upload_at {
        if i + 3 >= n {
            return Err(unsupported("blob upload"));
        }
    }
    if n < 3 {
        return Err(not_found(path));
    }
    let (name_parts, resource) = match (parts[n - 2], parts[n - 1]) {
        ("tags", "list") => (&parts[..n - 2], Resource::TagsList),
        ("manifests", r) => (&parts[..n - 2], Resource::Manifest(manifest_reference(r)?)),
        ("blobs", d) => (&parts[..n - 2], Resource::Blob(Digest::parse(d)?)),
        ("referrers", d) => (&parts[..n - 2], Resource::Referrers(Digest::parse(d)?)),
        _ => return Err(not_found(path)),
    };
    let name = RepoName::parse(&name_parts.join("/"))?;
    if !read {
        return Err(unsupported(method.as_str()));
    }
    Ok(Route::Registry { name, resource })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn get(path: &str) -> Result<Route, OciError> {
        parse(&http::Method::GET, path)
    }

    #[rstest]
    #[case("/", "landing")]
    #[case("/healthz", "health")]
    #[case("/v2/", "base")]
    #[case("/v2", "base")]
    #[case("/v2/alpine/manifests/latest", "manifest")]
    #[case("/v2/library/alpine/manifests/3.19", "manifest")]
    #[case("/v2/ghcr.io/owner/img/manifests/v1", "manifest")]
    #[case(
        "/v2/a/b/c/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "blob"
    )]
    #[case("/v2/library/alpine/tags/list", "tags")]
    #[case("/v2/library/alpine/referrers/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "referrers")]
    // A name may itself contain the resource words.
    #[case("/v2/manifests/manifests/latest", "manifest")]
    #[case("/v2/blobs/tags/tags/list", "tags")]
    fn good_routes(#[case] path: &str, #[case] kind: &str) {
        assert_eq!(get(path).unwrap().kind(), kind);
        assert_eq!(parse(&http::Method::HEAD, path).unwrap().kind(), kind);
    }

    #[test]
    fn name_and_reference_are_split_from_the_end() {
        let r = get("/v2/manifests/manifests/latest").unwrap();
        match r {
            Route::Registry {
                name,
                resource: Resource::Manifest(Reference::Tag(t)),
            } => {
                assert_eq!(name.as_str(), "manifests");
                assert_eq!(t.as_str(), "latest");
            }
            other => panic!("{other:?}"),
        }
        match get(&format!("/v2/library/alpine/manifests/{SHA}")).unwrap() {
            Route::Registry {
                resource: Resource::Manifest(Reference::Digest(d)),
                ..
            } => assert_eq!(d.as_str(), SHA),
            other => panic!("{other:?}"),
        }
    }

    /// (method, path, expected code, expected status)
    #[rstest]
    #[case("GET", "/v2/_catalog", ErrorCode::Unsupported, 405)]
    #[case("PUT", "/v2/alpine/manifests/latest", ErrorCode::Unsupported, 405)]
    #[case("DELETE", "/v2/alpine/manifests/latest", ErrorCode::Unsupported, 405)]
    #[case("POST", "/v2/alpine/blobs/uploads/", ErrorCode::Unsupported, 405)]
    #[case("PATCH", "/v2/alpine/blobs/uploads/abc", ErrorCode::Unsupported, 405)]
    #[case("GET", "/v2/alpine/blobs/uploads/abc", ErrorCode::Unsupported, 405)]
    #[case(
        "DELETE",
        "/v2/alpine/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ErrorCode::Unsupported,
        405
    )]
    #[case("OPTIONS", "/v2/", ErrorCode::Unsupported, 405)]
    #[case("GET", "/v2/Alpine/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2/../etc/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2/%2e%2e/x/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2/a%2fb/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2/a/manifests/lat%00est", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2/a\r\nb/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case("GET", "/v2//alpine/manifests/latest", ErrorCode::NameInvalid, 400)]
    #[case(
        "GET",
        "/v2/http:/evil.com/x/manifests/latest",
        ErrorCode::NameInvalid,
        400
    )]
    #[case(
        "GET",
        "/v2/user@evil.com/x/manifests/latest",
        ErrorCode::NameInvalid,
        400
    )]
    #[case("GET", "/v2/alpine/manifests/.bad", ErrorCode::ManifestUnknown, 404)]
    #[case(
        "GET",
        "/v2/alpine/manifests/sha256:abc",
        ErrorCode::DigestInvalid,
        400
    )]
    #[case("GET", "/v2/alpine/blobs/latest", ErrorCode::DigestInvalid, 400)]
    #[case(
        "GET",
        "/v2/alpine/blobs/md5:0123456789abcdef0123456789abcdef",
        ErrorCode::DigestInvalid,
        400
    )]
    #[case("GET", "/v2/alpine/referrers/latest", ErrorCode::DigestInvalid, 400)]
    #[case("GET", "/v2/alpine/manifests/", ErrorCode::ManifestUnknown, 404)]
    #[case("GET", "/v2/manifests/latest", ErrorCode::NameUnknown, 404)]
    #[case("GET", "/v2/alpine", ErrorCode::NameUnknown, 404)]
    #[case("GET", "/v2/alpine/other/x", ErrorCode::NameUnknown, 404)]
    #[case("GET", "/etc/passwd", ErrorCode::NameUnknown, 404)]
    #[case("GET", "/v2/alpine/tags/list/x", ErrorCode::NameUnknown, 404)]
    fn bad_routes(
        #[case] method: &str,
        #[case] path: &str,
        #[case] code: ErrorCode,
        #[case] status: u16,
    ) {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let e = parse(&m, path).unwrap_err();
        assert_eq!((e.code, e.status), (code, status), "{path}: {e}");
    }

    #[test]
    fn huge_paths_are_refused_briefly() {
        let path = format!("/v2/{}/manifests/latest", "a/".repeat(5000));
        let e = get(&path).unwrap_err();
        assert_eq!(e.code, ErrorCode::NameInvalid);
        assert!(e.message.len() < 300);
    }
}
