//! Pull counting per client in the `RATELIMIT` KV namespace. Only manifest GETs count (what Docker
//! Hub counts as a pull): one KV read and one write each. The count is decided and taken in one
//! synchronous step on this isolate's `Counters` (exact under concurrency here); KV carries it to
//! other isolates as it propagates. Other requests show the remaining count from the isolate's
//! counters, or one read when it has none. KV failing means no limit (logged).

use std::cell::RefCell;

use worker::{Context, Env};

use crate::config::Config;
use crate::ratelimit::{
    any_contains, client_key, counter_key, window_left, Counters, Decision, Limit,
};

thread_local! {
    static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
}

pub enum Verdict {
    /// Go on; with the limit and remaining pulls when limits apply to this client.
    Pass(Option<(Limit, u64)>),
    Deny {
        limit: Limit,
        retry_after: u64,
    },
}

pub async fn check(
    env: &Env,
    ctx: &Context,
    config: &Config,
    ip: &str,
    counts: bool,
    now: u64,
) -> Verdict {
    let (Some(limit), Ok(kv)) = (config.rate_limit, env.kv("RATELIMIT")) else {
        return Verdict::Pass(None);
    };
    if any_contains(&config.trusted, ip) {
        return Verdict::Pass(None);
    }
    let Some(client) = client_key(ip) else {
        return Verdict::Pass(None);
    };
    let key = counter_key(&client, limit, now);
    if !counts {
        if let Some(n) = COUNTERS.with(|c| c.borrow().local(&key)) {
            return Verdict::Pass(Some((limit, limit.count.saturating_sub(n))));
        }
    }
    let stored = match kv.get(&key).text().await {
        Ok(v) => v.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0),
        Err(e) => {
            worker::console_warn!(
                "{}",
                serde_json::json!({"msg": "rate limit store unreadable, not limiting", "error": e.to_string()})
            );
            return Verdict::Pass(None);
        }
    };
    if !counts {
        let seen = COUNTERS.with(|c| c.borrow().seen(&key, stored));
        return Verdict::Pass(Some((limit, limit.count.saturating_sub(seen))));
    }
    // No await between reading this isolate's count and taking the pull: concurrent requests
    // each see the one before them.
    let (decision, count) = COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        let d = c.take(&key, stored, limit, now);
        (d, c.local(&key).unwrap_or(0))
    });
    match decision {
        Decision::Deny { retry_after } => Verdict::Deny { limit, retry_after },
        Decision::Allow { remaining } => {
            // KV keeps a value at least 60 s; the window's own start in the key ends the count.
            let ttl = (window_left(limit, now) + 60).max(60);
            ctx.wait_until(async move {
                let put = match kv.put(&key, count.to_string()) {
                    Ok(p) => p.expiration_ttl(ttl).execute().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = put {
                    worker::console_warn!("{}", serde_json::json!({"msg": "rate limit store unwritable", "error": e.to_string()}));
                }
            });
            Verdict::Pass(Some((limit, remaining)))
        }
    }
}
