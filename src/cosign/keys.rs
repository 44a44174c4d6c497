//! The policy's public keys: PEM `PUBLIC KEY` blocks (as `cosign generate-key-pair` writes
//! `cosign.pub`) held in secrets or variables, checked when the configuration is loaded. Only
//! ECDSA P-256 keys are taken (cosign's default): the SubjectPublicKeyInfo is one fixed DER prefix
//! and an uncompressed point, which is all that is checked here; whether the point lies on the
//! curve is the verifier's to say (a key that is not is refused by WebCrypto's import, and so
//! fails closed).

use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::config::{Config, ConfigError};

/// SubjectPublicKeyInfo of an ECDSA (1.2.840.10045.2.1) P-256 (1.2.840.10045.3.1.7) key, up to
/// the BIT STRING holding the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Largest key text read (a PEM P-256 key is ~180 bytes).
const MAX_PEM: usize = 4096;

/// A public key of the policy: the secret it came from, and its SPKI DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub secret: String,
    pub spki: Vec<u8>,
}

impl PublicKey {
    /// The key's point (`04 || x || y`).
    pub fn point(&self) -> &[u8] {
        &self.spki[P256_SPKI_PREFIX.len()..]
    }
}

/// The SPKI DER of a PEM P-256 public key, or what is wrong with it (never its text: a private key
/// pasted by mistake must not reach a log).
pub fn parse_pem(text: &str) -> Result<Vec<u8>, &'static str> {
    if text.len() > MAX_PEM {
        return Err("is too long to be a PEM public key");
    }
    // A key kept in a one-line variable may have its line breaks written as `\n`.
    let text = text.replace("\\n", "\n");
    if text.contains("PRIVATE KEY") {
        return Err("holds a private key; the mirror takes the public key (cosign.pub)");
    }
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let start = text
        .find(BEGIN)
        .ok_or("is not a PEM public key (-----BEGIN PUBLIC KEY-----)")?
        + BEGIN.len();
    let end = text[start..]
        .find(END)
        .ok_or("is not a PEM public key (no -----END PUBLIC KEY-----)")?
        + start;
    let b64: String = text[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "is not a PEM public key (bad base64)")?;
    let is_p256 = der.len() == P256_SPKI_PREFIX.len() + 65
        && der.starts_with(&P256_SPKI_PREFIX)
        && der[P256_SPKI_PREFIX.len()] == 0x04;
    if !is_p256 {
        return Err("is not an ECDSA P-256 public key (cosign's default key type)");
    }
    Ok(der)
}

/// The keys a rule names, from their secrets.
pub fn load(
    names: &[String],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PublicKey>, String> {
    names
        .iter()
        .map(|name| {
            let text = secret(name).ok_or_else(|| format!("key {name} is not set"))?;
            let spki = parse_pem(&text).map_err(|p| format!("key {name} {p}"))?;
            Ok(PublicKey {
                secret: name.clone(),
                spki,
            })
        })
        .collect()
}

/// A short fingerprint of a rule's keys, in the rule's order: part of where verdicts are kept, so
/// that changing a rule's keys has every digest checked again (reordering them does too; no sort,
/// which would cost the wasm a sort of its own).
pub fn fingerprint(keys: &[PublicKey]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(&k.spki);
    }
    hex::encode(&h.finalize()[..8])
}

/// Start-up check: every key every rule names is set and is a P-256 public key. An error makes
/// the configuration invalid, like any other (the mirror answers 503 and `/healthz` says why).
pub fn check(config: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for u in &config.upstreams {
        for (i, rule) in u.verify.rules.iter().enumerate() {
            load(&rule.keys, secret).map_err(|problem| ConfigError {
                field: format!("UPSTREAMS.{}.verify[{i}].keys", u.name),
                problem,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    // A P-256 public key as `cosign generate-key-pair` writes it (generated for this test; no private half kept).
    const PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENS5m/w8dRmz/cx7zqBnkkmnUK47A
ggfHTff8BwGh+/2kYuGDKrlJzM3MrSRWrYx+luYHokiOmPVbZTIXUXvcEQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn a_cosign_public_key_parses() {
        let der = parse_pem(PEM).unwrap();
        assert_eq!(der.len(), 91);
        let one_line = PEM.replace('\n', "\\n");
        assert_eq!(parse_pem(&one_line).unwrap(), der);
        let k = PublicKey {
            secret: "K".into(),
            spki: der,
        };
        assert_eq!(k.point().len(), 65);
        assert_eq!(fingerprint(std::slice::from_ref(&k)).len(), 16);
    }

    #[rstest]
    #[case("", "not a PEM")]
    #[case("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", "not a PEM")]
    #[case("-----BEGIN PUBLIC KEY-----\nMFkw", "no -----END")]
    #[case(
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----",
        "bad base64"
    )]
    #[case("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----", "P-256")]
    #[case("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nabc\n-----END ENCRYPTED COSIGN PRIVATE KEY-----", "private key")]
    // An RSA key (SPKI of rsaEncryption): the wrong type.
    #[case("-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END PUBLIC KEY-----", "P-256")]
    fn bad_keys_are_refused_without_repeating_them(#[case] text: &str, #[case] problem: &str) {
        let e = parse_pem(text).unwrap_err();
        assert!(e.contains(problem), "{e}");
    }

    #[test]
    fn a_missing_key_secret_names_the_secret_only() {
        let e = load(&["COSIGN_KEY_X".into()], &|_| None).unwrap_err();
        assert_eq!(e, "key COSIGN_KEY_X is not set");
        let e = load(&["COSIGN_KEY_X".into()], &|_| Some("secret-ish".into())).unwrap_err();
        assert!(!e.contains("secret-ish"), "{e}");
    }
}
