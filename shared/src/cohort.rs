//! Cohorts (PostHog's cohort model, flag-management-rules.md §8, evaluation-rules.md §2.6): the stored
//! record, its PostHog representation, validation of property-cohort filters, and the fill state
//! of a static cohort being computed from a flag.
//!
//! Two kinds:
//! * property (dynamic) cohorts hold a person-property tree in `filters`
//!   (`{"properties": {"type": "OR", "values": [{"type": "AND", "values": [...]}]}}`), evaluated
//!   at request time by the engine and sent to SDKs in the definitions;
//! * static cohorts hold memberships (items in the persons table, see `store::dynamo`), written
//!   on create (person uuids or distinct ids) or by the fill worker (`workers::cohort_fill`).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::evaluation;
use crate::flag::filters::{self, CohortRef, ConditionSet, Filters, Section};
use crate::identity::UserSummary;
use crate::time::{self, Timestamp, serde_ts};

/// PostHog's `name` column (`max_length=400`, nullable).
pub const NAME_MAX_CHARS: usize = 400;
/// PostHog's `description` column.
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Person uuids plus distinct ids one create may name: memberships are written inside the
/// request (400 BatchWriteItem calls at most), so it must stay well inside the API timeout.
pub const MAX_STATIC_IDS: usize = 10_000;
/// Leaves of one property tree; a bigger tree is a mistake, and it is evaluated per request.
const MAX_LEAVES: usize = 500;
/// Nesting of property groups.
const MAX_DEPTH: usize = 8;

/// A cohort as stored in the cohorts table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub id: i64,
    pub project_id: i64,
    pub name: Option<String>,
    pub description: String,
    /// Legacy `groups` as the client sent them (`[]` otherwise); shown back unchanged.
    #[serde(with = "crate::json_text")]
    pub groups: Value,
    /// `{"properties": <property group>}` for property cohorts, `null` for static ones.
    #[serde(with = "crate::json_text")]
    pub filters: Value,
    pub deleted: bool,
    pub is_static: bool,
    /// True while a fill runs. The cohorts table's stream only triggers the fill worker for
    /// images where this is true (template.yaml's FilterCriteria), so it must stay a top-level
    /// boolean attribute.
    pub is_calculating: bool,
    pub created_by: Option<UserSummary>,
    #[serde(with = "serde_ts")]
    pub created_at: Timestamp,
    #[serde(with = "serde_ts::option", default)]
    pub last_calculation: Option<Timestamp>,
    pub errors_calculating: i64,
    /// Members of a static cohort; `None` until computed (and for property cohorts).
    pub count: Option<i64>,
    /// The fill job of a static cohort created from a flag, while it runs.
    #[serde(default)]
    pub fill: Option<Fill>,
    /// Bumped by every stored write, which is conditional on the value read (0 = not stored).
    #[serde(default)]
    pub revision: i64,
}

/// Where a static cohort's fill stands: persons are walked in the persons store's order, and
/// everything before `cursor` has been evaluated and its members written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub flag_id: i64,
    /// The persons cursor to continue after; `None` before the first page.
    pub cursor: Option<String>,
    /// Members written so far (the cohort's `count` once done).
    pub matched: i64,
    /// Pages' worth of steps taken: each step's write changes the item, which is the next
    /// stream record.
    pub step: i64,
    /// Last progress; a fill idle for long is re-kicked (see `workers::cohort_fill`).
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
}

impl Cohort {
    /// A new cohort with PostHog's defaults; the caller sets what the request says.
    pub fn new(id: i64, project_id: i64, creator: Option<UserSummary>, now: Timestamp) -> Cohort {
        Cohort {
            id,
            project_id,
            name: None,
            description: String::new(),
            groups: json!([]),
            filters: Value::Null,
            deleted: false,
            is_static: false,
            is_calculating: false,
            created_by: creator,
            created_at: now,
            last_calculation: None,
            errors_calculating: 0,
            count: None,
            fill: None,
            revision: 0,
        }
    }

    /// PostHog's cohort object (§8). A cohort without filters shows PostHog's rendering of
    /// its (empty) groups, `{"properties": {}}`, as CohortSerializer does.
    pub fn representation(&self) -> Value {
        let filters = match &self.filters {
            Value::Null => json!({"properties": {}}),
            filters => filters.clone(),
        };
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "groups": self.groups,
            "deleted": self.deleted,
            "filters": filters,
            "query": null,
            "is_calculating": self.is_calculating,
            "created_by": self.created_by.as_ref().map(UserSummary::to_json),
            "created_at": time::format(&self.created_at),
            "last_calculation": self.last_calculation.as_ref().map(time::format),
            "errors_calculating": self.errors_calculating,
            "count": self.count,
            "is_static": self.is_static,
            "experiment_set": [],
        })
    }

    /// The property tree, without the stored `properties` wrapper.
    pub fn property_group(&self) -> Option<&Value> {
        self.filters.get("properties")
    }

    /// The engine's view: static cohorts carry no tree (membership is looked up per person).
    pub fn for_evaluation(&self) -> evaluation::Cohort {
        evaluation::Cohort {
            id: self.id,
            filters: if self.is_static {
                json!({})
            } else {
                self.filters.clone()
            },
            is_static: self.is_static,
        }
    }
}

/// What flag validation needs of the project's cohorts (E13/E14). Deleted cohorts do not
/// exist for it. Our cohorts never hold behavioural filters (create refuses them), but the
/// check follows nested references anyway so a stored oddity can never reach a flag.
pub fn refs(cohorts: &[Cohort]) -> Vec<CohortRef> {
    let live = live_by_id(cohorts);
    live.values()
        .map(|c| CohortRef {
            id: c.id,
            name: c.name.clone().unwrap_or_default(),
            has_behavioral_filters: reachable(c.id, &live)
                .iter()
                .any(|id| live.get(id).is_some_and(|c| has_behavioral(&c.filters))),
        })
        .collect()
}

/// `id` and every cohort it references, transitively (cycles stop).
fn reachable(id: i64, live: &HashMap<i64, &Cohort>) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![id];
    while let Some(next) = todo.pop() {
        if !seen.insert(next) {
            continue;
        }
        if let Some(c) = live.get(&next) {
            todo.extend(cohort_references(&c.filters));
        }
    }
    seen
}

/// Cohort ids named by `type: cohort` leaves anywhere in a cohort's filters.
pub fn cohort_references(filters: &Value) -> Vec<i64> {
    let mut out = Vec::new();
    walk_leaves(filters, &mut |leaf| {
        if leaf.get("type").and_then(Value::as_str) == Some("cohort")
            && let Some(id) = leaf.get("value").and_then(integer)
        {
            out.push(id);
        }
    });
    out
}

fn has_behavioral(filters: &Value) -> bool {
    let mut found = false;
    walk_leaves(filters, &mut |leaf| {
        let kind = leaf.get("type").and_then(Value::as_str).unwrap_or("");
        found |= !matches!(kind, "person" | "cohort");
    });
    found
}

fn walk_leaves(node: &Value, visit: &mut dyn FnMut(&Value)) {
    if let Some(inner) = node.get("properties") {
        return walk_leaves(inner, visit);
    }
    match node.get("values").and_then(Value::as_array) {
        Some(values) => values.iter().for_each(|v| walk_leaves(v, visit)),
        None if node.get("key").is_some() || node.get("type").is_some() => visit(node),
        None => {}
    }
}

/// Cohort ids named by `type: cohort` properties of a flag's release conditions (and super
/// groups), as written (number or digits).
pub fn flag_cohort_ids(filters: &Value) -> Vec<i64> {
    let filters = Filters::of(filters);
    [Section::Groups, Section::SuperGroups]
        .into_iter()
        .flat_map(|section| filters.conditions(section))
        .flat_map(ConditionSet::properties)
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("cohort"))
        .filter_map(|p| p.get("value").and_then(integer))
        .collect()
}

/// §3.2: every cohort property of `filters.groups[].properties[]` gets `cohort_name` (the
/// cohort's name, null when it does not exist in the project).
pub fn add_cohort_names(filters: &mut Value, names: &HashMap<i64, Option<String>>) {
    let cohort_properties = filters::properties_mut(filters, Section::Groups)
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("cohort"));
    for p in cohort_properties {
        let name = p
            .get("value")
            .and_then(integer)
            .and_then(|id| names.get(&id).cloned().flatten());
        p.insert("cohort_name".into(), json!(name));
    }
}

/// Cohorts the definitions carry: every live property cohort referenced by a shown flag,
/// transitively, as `id → property group`. Static cohorts are left out on purpose: the SDK
/// then meets an unknown cohort and asks `/flags` (evaluation-rules.md §2.6, §4.2).
pub fn definitions(flag_filters: &[&Value], cohorts: &[Cohort]) -> Map<String, Value> {
    referenced(flag_filters, cohorts)
        .filter(|c| !c.is_static)
        .map(|c| {
            let group = c.property_group().cloned().unwrap_or_else(|| json!({}));
            (c.id.to_string(), group)
        })
        .collect()
}

/// Static cohorts a request may need memberships for: those named by live flags, directly or
/// through property cohorts.
pub fn referenced_static_ids(flag_filters: &[&Value], cohorts: &[Cohort]) -> Vec<i64> {
    referenced(flag_filters, cohorts)
        .filter(|c| c.is_static)
        .map(|c| c.id)
        .collect()
}

/// Live cohorts the flags name, directly or through other cohorts, lowest id first.
fn referenced<'c>(
    flag_filters: &[&Value],
    cohorts: &'c [Cohort],
) -> impl Iterator<Item = &'c Cohort> {
    let live = live_by_id(cohorts);
    let mut wanted = BTreeSet::new();
    for id in flag_filters.iter().flat_map(|f| flag_cohort_ids(f)) {
        wanted.extend(reachable(id, &live));
    }
    wanted
        .into_iter()
        .filter_map(move |id| live.get(&id).copied())
}

/// Cohorts that are not deleted, by id.
fn live_by_id(cohorts: &[Cohort]) -> HashMap<i64, &Cohort> {
    cohorts
        .iter()
        .filter(|c| !c.deleted)
        .map(|c| (c.id, c))
        .collect()
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Create request

/// What `POST /cohorts/` asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCohort {
    pub name: Option<String>,
    pub description: String,
    pub groups: Value,
    /// `{"properties": …}` for a property cohort; `null` for a static one.
    pub filters: Value,
    pub is_static: bool,
    /// PostHog's `_create_static_person_ids`: person uuids.
    pub person_ids: Vec<String>,
    /// Our extension, `distinct_ids`: members by distinct id (PostHog's CSV upload takes
    /// distinct ids too, as a file).
    pub distinct_ids: Vec<String>,
}

const ATTR_FILTERS: &str = "filters";

/// Reads and validates a create body. `existing` are the project's cohorts, for nested
/// cohort references.
pub fn parse_create(body: &Map<String, Value>, existing: &[Cohort]) -> ApiResult<NewCohort> {
    let name = optional_text(body, "name", NAME_MAX_CHARS)?;
    let description =
        optional_text(body, "description", DESCRIPTION_MAX_CHARS)?.unwrap_or_default();
    let is_static = boolean(body, "is_static")?.unwrap_or(false);
    let (person_ids, distinct_ids) = members(body, is_static)?;
    let groups = body.get("groups").cloned().unwrap_or_else(|| json!([]));
    let filters = if is_static {
        Value::Null
    } else {
        property_filters(body, &groups, existing)?
    };
    Ok(NewCohort {
        name,
        description,
        groups,
        filters,
        is_static,
        person_ids,
        distinct_ids,
    })
}

/// PostHog's `_create_static_person_ids` and our `distinct_ids`, refused for property cohorts.
fn members(body: &Map<String, Value>, is_static: bool) -> ApiResult<(Vec<String>, Vec<String>)> {
    let person_ids = id_list(body, "_create_static_person_ids")?;
    let distinct_ids = id_list(body, "distinct_ids")?;
    let has_members = !person_ids.is_empty() || !distinct_ids.is_empty();
    if !is_static && has_members {
        return Err(ApiError::object(
            "Members can only be given for static cohorts: set \"is_static\": true, or describe the cohort with \"filters\".",
        ));
    }
    if person_ids.len() + distinct_ids.len() > MAX_STATIC_IDS {
        return Err(ApiError::object(format!(
            "A static cohort can be given at most {MAX_STATIC_IDS} person ids and distinct ids in one request."
        )));
    }
    Ok((person_ids, distinct_ids))
}

/// A DRF BooleanField (`true`, `"true"`, `1`, …); absent or null is `None`.
fn boolean(body: &Map<String, Value>, field: &str) -> ApiResult<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::flag::input::parse_boolean(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, "Must be a valid boolean.")),
    }
}

fn optional_text(body: &Map<String, Value>, field: &str, max: usize) -> ApiResult<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(ApiError::field(
            field,
            "max_length",
            format!("Ensure this field has no more than {max} characters."),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(field, "Not a valid string.")),
    }
}

fn id_list(body: &Map<String, Value>, field: &str) -> ApiResult<Vec<String>> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::field(
                field,
                "not_a_list",
                "Expected a list of strings.",
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
            Value::Number(n) => out.push(n.to_string()),
            _ => {
                return Err(ApiError::invalid(
                    field,
                    format!("Every entry must be a non-empty string, got {item}."),
                ));
            }
        }
    }
    Ok(out)
}

/// The stored `{"properties": …}` of a property cohort, from `filters` or legacy `groups`.
fn property_filters(
    body: &Map<String, Value>,
    groups: &Value,
    existing: &[Cohort],
) -> ApiResult<Value> {
    let tree = match body.get("filters") {
        Some(filters) if !filters.is_null() => filters
            .get("properties")
            .cloned()
            .ok_or_else(|| invalid_filters("\"filters\" must be an object with a \"properties\" property group, e.g. {\"properties\": {\"type\": \"OR\", \"values\": [{\"type\": \"AND\", \"values\": [{\"key\": \"email\", \"type\": \"person\", \"operator\": \"icontains\", \"value\": \"@example.com\"}]}]}}."))?,
        _ => from_legacy_groups(groups)?,
    };
    let mut leaves = 0;
    check_group(&tree, 0, &mut leaves, existing)?;
    // A lone filter becomes a one-filter AND group: the SDKs read a cohort's definition as a
    // group only (a bare filter sends every flag using the cohort to the server).
    let tree = if tree.get("values").is_some() {
        tree
    } else {
        json!({"type": "AND", "values": [tree]})
    };
    Ok(json!({ "properties": tree }))
}

/// PostHog's legacy form: `groups` OR-ed, each an AND of `properties`.
fn from_legacy_groups(groups: &Value) -> ApiResult<Value> {
    let Some(list) = groups.as_array().filter(|l| !l.is_empty()) else {
        return Err(invalid_filters(
            "A property cohort needs \"filters\": {\"properties\": {\"type\": \"OR\", \"values\": [...]}} (or legacy \"groups\"); for a static cohort set \"is_static\": true.",
        ));
    };
    let mut values = Vec::with_capacity(list.len());
    for group in list {
        if group.get("action_id").is_some() || group.get("event_id").is_some() {
            return Err(behavioral());
        }
        let props = group
            .get("properties")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ApiError::invalid("groups", "Each group needs a \"properties\" list.")
            })?;
        values.push(json!({"type": "AND", "values": props}));
    }
    Ok(json!({"type": "OR", "values": values}))
}

fn check_group(
    node: &Value,
    depth: usize,
    leaves: &mut usize,
    existing: &[Cohort],
) -> ApiResult<()> {
    if depth > MAX_DEPTH {
        return Err(invalid_filters(format!(
            "Property groups may be nested at most {MAX_DEPTH} levels deep."
        )));
    }
    let obj = node.as_object().ok_or_else(|| {
        invalid_filters(format!(
            "Expected a property group or a property filter object, got {node}."
        ))
    })?;
    let Some(values) = obj.get("values") else {
        return check_leaf(obj, leaves, existing);
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("AND" | "OR") => {}
        other => {
            return Err(invalid_filters(format!(
                "A property group's \"type\" must be \"AND\" or \"OR\", not {}.",
                other.map_or("missing".to_string(), |t| format!("\"{t}\""))
            )));
        }
    }
    let values = values
        .as_array()
        .ok_or_else(|| invalid_filters("A property group's \"values\" must be a list."))?;
    // posthog-python matches an empty OR group (everyone), posthog-node and the server don't:
    // no answer agrees with both SDKs' local evaluation. An empty AND means everyone to all.
    if values.is_empty() && obj.get("type").and_then(Value::as_str) == Some("OR") {
        return Err(invalid_filters(
            "An \"OR\" property group needs at least one value (an empty \"AND\" group matches everyone).",
        ));
    }
    values
        .iter()
        .try_for_each(|v| check_group(v, depth + 1, leaves, existing))
}

fn check_leaf(leaf: &Map<String, Value>, leaves: &mut usize, existing: &[Cohort]) -> ApiResult<()> {
    *leaves += 1;
    if *leaves > MAX_LEAVES {
        return Err(invalid_filters(format!(
            "A cohort may hold at most {MAX_LEAVES} property filters."
        )));
    }
    match leaf.get("type").and_then(Value::as_str) {
        Some("person") => check_person_leaf(leaf),
        Some("cohort") => check_cohort_leaf(leaf, existing),
        Some("behavioral" | "event" | "action" | "events" | "actions" | "static-cohort") => {
            Err(behavioral())
        }
        other => Err(invalid_filters(format!(
            "Cohort filters can only use person properties and other cohorts (\"type\": \"person\" or \"cohort\"), not {}.",
            other.map_or("a filter without a type".to_string(), |t| format!(
                "\"{t}\""
            ))
        ))),
    }
}

fn check_person_leaf(leaf: &Map<String, Value>) -> ApiResult<()> {
    let key = leaf.get("key").and_then(Value::as_str).unwrap_or("");
    if key.is_empty() {
        return Err(invalid_filters(
            "Every person property filter needs a non-empty \"key\" (the property name).",
        ));
    }
    let operator = match leaf.get("operator") {
        None | Some(Value::Null) => "exact",
        Some(Value::String(op)) => op.as_str(),
        Some(other) => {
            return Err(invalid_filters(format!(
                "Unknown operator {other} on property \"{key}\"."
            )));
        }
    };
    if !filters::is_known_operator(operator)
        || matches!(operator, "in" | "not_in" | "flag_evaluates_to")
    {
        return Err(invalid_filters(format!(
            "Unknown operator \"{operator}\" on property \"{key}\"."
        )));
    }
    let needs_value = !matches!(operator, "is_set" | "is_not_set");
    if needs_value && leaf.get("value").is_none_or(Value::is_null) {
        return Err(invalid_filters(format!(
            "Property \"{key}\" with operator \"{operator}\" needs a \"value\"."
        )));
    }
    if let Some(negation) = leaf.get("negation")
        && !negation.is_boolean()
        && !negation.is_null()
    {
        return Err(invalid_filters("\"negation\" must be true or false."));
    }
    Ok(())
}

fn check_cohort_leaf(leaf: &Map<String, Value>, existing: &[Cohort]) -> ApiResult<()> {
    let value = leaf.get("value").unwrap_or(&Value::Null);
    let found = integer(value).and_then(|id| existing.iter().find(|c| c.id == id && !c.deleted));
    if found.is_none() {
        return Err(ApiError::field(
            ATTR_FILTERS,
            "cohort_does_not_exist",
            format!("Cohort with id {value} does not exist"),
        ));
    }
    match leaf.get("operator").and_then(Value::as_str) {
        None | Some("in" | "not_in" | "exact") => Ok(()),
        Some(op) => Err(invalid_filters(format!(
            "A cohort filter's operator must be \"in\" or \"not_in\", not \"{op}\"."
        ))),
    }
}

fn behavioral() -> ApiError {
    ApiError::field(
        ATTR_FILTERS,
        "behavioral_cohort_found",
        "Behavioral (event-based) cohort filters are not supported here: a cohort can only filter on person properties and other cohorts, since feature flags cannot use event-based cohorts.",
    )
}

fn invalid_filters(detail: impl Into<String>) -> ApiError {
    ApiError::invalid(ATTR_FILTERS, detail)
}

// ---------------------------------------------------------------------------------------------
// Update request

/// What `PATCH`/`PUT /cohorts/{id}/` makes of a stored cohort, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortUpdate {
    /// The cohort as it is to be stored (revision still the one read, so the write is
    /// conditional on it).
    pub cohort: Cohort,
    /// Members to add to a static cohort (as on create).
    pub person_ids: Vec<String>,
    pub distinct_ids: Vec<String>,
    /// Whether `/flags` or the definitions can answer differently afterwards (filters or
    /// `deleted` changed): the write then bumps the definitions version so caches reload.
    pub changes_evaluation: bool,
}

impl CohortUpdate {
    pub fn has_members(&self) -> bool {
        !self.person_ids.is_empty() || !self.distinct_ids.is_empty()
    }
}

/// Applies an update body to `current` as PostHog's `CohortSerializer.update` does: fields
/// absent from the body keep their value, so PUT and PATCH behave alike (no field of the
/// serializer is required). `cohorts` are the project's cohorts, `current` among them.
pub fn apply_update(
    body: &Map<String, Value>,
    current: &Cohort,
    cohorts: &[Cohort],
) -> ApiResult<CohortUpdate> {
    let mut cohort = current.clone();
    if body.contains_key("name") {
        cohort.name = optional_text(body, "name", NAME_MAX_CHARS)?;
    }
    if body.contains_key("description") {
        cohort.description =
            optional_text(body, "description", DESCRIPTION_MAX_CHARS)?.unwrap_or_default();
    }
    // PostHog would store a flipped `is_static`, leaving a static cohort without filters or a
    // property cohort without members (its UI never offers the switch); refuse it instead.
    // The current value is accepted, so a PUT echoing a retrieved cohort works.
    if let Some(is_static) = boolean(body, "is_static")?
        && is_static != current.is_static
    {
        return Err(ApiError::invalid(
            "is_static",
            "A cohort cannot be switched between static and property (dynamic): create a new cohort instead.",
        ));
    }
    if let Some(deleted) = boolean(body, "deleted")? {
        cohort.deleted = deleted;
    }
    let (person_ids, distinct_ids) = members(body, current.is_static)?;
    // Static cohorts have no filters to change (PostHog skips their validation too). Non-null
    // `filters` win over `groups`, as in PostHog; legacy `groups` alone rebuild the filters
    // unless empty (a PUT echoing a cohort made from `filters` sends `groups: []`).
    let new_filters = body.get("filters").is_some_and(|f| !f.is_null());
    let new_groups = body
        .get("groups")
        .is_some_and(|g| !g.is_null() && g.as_array().is_none_or(|l| !l.is_empty()));
    if !current.is_static {
        let groups = match body.get("groups") {
            Some(g) if !g.is_null() => g.clone(),
            _ => current.groups.clone(),
        };
        if new_filters || new_groups {
            cohort.filters = property_filters(body, &groups, cohorts)?;
        }
        cohort.groups = groups;
    }
    if !cohort.is_static && creates_loop(&cohort, cohorts) {
        return Err(ApiError::object(
            "Cohorts cannot reference other cohorts in a loop.",
        ));
    }
    let changes_evaluation = cohort.filters != current.filters || cohort.deleted != current.deleted;
    Ok(CohortUpdate {
        cohort,
        person_ids,
        distinct_ids,
        changes_evaluation,
    })
}

/// Whether `updated` reaches itself through cohort references, with its new filters in place
/// of the stored ones. Updates are the only way to close a loop (a create can only name
/// cohorts that exist already), and deleted cohorts count too: restoring one must not close a
/// loop either. The engine would survive a loop, but PostHog refuses them.
fn creates_loop(updated: &Cohort, cohorts: &[Cohort]) -> bool {
    let mut filters: HashMap<i64, &Value> = cohorts.iter().map(|c| (c.id, &c.filters)).collect();
    filters.insert(updated.id, &updated.filters);
    let mut seen = BTreeSet::new();
    let mut todo = cohort_references(&updated.filters);
    while let Some(id) = todo.pop() {
        if id == updated.id {
            return true;
        }
        if seen.insert(id)
            && let Some(f) = filters.get(&id)
        {
            todo.extend(cohort_references(f));
        }
    }
    false
}

/// Whether a flag with these filters uses cohort `id`, directly or through the live cohorts
/// it names (PostHog's `FeatureFlag.get_cohort_ids`, which includes dependencies).
pub fn flag_uses(flag_filters: &Value, id: i64, cohorts: &[Cohort]) -> bool {
    referenced(&[flag_filters], cohorts).any(|c| c.id == id)
}

/// `Users with feature flag <key> enabled at <YYYY-MM-DD HH:MM:SS>` (UTC), PostHog's name.
pub fn flag_cohort_name(flag_key: &str, now: Timestamp) -> String {
    format!(
        "Users with feature flag {flag_key} enabled at {}",
        now.format("%Y-%m-%d %H:%M:%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn cohort(id: i64, filters: Value, is_static: bool) -> Cohort {
        let mut c = Cohort::new(id, 1, None, chrono::Utc::now());
        c.filters = filters;
        c.is_static = is_static;
        c.name = Some(format!("c{id}"));
        c
    }

    fn person_group(key: &str) -> Value {
        json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": key, "type": "person", "operator": "exact", "value": ["x"]}]}]}})
    }

    fn code(r: ApiResult<NewCohort>) -> (String, String) {
        match r {
            Err(ApiError::Validation { code, detail, .. }) => (code, detail),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn property_cohort_parses() {
        let parsed = parse_create(
            &body(json!({"name": "n", "filters": person_group("email")})),
            &[],
        )
        .unwrap();
        assert!(!parsed.is_static);
        assert_eq!(parsed.filters, person_group("email"));
    }

    #[test]
    fn legacy_groups_become_an_or_of_ands() {
        let parsed = parse_create(
            &body(
                json!({"groups": [{"properties": [{"key": "a", "type": "person", "value": "1"}]}]}),
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            parsed.filters,
            json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [{"key": "a", "type": "person", "value": "1"}]}]}})
        );
    }

    #[test]
    fn bad_filters_are_400s() {
        let op = json!({"filters": {"properties": {"type": "AND", "values": [{"key": "a", "type": "person", "operator": "bogus", "value": 1}]}}});
        assert_eq!(code(parse_create(&body(op), &[])).0, "invalid_input");
        let event = json!({"filters": {"properties": {"type": "AND", "values": [{"key": "$pageview", "type": "behavioral", "value": "performed_event"}]}}});
        assert_eq!(
            code(parse_create(&body(event), &[])).0,
            "behavioral_cohort_found"
        );
        let missing = json!({"filters": {"properties": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 9}]}}});
        assert_eq!(
            code(parse_create(&body(missing), &[])).0,
            "cohort_does_not_exist"
        );
        assert_eq!(
            code(parse_create(&body(json!({"name": "x"})), &[])).0,
            "invalid_input"
        );
        let typ = json!({"filters": {"properties": {"type": "XOR", "values": []}}});
        assert!(
            code(parse_create(&body(typ), &[]))
                .1
                .contains("\"AND\" or \"OR\"")
        );
        let long = json!({"is_static": true, "name": "x".repeat(401)});
        assert_eq!(code(parse_create(&body(long), &[])).0, "max_length");
        let members = json!({"distinct_ids": ["a"], "filters": person_group("a")});
        assert!(
            code(parse_create(&body(members), &[]))
                .1
                .contains("is_static")
        );
    }

    #[test]
    fn a_lone_filter_is_stored_as_a_group_and_empty_or_groups_are_refused() {
        let leaf = json!({"key": "plan", "type": "person", "value": "pro"});
        let parsed = parse_create(&body(json!({"filters": {"properties": leaf}})), &[]).unwrap();
        assert_eq!(
            parsed.filters,
            json!({"properties": {"type": "AND", "values": [leaf]}})
        );
        for tree in [
            json!({"type": "OR", "values": []}),
            json!({"type": "AND", "values": [leaf, {"type": "OR", "values": []}]}),
        ] {
            let detail = code(parse_create(
                &body(json!({"filters": {"properties": tree}})),
                &[],
            ))
            .1;
            assert!(detail.contains("at least one value"), "{detail}");
        }
        let everyone = json!({"properties": {"type": "AND", "values": []}});
        let parsed = parse_create(&body(json!({"filters": everyone})), &[]).unwrap();
        assert_eq!(parsed.filters, everyone);
    }

    #[test]
    fn static_cohort_takes_ids() {
        let parsed = parse_create(
            &body(json!({"is_static": true, "distinct_ids": ["a", " b "], "_create_static_person_ids": ["u1"]})),
            &[],
        )
        .unwrap();
        assert_eq!(parsed.distinct_ids, vec!["a", "b"]);
        assert_eq!(parsed.person_ids, vec!["u1"]);
        assert_eq!(parsed.filters, Value::Null);
    }

    #[test]
    fn definitions_follow_references_and_skip_static() {
        let inner = cohort(2, person_group("a"), false);
        let outer = cohort(
            1,
            json!({"properties": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 2}]}}),
            false,
        );
        let fixed = cohort(3, Value::Null, true);
        let unused = cohort(4, person_group("b"), false);
        let flag = json!({"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": 1},
            {"key": "id", "type": "cohort", "value": "3"}]}]});
        let all = [inner, outer, fixed, unused];
        let defs = definitions(&[&flag], &all);
        assert_eq!(defs.keys().collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(defs["2"], person_group("a")["properties"]);
        assert_eq!(referenced_static_ids(&[&flag], &all), vec![3]);
    }

    #[test]
    fn cohort_names_are_added_to_cohort_properties() {
        let mut filters = json!({"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": 1},
            {"key": "id", "type": "cohort", "value": 7},
            {"key": "a", "type": "person", "value": 1}]}]});
        let names = HashMap::from([(1, Some("one".to_string()))]);
        add_cohort_names(&mut filters, &names);
        let props = &filters["groups"][0]["properties"];
        assert_eq!(props[0]["cohort_name"], "one");
        assert_eq!(props[1]["cohort_name"], Value::Null);
        assert!(props[2].get("cohort_name").is_none());
    }

    #[test]
    fn flag_cohort_name_is_posthogs() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap();
        assert_eq!(
            flag_cohort_name("beta", at),
            "Users with feature flag beta enabled at 2026-01-02 03:04:05"
        );
    }

    #[test]
    fn refs_mark_behavioral_nesting() {
        let bad = cohort(
            5,
            json!({"properties": {"type": "AND", "values": [{"key": "x", "type": "behavioral", "value": "performed_event"}]}}),
            false,
        );
        let outer = cohort(
            6,
            json!({"properties": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 5}]}}),
            false,
        );
        let refs = refs(&[bad, outer]);
        assert!(refs.iter().all(|r| r.has_behavioral_filters));
    }
}
