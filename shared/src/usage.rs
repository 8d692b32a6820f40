//! Flag usage counters from `$feature_flag_called` events: per flag, UTC day and response value,
//! the number of calls and the number of unique users (distinct ids).
//!
//! A capture batch is folded in memory into one [`UsageDelta`] per (flag, day, response) group,
//! then each group is one atomic DynamoDB `ADD`, so concurrent captures never lose increments.
//!
//! Unique users are counted two ways at once, both as sets that `ADD` unions (atomic,
//! commutative and idempotent: racing or retried captures never lose or double-count a user):
//! * exactly, as a set of 48-bit hashes of the distinct ids, while it holds fewer than
//!   [`EXACT_USERS_CAP`] (a writer that finds it full marks it incomplete instead);
//! * approximately, as a HyperLogLog of precision [`PRECISION`] (1,024 registers) whose
//!   registers are stored as the set of every `(register, rank)` pair seen. The estimate takes
//!   the highest rank per register, with linear counting for small ranges. Standard error
//!   1.04/√1024 ≈ 3.25%.
//!
//! The count shown is the exact one while it is complete, else the estimate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Duration, NaiveDate};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::capture::Event;
use crate::time::{self, Timestamp};

/// HyperLogLog precision: 2^10 registers, standard error 1.04/√1024 ≈ 3.25%.
pub const PRECISION: u32 = 10;
pub const REGISTERS: usize = 1 << PRECISION;
/// Pairs are stored as `register * RANK_BASE + rank`; ranks run 1..=55 for 64-bit hashes.
const RANK_BASE: u32 = 64;
/// Below this many unique users a day's count is exact (≈ 9 bytes per user in the item).
pub const EXACT_USERS_CAP: usize = 1000;
/// Events older than this are not counted: the dashboards show the last 30 days.
pub const RETENTION_DAYS: i64 = 31;
/// Responses longer than this are cut, so sort keys stay far below DynamoDB's 1 KB limit.
pub const MAX_RESPONSE_CHARS: usize = 400;
/// The breakdown value PostHog gives events without the property.
pub const NULL_BREAKDOWN: &str = "$$_posthog_breakdown_null_$$";

/// One counter item: a flag's calls on one UTC day with one response value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub flag_id: i64,
    pub day: NaiveDate,
    pub response: String,
}

/// What one capture adds to one counter item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageDelta {
    pub calls: i64,
    /// HyperLogLog `(register, rank)` pairs, encoded.
    pub pairs: BTreeSet<u64>,
    /// 48-bit hashes of the distinct ids.
    pub users: BTreeSet<u64>,
}

/// A counter item as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub response: String,
    pub calls: i64,
    pub pairs: Vec<u64>,
    pub users: usize,
    /// Whether `users` missed someone (the exact set was full).
    pub users_incomplete: bool,
}

impl UsageRow {
    /// Exact while the exact set is complete, else the HyperLogLog estimate.
    pub fn unique_users(&self) -> i64 {
        if self.users_incomplete {
            estimate(&self.pairs).round() as i64
        } else {
            self.users as i64
        }
    }
}

/// The UTC day an event counts on: its own timestamp when it parses and is not in the future
/// (future ones are clock skew: now), `None` when it is older than [`RETENTION_DAYS`].
pub fn event_day(timestamp: Option<&str>, now: Timestamp) -> Option<NaiveDate> {
    let at = timestamp.and_then(time::parse).map_or(now, |t| t.min(now));
    (at >= now - Duration::days(RETENTION_DAYS)).then(|| at.date_naive())
}

/// `$feature_flag_response` as PostHog breaks down by it: strings as they are, booleans and
/// numbers as their JSON text, missing or null as PostHog's null breakdown.
pub fn response_value(properties: &serde_json::Map<String, Value>) -> String {
    let text = match properties.get("$feature_flag_response") {
        None | Some(Value::Null) => return NULL_BREAKDOWN.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    text.chars().take(MAX_RESPONSE_CHARS).collect()
}

/// Folds the batch's `$feature_flag_called` events into one delta per counter item. Events of
/// unknown flags (`flag_id` answers `None`) or too old are skipped.
pub fn aggregate(
    events: &[Event],
    flag_id: impl Fn(&str) -> Option<i64>,
    now: Timestamp,
) -> BTreeMap<UsageKey, UsageDelta> {
    let mut out: BTreeMap<UsageKey, UsageDelta> = BTreeMap::new();
    let mut hashes: HashMap<&str, u64> = HashMap::new();
    for event in events.iter().filter(|e| e.event == "$feature_flag_called") {
        let Some(id) = event
            .properties
            .get("$feature_flag")
            .and_then(Value::as_str)
            .and_then(&flag_id)
        else {
            continue;
        };
        let Some(day) = event_day(event.timestamp.as_deref(), now) else {
            continue;
        };
        let key = UsageKey {
            flag_id: id,
            day,
            response: response_value(&event.properties),
        };
        let delta = out.entry(key).or_default();
        delta.calls += 1;
        if let Some(distinct_id) = event.distinct_id.as_deref() {
            let hash = *hashes
                .entry(distinct_id)
                .or_insert_with(|| user_hash(distinct_id));
            let (pair, user) = user_hashes(hash);
            delta.pairs.insert(pair);
            delta.users.insert(user);
        }
    }
    out
}

/// The HyperLogLog pair and the exact-set hash of a user, from one 64-bit hash of the id.
pub fn user_hashes(hash: u64) -> (u64, u64) {
    let register = hash >> (64 - PRECISION);
    let rest = hash << PRECISION;
    let rank = u64::from(rest.leading_zeros().min(64 - PRECISION) + 1);
    (
        register * u64::from(RANK_BASE) + rank,
        hash & ((1 << 48) - 1),
    )
}

/// The 64-bit hash users are counted by: the first 8 bytes of the id's SHA-256, stable across
/// builds and machines (unlike std's hasher), so every capture agrees on a user's registers.
pub fn user_hash(distinct_id: &str) -> u64 {
    let digest = Sha256::digest(distinct_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// HyperLogLog estimate from stored pairs: the highest rank seen per register, the harmonic
/// mean, and linear counting while the raw estimate is small (≤ 2.5 m) and registers are
/// still empty. 64-bit hashes need no large-range correction.
pub fn estimate(pairs: &[u64]) -> f64 {
    let mut registers = vec![0u8; REGISTERS];
    for pair in pairs {
        let register = (pair / u64::from(RANK_BASE)) as usize;
        let rank = (pair % u64::from(RANK_BASE)) as u8;
        if let Some(slot) = registers.get_mut(register) {
            *slot = (*slot).max(rank);
        }
    }
    let m = REGISTERS as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|r| **r == 0).count();
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

/// The last `days` UTC days up to and including `today`, oldest first.
pub fn last_days(today: NaiveDate, days: i64) -> Vec<NaiveDate> {
    (0..days)
        .rev()
        .map(|back| today - Duration::days(back))
        .collect()
}

/// Per response value, one number per day of `days` (0 where nothing was counted).
pub fn daily_series(
    rows: &[UsageRow],
    days: &[NaiveDate],
    value: impl Fn(&UsageRow) -> i64,
) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows {
        let Some(slot) = days.iter().position(|d| *d == row.day) else {
            continue;
        };
        out.entry(row.response.clone())
            .or_insert_with(|| vec![0; days.len()])[slot] += value(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        time::parse("2026-03-10T12:00:00Z").unwrap()
    }

    fn called(distinct_id: &str, key: &str, response: Value, timestamp: Option<&str>) -> Event {
        let properties = json!({"$feature_flag": key, "$feature_flag_response": response});
        Event {
            event: "$feature_flag_called".into(),
            distinct_id: Some(distinct_id.into()),
            properties: properties.as_object().unwrap().clone(),
            timestamp: timestamp.map(str::to_string),
        }
    }

    fn flag_ids(key: &str) -> Option<i64> {
        match key {
            "a" => Some(1),
            "b" => Some(2),
            _ => None,
        }
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn batch_folds_into_one_delta_per_flag_day_and_response() {
        let events = vec![
            called("u1", "a", json!(true), None),
            called("u1", "a", json!(true), None),
            called("u2", "a", json!(true), Some("2026-03-09T23:59:59Z")),
            called("u2", "a", json!("control"), None),
            called("u3", "b", json!(false), None),
            called("u4", "unknown", json!(true), None),
            Event {
                event: "$pageview".into(),
                ..called("u5", "a", json!(true), None)
            },
        ];
        let out = aggregate(&events, flag_ids, now());
        let key = |flag_id, d: &str, r: &str| UsageKey {
            flag_id,
            day: day(d),
            response: r.into(),
        };
        assert_eq!(out.len(), 4);
        let today_true = &out[&key(1, "2026-03-10", "true")];
        assert_eq!(today_true.calls, 2);
        assert_eq!(today_true.users.len(), 1);
        assert_eq!(today_true.pairs.len(), 1);
        assert_eq!(out[&key(1, "2026-03-09", "true")].calls, 1);
        assert_eq!(out[&key(1, "2026-03-10", "control")].calls, 1);
        assert_eq!(out[&key(2, "2026-03-10", "false")].calls, 1);
    }

    #[test]
    fn days_come_from_sane_timestamps_only() {
        let now = now();
        assert_eq!(event_day(None, now), Some(day("2026-03-10")));
        assert_eq!(event_day(Some("garbage"), now), Some(day("2026-03-10")));
        assert_eq!(
            event_day(Some("2026-03-01T00:00:00Z"), now),
            Some(day("2026-03-01"))
        );
        // Future timestamps are clock skew: counted now.
        assert_eq!(
            event_day(Some("2027-01-01T00:00:00Z"), now),
            Some(day("2026-03-10"))
        );
        assert_eq!(event_day(Some("2026-01-01T00:00:00Z"), now), None);
    }

    #[test]
    fn responses_are_stringified_as_posthog_breaks_down() {
        let props = |v: Value| {
            json!({"$feature_flag_response": v})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(response_value(&props(json!(true))), "true");
        assert_eq!(response_value(&props(json!(false))), "false");
        assert_eq!(response_value(&props(json!("test"))), "test");
        assert_eq!(response_value(&props(json!(3))), "3");
        assert_eq!(response_value(&props(Value::Null)), NULL_BREAKDOWN);
        assert_eq!(response_value(&serde_json::Map::new()), NULL_BREAKDOWN);
        let long = "x".repeat(MAX_RESPONSE_CHARS + 10);
        assert_eq!(
            response_value(&props(json!(long))).chars().count(),
            MAX_RESPONSE_CHARS
        );
    }

    fn pairs_of(users: impl Iterator<Item = String>) -> Vec<u64> {
        let set: BTreeSet<u64> = users.map(|u| user_hashes(user_hash(&u)).0).collect();
        set.into_iter().collect()
    }

    /// 3.25% is one standard error; 4 of them (13%) bound it with near certainty, and the
    /// hashes are fixed, so this test is deterministic.
    #[test]
    fn estimate_is_within_the_bound() {
        for n in [1usize, 10, 100, 1_000, 10_000, 100_000] {
            let pairs = pairs_of((0..n).map(|i| format!("user-{i}")));
            let est = estimate(&pairs);
            let error = (est - n as f64).abs() / n as f64;
            assert!(error < 0.13, "n={n} estimate={est} error={error}");
        }
        // Repeats change nothing: set union is idempotent.
        let once = pairs_of((0..500).map(|i| format!("u{i}")));
        let twice = pairs_of((0..1000).map(|i| format!("u{}", i % 500)));
        assert_eq!(once, twice);
    }

    #[test]
    fn small_counts_are_exact_by_the_estimate_too() {
        for n in [1usize, 2, 3, 5, 10] {
            let pairs = pairs_of((0..n).map(|i| format!("person-{i}")));
            assert_eq!(estimate(&pairs).round() as usize, n);
        }
        assert_eq!(estimate(&[]), 0.0);
    }

    #[test]
    fn rows_use_the_exact_count_until_it_is_incomplete() {
        let mut row = UsageRow {
            users: 7,
            pairs: pairs_of((0..50).map(|i| format!("p{i}"))),
            ..UsageRow::default()
        };
        assert_eq!(row.unique_users(), 7);
        row.users_incomplete = true;
        assert!(
            (row.unique_users() - 50).abs() <= 5,
            "{}",
            row.unique_users()
        );
    }

    #[test]
    fn series_are_zero_filled_over_the_last_days() {
        let days = last_days(day("2026-03-10"), 30);
        assert_eq!(days.len(), 30);
        assert_eq!(days[0], day("2026-02-09"));
        assert_eq!(days[29], day("2026-03-10"));
        let row = |d: &str, r: &str, calls| UsageRow {
            day: day(d),
            response: r.into(),
            calls,
            ..UsageRow::default()
        };
        let rows = [
            row("2026-03-10", "true", 4),
            row("2026-03-08", "true", 1),
            row("2026-03-10", "false", 2),
            row("2026-01-01", "true", 99),
        ];
        let series = daily_series(&rows, &days, |r| r.calls);
        let mut expected = vec![0; 30];
        expected[27] = 1;
        expected[29] = 4;
        assert_eq!(series["true"], expected);
        assert_eq!(series["false"].iter().sum::<i64>(), 2);
        assert_eq!(series.len(), 2);
    }

    /// `cargo test -p shared --lib usage::tests::measure -- --ignored --nocapture`: the error
    /// and stored size the README quotes.
    #[test]
    #[ignore]
    fn measure() {
        for n in [100usize, 1_000, 10_000, 100_000, 1_000_000] {
            let pairs = pairs_of((0..n).map(|i| format!("m-{i}")));
            let est = estimate(&pairs);
            let bytes: usize = pairs
                .iter()
                .map(|p| p.to_string().len().div_ceil(2) + 1)
                .sum();
            println!(
                "n={n} estimate={est:.0} error={:.2}% pairs={} bytes≈{bytes}",
                100.0 * (est - n as f64) / n as f64,
                pairs.len()
            );
        }
    }
}
