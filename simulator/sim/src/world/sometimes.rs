//! "Sometimes" moments (issue 17, guided exploration): rare situations a run may reach,
//! where bugs of interleaving live — a failover while operations wait in the outbox, a
//! breaker opening over a non-empty outbox, a crash with writes not yet on disk. The
//! world notes when a run first reaches each one; a guided hunt branches the run there
//! (fresh randomness from that moment, [`super::Branch`]) to spend its budget around
//! the rare moment instead of from scratch, and a sweep reports how many it reached.
//!
//! Noting a moment draws nothing and writes nothing to the trace: a run is the same run
//! whether anyone looks at them or not.
//!
//! Map: [`Sometimes`], `World::reach` and where it is called: tower events in
//! `World::observe`, crashes, storage failures and restarts in `hosts.rs` and `faults.rs`.

use crate::world::World;
use sovereign_logic::Time;
use sovereign_logic::io::{Event, PowerMode};

/// A rare moment a run may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sometimes {
    /// A tower switched from one working uplink to another with operations in its outbox.
    FailoverWithOutbox,
    /// A tower lost its last uplink with operations in its outbox.
    UplinkLostWithOutbox,
    /// A tower's origin breaker opened with operations in its outbox.
    BreakerOpenWithOutbox,
    /// A tower shed sync for power while items were still missing chunks.
    ShedWithSyncPending,
    /// A tower crashed with chunk requests in flight.
    TowerCrashWithRequestsInFlight,
    /// A tower crashed with operations in its outbox.
    TowerCrashWithOutbox,
    /// The origin lost writes not yet synced: it crashed, its storage failed it in place,
    /// or an fsync failed.
    OriginLostWrites,
    /// Of them, a publish's catalog entry.
    OriginLostPublish,
    /// The origin restarted gracefully with fsyncs in flight.
    OriginRestartWithFsyncInFlight,
}

impl Sometimes {
    /// Every moment, in report order.
    pub const ALL: [Sometimes; 9] = [
        Sometimes::FailoverWithOutbox,
        Sometimes::UplinkLostWithOutbox,
        Sometimes::BreakerOpenWithOutbox,
        Sometimes::ShedWithSyncPending,
        Sometimes::TowerCrashWithRequestsInFlight,
        Sometimes::TowerCrashWithOutbox,
        Sometimes::OriginLostWrites,
        Sometimes::OriginLostPublish,
        Sometimes::OriginRestartWithFsyncInFlight,
    ];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Sometimes::FailoverWithOutbox => "failover-with-outbox",
            Sometimes::UplinkLostWithOutbox => "uplink-lost-with-outbox",
            Sometimes::BreakerOpenWithOutbox => "breaker-open-with-outbox",
            Sometimes::ShedWithSyncPending => "shed-with-sync-pending",
            Sometimes::TowerCrashWithRequestsInFlight => "tower-crash-with-requests-in-flight",
            Sometimes::TowerCrashWithOutbox => "tower-crash-with-outbox",
            Sometimes::OriginLostWrites => "origin-lost-writes",
            Sometimes::OriginLostPublish => "origin-lost-publish",
            Sometimes::OriginRestartWithFsyncInFlight => "origin-restart-with-fsync-in-flight",
        }
    }
}

impl std::fmt::Display for Sometimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl World {
    /// Note that the run reached `s` now (the first time counts).
    pub(super) fn reach(&mut self, s: Sometimes) {
        let slot = &mut self.sometimes[s as usize];
        if slot.is_none() {
            *slot = Some(self.now);
        }
    }

    /// The moments a tower's event may reach, judged by the tower's state as it emits it.
    pub(super) fn reach_by_tower_event(&mut self, tower: usize, event: &Event) {
        let wanted = match event {
            Event::ActiveLink {
                from: Some(_),
                to: Some(_),
            } => Sometimes::FailoverWithOutbox,
            Event::ActiveLink {
                from: Some(_),
                to: None,
            } => Sometimes::UplinkLostWithOutbox,
            Event::BreakerOpened => Sometimes::BreakerOpenWithOutbox,
            Event::PowerMode { from, to } if to > from && *to != PowerMode::Off => {
                Sometimes::ShedWithSyncPending
            }
            _ => return,
        };
        if self.sometimes[wanted as usize].is_some() {
            return;
        }
        let Some(status) = self.towers[tower].tower.as_ref().map(|t| t.status()) else {
            return;
        };
        let holds = match wanted {
            Sometimes::ShedWithSyncPending => status.items_pending > 0,
            _ => status.outbox > 0,
        };
        if holds {
            self.reach(wanted);
        }
    }

    /// The moments a tower's crash may reach (called before its state is dropped).
    pub(super) fn reach_by_tower_crash(&mut self, tower: usize) {
        let Some(status) = self.towers[tower].tower.as_ref().map(|t| t.status()) else {
            return;
        };
        if status.in_flight > 0 {
            self.reach(Sometimes::TowerCrashWithRequestsInFlight);
        }
        if status.outbox > 0 {
            self.reach(Sometimes::TowerCrashWithOutbox);
        }
    }

    /// The moments the origin's loss of unsynced writes reaches (a crash, a storage
    /// failure, a failed fsync), by what it lost.
    pub(super) fn reach_by_origin_loss(&mut self, lost: super::disk::Lost) {
        if lost.writes > 0 {
            self.reach(Sometimes::OriginLostWrites);
        }
        if lost.entries > 0 {
            self.reach(Sometimes::OriginLostPublish);
        }
    }

    /// The moments reached so far, with when each was first reached, in time order.
    pub fn reached(&self) -> Vec<(Sometimes, Time)> {
        let mut r: Vec<(Sometimes, Time)> = Sometimes::ALL
            .into_iter()
            .filter_map(|s| self.sometimes[s as usize].map(|t| (s, t)))
            .collect();
        r.sort_by_key(|(_, t)| *t);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_in_order() {
        // Goal: one name per moment, and ALL lists each once in declaration order.
        let names: std::collections::BTreeSet<&str> =
            Sometimes::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Sometimes::ALL.len());
        for (i, s) in Sometimes::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }
}
