//! How many manifest bytes the isolate reads at once. A manifest fetched on a miss is read whole
//! (up to `policy::MAX_MANIFEST`, 4 MiB) to be hashed: gathered on the JavaScript side as it
//! arrives, then copied into wasm once. Both count against the isolate's 128 MB, and wasm linear
//! memory never shrinks: unbounded, 32 concurrent misses of 4 MiB manifests grew it past 100 MiB.
//! A request reserves its body's declared length (the largest manifest when it declares none)
//! before reading it and gives it back once the bytes are the runtime's again; one that finds no
//! room within the upstream timeout is answered 503 with `Retry-After`.
//!
//! `Budget` is the arithmetic, a plain value. The isolate's one instance lives in a thread local:
//! wasm is single-threaded, and no borrow of it is held across an await.

use std::cell::RefCell;

use crate::backoff::{look_until, Backoff, Look};
use crate::ports::Fetcher;

/// Manifest bytes being read at once, at most: four of the largest manifests.
pub const MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// How often a request waiting for room looks again: after 2 ms, doubling up to every 20 ms.
pub const ROOM: Backoff = Backoff { first: 2, cap: 20 };
/// `Retry-After` (seconds) of the 503 for a request that got no room: a manifest is read in
/// milliseconds once its bytes come, so room is back soon.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A byte budget: `capacity` in all, `held` of it reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    capacity: u64,
    held: u64,
}

impl Budget {
    pub const fn new(capacity: u64) -> Budget {
        Budget { capacity, held: 0 }
    }

    /// Reserves `bytes` if they fit beside what is held. More than the whole capacity never fits.
    pub fn try_reserve(&mut self, bytes: u64) -> bool {
        if bytes > self.capacity - self.held {
            return false;
        }
        self.held += bytes;
        true
    }

    /// Gives back `bytes` reserved before (never below zero, whatever the caller passes).
    pub fn release(&mut self, bytes: u64) {
        self.held = self.held.saturating_sub(bytes);
    }

    pub fn held(&self) -> u64 {
        self.held
    }

    pub fn available(&self) -> u64 {
        self.capacity - self.held
    }
}

thread_local! {
    static MANIFESTS: RefCell<Budget> = const { RefCell::new(Budget::new(MANIFEST_BYTES)) };
}

/// Bytes reserved in the isolate's manifest budget, given back when dropped (on every path: an
/// error, a `?`, a dropped future).
#[derive(Debug)]
#[must_use = "the bytes are given back as soon as the reservation is dropped"]
pub struct Reservation {
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        MANIFESTS.with(|b| b.borrow_mut().release(self.bytes));
    }
}

/// Reserves `bytes` of the isolate's manifest budget now, if they fit.
pub fn try_reserve(bytes: u64) -> Option<Reservation> {
    // Built only when reserved (`then`, not `then_some`): a Reservation that is dropped gives
    // its bytes back.
    MANIFESTS
        .with(|b| b.borrow_mut().try_reserve(bytes))
        .then(|| Reservation { bytes })
}

/// Reserves `bytes`, looking again as `ROOM` says for at most `wait_ms` when they do not fit.
pub async fn reserve<F: Fetcher>(fetcher: &F, bytes: u64, wait_ms: u32) -> Option<Reservation> {
    let look = || match try_reserve(bytes) {
        Some(r) => Look::Done(r),
        None => Look::Wait,
    };
    look_until(look, |ms| fetcher.pause(ms), ROOM, wait_ms).await
}

/// Manifest bytes the isolate holds reserved right now (for tests and diagnostics).
pub fn held() -> u64 {
    MANIFESTS.with(|b| b.borrow().held())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const MIB: u64 = 1024 * 1024;

    /// Reservations (positive) and releases (negative) in order, and what each answers.
    #[rstest]
    #[case::four_fit(&[4, 4, 4, 4], &[true, true, true, true], 16)]
    #[case::the_fifth_waits(&[4, 4, 4, 4, 4], &[true, true, true, true, false], 16)]
    #[case::a_release_makes_room(&[4, 4, 4, 4, -4, 4], &[true, true, true, true, true, true], 16)]
    #[case::small_ones_fill_the_gap(&[4, 4, 4, 3, 2, 1], &[true, true, true, true, false, true], 16)]
    #[case::more_than_everything_never_fits(&[17], &[false], 0)]
    #[case::exactly_everything_fits(&[16, 1], &[true, false], 16)]
    #[case::zero_always_fits(&[16, 0], &[true, true], 16)]
    #[case::over_release_stops_at_zero(&[4, -8, 16], &[true, true, true], 16)]
    fn reservations(#[case] steps: &[i64], #[case] want: &[bool], #[case] held_after: u64) {
        let mut b = Budget::new(16 * MIB);
        let got: Vec<bool> = steps
            .iter()
            .map(|&s| {
                if s >= 0 {
                    b.try_reserve(s as u64 * MIB)
                } else {
                    b.release(s.unsigned_abs() * MIB);
                    true
                }
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(b.held(), held_after * MIB);
        assert_eq!(b.available(), (16 - held_after) * MIB);
    }

    #[test]
    fn a_reservation_gives_its_bytes_back_when_dropped() {
        let start = held();
        let a = try_reserve(MANIFEST_BYTES - start).expect("room for everything left");
        assert!(try_reserve(1).is_none(), "full");
        assert_eq!(
            held(),
            MANIFEST_BYTES,
            "a refused reservation takes nothing back"
        );
        drop(a);
        assert_eq!(held(), start);
        let b = try_reserve(1).expect("room again");
        assert_eq!(held(), start + 1);
        drop(b);
    }
}
