//! edgemirror: a Docker/OCI registry pull-through mirror for Cloudflare Workers.
//!
//! The registry logic is plain Rust on `http` types and runs natively under `cargo test`;
//! only `platform` (compiled for wasm32) touches the `worker` crate.

pub mod error;
pub mod landing;
pub mod reference;
pub mod config;
pub mod ratelimit;
pub mod route;
pub mod select;
pub mod admin;
pub mod cache_key;
pub mod challenge;
pub mod token;
pub mod mirror;
pub mod mirror_auth;
pub mod policy;
pub mod ports;
pub mod prewarm;

#[cfg(target_arch = "wasm32")]
mod platform;
