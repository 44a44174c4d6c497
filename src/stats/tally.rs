//! Request counters per upstream per day, kept in the isolate and flushed in bounded batches: a
//! request costs no storage write; a flush writes one row per (day, upstream) it touched.

use crate::front::LogLine;

/// Upper bounds (ms) of the latency buckets; the last bucket is everything above.
pub const BUCKETS_MS: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
/// Buckets per histogram (the last one is open-ended).
pub const NBUCKETS: usize = BUCKETS_MS.len() + 1;

/// A flush is due after this many requests were counted since the last one…
pub const FLUSH_REQUESTS: u64 = 100;
/// …or when the oldest counted request is this old (seconds).
pub const FLUSH_SECS: u64 = 60;
/// (day, upstream) rows held at most: upstreams come from the configuration, so this is never
/// reached in practice; past it a request is counted in `dropped` only (memory stays bounded).
pub const MAX_ROWS: usize = 64;

/// One upstream's counters for one day (the `daily` table's row).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub revalidated: u64,
    /// Response bytes served from the store (hits, stale, revalidated).
    pub bytes_store: u64,
    /// Response bytes fetched from the upstream (misses).
    pub bytes_upstream: u64,
    /// Requests the mirror sent upstream (registry, token realm, blob host).
    pub upstream_requests: u64,
    /// Manifest GETs sent upstream: what Docker Hub counts as pulls.
    pub manifest_gets_upstream: u64,
    /// Manifest GETs answered 200 to clients: pulls served.
    pub pulls_served: u64,
    /// Latency histogram of hits (see `BUCKETS_MS`).
    pub hit_ms: [u64; NBUCKETS],
    /// Latency histogram of misses.
    pub miss_ms: [u64; NBUCKETS],
}

impl Row {
    /// Adds one request's outcome.
    pub fn add(&mut self, log: &LogLine) {
        self.requests += 1;
        let bytes = log.bytes.unwrap_or(0);
        let ms = log.ms.unwrap_or(0);
        match log.cache {
            Some("hit") => {
                self.hits += 1;
                self.bytes_store += bytes;
                self.hit_ms[bucket(ms)] += 1;
            }
            Some("stale") => {
                self.stale += 1;
                self.bytes_store += bytes;
            }
            Some("revalidated") => {
                self.revalidated += 1;
                self.bytes_store += bytes;
            }
            Some("miss") => {
                self.misses += 1;
                self.bytes_upstream += bytes;
                self.miss_ms[bucket(ms)] += 1;
            }
            _ => {}
        }
        self.upstream_requests += u64::from(log.upstream_requests);
        self.manifest_gets_upstream += u64::from(log.manifest_gets);
        if log.route == Some("manifest") && log.method == "GET" && log.status == 200 {
            self.pulls_served += 1;
        }
    }

    /// Adds another row's counters (merging days or upstreams for a report).
    pub fn merge(&mut self, o: &Row) {
        self.requests += o.requests;
        self.hits += o.hits;
        self.misses += o.misses;
        self.stale += o.stale;
        self.revalidated += o.revalidated;
        self.bytes_store += o.bytes_store;
        self.bytes_upstream += o.bytes_upstream;
        self.upstream_requests += o.upstream_requests;
        self.manifest_gets_upstream += o.manifest_gets_upstream;
        self.pulls_served += o.pulls_served;
        for i in 0..NBUCKETS {
            self.hit_ms[i] += o.hit_ms[i];
            self.miss_ms[i] += o.miss_ms[i];
        }
    }

    /// Share of answers from the store among hits, stale, revalidated and misses, per thousand
    /// (0 without any). Integers only: float formatting would cost the wasm ~10 KB.
    pub fn hit_permille(&self) -> u64 {
        let served = self.hits + self.stale + self.revalidated;
        let all = served + self.misses;
        (served * 1000).checked_div(all).unwrap_or(0)
    }
}

/// The bucket a latency falls in.
pub fn bucket(ms: u64) -> usize {
    BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(BUCKETS_MS.len())
}

/// The `pct` percentile of a histogram as its bucket's upper bound in ms: `None` when empty,
/// `u64::MAX` when it lies past the last bound.
pub fn quantile(h: &[u64; NBUCKETS], pct: u64) -> Option<u64> {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the percentile, 1-based (nearest-rank method).
    let rank = (pct * total).div_ceil(100).clamp(1, total);
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
        }
    }
    None
}

/// Days since the epoch of a time in seconds.
pub fn day_of(now: u64) -> u32 {
    (now / 86_400) as u32
}

/// The isolate's counters not written yet.
#[derive(Debug, Default)]
pub struct Tally {
    /// Few entries (one per upstream per day): a vector costs less wasm than a map.
    rows: Vec<(u32, String, Row)>,
    /// Requests counted since the last flush, and when the first of them was.
    pending: u64,
    since: Option<u64>,
    /// Requests not counted because `MAX_ROWS` was reached.
    pub dropped: u64,
}

impl Tally {
    /// Counts a request that went to an upstream (others — the landing page, `/token`, admin — are
    /// not the mirror's work and are not counted).
    pub fn record(&mut self, log: &LogLine, now: u64) {
        let Some(upstream) = &log.upstream else {
            return;
        };
        let day = day_of(now);
        let at = self
            .rows
            .iter()
            .position(|(d, u, _)| *d == day && u == upstream);
        let row = match at {
            Some(i) => &mut self.rows[i].2,
            None if self.rows.len() >= MAX_ROWS => {
                self.dropped += 1;
                return;
            }
            None => {
                self.rows.push((day, upstream.clone(), Row::default()));
                let last = self.rows.len() - 1;
                &mut self.rows[last].2
            }
        };
        row.add(log);
        self.pending += 1;
        self.since.get_or_insert(now);
    }

    /// Whether a flush is due at `now`.
    pub fn due(&self, now: u64) -> bool {
        self.pending >= FLUSH_REQUESTS
            || self
                .since
                .is_some_and(|t| now.saturating_sub(t) >= FLUSH_SECS)
    }

    /// Everything counted so far, emptied: one row per (day, upstream), in the order first seen.
    pub fn take(&mut self) -> Vec<(u32, String, Row)> {
        self.pending = 0;
        self.since = None;
        std::mem::take(&mut self.rows)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(upstream: &str, cache: &'static str, bytes: u64, ms: u64) -> LogLine {
        LogLine {
            upstream: Some(upstream.into()),
            cache: Some(cache),
            bytes: Some(bytes),
            ms: Some(ms),
            method: "GET".into(),
            status: 200,
            route: Some("blob"),
            ..Default::default()
        }
    }

    #[test]
    fn counts_per_upstream_and_day_and_flushes_bounded() {
        let mut t = Tally::default();
        t.record(&line("a", "hit", 10, 3), 86_400);
        t.record(&line("a", "miss", 100, 700), 86_401);
        t.record(&line("b", "stale", 5, 1), 86_402);
        t.record(&line("a", "hit", 10, 3), 2 * 86_400);
        let mut m = line("a", "miss", 50, 40);
        m.route = Some("manifest");
        m.upstream_requests = 2;
        m.manifest_gets = 1;
        t.record(&m, 86_403);
        t.record(&LogLine::default(), 86_404); // no upstream: not counted
        assert!(!t.due(86_400 + FLUSH_SECS - 1));
        assert!(t.due(86_400 + FLUSH_SECS));
        let rows = t.take();
        assert_eq!(rows.len(), 3, "(day 1, a), (day 1, b), (day 2, a)");
        let a = &rows[0].2;
        assert_eq!((rows[0].0, rows[0].1.as_str()), (1, "a"));
        assert_eq!((rows[2].0, rows[2].1.as_str()), (2, "a"));
        assert_eq!((a.requests, a.hits, a.misses), (3, 1, 2));
        assert_eq!((a.bytes_store, a.bytes_upstream), (10, 150));
        assert_eq!(
            (
                a.upstream_requests,
                a.manifest_gets_upstream,
                a.pulls_served
            ),
            (2, 1, 1)
        );
        assert_eq!(quantile(&a.hit_ms, 50), Some(5));
        assert_eq!(quantile(&a.miss_ms, 50), Some(50));
        assert_eq!(quantile(&a.miss_ms, 95), Some(1000));
        assert_eq!(rows[1].2.stale, 1);
        assert!(t.is_empty() && !t.due(10_000_000));
    }

    #[test]
    fn a_flush_is_due_after_enough_requests() {
        let mut t = Tally::default();
        for _ in 0..FLUSH_REQUESTS - 1 {
            t.record(&line("a", "hit", 1, 1), 0);
        }
        assert!(!t.due(0));
        t.record(&line("a", "hit", 1, 1), 0);
        assert!(t.due(0));
    }

    #[test]
    fn rows_are_bounded() {
        let mut t = Tally::default();
        for i in 0..MAX_ROWS + 10 {
            t.record(&line(&format!("u{i}"), "hit", 1, 1), 0);
        }
        assert_eq!(t.dropped, 10);
        assert_eq!(t.take().len(), MAX_ROWS);
    }

    #[test]
    fn quantiles_of_an_empty_and_an_open_histogram() {
        let mut h = [0; NBUCKETS];
        assert_eq!(quantile(&h, 50), None);
        h[NBUCKETS - 1] = 1;
        assert_eq!(quantile(&h, 95), Some(u64::MAX));
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(5), 0);
        assert_eq!(bucket(6), 1);
        assert_eq!(bucket(1_000_000), NBUCKETS - 1);
    }
}
