//! Coordinating misses across isolates and locations: a Durable Object per object key (the
//! optional `COORDINATOR` binding). The first isolate to ask leads for a lease; the others' asks
//! are held until the leader says its store write landed (then they read the store) or the lease
//! runs out (then one of them leads). A leader that stored nothing says so and the next asker
//! leads at once. Without the binding, each isolate coalesces on its own.

use std::cell::{Cell, RefCell};

use worker::{durable_object, DurableObject, Env, ObjectNamespace, Request, Response, State};

use crate::flights::{Answer, Flights, LeaseBook};
use crate::ports::Acquired;

/// How often a held ask looks at the lease again.
const HOLD_POLL_MS: u64 = 25;
thread_local! {
    static NAMESPACE: RefCell<Option<ObjectNamespace>> = const { RefCell::new(None) };
}

/// Takes the binding for this isolate's requests (the same object every time, when bound).
pub fn bind(env: &Env) {
    let ns = env.durable_object("COORDINATOR").ok();
    NAMESPACE.with(|n| *n.borrow_mut() = ns);
}

async fn ask(key: &str, path: &str) -> Option<String> {
    let ns = NAMESPACE.with(|n| n.borrow().clone())?;
    let stub = ns.id_from_name(key).ok()?.get_stub().ok()?;
    let mut resp = stub
        .fetch_with_str(&format!("https://coordinator{path}"))
        .await
        .ok()?;
    resp.text().await.ok()
}

/// Who fetches `key` (see `Fetcher::coordinate`).
pub async fn acquire(key: &str, lease_ms: u32) -> Acquired {
    match ask(key, &format!("/acquire?lease={lease_ms}"))
        .await
        .as_deref()
    {
        Some("lead") => Acquired::Lead,
        Some("landed") => Acquired::Landed,
        Some("busy") => Acquired::Busy,
        _ => Acquired::Unavailable,
    }
}

/// Tells the coordinator about the flights this isolate led for everyone and that landed.
pub async fn flush(flights: &Flights) {
    for (key, ok) in flights.take_remote_landings() {
        let _ = ask(&key, &format!("/land?ok={}", u8::from(ok))).await;
    }
}

/// One object's coordinator: a `LeaseBook` kept in memory (a lease lives seconds; losing it to an
/// eviction only means one more fetch).
#[durable_object(fetch)]
pub struct Coordinator {
    book: Cell<LeaseBook>,
}

impl DurableObject for Coordinator {
    fn new(_state: State, _env: Env) -> Self {
        Coordinator {
            book: Cell::new(LeaseBook::default()),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let url = req.url()?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        match url.path() {
            "/land" => {
                let mut book = self.book.get();
                book.land(param("ok").as_deref() == Some("1"), js_sys::Date::now());
                self.book.set(book);
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
    async fn acquire(&self, lease: f64) -> &'static str {
        let give_up = js_sys::Date::now() + lease;
        loop {
            let now = js_sys::Date::now();
            let mut book = self.book.get();
            let answer = book.ask(now, lease);
            self.book.set(book);
            match answer {
                Some(Answer::Lead) => return "lead",
                Some(Answer::Landed) => return "landed",
                None if now >= give_up => return "busy",
                None => {}
            }
            worker::Delay::from(std::time::Duration::from_millis(HOLD_POLL_MS)).await;
        }
    }
}
