//! Swarm testing (Groce et al., ISSTA 2012; TigerBeetle's VOPR): each run of a sweep or a
//! hunt gets its own variant of the scenario, drawn from the seed, with a random subset of
//! its features switched off and its sizes and rates varied within the scenario's bounds.
//! One configuration with every fault on at once lets the frequent faults mask the rare
//! interleavings (a crash-loop restarts the origin before a slow fsync ever matters); many
//! configurations with a few features each reach further.
//!
//! What [`swarm`] varies, each choice independent and drawn from `derive(seed, "swarm")`:
//! - the nemesis: each family's rate ×0.5, ×1, ×2 or ×4; the nemesis is then drawn for the
//!   seed and written out as explicit faults, each kind among the draws kept with
//!   probability 1/2, and the origin and each tower kept as a target with probability 1/2;
//! - topology: devices per tower ×1/4, ×1/2 or ×1 (at least 1);
//! - workload: publications per class ×0, ×1/2 or ×1 (the initial catalog stays);
//!   reads ×1/4, ×1/2 or ×1; operations ×1/4, ×1/2 or ×1;
//! - links: each link's loss ×0, ×1 or ×2 (at most 0.5).
//!
//! What it keeps: the scenario's own faults and its misuse rates. A scenario file is aimed
//! (a fibre cut, a hostile device): the first version also dropped each explicit fault
//! kind, target, tower and misuse rate with probability 1/2, and over `scenarios/` it
//! needed a median of 23 runs per plant where uniform seeds need 3 (docs/BENCHMARKS.md).
//!
//! Workload and topology only shrink, so a variant stays within the cost limits its
//! scenario passed; only fault rates grow. The variant is an ordinary scenario with an
//! explicit fault list and the nemesis off: its TOML parses back to an equal scenario, so a
//! failure file written from it replays and shrinks exactly like any other. Its
//! description ends with the choices made ([`Swarm::summary`]).
//!
//! Map: [`swarm`], [`Swarm`].
//!
//! Not covered: which runs use it (`--swarm` on `sim run`, `sim sweep`, `sim hunt`).

use crate::scenario::{Family, FaultSpec, Scenario, Target};
use crate::world::nemesis_schedule;
use sovereign_logic::entropy::{Entropy, SplitMix64};
use std::collections::BTreeSet;

/// A scenario's swarm variant for one seed, and what was switched off or scaled.
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    /// The variant to run.
    pub scenario: Scenario,
    /// Kinds switched off among the nemesis' draws (by name).
    pub kinds_off: Vec<&'static str>,
    /// Targets switched off for the nemesis' draws ("origin", tower names).
    pub targets_off: Vec<String>,
    /// Nemesis rate factor per family the scenario draws from.
    pub rates: Vec<(Family, f64)>,
    /// Device factor.
    pub devices: f64,
    /// Publication factor per class, read and operation factors.
    pub workload: ([f64; 4], f64, f64),
    /// Loss factor per (tower, link), in order.
    pub loss: Vec<f64>,
}

/// Pick one of `choices` uniformly.
fn pick<T: Copy>(rng: &mut SplitMix64, choices: &[T]) -> T {
    choices[rng.below(choices.len() as u64) as usize]
}

/// `scenario`'s swarm variant for `seed`.
pub fn swarm(scenario: &Scenario, seed: u64) -> Swarm {
    let mut rng = SplitMix64::new(SplitMix64::derive(seed, "swarm"));
    let mut v = scenario.clone();

    // The nemesis, scaled per family, then drawn for this seed as explicit faults.
    let rates: Vec<(Family, f64)> = v
        .nemesis
        .rates_per_hour
        .iter()
        .map(|&(f, _)| (f, pick(&mut rng, &[0.5, 1.0, 2.0, 4.0])))
        .collect();
    for ((_, rate), (_, k)) in v.nemesis.rates_per_hour.iter_mut().zip(&rates) {
        *rate *= k;
    }
    let mut drawn = nemesis_schedule(&v, seed);
    v.nemesis.rates_per_hour.clear();

    // The drawn faults' kinds and targets (the scenario's own faults are its aim: kept).
    let kinds: BTreeSet<&'static str> = drawn.iter().map(|f| f.kind.decl().name).collect();
    let kinds_off: Vec<&'static str> = kinds.into_iter().filter(|_| rng.chance(0.5)).collect();
    let origin_off = rng.chance(0.5);
    let towers_off: Vec<bool> = (0..v.towers.len()).map(|_| rng.chance(0.5)).collect();
    let on = |f: &FaultSpec| {
        !kinds_off.contains(&f.kind.decl().name)
            && match f.target {
                Target::Origin => !origin_off,
                Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => !towers_off[t],
            }
    };
    drawn.retain(on);
    v.faults.extend(drawn);
    let mut targets_off: Vec<String> = Vec::new();
    if origin_off {
        targets_off.push("origin".into());
    }
    targets_off.extend(
        v.towers
            .iter()
            .zip(&towers_off)
            .filter(|(_, off)| **off)
            .map(|(t, _)| t.name.clone()),
    );

    // Topology and links.
    let devices = pick(&mut rng, &[0.25, 0.5, 1.0]);
    let mut loss = Vec::new();
    for t in &mut v.towers {
        t.devices = ((f64::from(t.devices) * devices) as u32)
            .max(1)
            .min(t.devices);
        for l in &mut t.links {
            let k = pick(&mut rng, &[0.0, 1.0, 2.0]);
            l.profile.loss = (l.profile.loss * k).min(0.5_f64.max(l.profile.loss));
            loss.push(k);
        }
    }

    // Workload.
    let w = &mut v.workload;
    let publish: [f64; 4] = std::array::from_fn(|_| pick(&mut rng, &[0.0, 0.5, 1.0]));
    for (rate, k) in w.publish_per_hour.iter_mut().zip(publish) {
        *rate *= k;
    }
    let reads = pick(&mut rng, &[0.25, 0.5, 1.0]);
    let ops = pick(&mut rng, &[0.25, 0.5, 1.0]);
    w.reads_per_device_hour *= reads;
    w.ops_per_device_hour *= ops;

    let mut s = Swarm {
        scenario: v,
        kinds_off,
        targets_off,
        rates,
        devices,
        workload: (publish, reads, ops),
        loss,
    };
    let note = format!(" [{}]", s.summary(seed));
    let room = crate::scenario::parse::DESCRIPTION_LEN_MAX.saturating_sub(note.len());
    let d = &mut s.scenario.description;
    if d.len() > room {
        let mut cut = room;
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        d.truncate(cut);
    }
    d.push_str(&note);
    s
}

impl Swarm {
    /// One line: what this variant switched off and scaled.
    pub fn summary(&self, seed: u64) -> String {
        let list = |v: &[&str]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(",")
            }
        };
        let targets: Vec<&str> = self.targets_off.iter().map(String::as_str).collect();
        let rates: Vec<String> = self
            .rates
            .iter()
            .map(|(f, k)| format!("{}×{k}", f.name()))
            .collect();
        let (publish, reads, ops) = self.workload;
        format!(
            "swarm of seed {seed}: nemesis {}; its kinds off {}; its targets off {}; \
             devices ×{}; publish ×{publish:?}; reads ×{reads}; ops ×{ops}; loss ×{:?}",
            if rates.is_empty() {
                "none".to_string()
            } else {
                rates.join(",")
            },
            list(&self.kinds_off),
            list(&targets),
            self.devices,
            self.loss,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_file;
    use std::path::Path;

    fn shipped() -> Vec<Scenario> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| parse_file(p).unwrap()).collect()
    }

    #[test]
    fn a_variant_is_the_same_for_the_same_seed_and_parses_back_to_itself() {
        // Goal: the variant is a function of (scenario, seed), and its TOML (what a
        // failure file holds) is the variant exactly, within the scenario limits.
        for sc in shipped() {
            for seed in 0..40 {
                let a = swarm(&sc, seed);
                assert_eq!(a, swarm(&sc, seed), "{} seed {seed}", sc.name);
                let text = a.scenario.to_toml();
                let back = crate::scenario::parse_str("variant.toml", &text)
                    .unwrap_or_else(|e| panic!("{} seed {seed}: {e}\n{text}", sc.name));
                assert_eq!(back, a.scenario, "{} seed {seed}", sc.name);
                assert!(a.scenario.nemesis.rates_per_hour.is_empty());
            }
        }
    }

    #[test]
    fn variants_differ_by_seed_keep_the_scenarios_faults_and_filter_the_nemesis() {
        // Goal: swarm draws many configurations; each keeps every fault the scenario wrote
        // and its misuse, and of the nemesis' draws only kinds and targets left on; over
        // seeds every drawn kind is switched off sometimes and kept sometimes.
        let storm = shipped().into_iter().find(|s| s.name == "storm").unwrap();
        let variants: Vec<Swarm> = (0..200).map(|seed| swarm(&storm, seed)).collect();
        let distinct: BTreeSet<String> = variants.iter().map(|v| v.summary(0)).collect();
        assert!(distinct.len() > 150, "{} distinct", distinct.len());
        let mut off_count: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
        for (seed, v) in (0..).zip(&variants) {
            let n = storm.faults.len();
            assert_eq!(v.scenario.faults[..n], storm.faults[..], "seed {seed}");
            assert_eq!(v.scenario.workload.misuse, storm.workload.misuse);
            let mut scaled = storm.clone();
            for ((_, r), (_, k)) in scaled.nemesis.rates_per_hour.iter_mut().zip(&v.rates) {
                *r *= k;
            }
            let drawn = nemesis_schedule(&scaled, seed);
            for f in &drawn {
                let name = f.kind.decl().name;
                let target_on = match f.target {
                    Target::Origin => !v.targets_off.iter().any(|t| t == "origin"),
                    Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => {
                        !v.targets_off.contains(&storm.towers[t].name)
                    }
                };
                let on = !v.kinds_off.contains(&name) && target_on;
                assert_eq!(v.scenario.faults[n..].contains(f), on, "seed {seed}: {f:?}");
                let e = off_count.entry(name).or_default();
                if v.kinds_off.contains(&name) {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            assert!(v.scenario.faults[n..].iter().all(|f| drawn.contains(f)));
        }
        assert!(off_count.len() >= 5, "{off_count:?}");
        for (k, (off, on)) in &off_count {
            assert!(*off > 0 && *on > 0, "{k}: off {off}, on {on}");
        }
    }

    #[test]
    fn workload_and_topology_only_shrink() {
        // Goal: a variant asks no more of a run than its scenario (only fault rates grow).
        for sc in shipped() {
            for seed in 0..40 {
                let v = swarm(&sc, seed).scenario;
                assert_eq!(v.towers.len(), sc.towers.len());
                for (a, b) in v.towers.iter().zip(&sc.towers) {
                    assert!(a.devices <= b.devices && a.devices >= 1);
                }
                let (w, o) = (&v.workload, &sc.workload);
                assert!(w.ops_per_device_hour <= o.ops_per_device_hour);
                assert!(w.reads_per_device_hour <= o.reads_per_device_hour);
                for (a, b) in w.publish_per_hour.iter().zip(&o.publish_per_hour) {
                    assert!(a <= b);
                }
                assert_eq!(w.catalog, o.catalog);
            }
        }
    }
}
