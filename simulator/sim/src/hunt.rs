//! Hunts: how many runs (and how much CPU) a sweep spends before it first catches a
//! planted bug — the measure of a seed-picking strategy (issue 17).
//!
//! A hunt for plant `P` is one independent stream of runs with `P` planted, each a
//! uniformly drawn (scenario, seed): run `i` takes the `2i`-th draw of the hunt's own
//! stream modulo the `S` scenarios and the `2i+1`-th as its seed ([`hunt_draw`]: SplitMix64
//! from `derive(base, "hunt <k>")`, so hunt `k` draws the same runs whatever the plant,
//! the thread count or the other hunts). Drawing the scenario, rather than taking them in
//! turn, keeps a plant that one scenario catches at once from scoring that scenario's
//! place in the list. The hunt
//! stops at the first run where `P`'s oracle fails *and* the clean build passes that same
//! oracle on that same scenario and seed — a failure the clean build has too is not the
//! plant's catch, and the hunt goes on. A hunt that reaches its budget is a miss.
//!
//! Over `K` hunts, [`HuntStats`] gives the median and the 90th percentile of runs and
//! CPU seconds to the first catch, nearest-rank, with misses ranked above every catch: a
//! quantile that lands on a miss is reported as "more than the budget", not as the budget.
//!
//! A [`Strategy`] (swarm variants, fault sites) turns each drawn (scenario, seed) into the
//! scenario that runs, for the plant and for the clean build alike.
//!
//! A guided hunt ([`Guide`]) runs the same draws, but when a run reaches a rare moment
//! ([`Sometimes`]) that fewer than [`Guide::rare_below`] of the hunt's runs reached
//! before, it queues [`Guide::branches`] branches of that run shortly before that moment
//! (each between 0.1 s and [`Guide::back_max`] earlier, log-uniform, never before the
//! run's own last branch point: fresh randomness from there on, so the moment is
//! approached again in other ways; seeds and distances from the hunt's own `guide <k>`
//! stream), and runs the queue before the next fresh draw; a branch that reaches a
//! rare moment after its own point is branched again, up to [`Guide::depth`] deep. Every branch counts against the
//! budget like any run; a catch names its branch points, so it reruns exactly.
//!
//! Map: [`hunt_draw`], [`hunt`] (one hunt, sequential), [`Guide`], [`Catch`],
//! [`HuntStats`], [`quantile`].
//!
//! Not covered: threads and CPU clocks (the CLI runs hunts on worker threads and measures
//! each run's CPU time; this crate has neither), printing.

use crate::plant::Plant;
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::sweep::{Strategy, run_options};
use crate::world::{Branch, RunOptions, Sometimes};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use std::collections::VecDeque;

/// Most runs one hunt may spend.
pub const BUDGET_MAX: u64 = 10_000_000;
/// Most hunts per plant.
pub const HUNTS_MAX: u64 = 10_000;

/// The stream of hunt `hunt` from base seed `base`.
fn stream(base: u64, hunt: u64) -> SplitMix64 {
    SplitMix64::new(SplitMix64::derive(base, &format!("hunt {hunt}")))
}

/// The next run of a hunt's stream: (scenario index among `scenarios`, seed).
fn next_run(stream: &mut SplitMix64, scenarios: usize) -> (usize, u64) {
    let pick = stream.next_u64() % scenarios.max(1) as u64;
    (usize::try_from(pick).unwrap_or(0), stream.next_u64())
}

/// Run `i` of hunt `hunt` from base seed `base` over `scenarios` scenarios: (scenario
/// index, seed).
pub fn hunt_draw(base: u64, hunt: u64, scenarios: usize, i: u64) -> (usize, u64) {
    let mut s = stream(base, hunt);
    let mut run = next_run(&mut s, scenarios);
    for _ in 0..i {
        run = next_run(&mut s, scenarios);
    }
    run
}

/// The first catch of a hunt.
#[derive(Clone, Debug, PartialEq)]
pub struct Catch {
    /// Runs spent, the catching run included (1 = the first run caught it).
    pub runs: u64,
    /// CPU seconds of those runs (the clean build's confirming runs not included).
    pub cpu_s: f64,
    /// Index of the scenario that caught it.
    pub scenario_index: usize,
    /// The seed that caught it.
    pub seed: u64,
    /// Runs where the plant's oracle failed but so did the clean build's (not counted as
    /// catches; the hunt went on).
    pub clean_also_failed: u64,
    /// The catching run's branch points (a guided hunt's branch; empty for a fresh draw).
    pub branches: Vec<Branch>,
}

/// How a guided hunt spends its budget around rare moments (see the module's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guide {
    /// Branches queued per rare moment reached.
    pub branches: u32,
    /// A moment is rare while fewer than this many of the hunt's runs reached it.
    pub rare_below: u64,
    /// Most branch points on one run (a branch of a branch of ...).
    pub depth: usize,
    /// How far before the moment a branch may start.
    pub back_max: std::time::Duration,
}

impl Guide {
    /// The settings `sim hunt --guided` uses.
    pub const DEFAULT: Guide = Guide {
        branches: 4,
        rare_below: 1,
        depth: 2,
        back_max: std::time::Duration::from_secs(600),
    };

    /// A branch point at a moment at `t` (half the time: the moment is in the prefix,
    /// its aftermath drawn afresh) or shortly before it (log-uniform distance from 0.1 s
    /// to [`Guide::back_max`]: the moment approached again), never before `floor`.
    fn before(
        &self,
        t: std::time::Duration,
        floor: std::time::Duration,
        rng: &mut SplitMix64,
    ) -> std::time::Duration {
        if rng.chance(0.5) {
            return t.max(floor);
        }
        let (lo, hi) = (0.1f64.ln(), self.back_max.as_secs_f64().max(0.1).ln());
        let back = std::time::Duration::from_secs_f64((lo + (hi - lo) * rng.unit()).exp());
        t.saturating_sub(back).max(floor)
    }
}

/// What one hunt came to.
#[derive(Clone, Debug, PartialEq)]
pub struct HuntOutcome {
    /// The catch, or `None` when the budget ran out first.
    pub catch: Option<Catch>,
    /// Runs spent (the budget for a miss).
    pub runs: u64,
    /// CPU seconds spent.
    pub cpu_s: f64,
    /// Of the runs, how many were branches (a guided hunt's; 0 otherwise).
    pub branch_runs: u64,
}

/// Run hunt `hunt` for `plant` over `scenarios` (at least one) from `base`, at most
/// `budget` runs, each run's scenario picked by `strategy`. `run` executes one run and
/// returns its report and CPU seconds.
#[allow(clippy::too_many_arguments)]
pub fn hunt(
    scenarios: &[Scenario],
    plant: Plant,
    base: u64,
    hunt: u64,
    budget: u64,
    strategy: Strategy,
    guide: Option<Guide>,
    mut run: impl FnMut(&Scenario, &RunOptions) -> (RunReport, f64),
) -> HuntOutcome {
    assert!(!scenarios.is_empty(), "a hunt needs a scenario");
    let mut stream = stream(base, hunt);
    let mut guide_seeds = SplitMix64::new(SplitMix64::derive(base, &format!("guide {hunt}")));
    let mut queue: VecDeque<(usize, u64, Vec<Branch>)> = VecDeque::new();
    let mut reached_by = [0u64; Sometimes::ALL.len()];
    let mut cpu_s = 0.0;
    let mut clean_also_failed = 0;
    let mut branch_runs = 0;
    let oracle = plant.oracle();
    for i in 0..budget {
        let (scenario_index, seed, branches) = match queue.pop_front() {
            Some(q) => q,
            None => {
                let (s, seed) = next_run(&mut stream, scenarios.len());
                (s, seed, Vec::new())
            }
        };
        let scenario = strategy.scenario(&scenarios[scenario_index], seed);
        let scenario = scenario.as_ref();
        let opts = |plant| RunOptions {
            branches: branches.clone(),
            ..run_options(seed, plant)
        };
        let (report, took) = run(scenario, &opts(Some(plant)));
        cpu_s += took;
        branch_runs += u64::from(!branches.is_empty());
        if let Some(g) = guide {
            // Moments reached after the run's last branch point are this run's own.
            let after = branches.last().map(|b| b.at);
            for &(m, t) in &report.sometimes {
                let t = std::time::Duration::from_micros(t.as_micros());
                if after.is_some_and(|a| t <= a) {
                    continue;
                }
                let n = &mut reached_by[m as usize];
                if *n < g.rare_below && branches.len() < g.depth {
                    let floor = after.unwrap_or_default();
                    for _ in 0..g.branches {
                        let mut b = branches.clone();
                        b.push(Branch {
                            at: g.before(t, floor, &mut guide_seeds),
                            seed: guide_seeds.next_u64(),
                        });
                        queue.push_back((scenario_index, seed, b));
                    }
                }
                *n += 1;
            }
        }
        if !report.violates(oracle) {
            continue;
        }
        let (clean, _) = run(scenario, &opts(None));
        if clean.violates(oracle) {
            clean_also_failed += 1;
            continue;
        }
        return HuntOutcome {
            catch: Some(Catch {
                runs: i + 1,
                cpu_s,
                scenario_index,
                seed,
                clean_also_failed,
                branches,
            }),
            runs: i + 1,
            cpu_s,
            branch_runs,
        };
    }
    HuntOutcome {
        catch: None,
        runs: budget,
        cpu_s,
        branch_runs,
    }
}

/// A quantile of runs (or CPU seconds) to the first catch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantile {
    /// The hunt at this rank caught the plant after this much.
    At(f64),
    /// The hunt at this rank missed: more than the budget.
    Beyond,
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of `values`, where `None` is a miss ranked
/// above every value. `None` for no values.
pub fn quantile(values: &[Option<f64>], q: f64) -> Option<Quantile> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least q of the values at or below it.
    let n = values.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(match sorted.get(rank - 1) {
        Some(&v) => Quantile::At(v),
        None => Quantile::Beyond,
    })
}

/// A plant's hunts summed up.
#[derive(Clone, Debug, PartialEq)]
pub struct HuntStats {
    /// Hunts run.
    pub hunts: usize,
    /// Hunts that caught the plant.
    pub caught: usize,
    /// Median runs to the first catch.
    pub runs_median: Quantile,
    /// 90th percentile of runs to the first catch.
    pub runs_p90: Quantile,
    /// Median CPU seconds to the first catch.
    pub cpu_median: Quantile,
    /// 90th percentile of CPU seconds to the first catch.
    pub cpu_p90: Quantile,
    /// CPU seconds spent by all hunts (misses included).
    pub cpu_total: f64,
}

impl HuntStats {
    /// Sum up `outcomes` (at least one).
    pub fn of(outcomes: &[HuntOutcome]) -> Option<HuntStats> {
        let runs: Vec<Option<f64>> = outcomes
            .iter()
            .map(|o| o.catch.as_ref().map(|c| c.runs as f64))
            .collect();
        let cpu: Vec<Option<f64>> = outcomes
            .iter()
            .map(|o| o.catch.as_ref().map(|c| c.cpu_s))
            .collect();
        Some(HuntStats {
            hunts: outcomes.len(),
            caught: outcomes.iter().filter(|o| o.catch.is_some()).count(),
            runs_median: quantile(&runs, 0.5)?,
            runs_p90: quantile(&runs, 0.9)?,
            cpu_median: quantile(&cpu, 0.5)?,
            cpu_p90: quantile(&cpu, 0.9)?,
            cpu_total: outcomes.iter().map(|o| o.cpu_s).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::{report, scenario};
    use crate::report::Violation;
    use sovereign_logic::Time;

    fn violation(oracle: crate::scenario::Oracle) -> Violation {
        Violation {
            oracle,
            at: Time::ZERO,
            detail: "x".into(),
            liveness: false,
        }
    }

    #[test]
    fn hunt_draws_are_a_stream_per_hunt_over_every_scenario() {
        // Goal: hunt k's runs depend only on (base, k, i), hunts differ, bases differ, and
        // the scenario is drawn: all of 10 come up within 100 runs, each roughly equally.
        let a: Vec<(usize, u64)> = (0..5).map(|i| hunt_draw(7, 0, 3, i)).collect();
        let b: Vec<(usize, u64)> = (0..5).map(|i| hunt_draw(7, 1, 3, i)).collect();
        let c: Vec<(usize, u64)> = (0..5).map(|i| hunt_draw(8, 0, 3, i)).collect();
        assert_eq!(a, (0..5).map(|i| hunt_draw(7, 0, 3, i)).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_ne!(a, c);
        let seeds: std::collections::BTreeSet<u64> = a.iter().map(|r| r.1).collect();
        assert_eq!(seeds.len(), 5);
        let mut per = [0u32; 10];
        for i in 0..1000 {
            per[hunt_draw(1, 0, 10, i).0] += 1;
        }
        assert!(per.iter().all(|&n| (60..=140).contains(&n)), "{per:?}");
    }

    #[test]
    fn a_hunt_stops_at_the_first_catch_the_clean_build_does_not_share() {
        // Goal: the hunt walks its own seed stream over the scenarios in turn, skips a
        // failure the clean build has too, and stops at the first true catch.
        let sc = [scenario(1, Vec::new()), scenario(1, Vec::new())];
        let plant = Plant::SkipVerify;
        let runs: Vec<(usize, u64)> = (0..6).map(|i| hunt_draw(3, 2, 2, i)).collect();
        let seeds: Vec<u64> = runs.iter().map(|r| r.1).collect();
        let mut calls = Vec::new();
        let out = hunt(&sc, plant, 3, 2, 100, Strategy::UNIFORM, None, |_, o| {
            calls.push((o.seed, o.plant));
            let mut r = report(o.seed, Vec::new(), Vec::new());
            // Run 2 fails with and without the plant; run 4 fails only with it.
            let both = o.seed == seeds[1];
            let planted = o.seed == seeds[3] && o.plant.is_some();
            if both || planted {
                r.violations.push(violation(plant.oracle()));
            }
            (r, 0.5)
        });
        let c = out.catch.expect("caught");
        assert_eq!(c.runs, 4);
        assert_eq!(c.seed, seeds[3]);
        assert_eq!(c.scenario_index, runs[3].0);
        assert_eq!(c.clean_also_failed, 1);
        assert!((c.cpu_s - 2.0).abs() < 1e-9, "{}", c.cpu_s);
        // Four planted runs and two clean confirmations, in order.
        assert_eq!(calls.len(), 6);
        assert_eq!(calls[2], (seeds[1], None));
        assert_eq!(calls[5], (seeds[3], None));
    }

    #[test]
    fn another_oracles_failure_is_not_a_catch_and_a_hunt_can_miss() {
        // Goal: only the plant's own oracle counts; the budget bounds the hunt.
        let sc = [scenario(1, Vec::new())];
        let out = hunt(
            &sc,
            Plant::SkipVerify,
            0,
            0,
            7,
            Strategy::UNIFORM,
            None,
            |_, o| {
                let mut r = report(o.seed, Vec::new(), Vec::new());
                r.violations
                    .push(violation(crate::scenario::Oracle::Convergence));
                (r, 1.0)
            },
        );
        assert_eq!(out.catch, None);
        assert_eq!(out.runs, 7);
        assert!((out.cpu_s - 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_swarm_hunt_runs_each_draws_variant_for_the_plant_and_the_clean_build() {
        // Goal: with Strategy::SWARM, run i runs swarm(scenario, seed) — the same variant
        // for the planted run and its clean confirmation — and the uniform hunt the
        // scenario as written.
        let mut sc = scenario(1, Vec::new());
        sc.workload.ops_per_device_hour = 8.0;
        let sc = [sc];
        let seed0 = hunt_draw(5, 1, 1, 0).1;
        let want = crate::swarm::swarm(&sc[0], seed0).scenario;
        assert_ne!(want, sc[0]);
        let mut seen = Vec::new();
        let out = hunt(
            &sc,
            Plant::SkipVerify,
            5,
            1,
            1,
            Strategy::SWARM,
            None,
            |s, o| {
                seen.push((s.clone(), o.plant));
                let mut r = report(o.seed, Vec::new(), Vec::new());
                if o.plant.is_some() {
                    r.violations.push(violation(Plant::SkipVerify.oracle()));
                }
                (r, 0.1)
            },
        );
        assert_eq!(out.catch.map(|c| c.seed), Some(seed0));
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|(s, _)| *s == want));
        let mut uniform = Vec::new();
        hunt(
            &sc,
            Plant::SkipVerify,
            5,
            1,
            1,
            Strategy::UNIFORM,
            None,
            |s, o| {
                uniform.push(s.clone());
                (report(o.seed, Vec::new(), Vec::new()), 0.1)
            },
        );
        assert_eq!(uniform, vec![sc[0].clone()]);
    }

    #[test]
    fn a_guided_hunt_branches_at_rare_moments_and_its_catch_names_the_branch() {
        // Goal: a run that reaches a moment no run reached yet is followed by
        // Guide::branches branches of it at that moment (same scenario and seed, fresh
        // branch seeds), before the next fresh draw; moments in a branch's prefix do not
        // count again; a catch in a branch carries its branch points, and the clean
        // build's confirmation runs the same branches. Unguided, the same fake never
        // branches and misses.
        use crate::world::Sometimes;
        let sc = [scenario(1, Vec::new())];
        let at = Time::from_secs(1000);
        let fake = |calls: &mut Vec<RunOptions>, o: &RunOptions| {
            calls.push(o.clone());
            let mut r = report(o.seed, Vec::new(), Vec::new());
            r.sometimes = vec![(Sometimes::BreakerOpenWithOutbox, at)];
            // The plant fails only in the third branch (a rare future of the moment).
            if o.plant.is_some() && o.branches.len() == 1 && calls.len() == 4 {
                r.violations.push(violation(Plant::SkipVerify.oracle()));
            }
            (r, 1.0)
        };
        let mut calls = Vec::new();
        let g = Guide {
            branches: 4,
            rare_below: 1,
            depth: 2,
            back_max: std::time::Duration::from_secs(600),
        };
        let out = hunt(
            &sc,
            Plant::SkipVerify,
            9,
            0,
            50,
            Strategy::UNIFORM,
            Some(g),
            |_, o| fake(&mut calls, o),
        );
        let c = out.catch.expect("caught in a branch");
        assert_eq!(c.runs, 4);
        assert_eq!(out.branch_runs, 3);
        assert_eq!(c.seed, hunt_draw(9, 0, 1, 0).1);
        assert_eq!(c.branches.len(), 1);
        for o in &calls[1..4] {
            let b = o.branches[0].at.as_secs_f64();
            assert!(
                (400.0..=1000.0).contains(&b),
                "at or shortly before the moment: {b}"
            );
        }
        let seeds: std::collections::BTreeSet<u64> =
            calls[1..4].iter().map(|o| o.branches[0].seed).collect();
        assert_eq!(seeds.len(), 3, "each branch its own seed");
        assert!(calls[..4].iter().all(|o| o.seed == c.seed));
        assert_eq!(
            calls[4].branches, c.branches,
            "the clean run is the same branch"
        );
        assert_eq!(calls[4].plant, None);
        // The moment again in a branch: no longer rare, so no branch of a branch.
        assert!(calls.iter().all(|o| o.branches.len() <= 1));
        let mut calls = Vec::new();
        let out = hunt(
            &sc,
            Plant::SkipVerify,
            9,
            0,
            50,
            Strategy::UNIFORM,
            None,
            |_, o| fake(&mut calls, o),
        );
        assert_eq!(out.catch, None);
        assert!(calls.iter().all(|o| o.branches.is_empty()));
    }

    #[test]
    fn quantiles_rank_misses_above_every_catch() {
        // Goal: nearest rank; a rank that lands on a miss is Beyond, not the budget.
        let v = [Some(5.0), None, Some(1.0), Some(3.0)];
        assert_eq!(quantile(&v, 0.5), Some(Quantile::At(3.0)));
        assert_eq!(quantile(&v, 0.75), Some(Quantile::At(5.0)));
        assert_eq!(quantile(&v, 0.9), Some(Quantile::Beyond));
        assert_eq!(quantile(&[Some(2.0)], 0.9), Some(Quantile::At(2.0)));
        assert_eq!(
            quantile(&[None, None, Some(1.0)], 0.5),
            Some(Quantile::Beyond)
        );
        assert_eq!(quantile(&[], 0.5), None);
        let ten: Vec<Option<f64>> = (1..=10).map(|x| Some(f64::from(x))).collect();
        assert_eq!(quantile(&ten, 0.5), Some(Quantile::At(5.0)));
        assert_eq!(quantile(&ten, 0.9), Some(Quantile::At(9.0)));
    }

    #[test]
    fn stats_sum_up_catches_and_misses() {
        // Goal: caught counts, medians over catches with misses above, total CPU over all.
        let caught = |runs, cpu_s| HuntOutcome {
            catch: Some(Catch {
                runs,
                cpu_s,
                scenario_index: 0,
                seed: 1,
                clean_also_failed: 0,
                branches: Vec::new(),
            }),
            runs,
            cpu_s,
            branch_runs: 0,
        };
        let miss = HuntOutcome {
            catch: None,
            runs: 100,
            cpu_s: 10.0,
            branch_runs: 0,
        };
        let s = HuntStats::of(&[caught(4, 0.4), miss, caught(2, 0.2)]).unwrap();
        assert_eq!((s.hunts, s.caught), (3, 2));
        assert_eq!(s.runs_median, Quantile::At(4.0));
        assert_eq!(s.runs_p90, Quantile::Beyond);
        assert_eq!(s.cpu_median, Quantile::At(0.4));
        assert!((s.cpu_total - 10.6).abs() < 1e-9);
        assert_eq!(HuntStats::of(&[]), None);
    }
}
