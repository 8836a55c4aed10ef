//! The logic's events as a live stream: `GET /admin/events` (viewer role) answers
//! `text/event-stream`, one server-sent event per event the node's logic emits, its data
//! an [`EventRecordDto`] (sequence number, wall time, source, the event in the
//! vocabulary the simulator observes). The lab reads it to feed real runs into the same
//! oracles and KPIs.
//!
//! Bounds: at most [`SUBSCRIBERS_MAX`] readers at once (another gets 503); each reader
//! may fall [`BACKLOG`] events behind, after which it gets an `event: lagged` message
//! with the count it missed (and the `seq` gap shows where) instead of holding memory.
//! Nothing is serialised while nobody listens.
//!
//! Not covered: history (a reader sees events from when it connects), events of other
//! servers.

use sovereign_logic::io::Event;
use sovereign_wire::event::{EventDto, EventRecordDto};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

/// Most readers of the stream at once.
pub const SUBSCRIBERS_MAX: usize = 8;
/// Events a reader may fall behind before it skips ahead (and is told how many it missed).
pub const BACKLOG: usize = 4096;

/// One server's event stream.
#[derive(Clone)]
pub struct EventStream {
    source: Arc<str>,
    tx: broadcast::Sender<Arc<str>>,
    seq: Arc<AtomicU64>,
    readers: Arc<Semaphore>,
}

/// A reader's place in the stream; holding it holds one of the [`SUBSCRIBERS_MAX`] slots.
pub struct Subscription {
    /// The events, serialised.
    pub rx: broadcast::Receiver<Arc<str>>,
    _slot: OwnedSemaphorePermit,
}

impl EventStream {
    /// The stream of `source` (`origin`, or a tower's id).
    pub fn new(source: &str) -> EventStream {
        EventStream {
            source: source.into(),
            tx: broadcast::channel(BACKLOG).0,
            seq: Arc::new(AtomicU64::new(0)),
            readers: Arc::new(Semaphore::new(SUBSCRIBERS_MAX)),
        }
    }

    /// Hand `event` to every reader (numbered even when nobody reads).
    pub fn publish(&self, event: &Event) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tx.receiver_count() == 0 {
            return;
        }
        let record = EventRecordDto {
            seq,
            at_unix_us: unix_us(),
            source: self.source.to_string(),
            event: EventDto::from(event),
        };
        if let Ok(text) = serde_json::to_string(&record) {
            // No receiver left between the check and here is not an error.
            let _ = self.tx.send(text.into());
        }
    }

    /// A new reader, or `None` when [`SUBSCRIBERS_MAX`] are reading.
    pub fn subscribe(&self) -> Option<Subscription> {
        let slot = self.readers.clone().try_acquire_owned().ok()?;
        Some(Subscription {
            rx: self.tx.subscribe(),
            _slot: slot,
        })
    }

    /// Events published so far.
    pub fn published(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_get_every_event_in_order_and_are_bounded() {
        // Goal: a reader sees each event once, numbered in order, as the wire type; the
        // ninth reader is refused; a dropped reader frees its slot.
        let s = EventStream::new("tower-1");
        s.publish(&Event::BreakerOpened); // nobody listens: numbered, not kept
        let mut subs: Vec<Subscription> = (0..SUBSCRIBERS_MAX)
            .map(|_| s.subscribe().expect("a slot"))
            .collect();
        assert!(s.subscribe().is_none(), "a ninth reader");
        s.publish(&Event::Throttle { window: 3 });
        s.publish(&Event::BreakerClosed);
        for sub in &mut subs {
            let a: EventRecordDto =
                serde_json::from_str(&sub.rx.recv().await.expect("first")).expect("json");
            let b: EventRecordDto =
                serde_json::from_str(&sub.rx.recv().await.expect("second")).expect("json");
            assert_eq!((a.seq, b.seq), (2, 3));
            assert_eq!(a.source, "tower-1");
            assert_eq!(a.event.to_event(), Ok(Event::Throttle { window: 3 }));
            assert_eq!(b.event.to_event(), Ok(Event::BreakerClosed));
        }
        subs.pop();
        assert!(s.subscribe().is_some(), "a freed slot");
        assert_eq!(s.published(), 3);
    }

    #[tokio::test]
    async fn a_slow_reader_skips_ahead_and_learns_how_many_it_missed() {
        // Goal: memory per reader is bounded; the reader is told what it lost.
        let s = EventStream::new("origin");
        let mut sub = s.subscribe().expect("a slot");
        for w in 0..(BACKLOG as u32 + 10) {
            s.publish(&Event::Throttle { window: w });
        }
        match sub.rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        let next: EventRecordDto =
            serde_json::from_str(&sub.rx.recv().await.expect("next")).expect("json");
        assert_eq!(next.seq, 11);
    }
}
