//! Invariant 5, priority: no lower-class byte moves while P0 work waits at the same
//! tower.
//!
//! Verifies: every chunk request a tower issues ([`Obs::Requested`]) of a class below P0
//! is issued while no P0 work is waiting (queued or in flight) at that tower
//! ([`is_inversion`], the rule the priority-inversion KPI counts with); the first one
//! per (tower, link, class) is reported. Counting them is the KPI's job
//! (`kpi/inversions.rs`), not this checker's.
//!
//! Does not verify: the order among P1–P3 (only P0 is protected), bytes already in
//! flight when P0 work arrived (requests are checked when they are issued), other traffic
//! on the link (catalog polls, outbox forwarding), or the device side (Wi-Fi).

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use sovereign_scenario::Oracle;
use std::collections::BTreeSet;

/// The priority checker.
#[derive(Clone, Debug, Default)]
pub struct PriorityOrder {
    names: TowerNames,
    /// (tower, link, class) already reported.
    reported: BTreeSet<(usize, LinkKind, Priority)>,
}

/// Whether a request is a priority inversion.
pub fn is_inversion(obs: &Obs) -> Option<u64> {
    match obs {
        Obs::Requested {
            class,
            bytes,
            p0_waiting: true,
            ..
        } if *class > Priority::P0 => Some(*bytes),
        _ => None,
    }
}

impl Checker for PriorityOrder {
    fn oracle(&self) -> Oracle {
        Oracle::Priority
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        let Obs::Requested {
            tower, link, class, ..
        } = &s.obs
        else {
            return;
        };
        let Some(bytes) = is_inversion(&s.obs) else {
            return;
        };
        if self.reported.insert((*tower, *link, *class)) {
            out.push(violation(
                Oracle::Priority,
                s.at,
                format!(
                    "priority inversion: {} requested {bytes} bytes of {class} over {link} while P0 work was waiting",
                    self.names.get(*tower)
                ),
                false,
            ));
        }
    }

    fn finish(&mut self, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn req(s: u64, class: Priority, p0_waiting: bool) -> Stamped {
        at(
            s,
            Obs::Requested {
                tower: 0,
                link: LinkKind::Satellite,
                class,
                bytes: 1000,
                p0_waiting,
            },
        )
    }

    #[test]
    fn p0_first_passes() {
        // Goal: P0 requests with P0 waiting, and P3 requests with none waiting, are fine.
        let seq = [
            start(1),
            req(1, Priority::P0, true),
            req(2, Priority::P0, false),
            req(3, Priority::P3, false),
        ];
        let mut p = PriorityOrder::default();
        assert!(run(&mut p, &seq).is_empty());
    }

    #[test]
    fn p3_while_p0_waits_fails_once_per_class() {
        // Goal: a P3 request while P0 waits is a violation, reported once per class.
        let seq = [
            start(1),
            req(1, Priority::P3, true),
            req(2, Priority::P3, true),
            req(3, Priority::P1, true),
        ];
        let mut p = PriorityOrder::default();
        let v = run(&mut p, &seq);
        assert_eq!(v.len(), 2, "one per class: {v:?}");
        assert_eq!(v[0].oracle, Oracle::Priority);
        assert!(!v[0].liveness);
        assert!(v[0].detail.contains("P3 over satellite"));
    }
}
