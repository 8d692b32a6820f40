//! PostHog's flag-write rules that need no store: the conflict rule, lifecycle guards, payload
//! protection and enrollment renames.

use serde_json::{Map, Value};

use crate::activity::ActivityEntry;
use crate::crypto::PayloadCipher;
use crate::error::{ApiError, ApiResult};
use crate::flag::filters::{self, Section};
use crate::flag::{self, Flag, input};
use crate::time::Timestamp;

/// The flag as its editor read it: users (personal API keys) see plain payloads, anyone else
/// the sentinel. The conflict rule compares what the client sends with this.
pub(super) fn as_read_by(
    cipher: &PayloadCipher,
    flag: &Flag,
    decrypted: bool,
    now: Timestamp,
) -> Value {
    let mut filters = flag.effective_filters();
    if flag.has_encrypted_payloads == Some(true) {
        filters = cipher.reveal(&filters, decrypted);
    }
    flag::representation(flag, filters, &Vec::new(), now)
}

/// PostHog's rule: a stale `version` is only a conflict when a field this client changes
/// was also changed by someone else, to something else.
pub(super) fn check_conflict(
    current: &Flag,
    as_read: &Value,
    version: i64,
    body: &Map<String, Value>,
    original: Option<&Map<String, Value>>,
) -> ApiResult<()> {
    if version == current.version {
        return Ok(());
    }
    let Some(original) = original.filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let conflict = body.iter().any(|(field, new)| {
        if matches!(field.as_str(), "version" | "original_flag") {
            return false;
        }
        let (Some(before), Some(stored)) = (original.get(field), as_read.get(field)) else {
            return false;
        };
        new != before && before != stored && new != stored
    });
    if !conflict {
        return Ok(());
    }
    let who = current
        .last_modified_by
        .as_ref()
        .map(|u| u.email.clone())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "another user".into());
    Err(ApiError::Conflict(format!(
        "The feature flag was updated by {who} since you started editing it. Please refresh and try again."
    )))
}

/// The 409 of a flag action whose caller read an older version than the stored one.
pub(super) fn changed_since(current: &Flag, version: i64) -> ApiError {
    ApiError::Conflict(format!(
        "The feature flag has changed since version {version} (it is at version {}). Read it again and decide against its current state.",
        current.version
    ))
}

/// Soft delete, restore, disable and enable each have a guard (§5.4).
pub(super) fn guard_lifecycle(
    current: &Flag,
    flag: &Flag,
    project_flags: &[Flag],
    linked_to_early_access: bool,
) -> ApiResult<()> {
    let dependents = || filters::dependents(current.id, project_flags);
    if flag.deleted && !current.deleted && linked_to_early_access {
        return Err(ApiError::object(
            "Cannot delete a feature flag that is in use with early access features. Please delete the early access feature before deleting the flag.",
        ));
    }
    if flag.deleted && !current.deleted {
        let deps = dependents();
        if !deps.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot delete this feature flag because other flags depend on it: {}. Please update or delete the dependent flags first.",
                filters::describe_flags(&deps, 5)
            )));
        }
    }
    if !flag.deleted
        && current.deleted
        && project_flags
            .iter()
            .any(|f| !f.deleted && f.key == flag.key && f.id != flag.id)
    {
        // PostHog answers 500 here (unique constraint); the key is simply taken.
        return Err(input::key_taken());
    }
    if !flag.active && current.active {
        let deps = dependents();
        if !deps.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot disable this feature flag because other flags depend on it: {}. Please update or disable the dependent flags first.",
                filters::describe_flags(&deps, 5)
            )));
        }
    }
    if flag.active && !current.active {
        let disabled = filters::disabled_dependencies(&flag.filters, project_flags);
        if !disabled.is_empty() {
            return Err(ApiError::object(format!(
                "Cannot enable this feature flag because it depends on disabled flags: {}. Please enable the dependency flags first.",
                filters::describe_flags(&disabled, 5)
            )));
        }
    }
    Ok(())
}

/// Keeps stored payloads encrypted exactly when the flag says so. Filters that came in the
/// body hold plain text (or echoed sentinels); stored ones already hold ciphertext.
pub(super) fn protect_payloads(
    cipher: &PayloadCipher,
    current: &Flag,
    flag: &mut Flag,
    filters_sent: bool,
) -> ApiResult<()> {
    let was = current.has_encrypted_payloads == Some(true);
    let now = flag.has_encrypted_payloads == Some(true);
    match (filters_sent, was, now) {
        (true, _, true) => {
            cipher.encrypt_payloads(&mut flag.filters, was.then_some(&current.filters))
        }
        (false, false, true) => cipher.encrypt_payloads(&mut flag.filters, None),
        (false, true, false) => {
            // Turning encryption off: store what the owner can read, not dead ciphertext.
            flag.filters = cipher.reveal(&current.filters, true);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Early-access enrollment conditions name the flag key; a rename must follow.
pub(super) fn rename_enrollment(filters: &mut Value, new_key: &str) {
    for prop in filters::properties_mut(filters, Section::SuperGroups) {
        let enrollment = prop
            .get("key")
            .and_then(Value::as_str)
            .is_some_and(|k| k.starts_with("$feature_enrollment/"));
        if enrollment {
            prop.insert(
                "key".into(),
                Value::String(format!("$feature_enrollment/{new_key}")),
            );
        }
    }
}

pub(super) fn with_trigger(mut entry: ActivityEntry, trigger: &Value) -> ActivityEntry {
    if let Some(detail) = entry.detail.as_object_mut() {
        detail.insert("trigger".into(), trigger.clone());
    }
    entry
}

#[cfg(test)]
mod tests {
    use fernet::Fernet;
    use serde_json::json;

    use super::*;
    use crate::identity::UserSummary;

    fn flag(version: i64) -> Flag {
        let editor = UserSummary {
            id: 1,
            uuid: String::new(),
            distinct_id: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            email: "ann@example.com".into(),
        };
        let mut flag = Flag::new(7, 1, "beta".into(), editor, chrono::Utc::now());
        flag.version = version;
        flag.name = "stored".into();
        flag
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn stale_version_conflicts_only_where_both_changed_a_field_differently() {
        let current = flag(3);
        let as_read = json!({"name": "stored", "active": true});
        let original = object(json!({"name": "loaded", "active": true}));
        let same_field = object(json!({"name": "mine"}));
        let err = check_conflict(&current, &as_read, 2, &same_field, Some(&original)).unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(format!("{err:?}").contains("ann@example.com"));
        let other_field = object(json!({"active": false}));
        assert!(check_conflict(&current, &as_read, 2, &other_field, Some(&original)).is_ok());
        let same_value = object(json!({"name": "stored"}));
        assert!(check_conflict(&current, &as_read, 2, &same_value, Some(&original)).is_ok());
        assert!(check_conflict(&current, &as_read, 3, &same_field, Some(&original)).is_ok());
    }

    #[test]
    fn turning_encryption_off_stores_readable_payloads() {
        let cipher = PayloadCipher::from_keys(&Fernet::generate_key());
        let mut current = flag(1);
        current.has_encrypted_payloads = Some(true);
        current.filters = json!({"groups": [], "payloads": {"true": "1"}});
        cipher.encrypt_payloads(&mut current.filters, None).unwrap();
        let mut after = current.clone();
        after.has_encrypted_payloads = Some(false);
        protect_payloads(&cipher, &current, &mut after, false).unwrap();
        assert_eq!(after.filters["payloads"]["true"], "1");
    }

    #[test]
    fn enrollment_condition_follows_a_rename() {
        let mut filters = json!({"super_groups": [{"properties": [
            {"key": "$feature_enrollment/old", "type": "person"},
            {"key": "email", "type": "person"}
        ]}]});
        rename_enrollment(&mut filters, "new");
        let props = &filters["super_groups"][0]["properties"];
        assert_eq!(props[0]["key"], "$feature_enrollment/new");
        assert_eq!(props[1]["key"], "email");
    }
}
