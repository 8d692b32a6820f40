//! Whole-flag behaviour (evaluation-rules.md §1.3–§2.11, §3.3): condition order and overrides, the
//! reported reason, holdouts, enrollment, dependencies, group flags, payloads, bucketing
//! identifiers, experience continuity, runtime and context filtering, cohorts.
//!
//! Bucket positions quoted in comments were computed independently with posthog-python's
//! `_hash` (`sha1("<key>.<id><salt>")[:15] / 0xFFFFFFFFFFFFFFF`).

mod evaluation_support;

use std::collections::HashMap;

use evaluation_support::*;
use serde_json::{Value, json};
use shared::evaluation::{
    Cohort, EvaluationInput, FlagEvaluation, FlagSet, GroupTypeMapping, ReasonCode, Runtime,
};
use shared::flag::Flag;

fn with(mut flag: Flag, edit: impl FnOnce(&mut Flag)) -> Flag {
    edit(&mut flag);
    flag
}

fn person(key: &str, operator: &str, value: Value) -> Value {
    json!({"key": key, "type": "person", "operator": operator, "value": value})
}

fn depends_on(reference: Value, expected: Value) -> Value {
    json!({"key": reference, "type": "flag", "operator": "flag_evaluates_to", "value": expected})
}

fn run(flags: &[Flag], id: &str, props: Value) -> shared::evaluation::Evaluations {
    let props = map(props);
    let mut input = EvaluationInput::new(id, now());
    input.person_properties = &props;
    evaluate(flags, &input)
}

fn reason(record: &FlagEvaluation) -> (String, Option<usize>, Option<String>) {
    (
        record.reason.code.to_string(),
        record.reason.condition_index,
        record.reason.description.as_deref().map(String::from),
    )
}

// ---------------------------------------------------------------------------------------------
// Conditions, overrides and reasons

/// Variants control/test 50/50 on key `mv`. Variant hashes: user-1 0.0266 (control),
/// user-5 0.5929 (test).
fn multivariate(groups: Value) -> Flag {
    flag(
        1,
        "mv",
        json!({"groups": groups, "multivariate": {"variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "test", "rollout_percentage": 50}]}}),
    )
}

#[test]
fn first_matching_condition_wins_and_is_reported_from_one() {
    let flags = [flag(
        1,
        "beta",
        json!({"groups": [
            {"properties": [person("plan", "exact", json!("pro"))], "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 100}]}),
    )];
    let pro = run(&flags, "user-1", json!({"plan": "pro"}));
    assert_eq!(
        reason(get(&pro, "beta")),
        (
            "condition_match".into(),
            Some(0),
            Some("Matched condition set 1".into())
        )
    );
    let free = run(&flags, "user-1", json!({"plan": "free"}));
    assert_eq!(
        reason(get(&free, "beta")),
        (
            "condition_match".into(),
            Some(1),
            Some("Matched condition set 2".into())
        )
    );
}

#[test]
fn hashed_variants() {
    let flags = [multivariate(
        json!([{"properties": [], "rollout_percentage": 100}]),
    )];
    assert_eq!(
        get(&run(&flags, "user-1", json!({})), "mv").value(),
        json!("control")
    );
    assert_eq!(
        get(&run(&flags, "user-5", json!({})), "mv").value(),
        json!("test")
    );
}

#[test]
fn a_condition_variant_override_applies_when_it_names_a_variant() {
    let flags = [multivariate(json!([
        {"properties": [person("email", "icontains", json!("@corp"))], "rollout_percentage": 100, "variant": "test"},
        {"properties": [person("email", "icontains", json!("@other"))], "rollout_percentage": 100, "variant": "nope"},
        {"properties": [], "rollout_percentage": 100}]))];
    // user-1's hashed variant is control; the override moves corp users to test.
    assert_eq!(
        get(&run(&flags, "user-1", json!({"email": "a@corp.com"})), "mv").value(),
        json!("test")
    );
    // An override naming no variant falls back to the hashed one.
    assert_eq!(
        get(
            &run(&flags, "user-1", json!({"email": "a@other.com"})),
            "mv"
        )
        .value(),
        json!("control")
    );
    assert_eq!(
        get(&run(&flags, "user-1", json!({"email": "a@x.com"})), "mv").value(),
        json!("control")
    );
}

#[test]
fn override_conditions_are_not_moved_to_the_front() {
    let flags = [multivariate(json!([
        {"properties": [], "rollout_percentage": 100},
        {"properties": [], "rollout_percentage": 100, "variant": "test"}]))];
    let answer = run(&flags, "user-1", json!({}));
    assert_eq!(get(&answer, "mv").value(), json!("control"));
    assert_eq!(get(&answer, "mv").reason.condition_index, Some(0));
}

#[test]
fn out_of_rollout_bound_is_reported_for_the_condition_that_excluded() {
    // beta.user-4 = 0.6112 > 0.5; beta.user-6 = 0.1869 <= 0.5.
    let flags = [flag(1, "beta", condition(json!([]), Some(50.0)))];
    let out = run(&flags, "user-4", json!({}));
    assert!(!get(&out, "beta").enabled);
    assert_eq!(
        reason(get(&out, "beta")),
        (
            "out_of_rollout_bound".into(),
            Some(0),
            Some("Out of rollout bound".into())
        )
    );
    assert!(get(&run(&flags, "user-6", json!({})), "beta").enabled);
}

#[test]
fn the_best_scoring_reason_wins_and_ties_go_to_the_later_condition() {
    let rollout_out = json!({"properties": [], "rollout_percentage": 50}); // user-4 is out
    let no_match = json!({"properties": [person("plan", "exact", json!("pro"))]});
    let case = |groups: Value| {
        let flags = [flag(1, "beta", json!({"groups": groups}))];
        let answer = run(&flags, "user-4", json!({}));
        let record = get(&answer, "beta");
        (
            record.reason.code.to_string(),
            record.reason.condition_index,
        )
    };
    assert_eq!(
        case(json!([rollout_out, no_match])),
        ("out_of_rollout_bound".into(), Some(0))
    );
    assert_eq!(
        case(json!([no_match, rollout_out])),
        ("out_of_rollout_bound".into(), Some(1))
    );
    assert_eq!(
        case(json!([no_match, no_match])),
        ("no_condition_match".into(), Some(1))
    );
}

#[test]
fn a_flag_without_conditions_reports_no_group_type() {
    let flags = [flag(1, "empty", json!({"groups": []}))];
    let answer = run(&flags, "user-1", json!({}));
    assert!(!get(&answer, "empty").enabled);
    assert_eq!(
        reason(get(&answer, "empty")),
        ("no_group_type".into(), None, Some("No group type".into()))
    );
}

#[test]
fn legacy_filters_without_groups_hold_everyone() {
    // A new flag's `{}` filters are shown as one condition for everyone; evaluation agrees.
    let flags = [flag(1, "legacy", json!({}))];
    assert!(get(&run(&flags, "anyone", json!({})), "legacy").enabled);
}

#[test]
fn inactive_and_deleted_flags_are_left_out() {
    let flags = [
        flag(1, "on", condition(json!([]), None)),
        with(flag(2, "off", condition(json!([]), None)), |f| {
            f.active = false
        }),
        with(flag(3, "gone", condition(json!([]), None)), |f| {
            f.deleted = true
        }),
    ];
    assert_eq!(keys(&run(&flags, "user-1", json!({}))), ["on"]);
}

// ---------------------------------------------------------------------------------------------
// Holdouts

fn held(key: &str, id: i64, exclusion: f64, groups: Value) -> Flag {
    flag(
        id,
        key,
        json!({"groups": groups, "holdout": {"id": 7, "exclusion_percentage": exclusion},
               "payloads": {"holdout-7": "\"held\"", "true": "\"normal\""}}),
    )
}

#[test]
fn held_out_people_get_the_holdout_variant_before_any_condition() {
    // holdout-user-1 = 0.1781 <= 0.2; holdout-user-2 = 0.9284.
    let flags = [held(
        "beta",
        1,
        20.0,
        json!([{"properties": [person("plan", "exact", json!("pro"))]}]),
    )];
    let answer = run(&flags, "user-1", json!({}));
    let record = get(&answer, "beta");
    assert!(record.enabled);
    assert_eq!(record.variant.as_deref(), Some("holdout-7"));
    assert_eq!(
        reason(record),
        (
            "holdout_condition_value".into(),
            None,
            Some("Holdout condition value".into())
        )
    );
    assert_eq!(record.payload, Some(json!("\"held\"")));

    let not_held = run(&flags, "user-2", json!({"plan": "pro"}));
    assert_eq!(get(&not_held, "beta").value(), json!(true));
    assert_eq!(get(&not_held, "beta").payload, Some(json!("\"normal\"")));
}

#[test]
fn one_holdout_excludes_the_same_people_from_every_flag() {
    let flags = [
        held("first", 1, 20.0, json!([{"properties": []}])),
        held("second", 2, 20.0, json!([{"properties": []}])),
    ];
    let answer = run(&flags, "user-7", json!({})); // holdout-user-7 = 0.098
    assert_eq!(get(&answer, "first").value(), json!("holdout-7"));
    assert_eq!(get(&answer, "second").value(), json!("holdout-7"));
}

#[test]
fn holdout_percentage_is_clamped() {
    let value = |exclusion: f64, id: &str| {
        let flags = [held("beta", 1, exclusion, json!([{"properties": []}]))];
        get(&run(&flags, id, json!({})), "beta").value()
    };
    assert_eq!(value(0.0, "user-1"), json!(true));
    assert_eq!(value(100.0, "user-2"), json!("holdout-7"));
    assert_eq!(value(150.0, "user-2"), json!("holdout-7"));
    assert_eq!(value(-5.0, "user-7"), json!(true));
}

#[test]
fn group_flag_holdouts_hash_the_group_key() {
    // holdout-initech = 0.1899, holdout-acme = 0.927.
    let flags = [with(held("g", 1, 20.0, json!([{"properties": []}])), |f| {
        f.filters["aggregation_group_type_index"] = json!(0);
    })];
    let mapping = GroupTypeMapping::new([(0, "company".to_string())]);
    let value = |company: &str| {
        let groups = map(json!({"company": company}));
        let mut input = EvaluationInput::new("user-1", now());
        input.groups = &groups;
        input.group_type_mapping = &mapping;
        get(&evaluate(&flags, &input), "g").value()
    };
    assert_eq!(value("initech"), json!("holdout-7"));
    assert_eq!(value("acme"), json!(true));
}

// ---------------------------------------------------------------------------------------------
// Early access: feature enrollment and super groups

fn enrollment_flag() -> Flag {
    // Rollout 0: without enrollment nobody gets the flag.
    flag(
        1,
        "beta-x",
        json!({"groups": [{"properties": [], "rollout_percentage": 0}],
               "feature_enrollment": true, "payloads": {"true": "{\"a\": 1}"}}),
    )
}

#[test]
fn feature_enrollment_decides_alone_when_the_person_has_the_property() {
    let flags = [enrollment_flag()];
    let enrolled = run(
        &flags,
        "user-1",
        json!({"$feature_enrollment/beta-x": true}),
    );
    let record = get(&enrolled, "beta-x");
    assert_eq!(record.value(), json!(true));
    assert_eq!(
        reason(record),
        (
            "super_condition_value".into(),
            Some(0),
            Some("Super condition value".into())
        )
    );
    assert_eq!(record.payload, Some(json!("{\"a\": 1}")));

    assert!(
        get(
            &run(
                &flags,
                "user-1",
                json!({"$feature_enrollment/beta-x": "true"})
            ),
            "beta-x"
        )
        .enabled
    );
    // Only `true` or the exact string "true" enable.
    for other in [json!(false), json!("TRUE"), json!("yes"), json!(1)] {
        let answer = run(
            &flags,
            "user-1",
            json!({"$feature_enrollment/beta-x": other}),
        );
        let record = get(&answer, "beta-x");
        assert!(!record.enabled, "{other}");
        assert_eq!(record.reason.code, "super_condition_value");
        assert_eq!(record.payload, None);
    }
    // Absent: the normal conditions decide.
    let absent = run(&flags, "user-1", json!({}));
    assert_eq!(get(&absent, "beta-x").reason.code, "out_of_rollout_bound");
}

#[test]
fn legacy_super_groups_decide_when_the_person_has_one_of_their_properties() {
    // The shape the early access module writes.
    let flags = [flag(
        1,
        "beta-x",
        json!({"groups": [{"properties": [], "rollout_percentage": 0}],
               "super_groups": [{"properties": [person("$feature_enrollment/beta-x", "exact", json!(["true"]))],
                                 "rollout_percentage": 100}]}),
    )];
    let on = run(
        &flags,
        "user-1",
        json!({"$feature_enrollment/beta-x": true}),
    );
    assert_eq!(
        (
            get(&on, "beta-x").enabled,
            get(&on, "beta-x").reason.code.as_ref(),
            get(&on, "beta-x").reason.condition_index
        ),
        (true, "super_condition_value", Some(0))
    );
    let off = run(
        &flags,
        "user-1",
        json!({"$feature_enrollment/beta-x": false}),
    );
    assert_eq!(
        (
            get(&off, "beta-x").enabled,
            get(&off, "beta-x").reason.code.as_ref()
        ),
        (false, "super_condition_value")
    );
    let absent = run(&flags, "user-1", json!({}));
    assert_eq!(get(&absent, "beta-x").reason.code, "out_of_rollout_bound");
}

#[test]
fn feature_enrollment_takes_precedence_over_super_groups() {
    let flags = [with(enrollment_flag(), |f| {
        f.filters["super_groups"] = json!([{"properties": [person("vip", "exact", json!(true))], "rollout_percentage": 100}]);
    })];
    // The super group would enable a VIP; the new format ignores it.
    let answer = run(&flags, "user-1", json!({"vip": true}));
    assert!(!get(&answer, "beta-x").enabled);
    assert_eq!(get(&answer, "beta-x").reason.code, "out_of_rollout_bound");
}

// ---------------------------------------------------------------------------------------------
// Flag dependencies

fn always(id: i64, key: &str) -> Flag {
    flag(id, key, condition(json!([]), None))
}

fn dependent(id: i64, key: &str, reference: Value, expected: Value) -> Flag {
    flag(
        id,
        key,
        condition(json!([depends_on(reference, expected)]), None),
    )
}

#[test]
fn dependencies_are_evaluated_first_whatever_the_input_order() {
    let flags = [
        dependent(3, "c", json!("2"), json!(true)),
        dependent(2, "b", json!("1"), json!(true)),
        always(1, "a"),
    ];
    let answer = run(&flags, "user-1", json!({}));
    assert_eq!(
        keys(&answer),
        ["c", "b", "a"],
        "answers keep the input order"
    );
    assert!(get(&answer, "c").enabled);
    assert!(get(&answer, "b").enabled);
}

#[test]
fn flag_evaluates_to_true_false_and_variants() {
    let blue = flag(
        1,
        "colour",
        json!({"groups": [{"properties": []}], "multivariate": {"variants": [{"key": "blue", "rollout_percentage": 100}]}}),
    );
    let flags = [
        blue,
        dependent(2, "wants-blue", json!(1), json!("blue")),
        dependent(3, "wants-red", json!(1), json!("red")),
        dependent(4, "wants-on", json!(1), json!(true)),
        dependent(5, "wants-off", json!(1), json!(false)),
        dependent(6, "wants-number", json!(1), json!(1)),
        flag(
            7,
            "wrong-operator",
            condition(
                json!([{"key": "1", "type": "flag", "operator": "exact", "value": true}]),
                None,
            ),
        ),
    ];
    let answer = run(&flags, "user-1", json!({}));
    let on = |key| get(&answer, key).enabled;
    assert!(on("wants-blue"));
    assert!(!on("wants-red"));
    assert!(on("wants-on"));
    assert!(!on("wants-off"));
    assert!(!on("wants-number"));
    assert!(!on("wrong-operator"));
    assert_eq!(get(&answer, "wants-red").reason.code, "no_condition_match");
}

#[test]
fn a_disabled_dependency_reads_as_false() {
    let off = with(always(1, "a"), |f| f.active = false);
    let flags = [
        off,
        dependent(2, "needs-a-off", json!("1"), json!(false)),
        dependent(3, "needs-a-on", json!("1"), json!(true)),
    ];
    let answer = run(&flags, "user-1", json!({}));
    assert!(get(&answer, "needs-a-off").enabled);
    assert!(!get(&answer, "needs-a-on").enabled);
    assert!(answer.get("a").is_none());
}

#[test]
fn dependencies_resolve_by_id_or_by_key() {
    let flags = [
        always(1, "flag-a"),
        dependent(2, "by-key", json!("flag-a"), json!(true)),
    ];
    assert!(get(&run(&flags, "user-1", json!({})), "by-key").enabled);
}

#[test]
fn missing_dependencies_make_the_flag_and_its_dependents_false() {
    let flags = [
        dependent(2, "b", json!("999"), json!(true)),
        dependent(3, "c", json!("2"), json!(false)),
        dependent(4, "on-deleted", json!("5"), json!(false)),
        with(always(5, "deleted"), |f| f.deleted = true),
        always(6, "fine"),
    ];
    let answer = run(&flags, "user-1", json!({}));
    for key in ["b", "c", "on-deleted"] {
        let record = get(&answer, key);
        assert!(!record.enabled, "{key}");
        assert_eq!(
            reason(record),
            (
                "missing_dependency".into(),
                None,
                Some("Flag cannot be evaluated due to missing dependency".into())
            ),
            "{key}"
        );
    }
    assert!(get(&answer, "fine").enabled);
    assert!(
        !answer.errors_while_computing_flags,
        "a missing flag is not an error"
    );
}

#[test]
fn cycles_are_false_and_set_the_error_flag() {
    let flags = [
        dependent(10, "x", json!("11"), json!(true)),
        dependent(11, "y", json!("10"), json!(true)),
        dependent(12, "z", json!("10"), json!(false)),
        dependent(13, "me", json!("13"), json!(false)),
        always(14, "fine"),
    ];
    let answer = run(&flags, "user-1", json!({}));
    for key in ["x", "y", "z", "me"] {
        assert_eq!(get(&answer, key).reason.code, "missing_dependency", "{key}");
        assert!(!get(&answer, key).enabled);
    }
    assert!(get(&answer, "fine").enabled);
    assert!(answer.errors_while_computing_flags);
}

#[test]
fn flag_keys_restrict_the_answer_to_them_and_their_dependencies() {
    let flags = [
        always(1, "a"),
        dependent(2, "b", json!("1"), json!(true)),
        always(3, "unrelated"),
        dependent(10, "x", json!("11"), json!(true)),
        dependent(11, "y", json!("10"), json!(true)),
    ];
    let wanted = vec!["b".to_string()];
    let mut input = EvaluationInput::new("user-1", now());
    input.flag_keys = Some(&wanted);
    let answer = evaluate(&flags, &input);
    assert_eq!(keys(&answer), ["a", "b"]);
    assert!(get(&answer, "b").enabled);
    assert!(
        !answer.errors_while_computing_flags,
        "the cycle is outside the request"
    );
}

// ---------------------------------------------------------------------------------------------
// Group flags

fn company_mapping() -> GroupTypeMapping {
    GroupTypeMapping::from_json(&json!({"0": "company", "1": "project"}))
}

fn group_flag(rollout: f64, properties: Value) -> Flag {
    flag(
        1,
        "group-flag",
        json!({"aggregation_group_type_index": 0,
               "groups": [{"properties": properties, "rollout_percentage": rollout}]}),
    )
}

fn run_groups(
    flags: &[Flag],
    groups: Value,
    group_props: Value,
    person_props: Value,
) -> shared::evaluation::Evaluations {
    let mapping = company_mapping();
    let groups = map(groups);
    let group_props = map(group_props);
    let person_props = map(person_props);
    let mut input = EvaluationInput::new("user-1", now());
    input.groups = &groups;
    input.group_properties = &group_props;
    input.person_properties = &person_props;
    input.group_type_mapping = &mapping;
    evaluate(flags, &input)
}

#[test]
fn group_flags_bucket_on_the_group_key() {
    // group-flag.acme = 0.0632, group-flag.globex = 0.3079, group-flag.42 = 0.5242,
    // group-flag.initech = 0.7798.
    let ten = [group_flag(10.0, json!([]))];
    assert!(
        get(
            &run_groups(&ten, json!({"company": "acme"}), json!({}), json!({})),
            "group-flag"
        )
        .enabled
    );
    let globex = run_groups(&ten, json!({"company": "globex"}), json!({}), json!({}));
    assert_eq!(
        get(&globex, "group-flag").reason.code,
        "out_of_rollout_bound"
    );
    let fifty_five = [group_flag(55.0, json!([]))];
    assert!(
        get(
            &run_groups(&fifty_five, json!({"company": 42}), json!({}), json!({})),
            "group-flag"
        )
        .enabled
    );
    assert!(
        get(
            &run_groups(&fifty_five, json!({"company": "42"}), json!({}), json!({})),
            "group-flag"
        )
        .enabled
    );
    assert!(
        !get(
            &run_groups(
                &fifty_five,
                json!({"company": "initech"}),
                json!({}),
                json!({})
            ),
            "group-flag"
        )
        .enabled
    );
}

#[test]
fn a_group_flag_without_its_group_reports_no_group_type() {
    let flags = [group_flag(100.0, json!([]))];
    for groups in [
        json!({}),
        json!({"company": ""}),
        json!({"company": null}),
        json!({"project": "p"}),
    ] {
        let answer = run_groups(&flags, groups.clone(), json!({}), json!({}));
        let record = get(&answer, "group-flag");
        assert!(!record.enabled, "{groups}");
        assert_eq!(
            reason(record),
            (
                "no_group_type".into(),
                Some(0),
                Some("No group type".into())
            ),
            "{groups}"
        );
    }
    // An index missing from the mapping is the same as a missing group.
    let unmapped = [with(group_flag(100.0, json!([])), |f| {
        f.filters["aggregation_group_type_index"] = json!(3)
    })];
    let answer = run_groups(&unmapped, json!({"company": "acme"}), json!({}), json!({}));
    assert_eq!(get(&answer, "group-flag").reason.code, "no_group_type");
}

#[test]
fn group_properties_come_from_the_named_group_type() {
    let flags = [group_flag(
        100.0,
        json!([{"key": "name", "type": "group", "group_type_index": 0, "operator": "exact", "value": "Acme Inc"}]),
    )];
    let hit = run_groups(
        &flags,
        json!({"company": "acme"}),
        json!({"company": {"name": "Acme Inc"}}),
        json!({}),
    );
    assert!(get(&hit, "group-flag").enabled);
    let other_type = run_groups(
        &flags,
        json!({"company": "acme"}),
        json!({"project": {"name": "Acme Inc"}}),
        json!({}),
    );
    assert_eq!(
        get(&other_type, "group-flag").reason.code,
        "no_condition_match"
    );
}

#[test]
fn person_filters_in_a_group_condition_read_person_properties() {
    let flags = [group_flag(
        100.0,
        json!([person("plan", "exact", json!("pro"))]),
    )];
    let answer = run_groups(
        &flags,
        json!({"company": "acme"}),
        json!({"company": {"plan": "free"}}),
        json!({"plan": "pro"}),
    );
    assert!(get(&answer, "group-flag").enabled);
}

#[test]
fn mixed_targeting_skips_group_conditions_without_their_group() {
    let flags = [flag(
        1,
        "mixed",
        json!({"aggregation_group_type_index": 0, "groups": [
            {"properties": [], "rollout_percentage": 100, "aggregation_group_type_index": 0},
            {"properties": [person("email", "icontains", json!("@corp"))], "rollout_percentage": 100,
             "aggregation_group_type_index": null}]}),
    )];
    let corp = run_groups(&flags, json!({}), json!({}), json!({"email": "a@corp.com"}));
    assert_eq!(
        outcome(get(&corp, "mixed")),
        (json!(true), "condition_match".into(), Some(1))
    );
    let other = run_groups(&flags, json!({}), json!({}), json!({"email": "a@x.com"}));
    assert_eq!(
        reason(get(&other, "mixed")),
        (
            "no_condition_match".into(),
            Some(1),
            Some("No matching condition set (group conditions were not evaluated because no group type was provided)".into())
        )
    );
    assert_eq!(
        get(&other, "mixed").code,
        Some(ReasonCode::NoConditionMatchGroupsNotEvaluated)
    );
    let with_group = run_groups(&flags, json!({"company": "acme"}), json!({}), json!({}));
    assert_eq!(get(&with_group, "mixed").reason.condition_index, Some(0));
}

// ---------------------------------------------------------------------------------------------
// Payloads

#[test]
fn payloads_are_returned_as_stored_for_enabled_results_only() {
    let boolean = flag(
        1,
        "bool",
        json!({"groups": [{"properties": [person("plan", "exact", json!("pro"))]}],
               "payloads": {"true": "{\"a\": 1}", "false": "\"never\""}}),
    );
    let variants = with(multivariate(json!([{"properties": []}])), |f| {
        f.filters["payloads"] = json!({"control": "\"c\"", "test": "[1, 2]"});
    });
    let flags = [boolean, variants];
    let pro = run(&flags, "user-1", json!({"plan": "pro"}));
    assert_eq!(get(&pro, "bool").payload, Some(json!("{\"a\": 1}")));
    assert_eq!(get(&pro, "mv").payload, Some(json!("\"c\"")));
    assert_eq!(
        get(&run(&flags, "user-5", json!({})), "mv").payload,
        Some(json!("[1, 2]"))
    );
    let free = run(&flags, "user-1", json!({"plan": "free"}));
    assert_eq!(
        get(&free, "bool").payload,
        None,
        "no payload for a disabled flag, not even \"false\""
    );
}

#[test]
fn encrypted_payloads_are_marked_for_the_caller() {
    let flags = [with(
        flag(
            1,
            "secret",
            json!({"groups": [{"properties": []}], "payloads": {"true": "gAAAA-token"}}),
        ),
        |f| f.has_encrypted_payloads = Some(true),
    )];
    let answer = run(&flags, "user-1", json!({}));
    assert!(get(&answer, "secret").payload_encrypted);
    assert_eq!(get(&answer, "secret").payload, Some(json!("gAAAA-token")));
}

// ---------------------------------------------------------------------------------------------
// Bucketing identifiers

fn device_flag() -> Flag {
    with(flag(1, "dev-flag", condition(json!([]), Some(30.0))), |f| {
        f.bucketing_identifier = "device_id".into();
    })
}

#[test]
fn device_id_bucketing_hashes_the_device() {
    // dev-flag.user-2 = 0.8461 but dev-flag.device-c = 0.1954; dev-flag.user-3 = 0.0466 but
    // dev-flag.device-a = 0.6339.
    let flags = [device_flag()];
    let value = |id: &str, device: Option<&str>| {
        let mut input = EvaluationInput::new(id, now());
        input.device_id = device;
        let answer = evaluate(&flags, &input);
        outcome(get(&answer, "dev-flag"))
    };
    assert_eq!(value("user-2", Some("device-c")).0, json!(true));
    assert_eq!(value("user-3", Some("device-a")).1, "out_of_rollout_bound");
    // Without a device id the person condition cannot place anyone.
    assert_eq!(
        value("user-3", None),
        (json!(false), "out_of_rollout_bound".into(), Some(0))
    );
    assert_eq!(value("user-3", Some("")).0, json!(false));
}

#[test]
fn the_device_id_may_come_from_person_properties() {
    // dev-flag.device-c = 0.1954 <= 0.3, dev-flag.user-2 = 0.8461.
    let flags = [device_flag()];
    let answer = run(&flags, "user-2", json!({"$device_id": "device-c"}));
    assert!(get(&answer, "dev-flag").enabled);
    // The request's own device id wins.
    let props = map(json!({"$device_id": "device-c"}));
    let mut input = EvaluationInput::new("user-2", now());
    input.person_properties = &props;
    input.device_id = Some("device-a");
    assert!(!get(&evaluate(&flags, &input), "dev-flag").enabled);
}

#[test]
fn experience_continuity_hashes_the_override_then_the_anonymous_id() {
    // eec.user-1 = 0.5828 (out of 50 %), eec.anon-1 = 0.2627 (in), eec.anon-2 = 0.5318 (out).
    let eec = with(flag(1, "eec", condition(json!([]), Some(50.0))), |f| {
        f.ensure_experience_continuity = Some(true);
    });
    let plain = with(eec.clone(), |f| {
        f.ensure_experience_continuity = Some(false)
    });
    let enabled = |flag: &Flag, overrides: &[(&str, &str)], anon: Option<&str>| {
        let overrides: HashMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut input = EvaluationInput::new("user-1", now());
        input.hash_key_overrides = &overrides;
        input.anon_distinct_id = anon;
        get(&evaluate(std::slice::from_ref(flag), &input), "eec").enabled
    };
    assert!(!enabled(&eec, &[], None));
    assert!(enabled(&eec, &[("eec", "anon-1")], None));
    assert!(enabled(&eec, &[], Some("anon-1")));
    assert!(
        !enabled(&eec, &[("eec", "anon-2")], Some("anon-1")),
        "a stored override wins"
    );
    assert!(!enabled(&eec, &[("other", "anon-1")], None));
    assert!(
        !enabled(&plain, &[], Some("anon-1")),
        "only continuity flags use the anonymous id"
    );
}

#[test]
fn continuity_helpers_tell_the_caller_what_to_read_and_write() {
    let eec = |id, key: &str, filters: Value| {
        with(flag(id, key, filters), |f| {
            f.ensure_experience_continuity = Some(true)
        })
    };
    let everyone = eec(1, "everyone", condition(json!([]), None));
    let half = eec(2, "half", condition(json!([]), Some(50.0)));
    let off = with(eec(3, "off", condition(json!([]), Some(50.0))), |f| {
        f.active = false
    });
    assert!(!FlagSet::new(std::slice::from_ref(&everyone), &[]).needs_hash_key_overrides());
    let set = FlagSet::new(&[everyone, half, off, always(4, "plain")], &[]);
    assert!(set.needs_hash_key_overrides());
    assert_eq!(set.experience_continuity_keys(), ["everyone", "half"]);
}

// ---------------------------------------------------------------------------------------------
// Runtime and evaluation contexts

#[test]
fn the_request_runtime_selects_flags() {
    let flags = [
        with(always(1, "all"), |f| f.evaluation_runtime = "all".into()),
        with(always(2, "client"), |f| {
            f.evaluation_runtime = "client".into()
        }),
        with(always(3, "server"), |f| {
            f.evaluation_runtime = "SERVER".into()
        }),
        with(always(4, "odd"), |f| {
            f.evaluation_runtime = "unknown".into()
        }),
    ];
    let visible = |runtime: Option<Runtime>| {
        let mut input = EvaluationInput::new("user-1", now());
        input.runtime = runtime;
        let answer = evaluate(&flags, &input);
        keys(&answer)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(visible(Some(Runtime::Server)), ["all", "server", "odd"]);
    assert_eq!(visible(Some(Runtime::Client)), ["all", "client", "odd"]);
    assert_eq!(visible(None), ["all", "odd"]);
    assert_eq!(
        visible(Some(Runtime::All)),
        ["all", "client", "server", "odd"]
    );
}

#[test]
fn runtime_detection_follows_posthog() {
    assert_eq!(
        Runtime::detect(Some(Runtime::Client), Some("posthog-python/7.91.1"), false),
        Some(Runtime::Client)
    );
    assert_eq!(
        Runtime::detect(None, Some("posthog-python/7.91.1"), false),
        Some(Runtime::Server)
    );
    assert_eq!(
        Runtime::detect(None, Some("posthog-node/5.70.0"), true),
        Some(Runtime::Server)
    );
    assert_eq!(
        Runtime::detect(None, Some("Mozilla/5.0 (X11)"), false),
        Some(Runtime::Client)
    );
    assert_eq!(
        Runtime::detect(None, Some("posthog-ios/3.0"), false),
        Some(Runtime::Client)
    );
    assert_eq!(
        Runtime::detect(None, Some("my-app/1.0"), true),
        Some(Runtime::Client)
    );
    assert_eq!(Runtime::detect(None, None, false), None);
    assert_eq!(Runtime::parse("Client"), Runtime::Client);
    assert_eq!(Runtime::parse(""), Runtime::All);
}

#[test]
fn evaluation_contexts_keep_untagged_flags_and_matching_tags() {
    let flags = [
        with(always(1, "web"), |f| f.evaluation_tags = vec!["web".into()]),
        with(always(2, "mobile"), |f| {
            f.evaluation_tags = vec!["mobile".into()]
        }),
        always(3, "untagged"),
        dependent(4, "needs-mobile-off", json!("2"), json!(false)),
    ];
    let visible = |contexts: &[String]| {
        let mut input = EvaluationInput::new("user-1", now());
        input.evaluation_contexts = contexts;
        let answer = evaluate(&flags, &input);
        let names: Vec<String> = keys(&answer).into_iter().map(String::from).collect();
        (names, answer.get("needs-mobile-off").map(|f| f.enabled))
    };
    let (names, dependency) = visible(&["web".to_string()]);
    assert_eq!(names, ["web", "untagged", "needs-mobile-off"]);
    assert_eq!(dependency, Some(true), "a flag filtered out reads as false");
    assert_eq!(
        visible(&[]).0,
        ["web", "mobile", "untagged", "needs-mobile-off"]
    );
}

// ---------------------------------------------------------------------------------------------
// Cohorts

fn cohort_flag(operator: Value, id: Value) -> Flag {
    flag(
        1,
        "cohorted",
        condition(
            json!([{"key": "id", "type": "cohort", "operator": operator, "value": id}]),
            None,
        ),
    )
}

fn countries() -> Cohort {
    Cohort {
        id: 5,
        filters: json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": "country", "type": "person", "operator": "exact", "value": ["US", "CA"]}]}]}}),
        is_static: false,
    }
}

fn cohort_run(flags: &[Flag], cohorts: &[Cohort], props: Value, statics: &[i64]) -> bool {
    let props = map(props);
    let mut input = EvaluationInput::new("user-1", now());
    input.person_properties = &props;
    input.static_cohort_ids = statics;
    get(&evaluate_with_cohorts(flags, cohorts, &input), "cohorted").enabled
}

#[test]
fn dynamic_cohorts_match_person_properties() {
    let cohorts = [countries()];
    for operator in [json!(null), json!("in"), json!("exact")] {
        let flags = [cohort_flag(operator.clone(), json!(5))];
        assert!(
            cohort_run(&flags, &cohorts, json!({"country": "us"}), &[]),
            "{operator}"
        );
        assert!(
            !cohort_run(&flags, &cohorts, json!({"country": "DE"}), &[]),
            "{operator}"
        );
    }
    let not_in = [cohort_flag(json!("not_in"), json!("5"))];
    assert!(cohort_run(&not_in, &cohorts, json!({"country": "DE"}), &[]));
    assert!(!cohort_run(
        &not_in,
        &cohorts,
        json!({"country": "CA"}),
        &[]
    ));
}

#[test]
fn nested_cohorts_and_negation() {
    // Cohort 6: in cohort 5 AND plan is not "free" (a negated leaf), in the definitions' bare form.
    let nested = Cohort {
        id: 6,
        filters: json!({"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": 5},
            {"key": "plan", "type": "person", "operator": "exact", "value": "free", "negation": true}]}),
        is_static: false,
    };
    let cohorts = [countries(), nested];
    let flags = [cohort_flag(json!("in"), json!(6))];
    assert!(cohort_run(
        &flags,
        &cohorts,
        json!({"country": "US", "plan": "pro"}),
        &[]
    ));
    assert!(!cohort_run(
        &flags,
        &cohorts,
        json!({"country": "US", "plan": "free"}),
        &[]
    ));
    assert!(!cohort_run(
        &flags,
        &cohorts,
        json!({"country": "DE", "plan": "pro"}),
        &[]
    ));
}

#[test]
fn empty_static_and_unknown_cohorts() {
    let everyone = Cohort {
        id: 8,
        filters: json!({}),
        is_static: false,
    };
    let listed = Cohort {
        id: 9,
        filters: json!({"properties": {}}),
        is_static: true,
    };
    let cohorts = [everyone, listed];
    assert!(cohort_run(
        &[cohort_flag(json!("in"), json!(8))],
        &cohorts,
        json!({}),
        &[]
    ));
    let static_flag = [cohort_flag(json!("in"), json!(9))];
    assert!(cohort_run(&static_flag, &cohorts, json!({}), &[9]));
    assert!(!cohort_run(&static_flag, &cohorts, json!({}), &[]));
    // Cohorts that do not exist (yet) are not matched, whatever the operator.
    assert!(!cohort_run(
        &[cohort_flag(json!("in"), json!(77))],
        &cohorts,
        json!({}),
        &[]
    ));
    assert!(!cohort_run(
        &[cohort_flag(json!("not_in"), json!(77))],
        &cohorts,
        json!({}),
        &[]
    ));
    assert!(!cohort_run(
        &[cohort_flag(json!("in"), json!(5))],
        &[],
        json!({"country": "US"}),
        &[]
    ));
}

#[test]
fn cohorts_in_group_conditions_read_person_properties() {
    let flags = [with(cohort_flag(json!("in"), json!(5)), |f| {
        f.filters["aggregation_group_type_index"] = json!(0);
    })];
    let mapping = company_mapping();
    let groups = map(json!({"company": "acme"}));
    let group_props = map(json!({"company": {"country": "DE"}}));
    let person_props = map(json!({"country": "US"}));
    let mut input = EvaluationInput::new("user-1", now());
    input.groups = &groups;
    input.group_properties = &group_props;
    input.person_properties = &person_props;
    input.group_type_mapping = &mapping;
    assert!(
        get(
            &evaluate_with_cohorts(&flags, &[countries()], &input),
            "cohorted"
        )
        .enabled
    );
}

// ---------------------------------------------------------------------------------------------
// Wire shape helpers

#[test]
fn reasons_serialise_like_posthog() {
    let flags = [flag(1, "beta", condition(json!([]), Some(50.0)))];
    let answer = run(&flags, "user-4", json!({}));
    assert_eq!(
        get(&answer, "beta").reason.to_json(),
        json!({"code": "out_of_rollout_bound", "condition_index": 0, "description": "Out of rollout bound"})
    );
}

#[test]
fn callers_can_record_failures() {
    let broken = always(1, "needs-db");
    let mut answer = run(std::slice::from_ref(&broken), "user-1", json!({}));
    assert!(!answer.errors_while_computing_flags);
    answer.mark_failed(FlagEvaluation::failure(
        &broken,
        "hash_key_override_error",
        "could not read overrides",
    ));
    let record = get(&answer, "needs-db");
    assert!(record.failed && !record.enabled && record.payload.is_none());
    assert_eq!(record.reason.code, "hash_key_override_error");
    assert!(answer.errors_while_computing_flags);
    assert_eq!(answer.flags.len(), 1);
}
