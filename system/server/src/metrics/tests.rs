//! Tests of the metrics: the exposition parses (and passes `promtool check metrics` when
//! promtool is installed), the tower dashboard's metrics all exist on a real tower, and
//! each feed moves the series it should.

use super::*;
use sovereign_logic::content::{ChunkHash, ItemId};
use sovereign_logic::protocol::IdemKey;
use sovereign_logic::tower::power::UpsState;
use std::path::PathBuf;

/// Families the tower dashboard may query that a real tower cannot export: they come from
/// a simulated run only (the simulator knows the whole world: faults, oracles, freshness
/// measured from the origin's publish). Empty today — the tower dashboard uses none of
/// them — but a tower dashboard panel over one of these must be listed here, with a
/// reason.
const SIM_ONLY: [&str; 12] = [
    "sovereign_sim_run_info",
    "sovereign_availability_ratio",
    "sovereign_mttd_seconds",
    "sovereign_mttr_seconds",
    "sovereign_freshness_seconds",
    "sovereign_faults_active",
    "sovereign_faults_injected_total",
    "sovereign_rpo_operations",
    "sovereign_invariant_violations_total",
    "sovereign_rto_compliance_ratio",
    "sovereign_sweep_runs_total",
    "sovereign_sweep_plant_catch_ratio",
];

/// One parsed sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: family → type, and the samples.
#[derive(Debug, Default)]
struct Parsed {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Parsed {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A strict line parser for text format 0.0.4: `# HELP`/`# TYPE` before a family's
/// samples, valid names, quoted and escaped label values, float values, counters ending
/// in `_total`, histograms with `_bucket{le}`/`_sum`/`_count`.
fn parse(text: &str) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().ok_or_else(|| at("comment without a name"))?;
            let arg = parts.next().unwrap_or("");
            match kind {
                "HELP" => {
                    if arg.trim().is_empty() {
                        return Err(at("empty HELP"));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at("unknown TYPE"));
                    }
                    if arg == "counter" && !name.ends_with("_total") {
                        return Err(at("counter without _total"));
                    }
                    if p.types.insert(name.to_string(), arg.to_string()).is_some() {
                        return Err(at("TYPE repeated"));
                    }
                }
                _ => return Err(at("unknown comment")),
            }
            continue;
        }
        // name{labels} value
        let (name, rest) = match line.find(['{', ' ']) {
            Some(j) => line.split_at(j),
            None => return Err(at("no value")),
        };
        if !valid_name(name) {
            return Err(at("bad metric name"));
        }
        let mut labels = BTreeMap::new();
        let value_text = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            while let Some((j, c)) = chars.next() {
                if c == '}' {
                    end = Some(j);
                    break;
                }
                if c == ',' {
                    continue;
                }
                let mut key = String::from(c);
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                if !valid_name(&key) {
                    return Err(at("bad label name"));
                }
                if chars.next().map(|x| x.1) != Some('"') {
                    return Err(at("label value not quoted"));
                }
                let mut val = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => val.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => val.push(c),
                            _ => return Err(at("bad escape")),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => val.push(c),
                        None => return Err(at("unterminated label value")),
                    }
                }
                if labels.insert(key, val).is_some() {
                    return Err(at("label repeated"));
                }
            }
            let end = end.ok_or_else(|| at("no closing brace"))?;
            &body[end + 1..]
        } else {
            rest
        };
        let value_text = value_text
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before value"))?;
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("bad value"))?,
        };
        // The family this sample belongs to must have been typed already.
        let family = [
            name.to_string(),
            name.strip_suffix("_bucket").unwrap_or("").to_string(),
            name.strip_suffix("_sum").unwrap_or("").to_string(),
            name.strip_suffix("_count").unwrap_or("").to_string(),
        ]
        .into_iter()
        .find(|f| !f.is_empty() && p.types.contains_key(f))
        .ok_or_else(|| at("sample before its TYPE"))?;
        let ty = p.types[&family].as_str();
        if ty == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(at("bucket without le"));
        }
        if ty != "histogram" && ty != "summary" && name != family {
            return Err(at("suffixed sample in a plain family"));
        }
        p.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(p)
}

/// Run `promtool check metrics` on `text` if promtool is installed; `Err` with its output
/// if it complains. `Ok(false)` when promtool is absent.
fn promtool(text: &str) -> Result<bool, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIP promtool: not on PATH (Debian package `prometheus`)");
        return Ok(false);
    };
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(true)
    } else {
        Err(said)
    }
}

fn hash(n: u8) -> ChunkHash {
    ChunkHash([n; 32])
}

fn status() -> TowerStatus {
    TowerStatus {
        active_link: Some(LinkKind::Fibre),
        links_up: vec![LinkKind::Fibre, LinkKind::Lte],
        power_mode: PowerMode::Normal,
        items_servable: 3,
        items_pending: 1,
        chunks_held: 40,
        queued: [0, 2, 0, 5],
        in_flight: 4,
        outbox: 6,
        confirmed: 2,
        window: 8,
        failovers: 0,
        breaker_openings: 0,
    }
}

fn reading(soc: u16, solar_w: u32, load_w: u32) -> PowerReading {
    PowerReading {
        soc_permille: soc,
        solar_mw: solar_w * 1000,
        load_mw: load_w * 1000,
        ups: UpsState::OnBattery,
    }
}

/// A tower that has seen one of everything.
fn busy_tower(t0: Instant) -> TowerMetrics {
    let m = TowerMetrics::new("tower-1");
    m.set_links(&[LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite]);
    let events = [
        Event::LinkHealth {
            link: LinkKind::Fibre,
            up: true,
        },
        Event::ActiveLink {
            from: None,
            to: Some(LinkKind::Fibre),
        },
        Event::ChunkRequested {
            hash: hash(1),
            priority: Priority::P0,
            bytes: 1000,
            link: LinkKind::Fibre,
        },
        Event::ChunkVerified {
            hash: hash(1),
            priority: Priority::P0,
            bytes: 1000,
            link: LinkKind::Fibre,
        },
        Event::ContentServable {
            item: ItemId("alert".into()),
            version: 1,
            priority: Priority::P0,
        },
        Event::ChunkRejected {
            hash: hash(2),
            link: LinkKind::Lte,
        },
        Event::ChunkQuarantined { hash: hash(3) },
        Event::OpAcked {
            key: IdemKey("7:00000001".into()),
        },
        Event::OpConfirmed {
            key: IdemKey("7:00000001".into()),
            outcome: OpOutcome::Applied { seq: 1 },
        },
        Event::PowerMode {
            from: PowerMode::Normal,
            to: PowerMode::ShedP3,
        },
        Event::BreakerOpened,
        Event::TaskRestarted {
            task: TaskKind::Fetch,
            attempt: 1,
        },
        Event::Throttle { window: 8 },
    ];
    for e in &events {
        m.on_event(e);
    }
    m.on_event_p0(
        &Event::ChunkRequested {
            hash: hash(4),
            priority: Priority::P3,
            bytes: 500,
            link: LinkKind::Fibre,
        },
        true,
    );
    m.set_status(&status());
    m.set_power_at(&reading(800, 120, 40), t0);
    m.set_power_at(&reading(790, 100, 50), t0 + Duration::from_secs(10));
    m.device_read("served");
    m.device_read("refused");
    m.device_seen(DeviceId(7), t0);
    m.http_request("/v1/chunks/{sha256}", "GET", 200, 0.003);
    m.link_traffic(LinkKind::Fibre, 1700);
    m
}

fn dashboard_metric_names(file: &str) -> BTreeSet<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../dashboards/grafana")
        .join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Collect every string in the document and scan it for metric names.
    fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings(&json, &mut all);
    let mut names = BTreeSet::new();
    for s in all {
        let mut rest = s;
        while let Some(i) = rest.find("sovereign_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].trim_end_matches('_').to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn tower_exposition_parses_and_has_help_and_type_for_every_family() {
    // Goal: the text the tower serves is valid 0.0.4 by a strict parser.
    let m = busy_tower(Instant::now());
    let text = m.render();
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(p.samples.len() > 50, "{}", p.samples.len());
    assert!(p.samples.iter().all(|s| s.name.starts_with("sovereign_")));
    // Every sample carries the tower label.
    assert!(
        p.samples
            .iter()
            .all(|s| s.labels.get("tower").map(String::as_str) == Some("tower-1"))
    );
    assert_eq!(
        p.types["sovereign_http_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(p.types["sovereign_power_mode"], "gauge");
}

#[test]
fn origin_exposition_parses() {
    // Goal: the origin's text is valid 0.0.4 too.
    let m = OriginMetrics::new();
    m.published(Priority::P1, 4096);
    m.http_request("/v1/catalog", "GET", 200, 0.01);
    let text = m.render();
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.value("sovereign_origin_up", &[]), Some(1.0));
    assert_eq!(
        p.value("sovereign_published_bytes_total", &[("class", "P1")]),
        Some(4096.0)
    );
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    // Goal: the parser used above can fail (each case breaks one rule).
    let bad = [
        "foo 1\n",                                     // no TYPE
        "# TYPE foo counter\nfoo 1\n",                 // counter without _total
        "# TYPE foo gauge\nfoo{a=\"x} 1\n",            // unterminated
        "# TYPE foo gauge\nfoo{a=x} 1\n",              // unquoted
        "# TYPE foo gauge\nfoo one\n",                 // bad value
        "# TYPE foo gauge\nfoo_sum 1\n",               // suffix in a gauge
        "# TYPE foo gauge\n# TYPE foo gauge\nfoo 1\n", // TYPE twice
        "# TYPE 9foo gauge\n9foo 1\n",                 // bad name
        "# TYPE foo histogram\nfoo_bucket 1\n",        // bucket without le
    ];
    for b in bad {
        assert!(parse(b).is_err(), "accepted {b:?}");
    }
    assert!(parse("# HELP foo x\n# TYPE foo gauge\nfoo{a=\"q\\\"\"} 1\n").is_ok());
}

#[test]
fn promtool_accepts_tower_and_origin_metrics() {
    // Goal: `promtool check metrics` (lint included) is silent on both expositions;
    // skipped without promtool (CI installs it).
    let tower = busy_tower(Instant::now()).render();
    let origin = OriginMetrics::new().render();
    // The wrapper itself can fail: promtool lints a counter without `_total`.
    let bad = promtool("# HELP x_count c\n# TYPE x_count counter\nx_count 1\n");
    assert!(
        bad != Ok(true),
        "promtool accepted a counter without _total"
    );
    for (what, text) in [("tower", tower), ("origin", origin)] {
        match promtool(&text) {
            Ok(_) => {}
            Err(said) => panic!("promtool check metrics on the {what}: {said}"),
        }
    }
}

#[test]
fn every_tower_dashboard_metric_is_exported_by_a_tower() {
    // Goal: a real tower answers every query of grafana/tower-operations.json, except the
    // documented sim-only families.
    let wanted = dashboard_metric_names("tower-operations.json");
    assert!(wanted.len() >= 10, "found only {wanted:?}");
    let text = busy_tower(Instant::now()).render();
    let p = parse(&text).unwrap();
    let exported: BTreeSet<&str> = p.types.keys().map(String::as_str).collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exported.contains(n.as_str()) && !SIM_ONLY.contains(&n.as_str()))
        .collect();
    assert!(missing.is_empty(), "tower does not export {missing:?}");
    // Each has samples, not just a TYPE line.
    for n in wanted.iter().filter(|n| exported.contains(n.as_str())) {
        assert!(p.samples.iter().any(|s| &s.name == n), "{n} has no samples");
    }
}

#[test]
fn the_sim_only_list_names_nothing_a_tower_exports() {
    // Goal: the allow-list stays honest: nothing on it is something we do export.
    let p = parse(&busy_tower(Instant::now()).render()).unwrap();
    for n in SIM_ONLY {
        assert!(
            !p.types.contains_key(n),
            "{n} is exported; drop it from SIM_ONLY"
        );
    }
}

#[test]
fn events_move_the_counters_they_name() {
    // Goal: each event lands in its family with the right labels and amounts.
    let p = parse(&busy_tower(Instant::now()).render()).unwrap();
    let v = |n: &str, l: &[(&str, &str)]| p.value(n, l).unwrap_or(f64::NAN);
    assert_eq!(
        v("sovereign_sync_requested_bytes_total", &[("class", "P0")]),
        1000.0
    );
    assert_eq!(
        v("sovereign_sync_requested_bytes_total", &[("class", "P3")]),
        500.0
    );
    // What crossed the link (link_traffic), not the chunk bytes requested (1500).
    assert_eq!(
        v("sovereign_link_bytes_total", &[("link", "fibre")]),
        1700.0
    );
    assert_eq!(
        v("sovereign_link_bytes_total", &[("link", "satellite")]),
        0.0
    );
    assert_eq!(
        v("sovereign_chunks_verified_total", &[("class", "P0")]),
        1.0
    );
    assert_eq!(
        v("sovereign_chunks_verified_bytes_total", &[("class", "P0")]),
        1000.0
    );
    assert_eq!(v("sovereign_sync_servable_total", &[("class", "P0")]), 1.0);
    assert_eq!(v("sovereign_sync_servable_total", &[("class", "P2")]), 0.0);
    assert_eq!(
        v("sovereign_chunks_rejected_total", &[("link", "lte")]),
        1.0
    );
    assert_eq!(v("sovereign_chunks_quarantined_total", &[]), 1.0);
    assert_eq!(v("sovereign_ops_acked_total", &[]), 1.0);
    assert_eq!(
        v("sovereign_ops_confirmed_total", &[("outcome", "applied")]),
        1.0
    );
    assert_eq!(v("sovereign_failovers_total", &[]), 1.0);
    assert_eq!(v("sovereign_breaker_openings_total", &[]), 1.0);
    assert_eq!(v("sovereign_breaker_open", &[]), 1.0);
    assert_eq!(
        v("sovereign_task_restarts_total", &[("task", "fetch")]),
        1.0
    );
    assert_eq!(
        v("sovereign_task_restarts_total", &[("task", "catalog")]),
        0.0
    );
    assert_eq!(v("sovereign_priority_inversions_total", &[]), 1.0);
    assert_eq!(v("sovereign_reads_total", &[("outcome", "served")]), 1.0);
    assert_eq!(v("sovereign_reads_total", &[("outcome", "corrupt")]), 0.0);
    assert_eq!(v("sovereign_devices", &[]), 1.0);
    assert_eq!(
        v(
            "sovereign_http_requests_total",
            &[
                ("route", "/v1/chunks/{sha256}"),
                ("method", "GET"),
                ("code", "200")
            ]
        ),
        1.0
    );
}

#[test]
fn status_sets_gauges_and_power_mode_is_one_hot() {
    // Goal: set_status fills the gauges; exactly one power mode is 1.
    let m = TowerMetrics::new("t");
    m.set_status(&status());
    let p = parse(&m.render()).unwrap();
    let v = |n: &str, l: &[(&str, &str)]| p.value(n, l).unwrap_or(f64::NAN);
    assert_eq!(v("sovereign_outbox_operations", &[]), 6.0);
    assert_eq!(v("sovereign_sync_queued", &[("class", "P3")]), 5.0);
    assert_eq!(v("sovereign_sync_in_flight", &[]), 4.0);
    assert_eq!(v("sovereign_chunks_held", &[]), 40.0);
    assert_eq!(v("sovereign_items_servable", &[]), 3.0);
    assert_eq!(v("sovereign_link_healthy", &[("link", "lte")]), 1.0);
    assert_eq!(v("sovereign_link_active", &[("link", "fibre")]), 1.0);
    assert_eq!(v("sovereign_link_active", &[("link", "lte")]), 0.0);
    assert_eq!(v("sovereign_tower_up", &[]), 1.0);
    assert_eq!(v("sovereign_tower_steady", &[]), 1.0);
    let modes: Vec<&Sample> = p
        .samples
        .iter()
        .filter(|s| s.name == "sovereign_power_mode")
        .collect();
    assert_eq!(modes.len(), 6);
    assert_eq!(modes.iter().filter(|s| s.value == 1.0).count(), 1);
    assert_eq!(v("sovereign_power_mode", &[("mode", "normal")]), 1.0);

    // A power-mode event moves the one-hot without a status.
    m.on_event(&Event::PowerMode {
        from: PowerMode::Normal,
        to: PowerMode::Essential,
    });
    let p = parse(&m.render()).unwrap();
    assert_eq!(
        p.value("sovereign_power_mode", &[("mode", "normal")]),
        Some(0.0)
    );
    assert_eq!(
        p.value("sovereign_power_mode", &[("mode", "essential")]),
        Some(1.0)
    );
}

#[test]
fn steady_needs_normal_power_and_the_preferred_healthy_link() {
    // Goal: the steady definition in the module doc, case by case.
    let mut s = status();
    assert!(is_steady(&s));
    s.active_link = Some(LinkKind::Lte); // fibre is up but we are on LTE
    assert!(!is_steady(&s));
    s.links_up = vec![LinkKind::Lte, LinkKind::Satellite]; // fibre down: LTE is best
    assert!(is_steady(&s));
    s.power_mode = PowerMode::ShedP3;
    assert!(!is_steady(&s));
    let mut s = status();
    s.active_link = None;
    s.links_up.clear();
    assert!(!is_steady(&s));
    // Queued work does not matter.
    let mut s = status();
    s.queued = [9, 9, 9, 9];
    assert!(is_steady(&s));
}

#[test]
fn shutting_down_is_not_up() {
    // Goal: tower_up and tower_steady drop when the tower shuts down.
    let m = TowerMetrics::new("t");
    let mut s = status();
    s.power_mode = PowerMode::ShuttingDown;
    m.set_status(&s);
    let p = parse(&m.render()).unwrap();
    assert_eq!(p.value("sovereign_tower_up", &[]), Some(0.0));
    assert_eq!(p.value("sovereign_tower_steady", &[]), Some(0.0));
}

#[test]
fn energy_integrates_load_between_readings_with_a_gap_cap() {
    // Goal: 40 W for 10 s then 50 W for 20 s = 1400 J; an hour's silence counts 5 min.
    let m = TowerMetrics::new("t");
    let t0 = Instant::now();
    m.set_power_at(&reading(900, 0, 40), t0);
    m.set_power_at(&reading(900, 0, 50), t0 + Duration::from_secs(10));
    m.set_power_at(&reading(900, 0, 10), t0 + Duration::from_secs(30));
    let e = |m: &TowerMetrics| {
        parse(&m.render())
            .unwrap()
            .value("sovereign_energy_joules_total", &[])
            .unwrap()
    };
    assert!((e(&m) - 1400.0).abs() < 1e-6, "{}", e(&m));
    m.set_power_at(&reading(900, 0, 10), t0 + Duration::from_secs(30 + 3600));
    assert!((e(&m) - (1400.0 + 10.0 * 300.0)).abs() < 1e-6, "{}", e(&m));
    let p = parse(&m.render()).unwrap();
    assert_eq!(p.value("sovereign_battery_soc_ratio", &[]), Some(0.9));
    assert_eq!(p.value("sovereign_load_power_watts", &[]), Some(10.0));
}

#[test]
fn devices_count_distinct_devices_in_the_last_15_minutes() {
    // Goal: repeats count once; a device drops out 15 min after its last request.
    let m = TowerMetrics::new("t");
    let t0 = Instant::now();
    let devices = |m: &TowerMetrics, at: Instant| {
        parse(&m.render_at(at))
            .unwrap()
            .value("sovereign_devices", &[])
            .unwrap()
    };
    m.device_seen(DeviceId(1), t0);
    m.device_seen(DeviceId(2), t0);
    m.device_seen(DeviceId(1), t0 + Duration::from_secs(600));
    assert_eq!(devices(&m, t0 + Duration::from_secs(600)), 2.0);
    // Device 2 last seen at t0: gone after 15 min; device 1 stays until t0+25 min.
    assert_eq!(devices(&m, t0 + Duration::from_secs(901)), 1.0);
    assert_eq!(devices(&m, t0 + Duration::from_secs(1501)), 0.0);
}

#[test]
fn http_labels_stay_bounded() {
    // Goal: unknown methods, odd codes and too many routes collapse into fixed values.
    let m = TowerMetrics::new("t");
    for i in 0..(ROUTES_MAX + 10) {
        m.http_request(&format!("/r{i}"), "get", 200, 0.001);
    }
    m.http_request("/r0", "BREW", 999, f64::NAN);
    let p = parse(&m.render()).unwrap();
    let routes: BTreeSet<&str> = p
        .samples
        .iter()
        .filter(|s| s.name == "sovereign_http_requests_total")
        .map(|s| s.labels["route"].as_str())
        .collect();
    assert_eq!(routes.len(), ROUTES_MAX + 1);
    assert!(routes.contains("other"));
    assert_eq!(
        p.value(
            "sovereign_http_requests_total",
            &[("route", "other"), ("method", "GET")]
        ),
        Some(10.0)
    );
    assert_eq!(
        p.value(
            "sovereign_http_requests_total",
            &[("route", "/r0"), ("method", "OTHER"), ("code", "invalid")]
        ),
        Some(1.0)
    );
}

#[test]
fn read_outcomes_outside_the_list_count_as_other() {
    // Goal: a typo in the caller cannot create a new label value.
    let m = TowerMetrics::new("t");
    m.device_read("servd");
    let p = parse(&m.render()).unwrap();
    assert_eq!(
        p.value("sovereign_reads_total", &[("outcome", "other")]),
        Some(1.0)
    );
}

#[test]
fn origin_counts_publishes_ops_and_ledger_deltas() {
    // Goal: origin feeds land in their families; ledger counters move by deltas only.
    let m = OriginMetrics::new();
    m.published(Priority::P0, 100);
    m.catalog_request();
    m.catalog_sent(2, 1);
    m.chunk_served(64);
    m.chunk_missing();
    m.forward_batch(3);
    m.set_catalog(5);
    m.on_event(&Event::OpApplied {
        key: IdemKey("1:1".into()),
        outcome: OpOutcome::Conflict,
    });
    let mut ledger = Ledger::new(sovereign_logic::ledger::Rounding::Floor);
    ledger.contribute("village", "nation", 700).unwrap();
    m.set_ledger(&ledger);
    m.set_ledger(&ledger); // same totals: no double count
    ledger.contribute("village", "nation", 300).unwrap();
    m.set_ledger(&ledger);
    let p = parse(&m.render()).unwrap();
    let v = |n: &str, l: &[(&str, &str)]| p.value(n, l).unwrap_or(f64::NAN);
    assert_eq!(v("sovereign_publishes_total", &[("class", "P0")]), 1.0);
    assert_eq!(v("sovereign_catalog_requests_total", &[]), 1.0);
    let sent = |form| v("sovereign_catalog_entries_sent_total", &[("form", form)]);
    assert_eq!((sent("whole"), sent("changes")), (2.0, 1.0));
    assert_eq!(
        v("sovereign_chunk_requests_total", &[("outcome", "served")]),
        1.0
    );
    assert_eq!(
        v("sovereign_chunk_requests_total", &[("outcome", "missing")]),
        1.0
    );
    assert_eq!(v("sovereign_chunk_served_bytes_total", &[]), 64.0);
    assert_eq!(v("sovereign_forward_batches_total", &[]), 1.0);
    assert_eq!(v("sovereign_forward_operations_total", &[]), 3.0);
    assert_eq!(v("sovereign_catalog_entries", &[]), 5.0);
    assert_eq!(
        v("sovereign_ops_applied_total", &[("outcome", "conflict")]),
        1.0
    );
    assert_eq!(
        v("sovereign_ops_applied_total", &[("outcome", "applied")]),
        0.0
    );
    assert_eq!(v("sovereign_ledger_contributed_minor_total", &[]), 1000.0);
    assert_eq!(v("sovereign_ledger_held_minor", &[]), 1000.0);
    assert_eq!(v("sovereign_ledger_conserved", &[]), 1.0);
}
