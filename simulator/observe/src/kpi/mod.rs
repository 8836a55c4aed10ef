//! KPIs (DESIGN.md §7) measured from a run's observations as the run goes, and SLO checks.
//!
//! Every KPI is defined on the observation stream alone, so a simulated run and a real
//! one (whose event log maps onto the same [`Obs`]) are measured the same way.
//!
//! Each KPI family is one incremental computation in its own file, fed each observation
//! once; from that one state it gives its totals (fields of [`Kpis`], at
//! [`KpiScan::finish`]), what a chart samples at any time (its accessors, read through
//! [`KpiScan`]'s), and its text rows (in [`Kpis::lines`], which the CLI, the reports and
//! the console print):
//! - [`reads`]: availability (served / valid reads, also per tower), error budget and
//!   burn rates;
//! - [`freshness`]: publish → servable per class ([`ClassFreshness`]);
//! - [`faults`]: MTTD, MTTR, RTO compliance, blast radius ([`FaultOutcome`],
//!   [`Detection`]);
//! - [`power`]: serving time per tower, energy, state of charge;
//! - [`backlog`]: the outbox backlog;
//! - [`links`]: bytes per uplink, failovers, breaker openings;
//! - [`inversions`]: priority inversions (the priority oracle's rule);
//! - [`score`]: the resilience score, from the others against the SLOs.
//!
//! The RPO (acknowledged operations lost) is the durability oracle's count
//! ([`crate::oracle::Oracles::rpo`]; the rule lives there once), and the violations the
//! oracles' — the world sets both. This file: [`KpiScan`] (the families together),
//! [`Kpis`] with
//! [`Kpis::apply_slo`], [`Kpis::lines`] and [`Kpis::check`] ([`SloCheck`]); helpers
//! [`format_us`] (durations for people) and [`percentile`] (nearest rank).
//!
//! Not covered: invariant checking (see [`crate::oracle`]), devices affected by a fault
//! (blast radius counts towers), detection of clock faults (nothing in the log reveals
//! them), and Wi-Fi faults' MTTD (towers have no signal for their Wi-Fi).

pub mod backlog;
pub mod faults;
pub mod freshness;
pub mod inversions;
pub mod links;
pub mod power;
pub mod reads;
pub mod score;

pub use faults::{DETECT_GRACE, Detection, FaultOutcome};
pub use freshness::ClassFreshness;

use crate::obs::{Obs, Stamped};
use crate::oracle::tower_of;
use sovereign_logic::Time;
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use sovereign_scenario::{Slo, format_duration};
use std::collections::BTreeMap;
use std::time::Duration;

/// The period of the worst burn rate ([`Kpis::burn_rate_max`]): 10 virtual minutes.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(600);
/// Most periods kept (about 69 days at 10 minutes); later reads are left out of the worst
/// burn rate (not out of the other KPIs).
pub const SAMPLES_MAX: usize = 10_000;
/// The recovery bound for RTO compliance when the scenario sets no `mttr_max`.
pub const RTO_DEFAULT: Duration = Duration::from_secs(3600);

const _: () = assert!(SAMPLE_PERIOD.as_secs() > 0);

/// The KPIs of one run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kpis {
    /// Good device reads / valid device reads (1 when there was no valid read).
    pub availability: f64,
    /// Valid reads (the item exists at the origin).
    pub reads_valid: u64,
    /// Valid reads that were served.
    pub reads_good: u64,
    /// Tower names (index = tower id), from the run's start.
    #[serde(default)]
    pub tower_names: Vec<String>,
    /// Per tower: time running and not shutting down or off / run time (DESIGN §7's
    /// per-tower availability: uptime, which says nothing of whether reads were served;
    /// printed as "serving time per tower").
    pub tower_availability: Vec<f64>,
    /// Per tower: (valid reads served, valid reads) — the read availability of each
    /// tower, which the overall [`Kpis::availability`] sums.
    #[serde(default)]
    pub tower_reads: Vec<(u64, u64)>,
    /// Freshness per class (index = class).
    #[serde(with = "crate::kpi_serde::classes")]
    pub freshness: [ClassFreshness; 4],
    /// (tower, item, version) never servable because a later version arrived first.
    pub freshness_superseded: u64,
    /// Faults injected.
    pub faults: u64,
    /// Faults detected.
    pub faults_detected: u64,
    /// Detectable faults never detected.
    pub faults_undetected: u64,
    /// Faults nothing in the log can detect (clock, Wi-Fi).
    pub faults_undetectable: u64,
    /// Faults that disrupted a target's steady state.
    pub faults_disrupting: u64,
    /// Disrupting faults never recovered from.
    pub faults_unrecovered: u64,
    /// Mean time to detect, over detected faults.
    #[serde(rename = "mttd_s", with = "crate::kpi_serde::opt_secs")]
    pub mttd: Option<Duration>,
    /// Mean (steady again − fault start) over recovered disrupting faults.
    #[serde(rename = "mttr_s", with = "crate::kpi_serde::opt_secs")]
    pub mttr: Option<Duration>,
    /// Mean (steady again − fault end) over recovered disrupting faults.
    #[serde(rename = "mttr_after_end_s", with = "crate::kpi_serde::opt_secs")]
    pub mttr_after_end: Option<Duration>,
    /// Acknowledged operations lost.
    pub rpo: u64,
    /// The recovery bound RTO compliance was measured against.
    #[serde(rename = "rto_bound_s", with = "crate::kpi_serde::secs")]
    pub rto_bound: Duration,
    /// Share of disrupting faults recovered within `rto_bound` (`None`: none).
    pub rto_compliance: Option<f64>,
    /// Mean over faults of towers not steady during the fault / towers.
    pub blast_radius: Option<f64>,
    /// 1 − (bad / valid) / (1 − availability SLO), when an availability SLO is set.
    pub error_budget_remaining: Option<f64>,
    /// (bad / valid) / (1 − availability SLO) over the run: 1 spends the budget exactly.
    pub burn_rate: Option<f64>,
    /// The worst burn rate of one [`SAMPLE_PERIOD`].
    pub burn_rate_max: Option<f64>,
    /// Highest total outbox backlog (all towers), operations.
    pub backlog_max: u64,
    /// Total outbox backlog at the end, operations.
    pub backlog_final: u64,
    /// Bytes moved per uplink kind (both directions).
    #[serde(with = "crate::kpi_serde::link_names")]
    pub bytes_per_link: BTreeMap<LinkKind, u64>,
    /// Active-link changes.
    pub failovers: u64,
    /// Circuit-breaker openings.
    pub breaker_openings: u64,
    /// Energy drawn by all towers' loads, Wh.
    pub energy_wh: f64,
    /// Lowest state of charge of any tower (`None`: no power sample).
    pub soc_lowest: Option<f64>,
    /// Lower-class chunk requests issued while P0 work waited.
    pub priority_inversions: u64,
    /// Bytes of those requests.
    pub priority_inversion_bytes: u64,
    /// Invariant violations (set by the world from the oracles).
    pub violations: u64,
    /// The resilience score, 0 to 100 ([`score`]); set by [`Kpis::apply_slo`], which
    /// must come after the RPO and the violations are set.
    pub resilience_score: Option<f64>,
    /// The score is 0 because the safety gate failed (a violation, operations lost).
    #[serde(default)]
    pub resilience_gate: bool,
    /// Per [`SAMPLE_PERIOD`]: (valid reads served, valid reads), for the worst burn rate.
    #[serde(skip)]
    pub read_periods: Vec<(u64, u64)>,
    /// Every fault and what came of it.
    #[serde(skip)]
    pub fault_outcomes: Vec<FaultOutcome>,
}

/// The `p`-th percentile (1..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    assert!((1..=100).contains(&p));
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    Some(
        sorted[usize::try_from(rank - 1)
            .unwrap_or(usize::MAX)
            .min(sorted.len() - 1)],
    )
}

/// A duration in microseconds for people: `250us`, `12ms`, `4.5s`, `1m32s`, `2h5m`.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        return format!("{us}us");
    }
    if us < 1_000_000 {
        return format!("{}ms", us / 1_000);
    }
    if us < 60_000_000 {
        return format!("{}.{}s", us / 1_000_000, (us % 1_000_000) / 100_000);
    }
    let mut s = us / 1_000_000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// Bytes as people read them (binary units, one decimal): `512 B`, `1.5 KiB`, `22.3 MiB`.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn format_dur(d: Duration) -> String {
    format_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The mean of durations in microseconds, truncated to a microsecond (how MTTD and MTTR
/// are averaged; a chart of them over time uses it too, so its last point is the KPI).
pub fn mean_us(values: &[u64]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
    let mean = sum / values.len() as u128;
    Some(Duration::from_micros(
        u64::try_from(mean).unwrap_or(u64::MAX),
    ))
}

fn opt_f(v: Option<f64>, p: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.p$}"))
}

/// The entry for index `i`, growing `v` with defaults up to it.
fn grow<T: Default>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize_with(i + 1, T::default);
    }
    &mut v[i]
}

/// One text row: the KPI's name and its value.
type Row = (String, String);

/// The KPIs measured as a run goes: every family, fed each observation once, in time
/// order, and finished at the end. What it keeps grows with the run's notable events
/// (publishes, versions made servable, faults, detection signals, steady-state changes)
/// and its length in [`SAMPLE_PERIOD`]s, not with its reads and transfers. The families
/// are public so that charts and the console can sample them as the run goes.
#[derive(Clone, Debug, Default)]
pub struct KpiScan {
    /// The first observation's time (the run's start), once seen.
    t0: Option<Time>,
    /// The last observation's time.
    t_end: Time,
    /// Tower names (index = tower id), from the run's start.
    names: Vec<String>,
    /// Towers heard of (named at the start or seen in an observation).
    towers: usize,
    /// Availability and reads.
    pub reads: reads::Reads,
    /// Freshness.
    pub freshness: freshness::Freshness,
    /// Faults and steady states.
    pub faults: faults::Faults,
    /// Power and serving time.
    pub power: power::Power,
    /// The outbox backlog.
    pub backlog: backlog::Backlog,
    /// Uplinks.
    pub links: links::Links,
    /// Chunk requests and priority inversions.
    pub inversions: inversions::Inversions,
}

impl KpiScan {
    /// Feed one observation (in time order).
    pub fn observe(&mut self, s: &Stamped) {
        let t0 = *self.t0.get_or_insert(s.at);
        debug_assert!(s.at >= self.t_end, "observations must come in time order");
        self.t_end = s.at;
        if let Some(t) = tower_of(&s.obs) {
            self.towers = self.towers.max(t + 1);
        }
        if let Obs::Start { towers, .. } = &s.obs {
            self.names = towers.clone();
            self.towers = self.towers.max(towers.len());
        }
        self.reads.observe(s);
        self.freshness.observe(s);
        self.faults.observe(s);
        self.power.observe(s, t0);
        self.backlog.observe(s);
        self.links.observe(s);
        self.inversions.observe(s);
    }

    /// Tower names (index = tower id), from the run's start.
    pub fn tower_names(&self) -> &[String] {
        &self.names
    }

    /// Towers heard of so far.
    pub fn towers(&self) -> usize {
        self.towers
    }

    /// The KPIs of everything observed (SLO-relative ones against no SLO; the RPO and
    /// the violations are the oracles' to set).
    pub fn finish(&self) -> Kpis {
        let t0 = self.t0.unwrap_or(Time::ZERO);
        let mut k = Kpis {
            tower_names: self.names.clone(),
            ..Kpis::default()
        };
        self.reads.finish(&mut k);
        self.freshness.finish(&mut k, self.towers);
        self.faults.finish(&mut k, self.towers, self.t_end);
        self.power.finish(&mut k, self.towers, t0, self.t_end);
        self.backlog.finish(&mut k);
        self.links.finish(&mut k);
        self.inversions.finish(&mut k);
        k.apply_slo(&Slo::default());
        k
    }
}

impl Kpis {
    /// Fill the KPIs that depend on the scenario's SLOs: RTO compliance (against
    /// `mttr_max`, else [`RTO_DEFAULT`]), error budget and burn rates (when an
    /// availability SLO below 1 is set), and last the resilience score (which reads
    /// them, the RPO and the violations: set those first).
    pub fn apply_slo(&mut self, slo: &Slo) {
        faults::apply_slo(self, slo);
        reads::apply_slo(self, slo);
        score::apply_slo(self, slo);
    }

    fn tower_name(&self, i: usize) -> String {
        self.tower_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("tower#{i}"))
    }

    /// Human-readable summary lines, one per KPI, names aligned.
    pub fn lines(&self) -> Vec<String> {
        let rows = self.rows();
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        rows.into_iter()
            .map(|(n, v)| format!("{n:<width$}  {v}"))
            .collect()
    }

    /// The KPIs as (name, value) rows, in [`Kpis::lines`]' order and words: what the
    /// CLI prints, the reports' KPI table shows.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<Row> = vec![reads::availability_row(self)];
        rows.extend(power::serving_row(self));
        rows.extend(reads::per_tower_row(self));
        rows.extend(freshness::rows(self));
        rows.extend(faults::rows(self));
        rows.push((
            "rpo".into(),
            format!("{} acknowledged operations lost", self.rpo),
        ));
        rows.extend(faults::recovery_rows(self));
        rows.push(reads::budget_row(self));
        rows.push(backlog::row(self));
        rows.extend(links::rows(self));
        rows.extend(power::rows(self));
        rows.push(inversions::row(self));
        rows.push(("violations".into(), format!("{}", self.violations)));
        rows.push(score::row(self));
        rows
    }

    /// Check the scenario's SLOs. `rpo` is always checked (its bound defaults to 0).
    pub fn check(&self, slo: &Slo) -> Vec<SloCheck> {
        let mut out = Vec::new();
        if let Some(min) = slo.availability_min {
            out.push(SloCheck {
                name: format!("availability >= {min}"),
                pass: self.availability >= min,
                measured: format!("{:.4}", self.availability),
            });
        }
        for (class, (max, f)) in Priority::ALL
            .iter()
            .zip(slo.freshness_p99_max.iter().zip(&self.freshness))
        {
            let Some(max) = max else { continue };
            let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
            out.push(SloCheck {
                name: format!("freshness {class} p99 <= {}", format_duration(*max)),
                pass: f.p99_us.is_none_or(|p| p <= max_us),
                measured: f.p99_us.map_or_else(|| "n/a".into(), format_us),
            });
        }
        if let Some(max) = slo.mttr_max {
            let mut measured = self.mttr.map_or_else(|| "n/a".into(), format_dur);
            if self.faults_unrecovered > 0 {
                measured.push_str(&format!(" ({} never recovered)", self.faults_unrecovered));
            }
            out.push(SloCheck {
                name: format!("mttr <= {}", format_duration(max)),
                pass: self.faults_unrecovered == 0 && self.mttr.is_none_or(|m| m <= max),
                measured,
            });
        }
        out.push(SloCheck {
            name: format!("rpo <= {}", slo.rpo_max),
            pass: self.rpo <= slo.rpo_max,
            measured: format!("{}", self.rpo),
        });
        if let Some(min) = slo.soc_min {
            out.push(SloCheck {
                name: format!("lowest soc >= {min}"),
                pass: self.soc_lowest.is_none_or(|s| s >= min),
                measured: self
                    .soc_lowest
                    .map_or_else(|| "n/a".into(), |s| format!("{s:.3}")),
            });
        }
        out
    }
}

/// One SLO and whether it held.
#[derive(Clone, Debug, PartialEq)]
pub struct SloCheck {
    /// e.g. `availability >= 0.99`
    pub name: String,
    /// held?
    pub pass: bool,
    /// the measured value, formatted
    pub measured: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::ReadResult;
    use crate::oracle::test_util::{at, manifest, start};
    use sovereign_logic::content::ItemId;
    use sovereign_logic::io::{Event, PowerMode};
    use sovereign_logic::protocol::IdemKey;
    use sovereign_logic::tower::Refusal;
    use sovereign_scenario::{FaultKind, FaultSpec, Target};
    use std::collections::BTreeSet;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(23_393_536), "22.3 MiB");
        assert_eq!(format_bytes(5 << 30), "5.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16777216.0 TiB");
    }

    /// The KPIs of a whole log as a run measures them, the RPO (the durability oracle's
    /// count) included.
    fn from_observations(obs: &[Stamped]) -> Kpis {
        let mut scan = KpiScan::default();
        let mut oracles = crate::oracle::Oracles::new(&BTreeSet::new());
        for s in obs {
            scan.observe(s);
            oracles.observe(s);
        }
        let mut k = scan.finish();
        k.rpo = oracles.rpo();
        k
    }

    fn read(s: u64, valid: bool, result: ReadResult) -> Stamped {
        at(
            s,
            Obs::Read {
                tower: 0,
                item: ItemId::new("a"),
                valid,
                result,
                tower_powered: true,
            },
        )
    }

    fn power(s: u64, tower: usize, soc: f64, mode: PowerMode, energy_wh: f64) -> Stamped {
        at(
            s,
            Obs::Power {
                tower,
                soc,
                mode,
                energy_wh,
                solar_w: 0.0,
            },
        )
    }

    fn tower_event(s: u64, tower: usize, event: Event) -> Stamped {
        at(s, Obs::Tower { tower, event })
    }

    fn steady(s: u64, tower: usize, steady: bool) -> Stamped {
        at(s, Obs::Steady { tower, steady })
    }

    fn fault(s: u64, id: u64, target: Target, kind: FaultKind, secs: u64) -> Stamped {
        at(
            s,
            Obs::FaultStart {
                id,
                spec: FaultSpec {
                    at: Duration::from_secs(s),
                    duration: Duration::from_secs(secs),
                    target,
                    kind,
                },
            },
        )
    }

    fn fault_end(s: u64, id: u64, target: Target) -> Stamped {
        at(s, Obs::FaultEnd { id, target })
    }

    fn request(s: u64, class: Priority, bytes: u64, p0_waiting: bool) -> Stamped {
        let (tower, link) = (0, LinkKind::Fibre);
        let obs = Obs::Requested {
            tower,
            link,
            class,
            bytes,
            p0_waiting,
        };
        at(s, obs)
    }

    fn counters_run() -> Vec<Stamped> {
        vec![
            start(2),
            read(1, true, ReadResult::Served),
            read(2, true, ReadResult::Served),
            read(3, true, ReadResult::Unreachable),
            read(4, true, ReadResult::Served),
            read(5, false, ReadResult::Refused(Refusal::NotHeld)),
            at(
                6,
                Obs::Transfer {
                    tower: 0,
                    link: LinkKind::Fibre,
                    bytes: 100,
                },
            ),
            at(
                6,
                Obs::Transfer {
                    tower: 1,
                    link: LinkKind::Fibre,
                    bytes: 50,
                },
            ),
            at(
                7,
                Obs::Transfer {
                    tower: 1,
                    link: LinkKind::Satellite,
                    bytes: 10,
                },
            ),
            power(8, 0, 0.8, PowerMode::Normal, 10.0),
            power(8, 1, 0.9, PowerMode::Normal, 3.0),
            power(9, 0, 0.5, PowerMode::Normal, 12.0),
            tower_event(
                10,
                0,
                Event::ActiveLink {
                    from: Some(LinkKind::Fibre),
                    to: Some(LinkKind::Lte),
                },
            ),
            tower_event(
                11,
                0,
                Event::ActiveLink {
                    from: Some(LinkKind::Lte),
                    to: Some(LinkKind::Fibre),
                },
            ),
            tower_event(12, 1, Event::BreakerOpened),
            request(12, Priority::P3, 100, true),
            request(12, Priority::P1, 200, true),
            request(12, Priority::P0, 50, true), // P0 itself: no inversion
            request(12, Priority::P2, 70, false),
            at(13, Obs::Backlog { tower: 0, ops: 5 }),
            at(13, Obs::Backlog { tower: 1, ops: 3 }),
            at(14, Obs::Backlog { tower: 0, ops: 0 }),
        ]
    }

    #[test]
    fn counters_availability_bytes_power() {
        // Goal: availability, bytes per link, SoC, energy, failovers, breaker, backlog and
        // priority inversions (the oracle's rule: below P0 while P0 waits) match
        // hand-computed values.
        let k = from_observations(&counters_run());
        assert_eq!((k.reads_good, k.reads_valid), (3, 4));
        assert_eq!(k.availability, 0.75);
        assert_eq!(
            k.bytes_per_link,
            BTreeMap::from([(LinkKind::Fibre, 150), (LinkKind::Satellite, 10)])
        );
        assert_eq!(k.soc_lowest, Some(0.5));
        assert_eq!(k.energy_wh, 15.0);
        assert_eq!(k.failovers, 2);
        assert_eq!(k.breaker_openings, 1);
        assert_eq!(
            (k.priority_inversions, k.priority_inversion_bytes),
            (2, 300)
        );
        assert_eq!((k.backlog_max, k.backlog_final), (8, 3));
        assert_eq!(k.rpo, 0);
        assert_eq!(k.tower_names, vec!["tower-0", "tower-1"]);
        let lines = k.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("availability ") && l.contains("0.7500"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("bytes satellite") && l.ends_with(" 10 B"))
        );
        // Aligned: every value starts in the same column.
        let col = |l: &String| {
            l.find("  ")
                .map(|i| i + l[i..].len() - l[i..].trim_start().len())
        };
        let first = col(&lines[0]);
        assert!(lines.iter().all(|l| col(l) == first), "{lines:#?}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        // Goal: nearest-rank percentiles on integers, deterministic at the edges.
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn freshness_per_class() {
        // Goal: publish → first servable per (tower, item, version), p50/p99 per class,
        // never-servable and superseded versions counted apart.
        let servable = |s, tower, item: &str, version, priority| {
            tower_event(
                s,
                tower,
                Event::ContentServable {
                    item: ItemId::new(item),
                    version,
                    priority,
                },
            )
        };
        let publish = |s, item: &str, version, priority| {
            at(
                s,
                Obs::Published {
                    manifest: manifest(item, version, priority, &["x"]),
                },
            )
        };
        let seq = [
            start(2),
            publish(0, "a", 1, Priority::P0),
            publish(0, "c", 1, Priority::P2),
            servable(2, 0, "a", 1, Priority::P0),
            servable(4, 1, "a", 1, Priority::P0),
            servable(5, 1, "a", 1, Priority::P0), // not the first: ignored
            publish(10, "b", 1, Priority::P0),
            servable(13, 0, "b", 1, Priority::P0),
            publish(100, "c", 2, Priority::P2),
            servable(110, 0, "c", 2, Priority::P2),
        ];
        let k = from_observations(&seq);
        let p0 = &k.freshness[0];
        assert_eq!(p0.samples, 3);
        assert_eq!(p0.p50_us, Some(3_000_000));
        assert_eq!(p0.p99_us, Some(4_000_000));
        assert_eq!(p0.unservable, 1); // b at tower-1
        let p2 = &k.freshness[2];
        assert_eq!(
            (p2.samples, p2.p50_us, p2.p99_us),
            (1, Some(10_000_000), Some(10_000_000))
        );
        assert_eq!(p2.unservable, 2); // c v1 and v2 at tower-1
        assert_eq!(k.freshness_superseded, 1); // c v1 at tower-0
        assert_eq!(k.freshness[1], ClassFreshness::default());
    }

    fn faults_run() -> Vec<Stamped> {
        vec![
            start(2),
            // 1: fibre of tower-0 down 100..200; detected at 103; steady again at 230.
            fault(
                100,
                1,
                Target::Link(0, LinkKind::Fibre),
                FaultKind::LinkDown,
                100,
            ),
            steady(101, 0, false),
            tower_event(
                103,
                0,
                Event::LinkHealth {
                    link: LinkKind::Fibre,
                    up: false,
                },
            ),
            fault_end(200, 1, Target::Link(0, LinkKind::Fibre)),
            steady(230, 0, true),
            // 2: tower-1 crash 300..310; detected at once; steady again at 320.
            fault(300, 2, Target::Tower(1), FaultKind::Crash, 10),
            steady(300, 1, false),
            fault_end(310, 2, Target::Tower(1)),
            steady(320, 1, true),
            // 3: clock skew: undetectable, not disrupting.
            fault(
                400,
                3,
                Target::Tower(0),
                FaultKind::ClockSkew { ppm: 100 },
                100,
            ),
            fault_end(500, 3, Target::Tower(0)),
            // 4: write errors never surfacing: undetected, not disrupting.
            fault(
                600,
                4,
                Target::Tower(1),
                FaultKind::WriteError { p: 0.1 },
                100,
            ),
            fault_end(700, 4, Target::Tower(1)),
        ]
    }

    #[test]
    fn mttd_mttr_blast_radius_rto() {
        // Goal: MTTD, MTTR (from start and from end), blast radius and RTO compliance
        // match hand-computed values.
        let mut k = from_observations(&faults_run());
        assert_eq!(k.faults, 4);
        assert_eq!(
            (
                k.faults_detected,
                k.faults_undetected,
                k.faults_undetectable
            ),
            (2, 1, 1)
        );
        assert_eq!(k.mttd, Some(Duration::from_millis(1_500)));
        assert_eq!((k.faults_disrupting, k.faults_unrecovered), (2, 0));
        assert_eq!(k.mttr, Some(Duration::from_secs(75)));
        assert_eq!(k.mttr_after_end, Some(Duration::from_secs(20)));
        assert_eq!(k.blast_radius, Some(0.25));
        assert_eq!(k.rto_compliance, Some(1.0));
        let slo = Slo {
            mttr_max: Some(Duration::from_secs(60)),
            ..Slo::default()
        };
        k.apply_slo(&slo);
        assert_eq!(k.rto_compliance, Some(0.5));
        let c = k.check(&slo);
        let mttr = c
            .iter()
            .find(|c| c.name == "mttr <= 1m")
            .expect("mttr checked");
        assert!(!mttr.pass);
        assert_eq!(mttr.measured, "1m15s");
    }

    #[test]
    fn unrecovered_fault_and_lost_ack() {
        // Goal: a hard cut detected by the stop, never steady again, counts as
        // unrecovered and fails the MTTR SLO; an acked op lost at it is the RPO.
        let seq = [
            start(1),
            at(
                5,
                Obs::Acked {
                    tower: 0,
                    key: IdemKey("k".into()),
                    fingerprint: sovereign_logic::content::ChunkHash([1; 32]),
                },
            ),
            fault(10, 1, Target::Tower(0), FaultKind::HardCut, 50),
            steady(10, 0, false),
            at(
                12,
                Obs::TowerDown {
                    tower: 0,
                    clean: false,
                    durable_outbox: BTreeSet::new(),
                },
            ),
            fault_end(60, 1, Target::Tower(0)),
            at(90, Obs::TowerUp { tower: 0 }),
        ];
        let k = from_observations(&seq);
        assert_eq!(k.mttd, Some(Duration::from_secs(2)));
        assert_eq!((k.faults_disrupting, k.faults_unrecovered), (1, 1));
        assert_eq!(k.mttr, None);
        assert_eq!(k.rto_compliance, Some(0.0));
        assert_eq!(k.rpo, 1);
        let slo = Slo {
            mttr_max: Some(Duration::from_secs(600)),
            ..Slo::default()
        };
        let c = k.check(&slo);
        assert!(c.iter().all(|c| !c.pass), "{c:?}");
        assert!(c.iter().any(|c| c.name == "rpo <= 0" && c.measured == "1"));
    }

    #[test]
    fn tower_availability_counts_serving_time() {
        // Goal: per-tower availability = running and not shutting down / run time.
        let seq = [
            start(1),
            at(0, Obs::TowerUp { tower: 0 }),
            power(10, 0, 0.9, PowerMode::Normal, 1.0),
            at(
                60,
                Obs::TowerDown {
                    tower: 0,
                    clean: true,
                    durable_outbox: BTreeSet::new(),
                },
            ),
            at(80, Obs::TowerUp { tower: 0 }),
            tower_event(
                90,
                0,
                Event::PowerMode {
                    from: PowerMode::Normal,
                    to: PowerMode::ShuttingDown,
                },
            ),
            at(100, Obs::Backlog { tower: 0, ops: 0 }),
        ];
        let k = from_observations(&seq);
        assert_eq!(k.tower_availability, vec![0.7]);
    }

    #[test]
    fn reads_served_per_tower_sum_to_the_overall_availability() {
        // Goal: a tower that is up all the time but cannot serve what is asked shows it:
        // its read share is printed next to its serving time, and the overall figure is
        // the sum over towers (scenarios/bench/scale.toml: 0.60 overall, ≥ 0.997 uptime).
        let on = |s: u64, tower: usize, result: ReadResult| {
            at(
                s,
                Obs::Read {
                    tower,
                    item: ItemId::new("a"),
                    valid: true,
                    result,
                    tower_powered: true,
                },
            )
        };
        let seq = [
            start(2),
            on(1, 0, ReadResult::Served),
            on(2, 0, ReadResult::Refused(Refusal::NotHeld)),
            on(3, 1, ReadResult::Served),
            on(4, 1, ReadResult::Served),
            read(5, false, ReadResult::Unreachable), // not valid: not counted
        ];
        let k = from_observations(&seq);
        assert_eq!(k.tower_reads, vec![(1, 2), (2, 2)]);
        assert_eq!((k.reads_good, k.reads_valid), (3, 4));
        let lines = k.lines();
        let row = |name: &str| {
            let line = lines
                .iter()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} line in {lines:?}"));
            line[name.len()..].trim().to_string()
        };
        assert_eq!(
            row("reads served per tower"),
            "tower-0 0.5000, tower-1 1.0000"
        );
        assert_eq!(
            row("serving time per tower"),
            "tower-0 1.0000, tower-1 1.0000"
        );
    }

    #[test]
    fn the_worst_burn_rate_is_that_of_the_worst_ten_minutes() {
        // Goal: reads are counted per 10 minutes (none in an empty period); with a 0.9
        // SLO, 1 bad read in 2 burns at 5 over its period and 1 in 3 over the run.
        let seq = [
            start(1),
            read(10, true, ReadResult::Served),
            read(20, true, ReadResult::Unreachable),
            read(1300, true, ReadResult::Served),
        ];
        let mut k = from_observations(&seq);
        assert_eq!(k.read_periods, vec![(1, 2), (0, 0), (1, 1)]);
        k.apply_slo(&Slo {
            availability_min: Some(0.9),
            ..Slo::default()
        });
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(near(k.burn_rate_max, 5.0), "{:?}", k.burn_rate_max);
        assert!(near(k.burn_rate, 10.0 / 3.0), "{:?}", k.burn_rate);
    }

    #[test]
    fn slo_checks_and_error_budget() {
        // Goal: each SLO passes or fails against the measured value; the error budget
        // and burn rate follow from the availability SLO.
        let mut k = from_observations(&counters_run());
        let loose = Slo {
            availability_min: Some(0.5),
            freshness_p99_max: [Some(Duration::from_secs(5)), None, None, None],
            mttr_max: None,
            rpo_max: 0,
            soc_min: Some(0.4),
        };
        let c = k.check(&loose);
        assert_eq!(c.len(), 4, "{c:?}");
        assert!(c.iter().all(|c| c.pass), "{c:?}");
        assert_eq!(c[0].name, "availability >= 0.5");
        assert_eq!(c[0].measured, "0.7500");
        k.apply_slo(&loose);
        assert_eq!(k.burn_rate, Some(0.5));
        assert_eq!(k.error_budget_remaining, Some(0.5));
        let tight = Slo {
            availability_min: Some(0.95),
            soc_min: Some(0.6),
            ..Slo::default()
        };
        let c = k.check(&tight);
        assert!(!c[0].pass && c[0].name == "availability >= 0.95");
        let soc = c
            .iter()
            .find(|c| c.name == "lowest soc >= 0.6")
            .expect("soc checked");
        assert!(!soc.pass);
        assert_eq!(soc.measured, "0.500");

        let f = Kpis {
            freshness: [
                ClassFreshness {
                    samples: 1,
                    p50_us: Some(4_000_000),
                    p99_us: Some(4_000_000),
                    unservable: 0,
                },
                ClassFreshness::default(),
                ClassFreshness::default(),
                ClassFreshness::default(),
            ],
            ..Kpis::default()
        };
        let tight_fresh = Slo {
            freshness_p99_max: [
                Some(Duration::from_secs(3)),
                Some(Duration::from_secs(1)),
                None,
                None,
            ],
            ..Slo::default()
        };
        let c = f.check(&tight_fresh);
        assert_eq!(c[0].name, "freshness P0 p99 <= 3s");
        assert!(!c[0].pass);
        assert_eq!(c[0].measured, "4.0s");
        assert!(c[1].pass && c[1].measured == "n/a");
    }

    #[test]
    fn durations_read_well() {
        // Goal: durations print as people write them.
        assert_eq!(format_us(250), "250us");
        assert_eq!(format_us(12_345), "12ms");
        assert_eq!(format_us(4_500_000), "4.5s");
        assert_eq!(format_us(92_000_000), "1m32s");
        assert_eq!(format_us(7_500_000_000), "2h5m");
    }
}
