//! Metric names in a PromQL expression — enough of PromQL's lexer to check that every
//! metric a dashboard queries is one the system exports.
//!
//! Map: [`metric_names`].
//!
//! Not covered: evaluating or fully validating PromQL; metric names given only as a
//! `__name__` matcher; Grafana macros other than `$var`/`$__interval` style (skipped).

use std::collections::BTreeSet;

/// Most characters of one expression (a bound on the scan).
pub const EXPR_LEN_MAX: usize = 10_000;

/// PromQL functions are recognised by a following `(`; these words are keywords,
/// modifiers or aggregation operators (which may be followed by `by (…)` before their
/// `(`) and never metric names.
const KEYWORDS: [&str; 28] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "start",
    "end",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Words after which a parenthesised list holds label names, not expressions.
const LABEL_LIST: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression selects, or why it could not be read.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    if expr.len() > EXPR_LEN_MAX {
        return Err(format!("expression longer than {EXPR_LEN_MAX} characters"));
    }
    let b: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let mut prev_word = String::new();
    let mut depth_paren = 0i32;
    while i < b.len() {
        let c = b[i];
        match c {
            '"' | '\'' | '`' => {
                let q = c;
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
            }
            '{' | '[' => {
                // Label matchers or a range/subquery: skip to the match, strings aware.
                let close = if c == '{' { '}' } else { ']' };
                i += 1;
                while i < b.len() && b[i] != close {
                    if b[i] == '"' || b[i] == '\'' {
                        let q = b[i];
                        i += 1;
                        while i < b.len() && b[i] != q {
                            if b[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err(format!("unclosed {c}"));
                }
                i += 1;
                prev_word.clear();
            }
            '$' => {
                // A Grafana variable: skip it.
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
            '(' => {
                if LABEL_LIST.contains(&prev_word.as_str()) {
                    while i < b.len() && b[i] != ')' {
                        i += 1;
                    }
                    if i >= b.len() {
                        return Err("unclosed (".into());
                    }
                } else {
                    depth_paren += 1;
                }
                i += 1;
                prev_word.clear();
            }
            ')' => {
                depth_paren -= 1;
                if depth_paren < 0 {
                    return Err("unbalanced )".into());
                }
                i += 1;
                prev_word.clear();
            }
            c if c.is_ascii_digit()
                || (c == '.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                // A number (and a duration suffix, a 1e3 exponent).
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                    i += 1;
                }
                prev_word.clear();
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == ':') {
                    i += 1;
                }
                let word: String = b[start..i].iter().collect();
                let mut j = i;
                while j < b.len() && b[j].is_whitespace() {
                    j += 1;
                }
                let is_call = b.get(j) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if !is_call && !KEYWORDS.contains(&lower.as_str()) {
                    out.insert(word.clone());
                }
                prev_word = lower;
            }
            _ => {
                i += 1;
                if !c.is_whitespace() {
                    prev_word.clear();
                }
            }
        }
    }
    if depth_paren != 0 {
        return Err("unbalanced (".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(e: &str) -> Vec<String> {
        metric_names(e)
            .unwrap_or_else(|m| panic!("{m}: {e}"))
            .into_iter()
            .collect()
    }

    #[test]
    fn finds_metrics_and_skips_functions_labels_and_variables() {
        // Goal: only metric names come out of typical dashboard queries.
        assert_eq!(
            names(
                r#"sum by (tower) (rate(sovereign_link_bytes_total{tower=~"$tower", link!="x"}[$__rate_interval]))"#
            ),
            vec!["sovereign_link_bytes_total"]
        );
        assert_eq!(
            names(
                "sum(rate(a_total[5m])) / ignoring(outcome) group_left sum(rate(b_total[5m])) > bool 0.5"
            ),
            vec!["a_total", "b_total"]
        );
        assert_eq!(
            names("histogram_quantile(0.99, x_bucket) * 1e3 + max_over_time(y[1h:5m]) offset 1d"),
            vec!["x_bucket", "y"]
        );
        assert_eq!(
            names(r#"sovereign_freshness_seconds{quantile="0.99"}"#),
            vec!["sovereign_freshness_seconds"]
        );
    }

    #[test]
    fn rejects_unbalanced_expressions() {
        // Goal: a broken query is an error, not a silent empty set.
        for e in ["sum(a", "a{b=\"c\"", "rate(a[5m]))", "\"open"] {
            assert!(metric_names(e).is_err(), "{e}");
        }
    }
}
