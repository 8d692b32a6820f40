//! The one list of date shapes a flag filter may hold (`is_date_before` / `is_date_after` /
//! `is_date_exact`, evaluation-rules.md §2.4, §2.5): validation accepts exactly what the engine reads.
//!
//! PostHog checks these with two parsers, `dateutil` in the Django serializer and `dateparser`
//! in the Rust server; both read every shape below, so a value the engine can read is never
//! refused on save. The one real difference is the value's type: the serializer reads
//! `str(value)`, so a number like `20240131` is accepted, while the server only reads strings
//! (such a filter never matches). That difference stays in [`is_filter_date`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;

use crate::python;

/// Whether validation accepts `value` as the date of a before/after filter.
pub(crate) fn is_filter_date(value: &Value) -> bool {
    let text = python::str(value);
    RelativeDate::parse(&text).is_some() || parse_absolute(text.trim()).is_some()
}

/// A parsed `^-?[0-9]+[hdwmy]$` value: that many units before "now" (the sign is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelativeDate {
    count: i64,
    unit: u8,
}

impl RelativeDate {
    /// Numbers of 10 000 and more are rejected (PostHog's limit), which makes the caller fall
    /// through to absolute formats, where such a value fails.
    pub(crate) fn parse(text: &str) -> Option<RelativeDate> {
        let body = text.strip_prefix('-').unwrap_or(text);
        let (&unit, digits) = body.as_bytes().split_last()?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if !matches!(unit, b'h' | b'd' | b'w' | b'm' | b'y') {
            return None;
        }
        // Overlong digit strings fail to parse and are rejected like PostHog's regex capture.
        let count: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (count < 10_000).then_some(RelativeDate { count, unit })
    }

    /// Hours, days and weeks are fixed durations; months and years are calendar steps taken one
    /// at a time, each clamping the day to the target month (31 Mar − 1m = 29 Feb in 2024).
    pub(crate) fn resolve(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let naive = now.naive_utc();
        let shifted = match self.unit {
            b'h' => naive.checked_sub_signed(Duration::hours(self.count))?,
            b'd' => naive.checked_sub_signed(Duration::days(self.count))?,
            b'w' => naive.checked_sub_signed(Duration::weeks(self.count))?,
            b'm' => step_back(naive, self.count, previous_month)?,
            _ => step_back(naive, self.count, previous_year)?,
        };
        Some(shifted.and_utc())
    }
}

fn step_back(
    mut at: NaiveDateTime,
    count: i64,
    step: fn(NaiveDate) -> Option<NaiveDate>,
) -> Option<NaiveDateTime> {
    for _ in 0..count {
        at = step(at.date())?.and_time(at.time());
    }
    Some(at)
}

fn previous_month(date: NaiveDate) -> Option<NaiveDate> {
    let (year, month) = match date.month() {
        1 => (date.year() - 1, 12),
        m => (date.year(), m - 1),
    };
    NaiveDate::from_ymd_opt(year, month, date.day().min(days_in_month(year, month)))
}

fn previous_year(date: NaiveDate) -> Option<NaiveDate> {
    let year = date.year() - 1;
    let day = date.day().min(days_in_month(year, date.month()));
    NaiveDate::from_ymd_opt(year, date.month(), day)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Naive datetimes PostHog's server tries after RFC 3339 and a bare date.
const NAIVE_DATETIMES: [&str; 4] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
];

/// Our stand-in for the server's last-resort `dateparser` call: the common shapes it reads that
/// the list above misses.
const EXTRA_OFFSET_DATETIMES: [&str; 3] = [
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f %z",
];
const EXTRA_NAIVE_DATETIMES: [&str; 2] = ["%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"];
const EXTRA_DATES: [&str; 6] = [
    "%Y/%m/%d",
    "%Y%m%d",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
];

/// An absolute date as PostHog's server reads it: independent of "now", so filter values are
/// parsed once when flags are prepared.
pub(crate) fn parse_absolute(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    if let Some(naive) = first_naive_datetime(text, &NAIVE_DATETIMES) {
        return Some(naive.and_utc());
    }
    parse_fallback(text.trim())
}

fn first_naive_datetime(text: &str, formats: &[&str]) -> Option<NaiveDateTime> {
    formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

fn parse_fallback(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc2822(text) {
        return Some(date.with_timezone(&Utc));
    }
    if let Some(date) = EXTRA_OFFSET_DATETIMES
        .iter()
        .find_map(|f| DateTime::parse_from_str(text, f).ok())
    {
        return Some(date.with_timezone(&Utc));
    }
    if let Some(naive) = first_naive_datetime(text, &EXTRA_NAIVE_DATETIMES) {
        return Some(naive.and_utc());
    }
    EXTRA_DATES
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}
