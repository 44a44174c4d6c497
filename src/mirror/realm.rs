//! Asking a token realm for a token, in one place for the mirror's own token fetches and for
//! login pass-through: the URL (service and scopes), who may receive a login (a realm on the
//! registry's own origin or in its `realms`, never plain http from an https registry), private
//! headers only on the registry's own origin, and what the realm's refusals mean.

use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::upstream::{Session, SMALL_BODY_LIMIT, USER_AGENT_VALUE};
use crate::config::Upstream;
use crate::error::{ErrorCode, OciError};
use crate::ports::Fetcher;

/// A token request to `realm` on behalf of `upstream`.
pub struct RealmRequest<'a> {
    pub upstream: &'a Upstream,
    pub realm: &'a url::Url,
    pub service: Option<&'a str>,
    pub scopes: &'a [String],
    /// `Basic …` (the operator's or a client's login), if any.
    pub login: Option<&'a str>,
    pub private: &'a HeaderMap,
}

fn unavailable(message: String) -> OciError {
    OciError::new(ErrorCode::Unavailable, message).with_status(502)
}

/// Whether a login (the operator's or a client's) may go to `realm` for `upstream`: a realm on
/// the registry's own origin or one listed in its `realms`, and never plain http for an https
/// registry. The error says why, for a 502.
pub fn credentials_may_go_to(upstream: &Upstream, realm: &url::Url) -> Result<(), OciError> {
    let origin = realm.origin().ascii_serialization();
    if upstream.registry.starts_with("https:") && realm.scheme() != "https" {
        return Err(unavailable(format!(
            "upstream {} names a plain-http token realm; its credentials are not sent there",
            upstream.name
        )));
    }
    if origin == upstream.registry || upstream.realms.contains(&origin) {
        return Ok(());
    }
    Err(unavailable(format!(
        "upstream {} names the token realm {origin}, which is not on its own origin nor in its realms; its credentials are not sent there",
        upstream.name
    )))
}

impl<F: Fetcher> Session<'_, F> {
    /// The realm's JSON answer, or the OCI error its refusal means.
    pub async fn exchange(&self, ask: &RealmRequest<'_>) -> Result<Vec<u8>, OciError> {
        if ask.login.is_some() {
            credentials_may_go_to(ask.upstream, ask.realm)?;
        }
        let mut url = ask.realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = ask.service {
                q.append_pair("service", service);
            }
            for scope in ask.scopes {
                q.append_pair("scope", scope);
            }
        }
        let same_origin = ask.realm.origin().ascii_serialization() == ask.upstream.registry;
        let empty = HeaderMap::new();
        let private = if same_origin { ask.private } else { &empty };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let (resp, _) = self
            .follow(&Method::GET, url, headers, ask.login, private)
            .await?;
        let status = resp.status();
        let body = self
            .fetcher
            .read_small(resp.into_body(), SMALL_BODY_LIMIT)
            .await;
        let name = &ask.upstream.name;
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(OciError::new(
                ErrorCode::Unauthorized,
                match ask.login {
                    Some(_) => format!("upstream {name} refused these credentials"),
                    None => format!(
                        "upstream {name} requires authentication for {}",
                        ask.scopes.join(" ")
                    ),
                },
            )),
            s if !s.is_success() => Err(unavailable(format!(
                "token endpoint of upstream {name} answered {}",
                s.as_u16()
            ))),
            _ => body.ok_or_else(|| {
                unavailable(format!(
                    "token endpoint of upstream {name} sent an unreadable answer"
                ))
            }),
        }
    }
}
