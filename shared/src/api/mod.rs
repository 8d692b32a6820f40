//! Endpoint handlers: route matching, authentication and HTTP mapping around the domain
//! modules. Each function binary calls one `handle` here.

pub mod activity;
pub mod feature_flags;

use crate::crypto::PayloadCipher;
use crate::time::Timestamp;

/// What every handler needs, built once per Lambda instance (the clock is read per request).
pub struct Context<'a, S> {
    pub store: &'a S,
    pub cipher: &'a PayloadCipher,
    pub now: Timestamp,
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
