//! The tower's download scheduler: which queued job (a chunk to fetch) goes next.
//!
//! Policy ([`SchedulePolicy::Priority`]): P0 is served strictly first whenever a P0 job is
//! queued and its class is eligible. Otherwise the eligible, non-empty classes among P1..P3
//! share the link by deficit round robin (Shreedhar & Varghese, 1995): each class in turn
//! receives `quantum_bytes * weight` bytes of credit and spends it on jobs from the head of
//! its queue, so each backlogged class gets a share of bytes proportional to its weight
//! and none starves. "Eligible" is decided by the caller at each [`Scheduler::pop`] (the
//! active link's class policy, the power mode): an ineligible class keeps its jobs and
//! earns no credit while it is skipped.
//!
//! [`SchedulePolicy::Fifo`] is a planted bug for the simulator: one global arrival order,
//! classes ignored, so the priority oracle has something it must catch.
//!
//! Map:
//! - [`SchedulePolicy`], [`SchedulerConfig`] (weights, quantum, `queue_max`, and
//!   [`SchedulerConfig::service_gap_bytes_max`], the starvation bound an oracle can check).
//! - [`Scheduler`]: `push`, `pop`, `retain`, and per-class counters.
//!
//! Not covered: what a job is (the tower's chunk requests), link selection, the throttle's
//! in-flight window (the tower calls `pop` only when the window has room).

use crate::content::Priority;
use std::collections::VecDeque;

/// How the scheduler orders work. `Priority` is the real policy; `Fifo` ignores classes
/// (the planted bug `fifo-scheduler` the simulator uses to prove the priority oracle can fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// P0 strictly first, then deficit round robin over P1..P3.
    Priority,
    /// One global arrival order (still skipping ineligible classes). A planted bug.
    Fifo,
}

/// Weights and quantum for deficit round robin over P1..P3. Default weights [4, 2, 1] for
/// P1,P2,P3 and quantum 64 KiB.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// The ordering policy.
    pub policy: SchedulePolicy,
    /// DRR weights of P1, P2, P3 (each >= 1): a class earns `quantum_bytes * weight` of
    /// credit per round, so backlogged classes share bytes in these proportions.
    pub weights: [u32; 3],
    /// Credit per unit of weight per round, in bytes (>= 1). At least the largest job
    /// (a chunk, 64 KiB max) keeps every class served once per round.
    pub quantum_bytes: u64,
    /// Bound on queued jobs over all classes (>= 1); `push` refuses beyond it.
    pub queue_max: usize,
}

/// Default DRR quantum: the largest FastCDC chunk, so every backlogged class is served at
/// least once per round.
pub const QUANTUM_BYTES_DEFAULT: u64 = 64 * 1024;
/// Default bound on queued jobs.
pub const QUEUE_MAX_DEFAULT: usize = 65_536;

const _: () = assert!(QUANTUM_BYTES_DEFAULT >= 64 * 1024);
const _: () = assert!(QUEUE_MAX_DEFAULT >= 1);

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            policy: SchedulePolicy::Priority,
            weights: [4, 2, 1],
            quantum_bytes: QUANTUM_BYTES_DEFAULT,
            queue_max: QUEUE_MAX_DEFAULT,
        }
    }
}

impl SchedulerConfig {
    /// The DRR weight of `class` (P1..P3); P0 has none (it is strict).
    fn weight(&self, class: Priority) -> u64 {
        assert!(class != Priority::P0, "P0 is strict, it has no DRR weight");
        u64::from(self.weights[class.index() - 1])
    }

    /// Credit `class` earns per round, in bytes.
    fn credit_bytes(&self, class: Priority) -> u64 {
        self.quantum_bytes.saturating_mul(self.weight(class))
    }

    /// Upper bound on the bytes popped from the *other* P1..P3 classes between two
    /// consecutive pops of `class` (or before its first pop), under the Priority policy,
    /// while every P1..P3 class stays backlogged and eligible, no P0 job is queued, and no
    /// job costs more than `job_bytes_max` (>= 1).
    ///
    /// Why: `class` needs at most `r = ceil(job_bytes_max / (quantum * w_class))` turns
    /// to afford its head job; meanwhile each other class `o` spends at most its leftover
    /// credit (< `job_bytes_max`) plus `r` rounds of fresh credit. Dividing by the smallest
    /// job size gives a bound in pops. For P0 the bound is 0 (it never waits).
    pub fn service_gap_bytes_max(&self, class: Priority, job_bytes_max: u64) -> u64 {
        assert!(job_bytes_max >= 1, "jobs are at least one byte here");
        if class == Priority::P0 {
            return 0;
        }
        let rounds = job_bytes_max.div_ceil(self.credit_bytes(class));
        Priority::ALL[1..]
            .iter()
            .filter(|&&o| o != class)
            .map(|&o| {
                (job_bytes_max - 1).saturating_add(rounds.saturating_mul(self.credit_bytes(o)))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// [`Self::service_gap_bytes_max`] in pops: with every job costing at least
    /// `job_bytes_min` (>= 1), at most this many pops of other classes come between two
    /// pops of `class` under the same conditions.
    pub fn service_gap_pops_max(
        &self,
        class: Priority,
        job_bytes_min: u64,
        job_bytes_max: u64,
    ) -> u64 {
        assert!(1 <= job_bytes_min && job_bytes_min <= job_bytes_max);
        self.service_gap_bytes_max(class, job_bytes_max) / job_bytes_min
    }
}

/// A queued job with its arrival number (for Fifo) and cost (for DRR).
#[derive(Debug)]
struct Queued<T> {
    /// Global arrival order; Fifo pops the smallest eligible one.
    seq: u64,
    job: T,
    cost_bytes: u64,
}

/// The download scheduler: per-class FIFO queues, strict P0, DRR over P1..P3.
#[derive(Debug)]
pub struct Scheduler<T> {
    config: SchedulerConfig,
    /// One FIFO per class, indexed by `Priority::index`.
    queues: [VecDeque<Queued<T>>; 4],
    /// Sum of queued costs per class.
    bytes: [u64; 4],
    /// DRR credit of P1..P3 (index `class.index() - 1`). Reset to 0 when a class empties,
    /// so an idle class cannot bank credit and burst later.
    deficit_bytes: [u64; 3],
    /// The P1..P3 class (0..3) whose turn it is or comes next.
    cursor: usize,
    /// Whether the class at `cursor` already received this round's credit: a turn spans
    /// several `pop` calls, and credit must be granted once per turn, not once per pop.
    in_turn: bool,
    /// Next arrival number.
    seq_next: u64,
    /// Total queued jobs.
    len: usize,
}

/// Number of DRR classes (P1..P3).
const DRR_CLASSES: usize = 3;

impl<T> Scheduler<T> {
    /// A scheduler with `config`. Panics on a zero weight, quantum or `queue_max` (a
    /// configuration the caller must validate).
    pub fn new(config: SchedulerConfig) -> Self {
        assert!(
            config.weights.iter().all(|&w| w >= 1),
            "DRR weights must be >= 1"
        );
        assert!(config.quantum_bytes >= 1, "DRR quantum must be >= 1 byte");
        assert!(config.queue_max >= 1, "queue_max must be >= 1");
        Scheduler {
            config,
            queues: std::array::from_fn(|_| VecDeque::new()),
            bytes: [0; 4],
            deficit_bytes: [0; DRR_CLASSES],
            cursor: 0,
            in_turn: false,
            seq_next: 0,
            len: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Queue a job of `class` costing `cost_bytes`. Err(job) back if the total queued jobs
    /// are at queue_max.
    pub fn push(&mut self, class: Priority, job: T, cost_bytes: u64) -> Result<(), T> {
        if self.len >= self.config.queue_max {
            return Err(job);
        }
        let seq = self.seq_next;
        self.seq_next += 1;
        let i = class.index();
        self.queues[i].push_back(Queued {
            seq,
            job,
            cost_bytes,
        });
        self.bytes[i] = self.bytes[i].saturating_add(cost_bytes);
        self.len += 1;
        debug_assert!(self.len <= self.config.queue_max);
        Ok(())
    }

    /// Next job among classes for which `eligible(class)` is true. Priority policy: P0
    /// strictly first whenever a P0 job is queued and eligible; otherwise deficit round
    /// robin over the eligible non-empty classes of P1..P3 with the configured weights
    /// (quantum*weight bytes of credit per round), so that none starves. Ineligible classes
    /// keep their jobs and do not accumulate credit.
    pub fn pop(&mut self, eligible: impl Fn(Priority) -> bool) -> Option<(Priority, T)> {
        let popped = match self.config.policy {
            SchedulePolicy::Fifo => self.pop_fifo(&eligible),
            SchedulePolicy::Priority => {
                if !self.queues[0].is_empty() && eligible(Priority::P0) {
                    Some(self.take(Priority::P0))
                } else {
                    self.pop_drr(&eligible)
                }
            }
        };
        debug_assert!(popped.as_ref().is_none_or(|(c, _)| eligible(*c)));
        popped
    }

    /// Fifo: the oldest job over all eligible classes.
    fn pop_fifo(&mut self, eligible: &impl Fn(Priority) -> bool) -> Option<(Priority, T)> {
        let class = Priority::ALL
            .into_iter()
            .filter(|&c| eligible(c))
            .filter_map(|c| self.queues[c.index()].front().map(|q| (q.seq, c)))
            .min()
            .map(|(_, c)| c)?;
        Some(self.take(class))
    }

    /// Deficit round robin over the eligible non-empty classes of P1..P3.
    fn pop_drr(&mut self, eligible: &impl Fn(Priority) -> bool) -> Option<(Priority, T)> {
        let ready: [bool; DRR_CLASSES] =
            std::array::from_fn(|k| !self.queues[k + 1].is_empty() && eligible(drr_class(k)));
        if !ready.iter().any(|&r| r) {
            return None;
        }
        // Sweep 1 finishes the current turn and gives every other ready class a turn. If
        // nobody could afford its head job, every ready class has just ended its turn with
        // too little credit: jump over the empty rounds that would follow (as many as the
        // class closest to affording its head needs, minus one), so sweep 2 always serves.
        for sweep in 0..2 {
            if sweep == 1 {
                self.skip_empty_rounds(&ready);
            }
            for _ in 0..DRR_CLASSES {
                let k = self.cursor;
                if !ready[k] {
                    self.end_turn();
                    continue;
                }
                let class = drr_class(k);
                if !self.in_turn {
                    self.deficit_bytes[k] =
                        self.deficit_bytes[k].saturating_add(self.config.credit_bytes(class));
                    self.in_turn = true;
                }
                let head = self.queues[k + 1].front().map_or(0, |q| q.cost_bytes);
                if head <= self.deficit_bytes[k] {
                    self.deficit_bytes[k] -= head;
                    let (_, job) = self.take(class);
                    if self.queues[k + 1].is_empty() {
                        self.end_turn();
                    }
                    return Some((class, job));
                }
                self.end_turn();
            }
        }
        unreachable!("DRR: after skipping empty rounds the second sweep always serves a job")
    }

    /// Add the credit of the rounds in which no ready class could afford its head job.
    fn skip_empty_rounds(&mut self, ready: &[bool; DRR_CLASSES]) {
        debug_assert!(!self.in_turn);
        let rounds_needed = |k: usize| {
            let head = self.queues[k + 1].front().map_or(0, |q| q.cost_bytes);
            let short = head.saturating_sub(self.deficit_bytes[k]);
            short.div_ceil(self.config.credit_bytes(drr_class(k)))
        };
        let skip = (0..DRR_CLASSES)
            .filter(|&k| ready[k])
            .map(rounds_needed)
            .min()
            .unwrap_or(1)
            .saturating_sub(1);
        for k in (0..DRR_CLASSES).filter(|&k| ready[k]) {
            let credit = skip.saturating_mul(self.config.credit_bytes(drr_class(k)));
            self.deficit_bytes[k] = self.deficit_bytes[k].saturating_add(credit);
        }
    }

    /// End the turn of the class at the cursor and move to the next one.
    fn end_turn(&mut self) {
        self.in_turn = false;
        self.cursor = (self.cursor + 1) % DRR_CLASSES;
    }

    /// Remove the head job of `class` (which must be non-empty) and update the counters.
    fn take(&mut self, class: Priority) -> (Priority, T) {
        let i = class.index();
        let q = self.queues[i]
            .pop_front()
            .expect("take is only called on a non-empty class");
        self.bytes[i] -= q.cost_bytes.min(self.bytes[i]);
        self.len -= 1;
        if self.queues[i].is_empty() {
            self.bytes[i] = 0;
            if i > 0 {
                self.deficit_bytes[i - 1] = 0;
            }
        }
        (class, q.job)
    }

    /// Total queued jobs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No job queued?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queued jobs of `class`.
    pub fn len_class(&self, class: Priority) -> usize {
        self.queues[class.index()].len()
    }

    /// Queued bytes of `class` (sum of the jobs' costs).
    pub fn queued_bytes(&self, class: Priority) -> u64 {
        self.bytes[class.index()]
    }

    /// Drop queued jobs for which `keep` is false (e.g. a superseded version); returns how
    /// many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(Priority, &T) -> bool) -> usize {
        let mut dropped = 0;
        for class in Priority::ALL {
            let i = class.index();
            let before = self.queues[i].len();
            self.queues[i].retain(|q| keep(class, &q.job));
            dropped += before - self.queues[i].len();
            self.bytes[i] = self.queues[i]
                .iter()
                .fold(0u64, |s, q| s.saturating_add(q.cost_bytes));
            if i > 0 && self.queues[i].is_empty() {
                self.deficit_bytes[i - 1] = 0;
            }
        }
        self.len -= dropped;
        debug_assert_eq!(
            self.len,
            self.queues.iter().map(VecDeque::len).sum::<usize>()
        );
        dropped
    }

    /// True if a job of `class` is queued (used by the priority oracle / the tower).
    ///
    /// The scheduler does not know eligibility outside `pop`: the caller combines this
    /// with its own eligibility rule ("queued *and* eligible").
    pub fn has_waiting(&self, class: Priority) -> bool {
        !self.queues[class.index()].is_empty()
    }
}

/// The class of DRR slot `k` (0..3 → P1..P3).
fn drr_class(k: usize) -> Priority {
    Priority::from_index(k + 1).expect("DRR slots are P1..P3")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{Entropy, SplitMix64};
    use proptest::prelude::*;

    const KIB: u64 = 1024;

    fn all(_: Priority) -> bool {
        true
    }

    fn sched(policy: SchedulePolicy) -> Scheduler<u32> {
        Scheduler::new(SchedulerConfig {
            policy,
            ..SchedulerConfig::default()
        })
    }

    #[test]
    fn p0_is_strictly_first_and_classes_are_fifo() {
        // Goal: a P0 job queued after lower classes still pops first; within a class, FIFO.
        let mut s = sched(SchedulePolicy::Priority);
        s.push(Priority::P3, 30, KIB).unwrap();
        s.push(Priority::P1, 10, KIB).unwrap();
        s.push(Priority::P0, 1, KIB).unwrap();
        s.push(Priority::P0, 2, KIB).unwrap();
        assert_eq!(s.pop(all), Some((Priority::P0, 1)));
        assert_eq!(s.pop(all), Some((Priority::P0, 2)));
        s.push(Priority::P1, 11, KIB).unwrap();
        assert_eq!(s.pop(all), Some((Priority::P1, 10)));
        s.push(Priority::P0, 3, KIB).unwrap();
        assert_eq!(s.pop(all), Some((Priority::P0, 3)));
        assert_eq!(s.pop(all), Some((Priority::P1, 11)));
        assert_eq!(s.pop(all), Some((Priority::P3, 30)));
        assert_eq!(s.pop(all), None);
        assert!(s.is_empty());
    }

    #[test]
    fn drr_shares_bytes_by_weight() {
        // Goal: with P1..P3 backlogged with equal jobs, pops split exactly 4:2:1 per round.
        let mut s = sched(SchedulePolicy::Priority);
        for i in 0..2000 {
            for c in [Priority::P1, Priority::P2, Priority::P3] {
                s.push(c, i, KIB).unwrap();
            }
        }
        let round = (64 * (4 + 2 + 1)) as usize; // jobs per round at 1 KiB each
        let mut count = [0usize; 4];
        for _ in 0..round * 2 {
            let (c, _) = s.pop(all).unwrap();
            count[c.index()] += 1;
        }
        assert_eq!(count, [0, 2 * 256, 2 * 128, 2 * 64]);
        assert_eq!(s.queued_bytes(Priority::P3), (2000 - 128) * KIB);
    }

    #[test]
    fn jobs_larger_than_a_round_of_credit_still_pop() {
        // Goal: a job costing many rounds of credit is served after the equivalent rounds,
        // without looping per round, and the other class keeps its weighted share.
        let config = SchedulerConfig {
            quantum_bytes: 10,
            weights: [1, 1, 1],
            ..SchedulerConfig::default()
        };
        let mut s: Scheduler<u32> = Scheduler::new(config);
        s.push(Priority::P3, 99, u64::MAX / 2).unwrap();
        assert_eq!(s.pop(all), Some((Priority::P3, 99)));
        // P2's jobs cost 10 (one round); P3's head costs 50 (five rounds).
        for i in 0..10 {
            s.push(Priority::P2, i, 10).unwrap();
        }
        s.push(Priority::P3, 7, 50).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| s.pop(all)).map(|(c, _)| c).collect();
        let p3_at = order.iter().position(|&c| c == Priority::P3).unwrap();
        // Each round P2 goes first (the cursor starts at P1, which is empty), so P3's 5th
        // turn comes after P2's 5th job.
        assert_eq!(p3_at, 5, "P3 affords 50 bytes on its 5th turn: {order:?}");
    }

    #[test]
    fn ineligible_classes_keep_jobs_and_earn_no_credit() {
        // Goal: an ineligible class is skipped (even P0), keeps its jobs, and does not bank
        // credit while skipped, so it does not burst once eligible again.
        let mut s = sched(SchedulePolicy::Priority);
        s.push(Priority::P0, 0, KIB).unwrap();
        for i in 0..1000 {
            s.push(Priority::P1, i, KIB).unwrap();
            s.push(Priority::P3, i, KIB).unwrap();
        }
        let not_p0_p3 = |c: Priority| c != Priority::P0 && c != Priority::P3;
        for _ in 0..500 {
            assert_eq!(s.pop(not_p0_p3).unwrap().0, Priority::P1);
        }
        assert_eq!(s.len_class(Priority::P3), 1000);
        assert_eq!(s.len_class(Priority::P0), 1);
        assert!(s.has_waiting(Priority::P0));
        assert_eq!(s.pop(|c| c == Priority::P2), None);
        // Back to all eligible: P0 first, then P3 gets only one turn's worth (64 jobs).
        assert_eq!(s.pop(all).unwrap().0, Priority::P0);
        let mut run = [0usize; 4];
        for _ in 0..(256 + 64) {
            run[s.pop(all).unwrap().0.index()] += 1;
        }
        assert_eq!(run[Priority::P3.index()], 64);
        assert_eq!(run[Priority::P1.index()], 256);
    }

    #[test]
    fn queue_max_refuses_and_gives_the_job_back() {
        // Goal: pushes beyond queue_max (over all classes) fail with the job returned.
        let mut s: Scheduler<&str> = Scheduler::new(SchedulerConfig {
            queue_max: 2,
            ..SchedulerConfig::default()
        });
        s.push(Priority::P1, "a", 1).unwrap();
        s.push(Priority::P3, "b", 1).unwrap();
        assert_eq!(s.push(Priority::P0, "c", 1), Err("c"));
        assert_eq!(s.len(), 2);
        s.pop(all).unwrap();
        assert!(s.push(Priority::P0, "c", 1).is_ok());
    }

    #[test]
    fn retain_drops_and_updates_counters() {
        // Goal: retain drops exactly the rejected jobs and keeps lengths and bytes right.
        let mut s = sched(SchedulePolicy::Priority);
        for i in 0..10 {
            s.push(Priority::P2, i, 100).unwrap();
        }
        s.push(Priority::P1, 100, 7).unwrap();
        let dropped = s.retain(|c, &j| c == Priority::P1 || j % 2 == 0);
        assert_eq!(dropped, 5);
        assert_eq!(s.len(), 6);
        assert_eq!(s.len_class(Priority::P2), 5);
        assert_eq!(s.queued_bytes(Priority::P2), 500);
        assert_eq!(s.queued_bytes(Priority::P1), 7);
        let order: Vec<_> = std::iter::from_fn(|| s.pop(all)).map(|(_, j)| j).collect();
        assert_eq!(order, vec![100, 0, 2, 4, 6, 8]);
    }

    #[test]
    fn fifo_mode_ignores_classes_but_skips_ineligible() {
        // Goal: Fifo pops in global arrival order, skipping ineligible classes.
        let mut s = sched(SchedulePolicy::Fifo);
        s.push(Priority::P3, 1, KIB).unwrap();
        s.push(Priority::P2, 2, KIB).unwrap();
        s.push(Priority::P0, 3, KIB).unwrap();
        assert_eq!(s.pop(|c| c != Priority::P3), Some((Priority::P2, 2)));
        assert_eq!(s.pop(all), Some((Priority::P3, 1)));
        assert_eq!(s.pop(all), Some((Priority::P0, 3)));
    }

    #[test]
    fn fifo_mode_violates_strict_p0() {
        // Goal: the planted bug is detectable: with P0 queued and eligible, Fifo pops P3.
        let mut s = sched(SchedulePolicy::Fifo);
        s.push(Priority::P3, 1, KIB).unwrap();
        s.push(Priority::P0, 2, KIB).unwrap();
        let has_p0 = s.has_waiting(Priority::P0);
        let (class, _) = s.pop(all).unwrap();
        assert!(
            has_p0 && class != Priority::P0,
            "Fifo should break P0-first"
        );
    }

    #[test]
    fn service_gap_bound_is_derived_from_quantum_weights_and_job_size() {
        // Goal: the starvation bound matches its formula for the defaults.
        let c = SchedulerConfig::default();
        let m = 64 * KIB;
        // P3: one round suffices (64 KiB credit); others spend < m leftover + their credit.
        assert_eq!(
            c.service_gap_bytes_max(Priority::P3, m),
            (m - 1 + 4 * m) + (m - 1 + 2 * m)
        );
        assert_eq!(c.service_gap_bytes_max(Priority::P0, m), 0);
        assert_eq!(
            c.service_gap_pops_max(Priority::P3, KIB, m),
            c.service_gap_bytes_max(Priority::P3, m) / KIB
        );
        // A job twice the quantum makes P3 wait two rounds.
        assert_eq!(
            c.service_gap_bytes_max(Priority::P3, 2 * m),
            (2 * m - 1 + 8 * m) + (2 * m - 1 + 4 * m)
        );
    }

    /// One step of a random scheduler workload.
    #[derive(Clone, Debug)]
    enum Step {
        Push(usize, u64),
        Pop(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..4, 1u64..=64 * KIB).prop_map(|(c, b)| Step::Push(c, b)),
            any::<u8>().prop_map(Step::Pop),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Goal: under any interleaving of pushes and pops (random eligibility masks),
        /// whenever a P0 job is queued and eligible, pop returns a P0 job; pops only return
        /// eligible classes; counters stay consistent.
        #[test]
        fn p0_first_whenever_queued_and_eligible(steps in prop::collection::vec(step(), 1..300)) {
            let mut s: Scheduler<usize> = Scheduler::new(SchedulerConfig {
                queue_max: 64,
                ..SchedulerConfig::default()
            });
            let mut bytes = [0u64; 4];
            for (n, st) in steps.into_iter().enumerate() {
                match st {
                    Step::Push(c, b) => {
                        let class = Priority::from_index(c).unwrap();
                        if s.push(class, n, b).is_ok() {
                            bytes[c] += b;
                        }
                    }
                    Step::Pop(mask) => {
                        let eligible = |c: Priority| mask & (1 << c.index()) != 0;
                        let p0_ready = s.has_waiting(Priority::P0) && eligible(Priority::P0);
                        let any_ready = Priority::ALL.iter().any(|&c| s.has_waiting(c) && eligible(c));
                        let before: Vec<u64> = Priority::ALL.iter().map(|&c| s.queued_bytes(c)).collect();
                        match s.pop(eligible) {
                            Some((c, _)) => {
                                prop_assert!(eligible(c));
                                if p0_ready { prop_assert_eq!(c, Priority::P0); }
                                bytes[c.index()] = s.queued_bytes(c);
                                prop_assert!(s.queued_bytes(c) < before[c.index()]);
                            }
                            None => prop_assert!(!any_ready),
                        }
                    }
                }
                prop_assert!(s.len() <= 64);
                for c in Priority::ALL {
                    prop_assert_eq!(s.queued_bytes(c), bytes[c.index()]);
                }
                prop_assert_eq!(s.len(), Priority::ALL.iter().map(|&c| s.len_class(c)).sum::<usize>());
            }
        }

        /// Goal: no starvation. With P1..P3 continuously backlogged (jobs 1 B..64 KiB), each
        /// class gets at least half its weighted share of bytes, and between two services of
        /// a class the others pop no more than `service_gap_bytes_max` bytes.
        #[test]
        fn drr_does_not_starve(seed in any::<u64>()) {
            let config = SchedulerConfig::default();
            // The job is its own cost, so the test sees how many bytes each pop moved.
            let mut s: Scheduler<u64> = Scheduler::new(config.clone());
            let mut rng = SplitMix64::new(seed);
            let job_bytes_max = 64 * KIB;
            let mut size = move || 1 + rng.below(job_bytes_max);
            let drr = [Priority::P1, Priority::P2, Priority::P3];
            for c in drr {
                for _ in 0..4 {
                    let b = size();
                    s.push(c, b, b).unwrap();
                }
            }
            let mut served_bytes = [0u64; 4];
            // Bytes popped from other classes since each class was last served (or start).
            let mut gap_bytes = [0u64; 4];
            let mut gap_seen_max = [0u64; 4];
            let mut gap_pops = [0u64; 4];
            for _ in 0..3000 {
                let (c, cost) = s.pop(all).unwrap();
                prop_assert!(c != Priority::P0);
                let b = size();
                s.push(c, b, b).unwrap();
                served_bytes[c.index()] += cost;
                gap_bytes[c.index()] = 0;
                gap_pops[c.index()] = 0;
                for o in drr.into_iter().filter(|&o| o != c) {
                    gap_bytes[o.index()] += cost;
                    gap_pops[o.index()] += 1;
                    prop_assert!(gap_pops[o.index()] <= config.service_gap_pops_max(o, 1, job_bytes_max));
                    gap_seen_max[o.index()] = gap_seen_max[o.index()].max(gap_bytes[o.index()]);
                    let bound = config.service_gap_bytes_max(o, job_bytes_max);
                    prop_assert!(
                        gap_bytes[o.index()] <= bound,
                        "{} waited {} bytes > bound {}", o, gap_bytes[o.index()], bound
                    );
                }
            }
            // Each class got at least half its weighted share of the bytes.
            let total: u64 = served_bytes.iter().sum();
            let weight_sum: u64 = config.weights.iter().map(|&w| u64::from(w)).sum();
            for c in drr {
                let fair = total * u64::from(config.weights[c.index() - 1]) / weight_sum;
                prop_assert!(
                    served_bytes[c.index()] * 2 >= fair,
                    "{} got {} of {} bytes, fair share {}", c, served_bytes[c.index()], total, fair
                );
            }
            // The bound is not vacuous: P3 really waits while P1 and P2 spend their credit.
            prop_assert!(gap_seen_max[Priority::P3.index()] >= 4 * job_bytes_max / 2);
        }
    }
}
