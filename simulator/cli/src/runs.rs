//! Run history on the command line: every report the CLI writes (a run's `--report`, a
//! game day, a console journal) appends a line to its reports folder's `history.jsonl`
//! and refreshes the folder's `index.html` ([`record`]); `sovereign runs [DIR]` lists the
//! history with each scenario's resilience score and trend ([`list`]).
//!
//! Report folders written before the history existed (or copied in) are listed too, from
//! their `summary.json`, stamped with the file's modification time.
//!
//! Not covered: the formats (see `sovereign_report::history`), pruning old folders.

use crate::RunsArgs;
use crate::wall::{modified_unix, unix_now};
use anyhow::{Context, Result};
use sovereign_report::RunData;
use sovereign_report::history::{HISTORY_FILE, HistoryEntry, index_html, parse_history, runs_text};
use sovereign_report::openmetrics::format_utc;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest history file read (about a million entries).
pub const HISTORY_BYTES_MAX: u64 = 256 << 20;
/// Largest `summary.json` read from a folder without a history line.
const SUMMARY_BYTES_MAX: u64 = 4 << 20;

/// The reports folder a report folder belongs to (its parent; `.` for a bare name).
fn reports_root(report_dir: &Path) -> PathBuf {
    match report_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Append run `d`, whose report was just written into `report_dir`, to the history of
/// the folder above it, and refresh that folder's `index.html`. Prints where.
pub fn record(report_dir: &Path, d: &RunData) -> Result<()> {
    let root = reports_root(report_dir);
    let name = report_dir
        .file_name()
        .map_or_else(|| ".".into(), |n| n.to_string_lossy().to_string());
    let entry = HistoryEntry::of(d, &name, &format_utc(unix_now()));
    let path = root.join(HISTORY_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(entry.line().as_bytes())
        .with_context(|| format!("cannot append to {}", path.display()))?;
    let index = write_index(&root)?;
    println!("history: {} (index {})", path.display(), index.display());
    Ok(())
}

/// The history of `root`: its file's entries plus report folders it does not name, in
/// time order; and how many old lines were left out.
fn load(root: &Path) -> Result<(Vec<HistoryEntry>, usize)> {
    let path = root.join(HISTORY_FILE);
    let (mut entries, skipped) = if path.is_file() {
        let text =
            sovereign_wire::input::read_capped_text(&path, HISTORY_BYTES_MAX, "run history")?;
        parse_history(&text, &path.display().to_string())?
    } else {
        (Vec::new(), 0)
    };
    let named: BTreeSet<String> = entries.iter().map(|e| e.dir.clone()).collect();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(rd) => rd.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    for dir in dirs {
        let summary = dir.join("summary.json");
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if named.contains(&name) || !summary.is_file() {
            continue;
        }
        if let Some(e) = from_summary(&summary, &name)? {
            entries.push(e);
        }
    }
    // Stable: entries written in the same second keep their order.
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    Ok((entries, skipped))
}

/// A history entry for a report folder from its `summary.json` (a sweep's is not a run:
/// `None`).
fn from_summary(path: &Path, name: &str) -> Result<Option<HistoryEntry>> {
    let text = sovereign_wire::input::read_capped_text(path, SUMMARY_BYTES_MAX, "report summary")?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a report summary", path.display()))?;
    let kind = v["kind"].as_str().unwrap_or_default();
    if kind != "run" && kind != "gameday" {
        return Ok(None);
    }
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(Some(HistoryEntry {
        at: format_utc(modified_unix(path).unwrap_or(0)),
        dir: name.to_string(),
        kind: kind.to_string(),
        scenario: s("scenario"),
        seed: v["seed"].as_u64().unwrap_or(0),
        plant: v["plant"].as_str().map(String::from),
        exit_code: v["exit_code"]
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(0),
        verdict: s("verdict"),
        score: v["kpis"]["resilience_score"].as_f64(),
        confirmed: v["gameday"]["confirmed"].as_bool(),
        build: s("build"),
        trace_hash: s("trace_hash"),
    }))
}

/// Write `root/index.html` from its history; returns its path.
fn write_index(root: &Path) -> Result<PathBuf> {
    let (entries, _) = load(root)?;
    let html = index_html(&entries, |dir| root.join(dir).join("report.html").is_file());
    let path = root.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `sovereign runs [DIR]`.
pub fn list(a: RunsArgs) -> Result<u8> {
    let root = a.dir;
    if !root.is_dir() {
        anyhow::bail!(
            "{}: no such folder (reports go to reports/ by default; pass the folder that holds \
             them)",
            root.display()
        );
    }
    let (entries, skipped) = load(&root)?;
    if a.json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::to_value(e).expect("an entry serialises"))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{}", runs_text(&entries, a.limit));
        if skipped > 0 {
            println!("({skipped} older history lines not read)");
        }
        let index = write_index(&root)?;
        println!("\nindex: {}", index.display());
    }
    Ok(0)
}
