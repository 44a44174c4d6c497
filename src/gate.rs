//! The front door, decided before any upstream is asked: the mirror's own logins (what passes, what
//! is refused, and that a mirror login or token never goes further), and the limit on failed
//! logins and admin attempts per client. Plain decisions with time passed in; the platform keeps
//! the state (one `Failures` per isolate) and does the I/O.

use std::collections::HashMap;

use http::Method;

use crate::mirror::Incoming;
use crate::mirror_auth::MirrorCredentials;

/// What the mirror's own login (`MIRROR_CREDENTIALS`) makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    /// Answer `401` with the mirror's challenge.
    Refuse,
    /// `/token` with one of the mirror's logins: issue a mirror token for this user.
    IssueToken(String),
    /// Go on. With `strip`, the request showed a mirror login or token, which is the mirror's
    /// alone: it goes on without `Authorization` (the mirror's own identity upstream).
    Pass { strip: bool },
}

/// The login a `/token` request presents: `Authorization` on GET, the OAuth2 password form on POST
/// (as containerd sends).
pub fn presented_login(req: &Incoming) -> Option<String> {
    if req.method == Method::POST {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        return get("username")
            .zip(get("password"))
            .map(|(u, p)| crate::mirror::upstream::basic(&format!("{u}:{p}")));
    }
    authorization(req).map(str::to_string)
}

fn authorization(req: &Incoming) -> Option<&str> {
    req.headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Whether the request presents a password (a login to check, here or upstream): what a failed
/// attempt is counted for.
pub fn presents_password(req: &Incoming) -> bool {
    let path = req.url.path();
    let basic = authorization(req).is_some_and(|a| a.starts_with("Basic "));
    basic || (path == "/token" && presented_login(req).is_some())
}

/// The mirror-login decision. `trusted` clients (in `TRUSTED_CIDRS`) need no mirror login, but a
/// mirror login or token they show is still the mirror's alone.
pub fn mirror_login(
    mc: &MirrorCredentials,
    trusted: bool,
    req: &Incoming,
    now: u64,
) -> LoginDecision {
    let path = req.url.path();
    if path == "/token" {
        let login = presented_login(req);
        return match login.as_deref().and_then(|l| mc.user_of_basic(l)) {
            Some(user) => LoginDecision::IssueToken(user.to_string()),
            None if trusted => LoginDecision::Pass { strip: false },
            None => LoginDecision::Refuse,
        };
    }
    if !path.starts_with("/v2") {
        return LoginDecision::Pass { strip: false };
    }
    let mine = mc.admits(authorization(req), now);
    match (mine, trusted) {
        (true, _) => LoginDecision::Pass { strip: true },
        (false, true) => LoginDecision::Pass { strip: false },
        (false, false) => LoginDecision::Refuse,
    }
}

/// Whether `ip` may use the mirror at all (before anything else is done for it).
pub fn admit(config: &crate::config::Config, ip: &str) -> Result<(), crate::error::OciError> {
    if config.allow.is_empty()
        || crate::ratelimit::any_contains(&config.allow, ip)
        || crate::ratelimit::any_contains(&config.trusted, ip)
    {
        return Ok(());
    }
    Err(crate::error::OciError::new(
        crate::error::ErrorCode::Denied,
        "this mirror serves only the networks it is configured for",
    ))
}

/// How many failures a client may have in a window before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub count: u32,
    pub window: u64,
}

/// Wrong passwords at `/token` or on registry requests, per client.
pub const LOGIN_FAILURES: FailureLimit = FailureLimit {
    count: 10,
    window: 600,
};
/// Wrong admin tokens, per client.
pub const ADMIN_FAILURES: FailureLimit = FailureLimit {
    count: 5,
    window: 600,
};
/// Clients remembered before the oldest windows are dropped.
const MAX_CLIENTS: usize = 10_000;

/// Failed attempts per (kind, client) in fixed windows. One per isolate: what several isolates
/// allow together is bounded by their number times the limit.
#[derive(Debug, Default)]
pub struct Failures {
    seen: HashMap<(&'static str, String), (u64, u32)>,
}

impl Failures {
    /// Seconds until `client` may try again, if it is over `limit` for `kind`.
    pub fn blocked(
        &self,
        kind: &'static str,
        client: &str,
        limit: FailureLimit,
        now: u64,
    ) -> Option<u64> {
        let &(start, count) = self.seen.get(&(kind, client.to_string()))?;
        let end = start.saturating_add(limit.window);
        (count >= limit.count && now < end).then(|| end - now)
    }

    /// Counts one failure of `client` for `kind` at `now`.
    pub fn record(&mut self, kind: &'static str, client: &str, limit: FailureLimit, now: u64) {
        if self.seen.len() >= MAX_CLIENTS {
            self.seen
                .retain(|_, (start, _)| now < start.saturating_add(limit.window));
            if self.seen.len() >= MAX_CLIENTS {
                self.seen.clear();
            }
        }
        let entry = self
            .seen
            .entry((kind, client.to_string()))
            .or_insert((now, 0));
        if now >= entry.0.saturating_add(limit.window) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::upstream::basic;
    use http::HeaderMap;
    use rstest::rstest;

    fn req(method: Method, path: &str, auth: Option<&str>, body: &str) -> Incoming {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        Incoming {
            method,
            url: url::Url::parse(&format!("http://mirror.test{path}")).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn mc() -> MirrorCredentials {
        MirrorCredentials::parse("ci:pw").unwrap()
    }

    /// What each client showing what gets, trusted or not. A mirror login or token is never passed
    /// on (strip), for anyone; a trusted client's other credentials (its own upstream login) are.
    #[rstest]
    #[case::untrusted_no_login(false, "/v2/a/manifests/x", None, LoginDecision::Refuse)]
    #[case::untrusted_mirror_basic(false, "/v2/a/manifests/x", Some("ci:pw"), LoginDecision::Pass { strip: true })]
    #[case::untrusted_mirror_token(false, "/v2/a/manifests/x", Some("TOKEN"), LoginDecision::Pass { strip: true })]
    #[case::untrusted_wrong(false, "/v2/a/manifests/x", Some("ci:nope"), LoginDecision::Refuse)]
    #[case::untrusted_token_endpoint(false, "/token", Some("ci:pw"), LoginDecision::IssueToken("ci".into()))]
    #[case::untrusted_token_wrong(false, "/token", Some("ci:nope"), LoginDecision::Refuse)]
    #[case::untrusted_landing(false, "/", None, LoginDecision::Pass { strip: false })]
    #[case::trusted_no_login(true, "/v2/a/manifests/x", None, LoginDecision::Pass { strip: false })]
    #[case::trusted_mirror_basic(true, "/v2/a/manifests/x", Some("ci:pw"), LoginDecision::Pass { strip: true })]
    #[case::trusted_mirror_token(true, "/v2/a/manifests/x", Some("TOKEN"), LoginDecision::Pass { strip: true })]
    #[case::trusted_own_login(true, "/v2/a/manifests/x", Some("alice:hub"), LoginDecision::Pass { strip: false })]
    #[case::trusted_token_endpoint_mirror(true, "/token", Some("ci:pw"), LoginDecision::IssueToken("ci".into()))]
    #[case::trusted_token_endpoint_own(true, "/token", Some("alice:hub"), LoginDecision::Pass { strip: false })]
    fn mirror_login_decisions(
        #[case] trusted: bool,
        #[case] path: &str,
        #[case] login: Option<&str>,
        #[case] want: LoginDecision,
    ) {
        let c = mc();
        let auth = login.map(|l| match l {
            "TOKEN" => format!("Bearer {}", c.issue("ci", 1000)),
            l => basic(l),
        });
        let r = req(Method::GET, path, auth.as_deref(), "");
        assert_eq!(mirror_login(&c, trusted, &r, 1000), want);
    }

    #[test]
    fn the_password_form_is_a_login_too() {
        let c = mc();
        let form = "grant_type=password&username=ci&password=pw&service=edgemirror";
        let r = req(Method::POST, "/token", None, form);
        assert_eq!(
            mirror_login(&c, false, &r, 1000),
            LoginDecision::IssueToken("ci".into())
        );
        assert!(presents_password(&r));
        let r = req(
            Method::POST,
            "/token",
            None,
            "grant_type=password&username=ci&password=x",
        );
        assert_eq!(mirror_login(&c, false, &r, 1000), LoginDecision::Refuse);
    }

    #[rstest]
    #[case(Method::GET, "/token", Some("Basic YTpi"), "", true)]
    #[case(Method::GET, "/token", None, "", false)]
    #[case(Method::GET, "/v2/a/manifests/x", Some("Basic YTpi"), "", true)]
    #[case(Method::GET, "/v2/a/manifests/x", Some("Bearer t"), "", false)]
    #[case(Method::POST, "/token", None, "username=a&password=b", true)]
    #[case(Method::POST, "/token", None, "grant_type=refresh_token", false)]
    fn what_counts_as_a_login(
        #[case] method: Method,
        #[case] path: &str,
        #[case] auth: Option<&str>,
        #[case] body: &str,
        #[case] want: bool,
    ) {
        assert_eq!(presents_password(&req(method, path, auth, body)), want);
    }

    #[test]
    fn failures_block_past_the_limit_until_the_window_ends() {
        let l = FailureLimit {
            count: 3,
            window: 100,
        };
        let mut f = Failures::default();
        for now in [1000, 1001, 1002] {
            assert_eq!(f.blocked("login", "1.2.3.4", l, now), None);
            f.record("login", "1.2.3.4", l, now);
        }
        assert_eq!(f.blocked("login", "1.2.3.4", l, 1002), Some(98));
        assert_eq!(f.blocked("login", "1.2.3.4", l, 1099), Some(1));
        assert_eq!(
            f.blocked("login", "1.2.3.5", l, 1002),
            None,
            "another client"
        );
        assert_eq!(f.blocked("admin", "1.2.3.4", l, 1002), None, "another kind");
        assert_eq!(f.blocked("login", "1.2.3.4", l, 1100), None, "a new window");
        f.record("login", "1.2.3.4", l, 1100);
        assert_eq!(
            f.blocked("login", "1.2.3.4", l, 1100),
            None,
            "counting starts again"
        );
    }

    #[test]
    fn failures_are_bounded() {
        let l = FailureLimit {
            count: 3,
            window: 100,
        };
        let mut f = Failures::default();
        for i in 0..(MAX_CLIENTS * 2) {
            f.record("login", &i.to_string(), l, 1000);
        }
        assert!(f.seen.len() <= MAX_CLIENTS);
    }
}
