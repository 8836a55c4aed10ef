//! The limits of a scenario file: the table in `docs/SCENARIOS.md` is the one the code
//! enforces; each cost limit of the whole scenario refuses a file that every per-value
//! check accepts, at the field that took it over; a scenario "file" that never ends
//! (`/dev/zero`, a FIFO fed forever) is refused after the size cap.

use sovereign_sim::scenario::limits::{
    CHUNK_COPIES_MAX, CONTENT_BYTES_MAX, DEVICES_TOTAL_MAX, NEMESIS_FAULTS_MAX, OPS_TOTAL_MAX,
    PUBLICATIONS_MAX, READS_TOTAL_MAX, TABLE, TOWER_HOURS_MAX,
};
use sovereign_sim::scenario::parse::TEXT_BYTES_MAX;
use sovereign_sim::scenario::{parse_file, parse_str};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_documented_limits_are_the_enforced_ones() {
    // Goal: docs/SCENARIOS.md's limits table lists exactly the constants the parser and
    // the cost check enforce, with their values, so the documentation cannot drift.
    let doc = std::fs::read_to_string(repo().join("docs/SCENARIOS.md")).expect("SCENARIOS.md");
    let section = doc
        .split("\n## Limits\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a ## Limits section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let (name, rest) = l.split_once('`').expect("`NAME`");
            let value = rest.split('|').nth(1).expect("a value column").trim();
            (name.to_string(), value.to_string())
        })
        .collect();
    let code: Vec<(String, String)> = TABLE
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(rows, code, "docs/SCENARIOS.md's limits table != the code's");
}

/// A scenario of `towers` towers of `devices` devices, lasting `duration`, plus `extra`.
fn scenario(towers: u32, devices: u32, duration: &str, extra: &str) -> String {
    format!(
        "duration = \"{duration}\"\nliveness_bound = \"1h\"\n\n[[tower]]\ncount = {towers}\ndevices = {devices}\nlinks = [\"fibre\"]\n{extra}"
    )
}

/// Parse `text`; the error's line, field and message.
fn refused(text: &str) -> (usize, String, String) {
    match parse_str("t.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => (e.line, e.field, e.message),
    }
}

#[test]
fn each_cost_limit_refuses_at_the_field_that_took_it_over() {
    // Goal: every cost limit has a scenario just over it, each value of which is within
    // its own range; the error names the field, the limit and the value; and a scenario
    // just under every limit still parses.
    let cases: Vec<(String, usize, &str, u64)> = vec![
        (
            scenario(11, 100_000, "1h", ""),
            6,
            "tower[0].devices",
            DEVICES_TOTAL_MAX,
        ),
        (
            scenario(1000, 1, "200h", ""),
            1,
            "duration",
            TOWER_HOURS_MAX,
        ),
        (
            scenario(
                1,
                1,
                "1h",
                "[workload]\ncatalog = [\n { priority = \"P0\", items = 16, size = \"64MiB\" },\n { priority = \"P1\", items = 1, size = 1 },\n]\n",
            ),
            11,
            "workload.catalog[1].size",
            CONTENT_BYTES_MAX,
        ),
        (
            scenario(
                200,
                1,
                "1h",
                "[origin]\nchunk_min_bytes = 64\nchunk_avg_bytes = 256\nchunk_max_bytes = 1024\n[workload]\ncatalog = [{ priority = \"P0\", items = 100, size = \"64KiB\" }]\n",
            ),
            13,
            "workload.catalog[0].size",
            CHUNK_COPIES_MAX,
        ),
        (
            scenario(
                1,
                1,
                "300d",
                "[workload]\npublish_per_hour = { P3 = 1000 }\npublish_size = { P3 = 1 }\n",
            ),
            9,
            "workload.publish_per_hour",
            PUBLICATIONS_MAX,
        ),
        (
            scenario(
                1,
                1,
                "1h",
                "[workload]\npublish_per_hour = { P2 = 20 }\npublish_size = { P2 = \"64MiB\" }\n",
            ),
            9,
            "workload.publish_per_hour",
            CONTENT_BYTES_MAX,
        ),
        (
            scenario(10, 1000, "201h", "[workload]\nops_per_device_hour = 1\n"),
            9,
            "workload.ops_per_device_hour",
            OPS_TOTAL_MAX,
        ),
        (
            scenario(
                100,
                10_000,
                "20h",
                "[workload]\nreads_per_device_hour = 1\n",
            ),
            9,
            "workload.reads_per_device_hour",
            READS_TOTAL_MAX,
        ),
        (
            scenario(
                1,
                1,
                "30d",
                "[nemesis]\nnetwork_per_hour = 100\nclock_per_hour = 100\n",
            ),
            10,
            "nemesis.clock_per_hour",
            NEMESIS_FAULTS_MAX,
        ),
    ];
    for (text, line, field, limit) in cases {
        let (l, f, m) = refused(&text);
        assert_eq!((l, f.as_str()), (line, field), "{m}\n{text}");
        assert!(
            m.contains(&format!("over the limit of {limit} per scenario; expected")),
            "{field}: {m}"
        );
    }
    // Just under: the biggest of each, together, still parses.
    let under = scenario(
        10,
        100_000,
        "20h",
        "[workload]\ncatalog = [{ priority = \"P0\", items = 16, size = \"64MiB\" }]\nops_per_device_hour = 0.1\nreads_per_device_hour = 0.9\n[nemesis]\nnetwork_per_hour = 1000\n",
    );
    parse_str("t.toml", &under).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_reported_fixtures_are_refused_before_any_allocation() {
    // Goal: the two files reported in issue 11 (1000 × 100 000 devices; 256 × 10 000 ×
    // 64 MiB of catalog) are refused by the parser: a run never starts.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    for (name, field) in [
        ("devices-in-all-towers", "tower[0].devices"),
        ("catalog-bytes", "workload.catalog[0].size"),
    ] {
        let e = parse_file(&dir.join(format!("{name}.toml"))).expect_err(name);
        assert_eq!(e.field, field, "{e}");
    }
}

#[cfg(unix)]
#[test]
fn an_endless_scenario_file_is_refused_after_the_cap() {
    // Goal: /dev/zero and a FIFO that is written forever are read only up to the cap,
    // then refused with an error naming the file and the cap (no line: it has none).
    let cap = TEXT_BYTES_MAX;
    let e = parse_file(Path::new("/dev/zero")).expect_err("/dev/zero");
    assert_eq!(
        e.to_string(),
        format!(
            "/dev/zero: the scenario file is larger than {cap} bytes (1 MiB), the most accepted; expected a smaller file"
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("endless.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("yes 'x = 1' > '{}'", fifo.display()))
        .spawn()
        .expect("a writer");
    let e = parse_file(&fifo).expect_err("fifo");
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(
        e.to_string()
            .ends_with(&format!("the scenario file is larger than {cap} bytes (1 MiB), the most accepted; expected a smaller file")),
        "{e}"
    );
    assert_eq!(e.line, 0);
}

#[test]
fn a_scenario_that_is_not_utf8_names_the_line() {
    // Goal: bad UTF-8 is reported at its line and byte, not as `file:0: :`.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("latin1.toml");
    std::fs::write(&p, b"duration = \"1h\"\nname = \"caf\xe9\"\n").unwrap();
    let e = parse_file(&p).expect_err("latin-1");
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}:2: the scenario file is not UTF-8 text: byte 27 (0xe9, column 12 of line 2)",
            p.display()
        )),
        "{e}"
    );
}
