//! Run history on the command line: every report the CLI writes (a run's `--report`, a
//! game day, a console journal) into a reports folder appends a line to that folder's
//! `history.jsonl` and refreshes its `index.html` ([`record`]); `sovereign runs [DIR]`
//! lists the history with each scenario's resilience score and trend ([`list`]).
//!
//! A reports folder is one named `reports` (the default) or one that already holds a
//! `history.jsonl` (`touch DIR/history.jsonl` makes one): a report written anywhere else
//! (`--report /tmp/x`) leaves no history behind it. Keeping the history is best effort: a
//! failure is a warning, never the run's exit status.
//!
//! Report folders written before the history existed (or copied in) are listed too, from
//! their `summary.json`, stamped with the file's modification time; an unreadable one is
//! skipped with a warning.
//!
//! Not covered: the formats (see `sovereign_report::history`), pruning old folders.

use crate::RunsArgs;
use crate::wall::{modified_unix, unix_now};
use anyhow::{Context, Result};
use sovereign_report::RunData;
use sovereign_report::history::{HISTORY_FILE, HistoryEntry, index_html, parse_history, runs_text};
use sovereign_report::openmetrics::format_utc;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Most bytes of the history read: past it, only its last lines (about a million).
pub const HISTORY_BYTES_MAX: u64 = 256 << 20;
/// Largest `summary.json` read from a report folder.
const SUMMARY_BYTES_MAX: u64 = 4 << 20;

/// The reports folder a report folder belongs to: its parent, when that is named
/// `reports` or already keeps a history.
fn reports_root(report_dir: &Path) -> Option<PathBuf> {
    let parent = match report_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let named = parent
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n == "reports"))
        .unwrap_or(false);
    (named || parent.join(HISTORY_FILE).is_file()).then_some(parent)
}

/// Append run `d`, whose report was just written into `report_dir`, to the history of
/// the reports folder above it, and refresh that folder's `index.html` (nothing when the
/// folder above is no reports folder). Best effort: a failure is printed as a warning.
pub fn record(report_dir: &Path, d: &RunData) {
    let Some(root) = reports_root(report_dir) else {
        return;
    };
    if let Err(e) = append(&root, report_dir, d) {
        eprintln!(
            "warning: the run history in {} was not updated: {e:#}",
            root.display()
        );
    }
}

fn append(root: &Path, report_dir: &Path, d: &RunData) -> Result<()> {
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
    let index = write_index(root)?;
    println!("history: {} (index {})", path.display(), index.display());
    Ok(())
}

/// The history file's text: all of it, or past [`HISTORY_BYTES_MAX`] its last that many
/// bytes from the first whole line; and whether older lines were cut.
fn history_text(path: &Path) -> Result<(String, bool)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let cut = len > HISTORY_BYTES_MAX;
    if cut {
        f.seek(SeekFrom::Start(len - HISTORY_BYTES_MAX))?;
    }
    let mut bytes = Vec::new();
    f.take(HISTORY_BYTES_MAX)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut {
        // The first line is a partial one.
        let from = text.find('\n').map_or(text.len(), |i| i + 1);
        text.drain(..from);
    }
    Ok((text, cut))
}

/// The history of `root`: its file's entries plus report folders it does not name, in
/// time order; and how many old lines or folders were left out.
fn load(root: &Path) -> Result<(Vec<HistoryEntry>, usize)> {
    let path = root.join(HISTORY_FILE);
    let (mut entries, mut skipped) = if path.is_file() {
        let (text, cut) = history_text(&path)?;
        let (entries, skipped) = parse_history(&text, &path.display().to_string())?;
        (entries, skipped + usize::from(cut))
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
        match from_summary(&summary, &name) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => {}
            Err(e) => {
                skipped += 1;
                eprintln!("warning: {} left out of the history: {e:#}", dir.display());
            }
        }
    }
    // Stable: entries written in the same second keep their order.
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    Ok((entries, skipped))
}

/// A report folder's `summary.json`, parsed.
fn summary(path: &Path) -> Result<serde_json::Value> {
    let text = sovereign_wire::input::read_capped_text(path, SUMMARY_BYTES_MAX, "report summary")?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a report summary", path.display()))
}

/// A history entry for a report folder from its `summary.json` (a sweep's is not a run:
/// `None`).
fn from_summary(path: &Path, name: &str) -> Result<Option<HistoryEntry>> {
    let v = summary(path)?;
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

/// Write `root/index.html` from its history; returns its path. An entry links its report
/// only while its folder still holds that run (the same trace hash): a rerun into the
/// same folder leaves the older entries unlinked.
fn write_index(root: &Path) -> Result<PathBuf> {
    let (entries, _) = load(root)?;
    let mut on_disk: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for e in &entries {
        on_disk.entry(e.dir.as_str()).or_insert_with(|| {
            let dir = root.join(&e.dir);
            if !dir.join("report.html").is_file() {
                return None;
            }
            summary(&dir.join("summary.json"))
                .ok()
                .and_then(|v| v["trace_hash"].as_str().map(String::from))
        });
    }
    let html = index_html(&entries, |e| {
        on_disk
            .get(e.dir.as_str())
            .and_then(|h| h.as_deref())
            .is_some_and(|h| h == e.trace_hash)
    });
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
            println!("({skipped} older history lines or unreadable folders left out)");
        }
        match write_index(&root) {
            Ok(index) => println!("\nindex: {}", index.display()),
            Err(e) => eprintln!("warning: no index written: {e:#}"),
        }
    }
    Ok(0)
}
