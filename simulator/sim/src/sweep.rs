//! Seed sweeps: which seeds a (sharded) sweep runs, running them, and summing up.
//!
//! Sharding: a sweep over `--seeds N --from S` covers seeds `S, S+1, …, S+N-1`; shard
//! `I/N'` (0-based `I < N'`) takes the seeds whose position `seed - S` satisfies
//! `position % N' == I`. The shards `0/N' … (N'-1)/N'` partition the range, so N' CI
//! machines can split one sweep without overlap or gaps.
//!
//! Map:
//! - [`Shard`]: `I/N` parsed from the command line; [`Shard::seeds`].
//! - [`sweep_seeds`]: run one scenario over seeds, sequentially, results sorted by seed.
//! - [`SweepOutcome`]: the compact result of one run kept by a sweep (the full report
//!   only for failures, so big sweeps stay small in memory).
//! - [`worst_exit_code`]: which of several runs' exit codes a sweep ends with (totals and
//!   their line: `sovereign_report::shards`, one rule for a sweep and a merge of shards).
//!
//! Not covered: threads (this crate has none — the CLI runs seeds in parallel worker
//! threads, each run single-threaded and independent, and sorts the outcomes so its
//! output does not depend on the thread count), writing files, JUnit (see
//! `sovereign_report::junit`).

use crate::plant::Plant;
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::world::RunOptions;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Most shards a sweep may be split into.
pub const SHARDS_MAX: u64 = 1 << 20;

/// One shard of a sweep: `index` of `count`, 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// The whole sweep as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether the seed at `position` (from the sweep's first seed) is in this shard.
    pub fn contains(&self, position: u64) -> bool {
        position % self.count == self.index
    }

    /// The seeds of this shard among `from, from+1, …, from+seeds-1`, ascending. The range
    /// stops at `u64::MAX` rather than wrapping.
    pub fn seeds(&self, from: u64, seeds: u64) -> impl Iterator<Item = u64> + use<> {
        // `count` is at least 1 (`FromStr`, `from_engine`); 1 for a shard built by hand
        // with 0.
        let step = usize::try_from(self.count.max(1)).unwrap_or(usize::MAX);
        (self.index..seeds)
            .step_by(step)
            .map_while(move |p| from.checked_add(p))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The variables cluster engines set on each task of an array or indexed job, read by
/// [`Shard::from_engine`] in this order: (index variable, count variable if the engine
/// sets one). Kubernetes Indexed Jobs and Nomad give only an index; the count comes
/// from `--shards`.
pub const ENGINE_INDEX_VARS: [(&str, Option<&str>); 3] = [
    ("SLURM_ARRAY_TASK_ID", Some("SLURM_ARRAY_TASK_COUNT")),
    ("JOB_COMPLETION_INDEX", None),
    ("NOMAD_ALLOC_INDEX", None),
];

/// Every variable [`Shard::from_engine`] reads (tests clear them, so that a test run as a
/// cluster task is not taken for a shard).
pub const ENGINE_VARS: [&str; 7] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "NOMAD_ALLOC_INDEX",
];

/// Why a shard could not be taken from the environment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineShardError {
    /// A variable is set but is not a number.
    #[error("{var}={value:?}: expected a whole number")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// An index variable is set, and neither the engine nor `--shards` gives the count.
    #[error(
        "{var} is set but the shard count is not: pass --shards N (the job's completions or count)"
    )]
    NoCount {
        /// The index variable.
        var: &'static str,
    },
    /// A Slurm array whose task ids are not evenly spaced from its first (`--array=0,5,9`):
    /// its task count and index do not make shards.
    #[error(
        "SLURM_ARRAY_TASK_ID={id} in an array from {min} to {max:?} by {step} of {count} tasks: not evenly spaced; pass --shards N with an array numbered 0..N-1"
    )]
    Sparse {
        /// The task's id.
        id: u64,
        /// The array's first id.
        min: u64,
        /// The array's last id, if set.
        max: Option<u64>,
        /// The step.
        step: u64,
        /// The task count.
        count: u64,
    },
    /// `--shards N` without an index.
    #[error(
        "--shards {0} needs an index: --shard I/N, or run under an engine that sets one of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, NOMAD_ALLOC_INDEX"
    )]
    NoIndex(u64),
    /// The index and count do not make a shard.
    #[error("shard {index} of {count} from {var}: expected 0 <= index < count <= {SHARDS_MAX}")]
    OutOfRange {
        /// The index variable.
        var: &'static str,
        /// The index (0-based, after Slurm's first id and step are taken off).
        index: u64,
        /// The count.
        count: u64,
    },
}

impl Shard {
    /// The shard a cluster engine's task is, from its variables (`var` looks one up): a
    /// Slurm job array, a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`) or a Nomad
    /// allocation (`NOMAD_ALLOC_INDEX`). `shards` (`--shards`) gives the count; then the
    /// index is the task's own (a Slurm array numbered `0..N-1`, so that
    /// `sbatch --array=7` reruns shard 7). A Slurm array without `--shards` is its own
    /// sweep: `SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, divided by
    /// `SLURM_ARRAY_TASK_STEP`, of `SLURM_ARRAY_TASK_COUNT`, refused unless the ids are
    /// evenly spaced. `Ok(None)`: no engine variable is set (the whole sweep, unless
    /// `--shards` asks for a shard). With the shard, the variable it came from.
    pub fn from_engine(
        var: impl Fn(&str) -> Option<String>,
        shards: Option<u64>,
    ) -> Result<Option<(Shard, &'static str)>, EngineShardError> {
        let number = |name: &'static str| -> Result<Option<u64>, EngineShardError> {
            match var(name) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| EngineShardError::NotANumber { var: name, value }),
            }
        };
        for (index_var, count_var) in ENGINE_INDEX_VARS {
            let Some(mut index) = number(index_var)? else {
                continue;
            };
            let mut count = shards;
            if let (Some(count_var), None) = (count_var, shards) {
                // A Slurm array, numbered its own way.
                let id = index;
                let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let max = number("SLURM_ARRAY_TASK_MAX")?;
                let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                let tasks = number(count_var)?;
                let spaced = id >= min
                    && (id - min) % step == 0
                    && match (max, tasks) {
                        (Some(max), Some(n)) => {
                            n.checked_sub(1)
                                .and_then(|k| k.checked_mul(step))
                                .and_then(|span| min.checked_add(span))
                                == Some(max)
                        }
                        _ => true,
                    };
                if !spaced {
                    return Err(EngineShardError::Sparse {
                        id,
                        min,
                        max,
                        step,
                        count: tasks.unwrap_or(0),
                    });
                }
                index = (id - min) / step;
                count = tasks;
            }
            let Some(count) = count else {
                return Err(EngineShardError::NoCount { var: index_var });
            };
            if count == 0 || count > SHARDS_MAX || index >= count {
                return Err(EngineShardError::OutOfRange {
                    var: index_var,
                    index,
                    count,
                });
            }
            return Ok(Some((Shard { index, count }, index_var)));
        }
        match shards {
            Some(n) => Err(EngineShardError::NoIndex(n)),
            None => Ok(None),
        }
    }
}

/// A shard that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad shard {0:?}: expected I/N with 0 <= I < N <= {SHARDS_MAX}, e.g. 0/4")]
pub struct BadShard(pub String);

impl FromStr for Shard {
    type Err = BadShard;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > SHARDS_MAX || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Run `scenario` once per seed with `plant`, sequentially; reports sorted by seed
/// (duplicates kept).
pub fn sweep_seeds(
    scenario: &Scenario,
    seeds: impl IntoIterator<Item = u64>,
    plant: Option<Plant>,
    run: impl Fn(&Scenario, &RunOptions) -> RunReport,
) -> Vec<RunReport> {
    let mut reports: Vec<RunReport> = seeds
        .into_iter()
        .map(|seed| run(scenario, &run_options(seed, plant)))
        .collect();
    reports.sort_by_key(|r| r.seed);
    reports
}

/// The options of one sweep run: the seed and the plant, no trace, the scenario's own
/// faults and nemesis.
pub fn run_options(seed: u64, plant: Option<Plant>) -> RunOptions {
    RunOptions {
        seed,
        plant,
        record_trace: false,
        schedule: None,
        branches: Vec::new(),
    }
}

/// What a run of (scenario, seed) runs, besides the scenario as written: its swarm
/// variant for the seed ([`crate::swarm`]) and/or its fault sites inside the drivers
/// (`buggify`). Sweeps, hunts and `sim run` share it, so a seed reruns the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Strategy {
    /// Run the scenario's swarm variant for the seed.
    pub swarm: bool,
    /// Switch the scenario's fault sites on (`buggify = true`).
    pub buggify: bool,
}

impl Strategy {
    /// The scenario as written.
    pub const UNIFORM: Strategy = Strategy {
        swarm: false,
        buggify: false,
    };
    /// Swarm variants only.
    pub const SWARM: Strategy = Strategy {
        swarm: true,
        buggify: false,
    };

    /// As tables, JSON and headers name it: `uniform`, `swarm`, `buggify`,
    /// `swarm+buggify`.
    pub const fn name(self) -> &'static str {
        match (self.swarm, self.buggify) {
            (false, false) => "uniform",
            (true, false) => "swarm",
            (false, true) => "buggify",
            (true, true) => "swarm+buggify",
        }
    }

    /// The flags that ask for it on the command line (empty, or ` --swarm`, ...).
    pub fn flags(self) -> String {
        let mut f = String::new();
        if self.swarm {
            f.push_str(" --swarm");
        }
        if self.buggify {
            f.push_str(" --buggify");
        }
        f
    }

    /// What run (`scenario`, `seed`) runs.
    pub fn scenario(self, scenario: &Scenario, seed: u64) -> Cow<'_, Scenario> {
        if !self.swarm && (!self.buggify || scenario.buggify) {
            return Cow::Borrowed(scenario);
        }
        let mut s = if self.swarm {
            crate::swarm::swarm(scenario, seed).scenario
        } else {
            scenario.clone()
        };
        s.buggify |= self.buggify;
        Cow::Owned(s)
    }
}

/// What a sweep keeps of one run.
#[derive(Clone, Debug)]
pub struct SweepOutcome {
    /// Index of the scenario in the sweep's list.
    pub scenario_index: usize,
    /// The seed.
    pub seed: u64,
    /// The run's exit code.
    pub exit_code: u8,
    /// The full report, kept only when the run failed (exit code ≠ 0).
    pub failure: Option<RunReport>,
    /// The rare moments the run reached (for the sweep's coverage).
    pub reached: Vec<crate::world::Sometimes>,
}

impl SweepOutcome {
    /// Keep what a sweep needs of `report`.
    pub fn from_report(scenario_index: usize, report: RunReport) -> SweepOutcome {
        let exit_code = report.exit_code();
        SweepOutcome {
            scenario_index,
            seed: report.seed,
            exit_code,
            reached: report.sometimes.iter().map(|(m, _)| *m).collect(),
            failure: (exit_code != 0).then_some(report),
        }
    }
}

/// Sort outcomes by (scenario, seed): the order a sweep prints and writes them in,
/// whatever the thread count.
pub fn sort_outcomes(outcomes: &mut [SweepOutcome]) {
    outcomes.sort_by_key(|o| (o.scenario_index, o.seed));
}

/// The priority of an exit code when combining runs: 1 (safety) over 3 (liveness) over
/// 4 (SLO) over 0. Any other code (not a run's) ranks above all.
pub fn exit_code_rank(code: u8) -> u8 {
    match code {
        0 => 0,
        4 => 1,
        3 => 2,
        1 => 3,
        _ => 4,
    }
}

/// The worst exit code of several runs (0 for none).
pub fn worst_exit_code(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes
        .into_iter()
        .max_by_key(|&c| exit_code_rank(c))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::{report, scenario};
    use crate::kpi::SloCheck;
    use crate::report::Violation;
    use crate::scenario::Oracle;
    use proptest::prelude::*;
    use sovereign_logic::Time;
    use std::collections::BTreeMap;

    fn fake(_: &Scenario, o: &RunOptions) -> RunReport {
        let mut r = report(o.seed, Vec::new(), Vec::new());
        r.plant = o.plant;
        match o.seed % 5 {
            1 => r.violations.push(Violation {
                oracle: Oracle::Integrity,
                at: Time::ZERO,
                detail: "x".into(),
                liveness: false,
            }),
            2 => r.violations.push(Violation {
                oracle: Oracle::Convergence,
                at: Time::ZERO,
                detail: "y".into(),
                liveness: true,
            }),
            3 => r.slo.push(SloCheck {
                name: "availability >= 0.99".into(),
                pass: false,
                measured: "0.5".into(),
            }),
            _ => {}
        }
        r
    }

    #[test]
    fn shard_parsing_rejects_out_of_range() {
        // Goal: I/N parses for 0 <= I < N only.
        assert_eq!("1/4".parse(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["3/2", "2/2", "0/0", "x/2", "1", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_shard_comes_from_the_engine_running_it() {
        // Goal: each engine's variables give the same 0-based shard; Slurm's first id
        // and step are taken off; the count comes from the engine or --shards.
        let shard = |index, count| Shard { index, count };
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::from_engine(env(&slurm), None),
            Ok(Some((shard(2, 4), "SLURM_ARRAY_TASK_ID")))
        );
        assert_eq!(
            Shard::from_engine(env(&[("JOB_COMPLETION_INDEX", "3")]), Some(8)),
            Ok(Some((shard(3, 8), "JOB_COMPLETION_INDEX")))
        );
        assert_eq!(
            Shard::from_engine(env(&[("NOMAD_ALLOC_INDEX", "0")]), Some(2)),
            Ok(Some((shard(0, 2), "NOMAD_ALLOC_INDEX")))
        );
        assert_eq!(Shard::from_engine(env(&[]), None), Ok(None));
        // With --shards, a Slurm task is the shard its id names: `sbatch --array=7`
        // (an array of one, from 7) reruns shard 7 of 100, not a sweep of its own.
        let rerun = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "7"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ];
        assert_eq!(
            Shard::from_engine(env(&rerun), Some(100)),
            Ok(Some((shard(7, 100), "SLURM_ARRAY_TASK_ID")))
        );
    }

    #[test]
    fn an_engine_shard_that_cannot_be_right_is_refused() {
        // Goal: a missing count, a count that disagrees, an index past the count, a
        // non-number and --shards without an index are errors, never a guess.
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Vars, Option<u64>, &str); 6] = [
            (&[("JOB_COMPLETION_INDEX", "3")], None, "--shards N"),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "5"),
                    ("SLURM_ARRAY_TASK_MIN", "0"),
                    ("SLURM_ARRAY_TASK_MAX", "9"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ],
                None,
                "not evenly spaced",
            ),
            (&[("NOMAD_ALLOC_INDEX", "4")], Some(4), "shard 4 of 4"),
            (
                &[("NOMAD_ALLOC_INDEX", "x")],
                Some(4),
                "NOMAD_ALLOC_INDEX=\"x\"",
            ),
            (&[], Some(4), "--shards 4 needs an index"),
            (&[("JOB_COMPLETION_INDEX", "0")], Some(0), "shard 0 of 0"),
        ];
        for (vars, shards, want) in cases {
            let err = Shard::from_engine(env(vars), shards).expect_err(want);
            assert!(err.to_string().contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn shard_takes_positions_modulo_count() {
        // Goal: shard I/N takes the seeds whose position % N == I.
        let s = Shard { index: 1, count: 3 };
        assert_eq!(s.seeds(100, 8).collect::<Vec<_>>(), vec![101, 104, 107]);
        assert_eq!(
            Shard::WHOLE.seeds(u64::MAX - 1, 5).collect::<Vec<_>>(),
            vec![u64::MAX - 1, u64::MAX]
        );
    }

    #[test]
    fn sweep_sorts_by_seed_and_passes_plant() {
        // Goal: results come back sorted by seed whatever the input order.
        let sc = scenario(1, Vec::new());
        let reports = sweep_seeds(&sc, [9, 3, 5], Some(Plant::NoFailback), fake);
        let seeds: Vec<u64> = reports.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, vec![3, 5, 9]);
        assert!(reports.iter().all(|r| r.plant == Some(Plant::NoFailback)));
    }

    #[test]
    fn outcomes_keep_failures_and_the_worst_exit_code_wins() {
        // Goal: a run's outcome keeps its report only when it failed, and the
        // exit-code priority is 1 > 3 > 4 > 0.
        let sc = scenario(1, Vec::new());
        let mut outcomes: Vec<SweepOutcome> = sweep_seeds(&sc, 0..10, None, fake)
            .into_iter()
            .map(|r| SweepOutcome::from_report(0, r))
            .collect();
        sort_outcomes(&mut outcomes);
        assert!(outcomes[0].failure.is_none());
        let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
        assert_eq!(failed, 6);
        assert_eq!(worst_exit_code(outcomes.iter().map(|o| o.exit_code)), 1);
        assert_eq!(worst_exit_code([0, 4, 3]), 3);
        assert_eq!(worst_exit_code([4, 0]), 4);
        assert_eq!(worst_exit_code([3, 1, 4]), 1);
        assert_eq!(worst_exit_code([]), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Goal: the shards 0/N … N-1/N partition the seed range.
        #[test]
        fn shards_partition_the_range(from in 0u64..1000, seeds in 0u64..200, count in 1u64..9) {
            let mut all: Vec<u64> = (0..count)
                .flat_map(|index| Shard { index, count }.seeds(from, seeds).collect::<Vec<_>>())
                .collect();
            all.sort_unstable();
            prop_assert_eq!(all, (from..from + seeds).collect::<Vec<_>>());
        }
    }
}
