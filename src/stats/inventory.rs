//! The inventory of stored objects (R2 blobs and manifests) and the decisions made on it: which
//! hits are worth a write (at most one per object per hour per isolate), and which objects to
//! evict to get under the byte budget (least recently used first). Only objects whose write
//! committed are ever in the inventory, so eviction never picks an object being written.

use std::collections::HashMap;

/// A hit is written to the inventory at most once per this many seconds per object.
pub const TOUCH_SECS: u64 = 3600;
/// Objects whose pending hits an isolate remembers at most (past it the map is emptied: at worst
/// one extra write per object).
pub const MAX_TOUCHED: usize = 4096;
/// Objects one scheduled run evicts at most (R2 deletes up to 1000 keys in one call; D1 bound
/// parameters stay under 100 per statement in batches of `DELETE_CHUNK`).
pub const MAX_EVICT: usize = 500;
/// Keys per `DELETE … WHERE key IN (…)` statement (D1 allows 100 bound parameters).
pub const DELETE_CHUNK: usize = 50;

/// What an object's R2 name says about it: upstream, repository and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described<'a> {
    pub upstream: &'a str,
    pub repo: &'a str,
    pub kind: &'static str,
}

/// Parses an R2 object name (`upstream/repo/blobs/digest` or `…/manifests/digest`).
pub fn describe(name: &str) -> Option<Described<'_>> {
    let (upstream, rest) = name.split_once('/')?;
    for (marker, kind) in [("/blobs/", "blob"), ("/manifests/", "manifest")] {
        if let Some(i) = rest.rfind(marker) {
            return Some(Described {
                upstream,
                repo: &rest[..i],
                kind,
            });
        }
    }
    None
}

/// Hits not written yet, per object.
#[derive(Debug, Default)]
pub struct Touches {
    seen: HashMap<String, (u64, u64)>,
}

impl Touches {
    /// Counts a hit on `name` at `now`: `Some(hits)` when it is time to write (last access and the
    /// hits counted since the last write), `None` when it waits.
    pub fn hit(&mut self, name: &str, now: u64) -> Option<u64> {
        if !self.seen.contains_key(name) && self.seen.len() >= MAX_TOUCHED {
            self.seen.clear();
        }
        let entry = self.seen.entry(name.to_string()).or_insert((0, 0));
        entry.1 += 1;
        if entry.0 == 0 || now.saturating_sub(entry.0) >= TOUCH_SECS {
            let hits = entry.1;
            *entry = (now.max(1), 0);
            return Some(hits);
        }
        None
    }
}

/// The budget the scheduled run enforces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Bytes the inventory may hold (`STORE_MAX_BYTES`).
    pub max_bytes: Option<u64>,
    /// Objects not accessed for this many seconds are evicted whatever the size (`STORE_MAX_IDLE_DAYS`).
    pub max_idle_secs: Option<u64>,
}

impl Budget {
    pub fn is_off(&self) -> bool {
        self.max_bytes.is_none() && self.max_idle_secs.is_none()
    }
}

/// An inventory row as eviction sees it, least recently used first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub size: u64,
    pub last_access: u64,
}

/// The objects to evict, in order: every candidate idle past the limit, then least recently used
/// ones until `total` is within `max_bytes`. `candidates` are sorted by last access, oldest first
/// (as the query returns them); at most `MAX_EVICT`. The keys are a prefix of `candidates`.
pub fn plan(budget: &Budget, total: u64, candidates: &[Candidate], now: u64) -> Vec<String> {
    let mut left = total;
    let mut out = Vec::new();
    for c in candidates {
        if out.len() >= MAX_EVICT {
            break;
        }
        let idle = budget
            .max_idle_secs
            .is_some_and(|m| now.saturating_sub(c.last_access) > m);
        let over = budget.max_bytes.is_some_and(|m| left > m);
        if !(idle || over) {
            // Sorted by last access: nothing later is idle either.
            break;
        }
        left = left.saturating_sub(c.size);
        out.push(c.key.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, size: u64, last_access: u64) -> Candidate {
        Candidate {
            key: key.into(),
            size,
            last_access,
        }
    }

    #[test]
    fn evicts_least_recently_used_until_within_the_budget() {
        let b = Budget {
            max_bytes: Some(300),
            max_idle_secs: None,
        };
        let cands = [c("b", 150, 10), c("c", 150, 20), c("a", 150, 30)];
        assert_eq!(plan(&b, 450, &cands, 100), vec!["b"]);
        assert_eq!(plan(&b, 300, &cands, 100), Vec::<String>::new());
        assert_eq!(plan(&b, 601, &cands, 100), vec!["b", "c", "a"]);
    }

    #[test]
    fn evicts_idle_objects_whatever_the_size() {
        let b = Budget {
            max_bytes: None,
            max_idle_secs: Some(50),
        };
        let cands = [
            c("old", 1, 10),
            c("older-but-sorted-later", 1, 40),
            c("new", 1, 90),
        ];
        assert_eq!(
            plan(&b, 3, &cands, 100),
            vec!["old", "older-but-sorted-later"]
        );
        assert!(plan(&Budget::default(), 10, &cands, 100).is_empty());
        assert!(Budget::default().is_off());
    }

    #[test]
    fn eviction_is_bounded_per_run() {
        let b = Budget {
            max_bytes: Some(0),
            max_idle_secs: None,
        };
        let cands: Vec<_> = (0..MAX_EVICT + 5)
            .map(|i| c(&i.to_string(), 1, i as u64))
            .collect();
        assert_eq!(plan(&b, 10_000, &cands, 0).len(), MAX_EVICT);
    }

    #[test]
    fn hits_are_written_at_most_hourly() {
        let mut t = Touches::default();
        assert_eq!(t.hit("k", 1000), Some(1));
        assert_eq!(t.hit("k", 1001), None);
        assert_eq!(t.hit("k", 1000 + TOUCH_SECS - 1), None);
        assert_eq!(t.hit("k", 1000 + TOUCH_SECS), Some(3));
        assert_eq!(t.hit("other", 1000), Some(1));
    }

    #[test]
    fn names_describe_their_object() {
        let d = describe("plain/library/alpine/blobs/sha256:ab").unwrap();
        assert_eq!(
            (d.upstream, d.repo, d.kind),
            ("plain", "library/alpine", "blob")
        );
        let d = describe("docker.io/a/manifests/sha256:cd").unwrap();
        assert_eq!((d.upstream, d.repo, d.kind), ("docker.io", "a", "manifest"));
        assert!(describe("nothing").is_none());
    }
}
