//! Bounds on the identifiers that become part of a DynamoDB key, checked in one place before
//! any request reaches DynamoDB. The bounds are PostHog's own column lengths (400 characters
//! for keys, distinct ids and group names; 200 for a project token); in bytes they also keep every
//! key we build under DynamoDB's limits (2,048 bytes for a partition key, 1,024 for a sort key),
//! so an over-long value is a clear 4xx here instead of DynamoDB's validation error.

use crate::error::{ApiError, ApiResult};

/// PostHog's `max_length` of flag keys, distinct ids, group type names and group keys.
pub const IDENTIFIER_MAX_CHARS: usize = 400;
/// The UTF-8 budget of one identifier inside a key (sort keys hold at most 1,024 bytes).
pub const IDENTIFIER_MAX_BYTES: usize = 900;
/// PostHog's `Team.api_token` length: a longer token cannot belong to any project.
pub const TOKEN_MAX_CHARS: usize = 200;

/// `value` of the request field `field`, or DRF's `max_length` error naming the field.
pub fn identifier<'a>(field: &str, value: &'a str) -> ApiResult<&'a str> {
    if value.chars().count() > IDENTIFIER_MAX_CHARS {
        return Err(ApiError::field(
            field,
            "max_length",
            format!("Ensure this field has no more than {IDENTIFIER_MAX_CHARS} characters."),
        ));
    }
    if value.len() > IDENTIFIER_MAX_BYTES {
        return Err(ApiError::field(
            field,
            "max_length",
            format!("Ensure this field has no more than {IDENTIFIER_MAX_BYTES} bytes of UTF-8."),
        ));
    }
    Ok(value)
}

/// Whether an identifier is within bounds (for inputs that are skipped rather than refused).
pub fn is_identifier(value: &str) -> bool {
    identifier("", value).is_ok()
}

/// A project token that could exist; anything else authenticates nobody (401), unlooked-up.
pub fn token_may_exist(token: &str) -> bool {
    token.len() <= TOKEN_MAX_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bounded_in_characters_and_bytes() {
        assert!(identifier("key", &"a".repeat(400)).is_ok());
        let long = identifier("key", &"a".repeat(401)).unwrap_err();
        assert_eq!(
            long,
            ApiError::field(
                "key",
                "max_length",
                "Ensure this field has no more than 400 characters."
            )
        );
        // 300 four-byte characters: within PostHog's length, over a sort key's budget.
        assert!(identifier("distinct_id", &"😀".repeat(300)).is_err());
        assert!(token_may_exist("phc_abc") && !token_may_exist(&"t".repeat(201)));
    }
}
