//! Scheduled flag changes (docs/scheduled-changes.md): PostHog's `ScheduledChange` model, its
//! serializer's field and object rules, the payload operations turned into a flag PATCH, and
//! the next run of a recurring schedule. Pure: storage is `store::ScheduleStore`, execution
//! `service::schedules`.

use std::str::FromStr;

use chrono::Months;
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::flag::input::parse_boolean;
use crate::identity::UserSummary;
use crate::python;
use crate::time::{self, Timestamp, serde_ts};

/// The only model a change can target (PostHog's `AllowedModels`).
pub const FEATURE_FLAG: &str = "FeatureFlag";
pub const INTERVALS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];
pub const OPERATIONS: [&str; 3] = ["update_status", "add_release_condition", "update_variants"];
/// Failed attempts before a change is given up (PostHog's `MAX_RETRY_ATTEMPTS`).
pub const MAX_ATTEMPTS: i64 = 5;
/// Missed runs skipped one by one before jumping straight past now (PostHog's cap).
const MAX_CATCHUP: usize = 1000;
const MAX_RECORD_ID: usize = 200;
const MAX_CRON: usize = 100;
/// A payload is stored with the change; DynamoDB items stop at 400 KB.
pub const MAX_PAYLOAD_BYTES: usize = 100 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledChange {
    pub id: i64,
    pub project_id: i64,
    pub record_id: String,
    pub model_name: String,
    #[serde(with = "crate::json_text")]
    pub payload: Value,
    #[serde(with = "serde_ts")]
    pub scheduled_at: Timestamp,
    #[serde(with = "serde_ts::option", default)]
    pub executed_at: Option<Timestamp>,
    /// PostHog's stored form: JSON text with the error and the retry state
    /// ([`formatted_failure_reason`] is what users see).
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub failure_count: i64,
    #[serde(default)]
    pub is_recurring: bool,
    #[serde(default)]
    pub recurrence_interval: Option<String>,
    #[serde(default)]
    pub cron_expression: Option<String>,
    #[serde(with = "serde_ts::option", default)]
    pub last_executed_at: Option<Timestamp>,
    #[serde(with = "serde_ts::option", default)]
    pub end_date: Option<Timestamp>,
    /// IANA name captured from the project at creation; cron fields are wall-clock times in it.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub created_by: Option<UserSummary>,
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    /// Bumped by every write, which is conditional on the value read.
    #[serde(default)]
    pub revision: i64,
}

impl ScheduledChange {
    fn has_recurrence(&self) -> bool {
        self.recurrence_interval.is_some() || self.cron_expression.is_some()
    }

    /// Paused: not recurring but still holding its recurrence, so it can be resumed. PostHog's
    /// task skips such rows; here they simply leave the due index.
    pub fn is_paused(&self) -> bool {
        !self.is_recurring && self.has_recurrence()
    }

    fn recurs(&self) -> bool {
        self.is_recurring && self.has_recurrence()
    }

    /// When the executor must look at the change, or `None` once it is finished (executed, given
    /// up) or paused. The store keeps exactly these changes in its due index.
    pub fn due_at(&self) -> Option<Timestamp> {
        (self.executed_at.is_none() && !self.is_paused()).then_some(self.scheduled_at)
    }

    /// A recurring change whose window closed before it ran: finished without running.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.recurs() && self.end_date.is_some_and(|end| end <= now)
    }

    /// The change after a successful run at `now`: a one-time change is executed; a recurring
    /// one moves to its next run after `now` (missed runs are skipped, not replayed) and is
    /// finished once that run would fall after `end_date`.
    pub fn after_run(&self, now: Timestamp) -> ApiResult<ScheduledChange> {
        let mut next = self.clone();
        next.updated_at = now;
        if !self.recurs() {
            next.executed_at = Some(now);
            return Ok(next);
        }
        let run = next_run_after(self, now)?;
        next.last_executed_at = Some(now);
        if self.end_date.is_some_and(|end| run > end) {
            next.executed_at = Some(now);
        } else {
            next.scheduled_at = run;
        }
        Ok(next)
    }

    /// The change after a failed run: counted, described, and given up (executed) when the
    /// error is permanent or the attempts are used up; otherwise the next tick retries it.
    pub fn after_failure(&self, error: &ApiError, now: Timestamp) -> ScheduledChange {
        let mut next = self.clone();
        next.updated_at = now;
        next.failure_count += 1;
        let permanent = is_permanent(error);
        let exhausted = next.failure_count >= MAX_ATTEMPTS;
        let will_retry = !permanent && !exhausted;
        let mut context = json!({
            "error": failure_text(error),
            "error_type": error_type(error),
            "will_retry": will_retry,
            "retry_count": next.failure_count,
            "max_retries": MAX_ATTEMPTS,
            "error_classification": if permanent { "unrecoverable" } else { "recoverable" },
        });
        if exhausted {
            context["retry_exhausted"] = Value::Bool(true);
        }
        next.failure_reason = Some(context.to_string());
        if !will_retry {
            next.executed_at = Some(now);
        }
        next
    }

    /// The change finished without running (its end date passed first).
    pub fn closed(&self, now: Timestamp) -> ScheduledChange {
        ScheduledChange {
            executed_at: Some(now),
            updated_at: now,
            ..self.clone()
        }
    }

    /// PostHog's `ScheduledChangeSerializer` representation.
    pub fn to_json(&self) -> Value {
        let ts = |t: &Option<Timestamp>| t.as_ref().map(time::format);
        json!({
            "id": self.id,
            "team_id": self.project_id,
            "record_id": self.record_id,
            "model_name": self.model_name,
            "payload": self.payload,
            "scheduled_at": time::format(&self.scheduled_at),
            "executed_at": ts(&self.executed_at),
            "failure_reason": self.failure_reason.as_deref().map(formatted_failure_reason),
            "created_at": time::format(&self.created_at),
            "created_by": self.created_by.as_ref().map(UserSummary::to_json),
            "updated_at": time::format(&self.updated_at),
            "is_recurring": self.is_recurring,
            "recurrence_interval": self.recurrence_interval,
            "cron_expression": self.cron_expression,
            "last_executed_at": ts(&self.last_executed_at),
            "end_date": ts(&self.end_date),
            "timezone": self.timezone,
        })
    }
}

/// A run whose scheduled change moved since it was read (another executor ran it, or a user
/// edited or deleted it): nothing was written, and this executor leaves the change alone.
pub fn superseded() -> ApiError {
    ApiError::Conflict(
        "The scheduled change was run, edited or deleted by someone else; nothing was written."
            .into(),
    )
}

/// Errors the next attempt would meet again: bad payloads, missing or deleted flags, rule
/// violations. Store failures, throttling and lost races are worth retrying.
fn is_permanent(error: &ApiError) -> bool {
    !matches!(error, ApiError::Internal(_) | ApiError::Conflict(_))
}

fn error_type(error: &ApiError) -> &'static str {
    match error {
        ApiError::Validation { .. } | ApiError::BadRequest { .. } => "ValidationError",
        ApiError::NotFound(_) => "DoesNotExist",
        ApiError::Conflict(_) => "Conflict",
        ApiError::Internal(_) => "ServerError",
        _ => "Error",
    }
}

/// What the failure says: the validation message with its field, never internal causes.
fn failure_text(error: &ApiError) -> String {
    match error {
        ApiError::Validation {
            attr: Some(attr),
            detail,
            ..
        } => format!("{attr}: {detail}"),
        ApiError::Internal(_) => "A server error occurred while applying the change.".into(),
        other => other.to_string(),
    }
}

/// PostHog's `formatted_failure_reason`: the error and what happens next, without context.
pub fn formatted_failure_reason(stored: &str) -> String {
    let Ok(Value::Object(context)) = serde_json::from_str::<Value>(stored) else {
        return stored.to_string();
    };
    let Some(error) = context.get("error") else {
        return stored.to_string();
    };
    let mut message = python::str(error);
    let will_retry = context.get("will_retry").and_then(Value::as_bool);
    let exhausted = context.get("retry_exhausted").and_then(Value::as_bool) == Some(true);
    let count = context
        .get("retry_count")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let max = context.get("max_retries").and_then(Value::as_i64);
    let unrecoverable =
        context.get("error_classification").and_then(Value::as_str) == Some("unrecoverable");
    match (will_retry, max) {
        (Some(false), Some(max)) if exhausted => {
            message += &format!(" (failed after {count} out of {max} attempts)");
        }
        (Some(false), None) if exhausted => message += &format!(" (failed after {count} attempts)"),
        (Some(false), _) if unrecoverable => message += " (permanent error)",
        (Some(true), Some(max)) => {
            let left = max - count;
            let word = if left == 1 { "attempt" } else { "attempts" };
            message += &format!(" (will retry automatically, {left} {word} remaining)");
        }
        (Some(true), None) => message += " (will retry automatically)",
        _ => {}
    }
    message
}

// ---------------------------------------------------------------------------------------------
// Next runs

/// The first run strictly after `now`, stepping from the change's `scheduled_at` (PostHog's
/// catch-up loop: each missed run is skipped; past [`MAX_CATCHUP`] steps it jumps from `now`).
pub fn next_run_after(change: &ScheduledChange, now: Timestamp) -> ApiResult<Timestamp> {
    let step = |from: Timestamp| -> ApiResult<Timestamp> {
        match (&change.cron_expression, &change.recurrence_interval) {
            (Some(cron), _) => next_cron(cron, from, change.timezone.as_deref()),
            (None, Some(interval)) => next_interval(from, interval),
            (None, None) => Err(ApiError::object("The schedule has no recurrence.")),
        }
    };
    let mut run = step(change.scheduled_at)?;
    let mut skipped = 0;
    while run <= now && skipped < MAX_CATCHUP {
        run = step(run)?;
        skipped += 1;
    }
    if run <= now {
        run = step(now)?;
    }
    Ok(run)
}

/// `daily`, `weekly`, `monthly`, `yearly` from `from`; a month or year that lacks the day
/// lands on its last day (Jan 31 → Feb 28, Feb 29 → Feb 28), as `relativedelta` does.
pub fn next_interval(from: Timestamp, interval: &str) -> ApiResult<Timestamp> {
    let next = match interval {
        "daily" => from.checked_add_signed(chrono::Duration::days(1)),
        "weekly" => from.checked_add_signed(chrono::Duration::weeks(1)),
        "monthly" => from.checked_add_months(Months::new(1)),
        "yearly" => from.checked_add_months(Months::new(12)),
        other => {
            return Err(ApiError::object(format!(
                "Unknown recurrence interval: {other}"
            )));
        }
    };
    next.ok_or_else(|| ApiError::object("The next run is out of range."))
}

/// The next time after `from` matching a 5-field cron expression read as wall-clock time in
/// `timezone` (UTC when missing or unknown, as PostHog falls back).
pub fn next_cron(
    expression: &str,
    from: Timestamp,
    timezone: Option<&str>,
) -> ApiResult<Timestamp> {
    let cron =
        parse_cron(expression).ok_or_else(|| ApiError::invalid("cron_expression", INVALID_CRON))?;
    let tz = timezone
        .and_then(|name| Tz::from_str(name).ok())
        .unwrap_or(Tz::UTC);
    let next = cron
        .find_next_occurrence(&from.with_timezone(&tz), false)
        .map_err(|e| ApiError::object(format!("The cron expression has no next run: {e}")))?;
    Ok(next.with_timezone(&chrono::Utc))
}

const FIVE_FIELDS: &str = "Only standard 5-field cron expressions are supported (minute hour day month weekday). Example: '0 9 * * 1-5'.";
const INVALID_CRON: &str =
    "Invalid cron expression. Use standard 5-field cron syntax (e.g., '0 9 * * 1-5').";

fn parse_cron(expression: &str) -> Option<Cron> {
    if expression.split_whitespace().count() != 5 {
        return None;
    }
    Cron::from_str(expression.trim()).ok()
}

// ---------------------------------------------------------------------------------------------
// Payload operations

/// The PATCH body a payload makes of the flag as stored (PostHog's
/// `build_scheduled_change_serializer_data` and the dispatcher's apply-time checks): the flag
/// service then validates and writes it like any PATCH.
pub fn flag_patch(payload: &Value, flag: &Flag) -> ApiResult<Map<String, Value>> {
    let (operation, value) = operation(payload)?;
    let mut filters = flag.filters.clone();
    if !filters.is_object() {
        filters = json!({});
    }
    let body = match operation {
        "update_status" => return Ok(Map::from_iter([("active".into(), value.clone())])),
        "add_release_condition" => {
            let mut groups = filters
                .get("groups")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            groups.extend(
                value
                    .get("groups")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            filters["groups"] = Value::Array(groups);
            filters
        }
        _ => {
            let variants = value.get("variants").cloned().unwrap_or_else(|| json!([]));
            let payloads = value
                .get("payloads")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({}));
            check_variants(&variants, &payloads)?;
            let mut multivariate = match filters.get("multivariate") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            multivariate.insert("variants".into(), variants);
            filters["multivariate"] = Value::Object(multivariate);
            filters["payloads"] = payloads;
            filters
        }
    };
    Ok(Map::from_iter([("filters".into(), body)]))
}

/// `update_variants` at run time: rollouts sum to 100, payload keys name variants.
fn check_variants(variants: &Value, payloads: &Value) -> ApiResult<()> {
    let list = variants.as_array().cloned().unwrap_or_default();
    if !list.is_empty() {
        let total: f64 = list
            .iter()
            .map(|v| {
                v.get("rollout_percentage")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            })
            .sum();
        if total != 100.0 {
            let shown = if total.fract() == 0.0 {
                format!("{}", total as i64)
            } else {
                total.to_string()
            };
            return Err(ApiError::object(format!(
                "Invalid variant rollout percentages: sum is {shown}, must be 100"
            )));
        }
    }
    let keys: Vec<String> = list
        .iter()
        .filter_map(|v| v.get("key").map(python::str))
        .collect();
    if let Value::Object(p) = payloads
        && !keys.is_empty()
    {
        let unknown: Vec<&str> = p
            .keys()
            .filter(|k| !keys.contains(k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::object(format!(
                "Payload keys {unknown:?} don't match variant keys {keys:?}"
            )));
        }
    }
    Ok(())
}

fn operation(payload: &Value) -> ApiResult<(&str, &Value)> {
    let invalid = || {
        ApiError::invalid(
            "payload",
            "Invalid payload: it must be an object with an 'operation' key (update_status, add_release_condition or update_variants) and a 'value' key.",
        )
    };
    let op = payload.get("operation").ok_or_else(invalid)?;
    let value = payload.get("value").ok_or_else(invalid)?;
    match op.as_str() {
        Some(op) if OPERATIONS.contains(&op) => Ok((op, value)),
        _ => Err(ApiError::invalid(
            "payload",
            format!(
                "Unrecognized operation: {}. Use update_status, add_release_condition or update_variants.",
                python::str(op)
            ),
        )),
    }
}

/// What a payload must be when it is stored, so a change that can never run is refused up
/// front (PostHog accepts any JSON and fails at run time).
fn check_payload(payload: &Value) -> ApiResult<()> {
    if payload.to_string().len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::invalid(
            "payload",
            format!("The payload is too large: keep it under {MAX_PAYLOAD_BYTES} bytes."),
        ));
    }
    let (op, value) = operation(payload)?;
    let object_with = |key: &str| value.is_object() && value.get(key).is_none_or(Value::is_array);
    let ok = match op {
        "update_status" => parse_boolean(value).is_some(),
        "add_release_condition" => object_with("groups"),
        _ => {
            object_with("variants")
                && value
                    .get("payloads")
                    .is_none_or(|p| p.is_object() || p.is_null())
        }
    };
    if ok {
        return Ok(());
    }
    let expected = match op {
        "update_status" => "true or false",
        "add_release_condition" => "an object with a 'groups' list",
        _ => "an object with a 'variants' list and a 'payloads' object",
    };
    Err(ApiError::invalid(
        "payload",
        format!("The value of {op} must be {expected}."),
    ))
}

// ---------------------------------------------------------------------------------------------
// The serializer's rules

/// The fields a create or update body sets, parsed as DRF's fields do (read-only fields are
/// ignored; absent fields are `None`, explicit nulls `Some(None)`).
#[derive(Debug, Default)]
pub struct Input {
    pub record_id: Option<String>,
    pub model_name: Option<String>,
    pub payload: Option<Value>,
    pub scheduled_at: Option<Timestamp>,
    pub is_recurring: Option<bool>,
    pub recurrence_interval: Option<Option<String>>,
    pub cron_expression: Option<Option<String>>,
    pub end_date: Option<Option<Timestamp>>,
}

/// Parses a body; `required` (create, PUT) makes the four required fields mandatory.
pub fn parse(body: &Map<String, Value>, required: bool) -> ApiResult<Input> {
    let field = |name: &str| body.get(name);
    let mut input = Input::default();
    for name in ["record_id", "model_name", "payload", "scheduled_at"] {
        if required && field(name).is_none() {
            return Err(ApiError::field(name, "required", "This field is required."));
        }
    }
    if let Some(v) = field("record_id") {
        input.record_id = Some(python::char_field("record_id", v, false, MAX_RECORD_ID)?);
    }
    if let Some(v) = field("model_name") {
        let text = not_null("model_name", v)?;
        if python::str(v) != FEATURE_FLAG || !v.is_string() {
            return Err(invalid_choice("model_name", &text));
        }
        input.model_name = Some(FEATURE_FLAG.into());
    }
    if let Some(v) = field("payload") {
        if v.is_null() {
            return Err(null_error("payload"));
        }
        check_payload(v)?;
        input.payload = Some(v.clone());
    }
    if let Some(v) = field("scheduled_at") {
        input.scheduled_at = Some(datetime("scheduled_at", v)?);
    }
    if let Some(v) = field("is_recurring") {
        if v.is_null() {
            return Err(null_error("is_recurring"));
        }
        let b = parse_boolean(v)
            .ok_or_else(|| ApiError::invalid("is_recurring", "Must be a valid boolean."))?;
        input.is_recurring = Some(b);
    }
    if let Some(v) = field("recurrence_interval") {
        input.recurrence_interval = Some(match v {
            Value::Null => None,
            Value::String(s) if INTERVALS.contains(&s.as_str()) => Some(s.clone()),
            other => return Err(invalid_choice("recurrence_interval", &python::str(other))),
        });
    }
    if let Some(v) = field("cron_expression") {
        input.cron_expression = Some(match v {
            Value::Null => None,
            // The model field is blank=True: an empty expression means none.
            other => Some(python::char_field(
                "cron_expression",
                other,
                true,
                MAX_CRON,
            )?)
            .filter(|s| !s.is_empty()),
        });
    }
    if let Some(v) = field("end_date") {
        input.end_date = Some(match v {
            Value::Null => None,
            other => Some(datetime("end_date", other)?),
        });
    }
    if !required {
        return Ok(input);
    }
    input.is_recurring.get_or_insert(false);
    Ok(input)
}

/// The change an input makes of `stored` (update) or a new one (create), after PostHog's
/// object-level rules (`ScheduledChangeSerializer.validate`). `record_id` and `model_name`
/// are final on create; on update they must equal the stored ones.
pub fn validate(input: &Input, stored: Option<&ScheduledChange>) -> ApiResult<()> {
    if let Some(stored) = stored {
        if input
            .record_id
            .as_ref()
            .is_some_and(|r| *r != stored.record_id)
        {
            return Err(ApiError::invalid(
                "record_id",
                "Cannot change the target record of an existing scheduled change.",
            ));
        }
        if input
            .model_name
            .as_ref()
            .is_some_and(|m| *m != stored.model_name)
        {
            return Err(ApiError::invalid(
                "model_name",
                "Cannot change the model type of an existing scheduled change.",
            ));
        }
        if stored.executed_at.is_some() && !stored.is_recurring {
            return Err(ApiError::object(
                "Cannot modify a scheduled change that has already executed.",
            ));
        }
    }
    let is_recurring = input
        .is_recurring
        .unwrap_or_else(|| stored.is_some_and(|s| s.is_recurring));
    let interval = merged(
        &input.recurrence_interval,
        stored.map(|s| &s.recurrence_interval),
    );
    let cron = merged(&input.cron_expression, stored.map(|s| &s.cron_expression));
    let payload = input
        .payload
        .as_ref()
        .or(stored.map(|s| &s.payload))
        .unwrap_or(&Value::Null);
    if cron.is_some() && interval.is_some() {
        return Err(ApiError::invalid(
            "cron_expression",
            "Cannot set both cron_expression and recurrence_interval. Use one or the other.",
        ));
    }
    if let Some(cron) = &cron {
        if cron.split_whitespace().count() != 5 {
            return Err(ApiError::invalid("cron_expression", FIVE_FIELDS));
        }
        if parse_cron(cron).is_none() {
            return Err(ApiError::invalid("cron_expression", INVALID_CRON));
        }
    }
    if is_recurring {
        if interval.is_none() && cron.is_none() {
            return Err(ApiError::invalid(
                "recurrence_interval",
                "Either recurrence_interval or cron_expression is required when is_recurring is true.",
            ));
        }
        if payload.get("operation").and_then(Value::as_str) == Some("add_release_condition") {
            return Err(ApiError::invalid(
                "payload",
                "Recurring schedules are not supported for add_release_condition because it appends conditions on each run, creating duplicates.",
            ));
        }
    }
    if stored.is_none() && !is_recurring {
        if interval.is_some() {
            return Err(ApiError::invalid(
                "recurrence_interval",
                "Cannot set recurrence_interval when is_recurring is false for new schedules.",
            ));
        }
        if cron.is_some() {
            return Err(ApiError::invalid(
                "cron_expression",
                "Cannot set cron_expression when is_recurring is false for new schedules.",
            ));
        }
    }
    let end = merged(&input.end_date, stored.map(|s| &s.end_date));
    let start = input.scheduled_at.or(stored.map(|s| s.scheduled_at));
    if let (Some(end), Some(start)) = (end, start)
        && end <= start
    {
        return Err(ApiError::invalid(
            "end_date",
            "End date must be after the scheduled start date.",
        ));
    }
    Ok(())
}

/// An updated field, else the stored one.
fn merged<T: Clone>(given: &Option<Option<T>>, stored: Option<&Option<T>>) -> Option<T> {
    match given {
        Some(v) => v.clone(),
        None => stored.cloned().flatten(),
    }
}

/// `stored` with the input's fields applied (after [`validate`]).
pub fn apply(input: Input, mut change: ScheduledChange, now: Timestamp) -> ScheduledChange {
    if let Some(payload) = input.payload {
        change.payload = payload;
    }
    if let Some(at) = input.scheduled_at {
        change.scheduled_at = at;
    }
    if let Some(b) = input.is_recurring {
        change.is_recurring = b;
    }
    if let Some(v) = input.recurrence_interval {
        change.recurrence_interval = v;
    }
    if let Some(v) = input.cron_expression {
        change.cron_expression = v;
    }
    if let Some(v) = input.end_date {
        change.end_date = v;
    }
    change.updated_at = now;
    change
}

fn not_null(attr: &str, v: &Value) -> ApiResult<String> {
    if v.is_null() {
        return Err(null_error(attr));
    }
    Ok(python::str(v))
}

fn null_error(attr: &str) -> ApiError {
    ApiError::field(attr, "null", "This field may not be null.")
}

fn invalid_choice(attr: &str, given: &str) -> ApiError {
    ApiError::field(
        attr,
        "invalid_choice",
        format!("\"{given}\" is not a valid choice."),
    )
}

/// DRF `DateTimeField` (naive values are UTC, as the project's timezone is).
fn datetime(attr: &str, v: &Value) -> ApiResult<Timestamp> {
    if v.is_null() {
        return Err(null_error(attr));
    }
    v.as_str().and_then(time::parse).ok_or_else(|| {
        ApiError::invalid(
            attr,
            "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        time::parse(text).unwrap()
    }

    fn recurring(
        interval: Option<&str>,
        cron: Option<&str>,
        scheduled_at: &str,
    ) -> ScheduledChange {
        ScheduledChange {
            id: 1,
            project_id: 1,
            record_id: "1".into(),
            model_name: FEATURE_FLAG.into(),
            payload: json!({"operation": "update_status", "value": true}),
            scheduled_at: at(scheduled_at),
            executed_at: None,
            failure_reason: None,
            failure_count: 0,
            is_recurring: true,
            recurrence_interval: interval.map(Into::into),
            cron_expression: cron.map(Into::into),
            last_executed_at: None,
            end_date: None,
            timezone: Some("UTC".into()),
            created_at: at("2026-01-01T00:00:00Z"),
            created_by: None,
            updated_at: at("2026-01-01T00:00:00Z"),
            revision: 1,
        }
    }

    #[test]
    fn months_and_years_clamp_to_the_last_day() {
        let next = next_interval(at("2026-01-31T09:00:00Z"), "monthly").unwrap();
        assert_eq!(next, at("2026-02-28T09:00:00Z"));
        let next = next_interval(at("2028-02-29T09:00:00Z"), "yearly").unwrap();
        assert_eq!(next, at("2029-02-28T09:00:00Z"));
        let next = next_interval(at("2026-03-01T09:00:00Z"), "weekly").unwrap();
        assert_eq!(next, at("2026-03-08T09:00:00Z"));
    }

    #[test]
    fn missed_runs_are_skipped_to_the_first_after_now() {
        let change = recurring(Some("daily"), None, "2026-03-01T09:00:00Z");
        let next = next_run_after(&change, at("2026-03-05T10:00:00Z")).unwrap();
        assert_eq!(next, at("2026-03-06T09:00:00Z"));
        let next = next_run_after(&change, at("2026-03-01T09:00:30Z")).unwrap();
        assert_eq!(next, at("2026-03-02T09:00:00Z"));
    }

    #[test]
    fn cron_reads_wall_clock_time_in_the_schedule_timezone() {
        // Weekdays at 9:00: Friday 6 March 2026 → Monday 9 March.
        let next = next_cron("0 9 * * 1-5", at("2026-03-06T09:00:00Z"), Some("UTC")).unwrap();
        assert_eq!(next, at("2026-03-09T09:00:00Z"));
        let ny = next_cron(
            "0 9 * * *",
            at("2026-07-01T00:00:00Z"),
            Some("America/New_York"),
        );
        assert_eq!(ny.unwrap(), at("2026-07-01T13:00:00Z"));
        let unknown = next_cron("0 9 * * *", at("2026-07-01T00:00:00Z"), Some("Mars/Base"));
        assert_eq!(unknown.unwrap(), at("2026-07-01T09:00:00Z"));
    }

    #[test]
    fn end_date_finishes_a_recurring_change() {
        let mut change = recurring(Some("daily"), None, "2026-03-01T09:00:00Z");
        change.end_date = Some(at("2026-03-01T12:00:00Z"));
        let after = change.after_run(at("2026-03-01T09:00:10Z")).unwrap();
        assert_eq!(after.executed_at, Some(at("2026-03-01T09:00:10Z")));
        assert_eq!(after.last_executed_at, after.executed_at);
        assert_eq!(after.due_at(), None);
    }

    #[test]
    fn failures_retry_until_the_bound() {
        let mut change = recurring(Some("daily"), None, "2026-03-01T09:00:00Z");
        let now = at("2026-03-01T09:00:10Z");
        for n in 1..MAX_ATTEMPTS {
            change = change.after_failure(&ApiError::internal("throttled"), now);
            assert_eq!(change.failure_count, n);
            assert!(change.due_at().is_some());
        }
        change = change.after_failure(&ApiError::internal("throttled"), now);
        assert_eq!(change.due_at(), None);
        let shown = formatted_failure_reason(change.failure_reason.as_deref().unwrap());
        assert!(
            shown.ends_with("(failed after 5 out of 5 attempts)"),
            "{shown}"
        );
    }

    #[test]
    fn cron_needs_five_fields() {
        let input = Input {
            is_recurring: Some(true),
            cron_expression: Some(Some("0 0 9 * * 1-5".into())),
            payload: Some(json!({"operation": "update_status", "value": true})),
            scheduled_at: Some(at("2026-03-01T09:00:00Z")),
            ..Input::default()
        };
        let err = validate(&input, None).unwrap_err();
        assert_eq!(err.to_string(), FIVE_FIELDS);
        let bad = Input {
            cron_expression: Some(Some("61 * * * *".into())),
            ..input
        };
        assert_eq!(validate(&bad, None).unwrap_err().to_string(), INVALID_CRON);
    }
}
