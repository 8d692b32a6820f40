//! Cohorts (cohorts table), static cohort memberships (persons table), and the cohorts table's
//! stream records as the fill worker receives them.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{Put, PutRequest, TransactWriteItem, WriteRequest};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value, json};

use super::{
    DynamoStore, Item, UNPROCESSED_RETRIES, db_error, n, padded, project_of_pk, project_pk, s,
};
use crate::cohort::Cohort;
use crate::error::ApiError;
use crate::retry::Backoff;
use crate::store::{CohortStore, WriteError};

/// BatchWriteItem takes 25 requests a call.
const WRITE_BATCH: usize = 25;

/// Membership DeleteItems in flight at once (a bulk person delete may remove hundreds).
const REMOVALS_IN_FLIGHT: usize = 8;

const COHORT_SK: &str = "COHORT#";

fn cohort_key(project_id: i64, id: i64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(project_pk(project_id))),
        ("sk".to_string(), s(format!("{COHORT_SK}{}", padded(id)))),
    ])
}

/// `(project, cohort)` of each cohorts-table stream record's key, once each, in order. Records
/// of other items (counters) or without keys are skipped: the worker only steps cohorts.
pub fn stream_cohorts(event: &Value) -> Vec<(i64, i64)> {
    let records = event.get("Records").and_then(Value::as_array);
    let mut seen = HashSet::new();
    records
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let keys = r.get("dynamodb")?.get("Keys")?;
            let pk = keys.get("pk")?.get("S")?.as_str()?;
            let sk = keys.get("sk")?.get("S")?.as_str()?;
            let cohort = sk.strip_prefix(COHORT_SK)?.parse().ok()?;
            Some((project_of_pk(pk)?, cohort))
        })
        .filter(|pair| seen.insert(*pair))
        .collect()
}

/// A stream event naming cohorts, shaped as DynamoDB Streams hands it to Lambda (reduced to the
/// keys and the image attribute the event filter matches), for tests and tools.
pub fn cohort_stream_event(cohorts: &[(i64, i64)]) -> Value {
    let records: Vec<Value> = cohorts
        .iter()
        .map(|&(project, cohort)| {
            let keys: Map<String, Value> = cohort_key(project, cohort)
                .into_iter()
                .filter_map(|(name, v)| Some((name, json!({"S": v.as_s().ok()?}))))
                .collect();
            json!({
                "eventName": "MODIFY",
                "dynamodb": {"Keys": keys, "NewImage": {"is_calculating": {"BOOL": true}}},
            })
        })
        .collect();
    json!({ "Records": records })
}

fn members_pk(project_id: i64, cohort_id: i64) -> String {
    format!("PROJECT#{project_id}#COHORT#{cohort_id}")
}

fn member_key(project_id: i64, cohort_id: i64, uuid: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s(members_pk(project_id, cohort_id))),
        ("sk".to_string(), s(format!("PERSON#{uuid}"))),
    ])
}

impl CohortStore for DynamoStore {
    async fn next_cohort_id(&self) -> Result<i64, ApiError> {
        self.next_counter(&self.tables.cohorts, "COHORT_ID").await
    }

    async fn cohort(&self, project_id: i64, id: i64) -> Result<Option<Cohort>, ApiError> {
        self.get(&self.tables.cohorts, cohort_key(project_id, id))
            .await
    }

    async fn project_cohorts(&self, project_id: i64) -> Result<Vec<Cohort>, ApiError> {
        self.query_prefix(&self.tables.cohorts, project_pk(project_id), COHORT_SK)
            .await
    }

    async fn write_cohort(
        &self,
        cohort: &Cohort,
        bump_definitions: bool,
    ) -> Result<Option<Cohort>, ApiError> {
        let mut stored = cohort.clone();
        stored.revision = cohort.revision + 1;
        let mut item: Item = serde_dynamo::to_item(&stored).map_err(db_error)?;
        item.extend(cohort_key(cohort.project_id, cohort.id));
        let put = Put::builder()
            .table_name(&self.tables.cohorts)
            .set_item(Some(item));
        let put = if cohort.revision == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("revision = :read")
                .expression_attribute_values(":read", n(cohort.revision))
        };
        let put = put.build().map_err(db_error)?;
        let written = if bump_definitions {
            self.put_with_bump(put, cohort.project_id).await?
        } else {
            self.put_alone(put).await?
        };
        Ok(written.then_some(stored))
    }

    async fn add_cohort_members(
        &self,
        project_id: i64,
        cohort_id: i64,
        person_uuids: &[String],
    ) -> Result<(), ApiError> {
        for chunk in person_uuids.chunks(WRITE_BATCH) {
            let requests = chunk
                .iter()
                .map(|uuid| {
                    let mut item = member_key(project_id, cohort_id, uuid);
                    item.insert("person_id".into(), s(uuid));
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(db_error)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            self.cohort_batch_write(requests).await?;
        }
        Ok(())
    }

    async fn remove_cohort_members(
        &self,
        project_id: i64,
        cohort_id: i64,
        person_uuids: &[String],
    ) -> Result<Vec<String>, ApiError> {
        let mut unique: Vec<String> = person_uuids.to_vec();
        unique.sort();
        unique.dedup();
        // Conditional on the item existing: of concurrent removals exactly one succeeds.
        let deletes = unique.into_iter().map(|uuid| {
            let request = self
                .client
                .delete_item()
                .table_name(&self.tables.persons)
                .set_key(Some(member_key(project_id, cohort_id, &uuid)))
                .condition_expression("attribute_exists(pk)");
            async move {
                match request.send().await {
                    Ok(_) => Ok(Some(uuid)),
                    Err(SdkError::ServiceError(e))
                        if matches!(
                            e.err(),
                            DeleteItemError::ConditionalCheckFailedException(_)
                        ) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(db_error(e)),
                }
            }
        });
        let removed: Vec<Option<String>> = stream::iter(deletes)
            .buffer_unordered(REMOVALS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(removed.into_iter().flatten().collect())
    }

    async fn cohort_members_page(
        &self,
        project_id: i64,
        cohort_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), ApiError> {
        let pk = members_pk(project_id, cohort_id);
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.persons)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(&pk))
                .exclusive_start_key("sk", s(format!("PERSON#{after}")));
        }
        let out = query.send().await.map_err(db_error)?;
        let uuids: Vec<String> = out
            .items()
            .iter()
            .filter_map(|item| item.get("person_id")?.as_s().ok().cloned())
            .collect();
        // DynamoDB hands back a LastEvaluatedKey whenever the limit was hit; the last uuid is
        // all a cursor needs.
        let next = out.last_evaluated_key().and_then(|_| uuids.last().cloned());
        Ok((uuids, next))
    }

    async fn static_memberships(
        &self,
        project_id: i64,
        cohort_ids: &[i64],
        person_uuids: &[String],
    ) -> Result<HashMap<String, Vec<i64>>, ApiError> {
        let keys: Vec<Item> = person_uuids
            .iter()
            .flat_map(|uuid| {
                cohort_ids
                    .iter()
                    .map(move |&cohort| member_key(project_id, cohort, uuid))
            })
            .collect();
        let mut found: HashMap<String, Vec<i64>> = HashMap::new();
        // One call at a time: the fill worker asks on every page, and spacing its reads keeps
        // it from throttling the persons table that captures write to.
        for item in self.batch_get(&self.tables.persons, keys, 1).await? {
            let pk = item.get("pk").and_then(|v| v.as_s().ok());
            let cohort = pk
                .and_then(|pk| pk.rsplit_once("#COHORT#"))
                .and_then(|(_, id)| id.parse::<i64>().ok());
            let person = item.get("person_id").and_then(|v| v.as_s().ok());
            if let (Some(cohort), Some(person)) = (cohort, person) {
                found.entry(person.clone()).or_default().push(cohort);
            }
        }
        Ok(found)
    }
}

impl DynamoStore {
    /// The cohort and the project's definitions version, in one transaction.
    async fn put_with_bump(&self, put: Put, project_id: i64) -> Result<bool, ApiError> {
        let ops = vec![
            TransactWriteItem::builder().put(put).build(),
            self.bump_definitions(project_id)?,
        ];
        match self.transact(ops, None).await {
            Ok(()) => Ok(true),
            Err(WriteError::Retry) => Ok(false),
            Err(WriteError::KeyTaken) => Ok(false),
            Err(WriteError::Api(e)) => Err(e),
        }
    }

    /// A conditional put on its own (fill progress: nothing SDKs cache changes).
    async fn put_alone(&self, put: Put) -> Result<bool, ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .set_condition_expression(put.condition_expression().map(str::to_string))
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(db_error(e)),
        }
    }

    /// BatchWriteItem of up to 25 requests, retrying what DynamoDB leaves unprocessed.
    async fn cohort_batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), ApiError> {
        let table = self.tables.persons.clone();
        for call in 0..=UNPROCESSED_RETRIES {
            if requests.is_empty() {
                break;
            }
            if call > 0 {
                Backoff::BATCH.pause(call - 1).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&table, requests)
                .send()
                .await
                .map_err(db_error)?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&table))
                .unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(ApiError::internal(format!(
                "dynamodb: BatchWriteItem left {} items unprocessed after {UNPROCESSED_RETRIES} retries",
                requests.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_cohorts_once() {
        let event = cohort_stream_event(&[(3, 7), (3, 7), (4, 12)]);
        assert_eq!(stream_cohorts(&event), vec![(3, 7), (4, 12)]);
        assert!(stream_cohorts(&json!({"Records": [{"dynamodb": {}}]})).is_empty());
    }

    #[test]
    fn records_carry_the_table_keys() {
        let event = cohort_stream_event(&[(3, 7)]);
        let keys = &event["Records"][0]["dynamodb"]["Keys"];
        assert_eq!(keys["pk"]["S"], "PROJECT#3");
        assert_eq!(keys["sk"]["S"], format!("COHORT#{:020}", 7));
        let counter = json!({"Records": [{"dynamodb": {"Keys": {
            "pk": {"S": "COUNTER"}, "sk": {"S": "COHORT_ID"}}}}]});
        assert!(stream_cohorts(&counter).is_empty());
    }
}
