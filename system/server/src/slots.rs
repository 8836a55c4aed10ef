//! Slots for a tower's chunk fetches on one uplink, handed out by class.
//!
//! A tower keeps at most a fixed number of fetches under way with its origin per uplink
//! (each holds a connection; see `tower_node::ORIGIN_EXCHANGES_MAX`); the logic's fetch
//! window can be larger, so fetches wait for a slot. A free slot goes to the waiting fetch
//! of the most urgent class — P0 first — and in arrival order within a class. A FIFO queue
//! (a plain semaphore) made a P0 fetch wait behind every lower-class fetch the logic had
//! issued before the P0 work arrived: up to the whole queue's bytes moving ahead of it on
//! the link (DESIGN.md's priority invariant: no lower-class byte moves while P0 work waits
//! on the same link).
//!
//! A waiter that gives up (its acquire future is dropped, e.g. at its timeout) loses its
//! place; a slot handed to it after that goes on to the next waiter, never lost.
//!
//! Map: [`FetchSlots`] ([`FetchSlots::new`], [`FetchSlots::acquire`], [`FetchSlots::free`]),
//! [`Slot`] (held while the fetch runs; dropping it frees the slot).
//!
//! Not covered: slots across uplinks (one set per uplink), preempting a fetch already
//! under way.

use sovereign_logic::content::Priority;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The slots of one uplink.
#[derive(Debug)]
pub struct FetchSlots {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    free: usize,
    /// Arrivals so far (orders waiters of one class).
    arrivals: u64,
    /// (class, arrival) → where to hand a slot.
    waiting: BTreeMap<(Priority, u64), oneshot::Sender<Slot>>,
}

/// A slot, held while a fetch runs; dropping it hands it to the next waiter.
#[derive(Debug)]
pub struct Slot {
    /// `None` only for a slot that a waiter who gave up refused (it goes on, unreleased).
    slots: Option<Arc<FetchSlots>>,
}

impl FetchSlots {
    /// `n` slots, all free.
    pub fn new(n: usize) -> Arc<FetchSlots> {
        Arc::new(FetchSlots {
            inner: Mutex::new(Inner {
                free: n,
                arrivals: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a fetch of `class`: at once if one is free, else once every waiter of
    /// a more urgent class, and every earlier waiter of the same class, has had one.
    pub async fn acquire(self: &Arc<Self>, class: Priority) -> Slot {
        let rx = {
            let mut inner = self.lock();
            if inner.free > 0 {
                inner.free -= 1;
                return Slot {
                    slots: Some(self.clone()),
                };
            }
            inner.arrivals += 1;
            let (tx, rx) = oneshot::channel();
            let at = inner.arrivals;
            inner.waiting.insert((class, at), tx);
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The sender is only dropped after a send, or with the slots themselves, which
            // this future's `self` keeps alive.
            Err(_) => unreachable!("a waiter's sender outlives it"),
        }
    }

    /// Free slots now (for tests and metrics).
    pub fn free(&self) -> usize {
        self.lock().free
    }

    /// Hand a slot freed by `Slot::drop` to the most urgent waiter still waiting, or keep
    /// it free.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut inner = self.lock();
                match inner.waiting.pop_first() {
                    Some((_, tx)) => tx,
                    None => {
                        inner.free += 1;
                        return;
                    }
                }
            };
            // Outside the lock: a slot sent to a waiter that is dropped before it reads it
            // is dropped with the channel, which releases it again.
            match next.send(Slot {
                slots: Some(self.clone()),
            }) {
                Ok(()) => return,
                // That waiter gave up: on to the next (the refused slot must not release
                // itself a second time).
                Err(mut refused) => drop(refused.slots.take()),
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `fut` is ready now, polled once.
    fn ready<F: std::future::Future + Unpin>(fut: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(fut).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_most_urgent_class_then_in_arrival_order() {
        // Goal: with every slot taken, waiters are served P0 first, then by arrival
        // within a class — not in arrival order across classes.
        let slots = FetchSlots::new(1);
        let first = slots.acquire(Priority::P3).await;
        let mut p2_a = Box::pin(slots.acquire(Priority::P2));
        let mut p3 = Box::pin(slots.acquire(Priority::P3));
        let mut p2_b = Box::pin(slots.acquire(Priority::P2));
        let mut p0 = Box::pin(slots.acquire(Priority::P0));
        for f in [&mut p2_a, &mut p3, &mut p2_b, &mut p0] {
            assert!(ready(f).is_none(), "no slot is free");
        }
        drop(first);
        let s = ready(&mut p0).expect("P0 first, though it came last");
        assert!(ready(&mut p2_a).is_none());
        drop(s);
        let s = ready(&mut p2_a).expect("then the earlier P2");
        assert!(ready(&mut p2_b).is_none());
        drop(s);
        let s = ready(&mut p2_b).expect("then the later P2");
        drop(s);
        let s = ready(&mut p3).expect("P3 last");
        drop(s);
        assert_eq!(slots.free(), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_slot() {
        // Goal: a waiter dropped before its turn, or after a slot was sent to it but
        // before it took it, does not leak the slot: the next waiter gets it, and with
        // nobody waiting it is free again.
        let slots = FetchSlots::new(1);
        let held = slots.acquire(Priority::P1).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(5), slots.acquire(Priority::P0));
        assert!(gave_up.await.is_err(), "timed out waiting");
        let mut late = Box::pin(slots.acquire(Priority::P0));
        let mut next = Box::pin(slots.acquire(Priority::P1));
        assert!(ready(&mut late).is_none() && ready(&mut next).is_none());
        drop(held); // skips the waiter that timed out; sent to `late`
        drop(late); // which never reads it: the slot goes on to `next`
        let s = ready(&mut next).expect("the slot went on");
        assert_eq!(slots.free(), 0);
        drop(s);
        assert_eq!(slots.free(), 1);
        // Several slots: all come back.
        let slots = FetchSlots::new(3);
        let a = slots.acquire(Priority::P2).await;
        let b = slots.acquire(Priority::P0).await;
        let c = slots.acquire(Priority::P1).await;
        assert_eq!(slots.free(), 0);
        drop((a, b, c));
        assert_eq!(slots.free(), 3);
    }
}
