//! The simulated network: one [`SimLink`] per uplink and one for each tower's device
//! Wi-Fi.
//!
//! A link has a profile (latency + uniform jitter, bandwidth per direction, loss, LEO
//! handovers) and fault overlays ([`LinkFaults`]: down, partition, extra latency and
//! loss, a bandwidth cap, flapping, duplication, reordering) that the world recomputes
//! from the active faults. Each direction serialises its messages: one starts when the
//! previous one has left, so a burst queues behind the bandwidth. Loss, jitter,
//! reordering and duplication are drawn from the `net` stream.
//!
//! Map: [`LinkFaults`], [`SimLink`] (`is_up`, `transmit`, `probe`), [`PROBE_TIMEOUT`].
//!
//! Not covered: whether a message in flight still arrives when its link went down
//! meanwhile (the world checks that on arrival), wire-level corruption, congestion
//! between links.

use super::rng::Stream;
use crate::scenario::LinkProfile;
use sovereign_logic::Time;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::LinkKind;
use sovereign_logic::tower::link::ProbeOutcome;
use std::time::Duration;

/// How long a probe waits before it reports a failure.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Fault overlays on a link, recomputed from the active faults.
#[derive(Clone, Debug, Default)]
pub(super) struct LinkFaults {
    /// Active faults that take it down (link down, partition): down while any is.
    pub(super) down: u32,
    pub(super) extra_latency: Duration,
    /// Loss on top of the profile's (the two compose as independent drops).
    pub(super) extra_loss: f64,
    pub(super) cap_bytes_per_s: Option<u64>,
    /// Since when, and the period: down for the first half of every period.
    pub(super) flapping: Option<(Time, Duration)>,
    /// Probability that a delivered message arrives twice.
    pub(super) duplicate: f64,
    /// Probability that a message is held back, and by up to how long.
    pub(super) reorder: Option<(f64, Duration)>,
    /// Probability that a chunk of a served read arrives with a flipped bit (Wi-Fi only:
    /// the world applies it where devices receive bytes, `World::deliver_garbled`).
    pub(super) corrupt: f64,
}

/// One simulated link (an uplink, or a tower's device Wi-Fi when `kind` is `None`).
pub(super) struct SimLink {
    pub(super) kind: Option<LinkKind>,
    pub(super) profile: LinkProfile,
    pub(super) faults: LinkFaults,
    /// When each direction is free again (the last message queued has left).
    busy_up: Time,
    busy_down: Time,
}

impl SimLink {
    pub(super) fn new(kind: Option<LinkKind>, profile: LinkProfile) -> SimLink {
        SimLink {
            kind,
            profile,
            faults: LinkFaults::default(),
            busy_up: Time::ZERO,
            busy_down: Time::ZERO,
        }
    }

    /// Is the link passing traffic at `now`?
    pub(super) fn is_up(&self, now: Time) -> bool {
        if self.faults.down > 0 {
            return false;
        }
        if let Some((since, period)) = self.faults.flapping {
            let p = period.as_micros().max(2) as u64;
            let phase = now.as_micros().saturating_sub(since.as_micros()) % p;
            if phase < p / 2 {
                return false;
            }
        }
        if let Some(every) = self.profile.handover_every {
            let e = every.as_micros().max(1) as u64;
            if now.as_micros() % e < self.profile.handover_outage.as_micros() as u64 {
                return false;
            }
        }
        true
    }

    pub(super) fn bytes_per_s(&self) -> u64 {
        let bw = self.profile.bytes_per_s.max(1);
        self.faults.cap_bytes_per_s.map_or(bw, |c| c.clamp(1, bw))
    }

    pub(super) fn loss(&self) -> f64 {
        1.0 - (1.0 - self.profile.loss) * (1.0 - self.faults.extra_loss)
    }

    pub(super) fn latency(&self) -> Duration {
        self.profile.latency + self.faults.extra_latency
    }

    /// Send `bytes` one way; the arrival times of the copies that make it (0, 1 or 2).
    /// A lost message still took its time on the wire; one sent while the link is down
    /// takes none.
    pub(super) fn transmit(
        &mut self,
        now: Time,
        bytes: u64,
        upstream: bool,
        rng: &mut Stream,
    ) -> Vec<Time> {
        if !self.is_up(now) {
            return Vec::new();
        }
        let bw = self.bytes_per_s();
        let busy = if upstream {
            &mut self.busy_up
        } else {
            &mut self.busy_down
        };
        let start = (*busy).max(now);
        let end = start + Duration::from_micros(bytes.saturating_mul(1_000_000) / bw);
        *busy = end;
        if rng.chance(self.loss()) {
            return Vec::new();
        }
        let jitter_us = self.profile.jitter.as_micros() as u64;
        let mut at = end + self.latency() + Duration::from_micros(rng.below(jitter_us + 1));
        if let Some((p, extra)) = self.faults.reorder
            && rng.chance(p)
        {
            at += Duration::from_micros(rng.below(extra.as_micros() as u64 + 1));
        }
        let mut out = vec![at];
        if self.faults.duplicate > 0.0 && rng.chance(self.faults.duplicate) {
            out.push(at + Duration::from_micros(rng.below(50_000) + 1));
        }
        out
    }

    /// A tower's probe of the link at `now`: after how long it reports, and what. A probe
    /// that gets through measures a round trip (twice the latency plus up to twice the
    /// jitter); a lost one, or one on a link that is down, fails after
    /// [`PROBE_TIMEOUT`].
    pub(super) fn probe(&self, now: Time, rng: &mut Stream) -> (Duration, ProbeOutcome) {
        let loss = self.loss();
        if self.is_up(now) && !rng.chance(loss) {
            let jitter = self.profile.jitter;
            let j = Duration::from_micros(rng.below(jitter.as_micros() as u64 * 2 + 1));
            let rtt = self.latency() * 2 + j;
            let outcome = ProbeOutcome {
                reachable: true,
                rtt: Some(rtt),
                loss_pct: (loss * 100.0).round().min(100.0) as u8,
                bandwidth_bps: Some(self.bytes_per_s().saturating_mul(8)),
            };
            (rtt, outcome)
        } else {
            (PROBE_TIMEOUT, ProbeOutcome::failed())
        }
    }
}
