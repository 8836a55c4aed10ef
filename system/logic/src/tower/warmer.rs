//! The cache warmer: tracks device demand per item and ranks items so the most requested
//! are fetched first when bandwidth allows.
//!
//! Each device request adds [`REQUEST_SCORE`] (1.0 in 16.16 fixed point) to the item's
//! score; scores decay by half every `half_life`, by integer halving per whole half-life
//! elapsed plus linear interpolation within the last one. Integer arithmetic only, so the
//! same requests at the same times give the same ranking on every run and platform.
//!
//! Map: [`Warmer`] (`record_request`, `score`, `rank`, `top`), [`REQUEST_SCORE`].
//!
//! Not covered: fetching (the tower queues what `top` names into the scheduler at its own
//! priority), whether an item is already cached (the caller's `want`), popularity across
//! towers.

use crate::Time;
use crate::content::ItemId;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Score one request adds: 1.0 in 16.16 fixed point, so decay keeps fractional precision.
pub const REQUEST_SCORE: u64 = 1 << 16;

/// An item's score as of `at` (decay is applied lazily, on read and on update).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Demand {
    score: u64,
    at: Time,
}

/// Demand per item with exponential (half-life) decay, bounded to `items_max` items.
#[derive(Clone, Debug)]
pub struct Warmer {
    half_life_us: u64,
    items_max: usize,
    items: BTreeMap<ItemId, Demand>,
}

impl Warmer {
    /// `half_life`: demand decays by half every half_life (integer arithmetic only,
    /// deterministic). `items_max`: bound on tracked items (evict the lowest score).
    /// Panics on a zero half-life (below one microsecond) or `items_max == 0`.
    pub fn new(half_life: Duration, items_max: usize) -> Self {
        let half_life_us = u64::try_from(half_life.as_micros()).unwrap_or(u64::MAX);
        assert!(half_life_us >= 1, "half_life must be at least 1 µs");
        assert!(items_max >= 1, "items_max must be >= 1");
        Warmer {
            half_life_us,
            items_max,
            items: BTreeMap::new(),
        }
    }

    /// Number of tracked items (<= `items_max`).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No item tracked?
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `score` decayed over `elapsed_us`: halved once per whole half-life, then moved
    /// linearly toward the next halving for the remainder. Never increases with time.
    fn decay(&self, score: u64, elapsed_us: u64) -> u64 {
        let halvings = elapsed_us / self.half_life_us;
        if halvings >= 64 {
            return 0;
        }
        let s = score >> halvings;
        let rem_us = elapsed_us % self.half_life_us;
        let drop = u128::from(s - (s >> 1)) * u128::from(rem_us) / u128::from(self.half_life_us);
        let out = s - u64::try_from(drop).expect("drop <= s");
        debug_assert!(out <= score && out >= s >> 1);
        out
    }

    /// The score of `demand` at `now` (no decay if `now` is before its last update: a
    /// clock stepping back must not raise or panic).
    fn score_of(&self, demand: &Demand, now: Time) -> u64 {
        self.decay(
            demand.score,
            now.saturating_since(demand.at).as_micros() as u64,
        )
    }

    /// Count one device request for `item` at `now`. If `items_max` items are tracked and
    /// `item` is new, the lowest-scoring item is evicted, unless every tracked item
    /// scores above a single fresh request (then this request is not tracked).
    pub fn record_request(&mut self, now: Time, item: &ItemId) {
        if let Some(d) = self.items.get(item).copied() {
            let score = self.score_of(&d, now).saturating_add(REQUEST_SCORE);
            self.items.insert(
                item.clone(),
                Demand {
                    score,
                    at: now.max(d.at),
                },
            );
            return;
        }
        if self.items.len() >= self.items_max {
            // Lowest score first; among equals, the largest id goes (deterministic).
            let victim = self
                .items
                .iter()
                .map(|(id, d)| (self.score_of(d, now), Reverse(id)))
                .min()
                .map(|(score, Reverse(id))| (score, id.clone()));
            match victim {
                Some((score, id)) if score <= REQUEST_SCORE => {
                    self.items.remove(&id);
                }
                _ => return,
            }
        }
        self.items.insert(
            item.clone(),
            Demand {
                score: REQUEST_SCORE,
                at: now,
            },
        );
        debug_assert!(self.items.len() <= self.items_max);
    }

    /// The demand for `item` at `now` (16.16 fixed point; 0 if untracked).
    pub fn score(&self, now: Time, item: &ItemId) -> u64 {
        self.items.get(item).map_or(0, |d| self.score_of(d, now))
    }

    /// The candidates ordered most-demanded first (ties broken by ItemId order,
    /// deterministic). Duplicates are listed once; untracked items score 0.
    pub fn rank<'a>(
        &self,
        now: Time,
        candidates: impl IntoIterator<Item = &'a ItemId>,
    ) -> Vec<ItemId> {
        let distinct: BTreeSet<&ItemId> = candidates.into_iter().collect();
        let mut scored: Vec<(Reverse<u64>, &ItemId)> = distinct
            .into_iter()
            .map(|id| (Reverse(self.score(now, id)), id))
            .collect();
        scored.sort();
        scored.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Up to n most-demanded tracked items for which `want(item)` is true.
    pub fn top(&self, now: Time, n: usize, want: impl Fn(&ItemId) -> bool) -> Vec<ItemId> {
        let mut scored: Vec<(Reverse<u64>, &ItemId)> = self
            .items
            .iter()
            .filter(|(id, _)| want(id))
            .map(|(id, d)| (Reverse(self.score_of(d, now)), id))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(n)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn id(s: &str) -> ItemId {
        ItemId::new(s)
    }

    fn at_h(hours: u64) -> Time {
        Time::from_secs(hours * 3600)
    }

    #[test]
    fn recent_demand_beats_old_demand() {
        // Goal: three requests five half-lives ago weigh less than two requests now.
        let mut w = Warmer::new(HOUR, 16);
        for _ in 0..3 {
            w.record_request(at_h(0), &id("old"));
        }
        for _ in 0..2 {
            w.record_request(at_h(5), &id("new"));
        }
        let now = at_h(5);
        assert!(w.score(now, &id("new")) > w.score(now, &id("old")));
        assert_eq!(
            w.rank(now, [&id("old"), &id("new")]),
            vec![id("new"), id("old")]
        );
        // At the time of the old requests, "old" led.
        assert_eq!(w.score(at_h(0), &id("old")), 3 * REQUEST_SCORE);
    }

    #[test]
    fn decay_halves_per_half_life_and_interpolates_within() {
        // Goal: one half-life halves the score; half of one takes off a quarter; it never
        // goes up; far in the future it reaches zero.
        let mut w = Warmer::new(HOUR, 4);
        for _ in 0..4 {
            w.record_request(at_h(0), &id("a"));
        }
        let s0 = 4 * REQUEST_SCORE;
        assert_eq!(w.score(at_h(1), &id("a")), s0 / 2);
        assert_eq!(w.score(at_h(2), &id("a")), s0 / 4);
        assert_eq!(w.score(Time::from_secs(1800), &id("a")), s0 * 3 / 4);
        let mut prev = u64::MAX;
        for minutes in 0..600 {
            let s = w.score(Time::from_secs(minutes * 60), &id("a"));
            assert!(s <= prev);
            prev = s;
        }
        assert_eq!(w.score(at_h(100), &id("a")), 0);
        assert_eq!(w.score(at_h(1), &id("untracked")), 0);
    }

    #[test]
    fn tracked_items_are_bounded_and_the_lowest_is_evicted() {
        // Goal: at items_max, a new item evicts the lowest score; a new item that would be
        // the lowest is not tracked.
        let mut w = Warmer::new(HOUR, 2);
        w.record_request(at_h(0), &id("a"));
        w.record_request(at_h(0), &id("b"));
        w.record_request(at_h(0), &id("b"));
        // "a" (1.0 decayed to 0.5) is lowest at hour 1.
        w.record_request(at_h(1), &id("c"));
        assert_eq!(w.len(), 2);
        assert_eq!(w.score(at_h(1), &id("a")), 0);
        assert!(w.score(at_h(1), &id("c")) > 0);
        // Both tracked items now score above one fresh request: "d" is not tracked.
        w.record_request(at_h(1), &id("c"));
        w.record_request(at_h(1), &id("b"));
        w.record_request(at_h(1), &id("d"));
        assert_eq!(w.score(at_h(1), &id("d")), 0);
        assert_eq!(w.top(at_h(1), 10, |_| true).len(), 2);
    }

    #[test]
    fn top_filters_and_breaks_ties_by_id() {
        // Goal: top respects `want` and n, and orders equal scores by ItemId.
        let mut w = Warmer::new(HOUR, 8);
        for name in ["d", "b", "c", "a"] {
            w.record_request(at_h(0), &id(name));
        }
        w.record_request(at_h(0), &id("c"));
        assert_eq!(
            w.top(at_h(0), 3, |i| i.as_str() != "a"),
            vec![id("c"), id("b"), id("d")]
        );
        assert_eq!(w.top(at_h(0), 1, |_| true), vec![id("c")]);
        assert_eq!(
            w.rank(at_h(0), [&id("z"), &id("a"), &id("c"), &id("a")]),
            vec![id("c"), id("a"), id("z")]
        );
    }

    #[test]
    fn clock_stepping_back_neither_panics_nor_raises() {
        // Goal: a request or read with `now` earlier than the last update is tolerated.
        let mut w = Warmer::new(HOUR, 4);
        w.record_request(at_h(2), &id("a"));
        w.record_request(at_h(1), &id("a"));
        assert_eq!(w.score(at_h(1), &id("a")), 2 * REQUEST_SCORE);
        assert_eq!(w.score(at_h(3), &id("a")), REQUEST_SCORE);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Goal: determinism and bounds. The same request sequence gives identical scores
        /// and rankings on two warmers; the tracked count never exceeds items_max.
        #[test]
        fn same_requests_same_ranking(
            reqs in prop::collection::vec((0u64..10_000, 0u8..12), 1..200),
            items_max in 1usize..8,
        ) {
            let mut a = Warmer::new(Duration::from_secs(600), items_max);
            let mut b = Warmer::new(Duration::from_secs(600), items_max);
            let mut now = Time::ZERO;
            for (dt, item) in reqs {
                now += Duration::from_secs(dt);
                let item = id(&format!("item-{item}"));
                a.record_request(now, &item);
                b.record_request(now, &item);
                prop_assert!(a.len() <= items_max);
            }
            let later = now + Duration::from_secs(300);
            prop_assert_eq!(a.top(later, 100, |_| true), b.top(later, 100, |_| true));
            let all: Vec<ItemId> = (0..12).map(|i| id(&format!("item-{i}"))).collect();
            let ranked = a.rank(later, &all);
            prop_assert_eq!(&ranked, &b.rank(later, &all));
            prop_assert_eq!(ranked.len(), 12);
            for pair in ranked.windows(2) {
                prop_assert!(a.score(later, &pair[0]) >= a.score(later, &pair[1]));
            }
        }
    }
}
