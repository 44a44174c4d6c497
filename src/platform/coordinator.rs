//! Coordinating misses across isolates and locations: a Durable Object per object key (the
//! optional `COORDINATOR` binding). The first isolate to ask leads for a lease; the others' asks
//! are held until the leader says its store write landed (then they read the store) or the lease
//! runs out (then one of them leads). A leader that stored nothing says so and the next asker
//! leads at once. The same holds for the mirror's own upstream tokens: the leader shares the token
//! it fetched with its landing, so a fleet asks the realm once. Without the binding, each isolate
//! coalesces on its own.

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, ObjectNamespace, Request, Response, State};

use crate::flights::{Answer, Flights, LeaseBook};
use crate::ports::Acquired;

/// How often a held ask looks at the lease again.
const HOLD_POLL_MS: u64 = 25;

thread_local! {
    static NAMESPACE: RefCell<Option<ObjectNamespace>> = const { RefCell::new(None) };
}

/// Takes the binding for this isolate's requests (the same object every time, when bound).
pub fn bind(ns: Option<ObjectNamespace>) {
    NAMESPACE.with(|n| *n.borrow_mut() = ns);
}

async fn ask(key: &str, path: &str, body: Option<&str>) -> Option<String> {
    let ns = NAMESPACE.with(|n| n.borrow().clone())?;
    let stub = ns.id_from_name(key).ok()?.get_stub().ok()?;
    let mut init = worker::RequestInit::new();
    if let Some(b) = body {
        init.with_method(worker::Method::Post)
            .with_body(Some(wasm_bindgen::JsValue::from_str(b)));
    }
    let req = Request::new_with_init(&format!("https://coordinator{path}"), &init).ok()?;
    let mut resp = stub.fetch_with_request(req).await.ok()?;
    resp.text().await.ok()
}

/// Who fetches `key` (see `Fetcher::coordinate`).
pub async fn acquire(key: &str, lease_ms: u32) -> Acquired {
    let answer = ask(key, &format!("/acquire?lease={lease_ms}"), None).await;
    match answer
        .as_deref()
        .map(|a| a.split_once('\n').unwrap_or((a, "")))
    {
        Some(("lead", _)) => Acquired::Lead,
        Some(("landed", "")) => Acquired::Landed(None),
        Some(("landed", shared)) => Acquired::Landed(Some(shared.to_string())),
        Some(("busy", _)) => Acquired::Busy,
        _ => Acquired::Unavailable,
    }
}

/// Ends a lead now (`Fetcher::land`), sharing `payload`.
pub async fn land(key: &str, ok: bool, payload: Option<&str>) {
    let path = format!("/land?ok={}", u8::from(ok));
    let _ = ask(key, &path, Some(payload.unwrap_or(""))).await;
}

/// Tells the coordinator about the flights this isolate led for everyone and that landed.
pub async fn flush(flights: &Flights) {
    tell_landed(flights.take_remote_landings()).await;
}

/// Tells the coordinator that these flights (key, stored) landed.
pub async fn tell_landed(landed: Vec<(String, bool)>) {
    for (key, ok) in landed {
        land(&key, ok, None).await;
    }
}

/// One object's coordinator: a `LeaseBook` kept in memory (a lease lives seconds; losing it to an
/// eviction only means one more fetch).
#[durable_object(fetch)]
pub struct Coordinator {
    book: RefCell<LeaseBook>,
}

impl DurableObject for Coordinator {
    fn new(_state: State, _env: Env) -> Self {
        Coordinator {
            book: RefCell::new(LeaseBook::default()),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let url = req.url()?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        match url.path() {
            "/land" => {
                let shared = req.text().await.ok().filter(|t| !t.is_empty());
                let ok = param("ok").as_deref() == Some("1");
                let now = js_sys::Date::now();
                self.book.borrow_mut().land(ok, now, shared);
                Response::ok("ok")
            }
            "/acquire" => {
                let lease = param("lease")
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(30_000.0)
                    .clamp(100.0, 600_000.0);
                Response::ok(self.acquire(lease).await)
            }
            _ => Response::error("no such operation", 404),
        }
    }
}

impl Coordinator {
    /// Holds the ask while another isolate leads, at most the lease's length.
    async fn acquire(&self, lease: f64) -> String {
        let give_up = js_sys::Date::now() + lease;
        loop {
            let now = js_sys::Date::now();
            // The borrow ends before the await below.
            let answer = self.book.borrow_mut().ask(now, lease);
            match answer {
                Some(Answer::Lead) => return "lead".into(),
                Some(Answer::Landed(None)) => return "landed".into(),
                Some(Answer::Landed(Some(shared))) => return format!("landed\n{shared}"),
                None if now >= give_up => return "busy".into(),
                None => {}
            }
            worker::Delay::from(std::time::Duration::from_millis(HOLD_POLL_MS)).await;
        }
    }
}
