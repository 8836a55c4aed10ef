//! Failure files: everything needed to replay a failed run, in one human-readable TOML
//! file (`reports/failures/<scenario>-seed<seed>.failure.toml`).
//!
//! A failure file records the scenario's name and source path, the seed, the build, the
//! planted bug, the first violation (oracle, time, detail), the expected trace hash and
//! exit code, and the whole scenario with its fault schedule made EXPLICIT (the faults the
//! run actually applied, nemesis off) as an embedded TOML string written by
//! [`Scenario::to_toml`]. Replay therefore depends neither on the original scenario file
//! (which may have changed) nor on nemesis draws.
//!
//! Map:
//! - [`FailureFile`]: the model; [`FailureFile::from_report`], [`FailureFile::to_toml`],
//!   [`FailureFile::parse`] / [`FailureFile::read`], [`FailureFile::scenario`],
//!   [`FailureFile::check_reproduced`].
//! - [`FailureError`]: what can go wrong reading one (file, line, field, message).
//! - [`replay_command`]: the exact shell command that replays a failure file.
//! - the raw file (`RawFailure` and its tables): what serde reads (through
//!   [`crate::tomlspan`], unknown keys refused) and writes; `parse` validates it into the
//!   model (format version, plant, exit code, trace hash, oracle).
//!
//! Not covered: running anything (the CLI does), shrinking (see [`crate::shrink`]).

use crate::plant::Plant;
use crate::report::{RunReport, Violation};
use crate::scenario::parse::Seed;
use crate::scenario::{Nemesis, Oracle, Scenario, ScenarioError};
use crate::tomlspan::{Ctx, SpanError, unspanned as sp};
use crate::world::Branch;
use serde::{Deserialize, Serialize};
use sovereign_logic::Time;
use std::path::Path;
use toml::Spanned;

/// The failure-file format version this build writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// Longest detail line kept (a runaway oracle message must not make a huge file).
pub const DETAIL_BYTES_MAX: usize = 4096;

/// Largest failure file accepted by [`FailureFile::read`] (scenarios are small).
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Most branch points a failure file may hold (a branch of a branch of ...).
pub const BRANCHES_MAX: usize = 1_000;

/// Hex digits of a trace hash (the SHA-256 of the trace, [`crate::trace`]).
pub const TRACE_HASH_HEX_DIGITS: usize = 64;

/// Whether `s` is spelled as a trace hash: [`TRACE_HASH_HEX_DIGITS`] lower-case hex digits.
pub fn is_trace_hash(s: &str) -> bool {
    s.len() == TRACE_HASH_HEX_DIGITS && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A failed run, as written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureFile {
    /// The scenario's name.
    pub scenario_name: String,
    /// The scenario file the run came from (informational only: replay uses the embedded
    /// scenario).
    pub scenario_path: String,
    /// The seed.
    pub seed: u64,
    /// The build that produced the failure (crate version + commit), so a replay on
    /// another build can be recognised as such when the trace hash differs.
    pub build: String,
    /// The planted bug, if any.
    pub plant: Option<Plant>,
    /// The first violation; `None` when only SLOs were missed (exit code 4).
    pub violation: Option<Violation>,
    /// The trace hash a faithful replay must produce.
    pub trace_hash: String,
    /// The run's exit code (see [`RunReport::exit_code`]).
    pub exit_code: u8,
    /// The scenario with the explicit fault schedule and nemesis off, as TOML.
    pub scenario_toml: String,
    /// The run's branch points, in time order, when it was branched (guided
    /// exploration, `replay --likelihood`): replay branches at the same moments with the
    /// same seeds.
    pub branches: Vec<Branch>,
}

/// A failure file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FailureError {
    /// The file is malformed: bad TOML, a missing or unknown key, a wrong type or value
    /// (file, line, field, message).
    #[error(transparent)]
    Invalid(#[from] SpanError),
    /// The embedded scenario did not parse (its lines count from the embedded text).
    #[error("{file}: embedded scenario: {source}")]
    Scenario {
        /// The failure file.
        file: String,
        /// The parser's error.
        source: ScenarioError,
    },
    /// The file could not be read, is larger than [`FILE_BYTES_MAX`] or is not UTF-8.
    #[error(transparent)]
    Input(#[from] sovereign_wire::input::InputError),
}

/// Whether a replay reproduced the recorded failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reproduction {
    /// Same oracle violated (or, for an SLO-only failure, the same exit code) and the same
    /// trace hash.
    Reproduced,
    /// Something differs; the string says what.
    Differs(String),
}

impl FailureFile {
    /// Build a failure file from a run. The embedded scenario is `scenario` with its
    /// faults replaced by `report.schedule` (every fault the run applied), nemesis off and
    /// its default seed set to the run's seed.
    pub fn from_report(
        scenario_path: &str,
        scenario: &Scenario,
        report: &RunReport,
        build: &str,
    ) -> FailureFile {
        let mut explicit = scenario.clone();
        explicit.faults = report.schedule.clone();
        explicit.nemesis = Nemesis::off();
        explicit.seed = report.seed;
        let violation = report.first_violation().cloned().map(|mut v| {
            truncate_to_boundary(&mut v.detail, DETAIL_BYTES_MAX);
            v
        });
        FailureFile {
            scenario_name: scenario.name.clone(),
            scenario_path: scenario_path.to_string(),
            seed: report.seed,
            build: build.to_string(),
            plant: report.plant,
            violation,
            trace_hash: report.trace_hash.clone(),
            exit_code: report.exit_code(),
            scenario_toml: explicit.to_toml(),
            branches: report.branches.clone(),
        }
    }

    /// The violated oracle, if any.
    pub fn oracle(&self) -> Option<Oracle> {
        self.violation.as_ref().map(|v| v.oracle)
    }

    /// The conventional file name: `<scenario>-seed<seed>.failure.toml`, with any
    /// character of the name that is not `[A-Za-z0-9_-]` replaced by `_`.
    pub fn default_file_name(&self) -> String {
        let name: String = self
            .scenario_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = if name.is_empty() {
            "scenario".to_string()
        } else {
            name
        };
        match self.branches.last() {
            None => format!("{name}-seed{}.failure.toml", self.seed),
            Some(b) => format!("{name}-seed{}-branch{}.failure.toml", self.seed, b.seed),
        }
    }

    /// The file's text: a comment header, then the raw file serialised (the run, the
    /// result, the violation and the embedded scenario).
    pub fn to_toml(&self) -> String {
        let raw = RawFailure {
            format: sp(FORMAT_VERSION),
            run: RawRun {
                scenario: self.scenario_name.clone(),
                source: self.scenario_path.clone(),
                seed: Seed(self.seed),
                plant: self.plant.map(|p| sp(p.name().to_string())),
                build: self.build.clone(),
            },
            result: RawResult {
                exit_code: sp(i64::from(self.exit_code)),
                trace_hash: sp(self.trace_hash.clone()),
            },
            violation: self.violation.as_ref().map(|v| RawViolation {
                oracle: sp(v.oracle.name().to_string()),
                at_us: sp(v.at.as_micros() as i64),
                liveness: v.liveness,
                detail: v.detail.clone(),
            }),
            branch: self
                .branches
                .iter()
                .map(|b| RawBranch {
                    at_us: sp(i64::try_from(b.at.as_micros()).unwrap_or(i64::MAX)),
                    seed: Seed(b.seed),
                })
                .collect(),
            scenario: RawEmbedded {
                toml: self.scenario_toml.clone(),
            },
        };
        let mut text = toml::to_string(&raw)
            .unwrap_or_else(|e| unreachable!("a failure file always serialises: {e}"));
        // The times for people, next to the microseconds.
        let moments = self.violation.as_ref().map(|v| v.at).into_iter().chain(
            self.branches
                .iter()
                .map(|b| Time::from_micros(b.at.as_micros() as u64)),
        );
        for at in moments {
            let us = format!("at_us = {}\n", at.as_micros());
            text = text.replacen(&us, &format!("at_us = {}  # {at}\n", at.as_micros()), 1);
        }
        format!(
            "# Sovereign simulator failure file.\n\
             # Replay it:  sovereign sim replay <this file> [--trace]\n\
             # Shrink it:  sovereign sim shrink <this file>\n\
             # The embedded scenario carries the explicit fault schedule the run applied\n\
             # (nemesis off), so replay depends neither on the source file nor on nemesis draws.\n{text}"
        )
    }

    /// Read and parse a failure file.
    pub fn read(path: &Path) -> Result<FailureFile, FailureError> {
        let file = path.display().to_string();
        let text = sovereign_wire::input::read_capped_text(path, FILE_BYTES_MAX, "failure file")?;
        FailureFile::parse(&file, &text)
    }

    /// Parse a failure file's text; `file_name` names it in errors. Unknown keys are
    /// errors.
    pub fn parse(file_name: &str, text: &str) -> Result<FailureFile, FailureError> {
        let ctx = Ctx {
            file: file_name,
            text,
        };
        let raw: RawFailure = ctx.read(64)?;
        if *raw.format.get_ref() != FORMAT_VERSION {
            return Err(ctx
                .err(
                    &raw.format.span(),
                    format!(
                        "format {} is not supported; this build reads format {FORMAT_VERSION}",
                        raw.format.get_ref()
                    ),
                )
                .into());
        }
        let plant = match &raw.run.plant {
            None => None,
            Some(v) => Some(
                v.get_ref()
                    .parse::<Plant>()
                    .map_err(|e| ctx.err(&v.span(), e.to_string()))?,
            ),
        };
        let (code, code_span) = (*raw.result.exit_code.get_ref(), raw.result.exit_code.span());
        let exit_code = match u8::try_from(code) {
            Ok(c @ (0 | 1 | 3 | 4)) => c,
            _ => {
                return Err(ctx
                    .err(
                        &code_span,
                        format!("{code} is not a run's exit code; expected 0, 1, 3 or 4"),
                    )
                    .into());
            }
        };
        let trace_hash = raw.result.trace_hash.get_ref();
        if !is_trace_hash(trace_hash) {
            return Err(ctx.err(&raw.result.trace_hash.span(), format!(
                "{:?} is not a trace hash; expected {TRACE_HASH_HEX_DIGITS} lower-case hex digits (a SHA-256, as `sim run` prints after `trace-hash:`)",
                trace_hash.chars().take(80).collect::<String>()
            )).into());
        }
        let violation = match raw.violation {
            None => None,
            Some(v) => {
                let oracle = Oracle::from_name(v.oracle.get_ref()).ok_or_else(|| {
                    let names: Vec<&str> = Oracle::ALL.iter().map(|o| o.name()).collect();
                    ctx.err(
                        &v.oracle.span(),
                        format!(
                            "unknown oracle {:?}; expected one of: {}",
                            v.oracle.get_ref(),
                            names.join(", ")
                        ),
                    )
                })?;
                let at_us = u64::try_from(*v.at_us.get_ref()).map_err(|_| {
                    ctx.err(
                        &v.at_us.span(),
                        "expected a non-negative number of microseconds",
                    )
                })?;
                Some(Violation {
                    oracle,
                    at: Time::from_micros(at_us),
                    detail: v.detail,
                    liveness: v.liveness,
                })
            }
        };
        if raw.branch.len() > BRANCHES_MAX {
            return Err(ctx
                .err(
                    &raw.branch[BRANCHES_MAX].at_us.span(),
                    format!("more than {BRANCHES_MAX} branch points"),
                )
                .into());
        }
        let mut branches: Vec<Branch> = Vec::with_capacity(raw.branch.len());
        for b in &raw.branch {
            let at_us = u64::try_from(*b.at_us.get_ref()).map_err(|_| {
                ctx.err(
                    &b.at_us.span(),
                    "expected a non-negative number of microseconds",
                )
            })?;
            let at = std::time::Duration::from_micros(at_us);
            if branches.last().is_some_and(|p| p.at > at) {
                return Err(ctx
                    .err(&b.at_us.span(), "branch points must be in time order")
                    .into());
            }
            branches.push(Branch { at, seed: b.seed.0 });
        }
        Ok(FailureFile {
            branches,
            scenario_name: raw.run.scenario,
            scenario_path: raw.run.source,
            seed: raw.run.seed.0,
            build: raw.run.build,
            plant,
            violation,
            trace_hash: trace_hash.clone(),
            exit_code,
            scenario_toml: raw.scenario.toml,
        })
    }

    /// The embedded scenario, parsed. `file_name` names the failure file in errors; the
    /// parser's lines count from the start of the embedded text.
    pub fn scenario(&self, file_name: &str) -> Result<Scenario, FailureError> {
        crate::scenario::parse_str(&format!("{file_name} [scenario.toml]"), &self.scenario_toml)
            .map_err(|source| FailureError::Scenario {
                file: file_name.to_string(),
                source,
            })
    }

    /// Compare a replay's report with the recorded failure: the same oracle must be
    /// violated (for an SLO-only failure: the same exit code) and the trace hash must be
    /// the same.
    pub fn check_reproduced(&self, report: &RunReport) -> Reproduction {
        if let Some(why) = self.other_failure(report) {
            return Reproduction::Differs(why);
        }
        if report.trace_hash != self.trace_hash {
            return Reproduction::Differs(format!(
                "trace hash {} differs from the recorded {} (recorded by build {})",
                report.trace_hash, self.trace_hash, self.build
            ));
        }
        Reproduction::Reproduced
    }

    /// Whether `report` failed the way this file did (the same oracle violated; for an
    /// SLO-only failure the same exit code), whatever its trace: a branch of the run in
    /// which the failure recurs.
    pub fn recurs_in(&self, report: &RunReport) -> bool {
        self.other_failure(report).is_none()
    }

    /// How `report`'s failure differs from this file's, if it does.
    fn other_failure(&self, report: &RunReport) -> Option<String> {
        match &self.violation {
            Some(v) => {
                if !report.violates(v.oracle) {
                    let got = match report.first_violation() {
                        Some(r) => format!("{} ({})", r.oracle, r.detail),
                        None => "no violation".to_string(),
                    };
                    return Some(format!("expected a {} violation, got {got}", v.oracle));
                }
            }
            None => {
                if report.exit_code() != self.exit_code {
                    return Some(format!(
                        "expected exit code {}, got {}",
                        self.exit_code,
                        report.exit_code()
                    ));
                }
            }
        }
        None
    }
}

/// The exact command that replays a failure file (the path single-quoted for the shell
/// when it holds anything but `[A-Za-z0-9_./-]`).
pub fn replay_command(path: &str) -> String {
    format!("sovereign sim replay {}", shell_quote(path))
}

/// Quote `s` for a POSIX shell when needed.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '+' | ':'));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Cut `s` to at most `bytes_max` bytes at a char boundary.
fn truncate_to_boundary(s: &mut String, bytes_max: usize) {
    if s.len() > bytes_max {
        let mut cut = bytes_max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

// ---------------------------------------------------------------------------------------
// The raw file, as serde reads and writes it.

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFailure {
    format: Spanned<i64>,
    run: RawRun,
    result: RawResult,
    violation: Option<RawViolation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    branch: Vec<RawBranch>,
    scenario: RawEmbedded,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    at_us: Spanned<i64>,
    seed: Seed,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    scenario: String,
    source: String,
    seed: Seed,
    plant: Option<Spanned<String>>,
    build: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawResult {
    exit_code: Spanned<i64>,
    trace_hash: Spanned<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawViolation {
    oracle: Spanned<String>,
    at_us: Spanned<i64>,
    liveness: bool,
    detail: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEmbedded {
    toml: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kpi::Kpis;
    use crate::scenario::{FaultKind, FaultSpec, PowerSpec, Target, TowerSpec, Workload};
    use sovereign_logic::content::Priority;
    use sovereign_logic::protocol::LinkKind;
    use std::time::Duration;

    /// A small valid scenario with `towers` towers of 4 devices and the given faults.
    pub(crate) fn scenario(towers: usize, faults: Vec<FaultSpec>) -> Scenario {
        let tower = |i: usize| TowerSpec {
            catalog_poll: None,
            request_timeout: None,
            probe_interval: None,
            // A grid-tied site with a large battery: power never interferes.
            power: PowerSpec {
                solar_peak_w: 200.0,
                battery_wh: 1000.0,
                soc_initial: 0.8,
                load_w: 40.0,
                grid: true,
                ups: true,
                cloud_cover: 0.2,
            },
            ..TowerSpec::builtin(format!("tower-{i}"), 4, &[LinkKind::Fibre])
        };
        Scenario {
            description: "hand-built for unit tests".into(),
            liveness_bound: Duration::from_secs(600),
            seed: 7,
            workload: Workload {
                catalog: vec![crate::scenario::CatalogSpec {
                    priority: Priority::P0,
                    items: 3,
                    bytes: 10_000,
                }],
                publish_per_hour: [1.0, 1.0, 1.0, 1.0],
                publish_bytes: [1000, 2000, 3000, 4000],
                reads_per_device_hour: 10.0,
                ops_per_device_hour: 2.0,
                contribution_share: 0.5,
                misuse: crate::scenario::Misuse {
                    shared_identity: 0.25,
                    key_reuse_per_device_hour: 0.5,
                    key_theft_per_hour: 1.0,
                    invalid_share: 0.1,
                },
            },
            faults,
            nemesis: Nemesis {
                rates_per_hour: vec![(crate::scenario::Family::Network, 2.0)],
                duration_mean: Duration::from_secs(60),
                duration_max: Duration::from_secs(600),
            },
            ..Scenario::new(
                "unit",
                Duration::from_secs(3600),
                (0..towers).map(tower).collect(),
            )
        }
    }

    /// A fault at `at_s` seconds on tower `tower`.
    pub(crate) fn fault(at_s: u64, tower: usize, kind: FaultKind) -> FaultSpec {
        FaultSpec {
            at: Duration::from_secs(at_s),
            duration: Duration::from_secs(64),
            target: Target::Tower(tower),
            kind,
        }
    }

    pub(crate) fn report(
        seed: u64,
        violations: Vec<Violation>,
        schedule: Vec<FaultSpec>,
    ) -> RunReport {
        RunReport {
            scenario: "unit".into(),
            seed,
            plant: Some(Plant::SkipVerify),
            trace_hash: "ab12".repeat(16),
            events: 10,
            end: Time::from_secs(4200),
            violations,
            kpis: Kpis::default(),
            slo: Vec::new(),
            schedule,
            branches: Vec::new(),
            sometimes: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn violation() -> Violation {
        Violation {
            oracle: Oracle::Integrity,
            at: Time::from_micros(12_000_250),
            detail: "tower-0 served chunk 3f.. whose hash \"mismatches\"\n\tits manifest & <more>"
                .into(),
            liveness: false,
        }
    }

    fn sample() -> FailureFile {
        let s = scenario(2, vec![fault(10, 0, FaultKind::Crash)]);
        let r = report(
            42,
            vec![violation()],
            vec![
                fault(10, 0, FaultKind::Crash),
                fault(99, 1, FaultKind::Partition),
            ],
        );
        FailureFile::from_report("scenarios/unit.toml", &s, &r, "0.1.0 (abc1234)")
    }

    #[test]
    fn from_report_embeds_the_explicit_schedule_with_nemesis_off() {
        // Goal: the embedded scenario is the run's applied schedule, nemesis off, run seed.
        let s = scenario(2, vec![fault(10, 0, FaultKind::Crash)]);
        let schedule = vec![
            fault(10, 0, FaultKind::Crash),
            fault(99, 1, FaultKind::Partition),
        ];
        let r = report(42, vec![violation()], schedule.clone());
        let f = FailureFile::from_report("scenarios/unit.toml", &s, &r, "b");
        let mut expected = s.clone();
        expected.faults = schedule;
        expected.nemesis = Nemesis::off();
        expected.seed = 42;
        assert_eq!(f.scenario_toml, expected.to_toml());
        assert_eq!(f.seed, 42);
        assert_eq!(f.exit_code, 1);
        assert_eq!(f.oracle(), Some(Oracle::Integrity));
        assert_eq!(f.plant, Some(Plant::SkipVerify));
        assert_eq!(f.trace_hash, r.trace_hash);
        assert_eq!(f.default_file_name(), "unit-seed42.failure.toml");
    }

    #[test]
    fn to_toml_parses_back_to_an_equal_file() {
        // Goal: write → parse is the identity, including awkward strings and huge seeds.
        let mut f = sample();
        assert_eq!(FailureFile::parse("f.toml", &f.to_toml()).unwrap(), f);
        f.seed = u64::MAX;
        f.plant = None;
        f.violation = None;
        f.exit_code = 4;
        f.scenario_toml = "name = 'x'\n# ends with a quote'".into();
        let text = f.to_toml();
        assert!(text.starts_with("# Sovereign simulator failure file."));
        assert_eq!(FailureFile::parse("f.toml", &text).unwrap(), f);
        f.scenario_toml = "a ''' b\r\u{7}".into();
        assert_eq!(FailureFile::parse("f.toml", &f.to_toml()).unwrap(), f);
        // A branched run: its branch point and seed come back, and name the file.
        f.branches = vec![
            Branch {
                at: std::time::Duration::from_secs(60),
                seed: 5,
            },
            Branch {
                at: std::time::Duration::from_micros(3_600_000_017),
                seed: u64::MAX - 1,
            },
        ];
        let text = f.to_toml();
        assert!(
            text.contains("at_us = 3600000017  # 01:00:00.000"),
            "{text}"
        );
        assert_eq!(FailureFile::parse("f.toml", &text).unwrap(), f);
        assert_eq!(
            f.default_file_name(),
            format!("unit-seed{}-branch{}.failure.toml", u64::MAX, u64::MAX - 1)
        );
        let bad = text.replacen("at_us = 3600000017", "at_us = -1", 1);
        let e = FailureFile::parse("f.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("branch") && e.contains("non-negative"), "{e}");
        let bad = text.replacen("at_us = 3600000017", "at_us = 1", 1);
        let e = FailureFile::parse("f.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("time order"), "{e}");
    }

    #[test]
    fn embedded_scenario_is_a_readable_literal_block() {
        // Goal: the scenario appears verbatim in the file, so people can read it.
        let f = sample();
        let text = f.to_toml();
        assert!(text.contains(&format!("toml = \"\"\"\n{}\"\"\"", f.scenario_toml)));
        assert!(text.contains("at_us = 12000250  # 00:00:12.000"));
    }

    #[test]
    fn errors_name_line_and_field() {
        // Goal: unknown keys, wrong types, bad values and missing keys are reported with
        // the file, line and field.
        let good = sample().to_toml();
        let cases: [(&str, &str, &str); 6] = [
            ("seed = 42", "seeed = 42", "run.seeed"),
            ("seed = 42", "seed = \"x\"", "run.seed"),
            (
                "oracle = \"integrity\"",
                "oracle = \"honesty\"",
                "violation.oracle",
            ),
            ("exit_code = 1", "exit_code = 2", "result.exit_code"),
            ("plant = \"skip-verify\"", "plant = 3", "run.plant"),
            (
                "liveness = false",
                "liveness = \"no\"",
                "violation.liveness",
            ),
        ];
        for (from, to, field) in cases {
            assert!(good.contains(from), "{from}");
            let text = good.replacen(from, to, 1);
            let want_line = text.lines().position(|l| l.starts_with(to)).unwrap() + 1;
            match FailureFile::parse("bad.toml", &text) {
                Err(FailureError::Invalid(e)) => {
                    assert_eq!(e.file, "bad.toml");
                    assert_eq!(e.field, field);
                    assert_eq!(e.line, want_line, "{field}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let missing = good.replacen("trace_hash = ", "# trace_hash = ", 1);
        let e = FailureFile::parse("bad.toml", &missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("result.trace_hash: missing"), "{e}");
        // A trace hash is 64 lower-case hex digits: "zz", a short one, an upper-case one
        // are refused at their line.
        let hash = format!("trace_hash = \"{}\"", "ab12".repeat(16));
        assert!(good.contains(&hash));
        for bad in [
            "zz",
            "ab12",
            &"AB12".repeat(16),
            &format!("{}0", "ab12".repeat(16)),
        ] {
            let text = good.replacen(&hash, &format!("trace_hash = \"{bad}\""), 1);
            let want_line = text
                .lines()
                .position(|l| l.starts_with("trace_hash"))
                .unwrap()
                + 1;
            let e = FailureFile::parse("bad.toml", &text)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("bad.toml:{want_line}: result.trace_hash: ")),
                "{e}"
            );
            assert!(e.contains("expected 64 lower-case hex digits"), "{e}");
        }
        let e = FailureFile::parse("bad.toml", "format = [")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.toml:1:"), "{e}");
        let e = FailureFile::parse("bad.toml", &good.replacen("format = 1", "format = 9", 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 9 is not supported"), "{e}");
    }

    #[test]
    fn embedded_scenario_errors_name_the_failure_file() {
        // Goal: a broken embedded scenario is reported against the failure file.
        let mut f = sample();
        f.scenario_toml = "this is = = not toml".into();
        match f.scenario("x.failure.toml") {
            Err(e @ FailureError::Scenario { .. }) => {
                assert!(
                    e.to_string()
                        .starts_with("x.failure.toml: embedded scenario:")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reproduction_needs_same_oracle_and_same_hash() {
        // Goal: check_reproduced accepts only the same oracle and trace hash.
        let f = sample();
        let same = report(42, vec![violation()], Vec::new());
        assert_eq!(f.check_reproduced(&same), Reproduction::Reproduced);
        let mut other_hash = same.clone();
        other_hash.trace_hash = "00".into();
        assert!(
            matches!(f.check_reproduced(&other_hash), Reproduction::Differs(m) if m.contains("trace hash"))
        );
        let clean = report(42, Vec::new(), Vec::new());
        assert!(
            matches!(f.check_reproduced(&clean), Reproduction::Differs(m) if m.contains("no violation"))
        );
    }

    #[test]
    fn replay_command_quotes_odd_paths() {
        // Goal: the printed command is copy-pasteable.
        assert_eq!(
            replay_command("reports/failures/a-seed1.failure.toml"),
            "sovereign sim replay reports/failures/a-seed1.failure.toml"
        );
        assert_eq!(
            replay_command("my dir/it's"),
            r"sovereign sim replay 'my dir/it'\''s'"
        );
    }
}
