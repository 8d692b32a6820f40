//! Issue 18's operations in template.yaml (docs/operations.md): every limit, alarm and dashboard
//! widget the runbook describes exists and points at what it should. A function, table, SDK
//! route or stream added later without its alarm, throttle or graph fails here.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

const TEMPLATE: &str = include_str!("../../../template.yaml");

fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE).expect("template.yaml parses")
}

/// The value under a CloudFormation short tag (`!Ref X` → `X`), or the value itself.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn tag_of(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) => Some(t.tag.to_string()),
        _ => None,
    }
}

/// `!Ref <name>` (the tag and its target).
fn is_ref(v: &Value, name: &str) -> bool {
    tag_of(v).as_deref() == Some("!Ref") && untag(v).as_str() == Some(name)
}

fn resources_of_type<'a>(doc: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    doc["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap().to_string(), r))
        .collect()
}

fn parameter<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let p = &doc["Parameters"][name];
    assert!(p.is_mapping(), "parameter {name} is missing");
    p
}

fn alarms(doc: &Value) -> Vec<(String, &Value)> {
    resources_of_type(doc, "AWS::CloudWatch::Alarm")
}

/// Every metric (namespace, name, dimensions as text) an alarm reads, and its expression text.
fn alarm_reads(alarm: &Value) -> String {
    serde_yaml_ng::to_string(&alarm["Properties"]).unwrap()
}

#[test]
fn every_alarm_notifies_the_topic_only_when_given_with_a_parameter_threshold() {
    let doc = template();
    assert_eq!(
        parameter(&doc, "AlarmTopicArn")["Default"].as_str(),
        Some("")
    );
    let condition = serde_yaml_ng::to_string(&doc["Conditions"]["HasAlarmTopic"]).unwrap();
    assert!(condition.contains("AlarmTopicArn"), "{condition}");
    let all = alarms(&doc);
    assert!(all.len() >= 40, "{} alarms", all.len());
    for (id, alarm) in &all {
        assert_eq!(alarm["Condition"].as_str(), Some("HasAlarmTopic"), "{id}");
        let props = &alarm["Properties"];
        let actions = props["AlarmActions"].as_sequence().expect("AlarmActions");
        assert!(actions.iter().any(|a| is_ref(a, "AlarmTopicArn")), "{id}");
        let threshold = &props["Threshold"];
        if id != "CohortStreamFailedBatchesAlarm" {
            let name = untag(threshold).as_str().unwrap_or_default();
            assert!(is_ref(threshold, name), "{id}: threshold is a parameter");
            parameter(&doc, name);
        }
        let description = props["AlarmDescription"].as_str().unwrap_or_default();
        assert!(
            description.contains("docs/operations.md"),
            "{id} points at its runbook entry"
        );
    }
}

#[test]
fn every_function_has_errors_and_throttles_alarms() {
    let doc = template();
    let all = alarms(&doc);
    for (function, _) in resources_of_type(&doc, "AWS::Serverless::Function") {
        for metric in ["Errors", "Throttles"] {
            let found = all.iter().any(|(_, a)| {
                let p = &a["Properties"];
                p["Namespace"].as_str() == Some("AWS/Lambda")
                    && p["MetricName"].as_str() == Some(metric)
                    && p["Dimensions"][0]["Name"].as_str() == Some("FunctionName")
                    && is_ref(&p["Dimensions"][0]["Value"], &function)
            });
            assert!(found, "{function} has no {metric} alarm");
        }
    }
}

#[test]
fn every_table_has_throttled_requests_and_system_errors_alarms() {
    let doc = template();
    let all = alarms(&doc);
    for (table, _) in resources_of_type(&doc, "AWS::DynamoDB::Table") {
        for metric in ["ThrottledRequests", "SystemErrors"] {
            let query = format!("SUM({metric}) FROM SCHEMA(\"AWS/DynamoDB\"");
            let found = all.iter().any(|(_, a)| {
                let text = alarm_reads(a);
                text.contains(&query) && text.contains(&format!("'${{{table}}}'"))
            });
            assert!(found, "{table} has no {metric} alarm");
        }
    }
}

#[test]
fn api_stream_and_scheduled_changes_alarms() {
    let doc = template();
    let read = |id: &str| {
        let alarm = &doc["Resources"][id];
        assert_eq!(
            alarm["Type"].as_str(),
            Some("AWS::CloudWatch::Alarm"),
            "{id} is missing"
        );
        alarm_reads(alarm)
    };
    let api = read("Api5xxRateAlarm");
    for needle in [
        "AWS/ApiGateway",
        "MetricName: 5xx",
        "MetricName: Count",
        "HttpApi",
        "100 * errors / requests",
    ] {
        assert!(
            api.contains(needle),
            "Api5xxRateAlarm lacks {needle}: {api}"
        );
    }
    let age = read("CohortStreamIteratorAgeAlarm");
    assert!(
        age.contains("IteratorAge") && age.contains("CohortJobsFunction"),
        "{age}"
    );

    // Failed batches: the cohort stream's on-failure destination is the queue the alarm watches.
    let mapping = &doc["Resources"]["CohortJobsFunction"]["Properties"]["Events"]["CohortsStream"];
    assert_eq!(mapping["Type"].as_str(), Some("DynamoDB"));
    let destination = &mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"];
    assert_eq!(
        untag(destination).as_str(),
        Some("CohortJobsFailureQueue.Arn")
    );
    let failed = read("CohortStreamFailedBatchesAlarm");
    assert!(
        failed.contains("ApproximateNumberOfMessagesVisible")
            && failed.contains("CohortJobsFailureQueue.QueueName"),
        "{failed}"
    );

    let scheduled = read("ScheduledChangesFailedAlarm");
    assert!(
        scheduled.contains("ScheduledChangesFailed") && scheduled.contains("scheduled-changes"),
        "{scheduled}"
    );
    assert!(
        scheduled.contains("FeatureFlags/${AWS::StackName}"),
        "the namespace METRICS_NAMESPACE names"
    );
    let env = serde_yaml_ng::to_string(
        &doc["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"],
    )
    .unwrap();
    assert!(env.contains("FeatureFlags/${AWS::StackName}"), "{env}");
}

/// Route keys (`POST /flags`) of a function's HttpApi events.
fn route_keys(doc: &Value, function: &str) -> BTreeSet<String> {
    let events = doc["Resources"][function]["Properties"]["Events"]
        .as_mapping()
        .expect("Events");
    events
        .values()
        .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        .map(|e| {
            format!(
                "{} {}",
                e["Properties"]["Method"].as_str().unwrap().to_uppercase(),
                e["Properties"]["Path"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn stage_and_every_sdk_route_are_throttled_by_parameters() {
    let doc = template();
    let api = &doc["Resources"]["HttpApi"]["Properties"];
    let default = &api["DefaultRouteSettings"];
    assert!(is_ref(
        &default["ThrottlingRateLimit"],
        "ApiThrottlingRateLimit"
    ));
    assert!(is_ref(
        &default["ThrottlingBurstLimit"],
        "ApiThrottlingBurstLimit"
    ));
    let settings = api["RouteSettings"].as_mapping().expect("RouteSettings");
    let configured: BTreeSet<String> = settings
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    // Every public SDK route has its own limit, and every limit names a real route.
    let sdk_routes = route_keys(&doc, "FlagsFunction");
    assert_eq!(
        configured, sdk_routes,
        "RouteSettings cover exactly the flags function's routes"
    );
    for (key, limits) in settings {
        let key = key.as_str().unwrap();
        let (rate, burst) = if key.contains("definitions") || key.contains("local_evaluation") {
            (
                "DefinitionsThrottlingRateLimit",
                "DefinitionsThrottlingBurstLimit",
            )
        } else {
            ("SdkThrottlingRateLimit", "SdkThrottlingBurstLimit")
        };
        assert!(is_ref(&limits["ThrottlingRateLimit"], rate), "{key}");
        assert!(is_ref(&limits["ThrottlingBurstLimit"], burst), "{key}");
    }
    for name in [
        "ApiThrottlingRateLimit",
        "SdkThrottlingRateLimit",
        "DefinitionsThrottlingRateLimit",
    ] {
        assert!(
            parameter(&doc, name)["Default"]
                .as_u64()
                .is_some_and(|d| d > 0),
            "{name}"
        );
    }
    // PostHog's local-evaluation rate, reaching the code through the environment.
    assert_eq!(
        parameter(&doc, "LocalEvaluationRateLimit")["Default"].as_u64(),
        Some(600)
    );
    let env = &doc["Globals"]["Function"]["Environment"]["Variables"];
    assert!(is_ref(
        &env["LOCAL_EVALUATION_RATE_LIMIT"],
        "LocalEvaluationRateLimit"
    ));
}

#[test]
fn reserved_concurrency_logs_and_tracing_are_parameters() {
    let doc = template();
    let globals = &doc["Globals"]["Function"];
    // Unset by default: the condition is false for -1 and the value is AWS::NoValue.
    assert_eq!(
        parameter(&doc, "ReservedConcurrency")["Default"].as_i64(),
        Some(-1)
    );
    let reserved = serde_yaml_ng::to_string(&globals["ReservedConcurrentExecutions"]).unwrap();
    assert!(
        reserved.contains("HasReservedConcurrency") && reserved.contains("AWS::NoValue"),
        "{reserved}"
    );
    let flags = serde_yaml_ng::to_string(
        &doc["Resources"]["FlagsFunction"]["Properties"]["ReservedConcurrentExecutions"],
    )
    .unwrap();
    assert!(flags.contains("FlagsReservedConcurrency"), "{flags}");

    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert!(is_ref(
        &globals["LoggingConfig"]["ApplicationLogLevel"],
        "LogLevel"
    ));
    assert!(is_ref(
        &globals["Environment"]["Variables"]["RUST_LOG"],
        "LogLevel"
    ));
    let tracing = serde_yaml_ng::to_string(&globals["Tracing"]).unwrap();
    assert!(
        tracing.contains("IsTracingEnabled") && tracing.contains("Active"),
        "{tracing}"
    );
    assert_eq!(
        parameter(&doc, "TracingEnabled")["Default"].as_str(),
        Some("false")
    );

    // The rate-limit counters expire.
    let ttl = &doc["Resources"]["UsageTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!(ttl["AttributeName"].as_str(), Some("expires_at"));
}

#[test]
fn the_dashboard_has_every_widget() {
    let doc = template();
    let dashboards = resources_of_type(&doc, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let body = untag(&dashboards[0].1["Properties"]["DashboardBody"])
        .as_str()
        .expect("a !Sub body");
    // `${X}` substitutions become placeholders; what is left must be JSON.
    let json_text = body.replace("${", "SUB{");
    let body: serde_json::Value = serde_json::from_str(&json_text).expect("DashboardBody is JSON");
    let widgets = body["widgets"].as_array().unwrap();
    let widget = |title: &str| {
        widgets
            .iter()
            .find(|w| w["properties"]["title"] == title)
            .unwrap_or_else(|| panic!("no widget {title:?}"))
            .to_string()
    };
    let functions: Vec<String> = resources_of_type(&doc, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for (title, metric, stat) in [
        ("Requests per function", "Invocations", "Sum"),
        ("Latency p50 per function", "Duration", "p50"),
        ("Latency p99 per function", "Duration", "p99"),
        ("Errors per function", "Errors", "Sum"),
    ] {
        let w = widget(title);
        assert!(
            w.contains(&format!("\"{metric}\"")) && w.contains(&format!("\"stat\":\"{stat}\"")),
            "{title}: {w}"
        );
        for f in &functions {
            assert!(w.contains(&format!("SUB{{{f}}}")), "{title} lacks {f}");
        }
    }
    let evaluations = widget("/flags evaluations per minute");
    assert!(
        evaluations.contains("FlagsEvaluations") && evaluations.contains("\"period\":60"),
        "{evaluations}"
    );
    let capacity = widget("DynamoDB consumed capacity per table");
    for (table, _) in resources_of_type(&doc, "AWS::DynamoDB::Table") {
        assert!(
            capacity.contains(&format!("SUB{{{table}}}")),
            "capacity lacks {table}"
        );
    }
    assert!(
        capacity.contains("ConsumedReadCapacityUnits")
            && capacity.contains("ConsumedWriteCapacityUnits")
    );
    let lag = widget("Cohort stream lag (IteratorAge)");
    assert!(
        lag.contains("IteratorAge") && lag.contains("SUB{CohortJobsFunction}"),
        "{lag}"
    );
}
