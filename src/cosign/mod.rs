//! Image signature policy: cosign key-pair signatures, required per upstream and repository
//! pattern (`verify` in the upstream table) before a manifest is served.
//!
//! - `policy`: the rules as configured (patterns, key secrets, enforce or warn).
//! - `keys`: the PEM public keys, checked at start.
//! - `signature`: cosign's signature manifest, payload and DER signature, read without crypto.
//! - `check`: fetches and verifies one digest's signatures (ECDSA through `Fetcher`'s port).
//! - `verdict`: what was found and what the rule makes of it, as values.
//! - `memory`: positive verdicts kept by digest (isolate and store).
//! - `gate`: the hook in the manifest flow.
//!
//! Signatures attached through the OCI 1.1 referrers API (cosign's experimental
//! `--registry-referrers-mode=oci-1-1`) are not looked at: only the `sha256-<hex>.sig` tag.

pub mod check;
pub mod gate;
pub mod keys;
pub mod memory;
pub mod policy;
pub mod signature;
pub mod verdict;

pub use policy::{Mode, Policy, Rule};
