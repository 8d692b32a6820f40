//! Usage table: flag usage counters (atomic `ADD`s, one UpdateItem per counter item) and
//! dashboards (put inside flag transactions, see `flags.rs`).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use chrono::NaiveDate;
use futures::future::try_join_all;

use super::{DynamoStore, Item, all_items, db_error, n, s};
use crate::dashboard::{Dashboard, DashboardIds};
use crate::error::ApiError;
use crate::store::{DashboardStore, UsageStore};
use crate::usage::{EXACT_USERS_CAP, UsageDelta, UsageKey, UsageRow};

/// Counter items updated at once per capture (each is its own UpdateItem).
const PARALLEL_UPDATES: usize = 16;

fn counters_pk(project_id: i64, flag_id: i64) -> String {
    format!("PROJECT#{project_id}#FLAG#{flag_id}")
}

fn day_sk(day: NaiveDate, response: &str) -> String {
    format!("DAY#{}#{response}", day.format("%Y-%m-%d"))
}

fn dashboard_key(project_id: i64, id: i64) -> Item {
    Item::from([
        ("pk".to_string(), s(format!("PROJECT#{project_id}"))),
        ("sk".to_string(), s(format!("DASHBOARD#{id}"))),
    ])
}

fn number_set(values: &std::collections::BTreeSet<u64>) -> AttributeValue {
    AttributeValue::Ns(values.iter().map(u64::to_string).collect())
}

impl DynamoStore {
    /// The dashboard item, put only if new, for a flag transaction.
    pub(super) fn put_dashboard(
        &self,
        dashboard: &Dashboard,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut item: Item = serde_dynamo::to_item(dashboard).map_err(db_error)?;
        item.extend(dashboard_key(dashboard.project_id, dashboard.id));
        let put = Put::builder()
            .table_name(&self.tables.usage)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One counter item's update. First try adds the users to the exact set too, on condition
    /// that it is still below the cap and complete; when that fails the set is left alone and
    /// marked incomplete, and readers fall back to the HyperLogLog.
    async fn add_one(
        &self,
        project_id: i64,
        key: &UsageKey,
        delta: &UsageDelta,
    ) -> Result<(), ApiError> {
        let with_users = !delta.users.is_empty();
        let mut update = self.counter_update(project_id, key, delta);
        if with_users {
            update = update
                .update_expression(format!("{}, uids :users", add_expression(delta)))
                .expression_attribute_values(":users", number_set(&delta.users))
                .expression_attribute_values(":cap", n(EXACT_USERS_CAP as i64))
                .condition_expression(
                    "attribute_not_exists(uids_full) AND (attribute_not_exists(uids) OR size(uids) < :cap)",
                );
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                self.counter_update(project_id, key, delta)
                    .update_expression(format!("{} SET uids_full = :yes", add_expression(delta)))
                    .expression_attribute_values(":yes", AttributeValue::Bool(true))
                    .send()
                    .await
                    .map(drop)
                    .map_err(db_error)
            }
            Err(e) => Err(db_error(e)),
        }
    }

    /// The update's key and values common to both attempts; the expression is set by the caller.
    fn counter_update(
        &self,
        project_id: i64,
        key: &UsageKey,
        delta: &UsageDelta,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.usage)
            .key("pk", s(counters_pk(project_id, key.flag_id)))
            .key("sk", s(day_sk(key.day, &key.response)))
            .update_expression(add_expression(delta))
            .expression_attribute_values(":calls", n(delta.calls));
        if !delta.pairs.is_empty() {
            update = update.expression_attribute_values(":pairs", number_set(&delta.pairs));
        }
        update
    }
}

/// `ADD calls :calls[, hll :pairs]`: number sets may not be empty.
fn add_expression(delta: &UsageDelta) -> String {
    if delta.pairs.is_empty() {
        "ADD calls :calls".to_string()
    } else {
        "ADD calls :calls, hll :pairs".to_string()
    }
}

fn parse_row(item: &Item) -> Option<UsageRow> {
    let sk = item.get("sk")?.as_s().ok()?;
    let rest = sk.strip_prefix("DAY#")?;
    let (day, response) = rest.split_once('#')?;
    let numbers = |name: &str| -> Vec<u64> {
        item.get(name)
            .and_then(|v| v.as_ns().ok())
            .map(|ns| ns.iter().filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default()
    };
    Some(UsageRow {
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?,
        response: response.to_string(),
        calls: item.get("calls")?.as_n().ok()?.parse().ok()?,
        pairs: numbers("hll"),
        users: numbers("uids").len(),
        users_incomplete: item.get("uids_full").is_some(),
    })
}

impl UsageStore for DynamoStore {
    async fn add_usage(
        &self,
        project_id: i64,
        deltas: &[(UsageKey, UsageDelta)],
    ) -> Result<(), ApiError> {
        for chunk in deltas.chunks(PARALLEL_UPDATES) {
            try_join_all(
                chunk
                    .iter()
                    .map(|(key, delta)| self.add_one(project_id, key, delta)),
            )
            .await?;
        }
        Ok(())
    }

    /// Eventually consistent: dashboards are analytics, and it halves the read cost of items
    /// that can hold tens of KB of HyperLogLog pairs.
    async fn usage_rows(
        &self,
        project_id: i64,
        flag_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageRow>, ApiError> {
        // `$` sorts right after `#`, so this bound takes every response of the last day.
        let last = format!("DAY#{}$", to.format("%Y-%m-%d"));
        let items = all_items(
            self.client
                .query()
                .table_name(&self.tables.usage)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(counters_pk(project_id, flag_id)))
                .expression_attribute_values(":from", s(day_sk(from, "")))
                .expression_attribute_values(":to", s(last)),
        )
        .await?;
        Ok(items.iter().filter_map(parse_row).collect())
    }
}

impl DashboardStore for DynamoStore {
    async fn next_dashboard_ids(&self) -> Result<DashboardIds, ApiError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.usage)
            .key("pk", s("COUNTER"))
            .key("sk", s("DASHBOARD_ID"))
            .update_expression("ADD dashboards :one, insights :two")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":two", n(2))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(db_error)?;
        let attributes = out.attributes.unwrap_or_default();
        let get = |name: &str| -> Option<i64> { attributes.get(name)?.as_n().ok()?.parse().ok() };
        match (get("dashboards"), get("insights")) {
            (Some(dashboard), Some(last)) => Ok(DashboardIds {
                dashboard,
                insights: [last - 1, last],
            }),
            _ => Err(ApiError::internal("dashboard id counter returned nothing")),
        }
    }

    async fn dashboard(&self, project_id: i64, id: i64) -> Result<Option<Dashboard>, ApiError> {
        self.get(&self.tables.usage, dashboard_key(project_id, id))
            .await
    }
}
