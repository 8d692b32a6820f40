//! What the `flags` function reads and writes in the flags table besides flags: the project's
//! definitions version, its group types, and `last_called_at`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::TimeDelta;

use super::{DynamoStore, db_error, n, project_pk, s};
use crate::error::ApiError;
use crate::store::{DefinitionsStore, GroupType, GroupTypeError};
use crate::time::{self, Timestamp};

type Item = HashMap<String, AttributeValue>;

/// A flag called more often than this still gets one `last_called_at` write.
const CALLED_WRITE_INTERVAL: TimeDelta = TimeDelta::minutes(1);

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn group_type_of(project_id: i64, item: &Item) -> Option<GroupType> {
    Some(GroupType {
        project_id,
        index: i32::try_from(number(item, "group_type_index")?).ok()?,
        name: item.get("name")?.as_s().ok()?.clone(),
    })
}

impl DefinitionsStore for DynamoStore {
    async fn definitions_version(&self, project_id: i64) -> Result<i64, ApiError> {
        // Consistent: a flag change must be visible to the very next request.
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(project_id)))
            .key("sk", s("DEFINITIONS"))
            .projection_expression("#v")
            .expression_attribute_names("#v", "version")
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out
            .item
            .and_then(|item| number(&item, "version"))
            .unwrap_or(0))
    }

    async fn group_types(&self, project_id: i64) -> Result<Vec<GroupType>, ApiError> {
        let items = self
            .query_prefix_items(&self.tables.flags, project_pk(project_id), "GROUPTYPE#")
            .await?;
        let mut groups: Vec<GroupType> = items
            .iter()
            .filter_map(|item| group_type_of(project_id, item))
            .collect();
        groups.sort_by_key(|g| g.index);
        Ok(groups)
    }

    async fn create_group_type(&self, group: &GroupType) -> Result<(), GroupTypeError> {
        let pk = project_pk(group.project_id);
        let by_index = Put::builder()
            .table_name(&self.tables.flags)
            .item("pk", s(&pk))
            .item("sk", s(format!("GROUPTYPE#{}", group.index)))
            .item("group_type_index", n(group.index.into()))
            .item("name", s(&group.name))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(db_error)?;
        let by_name = Put::builder()
            .table_name(&self.tables.flags)
            .item("pk", s(&pk))
            .item("sk", s(format!("GROUPTYPENAME#{}", group.name)))
            .item("group_type_index", n(group.index.into()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(db_error)?;
        // The mapping is part of the local-evaluation definitions, so their ETag must move.
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(by_index).build())
            .transact_items(TransactWriteItem::builder().put(by_name).build())
            .transact_items(self.bump_definitions(group.project_id)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(group_type_conflict(err, group)),
        }
    }

    async fn record_flag_called(
        &self,
        project_id: i64,
        flag_id: i64,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        // Stored timestamps are fixed-width UTC text, so string order is time order. A flag
        // never called holds NULL (or nothing, for rows older than the field).
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(project_id)))
            .key("sk", s(format!("FLAG#{flag_id}")))
            .update_expression("SET last_called_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(last_called_at) \
                 OR attribute_type(last_called_at, :null) OR last_called_at < :cutoff)",
            )
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":null", s("NULL"))
            .expression_attribute_values(":cutoff", s(time::format(&(now - CALLED_WRITE_INTERVAL))))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(db_error(e)),
        }
    }
}

/// Which uniqueness item refused the write: index first, then name, else a plain failure.
fn group_type_conflict(
    err: SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
    group: &GroupType,
) -> GroupTypeError {
    if let SdkError::ServiceError(service) = &err
        && let TransactWriteItemsError::TransactionCanceledException(cancel) = service.err()
    {
        let reasons = cancel.cancellation_reasons();
        let failed =
            |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(0) {
            return GroupTypeError::IndexTaken(group.index);
        }
        if failed(1) {
            return GroupTypeError::NameTaken(group.name.clone());
        }
    }
    GroupTypeError::Api(db_error(err))
}
