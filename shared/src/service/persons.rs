//! Person rules for the persons API (PostHog's PersonViewSet): looking a person up by the id
//! PostHog accepts, changing properties without losing concurrent captures, the cohorts a
//! person is in, the values of a property, and deleting persons with everything keyed by them.
//! Capture's own rules stay in [`crate::capture::persons`].

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value};

use super::cohorts::MAX_SCANNED;
use super::{CohortService, retry_lost_races};
use crate::cohort::Cohort;
use crate::error::{ApiError, ApiResult};
use crate::evaluation::snapshot::CohortProbe;
use crate::person::{MAX_PROPERTIES_BYTES, Person, PersonWrite};
use crate::store::{FlagStore, PersonStore, WriteError};
use crate::time::Timestamp;

/// PostHog's bound on `bulk_delete`: ids (or distinct ids) per request.
pub const MAX_BULK_DELETE: usize = 1000;
/// Keys one `delete_property` call may remove (the tool catalog's bound).
pub const MAX_UNSET_KEYS: usize = 1000;
/// `persons/values/` counts values among the project's newest persons only (PostHog reads its
/// newest 100,000 from ClickHouse; here every person read is a DynamoDB read on the request
/// path, so the bound is lower).
pub const VALUES_SCANNED: usize = 10_000;
/// Values `persons/values/` answers at most, most frequent first (PostHog's `LIMIT 20`).
pub const VALUES_SHOWN: usize = 20;
/// Persons deleted at once by a bulk delete (one transaction each).
const DELETES_IN_FLIGHT: usize = 8;

/// Person reads and writes of the persons API, over the store traits they need.
pub struct PersonService<'a, S> {
    store: &'a S,
}

impl<'a, S: FlagStore + PersonStore> PersonService<'a, S> {
    pub fn new(store: &'a S) -> Self {
        PersonService { store }
    }

    /// The person a path's `{id}` names. PostHog takes a person uuid or its integer primary
    /// key; persons here have no integer key, so an integer finds nobody (404). Anything else
    /// is PostHog's 400 pointing at the `distinct_id` filter.
    pub async fn find(&self, project_id: i64, id: &str) -> ApiResult<Person> {
        let Some(uuid) = person_uuid(id)? else {
            return Err(ApiError::not_found());
        };
        self.store
            .person(project_id, &uuid)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// Sets one property (PostHog's `update_property`, a `$set` of one key). Written
    /// conditionally on the revision read and redone on a lost race, so a capture changing the
    /// same person in between keeps its changes and this one lands on top.
    pub async fn set_property(
        &self,
        project_id: i64,
        uuid: &str,
        key: &str,
        value: &Value,
    ) -> ApiResult<()> {
        let change = |properties: &mut Map<String, Value>| {
            properties.insert(key.to_string(), value.clone());
        };
        retry_lost_races(person_busy, || self.try_change(project_id, uuid, &change)).await
    }

    /// Removes properties (PostHog's `delete_property`, an `$unset`); absent keys are no-ops.
    pub async fn unset_properties(
        &self,
        project_id: i64,
        uuid: &str,
        keys: &[String],
    ) -> ApiResult<()> {
        let change = |properties: &mut Map<String, Value>| {
            for key in keys {
                properties.shift_remove(key);
            }
        };
        retry_lost_races(person_busy, || self.try_change(project_id, uuid, &change)).await
    }

    async fn try_change(
        &self,
        project_id: i64,
        uuid: &str,
        change: &impl Fn(&mut Map<String, Value>),
    ) -> Result<(), WriteError> {
        let person = self
            .store
            .person(project_id, uuid)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let mut changed = person.clone();
        change(&mut changed.properties);
        if changed == person {
            return Ok(());
        }
        let size = Value::Object(changed.properties.clone()).to_string().len();
        if size > MAX_PROPERTIES_BYTES {
            return Err(ApiError::invalid(
                "value",
                format!(
                    "The person's properties would take {size} bytes; the limit is {MAX_PROPERTIES_BYTES} bytes (300 KB)."
                ),
            )
            .into());
        }
        let write = PersonWrite {
            person: changed,
            claimed_distinct_ids: Vec::new(),
            merged: Vec::new(),
        };
        let lost = self.store.write_persons(&[write]).await?;
        if lost.is_empty() {
            Ok(())
        } else {
            Err(WriteError::Retry)
        }
    }

    /// The live cohorts the person is in now (PostHog's `persons/cohorts/`): static cohorts
    /// holding them, and property cohorts they match, evaluated by the engine exactly as
    /// `/flags` would (nested cohorts, deleted cohorts never matching). Lowest id first.
    pub async fn cohorts_of(&self, person: &Person, now: Timestamp) -> ApiResult<Vec<Cohort>> {
        let cohorts = self.store.project_cohorts(person.project_id).await?;
        let live: Vec<&Cohort> = cohorts.iter().filter(|c| !c.deleted).collect();
        let statics: Vec<i64> = live.iter().filter(|c| c.is_static).map(|c| c.id).collect();
        let held = if statics.is_empty() {
            Vec::new()
        } else {
            self.store
                .static_memberships(
                    person.project_id,
                    &statics,
                    std::slice::from_ref(&person.uuid),
                )
                .await?
                .remove(&person.uuid)
                .unwrap_or_default()
        };
        let dynamic: Vec<i64> = live.iter().filter(|c| !c.is_static).map(|c| c.id).collect();
        let matched = CohortProbe::for_cohorts(&dynamic, &cohorts).matching(person, &held, now);
        let mut found: Vec<Cohort> = live
            .into_iter()
            .filter(|c| held.contains(&c.id) || matched.contains(&c.id))
            .cloned()
            .collect();
        found.sort_by_key(|c| c.id);
        Ok(found)
    }

    /// PostHog's `persons/values/`: the most frequent values of person property `key` (as
    /// PostHog shows them, text) with how many persons hold each, among the newest
    /// [`VALUES_SCANNED`] persons; `search` keeps values containing it, case-insensitively.
    /// `distinct_id` lists distinct ids instead (count 1 each, alphabetical), as PostHog does.
    pub async fn property_values(
        &self,
        project_id: i64,
        key: &str,
        search: Option<&str>,
    ) -> ApiResult<Vec<(String, u64)>> {
        let search = search.filter(|s| !s.is_empty()).map(str::to_lowercase);
        let wanted = |name: &str| {
            search
                .as_deref()
                .is_none_or(|s| name.to_lowercase().contains(s))
        };
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut distinct: Vec<String> = Vec::new();
        let (mut cursor, mut read) = (None::<String>, 0);
        loop {
            let page_size = (VALUES_SCANNED - read).min(1000);
            let (page, next) = self
                .store
                .persons_page_newest_first(project_id, cursor.as_deref(), page_size)
                .await?;
            read += page.len();
            for person in page {
                if key == "distinct_id" {
                    distinct.extend(person.distinct_ids.into_iter().filter(|d| wanted(d)));
                    continue;
                }
                let Some(value) = person.properties.get(key) else {
                    continue;
                };
                // Without a search PostHog skips empty strings; a search never matches them.
                if value.as_str() == Some("") {
                    continue;
                }
                let name = value_name(value);
                if wanted(&name) {
                    *counts.entry(name).or_default() += 1;
                }
            }
            match next {
                Some(next) if read < VALUES_SCANNED => cursor = Some(next),
                _ => break,
            }
        }
        if key == "distinct_id" {
            distinct.sort();
            distinct.dedup();
            distinct.truncate(VALUES_SHOWN);
            return Ok(distinct.into_iter().map(|d| (d, 1)).collect());
        }
        let mut values: Vec<(String, u64)> = counts.into_iter().collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        values.truncate(VALUES_SHOWN);
        Ok(values)
    }

    /// PostHog's `bulk_delete`: deletes the persons (each with its distinct ids and their hash
    /// key overrides, in one transaction per person), then takes them out of every static
    /// cohort, correcting the counts. Unknown ids are skipped. Returns how many were deleted.
    pub async fn delete(
        &self,
        project_id: i64,
        target: &DeleteTarget,
        now: Timestamp,
    ) -> ApiResult<usize> {
        let persons: Vec<Person> = match target {
            DeleteTarget::Ids(uuids) => self.store.persons_by_ids(project_id, uuids).await?,
            DeleteTarget::DistinctIds(ids) => {
                let mut seen = HashSet::new();
                self.store
                    .persons_by_distinct_ids(project_id, ids)
                    .await?
                    .into_values()
                    .filter(|p| seen.insert(p.uuid.clone()))
                    .collect()
            }
        };
        let deleted: Vec<String> = stream::iter(persons)
            .map(|person| self.delete_one(person))
            .buffer_unordered(DELETES_IN_FLIGHT)
            .try_collect::<Vec<Option<String>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        CohortService::new(self.store)
            .forget_persons(project_id, &deleted, now)
            .await?;
        Ok(deleted.len())
    }

    /// Deletes one person, re-reading it after a lost race; `None` when it was gone already
    /// (deleted, or merged into another person by a capture).
    async fn delete_one(&self, person: Person) -> ApiResult<Option<String>> {
        let (project_id, uuid) = (person.project_id, person.uuid.clone());
        let mut first = Some(person);
        let attempt = || {
            let read = first.take();
            let uuid = uuid.clone();
            async move {
                let person = match read {
                    Some(person) => person,
                    None => match self.store.person(project_id, &uuid).await? {
                        Some(person) => person,
                        None => return Ok(None),
                    },
                };
                if self.store.delete_person(&person).await? {
                    Ok(Some(uuid))
                } else {
                    Err(WriteError::Retry)
                }
            }
        };
        retry_lost_races(person_busy, attempt).await
    }
}

/// What `GET persons/` filters by besides `distinct_id` (PostHog's `email` and `search`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonFilter {
    /// The `email` property, exactly.
    pub email: Option<String>,
    /// Part of the email or name property, of a distinct id or of the uuid, any case.
    pub search: Option<String>,
}

impl PersonFilter {
    pub fn keeps(&self, person: &Person) -> bool {
        let text = |key: &str| person.properties.get(key).and_then(Value::as_str);
        if let Some(email) = &self.email
            && text("email") != Some(email.as_str())
        {
            return false;
        }
        let Some(search) = &self.search else {
            return true;
        };
        let needle = search.to_lowercase();
        let has = |hay: &str| hay.to_lowercase().contains(&needle);
        text("email").is_some_and(has)
            || text("name").is_some_and(has)
            || person.distinct_ids.iter().any(|d| has(d))
            || has(&person.uuid)
    }
}

impl<S: FlagStore + PersonStore> PersonService<'_, S> {
    /// A page of the persons `filter` keeps, walking the project's persons from `cursor`
    /// ([`walk_persons`]). A search term that is a whole uuid or email naming a person (by
    /// uuid or distinct id) answers that person alone, as PostHog does.
    pub async fn filtered_page(
        &self,
        project_id: i64,
        filter: &PersonFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> ApiResult<PersonsPage> {
        if cursor.is_none()
            && let Some(term) = filter.search.as_deref().map(str::trim)
        {
            let exact = match uuid::Uuid::try_parse(term) {
                Ok(uuid) => {
                    self.store
                        .person(project_id, &uuid.hyphenated().to_string())
                        .await?
                }
                Err(_) => None,
            };
            let exact = match exact {
                Some(person) => Some(person),
                None if term.contains('@') || uuid::Uuid::try_parse(term).is_ok() => {
                    if crate::limits::is_identifier(term) {
                        self.store.person_by_distinct_id(project_id, term).await?
                    } else {
                        None
                    }
                }
                None => None,
            };
            if let Some(person) = exact.filter(|p| {
                PersonFilter {
                    search: None,
                    ..filter.clone()
                }
                .keeps(p)
            }) {
                return Ok((vec![person], None));
            }
        }
        let keep = |page: Vec<Person>| async move {
            Ok(page.into_iter().filter(|p| filter.keeps(p)).collect())
        };
        walk_persons(self.store, project_id, cursor, limit, keep).await
    }
}

/// One page of persons, and the cursor of the next (`None` after the last).
pub type PersonsPage = (Vec<Person>, Option<String>);

/// Walks the project's persons in creation order from `cursor`, keeping what `keep` keeps of
/// each page, until `limit` are kept or [`MAX_SCANNED`] were read (a handful of Queries), so a
/// page may hold fewer than `limit` and still have a next cursor. Pages never ask for more
/// persons than free result slots, so the cursor is exact.
pub(crate) async fn walk_persons<S, F, Fut>(
    store: &S,
    project_id: i64,
    cursor: Option<&str>,
    limit: usize,
    mut keep: F,
) -> ApiResult<PersonsPage>
where
    S: PersonStore,
    F: FnMut(Vec<Person>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<Person>>>,
{
    let mut cursor = cursor.map(str::to_string);
    let (mut found, mut scanned) = (Vec::new(), 0);
    while found.len() < limit && scanned < MAX_SCANNED {
        let (page, next) = store
            .persons_page(project_id, cursor.as_deref(), limit - found.len())
            .await?;
        scanned += page.len().max(1);
        found.extend(keep(page).await?);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    Ok((found, cursor))
}

/// Whom a bulk delete names.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteTarget {
    /// Person uuids.
    Ids(Vec<String>),
    DistinctIds(Vec<String>),
}

/// A path's person id as a lookup: `Some(uuid)` (hyphenated, lowercase), `None` for an
/// integer (a primary key no person has here), or PostHog's 400.
pub fn person_uuid(id: &str) -> ApiResult<Option<String>> {
    if let Some(uuid) = crate::person::canonical_uuid(id) {
        return Ok(Some(uuid));
    }
    if id.trim().parse::<i64>().is_ok() {
        return Ok(None);
    }
    Err(ApiError::object(format!(
        "The ID provided does not look like a personID. If you are using a distinctId, please use /persons?distinct_id={id} instead."
    )))
}

/// How PostHog shows a stored value in `persons/values/` (`convert_property_value` of the
/// JSON it reads back): text as it is unless it parses as JSON, booleans `true`/`false`,
/// numbers and `None` as Python prints them, lists and objects as `json.dumps` with sorted
/// keys.
pub fn value_name(value: &Value) -> String {
    let parsed;
    let value = match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(inner) => {
                parsed = inner;
                &parsed
            }
            Err(_) => return text.clone(),
        },
        other => other,
    };
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => crate::python::json_dumps(&sorted(value)),
        other => crate::python::str(other),
    }
}

/// `value` with every object's keys in order, as `json.dumps(…, sort_keys=True)` writes them.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn person_busy() -> ApiError {
    ApiError::Conflict("The person is being changed by many requests at once. Please retry.".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_uuids_integers_or_refused() {
        let upper = "0190D6C0-0000-7000-8000-00000000000A";
        assert_eq!(
            person_uuid(upper).unwrap().as_deref(),
            Some("0190d6c0-0000-7000-8000-00000000000a")
        );
        assert_eq!(person_uuid("42").unwrap(), None);
        let refused = person_uuid("user@example.com").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "The ID provided does not look like a personID. If you are using a distinctId, please use /persons?distinct_id=user@example.com instead."
        );
    }

    #[test]
    fn values_are_named_as_posthog_shows_them() {
        assert_eq!(value_name(&json!("pro")), "pro");
        assert_eq!(value_name(&json!(5)), "5");
        assert_eq!(value_name(&json!("5")), "5");
        assert_eq!(value_name(&json!(1.5)), "1.5");
        assert_eq!(value_name(&json!(true)), "true");
        assert_eq!(value_name(&json!(null)), "None");
        assert_eq!(
            value_name(&json!({"b": 1, "a": [true, "x"]})),
            r#"{"a": [true, "x"], "b": 1}"#
        );
    }
}
