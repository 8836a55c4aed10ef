//! The nemesis: faults drawn at random for the safety phase, by family (network, process,
//! disk, power, clock) at the scenario's rates per hour, with exponential gaps and
//! durations, from their own `nemesis` stream. Which kinds, how often within a family,
//! where and with what parameters is the fault table's (`scenario::faults`: each kind's
//! `nemesis` draws). The draws become part of the run's explicit schedule, so replaying
//! that schedule reproduces the run exactly.
//!
//! Map: [`draw_nemesis`].
//!
//! Not covered: applying the faults (`faults.rs`), faults injected by hand.

use super::rng::Stream;
use crate::scenario::faults::{FaultDecl, Lasts, NemesisDraw, NemesisOn};
use crate::scenario::{FaultKind, FaultSpec, Scenario, Target};
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::LinkKind;
use std::time::Duration;

/// Draw the nemesis' faults for a run from `rng`: per family, arrivals at the family's
/// rate; each picks a tower, then one of the family's [`NemesisDraw`]s by weight, its
/// target and its parameters; durations exponential around the mean, capped.
pub(super) fn draw_nemesis(sc: &Scenario, rng: &mut Stream) -> Vec<FaultSpec> {
    let mut out = Vec::new();
    let horizon = sc.duration.as_secs_f64();
    let towers = sc.towers.len();
    if towers == 0 {
        return out;
    }
    for (family, rate) in &sc.nemesis.rates_per_hour {
        let draws: Vec<(&FaultDecl, &NemesisDraw)> = FaultKind::all()
            .filter(|d| d.family == *family)
            .flat_map(|d| d.nemesis.iter().map(move |n| (d, n)))
            .collect();
        let total: u64 = draws.iter().map(|(_, n)| n.weight).sum();
        if *rate <= 0.0 || total == 0 {
            continue;
        }
        let mut t = 0.0;
        loop {
            t += rng.exp(3600.0 / rate).as_secs_f64();
            if t >= horizon {
                break;
            }
            let dur = rng
                .exp(sc.nemesis.duration_mean.as_secs_f64())
                .min(sc.nemesis.duration_max);
            let dur = Duration::from_secs(dur.as_secs().max(1));
            let tower = rng.below(towers as u64) as usize;
            let mut pick = rng.below(total);
            let (decl, draw) = draws
                .iter()
                .find(|(_, n)| {
                    let hit = pick < n.weight;
                    pick = pick.saturating_sub(n.weight);
                    hit
                })
                .copied()
                .expect("pick < total weight");
            let target = match draw.on {
                NemesisOn::Link => {
                    let links: Vec<LinkKind> =
                        sc.towers[tower].links.iter().map(|l| l.kind).collect();
                    Target::Link(tower, links[rng.below(links.len() as u64) as usize])
                }
                NemesisOn::Tower => Target::Tower(tower),
                NemesisOn::Wifi => Target::Wifi(tower),
                NemesisOn::OriginOrTower if rng.below(5) == 0 => Target::Origin,
                NemesisOn::OriginOrTower => Target::Tower(tower),
            };
            let kind = (draw.draw)(rng);
            let duration = match decl.lasts {
                Lasts::Instant => Duration::ZERO,
                _ => decl.nemesis_for_max.map_or(dur, |max| dur.min(max)),
            };
            out.push(FaultSpec {
                // Whole milliseconds: the scenario format's resolution, so that a failure
                // file's explicit schedule replays the very same run.
                at: Duration::from_millis((t * 1000.0) as u64),
                duration,
                target,
                kind,
            });
        }
    }
    out.sort_by_key(|f| f.at);
    out
}
