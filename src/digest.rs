//! Content digests, in one place: the validated `Digest` type (`sha256:<64 hex>`,
//! `sha512:<128 hex>`), computing one over bytes, and the forms the runtime's own checks want
//! (WebCrypto's algorithm name and the raw bytes, for R2's `sha256()` and `DigestStream`).

use sha2::Digest as _;

use crate::error::{clip, InputError};

/// A digest algorithm the mirror accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The name in a digest string.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// WebCrypto's name (the runtime's `DigestStream`).
    pub fn runtime_name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512 => "SHA-512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The digest of `bytes` in this algorithm.
    pub fn of(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest(format!("{}:{hex}", self.name()))
    }

    /// The algorithm a digest string names, SHA-256 when it names none the mirror knows.
    pub fn of_digest_str(digest: &str) -> Algorithm {
        digest
            .split_once(':')
            .and_then(|(a, _)| Algorithm::from_name(a))
            .unwrap_or(Algorithm::Sha256)
    }
}

/// A validated content digest, e.g. `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);

impl Digest {
    pub fn parse(digest: &str) -> Result<Digest, InputError> {
        let bad =
            |why: &str| InputError::Digest(format!("invalid digest {:?}: {why}", clip(digest)));
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| bad("expected algorithm:hex"))?;
        let algorithm = Algorithm::from_name(alg)
            .ok_or_else(|| bad("unsupported algorithm (sha256 and sha512 are)"))?;
        let len = algorithm.hex_len();
        if hex.len() != len
            || !hex
                .bytes()
                .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        {
            return Err(bad(&format!("{alg} needs {len} lowercase hex characters")));
        }
        Ok(Digest(digest.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The algorithm's name (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }
    pub fn algorithm_kind(&self) -> Algorithm {
        Algorithm::of_digest_str(&self.0)
    }
    /// The hex part (after `algorithm:`).
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
    /// The raw bytes the hex part encodes (what R2's checksum options take).
    pub fn bytes(&self) -> Vec<u8> {
        // Validated as lowercase hex of even length by `parse`.
        hex::decode(self.hex()).unwrap_or_default()
    }
    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.algorithm_kind().of(bytes) == *self
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_bytes_in_both_algorithms() {
        let d = Algorithm::Sha256.of(b"abc");
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.matches(b"abc") && !d.matches(b"abd"));
        assert_eq!(d.bytes().len(), 32);
        assert_eq!(d.algorithm_kind().runtime_name(), "SHA-256");
        let d512 = Algorithm::Sha512.of(b"abc");
        assert!(d512.as_str().starts_with("sha512:ddaf35a1"));
        assert_eq!(Digest::parse(d512.as_str()).unwrap(), d512);
        assert_eq!(d512.bytes().len(), 64);
        assert_eq!(Algorithm::of_digest_str("sha512:x"), Algorithm::Sha512);
        assert_eq!(Algorithm::of_digest_str("md5:x"), Algorithm::Sha256);
    }
}
