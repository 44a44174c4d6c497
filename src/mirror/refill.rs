//! A blob stored after the answer (`BLOB_FILL=after-answer`). The miss answers the client with
//! the upstream's body untouched; once that body has been sent, the platform runs `run`, which
//! fetches the blob again with the mirror's own identity and hands it to the store (which checks
//! its digest as for any fill). The leader's flight lands when that write does, so followers
//! still wait for one store write instead of going upstream.
//!
//! Why: a store slower than the network (the local R2 simulator writes ~190 MB/s) holds the
//! client to its pace when the body is split between them. Blob GETs are not what Docker Hub
//! counts as pulls; the price is the blob's bytes fetched twice.

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, StatusCode};

use super::query::{upstream_url, Query};
use super::respond::LinkRewrite;
use super::{MaybeStore, Plan, Request, Session};
use crate::challenge::RepoScope;
use crate::config::Config;
use crate::flights::Landing;
use crate::ports::{Fetcher, Store};
use crate::reference::{Digest, RepoName};
use crate::route::Resource;

/// Upstream requests one refill may make: the token, the blob, its redirect, one retry.
pub const REFILL_BUDGET: u32 = 4;

/// A blob to fetch again and store once the answer is out.
#[derive(Debug)]
pub struct Refill {
    /// The upstream's name in the configuration.
    pub upstream: String,
    /// The repository as the upstream names it.
    pub name: RepoName,
    pub digest: Digest,
    /// The store's key for the blob.
    pub key: String,
    /// The size the first answer announced: a second answer of another size is not stored.
    pub size: u64,
    pub keep_secs: u64,
    /// The leader's flight: lands with the store write (failed if nothing is written).
    pub landing: Landing,
}

/// Why a refill stored nothing (logged by the platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The upstream is no longer configured.
    UpstreamGone,
    /// The upstream's second answer: its status, or a size other than the first's.
    Upstream(String),
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::UpstreamGone => f.write_str("upstream no longer configured"),
            Skipped::Upstream(why) => f.write_str(why),
        }
    }
}

/// Fetches `refill`'s blob again as the mirror and hands it to `store`. The session's budget
/// bounds its upstream requests (see `REFILL_BUDGET`).
pub async fn run<F: Fetcher, S: Store<Body = F::Body>>(
    config: &Config,
    session: &Session<'_, F>,
    store: &S,
    refill: Refill,
) -> Result<(), Skipped> {
    let Refill {
        upstream,
        name,
        digest,
        key,
        size,
        keep_secs,
        landing,
    } = refill;
    let Some(up) = config.upstreams.iter().find(|u| u.name == upstream) else {
        landing.failed();
        return Err(Skipped::UpstreamGone);
    };
    let resource = Resource::Blob(digest.clone());
    let url = match upstream_url(up, &name, &resource, &Query::default()) {
        Ok(url) => url,
        Err(e) => {
            landing.failed();
            return Err(Skipped::Upstream(e.to_string()));
        }
    };
    let plan = Plan {
        method: &Method::GET,
        upstream: up,
        name: &name,
        resource,
        url,
        headers: HeaderMap::new(),
        scope: RepoScope::pull(name.as_str()).to_string(),
        accept: Vec::new(),
        range: None,
        link: LinkRewrite {
            upstream_name: name.as_str(),
            client_name: name.as_str(),
            ns: None,
        },
        client_auth: None,
    };
    let r = Request {
        session,
        store: &MaybeStore::Shared(store),
        plan: &plan,
        landing: Landing::none(),
    };
    let resp = match r.send(Method::GET).await {
        Ok(resp) => resp,
        Err(e) => {
            landing.failed();
            return Err(Skipped::Upstream(e.to_string()));
        }
    };
    let length = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if resp.status() != StatusCode::OK || length != Some(size) {
        let why = format!(
            "upstream answered {} with {} bytes, not 200 with {size}",
            resp.status().as_u16(),
            length.map_or("unknown".to_string(), |n| n.to_string())
        );
        session.fetcher.discard(resp.into_body());
        landing.failed();
        return Err(Skipped::Upstream(why));
    }
    store.put_blob(
        &key,
        digest.as_str(),
        size,
        resp.into_body(),
        keep_secs,
        landing,
    );
    Ok(())
}
