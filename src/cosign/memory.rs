//! Where positive verdicts are kept, by digest: in the isolate (so a platform manifest fetched a
//! moment after its index finds the index's verdict even before the store's write has landed) and
//! in the store as a note (shared by isolates, kept across restarts). A warm pull thus makes no
//! upstream request for signatures. Negative verdicts are never kept.
//!
//! The key holds the upstream, the repository, the digest and the fingerprint of the rule's keys:
//! a verdict never crosses repositories, and changing the keys has everything checked again.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::verdict::Verdict;
use crate::digest::Digest;
use crate::ports::Store;
use crate::reference::RepoName;

/// Verdicts one isolate remembers (each ~200 bytes): the oldest go first. Looked up by a linear
/// scan (a few microseconds at this size; a map would cost the wasm a hash table of its own).
const REMEMBERED: usize = 1024;

thread_local! {
    // Isolate state, like the manifest budget: wasm is single-threaded and no borrow is held
    // across an await.
    static MEMORY: RefCell<VecDeque<(String, Verdict)>> = const { RefCell::new(VecDeque::new()) };
}

/// The key of a verdict (a URL: notes live in the Cache API).
pub fn key(upstream: &str, name: &RepoName, digest: &Digest, fingerprint: &str) -> String {
    format!(
        "https://edgemirror.cache/v1/{upstream}/{name}/signatures/{}?keys={fingerprint}",
        digest.as_str()
    )
}

/// A kept verdict, from the isolate or else the store.
pub async fn recall<S: Store>(store: &S, key: &str) -> Option<Verdict> {
    if let Some(v) = recall_here(key) {
        return Some(v);
    }
    let v = Verdict::from_note(&store.note(key).await?)?;
    remember_here(key, &v);
    Some(v)
}

/// Keeps a positive verdict for `keep_secs` (negative ones are ignored).
pub fn keep<S: Store>(store: &S, key: &str, verdict: &Verdict, keep_secs: u64) {
    let Some(note) = verdict.to_note() else {
        return;
    };
    remember_here(key, verdict);
    store.put_note(key, &note, keep_secs);
}

/// A verdict this isolate remembers.
pub fn recall_here(key: &str) -> Option<Verdict> {
    MEMORY.with(|m| {
        m.borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
}

/// Remembers a verdict in this isolate only (the store's note is written by `keep`).
pub fn remember_here(key: &str, verdict: &Verdict) {
    if !verdict.is_valid() {
        return;
    }
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        m.retain(|(k, _)| k != key);
        if m.len() >= REMEMBERED {
            m.pop_front();
        }
        m.push_back((key.to_string(), verdict.clone()));
    });
}

/// Forgets what this isolate remembers (tests: a fresh isolate).
pub fn forget_all() {
    MEMORY.with(|m| m.borrow_mut().clear());
}
