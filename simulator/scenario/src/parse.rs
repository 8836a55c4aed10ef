//! Parsing `scenarios/*.toml` into a validated [`Scenario`].
//!
//! Every problem becomes a [`ScenarioError`] naming the file, the 1-based line, the field
//! path (`tower[1].power.soc_initial`, `fault[2].target`) and what was expected. Unknown
//! keys are errors in every table. Nothing here panics on any input.
//!
//! How: the text is parsed once with `toml`'s span-preserving document parser
//! ([`DeTable`]); syntax errors (including duplicate keys) come from it. The document is
//! then walked by hand: each table first declares the keys it accepts (`Tbl::keys`),
//! then each value is converted and range-checked with the span of its key or value at
//! hand, so semantic errors carry a line too. Walking the spanned tree (rather than
//! deriving `serde` structs) keeps one mechanism for type, unknown-key and semantic
//! errors, and lets a fault's accepted keys depend on its `kind`.
//!
//! Map:
//! - [`ScenarioError`], [`parse_file`], [`parse_str`]: the public API.
//! - the limits (`*_MAX` constants) every value is checked against.
//! - [`parse_duration`], [`parse_size`]: the scalar grammars, shared with the writer's
//!   tests.
//! - private: the scenario-only value readers (sizes, per-priority tables) on top of
//!   [`crate::tomlspan`]'s `Ctx`/`Tbl`/`Val` (spanned walking and error building), then
//!   one function per section of the file (profiles, towers, workload, faults, nemesis, SLOs).
//!
//! Not covered: writing scenarios back (see [`super::write`]); the cost of a scenario as
//! a whole (products such as towers × devices: [`super::limits`], called from
//! [`parse_str`]).

use super::build::LIVENESS_BOUND_DEFAULT;
use super::faults::{FaultDecl, Lasts, ParamDecl, ParamTy, ParamValue};
use super::{
    CatalogSpec, Family, FaultKind, FaultSpec, LinkProfile, LinkSpec, Nemesis, Oracle, OriginSpec,
    PowerSpec, Scenario, Slo, Target, TowerSpec, Workload,
};
use crate::tomlspan::{Ctx, Res, SpanError, Tbl, Val};
use sovereign_logic::content::{ChunkParams, Priority};
use sovereign_logic::protocol::LinkKind;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// A scenario file that could not be used: `file`, 1-based `line` (0 when unknown), the
/// `field` path (e.g. `fault[2].target`) and the `message` saying what was wrong and what
/// was expected. It is the shared [`SpanError`] of [`crate::tomlspan`], so the scenario
/// parser and every parser built on the same readers report problems alike.
pub type ScenarioError = SpanError;

/// Largest scenario file accepted, bytes.
pub const TEXT_BYTES_MAX: usize = 1 << 20;
/// Most towers in a scenario (after `count` expansion).
pub const TOWERS_MAX: usize = 1000;
/// Most devices on one tower.
pub const DEVICES_PER_TOWER_MAX: u32 = 100_000;
/// Most groups in the initial catalog.
pub const CATALOG_GROUPS_MAX: usize = 256;
/// Most items in one catalog group.
pub const CATALOG_ITEMS_MAX: u32 = 10_000;
/// Largest item or publication, bytes.
pub const SIZE_BYTES_MAX: u64 = 64 << 20;
/// Highest rate of anything per hour (publications, reads, operations, nemesis faults).
pub const RATE_PER_HOUR_MAX: f64 = 1000.0;
/// Most explicit faults (after `*` expansion).
pub const FAULTS_MAX: usize = 10_000;
/// Longest duration anywhere in a scenario (365 days).
pub const DURATION_MAX: Duration = Duration::from_secs(365 * 86_400);
/// Longest tower, profile or scenario name, bytes.
pub const NAME_LEN_MAX: usize = 64;
/// Longest description, bytes.
pub const DESCRIPTION_LEN_MAX: usize = 4096;
/// Fastest link, Mbit/s (100 Gbit/s).
pub const BANDWIDTH_MBIT_MAX: f64 = 100_000.0;
/// Longest one-way latency, jitter or extra delay of a link or disk.
pub const DELAY_MAX: Duration = Duration::from_secs(3600);
/// Largest CPU slow-down factor.
pub const SLOW_FACTOR_MAX: f64 = 1000.0;
/// Most chunks one corruption fault rots.
pub const CORRUPTION_CHUNKS_MAX: u32 = 100_000;
/// Largest clock skew, parts per million (either way).
pub const CLOCK_SKEW_PPM_MAX: i64 = 500_000;
/// Largest `slo.rpo_max`.
pub const RPO_MAX: u64 = 1_000_000_000;
/// Largest solar panel or load, watts.
pub const POWER_W_MAX: f64 = 100_000.0;
/// Largest battery, watt-hours.
pub const BATTERY_WH_MAX: f64 = 1_000_000.0;

const _: () = assert!(TOWERS_MAX * (DEVICES_PER_TOWER_MAX as usize) <= u32::MAX as usize);
const _: () = assert!(DELAY_MAX.as_millis() <= DURATION_MAX.as_millis());
const _: () = assert!(SIZE_BYTES_MAX <= u32::MAX as u64);

/// Bytes per second in one Mbit/s.
pub const BYTES_PER_S_PER_MBIT: f64 = 125_000.0;

/// Parse a scenario file.
pub fn parse_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text =
        sovereign_wire::input::read_capped_text(path, TEXT_BYTES_MAX as u64, "scenario file")?;
    parse_str(&path.display().to_string(), &text)
}

/// Parse scenario text; `file` names it in errors (and its stem is the default name).
pub fn parse_str(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let ctx = Ctx { file, text };
    if text.len() > TEXT_BYTES_MAX {
        return Err(ctx.err(
            &(0..0),
            "(file)",
            format!(
                "file is {} bytes; expected at most {TEXT_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    let doc = DeTable::parse(text).map_err(|e| ctx.syntax(&e, NAME_LEN_MAX))?;
    let root = Tbl::root(&ctx, &doc);
    scenario(&ctx, &root).and_then(|sc| super::limits::check(&root, sc))
}

/// Parse a duration: one or more `<integer><unit>` terms, units `d`, `h`, `m`, `s`, `ms`
/// in decreasing order, each at most once (`"250ms"`, `"1h30m"`, `"7d"`); `"0s"` is
/// zero. With `signed`, a leading `-` is allowed. Returns (negative, length).
pub fn parse_duration(s: &str, signed: bool) -> Result<(bool, Duration), String> {
    let expected = || {
        format!(
            "expected a duration such as \"250ms\", \"30s\", \"10m\", \"2h\", \"7d\" or \"1h30m\"{}, found {s:?}",
            if signed { " (optionally negative)" } else { "" }
        )
    };
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) if signed => (true, r),
        _ => (false, s),
    };
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total_ms: u128 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(expected());
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        // (rank, milliseconds per unit): ranks must strictly decrease.
        let (rank, unit_ms) = match unit {
            "d" => (4, 86_400_000u128),
            "h" => (3, 3_600_000),
            "m" => (2, 60_000),
            "s" => (1, 1000),
            "ms" => (0, 1),
            _ => return Err(expected()),
        };
        if rank >= last_rank {
            return Err(format!(
                "{}: units must go from largest to smallest, each once",
                expected()
            ));
        }
        last_rank = rank;
        let n: u128 = number.parse().map_err(|_| expected())?;
        total_ms = total_ms.saturating_add(n.saturating_mul(unit_ms));
        rest = tail;
    }
    if total_ms > DURATION_MAX.as_millis() {
        return Err(format!(
            "duration {s:?} is longer than the limit of {}",
            super::format_duration(DURATION_MAX)
        ));
    }
    let ms = u64::try_from(total_ms).map_err(|_| expected())?;
    Ok((negative, Duration::from_millis(ms)))
}

/// Parse a size string: `<integer>B`, `<integer>KiB` or `<integer>MiB` (integers in
/// files are plain bytes and do not come here).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let expected = || {
        format!(
            "expected a size in bytes such as 4096, \"512B\", \"16KiB\" or \"1MiB\", found {s:?}"
        )
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return Err(expected());
    }
    let (number, unit) = s.split_at(digits);
    let mult: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => return Err(expected()),
    };
    let n: u64 = number.parse().map_err(|_| expected())?;
    n.checked_mul(mult).ok_or_else(expected)
}

/// Bytes per second for a bandwidth in Mbit/s (rounded to the byte).
pub fn mbit_to_bytes_per_s(mbit: f64) -> u64 {
    // Callers range-check `mbit` first; `as` saturates anyway.
    (mbit * BYTES_PER_S_PER_MBIT).round() as u64
}

/// The names of every fault kind, in the fault table's order.
pub fn fault_kinds() -> Vec<&'static str> {
    FaultKind::all().map(|d| d.name).collect()
}

// ---------------------------------------------------------------------------------------
// Spanned walking: the shared readers of [`crate::tomlspan`], plus this file's own
// value grammars.

/// Scenario-only readers of a value.
trait ScenarioVal<'a> {
    /// A size: integer bytes or a string with a unit, `1..=SIZE_BYTES_MAX`.
    fn size(&self) -> Res<u64>;
    /// The entries of a table keyed by priority class (`P0`..`P3`), each given once.
    fn per_priority(&self) -> Res<Vec<(Priority, Val<'a>)>>;
}

impl<'a> ScenarioVal<'a> for Val<'a> {
    fn size(&self) -> Res<u64> {
        let expected = "a size from 1 byte to 64MiB";
        let n = match self.v.get_ref() {
            DeValue::Integer(_) => u64::try_from(self.i64(expected)?).unwrap_or(0),
            DeValue::String(s) => parse_size(s).map_err(|m| self.err(m))?,
            _ => {
                return Err(self.wrong_type("a size (integer bytes or a string such as \"16KiB\")"));
            }
        };
        if n == 0 || n > SIZE_BYTES_MAX {
            return Err(self.err(format!("{n} bytes is out of range; expected {expected}")));
        }
        Ok(n)
    }

    fn per_priority(&self) -> Res<Vec<(Priority, Val<'a>)>> {
        let t = self.table()?;
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut keys: Vec<_> = t.map.iter().collect();
        keys.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in keys {
            let field = t.field(k.get_ref());
            let p = Priority::from_str(k.get_ref())
                .map_err(|e| self.ctx.err(&k.span(), &field, e.to_string()))?;
            if !seen.insert(p) {
                return Err(self.ctx.err(&k.span(), &field, format!("{p} given twice")));
            }
            out.push((
                p,
                Val {
                    ctx: self.ctx,
                    field,
                    v,
                },
            ));
        }
        Ok(out)
    }
}

/// Tower, profile and scenario names: `[A-Za-z0-9_.-]`, 1..=NAME_LEN_MAX bytes.
fn check_name(v: &Val<'_>, s: &str) -> Res<()> {
    let ok = !s.is_empty()
        && s.len() <= NAME_LEN_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(v.err(format!(
            "{s:?} is not a valid name; expected 1 to {NAME_LEN_MAX} letters, digits, '_', '-' or '.'"
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Sections.

const ROOT_KEYS: [&str; 13] = [
    "name",
    "description",
    "seed",
    "duration",
    "liveness_bound",
    "invariants",
    "origin",
    "profiles",
    "tower",
    "workload",
    "fault",
    "nemesis",
    "slo",
];

fn scenario(ctx: &Ctx<'_>, root: &Tbl<'_>) -> Res<Scenario> {
    root.keys(&ROOT_KEYS)?;
    let name = match root.get("name") {
        Some(v) => {
            let s = v.str()?;
            if s.is_empty() || s.len() > NAME_LEN_MAX || s.chars().any(char::is_control) {
                return Err(v.err(format!(
                    "expected 1 to {NAME_LEN_MAX} bytes without control characters"
                )));
            }
            s.to_string()
        }
        None => Path::new(ctx.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("scenario")
            .chars()
            .take(NAME_LEN_MAX)
            .collect(),
    };
    let description = match root.get("description") {
        Some(v) => {
            let s = v.str()?;
            if s.len() > DESCRIPTION_LEN_MAX {
                return Err(v.err(format!(
                    "{} bytes; expected at most {DESCRIPTION_LEN_MAX}",
                    s.len()
                )));
            }
            s.to_string()
        }
        None => String::new(),
    };
    let seed = match root.get("seed") {
        Some(v) => seed(&v)?,
        None => 1,
    };
    let duration = root
        .req("duration", "the safety phase's length, e.g. \"24h\"")?
        .duration_pos(DURATION_MAX)?;
    let liveness_bound = match root.get("liveness_bound") {
        Some(v) => v.duration_pos(DURATION_MAX)?,
        None => LIVENESS_BOUND_DEFAULT,
    };
    let origin = match root.get("origin") {
        Some(v) => origin(&v.table()?)?,
        None => OriginSpec {
            chunk: ChunkParams::default(),
        },
    };
    let profiles = match root.get("profiles") {
        Some(v) => profiles(&v.table()?)?,
        None => BTreeMap::new(),
    };
    let towers = towers(root, &profiles)?;
    let workload = match root.get("workload") {
        Some(v) => workload(&v.table()?)?,
        None => Workload::idle(),
    };
    let faults = match root.get("fault") {
        Some(v) => faults(&v, &towers, duration)?,
        None => Vec::new(),
    };
    let nemesis = match root.get("nemesis") {
        Some(v) => nemesis(&v.table()?)?,
        None => Nemesis::off(),
    };
    let invariants = match root.get("invariants") {
        Some(v) => invariants(&v)?,
        None => Oracle::ALL.into_iter().collect(),
    };
    let slo = match root.get("slo") {
        Some(v) => slo(&v.table()?)?,
        None => Slo::default(),
    };
    Ok(Scenario {
        name,
        description,
        duration,
        liveness_bound,
        seed,
        origin,
        towers,
        workload,
        faults,
        nemesis,
        invariants,
        slo,
    })
}

/// A seed: a non-negative integer, or a string of decimal digits for seeds above
/// `i64::MAX` (TOML integers are signed 64-bit).
fn seed(v: &Val<'_>) -> Res<u64> {
    let expected = "a non-negative integer (or a string of digits up to 18446744073709551615)";
    match v.v.get_ref() {
        DeValue::String(s) => s
            .parse::<u64>()
            .map_err(|_| v.err(format!("expected {expected}, found {s:?}"))),
        _ => {
            let n = v.i64(expected)?;
            u64::try_from(n).map_err(|_| v.err(format!("{n} is negative; expected {expected}")))
        }
    }
}

fn origin(t: &Tbl<'_>) -> Res<OriginSpec> {
    t.keys(&["chunk_min_bytes", "chunk_avg_bytes", "chunk_max_bytes"])?;
    let d = ChunkParams::default();
    let get = |key: &str, default: u32| -> Res<u32> {
        match t.get(key) {
            Some(v) => v.u32_in(1, 16 << 20),
            None => Ok(default),
        }
    };
    let chunk = ChunkParams {
        size_min: get("chunk_min_bytes", d.size_min)?,
        size_avg: get("chunk_avg_bytes", d.size_avg)?,
        size_max: get("chunk_max_bytes", d.size_max)?,
    };
    chunk.validate().map_err(|e| {
        // Point at the first size given (the table itself when none is).
        let key = ["chunk_min_bytes", "chunk_avg_bytes", "chunk_max_bytes"]
            .into_iter()
            .find(|k| t.map.contains_key(*k))
            .unwrap_or("chunk_min_bytes");
        t.err_at_key(key, e.to_string())
    })?;
    Ok(OriginSpec { chunk })
}

/// The keys that set a link profile's figures.
const PROFILE_FIELDS: [&str; 7] = [
    "latency",
    "jitter",
    "bandwidth_mbit",
    "bytes_per_s",
    "loss",
    "handover_every",
    "handover_outage",
];

fn profiles(t: &Tbl<'_>) -> Res<BTreeMap<String, LinkProfile>> {
    let mut out = BTreeMap::new();
    let mut entries: Vec<_> = t.map.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name: &str = k.get_ref();
        let val = Val {
            ctx: t.ctx,
            field: t.field(name),
            v,
        };
        check_name(&val, name)?;
        if LinkProfile::BUILTIN.contains(&name) {
            return Err(t.err_at_key(
                name,
                format!(
                    "`{name}` is a built-in profile; give the custom one another name and set base = \"{name}\""
                ),
            ));
        }
        let pt = val.table()?;
        let mut allowed = vec!["base"];
        allowed.extend(PROFILE_FIELDS);
        pt.keys(&allowed)?;
        let base = match pt.get("base") {
            Some(b) => {
                let s = b.str()?;
                Some(LinkProfile::builtin(s).ok_or_else(|| {
                    b.err(format!(
                        "unknown built-in profile {s:?}; expected one of: {}",
                        LinkProfile::BUILTIN.join(", ")
                    ))
                })?)
            }
            None => None,
        };
        out.insert(name.to_string(), profile_fields(&pt, name, base)?);
    }
    Ok(out)
}

/// A profile named `name` from the figures in `t`, defaulting to `base`'s; without a
/// base every figure is required.
fn profile_fields(t: &Tbl<'_>, name: &str, base: Option<LinkProfile>) -> Res<LinkProfile> {
    let need = |key: &str, what: &str| -> ScenarioError {
        t.ctx.err(
            &t.span,
            &t.field(key),
            format!("missing; `{name}` has no base profile to take it from, so expected {what}"),
        )
    };
    let latency = match (t.get("latency"), &base) {
        (Some(v), _) => v.duration_in(Duration::ZERO, DELAY_MAX)?,
        (None, Some(b)) => b.latency,
        (None, None) => return Err(need("latency", "a one-way latency such as \"20ms\"")),
    };
    let jitter = match (t.get("jitter"), &base) {
        (Some(v), _) => v.duration_in(Duration::ZERO, DELAY_MAX)?,
        (None, Some(b)) => b.jitter,
        (None, None) => return Err(need("jitter", "a jitter such as \"5ms\"")),
    };
    let bytes_per_s = match (t.get("bandwidth_mbit"), t.get("bytes_per_s"), &base) {
        (Some(_), Some(v), _) => {
            return Err(v.err("give either bandwidth_mbit or bytes_per_s, not both"));
        }
        (Some(v), None, _) => mbit_to_bytes_per_s(v.f64_pos(BANDWIDTH_MBIT_MAX)?).max(1),
        (None, Some(v), _) => v.u64_in(1, mbit_to_bytes_per_s(BANDWIDTH_MBIT_MAX))?,
        (None, None, Some(b)) => b.bytes_per_s,
        (None, None, None) => {
            return Err(need("bandwidth_mbit", "a bandwidth in Mbit/s such as 10.0"));
        }
    };
    let loss = match (t.get("loss"), &base) {
        (Some(v), _) => v.unit()?,
        (None, Some(b)) => b.loss,
        (None, None) => return Err(need("loss", "a loss probability 0..=1")),
    };
    let handover_every = match (t.get("handover_every"), &base) {
        (Some(v), _) => {
            let d = v.duration_in(Duration::ZERO, Duration::from_secs(86_400))?;
            (!d.is_zero()).then_some(d)
        }
        (None, Some(b)) => b.handover_every,
        (None, None) => None,
    };
    let handover_outage = match (t.get("handover_outage"), &base) {
        (Some(v), _) => {
            let d = v.duration_in(Duration::ZERO, Duration::from_secs(60))?;
            match handover_every {
                Some(every) if d >= every => {
                    return Err(v.err(format!(
                        "expected an outage shorter than handover_every ({})",
                        super::format_duration(every)
                    )));
                }
                _ => d,
            }
        }
        (None, Some(b)) => b.handover_outage,
        (None, None) => Duration::ZERO,
    };
    Ok(LinkProfile {
        name: name.to_string(),
        latency,
        jitter,
        bytes_per_s,
        loss,
        handover_every,
        handover_outage,
    })
}

/// A profile by name: custom ones first, then the built-ins.
fn lookup_profile(
    v: &Val<'_>,
    name: &str,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<Option<LinkProfile>> {
    check_name(v, name)?;
    Ok(custom
        .get(name)
        .cloned()
        .or_else(|| LinkProfile::builtin(name)))
}

fn unknown_profile(v: &Val<'_>, name: &str) -> ScenarioError {
    v.err(format!(
        "unknown link profile `{name}`; expected a built-in ({}) or one defined under [profiles]",
        LinkProfile::BUILTIN.join(", ")
    ))
}

/// The profile an uplink kind gets when none is named.
pub fn default_profile(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Fibre => "fibre",
        LinkKind::Lte => "lte",
        LinkKind::Satellite => "geo",
    }
}

/// One entry of `links`: `"kind"`, `"kind:profile"` or an inline table.
fn link(v: &Val<'_>, custom: &BTreeMap<String, LinkProfile>) -> Res<LinkSpec> {
    match v.v.get_ref() {
        DeValue::String(s) => {
            let (kind_s, profile_s) = match s.split_once(':') {
                Some((k, p)) => (k, Some(p)),
                None => (s.as_ref(), None),
            };
            let kind = LinkKind::from_str(kind_s).map_err(|e| v.err(e.to_string()))?;
            let pname = profile_s.unwrap_or(default_profile(kind));
            let profile =
                lookup_profile(v, pname, custom)?.ok_or_else(|| unknown_profile(v, pname))?;
            Ok(LinkSpec { kind, profile })
        }
        DeValue::Table(_) => {
            let t = v.table()?;
            let mut allowed = vec!["kind", "profile"];
            allowed.extend(PROFILE_FIELDS);
            t.keys(&allowed)?;
            let kv = t.req("kind", "a link kind: fibre, lte or satellite")?;
            let kind = LinkKind::from_str(kv.str()?).map_err(|e| kv.err(e.to_string()))?;
            let (pname, base) = match t.get("profile") {
                Some(pv) => {
                    let n = pv.str()?;
                    (n, lookup_profile(&pv, n, custom)?)
                }
                None => {
                    let n = default_profile(kind);
                    (n, LinkProfile::builtin(n))
                }
            };
            Ok(LinkSpec {
                kind,
                profile: profile_fields(&t, pname, base)?,
            })
        }
        _ => Err(v.wrong_type("a link such as \"fibre\", \"satellite:leo\" or an inline table")),
    }
}

/// The Wi-Fi profile: a profile name or an inline table.
fn wifi(v: &Val<'_>, custom: &BTreeMap<String, LinkProfile>) -> Res<LinkProfile> {
    match v.v.get_ref() {
        DeValue::String(s) => lookup_profile(v, s, custom)?.ok_or_else(|| unknown_profile(v, s)),
        DeValue::Table(_) => {
            let t = v.table()?;
            let mut allowed = vec!["profile"];
            allowed.extend(PROFILE_FIELDS);
            t.keys(&allowed)?;
            let (pname, base) = match t.get("profile") {
                Some(pv) => {
                    let n = pv.str()?;
                    (n, lookup_profile(&pv, n, custom)?)
                }
                None => ("wifi", LinkProfile::builtin("wifi")),
            };
            profile_fields(&t, pname, base)
        }
        _ => Err(v.wrong_type("a profile name such as \"wifi\" or an inline table")),
    }
}

fn power(t: &Tbl<'_>) -> Res<PowerSpec> {
    t.keys(&[
        "solar_peak_w",
        "battery_wh",
        "soc_initial",
        "load_w",
        "grid",
        "ups",
        "cloud_cover",
    ])?;
    let d = power_default();
    Ok(PowerSpec {
        solar_peak_w: t
            .get("solar_peak_w")
            .map_or(Ok(d.solar_peak_w), |v| v.f64_in(0.0, POWER_W_MAX))?,
        battery_wh: t
            .get("battery_wh")
            .map_or(Ok(d.battery_wh), |v| v.f64_in(0.0, BATTERY_WH_MAX))?,
        soc_initial: t
            .get("soc_initial")
            .map_or(Ok(d.soc_initial), |v| v.unit())?,
        load_w: t
            .get("load_w")
            .map_or(Ok(d.load_w), |v| v.f64_pos(POWER_W_MAX))?,
        grid: t.get("grid").map_or(Ok(d.grid), |v| v.bool())?,
        ups: t.get("ups").map_or(Ok(d.ups), |v| v.bool())?,
        cloud_cover: t
            .get("cloud_cover")
            .map_or(Ok(d.cloud_cover), |v| v.unit())?,
    })
}

/// The power set-up of a tower that gives no `[tower.power]` (DESIGN.md §10's solar
/// site: 50 W panel, 40 Wh battery, 2.5 W load).
pub fn power_default() -> PowerSpec {
    PowerSpec {
        solar_peak_w: 50.0,
        battery_wh: 40.0,
        soc_initial: 0.8,
        load_w: 2.5,
        grid: false,
        ups: true,
        cloud_cover: 0.2,
    }
}

fn towers(root: &Tbl<'_>, custom: &BTreeMap<String, LinkProfile>) -> Res<Vec<TowerSpec>> {
    let v = root.req("tower", "at least one [[tower]] table")?;
    if !matches!(v.v.get_ref(), DeValue::Array(_)) {
        return Err(v.wrong_type("an array of tables ([[tower]])"));
    }
    let groups = v.array(TOWERS_MAX)?;
    if groups.is_empty() {
        return Err(v.err("expected at least one tower"));
    }
    let mut out: Vec<TowerSpec> = Vec::new();
    // name → (group index) for duplicate reports.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (gi, g) in groups.iter().enumerate() {
        let t = g.table()?;
        t.keys(&["name", "count", "devices", "links", "wifi", "power"])?;
        let name = match t.get("name") {
            Some(nv) => {
                let s = nv.str()?;
                check_name(&nv, s)?;
                if s == "origin" {
                    return Err(nv.err("`origin` is reserved for the origin; pick another name"));
                }
                Some(s)
            }
            None => None,
        };
        let count = match t.get("count") {
            Some(cv) => cv.u32_in(1, TOWERS_MAX as u32)? as usize,
            None => 1,
        };
        if out.len() + count > TOWERS_MAX {
            let key = if t.map.contains_key("count") {
                "count"
            } else {
                "name"
            };
            return Err(t.err_at_key(
                key,
                format!("more than {TOWERS_MAX} towers in total; expected at most {TOWERS_MAX}"),
            ));
        }
        let devices = t
            .req("devices", "the number of devices on each tower")?
            .u32_in(0, DEVICES_PER_TOWER_MAX)?;
        let lv = t.req(
            "links",
            "the tower's uplinks, e.g. [\"fibre\", \"lte\", \"satellite:geo\"]",
        )?;
        let mut links: Vec<LinkSpec> = Vec::new();
        let entries = lv.array(LinkKind::ALL.len())?;
        if entries.is_empty() {
            return Err(lv.err("expected at least one uplink"));
        }
        for e in &entries {
            let l = link(e, custom)?;
            if links.iter().any(|x| x.kind == l.kind) {
                return Err(e.err(format!(
                    "a second {} link; expected each kind at most once",
                    l.kind
                )));
            }
            links.push(l);
        }
        let wifi = match t.get("wifi") {
            Some(wv) => wifi(&wv, custom)?,
            None => LinkProfile::builtin("wifi").ok_or_else(|| g.err("no built-in wifi"))?,
        };
        let power = match t.get("power") {
            Some(pv) => power(&pv.table()?)?,
            None => power_default(),
        };
        for i in 0..count {
            let tower_name = match name {
                Some(n) if count == 1 => n.to_string(),
                Some(n) => format!("{n}-{i}"),
                None => format!("tower-{}", out.len()),
            };
            if let Some(prev) = names.insert(tower_name.clone(), gi) {
                let key = if name.is_some() { "name" } else { "count" };
                return Err(t.err_at_key(
                    key,
                    format!(
                        "tower name `{tower_name}` is already used (by tower[{prev}]); expected unique names"
                    ),
                ));
            }
            out.push(TowerSpec {
                name: tower_name,
                devices,
                links: links.clone(),
                wifi: wifi.clone(),
                power: power.clone(),
            });
        }
    }
    Ok(out)
}

/// The publication sizes when `publish_size` does not give a class.
pub const PUBLISH_BYTES_DEFAULT: [u64; 4] = [8 << 10, 64 << 10, 256 << 10, 1 << 20];

fn workload(t: &Tbl<'_>) -> Res<Workload> {
    t.keys(&[
        "catalog",
        "publish_per_hour",
        "publish_size",
        "reads_per_device_hour",
        "ops_per_device_hour",
        "contribution_share",
        "shared_identity",
        "key_reuse_per_device_hour",
        "key_theft_per_hour",
        "invalid_share",
    ])?;
    let mut w = Workload::idle();
    if let Some(cv) = t.get("catalog") {
        for e in cv.array(CATALOG_GROUPS_MAX)? {
            let ct = e.table()?;
            ct.keys(&["priority", "items", "size"])?;
            let pv = ct.req("priority", "a priority class P0, P1, P2 or P3")?;
            let priority = Priority::from_str(pv.str()?).map_err(|e| pv.err(e.to_string()))?;
            let items = ct
                .req("items", "how many items")?
                .u32_in(1, CATALOG_ITEMS_MAX)?;
            let bytes = ct.req("size", "the size of each item")?.size()?;
            w.catalog.push(CatalogSpec {
                priority,
                items,
                bytes,
            });
        }
    }
    if let Some(v) = t.get("publish_per_hour") {
        for (p, rv) in v.per_priority()? {
            w.publish_per_hour[p.index()] = rv.f64_in(0.0, RATE_PER_HOUR_MAX)?;
        }
    }
    if let Some(v) = t.get("publish_size") {
        for (p, sv) in v.per_priority()? {
            w.publish_bytes[p.index()] = sv.size()?;
        }
    }
    if let Some(v) = t.get("reads_per_device_hour") {
        w.reads_per_device_hour = v.f64_in(0.0, RATE_PER_HOUR_MAX)?;
    }
    if let Some(v) = t.get("ops_per_device_hour") {
        w.ops_per_device_hour = v.f64_in(0.0, RATE_PER_HOUR_MAX)?;
    }
    if let Some(v) = t.get("contribution_share") {
        w.contribution_share = v.unit()?;
    }
    let m = &mut w.misuse;
    if let Some(v) = t.get("shared_identity") {
        m.shared_identity = v.unit()?;
    }
    if let Some(v) = t.get("key_reuse_per_device_hour") {
        m.key_reuse_per_device_hour = v.f64_in(0.0, RATE_PER_HOUR_MAX)?;
    }
    if let Some(v) = t.get("key_theft_per_hour") {
        m.key_theft_per_hour = v.f64_in(0.0, RATE_PER_HOUR_MAX)?;
    }
    if let Some(v) = t.get("invalid_share") {
        m.invalid_share = v.unit()?;
    }
    Ok(w)
}

/// Resolve a target string against the towers (`*` expands to every tower) and check
/// each against the kind's declared targets; `Err` says what was expected.
pub fn resolve_targets(
    decl: &FaultDecl,
    s: &str,
    towers: &[TowerSpec],
) -> Result<Vec<Target>, String> {
    let resolved = if s == "origin" {
        vec![Target::Origin]
    } else {
        let (tower_s, sub) = match s.split_once('/') {
            Some((t, rest)) => (t, Some(rest)),
            None => (s, None),
        };
        let indices: Vec<usize> = if tower_s == "*" {
            (0..towers.len()).collect()
        } else {
            match towers.iter().position(|t| t.name == tower_s) {
                Some(i) => vec![i],
                None => {
                    let known: Vec<&str> =
                        towers.iter().take(10).map(|t| t.name.as_str()).collect();
                    let more = if towers.len() > 10 { ", ..." } else { "" };
                    return Err(format!(
                        "unknown target {s:?}; expected \"origin\", \"*\" or a tower ({}{more}), optionally followed by /fibre, /lte, /satellite or /wifi",
                        known.join(", ")
                    ));
                }
            }
        };
        let mut out = Vec::new();
        for i in indices {
            out.push(match sub {
                None => Target::Tower(i),
                Some("wifi") => Target::Wifi(i),
                Some(k) => {
                    let kind = LinkKind::from_str(k).map_err(|_| {
                        format!(
                            "unknown target {s:?}: after '/' expected fibre, lte, satellite or wifi"
                        )
                    })?;
                    let tower = &towers[i];
                    if !tower.links.iter().any(|l| l.kind == kind) {
                        let has: Vec<&str> = tower.links.iter().map(|l| l.kind.name()).collect();
                        return Err(format!(
                            "tower `{}` has no {kind} link; its links are: {}",
                            tower.name,
                            has.join(", ")
                        ));
                    }
                    Target::Link(i, kind)
                }
            });
        }
        out
    };
    if resolved.iter().any(|t| !decl.targets.contains(t)) {
        return Err(format!(
            "fault kind `{}` cannot target {s:?}; expected {}",
            decl.name,
            decl.targets.phrase()
        ));
    }
    Ok(resolved)
}

/// One parameter's value, read and range-checked against its declaration.
fn param(t: &Tbl<'_>, decl: &FaultDecl, p: &'static ParamDecl) -> Res<ParamValue> {
    let missing = |key: &str| {
        t.ctx.err(
            &t.span,
            &t.field(key),
            format!(
                "missing; expected {} for fault kind `{}`",
                p.what, decl.name
            ),
        )
    };
    if let ParamTy::Bandwidth = p.ty {
        let bytes_per_s = match (t.get("bandwidth_mbit"), t.get("bytes_per_s")) {
            (Some(_), Some(v)) => {
                return Err(v.err("give either bandwidth_mbit or bytes_per_s, not both"));
            }
            (Some(v), None) => mbit_to_bytes_per_s(v.f64_pos(BANDWIDTH_MBIT_MAX)?).max(1),
            (None, Some(v)) => v.u64_in(1, mbit_to_bytes_per_s(BANDWIDTH_MBIT_MAX))?,
            (None, None) => return Err(missing("bandwidth_mbit")),
        };
        return Ok(ParamValue::Int(bytes_per_s as i64));
    }
    let v = t.get(p.key).ok_or_else(|| missing(p.key))?;
    Ok(match p.ty {
        ParamTy::Unit => ParamValue::Number(v.unit()?),
        ParamTy::Number { min, max } => ParamValue::Number(v.f64_in(min, max)?),
        ParamTy::Int { min, max } => ParamValue::Int(v.int_in(min, max)?),
        ParamTy::Duration { min, max } => ParamValue::Duration(v.duration_in(min, max)?),
        ParamTy::SignedDuration => {
            let (negative, d) = v.duration_signed()?;
            if d.is_zero() {
                return Err(v.err("expected a non-zero jump such as \"-30s\" or \"5m\""));
            }
            let ms = i64::try_from(d.as_millis()).map_err(|_| v.err("jump out of range"))?;
            ParamValue::SignedMs(if negative { -ms } else { ms })
        }
        ParamTy::Bandwidth => unreachable!("handled above"),
    })
}

/// A fault's kind with its parameters, as its declaration says.
fn fault_kind(t: &Tbl<'_>, decl: &'static FaultDecl) -> Res<FaultKind> {
    let mut values = Vec::with_capacity(decl.params.len());
    for p in decl.params {
        values.push((p.key, param(t, decl, p)?));
    }
    // The values were checked against their declarations; a mismatch with the variant's
    // fields is a bug in the table (`faults::tests` checks every kind).
    FaultKind::from_params(decl.name, &values).map_err(|e| {
        t.ctx
            .err(&t.span, &t.field("kind"), format!("internal: {e}"))
    })
}

/// A fault's kind, parameters, `for` and target, as a scenario's `[[fault]]` or a game-day
/// step's `fault = { … }` gives them (`at` is the caller's).
pub struct FaultParts<'a> {
    /// The kind's declaration.
    pub decl: &'static FaultDecl,
    /// The kind with its parameters.
    pub kind: FaultKind,
    /// `for`, when given (checked: positive unless the kind may be instant).
    pub lasts: Option<Duration>,
    /// The `target` value, resolved against towers by [`resolve_targets`].
    pub target: Val<'a>,
}

impl FaultParts<'_> {
    /// How long the fault lasts when it starts at `at` in a safety phase of `duration`.
    pub fn duration(&self, at: Duration, duration: Duration) -> Duration {
        self.decl.duration(self.lasts, duration.saturating_sub(at))
    }
}

/// Read a fault table's kind, parameters, `for` and `target`; `keys` are the other keys
/// the table may have (`at` in a scenario).
pub fn fault_parts<'a>(t: &Tbl<'a>, keys: &[&str]) -> Res<FaultParts<'a>> {
    let kinds = fault_kinds().join(", ");
    let kind_v = t.req("kind", &format!("a fault kind: {kinds}"))?;
    let kind_name = kind_v.str()?;
    let decl = FaultKind::decl_named(kind_name).ok_or_else(|| {
        kind_v.err(format!(
            "unknown fault kind {kind_name:?}; expected one of: {kinds}"
        ))
    })?;
    // A parameter of another kind gets a message of its own before the generic check.
    let params: Vec<&str> = decl.params.iter().flat_map(|p| p.keys()).copied().collect();
    let foreign = t
        .map
        .keys()
        .filter(|k| {
            let k = k.get_ref().as_ref();
            FaultKind::all().any(|d| d.params.iter().any(|p| p.keys().contains(&k)))
                && !params.contains(&k)
        })
        .min_by_key(|k| k.span().start);
    if let Some(k) = foreign {
        let takes = if params.is_empty() {
            "no parameters".to_string()
        } else {
            params.join(", ")
        };
        return Err(t.err_at_key(
            k.get_ref(),
            format!(
                "`{}` is not a parameter of fault kind `{kind_name}`; it takes {takes}",
                k.get_ref()
            ),
        ));
    }
    let mut allowed = vec!["for", "target", "kind"];
    allowed.extend(keys);
    allowed.extend(&params);
    t.keys(&allowed)?;
    let kind = fault_kind(t, decl)?;
    let lasts = match (t.get("for"), decl.lasts) {
        (Some(fv), Lasts::For) => Some(fv.duration_pos(DURATION_MAX)?),
        (Some(fv), _) => Some(fv.duration_in(Duration::ZERO, DURATION_MAX)?),
        (None, Lasts::For) => {
            return Err(t.ctx.err(
                &t.span,
                &t.field("for"),
                format!("missing; expected how long the `{kind_name}` fault lasts, e.g. \"30m\""),
            ));
        }
        (None, _) => None,
    };
    let target = t.req(
        "target",
        "\"origin\", a tower, \"<tower>/<link>\" or \"<tower>/wifi\"",
    )?;
    target.str()?;
    Ok(FaultParts {
        decl,
        kind,
        lasts,
        target,
    })
}

fn faults(v: &Val<'_>, towers: &[TowerSpec], duration: Duration) -> Res<Vec<FaultSpec>> {
    if !matches!(v.v.get_ref(), DeValue::Array(_)) {
        return Err(v.wrong_type("an array of tables ([[fault]])"));
    }
    let mut out = Vec::new();
    for e in v.array(FAULTS_MAX)? {
        let t = e.table()?;
        let parts = fault_parts(&t, &["at"])?;
        let at_v = t.req("at", "when the fault starts, e.g. \"2h\"")?;
        let at = at_v.duration_in(Duration::ZERO, DURATION_MAX)?;
        if at >= duration {
            return Err(at_v.err(format!(
                "the fault starts at or after the end of the safety phase; expected less than duration ({})",
                super::format_duration(duration)
            )));
        }
        let tv = &parts.target;
        for target in resolve_targets(parts.decl, tv.str()?, towers).map_err(|m| tv.err(m))? {
            if out.len() >= FAULTS_MAX {
                return Err(tv.err(format!(
                    "more than {FAULTS_MAX} faults after expanding \"*\"; expected at most {FAULTS_MAX}"
                )));
            }
            out.push(FaultSpec {
                at,
                duration: parts.duration(at, duration),
                target,
                kind: parts.kind.clone(),
            });
        }
    }
    Ok(out)
}

/// The nemesis rate keys, in [`Family`] order.
pub const NEMESIS_RATES: [(&str, Family); 5] = [
    ("network_per_hour", Family::Network),
    ("process_per_hour", Family::Process),
    ("disk_per_hour", Family::Disk),
    ("power_per_hour", Family::Power),
    ("clock_per_hour", Family::Clock),
];

fn nemesis(t: &Tbl<'_>) -> Res<Nemesis> {
    let mut allowed: Vec<&str> = NEMESIS_RATES.iter().map(|(k, _)| *k).collect();
    allowed.extend(["duration_mean", "duration_max"]);
    t.keys(&allowed)?;
    let mut n = Nemesis::off();
    for (key, family) in NEMESIS_RATES {
        if let Some(v) = t.get(key) {
            let rate = v.f64_in(0.0, RATE_PER_HOUR_MAX)?;
            if rate > 0.0 {
                n.rates_per_hour.push((family, rate));
            }
        }
    }
    if let Some(v) = t.get("duration_mean") {
        n.duration_mean = v.duration_pos(DURATION_MAX)?;
    }
    if let Some(v) = t.get("duration_max") {
        n.duration_max = v.duration_pos(DURATION_MAX)?;
    }
    if n.duration_mean > n.duration_max {
        let key = if t.map.contains_key("duration_mean") {
            "duration_mean"
        } else {
            "duration_max"
        };
        return Err(t.err_at_key(
            key,
            format!(
                "duration_mean ({}) is longer than duration_max ({}); expected mean <= max",
                super::format_duration(n.duration_mean),
                super::format_duration(n.duration_max)
            ),
        ));
    }
    Ok(n)
}

fn invariants(v: &Val<'_>) -> Res<BTreeSet<Oracle>> {
    let mut out = BTreeSet::new();
    for e in v.array(64)? {
        let s = e.str()?;
        if s == "all" {
            out.extend(Oracle::ALL);
            continue;
        }
        let o = Oracle::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Oracle::ALL.iter().map(|o| o.name()).collect();
            e.err(format!(
                "unknown invariant {s:?}; expected \"all\" or one of: {}",
                names.join(", ")
            ))
        })?;
        out.insert(o);
    }
    Ok(out)
}

fn slo(t: &Tbl<'_>) -> Res<Slo> {
    t.keys(&[
        "availability_min",
        "freshness_p99_max",
        "mttr_max",
        "rpo_max",
        "soc_min",
    ])?;
    let mut s = Slo::default();
    if let Some(v) = t.get("availability_min") {
        s.availability_min = Some(v.unit()?);
    }
    if let Some(v) = t.get("freshness_p99_max") {
        for (p, dv) in v.per_priority()? {
            s.freshness_p99_max[p.index()] = Some(dv.duration_pos(DURATION_MAX)?);
        }
    }
    if let Some(v) = t.get("mttr_max") {
        s.mttr_max = Some(v.duration_pos(DURATION_MAX)?);
    }
    if let Some(v) = t.get("rpo_max") {
        s.rpo_max = v.u64_in(0, RPO_MAX)?;
    }
    if let Some(v) = t.get("soc_min") {
        s.soc_min = Some(v.unit()?);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "duration = \"1h\"\n[[tower]]\ndevices = 3\nlinks = [\"fibre\"]\n";

    fn err(text: &str) -> ScenarioError {
        match parse_str("t.toml", text) {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e,
        }
    }

    /// Goal: the duration grammar accepts units in decreasing order and rejects the rest.
    #[test]
    fn durations() {
        let ok = |s: &str, ms: u64| {
            assert_eq!(
                parse_duration(s, false),
                Ok((false, Duration::from_millis(ms)))
            )
        };
        ok("250ms", 250);
        ok("30s", 30_000);
        ok("10m", 600_000);
        ok("2h", 7_200_000);
        ok("7d", 604_800_000);
        ok("1h30m", 5_400_000);
        ok("1d2h3m4s5ms", 93_784_005);
        ok("0s", 0);
        assert_eq!(
            parse_duration("-30s", true),
            Ok((true, Duration::from_secs(30)))
        );
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "30m1h",
            "1h1h",
            "-30s",
            "1 h",
            "1H",
            "1y",
            "99999999999999d",
            "366d",
        ] {
            assert!(parse_duration(bad, false).is_err(), "{bad:?} accepted");
        }
    }

    /// Goal: sizes take B/KiB/MiB units and nothing else.
    #[test]
    fn sizes() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        for bad in ["", "16", "16kb", "KiB", "1.5MiB", "-1B", "1GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Goal: a minimal file gets every documented default.
    #[test]
    fn minimal_defaults() {
        let s = parse_str("dir/minimal.toml", MINIMAL).expect("parses");
        assert_eq!(s.name, "minimal");
        assert_eq!(s.seed, 1);
        assert_eq!(s.liveness_bound, Duration::from_secs(7200));
        assert_eq!(s.towers.len(), 1);
        assert_eq!(s.towers[0].name, "tower-0");
        assert_eq!(
            s.towers[0].links[0].profile,
            LinkProfile::builtin("fibre").unwrap()
        );
        assert_eq!(s.towers[0].wifi, LinkProfile::builtin("wifi").unwrap());
        assert_eq!(s.towers[0].power, power_default());
        assert_eq!(s.origin.chunk, ChunkParams::default());
        assert_eq!(s.invariants.len(), Oracle::ALL.len());
        assert_eq!(s.nemesis, Nemesis::off());
        assert_eq!(s.slo, Slo::default());
        assert!(s.faults.is_empty());
    }

    /// Goal: towers expand by count, names are suffixed, and unnamed groups continue
    /// the global numbering.
    #[test]
    fn tower_names() {
        let s = parse_str(
            "t.toml",
            "duration = \"1h\"\n[[tower]]\nname = \"hub\"\ndevices = 1\nlinks = [\"lte\"]\n\
             [[tower]]\nname = \"v\"\ncount = 2\ndevices = 1\nlinks = [\"lte\"]\n\
             [[tower]]\ncount = 2\ndevices = 1\nlinks = [\"lte\"]\n",
        )
        .expect("parses");
        let names: Vec<&str> = s.towers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["hub", "v-0", "v-1", "tower-3", "tower-4"]);
    }

    /// Goal: `*` expands a fault to every tower, in tower order.
    #[test]
    fn star_target() {
        let text = format!(
            "{MINIMAL}[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n\
             [[fault]]\nat = \"1m\"\nfor = \"1m\"\ntarget = \"*/fibre\"\nkind = \"link-down\"\n"
        );
        let s = parse_str("t.toml", &text).expect("parses");
        let targets: Vec<_> = s.faults.iter().map(|f| f.target.clone()).collect();
        assert_eq!(
            targets,
            [
                Target::Link(0, LinkKind::Fibre),
                Target::Link(1, LinkKind::Fibre)
            ]
        );
    }

    /// Goal: errors carry the line and path of the offending value.
    #[test]
    fn error_positions() {
        let e = err(&format!("{MINIMAL}[tower.power]\nsoc_initial = 1.5\n"));
        assert_eq!(
            (e.line, e.field.as_str()),
            (6, "tower[0].power.soc_initial")
        );
        let e = err(&format!("seed = -3\n{MINIMAL}"));
        assert_eq!((e.line, e.field.as_str()), (1, "seed"));
        assert!(e.message.contains("negative"), "{e}");
        let e = err(&format!("{MINIMAL}seed = 3\n"));
        assert_eq!((e.line, e.field.as_str()), (5, "tower[0].seed"));
        assert!(e.message.starts_with("unknown key `seed`"), "{e}");
        let e = err("duration = \"1h\"\n");
        assert_eq!(e.field, "tower");
        let e = err(&format!("{MINIMAL}[nemesis]\nduration_mean = \"2h\"\n"));
        assert_eq!((e.line, e.field.as_str()), (6, "nemesis.duration_mean"));
        let e = err(&format!("{MINIMAL}[origin]\nchunk_min_bytes = 100000\n"));
        assert_eq!((e.line, e.field.as_str()), (6, "origin.chunk_min_bytes"));
        let e = err(&format!(
            "{MINIMAL}[slo]\nfreshness_p99_max = {{ P9 = \"5m\" }}\n"
        ));
        assert_eq!((e.line, e.field.as_str()), (6, "slo.freshness_p99_max.P9"));
        assert_eq!(
            e.to_string(),
            format!("t.toml:6: slo.freshness_p99_max.P9: {}", e.message)
        );
    }

    /// Goal: a link of the same kind twice and an uplink-less tower are rejected.
    #[test]
    fn link_rules() {
        let e = err("duration = \"1h\"\n[[tower]]\ndevices = 1\nlinks = [\"lte\", \"lte:leo\"]\n");
        assert_eq!((e.line, e.field.as_str()), (4, "tower[0].links[1]"));
        let e = err("duration = \"1h\"\n[[tower]]\ndevices = 1\nlinks = []\n");
        assert_eq!(e.field, "tower[0].links");
        let e = err(
            "duration = \"1h\"\n[profiles.geo]\nloss = 0.1\n[[tower]]\ndevices = 1\nlinks = [\"lte\"]\n",
        );
        assert_eq!((e.line, e.field.as_str()), (2, "profiles.geo"));
    }

    /// Goal: a custom profile inherits its base's figures and overrides the given ones.
    #[test]
    fn custom_profile() {
        let s = parse_str(
            "t.toml",
            "duration = \"1h\"\n[profiles.slow-geo]\nbase = \"geo\"\nbandwidth_mbit = 2.0\n\
             [[tower]]\ndevices = 1\nlinks = [\"satellite:slow-geo\"]\n",
        )
        .expect("parses");
        let p = &s.towers[0].links[0].profile;
        let geo = LinkProfile::builtin("geo").unwrap();
        assert_eq!(p.name, "slow-geo");
        assert_eq!(p.bytes_per_s, 250_000);
        assert_eq!((p.latency, p.loss), (geo.latency, geo.loss));
    }
}
