//! cosign's key-pair signatures as a registry holds them, read and checked without any crypto:
//! the signature manifest (tag `sha256-<hex>.sig` beside the image), its simple-signing layers,
//! each layer's signed payload, and the ECDSA signature converted from DER (what cosign writes) to
//! the fixed `r || s` form WebCrypto verifies.

use base64::Engine;

use crate::digest::Digest;

/// Media type of a layer holding a signed payload.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation with the base64 signature of the layer's blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a payload that signs a container image.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Largest signature manifest and payload read into wasm (cosign's are well under 4 KiB).
pub const MAX_SIGNATURE_MANIFEST: usize = 64 * 1024;
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Signature layers looked at, at most: each costs an upstream request and a verification.
pub const MAX_LAYERS: usize = 8;

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn tag_for(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// One signature of the signature manifest: the payload blob it signs and the signature itself
/// (`r || s`, 64 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub payload: Digest,
    pub payload_size: u64,
    pub signature: [u8; 64],
}

/// The signatures a signature manifest holds: its simple-signing layers whose annotation is a
/// well-formed signature; others are skipped. `Err` when it is not a manifest at all.
pub fn candidates(manifest: &[u8]) -> Result<Vec<Candidate>, &'static str> {
    let v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|_| "the signature manifest is not JSON")?;
    let layers = v["layers"]
        .as_array()
        .ok_or("the signature manifest has no layers")?;
    let found = layers
        .iter()
        .filter(|l| l["mediaType"] == SIMPLESIGNING)
        .filter_map(|l| {
            let payload = Digest::parse(l["digest"].as_str()?).ok()?;
            let payload_size = l["size"].as_u64()?;
            let b64 = l["annotations"][SIGNATURE_ANNOTATION].as_str()?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()?;
            let signature = der_to_raw(&der)?;
            Some(Candidate {
                payload,
                payload_size,
                signature,
            })
        })
        .take(MAX_LAYERS)
        .collect();
    Ok(found)
}

/// Why a payload whose signature verified does not vouch for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadProblem {
    NotJson,
    /// `critical.type` is not a container image signature.
    WrongType,
    /// It signs another manifest (the digest it names).
    OtherDigest(String),
}

impl PayloadProblem {
    pub fn describe(&self) -> String {
        match self {
            PayloadProblem::NotJson => "a signed payload is not cosign's JSON".into(),
            PayloadProblem::WrongType => {
                format!("a signed payload's critical.type is not {SIGNATURE_TYPE:?}")
            }
            PayloadProblem::OtherDigest(d) => {
                format!("the signature is valid but signs another manifest ({d})")
            }
        }
    }
}

/// Checks a signed payload names `digest` and is an image signature. The
/// `critical.identity.docker-reference` is not compared: cosign signs the name the image was
/// pushed under, which a mirror (or a registry move) changes; the digest is what binds.
pub fn check_payload(payload: &[u8], digest: &Digest) -> Result<(), PayloadProblem> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| PayloadProblem::NotJson)?;
    let critical = &v["critical"];
    if critical["type"] != SIGNATURE_TYPE {
        return Err(PayloadProblem::WrongType);
    }
    match critical["image"]["docker-manifest-digest"].as_str() {
        Some(d) if d == digest.as_str() => Ok(()),
        Some(d) => Err(PayloadProblem::OtherDigest(
            Digest::parse(d).map_or_else(|_| "not a digest".into(), |d| d.to_string()),
        )),
        None => Err(PayloadProblem::OtherDigest("none".into())),
    }
}

/// An ECDSA P-256 signature in DER (`SEQUENCE { INTEGER r, INTEGER s }`) as `r || s`, each
/// left-padded to 32 bytes; `None` for anything else (long forms, trailing bytes, negative or
/// oversized integers).
pub fn der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let [0x30, len, rest @ ..] = der else {
        return None;
    };
    if *len as usize != rest.len() || *len >= 0x80 {
        return None;
    }
    let (r, rest) = der_integer(rest)?;
    let (s, rest) = der_integer(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let mut out = [0u8; 64];
    out[32 - r.len()..32].copy_from_slice(r);
    out[64 - s.len()..].copy_from_slice(s);
    Some(out)
}

/// One positive INTEGER of at most 32 significant bytes, and what follows it.
fn der_integer(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x02, len, rest @ ..] = der else {
        return None;
    };
    let len = *len as usize;
    if len == 0 || len > 33 || rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    if value[0] & 0x80 != 0 {
        return None; // negative
    }
    let value = match value {
        [0, tail @ ..] if !tail.is_empty() => tail,
        v => v,
    };
    if value.len() > 32 {
        return None;
    }
    Some((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn the_signature_tag_is_cosigns() {
        assert_eq!(
            tag_for(&digest('a')),
            format!("sha256-{}.sig", "a".repeat(64))
        );
    }

    #[test]
    fn der_signatures_convert_to_raw() {
        // r with a leading 0 (high bit set), s short (left-padded).
        let mut der = vec![0x30, 0, 0x02, 33, 0];
        der.extend([0x80; 32]);
        der.extend([0x02, 2, 0x01, 0x02]);
        der[1] = (der.len() - 2) as u8;
        let raw = der_to_raw(&der).unwrap();
        assert_eq!(&raw[..32], &[0x80; 32]);
        assert_eq!(&raw[32..62], &[0; 30]);
        assert_eq!(&raw[62..], &[1, 2]);
    }

    #[rstest]
    #[case(vec![])]
    #[case(vec![0x30, 0])]
    #[case(vec![0x31, 6, 2, 1, 1, 2, 1, 1])] // not a SEQUENCE
    #[case(vec![0x30, 7, 2, 1, 1, 2, 1, 1])] // length says more than there is
    #[case(vec![0x30, 7, 2, 1, 1, 2, 1, 1, 0])] // a trailing byte inside
    #[case(vec![0x30, 6, 2, 1, 0x81, 2, 1, 1])] // negative r
    #[case(vec![0x30, 5, 2, 0, 2, 1, 1])] // empty r
    #[case(vec![0x30, 6, 2, 1, 1, 2, 1, 1, 9])] // bytes after the SEQUENCE
    fn bad_der_signatures_are_refused(#[case] der: Vec<u8>) {
        assert_eq!(der_to_raw(&der), None);
    }

    #[test]
    fn oversized_integers_are_refused() {
        let mut der = vec![0x30, 0, 0x02, 33, 1];
        der.extend([1; 32]);
        der.extend([0x02, 1, 1]);
        der[1] = (der.len() - 2) as u8;
        assert_eq!(der_to_raw(&der), None);
    }

    fn payload(ty: &str, d: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {"identity": {"docker-reference": "r.example/a"}, "image": {"docker-manifest-digest": d}, "type": ty},
            "optional": null
        }))
        .unwrap()
    }

    #[test]
    fn payloads_must_name_the_digest_and_be_image_signatures() {
        let d = digest('a');
        assert_eq!(
            check_payload(&payload(SIGNATURE_TYPE, d.as_str()), &d),
            Ok(())
        );
        let other = digest('b');
        assert_eq!(
            check_payload(&payload(SIGNATURE_TYPE, other.as_str()), &d),
            Err(PayloadProblem::OtherDigest(other.to_string()))
        );
        assert_eq!(
            check_payload(&payload("atlas container signature", d.as_str()), &d),
            Err(PayloadProblem::WrongType)
        );
        assert_eq!(check_payload(b"{", &d), Err(PayloadProblem::NotJson));
        assert_eq!(
            check_payload(&payload(SIGNATURE_TYPE, "<script>"), &d),
            Err(PayloadProblem::OtherDigest("not a digest".into()))
        );
    }

    #[test]
    fn candidates_are_the_simple_signing_layers_with_a_signature() {
        let sig = base64::engine::general_purpose::STANDARD.encode([0x30, 6, 2, 1, 1, 2, 1, 2]);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "layers": [
                {"mediaType": SIMPLESIGNING, "digest": digest('a').as_str(), "size": 10, "annotations": {SIGNATURE_ANNOTATION: sig}},
                {"mediaType": "application/octet-stream", "digest": digest('b').as_str(), "size": 10, "annotations": {SIGNATURE_ANNOTATION: sig}},
                {"mediaType": SIMPLESIGNING, "digest": digest('c').as_str(), "size": 10, "annotations": {SIGNATURE_ANNOTATION: "!!"}},
                {"mediaType": SIMPLESIGNING, "digest": digest('d').as_str(), "size": 10}
            ]
        });
        let c = candidates(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].payload, digest('a'));
        assert_eq!(c[0].signature[31], 1);
        assert_eq!(c[0].signature[63], 2);
        assert!(candidates(b"[]").is_err());
        assert!(candidates(b"nope").is_err());
    }
}
