//! Cache policy, as values: what may be stored and for how long (`Decision`), what a stored entry
//! is good for at `now` (`Freshness`), and how `Accept` lists become cache keys. Pure functions of
//! their arguments; time is passed in.

/// Every manifest type a current client pulls: what the mirror asks for when the client named none
/// (with no Accept, distribution answers with a re-signed schema 1 manifest whose digest is not
/// its bytes').
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Per-upstream lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Tag → digest records; revalidated with a HEAD after this.
    pub tag: u64,
    /// Manifests by digest (immutable).
    pub manifest: u64,
    /// Blobs (immutable).
    pub blob: u64,
    /// How long past `tag` a record may still be served when revalidation fails.
    pub stale_if_error: u64,
}

pub const YEAR: u64 = 365 * 24 * 3600;

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            tag: 600,
            manifest: YEAR,
            blob: YEAR,
            stale_if_error: 24 * 3600,
        }
    }
}

/// What is being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    TagRecord,
    DigestManifest,
    Blob,
}

/// Whether a response may be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Cacheable { ttl: u64, reason: &'static str },
    Uncacheable(&'static str),
}

impl Decision {
    pub fn is_cacheable(&self) -> bool {
        matches!(self, Decision::Cacheable { .. })
    }
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Cacheable { reason, .. } | Decision::Uncacheable(reason) => reason,
        }
    }
}

/// What the flow knows about an upstream response when deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub status: u16,
    pub head: bool,
    /// Fetched with credentials a client supplied: never shared.
    pub client_credentials: bool,
    pub content_length: Option<u64>,
    /// For manifests: the body's digest matched what was asked for / announced.
    pub digest_ok: bool,
    pub has_digest_header: bool,
    /// The largest blob the store at hand takes (`None`: the Cache API's limit).
    pub store_limit: Option<u64>,
}

/// Largest blob the Cache API takes (its object limit).
pub const MAX_STORED_BLOB: u64 = 512 * 1024 * 1024;
/// Largest object R2 takes in one put.
pub const MAX_R2_OBJECT: u64 = 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024;
/// Largest manifest the mirror will hold in memory (OCI suggests registries accept at least 4 MiB).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

pub fn decide(kind: Kind, facts: &Facts, ttls: &Ttls) -> Decision {
    use Decision::*;
    if facts.client_credentials {
        return Uncacheable("fetched with a client's credentials");
    }
    if facts.status == 206 {
        return Uncacheable("partial content");
    }
    if facts.status != 200 {
        return Uncacheable("not a 200");
    }
    let ttl = match kind {
        Kind::TagRecord => ttls.tag,
        Kind::DigestManifest => ttls.manifest,
        Kind::Blob => ttls.blob,
    };
    if ttl == 0 {
        return Uncacheable("ttl is 0");
    }
    match kind {
        Kind::TagRecord if facts.head && !facts.has_digest_header => {
            Uncacheable("HEAD without Docker-Content-Digest")
        }
        Kind::TagRecord => Cacheable {
            ttl,
            reason: "tag record",
        },
        Kind::DigestManifest if facts.head => Uncacheable("HEAD has no body"),
        Kind::DigestManifest if !facts.digest_ok => Uncacheable("body does not match its digest"),
        Kind::DigestManifest => Cacheable {
            ttl,
            reason: "content-addressed manifest",
        },
        Kind::Blob if facts.head => Uncacheable("HEAD has no body"),
        Kind::Blob => match facts.content_length {
            None => Uncacheable("unknown length"),
            Some(n) if n > facts.store_limit.unwrap_or(MAX_STORED_BLOB) => {
                Uncacheable("larger than the store's object limit")
            }
            Some(_) => Cacheable {
                ttl,
                reason: "content-addressed blob",
            },
        },
    }
}

/// What a stored entry is good for at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it; `remaining` seconds left.
    Fresh { remaining: u64 },
    /// Revalidate first; serve it only if revalidation fails for a reason other than 404.
    Stale,
    /// Unusable.
    Expired,
}

pub fn freshness(stored_at: u64, ttl: u64, stale_if_error: u64, now: u64) -> Freshness {
    let age = now.saturating_sub(stored_at);
    if age < ttl {
        Freshness::Fresh {
            remaining: ttl - age,
        }
    } else if age < ttl.saturating_add(stale_if_error) {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// `Accept` values → a canonical list for cache keys: media types lower-cased, parameters
/// (`q=`) dropped, duplicates removed, sorted.
pub fn normalise_accept(values: &[&str]) -> Vec<String> {
    let mut types: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Whether a client that sent `accept` (normalised) takes `media_type`. No Accept at all means the
/// client takes what the upstream serves by default, which only an entry stored for that same
/// empty list can know — so an empty list accepts only through an exact key match.
pub fn accepts(accept: &[String], media_type: &str) -> bool {
    let media_type = media_type.to_ascii_lowercase();
    accept.iter().any(|a| {
        *a == media_type
            || a == "*/*"
            || a.strip_suffix("/*")
                .is_some_and(|top| media_type.starts_with(&format!("{top}/")))
    })
}

/// RFC 9211 `Cache-Status` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    Hit {
        ttl: u64,
    },
    /// A hit answered from the isolate's memory (`mirror::memo`), not the store.
    MemoryHit {
        ttl: u64,
    },
    /// Forwarded; `stored` says whether the answer was stored, and if not, why.
    Miss {
        stored: Result<(), &'static str>,
    },
    /// A stale entry was revalidated with the upstream and served.
    Revalidated,
    /// The upstream failed; a stale entry was served.
    Stale,
    /// Answered without consulting any cache or upstream (bad input, errors).
    Bypass,
}

pub const CACHE_NAME: &str = "edgemirror";

impl CacheStatus {
    pub fn header(&self) -> String {
        match self {
            CacheStatus::Hit { ttl } => format!("{CACHE_NAME}; hit; ttl={ttl}"),
            CacheStatus::MemoryHit { ttl } => {
                format!("{CACHE_NAME}; hit; ttl={ttl}; detail=memory")
            }
            CacheStatus::Miss { stored: Ok(()) } => format!("{CACHE_NAME}; fwd=miss; stored"),
            CacheStatus::Miss { stored: Err(why) } => {
                format!("{CACHE_NAME}; fwd=miss; detail=\"{why}\"")
            }
            CacheStatus::Revalidated => {
                format!("{CACHE_NAME}; fwd=stale; fwd-status=200; detail=revalidated")
            }
            CacheStatus::Stale => format!("{CACHE_NAME}; hit; detail=stale-if-error"),
            CacheStatus::Bypass => format!("{CACHE_NAME}; detail=not-forwarded"),
        }
    }
    pub fn short(&self) -> &'static str {
        match self {
            CacheStatus::Hit { .. } | CacheStatus::MemoryHit { .. } => "hit",
            CacheStatus::Miss { .. } => "miss",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Stale => "stale",
            CacheStatus::Bypass => "bypass",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const T: Ttls = Ttls {
        tag: 600,
        manifest: YEAR,
        blob: 86_400,
        stale_if_error: 3_600,
    };

    fn ok(status: u16) -> Facts {
        Facts {
            status,
            content_length: Some(100),
            digest_ok: true,
            has_digest_header: true,
            ..Default::default()
        }
    }

    #[rstest]
    #[case(Kind::TagRecord, ok(200), Decision::Cacheable { ttl: 600, reason: "tag record" })]
    #[case(Kind::DigestManifest, ok(200), Decision::Cacheable { ttl: YEAR, reason: "content-addressed manifest" })]
    #[case(Kind::Blob, ok(200), Decision::Cacheable { ttl: 86_400, reason: "content-addressed blob" })]
    #[case(Kind::TagRecord, Facts { head: true, ..ok(200) }, Decision::Cacheable { ttl: 600, reason: "tag record" })]
    #[case(Kind::TagRecord, Facts { head: true, has_digest_header: false, ..ok(200) }, Decision::Uncacheable("HEAD without Docker-Content-Digest"))]
    #[case(Kind::DigestManifest, Facts { head: true, ..ok(200) }, Decision::Uncacheable("HEAD has no body"))]
    #[case(Kind::Blob, Facts { head: true, ..ok(200) }, Decision::Uncacheable("HEAD has no body"))]
    #[case(Kind::DigestManifest, Facts { digest_ok: false, ..ok(200) }, Decision::Uncacheable("body does not match its digest"))]
    #[case(Kind::Blob, ok(206), Decision::Uncacheable("partial content"))]
    #[case(Kind::Blob, ok(404), Decision::Uncacheable("not a 200"))]
    #[case(Kind::DigestManifest, ok(500), Decision::Uncacheable("not a 200"))]
    #[case(Kind::TagRecord, ok(304), Decision::Uncacheable("not a 200"))]
    #[case(Kind::Blob, Facts { content_length: None, ..ok(200) }, Decision::Uncacheable("unknown length"))]
    #[case(Kind::Blob, Facts { content_length: Some(MAX_STORED_BLOB), ..ok(200) }, Decision::Cacheable { ttl: 86_400, reason: "content-addressed blob" })]
    #[case(Kind::Blob, Facts { content_length: Some(MAX_STORED_BLOB + 1), ..ok(200) }, Decision::Uncacheable("larger than the store's object limit"))]
    #[case(Kind::Blob, Facts { client_credentials: true, ..ok(200) }, Decision::Uncacheable("fetched with a client's credentials"))]
    #[case(Kind::TagRecord, Facts { client_credentials: true, ..ok(200) }, Decision::Uncacheable("fetched with a client's credentials"))]
    fn decisions(#[case] kind: Kind, #[case] facts: Facts, #[case] want: Decision) {
        assert_eq!(decide(kind, &facts, &T), want);
    }

    #[test]
    fn a_store_with_a_larger_limit_takes_larger_blobs() {
        let big = Facts {
            content_length: Some(MAX_STORED_BLOB + 1),
            store_limit: Some(MAX_R2_OBJECT),
            ..ok(200)
        };
        assert!(decide(Kind::Blob, &big, &T).is_cacheable());
        let too_big = Facts {
            content_length: Some(MAX_R2_OBJECT + 1),
            ..big
        };
        assert_eq!(
            decide(Kind::Blob, &too_big, &T),
            Decision::Uncacheable("larger than the store's object limit")
        );
    }

    #[test]
    fn zero_ttl_disables_a_kind() {
        let t = Ttls { tag: 0, ..T };
        assert_eq!(
            decide(Kind::TagRecord, &ok(200), &t),
            Decision::Uncacheable("ttl is 0")
        );
        assert!(decide(Kind::Blob, &ok(200), &t).is_cacheable());
    }

    /// Every boundary of a 600 s TTL with a 3600 s stale window, stored at 1000.
    #[rstest]
    #[case(1000, Freshness::Fresh { remaining: 600 })]
    #[case(1599, Freshness::Fresh { remaining: 1 })]
    #[case(1600, Freshness::Stale)]
    #[case(5199, Freshness::Stale)]
    #[case(5200, Freshness::Expired)]
    #[case(999_999, Freshness::Expired)]
    // A clock that went backwards counts as age 0.
    #[case(10, Freshness::Fresh { remaining: 600 })]
    fn freshness_boundaries(#[case] now: u64, #[case] want: Freshness) {
        assert_eq!(freshness(1000, 600, 3600, now), want);
    }

    #[test]
    fn no_stale_window_goes_straight_to_expired() {
        assert_eq!(freshness(0, 10, 0, 10), Freshness::Expired);
        assert_eq!(
            freshness(0, u64::MAX, u64::MAX, 5),
            Freshness::Fresh {
                remaining: u64::MAX - 5
            }
        );
    }

    #[rstest]
    #[case(&["application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"], &["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json"])]
    #[case(&["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json"], &["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json"])]
    #[case(&["Application/JSON;q=0.5, application/json"], &["application/json"])]
    #[case(&[" , ,"], &[])]
    #[case(&[], &[])]
    fn accept_lists_normalise(#[case] values: &[&str], #[case] want: &[&str]) {
        assert_eq!(normalise_accept(values), want);
    }

    #[rstest]
    #[case("application/vnd.oci.image.index.v1+json", true)]
    #[case("application/vnd.docker.distribution.manifest.v2+json", true)]
    #[case("application/vnd.docker.distribution.manifest.list.v2+json", false)]
    #[case("application/vnd.oci.image.manifest.v1+json", false)]
    fn a_client_only_gets_types_it_accepts(#[case] media_type: &str, #[case] want: bool) {
        let accept = normalise_accept(&[
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]);
        assert_eq!(accepts(&accept, media_type), want);
    }

    #[test]
    fn wildcards_and_empty_lists() {
        assert!(accepts(&normalise_accept(&["*/*"]), "application/x"));
        assert!(accepts(
            &normalise_accept(&["application/*"]),
            "application/x"
        ));
        assert!(!accepts(&normalise_accept(&["text/*"]), "application/x"));
        assert!(!accepts(&[], "application/x"));
    }

    #[test]
    fn cache_status_headers() {
        assert_eq!(
            CacheStatus::Hit { ttl: 5 }.header(),
            "edgemirror; hit; ttl=5"
        );
        assert_eq!(
            CacheStatus::Miss { stored: Ok(()) }.header(),
            "edgemirror; fwd=miss; stored"
        );
        assert_eq!(
            CacheStatus::Miss {
                stored: Err("not a 200")
            }
            .header(),
            "edgemirror; fwd=miss; detail=\"not a 200\""
        );
        assert_eq!(CacheStatus::Revalidated.short(), "revalidated");
        assert!(CacheStatus::Stale.header().contains("stale"));
    }
}
