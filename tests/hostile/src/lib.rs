//! The hostile-input suite: what each fuzz target checks, as plain functions.
//!
//! Every function here takes arbitrary bytes and panics only when the code under test
//! misbehaves: a decoder or parser panics, accepts something it cannot give back
//! unchanged, or a server answers with a 5xx other than a documented 503, a non-JSON
//! error, or bytes that fail their hash. The cargo-fuzz targets in `tests/fuzz/` are each
//! one line calling [`check`]; `tests/replay.rs` calls the same functions on every file
//! of the committed corpora (`tests/fuzz/seeds/<target>/`, the hand-written starting
//! points, and `tests/fuzz/regressions/<target>/`, inputs that once failed), so plain
//! `cargo test` covers them on the stable toolchain without libFuzzer.
//!
//! Map:
//! - [`wire`]: the JSON decoders of `sovereign-wire` (every DTO an API or a store reads,
//!   `decode_record`, `idem_key`), with round trips;
//! - [`parsers`]: the scenario parser, the failure-file parser, the game-day plan
//!   parser and a sweep shard's record (read by `sim merge`), with round trips where a
//!   writer exists;
//! - [`http`]: the tower's and the origin's routers (device API, tower-facing API and
//!   both admin APIs) driven in-process with requests written as text.
//!
//! Not covered: bytes below HTTP (request lines, header framing: hyper's job), the
//! stores' own file formats (SQLite, chunk files), and the simulator's run itself.

pub mod http;
pub mod parsers;
pub mod wire;

/// The fuzz targets, by name (the names of `tests/fuzz/fuzz_targets/*.rs` and of the
/// corpus directories).
pub const TARGETS: [&str; 6] = ["wire", "scenario", "failure", "plan", "shard", "http"];

/// Where the seeds of `target` are, relative to the repository's root: the shipped
/// scenarios and game days and the parser's fixtures are seeds as they are (so they stay
/// in step with the formats); the rest are in `tests/fuzz/seeds/<target>/`. A seed under
/// a directory `invalid/` or named `invalid-…` must be refused, every other one accepted
/// (`tests/replay.rs`; `scripts/fuzz.sh` hands the same directories to libFuzzer).
pub fn seed_dirs(target: &str) -> Vec<String> {
    match target {
        "scenario" => vec![
            "scenarios".into(),
            "simulator/sim/tests/fixtures/valid".into(),
            "simulator/sim/tests/fixtures/invalid".into(),
        ],
        "plan" => vec!["gamedays".into()],
        other => vec![format!("tests/fuzz/seeds/{other}")],
    }
}

/// What the code under test made of an input that it handled correctly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (decoded, parsed; for `http`: every request sent got a 2xx or 3xx).
    Accepted,
    /// Refused with a proper error (for `http`: some request got a 4xx or a 503).
    Refused,
    /// Not a candidate input (not UTF-8 for a text parser, no request `http::Request`
    /// can carry, an empty input).
    Skipped,
}

/// Run the check of fuzz target `target` on `data`.
///
/// # Panics
/// When the code under test misbehaves on `data` (that is the finding), or when `target`
/// is not one of [`TARGETS`].
pub fn check(target: &str, data: &[u8]) -> Verdict {
    match target {
        "wire" => wire::check(data),
        "scenario" => parsers::scenario(data),
        "failure" => parsers::failure(data),
        "plan" => parsers::plan(data),
        "shard" => parsers::shard_record(data),
        "http" => http::check(data),
        other => panic!("no fuzz target {other:?}; expected one of {TARGETS:?}"),
    }
}
