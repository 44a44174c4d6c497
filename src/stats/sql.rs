//! The D1 schema and statements, as text the platform binds values to: the one place that knows
//! the tables' columns. The schema is the migration file (`migrations/`), also run by the worker
//! on first use (every statement is `IF NOT EXISTS`).

use super::tally::{Row, NBUCKETS};

pub const SCHEMA: &str = include_str!("../../migrations/0001_inventory_and_stats.sql");

/// The schema's statements, comments left out.
pub fn schema_statements() -> Vec<String> {
    let code: Vec<&str> = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    code.join("\n")
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `daily` counter columns, in the order of `values`.
const COUNTERS: [&str; 10] = [
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
];

fn columns() -> Vec<String> {
    let mut c: Vec<String> = COUNTERS.iter().map(|s| s.to_string()).collect();
    c.extend((0..NBUCKETS).map(|i| format!("h{i}")));
    c.extend((0..NBUCKETS).map(|i| format!("m{i}")));
    c
}

/// Adds a row's counters to `daily` (bind `?1` day, `?2` upstream, then `values`): one row
/// written per (day, upstream) per flush, whatever the number of requests in it.
pub fn upsert_daily() -> String {
    let cols = columns();
    let params: Vec<String> = (0..cols.len()).map(|i| format!("?{}", i + 3)).collect();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO daily (day, upstream, {}) VALUES (?1, ?2, {}) ON CONFLICT (day, upstream) DO UPDATE SET {}",
        cols.join(", "),
        params.join(", "),
        sets.join(", ")
    )
}

/// A row's values in `upsert_daily`'s order.
pub fn values(r: &Row) -> Vec<u64> {
    let mut v = vec![
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
    ];
    v.extend(r.hit_ms);
    v.extend(r.miss_ms);
    v
}

/// A row read back from `daily` (`SELECT *`), by column name; missing columns count 0.
pub fn row_of(o: &serde_json::Map<String, serde_json::Value>) -> Row {
    let n = |c: &str| o.get(c).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut r = Row {
        requests: n("requests"),
        hits: n("hits"),
        misses: n("misses"),
        stale: n("stale"),
        revalidated: n("revalidated"),
        bytes_store: n("bytes_store"),
        bytes_upstream: n("bytes_upstream"),
        upstream_requests: n("upstream_requests"),
        manifest_gets_upstream: n("manifest_gets_upstream"),
        pulls_served: n("pulls_served"),
        ..Default::default()
    };
    for i in 0..NBUCKETS {
        r.hit_ms[i] = n(&format!("h{i}"));
        r.miss_ms[i] = n(&format!("m{i}"));
    }
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
/// The days from `?1` on.
pub const DAYS: &str = "SELECT * FROM daily WHERE day >= ?1 ORDER BY day, upstream";
/// The most hit repositories.
pub const TOP: &str = "SELECT upstream, repo, SUM(hits) AS hits, SUM(size) AS bytes, COUNT(*) AS objects FROM objects GROUP BY upstream, repo ORDER BY hits DESC, bytes DESC LIMIT 10";

/// Deletes `n` objects from the inventory (bind their keys).
pub fn delete_objects(n: usize) -> String {
    let params: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    format!("DELETE FROM objects WHERE key IN ({})", params.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_binds_every_column_once() {
        let sql = upsert_daily();
        let n = values(&Row::default()).len();
        assert_eq!(n, 10 + 2 * NBUCKETS);
        assert!(sql.contains(&format!("?{}", n + 2)) && !sql.contains(&format!("?{}", n + 3)));
        assert!(n + 2 <= 100, "D1 binds at most 100 parameters");
        for c in columns() {
            assert!(
                SCHEMA.contains(&format!("  {c} INTEGER")),
                "{c} in the schema"
            );
        }
    }

    #[test]
    fn rows_read_back_as_written() {
        let mut r = Row {
            requests: 3,
            pulls_served: 2,
            ..Default::default()
        };
        r.hit_ms[4] = 7;
        let cols = columns();
        let map: serde_json::Map<_, _> = cols
            .iter()
            .zip(values(&r))
            .map(|(c, v)| (c.clone(), serde_json::json!(v)))
            .collect();
        assert_eq!(row_of(&map), r);
    }

    #[test]
    fn the_schema_splits_into_statements() {
        let s = schema_statements();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.trim_start().starts_with("CREATE")));
        assert_eq!(
            delete_objects(2),
            "DELETE FROM objects WHERE key IN (?1, ?2)"
        );
    }
}
