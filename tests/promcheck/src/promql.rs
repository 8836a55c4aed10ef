//! The metric names a PromQL expression selects, read by a full PromQL parser
//! (`promql-parser`, GreptimeDB's port of Prometheus' grammar): a dashboard query that
//! Prometheus would refuse is an error here too, not a silent guess.
//!
//! Map: [`metric_names`]; [`GRAFANA_INTERVALS`] (the Grafana macros stood in for before
//! parsing).
//!
//! Not covered: evaluating PromQL; Grafana macros other than the interval ones and `$var`
//! inside label-matcher strings (a `$var` anywhere else fails to parse, as it would
//! without Grafana); the functions' argument types beyond what the parser checks.

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};
use std::collections::BTreeSet;

/// Most characters of one expression (a bound on the input).
pub const EXPR_LEN_MAX: usize = 10_000;

/// Grafana's interval macros and the dashboards' interval variable (`$window`), and a
/// duration standing in for each (Grafana substitutes them before Prometheus sees the
/// query; any valid duration parses the same).
pub const GRAFANA_INTERVALS: [(&str, &str); 4] = [
    ("$window", "1m"),
    ("$__rate_interval", "1m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
];

/// One vector selector of an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// Its metric name (by name, or by a `__name__="…"` matcher).
    pub name: Option<String>,
    /// Its label matchers other than the name, as written: `run=~"$run"`.
    pub matchers: Vec<String>,
}

/// Every vector selector of an expression (those inside range vectors and subqueries
/// too), in the order written, or why it does not parse.
pub fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    if expr.len() > EXPR_LEN_MAX {
        return Err(format!("expression longer than {EXPR_LEN_MAX} characters"));
    }
    let mut text = expr.to_string();
    for (macro_name, stand_in) in GRAFANA_INTERVALS {
        text = text.replace(macro_name, stand_in);
    }
    let ast = parser::parse(&text)?;
    let mut out = Vec::new();
    collect(&ast, &mut out);
    Ok(out)
}

/// The metric names an expression selects (by name, or by a `__name__="…"` matcher), or
/// why it does not parse.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    Ok(selectors(expr)?
        .into_iter()
        .filter_map(|s| s.name)
        .collect())
}

/// Every selector under `e`.
fn collect(e: &Expr, out: &mut Vec<Selector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(selector(vs)),
        Expr::MatrixSelector(ms) => out.push(selector(&ms.vs)),
        Expr::Aggregate(a) => {
            collect(&a.expr, out);
            if let Some(p) = &a.param {
                collect(p, out);
            }
        }
        Expr::Unary(u) => collect(&u.expr, out),
        Expr::Binary(b) => {
            collect(&b.lhs, out);
            collect(&b.rhs, out);
        }
        Expr::Paren(p) => collect(&p.expr, out),
        Expr::Subquery(s) => collect(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selector(vs: &parser::VectorSelector) -> Selector {
    let mut name = vs.name.clone();
    let mut matchers = Vec::new();
    let or_matchers = vs.matchers.or_matchers.iter().flatten();
    for m in vs.matchers.matchers.iter().chain(or_matchers) {
        if m.name == "__name__" {
            if matches!(m.op, MatchOp::Equal) {
                name.get_or_insert_with(|| m.value.clone());
            }
            continue;
        }
        matchers.push(format!("{}{}\"{}\"", m.name, m.op, m.value));
    }
    Selector { name, matchers }
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
            names("histogram_quantile(0.99, x_bucket) * 1e3 + max_over_time(y[1h:5m] offset 1d)"),
            vec!["x_bucket", "y"]
        );
        assert_eq!(
            names(r#"sovereign_freshness_seconds{quantile="0.99"}"#),
            vec!["sovereign_freshness_seconds"]
        );
        assert_eq!(
            names(r#"quantile(scalar(q), {__name__="by_matcher"}) or -sum_over_time(c[$__range])"#),
            vec!["by_matcher", "c", "q"]
        );
    }

    #[test]
    fn selectors_keep_their_label_matchers() {
        // Goal: a dashboard test can see which label matchers each selector has.
        let s = selectors(r#"sum(rate(a_total{run=~"$run",x="y"}[$window])) / b{z!="1"}"#)
            .expect("parses");
        assert_eq!(
            s,
            vec![
                Selector {
                    name: Some("a_total".into()),
                    matchers: vec![r#"run=~"$run""#.into(), r#"x="y""#.into()],
                },
                Selector {
                    name: Some("b".into()),
                    matchers: vec![r#"z!="1""#.into()],
                },
            ]
        );
    }

    #[test]
    fn rejects_unbalanced_and_invalid_expressions() {
        // Goal: a broken query is an error, not a silent empty set.
        for e in [
            "sum(a",
            "a{b=\"c\"",
            "rate(a[5m]))",
            "\"open",
            "rate(a)",
            "sum by (x) rate(a[5m])",
            "a[$tower]",
            "no_such_function(a)",
        ] {
            assert!(metric_names(e).is_err(), "{e}");
        }
    }
}
