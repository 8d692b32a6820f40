//! How PostHog's Python code sees JSON values: its truthiness and type names, which show in
//! its validation rules and error messages.

use std::fmt::Write as _;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Python's `bool(value)`: empty containers, `""`, `0` and `None` are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's name for a JSON value's type, as DRF puts it in messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str(value)`: strings bare, everything else as its `repr`.
pub fn str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => text(other, Spelling::Repr),
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the information separators U+001C–U+001F,
/// which Python counts as whitespace and Rust does not.
pub fn strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// A DRF `CharField` (`trim_whitespace`, `allow_null=False`) read from JSON: strings stripped,
/// numbers as text; null, other types, blank (unless allowed) and more than `max` characters are
/// DRF's 400s naming `attr`.
pub fn char_field(attr: &str, value: &Value, allow_blank: bool, max: usize) -> ApiResult<String> {
    let text = match value {
        Value::String(s) => strip(s).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => {
            return Err(ApiError::field(attr, "null", "This field may not be null."));
        }
        _ => return Err(ApiError::invalid(attr, "Not a valid string.")),
    };
    if text.is_empty() && !allow_blank {
        return Err(ApiError::field(
            attr,
            "blank",
            "This field may not be blank.",
        ));
    }
    if text.chars().count() > max {
        return Err(ApiError::field(
            attr,
            "max_length",
            format!("Ensure this field has no more than {max} characters."),
        ));
    }
    Ok(text)
}

/// PostHog's `str_to_bool` (query flags such as `?archived=`): only these spellings are true.
pub fn str_to_bool(text: &str) -> bool {
    matches!(
        text.to_lowercase().as_str(),
        "y" | "yes" | "t" | "true" | "on" | "1"
    )
}

/// Django's case-insensitive lookups (`iexact`, `icontains`) on PostgreSQL compare `UPPER()` of
/// both sides, which maps one character at a time: `ß` stays `ß` rather than becoming `SS`.
pub fn sql_upper(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Python's `json.dumps(value)`: `", "` and `": "` separators, non-ASCII escaped.
pub fn json_dumps(value: &Value) -> String {
    text(value, Spelling::Json)
}

/// The two ways Python writes a JSON value: `repr` (`None`, `True`, `'str'`) and
/// `json.dumps` (`null`, `true`, `"str"`). Numbers and containers are spelled alike.
#[derive(Clone, Copy)]
enum Spelling {
    Repr,
    Json,
}

fn text(value: &Value, spelling: Spelling) -> String {
    let mut out = String::new();
    write_value(&mut out, value, spelling);
    out
}

fn write_value(out: &mut String, value: &Value, spelling: Spelling) {
    match (value, spelling) {
        (Value::Null, Spelling::Repr) => out.push_str("None"),
        (Value::Null, Spelling::Json) => out.push_str("null"),
        (Value::Bool(b), Spelling::Repr) => out.push_str(if *b { "True" } else { "False" }),
        (Value::Bool(b), Spelling::Json) => out.push_str(if *b { "true" } else { "false" }),
        (Value::Number(n), _) => out.push_str(&number_text(n)),
        (Value::String(s), _) => write_str(out, s, spelling),
        (Value::Array(items), _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, spelling);
            }
            out.push(']');
        }
        (Value::Object(map), _) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k, spelling);
                out.push_str(": ");
                write_value(out, v, spelling);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str, spelling: Spelling) {
    match spelling {
        Spelling::Repr => write_repr_str(out, s),
        Spelling::Json => write_json_str(out, s),
    }
}

/// Python picks double quotes only for strings holding a single quote and no double quote.
fn write_repr_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && c >= ' ' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Integers as digits; floats like Python's `repr(float)` (`1.0`, `1e+16`, `1e-05`).
fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let text = format!("{:?}", n.as_f64().unwrap_or(f64::NAN));
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_bool_and_upper() {
        assert_eq!(strip("\u{1f} a b\u{3000}\n"), "a b");
        for yes in ["y", "YES", "t", "True", "on", "1"] {
            assert!(str_to_bool(yes), "{yes}");
        }
        for no in ["", "0", "false", "no", "2", "tru", " true"] {
            assert!(!str_to_bool(no), "{no}");
        }
        assert_eq!(sql_upper("My-flag_ſ"), "MY-FLAG_S");
        assert_eq!(sql_upper("straße"), "STRAßE");
    }

    #[test]
    fn truthiness_and_names_follow_python() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for yes in [
            json!(true),
            json!(1),
            json!("0"),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(truthy(&yes), "{yes}");
        }
        assert_eq!(type_name(&json!(1)), "int");
        assert_eq!(type_name(&json!(1.5)), "float");
        assert_eq!(type_name(&json!([1])), "list");
        assert_eq!(type_name(&json!(null)), "NoneType");
    }

    #[test]
    fn repr_and_str_follow_python() {
        for (value, expected) in [
            (json!("it's"), "\"it's\""),
            (json!("a\"b"), "'a\"b'"),
            (json!("x'y\"z"), "'x\\'y\"z'"),
            (json!("tab\there\\"), "'tab\\there\\\\'"),
            (json!("\u{1}"), "'\\x01'"),
            (json!(1e16), "1e+16"),
            (json!(1e-5), "1e-05"),
            (json!(0.1), "0.1"),
            (json!(2.0), "2.0"),
            (json!({"a": [true, null]}), "{'a': [True, None]}"),
        ] {
            assert_eq!(text(&value, Spelling::Repr), expected);
        }
        assert_eq!(str(&json!("bare")), "bare");
    }

    #[test]
    fn json_dumps_follows_python() {
        assert_eq!(
            json_dumps(&json!({"a": [1, 2.5, null, true], "é": "x\"y"})),
            "{\"a\": [1, 2.5, null, true], \"\\u00e9\": \"x\\\"y\"}"
        );
    }
}
