//! How likely is a failure, and since when (`sim replay FILE --likelihood`, issue 17):
//! branch the failed run at `k` points from its start to its failure, each with `N`
//! fresh seeds ([`crate::world::Branch`]: the same run up to the point, fresh randomness
//! after it), and count how often the failure recurs. Early on the run could still have
//! gone either way; from some point on it was doomed — the moment to look at.
//!
//! The points are `T·i/(k−1)` for `i = 0..k`, `T` the failure's time; the last one, at
//! `T`, keeps the failure itself in the prefix, so it must recur every time (a check of
//! the method, reported if it does not). Branch `j` at point `i` draws from seed
//! [`branch_seed`]`(seed, i, j)`, so the figures are a function of the failure file.
//!
//! Map: [`points`], [`branch_seed`], [`Point`] (counts, rate, Wilson interval),
//! [`doomed_from`], [`sharpest_rise`].
//!
//! Not covered: running the branches (the CLI runs them on worker threads), the chart
//! (`sovereign_report`). A branch keeps the run's fault schedule and the towers' and
//! devices' own generators; what it draws afresh is the environment (network, disks,
//! workload, weather, misuse, fault-site firings).

use sovereign_logic::Time;
use sovereign_logic::entropy::SplitMix64;
use std::time::Duration;

/// Most points one estimate may take.
pub const POINTS_MAX: usize = 1_000;
/// Most branches per point.
pub const BRANCHES_MAX: u32 = 100_000;
/// The recurrence rate from which a run counts as doomed (see [`doomed_from`]).
pub const DOOMED_RATE: f64 = 0.9;

/// The `k` branch points of a failure at `failure_at`: evenly from the start to the
/// failure, both included (`k` ≥ 2; one point is the start).
pub fn points(failure_at: Time, k: usize) -> Vec<Duration> {
    let t = u128::from(failure_at.as_micros());
    if k <= 1 {
        return vec![Duration::ZERO];
    }
    (0..k)
        .map(|i| {
            let us = t * i as u128 / (k - 1) as u128;
            Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
        })
        .collect()
}

/// The seed of branch `branch` at point `point` of the run with `seed`.
pub fn branch_seed(seed: u64, point: usize, branch: u32) -> u64 {
    SplitMix64::derive(seed, &format!("likelihood {point} {branch}"))
}

/// One point's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The branch point.
    pub at: Duration,
    /// Branches run from it.
    pub runs: u32,
    /// Branches in which the failure recurred.
    pub recurred: u32,
}

impl Point {
    /// The share of branches in which the failure recurred.
    pub fn rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            f64::from(self.recurred) / f64::from(self.runs)
        }
    }

    /// The Wilson score interval of the rate at 95% (`runs` = 0: the whole of 0..1).
    pub fn wilson(&self) -> (f64, f64) {
        if self.runs == 0 {
            return (0.0, 1.0);
        }
        let n = f64::from(self.runs);
        let p = self.rate();
        let z = 1.959_963_984_540_054_f64;
        let z2 = z * z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }
}

/// The first point from which the failure recurs in at least [`DOOMED_RATE`] of the
/// branches at every later point: when the run became doomed. `None` when even the last
/// point falls short.
pub fn doomed_from(points: &[Point]) -> Option<usize> {
    let mut first = None;
    for (i, p) in points.iter().enumerate().rev() {
        if p.runs > 0 && p.rate() >= DOOMED_RATE {
            first = Some(i);
        } else {
            break;
        }
    }
    first
}

/// Where the share rose most from one point to the next, the last point (the failure
/// itself, always 1) left out: the index of the later point of that pair, when some
/// rise is there at all. Between the two points is where the run's fate was mostly
/// decided.
pub fn sharpest_rise(points: &[Point]) -> Option<usize> {
    let last = points.len().checked_sub(1)?;
    (1..last)
        .map(|i| (i, points[i].rate() - points[i - 1].rate()))
        .filter(|(_, d)| *d > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points one second apart with `runs` branches each and these recurrences.
    fn series(runs: u32, recurred: &[u32]) -> Vec<Point> {
        recurred
            .iter()
            .enumerate()
            .map(|(i, r)| Point {
                at: Duration::from_secs(i as u64),
                runs,
                recurred: *r,
            })
            .collect()
    }

    #[test]
    fn points_run_from_the_start_to_the_failure() {
        // Goal: k points, evenly spaced, the first at 0 and the last at the failure.
        let p = points(Time::from_secs(900), 4);
        assert_eq!(
            p,
            [0, 300, 600, 900].map(Duration::from_secs).to_vec(),
            "{p:?}"
        );
        assert_eq!(points(Time::from_secs(5), 1), vec![Duration::ZERO]);
        let big = points(Time::from_micros(u64::MAX), 3);
        assert_eq!(big[2], Duration::from_micros(u64::MAX));
    }

    #[test]
    fn branch_seeds_differ_by_point_and_branch() {
        // Goal: every (point, branch) gets its own seed, and a seed its own set.
        let mut all = std::collections::BTreeSet::new();
        for i in 0..20 {
            for j in 0..50 {
                assert!(all.insert(branch_seed(7, i, j)));
            }
        }
        assert_ne!(branch_seed(7, 0, 0), branch_seed(8, 0, 0));
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        // Goal: the interval holds the rate, narrows with more runs, stays in 0..1.
        let few = Point {
            at: Duration::ZERO,
            runs: 10,
            recurred: 5,
        };
        let many = Point {
            runs: 1000,
            recurred: 500,
            ..few.clone()
        };
        let (lo, hi) = few.wilson();
        assert!(lo < 0.5 && 0.5 < hi && lo > 0.18 && hi < 0.82, "{lo} {hi}");
        let (lo2, hi2) = many.wilson();
        assert!(hi2 - lo2 < hi - lo);
        let all = Point {
            recurred: 10,
            ..few.clone()
        };
        let (lo, hi) = all.wilson();
        assert!(hi > 0.999 && lo > 0.65 && lo < 0.75, "{lo} {hi}");
        let none = Point { runs: 0, ..few };
        assert_eq!(none.wilson(), (0.0, 1.0));
        assert_eq!(none.rate(), 0.0);
    }

    #[test]
    fn doomed_from_is_where_the_rate_stays_high() {
        // Goal: the first point of the final run of points at or above the doomed rate;
        // a dip after a high point moves it later; none when the last point is low.
        let at = |rates: &[u32]| series(10, rates);
        assert_eq!(doomed_from(&at(&[0, 2, 9, 10, 10])), Some(2));
        assert_eq!(doomed_from(&at(&[10, 2, 9, 10, 10])), Some(2));
        assert_eq!(doomed_from(&at(&[10, 10, 10])), Some(0));
        assert_eq!(doomed_from(&at(&[0, 10, 8])), None);
        assert_eq!(doomed_from(&[]), None);
    }

    #[test]
    fn sharpest_rise_is_the_biggest_step_up_before_the_failure() {
        // Goal: the later point of the largest rise (the earliest of equal ones); the
        // last point is left out; none without a rise.
        let at = |rates: &[u32]| series(20, rates);
        assert_eq!(sharpest_rise(&at(&[2, 0, 1, 9, 12, 9, 20])), Some(3));
        assert_eq!(sharpest_rise(&at(&[0, 5, 10, 20])), Some(1));
        assert_eq!(sharpest_rise(&at(&[20, 20, 20])), None);
        assert_eq!(sharpest_rise(&at(&[5, 0, 20])), None);
        assert_eq!(sharpest_rise(&[]), None);
    }
}
