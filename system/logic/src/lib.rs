//! Sovereign's system logic: deterministic, I/O-free state machines (sans-IO).
//!
//! Every part of the system that makes a decision lives here: content and delta sync,
//! the origin, the tower (sync supervisor, integrity, device outbox, power manager, cache
//! warmer, event gateway), devices and the ledger. Nothing here reads a clock, draws OS
//! randomness, spawns a thread, or iterates an unordered hash map (clippy enforces it,
//! see `clippy.toml`). Two drivers run this same code: the real servers (tokio, axum,
//! SQLite, the wall clock) and the simulator (virtual time, one seed).
//!
//! # Layout
//! - [`time`], [`entropy`]: time and randomness as inputs.
//! - [`content`]: priorities, chunks (FastCDC + SHA-256), manifests, delta.
//! - [`protocol`]: ids, links, operations and the messages between nodes.
//! - [`io`]: the boundary — actions out, durable records, events.
//! - [`ledger`]: money in integer minor units, split 50/30/20, conserved.
//! - [`origin`]: publishes versions, serves manifests and chunks, applies operations once.
//! - [`tower`]: the tower state machine and its parts.
//! - [`device`]: a device's offline outbox and reads.
//! - [`backoff`]: exponential backoff with jitter, shared by towers and devices.
//! - `harness` (tests only): passes messages between nodes by hand, quinn-proto style.
//!
//! Not covered: sockets, files, HTTP, SQL — the drivers' business.
#![warn(missing_docs)]

pub mod backoff;
pub mod content;
pub mod device;
pub mod entropy;
pub mod io;
pub mod ledger;
pub mod origin;
pub mod protocol;
pub mod time;
pub mod tower;

#[cfg(test)]
mod harness;

pub use entropy::Entropy;
pub use time::Time;
