//! DynamoDB adapter for the store traits.
//!
//! Key layout (every table has string `pk` and `sk`):
//!
//! Flags table
//! * `COUNTER` / `FLAG_ID`                 → `n`: last flag id handed out (atomic `ADD`)
//! * `PROJECT#<p>` / `FLAG#<id>`           → the flag
//! * `PROJECT#<p>` / `FLAGKEY#<key>`       → `flag_id`: key uniqueness among non-deleted flags
//! * `PROJECT#<p>` / `FLAGDEP#<target id>#<flag id>` → `flag_id`: the flag's filters reference
//!   flag `target` (dependents are a Query of `FLAGDEP#<target>#`)
//! * `PROJECT#<p>` / `FLAGDEL#<key>#<flag id>` → `flag_id`: a soft-deleted flag holding `key`
//! * `PROJECT#<p>` / `FLAGINDEX`           → marker: the two indexes above hold every flag
//! * `PROJECT#<p>` / `FLAGLIST#<10-digit id / 32>` → `f<id>`: the list entry of each non-deleted
//!   flag of that id range (`flag_list.rs`); `FLAGLIST` → marker: every flag has its entry.
//!   All four are written in the flag's own transaction.
//! * `PROJECT#<p>` / `DEFINITIONS`         → `version`: bumped by every flag write and group type
//!   change (SDK cache/ETag)
//! * `PROJECT#<p>` / `GROUPTYPE#<index>`   → `group_type_index`, `name`: the group type mapping
//! * `PROJECT#<p>` / `GROUPTYPENAME#<name>` → `group_type_index`: a name has one index
//! * `COUNTER` / `SCHEDULED_CHANGE_ID`     → `n`: last scheduled change id handed out
//! * `PROJECT#<p>` / `SCHEDULE#<20-digit id>` → a scheduled change (`payload` JSON text,
//!   `revision`); while due also `due_pk = DUE`, `due_sk = <scheduled_at>#<20-digit p>#<20-digit
//!   id>`, the keys of the sparse GSI `due` (KEYS_ONLY) that the executor Queries
//!
//! Hash key overrides table (experience continuity)
//! * `PROJECT#<p>#DISTINCT#<distinct id>` / `HASHKEYS` → `k#<flag key>`: hash key, per flag
//!
//! Activity table (GSI `by-item`: `item_pk`, `item_sk`)
//! * `PROJECT#<p>#<scope>` / `SEQ#<20-digit seq>` → entry; `item_pk = PROJECT#<p>#<scope>#<item>`,
//!   `item_sk = SEQ#<20-digit item seq>`
//! * `COUNTER#PROJECT#<p>#<scope>` / `ALL` and `ITEM#<item>` → `n`: entries so far
//! * entry ids are UUIDv7s carrying `seq` (`activity::positioned_entry_id`): id → one GetItem
//!
//! Early access table
//! * `PROJECT#<p>` / `FEATURE#<uuid v7>`   → early access feature
//! * `PROJECT#<p>` / `FLAGLINK#<flag id>`  → `feature_id`: a flag backs at most one feature
//!
//! Persons table (persons learnt from captured events; capture writes them)
//! * `PROJECT#<p>#DISTINCT#<distinct id>` / `DISTINCT` → `person_id`: the person holding the id
//! * `PROJECT#<p>#PERSONS` / `PERSON#<uuid v7>` → the person: `uuid`, `distinct_ids` (list),
//!   `properties` (JSON text), `created_at`, `is_identified`, `revision` (bumped by every write,
//!   which is conditional on the value read). UUIDv7 sort keys list persons in creation order.
//!
//! Persons table, static cohort memberships (kept out of the cohorts table so the many
//! membership writes of a fill don't flood its stream)
//! * `PROJECT#<p>#COHORT#<id>` / `PERSON#<person uuid>` → `person_id`: the person is a member
//!
//! Cohorts table (stream `NEW_IMAGE` → the fill worker, for images with `is_calculating`)
//! * `COUNTER` / `COHORT_ID`               → `n`: last cohort id handed out (atomic `ADD`)
//! * `PROJECT#<p>` / `COHORT#<20-digit id>` → the cohort (`filters` JSON text, `is_calculating`,
//!   `fill`: flag id, persons cursor, matched count, step), `revision` (conditional writes).
//!   Writes that change evaluation also bump the project's `DEFINITIONS` version (Flags table)
//!   in the same transaction.
//!
//! Identity table (GSI `gsi1`: `gsi1pk`, `gsi1sk`)
//! * `COUNTER` / `<sequence>`              → `n` (project and user ids)
//! * `ORG#<uuid>` / `ORG`                  → organization
//! * `PROJECT#<id>` / `PROJECT`            → project; `gsi1pk = ORG#<org>`, `gsi1sk = PROJECT#<20-digit id>`
//! * `TOKEN#<phc_…>` / `TOKEN`             → `project_id`
//! * `SECRET#<sha256>` / `SECRET`          → `project_id`
//! * `ORG#<uuid>` / `MEMBER#<20-digit user id>` → `user_id`: the organization's members (written
//!   with the user)
//! * `ORG#<uuid>` / `PROJECTNAME#<trimmed lowercase name>` → `project_id`: a name names one
//!   project of the organization (claimed by projects created or renamed through the API)
//! * `USER#<id>` / `USER`                  → user
//! * `USER#<id>` / `HOME#<project id>`     → `settings` (JSON text): home settings in a project
//! * `APIKEY#<sha256>` / `APIKEY`          → personal API key; `gsi1pk = USER#<id>`, `gsi1sk = APIKEY#<key id>`
//! * `APIKEYID#<key id>` / `APIKEYID`      → `secure_value` (to revoke by id)
//!
//! Usage table (flag usage counters and dashboards; rules in `crate::usage`)
//! * `PROJECT#<p>#FLAG#<id>` / `DAY#<yyyy-mm-dd>#<response>` → `calls` (N, `ADD`), `hll` (NS of
//!   HyperLogLog `(register, rank)` pairs encoded `register * 64 + rank`, `ADD` = set union),
//!   `uids` (NS of 48-bit distinct-id hashes, added only while it holds < 1,000), `uids_full`
//!   (BOOL: `uids` stopped being complete). A flag's 30 days are one Query (`sk BETWEEN`).
//!   Size: `hll` holds at most 1,024 × 55 pairs (≤ 225 KB in the worst case), ≈ 1,024 ×
//!   (log2(n/1,024) + 3) for n users in practice (≈ 40 KB at a million a day); `uids` ≤ ~20 KB.
//! * `COUNTER` / `DASHBOARD_ID`              → `dashboards`, `insights`: last ids handed out (one
//!   atomic `ADD` gives a dashboard id and its two insight ids)
//! * `PROJECT#<p>` / `DASHBOARD#<id>`        → dashboard (flag id and key, insight ids/short ids);
//!   put in the same transaction as the flag whose `usage_dashboard` points at it
//! * `PROJECT#<p>#RATE#<scope>` / `WINDOW#<unix s>` → `requests`, `expires_at` (TTL): a rate
//!   limit's counter for one minute (`rate_limits.rs`, `crate::rate_limit`)

mod activity;
mod capacity;
mod cohorts;
mod definitions;
mod early_access;
mod flag_list;
mod flags;
mod identity;
mod overrides;
mod persons;
mod rate_limits;
mod schedules;
mod usage;

pub use capacity::CapacityMeter;

pub use cohorts::{cohort_stream_event, stream_cohorts};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, TransactWriteItem, Update,
};
use futures::{StreamExt, TryStreamExt, stream};
use serde::de::DeserializeOwned;

use super::Tables;
use crate::error::ApiError;
use crate::retry::Backoff;

/// DynamoDB's limit of keys per BatchGetItem call.
const BATCH_GET_KEYS: usize = 100;
/// Retries of what a batch call left unprocessed (throttling) before giving up with an error;
/// with [`Backoff::BATCH`] that is several seconds of waiting, and every caller is idempotent,
/// so the request (or the stream record) can simply be run again.
pub(crate) const UNPROCESSED_RETRIES: u32 = 7;

/// The adapter: one client, built once in `main` and shared by every request.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        DynamoStore { client, tables }
    }

    /// Client for the environment's AWS config (`AWS_ENDPOINT_URL_DYNAMODB` points it at
    /// DynamoDB Local).
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        let config = aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(CapacityMeter)
            .build();
        DynamoStore::new(Client::from_conf(config), Tables::from_env())
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;

impl DynamoStore {
    /// One item by key, read consistently (it may have just been written by this user).
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        table: &str,
        key: Item,
    ) -> Result<Option<T>, ApiError> {
        self.get_item(table, key)
            .await?
            .map(|item| serde_dynamo::from_item(item).map_err(db_error))
            .transpose()
    }

    /// [`DynamoStore::get`] without decoding, for items read attribute by attribute.
    pub(crate) async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out.item)
    }

    /// The next value of the atomic counter `COUNTER` / `name` in `table` (1 first): ids that
    /// are unique and increasing however many writers race.
    pub(crate) async fn next_counter(&self, table: &str, name: &str) -> Result<i64, ApiError> {
        let out = self
            .client
            .update_item()
            .table_name(table)
            .key("pk", s("COUNTER"))
            .key("sk", s(name))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(db_error)?;
        out.attributes
            .and_then(|a| a.get("n")?.as_n().ok()?.parse().ok())
            .ok_or_else(|| ApiError::internal(format!("counter {name} returned nothing")))
    }

    /// The transaction step that moves the project's definitions version (Flags table
    /// `PROJECT#<p>` / `DEFINITIONS`): every write SDK caches must see carries one.
    pub(crate) fn bump_definitions(&self, project_id: i64) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(project_id)))
            .key("sk", s("DEFINITIONS"))
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Every existing item of `keys` in `table`, read consistently, in the order of the
    /// 100-key chunks (DynamoDB orders nothing within one). Up to `in_flight` BatchGetItem calls
    /// run at once; unprocessed keys are retried with backoff, then reported as an error rather
    /// than silently read as missing.
    pub(crate) async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        in_flight: usize,
    ) -> Result<Vec<Item>, ApiError> {
        let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET_KEYS).map(<[Item]>::to_vec).collect();
        let pages: Vec<Vec<Item>> = stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(table, chunk))
            .buffered(in_flight.max(1))
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, ApiError> {
        let mut found = Vec::new();
        let mut pending = keys;
        for call in 0..=UNPROCESSED_RETRIES {
            if pending.is_empty() {
                break;
            }
            if call > 0 {
                Backoff::BATCH.pause(call - 1).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(db_error)?;
            let mut out = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(db_error)?;
            if let Some(items) = out.responses.as_mut().and_then(|r| r.remove(table)) {
                found.extend(items);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if pending.is_empty() {
            Ok(found)
        } else {
            Err(ApiError::internal(format!(
                "dynamodb: BatchGetItem on {table} left {} keys unprocessed after {UNPROCESSED_RETRIES} retries",
                pending.len()
            )))
        }
    }

    /// Every item under `pk` whose sort key starts with `prefix`, consistently, all pages.
    pub(crate) async fn query_prefix<T: DeserializeOwned>(
        &self,
        table: &str,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<T>, ApiError> {
        let items = self.query_prefix_items(table, pk, prefix).await?;
        serde_dynamo::from_items(items).map_err(db_error)
    }

    /// [`DynamoStore::query_prefix`] without decoding, for items read attribute by attribute.
    pub(crate) async fn query_prefix_items(
        &self,
        table: &str,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, ApiError> {
        all_items(
            self.client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true),
        )
        .await
    }
}

/// Every item the Query matches, page after page.
pub(crate) async fn all_items(query: QueryFluentBuilder) -> Result<Vec<Item>, ApiError> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(db_error)
}

/// The partition of a project's own items (flags, cohorts, early access features, …).
pub(crate) fn project_pk(project_id: i64) -> String {
    format!("PROJECT#{project_id}")
}

/// The project of a [`project_pk`]; `None` for any other partition.
pub(crate) fn project_of_pk(pk: &str) -> Option<i64> {
    pk.strip_prefix("PROJECT#")?.parse().ok()
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// SDK errors carry request details; keep them for the log, never for the client.
pub(crate) fn db_error(e: impl std::fmt::Debug) -> ApiError {
    ApiError::internal(format!("dynamodb: {e:?}"))
}

/// Zero-padded so string order equals numeric order in sort keys.
pub(crate) fn padded(n: i64) -> String {
    format!("{n:020}")
}
