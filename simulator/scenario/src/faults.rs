//! The fault table: every fault kind declared once.
//!
//! A fault kind is its [`FaultKind`] variant (the parameters, with the file's key names
//! and units as serde attributes) and its [`FaultDecl`] (family, parameters' grammar and
//! range, allowed targets, whether it acts at its start, its default duration, how the
//! nemesis draws it, whether the console injects it live and with what, which invariants
//! it can disturb, and whether a fault signal can detect it). Everything else reads the
//! table: the scenario parser and writer, the nemesis, the console's inject menu, the
//! detection KPIs, the shrinker and `sovereign sim faults`. Adding a kind touches its
//! variant and declaration here, its effect in the world (`world::faults`) and its
//! section in docs/SCENARIOS.md; `tests/sim/faults.rs` fails when any of those is
//! missing.
//!
//! Map: [`FaultKind`] + [`FaultKind::decl`] (the table, in file order), [`FaultDecl`] and
//! its parts ([`ParamDecl`]/[`ParamTy`], [`Targets`], [`Lasts`], [`NemesisDraw`],
//! [`Live`]), [`FaultKind::from_params`]/[`FaultKind::params`] (the serde bridge the parser
//! and writer use), [`table_text`].
//!
//! Not covered: reading a value of a parameter from a file (the parser checks each one
//! against its [`ParamTy`], with the file's line), what a fault does (the world).

use super::{Family, Oracle, Target, format_duration};
use serde::{Deserialize, Serialize};
use sovereign_logic::entropy::Entropy;
use std::time::Duration;

/// The boot time of a crashed tower in a crash loop: it comes back this long after each
/// crash, and the loop's next crash is at least this plus one second after the previous
/// one. The simulator's boot time of a tower process; the lab waits it out too.
pub const BOOT: Duration = Duration::from_secs(5);

/// The period of a crash loop that crashes every `every`: at least [`BOOT`] plus one
/// second, so that every crash finds a booted process.
pub fn crash_loop_period(every: Duration) -> Duration {
    every.max(BOOT + Duration::from_secs(1))
}

/// What a fault does. Parameters use the scenario file's units and key names (serde
/// renames); values are checked against their [`ParamTy`] by the parser, not by serde.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultKind {
    /// The target link (or all uplinks of a tower) is down.
    LinkDown,
    /// Tower↔origin (target: tower) or device↔tower (target: wifi) cut both ways.
    Partition,
    /// Extra one-way latency.
    Latency {
        /// added delay
        #[serde(with = "text")]
        extra: Duration,
    },
    /// Extra message loss probability.
    Loss {
        /// probability 0..=1
        p: f64,
    },
    /// Bandwidth capped.
    Bandwidth {
        /// cap per direction
        bytes_per_s: u64,
    },
    /// The link goes down and up with this period (half down, half up).
    Flapping {
        /// full period
        #[serde(with = "text")]
        period: Duration,
    },
    /// Messages delivered twice with this probability.
    Duplicate {
        /// probability 0..=1
        p: f64,
    },
    /// Messages delayed by up to `extra` with probability `p`, so they overtake.
    Reorder {
        /// probability 0..=1
        p: f64,
        /// maximum extra delay
        #[serde(with = "text")]
        extra: Duration,
    },
    /// Bytes a tower sends its devices over Wi-Fi arrive with a flipped bit: each chunk
    /// of a served read with probability `p`. Devices must refuse them by hash.
    WifiCorruption {
        /// probability 0..=1 per chunk
        p: f64,
    },
    /// Kill -9; the process restarts when the fault ends (unsynced writes lost).
    Crash,
    /// Clean restart at the fault's start (flush + fsync, then boot).
    Restart,
    /// Stop the world for the fault's duration (inputs wait).
    Pause,
    /// Everything the process does takes `factor` times longer.
    Slow {
        /// slow-down factor (>= 1)
        factor: f64,
    },
    /// Crash every `every` while the fault lasts.
    CrashLoop {
        /// uptime between crashes
        #[serde(with = "text")]
        every: Duration,
    },
    /// The origin is replaced by a fresh one at the same address (another identity, an
    /// empty store, about half of the catalog published again under the same ids, other
    /// bytes); an operator re-homes each tower that reports the mismatch, `for` after the
    /// start (or at once, when it reports later). Origin only.
    OriginReplace,
    /// The origin is busy: each request that reaches it is refused with probability `p`
    /// instead of being handled (the real origin's answer at its limits: too many
    /// connections or requests from one client, 429 or 503). The refusal names the origin
    /// (`x-sovereign-origin`), so a tower knows its trusted origin answered. Origin only.
    OriginBusy {
        /// probability 0..=1 per request
        p: f64,
    },
    /// Writes fail with probability `p`.
    WriteError {
        /// probability 0..=1
        p: f64,
    },
    /// Fsyncs fail with probability `p` (the covered writes are lost).
    FsyncError {
        /// probability 0..=1
        p: f64,
    },
    /// A crash at the fault's start that leaves the last unsynced write torn (half
    /// written); the process restarts when the fault ends.
    TornWrite,
    /// Silent corruption: flip a bit in `chunks` stored chunks at the fault's start.
    Corruption {
        /// how many chunks rot
        chunks: u32,
    },
    /// Every write fails (ENOSPC) while the fault lasts.
    DiskFull,
    /// Every disk operation takes `extra` longer.
    DiskLatency {
        /// added latency
        #[serde(with = "text")]
        extra: Duration,
    },
    /// The database connection is lost: record writes (catalog, outbox) fail; chunk
    /// files still work.
    DbLost,
    /// The origin's PostgreSQL server killed (SIGKILL; `docker kill` in the containers
    /// backend) at the start and started again when the fault ends; PostgreSQL recovers
    /// from its WAL. Origin only, and only an origin on PostgreSQL (`[origin] database =
    /// "postgres"`). The simulator models it as `db-lost` on the origin.
    DbKill,
    /// The origin's PostgreSQL server frozen (SIGSTOP of its processes; `docker pause`)
    /// for the fault's duration: the origin's queries hang instead of failing. Origin on
    /// PostgreSQL only; the simulator models it as the origin's record writes, deletes and
    /// commits completing only when the fault ends (none fails).
    DbPause,
    /// The origin's PostgreSQL server shut down cleanly (fast shutdown: sessions ended,
    /// every commit kept) at the start and started again when the fault ends. Origin on
    /// PostgreSQL only; the simulator models it as `db-lost` on the origin.
    DbRestart,
    /// Cloud cover: solar output multiplied by `1 - cover`.
    Clouds {
        /// 0..=1
        cover: f64,
    },
    /// Battery capacity multiplied by `capacity` (permanent for the run's safety phase).
    BatteryFade {
        /// remaining fraction 0..=1
        capacity: f64,
    },
    /// Mains lost.
    GridLoss,
    /// The UPS fails (cannot ride through outages).
    UpsFailure,
    /// A short dip in supply: with a working UPS nothing happens; without, a crash.
    BrownOut,
    /// Power cut at once (a crash); back when the fault ends.
    HardCut,
    /// The tower's clock runs fast or slow.
    ClockSkew {
        /// parts per million (negative: slow)
        ppm: i64,
    },
    /// The tower's clock jumps at the fault's start.
    ClockJump {
        /// jump in milliseconds (negative: backwards)
        #[serde(rename = "by", with = "signed_text")]
        by_ms: i64,
    },
    /// Someone who is not a tower forwards operations to the origin (every 5 minutes while
    /// the fault lasts), claiming to be a tower that does not exist. Origin only.
    RogueForward,
}

/// One fault kind's declaration.
#[derive(Debug)]
pub struct FaultDecl {
    /// The name in scenario files (`kind = "..."`).
    pub name: &'static str,
    /// Its family (nemesis rates and detection are per family).
    pub family: Family,
    /// Its parameters, in file order.
    pub params: &'static [ParamDecl],
    /// Where it may land.
    pub targets: Targets,
    /// How long it lasts when `for` is omitted.
    pub lasts: Lasts,
    /// How the nemesis draws it (empty: never); weights count within the family.
    pub nemesis: &'static [NemesisDraw],
    /// The longest a nemesis draw of it lasts, when shorter than the nemesis' own cap.
    pub nemesis_for_max: Option<Duration>,
    /// The console's hotkey for it, if an operator may inject it live.
    pub live: Option<Live>,
    /// The invariants a broken system could violate under this fault (the shrinker drops
    /// faults that cannot disturb the failing invariant first).
    pub disturbs: &'static [Oracle],
    /// The targets on which a fault signal (link down, failover, storage, power mode,
    /// origin mismatch) can detect it; the detection KPIs skip the rest.
    pub detected_on: Targets,
    /// The targets on which its effect at the start depends on its duration (an early
    /// heal then cannot be replayed by cutting the duration).
    pub start_uses_duration: Targets,
    /// A valid example (tests, docs): each parameter's typical value.
    pub example: FaultKind,
}

/// A parameter: its key in the file, its grammar and range, and what to tell a user.
#[derive(Debug)]
pub struct ParamDecl {
    /// The key.
    pub key: &'static str,
    /// The grammar and range.
    pub ty: ParamTy,
    /// What it means, for "missing; expected ..." messages.
    pub what: &'static str,
}

impl FaultDecl {
    /// How long a fault of this kind lasts: `given` (the file's `for`) or its default —
    /// `rest` (the rest of the safety phase) or zero.
    pub fn duration(&self, given: Option<Duration>, rest: Duration) -> Duration {
        match (given, self.lasts) {
            (Some(d), _) => d,
            (None, Lasts::RestOfRun) => rest,
            (None, _) => Duration::ZERO,
        }
    }
}

impl ParamDecl {
    /// The keys a file may use for it: `bandwidth_mbit` or `bytes_per_s` for a
    /// bandwidth, else its key.
    pub fn keys(&'static self) -> &'static [&'static str] {
        match self.ty {
            ParamTy::Bandwidth => &["bandwidth_mbit", "bytes_per_s"],
            _ => std::slice::from_ref(&self.key),
        }
    }
}

/// A parameter's grammar and range.
#[derive(Clone, Copy, Debug)]
pub enum ParamTy {
    /// A number 0..=1 (probabilities, fractions).
    Unit,
    /// A number in `min..=max`.
    Number {
        /// lowest
        min: f64,
        /// highest
        max: f64,
    },
    /// An integer in `min..=max`.
    Int {
        /// lowest
        min: i64,
        /// highest
        max: i64,
    },
    /// A duration text (`"200ms"`, `"5m"`) in `min..=max`.
    Duration {
        /// shortest
        min: Duration,
        /// longest
        max: Duration,
    },
    /// A non-zero signed duration text (`"-30s"`), kept as milliseconds.
    SignedDuration,
    /// A rate: `bandwidth_mbit` (Mbit/s) or exact `bytes_per_s`; stored as bytes/s.
    Bandwidth,
}

/// A set of target shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Targets(u8);

impl Targets {
    /// None.
    pub const NONE: Targets = Targets(0);
    /// `"origin"`.
    pub const ORIGIN: Targets = Targets(1);
    /// A tower: its process, disk, power, clock, or all its uplinks.
    pub const TOWER: Targets = Targets(2);
    /// One uplink, `"<tower>/<link>"`.
    pub const LINK: Targets = Targets(4);
    /// A tower's Wi-Fi, `"<tower>/wifi"`.
    pub const WIFI: Targets = Targets(8);
    /// Every shape.
    pub const ALL: Targets = Targets(15);

    /// Both sets.
    pub const fn or(self, other: Targets) -> Targets {
        Targets(self.0 | other.0)
    }

    /// Whether `target` has one of these shapes.
    pub fn contains(self, target: &Target) -> bool {
        let bit = match target {
            Target::Origin => Self::ORIGIN,
            Target::Tower(_) => Self::TOWER,
            Target::Link(..) => Self::LINK,
            Target::Wifi(_) => Self::WIFI,
        };
        self.0 & bit.0 != 0
    }

    /// The set as a phrase for errors: `"origin" or a tower`.
    pub fn phrase(self) -> String {
        let parts: Vec<&str> = [
            (Self::ORIGIN, "\"origin\""),
            (Self::TOWER, "a tower"),
            (Self::LINK, "\"<tower>/<fibre|lte|satellite>\""),
            (Self::WIFI, "\"<tower>/wifi\""),
        ]
        .into_iter()
        .filter(|(t, _)| self.0 & t.0 != 0)
        .map(|(_, s)| s)
        .collect();
        match parts.split_last() {
            None => "nothing".to_string(),
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

/// How long a fault lasts when the file gives no `for`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lasts {
    /// `for` is required (and must be positive).
    For,
    /// It acts at its start; `for` may be omitted (default `0s`) or zero.
    Instant,
    /// It lasts for the rest of the safety phase unless `for` says otherwise.
    RestOfRun,
}

/// One way the nemesis draws a kind: its weight within the family, where it lands, and
/// its parameters.
#[derive(Debug)]
pub struct NemesisDraw {
    /// Relative weight among the family's draws.
    pub weight: u64,
    /// Where it lands.
    pub on: NemesisOn,
    /// Its parameters (may be the same every time).
    pub draw: fn(&mut dyn Entropy) -> FaultKind,
}

/// Where a nemesis fault lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NemesisOn {
    /// One of the drawn tower's uplinks.
    Link,
    /// The drawn tower (all its uplinks, for network faults).
    Tower,
    /// The drawn tower's Wi-Fi.
    Wifi,
    /// The origin one time in five, else the drawn tower.
    OriginOrTower,
}

/// How an operator injects a kind live in the console.
#[derive(Debug)]
pub struct Live {
    /// The key in the inject menu.
    pub key: char,
    /// The menu's label.
    pub label: &'static str,
    /// The fault injected.
    pub kind: FaultKind,
    /// For how long.
    pub lasts: Duration,
}

/// How long most operator-injected faults last.
pub const OPERATOR_FAULT_FOR: Duration = Duration::from_secs(600);

const DAY: Duration = Duration::from_secs(86_400);
const NO_PARAMS: &[ParamDecl] = &[];

const fn p(what: &'static str) -> ParamDecl {
    ParamDecl {
        key: "p",
        ty: ParamTy::Unit,
        what,
    }
}

const fn delay(key: &'static str, what: &'static str) -> ParamDecl {
    ParamDecl {
        key,
        ty: ParamTy::Duration {
            min: Duration::from_millis(1),
            max: super::parse::DELAY_MAX,
        },
        what,
    }
}

/// A declaration with no parameters, no nemesis draw, no live key, detected on every
/// target and with no duration-dependent start; each kind overrides what it has.
const fn base(
    name: &'static str,
    family: Family,
    targets: Targets,
    example: FaultKind,
) -> FaultDecl {
    FaultDecl {
        name,
        family,
        params: NO_PARAMS,
        targets,
        lasts: Lasts::For,
        nemesis: &[],
        nemesis_for_max: None,
        live: None,
        disturbs: &[],
        detected_on: targets,
        start_uses_duration: Targets::NONE,
        example,
    }
}

const NET: Targets = Targets::TOWER.or(Targets::LINK).or(Targets::WIFI);
const PROC: Targets = Targets::ORIGIN.or(Targets::TOWER);
/// A network fault is seen by the towers' link probes, never on Wi-Fi.
const NET_SEEN: Targets = Targets::TOWER.or(Targets::LINK);
/// What network trouble between towers and origin can disturb.
const UPLINK_DISTURBS: &[Oracle] = &[
    Oracle::Durability,
    Oracle::ExactlyOnce,
    Oracle::Priority,
    Oracle::Convergence,
    Oracle::OfflineService,
];
/// What a process or disk fault can disturb.
const CRASH_DISTURBS: &[Oracle] = &[
    Oracle::Integrity,
    Oracle::Durability,
    Oracle::ExactlyOnce,
    Oracle::Conservation,
    Oracle::Convergence,
    Oracle::Attribution,
];
const POWER_DISTURBS: &[Oracle] = &[
    Oracle::Durability,
    Oracle::Convergence,
    Oracle::OfflineService,
    Oracle::PowerSafety,
];

impl FaultKind {
    /// Every kind's declaration, in file order.
    pub fn all() -> impl Iterator<Item = &'static FaultDecl> {
        DECLS.iter()
    }

    /// The declaration of a kind named `name`.
    pub fn decl_named(name: &str) -> Option<&'static FaultDecl> {
        DECLS.iter().find(|d| d.name == name)
    }

    /// This kind's declaration.
    pub fn decl(&self) -> &'static FaultDecl {
        // The table's order (`tests::every_variant_is_declared_once...` checks it).
        let i = match self {
            FaultKind::LinkDown => 0,
            FaultKind::Partition => 1,
            FaultKind::Latency { .. } => 2,
            FaultKind::Loss { .. } => 3,
            FaultKind::Bandwidth { .. } => 4,
            FaultKind::Flapping { .. } => 5,
            FaultKind::Duplicate { .. } => 6,
            FaultKind::Reorder { .. } => 7,
            FaultKind::WifiCorruption { .. } => 8,
            FaultKind::Crash => 9,
            FaultKind::Restart => 10,
            FaultKind::Pause => 11,
            FaultKind::Slow { .. } => 12,
            FaultKind::CrashLoop { .. } => 13,
            FaultKind::OriginReplace => 14,
            FaultKind::OriginBusy { .. } => 15,
            FaultKind::WriteError { .. } => 16,
            FaultKind::FsyncError { .. } => 17,
            FaultKind::TornWrite => 18,
            FaultKind::Corruption { .. } => 19,
            FaultKind::DiskFull => 20,
            FaultKind::DiskLatency { .. } => 21,
            FaultKind::DbLost => 22,
            FaultKind::DbKill => 23,
            FaultKind::DbPause => 24,
            FaultKind::DbRestart => 25,
            FaultKind::Clouds { .. } => 26,
            FaultKind::BatteryFade { .. } => 27,
            FaultKind::GridLoss => 28,
            FaultKind::UpsFailure => 29,
            FaultKind::BrownOut => 30,
            FaultKind::HardCut => 31,
            FaultKind::ClockSkew { .. } => 32,
            FaultKind::ClockJump { .. } => 33,
            FaultKind::RogueForward => 34,
        };
        &DECLS[i]
    }

    /// Whether it acts on the origin's database server (so needs `[origin] database =
    /// "postgres"`).
    pub fn needs_database_server(&self) -> bool {
        matches!(
            self,
            FaultKind::DbKill | FaultKind::DbPause | FaultKind::DbRestart
        )
    }

    /// The name used in scenario files.
    pub fn name(&self) -> &'static str {
        self.decl().name
    }

    /// The family the fault belongs to.
    pub fn family(&self) -> Family {
        self.decl().family
    }

    /// Build a kind from its name and its parameters' values (already checked against
    /// their [`ParamTy`]; durations as `Duration`, signed durations as milliseconds,
    /// bandwidth as bytes/s). `Err` names what does not fit — a programmer error when the
    /// values come from the parser.
    pub fn from_params(name: &str, values: &[(&str, ParamValue)]) -> Result<FaultKind, String> {
        let mut t = toml::Table::new();
        t.insert("kind".into(), toml::Value::String(name.into()));
        for (key, v) in values {
            let value = match v {
                ParamValue::Number(x) => toml::Value::Float(*x),
                ParamValue::Int(i) => toml::Value::Integer(*i),
                ParamValue::Duration(d) => toml::Value::String(text::format(*d)),
                ParamValue::SignedMs(ms) => toml::Value::String(signed_text::format(*ms)),
            };
            t.insert((*key).into(), value);
        }
        FaultKind::deserialize(toml::Value::Table(t)).map_err(|e| e.to_string())
    }

    /// This kind's parameter values, in its declaration's order.
    pub fn params(&self) -> Vec<(&'static str, ParamValue)> {
        let decl = self.decl();
        let Ok(toml::Value::Table(t)) = toml::Value::try_from(self) else {
            unreachable!("a fault kind serialises to a table");
        };
        decl.params
            .iter()
            .map(|p| {
                let key = p.key;
                let v = &t[key];
                let value = match (p.ty, v) {
                    (ParamTy::Duration { .. }, toml::Value::String(s)) => {
                        ParamValue::Duration(text::parse(s).expect("written by text::format"))
                    }
                    (ParamTy::SignedDuration, toml::Value::String(s)) => ParamValue::SignedMs(
                        signed_text::parse(s).expect("written by signed_text::format"),
                    ),
                    (_, toml::Value::Integer(i)) => ParamValue::Int(*i),
                    (_, toml::Value::Float(x)) => ParamValue::Number(*x),
                    (ty, v) => unreachable!("parameter {key} of {}: {ty:?} as {v:?}", decl.name),
                };
                (p.key, value)
            })
            .collect()
    }
}

/// A parameter's value, typed by its [`ParamTy`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    /// Unit and Number.
    Number(f64),
    /// Int and Bandwidth (bytes/s).
    Int(i64),
    /// Duration.
    Duration(Duration),
    /// SignedDuration, in milliseconds.
    SignedMs(i64),
}

/// Durations as the files write them (`"1h30m"`, `"250ms"`).
mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn format(d: Duration) -> String {
        let whole = Duration::from_secs(d.as_secs());
        match (whole.is_zero(), d.subsec_millis()) {
            (_, 0) => super::format_duration(whole),
            (true, ms) => format!("{ms}ms"),
            (false, ms) => format!("{}{ms}ms", super::format_duration(whole)),
        }
    }

    pub fn parse(s: &str) -> Result<Duration, String> {
        crate::parse::parse_duration(s, false).map(|(_, d)| d)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Signed durations in milliseconds, written as text (`"-30s"`).
mod signed_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn format(ms: i64) -> String {
        let d = super::text::format(Duration::from_millis(ms.unsigned_abs()));
        if ms < 0 { format!("-{d}") } else { d }
    }

    pub fn parse(s: &str) -> Result<i64, String> {
        let (negative, d) = crate::parse::parse_duration(s, true)?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{s} is out of range"))?;
        Ok(if negative { -ms } else { ms })
    }

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The duration text of a scenario file, to the millisecond.
pub fn duration_text(d: Duration) -> String {
    text::format(d)
}

/// The signed duration text of a scenario file.
pub fn signed_duration_text(ms: i64) -> String {
    signed_text::format(ms)
}

/// The table as text for people (`sovereign sim faults`): one block per kind.
pub fn table_text() -> String {
    let mut out = String::new();
    for d in &DECLS {
        let family = format!("{:?}", d.family).to_lowercase();
        out.push_str(&format!("{} ({family})\n", d.name));
        let params: Vec<String> = d
            .params
            .iter()
            .map(|p| {
                let range = match p.ty {
                    ParamTy::Unit => "0..=1".to_string(),
                    ParamTy::Number { min, max } => format!("{min}..={max}"),
                    ParamTy::Int { min, max } => format!("integer {min}..={max}"),
                    ParamTy::Duration { min, max } => {
                        format!("{}..={}", text::format(min), text::format(max))
                    }
                    ParamTy::SignedDuration => "signed duration, not 0".to_string(),
                    ParamTy::Bandwidth => "Mbit/s, or exact bytes/s".to_string(),
                };
                format!("{} ({}; {range})", p.keys().join(" or "), p.what)
            })
            .collect();
        let params = if params.is_empty() {
            "none".to_string()
        } else {
            params.join("; ")
        };
        out.push_str(&format!("  parameters: {params}\n"));
        out.push_str(&format!("  targets:    {}\n", d.targets.phrase()));
        let lasts = match d.lasts {
            Lasts::For => "`for` required",
            Lasts::Instant => "acts at its start (`for` optional, default 0s)",
            Lasts::RestOfRun => "to the end of the safety phase unless `for` is given",
        };
        out.push_str(&format!("  lasts:      {lasts}\n"));
        let family_total: u64 = DECLS
            .iter()
            .filter(|x| x.family == d.family)
            .flat_map(|x| x.nemesis)
            .map(|n| n.weight)
            .sum();
        let nemesis: Vec<String> = d
            .nemesis
            .iter()
            .map(|n| format!("{}/{family_total} on {:?}", n.weight, n.on).to_lowercase())
            .collect();
        let nemesis = if nemesis.is_empty() {
            "never drawn".to_string()
        } else {
            nemesis.join(", ")
        };
        out.push_str(&format!("  nemesis:    {nemesis}\n"));
        if let Some(l) = &d.live {
            out.push_str(&format!(
                "  console:    key '{}' ({}), for {}\n",
                l.key,
                l.label,
                format_duration(l.lasts)
            ));
        }
        let disturbs: Vec<&str> = d.disturbs.iter().map(|o| o.name()).collect();
        out.push_str(&format!("  disturbs:   {}\n", disturbs.join(", ")));
        let seen = if d.detected_on == Targets::NONE {
            "never (no fault signal sees it)".to_string()
        } else {
            format!("on {}", d.detected_on.phrase())
        };
        out.push_str(&format!("  detected:   {seen}\n\n"));
    }
    out
}

/// The table. Order: the file's, grouped by family.
static DECLS: [FaultDecl; 35] = [
    // ----- network -------------------------------------------------------------------
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 2,
            on: NemesisOn::Link,
            draw: |_| FaultKind::LinkDown,
        }],
        live: Some(Live {
            key: 'c',
            label: "cut link",
            kind: FaultKind::LinkDown,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: UPLINK_DISTURBS,
        detected_on: NET_SEEN,
        ..base("link-down", Family::Network, NET, FaultKind::LinkDown)
    },
    FaultDecl {
        nemesis: &[
            NemesisDraw {
                weight: 1,
                on: NemesisOn::Tower,
                draw: |_| FaultKind::Partition,
            },
            NemesisDraw {
                weight: 1,
                on: NemesisOn::Wifi,
                draw: |_| FaultKind::Partition,
            },
        ],
        live: Some(Live {
            key: 'x',
            label: "partition",
            kind: FaultKind::Partition,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: UPLINK_DISTURBS,
        detected_on: Targets::TOWER,
        ..base(
            "partition",
            Family::Network,
            Targets::TOWER.or(Targets::WIFI),
            FaultKind::Partition,
        )
    },
    FaultDecl {
        params: &[delay("extra", "a delay such as \"200ms\"")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Link,
            draw: |r| FaultKind::Latency {
                extra: Duration::from_millis(100 + r.below(900)),
            },
        }],
        live: Some(Live {
            key: 'a',
            label: "add latency",
            kind: FaultKind::Latency {
                extra: Duration::from_millis(500),
            },
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: UPLINK_DISTURBS,
        detected_on: NET_SEEN,
        ..base(
            "latency",
            Family::Network,
            NET,
            FaultKind::Latency {
                extra: Duration::from_millis(200),
            },
        )
    },
    FaultDecl {
        params: &[p("a probability 0..=1")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Link,
            draw: |r| FaultKind::Loss {
                p: 0.05 + r.unit() * 0.3,
            },
        }],
        disturbs: UPLINK_DISTURBS,
        detected_on: NET_SEEN,
        ..base("loss", Family::Network, NET, FaultKind::Loss { p: 0.25 })
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "bytes_per_s",
            ty: ParamTy::Bandwidth,
            what: "a bandwidth cap in Mbit/s",
        }],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Link,
            draw: |r| FaultKind::Bandwidth {
                bytes_per_s: 10_000 + r.below(200_000),
            },
        }],
        disturbs: UPLINK_DISTURBS,
        detected_on: NET_SEEN,
        ..base(
            "bandwidth",
            Family::Network,
            NET,
            FaultKind::Bandwidth {
                bytes_per_s: 125_000,
            },
        )
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "period",
            ty: ParamTy::Duration {
                min: Duration::from_millis(2),
                max: DAY,
            },
            what: "a full down+up period such as \"30s\"",
        }],
        disturbs: UPLINK_DISTURBS,
        detected_on: NET_SEEN,
        ..base(
            "flapping",
            Family::Network,
            NET,
            FaultKind::Flapping {
                period: Duration::from_millis(30_000),
            },
        )
    },
    FaultDecl {
        params: &[p("a probability 0..=1")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Link,
            draw: |r| FaultKind::Duplicate {
                p: 0.05 + r.unit() * 0.2,
            },
        }],
        disturbs: &[
            Oracle::ExactlyOnce,
            Oracle::Conservation,
            Oracle::Durability,
        ],
        detected_on: NET_SEEN,
        ..base(
            "duplicate",
            Family::Network,
            NET,
            FaultKind::Duplicate { p: 0.1 },
        )
    },
    FaultDecl {
        params: &[
            p("a probability 0..=1"),
            delay("extra", "a delay such as \"200ms\""),
        ],
        disturbs: &[Oracle::ExactlyOnce, Oracle::Durability, Oracle::Convergence],
        detected_on: NET_SEEN,
        ..base(
            "reorder",
            Family::Network,
            NET,
            FaultKind::Reorder {
                p: 0.3,
                extra: Duration::from_millis(1500),
            },
        )
    },
    FaultDecl {
        params: &[p("a probability 0..=1 per chunk served")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Wifi,
            draw: |r| FaultKind::WifiCorruption {
                p: 0.05 + r.unit() * 0.45,
            },
        }],
        live: Some(Live {
            key: 'w',
            label: "garble Wi-Fi",
            kind: FaultKind::WifiCorruption { p: 0.5 },
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: &[Oracle::Integrity],
        detected_on: Targets::NONE,
        ..base(
            "wifi-corruption",
            Family::Network,
            Targets::WIFI,
            FaultKind::WifiCorruption { p: 0.2 },
        )
    },
    // ----- process -------------------------------------------------------------------
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 2,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::Crash,
        }],
        live: Some(Live {
            key: 'k',
            label: "crash",
            kind: FaultKind::Crash,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: CRASH_DISTURBS,
        start_uses_duration: Targets::ORIGIN,
        ..base("crash", Family::Process, PROC, FaultKind::Crash)
    },
    FaultDecl {
        lasts: Lasts::Instant,
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::Restart,
        }],
        disturbs: CRASH_DISTURBS,
        ..base("restart", Family::Process, PROC, FaultKind::Restart)
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::Pause,
        }],
        live: Some(Live {
            key: 'z',
            label: "pause",
            kind: FaultKind::Pause,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: &[
            Oracle::Durability,
            Oracle::Convergence,
            Oracle::OfflineService,
        ],
        start_uses_duration: Targets::ALL,
        ..base("pause", Family::Process, PROC, FaultKind::Pause)
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "factor",
            ty: ParamTy::Number {
                min: 1.0,
                max: super::parse::SLOW_FACTOR_MAX,
            },
            what: "a slow-down factor >= 1",
        }],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |r| FaultKind::Slow {
                factor: 2.0 + r.unit() * 8.0,
            },
        }],
        disturbs: &[Oracle::Durability, Oracle::Convergence, Oracle::PowerSafety],
        ..base(
            "slow",
            Family::Process,
            PROC,
            FaultKind::Slow { factor: 3.5 },
        )
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "every",
            ty: ParamTy::Duration {
                min: Duration::from_millis(1),
                max: DAY,
            },
            what: "the uptime between crashes such as \"5m\"",
        }],
        disturbs: CRASH_DISTURBS,
        ..base(
            "crash-loop",
            Family::Process,
            PROC,
            FaultKind::CrashLoop {
                every: Duration::from_millis(300_000),
            },
        )
    },
    FaultDecl {
        disturbs: &[Oracle::Convergence, Oracle::Durability, Oracle::ExactlyOnce],
        ..base(
            "origin-replace",
            Family::Process,
            Targets::ORIGIN,
            FaultKind::OriginReplace,
        )
    },
    FaultDecl {
        params: &[p("a probability 0..=1 per request")],
        // Refused forwards are retried (exactly-once, durability), refused fetches and
        // polls delay convergence, and a refusal that does not name the origin is a
        // false mismatch (attribution).
        disturbs: &[
            Oracle::Durability,
            Oracle::ExactlyOnce,
            Oracle::Convergence,
            Oracle::Attribution,
        ],
        detected_on: Targets::NONE,
        ..base(
            "origin-busy",
            Family::Process,
            Targets::ORIGIN,
            FaultKind::OriginBusy { p: 0.5 },
        )
    },
    // ----- disk ----------------------------------------------------------------------
    FaultDecl {
        params: &[p("a probability 0..=1")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |r| FaultKind::WriteError {
                p: 0.05 + r.unit() * 0.2,
            },
        }],
        disturbs: CRASH_DISTURBS,
        ..base(
            "write-error",
            Family::Disk,
            PROC,
            FaultKind::WriteError { p: 0.01 },
        )
    },
    FaultDecl {
        params: &[p("a probability 0..=1")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |r| FaultKind::FsyncError {
                p: 0.05 + r.unit() * 0.2,
            },
        }],
        disturbs: CRASH_DISTURBS,
        ..base(
            "fsync-error",
            Family::Disk,
            PROC,
            FaultKind::FsyncError { p: 1.0 },
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::TornWrite,
        }],
        nemesis_for_max: Some(Duration::from_secs(600)),
        disturbs: CRASH_DISTURBS,
        start_uses_duration: Targets::ORIGIN,
        ..base("torn-write", Family::Disk, PROC, FaultKind::TornWrite)
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "chunks",
            ty: ParamTy::Int {
                min: 1,
                max: super::parse::CORRUPTION_CHUNKS_MAX as i64,
            },
            what: "how many chunks rot",
        }],
        lasts: Lasts::Instant,
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |r| FaultKind::Corruption {
                chunks: 1 + r.below(3) as u32,
            },
        }],
        live: Some(Live {
            key: 'd',
            label: "corrupt disk",
            kind: FaultKind::Corruption { chunks: 3 },
            lasts: Duration::ZERO,
        }),
        disturbs: &[Oracle::Integrity, Oracle::Convergence],
        ..base(
            "corruption",
            Family::Disk,
            PROC,
            FaultKind::Corruption { chunks: 7 },
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::DiskFull,
        }],
        live: Some(Live {
            key: 'f',
            label: "fill disk",
            kind: FaultKind::DiskFull,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: CRASH_DISTURBS,
        ..base("disk-full", Family::Disk, PROC, FaultKind::DiskFull)
    },
    FaultDecl {
        params: &[delay("extra", "a delay such as \"200ms\"")],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |r| FaultKind::DiskLatency {
                extra: Duration::from_millis(5 + r.below(200)),
            },
        }],
        disturbs: &[Oracle::Durability, Oracle::Convergence],
        ..base(
            "disk-latency",
            Family::Disk,
            PROC,
            FaultKind::DiskLatency {
                extra: Duration::from_millis(75),
            },
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::OriginOrTower,
            draw: |_| FaultKind::DbLost,
        }],
        disturbs: CRASH_DISTURBS,
        ..base("db-lost", Family::Disk, PROC, FaultKind::DbLost)
    },
    FaultDecl {
        disturbs: CRASH_DISTURBS,
        ..base("db-kill", Family::Disk, Targets::ORIGIN, FaultKind::DbKill)
    },
    FaultDecl {
        disturbs: CRASH_DISTURBS,
        ..base(
            "db-pause",
            Family::Disk,
            Targets::ORIGIN,
            FaultKind::DbPause,
        )
    },
    FaultDecl {
        disturbs: CRASH_DISTURBS,
        ..base(
            "db-restart",
            Family::Disk,
            Targets::ORIGIN,
            FaultKind::DbRestart,
        )
    },
    // ----- power ---------------------------------------------------------------------
    FaultDecl {
        params: &[ParamDecl {
            key: "cover",
            ty: ParamTy::Unit,
            what: "a cloud cover 0..=1",
        }],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |r| FaultKind::Clouds {
                cover: 0.5 + r.unit() * 0.5,
            },
        }],
        live: Some(Live {
            key: 'o',
            label: "clouds",
            kind: FaultKind::Clouds { cover: 0.9 },
            lasts: Duration::from_secs(4 * 3600),
        }),
        disturbs: POWER_DISTURBS,
        ..base(
            "clouds",
            Family::Power,
            Targets::TOWER,
            FaultKind::Clouds { cover: 0.9 },
        )
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "capacity",
            ty: ParamTy::Unit,
            what: "the remaining capacity fraction 0..=1",
        }],
        lasts: Lasts::RestOfRun,
        disturbs: POWER_DISTURBS,
        ..base(
            "battery-fade",
            Family::Power,
            Targets::TOWER,
            FaultKind::BatteryFade { capacity: 0.5 },
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |_| FaultKind::GridLoss,
        }],
        disturbs: POWER_DISTURBS,
        ..base(
            "grid-loss",
            Family::Power,
            Targets::TOWER,
            FaultKind::GridLoss,
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |_| FaultKind::UpsFailure,
        }],
        disturbs: POWER_DISTURBS,
        ..base(
            "ups-failure",
            Family::Power,
            Targets::TOWER,
            FaultKind::UpsFailure,
        )
    },
    FaultDecl {
        lasts: Lasts::Instant,
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |_| FaultKind::BrownOut,
        }],
        disturbs: POWER_DISTURBS,
        ..base(
            "brown-out",
            Family::Power,
            Targets::TOWER,
            FaultKind::BrownOut,
        )
    },
    FaultDecl {
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |_| FaultKind::HardCut,
        }],
        nemesis_for_max: Some(Duration::from_secs(600)),
        live: Some(Live {
            key: 'h',
            label: "hard power cut",
            kind: FaultKind::HardCut,
            lasts: OPERATOR_FAULT_FOR,
        }),
        disturbs: POWER_DISTURBS,
        ..base(
            "hard-cut",
            Family::Power,
            Targets::TOWER,
            FaultKind::HardCut,
        )
    },
    // ----- clock ---------------------------------------------------------------------
    FaultDecl {
        params: &[ParamDecl {
            key: "ppm",
            ty: ParamTy::Int {
                min: -super::parse::CLOCK_SKEW_PPM_MAX,
                max: super::parse::CLOCK_SKEW_PPM_MAX,
            },
            what: "a skew in parts per million",
        }],
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |r| FaultKind::ClockSkew {
                ppm: r.below(2000) as i64 - 1000,
            },
        }],
        disturbs: &[Oracle::Durability, Oracle::Convergence, Oracle::PowerSafety],
        detected_on: Targets::NONE,
        ..base(
            "clock-skew",
            Family::Clock,
            Targets::TOWER,
            FaultKind::ClockSkew { ppm: -250 },
        )
    },
    FaultDecl {
        params: &[ParamDecl {
            key: "by",
            ty: ParamTy::SignedDuration,
            what: "a signed jump such as \"-30s\"",
        }],
        lasts: Lasts::Instant,
        nemesis: &[NemesisDraw {
            weight: 1,
            on: NemesisOn::Tower,
            draw: |r| FaultKind::ClockJump {
                by_ms: r.below(120_000) as i64 - 60_000,
            },
        }],
        live: Some(Live {
            key: 't',
            label: "clock jump",
            kind: FaultKind::ClockJump { by_ms: 300_000 },
            lasts: Duration::ZERO,
        }),
        disturbs: &[Oracle::Durability, Oracle::Convergence, Oracle::PowerSafety],
        detected_on: Targets::NONE,
        ..base(
            "clock-jump",
            Family::Clock,
            Targets::TOWER,
            FaultKind::ClockJump { by_ms: -30_000 },
        )
    },
    // ----- trust (network family: it arrives over the uplinks) ------------------------
    FaultDecl {
        // The origin refuses it without a trace in the log (the real origin counts it
        // in `sovereign_tower_auth_refusals_total`).
        disturbs: &[
            Oracle::Attribution,
            Oracle::ExactlyOnce,
            Oracle::Conservation,
        ],
        detected_on: Targets::NONE,
        ..base(
            "rogue-forward",
            Family::Network,
            Targets::ORIGIN,
            FaultKind::RogueForward,
        )
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_variant_is_declared_once_and_its_example_is_itself() {
        // Goal: names are unique, and each declaration's example maps back to it.
        let names: BTreeSet<&str> = DECLS.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), DECLS.len());
        for d in &DECLS {
            assert_eq!(d.example.decl().name, d.name);
            assert_eq!(d.example.family(), d.family);
            assert!(d.targets != Targets::NONE, "{} has no target", d.name);
            assert!(!d.disturbs.is_empty(), "{} disturbs nothing", d.name);
            if let Some(live) = &d.live {
                assert_eq!(live.kind.decl().name, d.name);
            }
            for n in d.nemesis {
                let mut rng = sovereign_logic::entropy::SplitMix64::new(7);
                assert_eq!((n.draw)(&mut rng).decl().name, d.name);
            }
        }
        let keys: BTreeSet<char> = DECLS
            .iter()
            .filter_map(|d| d.live.as_ref())
            .map(|l| l.key)
            .collect();
        assert_eq!(
            keys.len(),
            DECLS.iter().filter(|d| d.live.is_some()).count()
        );
    }

    #[test]
    fn parameters_round_trip_through_serde_as_declared() {
        // Goal: the variant's serde fields are exactly the declared parameters, and
        // `params` / `from_params` are inverses on every example.
        for d in &DECLS {
            let values = d.example.params();
            let keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
            let declared: Vec<&str> = d.params.iter().map(|p| p.key).collect();
            assert_eq!(keys, declared, "{}", d.name);
            assert_eq!(
                FaultKind::from_params(d.name, &values),
                Ok(d.example.clone())
            );
        }
        assert!(FaultKind::from_params("latency", &[]).is_err());
        let extra = [
            ("p", ParamValue::Number(0.5)),
            ("q", ParamValue::Number(0.5)),
        ];
        assert!(FaultKind::from_params("loss", &extra).is_err());
    }

    #[test]
    fn target_phrases_read_as_english() {
        // Goal: error messages list the allowed shapes readably.
        assert_eq!(Targets::ORIGIN.phrase(), "\"origin\"");
        assert_eq!(PROC.phrase(), "\"origin\" or a tower");
        assert_eq!(
            NET.phrase(),
            "a tower, \"<tower>/<fibre|lte|satellite>\" or \"<tower>/wifi\""
        );
    }
}
