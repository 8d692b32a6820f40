//! Dates for `is_date_before` / `is_date_after` / `is_date_exact` (evaluation-rules.md §2.4, §2.5).
//!
//! Both the property and the filter value go through the same parser, like PostHog's server:
//! a relative date (`-7d`) first, then the absolute shapes flag validation accepts (one list, in
//! [`crate::flag::filters::dates`]). The team timezone is UTC here (projects have no timezone
//! setting), so naive values are UTC.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(crate) use crate::flag::filters::dates::{RelativeDate, parse_absolute};

/// A date string as PostHog's server reads it (`parse_date_string_in_tz` with UTC).
pub(crate) fn parse_date_text(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(relative) = RelativeDate::parse(text) {
        return relative.resolve(now);
    }
    parse_absolute(text)
}

/// A property value as a date: numbers and numeric strings are unix seconds (fractions kept),
/// other strings go through [`parse_date_text`]; anything else is not a date.
pub(crate) fn property_date(value: &Value, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => match text.parse::<f64>() {
            Ok(seconds) => from_unix_seconds(seconds),
            Err(_) => parse_date_text(text, now),
        },
        Value::Number(n) => from_unix_seconds(n.as_f64()?),
        _ => None,
    }
}

/// The server's `parse_float_timestamp`: whole seconds floored, the fraction rounded to
/// nanoseconds (a negative fraction saturates to 0, as Rust's `as u32` does there).
fn from_unix_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    let whole = seconds.floor() as i64;
    let nanos = ((seconds % 1.0) * 1_000_000_000.0).round() as u32;
    DateTime::from_timestamp(whole, nanos)
}
