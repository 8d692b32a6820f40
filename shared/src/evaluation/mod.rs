//! The flag evaluation engine: PostHog's server-side `/flags` evaluation (evaluation-rules.md §1–§2),
//! bit-identical in bucketing and identical in matching semantics. Pure: no I/O, no clock.
//!
//! # Use
//!
//! ```
//! use shared::evaluation::{EvaluationInput, FlagSet};
//! # fn demo(flags: &[shared::flag::Flag]) {
//! let prepared = FlagSet::new(flags, &[]); // once per definitions version: cache it
//! let now = chrono::Utc::now(); // the caller reads the clock, never the engine
//! let answer = prepared.evaluate(&EvaluationInput::new("user-1", now));
//! for flag in &answer.flags {
//!     println!("{} = {} ({})", flag.key, flag.value(), flag.reason.code);
//! }
//! # }
//! ```
//!
//! * [`FlagSet::new`] reads the project's flags and cohorts once: filters parsed, regexes
//!   compiled, values lowercased, dependency order computed. Evaluating is then cheap.
//! * [`FlagSet::evaluate`] answers one person: every active, non-deleted flag that passes the
//!   request's runtime and evaluation-context filters (or only `flag_keys` plus their
//!   dependencies), in the order the flags were given, each with PostHog's reason and payload.
//! * [`Evaluations::errors_while_computing_flags`] is PostHog's `errorsWhileComputingFlags`: set
//!   when a dependency cycle touches an evaluated flag. A caller that cannot complete part of
//!   the evaluation (e.g. reading continuity overrides failed) records it with
//!   [`Evaluations::mark_failed`] and [`FlagEvaluation::failure`].
//! * Experience continuity: the caller reads the person's stored hash keys (only when
//!   [`FlagSet::needs_hash_key_overrides`]) and passes them with the request's
//!   `$anon_distinct_id`; [`FlagSet::experience_continuity_keys`] lists the flags whose override
//!   it should write when the request carries `$anon_distinct_id`.
//!
//! Callers holding stored flags and cohorts build the `FlagSet` with
//! [`snapshot::EvaluationSnapshot`], the one place that decides which cohorts exist for the
//! engine (deleted ones don't); [`snapshot::cohorts_for`] and [`stored::evaluate`] (the
//! person's stored data around one evaluation, for `/flags` and the endpoints explaining it)
//! are the only store reads here.
//!
//! The engine is the server's evaluator: it always gives a definite answer. The SDKs'
//! "inconclusive → ask the server" outcomes (§2.12) are exactly the requests that end up here.

mod cohorts;
mod dates;
mod dependencies;
mod hash;
mod input;
mod matcher;
mod model;
mod properties;
mod result;
pub mod snapshot;
pub mod stored;
mod versions;

pub use hash::hash;
pub use input::{Cohort, EvaluationInput, GroupTypeMapping, Runtime};
pub use result::{Evaluations, FlagEvaluation, Reason, ReasonCode};

use cohorts::{CohortEvaluator, CohortSet};
use dependencies::{Broken, DependencyGraph};
use matcher::{Env, Match, PersonProperties};
use model::{Aggregation, CompiledFlag};
use properties::MatchContext;

use crate::flag::Flag;

/// A project's flags and cohorts prepared for evaluation. Immutable and `Sync`: build it once
/// per definitions version and share it between requests.
#[derive(Debug)]
pub struct FlagSet {
    flags: Vec<CompiledFlag>,
    graph: DependencyGraph,
    cohorts: CohortSet,
}

/// Evaluates `flags` for one request without keeping the prepared form (tests, one-offs).
pub fn evaluate_all(flags: &[Flag], cohorts: &[Cohort], input: &EvaluationInput) -> Evaluations {
    FlagSet::new(flags, cohorts).evaluate(input)
}

impl FlagSet {
    pub fn new(flags: &[Flag], cohorts: &[Cohort]) -> FlagSet {
        let mut compiled: Vec<CompiledFlag> = flags.iter().map(CompiledFlag::new).collect();
        let graph = DependencyGraph::build(&mut compiled);
        FlagSet {
            flags: compiled,
            graph,
            cohorts: CohortSet::new(cohorts),
        }
    }

    pub fn evaluate(&self, input: &EvaluationInput) -> Evaluations {
        let requested = self.requested(input);
        let visible: Vec<bool> = self
            .flags
            .iter()
            .map(|f| f.active && !f.deleted && runtime_allows(f, input) && contexts_allow(f, input))
            .collect();
        // Flags left out of the request (inactive, other runtime or context) still read as
        // `false` to their dependents, so `flag_evaluates_to: false` can match them.
        let mut matches: Vec<Option<Match>> = visible
            .iter()
            .zip(&self.flags)
            .map(|(&shown, f)| {
                (!shown && !f.deleted).then(|| Match::off(ReasonCode::NoConditionMatch, None))
            })
            .collect();

        let person = PersonProperties::new(input.person_properties, input.distinct_id);
        let ctx = MatchContext {
            now: input.now,
            matching_version: input.property_matching_version,
        };
        let cohorts = CohortEvaluator::new(&self.cohorts, input.static_cohort_ids, &person, &ctx);
        for &index in &self.graph.order {
            if !(requested[index] && visible[index]) {
                continue;
            }
            let outcome = match self.graph.broken[index] {
                Some(_) => Match::off(ReasonCode::MissingDependency, None),
                None => {
                    let env = Env {
                        input,
                        person: &person,
                        ctx: &ctx,
                        cohorts: &cohorts,
                        results: &matches,
                    };
                    matcher::evaluate(&self.flags[index], &env)
                }
            };
            matches[index] = Some(outcome);
        }
        // Answers in input order, built once (records are large: no moving them around).
        let mut flags = Vec::with_capacity(self.flags.len());
        for (index, flag) in self.flags.iter().enumerate() {
            if requested[index]
                && visible[index]
                && let Some(outcome) = matches[index].take()
            {
                flags.push(record(flag, outcome));
            }
        }
        let cycle_touched = (0..self.flags.len()).any(|i| {
            requested[i] && !self.flags[i].deleted && self.graph.broken[i] == Some(Broken::Cycle)
        });
        Evaluations {
            flags,
            errors_while_computing_flags: cycle_touched,
        }
    }

    /// True when some active continuity flag's answer depends on the hash key, i.e. the caller
    /// must read the person's stored overrides. Flags at 100 % without variants or holdout
    /// answer the same for any key, so they need no lookup (PostHog's optimisation).
    pub fn needs_hash_key_overrides(&self) -> bool {
        self.continuity_flags().any(|f| {
            !f.variants.is_empty()
                || f.holdout.is_some()
                || f.conditions.iter().any(|c| c.rollout != 100.0)
        })
    }

    /// Keys of the active, non-deleted flags with `ensure_experience_continuity`: the flags
    /// whose hash-key override the caller stores when a request carries `$anon_distinct_id`.
    pub fn experience_continuity_keys(&self) -> Vec<&str> {
        self.continuity_flags().map(|f| &*f.key).collect()
    }

    fn continuity_flags(&self) -> impl Iterator<Item = &CompiledFlag> {
        self.flags.iter().filter(|f| {
            f.active
                && !f.deleted
                && f.experience_continuity
                && !f.device_id_bucketing
                && f.aggregation == Aggregation::Person
        })
    }

    /// Which flags the request covers: all, or `flag_keys` and everything they depend on.
    fn requested(&self, input: &EvaluationInput) -> Vec<bool> {
        let Some(keys) = input.flag_keys else {
            return vec![true; self.flags.len()];
        };
        let mut requested = vec![false; self.flags.len()];
        let mut stack: Vec<usize> = (0..self.flags.len())
            .filter(|&i| !self.flags[i].deleted && keys.iter().any(|k| **k == *self.flags[i].key))
            .collect();
        while let Some(index) = stack.pop() {
            if !std::mem::replace(&mut requested[index], true) {
                stack.extend(&self.graph.dependencies[index]);
            }
        }
        requested
    }
}

/// Requests of an unknown runtime see only flags for all runtimes; `All` sees everything.
fn runtime_allows(flag: &CompiledFlag, input: &EvaluationInput) -> bool {
    match (input.runtime, flag.runtime) {
        (_, Runtime::All) | (Some(Runtime::All), _) => true,
        (Some(requested), own) => requested == own,
        (None, _) => false,
    }
}

/// With evaluation contexts in the request, a tagged flag needs one of its tags among them.
fn contexts_allow(flag: &CompiledFlag, input: &EvaluationInput) -> bool {
    input.evaluation_contexts.is_empty()
        || flag.evaluation_tags.is_empty()
        || flag
            .evaluation_tags
            .iter()
            .any(|t| input.evaluation_contexts.contains(t))
}

/// The wire record of a match: payload only for an enabled result, by variant or `"true"`.
fn record(flag: &CompiledFlag, outcome: Match) -> FlagEvaluation {
    let payload = outcome
        .enabled
        .then(|| {
            let key = outcome.variant.as_deref().unwrap_or("true");
            flag.payloads.get(key).cloned()
        })
        .flatten();
    FlagEvaluation {
        key: flag.key.clone(),
        id: flag.id,
        version: flag.version,
        enabled: outcome.enabled,
        reason: Reason::from_code(outcome.code, outcome.condition_index),
        code: Some(outcome.code),
        variant: outcome.variant,
        failed: false,
        payload,
        payload_encrypted: flag.payload_encrypted,
    }
}
