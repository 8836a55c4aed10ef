//! Parsing `scenarios/*.toml` into a validated [`Scenario`].
//!
//! Every problem becomes a [`ScenarioError`] naming the file, the 1-based line, the field
//! path (`tower[1].power.soc_initial`, `fault[2].target`) and what was expected. Unknown
//! keys are errors in every table. Nothing here panics on any input.
//!
//! How: serde reads the text into the raw structs below (`RawScenario` and its parts,
//! `deny_unknown_fields` everywhere) through [`crate::tomlspan`]; values whose range is
//! fixed are checked as they are read ([`Int`], [`Num`], [`Dur`], [`Size`], …), and the
//! values a later rule needs to point at keep their span ([`Spanned`]). The validation
//! step then turns the raw structs into the [`Scenario`]: defaults, profiles, tower
//! names, link rules, fault kinds and targets, cross-field rules. A `[[fault]]` table is
//! read as a map of spanned keys and values ([`RawFault`]) because the keys it accepts
//! depend on its `kind`; its parameters are checked against the fault table
//! ([`FaultDecl`]). The writer
//! ([`super::write`]) serialises the same raw structs.
//!
//! Map:
//! - [`ScenarioError`], [`parse_file`], [`parse_str`]: the public API.
//! - the limits (`*_MAX` constants) every value is checked against.
//! - [`parse_duration`], [`parse_size`]: the scalar grammars.
//! - the raw structs and the scenario's own value types ([`Seed`], [`Size`],
//!   [`PerPriority`] with [`classes`]).
//! - the validation, one function per section (profiles, towers, workload, faults,
//!   nemesis, SLOs); [`fault_parts`] is shared with game-day plans.
//!
//! Not covered: the cost of a scenario as a whole (products such as towers × devices:
//! [`super::limits`], called from [`parse_str`]).

use super::build::LIVENESS_BOUND_DEFAULT;
use super::faults::{FaultDecl, Lasts, ParamDecl, ParamTy, ParamValue};
use super::{
    CatalogSpec, Database, Family, FaultKind, FaultSpec, LinkProfile, LinkSpec, Misuse, Nemesis,
    Oracle, OriginSpec, PowerSpec, Scenario, Slo, Target, TowerSpec, Workload,
};
use crate::power::POWER_TIME_SCALE_MAX;
use crate::tomlspan::{
    Capped, Ctx, Dur, Int, Num, Pos, Res, SpanError, StrOr, Unit, checked, dur_in, dur_signed,
    int_in, num_in, pos_in, unspanned as sp, wrong,
};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};
use sovereign_logic::content::{ChunkParams, Priority};
use sovereign_logic::protocol::LinkKind;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use toml::{Spanned, Value};

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

// The limits as the checked value types take them (integers; milliseconds).
const DURATION_MAX_MS: u64 = DURATION_MAX.as_millis() as u64;
const DELAY_MAX_MS: u64 = DELAY_MAX.as_millis() as u64;
const DAY_MS: u64 = 86_400_000;
const RATE_MAX: i64 = RATE_PER_HOUR_MAX as i64;
const BYTES_PER_S_MAX: i64 = (BANDWIDTH_MBIT_MAX * BYTES_PER_S_PER_MBIT) as i64;
type PosDur = Dur<1, DURATION_MAX_MS>;
type Delay = Dur<0, DELAY_MAX_MS>;
type Rate = Num<0, RATE_MAX>;

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
            format!(
                "file is {} bytes; expected at most {TEXT_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    let raw: Spanned<RawScenario> = ctx.read(NAME_LEN_MAX).map_err(profile_keys)?;
    let sc = scenario(&ctx, raw.get_ref(), &raw.span())?;
    super::limits::check(&ctx, raw.get_ref(), &raw.span(), sc)
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
// The raw file: what serde reads and writes. `Option` for every key a file may leave out
// (the validation gives defaults, or says what a required key should hold).

/// A scenario file as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub seed: Option<Seed>,
    pub duration: Option<Spanned<PosDur>>,
    pub liveness_bound: Option<PosDur>,
    pub invariants: Option<Capped<Spanned<String>, 64>>,
    pub origin: Option<Spanned<RawOrigin>>,
    pub profiles: Option<BTreeMap<Spanned<String>, Spanned<RawProfile>>>,
    pub tower: Option<Spanned<Capped<Spanned<RawTower>, TOWERS_MAX>>>,
    pub workload: Option<Spanned<RawWorkload>>,
    pub fault: Option<Capped<Spanned<RawFault>, FAULTS_MAX>>,
    pub nemesis: Option<Spanned<RawNemesis>>,
    pub slo: Option<RawSlo>,
    pub power_time_scale: Option<Int<1, { POWER_TIME_SCALE_MAX as i64 }>>,
    pub buggify: Option<bool>,
}

/// `[origin]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrigin {
    pub chunk_min_bytes: Option<Spanned<Int<1, { 16 << 20 }>>>,
    pub chunk_avg_bytes: Option<Spanned<Int<1, { 16 << 20 }>>>,
    pub chunk_max_bytes: Option<Spanned<Int<1, { 16 << 20 }>>>,
    pub database: Option<Spanned<String>>,
    pub answer_bytes_max: Option<Spanned<Int<4096, { 64 << 20 }>>>,
}

/// A link profile's table: `[profiles.<name>]` (with `base`), a link's inline table (with
/// `kind` and `profile`) or a Wi-Fi's (with `profile`). Which of the three naming keys a
/// place accepts is checked by [`RawProfile::only`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    pub kind: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub base: Option<Spanned<String>>,
    pub latency: Option<Delay>,
    pub jitter: Option<Delay>,
    pub bandwidth_mbit: Option<Pos<{ BANDWIDTH_MBIT_MAX as i64 }>>,
    pub bytes_per_s: Option<Spanned<Int<1, BYTES_PER_S_MAX>>>,
    pub loss: Option<Unit>,
    pub handover_every: Option<Dur<0, DAY_MS>>,
    pub handover_outage: Option<Spanned<Dur<0, 60_000>>>,
}

/// serde lists the naming keys of every place a profile table can be: name this place's.
fn profile_keys(mut e: SpanError) -> SpanError {
    let all = "expected one of: kind, profile, base, ";
    if e.message.starts_with("unknown key") && e.message.contains(all) {
        let place = if e.field.starts_with("profiles.") {
            "base"
        } else if e.field.contains(".links[") {
            "kind, profile"
        } else {
            "profile"
        };
        e.message = e
            .message
            .replace(all, &format!("expected one of: {place}, "));
    }
    e
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

/// A `[[tower]]` group.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTower {
    pub name: Option<Spanned<String>>,
    pub count: Option<Spanned<Int<1, { TOWERS_MAX as i64 }>>>,
    pub devices: Option<Spanned<Int<0, { DEVICES_PER_TOWER_MAX as i64 }>>>,
    pub links: Option<Spanned<Capped<Spanned<StrOr<RawProfile>>, 3>>>,
    pub wifi: Option<Spanned<StrOr<RawProfile>>>,
    pub power: Option<RawPower>,
    /// How often the tower polls the origin's catalog (whole seconds: the real tower's
    /// `--catalog-interval-s`).
    pub catalog_poll: Option<Spanned<Dur<1000, 3_600_000>>>,
    /// How long the tower waits for the origin's answer (whole seconds: the real tower's
    /// `--request-timeout-s`).
    pub request_timeout: Option<Spanned<Dur<1000, 600_000>>>,
    /// Time between two probes of each link (whole seconds: the real tower's
    /// `--probe-interval-s`).
    pub probe_interval: Option<Spanned<Dur<1000, 3_600_000>>>,
}

/// `[tower.power]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPower {
    pub solar_peak_w: Option<Num<0, { POWER_W_MAX as i64 }>>,
    pub battery_wh: Option<Num<0, { BATTERY_WH_MAX as i64 }>>,
    pub soc_initial: Option<Unit>,
    pub load_w: Option<Pos<{ POWER_W_MAX as i64 }>>,
    pub grid: Option<bool>,
    pub ups: Option<bool>,
    pub cloud_cover: Option<Unit>,
}

/// `[workload]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pub catalog: Option<Capped<Spanned<RawCatalog>, CATALOG_GROUPS_MAX>>,
    pub publish_per_hour: Option<Spanned<PerPriority<Rate>>>,
    pub publish_size: Option<PerPriority<Size>>,
    pub reads_per_device_hour: Option<Spanned<Rate>>,
    pub ops_per_device_hour: Option<Spanned<Rate>>,
    pub contribution_share: Option<Unit>,
    pub shared_identity: Option<Unit>,
    pub key_reuse_per_device_hour: Option<Rate>,
    pub key_theft_per_hour: Option<Rate>,
    pub invalid_share: Option<Unit>,
}

/// One entry of `workload.catalog`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCatalog {
    pub priority: Option<Spanned<String>>,
    pub items: Option<Spanned<Int<1, { CATALOG_ITEMS_MAX as i64 }>>>,
    pub size: Option<Spanned<Size>>,
}

/// `[nemesis]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNemesis {
    pub network_per_hour: Option<Spanned<Rate>>,
    pub process_per_hour: Option<Spanned<Rate>>,
    pub disk_per_hour: Option<Spanned<Rate>>,
    pub power_per_hour: Option<Spanned<Rate>>,
    pub clock_per_hour: Option<Spanned<Rate>>,
    pub duration_mean: Option<Spanned<PosDur>>,
    pub duration_max: Option<Spanned<PosDur>>,
}

impl RawNemesis {
    /// The rates, in [`Family`] order.
    pub fn rates(&self) -> [(Family, &Option<Spanned<Rate>>); 5] {
        [
            (Family::Network, &self.network_per_hour),
            (Family::Process, &self.process_per_hour),
            (Family::Disk, &self.disk_per_hour),
            (Family::Power, &self.power_per_hour),
            (Family::Clock, &self.clock_per_hour),
        ]
    }
}

/// `[slo]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlo {
    pub availability_min: Option<Unit>,
    pub freshness_p99_max: Option<PerPriority<PosDur>>,
    pub mttr_max: Option<PosDur>,
    pub rpo_max: Option<Int<0, { RPO_MAX as i64 }>>,
    pub soc_min: Option<Unit>,
}

/// A fault table: a scenario's `[[fault]]` or a game-day step's `fault = { … }`, every key
/// with its span and its value as written: the keys a fault takes depend on its `kind`, so
/// [`fault_parts`] checks them against the fault table.
pub type RawFault = BTreeMap<Spanned<String>, Spanned<Value>>;

// ---------------------------------------------------------------------------------------
// The scenario's own value types.

/// What a seed is.
const SEED_EXPECTED: &str =
    "a non-negative integer (or a string of digits up to 18446744073709551615)";

/// A seed: a non-negative integer, or a string of decimal digits for seeds above
/// `i64::MAX` (TOML integers are signed 64-bit); written the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seed(pub u64);

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| match v {
            Value::Integer(n) => {
                u64::try_from(*n).map_err(|_| format!("{n} is negative; expected {SEED_EXPECTED}"))
            }
            Value::String(s) => s
                .parse::<u64>()
                .map_err(|_| format!("expected {SEED_EXPECTED}, found {s:?}")),
            v => Err(wrong(v, SEED_EXPECTED)),
        })
        .map(Seed)
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(n) => s.serialize_i64(n),
            Err(_) => s.serialize_str(&self.0.to_string()),
        }
    }
}

/// A size: integer bytes or a string with a unit, `1..=SIZE_BYTES_MAX`; written with the
/// largest exact unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| {
            let n = match v {
                Value::Integer(n) => u64::try_from(*n).unwrap_or(0),
                Value::String(s) => parse_size(s)?,
                v => {
                    return Err(wrong(
                        v,
                        "a size (integer bytes or a string such as \"16KiB\")",
                    ));
                }
            };
            if n == 0 || n > SIZE_BYTES_MAX {
                return Err(format!(
                    "{n} bytes is out of range; expected a size from 1 byte to 64MiB"
                ));
            }
            Ok(Size(n))
        })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            b if b > 0 && b % (1 << 20) == 0 => s.serialize_str(&format!("{}MiB", b >> 20)),
            b if b > 0 && b % (1 << 10) == 0 => s.serialize_str(&format!("{}KiB", b >> 10)),
            b => s.serialize_u64(b),
        }
    }
}

/// A table keyed by priority class (`P0`..`P3`, `p0`..`p3`); [`classes`] checks the keys.
pub type PerPriority<T> = BTreeMap<Spanned<String>, T>;

/// The entries of a [`PerPriority`] table by class, each class given once.
pub fn classes<T: Copy>(ctx: &Ctx<'_>, t: &PerPriority<T>) -> Res<[Option<T>; 4]> {
    let mut out = [None; 4];
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let p = class(ctx, k)?;
        if out[p.index()].replace(*v).is_some() {
            return Err(ctx.err(&k.span(), format!("{p} given twice")));
        }
    }
    Ok(out)
}

/// A priority class's name at its span.
fn class(ctx: &Ctx<'_>, v: &Spanned<String>) -> Res<Priority> {
    Priority::from_str(v.get_ref()).map_err(|e| ctx.err(&v.span(), e.to_string()))
}

/// A [`PerPriority`] table of the classes given, for writing.
pub(crate) fn per_class<T>(values: [Option<T>; 4]) -> PerPriority<T> {
    Priority::ALL
        .into_iter()
        .zip(values)
        .filter_map(|(p, v)| Some((sp(p.to_string()), v?)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Validation: the raw file → the scenario.

/// Tower, profile and scenario names: `[A-Za-z0-9_.-]`, 1..=NAME_LEN_MAX bytes.
fn check_name(ctx: &Ctx<'_>, span: &Range<usize>, s: &str) -> Res<()> {
    let ok = !s.is_empty()
        && s.len() <= NAME_LEN_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ctx.err(span, format!(
            "{s:?} is not a valid name; expected 1 to {NAME_LEN_MAX} letters, digits, '_', '-' or '.'"
        )))
    }
}

fn scenario(ctx: &Ctx<'_>, raw: &RawScenario, root: &Range<usize>) -> Res<Scenario> {
    let name = match &raw.name {
        Some(v) => {
            let s = v.get_ref();
            if s.is_empty() || s.len() > NAME_LEN_MAX || s.chars().any(char::is_control) {
                return Err(ctx.err(
                    &v.span(),
                    format!("expected 1 to {NAME_LEN_MAX} bytes without control characters"),
                ));
            }
            s.clone()
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
    let description = match &raw.description {
        Some(v) if v.get_ref().len() > DESCRIPTION_LEN_MAX => {
            return Err(ctx.err(
                &v.span(),
                format!(
                    "{} bytes; expected at most {DESCRIPTION_LEN_MAX}",
                    v.get_ref().len()
                ),
            ));
        }
        Some(v) => v.get_ref().clone(),
        None => String::new(),
    };
    let duration = ctx
        .req(
            &raw.duration,
            root,
            "duration",
            "the safety phase's length, e.g. \"24h\"",
        )?
        .get_ref()
        .0;
    let origin = match &raw.origin {
        Some(v) => origin(ctx, v)?,
        None => OriginSpec::default(),
    };
    let profiles = profiles(ctx, raw.profiles.as_ref())?;
    let towers = towers(ctx, raw, root, &profiles)?;
    Ok(Scenario {
        name,
        description,
        duration,
        liveness_bound: raw.liveness_bound.map_or(LIVENESS_BOUND_DEFAULT, |d| d.0),
        seed: raw.seed.map_or(1, |s| s.0),
        power_time_scale: raw.power_time_scale.map_or(1, |s| s.0 as u32),
        buggify: raw.buggify.unwrap_or(false),
        faults: faults(ctx, raw.fault.as_ref(), &towers, &origin, duration)?,
        origin,
        towers,
        workload: raw
            .workload
            .as_ref()
            .map_or_else(|| Ok(Workload::idle()), |w| workload(ctx, w))?,
        nemesis: raw
            .nemesis
            .as_ref()
            .map_or_else(|| Ok(Nemesis::off()), |n| nemesis(ctx, n))?,
        invariants: match &raw.invariants {
            Some(v) => invariants(ctx, &v.0)?,
            None => Oracle::ALL.into_iter().collect(),
        },
        slo: raw
            .slo
            .as_ref()
            .map_or_else(|| Ok(Slo::default()), |r| slo(ctx, r))?,
    })
}

fn origin(ctx: &Ctx<'_>, t: &Spanned<RawOrigin>) -> Res<OriginSpec> {
    let r = t.get_ref();
    let sizes = [&r.chunk_min_bytes, &r.chunk_avg_bytes, &r.chunk_max_bytes];
    let d = ChunkParams::default();
    let get = |v: &Option<Spanned<Int<1, { 16 << 20 }>>>, default: u32| {
        v.as_ref().map_or(default, |v| v.get_ref().0 as u32)
    };
    let chunk = ChunkParams {
        size_min: get(sizes[0], d.size_min),
        size_avg: get(sizes[1], d.size_avg),
        size_max: get(sizes[2], d.size_max),
    };
    // Point at the first size given (the table itself when none is).
    let first = sizes.iter().find_map(|v| v.as_ref());
    chunk
        .validate()
        .map_err(|e| ctx.err_at(first, &t.span(), "chunk_min_bytes", e.to_string()))?;
    let database = match &r.database {
        None => Database::default(),
        Some(v) => Database::from_name(v.get_ref()).ok_or_else(|| {
            let names: Vec<String> = Database::ALL
                .iter()
                .map(|(_, n)| format!("{n:?}"))
                .collect();
            ctx.err(
                &v.span(),
                format!(
                    "unknown database {:?}; expected {}",
                    v.get_ref(),
                    names.join(" or ")
                ),
            )
        })?,
    };
    let answer_bytes_max = (r.answer_bytes_max.as_ref())
        .map_or(sovereign_logic::protocol::ANSWER_BYTES_MAX, |v| {
            v.get_ref().0 as u64
        });
    // A chunk's answer must fit, head and all: 1 KiB over the largest chunk at least.
    let least = u64::from(chunk.size_max) + 1024;
    if let Some(v) = &r.answer_bytes_max
        && answer_bytes_max < least
    {
        return Err(ctx.err(
            &v.span(),
            format!(
                "answer_bytes_max {answer_bytes_max} leaves no room for a chunk of chunk_max_bytes = {}; expected at least {least}",
                chunk.size_max
            ),
        ));
    }
    Ok(OriginSpec {
        chunk,
        database,
        answer_bytes_max,
    })
}

impl RawProfile {
    /// Refuse a naming key this place does not take (`extra` are those it does).
    fn only(&self, ctx: &Ctx<'_>, extra: &[&str]) -> Res<()> {
        for (key, v) in [
            ("kind", &self.kind),
            ("profile", &self.profile),
            ("base", &self.base),
        ] {
            if let Some(v) = v.as_ref().filter(|_| !extra.contains(&key)) {
                let mut allowed = extra.to_vec();
                allowed.extend(PROFILE_FIELDS);
                return Err(ctx.err(
                    &v.span(),
                    format!(
                        "unknown key `{key}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A profile named `name` from these figures, defaulting to `base`'s; without a base
    /// every figure is required. `span` is the table's.
    fn to_profile(
        &self,
        ctx: &Ctx<'_>,
        span: &Range<usize>,
        name: &str,
        base: Option<LinkProfile>,
    ) -> Res<LinkProfile> {
        let need = |key: &str, what: &str| {
            ctx.err_key(
                span,
                key,
                format!(
                    "missing; `{name}` has no base profile to take it from, so expected {what}"
                ),
            )
        };
        let pick = |v: Option<Duration>, b: Option<Duration>, key: &str, what: &str| {
            v.or(b).ok_or_else(|| need(key, what))
        };
        let latency = pick(
            self.latency.map(|d| d.0),
            base.as_ref().map(|b| b.latency),
            "latency",
            "a one-way latency such as \"20ms\"",
        )?;
        let jitter = pick(
            self.jitter.map(|d| d.0),
            base.as_ref().map(|b| b.jitter),
            "jitter",
            "a jitter such as \"5ms\"",
        )?;
        let bytes_per_s = match (self.bandwidth_mbit, &self.bytes_per_s, &base) {
            (Some(_), Some(v), _) => {
                return Err(ctx.err(
                    &v.span(),
                    "give either bandwidth_mbit or bytes_per_s, not both",
                ));
            }
            (Some(m), None, _) => mbit_to_bytes_per_s(m.0).max(1),
            (None, Some(v), _) => v.get_ref().0 as u64,
            (None, None, Some(b)) => b.bytes_per_s,
            (None, None, None) => {
                return Err(need("bandwidth_mbit", "a bandwidth in Mbit/s such as 10.0"));
            }
        };
        let loss = match (self.loss, &base) {
            (Some(v), _) => v.0,
            (None, Some(b)) => b.loss,
            (None, None) => return Err(need("loss", "a loss probability 0..=1")),
        };
        let handover_every = match (self.handover_every, &base) {
            (Some(d), _) => (!d.0.is_zero()).then_some(d.0),
            (None, Some(b)) => b.handover_every,
            (None, None) => None,
        };
        let handover_outage = match (&self.handover_outage, &base) {
            (Some(v), _) => match handover_every {
                Some(every) if v.get_ref().0 >= every => {
                    return Err(ctx.err(
                        &v.span(),
                        format!(
                            "expected an outage shorter than handover_every ({})",
                            super::format_duration(every)
                        ),
                    ));
                }
                _ => v.get_ref().0,
            },
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
}

fn profiles(
    ctx: &Ctx<'_>,
    raw: Option<&BTreeMap<Spanned<String>, Spanned<RawProfile>>>,
) -> Res<BTreeMap<String, LinkProfile>> {
    let mut out = BTreeMap::new();
    let mut entries: Vec<_> = raw.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name = k.get_ref().as_str();
        check_name(ctx, &k.span(), name)?;
        if LinkProfile::BUILTIN.contains(&name) {
            return Err(ctx.err(&k.span(), format!(
                "`{name}` is a built-in profile; give the custom one another name and set base = \"{name}\""
            )));
        }
        let p = v.get_ref();
        p.only(ctx, &["base"])?;
        let base = match &p.base {
            Some(b) => Some(LinkProfile::builtin(b.get_ref()).ok_or_else(|| {
                ctx.err(
                    &b.span(),
                    format!(
                        "unknown built-in profile {:?}; expected one of: {}",
                        b.get_ref(),
                        LinkProfile::BUILTIN.join(", ")
                    ),
                )
            })?),
            None => None,
        };
        out.insert(name.to_string(), p.to_profile(ctx, &v.span(), name, base)?);
    }
    Ok(out)
}

/// A profile by name: custom ones first, then the built-ins.
fn lookup_profile(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    name: &str,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<Option<LinkProfile>> {
    check_name(ctx, span, name)?;
    Ok(custom
        .get(name)
        .cloned()
        .or_else(|| LinkProfile::builtin(name)))
}

/// A profile that must exist.
fn known_profile(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    name: &str,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<LinkProfile> {
    lookup_profile(ctx, span, name, custom)?.ok_or_else(|| {
        ctx.err(span, format!(
            "unknown link profile `{name}`; expected a built-in ({}) or one defined under [profiles]",
            LinkProfile::BUILTIN.join(", ")
        ))
    })
}

/// The profile an uplink kind gets when none is named.
pub fn default_profile(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Fibre => "fibre",
        LinkKind::Lte => "lte",
        LinkKind::Satellite => "geo",
    }
}

/// A link kind's name at `span`.
fn link_kind(ctx: &Ctx<'_>, span: &Range<usize>, s: &str) -> Res<LinkKind> {
    LinkKind::from_str(s).map_err(|e| ctx.err(span, e.to_string()))
}

/// A table's profile: the one it names (`default` when it names none) with its figures.
fn table_profile(
    ctx: &Ctx<'_>,
    t: &RawProfile,
    span: &Range<usize>,
    default: &str,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<LinkProfile> {
    let (name, base) = match &t.profile {
        Some(p) => (
            p.get_ref().as_str(),
            lookup_profile(ctx, &p.span(), p.get_ref(), custom)?,
        ),
        None => (default, LinkProfile::builtin(default)),
    };
    t.to_profile(ctx, span, name, base)
}

/// One entry of `links`: `"kind"`, `"kind:profile"` or an inline table.
fn link(
    ctx: &Ctx<'_>,
    v: &Spanned<StrOr<RawProfile>>,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<LinkSpec> {
    let span = v.span();
    match v.get_ref() {
        StrOr::Str(s) => {
            let (kind_s, profile_s) = match s.split_once(':') {
                Some((k, p)) => (k, Some(p)),
                None => (s.as_str(), None),
            };
            let kind = link_kind(ctx, &span, kind_s)?;
            let profile = known_profile(
                ctx,
                &span,
                profile_s.unwrap_or(default_profile(kind)),
                custom,
            )?;
            Ok(LinkSpec { kind, profile })
        }
        StrOr::Table(t) => {
            t.only(ctx, &["kind", "profile"])?;
            let kv = ctx.req(
                &t.kind,
                &span,
                "kind",
                "a link kind: fibre, lte or satellite",
            )?;
            let kind = link_kind(ctx, &kv.span(), kv.get_ref())?;
            let profile = table_profile(ctx, t, &span, default_profile(kind), custom)?;
            Ok(LinkSpec { kind, profile })
        }
    }
}

/// The Wi-Fi profile: a profile name or an inline table.
fn wifi(
    ctx: &Ctx<'_>,
    v: &Spanned<StrOr<RawProfile>>,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<LinkProfile> {
    match v.get_ref() {
        StrOr::Str(s) => known_profile(ctx, &v.span(), s, custom),
        StrOr::Table(t) => {
            t.only(ctx, &["profile"])?;
            table_profile(ctx, t, &v.span(), "wifi", custom)
        }
    }
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

fn power(p: &RawPower) -> PowerSpec {
    let d = power_default();
    PowerSpec {
        solar_peak_w: p.solar_peak_w.map_or(d.solar_peak_w, |v| v.0),
        battery_wh: p.battery_wh.map_or(d.battery_wh, |v| v.0),
        soc_initial: p.soc_initial.map_or(d.soc_initial, |v| v.0),
        load_w: p.load_w.map_or(d.load_w, |v| v.0),
        grid: p.grid.unwrap_or(d.grid),
        ups: p.ups.unwrap_or(d.ups),
        cloud_cover: p.cloud_cover.map_or(d.cloud_cover, |v| v.0),
    }
}

fn towers(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    root: &Range<usize>,
    custom: &BTreeMap<String, LinkProfile>,
) -> Res<Vec<TowerSpec>> {
    let groups = ctx.req(&raw.tower, root, "tower", "at least one [[tower]] table")?;
    if groups.get_ref().0.is_empty() {
        return Err(ctx.err(&groups.span(), "expected at least one tower"));
    }
    let mut out: Vec<TowerSpec> = Vec::new();
    // name → (group index) for duplicate reports.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (gi, g) in groups.get_ref().0.iter().enumerate() {
        let (t, span) = (g.get_ref(), g.span());
        let name = match &t.name {
            Some(nv) => {
                check_name(ctx, &nv.span(), nv.get_ref())?;
                if nv.get_ref() == "origin" {
                    return Err(ctx.err(
                        &nv.span(),
                        "`origin` is reserved for the origin; pick another name",
                    ));
                }
                Some(nv.get_ref().as_str())
            }
            None => None,
        };
        let count = t.count.as_ref().map_or(1, |c| c.get_ref().0 as usize);
        if out.len() + count > TOWERS_MAX {
            let m =
                format!("more than {TOWERS_MAX} towers in total; expected at most {TOWERS_MAX}");
            return Err(match &t.count {
                Some(c) => ctx.err(&c.span(), m),
                None => ctx.err_at(t.name.as_ref(), &span, "name", m),
            });
        }
        let devices = ctx
            .req(
                &t.devices,
                &span,
                "devices",
                "the number of devices on each tower",
            )?
            .get_ref()
            .0 as u32;
        let lv = ctx.req(
            &t.links,
            &span,
            "links",
            "the tower's uplinks, e.g. [\"fibre\", \"lte\", \"satellite:geo\"]",
        )?;
        if lv.get_ref().0.is_empty() {
            return Err(ctx.err(&lv.span(), "expected at least one uplink"));
        }
        let mut links: Vec<LinkSpec> = Vec::new();
        for e in &lv.get_ref().0 {
            let l = link(ctx, e, custom)?;
            if links.iter().any(|x| x.kind == l.kind) {
                return Err(ctx.err(
                    &e.span(),
                    format!("a second {} link; expected each kind at most once", l.kind),
                ));
            }
            links.push(l);
        }
        let wifi = match &t.wifi {
            Some(wv) => wifi(ctx, wv, custom)?,
            None => {
                LinkProfile::builtin("wifi").ok_or_else(|| ctx.err(&span, "no built-in wifi"))?
            }
        };
        let power = t.power.as_ref().map_or_else(power_default, power);
        // Both are whole seconds: the real tower takes them so.
        let whole_secs = |v: Option<(Range<usize>, Duration)>| -> Res<Option<Duration>> {
            match v {
                Some((span, d)) if d.subsec_nanos() != 0 => Err(ctx.err(
                    &span,
                    format!(
                        "{d:?} is not a whole number of seconds; expected a duration such as \"1s\" or \"30s\" (the real tower takes whole seconds)"
                    ),
                )),
                Some((_, d)) => Ok(Some(d)),
                None => Ok(None),
            }
        };
        let catalog_poll = whole_secs(t.catalog_poll.as_ref().map(|v| (v.span(), v.get_ref().0)))?;
        let request_timeout = whole_secs(
            t.request_timeout
                .as_ref()
                .map(|v| (v.span(), v.get_ref().0)),
        )?;
        let probe_interval =
            whole_secs(t.probe_interval.as_ref().map(|v| (v.span(), v.get_ref().0)))?;
        for i in 0..count {
            let tower_name = match name {
                Some(n) if count == 1 => n.to_string(),
                Some(n) => format!("{n}-{i}"),
                None => format!("tower-{}", out.len()),
            };
            if let Some(prev) = names.insert(tower_name.clone(), gi) {
                let m = format!(
                    "tower name `{tower_name}` is already used (by tower[{prev}]); expected unique names"
                );
                return Err(match &t.name {
                    Some(n) => ctx.err(&n.span(), m),
                    None => ctx.err_at(t.count.as_ref(), &span, "count", m),
                });
            }
            out.push(TowerSpec {
                name: tower_name,
                devices,
                links: links.clone(),
                wifi: wifi.clone(),
                power: power.clone(),
                catalog_poll,
                request_timeout,
                probe_interval,
            });
        }
    }
    Ok(out)
}

/// The publication sizes when `publish_size` does not give a class.
pub const PUBLISH_BYTES_DEFAULT: [u64; 4] = [8 << 10, 64 << 10, 256 << 10, 1 << 20];

fn workload(ctx: &Ctx<'_>, t: &Spanned<RawWorkload>) -> Res<Workload> {
    let r = t.get_ref();
    let mut w = Workload::idle();
    for e in r.catalog.iter().flat_map(|c| &c.0) {
        let (c, span) = (e.get_ref(), e.span());
        let what = "a priority class P0, P1, P2 or P3";
        w.catalog.push(CatalogSpec {
            priority: class(ctx, ctx.req(&c.priority, &span, "priority", what)?)?,
            items: ctx
                .req(&c.items, &span, "items", "how many items")?
                .get_ref()
                .0 as u32,
            bytes: ctx
                .req(&c.size, &span, "size", "the size of each item")?
                .get_ref()
                .0,
        });
    }
    if let Some(v) = &r.publish_per_hour {
        for (i, rate) in classes(ctx, v.get_ref())?.into_iter().enumerate() {
            w.publish_per_hour[i] = rate.map_or(0.0, |r| r.0);
        }
    }
    if let Some(v) = &r.publish_size {
        for (i, size) in classes(ctx, v)?.into_iter().enumerate() {
            w.publish_bytes[i] = size.map_or(w.publish_bytes[i], |s| s.0);
        }
    }
    let rate = |v: Option<Rate>| v.map_or(0.0, |v| v.0);
    w.reads_per_device_hour = rate(r.reads_per_device_hour.as_ref().map(|v| *v.get_ref()));
    w.ops_per_device_hour = rate(r.ops_per_device_hour.as_ref().map(|v| *v.get_ref()));
    w.contribution_share = rate(r.contribution_share.map(|v| Num(v.0)));
    w.misuse = Misuse {
        shared_identity: rate(r.shared_identity.map(|v| Num(v.0))),
        key_reuse_per_device_hour: rate(r.key_reuse_per_device_hour),
        key_theft_per_hour: rate(r.key_theft_per_hour),
        invalid_share: rate(r.invalid_share.map(|v| Num(v.0))),
    };
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

/// A fault's kind, parameters, `for` and target, as a scenario's `[[fault]]` or a game-day
/// step's `fault = { … }` gives them (`at` is the caller's).
pub struct FaultParts {
    /// The kind's declaration.
    pub decl: &'static FaultDecl,
    /// The kind with its parameters.
    pub kind: FaultKind,
    /// `for`, when given (checked: positive unless the kind may be instant).
    pub lasts: Option<Duration>,
    /// The `target` value, resolved against towers by [`resolve_targets`].
    pub target: Spanned<String>,
}

impl FaultParts {
    /// How long the fault lasts when it starts at `at` in a safety phase of `duration`.
    pub fn duration(&self, at: Duration, duration: Duration) -> Duration {
        self.decl.duration(self.lasts, duration.saturating_sub(at))
    }
}

/// A string value.
fn string(ctx: &Ctx<'_>, v: &Spanned<Value>) -> Res<Spanned<String>> {
    match v.get_ref() {
        Value::String(s) => Ok(Spanned::new(v.span(), s.clone())),
        other => Err(ctx.err(&v.span(), wrong(other, "a string"))),
    }
}

/// Check a fault table's kind, parameters, `for` and `target`; `keys` are the other keys
/// the table may have (`at` in a scenario); `span` is the table's.
pub fn fault_parts(
    ctx: &Ctx<'_>,
    f: &RawFault,
    span: &Range<usize>,
    keys: &[&str],
) -> Res<FaultParts> {
    let kinds = fault_kinds().join(", ");
    let (kind_v, target_v) = (f.get("kind"), f.get("target"));
    let kind_v = ctx.req(&kind_v, span, "kind", &format!("a fault kind: {kinds}"))?;
    let kind_v = string(ctx, kind_v)?;
    let name = kind_v.get_ref().as_str();
    let decl = FaultKind::decl_named(name).ok_or_else(|| {
        ctx.err(
            &kind_v.span(),
            format!("unknown fault kind {name:?}; expected one of: {kinds}"),
        )
    })?;
    // A parameter of another kind gets a message of its own before the generic check.
    let params: Vec<&str> = decl.params.iter().flat_map(|p| p.keys()).copied().collect();
    let mut allowed = vec!["for", "target", "kind"];
    allowed.extend(keys);
    allowed.extend(&params);
    let any_param =
        |k: &str| FaultKind::all().any(|d| d.params.iter().any(|p| p.keys().contains(&k)));
    let stray = f
        .keys()
        .filter(|k| !allowed.contains(&k.get_ref().as_str()))
        .min_by_key(|k| (!any_param(k.get_ref()), k.span().start));
    if let Some(k) = stray {
        let k_name = k.get_ref();
        let message = if any_param(k_name) {
            let takes = if params.is_empty() {
                "no parameters".to_string()
            } else {
                params.join(", ")
            };
            format!("`{k_name}` is not a parameter of fault kind `{name}`; it takes {takes}")
        } else {
            format!(
                "unknown key `{k_name}`; expected one of: {}",
                allowed.join(", ")
            )
        };
        return Err(ctx.err(&k.span(), message));
    }
    let mut values = Vec::with_capacity(decl.params.len());
    for p in decl.params {
        values.push((p.key, param_value(ctx, f, span, decl, p)?));
    }
    // The values were checked against their declarations; a mismatch with the variant's
    // fields is a bug in the table (`faults::tests` checks every kind).
    let kind = FaultKind::from_params(decl.name, &values)
        .map_err(|e| ctx.err(&kind_v.span(), format!("internal: {e}")))?;
    let shortest = match decl.lasts {
        Lasts::For => Duration::from_millis(1),
        _ => Duration::ZERO,
    };
    let lasts = match f.get("for") {
        Some(v) => {
            Some(dur_in(v.get_ref(), shortest, DURATION_MAX).map_err(|m| ctx.err(&v.span(), m))?)
        }
        None if decl.lasts == Lasts::For => {
            return Err(ctx.err_key(
                span,
                "for",
                format!("missing; expected how long the `{name}` fault lasts, e.g. \"30m\""),
            ));
        }
        None => None,
    };
    let target = ctx.req(
        &target_v,
        span,
        "target",
        "\"origin\", a tower, \"<tower>/<link>\" or \"<tower>/wifi\"",
    )?;
    Ok(FaultParts {
        decl,
        kind,
        lasts,
        target: string(ctx, target)?,
    })
}

/// One parameter's value, read and range-checked against its declaration.
fn param_value(
    ctx: &Ctx<'_>,
    f: &RawFault,
    span: &Range<usize>,
    decl: &FaultDecl,
    p: &ParamDecl,
) -> Res<ParamValue> {
    let missing = |key: &str| {
        ctx.err_key(
            span,
            key,
            format!(
                "missing; expected {} for fault kind `{}`",
                p.what, decl.name
            ),
        )
    };
    let at = |v: &Spanned<Value>| {
        let span = v.span();
        move |m: String| ctx.err(&span, m)
    };
    if let ParamTy::Bandwidth = p.ty {
        let bytes_per_s = match (f.get("bandwidth_mbit"), f.get("bytes_per_s")) {
            (Some(_), Some(v)) => {
                return Err(ctx.err(
                    &v.span(),
                    "give either bandwidth_mbit or bytes_per_s, not both",
                ));
            }
            (Some(v), None) => {
                mbit_to_bytes_per_s(pos_in(v.get_ref(), BANDWIDTH_MBIT_MAX).map_err(at(v))?).max(1)
                    as i64
            }
            (None, Some(v)) => int_in(v.get_ref(), 1, BYTES_PER_S_MAX).map_err(at(v))?,
            (None, None) => return Err(missing("bandwidth_mbit")),
        };
        return Ok(ParamValue::Int(bytes_per_s));
    }
    let v = f.get(p.key).ok_or_else(|| missing(p.key))?;
    let s = v.get_ref();
    Ok(match p.ty {
        ParamTy::Unit => ParamValue::Number(num_in(s, 0.0, 1.0).map_err(at(v))?),
        ParamTy::Number { min, max } => ParamValue::Number(num_in(s, min, max).map_err(at(v))?),
        ParamTy::Int { min, max } => ParamValue::Int(int_in(s, min, max).map_err(at(v))?),
        ParamTy::Duration { min, max } => ParamValue::Duration(dur_in(s, min, max).map_err(at(v))?),
        ParamTy::SignedDuration => {
            let (negative, d) = dur_signed(s).map_err(at(v))?;
            if d.is_zero() {
                return Err(ctx.err(
                    &v.span(),
                    "expected a non-zero jump such as \"-30s\" or \"5m\"",
                ));
            }
            let ms = i64::try_from(d.as_millis())
                .map_err(|_| ctx.err(&v.span(), "jump out of range"))?;
            ParamValue::SignedMs(if negative { -ms } else { ms })
        }
        ParamTy::Bandwidth => unreachable!("handled above"),
    })
}

fn faults(
    ctx: &Ctx<'_>,
    raw: Option<&Capped<Spanned<RawFault>, FAULTS_MAX>>,
    towers: &[TowerSpec],
    origin: &OriginSpec,
    duration: Duration,
) -> Res<Vec<FaultSpec>> {
    let mut out = Vec::new();
    for e in raw.into_iter().flat_map(|f| &f.0) {
        let (f, span) = (e.get_ref(), e.span());
        let parts = fault_parts(ctx, f, &span, &["at"])?;
        let at_v = f.get("at");
        let at_v = ctx.req(&at_v, &span, "at", "when the fault starts, e.g. \"2h\"")?;
        let at = dur_in(at_v.get_ref(), Duration::ZERO, DURATION_MAX)
            .map_err(|m| ctx.err(&at_v.span(), m))?;
        if at >= duration {
            return Err(ctx.err(&at_v.span(), format!(
                "the fault starts at or after the end of the safety phase; expected less than duration ({})",
                super::format_duration(duration)
            )));
        }
        if parts.kind.needs_database_server() && origin.database == Database::Sqlite {
            return Err(ctx.err(&span, format!(
                "{} acts on the origin's database server, and this origin keeps its records in SQLite; expected [origin] database = \"postgres\"",
                parts.decl.name
            )));
        }
        let tv = &parts.target;
        let targets = resolve_targets(parts.decl, tv.get_ref(), towers)
            .map_err(|m| ctx.err(&tv.span(), m))?;
        for target in targets {
            if out.len() >= FAULTS_MAX {
                return Err(ctx.err(&tv.span(), format!(
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

fn nemesis(ctx: &Ctx<'_>, t: &Spanned<RawNemesis>) -> Res<Nemesis> {
    let r = t.get_ref();
    let mut n = Nemesis::off();
    for (family, rate) in r.rates() {
        if let Some(rate) = rate.as_ref().map(|v| v.get_ref().0).filter(|r| *r > 0.0) {
            n.rates_per_hour.push((family, rate));
        }
    }
    if let Some(v) = &r.duration_mean {
        n.duration_mean = v.get_ref().0;
    }
    if let Some(v) = &r.duration_max {
        n.duration_max = v.get_ref().0;
    }
    if n.duration_mean > n.duration_max {
        let v = r.duration_mean.as_ref().or(r.duration_max.as_ref());
        let message = format!(
            "duration_mean ({}) is longer than duration_max ({}); expected mean <= max",
            super::format_duration(n.duration_mean),
            super::format_duration(n.duration_max)
        );
        return Err(ctx.err_at(v, &t.span(), "duration_mean", message));
    }
    Ok(n)
}

fn invariants(ctx: &Ctx<'_>, names: &[Spanned<String>]) -> Res<BTreeSet<Oracle>> {
    let mut out = BTreeSet::new();
    for e in names {
        let s = e.get_ref().as_str();
        if s == "all" {
            out.extend(Oracle::ALL);
            continue;
        }
        let o = Oracle::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Oracle::ALL.iter().map(|o| o.name()).collect();
            ctx.err(
                &e.span(),
                format!(
                    "unknown invariant {s:?}; expected \"all\" or one of: {}",
                    names.join(", ")
                ),
            )
        })?;
        out.insert(o);
    }
    Ok(out)
}

fn slo(ctx: &Ctx<'_>, r: &RawSlo) -> Res<Slo> {
    Ok(Slo {
        availability_min: r.availability_min.map(|v| v.0),
        freshness_p99_max: match &r.freshness_p99_max {
            Some(f) => classes(ctx, f)?.map(|d| d.map(|d| d.0)),
            None => [None; 4],
        },
        mttr_max: r.mttr_max.map(|v| v.0),
        rpo_max: r.rpo_max.map_or(0, |v| v.0 as u64),
        soc_min: r.soc_min.map(|v| v.0),
    })
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

    /// Goal: the towers' timings — `catalog_poll` (1s..=1h), `probe_interval` (1s..=1h)
    /// and `request_timeout` (1s..=10min) — are whole seconds in range, optional, and
    /// written back; a fraction or a value out of range names the field and its line.
    #[test]
    fn tower_timings() {
        type Get = fn(&TowerSpec) -> Option<Duration>;
        let fields: [(&str, Get, &str); 3] = [
            ("catalog_poll", |t| t.catalog_poll, "2h"),
            ("probe_interval", |t| t.probe_interval, "2h"),
            ("request_timeout", |t| t.request_timeout, "11m"),
        ];
        for (field, get, too_long) in fields {
            assert_eq!(get(&parse_str("t.toml", MINIMAL).unwrap().towers[0]), None);
            let s = parse_str("t.toml", &format!("{MINIMAL}{field} = \"2s\"\n")).unwrap();
            assert_eq!(get(&s.towers[0]), Some(Duration::from_secs(2)), "{field}");
            assert_eq!(parse_str("t.toml", &s.to_toml()).unwrap(), s, "{field}");
            let e = err(&format!("{MINIMAL}{field} = \"1500ms\"\n"));
            assert_eq!((e.line, e.field.clone()), (5, format!("tower[0].{field}")));
            assert!(e.message.contains("whole number of seconds"), "{e}");
            for bad in ["500ms", too_long] {
                let e = err(&format!("{MINIMAL}{field} = \"{bad}\"\n"));
                assert_eq!(
                    (e.line, e.field.clone()),
                    (5, format!("tower[0].{field}")),
                    "{bad}"
                );
            }
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

    /// Goal: `[origin] database` takes "sqlite" (the default) or "postgres", and the
    /// faults that act on a database server are refused, with where and why, on an origin
    /// that has none; on a PostgreSQL origin they parse.
    #[test]
    fn the_answer_limit_defaults_to_the_real_one_and_must_fit_a_chunk() {
        // Goal: `[origin] answer_bytes_max` is 64 MiB unless given, survives a write and
        // a read back, and a limit no chunk answer fits is refused with where and why.
        let s = parse_str("t.toml", MINIMAL).expect("parses");
        assert_eq!(s.origin.answer_bytes_max, 64 << 20);
        let s = parse_str(
            "t.toml",
            &format!("{MINIMAL}[origin]\nanswer_bytes_max = 131072\n"),
        )
        .expect("parses");
        assert_eq!(s.origin.answer_bytes_max, 131_072);
        assert_eq!(parse_str("t.toml", &s.to_toml()).unwrap(), s);
        let e = err(&format!("{MINIMAL}[origin]\nanswer_bytes_max = 60000\n"));
        assert_eq!(
            (e.line, e.field.as_str()),
            (6, "origin.answer_bytes_max"),
            "{e}"
        );
        assert!(e.message.contains("expected at least 66560"), "{e}");
    }

    #[test]
    fn database_faults_need_an_origin_on_postgres() {
        let fault =
            "[[fault]]\nat = \"1m\"\nfor = \"1m\"\ntarget = \"origin\"\nkind = \"db-kill\"\n";
        let e = err(&format!("{MINIMAL}{fault}"));
        assert_eq!((e.line, e.field.as_str()), (5, "fault[0]"), "{e}");
        assert!(
            e.message
                .contains("SQLite; expected [origin] database = \"postgres\""),
            "{e}"
        );
        let s = parse_str(
            "t.toml",
            &format!("{MINIMAL}[origin]\ndatabase = \"postgres\"\n{fault}"),
        )
        .expect("parses");
        assert_eq!(s.origin.database, Database::Postgres);
        assert_eq!(s.faults[0].kind, FaultKind::DbKill);
        let e = err(&format!("{MINIMAL}[origin]\ndatabase = \"mysql\"\n"));
        assert_eq!((e.line, e.field.as_str()), (6, "origin.database"), "{e}");
        assert!(
            e.message.contains("expected \"sqlite\" or \"postgres\""),
            "{e}"
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

    /// Goal: an unknown key in a profile table lists the keys of that place only.
    #[test]
    fn profile_tables_name_their_own_keys() {
        let figures =
            "latency, jitter, bandwidth_mbit, bytes_per_s, loss, handover_every, handover_outage";
        for (text, field, naming) in [
            (
                "[profiles.x]\nlatncy = \"1ms\"\n",
                "profiles.x.latncy",
                "base",
            ),
            (
                "[[tower]]\ndevices = 1\nlinks = [{ kind = \"lte\", latncy = \"1ms\" }]\n",
                "tower[0].links[0].latncy",
                "kind, profile",
            ),
            (
                "[[tower]]\ndevices = 1\nlinks = [\"lte\"]\nwifi = { latncy = \"1ms\" }\n",
                "tower[0].wifi.latncy",
                "profile",
            ),
        ] {
            let e = err(&format!("duration = \"1h\"\n{text}"));
            assert_eq!(e.field, field);
            assert_eq!(
                e.message,
                format!("unknown key `latncy`; expected one of: {naming}, {figures}")
            );
        }
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
