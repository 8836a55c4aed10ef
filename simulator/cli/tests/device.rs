//! `sovereign device …` at the binary's edges: help, usage errors (exit 2, naming the
//! flag), an offline submission (exit 0, queued durably, listed by `outbox`), and a
//! tower that cannot be reached (exit 1 for `fetch` and `outbox --flush`). The exchanges
//! with a live tower are tested in `system/server/tests/device_client.rs`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh state directory under the system temp dir, removed on drop.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let p = std::env::temp_dir().join(format!(
            "sovereign-device-cli-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        StateDir(p)
    }
    fn arg(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn sovereign(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sovereign"));
    c.args(args).env_remove("SOVEREIGN_DEVICE_STATE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn device_help_lists_its_commands() {
    // Goal: `device --help` names catalog, fetch, submit and outbox.
    let o = sovereign(&["device", "--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    for cmd in ["catalog", "fetch", "submit", "outbox"] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

#[test]
fn submit_with_the_tower_down_is_queued_offline_and_listed() {
    // Goal: no tower is not an error for submit: exit 0, "queued offline", and the op is
    // in the outbox a later process lists.
    let state = StateDir::new("offline");
    let tower = dead_url();
    let o = sovereign(
        &[
            "device",
            "submit",
            "--tower",
            &tower,
            "--state",
            state.arg(),
            "--type",
            "message",
            "--to",
            "clinic",
            "--body",
            "boil water",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    // The key is this device's: its generated identity, number 1, a random part.
    let key = out
        .split_whitespace()
        .next()
        .expect("the key first")
        .to_string();
    let parts: Vec<&str> = key.split(':').collect();
    assert!(
        parts.len() == 3 && parts[0].len() >= 16 && parts[1] == "00000001" && parts[2].len() == 16,
        "{out}"
    );
    assert!(out.contains(&format!("{key} queued offline")), "{out}");
    let identity = std::fs::read_to_string(state.0.join("device-1").join("identity")).unwrap();
    assert_eq!(identity.trim().len(), 64, "a 32-byte secret, hex");

    // The state directory comes from the environment just as well.
    let o = sovereign(
        &["device", "outbox", "--tower", &tower],
        &[("SOVEREIGN_DEVICE_STATE", state.arg())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("1 operation(s) queued"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&key) && l.contains("message") && l.contains(" 1 ")),
        "{out}"
    );

    // Flushing into the void keeps it and says so (exit 1: it is still queued).
    let o = sovereign(
        &[
            "device",
            "outbox",
            "--flush",
            "--tower",
            &tower,
            "--state",
            state.arg(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("0 delivered, 1 still queued"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn submit_flags_that_do_not_fit_the_type_are_usage_errors() {
    // Goal: exit 2 with the missing or misplaced flag named; nothing is queued.
    let state = StateDir::new("usage");
    for (flags, says) in [
        (&["--type", "message", "--to", "x"][..], "--body"),
        (
            &["--type", "form", "--name", "f", "--to", "x"][..],
            "--to does not apply",
        ),
        (
            &["--type", "form", "--name", "f", "--field", "novalue"][..],
            "NAME=VALUE",
        ),
    ] {
        let mut args = vec!["device", "submit", "--state", state.arg()];
        args.extend_from_slice(flags);
        let o = sovereign(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        assert!(
            text(&o.stderr).contains(says),
            "{flags:?}: {}",
            text(&o.stderr)
        );
    }
    assert!(
        !state.0.exists(),
        "a usage error must not touch the state directory"
    );
}

#[test]
fn fetch_from_an_unreachable_tower_is_exit_1_and_writes_nothing() {
    // Goal: a tower error is exit 1 with the reason; no file appears.
    let state = StateDir::new("fetch");
    std::fs::create_dir_all(&state.0).unwrap();
    let out = state.0.join("item.bin");
    let o = sovereign(
        &[
            "device",
            "fetch",
            "item",
            "--tower",
            &dead_url(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("unreachable"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists());
}

#[test]
fn a_bad_tower_url_is_a_usage_error() {
    // Goal: exit 2 naming --tower (https:// is a good scheme since TLS: another is not).
    let o = sovereign(&["device", "catalog", "--tower", "ftp://tower:8080"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--tower"), "{}", text(&o.stderr));
}
