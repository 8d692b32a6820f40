//! The local-evaluation definitions payload the SDKs poll (evaluation-rules.md §4.2): the project's
//! flags in the SDK's shape, its group type mapping and cohorts.
//!
//! What differs from the stored flags:
//! * deleted flags, flags with encrypted payloads, config-v2 and survey-targeting flags are left
//!   out, and so is every flag depending on one of those (the SDK then asks `/flags`);
//! * inactive flags stay in (the SDK evaluates them to `false`);
//! * a flag dependency filter names its flag by key instead of id and carries
//!   `dependency_chain`: the flags to evaluate first, deepest first, the named flag last; an
//!   empty chain marks a cycle or a missing flag, which the SDK hands to the server.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::cohort::{self, Cohort};
use crate::flag::Flag;
use crate::flag::filters::{Filters, Section, properties_mut};
use crate::store::GroupType;

/// PostHog's prefix for flags that only target surveys; definitions never carry them.
const SURVEY_TARGETING_PREFIX: &str = "survey-targeting-";

/// The payload, flags sorted by key. `cohorts` holds every live property cohort the shown
/// flags reference, transitively; static cohorts are left out, so the SDK meets an unknown
/// cohort and evaluates that flag on the server (evaluation-rules.md §2.6, §4.2).
pub fn payload(flags: &[Flag], group_types: &[GroupType], cohorts: &[Cohort]) -> Value {
    let graph = Graph::new(flags);
    let mut shown: Vec<&Flag> = flags
        .iter()
        .filter(|f| !f.deleted && !graph.excluded(f.id))
        .collect();
    shown.sort_by(|a, b| a.key.cmp(&b.key));
    let mapping: Map<String, Value> = group_types
        .iter()
        .map(|g| (g.index.to_string(), json!(g.name)))
        .collect();
    json!({
        "flags": shown.iter().map(|f| flag_definition(f, &graph)).collect::<Vec<_>>(),
        "group_type_mapping": mapping,
        "cohorts": cohort::definitions(&shown.iter().map(|f| &f.filters).collect::<Vec<_>>(), cohorts),
        "property_matching_version": 1,
        "minimal_flag_called_events": false,
    })
}

/// One flag as the SDKs read it.
fn flag_definition(flag: &Flag, graph: &Graph) -> Value {
    let mut filters = flag.effective_filters();
    rewrite_dependencies(&mut filters, graph);
    json!({
        "id": flag.id,
        "team_id": flag.project_id,
        "name": flag.name,
        "key": flag.key,
        "filters": filters,
        "deleted": false,
        "active": flag.active,
        "ensure_experience_continuity": flag.ensure_experience_continuity.unwrap_or(false),
        "version": flag.version,
        "has_experiment": false,
        "has_encrypted_payloads": false,
        "evaluation_runtime": flag.evaluation_runtime,
        "evaluation_contexts": flag.evaluation_tags,
        "evaluation_tags": flag.evaluation_tags,
        "bucketing_identifier": flag.bucketing_identifier,
    })
}

/// Every `type: flag` filter of the release conditions: key → flag key, plus its chain.
fn rewrite_dependencies(filters: &mut Value, graph: &Graph) {
    let properties = properties_mut(filters, Section::Groups)
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("flag"));
    for property in properties {
        let target = property.get("key").and_then(|k| graph.resolve(k));
        let chain = target.map(|t| graph.chain(t)).unwrap_or_default();
        if let Some(t) = target {
            property.insert("key".into(), json!(graph.key(t)));
        }
        property.insert("dependency_chain".into(), json!(chain));
    }
}

/// The project's live flags and who depends on whom, by index into `flags`.
struct Graph<'a> {
    flags: &'a [Flag],
    by_id: HashMap<i64, usize>,
    by_key: HashMap<&'a str, usize>,
    /// Per flag: resolved dependencies, `None` for a reference to no live flag.
    edges: Vec<Vec<Option<usize>>>,
    excluded: HashSet<i64>,
}

impl<'a> Graph<'a> {
    fn new(flags: &'a [Flag]) -> Self {
        let live = || flags.iter().enumerate().filter(|(_, f)| !f.deleted);
        let by_id = live().map(|(i, f)| (f.id, i)).collect();
        let by_key = live().map(|(i, f)| (f.key.as_str(), i)).collect();
        let mut graph = Graph {
            flags,
            by_id,
            by_key,
            edges: Vec::new(),
            excluded: HashSet::new(),
        };
        graph.edges = flags
            .iter()
            .map(|f| references(f).iter().map(|r| graph.resolve(r)).collect())
            .collect();
        graph.excluded = graph.excluded_ids();
        graph
    }

    /// Stored filters name a flag by id (a number or its text); definitions by key.
    fn resolve(&self, reference: &Value) -> Option<usize> {
        let text = match reference {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return None,
        };
        let by_id = text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|id| self.by_id.get(&id));
        by_id.or_else(|| self.by_key.get(text.as_str())).copied()
    }

    fn key(&self, index: usize) -> &str {
        &self.flags[index].key
    }

    fn excluded(&self, id: i64) -> bool {
        self.excluded.contains(&id)
    }

    /// Flags the SDK cannot have, then everything depending on them, to a fixed point.
    fn excluded_ids(&self) -> HashSet<i64> {
        let mut out: HashSet<i64> = self
            .flags
            .iter()
            .filter(|f| !f.deleted && not_for_sdks(f))
            .map(|f| f.id)
            .collect();
        loop {
            let before = out.len();
            for (index, flag) in self.flags.iter().enumerate() {
                let depends_on_excluded = self.edges[index]
                    .iter()
                    .flatten()
                    .any(|&d| out.contains(&self.flags[d].id));
                if !flag.deleted && depends_on_excluded {
                    out.insert(flag.id);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// `target`'s dependencies deepest first, then `target`; empty when a cycle or a missing
    /// flag is reachable from it.
    fn chain(&self, target: usize) -> Vec<String> {
        let mut order = Vec::new();
        let mut state = vec![Visit::New; self.flags.len()];
        if self.visit(target, &mut state, &mut order) {
            order.iter().map(|&i| self.key(i).to_string()).collect()
        } else {
            Vec::new()
        }
    }

    /// Depth-first post-order with an explicit stack, so long chains cannot overflow it.
    /// Returns false on a cycle or a dangling reference.
    fn visit(&self, start: usize, state: &mut [Visit], order: &mut Vec<usize>) -> bool {
        let mut stack = vec![(start, 0usize)];
        state[start] = Visit::OnPath;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let Some(edge) = self.edges[node].get(*next) else {
                state[node] = Visit::Done;
                order.push(node);
                stack.pop();
                continue;
            };
            *next += 1;
            let Some(dependency) = *edge else {
                return false;
            };
            match state[dependency] {
                Visit::OnPath => return false,
                Visit::Done => {}
                Visit::New => {
                    state[dependency] = Visit::OnPath;
                    stack.push((dependency, 0));
                }
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Visit {
    New,
    OnPath,
    Done,
}

/// Encrypted payloads are for the server only; config-v2 flags and survey targeting are not
/// legacy flags the SDKs evaluate.
fn not_for_sdks(flag: &Flag) -> bool {
    let config_v2 = flag
        .filters
        .get("version")
        .is_some_and(|v| !v.is_null() && v.as_i64() != Some(1));
    flag.has_encrypted_payloads == Some(true)
        || config_v2
        || flag.key.starts_with(SURVEY_TARGETING_PREFIX)
}

/// The `key` of each flag-dependency filter in the release conditions, in order.
fn references(flag: &Flag) -> Vec<Value> {
    Filters::of(&flag.filters)
        .flag_dependencies()
        .filter_map(|p| p.get("key").cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserSummary;

    fn flag(id: i64, key: &str, filters: Value) -> Flag {
        let creator = UserSummary {
            id: 1,
            uuid: "u".into(),
            distinct_id: "d".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: "a@b.c".into(),
        };
        let mut f = Flag::new(id, 7, key.into(), creator, chrono::Utc::now());
        f.filters = filters;
        f
    }

    fn depends_on(id: i64, value: Value) -> Value {
        json!({"groups": [{"properties": [{"key": id.to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": value}], "rollout_percentage": 100}]})
    }

    fn plain() -> Value {
        json!({"groups": [{"properties": [], "rollout_percentage": 100}]})
    }

    fn keys(payload: &Value) -> Vec<&str> {
        payload["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap())
            .collect()
    }

    fn dependency(payload: &Value, key: &str) -> Value {
        let flag = payload["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap();
        flag["filters"]["groups"][0]["properties"][0].clone()
    }

    #[test]
    fn sorted_by_key_inactive_kept_deleted_and_encrypted_dropped() {
        let mut inactive = flag(1, "b", plain());
        inactive.active = false;
        let mut deleted = flag(2, "a", plain());
        deleted.deleted = true;
        let mut encrypted = flag(3, "c", plain());
        encrypted.has_encrypted_payloads = Some(true);
        let on_encrypted = flag(4, "d", depends_on(3, json!(true)));
        let first = flag(5, "0-first", plain());
        let out = payload(
            &[inactive, deleted, encrypted, on_encrypted, first],
            &[GroupType {
                project_id: 7,
                index: 1,
                name: "company".into(),
            }],
            &[],
        );
        assert_eq!(keys(&out), ["0-first", "b"]);
        assert_eq!(out["flags"][1]["active"], false);
        assert_eq!(out["group_type_mapping"], json!({"1": "company"}));
        assert_eq!(out["cohorts"], json!({}));
    }

    #[test]
    fn dependencies_name_keys_with_chains_deepest_first() {
        let base = flag(1, "base", plain());
        let middle = flag(2, "middle", depends_on(1, json!(true)));
        let top = flag(3, "top", depends_on(2, json!("variant")));
        let out = payload(&[top, middle, base], &[], &[]);
        let filter = dependency(&out, "top");
        assert_eq!(filter["key"], "middle");
        assert_eq!(filter["value"], "variant");
        assert_eq!(filter["dependency_chain"], json!(["base", "middle"]));
        assert_eq!(
            dependency(&out, "middle")["dependency_chain"],
            json!(["base"])
        );
    }

    #[test]
    fn cycles_and_missing_flags_get_empty_chains() {
        let a = flag(1, "a", depends_on(2, json!(true)));
        let b = flag(2, "b", depends_on(1, json!(true)));
        let lost = flag(3, "lost", depends_on(99, json!(false)));
        let out = payload(&[a, b, lost], &[], &[]);
        assert_eq!(dependency(&out, "a")["dependency_chain"], json!([]));
        assert_eq!(dependency(&out, "a")["key"], "b");
        let missing = dependency(&out, "lost");
        assert_eq!(missing["dependency_chain"], json!([]));
        assert_eq!(
            missing["key"], "99",
            "an unresolvable reference keeps its id"
        );
    }

    #[test]
    fn legacy_rows_without_groups_show_one_condition() {
        let out = payload(&[flag(1, "old", json!({}))], &[], &[]);
        assert_eq!(
            out["flags"][0]["filters"]["groups"][0]["rollout_percentage"],
            Value::Null
        );
    }
}
