//! The file parsers under hostile text: scenarios (`simulator/scenario/src/parse.rs`),
//! failure files (`simulator/sim/src/failure.rs`), game-day plans
//! (`simulator/console/src/plan.rs`) and sweep shard records
//! (`simulator/report/src/shards.rs`).
//!
//! Each may refuse its input, with an error that names the file and says what is wrong;
//! none may panic. What a parser accepts must survive its writer where one exists: a
//! scenario and a failure file written back and parsed again are equal, and writing is a
//! fixed point. A failure file's embedded scenario is parsed too, and a plan that parses
//! is resolved against the shipped baseline scenario (which runs its inject steps through
//! the scenario parser).
//!
//! Not covered: building and running the simulated world from what was parsed.

use crate::Verdict;
use sovereign_sim::failure::FailureFile;
use sovereign_sim::scenario::parse_str;

/// The scenario the shipped game days run on, for [`plan`].
const BASELINE: &str = include_str!("../../../scenarios/baseline.toml");

/// Parse `data` as a scenario; what parses must round-trip through `to_toml`.
pub fn scenario(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Skipped;
    };
    match parse_str("fuzz.toml", text) {
        Ok(s) => {
            let written = s.to_toml();
            let back = parse_str("fuzz.toml", &written)
                .unwrap_or_else(|e| panic!("written scenario does not parse: {e}\n{written}"));
            assert_eq!(back, s, "round trip changed the scenario:\n{written}");
            assert_eq!(back.to_toml(), written, "writing is not a fixed point");
            Verdict::Accepted
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml:"), "error names no file: {msg}");
            assert!(!e.message.trim().is_empty(), "empty error: {msg}");
            Verdict::Refused
        }
    }
}

/// Parse `data` as a failure file, then its embedded scenario; what parses must
/// round-trip through `to_toml`.
pub fn failure(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Skipped;
    };
    let file = "fuzz.failure.toml";
    match FailureFile::parse(file, text) {
        Ok(f) => {
            let written = f.to_toml();
            let back = FailureFile::parse(file, &written)
                .unwrap_or_else(|e| panic!("written failure file does not parse: {e}\n{written}"));
            assert_eq!(back, f, "round trip changed the failure file:\n{written}");
            assert_eq!(back.to_toml(), written, "writing is not a fixed point");
            match f.scenario(file) {
                Ok(_) => Verdict::Accepted,
                Err(e) => {
                    assert!(e.to_string().contains(file), "error names no file: {e}");
                    Verdict::Refused
                }
            }
        }
        Err(e) => {
            assert!(e.to_string().contains(file), "error names no file: {e}");
            Verdict::Refused
        }
    }
}

/// Parse `data` as a game-day plan and resolve what parses against the baseline scenario.
pub fn plan(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Skipped;
    };
    let file = "fuzz-plan.toml";
    match sovereign_console::plan::parse_str(file, text) {
        Ok(p) => {
            let baseline = parse_str("baseline.toml", BASELINE).expect("baseline parses");
            match p.resolve(&baseline) {
                Ok(_) => Verdict::Accepted,
                Err(e) => refused(file, &e),
            }
        }
        Err(e) => refused(file, &e),
    }
}

/// A plan error must name the file and say what is wrong.
fn refused(file: &str, e: &sovereign_console::PlanError) -> Verdict {
    assert!(e.to_string().starts_with(file), "error names no file: {e}");
    assert!(!e.message.trim().is_empty(), "empty error: {e}");
    Verdict::Refused
}

/// Read `data` as a sweep shard's record (`sim sweep --records`, read by `sim merge`):
/// refused by serde or by [`ShardRecord::check`] with a message, or else merged on its
/// own without panicking, listing one JUnit case per run, and written back unchanged.
///
/// [`ShardRecord::check`]: sovereign_report::shards::ShardRecord::check
pub fn shard_record(data: &[u8]) -> Verdict {
    use sovereign_report::shards::{ShardRecord, merge};
    let record: ShardRecord = match serde_json::from_slice(data) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().trim().is_empty(), "empty error");
            return Verdict::Refused;
        }
    };
    if let Err(e) = record.check() {
        assert!(!e.trim().is_empty(), "empty error");
        return Verdict::Refused;
    }
    let written = serde_json::to_string(&record).expect("a checked record serialises");
    let back: ShardRecord = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("written record does not parse: {e}\n{written}"));
    assert_eq!(back, record, "round trip changed the record");
    let merged = merge(vec![("fuzz.json".into(), record)])
        .unwrap_or_else(|e| panic!("a checked record does not merge on its own: {e}"));
    assert_eq!(
        merged.cases().len() as u64,
        merged.runs(),
        "one case per run"
    );
    let data = merged.sweep_data();
    assert_eq!(data.runs, merged.runs());
    Verdict::Accepted
}
