//! Writing a [`Scenario`] back as TOML that parses to an equal scenario.
//!
//! The scenario is turned into the parser's raw structs ([`super::parse`]'s `RawScenario`)
//! and serialised by `toml`, so the writer cannot produce a key the reader does not know.
//! The output is fully explicit: every tower on its own `[[tower]]` with its name, every
//! link and the Wi-Fi as a table with all figures, every fault with its resolved target
//! (no `*`) and an explicit `for`, every nemesis rate, the invariants by name, and every
//! SLO that is set. Failure files and shrunk scenarios are written with it, so a reader
//! sees exactly what ran.
//!
//! Map: [`Scenario::to_toml`], then one private converter per section.
//!
//! Not covered: comments or layout of the original file (not kept), durations finer
//! than a millisecond (written rounded down to the millisecond; the parser never makes
//! them), non-finite numbers (the parser rejects them).

use super::faults::{ParamTy, ParamValue, duration_text, signed_duration_text};
use super::parse::{
    BYTES_PER_S_PER_MBIT, RawCatalog, RawFault, RawNemesis, RawOrigin, RawPower, RawProfile,
    RawScenario, RawSlo, RawTower, RawWorkload, Seed, Size, mbit_to_bytes_per_s, per_class,
};
use super::{Database, Family, FaultSpec, LinkProfile, LinkSpec, Scenario, Target, TowerSpec};
use crate::tomlspan::{Dur, Int, Num, Pos, StrOr, unspanned as sp};
use std::time::Duration;
use toml::Value;

impl Scenario {
    /// TOML that parses back to an equal scenario.
    pub fn to_toml(&self) -> String {
        let w = &self.workload;
        let raw = RawScenario {
            name: Some(sp(self.name.clone())),
            description: Some(sp(self.description.clone())),
            seed: Some(Seed(self.seed)),
            duration: Some(sp(Dur(self.duration))),
            liveness_bound: Some(Dur(self.liveness_bound)),
            // Written only when set, so that files of scenarios without it stay as they were.
            power_time_scale: (self.power_time_scale != 1)
                .then(|| Int(i64::from(self.power_time_scale))),
            // Written only when on, so files of scenarios without it stay as they were.
            buggify: self.buggify.then_some(true),
            invariants: Some(
                self.invariants
                    .iter()
                    .map(|o| sp(o.name().to_string()))
                    .collect(),
            ),
            origin: Some(sp(RawOrigin {
                chunk_min_bytes: Some(sp(Int(i64::from(self.origin.chunk.size_min)))),
                chunk_avg_bytes: Some(sp(Int(i64::from(self.origin.chunk.size_avg)))),
                chunk_max_bytes: Some(sp(Int(i64::from(self.origin.chunk.size_max)))),
                // Written only when not the default, so files of before it stay as written.
                database: (self.origin.database != Database::default())
                    .then(|| sp(self.origin.database.name().to_string())),
                answer_bytes_max: (self.origin.answer_bytes_max
                    != sovereign_logic::protocol::ANSWER_BYTES_MAX)
                    .then(|| sp(Int(self.origin.answer_bytes_max as i64))),
            })),
            profiles: None,
            tower: Some(sp(self.towers.iter().map(raw_tower).collect())),
            workload: Some(sp(RawWorkload {
                catalog: Some(
                    w.catalog
                        .iter()
                        .map(|c| {
                            sp(RawCatalog {
                                priority: Some(sp(c.priority.to_string())),
                                items: Some(sp(Int(i64::from(c.items)))),
                                size: Some(sp(Size(c.bytes))),
                            })
                        })
                        .collect(),
                ),
                publish_per_hour: Some(sp(per_class(w.publish_per_hour.map(|x| Some(Num(x)))))),
                publish_size: Some(per_class(w.publish_bytes.map(|b| Some(Size(b))))),
                reads_per_device_hour: Some(sp(Num(w.reads_per_device_hour))),
                ops_per_device_hour: Some(sp(Num(w.ops_per_device_hour))),
                contribution_share: Some(Num(w.contribution_share)),
                // Written only when set, so files without misuse stay as they were.
                shared_identity: set(w.misuse.shared_identity),
                key_reuse_per_device_hour: set(w.misuse.key_reuse_per_device_hour),
                key_theft_per_hour: set(w.misuse.key_theft_per_hour),
                invalid_share: set(w.misuse.invalid_share),
            })),
            fault: Some(self.faults.iter().map(|f| sp(self.raw_fault(f))).collect()),
            nemesis: Some(sp(self.raw_nemesis())),
            slo: Some(RawSlo {
                availability_min: self.slo.availability_min.map(Num),
                freshness_p99_max: (self.slo.freshness_p99_max.iter().any(Option::is_some))
                    .then(|| per_class(self.slo.freshness_p99_max.map(|d| d.map(Dur)))),
                mttr_max: self.slo.mttr_max.map(Dur),
                rpo_max: Some(Int(self.slo.rpo_max as i64)),
                soc_min: self.slo.soc_min.map(Num),
            }),
        };
        let text = toml::to_string(&raw)
            .unwrap_or_else(|e| unreachable!("a scenario's raw form always serialises: {e}"));
        format!(
            "# Written by sovereign-sim: fully explicit; parses back to the same scenario.\n{text}"
        )
    }

    fn raw_nemesis(&self) -> RawNemesis {
        let rate = |family: Family| {
            let r = self
                .nemesis
                .rates_per_hour
                .iter()
                .find(|(f, _)| *f == family);
            Some(sp(Num(r.map_or(0.0, |(_, r)| *r))))
        };
        RawNemesis {
            network_per_hour: rate(Family::Network),
            process_per_hour: rate(Family::Process),
            disk_per_hour: rate(Family::Disk),
            power_per_hour: rate(Family::Power),
            clock_per_hour: rate(Family::Clock),
            duration_mean: Some(sp(Dur(self.nemesis.duration_mean))),
            duration_max: Some(sp(Dur(self.nemesis.duration_max))),
        }
    }

    /// `f` as the body of an inline table, without `at` (`kind = "latency", target =
    /// "tower-1/lte", extra = "200ms", for = "10m"`): the form of a game-day plan step's
    /// fault, and the text of the console's inject form.
    pub fn fault_inline(&self, f: &FaultSpec) -> String {
        let raw = self.raw_fault(f);
        let params = f.kind.decl().params.iter().flat_map(|p| p.keys());
        ["kind", "target"]
            .iter()
            .chain(params)
            .chain(&["for"])
            .filter_map(|k| raw.get(*k).map(|v| format!("{k} = {}", v.get_ref())))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn raw_fault(&self, f: &FaultSpec) -> RawFault {
        let mut t = RawFault::new();
        let mut put = |key: &str, value: Value| t.insert(sp(key.to_string()), sp(value));
        put("at", Value::String(duration_text(f.at)));
        put("for", Value::String(duration_text(f.duration)));
        put("target", Value::String(self.target_name(&f.target)));
        put("kind", Value::String(f.kind.name().to_string()));
        for (p, (key, value)) in f.kind.decl().params.iter().zip(f.kind.params()) {
            let (key, value) = match value {
                ParamValue::Number(x) => (key, Value::Float(x)),
                ParamValue::Int(n) if matches!(p.ty, ParamTy::Bandwidth) => bandwidth(n as u64),
                ParamValue::Int(n) => (key, Value::Integer(n)),
                ParamValue::Duration(d) => (key, Value::String(duration_text(d))),
                ParamValue::SignedMs(ms) => (key, Value::String(signed_duration_text(ms))),
            };
            put(key, value);
        }
        t
    }

    /// The file form of a target (tower names, not indices).
    fn target_name(&self, t: &Target) -> String {
        let tower = |i: usize| {
            self.towers
                .get(i)
                .map_or_else(|| format!("<no tower {i}>"), |t| t.name.clone())
        };
        match t {
            Target::Origin => "origin".to_string(),
            Target::Tower(i) => tower(*i),
            Target::Link(i, k) => format!("{}/{k}", tower(*i)),
            Target::Wifi(i) => format!("{}/wifi", tower(*i)),
        }
    }
}

/// A tower on its own `[[tower]]`, every link and its Wi-Fi with all their figures.
fn raw_tower(t: &TowerSpec) -> toml::Spanned<RawTower> {
    let link = |l: &LinkSpec| {
        let kind = Some(sp(l.kind.name().to_string()));
        sp(StrOr::Table(RawProfile {
            kind,
            ..profile(&l.profile)
        }))
    };
    let p = &t.power;
    sp(RawTower {
        name: Some(sp(t.name.clone())),
        count: None,
        devices: Some(sp(Int(i64::from(t.devices)))),
        links: Some(sp(t.links.iter().map(link).collect())),
        wifi: Some(sp(StrOr::Table(profile(&t.wifi)))),
        power: Some(RawPower {
            solar_peak_w: Some(Num(p.solar_peak_w)),
            battery_wh: Some(Num(p.battery_wh)),
            soc_initial: Some(Num(p.soc_initial)),
            load_w: Some(Pos(p.load_w)),
            grid: Some(p.grid),
            ups: Some(p.ups),
            cloud_cover: Some(Num(p.cloud_cover)),
        }),
        catalog_poll: t.catalog_poll.map(|d| sp(Dur(d))),
        request_timeout: t.request_timeout.map(|d| sp(Dur(d))),
        probe_interval: t.probe_interval.map(|d| sp(Dur(d))),
    })
}

/// A misuse rate, when it is set.
fn set<const LO: i64, const HI: i64>(x: f64) -> Option<Num<LO, HI>> {
    (x != 0.0).then_some(Num(x))
}

/// `bandwidth_mbit` when it reads back to the same bytes/s, else exact `bytes_per_s`.
fn bandwidth(bytes_per_s: u64) -> (&'static str, Value) {
    let mbit = bytes_per_s as f64 / BYTES_PER_S_PER_MBIT;
    if mbit > 0.0 && mbit_to_bytes_per_s(mbit) == bytes_per_s {
        ("bandwidth_mbit", Value::Float(mbit))
    } else {
        ("bytes_per_s", Value::Integer(bytes_per_s as i64))
    }
}

/// Every figure of a profile, named by it.
fn profile(p: &LinkProfile) -> RawProfile {
    let (bw_key, bw) = bandwidth(p.bytes_per_s);
    RawProfile {
        profile: Some(sp(p.name.clone())),
        latency: Some(Dur(p.latency)),
        jitter: Some(Dur(p.jitter)),
        bandwidth_mbit: match (bw_key, &bw) {
            ("bandwidth_mbit", Value::Float(m)) => Some(Pos(*m)),
            _ => None,
        },
        bytes_per_s: (bw_key == "bytes_per_s").then(|| sp(Int(p.bytes_per_s as i64))),
        loss: Some(Num(p.loss)),
        handover_every: Some(Dur(p.handover_every.unwrap_or(Duration::ZERO))),
        handover_outage: Some(sp(Dur(p.handover_outage))),
        ..RawProfile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::*;

    /// Goal: strings with quotes, backslashes and control characters survive.
    #[test]
    fn quoting_round_trips() {
        let text = "duration = \"1h\"\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n";
        let mut s = parse_str("t.toml", text).expect("parses");
        s.description = "a \"quoted\" \\ line\nnext\ttab \u{7} é".into();
        s.seed = u64::MAX;
        let back = parse_str("other.toml", &s.to_toml()).expect("written text parses");
        assert_eq!(back, s);
    }

    /// Goal: durations are written to the millisecond in the file grammar.
    #[test]
    fn durations_to_the_millisecond() {
        let ms = Duration::from_millis;
        assert_eq!(duration_text(ms(0)), "0s");
        assert_eq!(duration_text(ms(250)), "250ms");
        assert_eq!(duration_text(ms(5_400_000)), "1h30m");
        assert_eq!(duration_text(ms(3_723_004)), "1h2m3s4ms");
        assert_eq!(duration_text(Duration::from_nanos(1_999_999)), "1ms");
        for d in [ms(1), ms(1001), ms(86_400_000 + 61_001)] {
            let text = duration_text(d);
            assert_eq!(
                super::super::parse::parse_duration(&text, false),
                Ok((false, d))
            );
        }
    }

    /// Goal: sizes and bandwidths pick an exact written form.
    #[test]
    fn exact_forms() {
        let size = |b| toml::Value::try_from(Size(b)).unwrap().to_string();
        assert_eq!(size(16 << 10), "\"16KiB\"");
        assert_eq!(size(3 << 20), "\"3MiB\"");
        assert_eq!(size(1000), "1000");
        assert_eq!(bandwidth(1_250_000), ("bandwidth_mbit", Value::Float(10.0)));
        for b in [1u64, 7, 124_999, 12_345_678_901, 1_250_000_000] {
            match bandwidth(b) {
                ("bandwidth_mbit", Value::Float(m)) => assert_eq!(mbit_to_bytes_per_s(m), b),
                (_, v) => assert_eq!(v, Value::Integer(b as i64)),
            }
        }
    }
}
