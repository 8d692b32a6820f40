//! Flag dependencies (evaluation-rules.md §2.7): which flag each `type: flag` filter points at, an
//! evaluation order in which every flag comes after the flags it depends on, and which flags
//! cannot be evaluated because a dependency is missing or part of a cycle.

use std::collections::HashMap;

use super::model::CompiledFlag;
use super::properties::FilterKind;

/// Why a flag cannot be evaluated; such a flag is `false` with reason `missing_dependency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// It (or a flag it depends on, transitively) names a flag that does not exist or is deleted.
    Missing,
    /// It is on a dependency cycle or depends on one; PostHog also flags the response as errored.
    Cycle,
}

#[derive(Debug, Default)]
pub(crate) struct DependencyGraph {
    /// Every non-deleted flag, dependencies before dependents (cycle members last).
    pub order: Vec<usize>,
    /// Resolved direct dependencies per flag index.
    pub dependencies: Vec<Vec<usize>>,
    pub broken: Vec<Option<Broken>>,
}

impl DependencyGraph {
    /// Resolves every flag filter in place (`PropertyFilter::dependency`) and orders the flags.
    pub(crate) fn build(flags: &mut [CompiledFlag]) -> DependencyGraph {
        let (dependencies, mut broken) = resolve(flags);
        let (order, ordered) = topological_order(flags, &dependencies);
        for (index, done) in ordered.iter().enumerate() {
            if !done && !flags[index].deleted {
                broken[index] = Some(Broken::Cycle);
            }
        }
        // Dependencies come first in `order`, so one pass carries brokenness to dependents.
        for &index in &order {
            if broken[index].is_none() {
                broken[index] = dependencies[index].iter().find_map(|&d| broken[d]);
            }
        }
        DependencyGraph {
            order,
            dependencies,
            broken,
        }
    }
}

/// A filter's `key` names its dependency by id (stored flags) or by key (definitions payloads);
/// deleted flags are not candidates.
fn resolve(flags: &mut [CompiledFlag]) -> (Vec<Vec<usize>>, Vec<Option<Broken>>) {
    let mut by_id = HashMap::new();
    let mut by_key = HashMap::new();
    for (index, flag) in flags.iter().enumerate().filter(|(_, f)| !f.deleted) {
        by_id.insert(flag.id, index);
        by_key.insert(flag.key.to_string(), index);
    }
    let lookup = |reference: &str| {
        let by_number = reference
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|id| by_id.get(&id));
        by_number.or_else(|| by_key.get(reference)).copied()
    };
    let mut dependencies = vec![Vec::new(); flags.len()];
    let mut broken = vec![None; flags.len()];
    for (index, flag) in flags.iter_mut().enumerate() {
        let filters = flag
            .conditions
            .iter_mut()
            .flat_map(|c| c.filters.iter_mut())
            .filter(|f| f.kind == FilterKind::Flag);
        for filter in filters {
            filter.dependency = lookup(&filter.key);
            match filter.dependency {
                Some(target) if !dependencies[index].contains(&target) => {
                    dependencies[index].push(target)
                }
                Some(_) => {}
                None => broken[index] = Some(Broken::Missing),
            }
        }
    }
    (dependencies, broken)
}

/// Kahn's algorithm over non-deleted flags, in input order among equals. Returns the order and,
/// per flag, whether it was ordered (flags left out are on or behind a cycle).
fn topological_order(
    flags: &[CompiledFlag],
    dependencies: &[Vec<usize>],
) -> (Vec<usize>, Vec<bool>) {
    let count = flags.len();
    let mut waiting_on: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); count];
    for (index, deps) in dependencies.iter().enumerate() {
        for &d in deps {
            dependents[d].push(index);
        }
    }
    let mut ready: Vec<usize> = (0..count)
        .filter(|&i| waiting_on[i] == 0 && !flags[i].deleted)
        .rev()
        .collect();
    let mut order = Vec::with_capacity(count);
    let mut ordered = vec![false; count];
    while let Some(index) = ready.pop() {
        order.push(index);
        ordered[index] = true;
        for &dependent in dependents[index].iter().rev() {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 && !flags[dependent].deleted {
                ready.push(dependent);
            }
        }
    }
    // Cycle members still need a place: they evaluate to missing_dependency at the end.
    order.extend((0..count).filter(|&i| !ordered[i] && !flags[i].deleted));
    (order, ordered)
}
