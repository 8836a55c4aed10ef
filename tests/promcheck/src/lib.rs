//! Test support for what Prometheus and Grafana are fed: a strict checker of OpenMetrics
//! text and the metric names a PromQL query selects. The tests of `sovereign-report`
//! (its exports against the dashboards) and `sovereign-cli` (the files the binary writes;
//! a real Prometheus scraping the servers) use it; nothing that ships does.
//!
//! # Layout
//! - [`openmetrics`]: [`openmetrics::check`], HELP/TYPE before samples, names, `_total`
//!   on counters, non-decreasing timestamps and counters per series, `# EOF`; what it saw
//!   ([`openmetrics::OmStats`]).
//! - [`promql`]: [`promql::metric_names`], through a full PromQL parser.
//! - [`dashboards`]: [`dashboards::load`], the Grafana dashboards as JSON.
//!
//! Not covered: Prometheus' own importer and config checks (the tests run promtool when it
//! is installed, and in CI).
#![warn(missing_docs)]

pub mod dashboards;
pub mod openmetrics;
pub mod promql;
