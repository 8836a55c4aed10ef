//! The fuzz corpora as plain tests: every seed (`sovereign_hostile::seed_dirs`: the
//! shipped scenarios and game days, the scenario parser's fixtures, and
//! `tests/fuzz/seeds/<target>/`) and every file of `tests/fuzz/regressions/<target>/`
//! goes through the same check the fuzz target runs (`sovereign_hostile::check`), on the
//! stable toolchain, without libFuzzer.
//!
//! A regression file is an input that once failed; its name says what it found. Every
//! target must have seeds, so a corpus directory that goes missing fails here rather than
//! replaying nothing; and a seed must still reach the code it was written for: a seed of a
//! decoder or parser is accepted, unless it is in a directory `invalid/` or its name
//! starts with `invalid-` (then it is refused), and an `http` seed sends at least one request.
//!
//! Not covered: finding new inputs (that is `cargo fuzz run`, docs/SECURITY.md).

use sovereign_hostile::Verdict;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fuzz_dir() -> PathBuf {
    repo().join("tests/fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Run `target`'s check on every seed and regression file; fail naming each file that
/// fails, with its panic message.
fn replay(target: &str) {
    let dirs = sovereign_hostile::seed_dirs(target);
    let seeds: Vec<PathBuf> = dirs.iter().flat_map(|d| files(&repo().join(d))).collect();
    for d in &dirs {
        assert!(
            !files(&repo().join(d)).is_empty(),
            "no seeds for fuzz target {target} in {d}"
        );
    }
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failed = Vec::new();
    for (path, seed) in seeds
        .iter()
        .map(|p| (p, true))
        .chain(regressions.iter().map(|p| (p, false)))
    {
        let data = std::fs::read(path).expect("read corpus file");
        match std::panic::catch_unwind(|| sovereign_hostile::check(target, &data)) {
            Ok(verdict) if seed => {
                if let Some(want) = seed_problem(target, path, verdict) {
                    failed.push(format!("{}: {want}", path.display()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed.push(format!("{}: {msg}", path.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        seeds.len() + regressions.len(),
        failed.join("\n")
    );
}

/// Why a seed's verdict is not the one its name promises (module doc), if it is not.
fn seed_problem(target: &str, path: &Path, verdict: Verdict) -> Option<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let want = if target == "http" {
        return (verdict == Verdict::Skipped).then(|| "no request was sent".to_string());
    } else if name.starts_with("invalid-") || dir == Some("invalid") {
        Verdict::Refused
    } else {
        Verdict::Accepted
    };
    (verdict != want).then(|| format!("seed should be {want:?}, was {verdict:?}"))
}

/// Goal: the wire decoders' corpus (seeds and past findings) decodes or refuses cleanly.
#[test]
fn wire_corpus_replays() {
    replay("wire");
}

/// Goal: the scenario parser's corpus parses and round-trips or is refused cleanly.
#[test]
fn scenario_corpus_replays() {
    replay("scenario");
}

/// Goal: the failure-file parser's corpus parses and round-trips or is refused cleanly.
#[test]
fn failure_corpus_replays() {
    replay("failure");
}

/// Goal: the game-day plan parser's corpus parses and resolves or is refused cleanly.
#[test]
fn plan_corpus_replays() {
    replay("plan");
}

/// Goal: the shard-record corpus merges or is refused cleanly, never panics or hangs.
#[test]
fn shard_corpus_replays() {
    replay("shard");
}

/// Goal: the HTTP corpus gets no 5xx but documented 503s, JSON errors and verified bytes.
#[test]
fn http_corpus_replays() {
    replay("http");
}

/// Goal: every fuzz target has a corpus here and a fuzz target file in tests/fuzz.
#[test]
fn every_target_has_a_fuzz_target_and_seeds() {
    for target in sovereign_hostile::TARGETS {
        let src = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            text.contains(&format!("check(\"{target}\", data)")),
            "{} does not call check(\"{target}\", data)",
            src.display()
        );
    }
}
