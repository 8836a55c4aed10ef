//! How [`Kpis`](crate::kpi::Kpis) writes and reads itself with serde (the `kpis` of a
//! run's saved data, `run.json`, and of its JSON summary): durations in seconds
//! (`mttd_s`, `rto_bound_s`), freshness as one row per class with the class's name
//! (`{"class": "P0", "samples": …, "p50_s": …, "p99_s": …, "unservable": …}`), bytes per
//! link keyed by the link's name (`fibre`).
//!
//! Map (each a module for `#[serde(with = …)]`): [`secs`] and [`opt_secs`] (a
//! `Duration` as `f64` seconds), [`opt_us_as_secs`] (microseconds as `f64` seconds),
//! [`classes`] (the four [`ClassFreshness`] as rows), [`link_names`] (`LinkKind` keys by
//! name).
//!
//! Reading back gives the same values for what a run measures: whole microseconds (the
//! KPIs' resolution; scenario durations are whole milliseconds) below 2^53 µs, so a report
//! rebuilt from `run.json` shows the same numbers as the run's own.
//!
//! Not covered: the fields left out of the JSON (`#[serde(skip)]` on `Kpis`: tower
//! names, per-tower reads, the coarse series and the fault outcomes; a run's saved data
//! keeps its own series and faults), which read back empty.

use crate::kpi::ClassFreshness;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// Seconds (finite, non-negative) as whole microseconds.
fn micros<E: serde::de::Error>(s: f64) -> Result<u64, E> {
    if !(s.is_finite() && s >= 0.0) {
        return Err(E::custom(format!(
            "expected non-negative seconds, found {s}"
        )));
    }
    let us = (s * 1e6).round();
    if us >= 2f64.powi(53) {
        return Err(E::custom(format!("{s} seconds is too long")));
    }
    Ok(us as u64)
}

/// A `Duration` as `f64` seconds.
pub(crate) mod secs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(micros(f64::deserialize(d)?)?))
    }
}

/// An optional `Duration` as `f64` seconds or `null`.
pub(crate) mod opt_secs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.as_secs_f64()).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|s| micros(s).map(Duration::from_micros))
            .transpose()
    }
}

/// Optional microseconds as `f64` seconds or `null`.
pub(crate) mod opt_us_as_secs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(us: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        us.map(|us| us as f64 / 1e6).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<f64>::deserialize(d)?.map(micros).transpose()
    }
}

/// One class's freshness with the class's name (`P0`…).
#[derive(Serialize, Deserialize)]
struct ClassRow<F> {
    class: String,
    #[serde(flatten)]
    freshness: F,
}

/// The freshness of the four classes, `P0` first, as rows naming their class.
pub(crate) mod classes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        f: &[ClassFreshness; 4],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(Priority::ALL.iter().zip(f).map(|(p, f)| ClassRow {
            class: p.to_string(),
            freshness: f,
        }))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[ClassFreshness; 4], D::Error> {
        let rows = Vec::<ClassRow<ClassFreshness>>::deserialize(d)?;
        let names: Vec<&str> = rows.iter().map(|r| r.class.as_str()).collect();
        let expected: Vec<String> = Priority::ALL.iter().map(|p| p.to_string()).collect();
        if names != expected {
            return Err(D::Error::custom(format!(
                "expected one row per class {expected:?} in order, found {names:?}"
            )));
        }
        let mut out: [ClassFreshness; 4] = Default::default();
        for (slot, row) in out.iter_mut().zip(rows) {
            *slot = row.freshness;
        }
        Ok(out)
    }
}

/// Bytes per uplink kind, keyed by the kind's name (`fibre`, `lte`, `satellite`).
pub(crate) mod link_names {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        m: &BTreeMap<LinkKind, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // Keys in the order of their names, as a map of strings has them.
        let by_name: BTreeMap<&str, u64> = m.iter().map(|(k, b)| (k.name(), *b)).collect();
        by_name.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<LinkKind, u64>, D::Error> {
        BTreeMap::<String, u64>::deserialize(d)?
            .into_iter()
            .map(|(k, b)| {
                LinkKind::from_str(&k)
                    .map(|k| (k, b))
                    .map_err(|e| D::Error::custom(format!("bytes_per_link: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::kpi::{ClassFreshness, Kpis};
    use sovereign_logic::protocol::LinkKind;
    use std::time::Duration;

    /// KPIs with every serialised kind of field set, and the skipped ones empty.
    fn kpis() -> Kpis {
        let mut k = Kpis {
            availability: 0.5,
            reads_valid: 4,
            reads_good: 2,
            tower_availability: vec![1.0, 0.25],
            mttd: Some(Duration::from_micros(11_000_001)),
            mttr: None,
            rto_bound: Duration::from_secs(3600),
            rto_compliance: Some(1.0),
            soc_lowest: None,
            ..Kpis::default()
        };
        k.freshness[0] = ClassFreshness {
            samples: 3,
            p50_us: Some(1_500_000),
            p99_us: Some(86_400_000_123),
            unservable: 1,
        };
        k.bytes_per_link = [(LinkKind::Satellite, 7), (LinkKind::Fibre, 9)].into();
        k
    }

    #[test]
    fn kpis_write_seconds_class_rows_and_link_names() {
        // Goal: the JSON has the names and units `run.json` has always had.
        let v = serde_json::to_value(kpis()).expect("serialises");
        assert_eq!(v["mttd_s"], 11.000001);
        assert_eq!(v["mttr_s"], serde_json::Value::Null);
        assert_eq!(v["rto_bound_s"], 3600.0);
        assert_eq!(v["freshness"][0]["class"], "P0");
        assert_eq!(v["freshness"][0]["p50_s"], 1.5);
        assert_eq!(v["freshness"][3]["class"], "P3");
        assert_eq!(v["freshness"][3]["p99_s"], serde_json::Value::Null);
        assert_eq!(
            v["bytes_per_link"],
            serde_json::json!({"fibre": 9, "satellite": 7})
        );
        for skipped in ["read_periods", "series", "fault_outcomes", "mttd"] {
            assert!(v.get(skipped).is_none(), "{skipped} written");
        }
        // The tower names and per-tower reads are kept: a report's KPI table prints them
        // as the CLI does.
        assert!(v.get("tower_names").is_some() && v.get("tower_reads").is_some());
    }

    #[test]
    fn kpis_read_back_equal() {
        // Goal: what is written reads back as the same KPIs (skipped fields empty).
        let k = kpis();
        let text = serde_json::to_string(&k).expect("serialises");
        let back: Kpis = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, k);
    }

    #[test]
    fn bad_rows_and_links_are_refused() {
        // Goal: freshness rows out of class order and unknown links are errors.
        let mut v = serde_json::to_value(kpis()).expect("serialises");
        v["freshness"][1]["class"] = "P0".into();
        let e = serde_json::from_value::<Kpis>(v).expect_err("classes out of order");
        assert!(e.to_string().contains("one row per class"), "{e}");
        let mut v = serde_json::to_value(kpis()).expect("serialises");
        v["bytes_per_link"]["wifi"] = 1.into();
        assert!(serde_json::from_value::<Kpis>(v).is_err());
        let mut v = serde_json::to_value(kpis()).expect("serialises");
        v["mttd_s"] = (-1.0).into();
        assert!(serde_json::from_value::<Kpis>(v).is_err());
    }
}
