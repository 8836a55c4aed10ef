//! `sovereign sim merge`: the records of a sweep's shards (`sim sweep --records`, one
//! `shard-<i>-of-<n>.json` per shard, from as many machines as ran them) into one JUnit,
//! one summary and one report, naming the shards that are missing.
//!
//! Exit code: the worst of the shards' (as one machine's sweep of the same seeds would
//! end), or 2 when shards are missing — a partial sweep does not pass.
//!
//! Not covered: running shards (`sim sweep`, and the cluster files in docs/deploy/).

use crate::MergeArgs;
use crate::report::Exports;
use anyhow::{Context, Result, bail};
use sovereign_report::junit::junit_xml;
use sovereign_report::shards::{ShardRecord, merge as merge_records};
use sovereign_sim::failure::shell_quote;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest record file read (a 100,000-seed shard with every run failing stays far below).
const RECORD_BYTES_MAX: u64 = 256 << 20;
/// Most record files one merge reads.
const RECORDS_MAX: usize = 1 << 20;
/// Missing seeds named one by one.
const MISSING_SEEDS_SHOWN: usize = 8;

/// `sovereign sim merge`.
pub fn merge(a: MergeArgs) -> Result<u8> {
    let r = a.results;
    let exports = Exports::resolve(r.report, r.openmetrics, None, r.start)?;
    let mut files: Vec<PathBuf> = Vec::new();
    for input in &a.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot read directory {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_record_name(p) && p.is_file())
                .collect();
            if found.is_empty() {
                println!(
                    "note: {} holds no shard-<i>-of-<n>.json record",
                    input.display()
                );
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
        if files.len() > RECORDS_MAX {
            bail!("more than {RECORDS_MAX} record files");
        }
    }
    let mut records = Vec::with_capacity(files.len());
    for path in &files {
        records.push((path.display().to_string(), read_record(path)?));
    }
    let merged = merge_records(records)?;
    let first = &merged.records[0];
    println!(
        "merge: {} of {} shards, {} scenario(s) × seeds {}..{}, plant {}, build {}",
        merged.records.len(),
        first.shard_count,
        first.scenarios.len(),
        first.from,
        u128::from(first.from) + u128::from(first.seeds),
        first.plant.as_deref().unwrap_or("none"),
        first.build
    );
    if first.build != crate::BUILD {
        println!(
            "note: the shards ran build {}, this is {}: replay commands need that build",
            first.build,
            crate::BUILD
        );
    }
    for f in merged.failures() {
        let f = &f.failure;
        println!(
            "FAIL {} seed {} (exit {}): {}",
            f.scenario, f.seed, f.exit_code, f.detail
        );
        println!("  replay: {}", f.replay);
    }
    for (index, kept, dropped) in &merged.repeated {
        println!(
            "shard {index}/{} given twice with the same failures: kept {kept}, not {dropped}",
            first.shard_count
        );
    }
    if !merged.missing.is_empty() {
        let list: Vec<String> = merged.missing.iter().map(u64::to_string).collect();
        let seeds: Vec<String> = merged
            .missing_seeds(MISSING_SEEDS_SHOWN + 1)
            .iter()
            .map(u64::to_string)
            .collect();
        let more = if seeds.len() > MISSING_SEEDS_SHOWN {
            ", …"
        } else {
            ""
        };
        println!(
            "MISSING shards {} of {}: seeds {}{more} were not run",
            list.join(", "),
            first.shard_count,
            seeds[..seeds.len().min(MISSING_SEEDS_SHOWN)].join(", ")
        );
        let paths: Vec<String> = first
            .scenarios
            .iter()
            .map(|s| shell_quote(&s.path))
            .collect();
        println!(
            "  run each with: sovereign sim sweep {} --from {} --seeds {} --shard I/{}{} --records DIR",
            paths.join(" "),
            first.from,
            first.seeds,
            first.shard_count,
            first
                .plant
                .as_ref()
                .map(|p| format!(" --plant {p}"))
                .unwrap_or_default()
        );
    }
    println!(
        "summary: {}; {} of {} shards",
        merged.summary_line(),
        merged.records.len(),
        first.shard_count
    );
    println!("coverage: {}", merged.coverage_line());
    if let Some(path) = &r.junit {
        crate::report::write(path, &junit_xml(&merged.cases()))?;
        println!("junit: {}", path.display());
    }
    if exports.report.is_some() || exports.openmetrics.is_some() {
        exports.write_sweep(&merged.sweep_data())?;
    }
    Ok(merged.exit_code())
}

/// `shard-<i>-of-<n>.json`.
fn is_record_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("shard-"))
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.split_once("-of-"))
        .is_some_and(|(i, n)| i.parse::<u64>().is_ok() && n.parse::<u64>().is_ok())
}

/// A record file: bounded, parsed, and checked to be a shard.
fn read_record(path: &Path) -> Result<ShardRecord> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(RECORD_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > RECORD_BYTES_MAX {
        bail!(
            "{}: larger than {RECORD_BYTES_MAX} bytes: not a shard record",
            path.display()
        );
    }
    let record: ShardRecord = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a shard record", path.display()))?;
    if let Err(e) = record.check() {
        bail!("{}: {e}", path.display());
    }
    Ok(record)
}
