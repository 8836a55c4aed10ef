//! The likelihood report of a failure (`sim replay FILE --likelihood`): how often the
//! failure recurs when its run branches at points before it, drawn under the run's
//! fault timeline on the same time axis, so the moment the run became doomed lines up
//! with the faults around it.
//!
//! Map: [`LikelihoodData`] (saved as `likelihood.json`), [`LikelihoodPoint`],
//! [`likelihood_chart`], [`likelihood_html`], [`write`].
//!
//! Not covered: running the branches (the CLI), the statistics (`sovereign_sim::likelihood`).

use crate::data::RunData;
use crate::render::{at_clock, fault_bands, fault_lanes, html_head};
use crate::svg::{Chart, Line, esc, line_chart, timeline_chart};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// [`LikelihoodData`]'s format version.
pub const LIKELIHOOD_FORMAT: u32 = 1;

/// One branch point's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodPoint {
    /// The branch point, seconds from the start.
    pub at_s: f64,
    /// Branches run from it.
    pub runs: u32,
    /// Branches in which the failure recurred.
    pub recurred: u32,
    /// Their share.
    pub rate: f64,
    /// The 95% Wilson interval of the share.
    pub low: f64,
    /// The 95% Wilson interval of the share.
    pub high: f64,
}

/// A likelihood estimate, as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodData {
    /// [`LIKELIHOOD_FORMAT`].
    pub format: u32,
    /// The failure file.
    pub failure_file: String,
    /// The scenario's name.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// The planted bug, if any.
    pub plant: Option<String>,
    /// What failed ("the durability violation", "the SLO miss").
    pub failure: String,
    /// When it failed, seconds from the start.
    pub failure_at_s: f64,
    /// Branches per point.
    pub branches: u32,
    /// The points, in time order.
    pub points: Vec<LikelihoodPoint>,
    /// The share from which a run counts as doomed.
    pub doomed_rate: f64,
    /// The first point from which the failure recurs in at least `doomed_rate` of the
    /// branches at every later point, seconds.
    pub doomed_from_s: Option<f64>,
    /// The later point (index into `points`) of the pair between which the share rose
    /// most, the last point left out: where the run's fate was mostly decided.
    pub sharpest_rise: Option<usize>,
    /// The rare moments the recorded run reached, with when (seconds).
    pub moments: Vec<(String, f64)>,
    /// The build.
    pub build: String,
    /// The command that made it.
    pub command: String,
}

/// The chart: the share of branches in which the failure recurred against the branch
/// point, with its 95% interval, the doomed share dashed, the failure and the doomed
/// point marked, the fault windows shaded; x over `span` hours (the timeline's).
pub fn likelihood_chart(l: &LikelihoodData, run: &RunData, span: (f64, f64)) -> String {
    let mut c = Chart::new(
        &format!(
            "P(the failure recurs) when the run branches here: {} branches per point",
            l.branches
        ),
        "share of branches",
    );
    c.x_range = Some(span);
    c.y_range = Some((0.0, 1.0));
    c.hlines = vec![(
        l.doomed_rate,
        format!("doomed: ≥ {:.0}%", l.doomed_rate * 100.0),
    )];
    c.markers = vec![(
        l.failure_at_s / 3600.0,
        format!("{} at {}", l.failure, at_clock(l.failure_at_s)),
    )];
    if let Some(d) = l.doomed_from_s {
        c.markers
            .push((d / 3600.0, format!("doomed from {}", at_clock(d))));
    }
    for (m, at) in &l.moments {
        c.markers
            .push((at / 3600.0, format!("rare moment {m} at {}", at_clock(*at))));
    }
    let h = |p: &LikelihoodPoint| p.at_s / 3600.0;
    let lines = [
        Line {
            name: "share of branches that fail again".into(),
            points: l.points.iter().map(|p| (h(p), Some(p.rate))).collect(),
        },
        Line {
            name: "95% interval, low".into(),
            points: l.points.iter().map(|p| (h(p), Some(p.low))).collect(),
        },
        Line {
            name: "95% interval, high".into(),
            points: l.points.iter().map(|p| (h(p), Some(p.high))).collect(),
        },
    ];
    line_chart(&c, &lines, &fault_bands(run))
}

/// The HTML page: the verdict, the fault timeline, the chart, the table.
pub fn likelihood_html(l: &LikelihoodData, run: &RunData) -> String {
    let mut w = String::new();
    let title = format!(
        "Likelihood: {} of {} seed {}",
        l.failure, l.scenario, l.seed
    );
    html_head(&mut w, &title);
    let _ = writeln!(w, "<h1>{}</h1>", esc(&title));
    let doomed = match l.doomed_from_s {
        Some(d) => format!(
            "From {} on, the failure recurred in at least {:.0}% of the branches at every point: the run was doomed by then; look just before it.",
            at_clock(d),
            l.doomed_rate * 100.0
        ),
        None => format!(
            "No point reaches {:.0}% up to the failure: it depends on draws to the very end.",
            l.doomed_rate * 100.0
        ),
    };
    let _ = writeln!(w, "<p>{}</p>", esc(&doomed));
    if let Some((a, b)) = l
        .sharpest_rise
        .and_then(|i| Some((l.points.get(i.checked_sub(1)?)?, l.points.get(i)?)))
    {
        let _ = writeln!(
            w,
            "<p>{}</p>",
            esc(&format!(
                "The share rose most between {} and {} ({:.2} → {:.2}): look there.",
                at_clock(a.at_s),
                at_clock(b.at_s),
                a.rate,
                b.rate
            ))
        );
    }
    if !l.moments.is_empty() {
        let list: Vec<String> = l
            .moments
            .iter()
            .map(|(m, at)| format!("{m} at {}", at_clock(*at)))
            .collect();
        let _ = writeln!(
            w,
            "<p>{}</p>",
            esc(&format!(
                "Rare moments the recorded run reached (numbered on the chart after the failure and the doomed point): {}.",
                list.join(", ")
            ))
        );
    }
    let _ = writeln!(
        w,
        "<p class=\"note\">{}</p>",
        esc(&format!(
            "Each branch is the recorded run up to its point, then fresh randomness for the network, disks, workload, weather, misuse and fault-site firings; the fault schedule and the towers' and devices' own generators stay. Failure file {}; plant {}; build {}. Made by: {}",
            l.failure_file,
            l.plant.as_deref().unwrap_or("none"),
            l.build,
            l.command
        ))
    );
    let span = span(l, run);
    let lanes = fault_lanes(run);
    if lanes.is_empty() {
        let _ = writeln!(w, "<p class=\"note\">No fault was injected.</p>");
    } else {
        w.push_str(&timeline_chart(
            &format!("Faults: {} in {} lanes", run.faults.len(), lanes.len()),
            "virtual time (h)",
            &lanes,
            span,
        ));
    }
    w.push_str(&likelihood_chart(l, run, span));
    let _ = writeln!(
        w,
        "<table><tr><th>branch point</th><th>failed again</th><th>share</th><th>95% interval</th></tr>"
    );
    for p in &l.points {
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}/{}</td><td>{:.2}</td><td>{:.2}–{:.2}</td></tr>",
            esc(&at_clock(p.at_s)),
            p.recurred,
            p.runs,
            p.rate,
            p.low,
            p.high
        );
    }
    let _ = writeln!(w, "</table>");
    w.push_str("</body></html>\n");
    w
}

/// The x range of the timeline and the chart, hours: the run, or up to the failure if
/// that is later.
fn span(l: &LikelihoodData, run: &RunData) -> (f64, f64) {
    (0.0, (run.end_s / 3600.0).max(l.failure_at_s / 3600.0))
}

/// Write `likelihood.html`, `likelihood.svg` (the chart alone) and `likelihood.json`
/// into `dir`; the paths written.
pub fn write(dir: &Path, l: &LikelihoodData, run: &RunData) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let span = span(l, run);
    let json = serde_json::to_string_pretty(l).map_err(std::io::Error::other)?;
    let files = [
        ("likelihood.html", likelihood_html(l, run)),
        ("likelihood.svg", likelihood_chart(l, run, span)),
        ("likelihood.json", json + "\n"),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        out.push(path);
    }
    Ok(out)
}
