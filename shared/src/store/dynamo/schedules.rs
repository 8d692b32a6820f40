//! Scheduled flag changes, kept in the flags table next to the flags they change, and the
//! sparse `due` index the executor Queries: only changes that still have to run carry its keys.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{DynamoStore, Item, db_error, n, padded, project_of_pk, project_pk, s};
use crate::error::ApiError;
use crate::schedule::ScheduledChange;
use crate::store::{ScheduleStore, ScheduleWrite, WriteError};
use crate::time::{self, Timestamp};

/// The GSI of template.yaml's FlagsTable listing due changes.
pub const DUE_INDEX: &str = "due";
/// Its one partition: pending changes are few (they leave the index once run), and the
/// executor reads them earliest first with one Query.
const DUE_PK: &str = "DUE";

fn schedule_key(project_id: i64, id: i64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(project_pk(project_id))),
        ("sk".to_string(), s(format!("SCHEDULE#{}", padded(id)))),
    ])
}

/// The item of a change; `due_pk`/`due_sk` only while it is due ([`ScheduledChange::due_at`]).
fn to_item(change: &ScheduledChange) -> Result<Item, ApiError> {
    let mut item: Item = serde_dynamo::to_item(change).map_err(db_error)?;
    item.extend(schedule_key(change.project_id, change.id));
    if let Some(due) = change.due_at() {
        item.insert("due_pk".into(), s(DUE_PK));
        let sk = format!(
            "{}#{}#{}",
            time::format(&due),
            padded(change.project_id),
            padded(change.id)
        );
        item.insert("due_sk".into(), s(sk));
    }
    Ok(item)
}

impl DynamoStore {
    /// The Put of a change's next state, conditional on the revision read: in a flag's
    /// transaction (a run) or alone (an edit, a failure).
    pub(super) fn put_schedule(
        &self,
        write: &ScheduleWrite,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut after = write.after.clone();
        after.revision = write.before_revision + 1;
        let put = Put::builder()
            .table_name(&self.tables.flags)
            .set_item(Some(to_item(&after)?))
            .condition_expression("revision = :read")
            .expression_attribute_values(":read", n(write.before_revision))
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

impl ScheduleStore for DynamoStore {
    async fn next_schedule_id(&self) -> Result<i64, ApiError> {
        self.next_counter(&self.tables.flags, "SCHEDULED_CHANGE_ID")
            .await
    }

    async fn schedule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ScheduledChange>, ApiError> {
        self.get(&self.tables.flags, schedule_key(project_id, id))
            .await
    }

    async fn project_schedules(&self, project_id: i64) -> Result<Vec<ScheduledChange>, ApiError> {
        self.query_prefix(&self.tables.flags, project_pk(project_id), "SCHEDULE#")
            .await
    }

    async fn create_schedule(&self, change: &ScheduledChange) -> Result<ScheduledChange, ApiError> {
        let mut change = change.clone();
        change.revision = 1;
        self.client
            .put_item()
            .table_name(&self.tables.flags)
            .set_item(Some(to_item(&change)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(db_error)?;
        Ok(change)
    }

    async fn replace_schedule(&self, write: ScheduleWrite) -> Result<ScheduledChange, WriteError> {
        let op = self.put_schedule(&write)?;
        self.transact(vec![op], None).await?;
        let mut after = write.after;
        after.revision = write.before_revision + 1;
        Ok(after)
    }

    async fn delete_schedule(&self, project_id: i64, id: i64) -> Result<bool, ApiError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.flags)
            .set_key(Some(schedule_key(project_id, id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(i64, i64)>, ApiError> {
        // `#` sorts below `~`, so every change due at `now` itself is included.
        let bound = format!("{}#~", time::format(&now));
        let out = self
            .client
            .query()
            .table_name(&self.tables.flags)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_pk = :due AND due_sk <= :now")
            .expression_attribute_values(":due", s(DUE_PK))
            .expression_attribute_values(":now", s(bound))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(db_error)?;
        // The index holds keys only: the project and id are read back from `pk` and `sk`.
        Ok(out
            .items()
            .iter()
            .filter_map(|item| {
                let text = |name: &str| item.get(name)?.as_s().ok().map(String::as_str);
                let project = project_of_pk(text("pk")?)?;
                let id = text("sk")?.strip_prefix("SCHEDULE#")?.parse().ok()?;
                Some((project, id))
            })
            .collect())
    }
}
