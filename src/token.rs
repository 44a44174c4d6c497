//! Upstream bearer tokens: parsed from a token endpoint's JSON, kept per (upstream, scope) until
//! shortly before they expire. `Debug` never shows a token's value.

use std::collections::HashMap;

use crate::challenge::BearerChallenge;

use serde::Deserialize;

/// The spec's default lifetime when a token response gives none.
const DEFAULT_EXPIRES_IN: u64 = 60;
/// Tokens are dropped this long before they expire, so none goes out about to lapse.
const EXPIRY_MARGIN: u64 = 10;
/// Bound on tokens kept in one isolate.
const MAX_TOKENS: usize = 512;

#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<redacted>, expires_at={})", self.expires_at)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Token {
    /// Parses a token endpoint's answer (`token` or `access_token`, `expires_in`), at time `now`.
    pub fn from_response(body: &[u8], now: u64) -> Option<Token> {
        let r: TokenResponse = serde_json::from_slice(body).ok()?;
        let value = r
            .token
            .or(r.access_token)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))?;
        let lifetime = r.expires_in.unwrap_or(DEFAULT_EXPIRES_IN).clamp(0, 86_400);
        Some(Token {
            value,
            expires_at: now.saturating_add(lifetime),
        })
    }
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.value)
    }
    /// The token as one isolate shares it with the others (through the coordinator).
    pub fn to_shared(&self) -> String {
        serde_json::json!({"token": self.value, "expires_at": self.expires_at}).to_string()
    }
    /// A token another isolate shared, if it is one and still usable at `now`.
    pub fn from_shared(text: &str, now: u64) -> Option<Token> {
        #[derive(Deserialize)]
        struct Shared {
            token: String,
            expires_at: u64,
        }
        let s: Shared = serde_json::from_str(text).ok()?;
        let ok = !s.token.is_empty() && s.token.bytes().all(|b| b.is_ascii_graphic());
        let t = Token {
            value: s.token,
            expires_at: s.expires_at,
        };
        (ok && t.usable_at(now)).then_some(t)
    }
    fn usable_at(&self, now: u64) -> bool {
        now.saturating_add(EXPIRY_MARGIN) < self.expires_at
    }
}

/// Who obtained a token, as part of its cache key: `anonymous`, or a digest of the credential (so
/// two accounts never share a token, and the key itself holds no secret).
pub fn identity_key(credential: Option<&str>) -> String {
    use sha2::Digest as _;
    match credential {
        None => "anonymous".to_string(),
        Some(c) => {
            let d = sha2::Sha256::new()
                .chain_update(b"edgemirror token identity\0")
                .chain_update(c.as_bytes())
                .finalize();
            format!("credential:{}", hex::encode(&d[..12]))
        }
    }
}

/// A fetch another request started this long ago is no longer waited for (its request may have
/// gone away without saying so).
const FETCH_FORGOTTEN_AFTER: u64 = 30;
/// Seconds a registry found without token auth is not asked for its realm again.
const NO_REALM_RECHECK: u64 = 300;

/// Tokens by (upstream name, scope), and which of them some request is fetching right now (so a
/// burst of cold requests for one repository makes one token request, not one each).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<(String, String), Token>,
    fetching: HashMap<(String, String), u64>,
    /// Each registry's realm and service, from its last Bearer challenge: a request for a scope
    /// with no token yet fetches one first instead of being refused first (a round trip saved).
    realms: HashMap<String, BearerChallenge>,
    /// Registries whose `GET /v2/` named no Bearer realm, and when (not asked again for a while).
    no_realm: HashMap<String, u64>,
}

impl TokenCache {
    /// Remembers where `registry` sends its clients for tokens (configured registries only, so
    /// the map stays as small as the upstream table).
    pub fn learn_realm(&mut self, registry: &str, challenge: &BearerChallenge) {
        if self.realms.len() >= MAX_TOKENS {
            self.realms.clear();
        }
        let known = BearerChallenge {
            realm: challenge.realm.clone(),
            service: challenge.service.clone(),
            scope: None,
            error: None,
        };
        self.realms.insert(registry.to_string(), known);
        self.no_realm.remove(registry);
    }
    /// The realm `registry` named last, if any.
    /// `registry` answered `GET /v2/` with no Bearer challenge at `now`.
    pub fn learn_no_realm(&mut self, registry: &str, now: u64) {
        if self.no_realm.len() >= MAX_TOKENS {
            self.no_realm.clear();
        }
        self.no_realm.insert(registry.to_string(), now);
    }

    /// Whether `registry` was found without a Bearer realm less than `NO_REALM_RECHECK` ago.
    pub fn lacks_realm(&self, registry: &str, now: u64) -> bool {
        self.no_realm
            .get(registry)
            .is_some_and(|&at| now.saturating_sub(at) < NO_REALM_RECHECK)
    }

    pub fn realm_of(&self, registry: &str) -> Option<BearerChallenge> {
        self.realms.get(registry).cloned()
    }
    pub fn get(&self, upstream: &str, scope: &str, now: u64) -> Option<&Token> {
        self.tokens
            .get(&(upstream.to_string(), scope.to_string()))
            .filter(|t| t.usable_at(now))
    }
    pub fn put(&mut self, upstream: &str, scope: &str, token: Token, now: u64) {
        if !token.usable_at(now) {
            return;
        }
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.retain(|_, t| t.usable_at(now));
            if self.tokens.len() >= MAX_TOKENS {
                self.tokens.clear();
            }
        }
        self.tokens
            .insert((upstream.to_string(), scope.to_string()), token);
    }
    /// Marks a fetch of this token as started at `now`.
    pub fn begin_fetch(&mut self, upstream: &str, scope: &str, now: u64) {
        if self.fetching.len() >= MAX_TOKENS {
            self.fetching.clear();
        }
        self.fetching
            .insert((upstream.to_string(), scope.to_string()), now);
    }
    /// Marks it as over, whatever came of it.
    pub fn end_fetch(&mut self, upstream: &str, scope: &str) {
        self.fetching
            .remove(&(upstream.to_string(), scope.to_string()));
    }
    /// Whether another request is fetching this token (and started recently enough to wait for).
    pub fn is_fetching(&self, upstream: &str, scope: &str, now: u64) -> bool {
        self.fetching
            .get(&(upstream.to_string(), scope.to_string()))
            .is_some_and(|&started| now.saturating_sub(started) < FETCH_FORGOTTEN_AFTER)
    }
    pub fn forget(&mut self, upstream: &str, scope: &str) {
        self.tokens
            .remove(&(upstream.to_string(), scope.to_string()));
    }
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(br#"{"token":"abc","expires_in":300}"#.as_slice(), Some(1300))]
    #[case(br#"{"access_token":"abc","expires_in":300}"#.as_slice(), Some(1300))]
    #[case(br#"{"token":"abc"}"#.as_slice(), Some(1060))]
    #[case(br#"{"token":""}"#.as_slice(), None)]
    #[case(br#"{"token":"a b"}"#.as_slice(), None)]
    #[case(br#"{"expires_in":5}"#.as_slice(), None)]
    #[case(b"<html>".as_slice(), None)]
    #[case(br#"{"token":"abc","expires_in":99999999999}"#.as_slice(), Some(1000 + 86_400))]
    fn parses_token_responses(#[case] body: &[u8], #[case] expires_at: Option<u64>) {
        assert_eq!(
            Token::from_response(body, 1000).map(|t| t.expires_at),
            expires_at
        );
    }

    #[test]
    fn identities_are_kept_apart_and_hold_no_secret() {
        let low = identity_key(Some("Basic bG93OnB3"));
        let high = identity_key(Some("Basic aGlnaDpwdw=="));
        assert_ne!(low, high);
        assert_ne!(low, identity_key(None));
        assert_eq!(low, identity_key(Some("Basic bG93OnB3")));
        assert!(!low.contains("bG93"));
    }

    #[test]
    fn shared_tokens_round_trip_and_expire() {
        let t = Token::from_response(br#"{"token":"abc","expires_in":300}"#, 1000).unwrap();
        let shared = t.to_shared();
        assert_eq!(Token::from_shared(&shared, 1000), Some(t.clone()));
        assert_eq!(Token::from_shared(&shared, 1295), None, "about to lapse");
        assert_eq!(Token::from_shared("not json", 1000), None);
        assert_eq!(
            Token::from_shared(r#"{"token":"a b","expires_at":9999}"#, 1000),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let t = Token::from_response(br#"{"token":"s3cr3t-token"}"#, 0).unwrap();
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert_eq!(t.header_value(), "Bearer s3cr3t-token");
    }

    #[test]
    fn cache_respects_expiry_with_margin() {
        let mut c = TokenCache::default();
        let t = Token::from_response(br#"{"token":"t","expires_in":100}"#, 1000).unwrap();
        c.put("hub", "repository:a:pull", t, 1000);
        assert!(c.get("hub", "repository:a:pull", 1000).is_some());
        assert!(c.get("hub", "repository:a:pull", 1089).is_some());
        assert!(
            c.get("hub", "repository:a:pull", 1090).is_none(),
            "dropped 10 s before expiry"
        );
        assert!(c.get("hub", "repository:b:pull", 1000).is_none());
        assert!(c.get("other", "repository:a:pull", 1000).is_none());
        c.forget("hub", "repository:a:pull");
        assert!(c.is_empty());
    }

    #[test]
    fn fetches_in_flight_are_tracked_and_forgotten_when_old() {
        let mut c = TokenCache::default();
        assert!(!c.is_fetching("hub", "s", 1000));
        c.begin_fetch("hub", "s", 1000);
        assert!(c.is_fetching("hub", "s", 1000));
        assert!(c.is_fetching("hub", "s", 1029));
        assert!(
            !c.is_fetching("hub", "s", 1030),
            "a fetch whose request vanished is not waited for"
        );
        assert!(!c.is_fetching("hub", "other", 1000));
        c.end_fetch("hub", "s");
        assert!(!c.is_fetching("hub", "s", 1000));
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = TokenCache::default();
        for i in 0..(MAX_TOKENS * 2) {
            let t = Token::from_response(br#"{"token":"t","expires_in":100}"#, 0).unwrap();
            c.put("hub", &format!("s{i}"), t, 0);
        }
        assert!(c.len() <= MAX_TOKENS);
    }
}
