//! The `sovereign` binary's contract at its edges: version, help, and exit code 2 with a
//! clear message for bad input or usage. (End-to-end runs on real scenarios come with the
//! world and the scenario parser.)

use std::process::{Command, Output};

fn sovereign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_names_the_crate_version() {
    // Goal: `--version` prints the package version and exits 0.
    let o = sovereign(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("sovereign "), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn help_lists_sim_and_its_commands() {
    // Goal: `--help` lists `sim`; `sim --help` lists run, sweep, replay and shrink.
    let o = sovereign(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sim"));
    let o = sovereign(&["sim", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["run", "sweep", "replay", "shrink"] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

#[test]
fn run_on_a_missing_file_is_exit_2_naming_the_path() {
    // Goal: bad input is exit 2 with the offending path on stderr.
    let path = "no/such/dir/missing-scenario.toml";
    let o = sovereign(&["sim", "run", path]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(path), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn unknown_plant_is_a_usage_error() {
    // Goal: `--plant bogus` is rejected by the argument parser with exit 2.
    let o = sovereign(&["sim", "run", "x.toml", "--plant", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bogus"));
}

#[test]
fn shard_index_must_be_below_count() {
    // Goal: `--shard 3/2` is a usage error (exit 2).
    let o = sovereign(&["sim", "sweep", "x.toml", "--seeds", "4", "--shard", "3/2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("3/2"));
}

#[test]
fn sweep_and_replay_on_missing_files_are_exit_2() {
    // Goal: every command reports unreadable inputs as exit 2 naming the file.
    let o = sovereign(&["sim", "sweep", "missing-a.toml", "--seeds", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-a.toml"));
    let o = sovereign(&["sim", "replay", "missing-b.failure.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-b.failure.toml"));
    let o = sovereign(&["sim", "shrink", "missing-c.failure.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-c.failure.toml"));
    let o = sovereign(&["sim", "sweep", "x.toml", "--seeds", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
