//! KPIs (DESIGN.md §7) computed from a run's observations, and SLO checks.
//!
//! Every KPI is defined on the observation log alone, so a simulated run and a real one
//! (whose event log maps onto the same [`Obs`]) are measured the same way.
//!
//! Map:
//! - [`Kpis`]: the numbers, built by [`Kpis::from_observations`] in one pass plus a
//!   per-fault analysis ([`FaultOutcome`]); [`Kpis::apply_slo`] fills the SLO-relative
//!   ones (error budget, burn rate, RTO compliance); [`Kpis::lines`] prints them;
//!   [`Kpis::check`] checks a scenario's [`Slo`].
//! - [`ClassFreshness`], [`KpiSample`] (a coarse time series for charts),
//!   [`FaultOutcome`] / [`Detection`].
//! - [`format_us`] (durations for people), [`percentile`] (nearest rank).
//!
//! Definitions in brief (details on each field):
//! - availability = reads served / valid reads (also per tower); per tower also
//!   powered-and-serving time / run time ("serving time", DESIGN §7's per-tower
//!   availability — uptime, which can be high while reads fail);
//! - freshness = first `ContentServable` of (item, version) at a tower − its publish;
//! - MTTD = mean(detection − fault start) over detected faults; MTTR = mean(steady again
//!   − fault start) over faults that disrupted their target's steady state;
//! - RPO = acknowledged operations lost (the durability oracle's rule).
//!
//! Not covered: invariant checking (see [`crate::oracle`]; the world sets
//! [`Kpis::violations`]), devices affected by a fault (blast radius counts towers),
//! detection of clock faults (nothing in the log reveals them), and Wi-Fi faults' MTTD
//! (towers have no signal for their Wi-Fi).

use crate::obs::{Obs, ReadResult, Stamped};
use crate::oracle::durability::Durability;
use crate::oracle::priority::is_inversion;
use crate::oracle::{Checker, tower_of};
use sovereign_logic::Time;
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::io::{Event, PowerMode};
use sovereign_logic::protocol::LinkKind;
use sovereign_scenario::{Family, FaultSpec, Slo, Target, format_duration};
use std::collections::BTreeMap;
use std::time::Duration;

/// Width of one [`KpiSample`]: 10 virtual minutes.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(600);
/// Most samples kept (about 69 days at 10 minutes); later observations are left out of
/// the series (not out of the KPIs).
pub const SAMPLES_MAX: usize = 10_000;
/// A fault is detected if its signal comes before it ends, or within this long of its
/// start for faults shorter than that (a probe needs a few rounds to declare a link down).
pub const DETECT_GRACE: Duration = Duration::from_secs(60);
/// The recovery bound for RTO compliance when the scenario sets no `mttr_max`.
pub const RTO_DEFAULT: Duration = Duration::from_secs(3600);

const _: () = assert!(SAMPLE_PERIOD.as_secs() > 0);
const _: () = assert!(DETECT_GRACE.as_secs() < RTO_DEFAULT.as_secs());

/// Freshness of one priority class.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassFreshness {
    /// (tower, item, version) that became servable after their publish was seen.
    pub samples: u64,
    /// Median publish → servable, microseconds (nearest rank).
    #[serde(rename = "p50_s", with = "crate::kpi_serde::opt_us_as_secs")]
    pub p50_us: Option<u64>,
    /// 99th percentile publish → servable, microseconds (nearest rank).
    #[serde(rename = "p99_s", with = "crate::kpi_serde::opt_us_as_secs")]
    pub p99_us: Option<u64>,
    /// (tower, item, version) that never became servable, nor any later version of the
    /// item at that tower (a skipped, superseded version is counted apart).
    pub unservable: u64,
}

/// One point of the coarse time series (one [`SAMPLE_PERIOD`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KpiSample {
    /// Start of the period.
    pub start: Time,
    /// Valid reads served in the period.
    pub reads_good: u64,
    /// Valid reads in the period.
    pub reads_valid: u64,
    /// good / valid in the period (`None`: no valid read).
    pub availability: Option<f64>,
    /// Mean state of charge over the period's power samples, all towers.
    pub soc_mean: Option<f64>,
    /// Total outbox backlog (all towers) at the end of the period, operations.
    pub backlog: u64,
}

/// How a fault was detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detection {
    /// Nothing in the log can reveal this fault (clock faults, Wi-Fi faults): left out
    /// of MTTD.
    Excluded,
    /// No detection signal came in the fault's window.
    Never,
    /// The first detection signal.
    At(Time),
}

/// What became of one injected fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultOutcome {
    /// The fault's id.
    pub id: u64,
    /// The fault.
    pub spec: FaultSpec,
    /// When it started.
    pub start: Time,
    /// When it ended (the run's end if it never did).
    pub end: Time,
    /// When it was detected.
    pub detected: Detection,
    /// A target tower left its steady state at some point during the fault.
    pub disrupting: bool,
    /// Towers (any, not only targets) not steady at some point during the fault.
    pub towers_unsteady: u64,
    /// When every disrupted target tower was steady again (`None`: never, or not
    /// disrupting).
    pub recovered: Option<Time>,
}

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
    #[serde(skip)]
    pub tower_names: Vec<String>,
    /// Per tower: time running and not shutting down or off / run time (DESIGN §7's
    /// per-tower availability: uptime, which says nothing of whether reads were served;
    /// printed as "serving time per tower").
    pub tower_availability: Vec<f64>,
    /// Per tower: (valid reads served, valid reads) — the read availability of each
    /// tower, which the overall [`Kpis::availability`] sums.
    #[serde(skip)]
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
    /// The coarse time series.
    #[serde(skip)]
    pub series: Vec<KpiSample>,
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

fn format_dur(d: Duration) -> String {
    format_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn mean_us(values: &[u64]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
    let mean = sum / values.len() as u128;
    Some(Duration::from_micros(
        u64::try_from(mean).unwrap_or(u64::MAX),
    ))
}

/// A detection signal seen on a tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// A link was declared down.
    LinkDown(LinkKind),
    /// The active uplink changed.
    Failover,
    /// The power mode changed.
    PowerMode,
    /// The tower process stopped.
    Down,
    /// A storage operation failed.
    Storage,
    /// A tower found another origin than the one it trusts answering its uplinks.
    OriginMismatch,
}

/// Per-tower state while scanning.
#[derive(Clone, Debug)]
struct TowerScan {
    /// Running (`None`: no TowerUp/TowerDown seen yet — assumed running).
    up: Option<bool>,
    mode: PowerMode,
    /// Serving since (when serving now).
    serving_since: Option<Time>,
    serving_us: u64,
    backlog: u64,
    energy_wh: f64,
    /// Steady transitions (time, steady).
    steady: Vec<(Time, bool)>,
}

impl TowerScan {
    /// A tower at the run's start `t0`: assumed running until told otherwise.
    fn new(t0: Time) -> Self {
        TowerScan {
            up: None,
            mode: PowerMode::Normal,
            serving_since: Some(t0),
            serving_us: 0,
            backlog: 0,
            energy_wh: 0.0,
            steady: Vec::new(),
        }
    }
}

impl TowerScan {
    fn serving(&self) -> bool {
        self.up.unwrap_or(true) && self.mode < PowerMode::ShuttingDown
    }

    /// Account the serving time up to `now`, then apply `change`.
    fn update(&mut self, now: Time, change: impl FnOnce(&mut TowerScan)) {
        change(self);
        match (self.serving_since, self.serving()) {
            (Some(since), false) => {
                self.serving_us += now.saturating_since(since).as_micros() as u64;
                self.serving_since = None;
            }
            (None, true) => self.serving_since = Some(now),
            _ => {}
        }
    }

    /// Steady at `t` (after every transition at or before `t`). Before any report a
    /// tower counts as steady: the world reports changes, and there is no evidence of a
    /// disruption.
    fn steady_at(&self, t: Time) -> bool {
        self.steady
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .is_none_or(|(_, s)| *s)
    }

    /// Not steady at some point in `start..=end`.
    fn unsteady_during(&self, start: Time, end: Time) -> bool {
        !self.steady_at(start)
            || self
                .steady
                .iter()
                .any(|(at, s)| *at > start && *at <= end && !s)
    }

    /// When the tower was steady again for a fault over `start..=end`: the last return
    /// to steady before the end (not before the start) if steady at the end, else the
    /// first return after it.
    fn recovered(&self, start: Time, end: Time) -> Option<Time> {
        if self.steady_at(end) {
            let last = self
                .steady
                .iter()
                .rev()
                .find(|(at, s)| *s && *at <= end)
                .map(|(at, _)| *at)
                .unwrap_or(start);
            Some(last.max(start))
        } else {
            self.steady
                .iter()
                .find(|(at, s)| *s && *at > end)
                .map(|(at, _)| *at)
        }
    }
}

/// Whether a signal on `tower` detects a fault of `family` on `target`.
fn detects(family: Family, target: &Target, tower: Option<usize>, signal: Signal) -> bool {
    let on = |t: usize| tower == Some(t);
    match (family, target, signal) {
        (Family::Network, Target::Link(t, kind), Signal::LinkDown(k)) => on(*t) && *kind == k,
        (Family::Network, Target::Link(t, _), Signal::Failover) => on(*t),
        (Family::Network, Target::Tower(t), Signal::LinkDown(_) | Signal::Failover) => on(*t),
        (Family::Network, Target::Origin, Signal::LinkDown(_) | Signal::Failover) => {
            tower.is_some()
        }
        (Family::Disk, Target::Tower(t), Signal::Storage) => on(*t),
        (Family::Disk, Target::Origin, Signal::Storage) => tower.is_none(),
        // Only an `origin-replace` makes a tower see another origin.
        (Family::Process, Target::Origin, Signal::OriginMismatch) => tower.is_some(),
        // A hard cut or brown-out crash stops the tower before it can change mode; the
        // supervisor sees the stop at once.
        (Family::Power, Target::Tower(t), Signal::PowerMode | Signal::Down) => on(*t),
        _ => false,
    }
}

/// Nothing in the log can detect this fault (its declaration says on which targets a
/// fault signal can).
fn undetectable(spec: &FaultSpec) -> bool {
    !spec.kind.decl().detected_on.contains(&spec.target)
}

/// The towers a fault lands on (`n`: towers in the run).
fn target_towers(target: &Target, n: usize) -> Vec<usize> {
    match target {
        Target::Origin => (0..n).collect(),
        Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => vec![*t],
    }
}

/// The KPIs measured as a run goes: fed each observation once, in time order, and
/// finished at the end. What it keeps grows with the run's notable events (publishes,
/// versions made servable, faults, detection signals, steady-state changes), not with
/// its reads and transfers, so a run need not keep its observation log for the KPIs.
#[derive(Debug, Default)]
pub struct KpiScan {
    k: Kpis,
    /// The first observation's time (the run's start), once seen.
    t0: Option<Time>,
    /// The last observation's time.
    t_end: Time,
    towers: Vec<TowerScan>,
    /// The durability oracle's rules, run again for RPO (acknowledged writes lost).
    durability: Durability,
    scratch: Vec<crate::Violation>,
    published: BTreeMap<(ItemId, u64), (Time, Priority)>,
    servable: BTreeMap<(usize, ItemId, u64), Time>,
    faults: Vec<(u64, FaultSpec, Time, Option<Time>)>,
    signals: Vec<(Time, Option<usize>, Signal)>,
    soc_by_bucket: BTreeMap<usize, (f64, u64)>,
}

impl KpiScan {
    /// Feed one observation (in time order).
    pub fn observe(&mut self, s: &Stamped) {
        let KpiScan {
            k,
            t0,
            t_end,
            towers,
            durability,
            scratch,
            published,
            servable,
            faults,
            signals,
            soc_by_bucket,
        } = self;
        let t0 = *t0.get_or_insert(s.at);
        *t_end = s.at;
        durability.observe(s, scratch);
        scratch.clear(); // its violations are the oracle's to report; RPO is counted below
        if let Some(t) = tower_of(&s.obs) {
            if towers.len() <= t {
                towers.resize_with(t + 1, || TowerScan::new(t0));
            }
        }
        let bucket = k.bucket(s.at, towers);
        match &s.obs {
            Obs::Start { towers: names, .. } => {
                k.tower_names = names.clone();
                if towers.len() < names.len() {
                    towers.resize_with(names.len(), || TowerScan::new(t0));
                }
            }
            Obs::Published { manifest } => {
                published
                    .entry((manifest.item.clone(), manifest.version))
                    .or_insert((s.at, manifest.priority));
            }
            Obs::Read {
                tower,
                valid: true,
                result,
                ..
            } => {
                let good = *result == ReadResult::Served;
                k.reads_valid += 1;
                if k.tower_reads.len() <= *tower {
                    k.tower_reads.resize(*tower + 1, (0, 0));
                }
                k.tower_reads[*tower].0 += u64::from(good);
                k.tower_reads[*tower].1 += 1;
                k.reads_good += u64::from(good);
                if let Some(b) = bucket.and_then(|b| k.series.get_mut(b)) {
                    b.reads_valid += 1;
                    b.reads_good += u64::from(good);
                }
            }
            Obs::Tower { tower, event } => match event {
                Event::ContentServable { item, version, .. } => {
                    servable
                        .entry((*tower, item.clone(), *version))
                        .or_insert(s.at);
                }
                Event::LinkHealth { link, up: false } => {
                    signals.push((s.at, Some(*tower), Signal::LinkDown(*link)));
                }
                Event::ActiveLink { .. } => {
                    k.failovers += 1;
                    signals.push((s.at, Some(*tower), Signal::Failover));
                }
                Event::OriginMismatch { .. } => {
                    signals.push((s.at, Some(*tower), Signal::OriginMismatch));
                }
                Event::PowerMode { to, .. } => {
                    signals.push((s.at, Some(*tower), Signal::PowerMode));
                    towers[*tower].update(s.at, |t| t.mode = *to);
                }
                Event::BreakerOpened => k.breaker_openings += 1,
                _ => {}
            },
            Obs::Origin {
                event: Event::BreakerOpened,
            } => k.breaker_openings += 1,
            Obs::Requested { .. } => {
                if let Some(bytes) = is_inversion(&s.obs) {
                    k.priority_inversions += 1;
                    k.priority_inversion_bytes = k.priority_inversion_bytes.saturating_add(bytes);
                }
            }
            Obs::Transfer { link, bytes, .. } => {
                let e = k.bytes_per_link.entry(*link).or_insert(0);
                *e = e.saturating_add(*bytes);
            }
            Obs::TowerDown { tower, .. } => {
                signals.push((s.at, Some(*tower), Signal::Down));
                towers[*tower].update(s.at, |t| t.up = Some(false));
            }
            Obs::TowerUp { tower } => {
                towers[*tower].update(s.at, |t| {
                    if t.up.is_none() {
                        // The first word on this tower is a start: it was not
                        // running before (booting), contrary to the assumption.
                        t.serving_us = 0;
                        t.serving_since = None;
                    }
                    t.up = Some(true);
                    if t.mode >= PowerMode::ShuttingDown {
                        // A started process serves; its mode is reported next.
                        t.mode = PowerMode::Normal;
                    }
                });
            }
            Obs::StorageError { tower } => signals.push((s.at, *tower, Signal::Storage)),
            Obs::Power {
                tower,
                soc,
                mode,
                energy_wh,
                ..
            } => {
                towers[*tower].update(s.at, |t| {
                    t.mode = *mode;
                    t.energy_wh = *energy_wh;
                });
                k.soc_lowest = Some(k.soc_lowest.map_or(*soc, |m| m.min(*soc)));
                if let Some(b) = bucket {
                    let e = soc_by_bucket.entry(b).or_insert((0.0, 0));
                    e.0 += *soc;
                    e.1 += 1;
                }
            }
            Obs::Backlog { tower, ops } => {
                towers[*tower].backlog = *ops;
                let total: u64 = towers.iter().map(|t| t.backlog).sum();
                k.backlog_max = k.backlog_max.max(total);
                if let Some(b) = bucket.and_then(|b| k.series.get_mut(b)) {
                    b.backlog = total;
                }
            }
            Obs::Steady { tower, steady } => towers[*tower].steady.push((s.at, *steady)),
            Obs::FaultStart { id, spec } => faults.push((*id, spec.clone(), s.at, None)),
            Obs::FaultEnd { id, .. } => {
                if let Some(f) = faults.iter_mut().rev().find(|f| f.0 == *id) {
                    f.3.get_or_insert(s.at);
                }
            }
            _ => {}
        }
    }

    /// The KPIs of everything observed (SLO-relative ones against no SLO).
    pub fn finish(self) -> Kpis {
        let KpiScan {
            mut k,
            t0,
            t_end,
            mut towers,
            durability,
            published,
            servable,
            faults,
            signals,
            soc_by_bucket,
            ..
        } = self;
        let t0 = t0.unwrap_or(Time::ZERO);
        // Availability.
        k.availability = if k.reads_valid == 0 {
            1.0
        } else {
            k.reads_good as f64 / k.reads_valid as f64
        };
        let run_us = t_end.saturating_since(t0).as_micros() as u64;
        for t in &mut towers {
            t.update(t_end, |t| t.up = Some(false));
        }
        k.tower_availability = towers
            .iter()
            .map(|t| {
                if run_us == 0 {
                    1.0
                } else {
                    t.serving_us as f64 / run_us as f64
                }
            })
            .collect();
        k.energy_wh = towers.iter().map(|t| t.energy_wh).sum();
        k.backlog_final = towers.iter().map(|t| t.backlog).sum();
        for (b, sample) in k.series.iter_mut().enumerate() {
            sample.availability = (sample.reads_valid > 0)
                .then(|| sample.reads_good as f64 / sample.reads_valid as f64);
            sample.soc_mean = soc_by_bucket
                .get(&b)
                .filter(|(_, n)| *n > 0)
                .map(|(sum, n)| sum / *n as f64);
        }

        // Freshness.
        let n = towers.len();
        let mut per_class: [Vec<u64>; 4] = Default::default();
        for ((_, item, version), at) in &servable {
            if let Some((published_at, class)) = published.get(&(item.clone(), *version)) {
                per_class[class.index()]
                    .push(at.saturating_since(*published_at).as_micros() as u64);
            }
        }
        for ((item, version), (_, class)) in &published {
            for t in 0..n {
                if servable.contains_key(&(t, item.clone(), *version)) {
                    continue;
                }
                let later = servable
                    .range((t, item.clone(), version.saturating_add(1))..)
                    .next()
                    .is_some_and(|((tt, it, _), _)| *tt == t && it == item);
                if later {
                    k.freshness_superseded += 1;
                } else {
                    k.freshness[class.index()].unservable += 1;
                }
            }
        }
        for (f, mut samples) in k.freshness.iter_mut().zip(per_class) {
            samples.sort_unstable();
            f.samples = samples.len() as u64;
            f.p50_us = percentile(&samples, 50);
            f.p99_us = percentile(&samples, 99);
        }

        // Faults.
        for (id, spec, start, end) in faults {
            let end = end.unwrap_or(t_end).max(start);
            let family = spec.kind.family();
            let detected = if undetectable(&spec) {
                Detection::Excluded
            } else if family == Family::Process
                && !matches!(spec.kind, sovereign_scenario::FaultKind::OriginReplace)
            {
                // A process fault stops (or stalls) a process: its supervisor sees it at
                // once. A replaced origin runs on; only the towers' mismatch reveals it.
                Detection::At(start)
            } else {
                let window_end = end.max(start + DETECT_GRACE);
                signals
                    .iter()
                    .find(|(at, tower, sig)| {
                        *at >= start
                            && *at <= window_end
                            && detects(family, &spec.target, *tower, *sig)
                    })
                    .map_or(Detection::Never, |(at, _, _)| Detection::At(*at))
            };
            let disrupted: Vec<usize> = target_towers(&spec.target, n)
                .into_iter()
                .filter(|t| {
                    towers
                        .get(*t)
                        .is_some_and(|s| s.unsteady_during(start, end))
                })
                .collect();
            let recovered = if disrupted.is_empty() {
                None
            } else {
                disrupted
                    .iter()
                    .map(|t| towers[*t].recovered(start, end))
                    .collect::<Option<Vec<Time>>>()
                    .and_then(|v| v.into_iter().max())
            };
            let towers_unsteady = towers
                .iter()
                .filter(|t| t.unsteady_during(start, end))
                .count() as u64;
            k.fault_outcomes.push(FaultOutcome {
                id,
                spec,
                start,
                end,
                detected,
                disrupting: !disrupted.is_empty(),
                towers_unsteady,
                recovered,
            });
        }
        k.faults = k.fault_outcomes.len() as u64;
        let mut ttd = Vec::new();
        let mut ttr = Vec::new();
        let mut ttr_end = Vec::new();
        for f in &k.fault_outcomes {
            match f.detected {
                Detection::Excluded => k.faults_undetectable += 1,
                Detection::Never => k.faults_undetected += 1,
                Detection::At(at) => {
                    k.faults_detected += 1;
                    ttd.push(at.saturating_since(f.start).as_micros() as u64);
                }
            }
            if f.disrupting {
                k.faults_disrupting += 1;
                match f.recovered {
                    Some(at) => {
                        ttr.push(at.saturating_since(f.start).as_micros() as u64);
                        ttr_end.push(at.saturating_since(f.end).as_micros() as u64);
                    }
                    None => k.faults_unrecovered += 1,
                }
            }
        }
        k.mttd = mean_us(&ttd);
        k.mttr = mean_us(&ttr);
        k.mttr_after_end = mean_us(&ttr_end);
        k.blast_radius = (k.faults > 0 && n > 0).then(|| {
            k.fault_outcomes
                .iter()
                .map(|f| f.towers_unsteady as f64 / n as f64)
                .sum::<f64>()
                / k.faults as f64
        });

        k.rpo = durability.lost_count();
        k.apply_slo(&Slo::default());
        assert!(k.reads_good <= k.reads_valid);
        assert!(k.series.len() <= SAMPLES_MAX);
        k
    }
}

impl Kpis {
    /// Compute the KPIs from a run's observations (in time order), as [`KpiScan`] does
    /// while a run goes. SLO-relative KPIs use no SLO (RTO bound [`RTO_DEFAULT`], no
    /// error budget); see [`Kpis::apply_slo`].
    pub fn from_observations(obs: &[Stamped]) -> Kpis {
        let mut scan = KpiScan::default();
        for s in obs {
            scan.observe(s);
        }
        scan.finish()
    }

    /// The series index for `at`, creating samples up to it (carrying the backlog), or
    /// `None` beyond [`SAMPLES_MAX`].
    fn bucket(&mut self, at: Time, towers: &[TowerScan]) -> Option<usize> {
        let period = SAMPLE_PERIOD.as_micros() as u64;
        let b = usize::try_from(at.as_micros() / period).ok()?;
        if b >= SAMPLES_MAX {
            return None;
        }
        while self.series.len() <= b {
            let start = Time::from_micros(self.series.len() as u64 * period);
            let backlog = self
                .series
                .last()
                .map_or_else(|| towers.iter().map(|t| t.backlog).sum(), |s| s.backlog);
            self.series.push(KpiSample {
                start,
                backlog,
                ..KpiSample::default()
            });
        }
        Some(b)
    }

    /// Fill the KPIs that depend on the scenario's SLOs: RTO compliance (against
    /// `mttr_max`, else [`RTO_DEFAULT`]), error budget and burn rates (when an
    /// availability SLO below 1 is set).
    pub fn apply_slo(&mut self, slo: &Slo) {
        self.rto_bound = slo.mttr_max.unwrap_or(RTO_DEFAULT);
        let bound = self.rto_bound;
        self.rto_compliance = (self.faults_disrupting > 0).then(|| {
            let ok = self
                .fault_outcomes
                .iter()
                .filter(|f| f.disrupting)
                .filter(|f| {
                    f.recovered
                        .is_some_and(|r| r.saturating_since(f.start) <= bound)
                })
                .count();
            ok as f64 / self.faults_disrupting as f64
        });
        let allowed = slo.availability_min.map(|m| 1.0 - m).filter(|a| *a > 0.0);
        let burn =
            |good: u64, valid: u64, allowed: f64| ((valid - good) as f64 / valid as f64) / allowed;
        self.burn_rate = allowed
            .filter(|_| self.reads_valid > 0)
            .map(|a| burn(self.reads_good, self.reads_valid, a));
        self.error_budget_remaining = allowed.map(|_| 1.0 - self.burn_rate.unwrap_or(0.0));
        self.burn_rate_max = allowed.and_then(|a| {
            self.series
                .iter()
                .filter(|s| s.reads_valid > 0)
                .map(|s| burn(s.reads_good, s.reads_valid, a))
                .reduce(f64::max)
        });
    }

    fn tower_name(&self, i: usize) -> String {
        self.tower_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("tower#{i}"))
    }

    /// Human-readable summary lines, one per KPI, names aligned.
    pub fn lines(&self) -> Vec<String> {
        let opt_us = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), format_us);
        let opt_dur = |v: Option<Duration>| v.map_or_else(|| "n/a".to_string(), format_dur);
        let opt_f =
            |v: Option<f64>, p: usize| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.p$}"));
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push((
            "availability".into(),
            format!(
                "{:.4} ({}/{} valid reads served)",
                self.availability, self.reads_good, self.reads_valid
            ),
        ));
        if !self.tower_availability.is_empty() {
            let per: Vec<String> = self
                .tower_availability
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{} {a:.4}", self.tower_name(i)))
                .collect();
            rows.push(("serving time per tower".into(), per.join(", ")));
        }
        if self.tower_reads.iter().any(|(_, valid)| *valid > 0) {
            let per: Vec<String> = self
                .tower_reads
                .iter()
                .enumerate()
                .map(|(i, (good, valid))| {
                    let share = if *valid == 0 {
                        "n/a".to_string()
                    } else {
                        format!("{:.4}", *good as f64 / *valid as f64)
                    };
                    format!("{} {share}", self.tower_name(i))
                })
                .collect();
            rows.push(("reads served per tower".into(), per.join(", ")));
        }
        for (class, f) in Priority::ALL.iter().zip(&self.freshness) {
            rows.push((
                format!("freshness {class}"),
                format!(
                    "p50 {}, p99 {} ({} samples, {} never servable)",
                    opt_us(f.p50_us),
                    opt_us(f.p99_us),
                    f.samples,
                    f.unservable
                ),
            ));
        }
        rows.push((
            "superseded versions".into(),
            format!("{} (skipped for a later one)", self.freshness_superseded),
        ));
        rows.push((
            "faults".into(),
            format!(
                "{} ({} detected, {} undetected, {} undetectable; {} disrupting)",
                self.faults,
                self.faults_detected,
                self.faults_undetected,
                self.faults_undetectable,
                self.faults_disrupting
            ),
        ));
        rows.push(("mttd".into(), opt_dur(self.mttd)));
        rows.push((
            "mttr".into(),
            format!(
                "{} (after fault end: {}; {} never recovered)",
                opt_dur(self.mttr),
                opt_dur(self.mttr_after_end),
                self.faults_unrecovered
            ),
        ));
        rows.push((
            "rpo".into(),
            format!("{} acknowledged operations lost", self.rpo),
        ));
        rows.push((
            "rto compliance".into(),
            format!(
                "{} (recovered within {})",
                opt_f(self.rto_compliance, 3),
                format_dur(self.rto_bound)
            ),
        ));
        rows.push(("blast radius".into(), opt_f(self.blast_radius, 3)));
        rows.push((
            "error budget remaining".into(),
            format!(
                "{} (burn rate {}, worst 10m {})",
                opt_f(self.error_budget_remaining, 3),
                opt_f(self.burn_rate, 2),
                opt_f(self.burn_rate_max, 2)
            ),
        ));
        rows.push((
            "outbox backlog".into(),
            format!(
                "max {}, final {} operations",
                self.backlog_max, self.backlog_final
            ),
        ));
        for (link, bytes) in &self.bytes_per_link {
            rows.push((format!("bytes {link}"), format!("{bytes}")));
        }
        rows.push(("failovers".into(), format!("{}", self.failovers)));
        rows.push((
            "breaker openings".into(),
            format!("{}", self.breaker_openings),
        ));
        rows.push(("energy used".into(), format!("{:.1} Wh", self.energy_wh)));
        rows.push(("lowest soc".into(), opt_f(self.soc_lowest, 3)));
        rows.push((
            "priority inversions".into(),
            format!(
                "{} ({} bytes)",
                self.priority_inversions, self.priority_inversion_bytes
            ),
        ));
        rows.push(("violations".into(), format!("{}", self.violations)));
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        rows.into_iter()
            .map(|(n, v)| format!("{n:<width$}  {v}"))
            .collect()
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
    use crate::oracle::test_util::{at, manifest, start};
    use sovereign_logic::protocol::IdemKey;
    use sovereign_logic::tower::Refusal;
    use sovereign_scenario::FaultKind;
    use std::collections::BTreeSet;

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
            at(13, Obs::Backlog { tower: 0, ops: 5 }),
            at(13, Obs::Backlog { tower: 1, ops: 3 }),
            at(14, Obs::Backlog { tower: 0, ops: 0 }),
        ]
    }

    #[test]
    fn counters_availability_bytes_power() {
        // Goal: availability, bytes per link, SoC, energy, failovers, breaker and backlog
        // match hand-computed values.
        let k = Kpis::from_observations(&counters_run());
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
                .any(|l| l.starts_with("bytes satellite") && l.ends_with(" 10"))
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
        let k = Kpis::from_observations(&seq);
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
        let mut k = Kpis::from_observations(&faults_run());
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
        let k = Kpis::from_observations(&seq);
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
        let k = Kpis::from_observations(&seq);
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
        let k = Kpis::from_observations(&seq);
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
    fn series_buckets_of_ten_minutes() {
        // Goal: the series has one sample per 10 minutes with availability, mean SoC and
        // the backlog carried across empty periods.
        let seq = [
            start(1),
            read(10, true, ReadResult::Served),
            read(20, true, ReadResult::Unreachable),
            power(30, 0, 0.4, PowerMode::Normal, 0.0),
            power(40, 0, 0.6, PowerMode::Normal, 0.0),
            at(50, Obs::Backlog { tower: 0, ops: 4 }),
            read(1300, true, ReadResult::Served),
        ];
        let k = Kpis::from_observations(&seq);
        assert_eq!(k.series.len(), 3);
        assert_eq!(k.series[0].availability, Some(0.5));
        assert_eq!(k.series[0].soc_mean, Some(0.5));
        assert_eq!(k.series[1].availability, None);
        assert_eq!(k.series[1].start, Time::from_secs(600));
        assert_eq!(k.series[2].availability, Some(1.0));
        assert!(k.series.iter().all(|s| s.backlog == 4));
    }

    #[test]
    fn slo_checks_and_error_budget() {
        // Goal: each SLO passes or fails against the measured value; the error budget
        // and burn rate follow from the availability SLO.
        let mut k = Kpis::from_observations(&counters_run());
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
