//! Getting runs out of the simulator for people and tools: reports (Markdown, HTML with
//! SVG charts, JSON), OpenMetrics for Prometheus/Grafana, Grafana annotations, and JUnit
//! XML for CI. Everything here reads what a run produced (`sovereign_sim`'s report, KPIs
//! and observation stream, sampled as the run goes); nothing here changes a simulation.
//!
//! # Layout
//! - [`series`]: per-tower time series sampled from a run's observations as it goes.
//! - [`data`]: [`RunData`], everything saved about a run (`run.json`); [`record`] runs a
//!   scenario keeping it.
//! - [`sweep`]: [`SweepData`], everything saved about a sweep (`sweep.json`).
//! - [`shards`]: a sweep spread over machines: each shard's record, and their merge.
//! - [`render`]: `report.md`, `report.html` (inline SVG), `summary.json`; [`rebuild`]
//!   renders them again from a directory's saved data.
//! - [`svg`]: the chart primitives.
//! - [`openmetrics`]: the OpenMetrics writer (metric names: [`openmetrics::RUN_METRICS`]).
//! - [`annotations`]: faults and violations as Grafana annotations.
//! - [`junit`]: JUnit XML of a sweep's runs.
//! - [`likelihood`]: how often a failure recurs when its run branches before it (chart,
//!   page, JSON).
//! - [`history`]: a reports folder's run history (`history.jsonl`, `index.html`).
//!
//! Game days feed a [`series::SeriesScan`] from their `World` as it runs, then build a
//! [`RunData`] with [`RunData::build`], then attach a [`data::GamedayData`]; the renderers add its
//! verdict, tolerances and timeline.
//!
//! Not covered: the real servers' `/metrics` endpoint (same names, served over HTTP by
//! the servers); running scenarios or sweeps (`sovereign_sim`, the CLI); checking the
//! OpenMetrics text and the dashboards' PromQL (test support: `sovereign-promcheck`).
//!
//! Determinism: the same data renders the same bytes (no wall clock, no hash-map order;
//! the workspace's clippy rules apply here as in the simulator).
#![warn(missing_docs)]

pub mod annotations;
pub mod data;
pub mod history;
pub mod junit;
pub mod likelihood;
pub mod openmetrics;
pub mod render;
pub mod series;
pub mod shards;
pub mod svg;
pub mod sweep;

pub use data::{RunData, record};
pub use render::{rebuild, write_run, write_sweep};
pub use sweep::SweepData;
