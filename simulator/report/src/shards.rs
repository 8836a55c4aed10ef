//! A sweep spread over machines: what each shard records ([`ShardRecord`],
//! `shard-<i>-of-<n>.json`) and the merge of a sweep's records into one result
//! ([`merge`], [`Merged`]): one JUnit, one summary, one `sweep.json`, and the shards
//! that are missing.
//!
//! A shard records every failing seed in full (scenario, seed, oracle, detail, replay
//! command, JUnit text) and, for the passing ones, only its seed range and each run's
//! wall time: the seeds of shard `i/n` follow from the sweep's `from` and `seeds`
//! ([`Shard::seeds`]), so a merge can list every run without a line per pass.
//!
//! Map: [`ShardRecord`], [`ShardScenario`], [`ShardFailure`]; [`merge`] checks that the
//! records are of one sweep (build, scenarios and their digests, seed range, shard
//! count, plant) and finds missing and repeated shards; [`Merged::cases`] (JUnit),
//! [`Merged::sweep_data`] (`sweep.json`, the report), [`Merged::summary_line`].
//!
//! Not covered: running a shard or reading files (the CLI's `sim sweep --records` and
//! `sim merge`).

use crate::junit::{CaseFailure, TestCase};
use crate::sweep::{SWEEP_DATA_FORMAT, SWEEP_FAILURES_LISTED_MAX, SweepData, SweepFailure};
use serde::{Deserialize, Serialize};
use sovereign_sim::sweep::{SHARDS_MAX, Shard, worst_exit_code};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Version of the shard record layout.
pub const SHARD_RECORD_FORMAT: u32 = 1;
/// Exit code of a merge that lacks shards: its verdict covers only part of the sweep.
pub const EXIT_INCOMPLETE: u8 = 2;
/// Most runs one record, or one merge, may hold (a sweep's own limit).
pub const MERGE_RUNS_MAX: u64 = 100_000_000;
/// Longest run or shard a record may claim, in seconds (a year).
const SECONDS_MAX: f64 = 365.0 * 86_400.0;

/// A wall time read from a record: absent, or a number of seconds a run can take.
fn check_seconds(field: &str, t: Option<f64>) -> Result<(), String> {
    match t {
        Some(t) if !(0.0..=SECONDS_MAX).contains(&t) => Err(format!(
            "{field} {t}: expected seconds from 0 to {SECONDS_MAX}"
        )),
        _ => Ok(()),
    }
}

/// What one shard of a sweep ran and found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// [`SHARD_RECORD_FORMAT`].
    pub format: u32,
    /// The build that ran it (version and commit).
    pub build: String,
    /// The scenarios, in sweep order.
    pub scenarios: Vec<ShardScenario>,
    /// The sweep's first seed.
    pub from: u64,
    /// Seeds per scenario in the whole sweep (all shards).
    pub seeds: u64,
    /// This shard, 0-based.
    pub shard_index: u64,
    /// How many shards the sweep has.
    pub shard_count: u64,
    /// Where the shard came from: `--shard`, or the engine's variable
    /// (`SLURM_ARRAY_TASK_ID`, `JOB_COMPLETION_INDEX`, `NOMAD_ALLOC_INDEX`).
    pub shard_source: String,
    /// The planted bug, if any.
    pub plant: Option<String>,
    /// The oracle the planted bug should trip.
    pub plant_oracle: Option<String>,
    /// Wall-clock seconds the shard took.
    pub wall_s: f64,
    /// The shard's exit code.
    pub exit_code: u8,
    /// Every failing run (and simulator panic), by scenario then seed.
    pub failures: Vec<ShardFailure>,
    /// How many of the shard's runs reached each rare moment (`sovereign_sim::Sometimes`,
    /// by name; absent from records written before it).
    #[serde(default)]
    pub sometimes: BTreeMap<String, u64>,
}

/// A scenario of a shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardScenario {
    /// Its name (unique in the sweep).
    pub name: String,
    /// The file, as the shard was given it.
    pub path: String,
    /// SHA-256 of the file's bytes: shards of one sweep ran the same scenario.
    pub digest: String,
    /// Each of the shard's runs' wall time in seconds, in seed order (`null`: the
    /// simulator panicked).
    pub time_s: Vec<Option<f64>>,
}

/// A failing run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardFailure {
    /// What `sweep.json` lists of it.
    #[serde(flatten)]
    pub failure: SweepFailure,
    /// Whether the planted bug's oracle fired in it (anywhere, not only first).
    pub plant_caught: bool,
    /// The JUnit failure: one line.
    pub message: String,
    /// The JUnit failure type (`oracle`, `slo`, `panic`).
    pub kind: String,
    /// The JUnit failure body.
    pub body: String,
}

impl ShardFailure {
    /// A failing run, with the JUnit failure its case carries (empty without one).
    pub fn new(failure: SweepFailure, plant_caught: bool, junit: Option<&CaseFailure>) -> Self {
        ShardFailure {
            failure,
            plant_caught,
            message: junit.map(|j| j.message.clone()).unwrap_or_default(),
            kind: junit.map(|j| j.kind.clone()).unwrap_or_default(),
            body: junit.map(|j| j.body.clone()).unwrap_or_default(),
        }
    }
}

impl ShardRecord {
    /// The shard.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.shard_index,
            count: self.shard_count,
        }
    }

    /// The file name a shard's record is written under.
    pub fn file_name(shard: Shard) -> String {
        format!("shard-{}-of-{}.json", shard.index, shard.count)
    }

    /// How many seeds this shard ran (counted, not listed: a record is read from a file).
    pub fn shard_runs(&self) -> u64 {
        if self.shard_index >= self.seeds || self.shard_count == 0 {
            return 0;
        }
        (self.seeds - 1 - self.shard_index) / self.shard_count + 1
    }

    /// The seeds this shard ran, ascending.
    pub fn shard_seeds(&self) -> Vec<u64> {
        self.shard().seeds(self.from, self.seeds).collect()
    }

    /// Checks a record read from a file: its format, a shard that exists, a time for
    /// each run, and failures that are runs of this shard.
    pub fn check(&self) -> Result<(), String> {
        if self.format != SHARD_RECORD_FORMAT {
            return Err(format!(
                "format {}: expected {SHARD_RECORD_FORMAT}",
                self.format
            ));
        }
        if self.shard_count == 0
            || self.shard_count > SHARDS_MAX
            || self.shard_index >= self.shard_count
        {
            return Err(format!(
                "shard_index {} of shard_count {}: expected 0 <= index < count <= {SHARDS_MAX}",
                self.shard_index, self.shard_count
            ));
        }
        if self.seeds == 0 || self.from.checked_add(self.seeds - 1).is_none() {
            return Err(format!(
                "from {} seeds {}: expected at least one seed, all below 2^64",
                self.from, self.seeds
            ));
        }
        if self.scenarios.is_empty() {
            return Err("scenarios: empty: expected at least one".into());
        }
        let runs = self.shard_runs();
        if runs.saturating_mul(self.scenarios.len() as u64) > MERGE_RUNS_MAX {
            return Err(format!(
                "{runs} seeds × {} scenarios: more than {MERGE_RUNS_MAX} runs",
                self.scenarios.len()
            ));
        }
        check_seconds("wall_s", Some(self.wall_s))?;
        let mut names = BTreeSet::new();
        for s in &self.scenarios {
            if !names.insert(s.name.as_str()) {
                return Err(format!(
                    "scenarios: {:?} twice: expected unique names",
                    s.name
                ));
            }
            if s.digest.len() != 64
                || !s
                    .digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(format!(
                    "scenarios[{}].digest {:?}: expected 64 lowercase hex digits (SHA-256)",
                    s.name, s.digest
                ));
            }
            if s.time_s.len() as u64 != runs {
                return Err(format!(
                    "scenarios[{}].time_s has {} entries: expected one per run of the shard ({runs})",
                    s.name,
                    s.time_s.len()
                ));
            }
            for t in &s.time_s {
                check_seconds("time_s", *t).map_err(|e| format!("scenarios[{}].{e}", s.name))?;
            }
        }
        let mut failed = BTreeSet::new();
        for f in &self.failures {
            let f = &f.failure;
            if !names.contains(f.scenario.as_str()) {
                return Err(format!(
                    "failures: scenario {:?} is not one of the shard's",
                    f.scenario
                ));
            }
            let position = f.seed.checked_sub(self.from);
            if !position.is_some_and(|p| p < self.seeds && self.shard().contains(p)) {
                return Err(format!(
                    "failures: seed {} of {} is not a seed of shard {}",
                    f.seed,
                    f.scenario,
                    self.shard()
                ));
            }
            if !failed.insert((f.scenario.as_str(), f.seed)) {
                return Err(format!(
                    "failures: seed {} of {} twice: expected each run once",
                    f.seed, f.scenario
                ));
            }
            if !matches!(f.exit_code, 1 | 3 | 4) {
                return Err(format!(
                    "failures: seed {} of {} has exit_code {}: expected 1, 3 or 4",
                    f.seed, f.scenario, f.exit_code
                ));
            }
        }
        let worst = worst_exit_code(self.failures.iter().map(|f| f.failure.exit_code));
        if self.exit_code != worst {
            return Err(format!(
                "exit_code {}: the failures listed end with {worst}",
                self.exit_code
            ));
        }
        Ok(())
    }

    /// What two records of one sweep must agree on, as (field, value) pairs; the
    /// scenarios by name and full digest.
    fn identity(&self) -> [(&'static str, String); 6] {
        let scenarios: Vec<String> = self
            .scenarios
            .iter()
            .map(|s| format!("{} (sha256 {})", s.name, s.digest))
            .collect();
        [
            ("build", self.build.clone()),
            ("scenarios", scenarios.join(", ")),
            ("from", self.from.to_string()),
            ("seeds", self.seeds.to_string()),
            ("shard_count", self.shard_count.to_string()),
            ("plant", format!("{:?}", self.plant)),
        ]
    }

    /// The failures as (scenario, seed, exit code, oracle): what a rerun must repeat.
    fn verdicts(&self) -> Vec<(&str, u64, u8, &str)> {
        self.failures
            .iter()
            .map(|f| {
                let f = &f.failure;
                (f.scenario.as_str(), f.seed, f.exit_code, f.oracle.as_str())
            })
            .collect()
    }
}

/// Why records could not be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// No record was given.
    #[error(
        "no shard records found (files named shard-<i>-of-<n>.json, written by sim sweep --records)"
    )]
    Empty,
    /// A record is of another sweep.
    #[error("{file}: {field} is {found}, but {first} has {expected}: not shards of one sweep")]
    Mismatch {
        /// The record that differs.
        file: String,
        /// The field.
        field: &'static str,
        /// Its value there.
        found: String,
        /// The first record.
        first: String,
        /// Its value in the first record.
        expected: String,
    },
    /// More runs than one merge lists.
    #[error("the records hold {0} runs: more than {MERGE_RUNS_MAX} in one merge")]
    TooMany(u64),
    /// One shard twice, with different results.
    #[error(
        "{a} and {b} are both shard {shard} but disagree on the failing seeds: one of them is not a rerun of the other"
    )]
    Disagree {
        /// The shard.
        shard: String,
        /// One file.
        a: String,
        /// The other.
        b: String,
    },
}

/// A sweep's records, merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// One record per shard present, by shard index.
    pub records: Vec<ShardRecord>,
    /// The file each of `records` came from.
    pub files: Vec<String>,
    /// Shard indices no record was given for.
    pub missing: Vec<u64>,
    /// Shards given twice with the same results (a retried shard), as (index, file
    /// kept, file dropped).
    pub repeated: Vec<(u64, String, String)>,
}

/// Merges the records of one sweep's shards, each with the file it was read from.
pub fn merge(records: Vec<(String, ShardRecord)>) -> Result<Merged, MergeError> {
    let mut by_index: BTreeMap<u64, (String, ShardRecord)> = BTreeMap::new();
    let mut repeated = Vec::new();
    let mut first: Option<(String, [(&'static str, String); 6])> = None;
    for (file, record) in records {
        let identity = record.identity();
        match &first {
            None => first = Some((file.clone(), identity)),
            Some((first_file, expected)) => {
                for ((field, want), (_, found)) in expected.iter().zip(identity) {
                    if *want != found {
                        return Err(MergeError::Mismatch {
                            file,
                            field,
                            found,
                            first: first_file.clone(),
                            expected: want.clone(),
                        });
                    }
                }
            }
        }
        match by_index.get(&record.shard_index) {
            None => {
                by_index.insert(record.shard_index, (file, record));
            }
            Some((kept, other)) => {
                if other.verdicts() != record.verdicts() {
                    return Err(MergeError::Disagree {
                        shard: record.shard().to_string(),
                        a: kept.clone(),
                        b: file,
                    });
                }
                repeated.push((record.shard_index, kept.clone(), file));
            }
        }
    }
    let runs: u64 = by_index
        .values()
        .map(|(_, r)| r.shard_runs().saturating_mul(r.scenarios.len() as u64))
        .fold(0, u64::saturating_add);
    if runs > MERGE_RUNS_MAX {
        return Err(MergeError::TooMany(runs));
    }
    let count = by_index
        .values()
        .next()
        .map(|(_, r)| r.shard_count)
        .ok_or(MergeError::Empty)?;
    let missing = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    let (files, records) = by_index.into_values().unzip();
    Ok(Merged {
        records,
        files,
        missing,
        repeated,
    })
}

impl Merged {
    fn first(&self) -> &ShardRecord {
        &self.records[0]
    }

    /// Runs done, over all shards present.
    pub fn runs(&self) -> u64 {
        self.records
            .iter()
            .map(|r| r.shard_runs() * r.scenarios.len() as u64)
            .sum()
    }

    /// Every failure, by scenario (sweep order) then seed.
    pub fn failures(&self) -> Vec<&ShardFailure> {
        let order: BTreeMap<&str, usize> = self
            .first()
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut all: Vec<&ShardFailure> = self.records.iter().flat_map(|r| &r.failures).collect();
        all.sort_by_key(|f| (order.get(f.failure.scenario.as_str()), f.failure.seed));
        all
    }

    /// Failing runs by first violated oracle (`slo`, `panic` too).
    pub fn by_oracle(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for f in self.failures() {
            *by.entry(f.failure.oracle.clone()).or_insert(0) += 1;
        }
        by
    }

    /// The merged exit code: the worst of the shards', or [`EXIT_INCOMPLETE`] when shards
    /// are missing (a partial sweep cannot pass).
    pub fn exit_code(&self) -> u8 {
        let worst = worst_exit_code(self.records.iter().map(|r| r.exit_code));
        if self.missing.is_empty() {
            worst
        } else {
            worst_exit_code([worst, EXIT_INCOMPLETE])
        }
    }

    /// The seeds the missing shards would have run (at most `limit`, ascending).
    pub fn missing_seeds(&self, limit: usize) -> Vec<u64> {
        let r = self.first();
        let mut seeds = Vec::new();
        // Position k * count + m for each missing shard m, round by round: ascending,
        // and no longer than the answer however long the sweep.
        for round in 0..r.seeds.div_ceil(r.shard_count) {
            for m in &self.missing {
                let Some(p) = round
                    .checked_mul(r.shard_count)
                    .and_then(|p| p.checked_add(*m))
                    .filter(|p| *p < r.seeds)
                else {
                    return seeds;
                };
                if seeds.len() == limit {
                    return seeds;
                }
                seeds.extend(r.from.checked_add(p));
            }
        }
        seeds
    }

    /// One line: runs, and failures by first violated oracle (`slo`, `panic` too).
    pub fn summary_line(&self) -> String {
        let by = self.by_oracle();
        let failures: u64 = by.values().sum();
        let detail = if by.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = by.iter().map(|(o, n)| format!("{o}: {n}")).collect();
            format!(" ({})", parts.join(", "))
        };
        format!("{} runs, {failures} failures{detail}", self.runs())
    }

    /// The JUnit cases of every run, as one machine's sweep of the same seeds lists them:
    /// by scenario, then seed.
    pub fn cases(&self) -> Vec<TestCase> {
        let failures: BTreeMap<(&str, u64), &ShardFailure> = self
            .failures()
            .into_iter()
            .map(|f| ((f.failure.scenario.as_str(), f.failure.seed), f))
            .collect();
        let mut cases = Vec::new();
        let seeds: Vec<Vec<u64>> = self.records.iter().map(ShardRecord::shard_seeds).collect();
        for (i, scenario) in self.first().scenarios.iter().enumerate() {
            let mut runs: Vec<(u64, Option<f64>)> = Vec::new();
            for (r, seeds) in self.records.iter().zip(&seeds) {
                let times = r.scenarios.get(i).map(|s| &s.time_s[..]).unwrap_or(&[]);
                runs.extend(seeds.iter().copied().zip(times.iter().copied()));
            }
            runs.sort_by_key(|(seed, _)| *seed);
            for (seed, time) in runs {
                let failure = failures
                    .get(&(scenario.name.as_str(), seed))
                    .map(|f| CaseFailure {
                        message: f.message.clone(),
                        kind: f.kind.clone(),
                        body: f.body.clone(),
                    });
                cases.push(TestCase {
                    suite: scenario.name.clone(),
                    name: format!("seed {seed}"),
                    failure,
                    time: time.and_then(|t| Duration::try_from_secs_f64(t).ok()),
                });
            }
        }
        cases
    }

    /// The merged sweep as `sweep.json` holds one (the report renders it); of one record,
    /// that shard's data as its own sweep wrote it. Its wall time is the slowest shard's:
    /// the shards ran side by side.
    pub fn sweep_data(&self) -> SweepData {
        let r = self.first();
        let runs = self.runs();
        let failures = self.failures();
        let caught = failures.iter().filter(|f| f.plant_caught).count() as u64;
        SweepData {
            format: SWEEP_DATA_FORMAT,
            scenarios: r.scenarios.iter().map(|s| s.name.clone()).collect(),
            from: r.from,
            seeds: r.seeds,
            shard: match &self.records[..] {
                [one] => one.shard().to_string(),
                all => format!("merged: {} of {} shards", all.len(), r.shard_count),
            },
            plant: r.plant.clone(),
            plant_oracle: r.plant_oracle.clone(),
            build: r.build.clone(),
            runs,
            failures: failures.len() as u64,
            failures_by_oracle: self.by_oracle(),
            plant_catch_ratio: r
                .plant
                .as_ref()
                .filter(|_| runs > 0)
                .map(|_| caught as f64 / runs as f64),
            wall_s: self.records.iter().map(|r| r.wall_s).fold(0.0, f64::max),
            exit_code: self.exit_code(),
            failure_list: failures
                .iter()
                .take(SWEEP_FAILURES_LISTED_MAX)
                .map(|f| f.failure.clone())
                .collect(),
            sometimes: self.sometimes(),
        }
    }

    /// How many runs of all shards reached each rare moment, in the simulator's order
    /// (every moment listed, reached or not).
    pub fn sometimes(&self) -> Vec<(String, u64)> {
        sovereign_sim::Sometimes::ALL
            .iter()
            .map(|m| {
                let n = self
                    .records
                    .iter()
                    .filter_map(|r| r.sometimes.get(m.name()))
                    .sum();
                (m.name().to_string(), n)
            })
            .collect()
    }

    /// One line of rare-moment coverage: `reached 5 of 8 rare moments: name n/runs, ...;
    /// never: ...`.
    pub fn coverage_line(&self) -> String {
        coverage_line(&self.sometimes(), self.runs())
    }
}

/// `reached K of M rare moments: name n/runs, ...; never: name, ...`.
pub fn coverage_line(sometimes: &[(String, u64)], runs: u64) -> String {
    let reached: Vec<String> = sometimes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{m} {n}/{runs}"))
        .collect();
    let never: Vec<&str> = sometimes
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(m, _)| m.as_str())
        .collect();
    format!(
        "reached {} of {} rare moments: {}; never: {}",
        reached.len(),
        sometimes.len(),
        if reached.is_empty() {
            "none".to_string()
        } else {
            reached.join(", ")
        },
        if never.is_empty() {
            "none".to_string()
        } else {
            never.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shard `index` of `count` of a 10-seed sweep of one scenario, failing on the seeds
    /// in `failing` that are its own.
    fn record(index: u64, count: u64, failing: &[u64]) -> ShardRecord {
        let shard = Shard { index, count };
        let seeds: Vec<u64> = shard.seeds(100, 10).collect();
        let failures: Vec<ShardFailure> = seeds
            .iter()
            .filter(|s| failing.contains(s))
            .map(|&seed| ShardFailure {
                failure: SweepFailure {
                    scenario: "storm".into(),
                    seed,
                    exit_code: 1,
                    oracle: "integrity".into(),
                    detail: format!("bad bytes at seed {seed}"),
                    failure_file: None,
                    replay: format!("sovereign sim replay storm-{seed}.failure.toml"),
                    shrunk: None,
                },
                plant_caught: true,
                message: "integrity".into(),
                kind: "oracle".into(),
                body: "bad bytes".into(),
            })
            .collect();
        ShardRecord {
            format: SHARD_RECORD_FORMAT,
            build: "0.1.0 (abc)".into(),
            scenarios: vec![ShardScenario {
                name: "storm".into(),
                path: "scenarios/storm.toml".into(),
                digest: "ab".repeat(32),
                time_s: seeds.iter().map(|_| Some(0.5)).collect(),
            }],
            from: 100,
            seeds: 10,
            shard_index: index,
            shard_count: count,
            shard_source: "--shard".into(),
            plant: Some("skip-verify".into()),
            plant_oracle: Some("integrity".into()),
            wall_s: index as f64,
            exit_code: if failures.is_empty() { 0 } else { 1 },
            failures,
            // Shard i's runs reached one moment i + 1 times.
            sometimes: [("breaker-open-with-outbox".to_string(), index + 1)].into(),
        }
    }

    fn named(records: Vec<ShardRecord>) -> Vec<(String, ShardRecord)> {
        records
            .into_iter()
            .map(|r| (ShardRecord::file_name(r.shard()), r))
            .collect()
    }

    #[test]
    fn merged_shards_list_every_run_once_in_seed_order() {
        // Goal: three shards merge into the runs one machine would list: ten cases in
        // seed order, the two failures where they belong, and nothing missing.
        let failing = [103, 108];
        let m = merge(named(
            (0..3).rev().map(|i| record(i, 3, &failing)).collect(),
        ))
        .expect("one sweep");
        assert!(m.missing.is_empty());
        assert_eq!(m.runs(), 10);
        let cases = m.cases();
        let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
        let want: Vec<String> = (100..110).map(|s| format!("seed {s}")).collect();
        assert_eq!(names, want);
        let failed: Vec<&str> = cases
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["seed 103", "seed 108"]);
        assert_eq!(m.exit_code(), 1);
        assert_eq!(m.summary_line(), "10 runs, 2 failures (integrity: 2)");
        let data = m.sweep_data();
        assert_eq!((data.runs, data.failures), (10, 2));
        assert_eq!(data.plant_catch_ratio, Some(0.2));
        assert_eq!(data.wall_s, 2.0, "the slowest shard's wall time");
        // Rare-moment coverage sums over the shards and lists every moment.
        assert_eq!(data.sometimes.len(), sovereign_sim::Sometimes::ALL.len());
        assert!(
            data.sometimes
                .contains(&("breaker-open-with-outbox".to_string(), 6))
        );
        let line = m.coverage_line();
        assert!(
            line.starts_with("reached 1 of 9 rare moments: breaker-open-with-outbox 6/10; never: failover-with-outbox, "),
            "{line}"
        );
    }

    #[test]
    fn a_missing_shard_is_named_and_fails_the_merge() {
        // Goal: without shard 1 of 3 the merge says which and which seeds, and a clean
        // partial result does not pass.
        let m = merge(named(vec![record(0, 3, &[]), record(2, 3, &[])])).expect("one sweep");
        assert_eq!(m.missing, [1]);
        assert_eq!(m.missing_seeds(10), [101, 104, 107]);
        assert_eq!(m.missing_seeds(2), [101, 104]);
        let mut huge: Vec<ShardRecord> = (0..4).map(|i| record(i, 4, &[])).collect();
        huge.retain(|r| r.shard_index != 1 && r.shard_index != 2);
        for r in &mut huge {
            r.seeds = u64::MAX / 2;
        }
        // (A merge refuses that many runs; the missing seeds are still counted lazily.)
        let big = Merged {
            files: vec![String::new(); huge.len()],
            records: huge,
            missing: vec![1, 2],
            repeated: Vec::new(),
        };
        assert_eq!(
            big.missing_seeds(3),
            [101, 102, 105],
            "counted, not enumerated"
        );
        assert_eq!(m.runs(), 7);
        assert_eq!(m.exit_code(), EXIT_INCOMPLETE);
        let complete = merge(named((0..3).map(|i| record(i, 3, &[])).collect())).expect("ok");
        assert_eq!(complete.exit_code(), 0);
        assert_eq!(merge(Vec::new()), Err(MergeError::Empty));
    }

    #[test]
    fn records_of_another_sweep_or_a_disagreeing_rerun_are_refused() {
        // Goal: another build, seed range or shard count is not merged; a rerun of a
        // shard with the same failures is kept once, one with others is an error.
        let mut other_build = record(1, 3, &[]);
        other_build.build = "0.1.0 (def)".into();
        let err = merge(named(vec![record(0, 3, &[]), other_build])).expect_err("build");
        assert!(err.to_string().contains("build is 0.1.0 (def)"), "{err}");
        let mut other_file = record(1, 3, &[]);
        other_file.scenarios[0].digest = format!("{}cd", "ab".repeat(31));
        let err = merge(named(vec![record(0, 3, &[]), other_file])).expect_err("digest");
        assert!(
            err.to_string().contains("scenarios is storm (sha256 abab"),
            "{err}"
        );
        let err = merge(named(vec![record(0, 3, &[]), record(1, 4, &[])])).expect_err("count");
        assert!(err.to_string().contains("shard_count is 4"), "{err}");

        let rerun = vec![
            ("a/shard-1-of-3.json".to_string(), record(1, 3, &[104])),
            ("b/shard-1-of-3.json".to_string(), record(1, 3, &[104])),
        ];
        let m = merge(rerun).expect("a rerun");
        assert_eq!(m.records.len(), 1);
        assert_eq!(m.repeated.len(), 1);
        let disagree = vec![
            ("a/shard-1-of-3.json".to_string(), record(1, 3, &[104])),
            ("b/shard-1-of-3.json".to_string(), record(1, 3, &[])),
        ];
        assert!(matches!(merge(disagree), Err(MergeError::Disagree { .. })));
    }

    #[test]
    fn a_record_that_cannot_be_a_shard_is_refused() {
        // Goal: check() names the field for each way a hostile or broken file can be
        // wrong, rather than panicking, hanging or counting it.
        assert_eq!(record(1, 3, &[104]).check(), Ok(()));
        let mut r = record(1, 3, &[]);
        r.shard_index = 3;
        assert!(r.check().expect_err("index").contains("shard_index 3"));
        let mut r = record(1, 3, &[]);
        r.scenarios[0].time_s.pop();
        assert!(
            r.check()
                .expect_err("times")
                .contains("time_s has 2 entries")
        );
        let mut r = record(1, 3, &[104]);
        r.failures[0].failure.seed = 105;
        assert!(r.check().expect_err("seed").contains("seed 105"));
        let mut r = record(1, 3, &[]);
        r.seeds = u64::MAX / 2;
        assert!(
            r.check()
                .expect_err("huge")
                .contains("more than 100000000 runs")
        );
        let mut r = record(1, 3, &[]);
        r.scenarios.push(r.scenarios[0].clone());
        assert!(r.check().expect_err("twice").contains("\"storm\" twice"));
        let mut r = record(1, 3, &[]);
        r.scenarios.clear();
        assert!(r.check().expect_err("none").contains("scenarios: empty"));
        let mut r = record(1, 3, &[]);
        r.scenarios[0].digest = "aaaaaaaaaaa\u{e9}".into();
        assert!(r.check().expect_err("digest").contains("64 lowercase hex"));
        for bad in [-1.0, f64::NAN, 1e300] {
            let mut r = record(1, 3, &[]);
            r.scenarios[0].time_s[0] = Some(bad);
            assert!(r.check().expect_err("time").contains("time_s"), "{bad}");
        }
        let mut r = record(1, 3, &[104]);
        r.exit_code = 0;
        assert!(r.check().expect_err("exit").contains("end with 1"));
        let mut r = record(1, 3, &[104]);
        r.failures.push(r.failures[0].clone());
        assert!(
            r.check()
                .expect_err("twice")
                .contains("seed 104 of storm twice")
        );
        let mut r = record(1, 3, &[]);
        r.format = 9;
        assert!(r.check().expect_err("format").contains("format 9"));
    }
}
