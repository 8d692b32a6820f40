//! Reading activity logs: counters by GetItem, pages by one key-range Query (the project's log
//! on the table, one item's log on the `by-item` index). Entries are written by `flags.rs`
//! inside each flag transaction.

use std::collections::HashMap;

use super::{DynamoStore, all_items, db_error, padded, s};
use crate::activity::ActivityEntry;
use crate::error::ApiError;
use crate::store::ActivityStore;

const ITEM_INDEX: &str = "by-item";

fn scope_pk(project_id: i64, scope: &str) -> String {
    format!("PROJECT#{project_id}#{scope}")
}

fn seq_sk(seq: i64) -> String {
    format!("SEQ#{}", padded(seq))
}

impl ActivityStore for DynamoStore {
    async fn activity_count(
        &self,
        project_id: i64,
        scope: &str,
        item: Option<&str>,
    ) -> Result<i64, ApiError> {
        let sk = match item {
            Some(item) => format!("ITEM#{item}"),
            None => "ALL".to_string(),
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.activity)
            .key("pk", s(format!("COUNTER#{}", scope_pk(project_id, scope))))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        // No counter item yet means no entry yet.
        let Some(n) = out.item.as_ref().and_then(|i| i.get("n")) else {
            return Ok(0);
        };
        let n = n
            .as_n()
            .map_err(|_| ApiError::internal("activity counter is not a number"))?;
        n.parse()
            .map_err(|e| ApiError::internal(format!("activity counter {n:?}: {e}")))
    }

    async fn activity_page(
        &self,
        project_id: i64,
        scope: &str,
        item: Option<&str>,
        newest: i64,
        count: i64,
    ) -> Result<Vec<ActivityEntry>, ApiError> {
        if newest < 1 || count < 1 {
            return Ok(Vec::new());
        }
        let oldest = newest.saturating_sub(count).saturating_add(1).max(1);
        let pk = scope_pk(project_id, scope);
        let query = self
            .client
            .query()
            .table_name(&self.tables.activity)
            .expression_attribute_values(":from", s(seq_sk(oldest)))
            .expression_attribute_values(":to", s(seq_sk(newest)))
            .scan_index_forward(false);
        let query = match item {
            // GSI reads are eventually consistent on DynamoDB (never on DynamoDB Local): for
            // a moment after a write, the counter can count an entry this page does not show
            // yet. Acceptable for a history view; the project log below is exact.
            Some(item) => query
                .index_name(ITEM_INDEX)
                .key_condition_expression("item_pk = :pk AND item_sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(format!("{pk}#{item}"))),
            None => query
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true),
        };
        // The key range bounds the read; the paginator only matters past 1 MB per page.
        let items = all_items(query).await?;
        serde_dynamo::from_items(items).map_err(db_error)
    }

    async fn activity_entry(
        &self,
        project_id: i64,
        scope: &str,
        seq: i64,
    ) -> Result<Option<ActivityEntry>, ApiError> {
        let key = HashMap::from([
            ("pk".to_string(), s(scope_pk(project_id, scope))),
            ("sk".to_string(), s(seq_sk(seq))),
        ]);
        self.get(&self.tables.activity, key).await
    }
}
