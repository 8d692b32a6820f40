//! Experience-continuity hash key overrides: one item per (project, distinct id) holding one
//! attribute per flag, so reading a person's overrides is one GetItem and adding them is one
//! UpdateItem per distinct id, however many continuity flags the project has.

use std::collections::HashMap;

use super::{DynamoStore, db_error, s};
use crate::error::ApiError;
use crate::store::HashKeyOverrideStore;

/// Flag attributes are named `k#<flag key>`; the prefix keeps them apart from `pk`/`sk`.
const FLAG_ATTRIBUTE: &str = "k#";

/// Flags per UpdateItem: keeps the update expression well under DynamoDB's 4 KB limit.
const FLAGS_PER_UPDATE: usize = 50;

/// One partition per person, so a big project's overrides spread over many partitions.
fn person_pk(project_id: i64, distinct_id: &str) -> Result<String, ApiError> {
    crate::limits::identifier("distinct_id", distinct_id)?;
    Ok(format!("PROJECT#{project_id}#DISTINCT#{distinct_id}"))
}

/// The key of a distinct id's overrides item, unchecked: for deleting the items of ids that
/// were stored already (a person's), whose length capture bounded.
pub(super) fn overrides_key(project_id: i64, distinct_id: &str) -> super::Item {
    HashMap::from([
        (
            "pk".to_string(),
            s(format!("PROJECT#{project_id}#DISTINCT#{distinct_id}")),
        ),
        ("sk".to_string(), s("HASHKEYS")),
    ])
}

impl HashKeyOverrideStore for DynamoStore {
    async fn hash_key_overrides(
        &self,
        project_id: i64,
        distinct_id: &str,
    ) -> Result<HashMap<String, String>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.hash_key_overrides)
            .key("pk", s(person_pk(project_id, distinct_id)?))
            .key("sk", s("HASHKEYS"))
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out
            .item
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| {
                let flag = name.strip_prefix(FLAG_ATTRIBUTE)?.to_string();
                Some((flag, value.as_s().ok()?.clone()))
            })
            .collect())
    }

    async fn add_hash_key_overrides(
        &self,
        project_id: i64,
        distinct_ids: &[&str],
        flag_keys: &[&str],
        hash_key: &str,
    ) -> Result<(), ApiError> {
        for distinct_id in distinct_ids {
            for chunk in flag_keys.chunks(FLAGS_PER_UPDATE) {
                self.add_overrides(project_id, distinct_id, chunk, hash_key)
                    .await?;
            }
        }
        Ok(())
    }
}

impl DynamoStore {
    /// `if_not_exists` keeps an existing override: the first anonymous id a person was seen
    /// with stays their bucket, as PostHog's insert-if-absent does. No condition, so racing
    /// requests both succeed and agree.
    async fn add_overrides(
        &self,
        project_id: i64,
        distinct_id: &str,
        flag_keys: &[&str],
        hash_key: &str,
    ) -> Result<(), ApiError> {
        if flag_keys.is_empty() {
            return Ok(());
        }
        let sets: Vec<String> = (0..flag_keys.len())
            .map(|i| format!("#f{i} = if_not_exists(#f{i}, :h)"))
            .collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.hash_key_overrides)
            .key("pk", s(person_pk(project_id, distinct_id)?))
            .key("sk", s("HASHKEYS"))
            .update_expression(format!("SET {}", sets.join(", ")))
            .expression_attribute_values(":h", s(hash_key));
        for (i, key) in flag_keys.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#f{i}"), format!("{FLAG_ATTRIBUTE}{key}"));
        }
        update.send().await.map_err(db_error)?;
        Ok(())
    }
}
