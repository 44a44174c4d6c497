//! The D1 schema and statements, as text the platform binds values to: the one place that knows
//! the tables' columns. The schema is the migration file (`migrations/`), also run by the worker
//! on first use (every statement is `IF NOT EXISTS`).

use super::tally::{Row, NBUCKETS};

pub const SCHEMA: &str = include_str!("../../migrations/0001_inventory_and_stats.sql");

/// The schema's statements, comments left out: literals (a test checks them against `SCHEMA`),
/// so the wasm carries no code to split the file.
pub const SCHEMA_STATEMENTS: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS objects (\n  key TEXT PRIMARY KEY,\n  upstream TEXT NOT NULL,\n  repo TEXT NOT NULL,\n  kind TEXT NOT NULL,\n  size INTEGER NOT NULL,\n  stored_at INTEGER NOT NULL,\n  last_access INTEGER NOT NULL,\n  hits INTEGER NOT NULL DEFAULT 0\n) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS daily (\n  day INTEGER NOT NULL,\n  upstream TEXT NOT NULL,\n  requests INTEGER NOT NULL DEFAULT 0,\n  hits INTEGER NOT NULL DEFAULT 0,\n  misses INTEGER NOT NULL DEFAULT 0,\n  stale INTEGER NOT NULL DEFAULT 0,\n  revalidated INTEGER NOT NULL DEFAULT 0,\n  bytes_store INTEGER NOT NULL DEFAULT 0,\n  bytes_upstream INTEGER NOT NULL DEFAULT 0,\n  upstream_requests INTEGER NOT NULL DEFAULT 0,\n  manifest_gets_upstream INTEGER NOT NULL DEFAULT 0,\n  pulls_served INTEGER NOT NULL DEFAULT 0,\n  h0 INTEGER NOT NULL DEFAULT 0,\n  h1 INTEGER NOT NULL DEFAULT 0,\n  h2 INTEGER NOT NULL DEFAULT 0,\n  h3 INTEGER NOT NULL DEFAULT 0,\n  h4 INTEGER NOT NULL DEFAULT 0,\n  h5 INTEGER NOT NULL DEFAULT 0,\n  h6 INTEGER NOT NULL DEFAULT 0,\n  h7 INTEGER NOT NULL DEFAULT 0,\n  h8 INTEGER NOT NULL DEFAULT 0,\n  h9 INTEGER NOT NULL DEFAULT 0,\n  h10 INTEGER NOT NULL DEFAULT 0,\n  h11 INTEGER NOT NULL DEFAULT 0,\n  h12 INTEGER NOT NULL DEFAULT 0,\n  m0 INTEGER NOT NULL DEFAULT 0,\n  m1 INTEGER NOT NULL DEFAULT 0,\n  m2 INTEGER NOT NULL DEFAULT 0,\n  m3 INTEGER NOT NULL DEFAULT 0,\n  m4 INTEGER NOT NULL DEFAULT 0,\n  m5 INTEGER NOT NULL DEFAULT 0,\n  m6 INTEGER NOT NULL DEFAULT 0,\n  m7 INTEGER NOT NULL DEFAULT 0,\n  m8 INTEGER NOT NULL DEFAULT 0,\n  m9 INTEGER NOT NULL DEFAULT 0,\n  m10 INTEGER NOT NULL DEFAULT 0,\n  m11 INTEGER NOT NULL DEFAULT 0,\n  m12 INTEGER NOT NULL DEFAULT 0,\n  PRIMARY KEY (day, upstream)\n) WITHOUT ROWID",
];

/// The `daily` counter columns, in the order of `values` (counters, hit buckets, miss buckets).
pub const COLUMNS: [&str; 10 + 2 * NBUCKETS] = [
    "requests",
    "hits",
    "misses",
    "stale",
    "revalidated",
    "bytes_store",
    "bytes_upstream",
    "upstream_requests",
    "manifest_gets_upstream",
    "pulls_served",
    "h0",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "h7",
    "h8",
    "h9",
    "h10",
    "h11",
    "h12",
    "m0",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "m9",
    "m10",
    "m11",
    "m12",
];

/// Adds a row's counters to `daily` (bind `?1` day, `?2` upstream, then `values`): one row
/// written per (day, upstream) per flush, whatever the number of requests in it. A literal (a
/// test checks it against `COLUMNS`).
pub const UPSERT_DAILY: &str = "INSERT INTO daily (day, upstream, requests, hits, misses, stale, revalidated, bytes_store, bytes_upstream, upstream_requests, manifest_gets_upstream, pulls_served, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38) ON CONFLICT (day, upstream) DO UPDATE SET requests = requests + excluded.requests, hits = hits + excluded.hits, misses = misses + excluded.misses, stale = stale + excluded.stale, revalidated = revalidated + excluded.revalidated, bytes_store = bytes_store + excluded.bytes_store, bytes_upstream = bytes_upstream + excluded.bytes_upstream, upstream_requests = upstream_requests + excluded.upstream_requests, manifest_gets_upstream = manifest_gets_upstream + excluded.manifest_gets_upstream, pulls_served = pulls_served + excluded.pulls_served, h0 = h0 + excluded.h0, h1 = h1 + excluded.h1, h2 = h2 + excluded.h2, h3 = h3 + excluded.h3, h4 = h4 + excluded.h4, h5 = h5 + excluded.h5, h6 = h6 + excluded.h6, h7 = h7 + excluded.h7, h8 = h8 + excluded.h8, h9 = h9 + excluded.h9, h10 = h10 + excluded.h10, h11 = h11 + excluded.h11, h12 = h12 + excluded.h12, m0 = m0 + excluded.m0, m1 = m1 + excluded.m1, m2 = m2 + excluded.m2, m3 = m3 + excluded.m3, m4 = m4 + excluded.m4, m5 = m5 + excluded.m5, m6 = m6 + excluded.m6, m7 = m7 + excluded.m7, m8 = m8 + excluded.m8, m9 = m9 + excluded.m9, m10 = m10 + excluded.m10, m11 = m11 + excluded.m11, m12 = m12 + excluded.m12";

/// A row's values in `COLUMNS` order.
pub fn values(r: &Row) -> [u64; 10 + 2 * NBUCKETS] {
    let mut v = [0; 10 + 2 * NBUCKETS];
    v[..10].copy_from_slice(&[
        r.requests,
        r.hits,
        r.misses,
        r.stale,
        r.revalidated,
        r.bytes_store,
        r.bytes_upstream,
        r.upstream_requests,
        r.manifest_gets_upstream,
        r.pulls_served,
    ]);
    v[10..10 + NBUCKETS].copy_from_slice(&r.hit_ms);
    v[10 + NBUCKETS..].copy_from_slice(&r.miss_ms);
    v
}

/// A row read back from `daily` (`SELECT *`), by column name; missing columns count 0.
pub fn row_of(o: &serde_json::Map<String, serde_json::Value>) -> Row {
    let v = COLUMNS.map(|c| o.get(c).and_then(|v| v.as_u64()).unwrap_or(0));
    let mut r = Row {
        requests: v[0],
        hits: v[1],
        misses: v[2],
        stale: v[3],
        revalidated: v[4],
        bytes_store: v[5],
        bytes_upstream: v[6],
        upstream_requests: v[7],
        manifest_gets_upstream: v[8],
        pulls_served: v[9],
        ..Default::default()
    };
    r.hit_ms.copy_from_slice(&v[10..10 + NBUCKETS]);
    r.miss_ms.copy_from_slice(&v[10 + NBUCKETS..]);
    r
}

/// Records a committed object (bind key, upstream, repo, kind, size, now): a rewrite after an
/// eviction starts its life again.
pub const STORED: &str = "INSERT INTO objects (key, upstream, repo, kind, size, stored_at, last_access, hits) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0) ON CONFLICT (key) DO UPDATE SET size = excluded.size, stored_at = excluded.stored_at, last_access = excluded.last_access";
/// Records hits (bind hits, now, key).
pub const TOUCH: &str =
    "UPDATE objects SET hits = hits + ?1, last_access = MAX(last_access, ?2) WHERE key = ?3";
/// The inventory's size.
pub const TOTAL: &str = "SELECT COUNT(*) AS objects, COALESCE(SUM(size), 0) AS bytes FROM objects";
/// Eviction candidates, least recently used first (bind the limit).
pub const LRU: &str =
    "SELECT key, size, last_access FROM objects ORDER BY last_access, stored_at, key LIMIT ?1";
/// The days from `?1` on (bounded: what is read into wasm is capped).
pub const DAYS: &str = "SELECT * FROM daily WHERE day >= ?1 ORDER BY day, upstream LIMIT 1000";
/// The most hit repositories.
pub const TOP: &str = "SELECT upstream, repo, SUM(hits) AS hits, SUM(size) AS bytes, COUNT(*) AS objects FROM objects GROUP BY upstream, repo ORDER BY hits DESC, bytes DESC LIMIT 10";

/// Deletes `n` objects from the inventory (bind their keys).
pub fn delete_objects(n: usize) -> String {
    let mut q = String::from("DELETE FROM objects WHERE key IN (");
    for i in 1..=n {
        if i > 1 {
            q.push_str(", ");
        }
        q.push('?');
        q.push_str(&i.to_string());
    }
    q.push(')');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literals_match_the_schema_and_the_columns() {
        let code: Vec<&str> = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        let statements: Vec<String> = code
            .join("\n")
            .split(';')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(statements, SCHEMA_STATEMENTS);
        let params: Vec<String> = (0..COLUMNS.len()).map(|i| format!("?{}", i + 3)).collect();
        let sets: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("{c} = {c} + excluded.{c}"))
            .collect();
        let upsert = format!(
            "INSERT INTO daily (day, upstream, {}) VALUES (?1, ?2, {}) ON CONFLICT (day, upstream) DO UPDATE SET {}",
            COLUMNS.join(", "),
            params.join(", "),
            sets.join(", ")
        );
        assert_eq!(UPSERT_DAILY, upsert);
        assert!(COLUMNS.len() + 2 <= 100, "D1 binds at most 100 parameters");
        for c in COLUMNS {
            assert!(
                SCHEMA.contains(&format!("  {c} INTEGER")),
                "{c} in the schema"
            );
        }
        for (i, c) in COLUMNS[10..10 + NBUCKETS].iter().enumerate() {
            assert_eq!(*c, format!("h{i}"));
        }
        assert_eq!(
            delete_objects(2),
            "DELETE FROM objects WHERE key IN (?1, ?2)"
        );
    }

    #[test]
    fn rows_read_back_as_written() {
        let mut r = Row {
            requests: 3,
            pulls_served: 2,
            ..Default::default()
        };
        r.hit_ms[4] = 7;
        r.miss_ms[12] = 1;
        let map: serde_json::Map<_, _> = COLUMNS
            .iter()
            .zip(values(&r))
            .map(|(c, v)| (c.to_string(), serde_json::json!(v)))
            .collect();
        assert_eq!(row_of(&map), r);
    }
}
