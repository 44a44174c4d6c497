//! The client's query string and the upstream's URL: the parameters the mirror understands (`ns`,
//! pagination, `artifactType`), checked before any of them goes upstream.

use crate::config::Upstream;
use crate::error::{clip, ErrorCode, OciError};
use crate::reference::RepoName;
use crate::route::Resource;

/// Query parameters the mirror understands.
#[derive(Debug, Default)]
pub(super) struct Query {
    pub(super) ns: Option<String>,
    n: Option<String>,
    last: Option<String>,
    next_page: Option<String>,
    artifact_type: Option<String>,
}

pub(super) fn query(url: &url::Url) -> Result<Query, OciError> {
    let mut q = Query::default();
    for (k, v) in url.query_pairs() {
        // Two namespaces is no namespace: which registry was meant cannot be told.
        if k == "ns" && q.ns.is_some() {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                "ns given more than once",
            ));
        }
        let slot = match k.as_ref() {
            "ns" => &mut q.ns,
            "n" => &mut q.n,
            "last" => &mut q.last,
            "next_page" => &mut q.next_page,
            "artifactType" => &mut q.artifact_type,
            _ => continue,
        };
        // A repeated pagination parameter keeps its first value.
        slot.get_or_insert_with(|| v.into_owned());
    }
    Ok(q)
}

/// The upstream's URL for a resource of repository `name` (its name there).
pub(super) fn upstream_url(
    up: &Upstream,
    name: &RepoName,
    resource: &Resource,
    q: &Query,
) -> Result<url::Url, OciError> {
    let suffix = match resource {
        Resource::Manifest(r) => format!("manifests/{}", r.as_str()),
        Resource::Blob(d) => format!("blobs/{}", d.as_str()),
        Resource::TagsList => "tags/list".to_string(),
        Resource::Referrers(d) => format!("referrers/{}", d.as_str()),
    };
    let mut url =
        url::Url::parse(&format!("{}/v2/{name}/{suffix}", up.registry)).map_err(|_| {
            OciError::new(
                ErrorCode::NameInvalid,
                "name does not form a valid upstream URL",
            )
        })?;
    upstream_query(&mut url, resource, q)?;
    Ok(url)
}

/// Copies the query parameters an upstream may see, after checking them.
fn upstream_query(url: &mut url::Url, resource: &Resource, q: &Query) -> Result<(), OciError> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    match resource {
        Resource::TagsList => {
            if let Some(n) = &q.n {
                let ok = n.len() <= 6 && n.parse::<u32>().is_ok();
                if !ok {
                    return Err(OciError::new(
                        ErrorCode::PaginationNumberInvalid,
                        format!("n={:?} is not a page size", clip(n)),
                    ));
                }
                pairs.push(("n", n.clone()));
            }
            // `last` is a tag on most registries but an opaque token on some; `next_page` is Quay's.
            for (key, value) in [("last", &q.last), ("next_page", &q.next_page)] {
                if let Some(v) = value {
                    if !is_page_token(v) {
                        return Err(OciError::new(
                            ErrorCode::PaginationNumberInvalid,
                            format!("{key}={:?} is not a page token", clip(v)),
                        )
                        .with_status(400));
                    }
                    pairs.push((key, v.clone()));
                }
            }
        }
        Resource::Referrers(_) => {
            if let Some(t) = &q.artifact_type {
                let ok = !t.is_empty()
                    && t.len() <= 255
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b));
                if !ok {
                    return Err(OciError::bad_request("artifactType is not a media type"));
                }
                pairs.push(("artifactType", t.clone()));
            }
        }
        _ => {}
    }
    if !pairs.is_empty() {
        let mut qp = url.query_pairs_mut();
        for (k, v) in pairs {
            qp.append_pair(k, &v);
        }
    }
    Ok(())
}

/// Opaque pagination tokens: URL-safe characters, bounded length.
fn is_page_token(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 1024
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~=".contains(&b))
}
