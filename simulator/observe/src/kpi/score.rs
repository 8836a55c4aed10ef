//! The resilience score of a run: one number from 0 to 100, computed from the measured
//! KPIs against the scenario's own SLOs, so that runs of one scenario can be compared over
//! time (`sovereign runs`) and a dashboard can show the trend.
//!
//! In the spirit of Litmus's probe score (a weighted mean of the probes' success) and
//! Gremlin's reliability score, but every term is a KPI this project measures:
//!
//! | term | weight | value (0 to 1) |
//! |---|---|---|
//! | availability (`availability_min`) | 4 | 1 when met; else `2 − burn rate`, at least 0 (0 when the SLO is 1) |
//! | freshness P0 p99 (`freshness_p99_max`) | 2 | 1 when met (or no sample); else `2 − p99 / bound`, at least 0 |
//! | freshness P1–P3 p99 | 1 each | the same |
//! | MTTR (`mttr_max`) | 2 | the same on the mean, times the share of disrupting faults recovered |
//! | lowest state of charge (`soc_min`) | 1 | 1 when met; else `lowest / soc_min` |
//! | RTO compliance | 2 | the share of disrupting faults recovered within the RTO (when any) |
//! | detection | 1 | detected / detectable faults (when any was detectable) |
//!
//! A missed bound loses its credit linearly: missing by the bound again (twice the
//! allowed p99, a second error budget spent) scores 0 for that term. RTO compliance (its
//! bound is `mttr_max`, else the default RTO of an hour) and detection count whenever the
//! run disrupted or could detect a fault, SLO or not; so a fault never recovered costs
//! both the MTTR term (when set) and RTO compliance. The score is
//! `100 × Σ weight × value / Σ weight`, rounded to a tenth; a run with no term (no
//! objective set, no fault) scores 100. **Safety is a gate, not a term**: a run with an invariant violation, or more
//! acknowledged operations lost than the RPO allows, scores 0 — nothing lost is not a
//! matter of degree.
//!
//! Map: [`terms`], [`score`]; `apply_slo` stores it in [`Kpis::resilience_score`]; `row`
//! is its text line. Not covered: weighting by how much of the run a fault covered, or
//! the terms' history (see `sovereign runs`).

use super::{Kpis, Row};
use sovereign_logic::content::Priority;
use sovereign_scenario::Slo;

/// One term of the score.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreTerm {
    /// What it measures (`availability`, `freshness P0 p99`, …).
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Its value, 0 to 1.
    pub value: f64,
}

/// Credit for a measured value against an upper bound: 1 within it, falling linearly to 0
/// at twice the bound.
fn within_max(measured: f64, bound: f64) -> f64 {
    if measured <= bound {
        1.0
    } else if bound <= 0.0 {
        0.0
    } else {
        (2.0 - measured / bound).clamp(0.0, 1.0)
    }
}

/// The score's terms for these KPIs against `slo` (the safety gate is not a term).
pub fn terms(k: &Kpis, slo: &Slo) -> Vec<ScoreTerm> {
    let mut out = Vec::new();
    let mut push = |name: String, weight: u32, value: f64| {
        // A term that cannot be measured (NaN) earns nothing rather than poison the sum.
        let value = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        };
        out.push(ScoreTerm {
            name,
            weight,
            value,
        });
    };
    if let Some(min) = slo.availability_min {
        let value = if k.availability >= min {
            1.0
        } else {
            k.burn_rate.map_or(0.0, |b| (2.0 - b).clamp(0.0, 1.0))
        };
        push("availability".into(), 4, value);
    }
    for ((class, max), f) in Priority::ALL
        .iter()
        .zip(&slo.freshness_p99_max)
        .zip(&k.freshness)
    {
        let Some(max) = max else { continue };
        let value = f
            .p99_us
            .map_or(1.0, |p| within_max(p as f64, max.as_micros() as f64));
        let weight = if *class == Priority::P0 { 2 } else { 1 };
        push(format!("freshness {class} p99"), weight, value);
    }
    if let Some(max) = slo.mttr_max {
        let mean = k
            .mttr
            .map_or(1.0, |m| within_max(m.as_secs_f64(), max.as_secs_f64()));
        let recovered = if k.faults_disrupting == 0 {
            1.0
        } else {
            1.0 - k.faults_unrecovered as f64 / k.faults_disrupting as f64
        };
        push("mttr".into(), 2, mean * recovered);
    }
    if let (Some(min), Some(lowest)) = (slo.soc_min, k.soc_lowest) {
        let value = if lowest >= min || min <= 0.0 {
            1.0
        } else {
            (lowest / min).clamp(0.0, 1.0)
        };
        push("lowest soc".into(), 1, value);
    }
    if let Some(r) = k.rto_compliance {
        push("rto compliance".into(), 2, r);
    }
    let detectable = k.faults_detected + k.faults_undetected;
    if detectable > 0 {
        push(
            "detection".into(),
            1,
            k.faults_detected as f64 / detectable as f64,
        );
    }
    out
}

/// Whether the safety gate holds: no violation, the RPO within its bound.
fn safe(k: &Kpis, slo: &Slo) -> bool {
    k.violations == 0 && k.rpo <= slo.rpo_max
}

/// The resilience score, 0 to 100 (a tenth's precision).
pub fn score(k: &Kpis, slo: &Slo) -> f64 {
    if !safe(k, slo) {
        return 0.0;
    }
    let t = terms(k, slo);
    let weights: u32 = t.iter().map(|t| t.weight).sum();
    if weights == 0 {
        return 100.0;
    }
    let sum: f64 = t.iter().map(|t| f64::from(t.weight) * t.value).sum();
    (1000.0 * sum / f64::from(weights)).round() / 10.0
}

pub(super) fn apply_slo(k: &mut Kpis, slo: &Slo) {
    k.resilience_score = Some(score(k, slo));
    k.resilience_gate = !safe(k, slo);
}

pub(super) fn row(k: &Kpis) -> Row {
    let value = match k.resilience_score {
        None => "n/a".to_string(),
        Some(s) if k.resilience_gate => {
            format!("{s:.1} / 100 (safety gate: an invariant broken or operations lost)")
        }
        Some(s) => format!("{s:.1} / 100"),
    };
    ("resilience score".into(), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::{Detection, FaultOutcome};
    use sovereign_logic::Time;
    use sovereign_scenario::{FaultKind, FaultSpec, Target};
    use std::time::Duration;

    /// A disrupting fault at 0 s, recovered after `secs`.
    fn recovered_after(secs: u64) -> FaultOutcome {
        FaultOutcome {
            id: 0,
            spec: FaultSpec {
                at: Duration::ZERO,
                duration: Duration::from_secs(60),
                target: Target::Tower(0),
                kind: FaultKind::Crash,
            },
            start: Time::ZERO,
            end: Time::from_secs(60),
            detected: Detection::At(Time::from_secs(1)),
            disrupting: true,
            towers_unsteady: 1,
            recovered: Some(Time::from_secs(secs)),
        }
    }

    fn slo() -> Slo {
        let mut s = Slo {
            availability_min: Some(0.99),
            mttr_max: Some(Duration::from_secs(600)),
            ..Slo::default()
        };
        s.freshness_p99_max[0] = Some(Duration::from_secs(60));
        s
    }

    /// A run that met everything: 100 reads served of 100, P0 within a minute, one fault
    /// detected and recovered within the bound.
    fn good() -> Kpis {
        let mut k = Kpis {
            availability: 1.0,
            reads_good: 100,
            reads_valid: 100,
            faults: 1,
            faults_detected: 1,
            faults_disrupting: 1,
            mttr: Some(Duration::from_secs(300)),
            fault_outcomes: vec![recovered_after(300)],
            ..Kpis::default()
        };
        k.freshness[0].p99_us = Some(30_000_000);
        k.freshness[0].samples = 10;
        k
    }

    fn scored(mut k: Kpis) -> Kpis {
        k.apply_slo(&slo());
        k
    }

    #[test]
    fn a_run_that_met_every_slo_scores_100() {
        let k = scored(good());
        assert_eq!(k.resilience_score, Some(100.0));
        let names: Vec<String> = terms(&k, &slo()).into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "availability",
                "freshness P0 p99",
                "mttr",
                "rto compliance",
                "detection"
            ]
        );
    }

    #[test]
    fn a_missed_bound_loses_its_credit_linearly() {
        // Weights: availability 4, P0 freshness 2, mttr 2, rto 2, detection 1 (11).
        // P0 p99 at 1.5× its bound: half the term's credit (1 of 11 lost).
        let mut k = good();
        k.freshness[0].p99_us = Some(90_000_000);
        assert_eq!(scored(k).resilience_score, Some(90.9));
        // Availability 0.985 against 0.99: burn rate 1.5, half of weight 4 (2 of 11).
        let mut k = good();
        k.availability = 0.985;
        k.reads_good = 985;
        k.reads_valid = 1000;
        assert_eq!(scored(k).resilience_score, Some(81.8));
        // The fault detected late is still detected; never detected loses weight 1.
        let mut k = good();
        k.faults_detected = 0;
        k.faults_undetected = 1;
        assert_eq!(scored(k).resilience_score, Some(90.9));
        // Twice the MTTR bound: nothing for the mttr term, and the recovery came later
        // than the RTO: nothing for rto compliance either (2 + 2 of 11 lost).
        let mut k = good();
        k.mttr = Some(Duration::from_secs(1200));
        k.fault_outcomes = vec![recovered_after(1200)];
        assert_eq!(scored(k).resilience_score, Some(63.6));
    }

    #[test]
    fn a_broken_invariant_or_a_lost_operation_scores_0() {
        let mut k = good();
        k.violations = 1;
        let k = scored(k);
        assert_eq!(k.resilience_score, Some(0.0));
        assert!(row(&k).1.contains("safety gate"), "{:?}", row(&k));
        let mut k = good();
        k.rpo = 1;
        assert_eq!(scored(k).resilience_score, Some(0.0));
        // The planted check stays quiet on a good run.
        assert!(!row(&scored(good())).1.contains("gate"));
    }

    #[test]
    fn a_run_without_objectives_or_faults_scores_100_and_faults_still_count() {
        let mut k = Kpis::default();
        k.apply_slo(&Slo::default());
        assert_eq!(k.resilience_score, Some(100.0));
        // No SLO, but a disrupting fault never recovered and one never detected: RTO
        // compliance (against the default RTO) and detection still count.
        let mut k = Kpis {
            faults: 2,
            faults_detected: 1,
            faults_undetected: 1,
            faults_disrupting: 1,
            faults_unrecovered: 1,
            fault_outcomes: vec![FaultOutcome {
                recovered: None,
                ..recovered_after(0)
            }],
            ..Kpis::default()
        };
        k.apply_slo(&Slo::default());
        // rto 0 × 2, detection 0.5 × 1: 0.5 of 3.
        assert_eq!(k.resilience_score, Some(16.7));
        let names: Vec<String> = terms(&k, &Slo::default())
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["rto compliance", "detection"]);
    }
}
