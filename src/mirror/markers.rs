//! The repository markers this isolate wrote (the store's "something of this repository is held"
//! note, `cache_key::repository_held`). A pull stores several manifests of one repository (an
//! index, then each platform's), and each used to write the same marker again: one store write
//! per manifest for nothing. The marker is written once, then again only after `REWRITE_SECS`
//! (the store may have let it go). A marker missing from the store costs a tag `GET` where a
//! `HEAD` would have done, never a wrong answer.
//!
//! `Written` is the bookkeeping, a plain value; the isolate's one instance lives in a thread
//! local (wasm is single-threaded).

use std::cell::RefCell;
use std::collections::HashMap;

/// How long a marker this isolate wrote is taken as still in the store.
pub const REWRITE_SECS: u64 = 3600;
/// Markers remembered at most: past it, those older than `REWRITE_SECS` go, then all.
pub const MAX_MARKERS: usize = 512;

/// When each marker was last written (seconds).
#[derive(Debug, Default)]
pub struct Written(HashMap<String, u64>);

impl Written {
    /// Whether `key` is to be written at `now`: not when this isolate wrote it less than
    /// `REWRITE_SECS` ago. A `true` counts as written.
    pub fn due(&mut self, key: &str, now: u64) -> bool {
        if let Some(at) = self.0.get(key) {
            if now.saturating_sub(*at) < REWRITE_SECS {
                return false;
            }
        }
        if self.0.len() >= MAX_MARKERS && !self.0.contains_key(key) {
            self.0
                .retain(|_, at| now.saturating_sub(*at) < REWRITE_SECS);
            if self.0.len() >= MAX_MARKERS {
                self.0.clear();
            }
        }
        self.0.insert(key.to_string(), now);
        true
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

thread_local! {
    static WRITTEN: RefCell<Written> = RefCell::new(Written::default());
}

/// `Written::due` on the isolate's markers.
pub fn due(key: &str, now: u64) -> bool {
    WRITTEN.with(|w| w.borrow_mut().due(key, now))
}

/// Forgets every marker (a fresh isolate, for tests).
pub fn clear() {
    WRITTEN.with(|w| *w.borrow_mut() = Written::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// (key, now) steps and whether each is due.
    #[rstest]
    #[case::once(&[("a", 0), ("a", 1), ("a", REWRITE_SECS - 1)], &[true, false, false])]
    #[case::again_after_the_window(&[("a", 0), ("a", REWRITE_SECS)], &[true, true])]
    #[case::per_key(&[("a", 0), ("b", 0), ("a", 5)], &[true, true, false])]
    #[case::clock_backwards(&[("a", 100), ("a", 50)], &[true, false])]
    fn markers_are_due_once_per_window(#[case] steps: &[(&str, u64)], #[case] want: &[bool]) {
        let mut w = Written::default();
        let got: Vec<bool> = steps.iter().map(|(k, t)| w.due(k, *t)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut w = Written::default();
        for i in 0..MAX_MARKERS * 3 {
            assert!(w.due(&format!("k{i}"), 10));
            assert!(w.len() <= MAX_MARKERS);
        }
        // Old entries go first: a table full of stale markers keeps the new one only.
        let mut w = Written::default();
        for i in 0..MAX_MARKERS {
            w.due(&format!("old{i}"), 0);
        }
        assert!(w.due("new", REWRITE_SECS + 1));
        assert_eq!(w.len(), 1);
        assert!(!w.due("new", REWRITE_SECS + 2));
    }
}
