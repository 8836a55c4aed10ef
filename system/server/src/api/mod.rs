//! The HTTP APIs (axum routers): the tower's device API, the origin's tower-facing API,
//! and what they share.

pub mod common;
pub mod origin;
pub mod tower;
