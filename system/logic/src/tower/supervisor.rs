//! The tower's task supervisor: restarts failed sync tasks with limits, Erlang/OTP style.
//!
//! Like an OTP supervisor's restart intensity (`intensity` restarts per `period` seconds),
//! a task may be restarted at most `restarts_max` times within a sliding `window`. Each
//! restart waits a jittered [`Backoff`] delay (reset when the task makes progress). One
//! failure more than the budget parks the task for `park_for` — where OTP would give up
//! and escalate, a tower has no one to escalate to, so it waits and then tries again with
//! a fresh budget.
//!
//! Map: [`SupervisorPolicy`] (+ [`SupervisorPolicy::validate`], [`SupervisorError`]),
//! [`Decision`], [`Supervisor`] (`on_failure`, `on_success`, `may_run`, `handle_timeout`,
//! `next_timeout`).
//!
//! Not covered: running or stopping tasks (the tower does, asking `may_run`), detecting a
//! failure (the task's own error handling), supervision trees (one flat level here).

use crate::Entropy;
use crate::Time;
use crate::backoff::{Backoff, BackoffError, BackoffPolicy, Jitter};
use crate::io::{Event, TaskKind};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The largest restart budget accepted: bounds the per-task restart history.
pub const RESTARTS_MAX_LIMIT: u32 = 1_000;

/// The restart budget, restart delays and the parking time.
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisorPolicy {
    /// Restarts allowed within `window`; one failure more parks the task.
    pub restarts_max: u32,
    /// The sliding window the restarts are counted in.
    pub window: Duration,
    /// Delay before each restart; reset when the task makes progress.
    pub restart_backoff: BackoffPolicy,
    /// How long a task that exhausted its budget stays parked.
    pub park_for: Duration,
}

impl Default for SupervisorPolicy {
    /// 5 restarts in 60 s, restart delays 1 s doubling to 30 s with full jitter, park 5 min.
    fn default() -> Self {
        SupervisorPolicy {
            restarts_max: 5,
            window: Duration::from_secs(60),
            restart_backoff: BackoffPolicy {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
                multiplier: 2,
                jitter: Jitter::Full,
            },
            park_for: Duration::from_secs(5 * 60),
        }
    }
}

/// Why a [`SupervisorPolicy`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SupervisorError {
    /// `restarts_max` exceeds [`RESTARTS_MAX_LIMIT`].
    #[error("supervisor restarts_max {0} exceeds the limit {RESTARTS_MAX_LIMIT}")]
    TooManyRestarts(u32),
    /// The restart window is zero (the budget would never bind).
    #[error("supervisor window must be > 0")]
    ZeroWindow,
    /// The restart backoff is invalid.
    #[error("supervisor restart_backoff: {0}")]
    Backoff(#[from] BackoffError),
}

impl SupervisorPolicy {
    /// Check the policy: a bounded budget, a non-zero window, a valid backoff.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        if self.restarts_max > RESTARTS_MAX_LIMIT {
            return Err(SupervisorError::TooManyRestarts(self.restarts_max));
        }
        if self.window.is_zero() {
            return Err(SupervisorError::ZeroWindow);
        }
        self.restart_backoff.validate()?;
        Ok(())
    }
}

/// When a failed task may run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart it at this time.
    RestartAt(Time),
    /// The budget is spent: parked until this time, then a fresh budget.
    ParkedUntil(Time),
}

/// Per-task supervision state.
#[derive(Clone, Debug)]
struct TaskState {
    /// Times of the restarts still inside the window, oldest first; at most `restarts_max`.
    history: VecDeque<Time>,
    backoff: Backoff,
    /// The task may not run before this; `None` once `handle_timeout` or a success has
    /// cleared it (so `next_timeout` never reports a deadline already handled).
    blocked: Option<Blocked>,
    /// Restarts since creation.
    restarts_total: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Blocked {
    until: Time,
    parked: bool,
}

/// Supervises the tower's sync tasks ([`TaskKind::ALL`]).
#[derive(Clone, Debug)]
pub struct Supervisor {
    policy: SupervisorPolicy,
    tasks: BTreeMap<TaskKind, TaskState>,
}

impl Supervisor {
    /// A supervisor with every task runnable. Panics on an invalid policy (validate first).
    pub fn new(policy: SupervisorPolicy) -> Self {
        if let Err(e) = policy.validate() {
            panic!("invalid supervisor policy: {e}");
        }
        let tasks = TaskKind::ALL
            .iter()
            .map(|&task| {
                let state = TaskState {
                    history: VecDeque::with_capacity(policy.restarts_max as usize),
                    backoff: Backoff::new(policy.restart_backoff.clone()),
                    blocked: None,
                    restarts_total: 0,
                };
                (task, state)
            })
            .collect();
        Supervisor { policy, tasks }
    }

    fn state(&self, task: TaskKind) -> &TaskState {
        self.tasks.get(&task).expect("every TaskKind is supervised")
    }

    /// A task failed; returns when it may run again and emits (in the returned Vec)
    /// Event::TaskRestarted{task,attempt} or Event::TaskParked{task}.
    ///
    /// A failure reported while the task may not run (a duplicate or late report for a run
    /// already accounted for) changes nothing and returns the standing decision, no events.
    pub fn on_failure(
        &mut self,
        now: Time,
        task: TaskKind,
        rng: &mut impl Entropy,
    ) -> (Decision, Vec<Event>) {
        let policy = &self.policy;
        let st = self
            .tasks
            .get_mut(&task)
            .expect("every TaskKind is supervised");
        if let Some(b) = st.blocked {
            if now < b.until {
                let standing = if b.parked {
                    Decision::ParkedUntil(b.until)
                } else {
                    Decision::RestartAt(b.until)
                };
                return (standing, Vec::new());
            }
        }
        // Forget restarts that slid out of the window (a backwards clock jump keeps them).
        while let Some(&oldest) = st.history.front() {
            if now > oldest && now.saturating_since(oldest) >= policy.window {
                st.history.pop_front();
            } else {
                break;
            }
        }
        if st.history.len() >= policy.restarts_max as usize {
            let until = now + policy.park_for;
            st.blocked = Some(Blocked {
                until,
                parked: true,
            });
            // Fresh budget after the park: history and backoff start over.
            st.history.clear();
            st.backoff.reset();
            return (
                Decision::ParkedUntil(until),
                vec![Event::TaskParked { task }],
            );
        }
        st.history.push_back(now);
        debug_assert!(st.history.len() <= policy.restarts_max as usize);
        st.restarts_total += 1;
        let until = now + st.backoff.next_delay(rng);
        st.blocked = Some(Blocked {
            until,
            parked: false,
        });
        let attempt = u32::try_from(st.history.len()).expect("history is bounded by restarts_max");
        (
            Decision::RestartAt(until),
            vec![Event::TaskRestarted { task, attempt }],
        )
    }

    /// The task made progress: its backoff resets (restart history within the window is
    /// kept).
    pub fn on_success(&mut self, task: TaskKind) {
        let st = self
            .tasks
            .get_mut(&task)
            .expect("every TaskKind is supervised");
        st.backoff.reset();
        // It ran, so whatever blocked it is over.
        st.blocked = None;
    }

    /// May the task run at `now` (not waiting for a restart or parked)?
    pub fn may_run(&self, now: Time, task: TaskKind) -> bool {
        self.state(task).blocked.is_none_or(|b| now >= b.until)
    }

    /// Is the task parked (budget spent) at `now`?
    pub fn is_parked(&self, now: Time, task: TaskKind) -> bool {
        self.state(task)
            .blocked
            .is_some_and(|b| b.parked && now < b.until)
    }

    /// Timer entry point: clears the waits that have ended and returns the tasks that
    /// became runnable (in [`TaskKind`] order), so the owner can start them.
    pub fn handle_timeout(&mut self, now: Time) -> Vec<TaskKind> {
        let mut ready = Vec::new();
        for (&task, st) in &mut self.tasks {
            if st.blocked.is_some_and(|b| now >= b.until) {
                st.blocked = None;
                ready.push(task);
            }
        }
        ready
    }

    /// The earliest time a waiting/parked task becomes runnable (among waits not yet
    /// cleared by [`Supervisor::handle_timeout`] or a success).
    pub fn next_timeout(&self) -> Option<Time> {
        self.tasks
            .values()
            .filter_map(|st| st.blocked.map(|b| b.until))
            .min()
    }

    /// Restarts of `task` since creation.
    pub fn restarts(&self, task: TaskKind) -> u64 {
        self.state(task).restarts_total
    }

    /// Restarts of `task` still counted in the current window (as of its last failure).
    pub fn restarts_in_window(&self, task: TaskKind) -> u32 {
        u32::try_from(self.state(task).history.len()).expect("history is bounded")
    }

    /// The policy in use.
    pub fn policy(&self) -> &SupervisorPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SplitMix64;

    fn s(n: u64) -> Time {
        Time::from_secs(n)
    }

    /// Fail `task` as soon as it may run, until the supervisor parks it; returns the
    /// decisions and the time of the parking.
    fn fail_until_parked(
        sup: &mut Supervisor,
        mut now: Time,
        task: TaskKind,
        rng: &mut SplitMix64,
    ) -> (Vec<Decision>, Vec<Event>) {
        let mut decisions = Vec::new();
        let mut events = Vec::new();
        for _ in 0..100 {
            let (d, ev) = sup.on_failure(now, task, rng);
            decisions.push(d);
            events.extend(ev);
            match d {
                Decision::RestartAt(t) => now = t,
                Decision::ParkedUntil(_) => break,
            }
        }
        (decisions, events)
    }

    #[test]
    fn restarts_with_backoff_then_parks_when_the_budget_is_spent() {
        // Goal: restarts_max restarts within the window, each delayed by the jittered
        // backoff, then the next failure parks the task for park_for.
        let mut rng = SplitMix64::new(1);
        let mut sup = Supervisor::new(SupervisorPolicy::default());
        let (decisions, events) = fail_until_parked(&mut sup, s(0), TaskKind::Fetch, &mut rng);
        assert_eq!(decisions.len(), 6, "{decisions:?}");
        let mut at = s(0);
        for (i, d) in decisions[..5].iter().enumerate() {
            let Decision::RestartAt(t) = *d else {
                panic!("restart expected: {d:?}")
            };
            let ceiling = Duration::from_secs(1 << i).min(Duration::from_secs(30));
            assert!(t.saturating_since(at) <= ceiling);
            at = t;
        }
        let Decision::ParkedUntil(until) = decisions[5] else {
            panic!("parked expected")
        };
        assert_eq!(until, at + Duration::from_secs(300));
        let attempts: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                Event::TaskRestarted { task, attempt } => {
                    assert_eq!(*task, TaskKind::Fetch);
                    Some(*attempt)
                }
                _ => None,
            })
            .collect();
        assert_eq!(attempts, [1, 2, 3, 4, 5]);
        assert_eq!(
            events.last(),
            Some(&Event::TaskParked {
                task: TaskKind::Fetch
            })
        );
        assert_eq!(sup.restarts(TaskKind::Fetch), 5);
        assert!(sup.is_parked(at, TaskKind::Fetch));
        assert!(!sup.may_run(at + Duration::from_secs(299), TaskKind::Fetch));
        assert!(sup.may_run(until, TaskKind::Fetch));
        // Other tasks are unaffected.
        assert!(sup.may_run(at, TaskKind::Catalog));
        assert_eq!(sup.next_timeout(), Some(until));
    }

    #[test]
    fn after_the_park_the_budget_is_fresh() {
        // Goal: once the park ends, the task gets restarts_max restarts again.
        let mut rng = SplitMix64::new(2);
        let mut sup = Supervisor::new(SupervisorPolicy::default());
        let (decisions, _) = fail_until_parked(&mut sup, s(0), TaskKind::Forward, &mut rng);
        let Some(Decision::ParkedUntil(until)) = decisions.last().copied() else {
            panic!("parked expected")
        };
        assert_eq!(sup.handle_timeout(until), vec![TaskKind::Forward]);
        assert_eq!(sup.next_timeout(), None);
        let (again, events) = fail_until_parked(&mut sup, until, TaskKind::Forward, &mut rng);
        assert_eq!(again.len(), 6);
        assert!(matches!(events[0], Event::TaskRestarted { attempt: 1, .. }));
        assert_eq!(sup.restarts(TaskKind::Forward), 10);
    }

    #[test]
    fn restarts_spread_beyond_the_window_never_park() {
        // Goal: the budget is per sliding window — old restarts expire.
        let mut rng = SplitMix64::new(3);
        let mut sup = Supervisor::new(SupervisorPolicy::default());
        for i in 0..20 {
            let now = s(i * 20);
            assert!(sup.may_run(now, TaskKind::Catalog));
            // It ran a while before failing again (progress resets the delay to <= 1 s).
            sup.on_success(TaskKind::Catalog);
            let (d, _) = sup.on_failure(now, TaskKind::Catalog, &mut rng);
            assert!(matches!(d, Decision::RestartAt(_)), "failure {i}: {d:?}");
            assert!(sup.restarts_in_window(TaskKind::Catalog) <= 3);
        }
    }

    #[test]
    fn success_resets_the_backoff_but_not_the_history() {
        // Goal: progress shortens the next delay but does not refill the budget.
        let mut rng = SplitMix64::new(4);
        let policy = SupervisorPolicy {
            restart_backoff: BackoffPolicy {
                jitter: Jitter::None,
                ..SupervisorPolicy::default().restart_backoff
            },
            ..SupervisorPolicy::default()
        };
        let mut sup = Supervisor::new(policy);
        let (d1, _) = sup.on_failure(s(0), TaskKind::Fetch, &mut rng);
        assert_eq!(d1, Decision::RestartAt(s(1)));
        let (d2, _) = sup.on_failure(s(1), TaskKind::Fetch, &mut rng);
        assert_eq!(d2, Decision::RestartAt(s(3)));
        sup.on_success(TaskKind::Fetch);
        assert_eq!(sup.next_timeout(), None);
        let (d3, ev) = sup.on_failure(s(4), TaskKind::Fetch, &mut rng);
        assert_eq!(d3, Decision::RestartAt(s(5)), "backoff reset to base");
        assert_eq!(
            ev,
            vec![Event::TaskRestarted {
                task: TaskKind::Fetch,
                attempt: 3
            }]
        );
    }

    #[test]
    fn duplicate_failure_reports_are_ignored() {
        // Goal: a failure reported while the task waits changes nothing.
        let mut rng = SplitMix64::new(5);
        let mut policy = SupervisorPolicy::default();
        policy.restart_backoff.jitter = Jitter::None;
        let mut sup = Supervisor::new(policy);
        let (d, _) = sup.on_failure(s(10), TaskKind::Fetch, &mut rng);
        assert_eq!(d, Decision::RestartAt(s(11)));
        let (again, ev) = sup.on_failure(s(10), TaskKind::Fetch, &mut rng);
        assert_eq!(again, d);
        assert!(ev.is_empty());
        assert_eq!(sup.restarts(TaskKind::Fetch), 1);
    }

    #[test]
    fn validate_rejects_bad_policies() {
        // Goal: unbounded budgets, zero windows and bad backoffs are configuration errors.
        assert_eq!(SupervisorPolicy::default().validate(), Ok(()));
        let p = SupervisorPolicy {
            restarts_max: RESTARTS_MAX_LIMIT + 1,
            ..SupervisorPolicy::default()
        };
        assert!(matches!(
            p.validate(),
            Err(SupervisorError::TooManyRestarts(_))
        ));
        let p = SupervisorPolicy {
            window: Duration::ZERO,
            ..SupervisorPolicy::default()
        };
        assert_eq!(p.validate(), Err(SupervisorError::ZeroWindow));
        let mut p = SupervisorPolicy::default();
        p.restart_backoff.multiplier = 0;
        assert!(matches!(p.validate(), Err(SupervisorError::Backoff(_))));
    }
}
