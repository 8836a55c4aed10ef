//! Per-tower time series of a run, sampled on a fixed step from the observation stream as
//! the run goes: the data behind the report charts and the OpenMetrics export.
//!
//! Map: [`SeriesScan`] (an observer of the run; its step is fixed from the latest the run
//! can end), which gives the [`RunSeries`], then completed from the run's report by
//! [`RunSeries::complete`]; [`TowerSeries`], [`LinkSeries`],
//! [`ClassSeries`]; [`step_for`] picks the step; [`POWER_MODES`] names the modes.
//!
//! Conventions: point `k` is at `t_s[k] = k × step_s` virtual seconds and shows the state
//! after every observation at or before it. Counters are cumulative from the start;
//! gauges hold their last value (`None` before the first one); windowed values (read
//! availability, freshness quantiles) cover the window ending at the point.
//!
//! Not covered: the run-wide KPIs themselves (see [`sovereign_sim::kpi`]; the series are for
//! charts and may differ from them in the last digits, e.g. a boot at the start counts as
//! serving here) and the oracles' verdicts (violations come from the report).

use crate::data::devices_of;
use serde::{Deserialize, Serialize};
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::io::{Event, PowerMode};
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::Observer;
use sovereign_sim::kpi::{Detection, FaultOutcome};
use sovereign_sim::obs::{Obs, ReadResult, Stamped};
use sovereign_sim::report::Violation;
use sovereign_sim::scenario::Oracle;
use sovereign_sim::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The finest step, seconds.
pub const STEP_MIN_S: u64 = 60;
/// About this many points per series: the step grows with the run's length.
pub const POINTS_TARGET: u64 = 720;
/// Most points per series (a bound on every vector here).
pub const POINTS_MAX: usize = 2_000;
/// Freshness quantiles cover servable events in this window before each point, seconds
/// (as a Prometheus summary's sliding window does).
pub const FRESHNESS_WINDOW_S: u64 = 3_600;
/// Windowed read availability covers the reads in this window before each point,
/// seconds (a minute holds too few reads to say much).
pub const AVAILABILITY_WINDOW_S: u64 = 1_800;
/// Power modes in order (index = the mode's rank); names as `PowerMode::name`.
pub const POWER_MODES: [PowerMode; 6] = PowerMode::ALL;

const _: () = assert!(POINTS_TARGET as usize * 2 <= POINTS_MAX);
const _: () = assert!(STEP_MIN_S > 0 && FRESHNESS_WINDOW_S >= STEP_MIN_S);
const _: () = assert!(AVAILABILITY_WINDOW_S >= STEP_MIN_S);

/// The step for a run ending at `end_s`: a whole number of minutes, at least
/// [`STEP_MIN_S`], giving at most about [`POINTS_TARGET`] points.
pub fn step_for(end_s: u64) -> u64 {
    let raw = end_s.div_ceil(POINTS_TARGET).max(STEP_MIN_S);
    let step = raw.div_ceil(60) * 60;
    debug_assert!(end_s / step < POINTS_MAX as u64);
    step
}

fn mode_index(m: PowerMode) -> u8 {
    POWER_MODES.iter().position(|x| *x == m).unwrap_or(0) as u8
}

/// One uplink of one tower over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkSeries {
    /// `fibre`, `lte`, `satellite`.
    pub kind: String,
    /// Bytes moved on it (both directions), cumulative.
    pub bytes: Vec<u64>,
    /// The tower's probes consider it healthy.
    pub healthy: Vec<bool>,
    /// The tower's active uplink.
    pub active: Vec<bool>,
}

/// One tower over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TowerSeries {
    /// Its name.
    pub name: String,
    /// Devices attached (from the scenario; constant).
    pub devices: u32,
    /// Battery state of charge 0..=1.
    pub soc: Vec<Option<f64>>,
    /// Solar power, W.
    pub solar_w: Vec<Option<f64>>,
    /// Energy drawn by the load since the start, Wh (cumulative).
    pub energy_wh: Vec<f64>,
    /// Power mode, as an index into [`POWER_MODES`].
    pub mode: Vec<u8>,
    /// Running and not shutting down or off.
    pub up: Vec<bool>,
    /// In its steady state.
    pub steady: Vec<bool>,
    /// Outbox operations held.
    pub outbox: Vec<u64>,
    /// Valid device reads served (cumulative).
    pub reads_served: Vec<u64>,
    /// Valid device reads refused (cumulative).
    pub reads_refused: Vec<u64>,
    /// Valid device reads that could not reach the tower (cumulative).
    pub reads_unreachable: Vec<u64>,
    /// Active-link changes (cumulative).
    pub failovers: Vec<u64>,
    /// Circuit-breaker openings (cumulative).
    pub breaker_openings: Vec<u64>,
    /// Lower-class chunk requests while P0 waited (cumulative).
    pub priority_inversions: Vec<u64>,
    /// Item versions made servable, per class (cumulative).
    pub servable: [Vec<u64>; 4],
    /// Chunk bytes requested, per class (cumulative).
    pub requested_bytes: [Vec<u64>; 4],
    /// Its uplinks, preference order.
    pub links: Vec<LinkSeries>,
}

/// Freshness of one class over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSeries {
    /// `P0`..`P3`.
    pub class: String,
    /// Median publish → servable over the window, seconds.
    pub p50_s: Vec<Option<f64>>,
    /// 99th percentile over the window, seconds.
    pub p99_s: Vec<Option<f64>>,
    /// Samples so far (cumulative).
    pub count: Vec<u64>,
    /// Sum of samples so far, seconds (cumulative).
    pub sum_s: Vec<f64>,
}

/// A run's time series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSeries {
    /// Seconds between points.
    pub step_s: u64,
    /// Virtual time of each point, seconds.
    pub t_s: Vec<u64>,
    /// Valid reads served / valid reads in the [`AVAILABILITY_WINDOW_S`] ending at the
    /// point.
    pub availability_window: Vec<Option<f64>>,
    /// Valid reads served / valid reads since the start (1 before any).
    pub availability: Vec<f64>,
    /// Faults active at the point.
    pub faults_active: Vec<u64>,
    /// Mean time to detect over faults detected so far, seconds.
    pub mttd_s: Vec<Option<f64>>,
    /// Mean time to recover (from fault start) over recoveries so far, seconds.
    pub mttr_s: Vec<Option<f64>>,
    /// Acknowledged operations known lost so far (durability violations; the run's RPO
    /// at the last point).
    pub rpo: Vec<u64>,
    /// Invariant violations per oracle name (every oracle, cumulative).
    pub violations: BTreeMap<String, Vec<u64>>,
    /// Every tower.
    pub towers: Vec<TowerSeries>,
    /// Freshness per class (index = class).
    pub freshness: Vec<ClassSeries>,
}

/// Live per-tower state while scanning.
#[derive(Clone, Debug)]
struct TowerState {
    soc: Option<f64>,
    solar_w: Option<f64>,
    energy_wh: f64,
    mode: PowerMode,
    running: bool,
    steady: bool,
    outbox: u64,
    reads: [u64; 3],
    failovers: u64,
    breaker_openings: u64,
    priority_inversions: u64,
    servable: [u64; 4],
    requested_bytes: [u64; 4],
    /// (kind, bytes, healthy)
    links: Vec<(LinkKind, u64, bool)>,
    active: Option<LinkKind>,
}

impl TowerState {
    fn new(links: &[LinkKind]) -> Self {
        TowerState {
            soc: None,
            solar_w: None,
            energy_wh: 0.0,
            mode: PowerMode::Normal,
            running: true,
            steady: true,
            outbox: 0,
            reads: [0; 3],
            failovers: 0,
            breaker_openings: 0,
            priority_inversions: 0,
            servable: [0; 4],
            requested_bytes: [0; 4],
            links: links.iter().map(|k| (*k, 0, true)).collect(),
            active: links.first().copied(),
        }
    }

    fn link(&mut self, kind: LinkKind) -> &mut (LinkKind, u64, bool) {
        if let Some(i) = self.links.iter().position(|l| l.0 == kind) {
            &mut self.links[i]
        } else {
            self.links.push((kind, 0, true));
            self.links.last_mut().expect("just pushed")
        }
    }
}

impl TowerSeries {
    fn push(&mut self, s: &TowerState) {
        self.soc.push(s.soc);
        self.solar_w.push(s.solar_w);
        self.energy_wh.push(s.energy_wh);
        self.mode.push(mode_index(s.mode));
        self.up.push(s.running && s.mode < PowerMode::ShuttingDown);
        self.steady.push(s.steady);
        self.outbox.push(s.outbox);
        self.reads_served.push(s.reads[0]);
        self.reads_refused.push(s.reads[1]);
        self.reads_unreachable.push(s.reads[2]);
        self.failovers.push(s.failovers);
        self.breaker_openings.push(s.breaker_openings);
        self.priority_inversions.push(s.priority_inversions);
        for c in 0..4 {
            self.servable[c].push(s.servable[c]);
            self.requested_bytes[c].push(s.requested_bytes[c]);
        }
        let n = self.soc.len();
        for (kind, bytes, healthy) in &s.links {
            let name = kind.name();
            let i = match self.links.iter().position(|l| l.kind == name) {
                Some(i) => i,
                None => {
                    // A link first seen late: its earlier points are zero / healthy.
                    self.links.push(LinkSeries {
                        kind: name.to_string(),
                        bytes: vec![0; n - 1],
                        healthy: vec![true; n - 1],
                        active: vec![false; n - 1],
                    });
                    self.links.len() - 1
                }
            };
            let l = &mut self.links[i];
            l.bytes.push(*bytes);
            l.healthy.push(*healthy);
            l.active.push(s.active == Some(*kind));
        }
    }
}

/// Scanner state.
struct Scan {
    step_s: u64,
    series: RunSeries,
    towers: Vec<TowerState>,
    reads_total: (u64, u64),
    /// `reads_total` at each point emitted so far (for the windowed availability).
    reads_history: Vec<(u64, u64)>,
    /// Freshness samples per class.
    fresh: [Fresh; 4],
}

/// One class's freshness samples: (servable at, freshness seconds) in the last
/// [`FRESHNESS_WINDOW_S`], in time order, and the count and sum of every sample so far.
type Fresh = (VecDeque<(u64, f64)>, u64, f64);

impl Scan {
    fn tower(&mut self, t: usize) -> &mut TowerState {
        if self.towers.len() <= t {
            self.towers.resize_with(t + 1, || TowerState::new(&[]));
        }
        &mut self.towers[t]
    }

    /// Emit the point at `t` seconds.
    fn point(&mut self, t: u64) {
        let s = &mut self.series;
        assert!(s.t_s.len() < POINTS_MAX, "series longer than {POINTS_MAX}");
        s.t_s.push(t);
        let (good, valid) = self.reads_total;
        let back = usize::try_from(AVAILABILITY_WINDOW_S / self.step_s).unwrap_or(usize::MAX);
        let (g0, v0) = self
            .reads_history
            .len()
            .checked_sub(back.max(1))
            .map_or((0, 0), |i| self.reads_history[i]);
        self.reads_history.push((good, valid));
        s.availability_window
            .push((valid > v0).then(|| (good - g0) as f64 / (valid - v0) as f64));
        s.availability.push(if valid == 0 {
            1.0
        } else {
            good as f64 / valid as f64
        });
        while s.towers.len() < self.towers.len() {
            let n = s.t_s.len() - 1;
            let name = format!("tower#{}", s.towers.len());
            s.towers.push(TowerSeries::empty(name, n));
        }
        for (ts, st) in s.towers.iter_mut().zip(&self.towers) {
            ts.push(st);
        }
        let from = t.saturating_sub(FRESHNESS_WINDOW_S);
        for (c, (samples, count, sum)) in self.fresh.iter_mut().enumerate() {
            let cs = &mut s.freshness[c];
            while samples.front().is_some_and(|(at, _)| *at <= from) {
                samples.pop_front();
            }
            // Every sample held is at or before `t`: points are emitted before later
            // observations are read.
            let mut window: Vec<f64> = samples.iter().map(|(_, f)| *f).collect();
            window.sort_by(f64::total_cmp);
            cs.p50_s.push(quantile(&window, 0.5));
            cs.p99_s.push(quantile(&window, 0.99));
            cs.count.push(*count);
            cs.sum_s.push(*sum);
        }
    }
}

impl TowerSeries {
    /// A tower first seen after `n` points: earlier points hold defaults.
    fn empty(name: String, n: usize) -> TowerSeries {
        let z = || vec![0u64; n];
        TowerSeries {
            name,
            devices: 0,
            soc: vec![None; n],
            solar_w: vec![None; n],
            energy_wh: vec![0.0; n],
            mode: vec![0; n],
            up: vec![true; n],
            steady: vec![true; n],
            outbox: z(),
            reads_served: z(),
            reads_refused: z(),
            reads_unreachable: z(),
            failovers: z(),
            breaker_openings: z(),
            priority_inversions: z(),
            servable: [z(), z(), z(), z()],
            requested_bytes: [z(), z(), z(), z()],
            links: Vec::new(),
        }
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// A run's series sampled as its observations come: an [`Observer`] fed once per
/// observation, in time order, then [`SeriesScan::finish`]ed at the run's end. What it
/// keeps is bounded by the topology and the number of points, not by the run's reads.
pub struct SeriesScan {
    scan: Scan,
    devices: Vec<u32>,
    published: BTreeMap<(ItemId, u64), (u64, Priority)>,
    servable_seen: BTreeSet<(usize, ItemId, u64)>,
    /// The next point not emitted yet, seconds.
    next_t: u64,
}

impl SeriesScan {
    /// The series of a run of `sc`, one point per [`step_for`] the latest the run can end
    /// (its duration plus its liveness bound).
    pub fn new(sc: &Scenario) -> SeriesScan {
        let end = sc.duration.saturating_add(sc.liveness_bound);
        SeriesScan::with_step(step_for(end.as_secs()), devices_of(sc))
    }

    /// A series with points every `step_s` seconds; `devices`: devices per tower (index =
    /// tower id) from the scenario.
    pub fn with_step(step_s: u64, devices: Vec<u32>) -> SeriesScan {
        SeriesScan {
            scan: Scan {
                step_s,
                series: RunSeries {
                    step_s,
                    freshness: Priority::ALL
                        .iter()
                        .map(|p| ClassSeries {
                            class: p.to_string(),
                            ..ClassSeries::default()
                        })
                        .collect(),
                    ..RunSeries::default()
                },
                towers: Vec::new(),
                reads_total: (0, 0),
                reads_history: Vec::new(),
                fresh: Default::default(),
            },
            devices,
            published: BTreeMap::new(),
            servable_seen: BTreeSet::new(),
            next_t: 0,
        }
    }

    /// Emit every point up to `limit_us` (exclusive) and at most `end_s`.
    fn points_before(&mut self, limit_us: u64, end_s: u64) {
        while self.next_t <= end_s
            && self.next_t.saturating_mul(1_000_000) < limit_us
            && self.scan.series.t_s.len() < POINTS_MAX
        {
            self.scan.point(self.next_t);
            self.next_t += self.scan.step_s;
        }
    }

    /// The series up to `end_s` virtual seconds (the run's end).
    pub fn finish(mut self, end_s: u64) -> RunSeries {
        self.points_before(u64::MAX, end_s);
        let n = self.scan.series.t_s.len();
        for t in &mut self.scan.series.towers {
            assert_eq!(t.soc.len(), n);
            for l in &t.links {
                assert_eq!(l.bytes.len(), n);
            }
        }
        self.scan.series
    }
}

impl Observer for SeriesScan {
    fn observe(&mut self, s: &Stamped) {
        let at_us = s.at.as_micros();
        // Points strictly before this observation are final.
        self.points_before(at_us, u64::MAX);
        let SeriesScan {
            scan,
            devices,
            published,
            servable_seen,
            ..
        } = self;
        match &s.obs {
            Obs::Start { towers, links, .. } => {
                scan.towers = links.iter().map(|l| TowerState::new(l)).collect();
                scan.towers
                    .resize_with(towers.len(), || TowerState::new(&[]));
                scan.series.towers = towers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| TowerSeries {
                        devices: devices.get(i).copied().unwrap_or(0),
                        ..TowerSeries::empty(n.clone(), scan.series.t_s.len())
                    })
                    .collect();
            }
            Obs::Published { manifest } => {
                published
                    .entry((manifest.item.clone(), manifest.version))
                    .or_insert((at_us, manifest.priority));
            }
            Obs::Read {
                tower,
                valid: true,
                result,
                ..
            } => {
                let i = match result {
                    ReadResult::Served => 0,
                    ReadResult::Refused(_) => 1,
                    ReadResult::Unreachable => 2,
                };
                scan.tower(*tower).reads[i] += 1;
                let good = u64::from(i == 0);
                scan.reads_total.0 += good;
                scan.reads_total.1 += 1;
            }
            Obs::Tower { tower, event } => match event {
                Event::ContentServable {
                    item,
                    version,
                    priority,
                } => {
                    let key = (*tower, item.clone(), *version);
                    if servable_seen.insert(key) {
                        scan.tower(*tower).servable[priority.index()] += 1;
                        if let Some((pub_us, class)) = published.get(&(item.clone(), *version)) {
                            let f = at_us.saturating_sub(*pub_us) as f64 / 1e6;
                            let (window, count, sum) = &mut scan.fresh[class.index()];
                            window.push_back((at_us / 1_000_000, f));
                            *count += 1;
                            *sum += f;
                        }
                    }
                }
                Event::LinkHealth { link, up } => scan.tower(*tower).link(*link).2 = *up,
                Event::ActiveLink { to, .. } => {
                    let t = scan.tower(*tower);
                    t.failovers += 1;
                    t.active = *to;
                }
                Event::PowerMode { to, .. } => scan.tower(*tower).mode = *to,
                Event::BreakerOpened => scan.tower(*tower).breaker_openings += 1,
                _ => {}
            },
            Obs::Requested {
                tower,
                class,
                bytes,
                ..
            } => {
                let inversion = sovereign_sim::oracle::priority::is_inversion(&s.obs).is_some();
                let t = scan.tower(*tower);
                t.requested_bytes[class.index()] =
                    t.requested_bytes[class.index()].saturating_add(*bytes);
                t.priority_inversions += u64::from(inversion);
            }
            Obs::Transfer { tower, link, bytes } => {
                let l = scan.tower(*tower).link(*link);
                l.1 = l.1.saturating_add(*bytes);
            }
            Obs::TowerDown { tower, .. } => scan.tower(*tower).running = false,
            Obs::TowerUp { tower } => {
                let t = scan.tower(*tower);
                t.running = true;
                if t.mode >= PowerMode::ShuttingDown {
                    t.mode = PowerMode::Normal;
                }
            }
            Obs::Power {
                tower,
                soc,
                mode,
                energy_wh,
                solar_w,
            } => {
                let t = scan.tower(*tower);
                t.soc = Some(*soc);
                t.solar_w = Some(*solar_w);
                t.mode = *mode;
                t.energy_wh = *energy_wh;
            }
            Obs::Backlog { tower, ops } => scan.tower(*tower).outbox = *ops,
            Obs::Steady { tower, steady } => scan.tower(*tower).steady = *steady,
            _ => {}
        }
    }
}

impl RunSeries {
    /// Fill what comes from the run's report: fault activity, running MTTD/MTTR,
    /// violations per oracle and the RPO.
    pub fn complete(&mut self, faults: &[FaultOutcome], violations: &[Violation], rpo: u64) {
        let n = self.t_s.len();
        let us = |t: u64| t.saturating_mul(1_000_000);
        self.faults_active = self
            .t_s
            .iter()
            .map(|&t| {
                faults
                    .iter()
                    .filter(|f| f.start.as_micros() <= us(t) && us(t) < f.end.as_micros())
                    .count() as u64
            })
            .collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        self.mttd_s = self
            .t_s
            .iter()
            .map(|&t| {
                let v: Vec<f64> = faults
                    .iter()
                    .filter_map(|f| match f.detected {
                        Detection::At(d) if d.as_micros() <= us(t) => {
                            Some(d.saturating_since(f.start).as_secs_f64())
                        }
                        _ => None,
                    })
                    .collect();
                mean(&v)
            })
            .collect();
        self.mttr_s = self
            .t_s
            .iter()
            .map(|&t| {
                let v: Vec<f64> = faults
                    .iter()
                    .filter(|f| f.disrupting)
                    .filter_map(|f| {
                        f.recovered
                            .filter(|r| r.as_micros() <= us(t))
                            .map(|r| r.saturating_since(f.start).as_secs_f64())
                    })
                    .collect();
                mean(&v)
            })
            .collect();
        self.violations = Oracle::ALL
            .iter()
            .map(|o| {
                let counts = self
                    .t_s
                    .iter()
                    .map(|&t| {
                        violations
                            .iter()
                            .filter(|v| v.oracle == *o && v.at.as_micros() <= us(t))
                            .count() as u64
                    })
                    .collect();
                (o.name().to_string(), counts)
            })
            .collect();
        let lost = self.violations.get(Oracle::Durability.name()).cloned();
        self.rpo = lost
            .unwrap_or_else(|| vec![0; n])
            .into_iter()
            .map(|c| c.min(rpo))
            .collect();
        if let Some(last) = self.rpo.last_mut() {
            *last = rpo;
        }
        assert_eq!(self.faults_active.len(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::Time;
    use sovereign_logic::content::{ChunkHash, Manifest};

    /// The series of a whole log (in time order) up to `end_s`, at [`step_for`]'s step.
    fn from_observations(obs: &[Stamped], end_s: u64, devices: &[u32]) -> RunSeries {
        let mut scan = SeriesScan::with_step(step_for(end_s), devices.to_vec());
        for s in obs {
            scan.observe(s);
        }
        scan.finish(end_s)
    }

    fn at(s: u64, obs: Obs) -> Stamped {
        Stamped {
            at: Time::from_secs(s),
            obs,
        }
    }

    /// One P0 item per publish second in `published`, servable at `servable` (same order).
    fn log(published: &[u64], servable: &[u64]) -> Vec<Stamped> {
        let mut obs = vec![at(
            0,
            Obs::Start {
                towers: vec!["t".into()],
                links: vec![vec![LinkKind::Fibre]],
                devices: 1,
            },
        )];
        let item = |i: usize| ItemId::new(format!("i{i}"));
        let mut timed: Vec<(u64, Obs)> = Vec::new();
        for (i, p) in published.iter().enumerate() {
            let manifest = Manifest {
                item: item(i),
                version: 1,
                priority: Priority::P0,
                size: 0,
                digest: ChunkHash::of(b"x"),
                chunks: Vec::new(),
            };
            timed.push((*p, Obs::Published { manifest }));
        }
        for (i, s) in servable.iter().enumerate() {
            let event = Event::ContentServable {
                item: item(i),
                version: 1,
                priority: Priority::P0,
            };
            timed.push((*s, Obs::Tower { tower: 0, event }));
        }
        timed.sort_by_key(|(t, _)| *t);
        obs.extend(timed.into_iter().map(|(t, o)| at(t, o)));
        obs
    }

    #[test]
    fn freshness_quantiles_cover_the_window_before_each_point_and_counts_all() {
        // Goal: a point's quantiles see exactly the samples in (t − window, t]; its count
        // and sum see every sample so far; a sample at a point's own second is in it.
        let s = from_observations(&log(&[0, 0, 0], &[100, 300, 3_720]), 4_200, &[1]);
        assert_eq!(s.step_s, 60);
        let p = |t: u64| s.t_s.iter().position(|x| *x == t).expect("point");
        let f = &s.freshness[0];
        // At 3,660 s: samples at 100 and 300 s (freshness 100 and 300).
        assert_eq!(f.p50_s[p(3_660)], Some(100.0));
        assert_eq!(f.p99_s[p(3_660)], Some(300.0));
        // At 3,720 s: 100 s left the window; the sample at 3,720 s itself is in.
        assert_eq!(f.p50_s[p(3_720)], Some(300.0));
        assert_eq!(f.p99_s[p(3_720)], Some(3_720.0));
        assert_eq!(f.count[p(3_660)], 2);
        assert_eq!(f.count[p(3_720)], 3);
        assert_eq!(f.sum_s[p(3_720)], 4_120.0);
        // At 3,960 s only the last sample is left; before any sample, none.
        assert_eq!(f.p50_s[p(3_960)], Some(3_720.0));
        assert_eq!(f.p50_s[p(60)], None);
        assert_eq!(f.count[p(60)], 0);
    }
}
