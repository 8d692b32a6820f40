//! Stored flags and cohorts → what the engine evaluates. `/flags` (its warm cache), the static
//! cohort fill and the persons of a property cohort ([`CohortProbe`]) all build their
//! [`FlagSet`] with [`EvaluationSnapshot::build`], so they agree on which cohorts exist
//! (evaluation-rules.md §2.6):
//! * a deleted cohort does not exist: a condition naming it matches for neither `in` nor
//!   `not_in`, directly or through another cohort, exactly like an id that never existed;
//! * property cohorts are compiled from their tree; static cohorts carry no tree and are
//!   matched by the memberships the caller looks up for
//!   [`EvaluationSnapshot::static_cohort_ids`] (the live static cohorts the live flags reach,
//!   directly or through property cohorts).
//!
//! The engine itself stays pure; [`cohorts_for`] is the one store read it leads to.

use serde_json::json;

use crate::cohort::{self, Cohort};
use crate::error::ApiResult;
use crate::flag::Flag;
use crate::identity::UserSummary;
use crate::person::Person;
use crate::store::CohortStore;
use crate::time::Timestamp;

use super::{EvaluationInput, FlagSet};

/// A project's flags and cohorts prepared for evaluation.
#[derive(Debug)]
pub struct EvaluationSnapshot {
    pub set: FlagSet,
    /// Static cohorts whose memberships a person's evaluation needs (empty: no lookup).
    pub static_cohort_ids: Vec<i64>,
}

impl EvaluationSnapshot {
    /// `flags` may include deleted ones (the engine skips them, and their cohorts are not
    /// looked up); `cohorts` are the project's as stored, deleted ones included.
    pub fn build(flags: &[Flag], cohorts: &[Cohort]) -> EvaluationSnapshot {
        let live: Vec<Cohort> = cohorts.iter().filter(|c| !c.deleted).cloned().collect();
        let defs: Vec<_> = live.iter().map(Cohort::for_evaluation).collect();
        let filters: Vec<_> = flags
            .iter()
            .filter(|f| !f.deleted)
            .map(|f| &f.filters)
            .collect();
        EvaluationSnapshot {
            set: FlagSet::new(flags, &defs),
            static_cohort_ids: cohort::referenced_static_ids(&filters, &live),
        }
    }
}

/// Evaluates cohorts for a stored person through the engine: one synthetic flag per cohort
/// whose only condition is "in cohort", so nested cohorts, negation, operators and deleted
/// cohorts behave exactly as in `/flags`. One cohort for a property cohort's persons, or every
/// live cohort of the project for the cohorts a person is in.
pub struct CohortProbe {
    set: FlagSet,
    /// Cohort id → the key of its synthetic flag.
    keys: Vec<(i64, String)>,
    /// Static cohorts the trees reach, whose memberships the caller looks up.
    pub static_ids: Vec<i64>,
}

impl CohortProbe {
    pub fn new(cohort_id: i64, cohorts: &[Cohort]) -> CohortProbe {
        CohortProbe::for_cohorts(&[cohort_id], cohorts)
    }

    /// A probe of each of `cohort_ids` (all evaluated in one pass).
    pub fn for_cohorts(cohort_ids: &[i64], cohorts: &[Cohort]) -> CohortProbe {
        let keys: Vec<(i64, String)> = cohort_ids
            .iter()
            .map(|id| (*id, format!("$cohort-{id}")))
            .collect();
        let flags: Vec<Flag> = keys
            .iter()
            .map(|(id, key)| {
                let mut flag = Flag::new(
                    *id,
                    0,
                    key.clone(),
                    UserSummary::default(),
                    chrono::Utc::now(),
                );
                flag.filters = json!({"groups": [{"properties": [
                    {"key": "id", "type": "cohort", "value": id, "operator": "in"}
                ], "rollout_percentage": 100}]});
                flag
            })
            .collect();
        // A probed cohort's persons are listed even once it is deleted, as retrieve still finds
        // it; only the cohorts it references follow the rule.
        let cohorts: Vec<Cohort> = cohorts
            .iter()
            .map(|c| Cohort {
                deleted: c.deleted && !cohort_ids.contains(&c.id),
                ..c.clone()
            })
            .collect();
        let built = EvaluationSnapshot::build(&flags, &cohorts);
        CohortProbe {
            set: built.set,
            keys,
            static_ids: built.static_cohort_ids,
        }
    }

    /// Whether the person is in the (first) probed cohort.
    pub fn matches(&self, person: &Person, static_ids: &[i64], now: Timestamp) -> bool {
        self.keys
            .first()
            .is_some_and(|(_, key)| person.flag_enabled(&self.set, key, static_ids, now))
    }

    /// The probed cohorts the person is in, in the order they were given. A person without a
    /// distinct id matches none (as in [`Person::flag_enabled`]).
    pub fn matching(&self, person: &Person, static_ids: &[i64], now: Timestamp) -> Vec<i64> {
        let Some(distinct_id) = person.distinct_ids.first() else {
            return Vec::new();
        };
        let mut input = EvaluationInput::new(distinct_id, now);
        input.person_properties = &person.properties;
        input.static_cohort_ids = static_ids;
        let answers = self.set.evaluate(&input);
        self.keys
            .iter()
            .filter(|(_, key)| answers.get(key).is_some_and(|e| e.enabled))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The project's cohorts (deleted ones included, for [`EvaluationSnapshot::build`]), or none
/// without a Query when no live flag names a cohort, as in most projects.
pub async fn cohorts_for<S: CohortStore>(
    store: &S,
    project_id: i64,
    flags: &[Flag],
) -> ApiResult<Vec<Cohort>> {
    let names_cohort = flags
        .iter()
        .any(|f| !f.deleted && !cohort::flag_cohort_ids(&f.filters).is_empty());
    if names_cohort {
        store.project_cohorts(project_id).await
    } else {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::error::ApiError;
    use crate::evaluation::EvaluationInput;
    use crate::identity::UserSummary;

    fn user() -> UserSummary {
        UserSummary {
            id: 1,
            uuid: "u".into(),
            distinct_id: "d".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: "a@b.c".into(),
        }
    }

    fn flag(id: i64, key: &str, cohort_id: i64, operator: &str) -> Flag {
        let mut f = Flag::new(id, 7, key.into(), user(), chrono::Utc::now());
        f.filters = json!({"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": cohort_id, "operator": operator}
        ], "rollout_percentage": 100}]});
        f
    }

    fn property_cohort(id: i64, tree: Value) -> Cohort {
        let mut c = Cohort::new(id, 7, None, chrono::Utc::now());
        c.filters = json!({"properties": tree});
        c
    }

    fn plan_pro() -> Value {
        json!({"type": "AND", "values": [
            {"key": "plan", "type": "person", "value": "pro", "operator": "exact"}]})
    }

    fn nested(id: i64) -> Value {
        json!({"type": "AND", "values": [
            {"key": "id", "type": "cohort", "value": id, "operator": "in"}]})
    }

    fn deleted(mut c: Cohort) -> Cohort {
        c.deleted = true;
        c
    }

    /// Which of `flags` are enabled for a `plan: pro` person holding `statics`.
    fn enabled(snapshot: &EvaluationSnapshot, flags: &[Flag], statics: &[i64]) -> Vec<String> {
        let mut props = Map::new();
        props.insert("plan".into(), json!("pro"));
        let mut input = EvaluationInput::new("alice", chrono::Utc::now());
        input.person_properties = &props;
        input.static_cohort_ids = statics;
        let answers = snapshot.set.evaluate(&input);
        flags
            .iter()
            .filter(|f| answers.get(&f.key).is_some_and(|e| e.enabled))
            .map(|f| f.key.clone())
            .collect()
    }

    #[test]
    fn a_deleted_cohort_matches_neither_in_nor_not_in_directly_or_nested() {
        let mut fixed = Cohort::new(4, 7, None, chrono::Utc::now());
        fixed.is_static = true;
        let cohorts = [
            property_cohort(1, plan_pro()),
            deleted(property_cohort(2, plan_pro())),
            property_cohort(3, nested(2)),
            deleted(fixed),
        ];
        let flags = [
            flag(1, "live-in", 1, "in"),
            flag(2, "deleted-in", 2, "in"),
            flag(3, "deleted-not-in", 2, "not_in"),
            flag(4, "through-deleted-in", 3, "in"),
            flag(5, "through-deleted-not-in", 3, "not_in"),
            flag(6, "deleted-static-in", 4, "in"),
            flag(7, "deleted-static-not-in", 4, "not_in"),
        ];
        let snapshot = EvaluationSnapshot::build(&flags, &cohorts);
        assert_eq!(snapshot.static_cohort_ids, Vec::<i64>::new());
        // Cohort 3 is live but holds no one without cohort 2, so `not_in 3` matches.
        assert_eq!(
            enabled(&snapshot, &flags, &[]),
            ["live-in", "through-deleted-not-in"]
        );
        // Restored, the same cohorts match again.
        let restored: Vec<Cohort> = cohorts
            .iter()
            .cloned()
            .map(|mut c| {
                c.deleted = false;
                c
            })
            .collect();
        let snapshot = EvaluationSnapshot::build(&flags, &restored);
        assert_eq!(snapshot.static_cohort_ids, [4]);
        assert_eq!(
            enabled(&snapshot, &flags, &[]),
            [
                "live-in",
                "deleted-in",
                "through-deleted-in",
                "deleted-static-not-in"
            ]
        );
        assert!(enabled(&snapshot, &flags, &[4]).contains(&"deleted-static-in".to_string()));
    }

    #[test]
    fn static_cohorts_are_looked_up_only_for_live_flags() {
        let mut fixed = Cohort::new(4, 7, None, chrono::Utc::now());
        fixed.is_static = true;
        let cohorts = [property_cohort(3, nested(4)), fixed];
        let mut gone = flag(1, "gone", 4, "in");
        gone.deleted = true;
        assert!(
            EvaluationSnapshot::build(&[gone], &cohorts)
                .static_cohort_ids
                .is_empty()
        );
        let through = flag(2, "through", 3, "in");
        assert_eq!(
            EvaluationSnapshot::build(&[through], &cohorts).static_cohort_ids,
            [4]
        );
    }

    #[test]
    fn a_probe_follows_the_rule_below_the_probed_cohort_which_is_listed_even_deleted() {
        let mut alice = Person::new(7, "alice", chrono::Utc::now());
        alice.properties.insert("plan".into(), json!("pro"));
        let now = chrono::Utc::now();
        let cohorts = [
            deleted(property_cohort(2, plan_pro())),
            property_cohort(3, nested(2)),
        ];
        assert!(!CohortProbe::new(3, &cohorts).matches(&alice, &[], now));
        assert!(CohortProbe::new(2, &cohorts).matches(&alice, &[], now));
        assert!(!CohortProbe::new(9, &cohorts).matches(&alice, &[], now));
    }

    /// Only `project_cohorts` is read by the builder; the rest is never called.
    #[derive(Default)]
    struct Cohorts {
        stored: Vec<Cohort>,
        reads: AtomicUsize,
    }

    impl CohortStore for Cohorts {
        async fn next_cohort_id(&self) -> Result<i64, ApiError> {
            unreachable!()
        }
        async fn cohort(&self, _: i64, _: i64) -> Result<Option<Cohort>, ApiError> {
            unreachable!()
        }
        async fn project_cohorts(&self, _: i64) -> Result<Vec<Cohort>, ApiError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Ok(self.stored.clone())
        }
        async fn write_cohort(&self, _: &Cohort, _: bool) -> Result<Option<Cohort>, ApiError> {
            unreachable!()
        }
        async fn add_cohort_members(&self, _: i64, _: i64, _: &[String]) -> Result<(), ApiError> {
            unreachable!()
        }
        async fn remove_cohort_members(
            &self,
            _: i64,
            _: i64,
            _: &[String],
        ) -> Result<Vec<String>, ApiError> {
            unreachable!()
        }
        async fn cohort_members_page(
            &self,
            _: i64,
            _: i64,
            _: Option<&str>,
            _: usize,
        ) -> Result<(Vec<String>, Option<String>), ApiError> {
            unreachable!()
        }
        async fn static_memberships(
            &self,
            _: i64,
            _: &[i64],
            _: &[String],
        ) -> Result<HashMap<String, Vec<i64>>, ApiError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn cohorts_are_read_only_when_a_live_flag_names_one() {
        let store = Cohorts {
            stored: vec![deleted(property_cohort(2, plan_pro()))],
            ..Default::default()
        };
        let mut gone = flag(1, "gone", 2, "in");
        gone.deleted = true;
        let mut plain = Flag::new(3, 7, "plain".into(), user(), chrono::Utc::now());
        plain.filters = json!({"groups": [{"properties": [], "rollout_percentage": 100}]});
        let none = cohorts_for(&store, 7, &[gone, plain.clone()])
            .await
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(store.reads.load(Ordering::Relaxed), 0);

        let flags = [flag(2, "uses", 2, "in"), plain];
        let cohorts = cohorts_for(&store, 7, &flags).await.unwrap();
        assert_eq!(
            cohorts.len(),
            1,
            "deleted ones come back; the builder drops them"
        );
        assert_eq!(store.reads.load(Ordering::Relaxed), 1);
        let snapshot = EvaluationSnapshot::build(&flags, &cohorts);
        assert_eq!(enabled(&snapshot, &flags, &[]), ["plain"]);
    }
}
