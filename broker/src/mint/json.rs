//! JSON written byte for byte as twilio-python writes it (`json.dumps` with
//! `ensure_ascii=True` and compact separators), so minted tokens match its
//! vectors exactly. serde_json cannot be told to escape non-ASCII or to keep
//! an object's key order without changing its behaviour for the whole build.
//!
//! Rules reproduced from CPython 3.11's `json` encoder:
//! - strings: `"` and `\` escaped, `\n \r \t \b \f` short escapes, every other
//!   character outside `' '..='~'` as `\uXXXX` (lower-case hex, UTF-16
//!   surrogate pairs above U+FFFF);
//! - integers as decimal; floats as Python's `repr` (shortest round-trip
//!   digits, exponent form below 1e-4 and from 1e16, `1e+16`, `1e-05`, `1.0`);
//! - objects keep their key order; no spaces anywhere.

use std::fmt::Write as _;

/// A JSON value that keeps object key order and the int/float distinction,
/// as a Python `dict` built by `json.loads` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer literal (Python `int`).
    Int(i128),
    /// A number with a fraction or exponent (Python `float`); always finite.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in their original order, no duplicates.
    Object(Object),
}

/// A JSON object with its key order kept.
pub type Object = Vec<(String, Json)>;

/// Appends `s` as a JSON string literal, escaped like Python's `ensure_ascii`.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (at, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            ' '..='~' => continue,
            _ => None,
        };
        out.push_str(&s[plain_from..at]);
        plain_from = at + c.len_utf8();
        match escape {
            Some(text) => out.push_str(text),
            None => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// Appends a finite float as Python's `repr(float)` writes it.
pub fn write_float(out: &mut String, value: f64) {
    // `{:e}` gives the shortest digits that round-trip, like Python's repr.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            for _ in 0..(-exponent - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    }
}

impl Json {
    /// Appends this value, compact and ASCII-only.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(x) => write_float(out, *x),
            Json::Str(s) => write_str(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => write_object(out, members),
        }
    }
}

/// Appends an object, keys in order.
pub fn write_object(out: &mut String, members: &[(String, Json)]) {
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        value.write(out);
    }
    out.push('}');
}

/// Longest JSON text accepted for a grant's free-form object, in bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Most members one JSON object may have.
pub const MAX_JSON_KEYS: usize = 256;

/// Why a grant's JSON text was refused. The text completes a sentence that
/// starts with the field name; it quotes serde's position and message, never
/// the text itself beyond what serde quotes (a key, for a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Over [`MAX_JSON_BYTES`].
    #[error("is {0} bytes long; the limit is {MAX_JSON_BYTES}")]
    TooLong(usize),
    /// Valid JSON, but not an object.
    #[error("must be a JSON object ({{...}})")]
    NotAnObject,
    /// Not JSON, or refused while parsing (duplicate key, too many keys,
    /// number out of range).
    #[error("is not valid JSON: {0}")]
    Invalid(String),
}

/// Parses JSON text that must hold one object, keeping key order.
/// Duplicate keys and numbers that do not fit are refused; so is text
/// over [`MAX_JSON_BYTES`] or an object over [`MAX_JSON_KEYS`] members.
/// Linear in the text's length (a hash set finds duplicates).
pub fn parse_object(text: &str) -> Result<Object, JsonError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLong(text.len()));
    }
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(members)) => Ok(members),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(err) => Err(JsonError::Invalid(err.to_string())),
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Visitor)
    }
}

struct Visitor;

impl<'de> serde::de::Visitor<'de> for Visitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        if v.is_finite() {
            Ok(Json::Float(v))
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Object = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.len() == MAX_JSON_KEYS {
                return Err(serde::de::Error::custom(format!(
                    "an object has more than {MAX_JSON_KEYS} members"
                )));
            }
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value::<Json>()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_caps_answer_with_the_limit() {
        let big = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_JSON_BYTES));
        assert!(
            parse_object(&big)
                .expect_err("too long")
                .to_string()
                .contains("limit")
        );
        let many: Vec<String> = (0..=MAX_JSON_KEYS).map(|i| format!("\"k{i}\":1")).collect();
        let many = format!("{{{}}}", many.join(","));
        assert!(many.len() < MAX_JSON_BYTES);
        assert!(
            parse_object(&many)
                .expect_err("too many keys")
                .to_string()
                .contains("more than")
        );
        let fine: Vec<String> = (0..MAX_JSON_KEYS).map(|i| format!("\"k{i}\":1")).collect();
        assert_eq!(
            parse_object(&format!("{{{}}}", fine.join(",")))
                .expect("at the limit")
                .len(),
            MAX_JSON_KEYS
        );
        assert!(
            parse_object("{\"a\":1,\"b\":2,\"a\":3}")
                .expect_err("duplicate")
                .to_string()
                .contains("duplicate key")
        );
    }

    fn string(s: &str) -> String {
        let mut out = String::new();
        write_str(&mut out, s);
        out
    }

    fn float(x: f64) -> String {
        let mut out = String::new();
        write_float(&mut out, x);
        out
    }

    #[test]
    fn strings_escape_like_python_ensure_ascii() {
        // Expected values printed by CPython 3.11: json.dumps(s).
        for (input, expected) in [
            ("plain", r#""plain""#),
            ("café", r#""caf\u00e9""#),
            ("a\"b\\c/d", r#""a\"b\\c/d""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{0}\u{1f}\u{7f}", r#""\u0000\u001f\u007f""#),
            ("😀", r#""\ud83d\ude00""#),
            ("\u{ffff}\u{e000}", r#""\uffff\ue000""#),
        ] {
            assert_eq!(string(input), expected, "{input:?}");
        }
    }

    #[test]
    fn floats_print_like_python_repr() {
        // Expected values printed by CPython 3.11: repr(x).
        for (input, expected) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.23e-7, "1.23e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(float(input), expected, "{input:e}");
        }
    }

    #[test]
    fn objects_keep_order_and_types() {
        let text = r#"{"z": 1, "a": [1.0, null, true, "x"], "m": {"k": -2, "e": 1e2}}"#;
        let object = parse_object(text).expect("parses");
        let mut out = String::new();
        write_object(&mut out, &object);
        assert_eq!(
            out,
            r#"{"z":1,"a":[1.0,null,true,"x"],"m":{"k":-2,"e":100.0}}"#
        );
    }

    #[test]
    fn parse_refuses_what_python_would_not_round_trip() {
        for (text, needle) in [
            ("[1]", "must be a JSON object"),
            ("{\"a\":1,\"a\":2}", "duplicate key"),
            ("{", "not valid JSON"),
        ] {
            let err = parse_object(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
