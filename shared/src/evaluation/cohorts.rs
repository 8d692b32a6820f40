//! Cohort membership (evaluation-rules.md §2.6). Dynamic cohorts are property trees evaluated against
//! the person's properties; static cohorts are memberships the caller looked up. A cohort the
//! engine does not know is simply not matched: cohorts may not exist yet, and an unknown id must
//! never turn a request into an error.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::input::Cohort;
use super::properties::{FilterKind, MatchContext, Operator, PropertyFilter, PropertySource};

/// Cohorts nested deeper than this are treated as a cycle (not matched).
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
enum Node {
    Group { all: bool, items: Vec<Node> },
    Leaf(PropertyFilter),
}

#[derive(Debug)]
struct CompiledCohort {
    is_static: bool,
    root: Node,
}

/// The project's cohorts, prepared once with the flags.
#[derive(Debug, Default)]
pub(crate) struct CohortSet {
    by_id: HashMap<i64, CompiledCohort>,
}

impl CohortSet {
    pub(crate) fn new(cohorts: &[Cohort]) -> CohortSet {
        let by_id = cohorts
            .iter()
            .map(|c| {
                // The stored form wraps the tree in `properties`; the definitions form is bare.
                let tree = c.filters.get("properties").unwrap_or(&c.filters);
                let compiled = CompiledCohort {
                    is_static: c.is_static,
                    root: node(tree),
                };
                (c.id, compiled)
            })
            .collect();
        CohortSet { by_id }
    }

    fn knows(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }
}

/// `{}` (or anything without a usable `values` list) holds everyone; `type: "property"` is the
/// stored form's name for AND.
fn node(raw: &Value) -> Node {
    match raw.get("values").and_then(Value::as_array) {
        Some(values) => Node::Group {
            all: raw.get("type").and_then(Value::as_str) != Some("OR"),
            items: values.iter().map(node).collect(),
        },
        None if raw.get("key").is_some() => Node::Leaf(PropertyFilter::parse(raw)),
        None => Node::Group {
            all: true,
            items: Vec::new(),
        },
    }
}

/// The cohort id a `type: cohort` filter names (a number, or a string of digits).
pub(crate) fn cohort_id(filter: &PropertyFilter) -> Option<i64> {
    match filter.value.as_ref()? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Per-request cohort evaluation with memoised results.
pub(crate) struct CohortEvaluator<'a> {
    set: &'a CohortSet,
    static_members: &'a [i64],
    person: &'a dyn PropertySource,
    ctx: &'a MatchContext,
    memo: RefCell<HashMap<i64, bool>>,
}

impl<'a> CohortEvaluator<'a> {
    pub(crate) fn new(
        set: &'a CohortSet,
        static_members: &'a [i64],
        person: &'a dyn PropertySource,
        ctx: &'a MatchContext,
    ) -> Self {
        CohortEvaluator {
            set,
            static_members,
            person,
            ctx,
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// A condition's cohort filter: `in`/`exact`/no operator test membership, `not_in` its
    /// absence; any other operator never matches. A cohort the engine does not know (no
    /// definition, no static membership) does not match either way.
    pub(crate) fn filter_matches(&self, filter: &PropertyFilter) -> bool {
        self.reference_matches(filter, 0)
    }

    fn reference_matches(&self, filter: &PropertyFilter, depth: usize) -> bool {
        let Some(id) = cohort_id(filter) else {
            return false;
        };
        if !self.set.knows(id) && !self.static_members.contains(&id) {
            return false;
        }
        let member = self.is_member(id, depth);
        match filter.operator {
            Operator::In | Operator::Exact => member,
            Operator::NotIn => !member,
            _ => false,
        }
    }

    fn is_member(&self, id: i64, depth: usize) -> bool {
        if self.static_members.contains(&id) {
            return true;
        }
        if let Some(known) = self.memo.borrow().get(&id) {
            return *known;
        }
        let member = match self.set.by_id.get(&id) {
            Some(cohort) if !cohort.is_static && depth < MAX_DEPTH => {
                self.node_matches(&cohort.root, depth)
            }
            _ => false,
        };
        self.memo.borrow_mut().insert(id, member);
        member
    }

    fn node_matches(&self, node: &Node, depth: usize) -> bool {
        match node {
            Node::Group { all: true, items } => items.iter().all(|n| self.node_matches(n, depth)),
            Node::Group { all: false, items } => items.iter().any(|n| self.node_matches(n, depth)),
            Node::Leaf(filter) => self.leaf_matches(filter, depth),
        }
    }

    /// Person leaves and nested cohorts honour `negation`. Flag and behavioural leaves cannot be
    /// evaluated from properties and count as not matching, negated or not.
    fn leaf_matches(&self, filter: &PropertyFilter, depth: usize) -> bool {
        let matched = match filter.kind {
            FilterKind::Person => filter.matches(self.person, self.ctx),
            FilterKind::Cohort => {
                let known = cohort_id(filter)
                    .is_some_and(|id| self.set.knows(id) || self.static_members.contains(&id));
                if !known
                    || !matches!(
                        filter.operator,
                        Operator::In | Operator::Exact | Operator::NotIn
                    )
                {
                    return false;
                }
                self.reference_matches(filter, depth + 1)
            }
            FilterKind::Group | FilterKind::Flag | FilterKind::Other => return false,
        };
        matched != filter.negation
    }
}
