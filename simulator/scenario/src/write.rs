//! Writing a [`Scenario`] back as TOML that parses to an equal scenario.
//!
//! The output is fully explicit: every tower on its own `[[tower]]` with its name and
//! `count` 1, every link and the Wi-Fi as an inline table with all figures, every fault
//! with its resolved target (no `*`) and an explicit `for`, every nemesis rate, the
//! invariants by name, and every SLO that is set. Failure files and shrunk scenarios
//! are written with it, so a reader sees exactly what ran.
//!
//! Map: [`Scenario::to_toml`], then one private writer per section.
//!
//! Not covered: comments or layout of the original file (not kept), durations finer
//! than a millisecond (written rounded down to the millisecond; the parser never makes
//! them), non-finite numbers (the parser rejects them).

use super::faults::{ParamTy, ParamValue, duration_text, signed_duration_text};
use super::parse::{BYTES_PER_S_PER_MBIT, NEMESIS_RATES, mbit_to_bytes_per_s};
use super::{FaultSpec, LinkProfile, Scenario, Target};
use sovereign_logic::content::Priority;
use std::fmt::Write as _;
use std::time::Duration;

impl Scenario {
    /// TOML that parses back to an equal scenario.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        line(
            w,
            "# Written by sovereign-sim: fully explicit; parses back to the same scenario.",
        );
        kv(w, "name", &quote(&self.name));
        kv(w, "description", &quote(&self.description));
        kv(w, "seed", &seed(self.seed));
        kv(w, "duration", &dur(self.duration));
        kv(w, "liveness_bound", &dur(self.liveness_bound));
        let names: Vec<String> = self.invariants.iter().map(|o| quote(o.name())).collect();
        kv(w, "invariants", &format!("[{}]", names.join(", ")));

        line(w, "\n[origin]");
        kv(
            w,
            "chunk_min_bytes",
            &self.origin.chunk.size_min.to_string(),
        );
        kv(
            w,
            "chunk_avg_bytes",
            &self.origin.chunk.size_avg.to_string(),
        );
        kv(
            w,
            "chunk_max_bytes",
            &self.origin.chunk.size_max.to_string(),
        );

        for t in &self.towers {
            line(w, "\n[[tower]]");
            kv(w, "name", &quote(&t.name));
            kv(w, "devices", &t.devices.to_string());
            line(w, "links = [");
            for l in &t.links {
                let _ = writeln!(
                    w,
                    "  {{ kind = {}, {} }},",
                    quote(l.kind.name()),
                    profile(&l.profile)
                );
            }
            line(w, "]");
            kv(w, "wifi", &format!("{{ {} }}", profile(&t.wifi)));
            line(w, "\n[tower.power]");
            let p = &t.power;
            kv(w, "solar_peak_w", &num(p.solar_peak_w));
            kv(w, "battery_wh", &num(p.battery_wh));
            kv(w, "soc_initial", &num(p.soc_initial));
            kv(w, "load_w", &num(p.load_w));
            kv(w, "grid", &p.grid.to_string());
            kv(w, "ups", &p.ups.to_string());
            kv(w, "cloud_cover", &num(p.cloud_cover));
        }

        let wl = &self.workload;
        line(w, "\n[workload]");
        line(w, "catalog = [");
        for c in &wl.catalog {
            let _ = writeln!(
                w,
                "  {{ priority = \"{}\", items = {}, size = {} }},",
                c.priority,
                c.items,
                size(c.bytes)
            );
        }
        line(w, "]");
        kv(
            w,
            "publish_per_hour",
            &per_priority(|p| num(wl.publish_per_hour[p.index()])),
        );
        kv(
            w,
            "publish_size",
            &per_priority(|p| size(wl.publish_bytes[p.index()])),
        );
        kv(w, "reads_per_device_hour", &num(wl.reads_per_device_hour));
        kv(w, "ops_per_device_hour", &num(wl.ops_per_device_hour));
        kv(w, "contribution_share", &num(wl.contribution_share));
        let m = &wl.misuse;
        for (name, value) in [
            ("shared_identity", m.shared_identity),
            ("key_reuse_per_device_hour", m.key_reuse_per_device_hour),
            ("key_theft_per_hour", m.key_theft_per_hour),
            ("invalid_share", m.invalid_share),
        ] {
            // Written only when set, so files without misuse stay as they were.
            if value != 0.0 {
                kv(w, name, &num(value));
            }
        }

        for f in &self.faults {
            self.write_fault(w, f);
        }

        line(w, "\n[nemesis]");
        for (key, family) in NEMESIS_RATES {
            let rate = self
                .nemesis
                .rates_per_hour
                .iter()
                .find(|(f, _)| *f == family)
                .map_or(0.0, |(_, r)| *r);
            kv(w, key, &num(rate));
        }
        kv(w, "duration_mean", &dur(self.nemesis.duration_mean));
        kv(w, "duration_max", &dur(self.nemesis.duration_max));

        let slo = &self.slo;
        line(w, "\n[slo]");
        if let Some(a) = slo.availability_min {
            kv(w, "availability_min", &num(a));
        }
        let fresh: Vec<String> = Priority::ALL
            .iter()
            .filter_map(|p| slo.freshness_p99_max[p.index()].map(|d| format!("{p} = {}", dur(d))))
            .collect();
        if !fresh.is_empty() {
            kv(
                w,
                "freshness_p99_max",
                &format!("{{ {} }}", fresh.join(", ")),
            );
        }
        if let Some(m) = slo.mttr_max {
            kv(w, "mttr_max", &dur(m));
        }
        kv(w, "rpo_max", &slo.rpo_max.to_string());
        if let Some(s) = slo.soc_min {
            kv(w, "soc_min", &num(s));
        }
        out
    }

    fn write_fault(&self, w: &mut String, f: &FaultSpec) {
        line(w, "\n[[fault]]");
        kv(w, "at", &dur(f.at));
        kv(w, "for", &dur(f.duration));
        kv(w, "target", &quote(&self.target_name(&f.target)));
        kv(w, "kind", &quote(f.kind.name()));
        for (p, (key, value)) in f.kind.decl().params.iter().zip(f.kind.params()) {
            match value {
                ParamValue::Number(x) => kv(w, key, &num(x)),
                ParamValue::Int(n) if matches!(p.ty, ParamTy::Bandwidth) => {
                    let (key, value) = bandwidth(n as u64);
                    kv(w, key, &value);
                }
                ParamValue::Int(n) => kv(w, key, &n.to_string()),
                ParamValue::Duration(d) => kv(w, key, &dur(d)),
                ParamValue::SignedMs(ms) => kv(w, key, &quote(&signed_duration_text(ms))),
            }
        }
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

fn line(w: &mut String, s: &str) {
    w.push_str(s);
    w.push('\n');
}

fn kv(w: &mut String, key: &str, value: &str) {
    let _ = writeln!(w, "{key} = {value}");
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float in TOML: Rust's shortest round-trip form (always with `.` or an exponent).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else if x.is_nan() {
        "nan".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// A quoted duration.
fn dur(d: Duration) -> String {
    quote(&duration_text(d))
}

/// Seeds above `i64::MAX` are written as strings (TOML integers are signed).
fn seed(s: u64) -> String {
    if i64::try_from(s).is_ok() {
        s.to_string()
    } else {
        quote(&s.to_string())
    }
}

/// A size with the largest exact unit.
fn size(bytes: u64) -> String {
    if bytes > 0 && bytes % (1 << 20) == 0 {
        quote(&format!("{}MiB", bytes >> 20))
    } else if bytes > 0 && bytes % (1 << 10) == 0 {
        quote(&format!("{}KiB", bytes >> 10))
    } else {
        bytes.to_string()
    }
}

/// `bandwidth_mbit` when it reads back to the same bytes/s, else exact `bytes_per_s`.
fn bandwidth(bytes_per_s: u64) -> (&'static str, String) {
    let mbit = bytes_per_s as f64 / BYTES_PER_S_PER_MBIT;
    if mbit > 0.0 && mbit_to_bytes_per_s(mbit) == bytes_per_s {
        ("bandwidth_mbit", num(mbit))
    } else {
        ("bytes_per_s", bytes_per_s.to_string())
    }
}

/// The inside of an inline table holding every figure of a profile.
fn profile(p: &LinkProfile) -> String {
    let (bw_key, bw) = bandwidth(p.bytes_per_s);
    format!(
        "profile = {}, latency = {}, jitter = {}, {bw_key} = {bw}, loss = {}, handover_every = {}, handover_outage = {}",
        quote(&p.name),
        dur(p.latency),
        dur(p.jitter),
        num(p.loss),
        dur(p.handover_every.unwrap_or(Duration::ZERO)),
        dur(p.handover_outage),
    )
}

/// An inline table with one entry per class.
fn per_priority(f: impl Fn(Priority) -> String) -> String {
    let parts: Vec<String> = Priority::ALL
        .iter()
        .map(|p| format!("{p} = {}", f(*p)))
        .collect();
    format!("{{ {} }}", parts.join(", "))
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
        assert_eq!(size(16 << 10), "\"16KiB\"");
        assert_eq!(size(3 << 20), "\"3MiB\"");
        assert_eq!(size(1000), "1000");
        assert_eq!(bandwidth(1_250_000), ("bandwidth_mbit", "10.0".to_string()));
        for b in [1u64, 7, 124_999, 12_345_678_901, 1_250_000_000] {
            let (key, v) = bandwidth(b);
            if key == "bandwidth_mbit" {
                assert_eq!(mbit_to_bytes_per_s(v.parse().unwrap()), b);
            } else {
                assert_eq!(v, b.to_string());
            }
        }
    }
}
