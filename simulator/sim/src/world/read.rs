//! The simulator's side of a device read: the logic's read path (`tower::read`) run
//! against the simulated disk. [`tower_read`] is what `World::device_read` does once the
//! device has reached a running tower; it is public so that a conformance test can drive
//! the very same code next to the real tower's device API.
//!
//! Map: [`tower_read`], [`TowerRead`], [`Served`].
//!
//! Not covered: picking the item, reachability, draining the tower's actions and the
//! observations (`World::device_read`).

use crate::obs::ReadResult;
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest};
use sovereign_logic::tower::Tower;
use sovereign_logic::tower::read::{ChunkVerdict, ReadOutcome};
use std::sync::Arc;

/// What a served read sent: the manifest and every chunk with whether its bytes matched
/// their hash (`false` only under `skip-verify`).
pub type Served = (Arc<Manifest>, Vec<(ChunkHash, bool)>);

/// What one read through [`tower_read`] came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerRead {
    /// The device's answer.
    pub result: ReadResult,
    /// When served: what `Obs::Served` reports.
    pub served: Option<Served>,
    /// The chunks the read reported to the tower as rotten or missing (each quarantined
    /// and fetched again), in manifest order.
    pub reported: Vec<ChunkHash>,
}

/// Read `item` at `tower` as a driver must: plan it ([`Tower::serve_plan`], which notes
/// the demand), judge every chunk of the plan with `verdict` (what the disk holds for
/// it), let the plan decide, and hand the outcome back to the tower
/// ([`Tower::handle_read_result`]: every rotten or missing chunk is quarantined and
/// fetched again). The caller drains the tower's actions afterwards.
pub fn tower_read(
    tower: &mut Tower,
    now: Time,
    item: &ItemId,
    mut verdict: impl FnMut(&ChunkHash) -> ChunkVerdict,
) -> TowerRead {
    let plan = match tower.serve_plan(now, item) {
        Ok(plan) => plan,
        Err(refusal) => {
            return TowerRead {
                result: ReadResult::Refused(refusal),
                served: None,
                reported: Vec::new(),
            };
        }
    };
    let verdicts: Vec<ChunkVerdict> = plan
        .manifest
        .chunks
        .iter()
        .map(|c| verdict(&c.hash))
        .collect();
    let outcome = plan.decide(verdicts.iter().copied());
    tower.handle_read_result(now, &outcome);
    let reported = match &outcome {
        ReadOutcome::Repair { rotten } => rotten.clone(),
        ReadOutcome::Serve => Vec::new(),
    };
    match outcome.refusal() {
        Some(refusal) => TowerRead {
            result: ReadResult::Refused(refusal),
            served: None,
            reported,
        },
        None => {
            let chunks = plan
                .manifest
                .chunks
                .iter()
                .zip(&verdicts)
                .map(|(c, v)| (c.hash, *v == ChunkVerdict::Intact))
                .collect();
            TowerRead {
                result: ReadResult::Served,
                served: Some((plan.manifest, chunks)),
                reported,
            }
        }
    }
}
