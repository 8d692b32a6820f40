//! Endpoint handlers: route matching, authentication and HTTP mapping around the domain
//! modules. Each function binary calls one `handle` here.
//!
//! A group's module and [`Group`] variant exist only under its cargo feature (one per function,
//! shared/Cargo.toml): the dispatch is a `match` over the variants, so a binary built with every
//! group would link every handler. A helper module several groups use (`flag_view`) is compiled
//! under any of their features.

#[cfg(feature = "activity")]
pub mod activity;
#[cfg(feature = "cohorts")]
pub mod cohorts;
#[cfg(feature = "feature-flags")]
mod copy_flags;
#[cfg(feature = "dashboards")]
pub mod dashboards;
#[cfg(feature = "early-access-features")]
pub mod early_access;
#[cfg(feature = "feature-flags")]
pub mod feature_flags;
#[cfg(feature = "feature-flags")]
mod flag_actions;
#[cfg(feature = "feature-flags")]
mod flag_blast_radius;
#[cfg(feature = "feature-flags")]
mod flag_bulk;
#[cfg(feature = "feature-flags")]
mod flag_evaluation;
// How a flag is shown, by its endpoints and by a revert.
#[cfg(any(feature = "feature-flags", feature = "activity"))]
mod flag_view;
#[cfg(feature = "flags")]
pub mod flags;
#[cfg(feature = "http-api")]
mod function;
#[cfg(feature = "identity")]
pub mod identity;
#[cfg(feature = "management-api")]
mod management;
#[cfg(feature = "persons")]
pub mod persons;
#[cfg(feature = "feature-flags")]
pub mod scheduled_changes;

#[cfg(feature = "http-api")]
pub use function::{Context, Function, Group, RequestLine, evaluation_metric, serve};
#[cfg(feature = "management-api")]
pub(crate) use management::{Authorized, authorized_route};

/// Logging for every function: `RUST_LOG` (the template's `LogLevel`), else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`; one JSON object per line when the function's log
/// format is JSON (`AWS_LAMBDA_LOG_FORMAT`, the template's default), so CloudWatch Logs
/// Insights reads the fields and Lambda filters by `level`.
pub fn tracing_subscriber_init() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".into())
        .to_ascii_lowercase();
    let filter = tracing_subscriber::EnvFilter::new(level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .without_time()
            .init();
    }
}

/// Path segments after `/api/projects/{project_id}/<resource>/`, or `None` when the path is
/// not under that resource. Tolerates a stage prefix before `/api`.
pub fn project_route<'p>(segments: &[&'p str], resource: &str) -> Option<(&'p str, Vec<&'p str>)> {
    let start = segments.iter().position(|s| *s == "api")?;
    match &segments[start..] {
        ["api", "projects", project, r, rest @ ..] if *r == resource => {
            Some((project, rest.to_vec()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_stage_prefix() {
        let segs = ["api", "projects", "7", "feature_flags", "12", "status"];
        assert_eq!(
            project_route(&segs, "feature_flags"),
            Some(("7", vec!["12", "status"]))
        );
        let staged = ["prod", "api", "projects", "@current", "feature_flags"];
        assert_eq!(
            project_route(&staged, "feature_flags"),
            Some(("@current", vec![]))
        );
        assert_eq!(project_route(&segs, "early_access_feature"), None);
    }
}
