//! The real tower and origin servers: axum HTTP APIs that drive the logic crates'
//! state machines over durable stores and real uplinks.
//!
//! Map: [`tower_node`] / [`origin_node`] (the one task that owns each state machine),
//! [`api`] (routers), [`transport`] (outgoing HTTP), [`cache`] (verified bytes),
//! [`clock`].

pub mod admin;
pub mod api;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod origin_node;
pub mod serve;
pub mod tower_node;
pub mod transport;
