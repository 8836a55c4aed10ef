//! Sim vs real: one scenario's KPIs from the simulator and from the lab, side by side,
//! each with the ratio lab/sim and the tolerance this project claims for it
//! (docs/FIDELITY.md). A KPI outside its tolerance is a fidelity failure: the simulator's
//! model or the servers are wrong, and someone has to find out which.
//!
//! Map: [`Tolerance`] (how close is close enough, and why), [`Row`] (one KPI of both
//! worlds and its [`Verdict`]), [`compare`] (the table: which KPIs, with which
//! tolerance), [`table`] (the text `lab fidelity` prints); [`version_rows`]: the
//! freshness of each version at each tower in both worlds (the freshness KPI's own
//! per-version samples, `sovereign_observe::kpi::freshness::Freshness`).
//!
//! Not covered: running the two worlds (the CLI's `lab fidelity` does, with
//! `sovereign_sim::run` and [`crate::run`]).

use crate::plan::tower_defaults;
use sovereign_logic::Time;
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use sovereign_observe::kpi::freshness::Freshness;
use sovereign_observe::kpi::{Kpis, format_bytes, format_us};
use sovereign_scenario::{FaultSpec, Scenario, Target};
use std::time::Duration;

/// How close the lab's value must be to the simulator's.
#[derive(Clone, Debug, PartialEq)]
pub enum Tolerance {
    /// `|lab − sim| ≤ max(rel × |sim|, abs)`: a relative tolerance with an absolute floor
    /// (the granularity of what is measured, e.g. one probe interval), and the reason for
    /// the floor.
    Within {
        /// Relative tolerance (0.10 = 10%).
        rel: f64,
        /// Absolute floor, in the KPI's unit.
        abs: f64,
        /// Why the floor is what it is.
        why: &'static str,
    },
    /// Not compared, and why not (a KPI one world cannot measure the same way).
    NotCompared(&'static str),
}

/// How a KPI's value reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A share, 0..=1.
    Share,
    /// Microseconds.
    Micros,
    /// A count.
    Count,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Share => format!("{v:.4}"),
            Unit::Micros => format_us(v.max(0.0) as u64),
            Unit::Count => format!("{v:.0}"),
            Unit::Bytes => format_bytes(v.max(0.0) as u64),
        }
    }
}

/// One KPI of both worlds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The KPI's name, as the KPI lines print it (`freshness P0 p99`).
    pub kpi: String,
    /// How the values read.
    pub unit: Unit,
    /// The simulator's value (`None`: the run has none, e.g. no fault was detected).
    pub sim: Option<f64>,
    /// The lab's value.
    pub lab: Option<f64>,
    /// How close they must be.
    pub tolerance: Tolerance,
}

/// What a row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both have a value, within the tolerance (or neither has one).
    Within,
    /// Both have a value, outside the tolerance.
    Outside,
    /// One world has a value and the other none (a fault detected in one only, a class
    /// with freshness samples in one only).
    Missing,
    /// Not compared.
    NotCompared,
}

impl Verdict {
    /// The word the table prints.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Within => "ok",
            Verdict::Outside => "OUTSIDE",
            Verdict::Missing => "MISSING",
            Verdict::NotCompared => "-",
        }
    }

    /// A fidelity failure.
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Outside | Verdict::Missing)
    }
}

impl Row {
    /// lab / sim (`None` when either is missing or the simulator's is 0).
    pub fn ratio(&self) -> Option<f64> {
        match (self.sim, self.lab) {
            (Some(s), Some(l)) if s != 0.0 => Some(l / s),
            _ => None,
        }
    }

    /// The allowed difference (`None`: not compared).
    pub fn allowed(&self) -> Option<f64> {
        match (&self.tolerance, self.sim) {
            (Tolerance::Within { rel, abs, .. }, Some(s)) => Some((rel * s.abs()).max(*abs)),
            (Tolerance::Within { abs, .. }, None) => Some(*abs),
            (Tolerance::NotCompared(_), _) => None,
        }
    }

    /// Within, outside, missing or not compared.
    pub fn verdict(&self) -> Verdict {
        let Some(allowed) = self.allowed() else {
            return Verdict::NotCompared;
        };
        match (self.sim, self.lab) {
            (Some(s), Some(l)) if (l - s).abs() <= allowed => Verdict::Within,
            (Some(_), Some(_)) => Verdict::Outside,
            (None, None) => Verdict::Within,
            _ => Verdict::Missing,
        }
    }
}

/// What `lab fidelity --json` writes.
#[derive(serde::Serialize)]
pub struct Comparison<'a> {
    /// The scenario's name.
    pub scenario: String,
    /// The seed of both runs.
    pub seed: u64,
    /// The simulated run's exit code.
    pub sim_exit: u8,
    /// The lab run's exit code.
    pub lab_exit: u8,
    /// Every KPI compared.
    #[serde(serialize_with = "rows_json")]
    pub rows: &'a [Row],
    /// Each version's freshness at each tower (informational: the freshness rows
    /// decide).
    #[serde(serialize_with = "rows_json")]
    pub versions: &'a [Row],
}

fn rows_json<S: serde::Serializer>(rows: &&[Row], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(rows.len()))?;
    for r in rows.iter() {
        let (rel, abs, why) = match &r.tolerance {
            Tolerance::Within { rel, abs, why } => (Some(*rel), Some(*abs), *why),
            Tolerance::NotCompared(why) => (None, None, *why),
        };
        seq.serialize_element(&serde_json::json!({
            "kpi": r.kpi,
            "unit": format!("{:?}", r.unit).to_lowercase(),
            "sim": r.sim,
            "lab": r.lab,
            "ratio": r.ratio(),
            "tolerance_rel": rel,
            "tolerance_abs": abs,
            "allowed": r.allowed(),
            "verdict": r.verdict().word(),
            "why": why,
        }))?;
    }
    seq.end()
}

/// Three standard errors of the difference between two read availabilities, pooled
/// (the two worlds draw their reads independently), at least 0.01.
fn availability_allowed(sim: &Kpis, lab: &Kpis) -> f64 {
    let (n1, n2) = (sim.reads_valid as f64, lab.reads_valid as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return 1.0;
    }
    let p = (sim.reads_good + lab.reads_good) as f64 / (n1 + n2);
    (3.0 * (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt()).max(0.01)
}

/// The interval the towers poll the catalog at in this scenario (the first tower's; the
/// logic's default without one).
fn catalog_poll(sc: &Scenario) -> Duration {
    sc.towers
        .iter()
        .find_map(|t| t.catalog_poll)
        .unwrap_or_else(|| tower_defaults().catalog_interval)
}

/// The longest probe interval of the scenario's towers (the logic's default for a tower
/// without one).
fn probe_interval(sc: &Scenario) -> Duration {
    let default = sovereign_logic::tower::link::ProbePolicy::default().interval;
    sc.towers
        .iter()
        .map(|t| t.probe_interval.unwrap_or(default))
        .max()
        .unwrap_or(default)
}

/// One version at one tower in both worlds: its row (the freshness rows' tolerance; no
/// value where it never became servable in that world), and the faults on that tower
/// (or the origin) that were on at some time between its publish and the later of its
/// two servables — or the end, where one world never made it servable (what a row
/// outside its tolerance is likely about).
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRow {
    /// `tower-0 p0-00005 v2 (P0)`.
    pub row: Row,
    /// `fault[3] link-down on tower-0/fibre at 10s`, for each such fault.
    pub faults: Vec<String>,
}

/// The freshness of every version the simulator published, at every tower, in both
/// worlds (publish order, then tower), each against the freshness tolerance;
/// `schedule`: the faults to name next to each version.
pub fn version_rows(
    sc: &Scenario,
    sim: &Freshness,
    lab: &Freshness,
    schedule: &[FaultSpec],
) -> Vec<VersionRow> {
    let tolerance = freshness_tolerance(sc);
    let mut order: Vec<_> = sim.published().iter().collect();
    order.sort_by_key(|(k, (at, _))| (*at, (*k).clone()));
    let mut rows = Vec::new();
    for ((item, version), (at, class)) in order {
        for (t, tower) in sc.towers.iter().enumerate() {
            let (s, l) = (
                sim.version_us(t, item, *version),
                lab.version_us(t, item, *version),
            );
            // Servable in both: up to the later; in one or none: up to the end.
            let until = s.zip(l).map(|(a, b)| *at + Duration::from_micros(a.max(b)));
            let faults = schedule
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    let on = match f.target {
                        Target::Tower(i) | Target::Link(i, _) | Target::Wifi(i) => i == t,
                        Target::Origin => true,
                    };
                    // On at some time between the publish and `until`.
                    let (start, end) = (Time::ZERO + f.at, Time::ZERO + f.at + f.duration);
                    on && end >= *at && until.is_none_or(|u| start <= u)
                })
                .map(|(i, f)| {
                    format!(
                        "fault[{i}] {} on {} at {}",
                        f.kind.name(),
                        sovereign_report::data::target_name(sc, &f.target),
                        sovereign_scenario::format_duration(f.at)
                    )
                })
                .collect();
            rows.push(VersionRow {
                row: Row {
                    kpi: format!("{} {item} v{version} ({class})", tower.name),
                    unit: Unit::Micros,
                    sim: s.map(|us| us as f64),
                    lab: l.map(|us| us as f64),
                    tolerance: tolerance.clone(),
                },
                faults,
            });
        }
    }
    rows
}

/// How close the two worlds' freshness must be: a version waits for the tower's next
/// catalog poll, whose phase differs.
fn freshness_tolerance(sc: &Scenario) -> Tolerance {
    Tolerance::Within {
        rel: 0.10,
        abs: catalog_poll(sc).as_micros() as f64,
        why: "a version waits for the tower's next catalog poll, whose phase \
              against the publishes differs between the worlds: up to one poll \
              interval",
    }
}

/// The comparison: every KPI both worlds measure, with its tolerance.
pub fn compare(sc: &Scenario, sim: &Kpis, lab: &Kpis) -> Vec<Row> {
    let us = |d: Duration| d.as_micros() as f64;
    let probe_us = us(probe_interval(sc));
    let exact = Tolerance::Within {
        rel: 0.0,
        abs: 0.0,
        why: "a count both worlds must agree on exactly",
    };
    let mut rows = vec![Row {
        kpi: "availability".into(),
        unit: Unit::Share,
        sim: Some(sim.availability),
        lab: Some(lab.availability),
        tolerance: Tolerance::Within {
            rel: 0.0,
            abs: availability_allowed(sim, lab),
            why: "each world draws its own device reads: three standard errors of the \
                  difference of two proportions (pooled), at least 0.01",
        },
    }];
    for (c, class) in Priority::ALL.iter().enumerate() {
        let (s, l) = (&sim.freshness[c], &lab.freshness[c]);
        if s.samples == 0 && l.samples == 0 {
            continue;
        }
        for (p, sv, lv) in [("p50", s.p50_us, l.p50_us), ("p99", s.p99_us, l.p99_us)] {
            rows.push(Row {
                kpi: format!("freshness {class} {p}"),
                unit: Unit::Micros,
                sim: sv.map(|v| v as f64),
                lab: lv.map(|v| v as f64),
                tolerance: freshness_tolerance(sc),
            });
        }
    }
    let secs = |d: Option<Duration>| d.map(us);
    let probe = Tolerance::Within {
        rel: 0.10,
        abs: probe_us,
        why: "detection and recovery are seen by periodic link probes; the lab's probe \
              phase against the fault's start is not controlled: up to one probe interval",
    };
    for (kpi, s, l) in [
        ("mttd", secs(sim.mttd), secs(lab.mttd)),
        ("mttr", secs(sim.mttr), secs(lab.mttr)),
        (
            "mttr after fault end",
            secs(sim.mttr_after_end),
            secs(lab.mttr_after_end),
        ),
    ] {
        rows.push(Row {
            kpi: kpi.into(),
            unit: Unit::Micros,
            sim: s,
            lab: l,
            tolerance: probe.clone(),
        });
    }
    let count = |kpi: &str, s: u64, l: u64, tolerance: Tolerance| Row {
        kpi: kpi.into(),
        unit: Unit::Count,
        sim: Some(s as f64),
        lab: Some(l as f64),
        tolerance,
    };
    rows.push(count("faults", sim.faults, lab.faults, exact.clone()));
    rows.push(count(
        "faults detected",
        sim.faults_detected,
        lab.faults_detected,
        exact.clone(),
    ));
    rows.push(count(
        "faults disrupting",
        sim.faults_disrupting,
        lab.faults_disrupting,
        exact.clone(),
    ));
    rows.push(count(
        "faults unrecovered",
        sim.faults_unrecovered,
        lab.faults_unrecovered,
        exact.clone(),
    ));
    rows.push(count(
        "failovers",
        sim.failovers,
        lab.failovers,
        exact.clone(),
    ));
    rows.push(count("rpo", sim.rpo, lab.rpo, exact.clone()));
    rows.push(count(
        "violations",
        sim.violations,
        lab.violations,
        exact.clone(),
    ));
    rows.push(count(
        "backlog max",
        sim.backlog_max,
        lab.backlog_max,
        Tolerance::NotCompared(
            "each world draws its own device operations, and the lab samples the outboxes once a \
             second where the simulator samples them once a minute",
        ),
    ));
    for kind in [LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite] {
        let (s, l) = (
            sim.bytes_per_link.get(&kind).copied(),
            lab.bytes_per_link.get(&kind).copied(),
        );
        if s.is_none() && l.is_none() {
            continue;
        }
        rows.push(Row {
            kpi: format!("bytes {kind}"),
            unit: Unit::Bytes,
            sim: s.map(|v| v as f64),
            lab: l.map(|v| v as f64),
            tolerance: Tolerance::Within {
                rel: 0.10,
                abs: 0.0,
                why: "the lab counts every byte through the uplink's proxy (HTTP included); \
                      the simulator counts each message's modelled size: a model that leaves \
                      bytes out is wrong",
            },
        });
    }
    rows
}

/// The table `lab fidelity` prints: KPI, simulator, lab, ratio, allowed difference,
/// verdict; then each distinct reason, numbered.
pub fn table(rows: &[Row]) -> Vec<String> {
    let mut reasons: Vec<&'static str> = Vec::new();
    let mut cells: Vec<[String; 6]> = vec![[
        "kpi".into(),
        "simulator".into(),
        "lab".into(),
        "lab/sim".into(),
        "tolerance".into(),
        "verdict".into(),
    ]];
    for r in rows {
        let show = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| r.unit.show(v));
        let why = match &r.tolerance {
            Tolerance::Within { why, .. } | Tolerance::NotCompared(why) => *why,
        };
        let n = match reasons.iter().position(|x| *x == why) {
            Some(i) => i + 1,
            None => {
                reasons.push(why);
                reasons.len()
            }
        };
        let tolerance = match &r.tolerance {
            Tolerance::Within { rel, abs, .. } => {
                let mut t = String::from("±");
                if *rel > 0.0 {
                    t.push_str(&format!("{:.0}%", rel * 100.0));
                    if *abs > 0.0 {
                        t.push_str(&format!(", ≥ {}", r.unit.show(*abs)));
                    }
                } else {
                    t.push_str(&r.unit.show(*abs));
                }
                format!("{t} [{n}]")
            }
            Tolerance::NotCompared(_) => format!("not compared [{n}]"),
        };
        cells.push([
            r.kpi.clone(),
            show(r.sim),
            show(r.lab),
            r.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}")),
            tolerance,
            r.verdict().word().into(),
        ]);
    }
    let mut width = [0usize; 6];
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out: Vec<String> = cells
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, (c, w)) in row.iter().zip(width).enumerate() {
                let pad = w - c.chars().count();
                if i == 0 || i == 4 {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                }
                line.push_str("  ");
            }
            line.trim_end().to_string()
        })
        .collect();
    for (i, why) in reasons.iter().enumerate() {
        out.push(format!("[{}] {why}", i + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sim: Option<f64>, lab: Option<f64>, rel: f64, abs: f64) -> Row {
        Row {
            kpi: "k".into(),
            unit: Unit::Count,
            sim,
            lab,
            tolerance: Tolerance::Within { rel, abs, why: "w" },
        }
    }

    /// Goal: the tolerance is the larger of the relative one and the floor; one world
    /// without a value is a failure; a not-compared row never fails.
    #[test]
    fn verdicts() {
        assert_eq!(
            row(Some(100.0), Some(109.0), 0.1, 1.0).verdict(),
            Verdict::Within
        );
        assert_eq!(
            row(Some(100.0), Some(111.0), 0.1, 1.0).verdict(),
            Verdict::Outside
        );
        assert_eq!(
            row(Some(100.0), Some(89.0), 0.1, 1.0).verdict(),
            Verdict::Outside
        );
        assert_eq!(
            row(Some(2.0), Some(6.0), 0.1, 5.0).verdict(),
            Verdict::Within
        );
        assert_eq!(
            row(Some(2.0), Some(8.0), 0.1, 5.0).verdict(),
            Verdict::Outside
        );
        assert_eq!(
            row(Some(3.0), Some(3.0), 0.0, 0.0).verdict(),
            Verdict::Within
        );
        assert_eq!(
            row(Some(3.0), Some(4.0), 0.0, 0.0).verdict(),
            Verdict::Outside
        );
        assert_eq!(row(Some(3.0), None, 0.1, 5.0).verdict(), Verdict::Missing);
        assert_eq!(row(None, None, 0.1, 5.0).verdict(), Verdict::Within);
        assert!(Verdict::Missing.fails() && Verdict::Outside.fails());
        let not = Row {
            tolerance: Tolerance::NotCompared("n"),
            ..row(Some(1.0), Some(100.0), 0.0, 0.0)
        };
        assert_eq!(not.verdict(), Verdict::NotCompared);
        assert!(!not.verdict().fails());
        assert_eq!(row(Some(4.0), Some(5.0), 0.0, 0.0).ratio(), Some(1.25));
        assert_eq!(row(Some(0.0), Some(5.0), 0.0, 0.0).ratio(), None);
    }

    /// Goal: the same KPIs give a table that is all `ok`; a planted difference in one
    /// KPI (the simulator's P0 freshness 20 times the lab's) is the one row outside.
    #[test]
    fn table_of_equal_and_planted_kpis() {
        let sc = sovereign_scenario::parse_str(
            "t.toml",
            "name = \"t\"\nseed = 1\nduration = \"60s\"\n\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\ncatalog_poll = \"1s\"\n",
        )
        .unwrap();
        let mut k = Kpis {
            availability: 0.98,
            failovers: 2,
            mttd: Some(Duration::from_secs(6)),
            ..Kpis::default()
        };
        k.freshness[0].samples = 10;
        k.freshness[0].p50_us = Some(200_000);
        k.freshness[0].p99_us = Some(900_000);
        k.bytes_per_link.insert(LinkKind::Fibre, 1000);
        let rows = compare(&sc, &k, &k);
        assert!(rows.iter().all(|r| !r.verdict().fails()), "{rows:?}");
        let names: Vec<&str> = rows.iter().map(|r| r.kpi.as_str()).collect();
        for want in [
            "availability",
            "freshness P0 p50",
            "freshness P0 p99",
            "mttd",
            "failovers",
            "rpo",
            "bytes fibre",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let mut planted = k.clone();
        planted.freshness[0].p99_us = Some(18_000_000);
        let rows = compare(&sc, &planted, &k);
        let outside: Vec<&str> = rows
            .iter()
            .filter(|r| r.verdict().fails())
            .map(|r| r.kpi.as_str())
            .collect();
        assert_eq!(outside, ["freshness P0 p99"]);
        let text = table(&rows).join("\n");
        assert!(text.contains("OUTSIDE"), "{text}");
        assert!(text.contains("[1] "), "{text}");
    }

    /// Goal: each version at each tower is paired by name between the worlds, judged
    /// with the freshness tolerance (±10%, at least one catalog poll), missing where it
    /// became servable in one world only, and a fault on that tower that started
    /// between its publish and its later servable (or on at its publish) is named next
    /// to it — one on another tower, or over before the publish, is not.
    #[test]
    fn versions_are_paired_by_name_and_the_faults_around_them_named() {
        use sovereign_logic::content::ItemId;
        use sovereign_logic::io::Event;
        use sovereign_observe::obs::{Obs, Stamped};
        let sc = sovereign_scenario::parse_str(
            "v.toml",
            "duration = \"1m\"\n[[tower]]\ncount = 2\ndevices = 1\nlinks = [\"fibre\", \"lte\"]\ncatalog_poll = \"1s\"\n\
             [[fault]]\nat = \"2s\"\nfor = \"5s\"\ntarget = \"tower-0/fibre\"\nkind = \"link-down\"\n\
             [[fault]]\nat = \"12s\"\nfor = \"5s\"\ntarget = \"tower-1\"\nkind = \"crash\"\n\
             [[fault]]\nat = \"1s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"pause\"\n",
        )
        .expect("parses");
        let manifest = |item: &str, version: u64| sovereign_logic::content::Manifest {
            item: ItemId(item.into()),
            version,
            priority: Priority::P0,
            size: 0,
            digest: sovereign_logic::content::ChunkHash([0; 32]),
            chunks: Vec::new(),
        };
        let world = |servable: &[(u64, usize, &str, u64)]| {
            let mut v = Freshness::default();
            for (item, version) in [("p0-00001", 1), ("p0-00001", 2)] {
                v.observe(&Stamped {
                    at: Time::from_secs(if version == 1 { 1 } else { 10 })
                        + Duration::from_millis(500),
                    obs: Obs::Published {
                        manifest: manifest(item, version),
                    },
                });
            }
            for (at_ms, tower, item, version) in servable {
                v.observe(&Stamped {
                    at: Time::ZERO + Duration::from_millis(*at_ms),
                    obs: Obs::Tower {
                        tower: *tower,
                        event: Event::ContentServable {
                            item: ItemId((*item).into()),
                            version: *version,
                            priority: Priority::P0,
                        },
                    },
                });
            }
            v
        };
        // v1 (published 1.5 s): tower-0 at 2.0 s in the simulator, 9.0 s in the lab (it
        // waited for the failover); tower-1 at 2.0 s and 2.3 s. v2 (10.5 s): tower-0 at
        // 11.0 s in both; tower-1 only in the simulator.
        let sim = world(&[
            (2000, 0, "p0-00001", 1),
            (2000, 1, "p0-00001", 1),
            (11_000, 0, "p0-00001", 2),
            (11_000, 1, "p0-00001", 2),
        ]);
        let lab = world(&[
            (9000, 0, "p0-00001", 1),
            (2300, 1, "p0-00001", 1),
            (11_000, 0, "p0-00001", 2),
        ]);
        let rows = version_rows(&sc, &sim, &lab, &sc.faults);
        let got: Vec<(String, Verdict, Vec<String>)> = rows
            .iter()
            .map(|v| (v.row.kpi.clone(), v.row.verdict(), v.faults.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "tower-0 p0-00001 v1 (P0)".into(),
                    Verdict::Outside,
                    vec![
                        "fault[0] link-down on tower-0/fibre at 2s".into(),
                        "fault[2] pause on tower-0 at 1s".into()
                    ]
                ),
                ("tower-1 p0-00001 v1 (P0)".into(), Verdict::Within, vec![]),
                ("tower-0 p0-00001 v2 (P0)".into(), Verdict::Within, vec![]),
                (
                    "tower-1 p0-00001 v2 (P0)".into(),
                    Verdict::Missing,
                    vec!["fault[1] crash on tower-1 at 12s".into()]
                ),
            ]
        );
    }
}
