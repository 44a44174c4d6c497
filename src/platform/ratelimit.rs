//! Pull counting per client in the `RATELIMIT` KV namespace. Only manifest GETs count (what Docker
//! Hub counts as a pull): one read and one write each. Other requests show the remaining count
//! from this isolate's memo, or one read when it has none. KV failing means no limit (logged).

use std::cell::RefCell;
use std::collections::HashMap;

use worker::{Context, Env};

use crate::config::Config;
use crate::ratelimit::{
    any_contains, client_key, counter_key, decide, window_left, Decision, Limit,
};

/// Memo entries kept before the memo is cleared.
const MEMO_MAX: usize = 10_000;

thread_local! {
    static MEMO: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

pub enum Verdict {
    /// Go on; with the limit and remaining pulls when limits apply to this client.
    Pass(Option<(Limit, u64)>),
    Deny {
        limit: Limit,
        retry_after: u64,
    },
}

fn remember(key: &str, remaining: u64) {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MEMO_MAX {
            m.clear();
        }
        m.insert(key.to_string(), remaining);
    });
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
        if let Some(remaining) = MEMO.with(|m| m.borrow().get(&key).copied()) {
            return Verdict::Pass(Some((limit, remaining)));
        }
    }
    let count = match kv.get(&key).text().await {
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
        let remaining = limit.count.saturating_sub(count);
        remember(&key, remaining);
        return Verdict::Pass(Some((limit, remaining)));
    }
    match decide(limit, count, now) {
        Decision::Deny { retry_after } => {
            remember(&key, 0);
            Verdict::Deny { limit, retry_after }
        }
        Decision::Allow { remaining } => {
            remember(&key, remaining);
            // KV keeps a value at least 60 s; the window's own start in the key ends the count.
            let ttl = (window_left(limit, now) + 60).max(60);
            let next = (count + 1).to_string();
            ctx.wait_until(async move {
                let put = match kv.put(&key, next) {
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
