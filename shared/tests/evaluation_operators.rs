//! Every property operator with PostHog's server semantics and type coercion (evaluation-rules.md
//! §2.4, §2.5). Each row: one filter, one set of person properties, the expected match. The
//! expectations come from the spec's table and PostHog's own server tests, not from this code.

mod evaluation_support;

use evaluation_support::*;
use serde_json::{Value, json};
use shared::evaluation::EvaluationInput;

/// Does a flag whose only condition is `filter` (100 % rollout) match these person properties?
fn matches_with(filter: Value, properties: Value, matching_version: u8) -> bool {
    let flags = [flag(1, "f", condition(json!([filter]), None))];
    let props = map(properties);
    let mut input = EvaluationInput::new("someone", now());
    input.person_properties = &props;
    input.property_matching_version = matching_version;
    get(&evaluate(&flags, &input), "f").enabled
}

fn person(key: &str, operator: &str, value: Value) -> Value {
    json!({"key": key, "type": "person", "operator": operator, "value": value})
}

/// Rows of `(operator, filter value, person properties, expected)`.
fn check(rows: &[(&str, Value, Value, bool)]) {
    check_version(rows, 1);
}

fn check_version(rows: &[(&str, Value, Value, bool)], version: u8) {
    let failures: Vec<String> = rows
        .iter()
        .filter(|(op, value, props, want)| {
            matches_with(person("k", op, value.clone()), props.clone(), version) != *want
        })
        .map(|(op, value, props, want)| format!("{op} {value} on {props}: expected {want}"))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn exact_compares_lowercased_string_forms() {
    check(&[
        ("exact", json!("value"), json!({"k": "value"}), true),
        ("exact", json!("value"), json!({"k": "VaLuE"}), true),
        ("exact", json!("value"), json!({"k": "value2"}), false),
        ("exact", json!("value"), json!({"k": ""}), false),
        ("exact", json!("value"), json!({"k": null}), false),
        ("exact", json!("value"), json!({"other": "value"}), false),
        (
            "exact",
            json!(["value1", "value2"]),
            json!({"k": "value2"}),
            true,
        ),
        (
            "exact",
            json!(["value1", "value2"]),
            json!({"k": "value4"}),
            false,
        ),
        ("exact", json!(["US", "CA", "Uk"]), json!({"k": "uk"}), true),
        (
            "exact",
            json!(["US", "CA", "Uk"]),
            json!({"k": "de"}),
            false,
        ),
        // Non-string values compare by their JSON text: 1 and 1.0 differ.
        ("exact", json!(1), json!({"k": 1}), true),
        ("exact", json!("1"), json!({"k": 1}), true),
        ("exact", json!(1.0), json!({"k": 1}), false),
        ("exact", json!([1, 2]), json!({"k": 2}), true),
        ("exact", json!("null"), json!({"k": null}), true),
        ("exact", json!("ÉCOLE"), json!({"k": "école"}), true),
    ]);
}

#[test]
fn exact_with_a_boolean_like_filter_compares_truthiness() {
    check(&[
        ("exact", json!("true"), json!({"k": true}), true),
        ("exact", json!("TRUE"), json!({"k": "true"}), true),
        ("exact", json!(true), json!({"k": "True"}), true),
        ("exact", json!(["true"]), json!({"k": true}), true),
        ("exact", json!("true"), json!({"k": "yes"}), false),
        // Everything not truthy is falsy: "false" matches "no", 0, null and "".
        ("exact", json!("false"), json!({"k": "no"}), true),
        ("exact", json!("false"), json!({"k": 0}), true),
        ("exact", json!("false"), json!({"k": null}), true),
        ("exact", json!("false"), json!({"k": ""}), true),
        ("exact", json!(false), json!({"k": true}), false),
        // An empty list is boolean-like and truthy.
        ("exact", json!([]), json!({"k": "us"}), false),
        ("exact", json!([]), json!({"k": true}), true),
    ]);
}

#[test]
fn matching_version_2_drops_truthiness_except_for_an_empty_list() {
    check_version(
        &[
            ("exact", json!("false"), json!({"k": "no"}), false),
            ("exact", json!("false"), json!({"k": "False"}), true),
            ("exact", json!(true), json!({"k": "true"}), true),
            ("exact", json!("true"), json!({"k": true}), true),
            ("exact", json!(["true"]), json!({"k": "yes"}), false),
            ("exact", json!([]), json!({"k": true}), true),
            ("is_not", json!("false"), json!({"k": 0}), true),
        ],
        2,
    );
}

#[test]
fn is_not_is_the_negation_of_exact_and_matches_missing() {
    check(&[
        ("is_not", json!("value"), json!({"k": "value2"}), true),
        ("is_not", json!("value"), json!({"k": "VALUE"}), false),
        ("is_not", json!("value"), json!({"k": ""}), true),
        ("is_not", json!("value"), json!({"k": null}), true),
        ("is_not", json!("value"), json!({}), true),
        ("is_not", json!(["v1", "v2"]), json!({"k": "v2"}), false),
        ("is_not", json!(["v1", "v2"]), json!({"k": "v3"}), true),
        ("is_not", json!("false"), json!({"k": "no"}), false),
    ]);
}

#[test]
fn a_null_filter_value_never_matches_value_operators() {
    check(&[
        ("exact", json!(null), json!({"k": null}), false),
        ("is_not", json!(null), json!({"k": "x"}), false),
        ("icontains", json!(null), json!({"k": "null"}), false),
        ("is_set", json!(null), json!({"k": "x"}), true),
    ]);
}

#[test]
fn icontains_folds_ascii_case_only() {
    check(&[
        (
            "icontains",
            json!("valUe"),
            json!({"k": "343tfvalue5"}),
            true,
        ),
        ("icontains", json!("valUe"), json!({"k": "Alakazam"}), false),
        ("icontains", json!("valUe"), json!({"k": 123}), false),
        ("icontains", json!("3"), json!({"k": 323}), true),
        ("icontains", json!("3"), json!({"k": "three"}), false),
        ("icontains", json!("rue"), json!({"k": true}), true),
        ("icontains", json!("É"), json!({"k": "école"}), false),
        ("icontains", json!("x"), json!({}), false),
        (
            "not_icontains",
            json!("valUe"),
            json!({"k": "VALUE"}),
            false,
        ),
        ("not_icontains", json!("valUe"), json!({"k": "other"}), true),
        ("not_icontains", json!("x"), json!({}), true),
    ]);
}

#[test]
fn starts_with_and_ends_with_and_their_negations() {
    check(&[
        ("starts_with", json!("Val"), json!({"k": "value"}), true),
        ("starts_with", json!("Val"), json!({"k": "a value"}), false),
        (
            "not_starts_with",
            json!("Val"),
            json!({"k": "a value"}),
            true,
        ),
        ("not_starts_with", json!("Val"), json!({}), true),
        ("starts_with", json!("Val"), json!({}), false),
        ("ends_with", json!("UE"), json!({"k": "value"}), true),
        ("ends_with", json!("UE"), json!({"k": "values"}), false),
        ("not_ends_with", json!("UE"), json!({"k": "values"}), true),
        ("not_ends_with", json!("UE"), json!({}), true),
        ("ends_with", json!("23"), json!({"k": 123}), true),
    ]);
}

#[test]
fn icontains_multi_matches_any_needle() {
    check(&[
        (
            "icontains_multi",
            json!(["foo", "BAR"]),
            json!({"k": "xbarx"}),
            true,
        ),
        (
            "icontains_multi",
            json!(["foo", "BAR"]),
            json!({"k": "baz"}),
            false,
        ),
        (
            "icontains_multi",
            json!("single"),
            json!({"k": "a SINGLE one"}),
            true,
        ),
        (
            "not_icontains_multi",
            json!(["foo", "BAR"]),
            json!({"k": "baz"}),
            true,
        ),
        (
            "not_icontains_multi",
            json!(["foo", "BAR"]),
            json!({"k": "food"}),
            false,
        ),
        ("not_icontains_multi", json!(["foo"]), json!({}), true),
    ]);
}

#[test]
fn regex_searches_unanchored_and_invalid_patterns_match_nothing() {
    check(&[
        ("regex", json!(r"^v[a-z]+\d$"), json!({"k": "value5"}), true),
        ("regex", json!("alu"), json!({"k": "value"}), true),
        ("regex", json!("^alu"), json!({"k": "value"}), false),
        ("regex", json!(""), json!({"k": "anything"}), true),
        ("regex", json!("^12"), json!({"k": 123}), true),
        ("regex", json!("^true$"), json!({"k": true}), true),
        // fancy_regex: look-around is supported like on PostHog's server.
        ("regex", json!("foo(?=bar)"), json!({"k": "foobar"}), true),
        ("regex", json!("foo(?!bar)"), json!({"k": "foobar"}), false),
        ("regex", json!("("), json!({"k": "("}), false),
        ("not_regex", json!("("), json!({"k": "("}), false),
        ("not_regex", json!("^alu"), json!({"k": "value"}), true),
        ("not_regex", json!("alu"), json!({"k": "value"}), false),
        ("not_regex", json!("alu"), json!({}), true),
        ("regex", json!("alu"), json!({}), false),
    ]);
}

#[test]
fn a_regex_that_exhausts_the_backtrack_limit_matches_neither_way() {
    // Nested quantifiers plus a backreference (which forces fancy_regex's backtracking VM):
    // exponential on 30 x's without a y, so the 10 000-step budget runs out.
    let pattern = json!(r"(x+x+)+y\1");
    let props = json!({"k": "x".repeat(30)});
    check(&[
        ("regex", pattern.clone(), props.clone(), false),
        ("not_regex", pattern, props, false),
    ]);
}

#[test]
fn numeric_comparisons_parse_both_sides_as_numbers() {
    check(&[
        ("gt", json!(10), json!({"k": 11}), true),
        ("gt", json!(10), json!({"k": 10}), false),
        ("gte", json!(10), json!({"k": 10}), true),
        ("lt", json!(10), json!({"k": 9.5}), true),
        ("lte", json!(10), json!({"k": 10}), true),
        ("lte", json!(10), json!({"k": 10.01}), false),
        ("gt", json!(10), json!({"k": "11"}), true),
        ("gt", json!("10"), json!({"k": 11}), true),
        ("gt", json!(10), json!({"k": "1e3"}), true),
        // Not numbers: no match (no string comparison, unlike the Node SDK).
        ("gt", json!(10), json!({"k": "abc"}), false),
        ("lt", json!(10), json!({"k": "abc"}), false),
        ("gt", json!("abc"), json!({"k": 11}), false),
        ("lt", json!("abc"), json!({"k": 11}), false),
        ("gt", json!(0), json!({"k": true}), false),
        ("lt", json!(10), json!({"k": null}), false),
        ("gt", json!(10), json!({}), false),
        ("lt", json!(10), json!({}), false),
    ]);
}

#[test]
fn between_is_inclusive_and_needs_a_valid_range() {
    check(&[
        ("between", json!([1, 5]), json!({"k": 5}), true),
        ("between", json!([1, 5]), json!({"k": 1}), true),
        ("between", json!([1, 5]), json!({"k": "3"}), true),
        ("between", json!([1, 5]), json!({"k": 6}), false),
        ("not_between", json!([1, 5]), json!({"k": 6}), true),
        ("not_between", json!([1, 5]), json!({"k": 3}), false),
        ("not_between", json!([1, 5]), json!({}), true),
        ("between", json!([1, 5]), json!({}), false),
        ("between", json!([5, 1]), json!({"k": 3}), false),
        ("not_between", json!([5, 1]), json!({"k": 9}), false),
        ("between", json!([1]), json!({"k": 1}), false),
        ("not_between", json!([1, 5]), json!({"k": "abc"}), false),
    ]);
}

#[test]
fn is_set_and_is_not_set_look_at_presence_only() {
    check(&[
        ("is_set", json!("is_set"), json!({"k": "x"}), true),
        ("is_set", json!("is_set"), json!({"k": null}), true),
        ("is_set", json!("is_set"), json!({"k": ""}), true),
        ("is_set", json!("is_set"), json!({}), false),
        ("is_not_set", json!("is_not_set"), json!({}), true),
        ("is_not_set", json!("is_not_set"), json!({"k": null}), false),
    ]);
}

#[test]
fn absolute_dates_are_strict_and_honour_offsets() {
    check(&[
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": "2023-12-31"}),
            true,
        ),
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": "2024-01-01"}),
            false,
        ),
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": "2023-12-31T23:59:59Z"}),
            true,
        ),
        // 00:00:01+01:00 is 23:00:01 UTC the day before.
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": "2024-01-01T00:00:01+01:00"}),
            true,
        ),
        (
            "is_date_after",
            json!("2024-01-01"),
            json!({"k": "2024-01-01T00:00:01"}),
            true,
        ),
        (
            "is_date_after",
            json!("2024-01-01 10:00:00"),
            json!({"k": "2024-01-01T09:00:00Z"}),
            false,
        ),
        (
            "is_date_after",
            json!("2024-01-01T10:00:00+02:00"),
            json!({"k": "2024-01-01T09:00:00Z"}),
            true,
        ),
        (
            "is_date_exact",
            json!("2024-01-01T00:00:00Z"),
            json!({"k": "2024-01-01"}),
            true,
        ),
        (
            "is_date_exact",
            json!("2024-01-01"),
            json!({"k": "2024-01-02"}),
            false,
        ),
    ]);
}

#[test]
fn numeric_date_properties_are_unix_seconds() {
    // 1704067199 = 2023-12-31T23:59:59Z, 1704067201 = 2024-01-01T00:00:01Z.
    check(&[
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": 1704067199}),
            true,
        ),
        (
            "is_date_after",
            json!("2024-01-01"),
            json!({"k": "1704067201"}),
            true,
        ),
        (
            "is_date_after",
            json!("2024-01-01"),
            json!({"k": 1704067200.5}),
            true,
        ),
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": 1704067200}),
            false,
        ),
    ]);
}

#[test]
fn unreadable_dates_never_match() {
    check(&[
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": "yesterday"}),
            false,
        ),
        (
            "is_date_after",
            json!("2024-01-01"),
            json!({"k": "yesterday"}),
            false,
        ),
        (
            "is_date_before",
            json!("2024-01-01"),
            json!({"k": true}),
            false,
        ),
        ("is_date_before", json!("2024-01-01"), json!({}), false),
        (
            "is_date_before",
            json!("not a date"),
            json!({"k": "2020-01-01"}),
            false,
        ),
        (
            "is_date_before",
            json!(20240101),
            json!({"k": "2020-01-01"}),
            false,
        ),
        // 10 000 and more units are rejected, then fail as an absolute date.
        (
            "is_date_after",
            json!("-10000d"),
            json!({"k": "2024-01-01"}),
            false,
        ),
    ]);
}

#[test]
fn relative_dates_count_back_from_the_given_now() {
    // now = 2024-03-31T12:00:00Z
    check(&[
        (
            "is_date_after",
            json!("-7d"),
            json!({"k": "2024-03-25"}),
            true,
        ),
        (
            "is_date_after",
            json!("-7d"),
            json!({"k": "2024-03-24"}),
            false,
        ),
        // The sign is ignored: 7d also means seven days ago.
        (
            "is_date_after",
            json!("7d"),
            json!({"k": "2024-03-25"}),
            true,
        ),
        (
            "is_date_after",
            json!("-1h"),
            json!({"k": "2024-03-31T11:30:00Z"}),
            true,
        ),
        (
            "is_date_after",
            json!("-1h"),
            json!({"k": "2024-03-31T10:59:00Z"}),
            false,
        ),
        (
            "is_date_before",
            json!("-2w"),
            json!({"k": "2024-03-17T11:59:59Z"}),
            true,
        ),
        (
            "is_date_before",
            json!("-2w"),
            json!({"k": "2024-03-17T12:00:01Z"}),
            false,
        ),
        // One calendar month back from 31 March clamps to 29 February (2024 is a leap year).
        (
            "is_date_before",
            json!("-1m"),
            json!({"k": "2024-02-29T11:00:00Z"}),
            true,
        ),
        (
            "is_date_before",
            json!("-1m"),
            json!({"k": "2024-02-29T13:00:00Z"}),
            false,
        ),
        // Steps are taken one at a time: 31 Mar → 29 Feb → 29 Jan.
        (
            "is_date_before",
            json!("-2m"),
            json!({"k": "2024-01-29T11:59:59Z"}),
            true,
        ),
        (
            "is_date_before",
            json!("-2m"),
            json!({"k": "2024-01-29T12:00:01Z"}),
            false,
        ),
        (
            "is_date_before",
            json!("-1y"),
            json!({"k": "2023-03-31T11:00:00Z"}),
            true,
        ),
        (
            "is_date_before",
            json!("-1y"),
            json!({"k": "2023-03-31T13:00:00Z"}),
            false,
        ),
        // A relative property value is read the same way.
        ("is_date_before", json!("-1d"), json!({"k": "-2d"}), true),
    ]);
}

#[test]
fn leap_day_minus_a_year_clamps_to_the_28th() {
    let flags = [flag(
        1,
        "f",
        condition(json!([person("k", "is_date_after", json!("-1y"))]), None),
    )];
    let leap_day = chrono::DateTime::parse_from_rfc3339("2024-02-29T12:00:00Z")
        .unwrap()
        .to_utc();
    let run = |value: &str| {
        let props = map(json!({"k": value}));
        let mut input = EvaluationInput::new("someone", leap_day);
        input.person_properties = &props;
        get(&evaluate(&flags, &input), "f").enabled
    };
    assert!(run("2023-02-28T12:00:01Z"));
    assert!(!run("2023-02-28T11:59:59Z"));
}

/// Versions are read as posthog-python reads them, so local and remote evaluation agree: a
/// leading `v`, missing parts as 0, pre-release/build suffixes dropped, and no match for what
/// it refuses (leading zeros, junk), where the SDK asks the server.
#[test]
fn semver_comparisons_follow_posthog_python() {
    check(&[
        ("semver_gt", json!("1.2.3"), json!({"k": "1.2.4"}), true),
        ("semver_gt", json!("1.2.3"), json!({"k": "v1.2.4"}), true),
        ("semver_gt", json!("1.2.3"), json!({"k": "1.2"}), false),
        ("semver_gt", json!("1.9.0"), json!({"k": "1.10.0"}), true),
        ("semver_gte", json!("1.2.3"), json!({"k": "1.2.3"}), true),
        ("semver_lte", json!("1.2.3"), json!({"k": "1.2.3"}), true),
        ("semver_eq", json!("1.2.0"), json!({"k": "1.2"}), true),
        ("semver_eq", json!("v2"), json!({"k": "2.0.0"}), true),
        ("semver_neq", json!("1.2.0"), json!({"k": "1.2.1"}), true),
        // Pre-release and build suffixes do not count.
        (
            "semver_eq",
            json!("1.2.0"),
            json!({"k": "1.2.0-beta"}),
            true,
        ),
        (
            "semver_lt",
            json!("1.2.0"),
            json!({"k": "1.2.0-beta"}),
            false,
        ),
        (
            "semver_eq",
            json!("1.2.0-alpha"),
            json!({"k": "1.2.0+b7"}),
            true,
        ),
        // Unparseable on either side: no match, even for semver_neq.
        ("semver_neq", json!("1.2.0"), json!({"k": "abc"}), false),
        ("semver_neq", json!("x.y"), json!({"k": "1.0.0"}), false),
        ("semver_gt", json!("1.0.0"), json!({}), false),
    ]);
}

#[test]
fn semver_leading_zeros_never_match_on_either_side() {
    let operators = [
        "semver_eq",
        "semver_neq",
        "semver_gt",
        "semver_gte",
        "semver_lt",
        "semver_lte",
        "semver_tilde",
        "semver_caret",
    ];
    let mut rows = Vec::new();
    for op in operators {
        for padded in ["01.2.3", "1.02.3", "1.2.03", "v01.2.3"] {
            rows.push((op, json!(padded), json!({"k": "1.2.3"}), false));
            rows.push((op, json!("1.2.3"), json!({"k": padded}), false));
        }
        // The same versions without padding do match (or differ) for every operator.
        let plain = matches!(
            op,
            "semver_eq" | "semver_gte" | "semver_lte" | "semver_tilde" | "semver_caret"
        );
        rows.push((op, json!("1.2.3"), json!({"k": "1.2.3"}), plain));
    }
    for padded in ["01.*", "1.02.*"] {
        rows.push((
            "semver_wildcard",
            json!(padded),
            json!({"k": "1.2.3"}),
            false,
        ));
    }
    rows.push((
        "semver_wildcard",
        json!("1.*"),
        json!({"k": "01.2.3"}),
        false,
    ));
    rows.push(("semver_wildcard", json!("1.*"), json!({"k": "1.2.3"}), true));
    check(&rows);
}

#[test]
fn semver_ranges_tilde_caret_and_wildcard() {
    check(&[
        ("semver_tilde", json!("1.2.3"), json!({"k": "1.2.9"}), true),
        ("semver_tilde", json!("1.2.3"), json!({"k": "1.3.0"}), false),
        ("semver_tilde", json!("1.2.3"), json!({"k": "1.2.2"}), false),
        ("semver_caret", json!("1.2.3"), json!({"k": "1.9.0"}), true),
        ("semver_caret", json!("1.2.3"), json!({"k": "2.0.0"}), false),
        ("semver_caret", json!("0.2.3"), json!({"k": "0.2.9"}), true),
        ("semver_caret", json!("0.2.3"), json!({"k": "0.3.0"}), false),
        ("semver_caret", json!("0.0.3"), json!({"k": "0.0.3"}), true),
        ("semver_caret", json!("0.0.3"), json!({"k": "0.0.4"}), false),
        ("semver_wildcard", json!("1.*"), json!({"k": "1.9.9"}), true),
        (
            "semver_wildcard",
            json!("1.*"),
            json!({"k": "2.0.0"}),
            false,
        ),
        (
            "semver_wildcard",
            json!("1.2.*"),
            json!({"k": "1.2.7"}),
            true,
        ),
        (
            "semver_wildcard",
            json!("1.2.*"),
            json!({"k": "1.3.0"}),
            false,
        ),
        (
            "semver_wildcard",
            json!("1.*.3"),
            json!({"k": "1.0.3"}),
            false,
        ),
    ]);
}

#[test]
fn unknown_and_cohort_only_operators_never_match_on_properties() {
    check(&[
        ("bogus", json!("x"), json!({"k": "x"}), false),
        ("in", json!(["x"]), json!({"k": "x"}), false),
        ("not_in", json!(["x"]), json!({"k": "y"}), false),
        ("flag_evaluates_to", json!(true), json!({"k": true}), false),
    ]);
}

#[test]
fn a_missing_operator_means_exact() {
    let filter = json!({"key": "k", "type": "person", "value": "x"});
    assert!(matches_with(filter.clone(), json!({"k": "X"}), 1));
    assert!(!matches_with(filter, json!({"k": "y"}), 1));
}

#[test]
fn negation_is_not_read_on_condition_filters() {
    // PostHog's server ignores `negation` outside cohorts; the filter matches as written.
    let filter =
        json!({"key": "k", "type": "person", "operator": "exact", "value": "x", "negation": true});
    assert!(matches_with(filter.clone(), json!({"k": "x"}), 1));
    assert!(!matches_with(filter, json!({"k": "y"}), 1));
}

#[test]
fn distinct_id_is_always_a_person_property() {
    let filter = person("distinct_id", "exact", json!("someone"));
    assert!(matches_with(filter, json!({}), 1));
    assert!(!matches_with(
        person("distinct_id", "is_not_set", json!("x")),
        json!({}),
        1
    ));
    // A request value wins over the derived one.
    assert!(!matches_with(
        person("distinct_id", "exact", json!("someone")),
        json!({"distinct_id": "other"}),
        1
    ));
}

#[test]
fn initial_properties_fall_back_to_their_current_counterparts() {
    let initial = |key: &str| person(key, "exact", json!("Chrome"));
    assert!(matches_with(
        initial("$initial_browser"),
        json!({"$browser": "Chrome"}),
        1
    ));
    assert!(matches_with(
        initial("$initial_utm_source"),
        json!({"utm_source": "Chrome"}),
        1
    ));
    assert!(!matches_with(
        initial("$initial_browser"),
        json!({"$browser": "Chrome", "$initial_browser": "Firefox"}),
        1
    ));
    // Only PostHog's list of adapted properties gets an initial twin.
    assert!(!matches_with(
        initial("$initial_plan"),
        json!({"plan": "Chrome"}),
        1
    ));
}
