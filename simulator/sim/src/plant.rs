//! Planted bugs: switches that each break exactly one invariant (at least one per oracle),
//! so that every oracle is shown to fail (DESIGN.md §6: "an oracle that can never
//! fail is worthless").
//!
//! A plant flips a configuration switch of the real logic (`TowerConfig`, `OriginConfig`,
//! `SchedulerConfig`, `DeviceConfig`) — the logic's code paths are the same ones the
//! clean build runs — or, for a bug of a store rather than of the logic
//! (`keep-refused-writes`) or of a server rather than of the logic (`anonymous-refusals`),
//! the simulated disk's or origin's behaviour. Not covered: bugs in the simulator itself.

use crate::scenario::Oracle;
use std::fmt;
use std::str::FromStr;

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plant {
    /// Towers keep and serve chunks without checking their SHA-256 → integrity.
    SkipVerify,
    /// Towers acknowledge device operations before the fsync → durability.
    AckBeforeFsync,
    /// The origin applies every delivery of an operation → exactly-once.
    NoIdempotency,
    /// The ledger rounds each share to nearest instead of flooring → conservation.
    LedgerRounding,
    /// The download scheduler is FIFO, ignoring classes → priority.
    FifoScheduler,
    /// Towers never return to a better link once they left it → convergence.
    NoFailback,
    /// Towers refuse device reads while no uplink works → offline service.
    OfflineRefuse,
    /// Towers ignore the battery and run until it is empty → power safety.
    IgnoreBattery,
    /// Devices make keys without a random part (`<device>:<n>`): devices that share an
    /// identity issue the same keys → attribution.
    SequentialKeys,
    /// Towers forget a key once the origin confirmed it, so a reused key with another body
    /// is acknowledged and then dropped → durability.
    ForgetConfirmed,
    /// Towers accept a key (or an operation) that belongs to another device → attribution.
    NoKeyOwnerCheck,
    /// Towers acknowledge operations the origin will reject → durability.
    NoEdgeValidation,
    /// A disk that refuses a write (full, failing) keeps it anyway, and a later fsync
    /// makes it durable: a tower's "not stored" answer becomes a lie → durability.
    KeepRefusedWrites,
    /// The origin answers peers that are not its towers and applies their operations →
    /// attribution.
    AcceptUnknownTowers,
    /// Towers sync from whatever origin answers at the uplinks' address, keeping their
    /// catalog cursor → convergence.
    NoOriginCheck,
    /// Devices accept a read's bytes without checking them against the manifest, so bytes
    /// garbled on the Wi-Fi are kept → integrity.
    DeviceSkipVerify,
    /// The origin answers a forward batch before the fsync that makes its applies
    /// durable: a storage failure in between (its database lost) loses operations the
    /// tower was told are applied → durability.
    ReplyBeforeFsync,
    /// Rare. Towers match a forward reply's receipts to the batch they sent last, by
    /// position, not by key: a late reply to an earlier batch (after a timeout or a
    /// failover sent another) confirms operations the origin never received → durability.
    ReceiptsByPosition,
    /// Rare. The origin announces a published version before its fsync: a crash in between
    /// takes back a version towers adopted, and the next publish reuses its version and seq
    /// with other bytes: a tower serves a manifest that is not the origin's → integrity.
    PublishBeforeFsync,
    /// Rare. The origin recognises a key only among its last 5,000 applies: a delivery
    /// retried after that many newer ones (a lost reply, then an outage or an open breaker)
    /// is applied twice → exactly-once.
    BoundedDedupe,
    /// The origin's refusals when busy (`origin-busy`) do not name it, as its connection
    /// limit once answered: the tower takes its trusted origin for another one, stops
    /// syncing and reports a mismatch → attribution.
    AnonymousRefusals,
    /// The origin cuts a catalog page at 1024 entries only, not at what a tower reads in
    /// one answer (as the real origin did): a catalog larger than that answer limit makes
    /// every poll from its start fail, and the tower never syncs → convergence.
    UncutCatalog,
}

impl Plant {
    /// Every plant.
    pub const ALL: [Plant; 22] = [
        Plant::SkipVerify,
        Plant::AckBeforeFsync,
        Plant::NoIdempotency,
        Plant::LedgerRounding,
        Plant::FifoScheduler,
        Plant::NoFailback,
        Plant::OfflineRefuse,
        Plant::IgnoreBattery,
        Plant::SequentialKeys,
        Plant::ForgetConfirmed,
        Plant::NoKeyOwnerCheck,
        Plant::NoEdgeValidation,
        Plant::KeepRefusedWrites,
        Plant::AcceptUnknownTowers,
        Plant::NoOriginCheck,
        Plant::DeviceSkipVerify,
        Plant::ReplyBeforeFsync,
        Plant::ReceiptsByPosition,
        Plant::PublishBeforeFsync,
        Plant::BoundedDedupe,
        Plant::AnonymousRefusals,
        Plant::UncutCatalog,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Plant::SkipVerify => "skip-verify",
            Plant::AckBeforeFsync => "ack-before-fsync",
            Plant::NoIdempotency => "no-idempotency",
            Plant::LedgerRounding => "ledger-rounding",
            Plant::FifoScheduler => "fifo-scheduler",
            Plant::NoFailback => "no-failback",
            Plant::OfflineRefuse => "offline-refuse",
            Plant::IgnoreBattery => "ignore-battery",
            Plant::SequentialKeys => "sequential-keys",
            Plant::ForgetConfirmed => "forget-confirmed",
            Plant::NoKeyOwnerCheck => "no-key-owner-check",
            Plant::NoEdgeValidation => "no-edge-validation",
            Plant::KeepRefusedWrites => "keep-refused-writes",
            Plant::AcceptUnknownTowers => "accept-unknown-towers",
            Plant::NoOriginCheck => "no-origin-check",
            Plant::DeviceSkipVerify => "device-skip-verify",
            Plant::ReplyBeforeFsync => "reply-before-fsync",
            Plant::ReceiptsByPosition => "receipts-by-position",
            Plant::PublishBeforeFsync => "publish-before-fsync",
            Plant::BoundedDedupe => "bounded-dedupe",
            Plant::AnonymousRefusals => "anonymous-refusals",
            Plant::UncutCatalog => "uncut-catalog",
        }
    }

    /// The oracle this plant must make fail.
    pub const fn oracle(self) -> Oracle {
        match self {
            Plant::SkipVerify | Plant::DeviceSkipVerify | Plant::PublishBeforeFsync => {
                Oracle::Integrity
            }
            Plant::AckBeforeFsync => Oracle::Durability,
            Plant::NoIdempotency | Plant::BoundedDedupe => Oracle::ExactlyOnce,
            Plant::LedgerRounding => Oracle::Conservation,
            Plant::FifoScheduler => Oracle::Priority,
            Plant::NoFailback => Oracle::Convergence,
            Plant::OfflineRefuse => Oracle::OfflineService,
            Plant::IgnoreBattery => Oracle::PowerSafety,
            Plant::SequentialKeys
            | Plant::NoKeyOwnerCheck
            | Plant::AcceptUnknownTowers
            | Plant::AnonymousRefusals => Oracle::Attribution,
            Plant::NoOriginCheck | Plant::UncutCatalog => Oracle::Convergence,
            Plant::ForgetConfirmed
            | Plant::NoEdgeValidation
            | Plant::KeepRefusedWrites
            | Plant::ReplyBeforeFsync
            | Plant::ReceiptsByPosition => Oracle::Durability,
        }
    }
}

impl fmt::Display for Plant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown plant name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown plant {0:?}; expected one of: skip-verify, ack-before-fsync, no-idempotency, ledger-rounding, fifo-scheduler, no-failback, offline-refuse, ignore-battery, sequential-keys, forget-confirmed, no-key-owner-check, no-edge-validation, keep-refused-writes, accept-unknown-towers, no-origin-check, device-skip-verify, reply-before-fsync, receipts-by-position, publish-before-fsync, bounded-dedupe, anonymous-refusals, uncut-catalog"
)]
pub struct UnknownPlant(pub String);

impl FromStr for Plant {
    type Err = UnknownPlant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plant::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPlant(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_oracle_has_a_plant_and_names_round_trip() {
        // Goal: every oracle has at least one plant, and names parse back.
        let oracles: BTreeSet<Oracle> = Plant::ALL.iter().map(|p| p.oracle()).collect();
        assert_eq!(oracles.len(), Oracle::ALL.len());
        for p in Plant::ALL {
            assert_eq!(p.name().parse::<Plant>(), Ok(p));
        }
        assert!("bogus".parse::<Plant>().is_err());
        // The error's list (a fixed text) names every plant.
        let listed = UnknownPlant("bogus".into()).to_string();
        for p in Plant::ALL {
            assert!(listed.contains(p.name()), "{p} missing from {listed}");
        }
    }
}
