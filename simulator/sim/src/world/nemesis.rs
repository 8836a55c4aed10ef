//! The nemesis: faults drawn at random for the safety phase, by family (network, process,
//! disk, power, clock) at the scenario's rates per hour, with exponential gaps and
//! durations, from their own `nemesis` stream. The draws become part of the run's explicit
//! schedule, so replaying that schedule reproduces the run exactly.
//!
//! Map: [`draw_nemesis`].
//!
//! Not covered: applying the faults (`faults.rs`), faults injected by hand.

use super::rng::Stream;
use crate::scenario::{Family, FaultKind, FaultSpec, Scenario, Target};
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::LinkKind;
use std::time::Duration;

/// Draw the nemesis's faults for the safety phase from its own stream.
pub(super) fn draw_nemesis(sc: &Scenario, rng: &mut Stream) -> Vec<FaultSpec> {
    let mut out = Vec::new();
    let horizon = sc.duration.as_secs_f64();
    let towers = sc.towers.len();
    if towers == 0 {
        return out;
    }
    for (family, rate) in &sc.nemesis.rates_per_hour {
        if *rate <= 0.0 {
            continue;
        }
        let mut t = 0.0;
        loop {
            t += rng.exp(3600.0 / rate).as_secs_f64();
            if t >= horizon {
                break;
            }
            let mean = sc.nemesis.duration_mean.as_secs_f64();
            let dur = rng.exp(mean).min(sc.nemesis.duration_max);
            let dur = Duration::from_secs(dur.as_secs().max(1));
            let tower = rng.below(towers as u64) as usize;
            let links: Vec<LinkKind> = sc.towers[tower].links.iter().map(|l| l.kind).collect();
            let (target, kind) = match family {
                Family::Network => {
                    let link = links[rng.below(links.len() as u64) as usize];
                    match rng.below(8) {
                        0 | 1 => (Target::Link(tower, link), FaultKind::LinkDown),
                        2 => (Target::Tower(tower), FaultKind::Partition),
                        3 => (
                            Target::Link(tower, link),
                            FaultKind::Latency {
                                extra: Duration::from_millis(100 + rng.below(900)),
                            },
                        ),
                        4 => (
                            Target::Link(tower, link),
                            FaultKind::Loss {
                                p: 0.05 + rng.unit() * 0.3,
                            },
                        ),
                        5 => (
                            Target::Link(tower, link),
                            FaultKind::Bandwidth {
                                bytes_per_s: 10_000 + rng.below(200_000),
                            },
                        ),
                        6 => (
                            Target::Link(tower, link),
                            FaultKind::Duplicate {
                                p: 0.05 + rng.unit() * 0.2,
                            },
                        ),
                        _ => (Target::Wifi(tower), FaultKind::Partition),
                    }
                }
                Family::Process => {
                    let target = if rng.below(5) == 0 {
                        Target::Origin
                    } else {
                        Target::Tower(tower)
                    };
                    let kind = match rng.below(5) {
                        0 | 1 => FaultKind::Crash,
                        2 => FaultKind::Restart,
                        3 => FaultKind::Pause,
                        _ => FaultKind::Slow {
                            factor: 2.0 + rng.unit() * 8.0,
                        },
                    };
                    (target, kind)
                }
                Family::Disk => {
                    let target = if rng.below(5) == 0 {
                        Target::Origin
                    } else {
                        Target::Tower(tower)
                    };
                    let kind = match rng.below(7) {
                        0 => FaultKind::WriteError {
                            p: 0.05 + rng.unit() * 0.2,
                        },
                        1 => FaultKind::FsyncError {
                            p: 0.05 + rng.unit() * 0.2,
                        },
                        2 => FaultKind::TornWrite,
                        3 => FaultKind::Corruption {
                            chunks: 1 + rng.below(3) as u32,
                        },
                        4 => FaultKind::DiskFull,
                        5 => FaultKind::DiskLatency {
                            extra: Duration::from_millis(5 + rng.below(200)),
                        },
                        _ => FaultKind::DbLost,
                    };
                    (target, kind)
                }
                Family::Power => {
                    let kind = match rng.below(5) {
                        0 => FaultKind::Clouds {
                            cover: 0.5 + rng.unit() * 0.5,
                        },
                        1 => FaultKind::GridLoss,
                        2 => FaultKind::UpsFailure,
                        3 => FaultKind::BrownOut,
                        _ => FaultKind::HardCut,
                    };
                    (Target::Tower(tower), kind)
                }
                Family::Clock => {
                    let kind = if rng.below(2) == 0 {
                        FaultKind::ClockSkew {
                            ppm: rng.below(2000) as i64 - 1000,
                        }
                    } else {
                        FaultKind::ClockJump {
                            by_ms: rng.below(120_000) as i64 - 60_000,
                        }
                    };
                    (Target::Tower(tower), kind)
                }
            };
            let duration = match kind {
                FaultKind::Corruption { .. }
                | FaultKind::ClockJump { .. }
                | FaultKind::BrownOut => Duration::ZERO,
                FaultKind::TornWrite | FaultKind::HardCut => dur.min(Duration::from_secs(600)),
                _ => dur,
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
