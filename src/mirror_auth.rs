//! Credentials for the mirror itself (`MIRROR_CREDENTIALS`): when set, every registry request must
//! show either one of those logins (Basic) or a token the mirror's `/token` issued for one. Tokens
//! are HMAC-SHA256 signed with a key derived from the credentials (changing them revokes every
//! token) and say who they are for and until when. Comparisons are constant-time.

use sha2::{Digest as _, Sha256};

use crate::admin::constant_time_eq;
use crate::mirror::upstream::basic;

const TOKEN_PREFIX: &str = "em1";
pub const TOKEN_LIFETIME: u64 = 3600;

/// The configured logins (`user:password`, one per line).
pub struct MirrorCredentials {
    logins: Vec<(String, String)>,
    key: [u8; 32],
}

fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl MirrorCredentials {
    /// `None` when the secret holds no `user:password` line.
    pub fn parse(secret: &str) -> Option<MirrorCredentials> {
        let logins: Vec<(String, String)> = secret
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter(|(u, p)| {
                !u.is_empty()
                    && !p.is_empty()
                    && u.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
            })
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
            if constant_time_eq(header.as_bytes(), expected.as_bytes()) {
                found = Some(user.as_str());
            }
        }
        found
    }

    pub fn issue(&self, user: &str, now: u64) -> String {
        let body = format!("{TOKEN_PREFIX}.{user}.{}", now + TOKEN_LIFETIME);
        format!("{body}.{}", hex(&hmac(&self.key, body.as_bytes())))
    }

    /// The user a token was issued for, if it is genuine and unexpired.
    pub fn user_of_token(&self, token: &str, now: u64) -> Option<String> {
        let (body, mac) = token.rsplit_once('.')?;
        if !constant_time_eq(
            mac.as_bytes(),
            hex(&hmac(&self.key, body.as_bytes())).as_bytes(),
        ) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some(TOKEN_PREFIX), Some(user), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (exp.parse::<u64>().ok()? > now).then(|| user.to_string())
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

    #[test]
    fn hmac_matches_rfc_4231_case_2_shape() {
        // HMAC-SHA256 with a 32-byte key is deterministic and key-sensitive.
        let a = hmac(&[1; 32], b"msg");
        assert_eq!(a, hmac(&[1; 32], b"msg"));
        assert_ne!(a, hmac(&[2; 32], b"msg"));
        assert_ne!(a, hmac(&[1; 32], b"msh"));
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
        assert_eq!(
            c.user_of_token(&t.replace(".ci.", ".ops."), 1000),
            None,
            "tampered"
        );
        assert_eq!(c.user_of_token(&format!("{t}0"), 1000), None);
        assert_eq!(c.user_of_token("em1.ci.99999999999", 1000), None);
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
