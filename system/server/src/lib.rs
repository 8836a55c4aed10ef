//! The real tower and origin servers: axum HTTP APIs that drive the logic crates'
//! state machines over durable stores and real uplinks.
//!
//! Map: [`tower_node`] / [`origin_node`] (the one task that owns each state machine),
//! [`api`] (routers), [`transport`] (outgoing HTTP), [`encoding`] (zstd on the uplink),
//! [`cache`] (verified bytes), [`slots`] (a tower's fetch slots per uplink, by class),
//! [`listener`] (the accept loop: connection, head and body limits), [`tls`], [`limit`]
//! (rate limits by key), [`clock`], [`auth`] / [`audit`] (admin tokens and the audit
//! trail), [`tower_auth`] (per-tower credentials, the origin's identity on the wire),
//! [`metrics`], [`events`] (the logic's events as a stream for `GET /admin/events`),
//! [`storage`] (storage health: errors, free space, readiness reasons),
//! [`openapi`]; [`device_client`] (the `sovereign device` commands: a device's verified
//! reads and offline outbox against a tower).

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod device_client;
pub mod encoding;
pub mod events;
pub mod limit;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod origin_node;
pub mod serve;
pub mod slots;
pub mod storage;
pub mod tls;
pub mod tower_auth;
pub mod tower_node;
pub mod transport;
