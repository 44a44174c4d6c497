//! Credentials for the mirror itself (`MIRROR_CREDENTIALS`): when set, every registry request must
//! show either one of those logins (Basic) or a token the mirror's `/token` issued for one. Tokens
//! are HMAC-SHA256 signed with a key derived from the credentials (changing them revokes every
//! token) and say who they are for (base64url, so any user name the parser accepts survives the
//! `.`-separated format) and until when. Comparisons are constant-time. Neither a login nor a token
//! of the mirror's ever goes upstream (see `gate`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::authorization::basic;

const TOKEN_PREFIX: &str = "em1";
pub const TOKEN_LIFETIME: u64 = 3600;

/// The configured logins (`user:password`, one per line).
pub struct MirrorCredentials {
    logins: Vec<(String, String)>,
    key: [u8; 32],
}

fn mac(key: &[u8; 32], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; a 32-byte key cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(message);
    m
}

/// Whether a user name may be a mirror login (what the token format carries).
pub fn is_user_name(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 128
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

impl MirrorCredentials {
    /// `None` when the secret holds no `user:password` line.
    pub fn parse(secret: &str) -> Option<MirrorCredentials> {
        let logins: Vec<(String, String)> = secret
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter(|(u, p)| is_user_name(u) && !p.is_empty())
            .map(|(u, p)| (u.to_string(), basic(&format!("{u}:{p}"))))
            .collect();
        if logins.is_empty() {
            return None;
        }
        let key = Sha256::new()
            .chain_update(b"edgemirror mirror tokens\0")
            .chain_update(secret.as_bytes())
            .finalize()
            .into();
        Some(MirrorCredentials { logins, key })
    }

    /// The user a `Basic …` header logs in as.
    pub fn user_of_basic(&self, header: &str) -> Option<&str> {
        let mut found = None;
        for (user, expected) in &self.logins {
            if bool::from(header.as_bytes().ct_eq(expected.as_bytes())) {
                found = Some(user.as_str());
            }
        }
        found
    }

    pub fn issue(&self, user: &str, now: u64) -> String {
        let body = format!(
            "{TOKEN_PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(user),
            now + TOKEN_LIFETIME
        );
        let tag = URL_SAFE_NO_PAD.encode(mac(&self.key, body.as_bytes()).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The user a token was issued for, if it is genuine and unexpired.
    pub fn user_of_token(&self, token: &str, now: u64) -> Option<String> {
        let (body, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        mac(&self.key, body.as_bytes()).verify_slice(&tag).ok()?;
        let mut parts = body.split('.');
        let (Some(TOKEN_PREFIX), Some(user), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
        (exp.parse::<u64>().ok()? > now).then_some(user)
    }

    /// Whether an `Authorization` value is good for the mirror.
    pub fn admits(&self, authorization: Option<&str>, now: u64) -> bool {
        match authorization {
            Some(a) if a.starts_with("Basic ") => self.user_of_basic(a).is_some(),
            Some(a) => a
                .strip_prefix("Bearer ")
                .is_some_and(|t| self.user_of_token(t, now).is_some()),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> MirrorCredentials {
        MirrorCredentials::parse("ci:pa55word\nops:other:colon").unwrap()
    }

    use rstest::rstest;

    /// Every user name the login parser accepts comes back out of a token it issued.
    #[rstest]
    #[case("ci")]
    #[case("alice.smith")]
    #[case("a@b.com")]
    #[case("first.middle.last")]
    #[case("x-y_z")]
    #[case(".")]
    #[case("..")]
    #[case("@")]
    #[case("em1")]
    fn any_accepted_user_name_round_trips_through_a_token(#[case] user: &str) {
        let c = MirrorCredentials::parse(&format!("{user}:pw")).expect("the parser accepts it");
        assert_eq!(c.user_of_basic(&basic(&format!("{user}:pw"))), Some(user));
        let t = c.issue(user, 1000);
        assert_eq!(c.user_of_token(&t, 1000).as_deref(), Some(user), "{t}");
        assert!(c.admits(Some(&format!("Bearer {t}")), 1000));
    }

    #[test]
    fn names_the_parser_refuses() {
        for line in ["a b:pw", "a/b:pw", ":pw", "a:", "a\u{e9}:pw"] {
            assert!(MirrorCredentials::parse(line).is_none(), "{line}");
        }
        assert!(MirrorCredentials::parse(&format!("{}:pw", "a".repeat(129))).is_none());
    }

    #[test]
    fn logins_are_checked_exactly() {
        let c = creds();
        assert_eq!(c.user_of_basic(&basic("ci:pa55word")), Some("ci"));
        assert_eq!(c.user_of_basic(&basic("ops:other:colon")), Some("ops"));
        assert_eq!(c.user_of_basic(&basic("ci:pa55wor")), None);
        assert_eq!(c.user_of_basic(&basic("ci:pa55word ")), None);
        assert_eq!(c.user_of_basic("Basic"), None);
        assert!(MirrorCredentials::parse("").is_none());
        assert!(MirrorCredentials::parse("nopassword").is_none());
    }

    #[test]
    fn tokens_are_signed_expire_and_die_with_the_credentials() {
        let c = creds();
        let t = c.issue("ci", 1000);
        assert_eq!(c.user_of_token(&t, 1000).as_deref(), Some("ci"));
        assert_eq!(c.user_of_token(&t, 1000 + TOKEN_LIFETIME), None, "expired");
        let ops = URL_SAFE_NO_PAD.encode("ops");
        let ci = URL_SAFE_NO_PAD.encode("ci");
        assert_eq!(
            c.user_of_token(&t.replace(&format!(".{ci}."), &format!(".{ops}.")), 1000),
            None,
            "tampered"
        );
        assert_eq!(c.user_of_token(&format!("{t}0"), 1000), None);
        assert_eq!(c.user_of_token("em1.Y2k.99999999999", 1000), None);
        assert_eq!(c.user_of_token("em1.Y2k.99999999999.", 1000), None);
        let rotated = MirrorCredentials::parse("ci:new").unwrap();
        assert_eq!(
            rotated.user_of_token(&t, 1000),
            None,
            "changing the credentials revokes tokens"
        );
        assert!(c.admits(Some(&format!("Bearer {t}")), 1000));
        assert!(c.admits(Some(&basic("ci:pa55word")), 1000));
        assert!(!c.admits(Some("Bearer edgemirror-anonymous"), 1000));
        assert!(!c.admits(None, 1000));
    }
}
