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
//! Map: [`LinkFaults`], [`SimLink`] (`is_up`, `transmit`, `probe`: the logic's `probe_timeout`).
//!
//! Not covered: whether a message in flight still arrives when its link went down
//! meanwhile (the world checks that on arrival), wire-level corruption, congestion
//! between links.

use super::rng::Stream;
use crate::scenario::LinkProfile;
use sovereign_logic::Time;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::LinkKind;
use sovereign_logic::tower::link::{ProbeOutcome, probe_timeout};
use std::time::Duration;

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
    /// jitter); a lost one, one on a link that is down, or one whose round trip exceeds
    /// the logic's `probe_timeout` (as the real tower waits) fails after that timeout.
    pub(super) fn probe(&self, now: Time, rng: &mut Stream) -> (Duration, ProbeOutcome) {
        let loss = self.loss();
        let timeout = probe_timeout(self.kind.unwrap_or(LinkKind::Fibre));
        if self.is_up(now) && !rng.chance(loss) {
            let jitter = self.profile.jitter;
            let j = Duration::from_micros(rng.below(jitter.as_micros() as u64 * 2 + 1));
            let rtt = self.latency() * 2 + j;
            if rtt > timeout {
                return (timeout, ProbeOutcome::failed());
            }
            let outcome = ProbeOutcome {
                reachable: true,
                rtt: Some(rtt),
                loss_pct: (loss * 100.0).round().min(100.0) as u8,
                bandwidth_bps: Some(self.bytes_per_s().saturating_mul(8)),
            };
            (rtt, outcome)
        } else {
            (timeout, ProbeOutcome::failed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A link of `bytes_per_s` with 10 ms latency, no jitter, loss `loss`.
    fn link(bytes_per_s: u64, loss: f64) -> SimLink {
        let profile = LinkProfile {
            name: "test".into(),
            latency: 10 * MS,
            jitter: Duration::ZERO,
            bytes_per_s,
            loss,
            handover_every: None,
            handover_outage: Duration::ZERO,
        };
        SimLink::new(Some(LinkKind::Fibre), profile)
    }

    fn rng() -> Stream {
        Stream::new(42, "net-test")
    }

    /// Send `n` small messages a second apart (never queued); how many copies arrive, and
    /// how many sends delivered two.
    fn send_apart(l: &mut SimLink, n: u64, rng: &mut Stream) -> (u64, u64) {
        let (mut copies, mut doubled) = (0, 0);
        for i in 0..n {
            let got = l.transmit(Time::from_secs(i), 100, true, rng);
            copies += got.len() as u64;
            doubled += (got.len() == 2) as u64;
        }
        (copies, doubled)
    }

    #[test]
    fn loss_drops_about_p_of_messages_and_a_loss_fault_compounds_it() {
        // Goal: loss p drops ~p of the messages (20,000 draws: ±2% is over 7 sigma), and a
        // `loss` fault drops independently on top: 1 - (1 - 0.2)(1 - 0.5) = 0.6.
        let mut r = rng();
        let n = 20_000;
        let (arrived, _) = send_apart(&mut link(1_000_000, 0.2), n, &mut r);
        let share = arrived as f64 / n as f64;
        assert!((0.78..=0.82).contains(&share), "delivered {share}");
        let mut l = link(1_000_000, 0.2);
        l.faults.extra_loss = 0.5;
        let (arrived, _) = send_apart(&mut l, n, &mut r);
        let share = arrived as f64 / n as f64;
        assert!((0.38..=0.42).contains(&share), "delivered {share}");
        assert_eq!(send_apart(&mut link(1_000_000, 0.0), 1000, &mut r).0, 1000);
        assert_eq!(send_apart(&mut link(1_000_000, 1.0), 1000, &mut r).0, 0);
    }

    #[test]
    fn duplication_delivers_a_second_copy_shortly_after_the_first() {
        // Goal: a `duplicate` fault of p doubles ~p of the deliveries, the copy within
        // 50 ms after the original; without it nothing is doubled.
        let mut r = rng();
        let mut l = link(1_000_000, 0.0);
        assert_eq!(send_apart(&mut l, 1000, &mut r), (1000, 0));
        l.faults.duplicate = 0.3;
        let (copies, doubled) = send_apart(&mut l, 20_000, &mut r);
        assert_eq!(copies, 20_000 + doubled);
        let share = doubled as f64 / 20_000.0;
        assert!((0.28..=0.32).contains(&share), "doubled {share}");
        l.faults.duplicate = 1.0;
        let got = l.transmit(Time::from_secs(30_000), 100, true, &mut r);
        assert_eq!(got.len(), 2);
        assert!(got[0] < got[1] && got[1] <= got[0] + 50 * MS, "{got:?}");
    }

    #[test]
    fn reordering_holds_messages_back_so_that_later_ones_overtake_them() {
        // Goal: without reordering a link is FIFO; a `reorder` fault of (p, extra) holds ~p
        // of the messages back by up to `extra`, and later messages overtake them.
        let mut r = rng();
        let send_every_ms = |l: &mut SimLink, r: &mut Stream| -> Vec<Time> {
            (0..2000)
                .map(|i| l.transmit(Time::from_millis(i), 100, true, r)[0])
                .collect()
        };
        let mut l = link(1_000_000, 0.0);
        let fifo = send_every_ms(&mut l, &mut r);
        assert!(
            fifo.windows(2).all(|w| w[0] < w[1]),
            "in order without the fault"
        );
        let mut l = link(1_000_000, 0.0);
        l.faults.reorder = Some((0.5, 100 * MS));
        let held = send_every_ms(&mut l, &mut r);
        let overtaken = held.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 100, "overtaken {overtaken}");
        let mut late = 0;
        for (base, at) in fifo.iter().zip(&held) {
            assert!(*base <= *at && *at <= *base + 100 * MS, "{base} {at}");
            late += (at > base) as u32;
        }
        assert!((900..=1100).contains(&late), "held back {late} of 2000");
    }

    #[test]
    fn a_burst_queues_behind_the_bandwidth_one_direction_at_a_time() {
        // Goal: n messages of b bytes sent at once over B bytes/s leave one after the
        // other: the k-th arrives k·b/B after the send (plus latency), the last no sooner
        // than n·b/B. The other direction has its own queue; a bandwidth cap slows it.
        let mut r = rng();
        let mut l = link(100_000, 0.0);
        let t0 = Time::from_secs(1);
        let arrivals: Vec<Time> = (0..50)
            .map(|_| l.transmit(t0, 1000, true, &mut r)[0])
            .collect();
        for (k, at) in arrivals.iter().enumerate() {
            assert_eq!(*at, t0 + 10 * MS * (k as u32 + 1) + 10 * MS, "message {k}");
        }
        assert!(arrivals[49] >= t0 + Duration::from_millis(50 * 1000 * 1000 / 100_000));
        let down = l.transmit(t0, 1000, false, &mut r);
        assert_eq!(
            down,
            vec![t0 + 20 * MS],
            "downstream does not wait for upstream"
        );
        let later = t0 + Duration::from_secs(2);
        assert_eq!(l.transmit(later, 1000, true, &mut r), vec![later + 20 * MS]);
        l.faults.cap_bytes_per_s = Some(10_000);
        let capped = t0 + Duration::from_secs(3);
        assert_eq!(
            l.transmit(capped, 1000, true, &mut r),
            vec![capped + 110 * MS]
        );
    }

    #[test]
    fn a_link_passes_nothing_while_down_flapping_or_in_a_handover() {
        // Goal: a down link (link-down, partition) delivers nothing and queues nothing; a
        // flapping one is down for the first half of every period; a LEO link drops
        // everything during each handover outage.
        let mut r = rng();
        let mut l = link(100_000, 0.0);
        let t = Time::from_secs(10);
        l.faults.down = 1;
        assert!(!l.is_up(t));
        for _ in 0..10 {
            assert!(l.transmit(t, 1000, true, &mut r).is_empty());
        }
        l.faults.down = 0;
        assert_eq!(l.transmit(t, 1000, true, &mut r), vec![t + 20 * MS]);
        l.faults.flapping = Some((Time::from_secs(100), Duration::from_secs(10)));
        for (s, up) in [
            (100, false),
            (104, false),
            (105, true),
            (109, true),
            (110, false),
        ] {
            assert_eq!(l.is_up(Time::from_secs(s)), up, "at {s} s");
        }
        assert!(
            l.transmit(Time::from_secs(101), 100, true, &mut r)
                .is_empty()
        );
        assert_eq!(l.transmit(Time::from_secs(106), 100, true, &mut r).len(), 1);
        let mut leo = link(100_000, 0.0);
        leo.profile.handover_every = Some(Duration::from_secs(60));
        leo.profile.handover_outage = 150 * MS;
        assert!(!leo.is_up(Time::from_millis(60_100)));
        assert!(leo.is_up(Time::from_millis(60_200)));
    }

    #[test]
    fn a_probe_measures_the_round_trip_or_fails_after_the_timeout() {
        // Goal: a probe of an up link reports twice its latency and its bandwidth in bits;
        // one of a down link, or one slower than the timeout, fails after the logic's
        // probe timeout (2 s on this fibre link, as the real tower waits).
        let mut r = rng();
        let mut l = link(100_000, 0.0);
        l.faults.extra_latency = 5 * MS;
        let (after, outcome) = l.probe(Time::ZERO, &mut r);
        assert_eq!(after, 30 * MS);
        assert!(outcome.reachable);
        assert_eq!(outcome.rtt, Some(30 * MS));
        assert_eq!(outcome.bandwidth_bps, Some(800_000));
        l.faults.extra_latency = 1500 * MS;
        let (after, outcome) = l.probe(Time::ZERO, &mut r);
        assert_eq!(after, 2 * 1000 * MS);
        assert!(!outcome.reachable, "a 3 s round trip is a failed probe");
        l.faults.extra_latency = 5 * MS;
        l.faults.down = 1;
        let (after, outcome) = l.probe(Time::ZERO, &mut r);
        assert_eq!(after, 2 * 1000 * MS);
        assert!(!outcome.reachable);
    }
}
