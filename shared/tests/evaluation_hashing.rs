//! Bucketing must be bit-identical to PostHog (evaluation-rules.md §1): the spec's hash vectors and
//! posthog-python's 2 000-value consistency vectors through the whole engine.

mod evaluation_support;

use evaluation_support::*;
use serde_json::{Value, json};
use shared::evaluation::{EvaluationInput, FlagSet, hash};

#[test]
fn hash_vectors_of_the_spec() {
    // (prefix, identifier, salt, expected) from evaluation-rules.md §1.1, verified there against
    // Python, Node and an independent implementation.
    let vectors = [
        ("simple-flag.", "distinct_id_0", "", 0.7836963764220432_f64),
        ("simple-flag.", "distinct_id_1", "", 0.3397069926995401),
        (
            "multivariate-flag.",
            "distinct_id_0",
            "variant",
            0.6186454537930379,
        ),
        ("holdout-", "distinct_id_1", "", 0.5371522274899292),
        ("group-flag.", "acme", "", 0.06319250192159755),
        ("beta.", "üñí", "", 0.8802259022092067),
    ];
    for (prefix, id, salt, expected) in vectors {
        let got = hash(prefix, id, salt);
        assert_eq!(got.to_bits(), expected.to_bits(), "{prefix}{id}{salt}");
    }
}

#[test]
fn inputs_longer_than_one_sha1_block_hash_the_same_way() {
    // Strings of 55 (the longest that fits one padded block), 56, 64 and 120 bytes: a prefix
    // of k's plus "user-1". Expected values from Python's hashlib.
    for (len, expected) in [
        (55, 0.5353757496200909),
        (56, 0.2643800293506397),
        (64, 0.01629849312783506),
        (120, 0.4183901400809934_f64),
    ] {
        let prefix = "k".repeat(len - "user-1".len());
        assert_eq!(
            hash(&prefix, "user-1", "").to_bits(),
            expected.to_bits(),
            "{len} bytes"
        );
    }
}

#[test]
fn the_integer_part_is_the_first_fifteen_hex_digits() {
    // 0xc8a05362b9f414f = 903540405459435855, divided by 2^60 (what 0xFFFFFFFFFFFFFFF rounds
    // to as a double).
    let expected = 903_540_405_459_435_855_u64 as f64 / 1_152_921_504_606_846_976_f64;
    assert_eq!(hash("simple-flag.", "distinct_id_0", ""), expected);
}

fn vectors() -> Value {
    let text = include_str!("data/posthog_consistency_vectors.json");
    serde_json::from_str(text).expect("vector file is JSON")
}

/// Runs the PostHog test's flag for `distinct_id_0..999` and compares every value.
fn assert_consistent(case: &Value) {
    let definition = &case["flag"];
    let key = definition["key"].as_str().unwrap();
    let flags = [flag(1, key, definition["filters"].clone())];
    let prepared = FlagSet::new(&flags, &[]);
    let expected = case["results"].as_array().unwrap();
    assert_eq!(expected.len(), 1000);
    let mut mismatches = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        let id = format!("distinct_id_{i}");
        let answer = prepared.evaluate(&EvaluationInput::new(&id, now()));
        let got = get(&answer, key).value();
        if &got != want {
            mismatches.push((id, want.clone(), got));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn posthog_simple_flag_consistency_1000_ids() {
    let vectors = vectors();
    assert_eq!(
        vectors["simple"]["flag"]["filters"]["groups"][0]["rollout_percentage"],
        json!(45)
    );
    assert_consistent(&vectors["simple"]);
}

#[test]
fn posthog_multivariate_flag_consistency_1000_ids() {
    assert_consistent(&vectors()["multivariate"]);
}

#[test]
fn variant_bounds_accumulate_in_stored_order() {
    // Variant hash of multivariate-flag.distinct_id_0 is 0.6186… (§1.1). With 50/20/20/5/5 the
    // cumulative bounds are 0.5, 0.7, … so it lands in the second variant; reordering the same
    // percentages moves it, proving the stored order is honoured.
    let filters = |order: [(&str, f64); 3]| {
        json!({"groups": [{"properties": [], "rollout_percentage": 100}],
               "multivariate": {"variants": order.iter().map(|(k, p)| json!({"key": k, "rollout_percentage": p})).collect::<Vec<_>>()}})
    };
    let first = [flag(
        1,
        "multivariate-flag",
        filters([("a", 50.0), ("b", 20.0), ("c", 30.0)]),
    )];
    let second = [flag(
        1,
        "multivariate-flag",
        filters([("c", 30.0), ("a", 50.0), ("b", 20.0)]),
    )];
    let input = EvaluationInput::new("distinct_id_0", now());
    assert_eq!(
        get(&evaluate(&first, &input), "multivariate-flag").value(),
        json!("b")
    );
    // c: [0, 0.3), a: [0.3, 0.8) catches 0.6186.
    assert_eq!(
        get(&evaluate(&second, &input), "multivariate-flag").value(),
        json!("a")
    );
}

#[test]
fn variants_summing_below_100_leave_some_people_enabled_without_variant() {
    // Variant hash 0.6186… lies beyond a single 50 % variant: enabled, value `true`.
    let flags = [flag(
        1,
        "multivariate-flag",
        json!({"groups": [{"properties": [], "rollout_percentage": 100}],
               "multivariate": {"variants": [{"key": "only", "rollout_percentage": 50}]}}),
    )];
    let answer = evaluate(&flags, &EvaluationInput::new("distinct_id_0", now()));
    let record = get(&answer, "multivariate-flag");
    assert!(record.enabled);
    assert_eq!(record.variant, None);
    assert_eq!(record.value(), json!(true));
}

#[test]
fn rollout_comparison_is_inclusive_and_fractional() {
    // hash("simple-flag.distinct_id_1") = 0.3397069926995401.
    let at = |pct: f64| {
        let flags = [flag(1, "simple-flag", condition(json!([]), Some(pct)))];
        get(
            &evaluate(&flags, &EvaluationInput::new("distinct_id_1", now())),
            "simple-flag",
        )
        .enabled
    };
    assert!(at(33.98), "0.3397 <= 0.3398");
    assert!(!at(33.97), "0.3397 > 0.3397");
    assert!(!at(0.0));
    assert!(at(100.0));
}
