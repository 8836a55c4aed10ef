//! The event gateway: subscribers (local apps, dashboards) receive content-arrived,
//! link-changed and power-mode events through bounded queues.
//!
//! A slow subscriber never holds the tower back: each subscriber has its own queue of
//! `capacity` deliveries, and a full queue drops its *oldest* delivery (the newest state
//! matters most) and counts the drop. Deliveries carry a per-subscriber sequence number,
//! so a subscriber sees a gap exactly where it lost events.
//!
//! Map: [`Topic`] (and [`Topic::of`], which events are published), [`SubscriberId`],
//! [`Delivery`], [`EventGateway`] (`subscribe`, `publish`, `poll`, …), [`GatewayError`].
//!
//! Not covered: transport to subscribers (HTTP long-poll, SSE, NATS in the drivers),
//! persistence of undelivered events across a crash (they are lost; the seq gap shows it).

use crate::Time;
use crate::io::Event;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Bound on one subscriber's queue capacity, so a subscriber cannot ask the tower to hold
/// an unbounded backlog.
pub const CAPACITY_MAX: usize = 65_536;

/// What a subscriber can listen to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    /// An item version became servable ([`Event::ContentServable`]).
    ContentArrived,
    /// A link's health or the active uplink changed ([`Event::LinkHealth`],
    /// [`Event::ActiveLink`]).
    LinkChanged,
    /// The power mode changed ([`Event::PowerMode`]).
    PowerMode,
}

impl Topic {
    /// The topic an event is published under; `None` for internal events (chunks,
    /// operations, breaker, tasks, throttle), which the gateway does not publish.
    pub fn of(event: &Event) -> Option<Topic> {
        match event {
            Event::ContentServable { .. } => Some(Topic::ContentArrived),
            Event::LinkHealth { .. } | Event::ActiveLink { .. } => Some(Topic::LinkChanged),
            Event::PowerMode { .. } => Some(Topic::PowerMode),
            Event::ContentWithdrawn { .. }
            | Event::ChunkVerified { .. }
            | Event::ChunkRejected { .. }
            | Event::ChunkQuarantined { .. }
            | Event::ChunkRequested { .. }
            | Event::OpAcked { .. }
            | Event::OpRefused { .. }
            | Event::OpConfirmed { .. }
            | Event::OpApplied { .. }
            | Event::BreakerOpened
            | Event::BreakerClosed
            | Event::TaskRestarted { .. }
            | Event::TaskParked { .. }
            | Event::Recovered { .. }
            | Event::Throttle { .. }
            | Event::OriginAdopted { .. }
            | Event::OriginMismatch { .. }
            | Event::OriginRestored { .. }
            | Event::RehomeStarted { .. } => None,
        }
    }
}

/// A subscriber's handle. Ids are never reused, so a stale id cannot read another's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

/// One event as delivered to one subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Per-subscriber sequence number, from 0, +1 per event published to this subscriber;
    /// a gap between polled deliveries means the queue dropped events.
    pub seq: u64,
    /// When the event was published.
    pub at: Time,
    /// The event.
    pub event: Event,
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GatewayError {
    /// The gateway already has `subscribers_max` subscribers.
    #[error("the event gateway is full ({max} subscribers)")]
    SubscribersFull {
        /// the bound
        max: usize,
    },
    /// The requested queue capacity is outside 1..=[`CAPACITY_MAX`].
    #[error("queue capacity must be between 1 and {max}, got {capacity}")]
    Capacity {
        /// what was asked
        capacity: usize,
        /// the bound
        max: usize,
    },
}

/// One subscriber's filter and queue.
#[derive(Clone, Debug)]
struct Subscriber {
    topics: BTreeSet<Topic>,
    capacity: usize,
    queue: VecDeque<Delivery>,
    dropped: u64,
    /// Seq of the next delivery (= events published to this subscriber so far).
    seq_next: u64,
}

/// Fan-out of published events to bounded per-subscriber queues.
#[derive(Clone, Debug)]
pub struct EventGateway {
    subscribers_max: usize,
    subscribers: BTreeMap<SubscriberId, Subscriber>,
    id_next: u64,
}

impl EventGateway {
    /// `subscribers_max`: bound on subscribers.
    pub fn new(subscribers_max: usize) -> Self {
        EventGateway {
            subscribers_max,
            subscribers: BTreeMap::new(),
            id_next: 0,
        }
    }

    /// Err if subscribers_max reached (thiserror error). `capacity` >= 1 is the queue bound
    /// (at most [`CAPACITY_MAX`], else `Err(GatewayError::Capacity)`).
    pub fn subscribe(
        &mut self,
        topics: &[Topic],
        capacity: usize,
    ) -> Result<SubscriberId, GatewayError> {
        if !(1..=CAPACITY_MAX).contains(&capacity) {
            return Err(GatewayError::Capacity {
                capacity,
                max: CAPACITY_MAX,
            });
        }
        if self.subscribers.len() >= self.subscribers_max {
            return Err(GatewayError::SubscribersFull {
                max: self.subscribers_max,
            });
        }
        let id = SubscriberId(self.id_next);
        self.id_next += 1;
        self.subscribers.insert(
            id,
            Subscriber {
                topics: topics.iter().copied().collect(),
                capacity,
                queue: VecDeque::new(),
                dropped: 0,
                seq_next: 0,
            },
        );
        debug_assert!(self.subscribers.len() <= self.subscribers_max);
        Ok(id)
    }

    /// Remove a subscriber and its queue; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: SubscriberId) -> bool {
        self.subscribers.remove(&id).is_some()
    }

    /// Number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Deliver to every subscriber of the event's topic; a full queue drops its OLDEST
    /// delivery and counts it.
    pub fn publish(&mut self, now: Time, event: &Event) {
        let Some(topic) = Topic::of(event) else {
            return;
        };
        for sub in self.subscribers.values_mut() {
            if !sub.topics.contains(&topic) {
                continue;
            }
            if sub.queue.len() >= sub.capacity {
                sub.queue.pop_front();
                sub.dropped += 1;
            }
            sub.queue.push_back(Delivery {
                seq: sub.seq_next,
                at: now,
                event: event.clone(),
            });
            sub.seq_next += 1;
            debug_assert!(sub.queue.len() <= sub.capacity);
        }
    }

    /// Take up to `max` deliveries, oldest first (seq strictly increasing, gaps mean
    /// drops). Empty for an unknown subscriber.
    pub fn poll(&mut self, id: SubscriberId, max: usize) -> Vec<Delivery> {
        let Some(sub) = self.subscribers.get_mut(&id) else {
            return Vec::new();
        };
        let n = max.min(sub.queue.len());
        sub.queue.drain(..n).collect()
    }

    /// Deliveries dropped from `id`'s full queue so far (0 if unknown).
    pub fn dropped(&self, id: SubscriberId) -> u64 {
        self.subscribers.get(&id).map_or(0, |s| s.dropped)
    }

    /// Deliveries waiting in `id`'s queue (0 if unknown).
    pub fn queued(&self, id: SubscriberId) -> usize {
        self.subscribers.get(&id).map_or(0, |s| s.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChunkHash, ItemId, Priority};
    use crate::io::PowerMode;
    use crate::protocol::LinkKind;
    use proptest::prelude::*;

    fn content(version: u64) -> Event {
        Event::ContentServable {
            item: ItemId::new("alert"),
            version,
            priority: Priority::P0,
        }
    }

    fn link_down() -> Event {
        Event::LinkHealth {
            link: LinkKind::Fibre,
            up: false,
        }
    }

    fn power() -> Event {
        Event::PowerMode {
            from: PowerMode::Normal,
            to: PowerMode::ShedP3,
        }
    }

    #[test]
    fn topics_map_events_and_filter_subscribers() {
        // Goal: each subscriber receives only its topics; internal events go nowhere.
        assert_eq!(Topic::of(&content(1)), Some(Topic::ContentArrived));
        let active = Event::ActiveLink {
            from: Some(LinkKind::Fibre),
            to: Some(LinkKind::Lte),
        };
        assert_eq!(Topic::of(&active), Some(Topic::LinkChanged));
        assert_eq!(Topic::of(&power()), Some(Topic::PowerMode));
        assert_eq!(Topic::of(&Event::BreakerOpened), None);

        let mut g = EventGateway::new(4);
        let links = g.subscribe(&[Topic::LinkChanged], 8).unwrap();
        let both = g
            .subscribe(&[Topic::ContentArrived, Topic::PowerMode], 8)
            .unwrap();
        let now = Time::from_secs(1);
        g.publish(now, &content(1));
        g.publish(now, &link_down());
        g.publish(now, &power());
        g.publish(now, &active);
        g.publish(
            now,
            &Event::ChunkQuarantined {
                hash: ChunkHash::of(b"x"),
            },
        );
        let got: Vec<_> = g.poll(links, 10).into_iter().map(|d| d.event).collect();
        assert_eq!(got, vec![link_down(), active]);
        let got: Vec<_> = g.poll(both, 10).into_iter().map(|d| d.event).collect();
        assert_eq!(got, vec![content(1), power()]);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        // Goal: a queue of capacity 3 after 5 events holds the newest 3, with 2 dropped
        // and the seq gap showing where.
        let mut g = EventGateway::new(1);
        let s = g.subscribe(&[Topic::ContentArrived], 3).unwrap();
        for v in 0..5 {
            g.publish(Time::from_secs(v), &content(v));
        }
        assert_eq!(g.queued(s), 3);
        assert_eq!(g.dropped(s), 2);
        let got = g.poll(s, 10);
        let seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert_eq!(got[0].event, content(2));
        assert_eq!(got[0].at, Time::from_secs(2));
    }

    #[test]
    fn poll_takes_oldest_first_up_to_max() {
        // Goal: poll returns at most `max`, oldest first, and the rest stays queued.
        let mut g = EventGateway::new(1);
        let s = g.subscribe(&[Topic::ContentArrived], 10).unwrap();
        for v in 0..5 {
            g.publish(Time::ZERO, &content(v));
        }
        let first: Vec<u64> = g.poll(s, 2).iter().map(|d| d.seq).collect();
        assert_eq!(first, vec![0, 1]);
        assert_eq!(g.queued(s), 3);
        let rest: Vec<u64> = g.poll(s, 100).iter().map(|d| d.seq).collect();
        assert_eq!(rest, vec![2, 3, 4]);
        assert!(g.poll(s, 100).is_empty());
        assert_eq!(g.dropped(s), 0);
    }

    #[test]
    fn unsubscribe_stops_delivery_and_frees_a_slot() {
        // Goal: an unsubscribed id gets nothing, and its slot can be reused by a new id.
        let mut g = EventGateway::new(1);
        let s = g.subscribe(&[Topic::PowerMode], 4).unwrap();
        g.publish(Time::ZERO, &power());
        assert!(g.unsubscribe(s));
        assert!(!g.unsubscribe(s));
        g.publish(Time::ZERO, &power());
        assert!(g.poll(s, 10).is_empty());
        assert_eq!(g.queued(s), 0);
        let t = g.subscribe(&[Topic::PowerMode], 4).unwrap();
        assert_ne!(s, t);
    }

    #[test]
    fn subscriber_and_capacity_bounds_are_errors() {
        // Goal: past subscribers_max, and with a capacity outside 1..=CAPACITY_MAX,
        // subscribe returns an error value.
        let mut g = EventGateway::new(2);
        g.subscribe(&[Topic::PowerMode], 1).unwrap();
        g.subscribe(&[Topic::PowerMode], 1).unwrap();
        assert_eq!(
            g.subscribe(&[Topic::PowerMode], 1),
            Err(GatewayError::SubscribersFull { max: 2 })
        );
        assert_eq!(g.subscribers(), 2);
        let mut g = EventGateway::new(2);
        assert!(matches!(
            g.subscribe(&[Topic::PowerMode], 0),
            Err(GatewayError::Capacity { capacity: 0, .. })
        ));
        assert!(g.subscribe(&[Topic::PowerMode], CAPACITY_MAX + 1).is_err());
    }

    /// One step of a random gateway workload.
    #[derive(Clone, Debug)]
    enum Step {
        Publish(u8),
        Poll(usize, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..4).prop_map(Step::Publish),
            (0usize..3, 0usize..6).prop_map(|(s, m)| Step::Poll(s, m)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Goal: queues never exceed capacity, seqs polled are strictly increasing, and for
        /// each subscriber delivered + dropped + queued == events published to it.
        #[test]
        fn accounting_is_exact(
            caps in prop::collection::vec(1usize..5, 3),
            steps in prop::collection::vec(step(), 1..200),
        ) {
            let mut g = EventGateway::new(3);
            let topic_sets: [&[Topic]; 3] = [
                &[Topic::ContentArrived],
                &[Topic::LinkChanged, Topic::PowerMode],
                &[Topic::ContentArrived, Topic::LinkChanged, Topic::PowerMode],
            ];
            let ids: Vec<SubscriberId> = (0..3).map(|i| g.subscribe(topic_sets[i], caps[i]).unwrap()).collect();
            let mut published = [0u64; 3];
            let mut delivered = [0u64; 3];
            let mut last_seq: [Option<u64>; 3] = [None; 3];
            for (t, st) in steps.into_iter().enumerate() {
                match st {
                    Step::Publish(k) => {
                        let event = match k {
                            0 => content(t as u64),
                            1 => link_down(),
                            2 => power(),
                            _ => Event::BreakerClosed,
                        };
                        for i in 0..3 {
                            if Topic::of(&event).is_some_and(|tp| topic_sets[i].contains(&tp)) {
                                published[i] += 1;
                            }
                        }
                        g.publish(Time::from_micros(t as u64), &event);
                    }
                    Step::Poll(i, max) => {
                        let got = g.poll(ids[i], max);
                        prop_assert!(got.len() <= max);
                        for d in got {
                            prop_assert!(last_seq[i].is_none_or(|s| d.seq > s));
                            last_seq[i] = Some(d.seq);
                            delivered[i] += 1;
                        }
                    }
                }
                for i in 0..3 {
                    prop_assert!(g.queued(ids[i]) <= caps[i]);
                    prop_assert_eq!(
                        delivered[i] + g.dropped(ids[i]) + g.queued(ids[i]) as u64,
                        published[i]
                    );
                }
            }
        }
    }
}
