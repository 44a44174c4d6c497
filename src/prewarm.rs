//! Scheduled prewarm: pull the configured images through the mirror's own flow ahead of time —
//! the tag, every platform of an index, and (when blobs are kept persistently) every blob not yet
//! held — within a budget of upstream requests. A cursor remembers where a run stopped, so the next
//! run goes on from there.

use http::{HeaderMap, HeaderValue, Method};

use crate::cache_key;
use crate::config::Config;
use crate::mirror::{handle, Incoming, Reply, Session};
use crate::policy::MAX_MANIFEST;
use crate::ports::{BlobLookup, Fetcher, Store};
use crate::reference::{Digest, RepoName, Tag};
use crate::select::select;

/// Every manifest type a registry may answer a tag with.
pub const CURSOR_KEY: &str = "https://edgemirror.cache/v1/_prewarm/cursor";
const CURSOR_KEEP_SECS: u64 = 7 * 24 * 3600;

/// What one image's warming did, for its log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub image: String,
    /// `warmed`, `stopped` (budget spent), `skipped` (not reached) or `failed`.
    pub result: &'static str,
    pub manifests: u32,
    pub blobs_fetched: u32,
    pub blobs_held: u32,
    pub error: Option<String>,
}

struct Walk<'a, F: Fetcher, S> {
    config: &'a Config,
    session: &'a Session<'a, F>,
    store: &'a S,
    blobs: bool,
}

impl<F: Fetcher, S: Store<Body = F::Body>> Walk<'_, F, S> {
    fn budget_spent(&self) -> bool {
        self.session.budget.is_some_and(|b| b.spent())
    }

    /// One GET through the mirror's flow, as a client would send it.
    async fn get(&self, path: &str, manifest: bool) -> Result<Reply<F::Body>, String> {
        let mut headers = HeaderMap::new();
        if manifest {
            headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static(crate::policy::ACCEPT_ALL_MANIFESTS),
            );
        }
        let url =
            url::Url::parse(&format!("http://prewarm.invalid{path}")).map_err(|e| e.to_string())?;
        let (resp, outcome) = handle(
            Ok(self.config),
            self.session,
            self.store,
            &Incoming {
                method: Method::GET,
                url,
                headers,
                body: Vec::new(),
            },
        )
        .await;
        if resp.status() != http::StatusCode::OK {
            let (_, body) = resp.into_parts();
            if let Reply::Stream(b) = body {
                self.session.fetcher.discard(b);
            }
            return Err(outcome.error.unwrap_or_else(|| "upstream refused".into()));
        }
        Ok(resp.into_body())
    }

    async fn manifest(
        &self,
        name: &RepoName,
        reference: &str,
    ) -> Result<serde_json::Value, String> {
        match self
            .get(&format!("/v2/{name}/manifests/{reference}"), true)
            .await?
        {
            // A manifest comes as a body of the runtime's (the store's on a hit): read here, one
            // at a time, to find what it references.
            Reply::Stream(b) => {
                let bytes = self
                    .session
                    .fetcher
                    .read_small(b, MAX_MANIFEST)
                    .await
                    .ok_or_else(|| "manifest unreadable or too large".to_string())?;
                serde_json::from_slice(&bytes).map_err(|_| "manifest is not JSON".to_string())
            }
            Reply::Bytes(b) => {
                serde_json::from_slice(&b).map_err(|_| "manifest is not JSON".to_string())
            }
            Reply::Empty => Err("empty manifest".into()),
        }
    }

    async fn image(&self, name: &RepoName, tag: &Tag, report: &mut Report) -> Result<(), String> {
        let top = self.manifest(name, tag.as_str()).await?;
        report.manifests += 1;
        let mut images = Vec::new();
        match top.get("manifests").and_then(|m| m.as_array()) {
            Some(list) => {
                for entry in list {
                    let Some(d) = entry.get("digest").and_then(|d| d.as_str()) else {
                        continue;
                    };
                    images.push(self.manifest(name, d).await?);
                    report.manifests += 1;
                }
            }
            None => images.push(top),
        }
        if !self.blobs {
            return Ok(());
        }
        let sel = select(self.config, "prewarm.invalid", name, None).map_err(|e| e.message)?;
        for m in &images {
            let config = m.get("config").into_iter();
            let layers = m
                .get("layers")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten();
            for blob in config.chain(layers) {
                // Foreign (non-distributable) layers live elsewhere; they are not the mirror's to keep.
                if blob.get("urls").is_some() {
                    continue;
                }
                let Some(digest) = blob
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(|d| Digest::parse(d).ok())
                else {
                    continue;
                };
                let key = cache_key::blob(&sel.upstream.name, &sel.name, &digest);
                if let BlobLookup::Found { .. } = self.store.blob(&key, None, true).await {
                    report.blobs_held += 1;
                    continue;
                }
                match self
                    .get(&format!("/v2/{name}/blobs/{}", digest.as_str()), false)
                    .await?
                {
                    // The client's half of the split stream is not needed; the store's half goes on.
                    Reply::Stream(b) => self.session.fetcher.discard(b),
                    Reply::Bytes(_) | Reply::Empty => {}
                }
                report.blobs_fetched += 1;
            }
        }
        Ok(())
    }
}

/// Warms `config.prewarm`, starting at the stored cursor. `blobs`: whether blobs are worth fetching
/// (a persistent store is bound).
pub async fn run<F: Fetcher, S: Store<Body = F::Body>>(
    config: &Config,
    session: &Session<'_, F>,
    store: &S,
    blobs: bool,
) -> Vec<Report> {
    let n = config.prewarm.len();
    if n == 0 {
        return vec![];
    }
    let start = store
        .note(CURSOR_KEY)
        .await
        .and_then(|c| c.trim().parse::<usize>().ok())
        .unwrap_or(0)
        % n;
    let walk = Walk {
        config,
        session,
        store,
        blobs,
    };
    let mut reports = Vec::with_capacity(n);
    let mut next = start;
    let mut stopped = false;
    for i in 0..n {
        let (name, tag) = &config.prewarm[(start + i) % n];
        let mut report = Report {
            image: format!("{name}:{}", tag.as_str()),
            ..Default::default()
        };
        if stopped {
            report.result = "skipped";
        } else {
            match walk.image(name, tag, &mut report).await {
                Ok(()) => {
                    report.result = "warmed";
                    next = (start + i + 1) % n;
                }
                Err(e) if walk.budget_spent() => {
                    report.result = "stopped";
                    report.error = Some(e);
                    stopped = true;
                }
                Err(e) => {
                    report.result = "failed";
                    report.error = Some(e);
                    next = (start + i + 1) % n;
                }
            }
        }
        reports.push(report);
    }
    store.put_note(CURSOR_KEY, &next.to_string(), CURSOR_KEEP_SECS);
    reports
}
