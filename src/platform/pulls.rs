//! Pull counters in the `RATELIMIT` KV namespace (the `PullCounts` port). Writes run after the
//! response; a failing KV is logged and means no limit.

use worker::Context;

use crate::ports::PullCounts;

pub struct KvPulls<'a> {
    kv: worker::kv::KvStore,
    ctx: &'a Context,
}

impl<'a> KvPulls<'a> {
    pub fn new(kv: worker::kv::KvStore, ctx: &'a Context) -> KvPulls<'a> {
        KvPulls { kv, ctx }
    }
}

impl PullCounts for KvPulls<'_> {
    async fn count(&self, key: &str) -> Result<u64, String> {
        match self.kv.get(key).text().await {
            Ok(v) => Ok(v.and_then(|v| v.trim().parse().ok()).unwrap_or(0)),
            Err(e) => {
                worker::console_warn!(
                    "{}",
                    serde_json::json!({"msg": "rate limit store unreadable, not limiting", "error": e.to_string()})
                );
                Err(e.to_string())
            }
        }
    }

    fn record(&self, key: &str, count: u64, keep_secs: u64) {
        // KV keeps a value at least 60 s.
        let ttl = keep_secs.max(60);
        let put = self.kv.put(key, count.to_string());
        self.ctx.wait_until(async move {
            let put = match put {
                Ok(p) => p.expiration_ttl(ttl).execute().await,
                Err(e) => Err(e),
            };
            if let Err(e) = put {
                worker::console_warn!("{}", serde_json::json!({"msg": "rate limit store unwritable", "error": e.to_string()}));
            }
        });
    }
}
