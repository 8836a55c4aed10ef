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
//! Nothing here folds observations itself: a [`SeriesScan`] feeds the KPI families
//! ([`sovereign_sim::kpi::KpiScan`]) and samples their state at each point, so the
//! charts follow the KPIs' rules and their last point equals the KPIs' totals.
//!
//! Not covered: the oracles' verdicts and the faults' outcomes (violations, detection and
//! recovery come from the report, [`RunSeries::complete`]).

use crate::data::devices_of;
use serde::{Deserialize, Serialize};
use sovereign_logic::content::Priority;
use sovereign_logic::io::PowerMode;
use sovereign_sim::Observer;
use sovereign_sim::kpi::{Detection, FaultOutcome, KpiScan};
use sovereign_sim::obs::{Obs, Stamped};
use sovereign_sim::report::Violation;
use sovereign_sim::scenario::Oracle;
use sovereign_sim::scenario::Scenario;
use std::collections::BTreeMap;

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

impl TowerSeries {
    /// Push tower `i`'s state now, read from the KPI families.
    fn push(&mut self, k: &KpiScan, i: usize) {
        let power = k.power.tower(i);
        let reads = k.reads.tower(i);
        let requests = k.inversions.tower(i);
        let servable = k.freshness.servable(i);
        self.soc.push(power.soc);
        self.solar_w.push(power.solar_w);
        self.energy_wh.push(power.energy_wh);
        self.mode.push(mode_index(power.mode));
        self.up.push(power.serving());
        self.steady.push(k.faults.steady(i));
        self.outbox.push(k.backlog.tower(i));
        self.reads_served.push(reads[0]);
        self.reads_refused.push(reads[1]);
        self.reads_unreachable.push(reads[2]);
        self.priority_inversions.push(requests.inversions);
        for (c, n) in servable.iter().enumerate() {
            self.servable[c].push(*n);
            self.requested_bytes[c].push(requests.bytes[c]);
        }
        let links = k.links.tower(i);
        self.failovers.push(links.map_or(0, |l| l.failovers));
        self.breaker_openings
            .push(links.map_or(0, |l| l.breaker_openings));
        let n = self.soc.len();
        for l in links.map_or(&[][..], |l| &l.links) {
            let name = l.kind.name();
            let i = match self.links.iter().position(|s| s.kind == name) {
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
            let s = &mut self.links[i];
            s.bytes.push(l.bytes);
            s.healthy.push(l.healthy);
            s.active
                .push(links.is_some_and(|t| t.active == Some(l.kind)));
        }
    }

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

/// Where a class's chart stands in the freshness family's samples.
#[derive(Clone, Debug, Default)]
struct FreshCursor {
    /// Samples summed so far.
    summed: usize,
    /// Their sum, seconds.
    sum_s: f64,
    /// The first sample inside the window of the last point.
    window_from: usize,
}

/// A run's series sampled as its observations come: an [`Observer`] fed once per
/// observation, in time order, then [`SeriesScan::finish`]ed at the run's end. It folds
/// each observation into the KPI families ([`KpiScan`]) and samples them at each point,
/// so its last point shows the run's KPI totals. What it keeps is bounded by the
/// topology, the number of points and what the KPIs keep, not by the run's reads.
pub struct SeriesScan {
    step_s: u64,
    series: RunSeries,
    devices: Vec<u32>,
    kpis: KpiScan,
    /// The run's (served, valid) reads at each point so far (for the windowed
    /// availability).
    reads_history: Vec<(u64, u64)>,
    fresh: [FreshCursor; 4],
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
            devices,
            kpis: KpiScan::default(),
            reads_history: Vec::new(),
            fresh: Default::default(),
            next_t: 0,
        }
    }

    /// The KPI families the series sample.
    pub fn kpis(&self) -> &KpiScan {
        &self.kpis
    }

    /// Emit the point at `t` seconds.
    fn point(&mut self, t: u64) {
        let k = &self.kpis;
        let s = &mut self.series;
        assert!(s.t_s.len() < POINTS_MAX, "series longer than {POINTS_MAX}");
        s.t_s.push(t);
        let (good, valid) = k.reads.totals();
        let back = usize::try_from(AVAILABILITY_WINDOW_S / self.step_s).unwrap_or(usize::MAX);
        let (g0, v0) = self
            .reads_history
            .len()
            .checked_sub(back.max(1))
            .map_or((0, 0), |i| self.reads_history[i]);
        self.reads_history.push((good, valid));
        s.availability_window
            .push((valid > v0).then(|| (good - g0) as f64 / (valid - v0) as f64));
        s.availability.push(k.reads.availability());
        while s.towers.len() < k.towers() {
            let n = s.t_s.len() - 1;
            let name = format!("tower#{}", s.towers.len());
            s.towers.push(TowerSeries::empty(name, n));
        }
        for (i, ts) in s.towers.iter_mut().enumerate() {
            ts.push(k, i);
        }
        let from = t.saturating_sub(FRESHNESS_WINDOW_S);
        for (class, cursor) in Priority::ALL.iter().zip(&mut self.fresh) {
            let samples = k.freshness.samples(*class);
            let secs = |us: u64| us as f64 / 1e6;
            for (_, us) in &samples[cursor.summed..] {
                cursor.sum_s += secs(*us);
            }
            cursor.summed = samples.len();
            // Every sample is at or before `t`: points are emitted before later
            // observations are read.
            while samples
                .get(cursor.window_from)
                .is_some_and(|(at, _)| at.as_micros() / 1_000_000 <= from)
            {
                cursor.window_from += 1;
            }
            let mut window: Vec<f64> = samples[cursor.window_from..]
                .iter()
                .map(|(_, us)| secs(*us))
                .collect();
            window.sort_by(f64::total_cmp);
            let cs = &mut s.freshness[class.index()];
            cs.p50_s.push(quantile(&window, 0.5));
            cs.p99_s.push(quantile(&window, 0.99));
            cs.count.push(samples.len() as u64);
            cs.sum_s.push(cursor.sum_s);
        }
    }

    /// Emit every point up to `limit_us` (exclusive) and at most `end_s`.
    fn points_before(&mut self, limit_us: u64, end_s: u64) {
        while self.next_t <= end_s
            && self.next_t.saturating_mul(1_000_000) < limit_us
            && self.series.t_s.len() < POINTS_MAX
        {
            self.point(self.next_t);
            self.next_t += self.step_s;
        }
    }

    /// The series up to `end_s` virtual seconds (the run's end).
    pub fn finish(mut self, end_s: u64) -> RunSeries {
        self.points_before(u64::MAX, end_s);
        let n = self.series.t_s.len();
        for t in &mut self.series.towers {
            assert_eq!(t.soc.len(), n);
            for l in &t.links {
                assert_eq!(l.bytes.len(), n);
            }
        }
        self.series
    }
}

impl Observer for SeriesScan {
    fn observe(&mut self, s: &Stamped) {
        // Points strictly before this observation are final.
        self.points_before(s.at.as_micros(), u64::MAX);
        if let Obs::Start { towers, .. } = &s.obs {
            let n = self.series.t_s.len();
            self.series.towers = towers
                .iter()
                .enumerate()
                .map(|(i, name)| TowerSeries {
                    devices: self.devices.get(i).copied().unwrap_or(0),
                    ..TowerSeries::empty(name.clone(), n)
                })
                .collect();
        }
        self.kpis.observe(s);
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
        // The KPIs' own mean (to the microsecond): the last point is the run's MTTD/MTTR.
        let mean = |v: &[u64]| sovereign_sim::kpi::mean_us(v).map(|d| d.as_secs_f64());
        self.mttd_s = self
            .t_s
            .iter()
            .map(|&t| {
                let v: Vec<u64> = faults
                    .iter()
                    .filter_map(|f| match f.detected {
                        Detection::At(d) if d.as_micros() <= us(t) => {
                            Some(d.saturating_since(f.start).as_micros() as u64)
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
                let v: Vec<u64> = faults
                    .iter()
                    .filter(|f| f.disrupting)
                    .filter_map(|f| {
                        f.recovered
                            .filter(|r| r.as_micros() <= us(t))
                            .map(|r| r.saturating_since(f.start).as_micros() as u64)
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
    use sovereign_logic::content::{ChunkHash, ItemId, Manifest};
    use sovereign_logic::io::Event;
    use sovereign_logic::protocol::LinkKind;
    use sovereign_sim::obs::ReadResult;

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

    #[test]
    fn the_last_point_shows_the_kpi_totals() {
        // Goal: the charts sample the KPI families, so their last point carries the run's
        // totals exactly: reads (overall and per tower), freshness samples, bytes per
        // link, failovers, inversions, energy and the backlog — here worked out by hand.
        let mut obs = log(&[0, 0], &[30, 90]);
        let two = Obs::Start {
            towers: vec!["t".into(), "u".into()],
            links: vec![vec![LinkKind::Fibre], vec![LinkKind::Fibre, LinkKind::Lte]],
            devices: 2,
        };
        obs[0] = at(0, two);
        let read = |tower, result| Obs::Read {
            tower,
            item: ItemId::new("i0"),
            valid: true,
            result,
            tower_powered: true,
        };
        let refused = ReadResult::Refused(sovereign_logic::tower::Refusal::NotHeld);
        let transfer = |tower, link, bytes| Obs::Transfer { tower, link, bytes };
        let requested = |tower, class, p0_waiting| Obs::Requested {
            tower,
            link: LinkKind::Fibre,
            class,
            bytes: 10,
            p0_waiting,
        };
        let power = |tower, energy_wh| Obs::Power {
            tower,
            soc: 0.5,
            mode: PowerMode::Normal,
            energy_wh,
            solar_w: 1.0,
        };
        let failover = Event::ActiveLink {
            from: Some(LinkKind::Fibre),
            to: Some(LinkKind::Lte),
        };
        obs.extend(
            [
                (100, read(0, ReadResult::Served)),
                (110, read(1, ReadResult::Served)),
                (120, read(1, refused)),
                (130, read(1, ReadResult::Unreachable)),
                (140, transfer(0, LinkKind::Fibre, 100)),
                (150, transfer(1, LinkKind::Lte, 7)),
                (160, transfer(1, LinkKind::Fibre, 5)),
                (170, requested(1, Priority::P3, true)),
                (180, requested(1, Priority::P3, false)),
                (190, power(0, 2.5)),
                (200, power(1, 1.5)),
                (210, Obs::Backlog { tower: 1, ops: 4 }),
                (
                    220,
                    Obs::Tower {
                        tower: 1,
                        event: failover,
                    },
                ),
            ]
            .map(|(t, o)| at(t, o)),
        );
        let mut scan = SeriesScan::with_step(60, vec![1, 1]);
        for s in &obs {
            scan.observe(s);
        }
        let k = scan.kpis().finish();
        let s = scan.finish(300);
        let last = |v: &[u64]| *v.last().expect("points");
        let (t, u) = (&s.towers[0], &s.towers[1]);
        assert_eq!((k.reads_good, k.reads_valid), (2, 4));
        assert_eq!(k.tower_reads, vec![(1, 1), (1, 3)]);
        assert_eq!(
            [
                last(&u.reads_served),
                last(&u.reads_refused),
                last(&u.reads_unreachable)
            ],
            [1, 1, 1]
        );
        assert_eq!(last(&t.reads_served), 1);
        assert_eq!(*s.availability.last().expect("points"), k.availability);
        assert_eq!(k.availability, 0.5);
        assert_eq!(
            (last(&s.freshness[0].count), k.freshness[0].samples),
            (2, 2)
        );
        assert_eq!(*s.freshness[0].sum_s.last().expect("points"), 120.0);
        let link_bytes = |kind: &str| -> u64 {
            let towers = s.towers.iter().flat_map(|t| &t.links);
            towers
                .filter(|l| l.kind == kind)
                .map(|l| last(&l.bytes))
                .sum()
        };
        assert_eq!(k.bytes_per_link[&LinkKind::Fibre], 105);
        assert_eq!(link_bytes("fibre"), 105);
        assert_eq!(k.bytes_per_link[&LinkKind::Lte], 7);
        assert_eq!(link_bytes("lte"), 7);
        assert_eq!((last(&u.failovers), k.failovers), (1, 1));
        assert_eq!(u.links[1].active.last(), Some(&true));
        assert_eq!(
            (last(&u.priority_inversions), k.priority_inversions),
            (1, 1)
        );
        assert_eq!(last(&u.requested_bytes[3]), 20);
        let energy: f64 = s
            .towers
            .iter()
            .map(|t| *t.energy_wh.last().expect("pts"))
            .sum();
        assert_eq!((energy, k.energy_wh), (4.0, 4.0));
        let outbox: u64 = s.towers.iter().map(|t| last(&t.outbox)).sum();
        assert_eq!((outbox, k.backlog_final), (4, 4));
    }
}
