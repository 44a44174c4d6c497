//! Upstream tokens fetched ahead. A client asks the mirror's token endpoint for a scope just
//! before it pulls that repository (Docker, containerd and podman all do: `/v2/`, `/token`, then
//! the manifest). The mirror's anonymous token is answered at once, and the upstream token the
//! pull will need (with the realm's discovery, on a registry met for the first time) is fetched
//! after the answer, while the client's next request is on its way. That request finds the token
//! kept, or joins the fetch in flight, instead of paying the 401 and the token exchange itself.
//!
//! Bounded: a few scopes per token request, nothing when the token is kept or being fetched, a
//! budget of upstream requests per scope, and only for upstreams the client would pull from with
//! the mirror's own identity (a client's login is never used when nobody asked for it).

use super::request::fetch_ahead_as_mirror;
use super::upstream::Session;
use crate::challenge::RepoScope;
use crate::config::Config;
use crate::ports::Fetcher;
use crate::reference::RepoName;
use crate::select::select;

/// Scopes of one token request fetched ahead (a pull names one; a cross-repository mount two).
pub const MAX_AHEAD: usize = 2;
/// Upstream requests one scope's fetch ahead may make: the realm's discovery, the token, and one
/// retry of either.
pub const AHEAD_BUDGET: u32 = 3;

/// A token to fetch ahead: the upstream's name and the scope as the upstream names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ahead {
    pub upstream: String,
    pub scope: String,
}

/// What a token request's scopes ask to fetch ahead: `repository:<name>:…` scopes whose name
/// selects an upstream (by host, prefix or default, as the pull will), rewritten to the upstream's
/// name, at most `MAX_AHEAD`, each once. Anything else (other resource types, bad names, names no
/// upstream takes) asks for nothing.
pub fn plan(config: &Config, host: &str, scopes: &[String]) -> Vec<Ahead> {
    let mut out: Vec<Ahead> = Vec::new();
    for scope in scopes {
        if out.len() == MAX_AHEAD {
            break;
        }
        let Some(parsed) = RepoScope::parse(scope) else {
            continue;
        };
        let Ok(name) = RepoName::parse(parsed.name) else {
            continue;
        };
        let Ok(sel) = select(config, host, &name, None) else {
            continue;
        };
        let ahead = Ahead {
            upstream: sel.upstream.name.clone(),
            scope: RepoScope::pull(sel.name.as_str()).to_string(),
        };
        if !out.contains(&ahead) {
            out.push(ahead);
        }
    }
    out
}

/// Fetches the tokens `list` names, one after another, with the mirror's identity for each
/// upstream. Failures are dropped: the pull itself asks again and reports them.
pub async fn run<F: Fetcher>(config: &Config, session: &Session<'_, F>, list: &[Ahead]) {
    for ahead in list.iter().take(MAX_AHEAD) {
        let Some(upstream) = config.upstreams.iter().find(|u| u.name == ahead.upstream) else {
            continue;
        };
        // A failure is the pull's to meet (it fetches its own token then).
        let _ = fetch_ahead_as_mirror(session, upstream, &ahead.scope, true).await;
    }
}
