//! Shrinking a failing run to a minimal explicit fault schedule (and a smaller topology),
//! keeping "still violates the same oracle".
//!
//! Steps, each candidate run with the same seed and plant, all bounded by one run budget:
//! 1. Baseline: the failing run's explicit schedule (`RunOptions::schedule`, or the
//!    schedule the run reports when there is none) is run once to confirm it fails.
//! 2. The empty schedule is tried (planted bugs often fail without any fault), then the
//!    faults that can disturb the failing invariant (each kind declares which:
//!    `FaultDecl::disturbs`) alone; when that still fails, the rest are dropped at once.
//! 3. Delta debugging (Zeller & Hildebrandt's ddmin) over the list of faults.
//! 4. Each remaining fault's duration is halved (to whole milliseconds, at least 1 ms)
//!    while the run still fails.
//! 5. Towers that no remaining fault targets are dropped one at a time (last first); the
//!    fault targets' tower indices are remapped so the scenario stays consistent. At
//!    least one tower is kept.
//! 6. Each tower's device count is halved (down to 1) while the run still fails.
//!
//! Map: [`shrink`] (the entry point) and [`ShrinkResult`].
//!
//! Not covered: moving faults earlier in time, weakening fault parameters (loss
//! probabilities, skew), shortening the scenario's duration; those change timing too
//! much to keep the failure recognisable and are left to people.

use crate::report::RunReport;
use crate::scenario::{FaultSpec, Nemesis, Oracle, Scenario, Target};
use crate::world::RunOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// What shrinking produced.
#[derive(Clone, Debug)]
pub struct ShrinkResult {
    /// The shrunk scenario: the minimal explicit schedule in `faults`, nemesis off, the
    /// run's seed as its default seed, possibly fewer towers and devices.
    pub scenario: Scenario,
    /// Faults in the starting schedule.
    pub faults_before: usize,
    /// Faults in the shrunk schedule.
    pub faults_after: usize,
    /// Runs used (never more than the budget).
    pub runs: usize,
    /// Whether the shrunk scenario was seen to violate the oracle. `false` when the
    /// baseline did not fail (then `scenario` is the unshrunk explicit one) or the budget
    /// allowed no run at all.
    pub violates: bool,
    /// Whether the budget ran out before every step finished.
    pub budget_exhausted: bool,
}

/// Shrink a failing run. `scenario` and `opts` describe the failing run (seed, plant and
/// optionally the explicit schedule); `oracle` is the one that must keep failing; `run`
/// is the world (injected so tests can use a fake one); at most `budget_runs` runs.
pub fn shrink(
    scenario: &Scenario,
    opts: &RunOptions,
    oracle: Oracle,
    run: impl Fn(&Scenario, &RunOptions) -> RunReport,
    budget_runs: usize,
) -> ShrinkResult {
    let mut tester = Tester {
        run: &run,
        oracle,
        opts,
        runs: 0,
        budget_runs,
        exhausted: false,
    };

    // 1. The baseline and its explicit schedule.
    let (start, base_fails) = match &opts.schedule {
        Some(schedule) => {
            let fails = tester.fails(&explicit(scenario, schedule.clone()));
            (schedule.clone(), fails)
        }
        None => match tester.run_raw(scenario, opts) {
            Some(report) => {
                let fails = report.violates(oracle);
                (report.schedule, Some(fails))
            }
            None => (scenario.faults.clone(), None),
        },
    };
    let mut current = explicit(scenario, start.clone());
    let faults_before = start.len();
    if base_fails != Some(true) {
        return ShrinkResult {
            faults_after: current.faults.len(),
            scenario: current,
            faults_before,
            runs: tester.runs,
            violates: false,
            budget_exhausted: tester.exhausted,
        };
    }

    // 2. The suspects alone: the faults whose kind can disturb the failing invariant.
    let suspects: Vec<FaultSpec> = start
        .iter()
        .filter(|f| f.kind.decl().disturbs.contains(&oracle))
        .cloned()
        .collect();
    let start = if !suspects.is_empty()
        && suspects.len() < start.len()
        && tester.fails(&explicit(&current, suspects.clone())) == Some(true)
    {
        suspects
    } else {
        start
    };

    // 2 + 3. The empty schedule, then ddmin over the faults.
    if !start.is_empty() {
        let kept = ddmin(start.len(), |indices| {
            let faults = indices.iter().map(|&i| start[i].clone()).collect();
            tester.fails(&explicit(&current, faults))
        });
        current.faults = kept.into_iter().map(|i| start[i].clone()).collect();
    }

    // 4. Halve durations.
    for i in 0..current.faults.len() {
        loop {
            let ms = current.faults[i].duration.as_millis();
            let half = Duration::from_millis(u64::try_from(ms / 2).unwrap_or(u64::MAX));
            if half.is_zero() {
                break;
            }
            let mut candidate = current.clone();
            candidate.faults[i].duration = half;
            match tester.fails(&candidate) {
                Some(true) => current = candidate,
                _ => break,
            }
        }
    }

    // 5. Drop untargeted towers, last first (so earlier indices stay put while we scan).
    for t in (0..current.towers.len()).rev() {
        if current.towers.len() <= 1 {
            break;
        }
        if current
            .faults
            .iter()
            .any(|f| tower_of(&f.target) == Some(t))
        {
            continue;
        }
        let candidate = without_tower(&current, t);
        if tester.fails(&candidate) == Some(true) {
            current = candidate;
        }
    }

    // 6. Halve device counts.
    for t in 0..current.towers.len() {
        while current.towers[t].devices > 1 {
            let mut candidate = current.clone();
            candidate.towers[t].devices /= 2;
            match tester.fails(&candidate) {
                Some(true) => current = candidate,
                _ => break,
            }
        }
    }

    ShrinkResult {
        faults_after: current.faults.len(),
        scenario: current,
        faults_before,
        runs: tester.runs,
        violates: true,
        budget_exhausted: tester.exhausted,
    }
}

/// Runs candidates within the budget.
struct Tester<'a, F> {
    run: &'a F,
    oracle: Oracle,
    opts: &'a RunOptions,
    runs: usize,
    budget_runs: usize,
    exhausted: bool,
}

impl<F: Fn(&Scenario, &RunOptions) -> RunReport> Tester<'_, F> {
    /// One run as given, if the budget allows.
    fn run_raw(&mut self, scenario: &Scenario, opts: &RunOptions) -> Option<RunReport> {
        if self.runs >= self.budget_runs {
            self.exhausted = true;
            return None;
        }
        self.runs += 1;
        Some((self.run)(scenario, opts))
    }

    /// Whether the explicit candidate still violates the oracle; `None` when the budget
    /// is spent. Same seed and plant; the candidate's faults as the explicit schedule.
    fn fails(&mut self, candidate: &Scenario) -> Option<bool> {
        debug_assert!(candidate.nemesis.rates_per_hour.is_empty());
        let opts = RunOptions {
            seed: self.opts.seed,
            plant: self.opts.plant,
            record_trace: false,
            schedule: Some(candidate.faults.clone()),
            branches: self.opts.branches.clone(),
        };
        let report = self.run_raw(candidate, &opts)?;
        Some(report.violates(self.oracle))
    }
}

/// `scenario` with `faults` as its explicit schedule, nemesis off.
fn explicit(scenario: &Scenario, faults: Vec<FaultSpec>) -> Scenario {
    let mut s = scenario.clone();
    s.faults = faults;
    s.nemesis = Nemesis::off();
    s
}

/// The tower a target lies on, if any.
fn tower_of(target: &Target) -> Option<usize> {
    match target {
        Target::Origin => None,
        Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => Some(*t),
    }
}

/// `scenario` without tower `t`; targets above `t` shift down. No fault may target `t`.
fn without_tower(scenario: &Scenario, t: usize) -> Scenario {
    let mut s = scenario.clone();
    s.towers.remove(t);
    let shift = |i: usize| {
        assert_ne!(i, t, "a fault targets the tower being dropped");
        if i > t { i - 1 } else { i }
    };
    for f in &mut s.faults {
        f.target = match f.target.clone() {
            Target::Origin => Target::Origin,
            Target::Tower(i) => Target::Tower(shift(i)),
            Target::Link(i, k) => Target::Link(shift(i), k),
            Target::Wifi(i) => Target::Wifi(shift(i)),
        };
    }
    s
}

/// Zeller & Hildebrandt's ddmin over `0..n`: a 1-minimal subset of indices for which
/// `fails` is true, assuming it is true for all of `0..n`. The empty set is tried first.
/// `fails` returning `None` (budget spent) stops the search with the current subset.
/// Results are memoised: the same subset is never run twice.
fn ddmin(n: usize, mut fails: impl FnMut(&[usize]) -> Option<bool>) -> Vec<usize> {
    let mut seen: BTreeMap<Vec<usize>, bool> = BTreeMap::new();
    let mut test = |subset: &[usize]| -> Option<bool> {
        if let Some(&r) = seen.get(subset) {
            return Some(r);
        }
        let r = fails(subset)?;
        seen.insert(subset.to_vec(), r);
        Some(r)
    };

    let mut current: Vec<usize> = (0..n).collect();
    match test(&[]) {
        Some(true) => return Vec::new(),
        Some(false) => {}
        None => return current,
    }
    let mut granularity = 2usize;
    while current.len() >= 2 {
        let chunks = split(&current, granularity);
        let mut reduced = false;
        // Reduce to a subset.
        for c in &chunks {
            match test(c) {
                Some(true) => {
                    current = c.clone();
                    granularity = 2;
                    reduced = true;
                    break;
                }
                Some(false) => {}
                None => return current,
            }
        }
        // Reduce to a complement.
        if !reduced && granularity > 2 {
            for c in &chunks {
                let complement: Vec<usize> =
                    current.iter().copied().filter(|i| !c.contains(i)).collect();
                match test(&complement) {
                    Some(true) => {
                        current = complement;
                        granularity = (granularity - 1).max(2);
                        reduced = true;
                        break;
                    }
                    Some(false) => {}
                    None => return current,
                }
            }
        }
        if !reduced {
            if granularity >= current.len() {
                break;
            }
            granularity = (granularity * 2).min(current.len());
        }
    }
    // A single fault left: ddmin's result is 1-minimal already (the empty set was tried).
    current
}

/// Split `items` into `parts` contiguous chunks of near-equal size.
fn split(items: &[usize], parts: usize) -> Vec<Vec<usize>> {
    assert!(parts >= 1 && parts <= items.len().max(1));
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 0..parts {
        let end = start + (items.len() - start) / (parts - k);
        out.push(items[start..end].to_vec());
        start = end;
    }
    debug_assert_eq!(start, items.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::{fault, report, scenario};
    use crate::report::Violation;
    use crate::scenario::FaultKind;
    use proptest::prelude::*;
    use sovereign_logic::Time;
    use std::cell::Cell;

    fn bad(oracle: Oracle) -> Violation {
        Violation {
            oracle,
            at: Time::from_secs(1),
            detail: "fake".into(),
            liveness: false,
        }
    }

    /// Eight faults on tower 0 (crash at 10 s, 20 s, …); X = the one at 30 s, Y = 70 s.
    fn eight() -> Vec<FaultSpec> {
        (1..=8)
            .map(|k| fault(k * 10, 0, FaultKind::Crash))
            .collect()
    }

    fn has(opts: &RunOptions, at_s: u64) -> Option<&FaultSpec> {
        opts.schedule
            .as_ref()
            .unwrap()
            .iter()
            .find(|f| f.at == Duration::from_secs(at_s))
    }

    #[test]
    fn ddmin_finds_exactly_the_two_culprits() {
        // Goal: violation iff X and Y are both present ⇒ the shrunk schedule is {X, Y}.
        let s = scenario(3, eight());
        let opts = RunOptions {
            seed: 5,
            schedule: Some(eight()),
            ..RunOptions::default()
        };
        let run = |_: &Scenario, o: &RunOptions| {
            assert_eq!(o.seed, 5);
            let v = if has(o, 30).is_some() && has(o, 70).is_some() {
                vec![bad(Oracle::Durability)]
            } else {
                vec![bad(Oracle::Integrity)] // another oracle: must not count
            };
            report(o.seed, v, o.schedule.clone().unwrap())
        };
        let r = shrink(&s, &opts, Oracle::Durability, run, 1000);
        assert!(r.violates);
        assert_eq!(r.faults_before, 8);
        assert_eq!(r.faults_after, 2);
        let ats: Vec<u64> = r.scenario.faults.iter().map(|f| f.at.as_secs()).collect();
        assert_eq!(ats, vec![30, 70]);
        assert_eq!(r.scenario.nemesis, Nemesis::off());
        assert!(!r.budget_exhausted);
    }

    #[test]
    fn faults_that_cannot_disturb_the_invariant_go_first() {
        // Goal: with an integrity failure among pauses and one disk corruption, the second
        // run tries the corruption alone (the only kind declared to disturb integrity),
        // and the shrunk schedule is that fault.
        let mut faults: Vec<FaultSpec> = (1..=5)
            .map(|k| fault(k * 10, 0, FaultKind::Pause))
            .collect();
        faults.push(fault(70, 0, FaultKind::Corruption { chunks: 1 }));
        let s = scenario(1, faults.clone());
        let opts = RunOptions {
            schedule: Some(faults),
            ..RunOptions::default()
        };
        let seen = std::cell::RefCell::new(Vec::new());
        let run = |_: &Scenario, o: &RunOptions| {
            let schedule = o.schedule.clone().unwrap();
            seen.borrow_mut().push(schedule.len());
            let v = if has(o, 70).is_some() {
                vec![bad(Oracle::Integrity)]
            } else {
                Vec::new()
            };
            report(o.seed, v, schedule)
        };
        let r = shrink(&s, &opts, Oracle::Integrity, run, 1000);
        assert_eq!(r.faults_after, 1);
        assert!(matches!(
            r.scenario.faults[0].kind,
            FaultKind::Corruption { .. }
        ));
        assert_eq!(seen.borrow()[..2], [6, 1]);
    }

    #[test]
    fn durations_halve_while_it_still_fails() {
        // Goal: X must last ≥ 10 s to fail; its 64 s halves to 16 s (8 s would pass).
        let s = scenario(1, eight());
        let opts = RunOptions {
            schedule: Some(eight()),
            ..RunOptions::default()
        };
        let run = |_: &Scenario, o: &RunOptions| {
            let v = match has(o, 30) {
                Some(f) if f.duration >= Duration::from_secs(10) => vec![bad(Oracle::Priority)],
                _ => Vec::new(),
            };
            report(o.seed, v, Vec::new())
        };
        let r = shrink(&s, &opts, Oracle::Priority, run, 1000);
        assert_eq!(r.faults_after, 1);
        assert_eq!(r.scenario.faults[0].duration, Duration::from_secs(16));
    }

    #[test]
    fn untargeted_towers_drop_and_targets_are_remapped() {
        // Goal: with the culprit on tower 2 of 4, towers 0, 1, 3 go (one kept is the
        // culprit's) and the fault's target is remapped to index 0.
        let faults = vec![
            fault(10, 2, FaultKind::Crash),
            fault(20, 1, FaultKind::Pause),
        ];
        let s = scenario(4, faults.clone());
        let opts = RunOptions {
            schedule: Some(faults),
            ..RunOptions::default()
        };
        let run = |sc: &Scenario, o: &RunOptions| {
            // Fails iff the crash hits the tower named tower-2.
            let hit = o.schedule.as_ref().unwrap().iter().any(|f| {
                f.kind == FaultKind::Crash
                    && matches!(f.target, Target::Tower(i) if sc.towers[i].name == "tower-2")
            });
            let v = if hit {
                vec![bad(Oracle::Convergence)]
            } else {
                Vec::new()
            };
            report(o.seed, v, Vec::new())
        };
        let r = shrink(&s, &opts, Oracle::Convergence, run, 1000);
        assert_eq!(r.scenario.towers.len(), 1);
        assert_eq!(r.scenario.towers[0].name, "tower-2");
        assert_eq!(r.scenario.faults.len(), 1);
        assert_eq!(r.scenario.faults[0].target, Target::Tower(0));
        assert_eq!(r.scenario.towers[0].devices, 1);
    }

    #[test]
    fn budget_is_respected() {
        // Goal: never more runs than the budget, and exhaustion is reported.
        let count = Cell::new(0usize);
        let s = scenario(2, eight());
        let opts = RunOptions {
            schedule: Some(eight()),
            ..RunOptions::default()
        };
        let run = |_: &Scenario, o: &RunOptions| {
            count.set(count.get() + 1);
            let v = if has(o, 30).is_some() && has(o, 70).is_some() {
                vec![bad(Oracle::Durability)]
            } else {
                Vec::new()
            };
            report(o.seed, v, Vec::new())
        };
        for budget in [0, 1, 3, 7] {
            count.set(0);
            let r = shrink(&s, &opts, Oracle::Durability, run, budget);
            assert!(count.get() <= budget);
            assert_eq!(r.runs, count.get());
            assert!(r.budget_exhausted);
            // Whatever it kept still fails (or is the untouched start).
            assert!(
                r.scenario
                    .faults
                    .iter()
                    .any(|f| f.at == Duration::from_secs(30))
            );
        }
    }

    #[test]
    fn baseline_that_passes_is_not_shrunk() {
        // Goal: a run that does not violate the oracle is returned unchanged, violates=false.
        let s = scenario(2, eight());
        let r = shrink(
            &s,
            &RunOptions::default(),
            Oracle::Integrity,
            |_: &Scenario, o: &RunOptions| report(o.seed, Vec::new(), eight()),
            100,
        );
        assert!(!r.violates);
        assert_eq!(r.runs, 1);
        assert_eq!(r.scenario.faults, eight());
        assert_eq!(r.faults_after, 8);
    }

    #[test]
    fn without_schedule_the_reported_schedule_is_the_start() {
        // Goal: opts.schedule = None ⇒ shrinking starts from the schedule the run reports
        // (nemesis draws included) and a plant-only failure shrinks to no fault.
        let s = scenario(1, Vec::new());
        let run = |_: &Scenario, o: &RunOptions| {
            report(
                o.seed,
                vec![bad(Oracle::Conservation)],
                match &o.schedule {
                    None => eight(),
                    Some(x) => x.clone(),
                },
            )
        };
        let r = shrink(&s, &RunOptions::default(), Oracle::Conservation, run, 100);
        assert_eq!(r.faults_before, 8);
        assert_eq!(r.faults_after, 0);
        assert!(r.violates);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Goal: for any culprit set in any list, ddmin returns exactly the culprits.
        #[test]
        fn ddmin_returns_the_culprit_set(n in 1usize..24, picks in proptest::collection::btree_set(0usize..24, 0..4)) {
            let culprits: Vec<usize> = picks.into_iter().filter(|&i| i < n).collect();
            let got = ddmin(n, |s| Some(culprits.iter().all(|c| s.contains(c))));
            prop_assert_eq!(got, culprits);
        }

        /// Goal: split covers its input in order with near-equal parts.
        #[test]
        fn split_partitions(len in 1usize..40, parts in 1usize..40) {
            let parts = parts.min(len);
            let items: Vec<usize> = (0..len).collect();
            let chunks = split(&items, parts);
            prop_assert_eq!(chunks.len(), parts);
            prop_assert_eq!(chunks.concat(), items);
            let (lo, hi) = (chunks.iter().map(Vec::len).min().unwrap(), chunks.iter().map(Vec::len).max().unwrap());
            prop_assert!(hi - lo <= 1 && lo >= 1);
        }
    }
}
