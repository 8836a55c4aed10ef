//! Uplink health, failover with hysteresis and fail-back, and the per-link class policy.
//!
//! A tower has up to three uplinks (fibre, LTE, satellite). The driver probes each one
//! every [`ProbePolicy::interval`] and feeds the result in; this module decides, the way
//! OpenWrt's mwan3 does, when a link is up or down and which link carries traffic.
//!
//! Map:
//! - [`ProbeOutcome`]: one measurement (reachable, RTT, loss, bandwidth).
//! - [`ProbePolicy`] (+ [`PolicyError`]): thresholds and streak lengths; [`Verdict`] is
//!   what one probe means under a policy (bad / neutral / good).
//! - [`LinkHealth`]: one link's up/down state with hysteresis, smoothed RTT and bandwidth.
//! - [`Failover`]: all links of a tower; picks the active one, emits
//!   [`Event::LinkHealth`] and [`Event::ActiveLink`].
//! - [`ClassPolicy`]: which priority classes each link may carry (metered links fewer).
//!
//! Hysteresis has two parts. Thresholds: a probe is *bad* beyond the fail thresholds and
//! *good* only within the (stricter) recover thresholds; in between it is *neutral* and
//! breaks any streak. Streaks: a link goes down after `down_after` consecutive bad
//! probes and comes up after `up_after` consecutive good ones. After every flip both
//! streaks restart from zero, so two flips of one link are always at least
//! `min(down_after, up_after)` probes apart: a link whose RTT hovers around a threshold
//! cannot flap.
//!
//! Not covered: sending probes or timing them (the driver, via `Action::Probe`), routing
//! traffic (the driver honours the active link), which classes are scheduled when (the
//! scheduler and power manager).

use crate::Time;
use crate::content::Priority;
use crate::io::Event;
use crate::protocol::LinkKind;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest accepted `down_after` / `up_after`. A longer streak would leave a dead
/// link active for hours at the default interval; it is surely a configuration mistake.
pub const STREAK_MAX: u32 = 1_000;

/// The longest accepted probe interval (one hour).
pub const INTERVAL_MAX: Duration = Duration::from_secs(3_600);

/// RTT smoothing gain as a shift: `srtt += (sample - srtt) / 2^3`, TCP's SRTT (RFC 6298).
const RTT_GAIN_SHIFT: u32 = 3;

/// Bandwidth smoothing gain as a shift (1/4): bandwidth samples are noisier than RTT but
/// change for real when a LEO satellite hands over, so they track a little faster.
const BANDWIDTH_GAIN_SHIFT: u32 = 2;

const _: () = assert!(BANDWIDTH_GAIN_SHIFT <= RTT_GAIN_SHIFT);
const _: () = assert!(STREAK_MAX >= 1);

/// Result of one probe of an uplink, measured by the driver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeOutcome {
    /// Did the probe target answer at all?
    pub reachable: bool,
    /// Round-trip time, if measured. A reachable probe without an RTT is judged on loss
    /// alone (the driver could not time it, which is no evidence of latency).
    pub rtt: Option<Duration>,
    /// Packet loss of the probe burst, percent (values above 100 count as 100).
    pub loss_pct: u8,
    /// Measured throughput, if the driver measured it this time.
    pub bandwidth_bps: Option<u64>,
}

impl ProbeOutcome {
    /// A clean answer with round-trip time `rtt`: reachable, no loss, bandwidth unknown.
    pub fn ok(rtt: Duration) -> Self {
        ProbeOutcome {
            reachable: true,
            rtt: Some(rtt),
            loss_pct: 0,
            bandwidth_bps: None,
        }
    }

    /// No answer: unreachable, 100 % loss.
    pub fn failed() -> Self {
        ProbeOutcome {
            reachable: false,
            rtt: None,
            loss_pct: 100,
            bandwidth_bps: None,
        }
    }

    /// What this probe means under `policy`.
    pub fn verdict(&self, policy: &ProbePolicy) -> Verdict {
        let loss_pct = self.loss_pct.min(100);
        let bad = !self.reachable
            || self.rtt.is_some_and(|rtt| rtt > policy.latency_fail)
            || loss_pct > policy.loss_fail_pct;
        if bad {
            return Verdict::Bad;
        }
        let good = self.rtt.is_none_or(|rtt| rtt <= policy.latency_recover)
            && loss_pct <= policy.loss_recover_pct;
        if good {
            Verdict::Good
        } else {
            Verdict::Neutral
        }
    }
}

/// What one probe means under a [`ProbePolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unreachable, or beyond a fail threshold: counts towards going down.
    Bad,
    /// In the hysteresis band: breaks both streaks, advances neither.
    Neutral,
    /// Reachable and within both recover thresholds: counts towards coming up.
    Good,
}

/// mwan3-style probe policy. Default: interval 5 s, down after 3 bad probes, up after 8
/// good, latency fail 1000 ms / recover 500 ms, loss fail 20 % / recover 5 % (DESIGN.md §10).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbePolicy {
    /// Time between probes of one link (the driver schedules them; see `Action::Probe`).
    pub interval: Duration,
    /// Consecutive bad probes that take an up link down.
    pub down_after: u32,
    /// Consecutive good probes that bring a down link up. Larger than `down_after` by
    /// default: leaving a sick link fast is cheap, trusting it again too early is not.
    pub up_after: u32,
    /// An RTT above this makes a probe bad.
    pub latency_fail: Duration,
    /// An RTT at or below this (and low loss) makes a probe good.
    pub latency_recover: Duration,
    /// Loss above this (percent) makes a probe bad.
    pub loss_fail_pct: u8,
    /// Loss at or below this (percent, and low RTT) makes a probe good.
    pub loss_recover_pct: u8,
}

/// How long a driver waits for a probe's answer before it reports the probe failed:
/// 2 s, and 4 s over satellite (a GEO round trip alone is about 0.6 s). A probe answered
/// later is a failed probe too. The real tower and the simulator both wait this long.
pub fn probe_timeout(link: LinkKind) -> Duration {
    match link {
        LinkKind::Satellite => Duration::from_secs(4),
        LinkKind::Fibre | LinkKind::Lte => Duration::from_secs(2),
    }
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            interval: Duration::from_secs(5),
            down_after: 3,
            up_after: 8,
            latency_fail: Duration::from_millis(1_000),
            latency_recover: Duration::from_millis(500),
            loss_fail_pct: 20,
            loss_recover_pct: 5,
        }
    }
}

/// Why a probe policy was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The probe interval must be positive and at most [`INTERVAL_MAX`].
    #[error("probe interval must be in (0, {max:?}], got {interval:?}")]
    Interval {
        /// the rejected interval
        interval: Duration,
        /// the largest accepted interval
        max: Duration,
    },
    /// A streak length must be in `1..=STREAK_MAX`.
    #[error("{field} must be in 1..={max}, got {value}")]
    Streak {
        /// `down_after` or `up_after`
        field: &'static str,
        /// the rejected value
        value: u32,
        /// [`STREAK_MAX`]
        max: u32,
    },
    /// The latency recover threshold must not exceed the fail threshold.
    #[error("latency_recover ({recover:?}) must be <= latency_fail ({fail:?})")]
    Latency {
        /// the rejected recover threshold
        recover: Duration,
        /// the fail threshold
        fail: Duration,
    },
    /// Loss thresholds must be percentages with recover <= fail.
    #[error(
        "loss thresholds must satisfy recover <= fail <= 100, got recover {recover}% fail {fail}%"
    )]
    Loss {
        /// the recover threshold
        recover: u8,
        /// the fail threshold
        fail: u8,
    },
}

impl ProbePolicy {
    /// The default for a GEO satellite link: as [`ProbePolicy::default`] but with
    /// latency thresholds above its ~600 ms RTT (fail 2000 ms, recover 1200 ms), so a
    /// healthy satellite link is "good" and a dead one still goes down.
    pub fn satellite() -> Self {
        ProbePolicy {
            latency_fail: Duration::from_millis(2000),
            latency_recover: Duration::from_millis(1200),
            ..ProbePolicy::default()
        }
    }

    /// Check the policy: interval in range, streaks in `1..=STREAK_MAX`, recover
    /// thresholds at or inside the fail thresholds, percentages at most 100.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.interval.is_zero() || self.interval > INTERVAL_MAX {
            return Err(PolicyError::Interval {
                interval: self.interval,
                max: INTERVAL_MAX,
            });
        }
        for (field, value) in [("down_after", self.down_after), ("up_after", self.up_after)] {
            if !(1..=STREAK_MAX).contains(&value) {
                return Err(PolicyError::Streak {
                    field,
                    value,
                    max: STREAK_MAX,
                });
            }
        }
        if self.latency_recover > self.latency_fail {
            return Err(PolicyError::Latency {
                recover: self.latency_recover,
                fail: self.latency_fail,
            });
        }
        if self.loss_recover_pct > self.loss_fail_pct || self.loss_fail_pct > 100 {
            return Err(PolicyError::Loss {
                recover: self.loss_recover_pct,
                fail: self.loss_fail_pct,
            });
        }
        Ok(())
    }
}

/// Health of one uplink with hysteresis.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkHealth {
    up: bool,
    /// Consecutive bad probes; only ever compared with `down_after` while up.
    bad_streak: u32,
    /// Consecutive good probes; only ever compared with `up_after` while down.
    good_streak: u32,
    /// Smoothed RTT in microseconds; `None` until the first timed probe.
    srtt_us: Option<u64>,
    /// Smoothed bandwidth; `None` until the first measured probe.
    bandwidth_bps: Option<u64>,
    /// Loss of the last probe (percent, clamped to 100).
    loss_pct: u8,
    /// When the state last flipped; `None` if it never did.
    last_change: Option<Time>,
}

impl LinkHealth {
    /// A link in state `initially_up`, with no measurements yet.
    pub fn new(initially_up: bool) -> Self {
        LinkHealth {
            up: initially_up,
            bad_streak: 0,
            good_streak: 0,
            srtt_us: None,
            bandwidth_bps: None,
            loss_pct: 0,
            last_change: None,
        }
    }

    /// Feed one probe; returns `Some(new_up)` when the up/down state flips.
    pub fn observe(
        &mut self,
        now: Time,
        probe: &ProbeOutcome,
        policy: &ProbePolicy,
    ) -> Option<bool> {
        debug_assert!(policy.validate().is_ok(), "invalid probe policy {policy:?}");
        self.record_measurements(probe);
        match probe.verdict(policy) {
            Verdict::Bad => {
                self.bad_streak = self.bad_streak.saturating_add(1);
                self.good_streak = 0;
            }
            Verdict::Good => {
                self.good_streak = self.good_streak.saturating_add(1);
                self.bad_streak = 0;
            }
            Verdict::Neutral => {
                self.bad_streak = 0;
                self.good_streak = 0;
            }
        }
        let flip = if self.up {
            self.bad_streak >= policy.down_after.max(1)
        } else {
            self.good_streak >= policy.up_after.max(1)
        };
        if flip { self.set(now, !self.up) } else { None }
    }

    /// Force the link down now (interface gone, requests timing out). Returns
    /// `Some(false)` if it was up, `None` if it already was down. Either way the good
    /// streak restarts: the link must earn `up_after` good probes from here.
    pub fn force_down(&mut self, now: Time) -> Option<bool> {
        if self.up {
            self.set(now, false)
        } else {
            self.good_streak = 0;
            self.bad_streak = 0;
            None
        }
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Smoothed RTT (EWMA with gain 1/8, like TCP's SRTT); `None` before any timed probe.
    pub fn rtt_ewma(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// Smoothed bandwidth estimate (EWMA with gain 1/4); `None` before any measurement.
    pub fn bandwidth_bps(&self) -> Option<u64> {
        self.bandwidth_bps
    }

    /// Loss of the most recent probe, percent (0 before any probe).
    pub fn loss_pct(&self) -> u8 {
        self.loss_pct
    }

    /// When the up/down state last flipped; `None` if it never did.
    pub fn last_change(&self) -> Option<Time> {
        self.last_change
    }

    fn set(&mut self, now: Time, up: bool) -> Option<bool> {
        debug_assert_ne!(self.up, up);
        self.up = up;
        self.bad_streak = 0;
        self.good_streak = 0;
        self.last_change = Some(now);
        Some(up)
    }

    fn record_measurements(&mut self, probe: &ProbeOutcome) {
        self.loss_pct = probe.loss_pct.min(100);
        if let Some(rtt) = probe.rtt {
            let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            self.srtt_us = Some(ewma(self.srtt_us, sample, RTT_GAIN_SHIFT));
        }
        if let Some(bps) = probe.bandwidth_bps {
            self.bandwidth_bps = Some(ewma(self.bandwidth_bps, bps, BANDWIDTH_GAIN_SHIFT));
        }
    }
}

/// `old + (sample - old) / 2^shift`, starting at the first sample; exact in u128.
fn ewma(old: Option<u64>, sample: u64, shift: u32) -> u64 {
    match old {
        None => sample,
        Some(old) => {
            let weight = (1u128 << shift) - 1;
            let next = (u128::from(old) * weight + u128::from(sample)) >> shift;
            let next = u64::try_from(next).unwrap_or(u64::MAX);
            debug_assert!(next >= old.min(sample) && next <= old.max(sample));
            next
        }
    }
}

/// Chooses the active uplink: the most preferred (LinkKind order: Fibre < Lte <
/// Satellite) link that is up.
///
/// Call order: [`Failover::new`], then [`Failover::observe`] for every probe result and
/// [`Failover::mark_down`] when the driver knows a link is gone; after each, act on the
/// returned events and route upstream traffic over [`Failover::active`].
#[derive(Clone, Debug)]
pub struct Failover {
    /// The configured links, keyed (and so iterated) in preference order.
    health: BTreeMap<LinkKind, LinkHealth>,
    policy: ProbePolicy,
    /// Per-link policies that replace `policy` (a GEO satellite's ~600 ms RTT can never
    /// meet a terrestrial 500 ms recover threshold, so it would never come back up).
    overrides: BTreeMap<LinkKind, ProbePolicy>,
    /// Return to a more preferred link once it is up again (false only to plant the
    /// simulator's `no-failback` bug).
    failback: bool,
    /// Leave a link that went down for the best one up (false only to plant the real
    /// tower's `no-failover` bug: the tower stays on its first link, up or down).
    failover: bool,
    active: Option<LinkKind>,
    failovers: u64,
}

impl Failover {
    /// `links`: the uplinks this tower has (any subset, any order; duplicates are
    /// ignored). `failback`: when true (the default everyone should use) the tower
    /// returns to a more preferred link once it is up again; when false it stays on the
    /// current link until that link goes down (this is also the planted bug `no-failback`
    /// the simulator uses). All links start up; the active link is the most preferred.
    ///
    /// Panics if `policy` is invalid (validate configuration first, or use
    /// [`Failover::try_new`]).
    pub fn new(links: &[LinkKind], policy: ProbePolicy, failback: bool) -> Self {
        match Self::try_new(links, policy, failback) {
            Ok(f) => f,
            Err(e) => panic!("invalid probe policy: {e}"),
        }
    }

    /// [`Failover::new`] that reports an invalid policy as an error.
    pub fn try_new(
        links: &[LinkKind],
        policy: ProbePolicy,
        failback: bool,
    ) -> Result<Self, PolicyError> {
        policy.validate()?;
        let health: BTreeMap<LinkKind, LinkHealth> =
            links.iter().map(|&l| (l, LinkHealth::new(true))).collect();
        let active = health.keys().next().copied();
        Ok(Failover {
            health,
            policy,
            overrides: BTreeMap::new(),
            failback,
            failover: true,
            active,
            failovers: 0,
        })
    }

    /// With `false`, the active link never changes: the tower keeps sending over its
    /// first link even while that link is down (the planted bug `no-failover`, which the
    /// Chaos Toolkit experiment `gamedays/chaostoolkit/uplink-latency.json` must catch).
    pub fn with_failover(mut self, failover: bool) -> Self {
        self.failover = failover;
        self
    }

    /// Feed a probe result; returns the events it caused, in order:
    /// `Event::LinkHealth{link,up}` on a flip, then `Event::ActiveLink{from,to}` if the
    /// active link changed. A probe of a link this tower does not have is ignored.
    pub fn observe(&mut self, now: Time, link: LinkKind, probe: &ProbeOutcome) -> Vec<Event> {
        let Some(health) = self.health.get_mut(&link) else {
            return Vec::new();
        };
        let policy = self.overrides.get(&link).unwrap_or(&self.policy);
        let flip = health.observe(now, probe, policy);
        self.after(link, flip)
    }

    /// Use `policy` for `link` instead of the default one. Panics on an invalid policy.
    pub fn with_link_policy(mut self, link: LinkKind, policy: ProbePolicy) -> Self {
        if let Err(e) = policy.validate() {
            panic!("invalid probe policy for {link}: {e}");
        }
        self.overrides.insert(link, policy);
        self
    }

    /// The policy in force for `link`.
    pub fn policy_for(&self, link: LinkKind) -> &ProbePolicy {
        self.overrides.get(&link).unwrap_or(&self.policy)
    }

    /// Force a link down now (e.g. the driver saw the interface go away, or requests on
    /// it time out repeatedly); same event contract as [`Failover::observe`].
    pub fn mark_down(&mut self, now: Time, link: LinkKind) -> Vec<Event> {
        let Some(health) = self.health.get_mut(&link) else {
            return Vec::new();
        };
        let flip = health.force_down(now);
        self.after(link, flip)
    }

    /// The link upstream traffic should use; `None` when no link is up.
    pub fn active(&self) -> Option<LinkKind> {
        self.active
    }

    /// The health of `link`, if this tower has it.
    pub fn health(&self, link: LinkKind) -> Option<&LinkHealth> {
        self.health.get(&link)
    }

    /// The configured links, in preference order.
    pub fn links(&self) -> Vec<LinkKind> {
        self.health.keys().copied().collect()
    }

    /// The probe policy.
    pub fn policy(&self) -> &ProbePolicy {
        &self.policy
    }

    /// Whether this failover returns to a more preferred link when it recovers.
    pub fn failback(&self) -> bool {
        self.failback
    }

    /// Count of active-link changes so far (including changes to and from "none").
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// The most preferred link that is up.
    fn best_up(&self) -> Option<LinkKind> {
        self.health.iter().find(|(_, h)| h.is_up()).map(|(&l, _)| l)
    }

    fn after(&mut self, link: LinkKind, flip: Option<bool>) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(up) = flip else {
            return events;
        };
        events.push(Event::LinkHealth { link, up });
        let current_up = self
            .active
            .and_then(|a| self.health.get(&a))
            .is_some_and(LinkHealth::is_up);
        let next = if !self.failover {
            self.active
        } else if self.failback || !current_up {
            self.best_up()
        } else {
            self.active
        };
        if next != self.active {
            events.push(Event::ActiveLink {
                from: self.active,
                to: next,
            });
            self.active = next;
            self.failovers += 1;
        }
        debug_assert!(!self.failover || self.active.is_none_or(|a| self.health[&a].is_up()));
        debug_assert!(!self.failover || !self.failback || self.active == self.best_up());
        events
    }
}

/// Which priority classes each link may carry (metered links carry fewer).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassPolicy {
    /// The least urgent class each link carries, indexed by `LinkKind as usize`.
    max_class: [Priority; LinkKind::ALL.len()],
}

impl Default for ClassPolicy {
    /// Fibre and LTE carry P0..=P3; satellite (metered, per-byte cost) only P0..=P1.
    fn default() -> Self {
        ClassPolicy {
            max_class: [Priority::P3, Priority::P3, Priority::P1],
        }
    }
}

impl ClassPolicy {
    /// Each listed link carries classes `<=` its max (P0 is always carried). A link not
    /// listed keeps its default; a link listed twice takes the last entry.
    pub fn new(max_class: &[(LinkKind, Priority)]) -> Self {
        let mut policy = ClassPolicy::default();
        for &(link, class) in max_class {
            policy.max_class[link as usize] = class;
        }
        policy
    }

    /// Whether `link` may carry traffic of `class`.
    pub fn allows(&self, link: LinkKind, class: Priority) -> bool {
        class <= self.max_class(link)
    }

    /// The least urgent class `link` may carry.
    pub fn max_class(&self, link: LinkKind) -> Priority {
        self.max_class[link as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIBRE: LinkKind = LinkKind::Fibre;
    const LTE: LinkKind = LinkKind::Lte;
    const SAT: LinkKind = LinkKind::Satellite;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn good() -> ProbeOutcome {
        ProbeOutcome::ok(ms(40))
    }

    fn bad() -> ProbeOutcome {
        ProbeOutcome::failed()
    }

    /// The event of `link`'s health flipping to `up`.
    fn health(link: LinkKind, up: bool) -> Event {
        Event::LinkHealth { link, up }
    }

    /// The event of the active link moving `from` → `to`.
    fn switch(from: Option<LinkKind>, to: Option<LinkKind>) -> Event {
        Event::ActiveLink { from, to }
    }

    fn neutral() -> ProbeOutcome {
        ProbeOutcome::ok(ms(700))
    }

    /// Feed `n` copies of `probe` for `link`, one per second from `*t`; collect events.
    fn feed(
        f: &mut Failover,
        t: &mut u64,
        link: LinkKind,
        probe: ProbeOutcome,
        n: u32,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for _ in 0..n {
            *t += 1;
            out.extend(f.observe(Time::from_secs(*t), link, &probe));
        }
        out
    }

    #[test]
    fn default_policy_matches_mwan3_and_validates() {
        // Goal: the defaults are DESIGN.md §10's mwan3 numbers, and they pass validation.
        let p = ProbePolicy::default();
        assert_eq!(p.interval, Duration::from_secs(5));
        assert_eq!((p.down_after, p.up_after), (3, 8));
        assert_eq!((p.latency_fail, p.latency_recover), (ms(1000), ms(500)));
        assert_eq!((p.loss_fail_pct, p.loss_recover_pct), (20, 5));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_inverted_thresholds_and_zero_counts() {
        // Goal: each kind of bad policy is an error value, not accepted silently.
        let base = ProbePolicy::default();
        let cases = [
            ProbePolicy {
                down_after: 0,
                ..base.clone()
            },
            ProbePolicy {
                up_after: 0,
                ..base.clone()
            },
            ProbePolicy {
                up_after: STREAK_MAX + 1,
                ..base.clone()
            },
            ProbePolicy {
                interval: Duration::ZERO,
                ..base.clone()
            },
            ProbePolicy {
                latency_recover: ms(1001),
                ..base.clone()
            },
            ProbePolicy {
                loss_recover_pct: 21,
                ..base.clone()
            },
            ProbePolicy {
                loss_fail_pct: 101,
                loss_recover_pct: 5,
                ..base.clone()
            },
        ];
        for p in cases {
            assert!(p.validate().is_err(), "accepted {p:?}");
        }
        assert!(matches!(
            ProbePolicy {
                up_after: 0,
                ..base.clone()
            }
            .validate(),
            Err(PolicyError::Streak {
                field: "up_after",
                ..
            })
        ));
        assert!(
            Failover::try_new(
                &[FIBRE],
                ProbePolicy {
                    down_after: 0,
                    ..base
                },
                true
            )
            .is_err()
        );
    }

    #[test]
    fn verdicts_follow_the_thresholds() {
        // Goal: bad beyond fail thresholds, good within recover ones, neutral in between.
        let p = ProbePolicy::default();
        assert_eq!(bad().verdict(&p), Verdict::Bad);
        assert_eq!(ProbeOutcome::ok(ms(1001)).verdict(&p), Verdict::Bad);
        assert_eq!(ProbeOutcome::ok(ms(1000)).verdict(&p), Verdict::Neutral);
        assert_eq!(ProbeOutcome::ok(ms(501)).verdict(&p), Verdict::Neutral);
        assert_eq!(ProbeOutcome::ok(ms(500)).verdict(&p), Verdict::Good);
        let lossy = |loss_pct| ProbeOutcome { loss_pct, ..good() };
        assert_eq!(lossy(21).verdict(&p), Verdict::Bad);
        assert_eq!(lossy(20).verdict(&p), Verdict::Neutral);
        assert_eq!(lossy(6).verdict(&p), Verdict::Neutral);
        assert_eq!(lossy(5).verdict(&p), Verdict::Good);
        let untimed = ProbeOutcome {
            rtt: None,
            ..good()
        };
        assert_eq!(untimed.verdict(&p), Verdict::Good);
    }

    #[test]
    fn goes_down_after_exactly_n_bad_and_up_after_exactly_m_good() {
        // Goal: the streak lengths are exact, not off by one in either direction.
        let p = ProbePolicy::default();
        let mut h = LinkHealth::new(true);
        for i in 1..p.down_after {
            assert_eq!(h.observe(Time::from_secs(u64::from(i)), &bad(), &p), None);
        }
        assert_eq!(h.observe(Time::from_secs(3), &bad(), &p), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.last_change(), Some(Time::from_secs(3)));
        for i in 1..p.up_after {
            assert_eq!(
                h.observe(Time::from_secs(10 + u64::from(i)), &good(), &p),
                None
            );
        }
        assert_eq!(h.observe(Time::from_secs(20), &good(), &p), Some(true));
        assert!(h.is_up());
        assert_eq!(h.last_change(), Some(Time::from_secs(20)));
    }

    #[test]
    fn broken_streaks_start_over() {
        // Goal: a good or neutral probe in the middle of a bad streak resets it (and vice versa).
        let p = ProbePolicy::default();
        let mut h = LinkHealth::new(true);
        let t = Time::ZERO;
        for interrupt in [good(), neutral()] {
            assert_eq!(h.observe(t, &bad(), &p), None);
            assert_eq!(h.observe(t, &bad(), &p), None);
            assert_eq!(h.observe(t, &interrupt, &p), None);
        }
        assert!(h.is_up());
        assert_eq!(h.force_down(t), Some(false));
        for _ in 0..7 {
            assert_eq!(h.observe(t, &good(), &p), None);
        }
        assert_eq!(h.observe(t, &neutral(), &p), None);
        for _ in 0..7 {
            assert_eq!(h.observe(t, &good(), &p), None);
        }
        assert_eq!(h.observe(t, &good(), &p), Some(true));
    }

    #[test]
    fn neutral_probes_never_flip() {
        // Goal: any number of probes inside the hysteresis band leaves the state alone.
        let p = ProbePolicy::default();
        for initially_up in [true, false] {
            let mut h = LinkHealth::new(initially_up);
            for i in 0..100u64 {
                let probe = if i % 2 == 0 {
                    neutral()
                } else {
                    ProbeOutcome {
                        loss_pct: 15,
                        ..good()
                    }
                };
                assert_eq!(h.observe(Time::from_secs(i), &probe, &p), None);
            }
            assert_eq!(h.is_up(), initially_up);
            assert_eq!(h.last_change(), None);
        }
    }

    #[test]
    fn rtt_is_smoothed_like_tcp_srtt_and_measurements_are_kept() {
        // Goal: the first sample seeds the EWMA, later ones move it by 1/8; loss and bandwidth are recorded.
        let p = ProbePolicy::default();
        let mut h = LinkHealth::new(true);
        assert_eq!(h.rtt_ewma(), None);
        h.observe(Time::ZERO, &ProbeOutcome::ok(ms(100)), &p);
        assert_eq!(h.rtt_ewma(), Some(ms(100)));
        h.observe(Time::ZERO, &ProbeOutcome::ok(ms(900)), &p);
        assert_eq!(h.rtt_ewma(), Some(ms(200)));
        h.observe(Time::ZERO, &bad(), &p);
        assert_eq!(
            h.rtt_ewma(),
            Some(ms(200)),
            "an untimed probe leaves the RTT alone"
        );
        assert_eq!(h.loss_pct(), 100);
        let measured = ProbeOutcome {
            bandwidth_bps: Some(8_000_000),
            loss_pct: 250,
            ..good()
        };
        h.observe(Time::ZERO, &measured, &p);
        assert_eq!(h.bandwidth_bps(), Some(8_000_000));
        assert_eq!(h.loss_pct(), 100, "loss is clamped to a percentage");
        h.observe(
            Time::ZERO,
            &ProbeOutcome {
                bandwidth_bps: Some(0),
                ..good()
            },
            &p,
        );
        assert_eq!(h.bandwidth_bps(), Some(6_000_000));
    }

    #[test]
    fn fails_over_down_the_chain_and_back_to_fibre() {
        // Goal: fibre → LTE → satellite as links die, back to fibre when it recovers, events in order.
        let mut f = Failover::new(&[SAT, FIBRE, LTE], ProbePolicy::default(), true);
        assert_eq!(f.links(), vec![FIBRE, LTE, SAT]);
        assert_eq!(f.active(), Some(FIBRE));
        let mut t = 0;
        assert!(feed(&mut f, &mut t, FIBRE, bad(), 2).is_empty());
        assert_eq!(
            feed(&mut f, &mut t, FIBRE, bad(), 1),
            vec![health(FIBRE, false), switch(Some(FIBRE), Some(LTE))]
        );
        assert_eq!((f.active(), f.failovers()), (Some(LTE), 1));
        feed(&mut f, &mut t, LTE, bad(), 3);
        assert_eq!((f.active(), f.failovers()), (Some(SAT), 2));
        assert!(feed(&mut f, &mut t, FIBRE, good(), 7).is_empty());
        assert_eq!(
            feed(&mut f, &mut t, FIBRE, good(), 1),
            vec![health(FIBRE, true), switch(Some(SAT), Some(FIBRE))]
        );
        assert_eq!((f.active(), f.failovers()), (Some(FIBRE), 3));
        // LTE recovering while fibre is active changes health only.
        assert_eq!(
            feed(&mut f, &mut t, LTE, good(), 8),
            vec![health(LTE, true)]
        );
        assert_eq!(f.failovers(), 3);
    }

    #[test]
    fn without_failback_the_tower_stays_on_the_worse_link() {
        // Goal: failback=false (the planted `no-failback` bug) keeps satellite after fibre recovers.
        let mut f = Failover::new(&[FIBRE, LTE, SAT], ProbePolicy::default(), false);
        let mut t = 0;
        feed(&mut f, &mut t, FIBRE, bad(), 3);
        feed(&mut f, &mut t, LTE, bad(), 3);
        assert_eq!(f.active(), Some(SAT));
        assert_eq!(
            feed(&mut f, &mut t, FIBRE, good(), 8),
            vec![health(FIBRE, true)]
        );
        assert_eq!((f.active(), f.failovers()), (Some(SAT), 2));
        // Only when the active link dies does it move, and then to the best up link.
        assert_eq!(
            f.mark_down(Time::from_secs(100), SAT),
            vec![health(SAT, false), switch(Some(SAT), Some(FIBRE))]
        );
        assert_eq!(f.failovers(), 3);
    }

    #[test]
    fn without_failover_the_tower_stays_on_a_dead_link() {
        // Goal: failover=false (the planted `no-failover` bug) keeps fibre active while it is down and LTE is up.
        let mut f = Failover::new(&[FIBRE, LTE], ProbePolicy::default(), true).with_failover(false);
        let mut t = 0;
        assert_eq!(
            feed(&mut f, &mut t, FIBRE, bad(), 3),
            vec![health(FIBRE, false)]
        );
        assert_eq!((f.active(), f.failovers()), (Some(FIBRE), 0));
        // The same input with fail-over on moves to LTE.
        let mut g = Failover::new(&[FIBRE, LTE], ProbePolicy::default(), true);
        let mut t = 0;
        feed(&mut g, &mut t, FIBRE, bad(), 3);
        assert_eq!(g.active(), Some(LTE));
    }

    #[test]
    fn no_link_up_means_no_active_link() {
        // Goal: when every link is down the active link is None, and it returns when one recovers.
        let mut f = Failover::new(&[LTE, SAT], ProbePolicy::default(), true);
        assert_eq!(f.active(), Some(LTE));
        assert_eq!(f.mark_down(Time::ZERO, LTE).len(), 2);
        assert_eq!(
            f.mark_down(Time::ZERO, SAT),
            vec![health(SAT, false), switch(Some(SAT), None)]
        );
        assert!(
            f.mark_down(Time::ZERO, SAT).is_empty(),
            "already down: nothing happens"
        );
        assert_eq!(f.active(), None);
        let mut t = 0;
        let events = feed(&mut f, &mut t, SAT, good(), 8);
        assert_eq!(events[1], switch(None, Some(SAT)));
        assert_eq!(f.failovers(), 3);
        // A link the tower does not have is ignored.
        assert!(feed(&mut f, &mut t, FIBRE, bad(), 5).is_empty());
        assert!(f.health(FIBRE).is_none());
        assert!(
            Failover::new(&[], ProbePolicy::default(), true)
                .active()
                .is_none()
        );
    }

    #[test]
    fn a_geo_link_comes_back_up_under_the_satellite_policy() {
        // Goal: regression — with the terrestrial 500 ms recover threshold a GEO link
        // (600 ms RTT) that went down could never come back; its own policy fixes it.
        let geo = ProbeOutcome::ok(Duration::from_millis(620));
        for (policy, expect_up) in [
            (ProbePolicy::default(), false),
            (ProbePolicy::satellite(), true),
        ] {
            let mut f = Failover::new(&[LinkKind::Satellite], ProbePolicy::default(), true)
                .with_link_policy(LinkKind::Satellite, policy);
            f.mark_down(Time::ZERO, LinkKind::Satellite);
            for i in 1..=20 {
                f.observe(Time::from_secs(i), LinkKind::Satellite, &geo);
            }
            assert_eq!(f.active() == Some(LinkKind::Satellite), expect_up);
        }
    }

    #[test]
    fn class_policy_default_keeps_bulk_off_satellite() {
        // Goal: satellite refuses P2/P3, fibre and LTE allow P3; overrides apply per link.
        let c = ClassPolicy::default();
        assert!(c.allows(FIBRE, Priority::P3));
        assert!(c.allows(LTE, Priority::P3));
        assert!(c.allows(SAT, Priority::P0) && c.allows(SAT, Priority::P1));
        assert!(!c.allows(SAT, Priority::P2) && !c.allows(SAT, Priority::P3));
        assert_eq!(c.max_class(SAT), Priority::P1);
        let c = ClassPolicy::new(&[(LTE, Priority::P2), (SAT, Priority::P0)]);
        assert!(!c.allows(LTE, Priority::P3) && c.allows(LTE, Priority::P2));
        assert!(!c.allows(SAT, Priority::P1));
        assert_eq!(c.max_class(FIBRE), Priority::P3);
    }

    /// A policy with streaks of at least 2 (so that alternation can never complete one).
    fn policy_strategy() -> impl Strategy<Value = ProbePolicy> {
        (2u32..=8, 2u32..=10).prop_map(|(down_after, up_after)| ProbePolicy {
            down_after,
            up_after,
            ..ProbePolicy::default()
        })
    }

    /// Probes hovering around the thresholds: RTT in [recover, fail + 200 ms], loss 0..=40 %,
    /// sometimes unreachable.
    fn hovering_probe() -> impl Strategy<Value = ProbeOutcome> {
        (500u64..=1_200, 0u8..=40, 0u8..10).prop_map(|(rtt_ms, loss_pct, r)| ProbeOutcome {
            reachable: r != 0,
            rtt: Some(ms(rtt_ms)),
            loss_pct,
            bandwidth_bps: None,
        })
    }

    fn any_probe() -> impl Strategy<Value = ProbeOutcome> {
        prop_oneof![Just(good()), Just(bad()), Just(neutral()), hovering_probe()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn hovering_probes_never_flap(
            policy in policy_strategy(),
            initially_up in any::<bool>(),
            probes in prop::collection::vec(hovering_probe(), 1..300),
        ) {
            // Goal: flips of one link are at least min(down_after, up_after) probes apart.
            let gap_min = policy.down_after.min(policy.up_after) as usize;
            let mut h = LinkHealth::new(initially_up);
            let mut last_flip: Option<usize> = None;
            for (i, probe) in probes.iter().enumerate() {
                let was_up = h.is_up();
                if let Some(up) = h.observe(Time::from_secs(i as u64), probe, &policy) {
                    prop_assert_eq!(up, !was_up);
                    let need = if was_up { policy.down_after } else { policy.up_after } as usize;
                    let since = last_flip.map_or(i + 1, |j| i - j);
                    prop_assert!(since >= gap_min && since >= need, "flip at {} after {}", i, since);
                    last_flip = Some(i);
                }
            }
        }

        #[test]
        fn strict_alternation_never_flips(
            policy in policy_strategy(),
            initially_up in any::<bool>(),
            start_good in any::<bool>(),
            len in 1usize..200,
            good_rtt_ms in 0u64..=500,
            bad_rtt_ms in 1_001u64..=1_200,
        ) {
            // Goal: a strictly alternating good/bad sequence never completes a streak.
            let mut h = LinkHealth::new(initially_up);
            for i in 0..len {
                let probe = if (i % 2 == 0) == start_good {
                    ProbeOutcome::ok(ms(good_rtt_ms))
                } else {
                    ProbeOutcome::ok(ms(bad_rtt_ms))
                };
                prop_assert_eq!(h.observe(Time::from_secs(i as u64), &probe, &policy), None);
            }
            prop_assert_eq!(h.is_up(), initially_up);
        }

        #[test]
        fn active_is_always_the_most_preferred_up_link(
            policy in policy_strategy(),
            links in prop::sample::subsequence(LinkKind::ALL.to_vec(), 0..=3),
            steps in prop::collection::vec((0usize..3, any_probe(), 0u8..20), 0..300),
        ) {
            // Goal: with failback, after every input the active link is the best up link,
            // the events are well-formed and failovers() counts ActiveLink events.
            let mut f = Failover::new(&links, policy, true);
            let mut active_events = 0u64;
            for (i, (li, probe, force)) in steps.iter().enumerate() {
                let link = LinkKind::ALL[*li];
                let now = Time::from_secs(i as u64);
                let before = f.active();
                let events = if *force == 0 {
                    f.mark_down(now, link)
                } else {
                    f.observe(now, link, probe)
                };
                let best = f
                    .links()
                    .into_iter()
                    .find(|&l| f.health(l).is_some_and(LinkHealth::is_up));
                prop_assert_eq!(f.active(), best);
                prop_assert!(events.len() <= 2);
                if let Some(first) = events.first() {
                    let names_link = matches!(first, Event::LinkHealth { link: l, .. } if *l == link);
                    prop_assert!(names_link, "first event {:?}", first);
                }
                let changed = before != f.active();
                prop_assert_eq!(events.len() == 2, changed);
                if changed {
                    prop_assert_eq!(
                        &events[1],
                        &Event::ActiveLink { from: before, to: f.active() }
                    );
                    active_events += 1;
                }
                prop_assert_eq!(f.failovers(), active_events);
            }
        }
    }
}
