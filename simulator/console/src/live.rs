//! Live KPIs and the event log, folded incrementally from a run's observations.
//!
//! The console redraws many times a second and no run keeps its log: [`Live`] takes each
//! observation once, as the source hands it over, into the KPI families
//! (`sovereign_sim::kpi::KpiScan`, the same computation the run's report comes from), and
//! keeps bounded rolling buckets for sparklines and a bounded log of readable lines.
//!
//! The totals shown (availability, backlog, bytes, SoC) are the families' own; the live
//! freshness percentiles cover only the most recent [`FRESHNESS_SAMPLES_MAX`] samples of
//! each class (the report's cover the whole run).
//!
//! Not covered: MTTD/MTTR, error budgets (the final report has them).

use sovereign_logic::Time;
use sovereign_logic::content::Priority;
use sovereign_logic::io::Event;
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::kpi::KpiScan;
use sovereign_sim::obs::{Obs, ReadResult, Stamped};
use sovereign_sim::scenario::{FaultSpec, Target};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Width of one sparkline bucket, virtual time.
pub const BUCKET: Duration = Duration::from_secs(600);
/// Buckets kept per series (a day and a half at 10 minutes).
pub const BUCKETS_MAX: usize = 216;
/// Freshness samples per class the live percentiles cover (the most recent).
pub const FRESHNESS_SAMPLES_MAX: usize = 512;
/// Event-log lines kept.
pub const LOG_MAX: usize = 5_000;

const _: () = assert!(BUCKETS_MAX >= 2 && FRESHNESS_SAMPLES_MAX >= 1);

/// What an event-log line is about (the log's filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Fault start and end.
    Fault,
    /// Link health and failovers.
    Link,
    /// Power modes, battery.
    Power,
    /// Content sync.
    Sync,
    /// Processes up and down, storage errors.
    Process,
    /// What operators did (injections, heals, notes, checklists).
    Operator,
    /// Invariant violations.
    Violation,
}

impl Category {
    /// Every category, in filter-cycling order.
    pub const ALL: [Category; 7] = [
        Category::Fault,
        Category::Link,
        Category::Power,
        Category::Sync,
        Category::Process,
        Category::Operator,
        Category::Violation,
    ];

    /// Short name for the log and its filter.
    pub fn name(self) -> &'static str {
        match self {
            Category::Fault => "fault",
            Category::Link => "link",
            Category::Power => "power",
            Category::Sync => "sync",
            Category::Process => "proc",
            Category::Operator => "operator",
            Category::Violation => "violation",
        }
    }
}

/// One event-log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// When.
    pub at: Time,
    /// What about.
    pub category: Category,
    /// The text.
    pub text: String,
}

/// One sparkline bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Valid reads.
    pub reads_valid: u64,
    /// Valid reads served.
    pub reads_good: u64,
    /// Total outbox backlog at the bucket's last sample.
    pub backlog: u64,
    /// Lowest tower SoC seen in the bucket.
    pub soc_min: Option<f64>,
    /// Bytes moved on uplinks in the bucket.
    pub bytes: u64,
}

/// Running KPIs and the event log of one run.
#[derive(Clone, Debug, Default)]
pub struct Live {
    seen: u64,
    tower_names: Vec<String>,
    /// The KPI families, fed every observation.
    kpis: KpiScan,
    buckets: VecDeque<(u64, Bucket)>,
    log: VecDeque<LogLine>,
    /// Log lines dropped because the log was full.
    pub log_dropped: u64,
}

fn target_text(t: &Target, towers: &[String]) -> String {
    let name = |i: usize| {
        towers
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("tower-{i}"))
    };
    match t {
        Target::Origin => "origin".into(),
        Target::Tower(i) => name(*i),
        Target::Link(i, k) => format!("{}/{k}", name(*i)),
        Target::Wifi(i) => format!("{}/wifi", name(*i)),
    }
}

/// A fault in one line: `link-down on tower-0/fibre for 30m`.
pub fn fault_text(spec: &FaultSpec, towers: &[String]) -> String {
    let mut s = format!(
        "{} on {}",
        spec.kind.name(),
        target_text(&spec.target, towers)
    );
    if !spec.duration.is_zero() {
        s.push_str(&format!(
            " for {}",
            sovereign_sim::scenario::format_duration(spec.duration)
        ));
    }
    s
}

impl Live {
    /// An empty fold.
    pub fn new() -> Live {
        Live::default()
    }

    /// Fold new observations (each once, in time order).
    pub fn update(&mut self, obs: &[Stamped]) {
        for s in obs {
            self.fold(s);
        }
        self.seen += obs.len() as u64;
    }

    /// Observations folded so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn bucket(&mut self, at: Time) -> &mut Bucket {
        let idx = at.as_micros() / BUCKET.as_micros() as u64;
        if self.buckets.back().is_none_or(|(i, _)| *i < idx) {
            // Carry the backlog level over empty periods.
            let carry = self.buckets.back().map_or(0, |(_, b)| b.backlog);
            self.buckets.push_back((
                idx,
                Bucket {
                    backlog: carry,
                    ..Bucket::default()
                },
            ));
            while self.buckets.len() > BUCKETS_MAX {
                self.buckets.pop_front();
            }
        }
        &mut self.buckets.back_mut().expect("just pushed").1
    }

    fn tower(&self, i: usize) -> String {
        self.tower_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("tower-{i}"))
    }

    /// Add a line to the log (operators' actions come in this way too).
    pub fn log(&mut self, at: Time, category: Category, text: String) {
        if self.log.len() >= LOG_MAX {
            self.log.pop_front();
            self.log_dropped += 1;
        }
        self.log.push_back(LogLine { at, category, text });
    }

    fn fold(&mut self, s: &Stamped) {
        let at = s.at;
        self.kpis.observe(s);
        match &s.obs {
            Obs::Start { towers, .. } => {
                self.tower_names = towers.clone();
            }
            Obs::Read {
                valid: true,
                result,
                ..
            } => {
                let good = *result == ReadResult::Served;
                let b = self.bucket(at);
                b.reads_valid += 1;
                b.reads_good += u64::from(good);
            }
            Obs::Transfer { bytes, .. } => self.bucket(at).bytes += bytes,
            Obs::Backlog { .. } => {
                let total = self.kpis.backlog.total();
                self.bucket(at).backlog = total;
            }
            Obs::Power { soc, .. } => {
                let b = self.bucket(at);
                b.soc_min = Some(b.soc_min.map_or(*soc, |m| m.min(*soc)));
            }
            Obs::FaultStart { id, spec } => {
                let text = format!("fault {id} starts: {}", fault_text(spec, &self.tower_names));
                self.log(at, Category::Fault, text);
            }
            Obs::FaultEnd { id, target } => {
                let text = format!(
                    "fault {id} ends on {}",
                    target_text(target, &self.tower_names)
                );
                self.log(at, Category::Fault, text);
            }
            Obs::Healed { bound } => {
                let text = format!(
                    "safety phase over: all faults healed; convergence bound {}",
                    sovereign_sim::scenario::format_duration(*bound)
                );
                self.log(at, Category::Fault, text);
            }
            Obs::TowerDown { tower, clean, .. } => {
                let how = if *clean {
                    "shut down cleanly"
                } else {
                    "went down"
                };
                let text = format!("{} {how}", self.tower(*tower));
                self.log(at, Category::Process, text);
            }
            Obs::TowerUp { tower } => {
                let text = format!("{} up", self.tower(*tower));
                self.log(at, Category::Process, text);
            }
            Obs::StorageError { tower } => {
                let who = tower.map_or("origin".to_string(), |t| self.tower(t));
                self.log(at, Category::Process, format!("{who}: storage error"));
            }
            Obs::BatteryEmpty { tower, .. } => {
                let text = format!("{} battery empty", self.tower(*tower));
                self.log(at, Category::Power, text);
            }
            Obs::Converged { tower } => {
                let text = format!("{} converged", self.tower(*tower));
                self.log(at, Category::Sync, text);
            }
            Obs::Tower { tower, event } => self.fold_event(at, *tower, event),
            _ => {}
        }
    }

    fn fold_event(&mut self, at: Time, tower: usize, event: &Event) {
        let name = self.tower(tower);
        match event {
            Event::LinkHealth { link, up } => {
                let state = if *up { "up" } else { "down" };
                self.log(at, Category::Link, format!("{name}: {link} {state}"));
            }
            Event::ActiveLink { from, to } => {
                let f = from.map_or("none".into(), |l| l.to_string());
                let t = to.map_or("none".into(), |l| l.to_string());
                self.log(
                    at,
                    Category::Link,
                    format!("{name}: active link {f} -> {t}"),
                );
            }
            Event::ContentServable {
                item,
                version,
                priority,
            } => {
                self.log(
                    at,
                    Category::Sync,
                    format!("{name}: {item} v{version} ({priority}) servable"),
                );
            }
            Event::PowerMode { from, to } => {
                self.log(
                    at,
                    Category::Power,
                    format!("{name}: power {} -> {}", from.name(), to.name()),
                );
            }
            _ => {}
        }
    }

    /// The KPI families so far.
    pub fn kpis(&self) -> &KpiScan {
        &self.kpis
    }

    /// Availability so far (1 with no valid read).
    pub fn availability(&self) -> f64 {
        self.kpis.reads.availability()
    }

    /// Bytes per uplink kind so far.
    pub fn bytes_per_link(&self) -> &BTreeMap<LinkKind, u64> {
        self.kpis.links.bytes_per_link()
    }

    /// Availability over the last `buckets` buckets (`None`: no valid read).
    pub fn availability_recent(&self, buckets: usize) -> Option<f64> {
        let (good, valid) = self
            .buckets
            .iter()
            .rev()
            .take(buckets)
            .fold((0, 0), |(g, v), (_, b)| {
                (g + b.reads_good, v + b.reads_valid)
            });
        (valid > 0).then(|| good as f64 / valid as f64)
    }

    /// Live freshness percentile `p` (0..=100) of a class, microseconds.
    pub fn freshness_us(&self, class: usize, p: u64) -> Option<u64> {
        let samples = self.kpis.freshness.samples(Priority::ALL[class]);
        let recent = &samples[samples.len().saturating_sub(FRESHNESS_SAMPLES_MAX)..];
        let mut v: Vec<u64> = recent.iter().map(|(_, us)| *us).collect();
        v.sort_unstable();
        sovereign_sim::kpi::percentile(&v, p)
    }

    /// Total outbox backlog now.
    pub fn backlog(&self) -> u64 {
        self.kpis.backlog.total()
    }

    /// Lowest tower SoC now.
    pub fn soc_min(&self) -> Option<f64> {
        (0..self.kpis.towers())
            .filter_map(|t| self.kpis.power.tower(t).soc)
            .reduce(f64::min)
    }

    /// The buckets, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter().map(|(_, b)| b)
    }

    /// The log, oldest first.
    pub fn log_lines(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.log.iter()
    }

    /// The kept log lines with their number in the whole run's log (lines dropped when
    /// the log was full keep theirs), oldest first: a scrolled view pins a number.
    pub fn numbered_log_lines(&self) -> impl DoubleEndedIterator<Item = (u64, &LogLine)> {
        let first = self.log_dropped;
        self.log
            .iter()
            .enumerate()
            .map(move |(i, l)| (first + i as u64, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_sim::scenario::FaultKind;

    fn read(at: u64, good: bool) -> Stamped {
        Stamped {
            at: Time::from_secs(at),
            obs: Obs::Read {
                tower: 0,
                item: sovereign_logic::content::ItemId("i".into()),
                valid: true,
                result: if good {
                    ReadResult::Served
                } else {
                    ReadResult::Unreachable
                },
                tower_powered: true,
            },
        }
    }

    #[test]
    fn folds_incrementally_and_matches_the_totals() {
        // Goal: folding in two halves gives the same availability and buckets as one pass.
        let obs: Vec<Stamped> = (0..40).map(|i| read(i * 100, i % 4 != 0)).collect();
        let mut a = Live::new();
        a.update(&obs[..17]);
        a.update(&obs[17..]);
        let mut b = Live::new();
        b.update(&obs);
        assert_eq!(a.kpis().reads.totals(), (30, 40));
        assert!((a.availability() - 0.75).abs() < 1e-9);
        assert_eq!(
            a.buckets().cloned().collect::<Vec<_>>(),
            b.buckets().cloned().collect::<Vec<_>>()
        );
        assert_eq!(a.seen(), 40);
    }

    #[test]
    fn the_log_is_bounded_and_names_faults() {
        // Goal: the log keeps at most LOG_MAX lines and describes fault starts readably.
        let mut l = Live::new();
        for i in 0..(LOG_MAX + 10) {
            l.log(Time::ZERO, Category::Operator, format!("n{i}"));
        }
        assert_eq!(l.log_lines().count(), LOG_MAX);
        assert_eq!(l.log_dropped, 10);
        l.update(&[Stamped {
            at: Time::from_secs(5),
            obs: Obs::FaultStart {
                id: 3,
                spec: FaultSpec {
                    at: Duration::from_secs(5),
                    duration: Duration::from_secs(1800),
                    target: Target::Link(0, LinkKind::Fibre),
                    kind: FaultKind::LinkDown,
                },
            },
        }]);
        let last = l.log_lines().last().expect("a line");
        assert_eq!(
            last.text,
            "fault 3 starts: link-down on tower-0/fibre for 30m"
        );
    }
}
