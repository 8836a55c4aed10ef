//! Reading TOML by hand on toml's span-preserving document ([`DeTable`]), with errors
//! that name the file, the 1-based line, the field path and what was expected.
//!
//! Shared by the scenario parser ([`crate::parse`]) and the console's game-day
//! plan parser, so both files report problems the same way. Each table first declares the
//! keys it accepts ([`Tbl::keys`]); each value is then converted and range-checked with
//! its span at hand ([`Val`]'s typed accessors), so type, unknown-key and semantic errors
//! all carry a line.
//!
//! Map:
//! - [`SpanError`]: the error value (`file:line: field: message`), [`located`] (its
//!   format), made from an input file's read error too.
//! - [`Ctx`]: the file being read; spans to lines, error building, syntax errors.
//! - [`Tbl`]: a table with its field path: `keys`, `get`, `req`, `err_at_key`.
//! - [`Val`]: one value with its field path: strings, booleans, integers, numbers,
//!   durations, tables and arrays, each with its range check.
//!
//! Not covered: any file's grammar (sections, domain values such as sizes, priorities
//! or fault kinds stay with their parser); serde-style deserialisation.

use crate::format_duration;
use crate::parse::parse_duration;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A problem at a place in a TOML file: `file:line: field: message`; the line and the
/// field are left out when unknown (`file: message` for a file that could not be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", located(file, *line, field, message))]
pub struct SpanError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// The field path, e.g. `fault[2].target`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// `file:line: field: message`, leaving out a line of 0 and an empty field.
pub fn located(file: &str, line: usize, field: &str, message: &str) -> String {
    let mut out = file.to_string();
    if line > 0 {
        out.push_str(&format!(":{line}"));
    }
    if !field.is_empty() {
        out.push_str(&format!(": {field}"));
    }
    out.push_str(&format!(": {message}"));
    out
}

impl From<sovereign_wire::input::InputError> for SpanError {
    fn from(e: sovereign_wire::input::InputError) -> Self {
        SpanError {
            file: e.file().to_string(),
            line: e.line().unwrap_or(0),
            field: String::new(),
            message: e.detail(),
        }
    }
}

/// Result of reading a spanned value.
pub type Res<T> = Result<T, SpanError>;

/// The file being read: turns spans into lines and builds errors.
pub struct Ctx<'a> {
    /// Names the file in errors.
    pub file: &'a str,
    /// The whole text (spans index into it).
    pub text: &'a str,
}

impl Ctx<'_> {
    /// 1-based line of a byte offset (clamped to the text).
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// An error at the start of `span`.
    pub fn err(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> SpanError {
        SpanError {
            file: self.file.to_string(),
            line: self.line(span.start),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A TOML syntax error; the field is the key (or table header) on the offending line
    /// when there is one, cut to `field_len_max` characters.
    pub fn syntax(&self, e: &toml::de::Error, field_len_max: usize) -> SpanError {
        let start = e.span().map_or(0, |s| s.start);
        let line = self.line(start);
        let text = self.text.split('\n').nth(line - 1).unwrap_or("").trim();
        let field = match text.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => key.trim(),
            _ if text.starts_with('[') => text.trim_matches(|c| c == '[' || c == ']').trim(),
            _ => "(syntax)",
        };
        let field: String = field.chars().take(field_len_max).collect();
        SpanError {
            file: self.file.to_string(),
            line,
            field,
            message: format!("TOML syntax error: {}", e.message()),
        }
    }
}

/// A table being read, with its path and span.
pub struct Tbl<'a> {
    /// The file.
    pub ctx: &'a Ctx<'a>,
    /// Field path of the table (empty at the root); keys are reported under it.
    pub path: String,
    /// The table's span: missing keys are reported at its start.
    pub span: Range<usize>,
    /// Its entries.
    pub map: &'a DeTable<'a>,
}

impl<'a> Tbl<'a> {
    /// The root table of a parsed document.
    pub fn root(ctx: &'a Ctx<'a>, doc: &'a Spanned<DeTable<'a>>) -> Self {
        Tbl {
            ctx,
            path: String::new(),
            span: doc.span(),
            map: doc.get_ref(),
        }
    }

    /// The field path of `key` in this table.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reject the first (in file order) key not in `allowed`.
    pub fn keys(&self, allowed: &[&str]) -> Res<()> {
        let unknown = self
            .map
            .keys()
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        match unknown {
            None => Ok(()),
            Some(k) => Err(self.ctx.err(
                &k.span(),
                &self.field(k.get_ref()),
                format!(
                    "unknown key `{}`; expected one of: {}",
                    k.get_ref(),
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// An optional key.
    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        self.map.get(key).map(|v| Val {
            ctx: self.ctx,
            field: self.field(key),
            v,
        })
    }

    /// A required key; `what` says what it should hold.
    pub fn req(&self, key: &str, what: &str) -> Res<Val<'a>> {
        self.get(key).ok_or_else(|| {
            self.ctx.err(
                &self.span,
                &self.field(key),
                format!("missing; expected {what}"),
            )
        })
    }

    /// An error at `key` (at the table itself when the key is absent).
    pub fn err_at_key(&self, key: &str, message: impl Into<String>) -> SpanError {
        let span = self
            .map
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span());
        self.ctx.err(&span, &self.field(key), message)
    }
}

/// One value being read, with its field path and span.
pub struct Val<'a> {
    /// The file.
    pub ctx: &'a Ctx<'a>,
    /// Field path of the value, e.g. `tower[1].power.soc_initial`.
    pub field: String,
    /// The value and its span.
    pub v: &'a Spanned<DeValue<'a>>,
}

/// What a duration accessor says it expected when the value is not a string.
const DURATION_EXPECTED: &str = "a duration string such as \"30s\"";

impl<'a> Val<'a> {
    /// An error at this value.
    pub fn err(&self, message: impl Into<String>) -> SpanError {
        self.ctx.err(&self.v.span(), &self.field, message)
    }

    /// 1-based line of this value.
    pub fn line(&self) -> usize {
        self.ctx.line(self.v.span().start)
    }

    /// An error "expected `expected`, found" the value's type.
    pub fn wrong_type(&self, expected: &str) -> SpanError {
        self.err(format!(
            "expected {expected}, found {}",
            self.v.get_ref().type_str()
        ))
    }

    /// A string.
    pub fn str(&self) -> Res<&'a str> {
        match self.v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    /// A boolean.
    pub fn bool(&self) -> Res<bool> {
        match self.v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("true or false")),
        }
    }

    /// An integer; `expected` describes it in errors.
    pub fn i64(&self, expected: &str) -> Res<i64> {
        match self.v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.err(format!("integer out of range; expected {expected}"))),
            _ => Err(self.wrong_type(expected)),
        }
    }

    /// An integer in `lo..=hi`.
    pub fn int_in(&self, lo: i64, hi: i64) -> Res<i64> {
        let expected = format!("an integer in {lo}..={hi}");
        let n = self.i64(&expected)?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(self.err(format!("{n} is out of range; expected {expected}")))
        }
    }

    /// An integer in `lo..=hi`.
    pub fn u32_in(&self, lo: u32, hi: u32) -> Res<u32> {
        let n = self.int_in(i64::from(lo), i64::from(hi))?;
        u32::try_from(n).map_err(|_| self.err("integer out of range"))
    }

    /// An integer in `lo..=hi` (bounds above `i64::MAX` act as `i64::MAX`).
    pub fn u64_in(&self, lo: u64, hi: u64) -> Res<u64> {
        let n = self.int_in(
            i64::try_from(lo).unwrap_or(i64::MAX),
            i64::try_from(hi).unwrap_or(i64::MAX),
        )?;
        u64::try_from(n).map_err(|_| self.err("integer out of range"))
    }

    /// A float or integer as written: `None` when it does not parse or does not fit;
    /// any other type is an error saying `expected`.
    pub fn number(&self, expected: &str) -> Res<Option<f64>> {
        match self.v.get_ref() {
            DeValue::Float(f) => Ok(f.as_str().parse::<f64>().ok()),
            DeValue::Integer(i) => Ok(i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64)),
            _ => Err(self.wrong_type(expected)),
        }
    }

    /// A finite number; `expected` describes it in errors.
    pub fn f64(&self, expected: &str) -> Res<f64> {
        match self.number(expected)? {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(self.err(format!("not a finite number; expected {expected}"))),
        }
    }

    /// A number in `lo..=hi`.
    pub fn f64_in(&self, lo: f64, hi: f64) -> Res<f64> {
        let expected = format!("a number in {lo}..={hi}");
        let x = self.f64(&expected)?;
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.err(format!("{x} is out of range; expected {expected}")))
        }
    }

    /// A probability or fraction, `0..=1`.
    pub fn unit(&self) -> Res<f64> {
        self.f64_in(0.0, 1.0)
    }

    /// A number in `0 < x <= hi`.
    pub fn f64_pos(&self, hi: f64) -> Res<f64> {
        let expected = format!("a number greater than 0 and at most {hi}");
        let x = self.f64(&expected)?;
        if x > 0.0 && x <= hi {
            Ok(x)
        } else {
            Err(self.err(format!("{x} is out of range; expected {expected}")))
        }
    }

    /// A duration, optionally negative: (negative, length).
    pub fn duration_signed(&self) -> Res<(bool, Duration)> {
        let s = self.str().map_err(|_| self.wrong_type(DURATION_EXPECTED))?;
        parse_duration(s, true).map_err(|m| self.err(m))
    }

    /// A duration in `lo..=hi`.
    pub fn duration_in(&self, lo: Duration, hi: Duration) -> Res<Duration> {
        self.duration_within(lo, hi, DURATION_EXPECTED)
    }

    /// A duration in `lo..=hi`; `expected` is what a value of another type is told.
    pub fn duration_within(&self, lo: Duration, hi: Duration, expected: &str) -> Res<Duration> {
        let s = self.str().map_err(|_| self.wrong_type(expected))?;
        let (_, d) = parse_duration(s, false).map_err(|m| self.err(m))?;
        if d < lo || d > hi {
            return Err(self.err(format!(
                "{s} is out of range; expected a duration from {} to {}",
                format_duration(lo),
                format_duration(hi)
            )));
        }
        Ok(d)
    }

    /// A positive duration up to `hi`.
    pub fn duration_pos(&self, hi: Duration) -> Res<Duration> {
        self.duration_in(Duration::from_millis(1), hi)
    }

    /// A table.
    pub fn table(&self) -> Res<Tbl<'a>> {
        match self.v.get_ref() {
            DeValue::Table(map) => Ok(Tbl {
                ctx: self.ctx,
                path: self.field.clone(),
                span: self.v.span(),
                map,
            }),
            _ => Err(self.wrong_type("a table")),
        }
    }

    /// An array of at most `max` entries, each with its `field[i]` path.
    pub fn array(&self, max: usize) -> Res<Vec<Val<'a>>> {
        match self.v.get_ref() {
            DeValue::Array(items) => {
                if items.len() > max {
                    return Err(
                        self.err(format!("{} entries; expected at most {max}", items.len()))
                    );
                }
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Val {
                        ctx: self.ctx,
                        field: format!("{}[{i}]", self.field),
                        v,
                    })
                    .collect())
            }
            _ => Err(self.wrong_type("an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse `text` and run `f` on its root table.
    fn with_root<T>(text: &str, f: impl FnOnce(&Tbl<'_>) -> T) -> T {
        let ctx = Ctx {
            file: "t.toml",
            text,
        };
        let doc = DeTable::parse(text).expect("valid TOML");
        f(&Tbl::root(&ctx, &doc))
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // Goal: an unknown key is reported at its own line with its path and the allowed keys.
        let e = with_root("a = 1\n[t]\nx = 2\ny = 3\n", |r| {
            let t = r.req("t", "a table").unwrap().table().unwrap();
            t.keys(&["x"]).unwrap_err()
        });
        assert_eq!(
            e.to_string(),
            "t.toml:4: t.y: unknown key `y`; expected one of: x"
        );
    }

    #[test]
    fn typed_accessors_check_type_and_range() {
        // Goal: each accessor rejects a wrong type or an out-of-range value with its line.
        with_root("n = 7\ns = \"x\"\nd = \"90s\"\nl = [1, 2]\n", |r| {
            assert_eq!(r.get("n").unwrap().int_in(0, 10).unwrap(), 7);
            let e = r.get("n").unwrap().int_in(0, 5).unwrap_err();
            assert_eq!(
                (e.line, e.message.as_str()),
                (1, "7 is out of range; expected an integer in 0..=5")
            );
            let e = r.get("s").unwrap().bool().unwrap_err();
            assert_eq!(
                (e.line, e.message.as_str()),
                (2, "expected true or false, found string")
            );
            let d = r.get("d").unwrap();
            assert_eq!(
                d.duration_pos(Duration::from_secs(100)).unwrap(),
                Duration::from_secs(90)
            );
            assert!(d.duration_pos(Duration::from_secs(60)).is_err());
            let l = r.get("l").unwrap().array(2).unwrap();
            assert_eq!(l[1].field, "l[1]");
            assert!(r.get("l").unwrap().array(1).is_err());
            let Err(e) = r.req("m", "a number") else {
                panic!("a missing key must be an error")
            };
            assert_eq!(
                (e.field.as_str(), e.message.as_str()),
                ("m", "missing; expected a number")
            );
        });
    }
}
