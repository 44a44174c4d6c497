//! edgemirror: a Docker/OCI registry pull-through mirror for Cloudflare Workers.
//!
//! The registry logic and the front door's decisions are plain Rust on `http` types and run
//! natively under `cargo test`; only `platform` (compiled for wasm32) touches the `worker` crate.

pub mod admin;
pub mod authorization;
pub mod backoff;
pub mod cache_key;
pub mod challenge;
pub mod config;
pub mod cosign;
pub mod digest;
pub mod duration;
pub mod error;
pub mod flights;
pub mod front;
pub mod gate;
pub mod health;
pub mod join;
pub mod landing;
pub mod mirror;
pub mod mirror_auth;
pub mod policy;
pub mod ports;
pub mod prewarm;
pub mod ratelimit;
pub mod reference;
pub mod retry;
pub mod route;
pub mod select;
pub mod stats;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod platform;
