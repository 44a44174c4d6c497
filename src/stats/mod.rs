//! Bounded storage and stats: the inventory of stored objects and LRU eviction within a byte
//! budget (`inventory`), request counters per upstream per day aggregated in the isolate
//! (`tally`), their D1 statements (`sql`), and what operators see (`report`, `page`). All plain
//! Rust with `now` passed in; the platform runs the statements (see docs/storage.md).

pub mod inventory;
pub mod page;
pub mod report;
pub mod sql;
pub mod tally;

/// What to do to turn stats on (the page and the JSON say it when they are off).
pub const HOW_TO_TURN_ON: &str = "Bind a D1 database as STATS: `wrangler d1 create edgemirror-stats`, add it to wrangler.toml as [[d1_databases]] binding = \"STATS\" with migrations_dir = \"migrations\", run `wrangler d1 migrations apply edgemirror-stats --remote`, and deploy.";

#[allow(async_fn_in_trait)]
/// Where the stats page reads from (D1 in the worker).
pub trait StatsSource {
    /// This isolate's pending counters written first, then the last `report::DAYS_SHOWN` days
    /// up to `now` (seconds), the store's usage and the top repositories.
    async fn report(&self, now: u64) -> Result<report::Report, String>;
}

/// No stats source (the binding is missing).
pub struct NoStats;

impl StatsSource for NoStats {
    async fn report(&self, _now: u64) -> Result<report::Report, String> {
        Err("stats are off".into())
    }
}
