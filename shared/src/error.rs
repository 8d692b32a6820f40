//! PostHog's error envelope (`type`, `code`, `detail`, `attr`) and the few bodiless answers.

use serde_json::{Value, json};

/// Every failure a request can end in. `Display` is the user-facing detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `validation_error`; `attr` names the field (nested keys joined with `__`).
    #[error("{detail}")]
    Validation {
        code: String,
        detail: String,
        attr: Option<String>,
    },
    /// 400 `invalid_request` with a code of its own (`parse_error`, `request_too_large`).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    #[error("{0}")]
    AuthenticationFailed(String),
    /// 401 with a code of its own (the public SDK endpoints' `missing_api_key`, `invalid_api_key`).
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method \"{0}\" not allowed.")]
    MethodNotAllowed(String),
    #[error("Unsupported media type \"{0}\" in request.")]
    UnsupportedMediaType(String),
    /// 409; PostHog maps Conflict to `server_error` (sic).
    #[error("{0}")]
    Conflict(String),
    /// A status with an empty body (DELETE on a flag is 405 with nothing; some 404s too).
    #[error("status {0} with an empty body")]
    Bodiless(u16),
    /// 429 `throttled_error` (DRF's `Throttled`): a rate limit (crate::rate_limit) is used
    /// up; the answer carries `Retry-After: <wait_seconds>`.
    #[error("Request was throttled. Expected available in {wait_seconds} second{}.", if *.wait_seconds == 1 { "" } else { "s" })]
    Throttled { wait_seconds: u64 },
    /// Anything we did not expect. The cause is logged, never shown.
    #[error("A server error occurred.")]
    Internal(String),
}

impl ApiError {
    /// A field-level validation error with DRF's code.
    pub fn field(attr: &str, code: &str, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            code: code.into(),
            detail: detail.into(),
            attr: Some(attr.into()),
        }
    }

    /// A field-level error raised without a code (DRF's `invalid`, rewritten to `invalid_input`).
    pub fn invalid(attr: &str, detail: impl Into<String>) -> Self {
        Self::field(attr, "invalid_input", detail)
    }

    /// A non-field (object-level) validation error: `attr` is null.
    pub fn object(detail: impl Into<String>) -> Self {
        ApiError::Validation {
            code: "invalid_input".into(),
            detail: detail.into(),
            attr: None,
        }
    }

    pub fn not_found() -> Self {
        ApiError::NotFound("Not found.".into())
    }

    pub fn project_not_found() -> Self {
        ApiError::NotFound("Project not found.".into())
    }

    pub fn organization_not_found() -> Self {
        ApiError::NotFound("Organization not found.".into())
    }

    pub fn missing_scope(scope: &str) -> Self {
        ApiError::PermissionDenied(format!("API key missing required scope '{scope}'"))
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => 400,
            ApiError::NotAuthenticated
            | ApiError::AuthenticationFailed(_)
            | ApiError::Unauthorized { .. } => 401,
            ApiError::PermissionDenied(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Conflict(_) => 409,
            ApiError::Bodiless(status) => *status,
            ApiError::Throttled { .. } => 429,
            ApiError::Internal(_) => 500,
        }
    }

    /// The JSON body, or `None` for bodiless answers.
    pub fn body(&self) -> Option<Value> {
        let (kind, code, attr): (&str, &str, Option<&str>) = match self {
            ApiError::Validation { code, attr, .. } => ("validation_error", code, attr.as_deref()),
            ApiError::BadRequest { code, .. } => ("invalid_request", code, None),
            ApiError::NotAuthenticated => ("authentication_error", "not_authenticated", None),
            ApiError::Unauthorized { code, .. } => ("authentication_error", code, None),
            ApiError::AuthenticationFailed(_) => {
                ("authentication_error", "authentication_failed", None)
            }
            ApiError::PermissionDenied(_) => ("authentication_error", "permission_denied", None),
            ApiError::NotFound(_) => ("invalid_request", "not_found", None),
            ApiError::MethodNotAllowed(_) => ("invalid_request", "method_not_allowed", None),
            ApiError::UnsupportedMediaType(_) => {
                ("invalid_request", "unsupported_media_type", None)
            }
            ApiError::Conflict(_) => ("server_error", "conflict", None),
            ApiError::Bodiless(_) => return None,
            ApiError::Throttled { .. } => ("throttled_error", "throttled", None),
            ApiError::Internal(_) => ("server_error", "error", None),
        };
        Some(json!({"type": kind, "code": code, "detail": self.to_string(), "attr": attr}))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_exactly_four_keys() {
        let body = ApiError::field(
            "key",
            "unique",
            "There is already a feature flag with this key.",
        )
        .body()
        .unwrap();
        assert_eq!(
            body,
            json!({"type":"validation_error","code":"unique","detail":"There is already a feature flag with this key.","attr":"key"})
        );
    }

    #[test]
    fn conflict_is_a_server_error_type_like_posthog() {
        let e = ApiError::Conflict("x".into());
        assert_eq!(e.status(), 409);
        assert_eq!(e.body().unwrap()["type"], "server_error");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("secret table name");
        assert_eq!(e.body().unwrap()["detail"], "A server error occurred.");
    }

    #[test]
    fn bodiless_has_no_body() {
        assert_eq!(ApiError::Bodiless(405).body(), None);
        assert_eq!(ApiError::Bodiless(405).status(), 405);
    }
}
