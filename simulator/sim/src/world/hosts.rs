//! The simulated hosts and their processes: the origin, the towers (with their links,
//! disk, power plant and clock) and the devices; each host's one logic timer; and what
//! happens to a process — boot, crash (kill -9), clean shutdown, restart from durable
//! state only, replacement of the origin, re-homing of a tower.
//!
//! A tower's logic sees local time: its clock has an offset and a skew (clock faults).
//! Each boot is a new incarnation: events meant for an earlier one are dropped.
//!
//! Map: [`Proc`], [`TowerHost`], [`OriginHost`], [`DeviceHost`], [`Timer`],
//! [`origin_id`], [`proc_delay`]; `World::boot_tower`, `tower_down`, `crash_tower`,
//! `crash_origin`, `restart_origin`, `replace_origin`, `rehome`, `schedule_tower_timer`.
//!
//! Not covered: device crashes (devices keep their state), the supervisor's own failures.

use super::World;
use super::disk::SimDisk;
use super::events::Ev;
use super::net::SimLink;
use super::power::PowerModel;
use crate::obs::Obs;
use crate::scenario::TowerSpec;
use crate::trace::TraceKind;
use sovereign_logic::Time;
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::device::Device;
use sovereign_logic::entropy::{Entropy, SplitMix64};
use sovereign_logic::io::WriteId;
use sovereign_logic::origin::{Origin, OriginConfig, RestartPacing};
use sovereign_logic::protocol::{DeviceId, LinkKind, OriginId};
use sovereign_logic::tower::{Tower, TowerConfig};
use std::collections::BTreeMap;
use std::time::Duration;

/// Boot time of a tower process.
pub(super) const BOOT: Duration = sovereign_scenario::faults::BOOT;

/// The identity of the origin of `epoch` (0: the first; each replacement draws another).
pub(super) fn origin_id(seed: u64, epoch: u64) -> OriginId {
    let hi = SplitMix64::derive(seed, &format!("origin-id-{epoch}"));
    let lo = SplitMix64::derive(seed, &format!("origin-id-{epoch}-lo"));
    OriginId((u128::from(hi) << 64) | u128::from(lo))
}

/// The state of a tower's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Proc {
    Running,
    /// Down after a crash; a scheduled event (fault end, supervisor) boots it.
    Down,
    /// Cleanly powered off by its power manager; boots when the battery allows.
    Off,
    /// Died of an empty battery (or a hard cut that ended on a low battery); boots when
    /// the battery allows.
    Dead,
}

/// A tower: its process (when running), and the simulated machine around it.
pub(super) struct TowerHost {
    pub(super) spec: TowerSpec,
    pub(super) config: TowerConfig,
    pub(super) tower: Option<Tower>,
    pub(super) proc: Proc,
    pub(super) incarnation: u64,
    pub(super) paused_until: Option<Time>,
    pub(super) slow: f64,
    pub(super) disk: SimDisk,
    pub(super) links: Vec<SimLink>,
    pub(super) wifi: SimLink,
    pub(super) power: PowerModel,
    pub(super) clock_offset_us: i64,
    pub(super) skew_ppm: i64,
    pub(super) skew_since: Time,
    pub(super) timer: Timer,
    pub(super) steady: bool,
    pub(super) converged: bool,
    pub(super) crash_faults: u32,
}

impl TowerHost {
    /// A tower host as the scenario describes it, its process not started.
    pub(super) fn new(spec: &TowerSpec, config: TowerConfig) -> TowerHost {
        TowerHost {
            config,
            tower: None,
            proc: Proc::Down,
            incarnation: 0,
            paused_until: None,
            slow: 1.0,
            disk: SimDisk::new(),
            links: spec
                .links
                .iter()
                .map(|l| SimLink::new(Some(l.kind), l.profile.clone()))
                .collect(),
            wifi: SimLink::new(None, spec.wifi.clone()),
            power: PowerModel::new(&spec.power),
            clock_offset_us: 0,
            skew_ppm: 0,
            skew_since: Time::ZERO,
            timer: Timer::default(),
            steady: false,
            converged: false,
            crash_faults: 0,
            spec: spec.clone(),
        }
    }

    /// The tower's clock at global time `now` (offset and skew applied).
    pub(super) fn local(&self, now: Time) -> Time {
        let skew = (now.as_micros().saturating_sub(self.skew_since.as_micros()) as i128
            * self.skew_ppm as i128
            / 1_000_000) as i64;
        let us = now.as_micros() as i64 + self.clock_offset_us + skew;
        Time::from_micros(us.max(0) as u64)
    }

    pub(super) fn link_mut(&mut self, kind: LinkKind) -> Option<&mut SimLink> {
        self.links.iter_mut().find(|l| l.kind == Some(kind))
    }

    /// Whether its uplink `kind` carries messages at `now` (a message on a link that is
    /// cut while it travels is lost).
    pub(super) fn uplink_up(&self, kind: LinkKind, now: Time) -> bool {
        self.links
            .iter()
            .any(|l| l.kind == Some(kind) && l.is_up(now))
    }

    pub(super) fn running(&self) -> bool {
        self.proc == Proc::Running && self.tower.is_some()
    }

    /// The most preferred uplink that passes traffic now.
    pub(super) fn best_link(&self) -> Option<LinkKind> {
        let mut kinds: Vec<LinkKind> = self.links.iter().filter_map(|l| l.kind).collect();
        kinds.sort();
        kinds.into_iter().find(|k| {
            self.links
                .iter()
                .any(|l| l.kind == Some(*k) && l.faults.down == 0 && l.faults.flapping.is_none())
        })
    }
}

/// The origin: its process, and the machine it runs on.
pub(super) struct OriginHost {
    pub(super) origin: Origin,
    pub(super) config: OriginConfig,
    pub(super) up: bool,
    pub(super) incarnation: u64,
    pub(super) paused_until: Option<Time>,
    pub(super) slow: f64,
    pub(super) disk: SimDisk,
    /// The link each tower last reached the origin over (replies go back on it).
    pub(super) reply_link: BTreeMap<usize, LinkKind>,
    pub(super) crash_faults: u32,
    /// The identity of the origin at this address (a replacement draws another).
    pub(super) id: OriginId,
    /// How many times the origin was replaced (`origin-replace`).
    pub(super) epoch: u64,
    /// Paces the rebuilds after storage failures; told when an fsync completes OK.
    pub(super) restarts: RestartPacing,
    /// Failed in place (a storage failure), as the real origin: up, refusing every
    /// request (no reply) until the first one at or after this time rebuilds it from its
    /// store ([`RestartPacing`]'s wait: none after a first failure).
    pub(super) failed_until: Option<Time>,
    /// The origin as the last rebuild made it from `disk`, which marked the disk then
    /// ([`SimDisk::mark`]). A storage fault rebuilds the origin every 64 s at most, each
    /// time from all the records it ever wrote; the next rebuild starts from a copy of
    /// this one and takes in only the records made durable since ([`Origin::absorb`]).
    /// Dropped once the disk cannot list them.
    rebuilt: Option<Origin>,
    /// The fsyncs issued and not yet completed: the incarnation that issued each, its id,
    /// and whether every write since the fsync before it succeeded. A graceful restart
    /// lets them finish first (`restart` fault), unless one covers a refused write.
    pub(super) fsyncs_in_flight: Vec<(u64, WriteId, bool)>,
    /// A write was refused since the last fsync was issued.
    pub(super) write_refused: bool,
    /// The probability that a request is refused as the origin is busy (`origin-busy`).
    pub(super) busy: f64,
}

impl OriginHost {
    /// The first origin, up, with an empty disk.
    pub(super) fn new(config: OriginConfig, id: OriginId) -> OriginHost {
        OriginHost {
            origin: Origin::new(config.clone()),
            config,
            up: true,
            incarnation: 0,
            paused_until: None,
            slow: 1.0,
            disk: SimDisk::new(),
            reply_link: BTreeMap::new(),
            crash_faults: 0,
            id,
            epoch: 0,
            restarts: RestartPacing::default(),
            failed_until: None,
            rebuilt: None,
            fsyncs_in_flight: Vec::new(),
            write_refused: false,
            busy: 0.0,
        }
    }

    /// The origin rebuilt from its disk's durable records (before it takes its identity).
    fn rebuild(&mut self) -> Origin {
        let absorbed = match (self.rebuilt.take(), self.disk.durable_since_mark()) {
            (Some(kept), Some(written)) => kept.absorb(written),
            _ => None,
        };
        let origin = absorbed.unwrap_or_else(|| {
            Origin::recover_fingerprinted(self.config.clone(), self.disk.durable_fingerprinted())
        });
        self.disk.mark();
        self.rebuilt = Some(origin.clone());
        origin
    }

    /// Forget the last rebuild once the disk can no longer list the records made durable
    /// since.
    pub(super) fn forget_stale_rebuild(&mut self) {
        if !self.disk.marked() {
            self.rebuilt = None;
        }
    }
}

/// A device: its logic (it never crashes) and the tower it reaches over Wi-Fi.
pub(super) struct DeviceHost {
    pub(super) device: Device,
    /// Who the device is (what it presents to its tower): its own identity, or — with the
    /// `shared_identity` workload — the one of the device before it.
    pub(super) identity: DeviceId,
    pub(super) tower: usize,
    pub(super) timer: Timer,
}

/// A host's one logic timer, as an event in the queue that a later arming cancels.
///
/// Events cannot be taken out of the queue, so each arming bumps a generation that the
/// event carries; an event whose generation is no longer the current one is stale and
/// does nothing. `at` remembers the instant armed, so that asking again for the same
/// instant pushes no second event (which would also change the event sequence numbers,
/// and so the trace).
#[derive(Default)]
pub(super) struct Timer {
    pub(super) generation: u64,
    /// When the pending event fires, or `None` when none is pending (fired, or the
    /// process died).
    pub(super) at: Option<Time>,
}

impl Timer {
    /// Arms the timer for `at` and returns the generation its event must carry, or
    /// `None` when it is already armed for `at` (no new event needed).
    pub(super) fn arm(&mut self, at: Time) -> Option<u64> {
        if self.at == Some(at) {
            return None;
        }
        self.generation += 1;
        self.at = Some(at);
        Some(self.generation)
    }

    /// Whether an event carrying `generation` is the pending one (not cancelled by a
    /// later arming).
    pub(super) fn is_current(&self, generation: u64) -> bool {
        self.generation == generation
    }
}

/// The extra time a process slowed by `slow` takes to act on an input.
pub(super) fn proc_delay(slow: f64) -> Duration {
    if slow > 1.0 {
        Duration::from_millis(2).mul_f64(slow - 1.0)
    } else {
        Duration::ZERO
    }
}

impl World {
    pub(super) fn boot_tower(&mut self, i: usize) {
        let now = self.now;
        let t = &mut self.towers[i];
        t.incarnation += 1;
        t.proc = Proc::Running;
        t.paused_until = None;
        let seed = SplitMix64::derive(self.seed, &format!("tower-{i}-{}", t.incarnation));
        let local = t.local(now);
        // From the disk's own records, copying nothing of its history; the previous
        // incarnation (if any) is dropped first.
        t.tower = None;
        t.tower = Some(
            if t.incarnation == 1 && t.disk.durable_records().next().is_none() {
                Tower::new(t.config.clone(), seed, local)
            } else {
                let records = t.disk.durable_records().map(|(_, r)| r);
                Tower::recover_from(t.config.clone(), seed, local, records, &BTreeMap::new())
            },
        );
        t.timer.at = None;
        self.trace.event(
            now,
            TraceKind::TowerBoot,
            i as u64,
            &[self.towers[i].incarnation],
        );
        self.trace.line(now, || format!("tower-{i} boots"));
        self.observe(Obs::TowerUp { tower: i });
        // First telemetry at once, as a charge controller would report.
        self.send_power_reading(i);
        self.drain_tower(i);
    }

    pub(super) fn tower_down(&mut self, i: usize, clean: bool, state: Proc) {
        let now = self.now;
        let torn = false;
        let t = &mut self.towers[i];
        if t.tower.is_none() {
            t.proc = state;
            return;
        }
        t.tower = None;
        t.proc = state;
        t.incarnation += 1;
        t.timer.at = None;
        if !clean {
            t.disk.crash(torn);
        }
        let durable_outbox = t.disk.outbox_keys();
        self.trace
            .event(now, TraceKind::TowerDown, i as u64, &[clean as u64]);
        self.trace.line(now, || {
            format!("tower-{i} down ({})", if clean { "clean" } else { "crash" })
        });
        self.observe(Obs::TowerDown {
            tower: i,
            clean,
            durable_outbox,
        });
        self.update_steady(i);
    }

    pub(super) fn crash_tower(&mut self, i: usize, torn: bool, restart_after: Option<Duration>) {
        self.reach_by_tower_crash(i);
        if torn {
            self.towers[i].disk.crash(true);
        }
        self.tower_down(i, false, Proc::Down);
        if let Some(after) = restart_after {
            let inc = self.towers[i].incarnation;
            self.push(
                self.now + after,
                Ev::TowerBoot {
                    tower: i,
                    incarnation: inc,
                },
            );
        }
    }

    pub(super) fn crash_origin(&mut self, restart_after: Duration) {
        self.origin.up = false;
        self.origin.failed_until = None;
        self.origin.incarnation += 1;
        let lost = self.origin.disk.crash(false);
        self.reach_by_origin_loss(lost);
        self.trace.event(self.now, TraceKind::OriginDown, 0, &[]);
        self.trace.line(self.now, || "origin down".to_string());
        let inc = self.origin.incarnation;
        if self.origin.crash_faults == 0 {
            self.push(
                self.now + restart_after,
                Ev::OriginRestart { incarnation: inc },
            );
        }
    }

    pub(super) fn restart_origin(&mut self) {
        // The failed incarnation goes first, so that its state and the rebuilt one are
        // never held at once; the rebuild reads the disk's own records, copying nothing of
        // the history but what the new origin keeps.
        self.origin.origin = Origin::new(self.origin.config.clone());
        self.origin.origin = self.origin.rebuild();
        // Its identity is in its store once made durable; if a crash came first, it takes
        // the same one again (an origin's id belongs to its data).
        let _ = self.origin.origin.establish_identity(self.origin.id);
        self.origin.up = true;
        self.origin.paused_until = None;
        self.origin.failed_until = None;
        self.trace.event(self.now, TraceKind::OriginRestart, 0, &[]);
        self.trace.line(self.now, || "origin restarts".to_string());
        // Entries published but lost before their fsync are gone: drop them.
        self.publishing.clear();
        self.drain_origin();
    }

    /// The origin's storage failed: it fails in place, as the real one does
    /// (`origin_node::restart_if_failed`): what the failed step staged is discarded (its
    /// unsynced writes lost, their completions dropped), it stays up and refuses every
    /// request with no reply, and the first request once the pacing's wait is over
    /// rebuilds it from its store ([`World::refused_by_failed_origin`]).
    pub(super) fn fail_origin_in_place(&mut self) {
        self.origin.incarnation += 1;
        let lost = self.origin.disk.crash(false);
        self.reach_by_origin_loss(lost);
        let wait = self.origin.restarts.on_failure();
        self.origin.failed_until = Some(self.now + wait);
        self.trace.event(self.now, TraceKind::OriginDown, 1, &[]);
        self.trace.line(self.now, || {
            format!("origin failed: rebuilt at the first request after {wait:?}")
        });
    }

    /// A request reached the origin: `true` when it failed in place, so the request is
    /// refused (no reply) — and the first one once the wait is over rebuilds it, unanswered
    /// all the same, as the real origin answers the request that found it failed.
    pub(super) fn refused_by_failed_origin(&mut self) -> bool {
        let Some(at) = self.origin.failed_until else {
            return false;
        };
        if self.now >= at {
            self.restart_origin();
        }
        true
    }

    /// `origin-replace`: a fresh origin at the same address — another identity, an empty
    /// store, about half of the catalog published again under the same ids with other
    /// bytes (the rest is gone).
    pub(super) fn replace_origin(&mut self) {
        let old_id = self.origin.id;
        self.origin.epoch += 1;
        self.origin.id = origin_id(self.seed, self.origin.epoch);
        self.origin.origin = Origin::new(self.origin.config.clone());
        self.origin.disk = SimDisk::new();
        self.origin.rebuilt = None;
        self.origin.restarts = RestartPacing::default();
        self.origin.failed_until = None;
        self.origin.incarnation += 1; // what the old one had in flight is dropped
        self.origin.up = true;
        self.origin.paused_until = None;
        self.origin.slow = 1.0;
        self.trace
            .event(self.now, TraceKind::OriginReplaced, self.origin.epoch, &[]);
        self.trace.line(self.now, || {
            "a fresh origin answers at the origin's address".to_string()
        });
        let _ = self.origin.origin.establish_identity(self.origin.id);
        self.publishing.clear();
        self.published_before.append(&mut self.published);
        self.observe(Obs::OriginReplaced {
            old: old_id,
            new: self.origin.id,
        });
        let old: Vec<(ItemId, Priority)> = (0..4)
            .flat_map(|c| {
                let p = Priority::from_index(c).unwrap_or(Priority::P3);
                std::mem::take(&mut self.items[c])
                    .into_iter()
                    .map(move |i| (i, p))
            })
            .collect();
        for (item, class) in old {
            let bytes = self.content.remove(&item).unwrap_or_default();
            if !bytes.is_empty() && self.disk_rng.chance(0.5) {
                let mut bytes = bytes;
                bytes[0] = bytes[0].wrapping_add(1);
                self.publish(item, class, bytes);
            }
        }
        self.drain_origin();
    }

    /// An operator re-homes tower `i` onto the origin that answers now.
    pub(super) fn rehome(&mut self, i: usize) {
        if !self.towers[i].running() {
            // Not running: re-homed when it reports again after its restart.
            return;
        }
        let local = self.towers[i].local(self.now);
        self.trace.event(self.now, TraceKind::Rehome, i as u64, &[]);
        self.trace
            .line(self.now, || format!("operator re-homes tower-{i}"));
        if let Some(t) = self.towers[i].tower.as_mut() {
            t.rehome(local);
        }
        self.drain_tower(i);
    }

    pub(super) fn schedule_tower_timer(&mut self, i: usize) {
        let t = &self.towers[i];
        let Some(tw) = t.tower.as_ref() else { return };
        let Some(local_at) = tw.poll_timeout() else {
            return;
        };
        let local_now = t.local(self.now);
        let global = self.now + local_at.saturating_since(local_now);
        let Some(generation) = self.towers[i].timer.arm(global) else {
            return;
        };
        self.push(
            global,
            Ev::TowerTimer {
                tower: i,
                generation,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::disk::Hashes;
    use crate::world::rng::Stream;
    use bytes::Bytes;
    use sovereign_logic::content::{Chunk, ChunkHash};
    use sovereign_logic::io::Record;
    use sovereign_logic::protocol::{IdemKey, OpKind, OpOutcome, Operation, TowerId};

    fn chunk(fill: u8) -> Record {
        let bytes = Bytes::from(vec![fill; 64]);
        Record::Chunk(Chunk {
            hash: ChunkHash::of(&bytes),
            bytes,
        })
    }

    fn applied(n: u32) -> Record {
        Record::Applied {
            op: Operation {
                key: IdemKey(format!("op-{n}").into()),
                device: DeviceId(1),
                kind: OpKind::Message {
                    to: "clinic-0".into(),
                    body: format!("report {n}"),
                },
            },
            outcome: OpOutcome::Applied { seq: u64::from(n) },
            tower: Some(TowerId(0)),
        }
    }

    /// What reading the disk's records afresh rebuilds, as text (the whole state).
    fn fresh(host: &OriginHost) -> String {
        let o =
            Origin::recover_fingerprinted(host.config.clone(), host.disk.durable_fingerprinted());
        format!("{o:?}")
    }

    #[test]
    fn a_rebuild_from_the_kept_one_gives_what_reading_every_record_gives() {
        // Goal: a restart that starts from the kept rebuild gets exactly what reading the
        // records would give: across crashes and failed fsyncs (nothing durable moved),
        // after a good fsync (it takes in the new records), and after a fault changed
        // records in place (the kept one is dropped, the records read again).
        let mut host = OriginHost::new(OriginConfig::default(), OriginId(7));
        let mut hashes = Hashes::default();
        let mut rng = Stream::new(1, "test");
        host.disk.write(chunk(1), &mut hashes);
        host.disk.write(applied(1), &mut hashes);
        host.disk.sync(host.disk.issued());

        let first = format!("{:?}", host.rebuild());
        assert_eq!(first, fresh(&host));
        assert!(host.rebuilt.is_some(), "the rebuild is kept");

        // A write lost to a failed fsync and one lost in a crash: nothing to take in.
        host.disk.write(applied(2), &mut hashes);
        host.disk.lose(host.disk.issued());
        host.disk.write(chunk(2), &mut hashes);
        host.disk.crash(false);
        host.forget_stale_rebuild();
        assert_eq!(format!("{:?}", host.rebuild()), first);

        // A good fsync: the kept rebuild takes in the new operation.
        host.disk.write(applied(3), &mut hashes);
        host.disk.sync(host.disk.issued());
        host.forget_stale_rebuild();
        assert!(
            host.rebuilt.is_some(),
            "kept while the disk lists what changed"
        );
        let second = format!("{:?}", host.rebuild());
        assert_ne!(second, first);
        assert_eq!(second, fresh(&host));
        assert!(second.contains("op-3"));

        // Bit rot changes a durable chunk in place: the rotten chunk is not kept.
        assert_eq!(host.disk.rot(1, &mut rng), 1);
        host.forget_stale_rebuild();
        assert!(
            host.rebuilt.is_none(),
            "dropped once records changed in place"
        );
        let third = format!("{:?}", host.rebuild());
        assert_eq!(third, fresh(&host));
        assert_ne!(third, second, "the rotten chunk is dropped on rebuild");
    }
}
