//! D1 (the `STATS` binding) for the inventory and the stats: runs the statements the core's
//! `stats::sql` holds, counts the rows D1 says it wrote, and evicts from R2 by key on the
//! scheduled run (an evicted object's bytes are never read). Without the binding nothing here runs.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use worker::{Bucket, D1Database, D1PreparedStatement};

use crate::stats::inventory::{self, Budget, Candidate};
use crate::stats::report::{Day, Report, Top, Writes, DAYS_SHOWN};
use crate::stats::{sql, tally, StatsSource};

thread_local! {
    /// Whether this isolate ran the (idempotent) schema already.
    static READY: Cell<bool> = const { Cell::new(false) };
    /// What this isolate wrote to D1 (statements, rows as D1 counts them, requests counted).
    static WRITES: Cell<Writes> = const { Cell::new(Writes { statements: 0, rows_written: 0, requests_counted: 0 }) };
}

pub type Db = Rc<D1Database>;

fn now_secs() -> u64 {
    worker::Date::now().as_millis() / 1000
}

fn warn(what: &str, e: worker::Error) {
    let error = serde_json::to_string(&crate::error::clip(&e.to_string())).unwrap_or_default();
    worker::console_warn!(r#"{{"msg":"stats database failed","what":"{what}","error":{error}}}"#);
}

fn num(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn statement(
    db: &D1Database,
    query: &str,
    args: &[JsValue],
) -> worker::Result<D1PreparedStatement> {
    db.prepare(query).bind(args)
}

/// A JavaScript error as text.
fn js_err(e: JsValue) -> worker::Error {
    let message = js_sys::Reflect::get(&e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "D1 failed".into());
    worker::Error::RustError(message)
}

type Rows = Vec<serde_json::Map<String, Value>>;

/// Runs statements in one batch (one round trip, one transaction), after the schema on an
/// isolate's first use; counts the rows D1 reports written; returns each statement's rows. The
/// results are read as JSON into `serde_json` values (code the wasm has anyway), never through
/// serde-wasm-bindgen or per-struct deserializers (~20 KB of wasm for a few small structs).
#[inline(never)]
async fn batch(db: &D1Database, statements: Vec<D1PreparedStatement>) -> worker::Result<Vec<Rows>> {
    if statements.is_empty() {
        return Ok(vec![]);
    }
    let list = js_sys::Array::new();
    let schema = !READY.with(Cell::get);
    let skip = if schema {
        for q in sql::SCHEMA_STATEMENTS {
            list.push(db.prepare(q).inner().as_ref());
        }
        sql::SCHEMA_STATEMENTS.len()
    } else {
        0
    };
    for s in &statements {
        list.push(s.inner().as_ref());
    }
    let run: js_sys::Function = js_sys::Reflect::get(db.as_ref(), &JsValue::from_str("batch"))
        .map_err(js_err)?
        .dyn_into()
        .map_err(js_err)?;
    let promise: js_sys::Promise = run
        .call1(db.as_ref(), &list)
        .map_err(js_err)?
        .dyn_into()
        .map_err(js_err)?;
    let results = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(js_err)?;
    if schema {
        READY.with(|r| r.set(true));
    }
    let json = String::from(js_sys::JSON::stringify(&results).map_err(js_err)?);
    let results: Vec<Value> =
        serde_json::from_str(&json).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let results = &results[skip.min(results.len())..];
    let written: u64 = results
        .iter()
        .filter_map(|r| r["meta"]["rows_written"].as_u64())
        .sum();
    WRITES.with(|w| {
        let mut v = w.get();
        v.statements += results.len() as u64;
        v.rows_written += written;
        w.set(v);
    });
    Ok(results
        .iter()
        .map(|r| match &r["results"] {
            Value::Array(rows) => rows.iter().filter_map(|r| r.as_object().cloned()).collect(),
            _ => vec![],
        })
        .collect())
}

fn int(row: &serde_json::Map<String, Value>, column: &str) -> u64 {
    row.get(column).and_then(Value::as_u64).unwrap_or(0)
}

fn string(row: &serde_json::Map<String, Value>, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Counts a request; `true` when a flush is due.
pub fn record(log: &crate::front::LogLine, now: u64) -> bool {
    if log.upstream.is_none() {
        return false;
    }
    WRITES.with(|w| {
        let mut v = w.get();
        v.requests_counted += 1;
        w.set(v);
    });
    let mut t = super::isolate().stats.borrow_mut();
    t.record(log, now);
    t.due(now)
}

/// Writes prepared statements in one batch after the response; a failure is logged (the counts
/// or the inventory row are lost: the inventory is a cache of what R2 holds, the stats a tally).
/// One async function for every write, so the wasm carries one state machine for them.
fn write(
    db: Db,
    what: &'static str,
    statements: worker::Result<Vec<D1PreparedStatement>>,
) -> Boxed<'static, ()> {
    Box::pin(async move {
        let done = match statements {
            Ok(s) => batch(&db, s).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            warn(what, e);
        }
    })
}

/// Writes the isolate's pending counters: one upsert per (day, upstream).
pub fn flush(db: Db) -> Boxed<'static, ()> {
    let rows = super::isolate().stats.borrow_mut().take();
    let mut statements = Vec::with_capacity(rows.len());
    for (day, upstream, row) in &rows {
        let mut args = vec![num(u64::from(*day)), text(upstream)];
        for v in sql::values(row) {
            args.push(num(v));
        }
        statements.push(statement(&db, sql::UPSERT_DAILY, &args));
    }
    write(db, "flush", statements.into_iter().collect())
}

/// Records an object whose R2 write committed.
pub fn stored(db: Db, name: &str, size: u64) -> Option<Boxed<'static, ()>> {
    let d = inventory::describe(name)?;
    let args = [
        text(name),
        text(d.upstream),
        text(d.repo),
        text(d.kind),
        num(size),
        num(now_secs()),
    ];
    let s = statement(&db, sql::STORED, &args).map(|s| vec![s]);
    Some(write(db, "inventory", s))
}

/// Counts a hit on a stored object; writes it at most once an hour per object (per isolate).
pub fn touched(db: &Db, name: &str) -> Option<Boxed<'static, ()>> {
    let now = now_secs();
    let hits = super::isolate().touches.borrow_mut().hit(name, now)?;
    let s = statement(db, sql::TOUCH, &[num(hits), num(now), text(name)]).map(|s| vec![s]);
    Some(write(db.clone(), "touch", s))
}

/// The inventory's object count and bytes, from `sql::TOTAL`'s rows.
fn total(rows: Option<&Rows>) -> (u64, u64) {
    rows.and_then(|r| r.first())
        .map_or((0, 0), |r| (int(r, "objects"), int(r, "bytes")))
}

/// The stats page's source.
pub struct D1Stats {
    pub db: Db,
    pub max_bytes: Option<u64>,
}

/// A future behind a pointer: polled through a vtable, so its state machine is not inlined into
/// every caller's (the fetch handler's and the scheduled handler's), which would cost the wasm
/// several KB each.
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

impl StatsSource for D1Stats {
    async fn report(&self, now: u64) -> Result<Report, String> {
        let boxed: Boxed<'_, _> = Box::pin(self.read(now));
        boxed.await
    }
}

impl D1Stats {
    async fn read(&self, now: u64) -> Result<Report, String> {
        flush(self.db.clone()).await;
        let since = tally::day_of(now).saturating_sub(DAYS_SHOWN - 1);
        let read = async {
            let statements = vec![
                statement(&self.db, sql::DAYS, &[num(u64::from(since))])?,
                statement(&self.db, sql::TOTAL, &[])?,
                statement(&self.db, sql::TOP, &[])?,
            ];
            batch(&self.db, statements).await
        };
        let results = read.await.map_err(|e| e.to_string())?;
        let (objects, bytes) = total(results.get(1));
        let days = results.first().map(Vec::as_slice).unwrap_or(&[]);
        let top = results.get(2).map(Vec::as_slice).unwrap_or(&[]);
        Ok(Report {
            days: days
                .iter()
                .map(|o| Day {
                    day: int(o, "day") as u32,
                    upstream: string(o, "upstream"),
                    row: sql::row_of(o),
                })
                .collect(),
            objects,
            bytes,
            max_bytes: self.max_bytes,
            top: top
                .iter()
                .map(|t| Top {
                    upstream: string(t, "upstream"),
                    repo: string(t, "repo"),
                    hits: int(t, "hits"),
                    bytes: int(t, "bytes"),
                    objects: int(t, "objects"),
                })
                .collect(),
            writes: WRITES.with(Cell::get),
        })
    }
}

/// The scheduled run's eviction: least recently used objects deleted from R2 by key, then from
/// the inventory, until it is within the budget. One log line.
pub async fn evict(db: &Db, bucket: &Bucket, budget: &Budget) {
    if budget.is_off() {
        return;
    }
    let once: Boxed<'_, _> = Box::pin(evict_once(db, bucket, budget, now_secs()));
    match once.await {
        Ok(line) => worker::console_log!("{line}"),
        Err(e) => warn("evict", e),
    }
}

async fn evict_once(db: &Db, bucket: &Bucket, budget: &Budget, now: u64) -> worker::Result<String> {
    let statements = vec![
        statement(db, sql::TOTAL, &[])?,
        statement(db, sql::LRU, &[num(inventory::MAX_EVICT as u64)])?,
    ];
    let results = batch(db, statements).await?;
    let (objects, bytes) = total(results.first());
    let candidates: Vec<Candidate> = results
        .get(1)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|r| Candidate {
            key: string(r, "key"),
            size: int(r, "size"),
            last_access: int(r, "last_access"),
        })
        .collect();
    let keys = inventory::plan(budget, bytes, &candidates, now);
    let freed: u64 = candidates.iter().take(keys.len()).map(|c| c.size).sum();
    if !keys.is_empty() {
        bucket
            .delete_multiple(keys.iter().map(String::as_str).collect())
            .await?;
        let mut statements = Vec::new();
        for chunk in keys.chunks(inventory::DELETE_CHUNK) {
            let args: Vec<JsValue> = chunk.iter().map(|k| text(k)).collect();
            statements.push(statement(db, &sql::delete_objects(chunk.len()), &args)?);
        }
        batch(db, statements).await?;
    }
    // Numbers only: written without building a JSON value.
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    Ok(format!(
        r#"{{"msg":"evicted","objects":{},"bytes":{freed},"before_objects":{objects},"before_bytes":{bytes},"max_bytes":{},"max_idle_secs":{}}}"#,
        keys.len(),
        opt(budget.max_bytes),
        opt(budget.max_idle_secs)
    ))
}
