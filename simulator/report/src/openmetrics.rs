//! OpenMetrics text for a simulated run (and a sweep), with virtual time mapped onto a
//! chosen start, so that `promtool tsdb create-blocks-from openmetrics` loads it and the
//! Grafana dashboards show it.
//!
//! Map: [`run_openmetrics`], [`sweep_openmetrics`] (writers); [`Exposition`] (the
//! builder they share; it asserts the format's rules as it writes); [`parse_utc`] /
//! [`format_utc`] (`2026-01-01T00:00:00Z` ↔ Unix seconds); [`DEFAULT_START`]. The metric
//! names are listed in [`RUN_METRICS`] and [`SWEEP_METRICS`]; the real tower's `/metrics`
//! uses the same names.
//!
//! Not covered: serving `/metrics` over HTTP (the real servers' job), exemplars, `_created`
//! samples, UNIT lines (units are in the names), checking the text (the tests do, with
//! `sovereign-promcheck`'s strict checker and promtool).

use crate::data::RunData;
use crate::series::{POWER_MODES, TowerSeries};
use crate::sweep::SweepData;
use std::collections::{BTreeMap, BTreeSet};

/// The default start of virtual time: 2026-01-01T00:00:00Z (fixed, so exports are
/// deterministic).
pub const DEFAULT_START: i64 = 1_767_225_600;
/// Most samples one export may hold (a bound on the builder).
pub const SAMPLES_MAX: usize = 5_000_000;

/// The metric families a run export emits (family names; counters' samples add `_total`,
/// the summary adds `_sum` and `_count`).
pub const RUN_METRICS: [&str; 30] = [
    "sovereign_sim_run_info",
    "sovereign_slo_objective",
    "sovereign_error_budget_remaining_ratio",
    "sovereign_resilience_score",
    "sovereign_availability_ratio",
    "sovereign_reads",
    "sovereign_devices",
    "sovereign_tower_up",
    "sovereign_tower_steady",
    "sovereign_power_mode",
    "sovereign_battery_soc_ratio",
    "sovereign_solar_power_watts",
    "sovereign_energy_joules",
    "sovereign_outbox_operations",
    "sovereign_link_bytes",
    "sovereign_link_healthy",
    "sovereign_link_active",
    "sovereign_failovers",
    "sovereign_breaker_openings",
    "sovereign_priority_inversions",
    "sovereign_sync_servable",
    "sovereign_sync_requested_bytes",
    "sovereign_freshness_seconds",
    "sovereign_faults_active",
    "sovereign_faults_injected",
    "sovereign_mttd_seconds",
    "sovereign_mttr_seconds",
    "sovereign_rpo_operations",
    "sovereign_invariant_violations",
    "sovereign_rto_compliance_ratio",
];

/// The metric families a sweep export emits.
pub const SWEEP_METRICS: [&str; 4] = [
    "sovereign_sweep_runs",
    "sovereign_sweep_failures",
    "sovereign_sweep_plant_catch_ratio",
    "sovereign_sweep_info",
];

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic; samples are `<family>_total`.
    Counter,
    /// Any value; samples are `<family>`.
    Gauge,
    /// Quantiles (`<family>{quantile=…}`), `<family>_sum`, `<family>_count`.
    Summary,
}

impl MetricType {
    /// The word in `# TYPE` lines.
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
        }
    }

    /// Sample-name suffixes allowed in a family of this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total"],
            MetricType::Gauge => &[""],
            MetricType::Summary => &["", "_sum", "_count"],
        }
    }
}

/// Builds OpenMetrics text family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: BTreeSet<String>,
    current: Option<(String, MetricType)>,
    samples: usize,
    /// Labels every sample carries after its own (a run export's `run`).
    common: Vec<(String, String)>,
}

/// A family name as this project writes them: lower-case snake case starting with a
/// letter (Prometheus allows more: capitals, colons for recording rules).
fn snake_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Escape a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as OpenMetrics writes it.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

impl Exposition {
    /// A builder whose every sample carries `labels` after its own (names must not clash
    /// with a sample's).
    pub fn with_common_labels(labels: &[(&str, &str)]) -> Exposition {
        Exposition {
            common: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Exposition::default()
        }
    }

    /// Start a family (each name once).
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        assert!(snake_case(name), "bad metric name {name}");
        assert!(
            kind != MetricType::Counter || !name.ends_with("_total"),
            "counter family {name} must be named without _total"
        );
        assert!(
            self.families.insert(name.to_string()),
            "family {name} twice"
        );
        self.out
            .push_str(&format!("# HELP {name} {}\n", help.replace('\n', " ")));
        self.out
            .push_str(&format!("# TYPE {name} {}\n", kind.name()));
        self.current = Some((name.to_string(), kind));
    }

    /// One sample of the current family: `suffix` is `_total` for counters, `""`, `_sum`
    /// or `_count`; `ts` in Unix seconds.
    pub fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64, ts: i64) {
        let (name, kind) = self.current.as_ref().expect("a family first");
        assert!(kind.suffixes().contains(&suffix), "{suffix} in a {kind:?}");
        assert!(
            self.samples < SAMPLES_MAX,
            "more than {SAMPLES_MAX} samples"
        );
        self.samples += 1;
        self.out.push_str(name);
        self.out.push_str(suffix);
        let common = self.common.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let all: Vec<(&str, &str)> = labels.iter().copied().chain(common).collect();
        debug_assert!(
            all.iter()
                .enumerate()
                .all(|(i, (k, _))| all[..i].iter().all(|(j, _)| j != k)),
            "a label twice in {all:?}"
        );
        if !all.is_empty() {
            let l: Vec<String> = all
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            self.out.push('{');
            self.out.push_str(&l.join(","));
            self.out.push('}');
        }
        self.out.push_str(&format!(" {} {ts}\n", value_text(value)));
    }

    /// Samples written so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The text, with `# EOF`.
    pub fn finish(mut self) -> String {
        self.out.push_str("# EOF\n");
        self.out
    }
}

/// One series of a gauge or counter: a label set and a value per point.
fn series<T: Copy>(
    e: &mut Exposition,
    suffix: &str,
    labels: &[(&str, &str)],
    t: &[i64],
    values: &[T],
    f: impl Fn(T) -> Option<f64>,
) {
    debug_assert_eq!(t.len(), values.len());
    for (ts, v) in t.iter().zip(values) {
        if let Some(v) = f(*v) {
            e.sample(suffix, labels, v, *ts);
        }
    }
}

/// A per-tower series family: name, help, and which series of a tower it reads.
type TowerFamily<T> = (&'static str, &'static str, fn(&TowerSeries) -> &Vec<T>);

fn b(v: bool) -> Option<f64> {
    Some(if v { 1.0 } else { 0.0 })
}

fn u(v: u64) -> Option<f64> {
    Some(v as f64)
}

/// The `run` label a run's export puts on every sample: `<scenario>/seed-<N>[/<plant>]`
/// (the dashboards' `run` variable), so that several runs imported into one Prometheus
/// stay apart.
pub fn run_label(d: &RunData) -> String {
    let mut l = format!("{}/seed-{}", d.scenario, d.seed);
    if let Some(p) = &d.plant {
        l.push('/');
        l.push_str(p);
    }
    l
}

/// A run's KPI time series as OpenMetrics text, virtual second `s` at Unix second
/// `start + s`; every sample carries the run's [`run_label`].
pub fn run_openmetrics(d: &RunData, start: i64) -> String {
    use MetricType::*;
    let s = &d.series;
    let t: Vec<i64> = s
        .t_s
        .iter()
        .map(|x| start.saturating_add(i64::try_from(*x).unwrap_or(i64::MAX)))
        .collect();
    let run = run_label(d);
    let mut e = Exposition::with_common_labels(&[("run", &run)]);
    let seed = d.seed.to_string();
    let plant = d.plant.clone().unwrap_or_else(|| "none".into());

    e.family(
        "sovereign_sim_run_info",
        Gauge,
        "The simulated run these series come from (always 1).",
    );
    let info = [
        ("scenario", d.scenario.as_str()),
        ("seed", seed.as_str()),
        ("plant", plant.as_str()),
    ];
    series(&mut e, "", &info, &t, &s.t_s, |_| Some(1.0));

    e.family(
        "sovereign_slo_objective",
        Gauge,
        "The scenario's SLO bound per KPI (availability and soc_lowest_ratio are minima; \
         freshness_p99_seconds per class, mttr_seconds and rpo_operations maxima).",
    );
    for o in &d.objectives {
        let mut l = vec![("kpi", o.kpi.as_str())];
        if let Some(c) = &o.class {
            l.push(("class", c.as_str()));
        }
        series(&mut e, "", &l, &t, &s.t_s, |_| Some(o.value));
    }

    e.family(
        "sovereign_availability_ratio",
        Gauge,
        "Valid device reads served / valid device reads since the start.",
    );
    series(&mut e, "", &[], &t, &s.availability, Some);

    e.family(
        "sovereign_error_budget_remaining_ratio",
        Gauge,
        "1 - (bad / valid reads since the start) / (1 - the availability SLO): 1 untouched, \
         0 spent, below 0 overspent (only with an availability SLO below 1).",
    );
    let allowed = d
        .objective("availability", None)
        .map(|min| 1.0 - min)
        .filter(|a| *a > 0.0);
    if let Some(allowed) = allowed {
        series(&mut e, "", &[], &t, &s.availability, |a| {
            Some(1.0 - sovereign_sim::kpi::reads::burn_rate(1.0 - a, allowed))
        });
    }

    e.family(
        "sovereign_reads",
        Counter,
        "Valid device reads by outcome (served, refused, unreachable).",
    );
    for tw in &s.towers {
        for (outcome, v) in [
            ("served", &tw.reads_served),
            ("refused", &tw.reads_refused),
            ("unreachable", &tw.reads_unreachable),
        ] {
            let l = [("tower", tw.name.as_str()), ("outcome", outcome)];
            series(&mut e, "_total", &l, &t, v, u);
        }
    }

    e.family("sovereign_devices", Gauge, "Devices attached to the tower.");
    for tw in &s.towers {
        let dev = vec![tw.devices; t.len()];
        series(&mut e, "", &[("tower", &tw.name)], &t, &dev, |x| {
            Some(f64::from(x))
        });
    }

    let per_tower_bool: [TowerFamily<bool>; 2] = [
        (
            "sovereign_tower_up",
            "1 while the tower runs and serves (not shutting down or off).",
            |tw| &tw.up,
        ),
        (
            "sovereign_tower_steady",
            "1 while the tower is steady: running, Normal power, on its preferred uplink.",
            |tw| &tw.steady,
        ),
    ];
    for (name, help, get) in per_tower_bool {
        e.family(name, Gauge, help);
        for tw in &s.towers {
            series(&mut e, "", &[("tower", &tw.name)], &t, get(tw), b);
        }
    }

    e.family(
        "sovereign_power_mode",
        Gauge,
        "1 for the tower's current power mode, 0 for the others.",
    );
    for tw in &s.towers {
        for (i, m) in POWER_MODES.iter().enumerate() {
            let l = [("tower", tw.name.as_str()), ("mode", m.name())];
            series(&mut e, "", &l, &t, &tw.mode, |x| b(usize::from(x) == i));
        }
    }

    e.family(
        "sovereign_battery_soc_ratio",
        Gauge,
        "Battery state of charge, 0 to 1.",
    );
    for tw in &s.towers {
        series(&mut e, "", &[("tower", &tw.name)], &t, &tw.soc, |x| x);
    }
    e.family("sovereign_solar_power_watts", Gauge, "Solar power now.");
    for tw in &s.towers {
        series(&mut e, "", &[("tower", &tw.name)], &t, &tw.solar_w, |x| x);
    }
    e.family(
        "sovereign_energy_joules",
        Counter,
        "Energy drawn by the tower's load since the start.",
    );
    for tw in &s.towers {
        series(
            &mut e,
            "_total",
            &[("tower", &tw.name)],
            &t,
            &tw.energy_wh,
            |x| Some(x * 3600.0),
        );
    }
    e.family(
        "sovereign_outbox_operations",
        Gauge,
        "Operations held in the tower's outbox (acknowledged to devices, not yet applied).",
    );
    for tw in &s.towers {
        series(&mut e, "", &[("tower", &tw.name)], &t, &tw.outbox, u);
    }

    e.family(
        "sovereign_link_bytes",
        Counter,
        "Bytes moved on an uplink, both directions.",
    );
    for tw in &s.towers {
        for l in &tw.links {
            let lab = [("tower", tw.name.as_str()), ("link", l.kind.as_str())];
            series(&mut e, "_total", &lab, &t, &l.bytes, u);
        }
    }
    e.family(
        "sovereign_link_healthy",
        Gauge,
        "1 while the tower's probes consider the uplink healthy.",
    );
    for tw in &s.towers {
        for l in &tw.links {
            let lab = [("tower", tw.name.as_str()), ("link", l.kind.as_str())];
            series(&mut e, "", &lab, &t, &l.healthy, b);
        }
    }
    e.family(
        "sovereign_link_active",
        Gauge,
        "1 on the uplink the tower uses now.",
    );
    for tw in &s.towers {
        for l in &tw.links {
            let lab = [("tower", tw.name.as_str()), ("link", l.kind.as_str())];
            series(&mut e, "", &lab, &t, &l.active, b);
        }
    }

    let per_tower_counter: [TowerFamily<u64>; 3] = [
        (
            "sovereign_failovers",
            "Changes of the tower's active uplink.",
            |tw| &tw.failovers,
        ),
        (
            "sovereign_breaker_openings",
            "Circuit-breaker openings at the tower.",
            |tw| &tw.breaker_openings,
        ),
        (
            "sovereign_priority_inversions",
            "Lower-class chunk requests issued while P0 work waited at the tower.",
            |tw| &tw.priority_inversions,
        ),
    ];
    for (name, help, get) in per_tower_counter {
        e.family(name, Counter, help);
        for tw in &s.towers {
            series(&mut e, "_total", &[("tower", &tw.name)], &t, get(tw), u);
        }
    }

    e.family(
        "sovereign_sync_servable",
        Counter,
        "Item versions that became servable at the tower, per priority class.",
    );
    for tw in &s.towers {
        for (c, v) in tw.servable.iter().enumerate() {
            let class = format!("P{c}");
            let lab = [("tower", tw.name.as_str()), ("class", class.as_str())];
            series(&mut e, "_total", &lab, &t, v, u);
        }
    }
    e.family(
        "sovereign_sync_requested_bytes",
        Counter,
        "Chunk bytes the tower requested, per priority class.",
    );
    for tw in &s.towers {
        for (c, v) in tw.requested_bytes.iter().enumerate() {
            let class = format!("P{c}");
            let lab = [("tower", tw.name.as_str()), ("class", class.as_str())];
            series(&mut e, "_total", &lab, &t, v, u);
        }
    }

    e.family(
        "sovereign_freshness_seconds",
        Summary,
        "Publish at the origin to servable at a tower, per class (quantiles over the last hour).",
    );
    for cs in &s.freshness {
        let class = cs.class.as_str();
        for (i, ts) in t.iter().enumerate() {
            for (q, v) in [("0.5", cs.p50_s[i]), ("0.99", cs.p99_s[i])] {
                if let Some(v) = v {
                    e.sample("", &[("class", class), ("quantile", q)], v, *ts);
                }
            }
            e.sample("_sum", &[("class", class)], cs.sum_s[i], *ts);
            e.sample("_count", &[("class", class)], cs.count[i] as f64, *ts);
        }
    }

    e.family(
        "sovereign_faults_active",
        Gauge,
        "Injected faults active now.",
    );
    series(&mut e, "", &[], &t, &s.faults_active, u);
    e.family(
        "sovereign_faults_injected",
        Counter,
        "Faults injected, per family.",
    );
    let mut families: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for fam in ["network", "process", "disk", "power", "clock"] {
        families.insert(fam, Vec::new());
    }
    for fam in d.faults.iter().map(|f| f.family.as_str()) {
        families.entry(fam).or_default();
    }
    for (fam, _) in families {
        let counts: Vec<u64> = s
            .t_s
            .iter()
            .map(|&x| {
                d.faults
                    .iter()
                    .filter(|f| f.family == fam && f.start_s <= x as f64)
                    .count() as u64
            })
            .collect();
        series(&mut e, "_total", &[("family", fam)], &t, &counts, u);
    }
    e.family(
        "sovereign_mttd_seconds",
        Gauge,
        "Mean time to detect over the faults detected so far.",
    );
    series(&mut e, "", &[], &t, &s.mttd_s, |x| x);
    e.family(
        "sovereign_mttr_seconds",
        Gauge,
        "Mean time from fault start to steady again over the recoveries so far.",
    );
    series(&mut e, "", &[], &t, &s.mttr_s, |x| x);
    e.family(
        "sovereign_rpo_operations",
        Gauge,
        "Acknowledged operations lost (must be 0).",
    );
    series(&mut e, "", &[], &t, &s.rpo, u);
    e.family(
        "sovereign_invariant_violations",
        Counter,
        "Invariant violations found, per oracle.",
    );
    for (oracle, v) in &s.violations {
        series(&mut e, "_total", &[("oracle", oracle)], &t, v, u);
    }
    e.family(
        "sovereign_rto_compliance_ratio",
        Gauge,
        "Share of disrupting faults recovered within the RTO bound (at the run's end).",
    );
    if let (Some(v), Some(ts)) = (d.kpis.rto_compliance, t.last()) {
        e.sample("", &[], v, *ts);
    }
    e.family(
        "sovereign_resilience_score",
        Gauge,
        "The run's resilience score, 0 to 100, from its KPIs against its SLOs (at the run's end; \
         docs/SCENARIOS.md).",
    );
    // With its scenario, so that a dashboard can follow one scenario's score across runs.
    if let (Some(v), Some(ts)) = (d.kpis.resilience_score, t.last()) {
        e.sample("", &[("scenario", d.scenario.as_str())], v, *ts);
    }
    e.finish()
}

/// A sweep's results as OpenMetrics text, all at Unix second `at`.
pub fn sweep_openmetrics(d: &SweepData, at: i64) -> String {
    use MetricType::*;
    let mut e = Exposition::default();
    let plant = d.plant.clone().unwrap_or_else(|| "none".into());
    e.family(
        "sovereign_sweep_info",
        Gauge,
        "The sweep these figures come from (always 1).",
    );
    let from = d.from.to_string();
    let seeds = d.seeds.to_string();
    e.sample(
        "",
        &[("plant", &plant), ("from", &from), ("seeds", &seeds)],
        1.0,
        at,
    );
    e.family("sovereign_sweep_runs", Counter, "Runs in the last sweep.");
    e.sample("_total", &[], d.runs as f64, at);
    e.family(
        "sovereign_sweep_failures",
        Counter,
        "Failing runs in the last sweep, per first violated oracle (`slo` for SLO-only).",
    );
    for (oracle, n) in &d.failures_by_oracle {
        e.sample("_total", &[("oracle", oracle)], *n as f64, at);
    }
    e.family(
        "sovereign_sweep_plant_catch_ratio",
        Gauge,
        "Share of the sweep's runs in which the planted bug's oracle fired.",
    );
    if let Some(r) = d.plant_catch_ratio {
        e.sample("", &[("plant", &plant)], r, at);
    }
    e.finish()
}

// ---------------------------------------------------------------------------------------
// Time

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parse a UTC time `YYYY-MM-DDTHH:MM:SSZ` into Unix seconds.
pub fn parse_utc(s: &str) -> Result<i64, String> {
    let bad = || format!("expected a UTC time like 2026-01-01T00:00:00Z, found {s:?}");
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return Err(bad());
    }
    if b[16] != b':' || b[19] != b'Z' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let t = &s[r];
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || h > 23 || mi > 59 || se > 59 {
        return Err(bad());
    }
    let days_in_month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(mo - 1) as usize]
        + i64::from(mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
    if d < 1 || d > days_in_month {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_round_trips_and_knows_the_default() {
        // Goal: the fixed default start is 2026-01-01T00:00:00Z; parse/format agree.
        assert_eq!(parse_utc("2026-01-01T00:00:00Z"), Ok(DEFAULT_START));
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(format_utc(DEFAULT_START), "2026-01-01T00:00:00Z");
        for t in [0, 951_782_400, 1_709_210_096, 4_102_444_799] {
            assert_eq!(parse_utc(&format_utc(t)), Ok(t));
        }
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01 00:00:00",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
