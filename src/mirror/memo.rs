//! Manifests the isolate keeps in memory, beside the store: a warm GET or HEAD of a hot tag or
//! digest is then answered without a store lookup. An isolate serves many requests, and a pull
//! asks for the same few manifests again and again (the tag, then its index's platform).
//!
//! What is kept is what the store holds and nothing more: bytes verified against their digest
//! (on the miss that fetched them, or when read from the store), under the store's own keys, for
//! requests the shared store serves (never with a client's own credentials). A tag is served from
//! memory only while its record is fresh, by the same rule as the store's record; past its TTL the
//! request goes the store's way (revalidation, stale-if-error), and what that writes replaces the
//! entry. Bounded: `capacity` bytes in all (keys and bytes counted), `ENTRY_MAX` per manifest; the
//! least recently used go first.
//!
//! `Memo` is the bookkeeping, a plain value. The isolate's one instance lives in a thread local:
//! wasm is single-threaded, and no borrow of it is held across an await.

use std::cell::RefCell;
use std::rc::Rc;

use crate::ports::TagRecord;

/// The largest manifest kept in memory: an image manifest or an index of many platforms is a few
/// KiB; larger ones are rare and stay in the store.
pub const ENTRY_MAX: u64 = 256 * 1024;
/// Bytes kept per isolate by default (`MANIFEST_MEMORY`): about a thousand typical manifests.
pub const DEFAULT_CAPACITY: u64 = 4 * 1024 * 1024;
/// The most `MANIFEST_MEMORY` may ask for: an eighth of the isolate's 128 MB.
pub const MAX_CAPACITY: u64 = 16 * 1024 * 1024;
/// What an entry costs beside its key and bytes (the record, its slot).
const OVERHEAD: u64 = 128;
/// Entries kept at most, whatever their size: a lookup scans them (by a hash of the key first).
pub const MAX_ENTRIES: usize = 1024;

/// A kept manifest: its record (for a tag, `stored_at` says how fresh; for a digest it is unused)
/// and, for a GET, its bytes. A tag seen only by `HEAD` has no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub record: TagRecord,
    pub bytes: Option<Rc<[u8]>>,
}

impl Kept {
    fn cost(&self, key: &str) -> u64 {
        let bytes = self.bytes.as_ref().map_or(0, |b| b.len() as u64);
        key.len() as u64
            + self.record.digest.len() as u64
            + self.record.media_type.len() as u64
            + bytes
            + OVERHEAD
    }
}

/// One entry: its key (and the key's hash, compared first), the tick of its last use, what is kept.
#[derive(Debug)]
struct Entry {
    hash: u64,
    key: String,
    used: u64,
    kept: Kept,
}

/// Entries within `capacity` bytes and `MAX_ENTRIES`. A list, not a map: at this size a scan of
/// the hashes takes a microsecond, and a map of its own would cost the worker kilobytes.
#[derive(Debug, Default)]
pub struct Memo {
    capacity: u64,
    used: u64,
    tick: u64,
    entries: Vec<Entry>,
}

/// FNV-1a: a cheap hash to skip keys that differ (they share long prefixes).
fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Memo {
    pub fn new(capacity: u64) -> Memo {
        Memo {
            capacity,
            ..Memo::default()
        }
    }

    /// Sets the capacity (at most `MAX_CAPACITY`), letting the oldest go until what is kept fits.
    pub fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity.min(MAX_CAPACITY);
        self.shrink_to(self.capacity, MAX_ENTRIES);
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes counted against the capacity.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &str) -> Option<usize> {
        let h = hash(key);
        self.entries
            .iter()
            .position(|e| e.hash == h && e.key == key)
    }

    /// The entry for `key`, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<Kept> {
        let i = self.find(key)?;
        self.tick += 1;
        let e = &mut self.entries[i];
        e.used = self.tick;
        Some(e.kept.clone())
    }

    /// Keeps `kept` under `key`, replacing what was there. Bytes over `ENTRY_MAX`, or an entry
    /// larger than the whole capacity, are not kept (and the old entry is let go: it is stale).
    pub fn put(&mut self, key: &str, kept: Kept) {
        self.remove(key);
        let cost = kept.cost(key);
        let too_big = kept
            .bytes
            .as_ref()
            .is_some_and(|b| b.len() as u64 > ENTRY_MAX);
        if too_big || cost > self.capacity {
            return;
        }
        self.shrink_to(self.capacity - cost, MAX_ENTRIES - 1);
        self.tick += 1;
        self.used += cost;
        self.entries.push(Entry {
            hash: hash(key),
            key: key.to_string(),
            used: self.tick,
            kept,
        });
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.find(key) {
            self.drop_at(i);
        }
    }

    fn drop_at(&mut self, i: usize) {
        let e = self.entries.swap_remove(i);
        self.used -= e.kept.cost(&e.key);
    }

    /// Lets the least recently used go until at most `limit` bytes and `count` entries are kept.
    fn shrink_to(&mut self, limit: u64, count: usize) {
        while self.used > limit || self.entries.len() > count {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => self.drop_at(i),
                None => {
                    self.used = 0;
                    return;
                }
            }
        }
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::new(DEFAULT_CAPACITY));
}

/// Sets the isolate's capacity from the configuration (a no-op when unchanged).
pub fn configure(capacity: u64) {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.capacity() != capacity.min(MAX_CAPACITY) {
            m.set_capacity(capacity);
        }
    });
}

/// Whether the isolate keeps manifests at all (`MANIFEST_MEMORY` is not 0).
pub fn enabled() -> bool {
    MEMO.with(|m| m.borrow().capacity() > 0)
}

/// What the isolate keeps under `key`.
pub fn recall(key: &str) -> Option<Kept> {
    MEMO.with(|m| m.borrow_mut().get(key))
}

/// Keeps `kept` under `key` in the isolate.
pub fn keep(key: &str, kept: Kept) {
    MEMO.with(|m| m.borrow_mut().put(key, kept));
}

/// Lets the entry under `key` go.
pub fn forget(key: &str) {
    MEMO.with(|m| m.borrow_mut().remove(key));
}

/// Lets everything go (a fresh isolate's memory; for tests that start a new world).
pub fn clear() {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let capacity = m.capacity();
        *m = Memo::new(capacity);
    });
}

/// Bytes the isolate keeps (for `/healthz`).
pub fn used() -> u64 {
    MEMO.with(|m| m.borrow().used())
}
