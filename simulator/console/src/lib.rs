//! Sovereign's game-day console: a terminal UI on a live simulation, game-day plans, and
//! the lessons-learned report they end with.
//!
//! # Map
//! - [`source`]: the data-source seam ([`source::Source`]) and the simulator's
//!   implementation ([`source::SimSource`]); a later issue attaches real processes.
//! - [`live`]: KPIs and the event log folded incrementally from observations.
//! - [`app`]: the console's state and what each key does.
//! - [`ui`]: drawing (`impl Widget for &App`).
//! - [`driver`]: the terminal loop, the only module that reads the wall clock.
//! - [`plan`]: `gamedays/*.toml` → [`plan::Plan`], with file/line/field errors.
//! - [`gameday`]: running a plan (steps, aborts, rollback), headless or in the console.
//! - [`report`]: `lessons-learned.md` and the replay file.
//!
//! Not covered: the command line (the `sovereign` binary wires `console` and `gameday`),
//! the simulator itself (`sovereign-sim`).
#![warn(missing_docs)]

pub mod app;
pub mod driver;
pub mod gameday;
pub mod lab;
pub mod live;
pub mod plan;
pub mod report;
pub mod source;
pub mod ui;

pub use app::App;
pub use gameday::{GameDay, Outcome, run_headless};
pub use lab::LabSource;
pub use plan::{Plan, PlanError};
pub use source::{SimSource, Source, SourceError};
