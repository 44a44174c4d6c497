//! Coalescing misses inside one isolate: while one request (the leader) fetches an object from its
//! upstream, the others that want the same object (followers) wait until the leader's store write
//! has landed, then answer from the store. A burst of clients costs the upstream one exchange per
//! tag and per object.
//!
//! The leader holds a `Landing`; each store write it starts takes a clone, and the flight lands
//! when the last clone is dropped: after every write committed, or as soon as one failed or the
//! leader stored nothing. A follower that finds the object missing after the landing fetches it
//! itself (it may become the next leader): a failed leader never fails its followers. Waiting is
//! bounded; requests with a client's own credentials never take part (their answers are never
//! stored, and never given to anyone else).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::backoff::{look_until, Backoff, Look};

/// How often a follower looks whether its flight landed: after 2 ms, doubling up to every 20 ms
/// (a small object's write lands in milliseconds; a large layer's takes seconds).
pub const FOLLOW: Backoff = Backoff { first: 2, cap: 20 };
/// A flight not landed after this long is no longer waited for (its leader may have gone away
/// without dropping its landing, e.g. an isolate-wide timeout).
const FORGOTTEN_AFTER_SECS: u64 = 300;
/// Flights remembered before landed ones are dropped.
const MAX_FLIGHTS: usize = 10_000;
/// A flight that landed this recently (counted from its start) sends a request that missed the
/// object just before the landing back to the store, rather than upstream again.
const LANDED_RECENTLY_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flying { since: u64 },
    Landed { ok: bool, since: u64 },
}

/// The isolate's flights, by object key. Cheap to clone (one shared table).
#[derive(Debug, Default, Clone)]
pub struct Flights(
    Rc<RefCell<HashMap<String, State>>>,
    Rc<RefCell<Vec<(String, bool)>>>,
);

/// What a request is for an object.
#[derive(Debug)]
pub enum Role {
    /// Fetch it, and store it with this landing.
    Leader(Landing),
    /// Another request is fetching it: wait for its landing.
    Follower,
    /// Another request's flight for it landed a moment ago (after this one looked): look in the
    /// store again.
    Landed,
}

impl Flights {
    /// Joins the flight for `key` at `now` (seconds): the leader when none is flying.
    pub fn join(&self, key: &str, now: u64) -> Role {
        let mut map = self.0.borrow_mut();
        match map.get(key) {
            Some(State::Flying { since }) if now.saturating_sub(*since) < FORGOTTEN_AFTER_SECS => {
                return Role::Follower;
            }
            Some(State::Landed { ok: true, since })
                if now.saturating_sub(*since) < LANDED_RECENTLY_SECS =>
            {
                return Role::Landed;
            }
            _ => {}
        }
        if map.len() >= MAX_FLIGHTS {
            map.retain(|_, s| matches!(s, State::Flying { .. }));
            if map.len() >= MAX_FLIGHTS {
                map.clear();
            }
        }
        map.insert(key.to_string(), State::Flying { since: now });
        Role::Leader(Landing(Some(Rc::new(LandingInner {
            flights: self.clone(),
            key: key.to_string(),
            ok: Cell::new(true),
            since: now,
            remote: Cell::new(false),
        }))))
    }

    /// Waits (bounded by `max_ms`) for the flight of `key` to land: `Some(ok)` when it landed,
    /// `None` when the wait ran out.
    pub async fn wait<P, Fut>(&self, key: &str, pause: P, max_ms: u32) -> Option<bool>
    where
        P: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let look = || match self.0.borrow().get(key).copied() {
            Some(State::Landed { ok, .. }) => Look::Done(ok),
            // Forgotten (the table was pruned): as good as landed; the store says the rest.
            None => Look::Done(false),
            Some(State::Flying { .. }) => Look::Wait,
        };
        look_until(look, pause, FOLLOW, max_ms).await
    }

    fn land(&self, key: &str, ok: bool, since: u64, remote: bool) {
        if let Ok(mut map) = self.0.try_borrow_mut() {
            map.insert(key.to_string(), State::Landed { ok, since });
        }
        if let (true, Ok(mut queue)) = (remote, self.1.try_borrow_mut()) {
            queue.push((key.to_string(), ok));
        }
    }

    /// Flights led for the other isolates that landed since the last call: the platform tells
    /// the coordinator (after the store writes, where it can wait for the answer).
    pub fn take_remote_landings(&self) -> Vec<(String, bool)> {
        self.1
            .try_borrow_mut()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Flights in the air now (for tests and health).
    pub fn flying(&self) -> usize {
        self.0
            .borrow()
            .values()
            .filter(|s| matches!(s, State::Flying { .. }))
            .count()
    }
}

/// A leader's hold on its flight, shared by the store writes it starts: the flight lands when
/// the last clone is dropped, failed if any holder said so.
#[derive(Debug, Clone, Default)]
pub struct Landing(Option<Rc<LandingInner>>);

#[derive(Debug)]
struct LandingInner {
    flights: Flights,
    key: String,
    ok: Cell<bool>,
    /// When the flight started (seconds).
    since: u64,
    /// Led for the other isolates too: its landing is told to the coordinator.
    remote: Cell<bool>,
}

impl Drop for LandingInner {
    fn drop(&mut self) {
        let remote = self.remote.get();
        self.flights
            .land(&self.key, self.ok.get(), self.since, remote);
    }
}

impl Landing {
    /// No flight: a write nobody waits for.
    pub fn none() -> Landing {
        Landing(None)
    }

    /// This flight is led for the other isolates as well (the coordinator said so).
    pub fn lead_remotely(&self) {
        if let Some(inner) = &self.0 {
            inner.remote.set(true);
        }
    }

    /// The write this landing went with did not commit (or the leader stored nothing).
    pub fn failed(&self) {
        if let Some(inner) = &self.0 {
            inner.ok.set(false);
        }
    }
}

/// One object's coordination across isolates (what the `COORDINATOR` Durable Object keeps): a
/// lease for the isolate that fetches it, and when it last landed. Times in ms since the epoch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LeaseBook {
    lease_until: f64,
    landed_at: Option<f64>,
    /// What the leader shared with its landing (a token), handed to askers while it is fresh.
    payload: Option<String>,
}

/// A landing this recent sends other isolates' askers to the store (the same window as inside an
/// isolate); after it, the next asker leads again (the store may have let the object go).
pub const LANDED_FOR_MS: f64 = (LANDED_RECENTLY_SECS * 1000) as f64;

/// The answer to an ask, when there is one yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Fetch it; others are held meanwhile.
    Lead,
    /// It is in the store (read it there), with what the leader shared.
    Landed(Option<String>),
}

impl LeaseBook {
    /// An ask at `now` for a lease of `lease_ms`: `None` while another isolate holds the lease
    /// (ask again shortly).
    pub fn ask(&mut self, now: f64, lease_ms: f64) -> Option<Answer> {
        if self.landed_at.is_some_and(|at| now - at < LANDED_FOR_MS) {
            return Some(Answer::Landed(self.payload.clone()));
        }
        if self.lease_until <= now {
            self.lease_until = now + lease_ms;
            self.landed_at = None;
            self.payload = None;
            return Some(Answer::Lead);
        }
        None
    }

    /// The leader's write landed at `now` (`ok`, sharing `payload`), or it stored nothing: the
    /// lease ends either way.
    pub fn land(&mut self, ok: bool, now: f64, payload: Option<String>) {
        self.lease_until = 0.0;
        self.landed_at = ok.then_some(now);
        self.payload = payload.filter(|_| ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_the_rest_follow_until_it_lands() {
        let f = Flights::default();
        let Role::Leader(landing) = f.join("k", 1000) else {
            panic!("the first is the leader")
        };
        assert!(matches!(f.join("k", 1000), Role::Follower));
        assert!(matches!(f.join("other", 1000), Role::Leader(_)));
        let store_write = landing.clone();
        drop(landing);
        assert_eq!(
            f.flying(),
            1,
            "still flying while a write holds the landing"
        );
        drop(store_write);
        assert_eq!(f.flying(), 0);
        // Missed just before the landing: back to the store, not upstream again.
        assert!(matches!(f.join("k", 1001), Role::Landed));
        let Role::Leader(next) = f.join("k", 1000 + LANDED_RECENTLY_SECS) else {
            panic!("a flight that landed a while ago takes a new leader")
        };
        next.failed();
        drop(next);
        let landed = f.0.borrow().get("k").copied();
        assert_eq!(
            landed,
            Some(State::Landed {
                ok: false,
                since: 1060
            })
        );
        assert!(
            matches!(f.join("k", 1061), Role::Leader(_)),
            "a failed landing takes a new leader at once"
        );
    }

    #[test]
    fn a_flight_whose_leader_vanished_is_forgotten() {
        let f = Flights::default();
        let Role::Leader(landing) = f.join("k", 1000) else {
            panic!()
        };
        std::mem::forget(landing);
        assert!(matches!(
            f.join("k", 1000 + FORGOTTEN_AFTER_SECS - 1),
            Role::Follower
        ));
        assert!(matches!(
            f.join("k", 1000 + FORGOTTEN_AFTER_SECS),
            Role::Leader(_)
        ));
    }

    #[test]
    fn one_isolate_leads_the_others_are_held_until_it_lands() {
        let mut book = LeaseBook::default();
        assert_eq!(book.ask(1_000.0, 5_000.0), Some(Answer::Lead));
        assert_eq!(
            book.ask(1_010.0, 5_000.0),
            None,
            "held while the lease runs"
        );
        book.land(true, 2_000.0, Some("shared".into()));
        assert_eq!(
            book.ask(2_001.0, 5_000.0),
            Some(Answer::Landed(Some("shared".into())))
        );
        assert_eq!(
            book.ask(2_000.0 + LANDED_FOR_MS, 5_000.0),
            Some(Answer::Lead),
            "long after a landing the store may have let it go: fetch again"
        );
        book.land(false, 3_000.0, Some("never handed out".into()));
        assert_eq!(
            book.ask(3_001.0, 5_000.0),
            Some(Answer::Lead),
            "nothing stored: the next leads at once"
        );
        assert_eq!(book.ask(3_002.0, 5_000.0), None);
        assert_eq!(
            book.ask(8_001.0, 5_000.0),
            Some(Answer::Lead),
            "a lease that ran out is taken over"
        );
    }

    #[test]
    fn flights_are_bounded() {
        let f = Flights::default();
        for i in 0..(MAX_FLIGHTS + 10) {
            if let Role::Leader(l) = f.join(&i.to_string(), 1000) {
                drop(l);
            }
        }
        assert!(f.0.borrow().len() <= MAX_FLIGHTS);
    }
}
