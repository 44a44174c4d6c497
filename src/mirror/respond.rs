//! Upstream response → client response: success passes through with the registry headers that
//! matter (bytes untouched); errors become OCI errors with a fitting status.

use http::header::{HeaderName, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::{is_oci_envelope, ErrorCode, OciError};
use crate::mirror::upstream::SMALL_BODY_LIMIT;
use crate::mirror::Reply;
use crate::ports::Fetcher;
use crate::route::Resource;

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub const API_VERSION: &str = "registry/2.0";
pub const DIGEST_HEADER: &str = "docker-content-digest";

/// Upstream headers a client gets on success.
const PASSED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "docker-content-digest",
    "etag",
    "last-modified",
    "oci-filters-applied",
];

pub fn oci_error<B>(method: &Method, e: &OciError) -> http::Response<Reply<B>> {
    let body = e.body();
    let mut resp = http::Response::new(if *method == Method::HEAD {
        Reply::Empty
    } else {
        Reply::Bytes(body.clone())
    });
    *resp.status_mut() =
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    resp
}

/// The upstream headers a client gets on success, plus the API version.
pub fn passed_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in PASSED_HEADERS {
        if let Some(v) = upstream.get(*name) {
            headers.insert(HeaderName::from_static(name), v.clone());
        }
    }
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    headers
}

/// Pagination parameters passed between client and upstream (`next_page` is Quay's).
pub const PAGINATION_PARAMS: &[&str] = &["n", "last", "next_page"];

/// Where a `tags/list` `Link` points: the client's name and query, not the upstream's.
pub struct LinkRewrite<'a> {
    pub upstream_name: &'a str,
    pub client_name: &'a str,
    pub ns: Option<&'a str>,
}

/// `<https://up/v2/library/alpine/tags/list?last=b&n=2>; rel="next"` →
/// `</v2/alpine/tags/list?last=b&n=2&ns=docker.io>; rel="next"`.
pub fn rewrite_link(value: &str, rw: &LinkRewrite) -> Option<String> {
    let start = value.find('<')? + 1;
    let end = start + value[start..].find('>')?;
    let target = url::Url::parse("http://upstream.invalid/")
        .ok()?
        .join(&value[start..end])
        .ok()?;
    let expected = format!("/v2/{}/tags/list", rw.upstream_name);
    if target.path() != expected {
        return None;
    }
    let mut out = url::Url::parse("http://mirror.invalid/")
        .ok()?
        .join(&format!("/v2/{}/tags/list", rw.client_name))
        .ok()?;
    {
        let mut q = out.query_pairs_mut();
        for (k, v) in target.query_pairs() {
            if PAGINATION_PARAMS.contains(&k.as_ref()) {
                q.append_pair(&k, &v);
            }
        }
        if let Some(ns) = rw.ns {
            q.append_pair("ns", ns);
        }
    }
    let path_and_query = match out.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}", out.path()),
        _ => out.path().to_string(),
    };
    // Only this link-value: any further ones (`, <…>; rel="prev"`) would point at the upstream.
    let params = value[end + 1..].split(", <").next().unwrap_or("");
    Some(format!("<{path_and_query}>{params}"))
}

/// Maps the upstream's final response for `resource` to the client's.
pub async fn to_client<F: Fetcher>(
    fetcher: &F,
    method: &Method,
    resource: &Resource,
    upstream: &str,
    resp: http::Response<F::Body>,
    link: &LinkRewrite<'_>,
) -> http::Response<Reply<F::Body>> {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        let mut headers = passed_headers(&parts.headers);
        if let Some(v) = parts
            .headers
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| rewrite_link(v, link))
        {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(LINK, v);
            }
        }
        if let (Resource::Blob(digest), false) = (resource, headers.contains_key(DIGEST_HEADER)) {
            // Blob hosts (S3, CDNs) do not send it; the content is addressed by it.
            if let Ok(v) = HeaderValue::from_str(digest.as_str()) {
                headers.insert(DIGEST_HEADER, v);
            }
        }
        let reply = if *method == Method::HEAD || status == StatusCode::NOT_MODIFIED {
            fetcher.discard(body);
            Reply::Empty
        } else {
            Reply::Stream(body)
        };
        let mut out = http::Response::new(reply);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        return out;
    }
    let retry_after = parts.headers.get(RETRY_AFTER).cloned();
    let mapped = error_for(status, resource, upstream);
    // Only a body that may be passed on is read.
    let upstream_body = if *method == Method::HEAD || matches!(mapped, Mapped::Own(_)) {
        fetcher.discard(body);
        None
    } else {
        fetcher.read_small(body, SMALL_BODY_LIMIT).await
    };
    let mut out = match mapped {
        // A 4xx the upstream explained in OCI terms is passed on as it said it.
        Mapped::Forward(e) => match upstream_body.filter(|b| is_oci_envelope(b)) {
            Some(b) => {
                let mut r = oci_error(method, &e);
                if *method != Method::HEAD {
                    r.headers_mut()
                        .insert(CONTENT_LENGTH, HeaderValue::from(b.len()));
                    *r.body_mut() = Reply::Bytes(b);
                }
                r
            }
            None => oci_error(method, &e),
        },
        Mapped::Own(e) => oci_error(method, &e),
    };
    if let Some(v) = retry_after {
        out.headers_mut().insert(RETRY_AFTER, v);
    }
    // A 416's `bytes */size` tells the client the blob's size: passed on when it is one.
    if let Some(v) = parts.headers.get(CONTENT_RANGE).filter(|v| {
        status == StatusCode::RANGE_NOT_SATISFIABLE
            && v.to_str()
                .ok()
                .and_then(|v| v.strip_prefix("bytes */"))
                .is_some_and(|n| {
                    !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
                })
    }) {
        out.headers_mut().insert(CONTENT_RANGE, v.clone());
    }
    out
}

enum Mapped {
    /// Status kept; the upstream's own OCI body is used when it has one.
    Forward(OciError),
    /// Our error replaces the upstream's.
    Own(OciError),
}

fn error_for(status: StatusCode, resource: &Resource, upstream: &str) -> Mapped {
    let s = status.as_u16();
    let e = |code: ErrorCode, msg: String| OciError::new(code, msg).with_status(s);
    match s {
        401 => Mapped::Own(e(
            ErrorCode::Unauthorized,
            format!("upstream {upstream} requires authentication"),
        )),
        403 => Mapped::Forward(e(
            ErrorCode::Denied,
            format!("upstream {upstream} denied access"),
        )),
        404 => {
            let code = match resource {
                Resource::Blob(_) => ErrorCode::BlobUnknown,
                Resource::TagsList => ErrorCode::NameUnknown,
                Resource::Manifest(_) | Resource::Referrers(_) => ErrorCode::ManifestUnknown,
            };
            Mapped::Forward(e(code, format!("not found at upstream {upstream}")))
        }
        416 => Mapped::Own(e(
            ErrorCode::RangeInvalid,
            "requested range not satisfiable".into(),
        )),
        429 => Mapped::Own(e(
            ErrorCode::TooManyRequests,
            format!("upstream {upstream} is rate limiting the mirror"),
        )),
        400..=499 => Mapped::Forward(e(
            ErrorCode::Unknown,
            format!("upstream {upstream} answered {s}"),
        )),
        503 => Mapped::Own(e(
            ErrorCode::Unavailable,
            format!("upstream {upstream} is unavailable"),
        )),
        _ => Mapped::Own(
            OciError::new(
                ErrorCode::Unavailable,
                format!("upstream {upstream} answered {s}"),
            )
            .with_status(502),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        r#"</v2/library/alpine/tags/list?last=b&n=2>; rel="next""#,
        None,
        r#"</v2/alpine/tags/list?last=b&n=2>; rel="next""#
    )]
    #[case(
        r#"<http://127.0.0.1:15100/v2/library/alpine/tags/list?n=2&last=b>; rel="next""#,
        Some("docker.io"),
        r#"</v2/alpine/tags/list?n=2&last=b&ns=docker.io>; rel="next""#
    )]
    #[case(
        r#"</v2/library/alpine/tags/list?n=100&next_page=gAAAA-x_y%3D>; rel="next""#,
        None,
        r#"</v2/alpine/tags/list?n=100&next_page=gAAAA-x_y%3D>; rel="next""#
    )]
    #[case(r#"</v2/library/alpine/tags/list?n=2&last=a>; rel="next", <https://up.internal/v2/x>; rel="prev""#, None, r#"</v2/alpine/tags/list?n=2&last=a>; rel="next""#)]
    fn links_point_at_the_mirror(
        #[case] value: &str,
        #[case] ns: Option<&str>,
        #[case] want: &str,
    ) {
        let rw = LinkRewrite {
            upstream_name: "library/alpine",
            client_name: "alpine",
            ns,
        };
        assert_eq!(rewrite_link(value, &rw).as_deref(), Some(want));
    }

    #[rstest]
    #[case(r#"<https://evil.example/x>; rel="next""#)]
    #[case(r#"</v2/other/tags/list>; rel="next""#)]
    #[case("garbage")]
    fn foreign_links_are_dropped(#[case] value: &str) {
        let rw = LinkRewrite {
            upstream_name: "library/alpine",
            client_name: "alpine",
            ns: None,
        };
        assert_eq!(rewrite_link(value, &rw), None);
    }
}
