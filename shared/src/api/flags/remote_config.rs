//! `GET /array/{token}/config` and `/array/{token}/config.js`: the remote config posthog-js
//! asks for before anything else (`RemoteConfigLoader`: first the script, which sets
//! `window._POSTHOG_REMOTE_CONFIG[token]`, then the JSON when the script brought none).
//!
//! Shapes, headers and errors are those of PostHog's `hypercache-server` (`api/remote_config.rs`,
//! `token.rs`, `sanitize.rs`) serving what Django's `RemoteConfig.build_config` caches, for a
//! project that only has feature flags: every other product (session recording, surveys,
//! heatmaps, exception autocapture, dead clicks, web vitals, logs, conversations, product tours,
//! site apps) is off, so the SDK loads flags and no extension script. One read per request
//! besides the token: the definitions version (and the flags when it moved), for
//! `hasFeatureFlags` — with `false` posthog-js would skip its first `/flags` call.
//!
//! One deliberate difference: PostHog sends `"surveys": false`, on which posthog-js 1.449 still
//! loads `/static/surveys.js` (its `PostHogSurveys.loadIfEnabled` only stops when the key is
//! absent) from the assets host — the API here, which serves no SDK scripts. Without the key
//! posthog-js loads no survey code, which is what "off" means for a flags-only service.

use serde_json::{Value, json};

use super::{Context, Store};
use crate::http::{ApiRequest, ApiResponse};

/// PostHog's `config_cache_headers`: CDNs and browsers may keep the config five minutes.
const CACHE_HEADERS: [(&str, &str); 2] = [
    ("cache-control", "public, max-age=300"),
    ("vary", "Origin, Referer"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Script,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Script => "application/javascript",
        }
    }
}

pub async fn handle<S: Store>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    token: &str,
    format: Format,
) -> ApiResponse {
    match req.method.as_str() {
        "GET" => get(ctx, token, format).await,
        "HEAD" => with_cache_headers(ApiResponse::raw(200, format.content_type(), "")),
        "OPTIONS" => allow(ApiResponse::empty(204)),
        _ => allow(ApiResponse::empty(405)),
    }
}

async fn get<S: Store>(ctx: &Context<'_, S>, token: &str, format: Format) -> ApiResponse {
    if let Err(problem) = check_token(token) {
        return ApiResponse::text(400, problem);
    }
    let project = match ctx.cache.project_by_token(ctx.store, token).await {
        Ok(Some(project)) => project,
        // An unknown token has no cached config: PostHog answers 404 with an empty body.
        Ok(None) => return ApiResponse::empty(404),
        Err(e) => return e.into(),
    };
    let snapshot = match ctx.cache.snapshot(ctx.store, project.id).await {
        Ok(snapshot) => snapshot,
        Err(e) => return e.into(),
    };
    let has_flags = snapshot.flags.iter().any(|f| f.active && !f.deleted);
    let config = config(has_flags);
    let response = match format {
        Format::Json => ApiResponse::ok(config),
        Format::Script => ApiResponse::raw(200, format.content_type(), script(token, &config)),
    };
    with_cache_headers(response)
}

/// PostHog's `Token::parse`: the token is spliced into a quoted JS string, so only
/// `[A-Za-z0-9_-]`, at most 200 of them, may pass (the path never yields an empty one).
fn check_token(token: &str) -> Result<(), &'static str> {
    if token.len() > 200 {
        return Err("Token too long");
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("Invalid token format");
    }
    Ok(())
}

/// `RemoteConfig.build_config` for a team with every product but flags off, as the hypercache
/// server sanitizes it for clients (no `token`, `siteAppsJS` or `survey_config`), without
/// `surveys` (see the module's note). The events endpoint is PostHog's default `/i/v0/e/`,
/// which this service's capture serves.
pub fn config(has_feature_flags: bool) -> Value {
    json!({
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": has_feature_flags,
        "captureDeadClicks": false,
        "capturePerformance": false,
        "autocapture_opt_out": false,
        "autocaptureExceptions": false,
        "analytics": {"endpoint": "/i/v0/e/"},
        "elementsChainAsString": true,
        "errorTracking": {"autocaptureExceptions": false, "suppressionRules": []},
        "logs": {"captureConsoleLogs": false},
        "sessionRecording": false,
        "heatmaps": false,
        "conversations": false,
        "productTours": false,
        "defaultIdentifiedOnly": true,
        "siteApps": [],
    })
}

/// The hypercache server's `config.js`: the config (without `siteApps`, whose scripts would
/// go in the `siteApps` array; there are none) under the token.
fn script(token: &str, config: &Value) -> String {
    let mut config = config.clone();
    if let Some(map) = config.as_object_mut() {
        map.remove("siteApps");
    }
    format!(
        "(function() {{\n  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {{}};\n  \
         window._POSTHOG_REMOTE_CONFIG['{token}'] = {{\n    config: {config},\n    siteApps: []\n  }}\n}})();"
    )
}

fn with_cache_headers(mut response: ApiResponse) -> ApiResponse {
    response.headers.extend(
        CACHE_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    response
}

fn allow(mut response: ApiResponse) -> ApiResponse {
    response
        .headers
        .push(("allow".into(), "GET, OPTIONS, HEAD".into()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_as_posthog_checks_them() {
        assert!(check_token("phc_abc-123_X").is_ok());
        assert!(check_token(&"a".repeat(200)).is_ok());
        assert_eq!(check_token(&"a".repeat(201)), Err("Token too long"));
        for bad in ["token.with.dots", "tok'en", "tok\"en", "a b", "<script>"] {
            assert_eq!(check_token(bad), Err("Invalid token format"), "{bad}");
        }
    }

    #[test]
    fn the_script_sets_the_config_under_the_token() {
        let js = script("phc_t", &config(true));
        assert!(js.starts_with("(function() {\n  window._POSTHOG_REMOTE_CONFIG = "));
        assert!(js.contains("window._POSTHOG_REMOTE_CONFIG['phc_t'] = {\n    config: {"));
        assert!(js.contains("\"hasFeatureFlags\":true"));
        assert!(js.contains("\"sessionRecording\":false"));
        assert!(!js.contains("\"siteApps\""));
        assert!(js.ends_with("    siteApps: []\n  }\n})();"));
    }
}
