//! Fault sites inside the simulator's drivers, after FoundationDB's BUGGIFY: places in
//! the simulated disk and network where a rare timing can be made to happen on purpose —
//! never in the logic, which runs unchanged.
//!
//! A scenario with `buggify = true` enables each [`Site`] for a run with probability
//! [`P_ENABLED`] (from the `buggify-sites` stream), and an enabled site fires at each
//! chance with its own probability ([`Site::p_fire`], from the `buggify` stream). Neither
//! stream is drawn from when `buggify` is off, so such runs are exactly as before. Each
//! firing is a trace event ([`TraceKind::Buggify`](crate::trace::TraceKind::Buggify)),
//! so a failure file's replay reproduces it and `replay --trace` shows it.
//!
//! The sites, and the rare bug each makes likely:
//! - `slow-fsync`: an fsync takes 10–60 s longer (a replica's disk stalls): publishes,
//!   acknowledgements and forward replies wait on it.
//! - `crash-in-fsync`: the process (origin or tower) crashes while an fsync it issued is
//!   still pending, after the writes it covers completed, and restarts 1–30 s later (a
//!   catalog published before its fsync is taken back).
//! - `late-reply`: a message from the origin to a tower arrives just around the tower's
//!   request deadline (its request timeout plus 0–5 s): the tower has timed out and sent
//!   again, and the first answer comes in after all (receipts matched by position).
//! - `late-duplicate`: a tower's forward reaches the origin a second time, 1 s to 12 h
//!   later (log-uniform): a copy carried by a delay-tolerant hop (a data mule, a
//!   store-and-forward relay) long after the original (a dedupe memory that forgets). The
//!   copy is drawn in the safety phase but may arrive after the heal.
//!
//! Map: [`Site`], [`Buggify`].
//!
//! Not covered: where each site is (the disk's `disk_action`, the world's
//! `drain_origin`/`drain_tower`), the crash itself (`Ev::BuggifyCrash`).

use super::World;
use super::events::{Ev, Node};
use super::rng::Stream;
use crate::trace::TraceKind;
use sovereign_logic::entropy::Entropy;
use std::time::Duration;

/// Longest delay of a `late-duplicate` copy.
pub(super) const LATE_DUPLICATE_MAX: Duration = Duration::from_secs(12 * 3600);

/// Probability that a site is enabled for a run.
pub(super) const P_ENABLED: f64 = 0.5;

/// A fault site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Site {
    SlowFsync = 0,
    CrashInFsync = 1,
    LateReply = 2,
    LateDuplicate = 3,
}

impl Site {
    pub(super) const ALL: [Site; 4] = [
        Site::SlowFsync,
        Site::CrashInFsync,
        Site::LateReply,
        Site::LateDuplicate,
    ];

    pub(super) const fn name(self) -> &'static str {
        match self {
            Site::SlowFsync => "slow-fsync",
            Site::CrashInFsync => "crash-in-fsync",
            Site::LateReply => "late-reply",
            Site::LateDuplicate => "late-duplicate",
        }
    }

    /// Probability that an enabled site fires at one chance (one fsync, one message).
    const fn p_fire(self) -> f64 {
        match self {
            Site::SlowFsync => 0.05,
            Site::CrashInFsync => 0.002,
            Site::LateReply => 0.03,
            Site::LateDuplicate => 0.02,
        }
    }
}

/// The sites of one run.
pub(super) struct Buggify {
    on: [bool; 4],
    rng: Stream,
}

impl Buggify {
    /// The sites of the run with `seed`: none unless `enabled`.
    pub(super) fn new(seed: u64, enabled: bool) -> Buggify {
        let mut on = [false; 4];
        if enabled {
            let mut pick = Stream::new(seed, "buggify-sites");
            for slot in &mut on {
                *slot = pick.chance(P_ENABLED);
            }
        }
        Buggify {
            on,
            rng: Stream::new(seed, "buggify"),
        }
    }

    /// Draw the firings from now on from `rng` (a branch: the enabled sites stay).
    pub(super) fn reseed(&mut self, rng: Stream) {
        self.rng = rng;
    }

    /// Whether `site` fires at this chance (drawn only when it is enabled).
    pub(super) fn fires(&mut self, site: Site) -> bool {
        self.on[site as usize] && self.rng.chance(site.p_fire())
    }

    /// The sites enabled for this run.
    pub(super) fn enabled(&self) -> Vec<Site> {
        Site::ALL
            .into_iter()
            .filter(|s| self.on[*s as usize])
            .collect()
    }

    /// A duration uniform in `lo..=hi`.
    pub(super) fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.rng.below(span + 1))
    }

    /// A duration log-uniform in `lo..=hi` (as likely between 1 s and 10 s as between
    /// 10 s and 100 s).
    pub(super) fn log_uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (a, b) = (
            lo.as_secs_f64().max(1e-6).ln(),
            hi.as_secs_f64().max(1e-6).ln(),
        );
        let x = a + (b - a) * self.rng.unit();
        Duration::from_secs_f64(x.exp()).clamp(lo, hi)
    }
}

/// The trace's word for a host: 0 the origin, 1 + i tower i.
fn host_word(node: Node) -> u64 {
    match node {
        Node::Origin => 0,
        Node::Tower(i) => 1 + i as u64,
    }
}

impl World {
    /// Record that `site` fired at `host` (see [`host_word`]) with `delay`.
    pub(super) fn trace_buggify(&mut self, site: Site, host: u64, delay: Duration) {
        let us = delay.as_micros() as u64;
        self.trace
            .event(self.now, TraceKind::Buggify, site as u64, &[host, us]);
        self.trace.line(self.now, || {
            let at = if host == 0 {
                "origin".to_string()
            } else {
                format!("tower-{}", host - 1)
            };
            format!("buggify {} at {at}: {delay:?}", site.name())
        });
    }

    /// The fsync sites for an fsync of `node` (incarnation `incarnation`) that completes
    /// `after` from now: `slow-fsync` stretches it; `crash-in-fsync` crashes the host before
    /// it completes. Returns the (possibly stretched) latency.
    pub(super) fn buggify_fsync(
        &mut self,
        node: Node,
        incarnation: u64,
        mut after: Duration,
    ) -> Duration {
        if self.healed {
            return after;
        }
        if self.buggify.fires(Site::SlowFsync) {
            let extra = self
                .buggify
                .uniform(Duration::from_secs(10), Duration::from_secs(60));
            self.trace_buggify(Site::SlowFsync, host_word(node), extra);
            after += extra;
        }
        if self.buggify.fires(Site::CrashInFsync) {
            // Strictly before the fsync completes (an event at the same time would pop
            // after it).
            let at = self.buggify.uniform(
                Duration::ZERO,
                after.saturating_sub(Duration::from_micros(1)),
            );
            self.push(self.now + at, Ev::BuggifyCrash { node, incarnation });
        }
        after
    }

    /// `crash-in-fsync`: crash `node` if it is still the incarnation that issued the fsync
    /// and up (and no crash fault holds it), and restart it 1–30 s later; not once every
    /// fault has healed.
    pub(super) fn buggify_crash(&mut self, node: Node, incarnation: u64) {
        if self.healed {
            return;
        }
        let restart = self
            .buggify
            .uniform(Duration::from_secs(1), Duration::from_secs(30));
        match node {
            Node::Origin => {
                let o = &self.origin;
                if o.incarnation != incarnation || !o.up || o.crash_faults > 0 {
                    return;
                }
                self.trace_buggify(Site::CrashInFsync, 0, restart);
                self.crash_origin(restart);
            }
            Node::Tower(i) => {
                let t = &self.towers[i];
                if t.incarnation != incarnation || !t.running() || t.crash_faults > 0 {
                    return;
                }
                self.trace_buggify(Site::CrashInFsync, host_word(node), restart);
                self.crash_tower(i, false, Some(restart));
            }
        }
    }

    /// `late-reply`: a message from the origin to tower `t` arrives around the tower's
    /// request deadline instead (its request timeout plus 0–5 s from now), unless it
    /// would arrive later than that anyway.
    pub(super) fn late_reply(&mut self, t: usize, arrivals: &mut [sovereign_logic::Time]) {
        let timeout = self.towers[t].config.request_timeout;
        let late = timeout + self.buggify.uniform(Duration::ZERO, Duration::from_secs(5));
        self.trace_buggify(Site::LateReply, 1 + t as u64, late);
        let at = self.now + late;
        for a in arrivals {
            *a = (*a).max(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_no_site_ever_fires_and_on_enables_about_half() {
        // Goal: a run without buggify never fires; with it, each site is enabled in about
        // half the runs, independently, and an enabled site fires at about its rate.
        let mut off = Buggify::new(3, false);
        assert!(
            Site::ALL
                .iter()
                .all(|s| (0..10_000).all(|_| !off.fires(*s)))
        );
        let mut enabled = [0u32; 4];
        for seed in 0..400 {
            for s in Buggify::new(seed, true).enabled() {
                enabled[s as usize] += 1;
            }
        }
        assert!(
            enabled.iter().all(|&n| (150..=250).contains(&n)),
            "{enabled:?}"
        );
        let seed = (0..)
            .find(|&s| Buggify::new(s, true).enabled().len() == 4)
            .unwrap();
        let mut b = Buggify::new(seed, true);
        let fired = (0..100_000).filter(|_| b.fires(Site::SlowFsync)).count();
        assert!((4_000..=6_000).contains(&fired), "{fired}");
    }

    #[test]
    fn durations_stay_in_their_ranges() {
        // Goal: uniform and log-uniform draws stay within their bounds and spread over
        // them (log-uniform: about as many below the geometric middle as above).
        let mut b = Buggify::new(1, true);
        let (lo, hi) = (Duration::from_secs(1), Duration::from_secs(7200));
        let draws: Vec<Duration> = (0..2000).map(|_| b.log_uniform(lo, hi)).collect();
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        let below = draws
            .iter()
            .filter(|d| d.as_secs_f64() < 7200f64.sqrt())
            .count();
        assert!((800..=1200).contains(&below), "{below}");
        let u: Vec<Duration> = (0..2000)
            .map(|_| b.uniform(Duration::from_secs(10), Duration::from_secs(60)))
            .collect();
        assert!(u.iter().all(|d| (10..=60).contains(&d.as_secs())));
        assert!(u.iter().any(|d| d.as_secs() < 20) && u.iter().any(|d| d.as_secs() >= 50));
    }
}
