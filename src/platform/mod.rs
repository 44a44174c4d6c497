//! The only code that touches the Workers runtime: the entry points, the ports the core asks for
//! (the upstream client, the stores, KV pull counters, the configuration store), configuration
//! from the environment, and conversions between runtime and `http` types. Every decision is the
//! core's (`front::serve`).

mod body_deadline;
mod convert;
mod coordinator;
mod ecdsa;
mod env;
mod fetch;
mod pulls;
mod refill;
mod stats;
mod store;
mod verify;

use wasm_bindgen::JsCast;
use worker::{event, Context, Env, ScheduleContext, ScheduledEvent};

use crate::front::{Isolate, Ports};
use crate::mirror::Session;

thread_local! {
    /// What the isolate keeps between requests (tokens, failure and pull counters); wasm is
    /// single-threaded and no borrow is held across an await.
    static ISOLATE: &'static Isolate = Box::leak(Box::new(Isolate::default()));
    /// Whether the stores were touched after the isolate's first answer (`store::touch`).
    static TOUCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The isolate's state.
fn isolate() -> &'static Isolate {
    ISOLATE.with(|i| *i)
}

/// Cloudflare's ray id when there is one (it ties the line to Cloudflare's own logs), else random.
fn request_id(req: &web_sys::Request) -> String {
    match req.headers().get("cf-ray") {
        Ok(Some(ray))
            if !ray.is_empty()
                && ray.len() <= 64
                && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            ray
        }
        _ => format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64),
    }
}

/// The isolate's wasm memory in bytes (it only grows): `/healthz` shows it to operators.
fn wasm_memory() -> u32 {
    let memory = wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>();
    js_sys::ArrayBuffer::from(memory.buffer()).byte_length()
}

/// When the isolate starts: one line, so the logs count fresh isolates (whose first requests pay
/// the first run of the code). It is also the isolate's first log line, whose extra cost in the
/// runtime is then paid here, not by the first request (docs/cold-path.md).
#[event(start)]
fn start() {
    worker::console_log!("{{\"msg\":\"isolate started\"}}");
}

#[event(fetch)]
// The runtime's own request object: `worker::Request` would read its `cf` properties on every
// request (a measurable share of a hit's CPU) for nothing the mirror uses.
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    console_error_panic_hook::set_once();
    let started = js_sys::Date::now() as u64;
    let arrival = match convert::arrival(&req, request_id(&req), started) {
        Ok(a) => a,
        Err(e) => {
            let method = req.method().parse().unwrap_or_default();
            return convert::outgoing(crate::mirror::respond::oci_error(&method, &e));
        }
    };
    let env::Snapshot {
        config: base,
        bindings,
    } = env::snapshot(&env);
    coordinator::bind(bindings.coordinator);
    let config_store = bindings.config.map(env::KvConfig);
    // The admin API edits the static table; everything else runs on the table in force.
    let config = if crate::admin::is_admin_path(arrival.url.path()) {
        base.clone()
    } else {
        env::effective(&env, base.clone(), config_store.clone(), started).await
    };
    let secret = |name: &str| env::kept_var(&env, name);
    let db = bindings.stats;
    let store = store::RuntimeStore {
        ctx: store::Deferred::Request(&ctx),
        bucket: bindings.blobs,
        inventory: db.clone(),
        fill: config.as_ref().map_or(Default::default(), |c| c.blob_fill),
        after: Default::default(),
    };
    let stats_source = db.clone().map(|db| stats::D1Stats {
        db,
        max_bytes: base.as_ref().ok().and_then(|c| c.store_budget.max_bytes),
    });
    let health = arrival.url.path() == "/healthz";
    // The Worker's names (a list of every binding) are read only for /healthz, the one place
    // that shows them: not on every request.
    let names = if health { env::names(&env) } else { Vec::new() };
    let pulls = bindings.ratelimit.map(|kv| pulls::KvPulls::new(kv, &ctx));
    let ports = Ports {
        fetcher: &fetch::RuntimeFetcher,
        store: &store,
        pulls: pulls.as_ref(),
        config_store: config_store.as_ref(),
        stats: stats_source.as_ref(),
        secret: &secret,
        names: &names,
        isolate: ISOLATE.with(|i| *i),
        timeout_ms: config
            .as_ref()
            .map_or(crate::config::DEFAULT_TIMEOUT_MS, |c| c.upstream_timeout_ms),
    };
    let mut out = crate::front::serve(
        &ports,
        config.as_ref().map(|c| c.as_ref()),
        base.as_ref().map(|c| c.as_ref()),
        arrival,
    )
    .await;
    if health {
        out.response.headers_mut().insert(
            "edgemirror-wasm-memory",
            http::HeaderValue::from(wasm_memory()),
        );
        out.response.headers_mut().insert(
            "edgemirror-manifest-memory",
            http::HeaderValue::from(crate::mirror::memo::used()),
        );
    }
    if let Some(r) = store.after.take() {
        match &config {
            Ok(config) => refill::after_answer(
                &mut out.response,
                r,
                &store,
                config.clone(),
                env.clone(),
                &ctx,
            ),
            Err(_) => r.landing.failed(),
        }
    }
    if let (false, Ok(config)) = (out.ahead.is_empty(), &config) {
        let list = std::mem::take(&mut out.ahead);
        ctx.wait_until(fetch_ahead(config.clone(), env.clone(), list));
    }
    for note in &out.notes {
        worker::console_log!("{note}");
    }
    if !TOUCHED.with(|t| t.replace(true)) {
        ctx.wait_until(store::touch(store.bucket.clone()));
    }
    // Flights this request led for other isolates and that landed now (nothing stored, or
    // stored before the answer left) are told to the coordinator after the response.
    // (Most requests lead nothing: no deferred task, which costs a promise, is made for them.)
    let landed = isolate().flights.take_remote_landings();
    if !landed.is_empty() {
        ctx.wait_until(coordinator::tell_landed(landed));
    }
    let ended = js_sys::Date::now() as u64;
    out.log.ms = Some(ended.saturating_sub(started));
    worker::console_log!("{}", out.log.to_json());
    // Counted in the isolate; written in a bounded batch now and then (see `stats::tally`).
    if let Some(db) = db {
        if stats::record(&out.log, ended / 1000) {
            ctx.wait_until(stats::flush(db));
        }
    }
    convert::outgoing(out.response)
}

/// A session outside a client's request (the cron, tokens fetched ahead): the isolate's tokens
/// and flights, the clock read now, and a budget of upstream requests.
fn background_session<'a>(
    secret: &'a dyn Fn(&str) -> Option<String>,
    budget: &'a crate::mirror::Budget,
    timeout_ms: u32,
) -> Session<'a, fetch::RuntimeFetcher> {
    Session {
        fetcher: &fetch::RuntimeFetcher,
        tokens: &isolate().tokens,
        flights: &isolate().flights,
        now: worker::Date::now().as_millis() / 1000,
        timeout_ms,
        secret,
        budget: Some(budget),
    }
}

/// Upstream tokens a token request's pull will need, fetched after its answer (with a budget of
/// upstream requests; see `mirror::token_ahead`).
async fn fetch_ahead(
    config: std::rc::Rc<crate::config::Config>,
    env: Env,
    list: Vec<crate::mirror::token_ahead::Ahead>,
) {
    use crate::mirror::token_ahead::{run, AHEAD_BUDGET, MAX_AHEAD};
    // After the answer has left: a task deferred with wait_until starts in the same turn, and
    // its first steps would otherwise delay the token the client is waiting for.
    worker::Delay::from(std::time::Duration::ZERO).await;
    let secret = |name: &str| env::var(&env, name);
    let budget = crate::mirror::Budget::new(AHEAD_BUDGET * MAX_AHEAD as u32);
    let session = background_session(&secret, &budget, config.upstream_timeout_ms);
    run(&config, &session, &list).await;
}

/// The cron trigger: write this isolate's stats, evict least recently used objects past the
/// store's budget (see `stats::inventory`), and warm the configured images (see `prewarm`),
/// one log line per image.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let env::Snapshot { config, bindings } = env::snapshot(&env);
    let store = bindings.config.map(env::KvConfig);
    let config = match env::effective(&env, config, store, worker::Date::now().as_millis()).await {
        Ok(c) => c,
        Err(_) => return, // already logged as an invalid configuration
    };
    let bucket = bindings.blobs;
    let blobs = bucket.is_some();
    let db = bindings.stats;
    // Eviction first: prewarm then finds what it needs missing and fetches it again.
    if let (Some(db), Some(bucket)) = (&db, &bucket) {
        stats::flush(db.clone()).await;
        stats::evict(db, bucket, &config.store_budget).await;
    }
    let store = store::RuntimeStore {
        ctx: store::Deferred::Schedule(&ctx),
        bucket,
        inventory: db,
        // Prewarm reads nothing it fetches: a fill after the answer would fetch every blob twice.
        fill: crate::ports::BlobFill::WithAnswer,
        after: Default::default(),
    };
    // The same fetcher as requests use (one copy of the flow in the wasm), with a budget.
    let budget = crate::mirror::Budget::new(config.prewarm_budget);
    let secret = |name: &str| env::var(&env, name);
    let session = background_session(&secret, &budget, config.upstream_timeout_ms);
    for r in crate::prewarm::run(&config, &session, &store, blobs).await {
        worker::console_log!(
            "{}",
            serde_json::json!({
                "msg": "prewarm", "cron": event.cron(), "image": r.image, "result": r.result,
                "manifests": r.manifests, "blobs_fetched": r.blobs_fetched, "blobs_held": r.blobs_held, "error": r.error,
            })
        );
    }
    worker::console_log!(
        "{}",
        serde_json::json!({"msg": "prewarm done", "upstream_requests": budget.used.get(), "budget": config.prewarm_budget})
    );
}
