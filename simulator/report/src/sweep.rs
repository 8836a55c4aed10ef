//! The saved data of a sweep ([`SweepData`], `sweep.json`): runs, failures by oracle,
//! the planted bug's catch rate, and each failure with its replay command and shrunk
//! scenario.
//!
//! Map: [`SweepData`], [`SweepFailure`]; [`SweepData::shrunk_next_to`] finds a
//! `.shrunk.toml` beside a failure file.
//!
//! Not covered: running the sweep (the CLI), rendering (see `render.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the `sweep.json` layout.
pub const SWEEP_DATA_FORMAT: u32 = 1;
/// Most failures listed one by one in a sweep's data (the counts stay exact).
pub const SWEEP_FAILURES_LISTED_MAX: usize = 1_000;

/// One failing run of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepFailure {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Exit code (1 safety, 3 liveness, 4 SLO; 1 also for a simulator panic).
    pub exit_code: u8,
    /// The first violated oracle (`slo` when only SLOs were missed, `panic`).
    pub oracle: String,
    /// What, in one line.
    pub detail: String,
    /// The failure file, if one was written.
    pub failure_file: Option<String>,
    /// The command that reproduces it.
    pub replay: String,
    /// A shrunk scenario next to the failure file, if there is one.
    pub shrunk: Option<String>,
}

/// Everything saved about one sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepData {
    /// [`SWEEP_DATA_FORMAT`].
    pub format: u32,
    /// Scenario names swept.
    pub scenarios: Vec<String>,
    /// The first seed.
    pub from: u64,
    /// Seeds per scenario.
    pub seeds: u64,
    /// The shard (`i/n`).
    pub shard: String,
    /// The planted bug's name, if any.
    pub plant: Option<String>,
    /// The oracle the planted bug should trip.
    pub plant_oracle: Option<String>,
    /// The build.
    pub build: String,
    /// Runs done.
    pub runs: u64,
    /// Failing runs.
    pub failures: u64,
    /// Failing runs by first violated oracle (`slo`, `panic` too).
    pub failures_by_oracle: BTreeMap<String, u64>,
    /// Share of runs in which the planted bug's oracle fired (`None` without a plant).
    pub plant_catch_ratio: Option<f64>,
    /// Wall-clock seconds the sweep took (not deterministic; reports only).
    pub wall_s: f64,
    /// The sweep's exit code.
    pub exit_code: u8,
    /// Failures, up to [`SWEEP_FAILURES_LISTED_MAX`].
    pub failure_list: Vec<SweepFailure>,
    /// The rare moments (`sovereign_sim::Sometimes`) and how many runs reached each, in
    /// the simulator's order, unreached ones too (empty in data saved before it).
    #[serde(default)]
    pub sometimes: Vec<(String, u64)>,
}

impl SweepData {
    /// The shrunk scenario `<stem>.shrunk.toml` next to `failure` (as `sim shrink`
    /// writes it), if it exists.
    pub fn shrunk_next_to(failure: &Path) -> Option<PathBuf> {
        let name = failure.file_name()?.to_string_lossy().to_string();
        let stem = name
            .strip_suffix(".failure.toml")
            .or_else(|| name.strip_suffix(".toml"))
            .unwrap_or(&name);
        let p = failure.with_file_name(format!("{stem}.shrunk.toml"));
        p.is_file().then_some(p)
    }
}
