//! What the check of one manifest found (`Verdict`) and what the rule makes of it (`Decision`), as
//! values: the gate acts on them, the log line and the `edgemirror-signature` header show them,
//! tests compare them. Positive verdicts are kept (see `memory`) as the text `to_note` writes.

use super::policy::{Mode, Rule};
use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature over this digest verifies with the key held in secret `key`.
    Signed { key: String },
    /// Listed by index `index`, whose own signature verified (a platform manifest is fetched by
    /// digest after its index: the index's signature covers it).
    Listed { index: String },
    /// No valid signature, and why (for the client's message and the log).
    Unsigned(String),
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        !matches!(self, Verdict::Unsigned(_))
    }

    /// The text kept for a positive verdict; `None` for a negative one (never kept: a signature
    /// pushed later counts at once).
    pub fn to_note(&self) -> Option<String> {
        match self {
            Verdict::Signed { key } => Some(format!("signed {key}")),
            Verdict::Listed { index } => Some(format!("listed {index}")),
            Verdict::Unsigned(_) => None,
        }
    }

    pub fn from_note(note: &str) -> Option<Verdict> {
        match note.split_once(' ')? {
            ("signed", key) if !key.is_empty() => Some(Verdict::Signed { key: key.into() }),
            ("listed", index) => Digest::parse(index).ok().map(|d| Verdict::Listed {
                index: d.to_string(),
            }),
            _ => None,
        }
    }
}

/// What is done with the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Served; the header's value says why.
    Serve { header: String },
    /// `403 DENIED`: nothing of the manifest is served.
    Deny(OciError),
}

/// The rule's answer for manifest `digest` given `verdict`.
pub fn decide(rule: &Rule, digest: &Digest, verdict: &Verdict) -> Decision {
    let policy = &rule.name;
    match (verdict, rule.mode) {
        (Verdict::Signed { key }, _) => Decision::Serve {
            header: format!("verified; key={key}; policy={policy}"),
        },
        (Verdict::Listed { index }, _) => Decision::Serve {
            header: format!("verified; index={index}; policy={policy}"),
        },
        (Verdict::Unsigned(why), Mode::Warn) => Decision::Serve {
            header: format!("unverified; policy={policy}; mode=warn; reason={why}"),
        },
        (Verdict::Unsigned(why), Mode::Enforce) => Decision::Deny(OciError::new(
            ErrorCode::Denied,
            format!("manifest {digest} refused by signature policy {policy}: {why}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(mode: Mode) -> Rule {
        Rule {
            name: "myorg".into(),
            repos: vec!["myorg/*".into()],
            keys: vec!["COSIGN_KEY".into()],
            mode,
        }
    }

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap()
    }

    #[test]
    fn enforce_denies_the_unsigned_naming_the_policy_and_warn_serves_them() {
        let why = Verdict::Unsigned("no signature".into());
        let Decision::Deny(e) = decide(&rule(Mode::Enforce), &digest(), &why) else {
            panic!("served")
        };
        assert_eq!(e.status, 403);
        let body = String::from_utf8(e.body()).unwrap();
        assert!(body.contains("\"DENIED\""), "{body}");
        assert!(
            body.contains("signature policy myorg: no signature"),
            "{body}"
        );
        assert_eq!(
            decide(&rule(Mode::Warn), &digest(), &why),
            Decision::Serve {
                header: "unverified; policy=myorg; mode=warn; reason=no signature".into()
            }
        );
        for mode in [Mode::Enforce, Mode::Warn] {
            let signed = Verdict::Signed {
                key: "COSIGN_KEY".into(),
            };
            assert!(matches!(
                decide(&rule(mode), &digest(), &signed),
                Decision::Serve { .. }
            ));
        }
    }

    #[test]
    fn only_positive_verdicts_are_kept_and_notes_read_back() {
        let d = digest().to_string();
        for v in [
            Verdict::Signed { key: "K".into() },
            Verdict::Listed { index: d.clone() },
        ] {
            assert_eq!(Verdict::from_note(&v.to_note().unwrap()), Some(v));
        }
        assert_eq!(Verdict::Unsigned("x".into()).to_note(), None);
        for bad in [
            "",
            "signed",
            "signed ",
            "listed nope",
            "unsigned x",
            "trusted K",
        ] {
            assert_eq!(Verdict::from_note(bad), None, "{bad}");
        }
    }
}
