//! Persons and their distinct-id items in the persons table (layout in `super`'s docs).
//! Capture reads them with BatchGetItem and writes each person's change as one conditional
//! unit of a TransactWriteItems call; the API reads with GetItem and Query, updates properties
//! with the same conditional write, and deletes a person with its distinct-id items and hash
//! key overrides in one transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value};

use super::overrides::overrides_key;
use super::{DynamoStore, Item, db_error, n, s};
use crate::error::ApiError;
use crate::person::{Person, PersonWrite};
use crate::store::PersonStore;

/// DynamoDB's limit per TransactWriteItems call.
const TRANSACTION_ITEMS: usize = 100;
/// DynamoDB calls of one capture in flight at once (a 1,000-person batch is 10 BatchGetItems
/// and 20 transactions): enough to hide latency, few enough not to throttle a small table.
const PARALLEL_CALLS: usize = 8;

fn persons_pk(project_id: i64) -> String {
    format!("PROJECT#{project_id}#PERSONS")
}

fn person_key(project_id: i64, uuid: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s(persons_pk(project_id))),
        ("sk".to_string(), s(format!("PERSON#{uuid}"))),
    ])
}

fn distinct_key(project_id: i64, distinct_id: &str) -> Item {
    HashMap::from([
        (
            "pk".to_string(),
            s(format!("PROJECT#{project_id}#DISTINCT#{distinct_id}")),
        ),
        ("sk".to_string(), s("DISTINCT")),
    ])
}

fn person_item(person: &Person, revision: i64) -> Item {
    let mut item = person_key(person.project_id, &person.uuid);
    item.insert("project_id".into(), n(person.project_id));
    item.insert("uuid".into(), s(&person.uuid));
    item.insert(
        "distinct_ids".into(),
        AttributeValue::L(person.distinct_ids.iter().map(s).collect()),
    );
    // One JSON text: DynamoDB maps would reorder keys, reject empty keys and blur 1 vs 1.0.
    item.insert(
        "properties".into(),
        s(Value::Object(person.properties.clone()).to_string()),
    );
    item.insert(
        "created_at".into(),
        s(crate::time::format(&person.created_at)),
    );
    item.insert(
        "is_identified".into(),
        AttributeValue::Bool(person.is_identified),
    );
    item.insert("revision".into(), n(revision));
    item
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(format!("persons table: item without valid {what}"))
}

fn person_from(item: &Item) -> Result<Person, ApiError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt(name))
    };
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| corrupt(name))
    };
    let properties = match serde_json::from_str(text("properties")?) {
        Ok(Value::Object(map)) => map,
        _ => return Err(corrupt("properties")),
    };
    let distinct_ids = item
        .get("distinct_ids")
        .and_then(|v| v.as_l().ok())
        .ok_or_else(|| corrupt("distinct_ids"))?
        .iter()
        .filter_map(|v| v.as_s().ok().cloned())
        .collect();
    Ok(Person {
        project_id: number("project_id")?,
        uuid: text("uuid")?.clone(),
        distinct_ids,
        properties: properties as Map<String, Value>,
        created_at: crate::time::parse(text("created_at")?).ok_or_else(|| corrupt("created_at"))?,
        is_identified: item
            .get("is_identified")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        revision: number("revision")?,
    })
}

fn person_id_of(item: &Item) -> Option<&str> {
    item.get("person_id")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

impl PersonStore for DynamoStore {
    async fn person_by_distinct_id(
        &self,
        project_id: i64,
        distinct_id: &str,
    ) -> Result<Option<Person>, ApiError> {
        crate::limits::identifier("distinct_id", distinct_id)?;
        let Some(link) = self
            .get_item(&self.tables.persons, distinct_key(project_id, distinct_id))
            .await?
        else {
            return Ok(None);
        };
        let Some(person_id) = person_id_of(&link) else {
            return Err(corrupt("person_id"));
        };
        self.get_item(&self.tables.persons, person_key(project_id, person_id))
            .await?
            .map(|item| person_from(&item))
            .transpose()
    }

    async fn person(&self, project_id: i64, uuid: &str) -> Result<Option<Person>, ApiError> {
        self.get_item(&self.tables.persons, person_key(project_id, uuid))
            .await?
            .map(|item| person_from(&item))
            .transpose()
    }

    async fn persons_page(
        &self,
        project_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Person>, Option<String>), ApiError> {
        self.query_persons(project_id, after, limit, true).await
    }

    async fn persons_page_newest_first(
        &self,
        project_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Person>, Option<String>), ApiError> {
        self.query_persons(project_id, after, limit, false).await
    }

    async fn persons_by_ids(
        &self,
        project_id: i64,
        uuids: &[String],
    ) -> Result<Vec<Person>, ApiError> {
        let mut unique: Vec<&String> = uuids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique
            .into_iter()
            .map(|uuid| person_key(project_id, uuid))
            .collect();
        self.batch_get(&self.tables.persons, keys, PARALLEL_CALLS)
            .await?
            .iter()
            .map(person_from)
            .collect()
    }

    async fn persons_by_distinct_ids(
        &self,
        project_id: i64,
        distinct_ids: &[String],
    ) -> Result<HashMap<String, Person>, ApiError> {
        for distinct_id in distinct_ids {
            crate::limits::identifier("distinct_id", distinct_id)?;
        }
        let mut unique: Vec<&String> = distinct_ids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique.iter().map(|d| distinct_key(project_id, d)).collect();
        let prefix = format!("PROJECT#{project_id}#DISTINCT#");
        let mut links: Vec<(String, String)> = Vec::new();
        for item in self
            .batch_get(&self.tables.persons, keys, PARALLEL_CALLS)
            .await?
        {
            let distinct = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix(&prefix))
                .ok_or_else(|| corrupt("pk"))?;
            let person = person_id_of(&item).ok_or_else(|| corrupt("person_id"))?;
            links.push((distinct.to_string(), person.to_string()));
        }
        let ids: Vec<String> = links.iter().map(|(_, p)| p.clone()).collect();
        let persons: HashMap<String, Person> = self
            .persons_by_ids(project_id, &ids)
            .await?
            .into_iter()
            .map(|p| (p.uuid.clone(), p))
            .collect();
        // A distinct item whose person is gone (a merge in flight) counts as no person; the
        // write's conditions then catch the race.
        Ok(links
            .into_iter()
            .filter_map(|(d, p)| Some((d, persons.get(&p)?.clone())))
            .collect())
    }

    async fn write_persons(&self, writes: &[PersonWrite]) -> Result<Vec<usize>, ApiError> {
        // Whole writes per transaction (each must stay atomic), filled up to 100 items.
        let mut groups: Vec<(Vec<usize>, Vec<TransactWriteItem>)> = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            let mine = self.person_ops(write)?;
            if mine.len() > TRANSACTION_ITEMS {
                return Err(ApiError::internal(format!(
                    "person write of {} items exceeds one transaction",
                    mine.len()
                )));
            }
            match groups.last_mut() {
                Some((indexes, ops)) if ops.len() + mine.len() <= TRANSACTION_ITEMS => {
                    indexes.push(i);
                    ops.extend(mine);
                }
                _ => groups.push((vec![i], mine)),
            }
        }
        // The writes are disjoint (one per person), so their transactions may run side by side.
        let outcomes: Vec<(Vec<usize>, bool)> = stream::iter(groups)
            .map(|(indexes, ops)| async move { Ok((indexes, self.transact_persons(ops).await?)) })
            .buffer_unordered(PARALLEL_CALLS)
            .try_collect::<Vec<_>>()
            .await?;
        let mut failed: Vec<usize> = outcomes
            .into_iter()
            .filter(|(_, written)| !written)
            .flat_map(|(indexes, _)| indexes)
            .collect();
        failed.sort_unstable();
        Ok(failed)
    }

    async fn delete_person(&self, person: &Person) -> Result<bool, ApiError> {
        let table = &self.tables.persons;
        let project_id = person.project_id;
        let mut ops = Vec::with_capacity(1 + 2 * person.distinct_ids.len());
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(person_key(project_id, &person.uuid)))
            .condition_expression("revision = :read")
            .expression_attribute_values(":read", n(person.revision))
            .build()
            .map_err(db_error)?;
        ops.push(TransactWriteItem::builder().delete(delete).build());
        for distinct_id in &person.distinct_ids {
            // Each id's item points at the person (capture writes both in one transaction);
            // a missing one is tolerated rather than blocking the delete for ever.
            let link = Delete::builder()
                .table_name(table)
                .set_key(Some(distinct_key(project_id, distinct_id)))
                .condition_expression("attribute_not_exists(pk) OR person_id = :person")
                .expression_attribute_values(":person", s(&person.uuid))
                .build()
                .map_err(db_error)?;
            ops.push(TransactWriteItem::builder().delete(link).build());
            let overrides = Delete::builder()
                .table_name(&self.tables.hash_key_overrides)
                .set_key(Some(overrides_key(project_id, distinct_id)))
                .build()
                .map_err(db_error)?;
            ops.push(TransactWriteItem::builder().delete(overrides).build());
        }
        if ops.len() > TRANSACTION_ITEMS {
            return Err(ApiError::internal(format!(
                "person delete of {} items exceeds one transaction",
                ops.len()
            )));
        }
        self.transact_persons(ops).await
    }
}

impl DynamoStore {
    /// One Query of the persons partition from after `after`, oldest first (`forward`) or
    /// newest first; the cursor of the next page is the last uuid returned.
    async fn query_persons(
        &self,
        project_id: i64,
        after: Option<&str>,
        limit: usize,
        forward: bool,
    ) -> Result<(Vec<Person>, Option<String>), ApiError> {
        let limit = limit.clamp(1, 1000);
        // The cursor is the last uuid returned: a valid ExclusiveStartKey whether or not that
        // person still exists, so a walk resumes exactly where it stopped.
        let start = after.map(|uuid| person_key(project_id, uuid));
        let out = self
            .client
            .query()
            .table_name(&self.tables.persons)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(persons_pk(project_id)))
            .expression_attribute_values(":prefix", s("PERSON#"))
            .set_exclusive_start_key(start)
            .scan_index_forward(forward)
            .limit(limit as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        let persons = out
            .items
            .unwrap_or_default()
            .iter()
            .map(person_from)
            .collect::<Result<Vec<_>, _>>()?;
        // DynamoDB may stop early (1 MB pages) or hand a key after exactly `limit` items
        // although nothing follows; the latter costs the caller one empty page at most.
        let next = match out.last_evaluated_key {
            Some(key) if !key.is_empty() => persons.last().map(|p| p.uuid.clone()),
            _ => None,
        };
        Ok((persons, next))
    }

    /// The items of one person write: the person, its claimed distinct ids, merged persons.
    fn person_ops(&self, write: &PersonWrite) -> Result<Vec<TransactWriteItem>, ApiError> {
        let table = &self.tables.persons;
        let person = &write.person;
        let mut ops = Vec::with_capacity(write.item_count());
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(person_item(person, person.revision + 1)));
        let put = if person.revision == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("revision = :read")
                .expression_attribute_values(":read", n(person.revision))
        };
        ops.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(db_error)?)
                .build(),
        );
        for claim in &write.claimed_distinct_ids {
            let mut item = distinct_key(person.project_id, &claim.distinct_id);
            item.insert("person_id".into(), s(&person.uuid));
            let put = Put::builder().table_name(table).set_item(Some(item));
            let put = match &claim.previous {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(previous) => put
                    .condition_expression("person_id = :previous")
                    .expression_attribute_values(":previous", s(previous)),
            };
            ops.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(db_error)?)
                    .build(),
            );
        }
        for merged in &write.merged {
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(person_key(merged.project_id, &merged.uuid)))
                .condition_expression("revision = :read")
                .expression_attribute_values(":read", n(merged.revision))
                .build()
                .map_err(db_error)?;
            ops.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok(ops)
    }

    /// True when the transaction was written; false when it was cancelled (a condition failed
    /// or another transaction held an item), so nothing of it was written.
    async fn transact_persons(&self, ops: Vec<TransactWriteItem>) -> Result<bool, ApiError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                        | TransactWriteItemsError::TransactionInProgressException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(db_error(e)),
        }
    }
}
