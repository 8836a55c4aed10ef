//! Reports and exports on the command line: `sovereign report DIR` (rebuild a report
//! from its saved data) and the `--report`, `--openmetrics`, `--annotations`, `--start`
//! flags of `sim run` and `sim sweep`, resolved into [`Exports`] and written by
//! [`Exports::write_run`] / [`Exports::write_sweep`].
//!
//! Map: [`rebuild`], [`Exports`] (`resolve`, `wants_series`, `write_run`,
//! `write_sweep`), [`default_run_dir`], [`default_sweep_dir`].
//!
//! Not covered: the formats themselves (see `sovereign_report`).

use crate::ReportArgs;
use anyhow::{Context, Result, anyhow};
use sovereign_report::openmetrics::{
    DEFAULT_START, format_utc, parse_utc, run_openmetrics, sweep_openmetrics,
};
use sovereign_report::{RunData, SweepData, annotations::run_annotations};
use std::path::{Path, PathBuf};

/// Where reports go when `--report` has no directory.
pub const REPORTS_DIR: &str = "reports";

/// `sovereign report DIR`.
pub fn rebuild(a: ReportArgs) -> Result<u8> {
    let files = sovereign_report::rebuild(&a.dir)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(0)
}

/// A file-name-safe form of `s`.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `reports/<scenario>-seed<N>[-<plant>]`.
pub fn default_run_dir(scenario: &str, seed: u64, plant: Option<&str>) -> PathBuf {
    let mut name = format!("{}-seed{seed}", slug(scenario));
    if let Some(p) = plant {
        name.push('-');
        name.push_str(p);
    }
    Path::new(REPORTS_DIR).join(name)
}

/// `reports/sweep-<scenarios>-seeds<from>-<end>[-<plant>]`.
pub fn default_sweep_dir(
    scenarios: &[String],
    from: u64,
    seeds: u64,
    plant: Option<&str>,
) -> PathBuf {
    let names = match scenarios {
        [] => "none".to_string(),
        [one] => slug(one),
        [first, rest @ ..] => format!("{}-and-{}-more", slug(first), rest.len()),
    };
    let end = u128::from(from) + u128::from(seeds);
    let mut name = format!("sweep-{names}-seeds{from}-{end}");
    if let Some(p) = plant {
        name.push('-');
        name.push_str(p);
    }
    Path::new(REPORTS_DIR).join(name)
}

/// The export flags, resolved.
#[derive(Debug, Clone)]
pub struct Exports {
    /// `--report`: absent, or with an optional directory.
    pub report: Option<Option<PathBuf>>,
    /// `--openmetrics FILE`.
    pub openmetrics: Option<PathBuf>,
    /// `--annotations FILE` (runs only).
    pub annotations: Option<PathBuf>,
    /// `--start`, Unix seconds.
    pub start: i64,
}

/// Writes `text` to `path`, creating its directory.
pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

impl Exports {
    /// Check the flags (a bad `--start` is a usage error before any run).
    pub fn resolve(
        report: Option<Option<PathBuf>>,
        openmetrics: Option<PathBuf>,
        annotations: Option<PathBuf>,
        start: Option<String>,
    ) -> Result<Exports> {
        let start = match start {
            Some(s) => parse_utc(&s).map_err(|e| anyhow!("--start: {e}"))?,
            None => DEFAULT_START,
        };
        Ok(Exports {
            report,
            openmetrics,
            annotations,
            start,
        })
    }

    /// Whether the run must keep its time series.
    pub fn wants_series(&self) -> bool {
        self.report.is_some() || self.openmetrics.is_some() || self.annotations.is_some()
    }

    /// Write what was asked for a run; prints one line per output.
    pub fn write_run(&self, d: &RunData) -> Result<()> {
        let mut written = None;
        if let Some(dir) = &self.report {
            let dir = dir
                .clone()
                .unwrap_or_else(|| default_run_dir(&d.scenario, d.seed, d.plant.as_deref()));
            sovereign_report::write_run(&dir, d)?;
            println!("report: {}", dir.join("report.html").display());
            written = Some(dir);
        }
        if let Some(path) = &self.openmetrics {
            write(path, &run_openmetrics(d, self.start))?;
            println!(
                "openmetrics: {} (virtual time 0 at {}, a sample every {} s: the dashboards' \
                 rate window must be at least twice that; `auto` is, over the whole run)",
                path.display(),
                format_utc(self.start),
                d.series.step_s
            );
        }
        if let Some(path) = &self.annotations {
            let a = run_annotations(d, self.start);
            let mut text = serde_json::to_string_pretty(&a).context("annotations")?;
            text.push('\n');
            write(path, &text)?;
            println!("annotations: {} ({} entries)", path.display(), a.len());
        }
        // Last, and best effort: the history never costs an export.
        if let Some(dir) = written {
            crate::runs::record(&dir, d);
        }
        Ok(())
    }

    /// Write what was asked for a sweep.
    pub fn write_sweep(&self, d: &SweepData) -> Result<()> {
        if let Some(dir) = &self.report {
            let dir = dir.clone().unwrap_or_else(|| {
                default_sweep_dir(&d.scenarios, d.from, d.seeds, d.plant.as_deref())
            });
            sovereign_report::write_sweep(&dir, d)?;
            println!("report: {}", dir.join("report.html").display());
        }
        if let Some(path) = &self.openmetrics {
            write(path, &sweep_openmetrics(d, self.start))?;
            println!("openmetrics: {}", path.display());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dirs_name_the_run() {
        // Goal: default report directories say scenario, seeds and plant.
        assert_eq!(
            default_run_dir("fibre cut", 3, Some("skip-verify")),
            PathBuf::from("reports/fibre_cut-seed3-skip-verify")
        );
        assert_eq!(
            default_sweep_dir(&["a".into(), "b".into(), "c".into()], 0, 10, None),
            PathBuf::from("reports/sweep-a-and-2-more-seeds0-10")
        );
    }
}
