//! Request rate limits enforced across every Lambda instance (docs/operations.md "Limits").
//!
//! PostHog throttles the local-evaluation definitions endpoints with its
//! `LocalEvaluationThrottle`: scope `feature_flag_evaluations`, 600 requests a minute, answered
//! with DRF's `Throttled` (429, `Retry-After`, the `throttled_error` envelope). A Lambda
//! instance cannot count alone (a flood is spread over many instances), so each request adds
//! one to a counter item per project and minute in DynamoDB: one conditional UpdateItem that
//! fails once the window holds the limit. Windows are fixed minutes (PostHog's cache keeps a
//! sliding history); the counter items expire through the table's TTL.

use std::sync::LazyLock;

use crate::error::{ApiError, ApiResult};
use crate::store::RateLimitStore;
use crate::time::Timestamp;

/// Length of one counting window.
pub const WINDOW_SECONDS: i64 = 60;
/// How long a counter item outlives its window before DynamoDB's TTL may delete it.
const KEEP_SECONDS: i64 = 3600;

/// One rule: a scope name (part of the counter's key) and the requests allowed per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub scope: &'static str,
    /// 0 turns the rule off.
    pub per_minute: u32,
}

/// PostHog's default rate of the local-evaluation throttle.
pub const LOCAL_EVALUATION_DEFAULT: u32 = 600;

/// The definitions endpoints' rule; `LOCAL_EVALUATION_RATE_LIMIT` (template parameter
/// `LocalEvaluationRateLimit`) overrides the rate, 0 turns it off.
pub fn local_evaluation() -> RateLimit {
    static RATE: LazyLock<u32> = LazyLock::new(|| {
        std::env::var("LOCAL_EVALUATION_RATE_LIMIT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(LOCAL_EVALUATION_DEFAULT)
    });
    RateLimit {
        scope: "feature_flag_evaluations",
        per_minute: *RATE,
    }
}

/// The fixed window `now` falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Unix seconds of the window's first second: the counter item's sort key.
    pub start: i64,
    /// Unix seconds after which the counter item may be deleted (its TTL attribute).
    pub expires_at: i64,
    /// Whole seconds until the next window opens, at least 1: `Retry-After`.
    pub retry_after: u64,
}

pub fn window(now: Timestamp) -> Window {
    let millis = now.timestamp_millis();
    let start = millis.div_euclid(WINDOW_SECONDS * 1000) * WINDOW_SECONDS;
    let end_millis = (start + WINDOW_SECONDS) * 1000;
    let wait = (end_millis - millis + 999) / 1000;
    Window {
        start,
        expires_at: start + WINDOW_SECONDS + KEEP_SECONDS,
        retry_after: wait.max(1) as u64,
    }
}

/// Counts this request against `rule` for `project_id`; 429 `throttled_error` once the
/// project's window is full (a refused request is not counted).
pub async fn check<S: RateLimitStore>(
    store: &S,
    rule: RateLimit,
    project_id: i64,
    now: Timestamp,
) -> ApiResult<()> {
    if rule.per_minute == 0 {
        return Ok(());
    }
    let window = window(now);
    if store
        .count_request(rule.scope, project_id, &window, rule.per_minute)
        .await?
    {
        Ok(())
    } else {
        tracing::warn!(
            project_id,
            scope = rule.scope,
            limit = rule.per_minute,
            "rate limit reached"
        );
        Err(ApiError::Throttled {
            wait_seconds: window.retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_are_whole_minutes() {
        let at = |s: i64, ms: u32| chrono::Utc.timestamp_opt(s, ms * 1_000_000).unwrap();
        let w = window(at(120, 0));
        assert_eq!((w.start, w.retry_after), (120, 60));
        let w = window(at(179, 500));
        assert_eq!((w.start, w.retry_after), (120, 1));
        let w = window(at(150, 1));
        assert_eq!((w.start, w.retry_after), (120, 30));
        assert_eq!(w.expires_at, 120 + 60 + 3600);
    }

    #[test]
    fn throttled_is_drfs_envelope_with_retry_after() {
        let e = ApiError::Throttled { wait_seconds: 17 };
        assert_eq!(e.status(), 429);
        assert_eq!(
            e.body().unwrap(),
            serde_json::json!({"type": "throttled_error", "code": "throttled",
                "detail": "Request was throttled. Expected available in 17 seconds.", "attr": null})
        );
        let r = crate::http::ApiResponse::from(e);
        assert!(r.headers.contains(&("retry-after".into(), "17".into())));
        let one = ApiError::Throttled { wait_seconds: 1 };
        assert_eq!(
            one.to_string(),
            "Request was throttled. Expected available in 1 second."
        );
    }
}
