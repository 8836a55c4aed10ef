//! The real tower and origin servers: axum HTTP APIs that drive the logic crates'
//! state machines over durable stores and real uplinks.

pub mod audit;
pub mod auth;
pub mod metrics;
pub mod openapi;
