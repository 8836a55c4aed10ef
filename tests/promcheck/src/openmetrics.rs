//! A strict checker of OpenMetrics text, as strict as `promtool tsdb create-blocks-from
//! openmetrics` needs and a little more: it runs where promtool is not installed, and it
//! reports what it saw (families, sample names, series) for tests that compare exports
//! with dashboards.
//!
//! Map: [`check`] (the rules are on it), [`OmStats`].
//!
//! Not covered: exemplars, `_created` samples, UNIT lines, histograms, info and stateset
//! families (the exports use none); label values are read, not validated as UTF-8 beyond
//! what Rust's `&str` already is.

use std::collections::{BTreeMap, BTreeSet};

/// A family's type, from its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Counter, Kind::Gauge, Kind::Summary];

    /// The word in `# TYPE` lines.
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }

    fn from_word(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.word() == s)
    }

    /// Sample-name suffixes allowed in a family of this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total"],
            Kind::Gauge => &[""],
            Kind::Summary => &["", "_sum", "_count"],
        }
    }
}

/// Parsed labels and the rest of the line.
type Labels<'a> = (Vec<(String, String)>, &'a str);

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// What [`check`] saw in a well-formed text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OmStats {
    /// Family names.
    pub families: BTreeSet<String>,
    /// Sample names (with suffixes), e.g. `sovereign_link_bytes_total`.
    pub sample_names: BTreeSet<String>,
    /// Samples.
    pub samples: u64,
    /// Distinct series (name + labels).
    pub series: u64,
}

/// Parse `{k="v",…}`; returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<Labels<'_>, String> {
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((Vec::new(), s));
    };
    let mut out = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {name}: value not quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 1 + i + 1);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or_else(|| format!("label {name}: unterminated value"))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        out.push((name.to_string(), value));
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Check OpenMetrics text strictly enough for `promtool tsdb create-blocks-from
/// openmetrics`: every family has HELP and TYPE before its samples and appears once
/// (no interleaving); names and label names are valid; counter families are named
/// without `_total` and their samples with it, never decreasing; every sample has a
/// timestamp, non-decreasing per series; the text ends with `# EOF`. Returns every
/// problem found (line-numbered).
pub fn check(text: &str) -> Result<OmStats, Vec<String>> {
    let mut errs = Vec::new();
    let mut stats = OmStats::default();
    let mut current: Option<(String, Kind, bool)> = None; // name, type, has HELP
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut last: BTreeMap<String, (f64, f64)> = BTreeMap::new(); // series → (ts, value)
    let mut eof = false;
    let lines: Vec<&str> = text.split('\n').collect();
    let n = if text.ends_with('\n') {
        lines.len() - 1
    } else {
        lines.len()
    };
    for (i, line) in lines[..n].iter().enumerate() {
        let ln = i + 1;
        let mut err = |m: String| {
            if errs.len() < 100 {
                errs.push(format!("line {ln}: {m}"));
            }
        };
        if eof {
            err("content after # EOF".into());
            break;
        }
        if *line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (parts.next(), parts.next(), parts.next());
            let (Some(kw), Some(name)) = (kw, name) else {
                err(format!("bad comment line {line:?}"));
                continue;
            };
            if !valid_name(name) {
                err(format!("bad family name {name:?}"));
                continue;
            }
            let same = current.as_ref().is_some_and(|c| c.0 == name);
            match kw {
                "HELP" => {
                    if same || closed.contains(name) || stats.families.contains(name) {
                        err(format!("HELP for {name} again"));
                    }
                    if let Some(c) = current.take() {
                        closed.insert(c.0);
                    }
                    current = Some((name.to_string(), Kind::Gauge, true));
                    stats.families.insert(name.to_string());
                }
                "TYPE" => {
                    let Some(kind) = arg.and_then(Kind::from_word) else {
                        err(format!("TYPE {name}: unknown type {arg:?}"));
                        continue;
                    };
                    if kind == Kind::Counter && name.ends_with("_total") {
                        err(format!("counter family {name} must not end in _total"));
                    }
                    if !same {
                        err(format!("TYPE {name} without its HELP just before"));
                        continue;
                    }
                    if let Some(c) = current.as_mut() {
                        c.1 = kind;
                        c.2 = false; // now typed
                    }
                }
                _ => err(format!("unknown comment {kw}")),
            }
            continue;
        }
        // A sample.
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let Some((family, kind, untyped)) = current.clone() else {
            err(format!("sample {name} before any HELP/TYPE"));
            continue;
        };
        if untyped {
            err(format!("sample {name}: family {family} has no TYPE"));
        }
        let suffix = name.strip_prefix(family.as_str());
        if !suffix.is_some_and(|s| kind.suffixes().contains(&s)) {
            err(format!(
                "sample {name} does not belong to {} family {family}",
                kind.word()
            ));
            continue;
        }
        let (labels, rest) = match parse_labels(&line[name_end..]) {
            Ok(x) => x,
            Err(m) => {
                err(format!("{name}: {m}"));
                continue;
            }
        };
        let quantile = labels.iter().any(|(k, _)| k == "quantile");
        if kind == Kind::Summary && suffix == Some("") && !quantile {
            err(format!(
                "{name}: summary quantile sample without quantile label"
            ));
        }
        let fields: Vec<&str> = rest.split(' ').filter(|f| !f.is_empty()).collect();
        let (value, ts) = match fields.as_slice() {
            [v, t] => (parse_value(v), t.parse::<f64>().ok()),
            [_] => {
                err(format!("{name}: no timestamp"));
                continue;
            }
            _ => {
                err(format!(
                    "{name}: expected `value timestamp`, found {rest:?}"
                ));
                continue;
            }
        };
        let (Some(value), Some(ts)) = (value, ts) else {
            err(format!("{name}: unreadable value or timestamp in {rest:?}"));
            continue;
        };
        let mut key_labels = labels.clone();
        key_labels.sort();
        let key = format!("{name}{key_labels:?}");
        if kind == Kind::Counter && value < 0.0 {
            err(format!("{name}: negative counter"));
        }
        if let Some((pts, pv)) = last.get(&key) {
            if ts < *pts {
                err(format!("{key}: timestamp {ts} before {pts}"));
            }
            if kind == Kind::Counter && value < *pv {
                err(format!("{key}: counter went down from {pv} to {value}"));
            }
        } else {
            stats.series += 1;
        }
        last.insert(key, (ts, value));
        stats.samples += 1;
        stats.sample_names.insert(name.to_string());
    }
    if !eof {
        errs.push("no # EOF at the end".into());
    }
    if errs.is_empty() {
        Ok(stats)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_accepts_a_minimal_exposition() {
        // Goal: a well-formed text passes, with its families, names and series counted;
        // escaped quotes and newlines in label values are read as values.
        let text = concat!(
            "# HELP a_bytes help\n# TYPE a_bytes counter\n",
            "a_bytes_total{x=\"q\\\"uote\\n\"} 1 10\n",
            "a_bytes_total{x=\"q\\\"uote\\n\"} 2 20\n",
            "# HELP b_seconds help\n# TYPE b_seconds summary\n",
            "b_seconds{quantile=\"0.5\"} 1 10\nb_seconds_sum 1 10\nb_seconds_count 1 10\n",
            "# EOF\n"
        );
        let s = check(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(s.samples, 5);
        assert_eq!(s.series, 4);
        assert!(s.sample_names.contains("a_bytes_total"));
        assert_eq!(s.families.len(), 2);
    }

    #[test]
    fn checker_rejects_each_broken_rule() {
        // Goal: each rule of the checker can fail.
        let ok = "# HELP a_bytes h\n# TYPE a_bytes counter\na_bytes_total 1 10\n";
        assert!(check(&format!("{ok}# EOF\n")).is_ok());
        let cases = [
            (ok.to_string(), "EOF"),
            (format!("{ok}a_bytes_total 0 20\n# EOF\n"), "went down"),
            (format!("{ok}a_bytes_total 2 5\n# EOF\n"), "before"),
            ("# HELP a_total h\n# TYPE a_total counter\na_total_total 1 1\n# EOF\n".into(), "_total"),
            ("# HELP a h\n# TYPE a counter\na 1 1\n# EOF\n".into(), "does not belong"),
            ("# HELP a h\n# TYPE a gauge\na 1\n# EOF\n".into(), "no timestamp"),
            ("a 1 1\n# EOF\n".into(), "before any"),
            ("# HELP a h\n# TYPE a gauge\na{1x=\"v\"} 1 1\n# EOF\n".into(), "label name"),
            (
                "# HELP a h\n# TYPE a gauge\na 1 1\n# HELP b h\n# TYPE b gauge\nb 1 1\n# HELP a h\n# TYPE a gauge\n# EOF\n".into(),
                "again",
            ),
            (format!("{ok}# EOF\nx 1 1\n"), "after # EOF"),
        ];
        for (text, want) in cases {
            let e = check(&text).expect_err(&text);
            assert!(e.iter().any(|m| m.contains(want)), "{want} not in {e:?}");
        }
    }
}
