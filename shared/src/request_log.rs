//! What one request's log line needs from deep inside it (docs/operations.md "Logs"): the
//! project the request turned out to be about and the DynamoDB capacity units its calls
//! consumed. Both are gathered in a task-local scope that `api::Function::call` opens around
//! the handler; outside a scope (workers, tests calling handlers directly) noting is a no-op.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static STATS: Stats;
}

#[derive(Default)]
struct Stats {
    project_id: Cell<Option<i64>>,
    capacity_units: Cell<f64>,
}

/// What a request's scope gathered.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// The first project resolved for the request (from its path, token or key).
    pub project_id: Option<i64>,
    /// Read and write capacity units DynamoDB reported for the request's calls.
    pub capacity_units: f64,
}

/// Runs `work` with a fresh scope; answers its output and what the scope gathered.
pub async fn scope<F: Future>(work: F) -> (F::Output, Summary) {
    STATS
        .scope(Stats::default(), async {
            let output = work.await;
            let summary = STATS.with(|s| Summary {
                project_id: s.project_id.get(),
                capacity_units: s.capacity_units.get(),
            });
            (output, summary)
        })
        .await
}

/// Remembers the request's project (the first one noted wins).
pub fn note_project(project_id: i64) {
    let _ = STATS.try_with(|s| {
        if s.project_id.get().is_none() {
            s.project_id.set(Some(project_id));
        }
    });
}

/// Adds capacity units one DynamoDB call consumed.
pub fn add_capacity_units(units: f64) {
    let _ = STATS.try_with(|s| s.capacity_units.set(s.capacity_units.get() + units));
}

/// CloudWatch's namespace for the service's own metrics (`METRICS_NAMESPACE`, set by the
/// template to the stack's; `FeatureFlags` elsewhere).
pub fn metrics_namespace() -> String {
    std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "FeatureFlags".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_gathers_and_outside_is_a_no_op() {
        note_project(9);
        add_capacity_units(3.0);
        let ((), summary) = scope(async {
            note_project(4);
            note_project(5);
            add_capacity_units(0.5);
            add_capacity_units(1.0);
        })
        .await;
        assert_eq!(
            summary,
            Summary {
                project_id: Some(4),
                capacity_units: 1.5
            }
        );
    }
}
