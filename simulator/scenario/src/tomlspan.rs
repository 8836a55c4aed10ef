//! TOML files read with serde, with errors that name the file, the 1-based line, the field
//! path and what was expected.
//!
//! Shared by the scenario parser ([`crate::parse`]), the failure files and the console's
//! game-day plans. Each file format is a set of raw structs deriving `Deserialize` and
//! `Serialize` with `deny_unknown_fields`; [`Ctx::read`] parses the text and
//! deserialises it, then the format's own validation turns the raw structs into its model,
//! reporting problems at the span of a [`toml::Spanned`] value ([`Ctx::err`]) or at a
//! missing key of a table ([`Ctx::err_key`]). Every error gets its line from the span and
//! its field path (`tower[1].power.soc_initial`) from the place in the document the span
//! belongs to, so neither serde's errors nor a validation step need to track paths.
//!
//! Map:
//! - [`SpanError`]: the error value (`file:line: field: message`), [`located`] (its
//!   format), made from an input file's read error too.
//! - [`Ctx`]: the file being read: `read`, `err`, `err_key`, `line`; serde's messages
//!   reworded in the files' terms (keys, tables, arrays; "expected …, found …").
//! - value types checked while they are read, each saying what it expected: [`Int`],
//!   [`Num`], [`Pos`], [`Dur`], [`Capped`], [`StrOr`]; the `*_in` checks behind them, on a
//!   [`toml::Value`], for values whose range is known only at run time (fault parameters).
//!
//! Not covered: any file's own grammar (sizes, priorities, fault kinds, cross-field rules
//! stay with their format).

use crate::format_duration;
use crate::parse::parse_duration;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

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

/// Result of reading a file.
pub type Res<T> = Result<T, SpanError>;

/// The file being read: parses it, turns spans into lines and field paths, builds errors.
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

    /// Parse the text and deserialise it as `T`. A syntax error's field is the key (or
    /// table header) on its line, cut to `field_len_max` characters.
    pub fn read<T: DeserializeOwned>(&self, field_len_max: usize) -> Res<T> {
        let doc = DeTable::parse(self.text).map_err(|e| self.syntax(&e, field_len_max))?;
        T::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| self.de_error(&e))
    }

    /// An error at `span`: a key, a value or a table of the document.
    pub fn err(&self, span: &Range<usize>, message: impl Into<String>) -> SpanError {
        self.at(span, None, message.into())
    }

    /// An error at `key` of the table at `span` (a missing key, or one given elsewhere).
    pub fn err_key(
        &self,
        table: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> SpanError {
        self.at(table, Some(key), message.into())
    }

    /// An error at `key` of the table at `table`: at its value when the file gives it.
    pub fn err_at<T>(
        &self,
        value: Option<&Spanned<T>>,
        table: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> SpanError {
        match value {
            Some(v) => self.err(&v.span(), message),
            None => self.err_key(table, key, message),
        }
    }

    /// A required key's value, or "missing; expected `what`" at the table at `table`.
    pub fn req<'v, T>(
        &self,
        v: &'v Option<T>,
        table: &Range<usize>,
        key: &str,
        what: &str,
    ) -> Res<&'v T> {
        v.as_ref()
            .ok_or_else(|| self.err_key(table, key, format!("missing; expected {what}")))
    }

    fn at(&self, span: &Range<usize>, key: Option<&str>, message: String) -> SpanError {
        let mut field = DeTable::parse(self.text)
            .ok()
            .and_then(|doc| find(doc.get_ref(), span, ""))
            .unwrap_or_default();
        if let Some(key) = key {
            field = if field.is_empty() {
                key.to_string()
            } else {
                format!("{field}.{key}")
            };
        }
        if field.is_empty() {
            field = "(file)".into();
        }
        SpanError {
            file: self.file.to_string(),
            line: self.line(span.start),
            field,
            message,
        }
    }

    /// A TOML syntax error; the field is the key (or table header) on the offending line
    /// when there is one, cut to `field_len_max` characters.
    fn syntax(&self, e: &toml::de::Error, field_len_max: usize) -> SpanError {
        let start = e.span().map_or(0, |s| s.start);
        let line = self.line(start);
        let text = self.text.split('\n').nth(line - 1).unwrap_or("").trim();
        let field = match text.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => key.trim(),
            _ if text.starts_with('[') => text.trim_matches(|c| c == '[' || c == ']').trim(),
            _ => "",
        };
        // A header with no name (`[`, `[[ ]]`) names no field either.
        let field = if field.is_empty() { "(syntax)" } else { field };
        let field: String = field.chars().take(field_len_max).collect();
        SpanError {
            file: self.file.to_string(),
            line,
            field,
            message: format!("TOML syntax error: {}", e.message()),
        }
    }

    /// A deserialisation error, reworded from serde's terms into the file's.
    fn de_error(&self, e: &toml::de::Error) -> SpanError {
        let span = e.span().unwrap_or(0..0);
        let m = e.message();
        let ticked = |s: &str| -> Vec<String> {
            s.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        if let Some(rest) = m.strip_prefix("missing field ") {
            let key = ticked(rest).pop().unwrap_or_default();
            let needs = match self.err(&span, "").field.as_str() {
                "(file)" => "the file".to_string(),
                table => format!("[{table}]"),
            };
            return self.err_key(&span, &key, format!("missing; {needs} needs it"));
        }
        for (prefix, what) in [("unknown field ", "key"), ("unknown variant ", "value")] {
            if let Some(rest) = m.strip_prefix(prefix) {
                let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
                let expected = match ticked(expected) {
                    names if names.is_empty() => "nothing here".to_string(),
                    names => format!("one of: {}", names.join(", ")),
                };
                let found = ticked(found).pop().unwrap_or_default();
                return self.err(
                    &span,
                    format!("unknown {what} `{found}`; expected {expected}"),
                );
            }
        }
        if m.contains("` as i128") || m.contains("` as u128") {
            return self.err(&span, "integer out of range; expected a 64-bit integer");
        }
        for prefix in ["invalid type: ", "invalid value: "] {
            if let Some((found, expected)) = m
                .strip_prefix(prefix)
                .and_then(|r| r.split_once(", expected "))
            {
                return self.err(
                    &span,
                    format!(
                        "expected {}, found {}",
                        expected_words(expected),
                        found_words(found)
                    ),
                );
            }
        }
        let mut e = self.err(&span, m.to_string());
        if m.contains(" entries; expected at most ") {
            // An array of tables shares its span with its first table: name the array.
            e.field = e.field.trim_end_matches("[0]").to_string();
        }
        e
    }
}

/// serde's name for an expected type, in the files' terms.
fn expected_words(s: &str) -> &str {
    match s {
        _ if s.starts_with("struct ") || s == "a map" || s == "map" => "a table",
        "a sequence" => "an array",
        "a boolean" => "true or false",
        "i64" | "u64" | "i32" | "u32" | "u16" | "u8" | "usize" => "an integer",
        "f64" | "f32" => "a number",
        s => s,
    }
}

/// serde's name for a value found, in the files' terms.
fn found_words(s: &str) -> String {
    s.replacen("map", "table", 1)
        .replacen("sequence", "array", 1)
        .replacen("floating point", "float", 1)
}

/// The field path of the key, value or table at exactly `span` (the deepest one, so an
/// array of tables' first element wins over the array that shares its header).
fn find(t: &DeTable<'_>, span: &Range<usize>, path: &str) -> Option<String> {
    t.iter().find_map(|(k, v)| {
        let here = if path.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{path}.{}", k.get_ref())
        };
        find_value(v, span, &here).or_else(|| (k.span() == *span).then_some(here))
    })
}

fn find_value(v: &Spanned<DeValue<'_>>, span: &Range<usize>, here: &str) -> Option<String> {
    let inner = match v.get_ref() {
        DeValue::Table(t) => find(t, span, here),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, e)| find_value(e, span, &format!("{here}[{i}]"))),
        _ => None,
    };
    inner.or_else(|| (v.span() == *span).then(|| here.to_string()))
}

// ---------------------------------------------------------------------------------------
// Values checked while they are read.

/// "expected `expected`, found <the value's type>".
pub fn wrong(v: &Value, expected: &str) -> String {
    format!("expected {expected}, found {}", v.type_str())
}

/// An integer in `lo..=hi`.
pub fn int_in(v: &Value, lo: i64, hi: i64) -> Result<i64, String> {
    let expected = format!("an integer in {lo}..={hi}");
    match v {
        Value::Integer(n) if (lo..=hi).contains(n) => Ok(*n),
        Value::Integer(n) => Err(format!("{n} is out of range; expected {expected}")),
        v => Err(wrong(v, &expected)),
    }
}

/// A finite number (integers are numbers) that `ok` accepts; `expected` describes it.
fn number(v: &Value, expected: &str, ok: impl Fn(f64) -> bool) -> Result<f64, String> {
    let x = match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    };
    match x {
        None => Err(wrong(v, expected)),
        Some(x) if !x.is_finite() => Err(format!("not a finite number; expected {expected}")),
        Some(x) if ok(x) => Ok(x),
        Some(x) => Err(format!("{x} is out of range; expected {expected}")),
    }
}

/// A number in `lo..=hi`.
pub fn num_in(v: &Value, lo: f64, hi: f64) -> Result<f64, String> {
    number(v, &format!("a number in {lo}..={hi}"), |x| {
        (lo..=hi).contains(&x)
    })
}

/// A number in `0 < x <= hi`.
pub fn pos_in(v: &Value, hi: f64) -> Result<f64, String> {
    let expected = format!("a number greater than 0 and at most {hi}");
    number(v, &expected, |x| x > 0.0 && x <= hi)
}

/// What a duration told a value of another type.
const DURATION_EXPECTED: &str = "a duration string such as \"30s\"";

/// A duration in `lo..=hi`.
pub fn dur_in(v: &Value, lo: Duration, hi: Duration) -> Result<Duration, String> {
    let Value::String(s) = v else {
        return Err(wrong(v, DURATION_EXPECTED));
    };
    let (_, d) = parse_duration(s, false)?;
    if d < lo || d > hi {
        return Err(format!(
            "{s} is out of range; expected a duration from {} to {}",
            format_duration(lo),
            format_duration(hi)
        ));
    }
    Ok(d)
}

/// A signed duration (`"-30s"`): (negative, length).
pub fn dur_signed(v: &Value) -> Result<(bool, Duration), String> {
    match v {
        Value::String(s) => parse_duration(s, true),
        v => Err(wrong(v, DURATION_EXPECTED)),
    }
}

/// Read a value and check it with `f`; its message becomes the error at the value.
pub fn checked<'de, D: Deserializer<'de>, T>(
    d: D,
    f: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, D::Error> {
    f(&Value::deserialize(d)?).map_err(de::Error::custom)
}

/// An integer in `LO..=HI`, checked when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Int<const LO: i64, const HI: i64>(pub i64);

impl<'de, const LO: i64, const HI: i64> Deserialize<'de> for Int<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| int_in(v, LO, HI)).map(Int)
    }
}

/// A number in `LO..=HI` (integers are numbers), checked when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Num<const LO: i64, const HI: i64>(pub f64);

impl<'de, const LO: i64, const HI: i64> Deserialize<'de> for Num<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| num_in(v, LO as f64, HI as f64)).map(Num)
    }
}

/// A probability or fraction, `0..=1`.
pub type Unit = Num<0, 1>;

/// A number in `0 < x <= HI`, checked when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Pos<const HI: i64>(pub f64);

impl<'de, const HI: i64> Deserialize<'de> for Pos<HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| pos_in(v, HI as f64)).map(Pos)
    }
}

/// A duration text (`"1h30m"`) from `LO` to `HI` milliseconds, checked when it is read and
/// written to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur<const LO: u64, const HI: u64>(pub Duration);

impl<'de, const LO: u64, const HI: u64> Deserialize<'de> for Dur<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| {
            dur_in(v, Duration::from_millis(LO), Duration::from_millis(HI))
        })
        .map(Dur)
    }
}

impl<const LO: u64, const HI: u64> Serialize for Dur<LO, HI> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::faults::duration_text(self.0))
    }
}

/// An array of at most `MAX` entries: a longer one is refused as it is read, before it is
/// held.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Capped<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Capped<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = Capped<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {MAX} entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    if out.len() == MAX {
                        return Err(de::Error::custom(format!(
                            "more than {MAX} entries; expected at most {MAX}"
                        )));
                    }
                    out.push(x);
                }
                Ok(Capped(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

impl<T, const MAX: usize> FromIterator<T> for Capped<T, MAX> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Capped(iter.into_iter().collect())
    }
}

/// A string or a table (`"fibre"` or `{ kind = "lte", … }`).
#[derive(Clone, Debug, PartialEq)]
pub enum StrOr<T> {
    /// The short form.
    Str(String),
    /// The table form.
    Table(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name such as \"lte\" or \"satellite:leo\", or an inline table")
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(StrOr::Str(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Table)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<T: Serialize> Serialize for StrOr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StrOr::Str(v) => s.serialize_str(v),
            StrOr::Table(t) => t.serialize(s),
        }
    }
}

/// A value with no span, for writing (spans are only read).
pub fn unspanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)] // read only for their errors
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        n: Option<Int<0, 5>>,
        s: Option<bool>,
        d: Option<Dur<0, 60_000>>,
        l: Option<Capped<i64, 2>>,
        tl: Option<Capped<Value, 2>>,
        t: Option<Inner>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        x: i64,
    }

    fn err(text: &str) -> SpanError {
        Ctx {
            file: "t.toml",
            text,
        }
        .read::<Doc>(64)
        .unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // Goal: an unknown key is reported at its own line with its path and the allowed keys.
        assert_eq!(
            err("n = 1\n[t]\nx = 2\ny = 3\n").to_string(),
            "t.toml:4: t.y: unknown key `y`; expected one of: x"
        );
        // Several problems: the first in the file is reported (toml keeps file order).
        assert_eq!(err("zz = 1\naa = 2\n").field, "zz");
        assert_eq!(
            err("n = 1\n[t]\n").to_string(),
            "t.toml:2: t.x: missing; [t] needs it"
        );
    }

    #[test]
    fn a_syntax_error_on_a_nameless_header_still_names_a_field() {
        // Goal: `[` or `[[ ]]` on the offending line gives "(syntax)", not an empty field
        // (proptest's mutated scenarios found `field: ""`).
        for text in ["n = 1\n[\n", "n = 1\n[[ ]]\n", "n = [1\n[]\n"] {
            let e = err(text);
            assert_eq!(e.field, "(syntax)", "{text:?}: {e}");
            assert!(e.message.starts_with("TOML syntax error"), "{e}");
        }
    }

    #[test]
    fn checked_values_say_what_they_expected() {
        // Goal: each value type rejects a wrong type or an out-of-range value at its line.
        let e = err("s = true\nn = 7\n");
        assert_eq!(
            (e.line, e.field.as_str(), e.message.as_str()),
            (2, "n", "7 is out of range; expected an integer in 0..=5")
        );
        let e = err("\ns = \"x\"\n");
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "expected true or false, found string \"x\"")
        );
        let e = err("d = \"90s\"\n");
        assert_eq!(
            e.message,
            "90s is out of range; expected a duration from 0s to 1m"
        );
        let e = err("[[tl]]\n[[tl]]\n[[tl]]\n");
        assert_eq!((e.line, e.field.as_str()), (1, "tl"));
        let e = err("l = [1, 2, 3]\n");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("l", "more than 2 entries; expected at most 2")
        );
        assert_eq!(
            err("t = 3\n").message,
            "expected a table, found integer `3`"
        );
        assert_eq!(
            err("n = 1.5\n").message,
            "expected an integer in 0..=5, found float"
        );
    }
}
