//! Cost limits of a whole scenario, checked once the file has parsed and before a run
//! allocates anything for it.
//!
//! The parser bounds each value on its own (`*_MAX` in [`super::parse`]: at most 1000
//! towers, 100 000 devices on one tower, 64 MiB items …). Products of bounded values are
//! not bounded enough: 1000 towers × 100 000 devices is 10⁸ device state machines, and
//! 256 groups × 10 000 items × 64 MiB is 160 TiB of content, each of which a run would
//! try to allocate. `check` bounds the products that decide what a run holds in memory
//! or how many events it must process — devices in all, content bytes, chunk copies at
//! the towers, publications, device operations and reads, nemesis faults, tower-hours —
//! and reports the first one over its limit as an error at the field that pushed it
//! over (file, line, field path, the limit and what was found).
//!
//! Expected counts are what the rates give on average (a run's Poisson draws land near
//! them); the limits leave room for that.
//!
//! Map: the `*_MAX` cost constants, `check`, [`TABLE`] (every limit of a scenario file,
//! by name, as `docs/SCENARIOS.md` lists them: a test keeps the two equal).
//!
//! Not covered: how long a run takes on a given machine (the world's own event budget
//! stops a run that exceeds it, as a finding).

use super::Scenario;
use super::parse::{
    BANDWIDTH_MBIT_MAX, BATTERY_WH_MAX, CATALOG_GROUPS_MAX, CATALOG_ITEMS_MAX, CLOCK_SKEW_PPM_MAX,
    CORRUPTION_CHUNKS_MAX, DELAY_MAX, DESCRIPTION_LEN_MAX, DEVICES_PER_TOWER_MAX, DURATION_MAX,
    FAULTS_MAX, NAME_LEN_MAX, POWER_W_MAX, RATE_PER_HOUR_MAX, RPO_MAX, RawScenario, SIZE_BYTES_MAX,
    SLOW_FACTOR_MAX, TEXT_BYTES_MAX, TOWERS_MAX,
};
use crate::tomlspan::{Ctx, Res};
use std::ops::Range;
use std::time::Duration;

/// Most devices in the whole scenario (every tower's `devices` × its `count`).
pub const DEVICES_TOTAL_MAX: u64 = 1_000_000;
/// Most content bytes the origin holds: the initial catalog plus the expected
/// publications of the safety phase.
pub const CONTENT_BYTES_MAX: u64 = 1 << 30;
/// Most chunk copies the towers hold together: content bytes / `chunk_avg_bytes`
/// (rounded up per item) × towers.
pub const CHUNK_COPIES_MAX: u64 = 4_000_000;
/// Most items in the initial catalog plus expected publications.
pub const PUBLICATIONS_MAX: u64 = 200_000;
/// Most device operations expected over the safety phase (all devices).
pub const OPS_TOTAL_MAX: u64 = 2_000_000;
/// Most device reads expected over both phases (all devices).
pub const READS_TOTAL_MAX: u64 = 20_000_000;
/// Most nemesis faults expected over the safety phase (all families).
pub const NEMESIS_FAULTS_MAX: u64 = 100_000;
/// Most tower-hours (towers × both phases, hours): each simulated tower ticks its power
/// model every 10 s.
pub const TOWER_HOURS_MAX: u64 = 200_000;

/// Hours in `d`, as a float.
fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

/// `n` rounded up to an integer count (saturating).
fn count(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        n.ceil().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// "`{found}` …; expected at most `{max}` …": the message every limit uses.
fn over(what: &str, found: u64, max: u64, hint: &str) -> String {
    format!("{what} would be {found}, over the limit of {max} per scenario; {hint}")
}

/// Check `sc` (validated from `raw`, whose root table is at `root`) against every cost
/// limit; the error names the field that took the scenario over one. Returns `sc`
/// unchanged when all hold.
pub(crate) fn check(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    root: &Range<usize>,
    sc: Scenario,
) -> Res<Scenario> {
    let towers = sc.towers.len() as u64;
    let safety_h = hours(sc.duration);
    let both_h = hours(sc.duration + sc.liveness_bound);

    // Devices, tower group by tower group.
    let mut devices = 0u64;
    for g in raw.tower.iter().flat_map(|t| &t.get_ref().0) {
        let t = g.get_ref();
        let n = t.count.as_ref().map_or(1, |c| c.get_ref().0 as u64);
        let per = t.devices.as_ref().map_or(0, |d| d.get_ref().0 as u64);
        devices = devices.saturating_add(per.saturating_mul(n));
        if devices > DEVICES_TOTAL_MAX {
            return Err(ctx.err_at(
                t.devices.as_ref(),
                &g.span(),
                "devices",
                over(
                    "devices in all towers (devices × count, summed)",
                    devices,
                    DEVICES_TOTAL_MAX,
                    "expected fewer devices or fewer towers",
                ),
            ));
        }
    }

    // Tower-hours.
    let tower_hours = count(towers as f64 * both_h);
    if tower_hours > TOWER_HOURS_MAX {
        return Err(ctx.err_at(
            raw.duration.as_ref(),
            root,
            "duration",
            over(
                "tower-hours (towers × (duration + liveness_bound))",
                tower_hours,
                TOWER_HOURS_MAX,
                "expected a shorter run or fewer towers",
            ),
        ));
    }

    let w = &sc.workload;
    let wt = raw.workload.as_ref();
    // An error at a key of `[workload]` (at `workload` itself when the file has none).
    let err_w = |key: &str, v: Option<Range<usize>>, message: String| match (v, wt) {
        (Some(v), _) => ctx.err(&v, message),
        (None, Some(t)) => ctx.err_key(&t.span(), key, message),
        (None, None) => ctx.err_key(root, "workload", message),
    };

    // The initial catalog, group by group: items, bytes, chunk copies.
    let avg = u64::from(sc.origin.chunk.size_avg.max(1));
    let mut items = 0u64;
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    let groups = wt.and_then(|t| t.get_ref().catalog.as_ref());
    for (g, e) in w.catalog.iter().zip(groups.iter().flat_map(|c| &c.0)) {
        let n = u64::from(g.items);
        items = items.saturating_add(n);
        bytes = bytes.saturating_add(n.saturating_mul(g.bytes));
        chunks = chunks.saturating_add(n.saturating_mul(g.bytes.div_ceil(avg)));
        let c = e.get_ref();
        if items > PUBLICATIONS_MAX {
            return Err(ctx.err_at(
                c.items.as_ref(),
                &e.span(),
                "items",
                over(
                    "items in the catalog",
                    items,
                    PUBLICATIONS_MAX,
                    "expected fewer items",
                ),
            ));
        }
        if bytes > CONTENT_BYTES_MAX {
            return Err(ctx.err_at(
                c.size.as_ref(),
                &e.span(),
                "size",
                over(
                    "content bytes in the catalog (items × size, summed)",
                    bytes,
                    CONTENT_BYTES_MAX,
                    "expected fewer or smaller items",
                ),
            ));
        }
        if chunks.saturating_mul(towers) > CHUNK_COPIES_MAX {
            return Err(ctx.err_at(
                c.size.as_ref(),
                &e.span(),
                "size",
                over(
                    "chunk copies at the towers (catalog bytes / origin.chunk_avg_bytes × towers)",
                    chunks.saturating_mul(towers),
                    CHUNK_COPIES_MAX,
                    "expected less content, larger chunks or fewer towers",
                ),
            ));
        }
    }

    // Publications over the safety phase, class by class.
    let publish = wt.and_then(|t| t.get_ref().publish_per_hour.as_ref().map(|v| v.span()));
    for p in 0..4 {
        let n = count(w.publish_per_hour[p] * safety_h);
        items = items.saturating_add(n);
        bytes = bytes.saturating_add(n.saturating_mul(w.publish_bytes[p]));
        chunks = chunks.saturating_add(n.saturating_mul(w.publish_bytes[p].div_ceil(avg)));
        let hint =
            "expected a lower publish_per_hour, a smaller publish_size or a shorter duration";
        let over_by = if items > PUBLICATIONS_MAX {
            Some(over(
                "catalog items plus publications (publish_per_hour × duration)",
                items,
                PUBLICATIONS_MAX,
                hint,
            ))
        } else if bytes > CONTENT_BYTES_MAX {
            Some(over(
                "content bytes (catalog plus publish_per_hour × duration × publish_size)",
                bytes,
                CONTENT_BYTES_MAX,
                hint,
            ))
        } else if chunks.saturating_mul(towers) > CHUNK_COPIES_MAX {
            Some(over(
                "chunk copies at the towers (content bytes / origin.chunk_avg_bytes × towers)",
                chunks.saturating_mul(towers),
                CHUNK_COPIES_MAX,
                hint,
            ))
        } else {
            None
        };
        if let Some(message) = over_by {
            return Err(err_w("publish_per_hour", publish.clone(), message));
        }
    }

    let ops = count(w.ops_per_device_hour * devices as f64 * safety_h);
    if ops > OPS_TOTAL_MAX {
        let v = wt.and_then(|t| t.get_ref().ops_per_device_hour.as_ref().map(|v| v.span()));
        return Err(err_w(
            "ops_per_device_hour",
            v,
            over(
                "device operations (ops_per_device_hour × devices × duration)",
                ops,
                OPS_TOTAL_MAX,
                "expected a lower rate, fewer devices or a shorter duration",
            ),
        ));
    }
    let reads = count(w.reads_per_device_hour * devices as f64 * both_h);
    if reads > READS_TOTAL_MAX {
        let v = wt.and_then(|t| t.get_ref().reads_per_device_hour.as_ref().map(|v| v.span()));
        return Err(err_w(
            "reads_per_device_hour",
            v,
            over(
                "device reads (reads_per_device_hour × devices × (duration + liveness_bound))",
                reads,
                READS_TOTAL_MAX,
                "expected a lower rate, fewer devices or a shorter run",
            ),
        ));
    }

    let mut nemesis = 0u64;
    for (family, rate) in &sc.nemesis.rates_per_hour {
        nemesis = nemesis.saturating_add(count(rate * safety_h));
        if nemesis > NEMESIS_FAULTS_MAX {
            let message = over(
                "nemesis faults (the *_per_hour rates × duration, summed)",
                nemesis,
                NEMESIS_FAULTS_MAX,
                "expected lower rates or a shorter duration",
            );
            let v = raw.nemesis.as_ref().and_then(|t| {
                t.get_ref()
                    .rates()
                    .into_iter()
                    .find(|(f, _)| f == family)
                    .and_then(|(_, v)| v.as_ref().map(|v| v.span()))
            });
            return Err(match v {
                Some(v) => ctx.err(&v, message),
                None => ctx.err_key(root, "nemesis", message),
            });
        }
    }
    // (devices is the expanded total: the scenario's own towers agree with the file's.)
    debug_assert_eq!(
        devices,
        sc.towers.iter().map(|t| u64::from(t.devices)).sum::<u64>()
    );
    Ok(sc)
}

/// Every limit of a scenario file as `docs/SCENARIOS.md` lists it: (constant, value as
/// the table spells it). The per-value limits of [`super::parse`] come first, then the
/// cost limits of this module.
pub const TABLE: [(&str, Spelled); 27] = [
    ("TEXT_BYTES_MAX", Spelled::Bytes(TEXT_BYTES_MAX as u64)),
    ("TOWERS_MAX", Spelled::Count(TOWERS_MAX as u64)),
    (
        "DEVICES_PER_TOWER_MAX",
        Spelled::Count(DEVICES_PER_TOWER_MAX as u64),
    ),
    (
        "CATALOG_GROUPS_MAX",
        Spelled::Count(CATALOG_GROUPS_MAX as u64),
    ),
    (
        "CATALOG_ITEMS_MAX",
        Spelled::Count(CATALOG_ITEMS_MAX as u64),
    ),
    ("SIZE_BYTES_MAX", Spelled::Bytes(SIZE_BYTES_MAX)),
    (
        "RATE_PER_HOUR_MAX",
        Spelled::Count(RATE_PER_HOUR_MAX as u64),
    ),
    ("FAULTS_MAX", Spelled::Count(FAULTS_MAX as u64)),
    ("DURATION_MAX", Spelled::Seconds(DURATION_MAX.as_secs())),
    ("DELAY_MAX", Spelled::Seconds(DELAY_MAX.as_secs())),
    ("NAME_LEN_MAX", Spelled::Bytes(NAME_LEN_MAX as u64)),
    (
        "DESCRIPTION_LEN_MAX",
        Spelled::Bytes(DESCRIPTION_LEN_MAX as u64),
    ),
    (
        "BANDWIDTH_MBIT_MAX",
        Spelled::Count(BANDWIDTH_MBIT_MAX as u64),
    ),
    ("SLOW_FACTOR_MAX", Spelled::Count(SLOW_FACTOR_MAX as u64)),
    (
        "CORRUPTION_CHUNKS_MAX",
        Spelled::Count(CORRUPTION_CHUNKS_MAX as u64),
    ),
    (
        "CLOCK_SKEW_PPM_MAX",
        Spelled::Count(CLOCK_SKEW_PPM_MAX as u64),
    ),
    ("POWER_W_MAX", Spelled::Count(POWER_W_MAX as u64)),
    ("BATTERY_WH_MAX", Spelled::Count(BATTERY_WH_MAX as u64)),
    ("RPO_MAX", Spelled::Count(RPO_MAX)),
    ("DEVICES_TOTAL_MAX", Spelled::Count(DEVICES_TOTAL_MAX)),
    ("CONTENT_BYTES_MAX", Spelled::Bytes(CONTENT_BYTES_MAX)),
    ("CHUNK_COPIES_MAX", Spelled::Count(CHUNK_COPIES_MAX)),
    ("PUBLICATIONS_MAX", Spelled::Count(PUBLICATIONS_MAX)),
    ("OPS_TOTAL_MAX", Spelled::Count(OPS_TOTAL_MAX)),
    ("READS_TOTAL_MAX", Spelled::Count(READS_TOTAL_MAX)),
    ("NEMESIS_FAULTS_MAX", Spelled::Count(NEMESIS_FAULTS_MAX)),
    ("TOWER_HOURS_MAX", Spelled::Count(TOWER_HOURS_MAX)),
];

/// How a limit's value is spelled in the documentation's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelled {
    /// A plain number, with spaces between thousands (`100 000`).
    Count(u64),
    /// Bytes: `1 MiB`, `64 MiB`, `1 GiB`, or `4096 bytes`.
    Bytes(u64),
    /// A duration in seconds, spelled in its largest whole unit: `365 days`, `1 hour`.
    Seconds(u64),
}

impl std::fmt::Display for Spelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Spelled::Count(n) => {
                let digits = n.to_string();
                let mut out = String::new();
                for (i, c) in digits.chars().enumerate() {
                    if i > 0 && (digits.len() - i) % 3 == 0 {
                        out.push(' ');
                    }
                    out.push(c);
                }
                f.write_str(&out)
            }
            Spelled::Bytes(n) => {
                for (size, unit) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
                    if n >= size && n % size == 0 {
                        return write!(f, "{} {unit}", n / size);
                    }
                }
                write!(f, "{n} bytes")
            }
            Spelled::Seconds(n) => {
                for (size, unit) in [(86_400u64, "day"), (3600, "hour"), (60, "minute")] {
                    if n >= size && n % size == 0 {
                        let k = n / size;
                        return write!(f, "{k} {unit}{}", if k == 1 { "" } else { "s" });
                    }
                }
                write!(f, "{n} seconds")
            }
        }
    }
}

const _: () = assert!(DEVICES_TOTAL_MAX <= TOWERS_MAX as u64 * DEVICES_PER_TOWER_MAX as u64);
const _: () = assert!(CONTENT_BYTES_MAX >= SIZE_BYTES_MAX);
const _: () = assert!(PUBLICATIONS_MAX >= CATALOG_ITEMS_MAX as u64);
