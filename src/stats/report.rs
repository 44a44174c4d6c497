//! What `/_admin/stats` and the stats page show: the daily rows read back, the store's usage
//! against the budget, the most hit repositories, and the D1 writes this isolate made.

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

    /// The JSON of `/_admin/stats` (derived serializers: `json!` would cost the wasm more).
    pub fn to_json(&self) -> String {
        let view = ReportView {
            enabled: true,
            total: RowView::of(&self.total(), None, None),
            days: self
                .days
                .iter()
                .map(|d| RowView::of(&d.row, Some(date(d.day)), Some(&d.upstream)))
                .collect(),
            store: StoreView {
                objects: self.objects,
                bytes: self.bytes,
                max_bytes: self.max_bytes,
            },
            top: &self.top,
            d1: self.writes,
        };
        serde_json::to_string(&view).unwrap_or_default()
    }
}

#[derive(serde::Serialize)]
struct ReportView<'a> {
    enabled: bool,
    total: RowView<'a>,
    days: Vec<RowView<'a>>,
    store: StoreView,
    top: &'a [Top],
    d1: Writes,
}

#[derive(serde::Serialize)]
struct StoreView {
    objects: u64,
    bytes: u64,
    max_bytes: Option<u64>,
}

/// A percentile: ms (the bucket's upper bound), or past the last bucket (`">30000"`).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Ms {
    Ms(u64),
    Over(String),
}

#[derive(serde::Serialize)]
struct Quantiles {
    p50: Option<Ms>,
    p95: Option<Ms>,
}

impl Quantiles {
    fn of(h: &[u64; super::tally::NBUCKETS]) -> Quantiles {
        let q = |p| {
            quantile(h, p).map(|ms| match ms {
                u64::MAX => Ms::Over(format!(
                    ">{}",
                    super::tally::BUCKETS_MS[super::tally::BUCKETS_MS.len() - 1]
                )),
                ms => Ms::Ms(ms),
            })
        };
        Quantiles {
            p50: q(50),
            p95: q(95),
        }
    }
}

#[derive(serde::Serialize)]
struct RowView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    requests: u64,
    hits: u64,
    misses: u64,
    stale: u64,
    revalidated: u64,
    hit_permille: u64,
    bytes_store: u64,
    bytes_upstream: u64,
    upstream_requests: u64,
    manifest_gets_upstream: u64,
    pulls_served: u64,
    pulls_saved: u64,
    hit_ms: Quantiles,
    miss_ms: Quantiles,
}

impl<'a> RowView<'a> {
    fn of(r: &Row, day: Option<String>, upstream: Option<&'a str>) -> RowView<'a> {
        RowView {
            day,
            upstream,
            requests: r.requests,
            hits: r.hits,
            misses: r.misses,
            stale: r.stale,
            revalidated: r.revalidated,
            hit_permille: r.hit_permille(),
            bytes_store: r.bytes_store,
            bytes_upstream: r.bytes_upstream,
            upstream_requests: r.upstream_requests,
            manifest_gets_upstream: r.manifest_gets_upstream,
            pulls_served: r.pulls_served,
            pulls_saved: r.pulls_served.saturating_sub(r.manifest_gets_upstream),
            hit_ms: Quantiles::of(&r.hit_ms),
            miss_ms: Quantiles::of(&r.miss_ms),
        }
    }
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
pub fn off_json() -> String {
    format!(
        r#"{{"enabled":false,"how":{}}}"#,
        serde_json::to_string(super::HOW_TO_TURN_ON).unwrap_or_default()
    )
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
        let j: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert_eq!(j["total"]["pulls_saved"], 6);
        assert_eq!(j["total"]["hit_permille"], 500);
        assert_eq!(j["total"]["hit_ms"]["p50"], 5);
        assert_eq!(j["total"]["miss_ms"]["p50"], serde_json::Value::Null);
        assert!(j["total"].get("day").is_none());
        let off: serde_json::Value = serde_json::from_str(&off_json()).unwrap();
        assert_eq!(off["enabled"], false);
        assert_eq!(j["days"][0]["day"], "1970-01-02");
    }
}
