//! What `/_admin/stats` and the stats page show: the daily rows read back, the store's usage
//! against the budget, the most hit repositories, and the D1 writes this isolate made.

use serde_json::{json, Value};

use super::tally::{quantile, Row};

/// One upstream's counters on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub day: u32,
    pub upstream: String,
    pub row: Row,
}

/// A repository and what its stored objects took and served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Top {
    pub upstream: String,
    pub repo: String,
    pub hits: u64,
    pub bytes: u64,
    pub objects: u64,
}

/// Statements and rows written to D1 by this isolate since it started (measured from D1's own
/// `meta.rows_written`), and the requests it counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Writes {
    pub statements: u64,
    pub rows_written: u64,
    pub requests_counted: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub days: Vec<Day>,
    pub objects: u64,
    pub bytes: u64,
    pub max_bytes: Option<u64>,
    pub top: Vec<Top>,
    pub writes: Writes,
}

/// Days to show.
pub const DAYS_SHOWN: u32 = 30;

impl Report {
    /// Every day and upstream added up.
    pub fn total(&self) -> Row {
        let mut t = Row::default();
        for d in &self.days {
            t.merge(&d.row);
        }
        t
    }

    /// Each day's rows added up over upstreams, in day order.
    pub fn per_day(&self) -> Vec<(u32, Row)> {
        let mut out: Vec<(u32, Row)> = Vec::new();
        for d in &self.days {
            match out.last_mut() {
                Some((day, r)) if *day == d.day => r.merge(&d.row),
                _ => out.push((d.day, d.row.clone())),
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "enabled": true,
            "total": row_json(&self.total()),
            "days": self.days.iter().map(|d| {
                let mut v = row_json(&d.row);
                v["day"] = json!(date(d.day));
                v["upstream"] = json!(d.upstream);
                v
            }).collect::<Vec<_>>(),
            "store": {"objects": self.objects, "bytes": self.bytes, "max_bytes": self.max_bytes},
            "top": self.top,
            "d1": self.writes,
        })
    }
}

/// A quantile for JSON: ms, `null` when there is nothing, a string past the last bucket.
fn q(h: &[u64; super::tally::NBUCKETS], p: u64) -> Value {
    match quantile(h, p) {
        None => Value::Null,
        Some(u64::MAX) => json!(format!(
            ">{}",
            super::tally::BUCKETS_MS[super::tally::BUCKETS_MS.len() - 1]
        )),
        Some(ms) => json!(ms),
    }
}

fn row_json(r: &Row) -> Value {
    json!({
        "requests": r.requests, "hits": r.hits, "misses": r.misses, "stale": r.stale,
        "revalidated": r.revalidated, "hit_permille": r.hit_permille(),
        "bytes_store": r.bytes_store, "bytes_upstream": r.bytes_upstream,
        "upstream_requests": r.upstream_requests,
        "manifest_gets_upstream": r.manifest_gets_upstream, "pulls_served": r.pulls_served,
        "pulls_saved": r.pulls_served.saturating_sub(r.manifest_gets_upstream),
        "hit_ms": {"p50": q(&r.hit_ms, 50), "p95": q(&r.hit_ms, 95)},
        "miss_ms": {"p50": q(&r.miss_ms, 50), "p95": q(&r.miss_ms, 95)},
    })
}

/// `YYYY-MM-DD` of a day since the epoch (Howard Hinnant's civil-from-days).
pub fn date(day: u32) -> String {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What `/_admin/stats` says when stats are off.
pub fn off_json() -> Value {
    json!({"enabled": false, "how": super::HOW_TO_TURN_ON})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_totals() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_513), "2026-03-01");
        let mut r = Row {
            requests: 2,
            hits: 1,
            misses: 1,
            pulls_served: 3,
            manifest_gets_upstream: 1,
            ..Default::default()
        };
        r.hit_ms[0] = 1;
        let rep = Report {
            days: vec![
                Day {
                    day: 1,
                    upstream: "a".into(),
                    row: r.clone(),
                },
                Day {
                    day: 1,
                    upstream: "b".into(),
                    row: r.clone(),
                },
                Day {
                    day: 2,
                    upstream: "a".into(),
                    row: r.clone(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(rep.total().requests, 6);
        assert_eq!(rep.per_day().len(), 2);
        let j = rep.to_json();
        assert_eq!(j["total"]["pulls_saved"], 6);
        assert_eq!(j["total"]["hit_permille"], 500);
        assert_eq!(j["total"]["hit_ms"]["p50"], 5);
        assert_eq!(j["total"]["miss_ms"]["p50"], Value::Null);
        assert_eq!(j["days"][0]["day"], "1970-01-02");
    }
}
