//! Grafana annotations for a run: one region per fault (its window), one point per
//! invariant violation and, for a game day, one point per timeline entry (tags
//! `sovereign`, `gameday`, the plan), in the shape of Grafana's annotations HTTP API
//! (`POST /api/annotations`: `time` and `timeEnd` in Unix milliseconds, `tags`, `text`).
//!
//! Map: [`Annotation`], [`run_annotations`].
//!
//! Not covered: posting them (see dashboards/README.md for the one-line loop).

use crate::data::RunData;
use serde::{Deserialize, Serialize};

/// Tag on every annotation from the simulator.
pub const TAG: &str = "sovereign";

/// One annotation as Grafana's API takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// Start, Unix milliseconds.
    pub time: i64,
    /// End, Unix milliseconds (= `time` for a point).
    pub time_end: i64,
    /// A region (fault window) rather than a point.
    pub is_region: bool,
    /// `sovereign`, then `fault`, `violation` or `gameday`, then family/kind/target, the
    /// oracle, or the plan.
    pub tags: Vec<String>,
    /// What, in one line.
    pub text: String,
}

fn ms(start: i64, s: f64) -> i64 {
    start
        .saturating_mul(1000)
        .saturating_add((s * 1000.0).round() as i64)
}

/// A point annotation at `time` (Unix ms) tagged [`TAG`] and `tags`.
fn point(time: i64, tags: &[&str], text: String) -> Annotation {
    Annotation {
        time,
        time_end: time,
        is_region: false,
        tags: std::iter::once(TAG)
            .chain(tags.iter().copied())
            .map(String::from)
            .collect(),
        text,
    }
}

/// A run's faults (regions) and violations (points), virtual second `s` at Unix second
/// `start + s`; in time order.
pub fn run_annotations(d: &RunData, start: i64) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = d
        .faults
        .iter()
        .map(|f| {
            let time = ms(start, f.start_s);
            let time_end = ms(start, f.end_s).max(time);
            let detected = f
                .detected_after_s
                .map_or_else(|| f.detection.clone(), |s| format!("after {s:.0}s"));
            let recovered = f
                .recovered_after_s
                .map_or_else(|| "-".into(), |s| format!("after {s:.0}s"));
            Annotation {
                time,
                time_end,
                is_region: time_end > time,
                tags: vec![
                    TAG.into(),
                    "fault".into(),
                    f.family.clone(),
                    f.kind.clone(),
                    f.target.clone(),
                ],
                text: format!(
                    "{} on {} ({}s; detected {detected}; recovered {recovered}) — {} seed {}",
                    f.kind,
                    f.target,
                    (f.end_s - f.start_s).round(),
                    d.scenario,
                    d.seed
                ),
            }
        })
        .collect();
    out.extend(d.violations.iter().map(|v| {
        point(
            ms(start, v.at_s),
            &["violation", &v.oracle],
            format!("VIOLATION {}: {}", v.oracle, v.detail),
        )
    }));
    if let Some(g) = &d.gameday {
        out.extend(g.timeline.iter().map(|e| {
            point(
                ms(start, e.at_s),
                &["gameday", &g.plan],
                format!("{} — {}: {}", g.title, e.who, e.what),
            )
        }));
    }
    out.sort_by_key(|a| (a.time, a.time_end));
    out
}
