//! JUnit XML for CI: one `<testsuite>` per scenario, one `<testcase>` per scenario×seed,
//! a `<failure>` for each failed run with the violation and the exact replay command.
//!
//! Map: [`TestCase`] / [`CaseFailure`] (the input), [`TestCase::from_report`],
//! [`junit_xml`] (the writer), [`escape`] (XML text and attribute escaping).
//!
//! Times are the wall time each run took on the machine that ran it (the driver measures
//! them; CI dashboards sort and trend cases by them), never virtual time.
//!
//! Not covered: reading JUnit back.

use sovereign_sim::report::RunReport;
use std::fmt::Write as _;
use std::time::Duration;

/// One test case: a scenario run with one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    /// The suite it belongs to (the scenario's name).
    pub suite: String,
    /// The case's name, e.g. `seed 42`.
    pub name: String,
    /// Why it failed, if it did.
    pub failure: Option<CaseFailure>,
    /// The wall time the run took, when the driver measured it (a panicked run has none).
    pub time: Option<Duration>,
}

/// A failed case.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFailure {
    /// One line: `integrity at 00:00:12.000: …`.
    pub message: String,
    /// `oracle` for an invariant violation (safety or liveness), `slo` for missed SLOs.
    pub kind: String,
    /// The body: the detail and the replay command.
    pub body: String,
}

impl TestCase {
    /// The case for one run; `replay` is the command that replays it (when a failure file
    /// was written).
    pub fn from_report(report: &RunReport, replay: Option<&str>) -> TestCase {
        let failure = (report.exit_code() != 0).then(|| {
            let (message, kind, mut body) = match report.first_violation() {
                Some(v) => (
                    format!("{} at {}: {}", v.oracle, v.at, v.detail),
                    "oracle",
                    v.detail.clone(),
                ),
                None => {
                    let missed: Vec<String> = report
                        .slo
                        .iter()
                        .filter(|c| !c.pass)
                        .map(|c| format!("{} (measured {})", c.name, c.measured))
                        .collect();
                    (
                        format!("SLO missed: {}", missed.join("; ")),
                        "slo",
                        missed.join("\n"),
                    )
                }
            };
            if let Some(cmd) = replay {
                body.push_str(&format!("\nreplay: {cmd}"));
            }
            body.push_str(&format!("\ntrace-hash: {}", report.trace_hash));
            CaseFailure {
                message,
                kind: kind.to_string(),
                body,
            }
        });
        TestCase {
            suite: report.scenario.clone(),
            name: format!("seed {}", report.seed),
            failure,
            time: None,
        }
    }
}

/// The JUnit XML document: suites in order of first appearance, cases in the given order.
pub fn junit_xml(cases: &[TestCase]) -> String {
    let mut suites: Vec<(&str, Vec<&TestCase>)> = Vec::new();
    for c in cases {
        match suites.iter_mut().find(|(name, _)| *name == c.suite) {
            Some((_, v)) => v.push(c),
            None => suites.push((&c.suite, vec![c])),
        }
    }
    let failures = |cs: &[&TestCase]| cs.iter().filter(|c| c.failure.is_some()).count();
    // ` time="s"`: a case's own, a suite's the sum of its cases' (when any was measured).
    let time = |cs: &[&TestCase]| {
        let known: Vec<Duration> = cs.iter().filter_map(|c| c.time).collect();
        if known.is_empty() {
            String::new()
        } else {
            format!(
                " time=\"{:.3}\"",
                known.iter().sum::<Duration>().as_secs_f64()
            )
        }
    };
    let all: Vec<&TestCase> = cases.iter().collect();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"sovereign sim\" tests=\"{}\" failures=\"{}\" errors=\"0\"{}>",
        cases.len(),
        failures(&all),
        time(&all)
    );
    for (name, cs) in &suites {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\"{}>",
            escape(name),
            cs.len(),
            failures(cs),
            time(cs)
        );
        for c in cs {
            let head = format!(
                "    <testcase name=\"{}\" classname=\"sim.{}\"{}",
                escape(&c.name),
                escape(&c.suite),
                time(&[c])
            );
            match &c.failure {
                None => {
                    let _ = writeln!(out, "{head}/>");
                }
                Some(f) => {
                    let _ = writeln!(out, "{head}>");
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(&f.message),
                        escape(&f.kind),
                        escape(&f.body)
                    );
                    out.push_str("    </testcase>\n");
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escape text for XML content and (double-quoted) attributes. Newlines, carriage returns
/// and tabs become character references (so attributes keep them); other characters XML
/// 1.0 forbids (control characters, U+FFFE/U+FFFF) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::Time;
    use sovereign_sim::kpi::SloCheck;
    use sovereign_sim::report::Violation;
    use sovereign_sim::scenario::Oracle;

    /// A finished run of `scenario` with `seed` and these violations; nothing else of it
    /// shows in JUnit but its trace hash.
    fn report(scenario: &str, seed: u64, violations: Vec<Violation>) -> RunReport {
        RunReport {
            scenario: scenario.into(),
            seed,
            plant: None,
            trace_hash: "ab12".repeat(16),
            events: 10,
            end: Time::from_secs(4200),
            violations,
            kpis: Default::default(),
            slo: Vec::new(),
            schedule: Vec::new(),
            branches: Vec::new(),
            sometimes: Vec::new(),
            trace: Vec::new(),
        }
    }

    #[test]
    fn escape_covers_markup_quotes_and_controls() {
        // Goal: every XML-significant or forbidden character is neutralised.
        assert_eq!(
            escape("a<b>&\"c\"'d'\n\t\u{1}\u{FFFF}é"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;&#10;&#9;\u{FFFD}\u{FFFD}é"
        );
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn structure_groups_cases_per_scenario_with_counts() {
        // Goal: testsuites > testsuite per scenario > testcase per seed; failure elements
        // carry the oracle message, the type and the replay command.
        let bad = report(
            "a&b",
            7,
            vec![Violation {
                oracle: Oracle::Integrity,
                at: Time::from_secs(3),
                detail: "served <bad> & \"wrong\" bytes".into(),
                liveness: false,
            }],
        );
        let good = report("a&b", 8, Vec::new());
        let mut slo = report("other", 9, Vec::new());
        slo.slo.push(SloCheck {
            name: "availability >= 0.99".into(),
            pass: false,
            measured: "0.5".into(),
        });
        let mut cases = vec![
            TestCase::from_report(&bad, Some("sovereign sim replay f.toml")),
            TestCase::from_report(&good, None),
            TestCase::from_report(&slo, None),
        ];
        cases[0].time = Some(Duration::from_millis(1500));
        cases[1].time = Some(Duration::from_millis(250));
        let xml = junit_xml(&cases);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sovereign sim\" tests=\"3\" failures=\"2\" errors=\"0\" time=\"1.750\">"));
        assert!(xml.contains("<testsuite name=\"a&amp;b\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"1.750\">"));
        // A suite with no measured case has no time (not a made-up zero).
        assert!(xml.contains(
            "<testsuite name=\"other\" tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\">"
        ));
        assert!(
            xml.contains("<testcase name=\"seed 7\" classname=\"sim.a&amp;b\" time=\"1.500\">")
        );
        assert!(
            xml.contains("<testcase name=\"seed 8\" classname=\"sim.a&amp;b\" time=\"0.250\"/>")
        );
        assert!(xml.contains("<testcase name=\"seed 9\" classname=\"sim.other\">"));
        assert!(xml.contains(
            "<failure message=\"integrity at 00:00:03.000: served &lt;bad&gt; &amp; &quot;wrong&quot; bytes\" type=\"oracle\">"
        ));
        assert!(xml.contains("&#10;replay: sovereign sim replay f.toml"));
        assert!(xml.contains("type=\"slo\""));
        // Balanced elements, and no raw markup from the inputs survived.
        for tag in ["testsuites", "testsuite", "failure"] {
            assert_eq!(
                xml.matches(&format!("<{tag} ")).count(),
                xml.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(!xml.contains("<bad>"));
        assert!(xml.ends_with("</testsuites>\n"));
    }
}
