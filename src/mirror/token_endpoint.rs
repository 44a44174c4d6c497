//! The mirror's own token endpoint (login pass-through). When an upstream refuses the mirror, the
//! client is challenged with a realm on the mirror; here its credentials (Basic on `GET`, or the
//! OAuth2 password form on `POST`, as containerd sends) go to the upstream's own realm, with the
//! scopes rewritten to the upstream's names (`library/`, prefixes stripped; scopes that name other
//! registries dropped), and the upstream's token comes back to the client, wrapped with the
//! upstream's name so the mirror sends it to that upstream alone. Logins go only to upstreams that
//! take them (`client_logins`; by default the default upstream) and only to realms the upstream
//! may use; for any other upstream the client gets the anonymous token and pulls with the mirror's
//! identity.

use http::header::AUTHORIZATION;
use http::{Method, StatusCode};

use super::token_ahead::{plan, Ahead};
use super::upstream::{basic, RealmRequest};
use super::{Incoming, Reply, Session, ANONYMOUS_TOKEN};
use crate::challenge::RepoScope;
use crate::config::{Config, Upstream};
use crate::error::{ErrorCode, OciError};
use crate::ports::Fetcher;
use crate::reference::RepoName;
use crate::select::select;

struct Params {
    service: Option<String>,
    scopes: Vec<String>,
    /// The `Authorization` to send to the upstream realm.
    credentials: Option<String>,
}

fn params(req: &Incoming) -> Result<Params, OciError> {
    let bad = |m: &str| OciError::bad_request(m);
    if req.method == Method::POST {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let credentials = match get("grant_type").as_deref() {
            Some("password") => match (get("username"), get("password")) {
                (Some(u), Some(p)) => Some(basic(&format!("{u}:{p}"))),
                _ => return Err(bad("grant_type=password needs username and password")),
            },
            // Refresh tokens are never handed out (see below), so none comes back.
            _ => return Err(bad("unsupported grant_type (use password)")),
        };
        let scopes = form
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect();
        return Ok(Params {
            service: get("service"),
            scopes,
            credentials,
        });
    }
    let q: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let credentials = req
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("Basic "))
        .map(str::to_string);
    Ok(Params {
        service: q
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone()),
        scopes: q
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .collect(),
        credentials,
    })
}

/// `repository:<client name>:<actions>` → `repository:<upstream name>:pull`, if it names `up`.
pub fn rewrite_scope(config: &Config, host: &str, up: &Upstream, scope: &str) -> Option<String> {
    let scope = RepoScope::parse(scope)?;
    let sel = select(config, host, &RepoName::parse(scope.name).ok()?, None).ok()?;
    (sel.upstream.name == up.name).then(|| RepoScope::pull(sel.name.as_str()).to_string())
}

/// What a client's token from this endpoint starts with; `~` is in no upstream name.
const WRAPPED: &str = "emu~";

/// The token a client gets for `upstream`'s token `token`.
pub fn wrap_token(upstream: &str, token: &str) -> String {
    format!("{WRAPPED}{upstream}~{token}")
}

/// The upstream's token inside a client's token, if it was issued for `upstream`.
pub fn unwrap_token<'a>(upstream: &str, value: &'a str) -> Option<&'a str> {
    let (name, token) = value.strip_prefix(WRAPPED)?.split_once('~')?;
    (name == upstream && !token.is_empty()).then_some(token)
}

/// A token endpoint's answer: the token under both names clients read, and its lifetime.
pub fn token_response<B>(token: &str, expires_in: u64) -> http::Response<Reply<B>> {
    let body = serde_json::to_vec(
        &serde_json::json!({"token": token, "access_token": token, "expires_in": expires_in}),
    )
    .unwrap_or_default();
    super::small(StatusCode::OK, "application/json", body)
}

fn anonymous<B>() -> http::Response<Reply<B>> {
    token_response(ANONYMOUS_TOKEN, 3600)
}

/// The token endpoint's answer, and the upstream tokens to fetch after it: those the client's
/// pull will need when it pulls with the mirror's own identity (see `token_ahead`).
pub async fn serve<F: Fetcher>(
    config: &Config,
    session: &Session<'_, F>,
    req: &Incoming,
) -> Result<(http::Response<Reply<F::Body>>, Vec<Ahead>), OciError> {
    let p = params(req)?;
    let host = super::upstream::host_of(&req.url);
    // No credentials: the anonymous token, at once; the mirror pulls with its own identity.
    let Some(login) = p.credentials.as_deref() else {
        return Ok((anonymous(), plan(config, &host, &p.scopes)));
    };
    let up = upstream_for(config, &host, &p)?;
    // A login goes only where the operator allows logins; elsewhere the mirror's own identity.
    if !config.takes_client_logins(up) {
        return Ok((anonymous(), plan(config, &host, &p.scopes)));
    }
    let scopes: Vec<String> = p
        .scopes
        .iter()
        .filter_map(|s| rewrite_scope(config, &host, up, s))
        .collect();
    let private = super::private_headers(up, session.secret)?;
    let Some(realm) = session.realm_of(&up.registry, &private).await? else {
        // The upstream has no token auth: nothing to pass through, nor to fetch ahead.
        return Ok((anonymous(), Vec::new()));
    };
    let ask = RealmRequest {
        upstream: up,
        realm: &realm.realm,
        service: realm.service.as_deref(),
        scopes: &scopes,
        login: Some(login),
        private: &private,
    };
    let body = session.exchange(&ask).await?;
    let token = for_the_client(&up.name, &body)?;
    Ok((
        super::small(StatusCode::OK, "application/json", token),
        Vec::new(),
    ))
}

/// The upstream a token request is for: the `service` it names, else the scope's repository (by
/// host, prefix or default); `docker login` asks with no scope and is checked against the default.
fn upstream_for<'c>(config: &'c Config, host: &str, p: &Params) -> Result<&'c Upstream, OciError> {
    let by_service = p
        .service
        .as_deref()
        .and_then(|s| config.upstreams.iter().find(|u| u.name == s));
    let by_scope = || {
        p.scopes.iter().find_map(|s| {
            let scope = RepoScope::parse(s)?;
            select(config, host, &RepoName::parse(scope.name).ok()?, None)
                .ok()
                .map(|sel| sel.upstream)
        })
    };
    let by_default = || {
        p.scopes
            .is_empty()
            .then(|| config.default.and_then(|i| config.get(i)))
            .flatten()
    };
    by_service
        .or_else(by_scope)
        .or_else(by_default)
        .ok_or_else(|| {
            OciError::new(
                ErrorCode::NameUnknown,
                "no configured upstream matches this token request's service or scope",
            )
        })
}

/// The realm's answer as the client gets it: no refresh token (it would let a client come back
/// without credentials), and the token wrapped for `upstream` under both names clients read
/// (containerd reads `access_token` first).
fn for_the_client(upstream: &str, body: &[u8]) -> Result<Vec<u8>, OciError> {
    let bad = |what: &str| {
        OciError::new(
            ErrorCode::Unavailable,
            format!("token endpoint of upstream {upstream} sent {what}"),
        )
        .with_status(502)
    };
    let mut token: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| bad("no JSON"))?;
    token.remove("refresh_token");
    let upstream_token = ["token", "access_token"]
        .iter()
        .find_map(|f| token.get(*f).and_then(|v| v.as_str()).map(str::to_string))
        .ok_or_else(|| bad("no token"))?;
    let wrapped = serde_json::Value::String(wrap_token(upstream, &upstream_token));
    token.insert("token".into(), wrapped.clone());
    token.insert("access_token".into(), wrapped);
    Ok(serde_json::to_vec(&token).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_tokens_open_only_for_their_upstream() {
        let t = wrap_token("docker.io", "eyJ.a~b.c");
        assert_eq!(unwrap_token("docker.io", &t), Some("eyJ.a~b.c"));
        assert_eq!(unwrap_token("ghcr.io", &t), None);
        assert_eq!(unwrap_token("docker", &t), None);
        assert_eq!(
            unwrap_token("docker.io", "eyJ.a.c"),
            None,
            "not one of ours"
        );
        assert_eq!(unwrap_token("docker.io", "emu~docker.io~"), None);
        assert_eq!(unwrap_token("docker.io", ANONYMOUS_TOKEN), None);
    }
}
