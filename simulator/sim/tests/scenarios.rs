//! Scenario files end to end: every shipped scenario parses and round-trips through
//! `to_toml`; valid fixtures parse; each invalid fixture fails with the exact file, line
//! and field; every fault kind round-trips; no input makes the parser panic.

use proptest::prelude::*;
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::scenario::faults::{ParamTy, ParamValue};
use sovereign_sim::scenario::parse::{parse_file, parse_str};
use sovereign_sim::scenario::{Family, FaultKind, FaultSpec, Oracle, Scenario, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

fn parse(path: &Path) -> Scenario {
    parse_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Written, re-parsed, equal; and writing is a fixed point.
fn assert_round_trip(s: &Scenario) {
    let text = s.to_toml();
    let back = parse_str("written.toml", &text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(&back, s, "round trip changed the scenario:\n{text}");
    assert_eq!(back.to_toml(), text, "writing is not a fixed point");
}

const SHIPPED: [&str; 8] = [
    "baseline",
    "crash-loop",
    "disk-faults",
    "fibre-cut",
    "region",
    "satellite-week",
    "solar-drought",
    "storm",
];

/// Goal: every shipped scenario parses, keeps its name and round-trips through to_toml.
#[test]
fn shipped_scenarios_parse_and_round_trip() {
    let files = toml_files(&repo_scenarios());
    let stems: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in SHIPPED {
        assert!(
            stems.iter().any(|s| s == name),
            "scenarios/{name}.toml missing"
        );
    }
    // scenarios/bench/ holds the benchmark-sized ones (docs/BENCHMARKS.md), kept out of
    // the CI sweep of scenarios/ (a sweep reads one directory level).
    let bench = toml_files(&repo_scenarios().join("bench"));
    for name in ["scale.toml", "storm-1h.toml"] {
        assert!(
            bench.iter().any(|p| p.ends_with(name)),
            "scenarios/bench/{name} missing"
        );
    }
    // scenarios/rare/ aims at the rare planted bugs (tests/sim/plants.rs), also kept out.
    let rare = toml_files(&repo_scenarios().join("rare"));
    for name in ["long-outage.toml", "slow-origin-crashes.toml"] {
        assert!(
            rare.iter().any(|p| p.ends_with(name)),
            "scenarios/rare/{name} missing"
        );
    }
    for path in files.into_iter().chain(bench).chain(rare) {
        let s = parse(&path);
        assert_eq!(s.name, path.file_stem().unwrap().to_string_lossy());
        assert!(!s.description.is_empty(), "{}: no description", s.name);
        assert_round_trip(&s);
    }
}

/// Goal: the shipped scenarios contain what their briefs promise.
#[test]
fn shipped_scenarios_have_their_shape() {
    let get = |name: &str| parse(&repo_scenarios().join(format!("{name}.toml")));
    let hours = |h: u64| Duration::from_secs(h * 3600);

    let b = get("baseline");
    assert_eq!(b.towers.len(), 2);
    assert!(
        b.towers
            .iter()
            .all(|t| t.devices == 20 && t.links.len() == 3)
    );
    assert!(b.faults.is_empty() && b.nemesis.rates_per_hour.is_empty());
    assert_eq!(b.duration, hours(24));
    let classes: Vec<Priority> = b.workload.catalog.iter().map(|c| c.priority).collect();
    assert_eq!(classes, Priority::ALL);
    let bytes: u64 = b
        .workload
        .catalog
        .iter()
        .map(|c| u64::from(c.items) * c.bytes)
        .sum();
    assert!((3_000_000..=5_000_000).contains(&bytes), "{bytes}");
    assert_eq!(b.slo.availability_min, Some(0.95));
    assert_eq!(b.slo.freshness_p99_max[0], Some(Duration::from_secs(300)));
    assert_eq!(b.invariants.len(), Oracle::ALL.len());

    let f = get("fibre-cut");
    assert!(f.faults.contains(&FaultSpec {
        at: hours(2),
        duration: hours(3),
        target: Target::Link(0, LinkKind::Fibre),
        kind: FaultKind::LinkDown,
    }));
    assert!(
        f.faults
            .iter()
            .any(|x| x.target == Target::Link(0, LinkKind::Lte))
    );

    let sw = get("satellite-week");
    assert_eq!(sw.towers.len(), 1);
    assert_eq!(sw.towers[0].links.len(), 1);
    assert_eq!(sw.towers[0].links[0].kind, LinkKind::Satellite);
    assert_eq!(sw.towers[0].links[0].profile.name, "geo");
    assert_eq!(sw.duration, hours(24 * 7));

    let sd = get("solar-drought");
    assert!(sd.towers.iter().all(|t| !t.power.grid));
    assert!(
        sd.faults
            .iter()
            .all(|x| x.kind == FaultKind::Clouds { cover: 1.0 })
    );

    let families = |s: &Scenario| {
        let mut fs: Vec<Family> = s.faults.iter().map(|x| x.kind.family()).collect();
        fs.sort();
        fs.dedup();
        fs
    };
    let d = get("disk-faults");
    assert_eq!(families(&d), [Family::Disk]);
    assert!(d.faults.iter().any(|x| x.target == Target::Origin));

    let c = get("crash-loop");
    assert!(
        c.faults
            .iter()
            .any(|x| matches!(x.kind, FaultKind::CrashLoop { .. }))
    );
    assert!(
        c.faults
            .iter()
            .any(|x| x.kind == FaultKind::Crash && x.target == Target::Origin)
    );

    let all_families = [
        Family::Network,
        Family::Process,
        Family::Disk,
        Family::Power,
        Family::Clock,
    ];
    let st = get("storm");
    assert_eq!(st.towers.len(), 3);
    assert_eq!(families(&st), all_families);
    let nemesis_families: Vec<Family> = st.nemesis.rates_per_hour.iter().map(|r| r.0).collect();
    assert_eq!(nemesis_families, all_families);

    let r = get("region");
    assert_eq!(r.towers.len(), 10);
    assert_eq!(r.towers.iter().map(|t| t.devices).sum::<u32>(), 1000);
    assert_eq!(r.towers[9].name, "village-9");
    assert_eq!(r.nemesis.rates_per_hour.len(), 5);
}

/// Goal: the valid fixtures parse (with the documented defaults) and round-trip.
#[test]
fn valid_fixtures_parse_and_round_trip() {
    let files = toml_files(&fixtures("valid"));
    assert!(files.len() >= 2);
    for path in &files {
        assert_round_trip(&parse(path));
    }
    let full = parse(&fixtures("valid").join("full.toml"));
    assert_eq!(full.seed, u64::MAX);
    let names: Vec<&str> = full.towers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["hub", "hill-0", "hill-1", "tower-3"]);
    assert_eq!(full.towers[0].wifi.name, "mesh");
    assert_eq!(full.towers[0].wifi.bytes_per_s, 3_000_001);
    assert_eq!(
        full.towers[0].links[1].profile.latency,
        Duration::from_millis(60)
    );
    assert_eq!(full.towers[1].links[0].profile.bytes_per_s, 250_000);
    assert_eq!(full.towers[3].links[0].profile.name, "odd");
    // `*` on link-down expanded to the four towers.
    assert_eq!(
        full.faults
            .iter()
            .filter(|f| f.kind == FaultKind::LinkDown)
            .count(),
        4
    );
    // battery-fade without `for` lasts to the end of the safety phase.
    let fade = full
        .faults
        .iter()
        .find(|f| matches!(f.kind, FaultKind::BatteryFade { .. }))
        .unwrap();
    assert_eq!(fade.at + fade.duration, full.duration);
    assert_eq!(
        full.nemesis.rates_per_hour,
        [(Family::Network, 1.5), (Family::Clock, 0.25)]
    );
}

/// Goal: every invalid fixture fails with the exact file, line and field.
#[test]
fn invalid_fixtures_name_file_line_and_field() {
    let cases: [(&str, usize, &str, &str); 16] = [
        ("unknown-key", 9, "tower[0].power.batery_wh", "unknown key"),
        ("bad-priority", 10, "workload.catalog[1].priority", "P5"),
        ("bad-duration", 2, "duration", "expected a duration"),
        ("unknown-target", 11, "fault[0].target", "unknown target"),
        (
            "link-not-on-tower",
            11,
            "fault[0].target",
            "has no lte link",
        ),
        ("missing-param", 13, "fault[1].p", "missing"),
        ("param-for-wrong-kind", 12, "fault[0].p", "not a parameter"),
        ("prob-out-of-range", 8, "slo.availability_min", "0..=1"),
        ("syntax-error", 2, "seed", "syntax"),
        ("duplicate-tower", 9, "tower[1].name", "north-1"),
        (
            "wrong-target-for-kind",
            10,
            "fault[0].target",
            "expected a tower",
        ),
        (
            "fault-after-end",
            8,
            "fault[0].at",
            "end of the safety phase",
        ),
        ("wrong-type", 4, "tower[0].devices", "found string"),
        ("too-many-devices", 4, "tower[0].devices", "0..=100000"),
        // Cost limits of the whole scenario (scenario/limits.rs).
        (
            "devices-in-all-towers",
            8,
            "tower[0].devices",
            "devices in all towers (devices × count, summed) would be 100000000, over the limit of 1000000",
        ),
        (
            "catalog-bytes",
            12,
            "workload.catalog[0].size",
            "content bytes in the catalog (items × size, summed) would be 671088640000, over the limit of 1073741824",
        ),
    ];
    let files = toml_files(&fixtures("invalid"));
    assert_eq!(files.len(), cases.len(), "one case per invalid fixture");
    for (name, line, field, needle) in cases {
        let path = fixtures("invalid").join(format!("{name}.toml"));
        let e = match parse_file(&path) {
            Ok(_) => panic!("{name}: parsed"),
            Err(e) => e,
        };
        assert_eq!(e.file, path.display().to_string(), "{name}");
        assert!(e.file.ends_with(&format!("{name}.toml")));
        assert_eq!((e.line, e.field.as_str()), (line, field), "{name}: {e}");
        assert!(e.message.contains(needle), "{name}: {e}");
        assert_eq!(
            e.to_string(),
            format!("{}:{line}: {field}: {}", e.file, e.message)
        );
    }
}

/// Goal: a missing file is an error naming it, not a panic.
#[test]
fn missing_file_is_an_error() {
    let path = fixtures("no-such-dir").join("x.toml");
    let e = parse_file(&path).expect_err("error");
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, 0);
}

// ---------------------------------------------------------------------------------------
// Fault kinds.

/// Two towers: tower-0 with all three uplinks, tower-1 with LTE only.
const BASE: &str = r#"
duration = "2d"
[origin]
database = "postgres"
[[tower]]
devices = 2
links = ["fibre", "lte", "satellite"]
[[tower]]
devices = 2
links = ["lte"]
"#;

fn base() -> Scenario {
    parse_str("base.toml", BASE).unwrap_or_else(|e| panic!("{e}"))
}

/// The targets a kind accepts on [`base`], as its declaration says.
fn targets_for(kind: &FaultKind) -> Vec<Target> {
    [
        Target::Origin,
        Target::Tower(0),
        Target::Tower(1),
        Target::Link(0, LinkKind::Fibre),
        Target::Link(0, LinkKind::Lte),
        Target::Link(0, LinkKind::Satellite),
        Target::Link(1, LinkKind::Lte),
        Target::Wifi(0),
        Target::Wifi(1),
    ]
    .into_iter()
    .filter(|t| kind.decl().targets.contains(t))
    .collect()
}

/// Each kind's declared example.
fn sample_kinds() -> Vec<FaultKind> {
    FaultKind::all().map(|d| d.example.clone()).collect()
}

/// Goal: every fault kind, on every target it accepts, round-trips; the table covers
/// all kinds and their names match the parser's list.
#[test]
fn every_fault_kind_round_trips_on_every_valid_target() {
    let kinds = sample_kinds();
    let mut s = base();
    for kind in kinds {
        for target in targets_for(&kind) {
            s.faults.push(FaultSpec {
                at: Duration::from_secs(3600),
                duration: Duration::from_secs(60),
                target,
                kind: kind.clone(),
            });
        }
    }
    assert_round_trip(&s);
}

/// Goal: targets outside a kind's set are rejected with the target field named.
#[test]
fn invalid_targets_are_rejected_for_every_kind() {
    let all = [
        ("origin", Target::Origin),
        ("tower-0", Target::Tower(0)),
        ("tower-0/fibre", Target::Link(0, LinkKind::Fibre)),
        ("tower-0/wifi", Target::Wifi(0)),
    ];
    for kind in sample_kinds() {
        let ok = targets_for(&kind);
        for (text, target) in &all {
            let mut s = base();
            s.faults.push(FaultSpec {
                at: Duration::from_secs(60),
                duration: Duration::from_secs(60),
                target: target.clone(),
                kind: kind.clone(),
            });
            let result = parse_str("k.toml", &s.to_toml());
            if ok.contains(target) {
                assert_eq!(result.ok().as_ref(), Some(&s), "{} on {text}", kind.name());
            } else {
                let e = result
                    .err()
                    .unwrap_or_else(|| panic!("{} on {text}", kind.name()));
                assert_eq!(e.field, "fault[0].target", "{e}");
            }
        }
    }
}

/// Any value a parameter of this type accepts.
fn any_param(ty: ParamTy) -> BoxedStrategy<ParamValue> {
    let ms = |d: Duration| d.as_millis() as u64;
    match ty {
        ParamTy::Unit => (0.0..=1.0f64).prop_map(ParamValue::Number).boxed(),
        ParamTy::Number { min, max } => (min..=max).prop_map(ParamValue::Number).boxed(),
        ParamTy::Int { min, max } => (min..=max).prop_map(ParamValue::Int).boxed(),
        ParamTy::Duration { min, max } => (ms(min)..=ms(max))
            .prop_map(|x| ParamValue::Duration(Duration::from_millis(x)))
            .boxed(),
        ParamTy::SignedDuration => (1i64..=365 * 86_400_000, any::<bool>())
            .prop_map(|(x, neg)| ParamValue::SignedMs(if neg { -x } else { x }))
            .boxed(),
        ParamTy::Bandwidth => (1i64..=12_500_000_000).prop_map(ParamValue::Int).boxed(),
    }
}

/// A kind of the table with any valid parameters.
fn any_kind() -> impl Strategy<Value = FaultKind> {
    let decls: Vec<_> = FaultKind::all().collect();
    prop::sample::select(decls).prop_flat_map(|d| {
        let params: Vec<BoxedStrategy<ParamValue>> =
            d.params.iter().map(|p| any_param(p.ty)).collect();
        params.prop_map(move |values| {
            let values: Vec<(&str, ParamValue)> =
                d.params.iter().map(|p| p.key).zip(values).collect();
            FaultKind::from_params(d.name, &values).expect("valid parameters")
        })
    })
}

/// A fault of any kind with valid parameters, target, start and length.
fn any_fault() -> impl Strategy<Value = FaultSpec> {
    (
        any_kind(),
        any::<prop::sample::Index>(),
        0u64..172_800_000,
        1u64..=86_400_000,
    )
        .prop_map(|(kind, pick, at_ms, for_ms)| {
            let targets = targets_for(&kind);
            FaultSpec {
                at: Duration::from_millis(at_ms),
                duration: Duration::from_millis(for_ms),
                target: targets[pick.index(targets.len())].clone(),
                kind,
            }
        })
}

/// Apply byte-level-ish mutations to text, staying valid UTF-8.
fn mutate(text: &str, edits: &[(prop::sample::Index, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, op, c) in edits {
        if chars.is_empty() {
            chars.push(*c);
            continue;
        }
        let i = at.index(chars.len());
        match op % 4 {
            0 => chars[i] = *c,
            1 => chars.insert(i, *c),
            2 => {
                chars.remove(i);
            }
            _ => {
                // Duplicate a short run: repeats keys, brackets, quotes.
                let end = (i + 8).min(chars.len());
                let run: Vec<char> = chars[i..end].to_vec();
                chars.splice(i..i, run);
            }
        }
    }
    chars.into_iter().collect()
}

fn shipped_texts() -> Vec<String> {
    let mut texts: Vec<String> = toml_files(&repo_scenarios())
        .into_iter()
        .chain(toml_files(&fixtures("valid")))
        .map(|p| std::fs::read_to_string(p).expect("readable"))
        .collect();
    texts.push(base().to_toml());
    texts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Goal: random faults of every kind round-trip through to_toml.
    #[test]
    fn random_faults_round_trip(faults in prop::collection::vec(any_fault(), 1..6)) {
        let mut s = base();
        s.faults = faults;
        let text = s.to_toml();
        match parse_str("p.toml", &text) {
            Ok(back) => prop_assert_eq!(back, s, "{}", text),
            Err(e) => prop_assert!(false, "{}\n{}", e, text),
        }
    }

    /// Goal: parse_str never panics on mutated scenario text, and every error has a
    /// line inside the text (or 1 for an empty one) and a non-empty field and message.
    #[test]
    fn parse_never_panics_on_mutated_input(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), prop_oneof![
                Just('"'), Just('['), Just(']'), Just('='), Just('\n'), Just('{'), Just('}'),
                Just(','), Just('.'), Just('-'), Just('*'), Just('/'), Just('0'), Just('9'),
                Just('x'), Just(' '), Just('#'), Just('é'), any::<char>(),
            ]),
            1..12,
        ),
    ) {
        let texts = shipped_texts();
        let text = mutate(&texts[which.index(texts.len())], &edits);
        if let Err(e) = parse_str("m.toml", &text) {
            let lines = text.split('\n').count();
            prop_assert!(e.line >= 1 && e.line <= lines, "line {} of {}: {}", e.line, lines, e);
            prop_assert!(!e.field.is_empty(), "{}", e);
            prop_assert!(!e.message.is_empty(), "{}", e);
            prop_assert_eq!(e.file.as_str(), "m.toml");
        }
    }

    /// Goal: arbitrary text never panics the parser.
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = parse_str("a.toml", &text);
    }
}

/// Goal: deeply nested input (within the size limit) is an error, not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    for open in ["[", "{a="] {
        let text = format!("x = {}", open.repeat(100_000));
        assert!(parse_str("deep.toml", &text).is_err());
    }
    let big = "#".repeat(2 << 20);
    let e = parse_str("big.toml", &big).expect_err("too big");
    assert!(e.message.contains("at most"), "{e}");
}
