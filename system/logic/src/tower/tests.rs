//! Unit tests of the tower state machine, driven by hand: every action is inspected and
//! every completion is fed back explicitly.

use super::*;
use crate::content::{ChunkParams, ItemId, publish};
use crate::entropy::{Entropy, SplitMix64};
use crate::protocol::{DeviceId, IdemKey, OpKind};
use crate::tower::power::UpsState;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut r = SplitMix64::new(seed);
    (0..len).map(|_| r.next_u64() as u8).collect()
}

fn entry(
    seq: u64,
    item: &str,
    class: Priority,
    data: &[u8],
) -> (CatalogEntry, Vec<crate::content::Chunk>) {
    let (manifest, chunks) =
        publish(ItemId::new(item), 1, class, data, ChunkParams::default()).unwrap();
    (CatalogEntry { seq, manifest }, chunks)
}

fn drain(t: &mut Tower) -> Vec<Action> {
    std::iter::from_fn(|| t.poll_action()).collect()
}

/// Complete every write and fsync in `actions` successfully; return the rest and the
/// records that became durable.
fn complete_io(
    t: &mut Tower,
    now: Time,
    actions: Vec<Action>,
    durable: &mut DurableState,
) -> Vec<Action> {
    let mut rest = Vec::new();
    let mut pending = Vec::new();
    for a in actions {
        match a {
            Action::Write { id, record } => {
                pending.push((record.key(), Some(record)));
                t.handle_write_done(now, id, Ok(()));
            }
            Action::Delete { id, key } => {
                pending.push((key, None));
                t.handle_write_done(now, id, Ok(()));
            }
            Action::Fsync { id } => {
                for (k, r) in pending.drain(..) {
                    match r {
                        Some(r) => {
                            durable.insert(k, r);
                        }
                        None => {
                            durable.remove(&k);
                        }
                    }
                }
                t.handle_fsync_done(now, id, Ok(()));
            }
            other => rest.push(other),
        }
    }
    rest
}

fn sends(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

fn chunk_requests(actions: &[Action]) -> Vec<ChunkHash> {
    sends(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::ChunkRequest { hash } => Some(*hash),
            _ => None,
        })
        .collect()
}

/// A power reading on battery, no sun, 3 W load, at `soc` per-mille.
fn on_battery(soc: u16) -> PowerReading {
    PowerReading {
        soc_permille: soc,
        solar_mw: 0,
        load_mw: 3_000,
        ups: UpsState::OnBattery,
    }
}

fn tower(links: &[LinkKind]) -> Tower {
    Tower::new(TowerConfig::new(TowerId(1), links), 1, Time::ZERO)
}

/// A fresh tower on `links` whose boot actions (the first catalog request) are dropped.
fn booted(links: &[LinkKind]) -> Tower {
    let mut t = tower(links);
    drain(&mut t);
    t
}

/// The origin answers the catalog request with `entries`, at time zero.
fn offer_catalog(t: &mut Tower, entries: &[&CatalogEntry]) {
    t.handle_message(
        Time::ZERO,
        Peer::Origin,
        Message::CatalogReply {
            entries: entries
                .iter()
                .map(|e| SentEntry::Whole((*e).clone()))
                .collect(),
            origin: None,
            more: false,
        },
    );
}

/// What the origin serves: each chunk's bytes by hash.
fn origin_store(chunks: &[crate::content::Chunk]) -> BTreeMap<ChunkHash, Bytes> {
    chunks.iter().map(|c| (c.hash, c.bytes.clone())).collect()
}

/// The origin answers a chunk request (`None`: it does not have the chunk).
fn reply_chunk(t: &mut Tower, now: Time, hash: ChunkHash, bytes: Option<Bytes>) {
    t.handle_message(now, Peer::Origin, Message::ChunkReply { hash, bytes });
}

/// A message operation under `device`'s first idempotency key.
fn message_op(device: u32, to: &str, body: &str) -> Operation {
    Operation {
        key: crate::protocol::IdemKey::for_device(DeviceId(u128::from(device)), 1, 0),
        device: DeviceId(u128::from(device)),
        kind: OpKind::Message {
            to: to.into(),
            body: body.into(),
        },
    }
}

/// The operation's device submits it.
fn submit(t: &mut Tower, now: Time, op: Operation) {
    t.handle_message(now, Peer::Device(op.device), Message::SubmitOp { op });
}

#[test]
fn boot_asks_the_origin_for_its_catalog_over_the_preferred_link() {
    // Goal: a fresh tower starts syncing at once, over fibre.
    let mut t = tower(&[LinkKind::Satellite, LinkKind::Fibre]);
    let actions = drain(&mut t);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Send {
            to: Peer::Origin,
            via: Some(LinkKind::Fibre),
            msg: Message::CatalogRequest { since_seq: 0, .. }
        }
    )));
}

#[test]
fn a_chunk_counts_as_held_only_after_verification_and_fsync() {
    // Goal: integrity + durability ordering inside the tower.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "alert", Priority::P0, &bytes(1, 20_000));
    offer_catalog(&mut t, &[&e]);
    let mut durable = DurableState::new();
    let actions = drain(&mut t);
    let actions = complete_io(&mut t, Time::ZERO, actions, &mut durable);
    let wanted = chunk_requests(&actions);
    assert_eq!(
        wanted.len(),
        e.manifest.chunk_set().len().min(t.status().window as usize)
    );
    // Bad bytes: rejected, requested again, nothing written.
    let first = wanted[0];
    reply_chunk(&mut t, Time::ZERO, first, Some(Bytes::from_static(b"evil")));
    let actions = drain(&mut t);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(Event::ChunkRejected { .. })))
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Write { .. })));
    // Requested again: at once if the (now halved) window allows, else queued.
    assert!(
        chunk_requests(&actions).contains(&first) || t.status().queued[0] >= 1,
        "queued again"
    );
    // Good bytes: written, but not held until the fsync completes.
    let good = chunks
        .iter()
        .find(|c| c.hash == first)
        .unwrap()
        .bytes
        .clone();
    reply_chunk(&mut t, Time::ZERO, first, Some(good));
    let actions = drain(&mut t);
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Write { record: Record::Chunk(c), .. } if c.hash == first)
        )
    );
    assert!(!t.holds_chunk(&first));
    complete_io(&mut t, Time::ZERO, actions, &mut durable);
    assert!(t.holds_chunk(&first));
}

use bytes::Bytes;

fn sync_all(
    t: &mut Tower,
    now: Time,
    origin: &BTreeMap<ChunkHash, Bytes>,
    durable: &mut DurableState,
) {
    for _ in 0..10_000 {
        let actions = drain(t);
        if actions.is_empty() {
            return;
        }
        let rest = complete_io(t, now, actions, durable);
        for hash in chunk_requests(&rest) {
            reply_chunk(t, now, hash, origin.get(&hash).cloned());
        }
    }
    panic!("sync did not settle");
}

#[test]
fn an_item_becomes_servable_when_all_its_chunks_are_durable() {
    // Goal: the servable set and the ContentServable event follow durability exactly.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "news", Priority::P1, &bytes(2, 100_000));
    let origin = origin_store(&chunks);
    assert_eq!(
        t.serve_plan(Time::ZERO, &ItemId::new("news")),
        Err(Refusal::NotHeld)
    );
    offer_catalog(&mut t, &[&e]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin, &mut durable);
    let plan = t
        .serve_plan(Time::ZERO, &ItemId::new("news"))
        .expect("servable");
    assert_eq!(*plan.manifest, e.manifest);
    assert_eq!(
        t.status().chunks_held as usize,
        e.manifest.chunk_set().len()
    );
}

#[test]
fn serve_epoch_moves_with_every_change_of_the_servable_set() {
    // Goal: a driver that serves from a copy of the servable set (rebuilt when
    // serve_epoch moves) never keeps serving a version the logic stopped serving.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "news", Priority::P1, &bytes(5, 100_000));
    let origin = origin_store(&chunks);
    let news = ItemId::new("news");
    let e0 = t.serve_epoch();
    t.note_request(Time::ZERO, &news);
    assert_eq!(
        t.serve_epoch(),
        e0,
        "a demand note changes nothing servable"
    );
    offer_catalog(&mut t, &[&e]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin, &mut durable);
    let e1 = t.serve_epoch();
    assert!(e1 > e0, "becoming servable moves the epoch");
    assert!(t.serve_plan(Time::ZERO, &news).is_ok());
    t.report_corrupt(Time::ZERO, chunks[0].hash);
    assert_eq!(t.serve_plan(Time::ZERO, &news), Err(Refusal::Repairing));
    assert!(
        t.serve_epoch() > e1,
        "losing the servable version moves the epoch"
    );
}

#[test]
fn p0_in_flight_holds_back_every_lower_class() {
    // Goal: priority — no lower-class request leaves while P0 work waits.
    let mut t = booted(&[LinkKind::Fibre]);
    let (bulk, _) = entry(1, "video", Priority::P3, &bytes(3, 400_000));
    let (alert, alert_chunks) = entry(2, "alert", Priority::P0, &bytes(4, 9_000));
    offer_catalog(&mut t, &[&bulk, &alert]);
    let mut durable = DurableState::new();
    let actions = drain(&mut t);
    let actions = complete_io(&mut t, Time::ZERO, actions, &mut durable);
    let p0: BTreeSet<ChunkHash> = alert.manifest.chunk_set();
    let requested = chunk_requests(&actions);
    assert!(!requested.is_empty());
    assert!(
        requested.iter().all(|h| p0.contains(h)),
        "only P0 requested while P0 waits"
    );
    // Complete the P0 chunks: P3 starts flowing.
    let mut now_requests = Vec::new();
    for c in &alert_chunks {
        reply_chunk(&mut t, Time::ZERO, c.hash, Some(c.bytes.clone()));
        let actions = drain(&mut t);
        let rest = complete_io(&mut t, Time::ZERO, actions, &mut durable);
        now_requests.extend(chunk_requests(&rest));
    }
    assert!(t.servable().contains_key(&ItemId::new("alert")));
    assert!(
        now_requests
            .iter()
            .any(|h| bulk.manifest.chunk_set().contains(h))
    );
}

#[test]
fn satellite_carries_only_p0_and_p1() {
    // Goal: the class policy keeps bulk off the metered link.
    let mut t = booted(&[LinkKind::Satellite]);
    let (bulk, _) = entry(1, "video", Priority::P3, &bytes(5, 100_000));
    let (news, _) = entry(2, "news", Priority::P1, &bytes(6, 20_000));
    offer_catalog(&mut t, &[&bulk, &news]);
    let mut durable = DurableState::new();
    let actions = drain(&mut t);
    let rest = complete_io(&mut t, Time::ZERO, actions, &mut durable);
    let requested = chunk_requests(&rest);
    assert!(!requested.is_empty());
    assert!(
        requested
            .iter()
            .all(|h| news.manifest.chunk_set().contains(h))
    );
    assert_eq!(
        t.status().queued[3] as usize,
        bulk.manifest.chunk_set().len()
    );
}

#[test]
fn an_operation_is_acknowledged_only_after_its_fsync_and_never_twice_in_effect() {
    // Goal: the outbox contract: ack after fsync; duplicates; conflicts; fsync failure.
    let mut t = booted(&[LinkKind::Fibre]);
    let op = message_op(3, "clinic", "fever");
    submit(&mut t, Time::ZERO, op.clone());
    let actions = drain(&mut t);
    assert!(
        sends(&actions)
            .iter()
            .all(|m| !matches!(m, Message::SubmitReply { .. })),
        "no ack before fsync"
    );
    // A duplicate while the first is in flight: 409-style.
    submit(&mut t, Time::ZERO, op.clone());
    let dup = drain(&mut t);
    assert!(sends(&dup).iter().any(|m| matches!(
        m,
        Message::SubmitReply {
            reply: SubmitReply::InFlight,
            ..
        }
    )));
    let mut durable = DurableState::new();
    let rest = complete_io(&mut t, Time::ZERO, actions, &mut durable);
    assert!(sends(&rest).is_empty());
    let after = drain(&mut t);
    assert!(sends(&after).iter().any(|m| matches!(
        m,
        Message::SubmitReply {
            reply: SubmitReply::Accepted,
            ..
        }
    )));
    // Once durable it is forwarded to the origin at once.
    assert!(
        sends(&after)
            .iter()
            .any(|m| matches!(m, Message::ForwardOps { ops } if ops[0].key == op.key))
    );
    assert!(durable.contains_key(&Key::Outbox(op.key.clone())));
    // Same key, different body: 422-style conflict.
    let mut other = op.clone();
    other.kind = OpKind::Message {
        to: "clinic".into(),
        body: "cough".into(),
    };
    submit(&mut t, Time::ZERO, other);
    assert!(sends(&drain(&mut t)).iter().any(|m| matches!(
        m,
        Message::SubmitReply {
            reply: SubmitReply::Conflict,
            ..
        }
    )));
    // It leaves the outbox only when the origin confirmed it.
    t.handle_timeout(Time::from_secs(1));
    assert_eq!(t.status().outbox, 1);
    t.handle_message(
        Time::from_secs(1),
        Peer::Origin,
        Message::ForwardReply {
            receipts: vec![crate::protocol::OpReceipt {
                key: op.key.clone(),
                outcome: OpOutcome::Applied { seq: 1 },
            }],
        },
    );
    assert_eq!(t.status().outbox, 0);
}

#[test]
fn a_failed_fsync_means_no_ack() {
    // Goal: fsyncgate — an fsync error leaves the op unacknowledged and the device told to retry.
    let mut t = booted(&[LinkKind::Fibre]);
    submit(&mut t, Time::ZERO, message_op(3, "a", "b"));
    let mut replies = Vec::new();
    for a in drain(&mut t) {
        match a {
            Action::Write { id, .. } => t.handle_write_done(Time::ZERO, id, Ok(())),
            Action::Fsync { id } => t.handle_fsync_done(Time::ZERO, id, Err("EIO".into())),
            _ => {}
        }
    }
    for a in drain(&mut t) {
        if let Action::Send {
            msg: Message::SubmitReply { reply, .. },
            ..
        } = a
        {
            replies.push(reply);
        }
    }
    assert!(
        matches!(&replies[..], [SubmitReply::Retry { .. }]),
        "{replies:?}"
    );
    assert_eq!(t.status().outbox, 0);
}

#[test]
fn low_battery_sheds_then_shuts_down_cleanly_with_a_final_fsync() {
    // Goal: power safety — shedding in steps, then flush + fsync before power-off.
    let mut t = booted(&[LinkKind::Fibre]);
    t.handle_power(Time::from_secs(1), on_battery(550));
    assert_eq!(t.power_mode(), PowerMode::ShedP3);
    t.handle_power(Time::from_secs(2), on_battery(400));
    assert_eq!(t.power_mode(), PowerMode::ShedP2);
    drain(&mut t);
    // An op in the pipeline when the battery runs low.
    submit(&mut t, Time::from_secs(3), message_op(1, "a", "b"));
    t.handle_power(Time::from_secs(4), on_battery(200));
    assert_eq!(t.power_mode(), PowerMode::ShuttingDown);
    let actions = drain(&mut t);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::PowerOff { .. })),
        "not before the fsync"
    );
    let mut durable = DurableState::new();
    let mut off = false;
    for a in actions {
        match a {
            Action::Write { id, record } => {
                durable.insert(record.key(), record);
                t.handle_write_done(Time::from_secs(4), id, Ok(()));
            }
            Action::Fsync { id } => t.handle_fsync_done(Time::from_secs(4), id, Ok(())),
            _ => {}
        }
    }
    for a in drain(&mut t) {
        off |= matches!(a, Action::PowerOff { clean: true });
    }
    assert!(off, "clean power-off after the final fsync");
    assert_eq!(t.power_mode(), PowerMode::Off);
    assert_eq!(durable.len(), 1, "the op was flushed");
    assert_eq!(
        t.serve_plan(Time::from_secs(5), &ItemId::new("x")),
        Err(Refusal::PoweredDown)
    );
}

#[test]
fn ignore_battery_plant_keeps_running_to_empty() {
    // Goal: the planted bug really disables power management.
    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.power_managed = false;
    let mut t = Tower::new(cfg, 1, Time::ZERO);
    t.handle_power(
        Time::from_secs(1),
        PowerReading {
            soc_permille: 10,
            solar_mw: 0,
            load_mw: 3_000,
            ups: UpsState::OnBattery,
        },
    );
    assert_eq!(t.power_mode(), PowerMode::Normal);
}

/// Recovery reported exactly one quarantined chunk and deleted `key` (its record).
fn assert_quarantined_one(actions: &[Action], key: &Key) {
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(Event::Recovered { quarantined: 1, .. }))),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Delete { key: k, .. } if k == key)),
        "{actions:?}"
    );
}

#[test]
fn recovery_quarantines_rotten_chunks_and_resumes_the_sync() {
    // Goal: a tower rebuilt from durable state alone is consistent and resumes.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "book", Priority::P2, &bytes(7, 80_000));
    let origin = origin_store(&chunks);
    offer_catalog(&mut t, &[&e]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin, &mut durable);
    assert!(t.servable().contains_key(&ItemId::new("book")));
    // Rot one chunk on disk and drop another (as if its write was never synced).
    let keys: Vec<Key> = durable
        .keys()
        .filter(|k| matches!(k, Key::Chunk(_)))
        .cloned()
        .collect();
    assert!(keys.len() >= 3);
    if let Some(Record::Chunk(c)) = durable.get_mut(&keys[0]) {
        let mut v = c.bytes.to_vec();
        v[0] ^= 0xff;
        c.bytes = Bytes::from(v);
    }
    durable.remove(&keys[1]);
    let mut t2 = Tower::recover(t.config().clone(), 2, Time::from_secs(10), &durable);
    assert!(
        !t2.servable().contains_key(&ItemId::new("book")),
        "incomplete after recovery"
    );
    let actions = drain(&mut t2);
    assert_quarantined_one(&actions, &keys[0]);
    let mut durable2 = durable.clone();
    let rest = complete_io(&mut t2, Time::from_secs(10), actions, &mut durable2);
    let requested: BTreeSet<ChunkHash> = chunk_requests(&rest).into_iter().collect();
    let expect: BTreeSet<ChunkHash> = [&keys[0], &keys[1]]
        .iter()
        .filter_map(|k| match k {
            Key::Chunk(h) => Some(*h),
            _ => None,
        })
        .collect();
    assert_eq!(requested, expect, "only the lost chunks are fetched again");
    for h in requested {
        reply_chunk(&mut t2, Time::from_secs(10), h, origin.get(&h).cloned());
    }
    sync_all(&mut t2, Time::from_secs(10), &origin, &mut durable2);
    assert!(t2.servable().contains_key(&ItemId::new("book")));
}

#[test]
fn recover_verified_from_lengths_matches_recover_from_chunk_records() {
    // Goal: a tower given its chunks as verified lengths (bytes never in memory) holds and
    // serves the same items, and does the same first steps, as one given the chunk
    // records; a chunk record that is also listed but rotten is still quarantined.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "book", Priority::P2, &bytes(7, 80_000));
    let (e2, chunks2) = entry(2, "map", Priority::P1, &bytes(8, 30_000));
    let mut all = chunks.clone();
    all.extend(chunks2.iter().cloned());
    let origin = origin_store(&all);
    offer_catalog(&mut t, &[&e, &e2]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin, &mut durable);
    assert_eq!(t.servable().len(), 2);

    let mut lean = durable.clone();
    let mut verified = BTreeMap::new();
    lean.retain(|_, r| match r {
        Record::Chunk(c) => {
            verified.insert(c.hash, c.bytes.len() as u32);
            false
        }
        _ => true,
    });
    assert!(verified.len() >= 4, "{} chunks", verified.len());
    let now = Time::from_secs(10);
    let mut full = Tower::recover(t.config().clone(), 2, now, &durable);
    let mut from_lengths = Tower::recover_verified(t.config().clone(), 2, now, &lean, &verified);
    assert_eq!(from_lengths.servable(), full.servable());
    assert_eq!(from_lengths.servable().len(), 2);
    for h in verified.keys() {
        assert!(from_lengths.holds_chunk(h), "chunk {h} not held");
    }
    for item in ["book", "map"] {
        let id = ItemId::new(item);
        assert_eq!(
            from_lengths.serve_plan(now, &id),
            full.serve_plan(now, &id),
            "{item}"
        );
        assert!(
            from_lengths.serve_plan(now, &id).is_ok(),
            "{item} not servable"
        );
    }
    let actions = drain(&mut from_lengths);
    assert_eq!(actions, drain(&mut full));
    assert!(
        chunk_requests(&actions).is_empty(),
        "nothing is fetched again"
    );

    // A chunk the store listed as verified but whose record (also given) is rotten: the
    // record's verdict wins.
    let rotten = chunks[0].hash;
    let mut mixed = lean.clone();
    let mut v = chunks[0].bytes.to_vec();
    v[0] ^= 0xff;
    mixed.insert(
        Key::Chunk(rotten),
        Record::Chunk(crate::content::Chunk {
            hash: rotten,
            bytes: Bytes::from(v),
        }),
    );
    let mut t3 = Tower::recover_verified(t.config().clone(), 2, now, &mixed, &verified);
    assert!(!t3.holds_chunk(&rotten));
    assert!(!t3.servable().contains_key(&ItemId::new("book")));
    assert_quarantined_one(&drain(&mut t3), &Key::Chunk(rotten));
}

#[test]
fn offline_refuse_plant_refuses_reads_without_uplink() {
    // Goal: the planted bug is observable: with no uplink it refuses reads it could serve.
    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.serve_offline = false;
    let mut t = Tower::new(cfg, 1, Time::ZERO);
    drain(&mut t);
    for i in 0..10u64 {
        t.handle_probe(Time::from_secs(i), LinkKind::Fibre, ProbeOutcome::failed());
    }
    assert_eq!(t.active_link(), None);
    assert_eq!(
        t.serve_plan(Time::from_secs(20), &ItemId::new("x")),
        Err(Refusal::Offline)
    );
}

// ----- the device edge: ownership, validation, memory of confirmed operations -----------

/// The tower's answers to devices among `actions`.
fn replies(actions: &[Action]) -> Vec<SubmitReply> {
    sends(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::SubmitReply { reply, .. } => Some(reply.clone()),
            _ => None,
        })
        .collect()
}

/// `presenter` submits `op`; the tower's answers once every write it issued is durable.
fn submit_as(
    t: &mut Tower,
    now: Time,
    presenter: DeviceId,
    op: Operation,
    durable: &mut DurableState,
) -> Vec<SubmitReply> {
    t.handle_message(now, Peer::Device(presenter), Message::SubmitOp { op });
    let first = drain(t);
    let mut out = replies(&first);
    complete_io(t, now, first, durable);
    out.extend(replies(&drain(t)));
    out
}

/// The origin confirms `key` with `outcome`; the tower's writes are completed.
fn confirm(
    t: &mut Tower,
    now: Time,
    key: &IdemKey,
    outcome: OpOutcome,
    durable: &mut DurableState,
) {
    t.handle_message(
        now,
        Peer::Origin,
        Message::ForwardReply {
            receipts: vec![crate::protocol::OpReceipt {
                key: key.clone(),
                outcome,
            }],
        },
    );
    // The confirmation's delete and memory are covered by the next fsync, which any later
    // write triggers; a timeout with nothing else to do may not issue one, so force one
    // the way the driver's next batch would.
    let mut actions = drain(t);
    if !actions.iter().any(|a| matches!(a, Action::Fsync { .. })) {
        if let Some(id) = t.fsync() {
            actions.push(Action::Fsync { id });
        }
    }
    complete_io(t, now, actions, durable);
}

fn contribution_op(device: u32, n: u64, amount_minor: u64) -> Operation {
    let device = DeviceId(u128::from(device));
    Operation {
        key: IdemKey::for_device(device, n, 0xfeed),
        device,
        kind: OpKind::Contribution {
            community: "kibera".into(),
            nation: "ke".into(),
            amount_minor,
        },
    }
}

#[test]
fn a_key_or_operation_of_another_device_is_refused_and_touches_nothing() {
    // Goal: nothing a device sends can touch another device's operations: device 9 cannot
    // take device 3's key (or claim to be device 3), and the victim's own operation under
    // that key is accepted afterwards; the planted `no-key-owner-check` accepts the thief.
    let mut t = booted(&[LinkKind::Fibre]);
    let mut durable = DurableState::new();
    let victim = contribution_op(3, 1, 1_000);
    let mut theft = victim.clone();
    theft.kind = OpKind::Contribution {
        community: "attacker".into(),
        nation: "xx".into(),
        amount_minor: 5_000_000,
    };
    // The thief names the victim as the device, or itself with the victim's key.
    let mut own_name = theft.clone();
    own_name.device = DeviceId(9);
    for op in [theft.clone(), own_name] {
        let r = submit_as(&mut t, Time::ZERO, DeviceId(9), op, &mut durable);
        assert!(matches!(&r[..], [SubmitReply::Forbidden { .. }]), "{r:?}");
    }
    assert!(durable.is_empty(), "nothing stored: {durable:?}");
    assert_eq!(t.status().outbox, 0);
    let r = submit_as(
        &mut t,
        Time::ZERO,
        DeviceId(3),
        victim.clone(),
        &mut durable,
    );
    assert_eq!(r, vec![SubmitReply::Accepted]);
    assert_eq!(
        durable.get(&Key::Outbox(victim.key.clone())),
        Some(&Record::Outbox(victim))
    );

    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.check_key_owner = false;
    let mut planted = Tower::new(cfg, 1, Time::ZERO);
    drain(&mut planted);
    let r = submit_as(&mut planted, Time::ZERO, DeviceId(9), theft, &mut durable);
    assert_eq!(r, vec![SubmitReply::Accepted], "planted bug takes the key");
}

#[test]
fn operations_the_origin_would_reject_are_refused_at_the_edge() {
    // Goal: the tower checks the origin's rules (one function) before it acknowledges, so
    // "acknowledged" never means "the origin will reject it"; the planted
    // `no-edge-validation` acknowledges them.
    let cases = [
        (contribution_op(3, 1, 0), "op.amount_minor"),
        (
            contribution_op(3, 2, crate::ledger::AMOUNT_MINOR_MAX + 1),
            "op.amount_minor",
        ),
        (
            Operation {
                kind: OpKind::Contribution {
                    community: String::new(),
                    nation: "ke".into(),
                    amount_minor: 5,
                },
                ..contribution_op(3, 3, 5)
            },
            "op.community",
        ),
    ];
    let mut origin = crate::origin::Origin::new(crate::origin::OriginConfig::default());
    for (op, field) in cases {
        let mut t = booted(&[LinkKind::Fibre]);
        let mut durable = DurableState::new();
        let r = submit_as(&mut t, Time::ZERO, op.device, op.clone(), &mut durable);
        assert!(
            matches!(&r[..], [SubmitReply::Invalid { invalid }] if invalid.field == field),
            "{op:?}: {r:?}"
        );
        assert!(durable.is_empty());
        // The origin, given the same operation, rejects it.
        origin.handle_message(
            Time::ZERO,
            Peer::Tower(TowerId(1)),
            Message::ForwardOps {
                ops: vec![op.clone()],
            },
        );
        let rejected = std::iter::from_fn(|| origin.poll_action()).any(|a| {
            matches!(
                a,
                Action::Write {
                    record: Record::Applied {
                        outcome: OpOutcome::Rejected { .. },
                        ..
                    },
                    ..
                }
            )
        });
        assert!(rejected, "the origin rejects {op:?} too");

        let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
        cfg.validate_ops = false;
        let mut planted = Tower::new(cfg, 1, Time::ZERO);
        drain(&mut planted);
        let r = submit_as(&mut planted, Time::ZERO, op.device, op, &mut durable);
        assert_eq!(
            r,
            vec![SubmitReply::Accepted],
            "planted bug acknowledges it"
        );
    }
    // A valid operation passes.
    let mut t = booted(&[LinkKind::Fibre]);
    let op = contribution_op(3, 9, crate::ledger::AMOUNT_MINOR_MAX);
    let r = submit_as(&mut t, Time::ZERO, op.device, op, &mut DurableState::new());
    assert_eq!(r, vec![SubmitReply::Accepted]);
}

#[test]
fn a_confirmed_key_is_remembered_durably_and_its_reuse_with_another_body_is_a_conflict() {
    // Goal: the tower does not forget a key once the origin confirmed it: the same
    // operation again is answered as a replay, another body under the key is a conflict
    // (422), also after a restart; the planted `forget-confirmed` accepts the reuse (the
    // acknowledged-then-dropped bug).
    let mut t = booted(&[LinkKind::Fibre]);
    let mut durable = DurableState::new();
    let op = contribution_op(3, 1, 1_000);
    let mut reuse = op.clone();
    reuse.kind = OpKind::Contribution {
        community: "other".into(),
        nation: "ke".into(),
        amount_minor: 2_000,
    };
    assert_eq!(
        submit_as(&mut t, Time::ZERO, op.device, op.clone(), &mut durable),
        vec![SubmitReply::Accepted]
    );
    confirm(
        &mut t,
        Time::from_secs(1),
        &op.key,
        OpOutcome::Applied { seq: 1 },
        &mut durable,
    );
    assert_eq!(t.status().outbox, 0);
    assert!(!durable.contains_key(&Key::Outbox(op.key.clone())));
    assert!(matches!(
        durable.get(&Key::Confirmed(op.key.clone())),
        Some(Record::Confirmed(c)) if c.fingerprint == op.fingerprint() && c.outcome == OpOutcome::Applied { seq: 1 }
    ));
    let check = |t: &mut Tower, durable: &mut DurableState| {
        assert_eq!(
            submit_as(t, Time::from_secs(2), op.device, op.clone(), durable),
            vec![SubmitReply::Duplicate]
        );
        assert_eq!(
            submit_as(t, Time::from_secs(2), op.device, reuse.clone(), durable),
            vec![SubmitReply::Conflict]
        );
        assert_eq!(t.status().outbox, 0, "nothing new held");
    };
    check(&mut t, &mut durable);
    let mut restarted = Tower::recover(
        TowerConfig::new(TowerId(1), &[LinkKind::Fibre]),
        2,
        Time::ZERO,
        &durable,
    );
    drain(&mut restarted);
    check(&mut restarted, &mut durable);
    assert_eq!(restarted.status().confirmed, 1);

    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.remember_confirmed = false;
    let mut planted = Tower::new(cfg, 1, Time::ZERO);
    drain(&mut planted);
    let mut d2 = DurableState::new();
    submit_as(&mut planted, Time::ZERO, op.device, op.clone(), &mut d2);
    confirm(
        &mut planted,
        Time::from_secs(1),
        &op.key,
        OpOutcome::Applied { seq: 1 },
        &mut d2,
    );
    assert_eq!(
        submit_as(&mut planted, Time::from_secs(2), op.device, reuse, &mut d2),
        vec![SubmitReply::Accepted],
        "the planted bug acknowledges a reused key"
    );
}

#[test]
fn the_memory_of_confirmed_keys_is_bounded_by_its_window_and_its_size() {
    // Goal: a bounded memory: the oldest confirmed keys go first when it is full, and every
    // key goes once its window has passed (its record deleted too).
    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.confirmed_max = 2;
    cfg.confirmed_window = Duration::from_secs(3600);
    let mut t = Tower::new(cfg, 1, Time::ZERO);
    drain(&mut t);
    let mut durable = DurableState::new();
    let ops: Vec<Operation> = (1..=3).map(|n| contribution_op(3, n, 10)).collect();
    for (i, op) in ops.iter().enumerate() {
        let now = Time::from_secs(i as u64);
        submit_as(&mut t, now, op.device, op.clone(), &mut durable);
        confirm(
            &mut t,
            now,
            &op.key,
            OpOutcome::Applied { seq: i as u64 + 1 },
            &mut durable,
        );
    }
    let remembered = |d: &DurableState| {
        d.keys()
            .filter_map(|k| match k {
                Key::Confirmed(k) => Some(k.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        remembered(&durable),
        vec![ops[1].key.clone(), ops[2].key.clone()]
    );
    assert_eq!(t.op_status(ops[0].device, &ops[0].key), OpStatus::Unknown);
    // The window: the first remaining key was confirmed at 1 s, so it goes at 1 h + 1 s.
    assert_eq!(
        t.poll_timeout().map(|x| x <= Time::from_secs(3601)),
        Some(true)
    );
    let late = Time::from_secs(3601);
    t.handle_timeout(late);
    let mut actions = drain(&mut t);
    if let Some(id) = t.fsync() {
        actions.push(Action::Fsync { id });
    }
    complete_io(&mut t, late, actions, &mut durable);
    assert_eq!(remembered(&durable), vec![ops[2].key.clone()]);
    assert_eq!(t.status().confirmed, 1);
}

#[test]
fn an_operations_status_is_told_to_its_owner_only() {
    // Goal: the device learns what became of its operation (pending, then the origin's
    // verdict with the fingerprint it is about); any other device learns nothing.
    let mut t = booted(&[LinkKind::Fibre]);
    let mut durable = DurableState::new();
    let op = contribution_op(3, 1, 1_000);
    let owner = op.device;
    assert_eq!(t.op_status(owner, &op.key), OpStatus::Unknown);
    submit_as(&mut t, Time::ZERO, owner, op.clone(), &mut durable);
    assert_eq!(t.op_status(owner, &op.key), OpStatus::Pending);
    assert_eq!(t.op_status(DeviceId(9), &op.key), OpStatus::Unknown);
    confirm(
        &mut t,
        Time::from_secs(1),
        &op.key,
        OpOutcome::Conflict,
        &mut durable,
    );
    let done = OpStatus::Done {
        outcome: OpOutcome::Conflict,
        fingerprint: op.fingerprint(),
    };
    assert_eq!(t.op_status(owner, &op.key), done);
    assert_eq!(t.op_status(DeviceId(9), &op.key), OpStatus::Unknown);
    // And as messages, the way devices ask.
    t.handle_message(
        Time::from_secs(2),
        Peer::Device(owner),
        Message::StatusRequest {
            keys: vec![op.key.clone()],
        },
    );
    let answers = drain(&mut t);
    assert!(
        sends(&answers).iter().any(|m| matches!(m, Message::StatusReply { statuses } if statuses == &vec![(op.key.clone(), done.clone())])),
        "{answers:?}"
    );
}

#[test]
fn a_refused_write_is_not_stored_and_a_failed_commit_is_an_unknown_outcome() {
    // Goal: the device is told the truth. A write the store refused stored nothing ("not
    // stored"); a failed fsync may have reached the disk anyway ("outcome unknown": retry
    // with the same key). Either way the op leaves the outbox and is not acknowledged.
    for (write_fails, prefix) in [(true, RETRY_NOT_STORED), (false, RETRY_OUTCOME_UNKNOWN)] {
        let mut t = booted(&[LinkKind::Fibre]);
        submit(&mut t, Time::ZERO, message_op(3, "a", "b"));
        for a in drain(&mut t) {
            match a {
                Action::Write { id, .. } if write_fails => {
                    t.handle_write_done(Time::ZERO, id, Err("ENOSPC".into()))
                }
                Action::Write { id, .. } => t.handle_write_done(Time::ZERO, id, Ok(())),
                Action::Fsync { id } if write_fails => t.handle_fsync_done(Time::ZERO, id, Ok(())),
                Action::Fsync { id } => t.handle_fsync_done(Time::ZERO, id, Err("EIO".into())),
                _ => {}
            }
        }
        let replies = replies(&drain(&mut t));
        match &replies[..] {
            [SubmitReply::Retry { reason }] => {
                assert!(reason.starts_with(prefix), "{reason}");
                let cause = if write_fails { "ENOSPC" } else { "EIO" };
                assert!(reason.contains(cause), "{reason}");
            }
            other => panic!("write fails: {write_fails}: {other:?}"),
        }
        assert_eq!(t.status().outbox, 0);
        assert!(t.outbox_acked().is_empty());
    }
}

#[test]
fn a_fetch_task_that_spent_its_restart_budget_on_a_failing_disk_is_parked() {
    // Goal: `Tower::parked` names the fetch task once chunk writes failing on a full disk
    // spent its restart budget, and forgets it when the park is over.
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, "alert", Priority::P0, &bytes(3, 200_000));
    let origin = origin_store(&chunks);
    offer_catalog(&mut t, &[&e]);
    let mut now = Time::ZERO;
    let mut parked_at = None;
    for _ in 0..1_000 {
        let mut requested = Vec::new();
        for a in drain(&mut t) {
            match a {
                Action::Write {
                    id,
                    record: Record::Chunk(_),
                } => t.handle_write_done(now, id, Err("No space left on device".into())),
                Action::Write { id, .. } | Action::Delete { id, .. } => {
                    t.handle_write_done(now, id, Ok(()))
                }
                Action::Fsync { id } => t.handle_fsync_done(now, id, Ok(())),
                Action::Probe { link } => {
                    t.handle_probe(now, link, ProbeOutcome::ok(Duration::from_millis(20)))
                }
                Action::Send {
                    msg: Message::ChunkRequest { hash },
                    ..
                } => requested.push(hash),
                Action::Emit(Event::TaskParked {
                    task: TaskKind::Fetch,
                }) => parked_at = Some(now),
                _ => {}
            }
        }
        if parked_at.is_some() {
            break;
        }
        if requested.is_empty() {
            now = t
                .poll_timeout()
                .expect("a timer while the fetch task waits");
            t.handle_timeout(now);
        }
        for h in requested {
            reply_chunk(&mut t, now, h, origin.get(&h).cloned());
        }
    }
    let at = parked_at.expect("the fetch task was never parked");
    assert!(t.parked(at).contains(&TaskKind::Fetch));
    assert_eq!(t.parked(at), vec![TaskKind::Fetch]);
    let park_for = t.config().supervisor.park_for;
    assert!(t.parked(at + park_for).is_empty(), "parked past its park");
}

#[test]
fn a_chunk_only_an_older_version_names_is_dropped_when_the_origin_lost_it() {
    // Goal: an origin that collected an old version's chunks (start-up garbage collection
    // keeps only what its entries name) does not wedge a tower that had queued them: a
    // "not found" for a chunk no item still misses is dropped, not a task failure.
    let mut t = booted(&[LinkKind::Fibre]);
    let (v1, _) = entry(1, "news", Priority::P1, &bytes(7, 120_000));
    let (m2, chunks2) = publish(
        ItemId::new("news"),
        2,
        Priority::P1,
        &bytes(8, 120_000),
        ChunkParams::default(),
    )
    .unwrap();
    let v2 = CatalogEntry {
        seq: 2,
        manifest: m2,
    };
    let origin = origin_store(&chunks2);
    offer_catalog(&mut t, &[&v1]);
    let mut durable = DurableState::new();
    let actions = drain(&mut t);
    let in_flight_v1 = chunk_requests(&complete_io(&mut t, Time::ZERO, actions, &mut durable));
    assert!(!in_flight_v1.is_empty(), "v1 chunks requested");
    offer_catalog(&mut t, &[&v2]);
    let mut replies: Vec<ChunkHash> = in_flight_v1;
    let mut failures = Vec::new();
    for _ in 0..10_000 {
        for h in std::mem::take(&mut replies) {
            reply_chunk(&mut t, Time::ZERO, h, origin.get(&h).cloned());
        }
        let actions = drain(&mut t);
        if actions.is_empty() {
            break;
        }
        failures.extend(actions.iter().filter_map(|a| match a {
            Action::Emit(e @ (Event::TaskRestarted { .. } | Event::TaskParked { .. })) => {
                Some(e.clone())
            }
            _ => None,
        }));
        let rest = complete_io(&mut t, Time::ZERO, actions, &mut durable);
        replies = chunk_requests(&rest);
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        t.serve_plan(Time::ZERO, &ItemId::new("news"))
            .map(|p| p.manifest.version),
        Ok(2)
    );
    assert_eq!(t.status().queued, [0; 4], "stale jobs left queued");
}

// ----- the origin's identity (trust.rs) ----------------------------------------------------

const O1: OriginId = OriginId(0x0101);
const O2: OriginId = OriginId(0x0202);

/// `entry` with the given version (another origin may number its versions differently).
fn entry_v(
    seq: u64,
    item: &str,
    version: u64,
    data: &[u8],
) -> (CatalogEntry, Vec<crate::content::Chunk>) {
    let (manifest, chunks) = publish(
        ItemId::new(item),
        version,
        Priority::P1,
        data,
        ChunkParams::default(),
    )
    .unwrap();
    (CatalogEntry { seq, manifest }, chunks)
}

/// `origin` answers the catalog request with `entries`.
fn offer_catalog_from(
    t: &mut Tower,
    now: Time,
    origin: Option<OriginId>,
    entries: &[&CatalogEntry],
) {
    offer_catalog_page(t, now, origin, entries, false);
}

/// `origin` answers the catalog request with `entries`, saying whether it cut the page.
fn offer_catalog_page(
    t: &mut Tower,
    now: Time,
    origin: Option<OriginId>,
    entries: &[&CatalogEntry],
    more: bool,
) {
    t.handle_message(
        now,
        Peer::Origin,
        Message::CatalogReply {
            entries: entries
                .iter()
                .map(|e| SentEntry::Whole((*e).clone()))
                .collect(),
            origin,
            more,
        },
    );
}

/// Whether `actions` say the re-home ended in trusting `origin`, `dropped` items withdrawn.
fn rehomed_to(actions: &[Action], origin: OriginId, dropped: u64) -> bool {
    let adopted = Event::OriginAdopted {
        origin,
        rehomed: true,
        dropped,
    };
    emitted(actions, &adopted)
}

fn emitted(actions: &[Action], want: &Event) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Emit(e) if e == want))
}

fn catalog_requests(actions: &[Action]) -> Vec<u64> {
    sends(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::CatalogRequest { since_seq, .. } => Some(*since_seq),
            _ => None,
        })
        .collect()
}

fn forwards(actions: &[Action]) -> usize {
    sends(actions)
        .iter()
        .filter(|m| matches!(m, Message::ForwardOps { .. }))
        .count()
}

/// Run the tower's timers from `from` to `to` seconds, one second at a time, with every
/// probe answered OK, every write completed and every catalog request answered by
/// `catalog` (when given); chunk requests go unanswered. Returns every other action.
fn run_timers(
    t: &mut Tower,
    from: u64,
    to: u64,
    durable: &mut DurableState,
    catalog: Option<(Option<OriginId>, &[&CatalogEntry])>,
) -> Vec<Action> {
    let mut out = Vec::new();
    for s in from..=to {
        let now = Time::from_secs(s);
        t.handle_timeout(now);
        for _ in 0..100 {
            let actions = drain(t);
            if actions.is_empty() {
                break;
            }
            let rest = complete_io(t, now, actions, durable);
            for a in rest {
                match &a {
                    Action::Probe { link } => {
                        t.handle_probe(now, *link, ProbeOutcome::ok(Duration::from_millis(40)))
                    }
                    Action::Send {
                        msg: Message::CatalogRequest { .. },
                        ..
                    } => {
                        if let Some((origin, entries)) = catalog {
                            offer_catalog_from(t, now, origin, entries);
                        }
                    }
                    _ => {}
                }
                out.push(a);
            }
        }
    }
    out
}

/// A tower on fibre that adopted `O1` and holds `items` (fully synced, durable).
fn trusting_o1(items: &[(&CatalogEntry, &[crate::content::Chunk])]) -> (Tower, DurableState) {
    let mut t = booted(&[LinkKind::Fibre]);
    let entries: Vec<&CatalogEntry> = items.iter().map(|(e, _)| *e).collect();
    offer_catalog_from(&mut t, Time::ZERO, Some(O1), &entries);
    let store: BTreeMap<ChunkHash, Bytes> = items
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| (c.hash, c.bytes.clone())))
        .collect();
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &store, &mut durable);
    for (e, _) in items {
        assert_eq!(
            t.serve_plan(Time::ZERO, &e.manifest.item)
                .map(|p| (*p.manifest).clone()),
            Ok(e.manifest.clone())
        );
    }
    (t, durable)
}

#[test]
fn the_first_origin_seen_is_adopted_durably_and_kept_across_recovery() {
    // Goal: a tower with no trusted origin adopts the first one announcing an identity,
    // writes it durably, and a recovered tower still trusts it (and mismatches another).
    let (a, ac) = entry(1, "alert", Priority::P0, &bytes(20, 20_000));
    let (t, durable) = trusting_o1(&[(&a, &ac)]);
    assert_eq!(t.trusted_origin(), Some(O1));
    assert_eq!(
        durable.get(&Key::TrustedOrigin),
        Some(&Record::TrustedOrigin(Some(O1)))
    );
    let mut r = Tower::recover(t.config().clone(), 2, Time::ZERO, &durable);
    assert_eq!(r.trusted_origin(), Some(O1));
    drain(&mut r);
    offer_catalog_from(&mut r, Time::ZERO, Some(O2), &[]);
    let actions = drain(&mut r);
    assert!(emitted(
        &actions,
        &Event::OriginMismatch {
            expected: O1,
            found: Some(O2)
        }
    ));
    // An old store (no trust record) adopts whoever announces an identity first.
    let mut old = durable.clone();
    old.remove(&Key::TrustedOrigin);
    let mut r = Tower::recover(t.config().clone(), 2, Time::ZERO, &old);
    assert_eq!(r.trusted_origin(), None);
    drain(&mut r);
    offer_catalog_from(&mut r, Time::ZERO, Some(O2), &[]);
    assert!(emitted(
        &drain(&mut r),
        &Event::OriginAdopted {
            origin: O2,
            rehomed: false,
            dropped: 0
        }
    ));
    assert_eq!(r.trusted_origin(), Some(O2));
}

#[test]
fn another_origin_stops_every_sync_but_not_the_service() {
    // Goal: when another origin answers, the tower adopts nothing from it, requests no
    // chunks, forwards nothing (a forward reply meanwhile leaves the outbox as it is),
    // keeps serving what it verified and says so with an event; when the trusted origin
    // answers again, syncing resumes.
    let (a, ac) = entry(1, "alert", Priority::P0, &bytes(21, 30_000));
    let (mut t, mut durable) = trusting_o1(&[(&a, &ac)]);
    let op = message_op(3, "clinic", "fever");
    submit(&mut t, Time::ZERO, op.clone());
    let actions = drain(&mut t);
    let rest = complete_io(&mut t, Time::ZERO, actions, &mut durable);
    let rest = [rest, drain(&mut t)].concat();
    assert_eq!(forwards(&rest), 1, "forwarded to the trusted origin");
    // Origin 2 at the same address: other bytes under alert v1, and an item of its own.
    let (a2, _) = entry(1, "alert", Priority::P0, &bytes(22, 30_000));
    let (b, _) = entry(2, "news", Priority::P1, &bytes(23, 10_000));
    offer_catalog_from(&mut t, Time::ZERO, Some(O2), &[&a2, &b]);
    let actions = drain(&mut t);
    assert!(emitted(
        &actions,
        &Event::OriginMismatch {
            expected: O1,
            found: Some(O2)
        }
    ));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Write { .. })),
        "nothing adopted"
    );
    assert!(chunk_requests(&actions).is_empty());
    assert_eq!(t.origin_mismatch(), Some((O1, Some(O2))));
    // The forward sent before is answered (by whoever): the operation stays.
    t.handle_message(
        Time::ZERO,
        Peer::Origin,
        Message::ForwardReply {
            receipts: vec![crate::protocol::OpReceipt {
                key: op.key.clone(),
                outcome: OpOutcome::Applied { seq: 1 },
            }],
        },
    );
    assert_eq!(t.outbox_acked(), vec![op.key.clone()]);
    // Two minutes of origin 2: catalog polls go on, nothing else does.
    let later = run_timers(&mut t, 1, 120, &mut durable, Some((Some(O2), &[&a2, &b])));
    assert!(
        catalog_requests(&later).len() >= 3,
        "the catalog is still polled"
    );
    assert_eq!(forwards(&later), 0, "nothing forwarded to a stranger");
    assert!(
        chunk_requests(&later).is_empty(),
        "nothing fetched from a stranger"
    );
    assert!(!later.iter().any(|a| matches!(
        a,
        Action::Write {
            record: Record::Entry(_),
            ..
        }
    )));
    // Offline service continues: the verified old bytes, nothing of origin 2's.
    let now = Time::from_secs(120);
    assert_eq!(
        t.serve_plan(now, &ItemId::new("alert"))
            .map(|p| (*p.manifest).clone()),
        Ok(a.manifest.clone())
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("news")),
        Err(Refusal::NotHeld)
    );
    // A chunk reply's identity counts too (reported by the driver).
    t.handle_origin_identity(now, Some(O2));
    assert_eq!(t.origin_mismatch(), Some((O1, Some(O2))));
    // The trusted origin is back: sync resumes, the operation is forwarded.
    let back = run_timers(&mut t, 121, 150, &mut durable, Some((Some(O1), &[&a])));
    assert!(emitted(&back, &Event::OriginRestored { origin: O1 }));
    assert_eq!(t.origin_mismatch(), None);
    assert!(forwards(&back) >= 1);
}

#[test]
fn without_the_origin_check_a_different_origin_is_synced_from_silently() {
    // Goal: the planted bug (check_origin = false) reproduces the silent switch: no
    // event, catalog polls continue from the old cursor (an item the new origin numbers
    // below it is never fetched), and the old bytes are served on as if nothing happened.
    let mut cfg = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    cfg.check_origin = false;
    let mut t = Tower::new(cfg, 1, Time::ZERO);
    drain(&mut t);
    let (a, ac) = entry(30, "alert", Priority::P0, &bytes(24, 20_000));
    offer_catalog_from(&mut t, Time::ZERO, Some(O1), &[&a]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin_store(&ac), &mut durable);
    assert_eq!(t.trusted_origin(), None, "nothing remembered");
    let (a2, _) = entry(1, "alert", Priority::P0, &bytes(25, 20_000));
    let later = run_timers(&mut t, 1, 90, &mut durable, Some((Some(O2), &[&a2])));
    assert!(
        !later
            .iter()
            .any(|a| matches!(a, Action::Emit(Event::OriginMismatch { .. })))
    );
    assert!(
        catalog_requests(&later).iter().all(|s| *s == 30),
        "{:?}",
        catalog_requests(&later)
    );
    let now = Time::from_secs(90);
    assert_eq!(
        t.serve_plan(now, &ItemId::new("alert"))
            .map(|p| (*p.manifest).clone()),
        Ok(a.manifest)
    );
}

#[test]
fn rehome_reconciles_held_content_with_the_new_origin() {
    // Goal: after an operator's re-home the tower serves only what the new origin vouches
    // for: an identical item is kept (and served throughout, its chunks not fetched
    // again), other bytes under the same id and version are replaced, an item the new
    // origin lacks is withdrawn and its entry deleted, an item the new origin numbers
    // below the old cursor is fetched; the new trust is durable only after all that.
    let (kept, kc) = entry(10, "kept", Priority::P1, &bytes(30, 40_000));
    let (alert, alc) = entry(20, "alert", Priority::P0, &bytes(31, 30_000));
    let (news, nc) = entry(30, "news", Priority::P1, &bytes(32, 30_000));
    let (mut t, mut durable) = trusting_o1(&[(&kept, &kc), (&alert, &alc), (&news, &nc)]);
    // Origin 2: same "kept" (its own seq), other bytes under alert v1, no news, a fresh
    // item at a seq below the old cursor (30).
    let kept2 = CatalogEntry {
        seq: 5,
        manifest: kept.manifest.clone(),
    };
    let (alert2, alc2) = entry_v(1, "alert", 1, &bytes(33, 30_000));
    let (fresh, fc) = entry_v(6, "fresh", 1, &bytes(34, 20_000));
    let o2_catalog = [&alert2, &kept2, &fresh];
    offer_catalog_from(&mut t, Time::ZERO, Some(O2), &o2_catalog);
    drain(&mut t);
    assert!(t.origin_mismatch().is_some());

    let now = Time::from_secs(1);
    t.rehome(now);
    let actions = drain(&mut t);
    assert!(emitted(&actions, &Event::RehomeStarted { from: Some(O1) }));
    assert!(t.rehoming() && t.origin_mismatch().is_none());
    let asked = complete_io(&mut t, now, actions, &mut durable);
    assert_eq!(
        durable.get(&Key::TrustedOrigin),
        Some(&Record::TrustedOrigin(None))
    );
    // A crash now resumes the re-home.
    let r = Tower::recover(t.config().clone(), 3, now, &durable);
    assert!(r.rehoming());
    // Until the new catalog is read, what the tower held is served.
    assert!(t.serve_plan(now, &ItemId::new("news")).is_ok());
    // The next catalog poll reads origin 2's catalog from the start.
    assert_eq!(catalog_requests(&asked), vec![0]);
    offer_catalog_from(&mut t, Time::from_secs(2), Some(O2), &o2_catalog);
    let actions = drain(&mut t);
    assert!(rehomed_to(&actions, O2, 1));
    // The tower says what it serves no more (news: lacking; alert: other bytes), and not
    // what it keeps.
    let withdrawn = |item: &str| {
        emitted(
            &actions,
            &Event::ContentWithdrawn {
                item: ItemId::new(item),
            },
        )
    };
    assert!(withdrawn("news") && withdrawn("alert") && !withdrawn("kept"));
    assert_eq!(t.trusted_origin(), Some(O2));
    let now = Time::from_secs(2);
    assert_eq!(
        t.serve_plan(now, &ItemId::new("news")),
        Err(Refusal::NotHeld)
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("alert")),
        Err(Refusal::NotHeld),
        "old bytes withdrawn"
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("kept"))
            .map(|p| (*p.manifest).clone()),
        Ok(kept.manifest.clone())
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Delete { key: Key::Entry(i), .. } if i.0 == "news"))
    );
    // Sync with origin 2: only alert2's and fresh's chunks move.
    let store: BTreeMap<ChunkHash, Bytes> = alc2
        .iter()
        .chain(fc.iter())
        .map(|c| (c.hash, c.bytes.clone()))
        .collect();
    let mut requested = chunk_requests(&actions);
    let rest = complete_io(&mut t, now, actions, &mut durable);
    requested.extend(chunk_requests(&rest));
    for hash in chunk_requests(&rest) {
        reply_chunk(&mut t, now, hash, store.get(&hash).cloned());
    }
    sync_all(&mut t, now, &store, &mut durable);
    assert!(
        requested.iter().all(|h| store.contains_key(h)),
        "kept's chunks are not fetched again"
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("alert"))
            .map(|p| (*p.manifest).clone()),
        Ok(alert2.manifest.clone())
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("fresh"))
            .map(|p| (*p.manifest).clone()),
        Ok(fresh.manifest.clone())
    );
    assert_eq!(
        t.serve_plan(now, &ItemId::new("kept"))
            .map(|p| (*p.manifest).clone()),
        Ok(kept.manifest.clone())
    );
    // Durable: the new trust, no entry for news, kept re-stamped with origin 2's seq.
    assert_eq!(
        durable.get(&Key::TrustedOrigin),
        Some(&Record::TrustedOrigin(Some(O2)))
    );
    assert!(!durable.contains_key(&Key::Entry(ItemId::new("news"))));
    assert!(
        matches!(durable.get(&Key::Entry(ItemId::new("kept"))), Some(Record::Entry(e)) if e.seq == 5)
    );
    // And the cursor is origin 2's: the next poll asks from its highest seq.
    let polls = run_timers(&mut t, 3, 40, &mut durable, None);
    assert_eq!(catalog_requests(&polls).first(), Some(&6));
    // A restart trusts origin 2 and serves the same.
    let mut r = Tower::recover(t.config().clone(), 3, now, &durable);
    assert_eq!(r.trusted_origin(), Some(O2));
    assert_eq!(r.servable(), t.servable());
    drain(&mut r);
}

#[test]
fn a_rehome_page_the_origin_cut_short_is_not_its_last() {
    // Goal: an origin cuts a catalog page by its chunk references, not only at 1024
    // entries; a re-home that took a short page for the last would withdraw everything
    // on the pages after it. With `more`, the tower reads on (at once, from the page's
    // last seq) and withdraws nothing the new origin holds.
    let (kept, kc) = entry(10, "kept", Priority::P1, &bytes(50, 30_000));
    let (news, nc) = entry(20, "news", Priority::P1, &bytes(51, 30_000));
    let (mut t, mut durable) = trusting_o1(&[(&kept, &kc), (&news, &nc)]);
    let kept2 = CatalogEntry {
        seq: 3,
        manifest: kept.manifest.clone(),
    };
    let news2 = CatalogEntry {
        seq: 4,
        manifest: news.manifest.clone(),
    };
    offer_catalog_from(&mut t, Time::ZERO, Some(O2), &[&kept2, &news2]);
    drain(&mut t);
    let now = Time::from_secs(1);
    t.rehome(now);
    let actions = drain(&mut t);
    let asked = complete_io(&mut t, now, actions, &mut durable);
    assert_eq!(catalog_requests(&asked), vec![0]);
    offer_catalog_page(&mut t, now, Some(O2), &[&kept2], true);
    let actions = drain(&mut t);
    let adopted = |a: &[Action]| {
        a.iter()
            .any(|a| matches!(a, Action::Emit(Event::OriginAdopted { .. })))
    };
    assert!(!adopted(&actions), "a cut page is not the last");
    assert!(t.rehoming());
    let asked = complete_io(&mut t, now, actions, &mut durable);
    let mut polls = catalog_requests(&asked);
    polls.extend(catalog_requests(&run_timers(
        &mut t,
        1,
        1,
        &mut durable,
        None,
    )));
    assert_eq!(
        polls.first(),
        Some(&3),
        "the next page, from the cut one's last seq"
    );
    offer_catalog_page(&mut t, Time::from_secs(2), Some(O2), &[&news2], false);
    let actions = drain(&mut t);
    assert!(rehomed_to(&actions, O2, 0));
    assert!(
        !(actions.iter()).any(|a| matches!(a, Action::Emit(Event::ContentWithdrawn { .. }))),
        "nothing the new origin holds is withdrawn"
    );
}

#[test]
fn a_rehome_interrupted_before_its_trust_is_durable_starts_over() {
    // Goal: the new trust is written only after the reconciliation's writes are durable;
    // a crash before that leaves the re-home pending, and it completes on the next poll.
    let (news, nc) = entry(30, "news", Priority::P1, &bytes(40, 20_000));
    let (mut t, mut durable) = trusting_o1(&[(&news, &nc)]);
    t.rehome(Time::ZERO);
    let actions = drain(&mut t);
    complete_io(&mut t, Time::ZERO, actions, &mut durable);
    offer_catalog_from(&mut t, Time::ZERO, Some(O2), &[]);
    // The reconciliation's writes are issued, not yet durable: crash here.
    let pending = drain(&mut t);
    assert!(pending.iter().any(|a| matches!(
        a,
        Action::Delete {
            key: Key::Entry(_),
            ..
        }
    )));
    assert!(
        !pending.iter().any(|a| matches!(
            a,
            Action::Write {
                record: Record::TrustedOrigin(Some(_)),
                ..
            }
        )),
        "trust waits for the deletes"
    );
    let mut r = Tower::recover(t.config().clone(), 5, Time::ZERO, &durable);
    assert!(r.rehoming());
    assert!(
        r.servable().contains_key(&ItemId::new("news")),
        "nothing half-done"
    );
    let asked = drain(&mut r);
    assert_eq!(catalog_requests(&asked), vec![0]);
    offer_catalog_from(&mut r, Time::ZERO, Some(O2), &[]);
    let mut durable2 = durable.clone();
    sync_all(&mut r, Time::ZERO, &BTreeMap::new(), &mut durable2);
    assert_eq!(
        durable2.get(&Key::TrustedOrigin),
        Some(&Record::TrustedOrigin(Some(O2)))
    );
    assert!(!durable2.contains_key(&Key::Entry(ItemId::new("news"))));
    assert!(r.servable().is_empty());
}

#[test]
fn a_reply_to_a_poll_sent_before_the_rehome_withdraws_nothing() {
    // Goal: the answer to a catalog poll sent before the re-home (from the old cursor: a
    // partial catalog) is not taken for the new origin's whole catalog; the re-home then
    // reads it from seq 0.
    let (news, nc) = entry(30, "news", Priority::P1, &bytes(50, 20_000));
    let (mut t, mut durable) = trusting_o1(&[(&news, &nc)]);
    let polls = run_timers(&mut t, 1, 31, &mut durable, None);
    assert_eq!(
        catalog_requests(&polls),
        vec![30],
        "a poll from the cursor is in flight"
    );
    let now = Time::from_secs(31);
    t.rehome(now);
    let actions = drain(&mut t);
    let rest = complete_io(&mut t, now, actions, &mut durable);
    assert!(catalog_requests(&rest).is_empty(), "one poll at a time");
    offer_catalog_from(&mut t, now, Some(O2), &[]);
    let actions = drain(&mut t);
    assert!(t.rehoming(), "still re-homing");
    assert!(
        t.servable().contains_key(&ItemId::new("news")),
        "nothing withdrawn"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. })));
    assert_eq!(
        catalog_requests(&actions),
        vec![0],
        "the whole catalog, at once"
    );
}

#[test]
fn a_rehome_poll_that_was_the_breakers_trial_closes_it() {
    // Goal: when the breaker is half-open and the re-home's catalog poll is its trial, the
    // answer closes it and polling goes on (found with `origin-busy` over a re-home: the
    // page was taken without the breaker hearing of it, which stayed half-open, refusing
    // every call, and the tower never polled again).
    let (news, nc) = entry(30, "news", Priority::P1, &bytes(60, 20_000));
    let (mut t, mut durable) = trusting_o1(&[(&news, &nc)]);
    // The origin stops answering: polls time out until the breaker opens.
    run_timers(&mut t, 1, 400, &mut durable, None);
    assert!(t.status().breaker_openings >= 1, "{:?}", t.status());
    t.rehome(Time::from_secs(400));
    // From now on the new origin answers every poll; the first the breaker admits is its
    // trial, and the re-home's first page.
    let after = run_timers(&mut t, 401, 1200, &mut durable, Some((Some(O2), &[])));
    assert!(!t.rehoming(), "the re-home finished");
    assert_eq!(t.trusted_origin(), Some(O2));
    let polls = catalog_requests(&after);
    assert!(polls.len() >= 10, "polling goes on: {polls:?}");
}

// ----- the read path (tower/read.rs) --------------------------------------------------

/// A booted tower holding `item` (class P3, several chunks) complete; its chunks.
fn holding(item: &str, seed: u64) -> (Tower, CatalogEntry, Vec<crate::content::Chunk>) {
    let mut t = booted(&[LinkKind::Fibre]);
    let (e, chunks) = entry(1, item, Priority::P3, &bytes(seed, 300_000));
    assert!(
        e.manifest.chunks.len() >= 3,
        "the item needs several chunks"
    );
    offer_catalog(&mut t, &[&e]);
    let mut durable = DurableState::new();
    sync_all(&mut t, Time::ZERO, &origin_store(&chunks), &mut durable);
    (t, e, chunks)
}

#[test]
fn a_read_checks_every_chunk_and_quarantines_every_rotten_one() {
    // Goal: one read that finds rot reports every rotten chunk of the item (not only the
    // first), answers "repairing" (not "not held"), and the tower quarantines and fetches
    // each of them again.
    let (mut t, e, chunks) = holding("news", 31);
    let news = ItemId::new("news");
    let plan = t.serve_plan(Time::ZERO, &news).expect("servable");
    let n = plan.manifest.chunks.len();
    let verdicts: Vec<read::ChunkVerdict> = (0..n)
        .map(|i| {
            if i == 0 || i == n - 1 {
                read::ChunkVerdict::Rotten
            } else {
                read::ChunkVerdict::Intact
            }
        })
        .collect();
    let outcome = plan.decide(verdicts);
    let first = e.manifest.chunks[0].hash;
    let last = e.manifest.chunks[n - 1].hash;
    assert_eq!(
        outcome,
        read::ReadOutcome::Repair {
            rotten: vec![first, last]
        }
    );
    assert_eq!(outcome.refusal(), Some(Refusal::Repairing));
    t.handle_read_result(Time::ZERO, &outcome);
    let actions = drain(&mut t);
    let quarantined: Vec<ChunkHash> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(Event::ChunkQuarantined { hash }) => Some(*hash),
            _ => None,
        })
        .collect();
    assert_eq!(quarantined, vec![first, last]);
    let deleted = actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Delete {
                    key: Key::Chunk(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(deleted, 2, "both rotten chunks are deleted: {actions:?}");
    let mut fetched = chunk_requests(&actions);
    fetched.sort();
    let mut want = vec![first, last];
    want.sort();
    assert_eq!(fetched, want, "both are fetched again");
    assert!(!t.holds_chunk(&first) && !t.holds_chunk(&last));
    assert_eq!(
        t.serve_plan(Time::ZERO, &news),
        Err(Refusal::Repairing),
        "later reads say 'retry' too while the chunks are fetched"
    );
    // Both come back: served again.
    let origin = origin_store(&chunks);
    let mut durable = DurableState::new();
    complete_io(&mut t, Time::ZERO, actions, &mut durable);
    for hash in [first, last] {
        reply_chunk(&mut t, Time::ZERO, hash, origin.get(&hash).cloned());
    }
    sync_all(&mut t, Time::ZERO, &origin, &mut durable);
    assert!(t.serve_plan(Time::ZERO, &news).is_ok());
}

#[test]
fn a_read_with_every_chunk_intact_is_served_and_changes_nothing() {
    // Goal: a clean read is served and a served outcome quarantines nothing.
    let (mut t, _, _) = holding("news", 32);
    let news = ItemId::new("news");
    let plan = t.serve_plan(Time::ZERO, &news).expect("servable");
    let outcome = plan.decide(vec![read::ChunkVerdict::Intact; plan.manifest.chunks.len()]);
    assert_eq!(outcome, read::ReadOutcome::Serve);
    assert_eq!(outcome.refusal(), None);
    drain(&mut t);
    t.handle_read_result(Time::ZERO, &outcome);
    assert!(drain(&mut t).is_empty());
    assert!(t.serve_plan(Time::ZERO, &news).is_ok());
}

#[test]
fn a_missing_or_unjudged_chunk_is_never_served() {
    // Goal: a chunk the store has no bytes for stops the read even with skip-verify
    // (nothing to serve), a rotten one does not with skip-verify (the planted bug), and a
    // read whose driver judged too few chunks is not served and quarantines nothing.
    let (t, _, _) = holding("news", 33);
    let plan = t.read_view().plan(&ItemId::new("news")).expect("servable");
    let n = plan.manifest.chunks.len();
    let mut v = vec![read::ChunkVerdict::Intact; n];
    v[1] = read::ChunkVerdict::Missing;
    assert_eq!(
        plan.decide(v.clone()),
        read::ReadOutcome::Repair {
            rotten: vec![plan.manifest.chunks[1].hash]
        }
    );
    assert_eq!(
        plan.decide(vec![read::ChunkVerdict::Intact; n - 1]),
        read::ReadOutcome::Repair { rotten: vec![] }
    );

    let skip = read::plan(None, Some(plan.manifest.clone()), false, false).expect("planned");
    assert!(!skip.verifies());
    let mut rotten = vec![read::ChunkVerdict::Intact; n];
    rotten[0] = read::ChunkVerdict::Rotten;
    assert_eq!(skip.decide(rotten), read::ReadOutcome::Serve);
    assert_eq!(
        skip.decide(v),
        read::ReadOutcome::Repair {
            rotten: vec![plan.manifest.chunks[1].hash]
        }
    );
}

#[test]
fn the_read_view_plans_every_read_as_serve_plan_does() {
    // Goal: the shared view drivers plan from answers what serve_plan answers — held,
    // not held, a shed class (still served), shutting down — and refresh_read_view says
    // when it must be replaced.
    let (mut t, _, _) = holding("news", 34);
    let news = ItemId::new("news");
    let other = ItemId::new("other");
    let mut view = t.read_view();
    let same = |t: &mut Tower, view: &read::ReadView| {
        for item in [&news, &other] {
            assert_eq!(view.plan(item), t.serve_plan(Time::ZERO, item), "{item:?}");
        }
    };
    same(&mut t, &view);
    assert!(view.plan(&news).is_ok());
    assert_eq!(view.plan(&other), Err(Refusal::NotHeld));
    assert_eq!(t.refresh_read_view(&view), None, "nothing moved");

    t.handle_power(Time::from_secs(1), on_battery(550));
    assert_eq!(t.power_mode(), PowerMode::ShedP3);
    if let Some(v) = t.refresh_read_view(&view) {
        view = v;
    }
    same(&mut t, &view);
    assert!(view.plan(&news).is_ok(), "a shed class is still served");

    let chunk = view.items()[&news].chunks[0].hash;
    t.report_corrupt(Time::ZERO, chunk);
    view = t.refresh_read_view(&view).expect("the servable set moved");
    same(&mut t, &view);
    assert_eq!(view.plan(&news), Err(Refusal::Repairing));

    t.handle_power(Time::from_secs(2), on_battery(200));
    assert_eq!(t.power_mode(), PowerMode::ShuttingDown);
    let before = view.items.clone();
    view = t.refresh_read_view(&view).expect("the refusal moved");
    assert!(
        std::sync::Arc::ptr_eq(&before, &view.items),
        "same servable set, shared"
    );
    same(&mut t, &view);
    assert_eq!(view.plan(&other), Err(Refusal::PoweredDown));
}

#[test]
fn a_superseded_versions_missing_chunks_are_no_longer_wanted() {
    // Goal: an item that moves to a newer entry before the older one was fetched stops
    // waiting for the chunks only the older one needed: they leave the fetch queue. On
    // satellite (never P3 by class policy) they used to pile up, one set per version, for
    // the life of the tower; on other links they were fetched for nothing.
    let mut t = booted(&[LinkKind::Satellite]);
    let mut durable = DurableState::new();
    let mut last = Vec::new();
    for v in 1..=40u64 {
        let (manifest, chunks) = publish(
            ItemId::new("film"),
            v,
            Priority::P3,
            &bytes(v, 96 * 1024),
            ChunkParams::default(),
        )
        .unwrap();
        offer_catalog(&mut t, &[&CatalogEntry { seq: v, manifest }]);
        let actions = drain(&mut t);
        assert!(
            chunk_requests(&actions).is_empty(),
            "satellite does not carry P3"
        );
        complete_io(&mut t, Time::ZERO, actions, &mut durable);
        last = chunks;
    }
    let want: BTreeSet<ChunkHash> = last.iter().map(|c| c.hash).collect();
    assert!(want.len() > 1, "the item has several chunks");
    let wanted: BTreeSet<ChunkHash> = t.wanted.keys().copied().collect();
    assert!(
        wanted == want,
        "only the latest version's {} chunks may be wanted; {} are",
        want.len(),
        wanted.len()
    );
    let waited: BTreeSet<ChunkHash> = t.waiters.keys().copied().collect();
    assert!(
        waited == want,
        "only they may be waited for; {} are",
        waited.len()
    );
    assert!(
        t.scheduler.len() <= 2 * t.wanted.len() + QUEUE_SLACK,
        "the queue holds {} jobs for {} wanted chunks",
        t.scheduler.len(),
        t.wanted.len()
    );
    assert_eq!(t.status().items_pending, 1);
}

#[test]
fn a_chunk_shared_with_another_items_latest_entry_stays_wanted() {
    // Goal: releasing a superseded version's chunk must not drop a chunk another item
    // still misses (content-defined chunking shares chunks between items).
    let mut t = booted(&[LinkKind::Satellite]);
    let mut durable = DurableState::new();
    let data = bytes(7, 64 * 1024);
    let (a1, a1_chunks) = entry(1, "a", Priority::P3, &data);
    let (b1, _) = entry(2, "b", Priority::P3, &data);
    offer_catalog(&mut t, &[&a1, &b1]);
    let actions = drain(&mut t);
    complete_io(&mut t, Time::ZERO, actions, &mut durable);
    // "a" moves on to other bytes; "b" still needs the shared chunks.
    let (manifest, _) = publish(
        ItemId::new("a"),
        2,
        Priority::P3,
        &bytes(8, 64 * 1024),
        ChunkParams::default(),
    )
    .unwrap();
    offer_catalog(&mut t, &[&CatalogEntry { seq: 3, manifest }]);
    let actions = drain(&mut t);
    complete_io(&mut t, Time::ZERO, actions, &mut durable);
    for c in &a1_chunks {
        assert!(t.wanted.contains_key(&c.hash), "b still needs {}", c.hash);
        assert_eq!(
            t.waiters.get(&c.hash),
            Some(&BTreeSet::from([ItemId::new("b")]))
        );
    }
}

/// The keys of every forward batch in `actions`, in order.
fn forward_batches(actions: &[Action]) -> Vec<Vec<IdemKey>> {
    sends(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::ForwardOps { ops } => Some(ops.iter().map(|o| o.key.clone()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_planted_receipts_by_position_confirm_an_operation_the_origin_never_saw() {
    // Goal: the bug's shape. Batch [a] times out and is sent again; b arrives meanwhile.
    // The first reply confirms a and batch [b] goes out; the retry's late reply (a's
    // receipt again) then arrives. Matched by key it confirms nothing new; matched by
    // position it confirms b, which leaves the outbox although the origin has never seen
    // it — lost if batch [b] is lost on the link. The clean build keeps b.
    for clean in [true, false] {
        let mut config = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
        config.correlate_receipts = clean;
        let mut t = Tower::new(config, 1, Time::ZERO);
        drain(&mut t);
        let mut durable = DurableState::new();
        let a = contribution_op(4, 1, 100);
        let b = contribution_op(5, 1, 200);
        let first = submit_as(&mut t, Time::ZERO, a.device, a.clone(), &mut durable);
        assert_eq!(first, vec![SubmitReply::Accepted]);
        // The first batch gets no answer in time: the tower sends it again.
        let later = run_timers(&mut t, 1, 300, &mut durable, Some((None, &[])));
        let batches = forward_batches(&later);
        assert!(batches.len() >= 2, "{batches:?}");
        assert!(
            batches.iter().all(|k| k == &vec![a.key.clone()]),
            "{batches:?}"
        );
        let now = Time::from_secs(300);
        let got = submit_as(&mut t, now, b.device, b.clone(), &mut durable);
        assert_eq!(got, vec![SubmitReply::Accepted]);
        assert_eq!(t.status().outbox, 2);
        // The first reply: a is confirmed, and b goes out on its own.
        t.handle_message(
            now,
            Peer::Origin,
            Message::ForwardReply {
                receipts: vec![crate::protocol::OpReceipt {
                    key: a.key.clone(),
                    outcome: OpOutcome::Applied { seq: 1 },
                }],
            },
        );
        let after = drain(&mut t);
        assert_eq!(forward_batches(&after), vec![vec![b.key.clone()]]);
        complete_io(&mut t, now, after, &mut durable);
        assert_eq!(t.status().outbox, 1);
        // The retry's reply, late: a's receipt once more.
        confirm(
            &mut t,
            now,
            &a.key,
            OpOutcome::Applied { seq: 1 },
            &mut durable,
        );
        let b_held = durable.contains_key(&Key::Outbox(b.key.clone()));
        assert_eq!(b_held, clean, "clean: {clean}");
        assert_eq!(t.status().outbox, u64::from(clean));
    }
}

#[test]
fn an_entry_sent_as_changes_is_rebuilt_from_the_held_version_or_asked_for_whole() {
    // Goal: a manifest sent as changes is adopted only when it rebuilds to the digest the
    // origin sent; otherwise nothing of it (or after it) is taken, the cursor stays, and
    // the next poll, at once, asks for whole manifests.
    let mut t = booted(&[LinkKind::Fibre]);
    let data = bytes(11, 200_000);
    let (v1, _) = entry(1, "atlas", Priority::P1, &data);
    let mut edited = data.clone();
    edited[100_000] ^= 1;
    let (mut v2, _) = entry(2, "atlas", Priority::P1, &edited);
    v2.manifest.version = 2;
    let (other, _) = entry(3, "other", Priority::P1, &bytes(12, 5_000));
    let changes = crate::content::ManifestChanges::between(&v1.manifest, &v2.manifest);
    let as_changes = |seq| SentEntry::Changes {
        seq,
        changes: changes.clone(),
    };
    // Not holding v1: set aside, with the entry after it; the next poll is whole, now.
    let now = Time::from_secs(1);
    t.handle_message(
        now,
        Peer::Origin,
        Message::CatalogReply {
            entries: vec![as_changes(2), SentEntry::Whole(other.clone())],
            origin: None,
            more: false,
        },
    );
    assert!(
        t.items.is_empty(),
        "nothing adopted from a reply it could not rebuild"
    );
    t.handle_timeout(now);
    let asked: Vec<bool> = sends(&drain(&mut t))
        .into_iter()
        .filter_map(|m| match m {
            Message::CatalogRequest {
                since_seq: 0,
                changes,
            } => Some(*changes),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![false], "one whole poll at once");
    // Holding v1, the same changes rebuild v2 exactly; the poll after asks for changes.
    let mut t = booted(&[LinkKind::Fibre]);
    offer_catalog(&mut t, &[&v1]);
    t.handle_message(
        now,
        Peer::Origin,
        Message::CatalogReply {
            entries: vec![as_changes(2)],
            origin: None,
            more: false,
        },
    );
    assert_eq!(t.items[&ItemId::new("atlas")].entry, v2);
    assert!(!t.catalog_whole);
}

#[test]
fn a_reply_cannot_make_the_tower_build_without_bound() {
    // Goal: keep runs repeat the held list, so a small reply could ask for gigabytes of
    // rebuilt references: a reply is held to one entry per item and CHUNKS_MAX rebuilt
    // references in all; what passes the bound is set aside, the next poll asks for whole
    // entries at once, and if whole entries fail too, only at the usual pace. A version
    // the tower holds already is skipped, not a failure.
    use crate::content::changes::CHUNKS_MAX;
    use crate::content::{ManifestChanges, Run};
    let mut t = booted(&[LinkKind::Fibre]);
    let data = bytes(21, 300_000);
    let (v1, _) = entry(1, "atlas", Priority::P1, &data);
    let (other, _) = entry(2, "other", Priority::P1, &bytes(22, 300_000));
    offer_catalog(&mut t, &[&v1, &other]);
    // A second version of each, its list repeated to 3/5 of the bound, honest digests:
    // each fits alone, not both.
    let grown = |e: &CatalogEntry| {
        let n = e.manifest.chunks.len();
        let repeats = CHUNKS_MAX * 3 / 5 / n;
        let mut m = e.manifest.clone();
        m.version = 2;
        m.chunks = (0..repeats)
            .flat_map(|_| e.manifest.chunks.clone())
            .collect();
        m.size = e.manifest.size * repeats as u64;
        let mut c = ManifestChanges::between(&e.manifest, &m);
        c.runs = vec![
            Run::Keep {
                start: 0,
                len: n as u32
            };
            repeats
        ];
        assert_eq!(c.apply(&e.manifest), Some(m));
        c
    };
    let now = Time::from_secs(1);
    let reply = |t: &mut Tower, now, entries| {
        t.handle_message(
            now,
            Peer::Origin,
            Message::CatalogReply {
                entries,
                origin: None,
                more: false,
            },
        )
    };
    let changes = |seq, changes| SentEntry::Changes { seq, changes };
    reply(
        &mut t,
        now,
        vec![changes(3, grown(&v1)), changes(4, grown(&other))],
    );
    let version = |t: &Tower, item| t.items[&ItemId::new(item)].entry.manifest.version;
    assert_eq!((version(&t, "atlas"), version(&t, "other")), (2, 1));
    assert!(
        t.catalog_whole && t.next_catalog_at == now,
        "whole, at once"
    );
    // Two entries for one item: the second is set aside; whole entries failing again
    // wait for the usual interval.
    let (mut v2, _) = entry(4, "atlas", Priority::P1, &bytes(23, 1000));
    v2.manifest.version = 3;
    let (mut v3, _) = entry(5, "atlas", Priority::P1, &bytes(24, 1000));
    v3.manifest.version = 4;
    reply(
        &mut t,
        now,
        vec![SentEntry::Whole(v2.clone()), SentEntry::Whole(v3)],
    );
    assert_eq!(t.items[&ItemId::new("atlas")].entry, v2);
    assert!(
        t.catalog_whole && t.next_catalog_at > now,
        "whole again, not at once"
    );
    // A version held already is skipped; the reply is taken, and changes are asked again.
    let held = ManifestChanges::between(&v1.manifest, &v2.manifest);
    reply(
        &mut t,
        now,
        vec![SentEntry::Changes {
            seq: 4,
            changes: held,
        }],
    );
    assert!(!t.catalog_whole);
}
