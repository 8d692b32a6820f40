//! Flags, their key-uniqueness items, activity entries and counters, written together in one
//! TransactWriteItems so that a flag never changes without its log entry or the reverse.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use futures::{StreamExt, TryStreamExt, stream};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::{DynamoStore, Item, db_error, n, padded, project_pk, s};
use crate::activity::{self, ActivityEntry};
use crate::error::ApiError;
use crate::flag::list::ListEntry;
use crate::flag::{Flag, filters};
use crate::store::{FlagStore, FlagWrite, WriteError};

/// DynamoDB refuses items over 400 KB. A flag's activity entry can hold its filters twice
/// (before and after), so a flag gets a bit less than half of that.
pub const MAX_FLAG_ITEM_BYTES: usize = 190 * 1024;
const MAX_ITEM_BYTES: usize = 400 * 1024 - 1024;

fn key_sk(key: &str) -> String {
    format!("FLAGKEY#{key}")
}

/// The dependency index: one item per (referenced flag, referencing flag) pair, so the flags
/// that depend on one are a Query of its prefix, not a read of the project. Keys hold no `#`.
fn dependency_sk(target: i64, source: i64) -> String {
    format!("FLAGDEP#{target}#{source}")
}

/// The deleted-key index: one item per soft-deleted flag under its key, so a create reusing
/// the key finds the flags to purge without reading the project.
fn deleted_key_sk(key: &str, id: i64) -> String {
    format!("FLAGDEL#{key}#{id}")
}

/// Marks a project whose indexes hold every flag (see [`DynamoStore::ensure_flag_indexes`]).
const INDEXED_SK: &str = "FLAGINDEX";

/// (table, project, marker) triples this process has seen stored.
type Marks = HashSet<(String, i64, &'static str)>;
static MARKED: OnceLock<Mutex<Marks>> = OnceLock::new();

/// The index items a stored flag needs: one per flag it references, one if soft-deleted.
fn index_items(flag: &Flag) -> Vec<String> {
    let mut sks: Vec<String> = filters::reference_ids(&flag.filters)
        .into_iter()
        .map(|target| dependency_sk(target, flag.id))
        .collect();
    if flag.deleted {
        sks.push(deleted_key_sk(&flag.key, flag.id));
    }
    sks
}

fn index_item_ids(items: Vec<Item>) -> Vec<i64> {
    items
        .iter()
        .filter_map(|item| item.get("flag_id")?.as_n().ok()?.parse().ok())
        .collect()
}

pub(super) fn flag_key(project_id: i64, id: i64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(project_pk(project_id))),
        ("sk".to_string(), s(format!("FLAG#{id}"))),
    ])
}

fn to_flag_item(flag: &Flag) -> Result<Item, ApiError> {
    let mut item: Item = serde_dynamo::to_item(flag).map_err(db_error)?;
    item.extend(flag_key(flag.project_id, flag.id));
    Ok(item)
}

/// DynamoDB's own size accounting: attribute names plus values, nested containers included.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| n.len()).sum(),
        _ => 1,
    }
}

fn too_large(bytes: usize, limit: usize) -> ApiError {
    ApiError::object(format!(
        "This feature flag is too large to store: it takes {bytes} bytes and the limit is {limit} bytes \
         (DynamoDB's 400 KB item limit, with room for its activity entry). Make its filters or payloads smaller."
    ))
}

/// The condition (on `:read`) that a stored flag is still as `read` was read. Rows written
/// before revisions existed are guarded by their version.
pub(super) fn unchanged_since(read: &Flag) -> (&'static str, AttributeValue) {
    if read.revision == 0 {
        (
            "attribute_not_exists(revision) AND version = :read",
            n(read.version),
        )
    } else {
        ("revision = :read", n(read.revision))
    }
}

impl FlagStore for DynamoStore {
    async fn get_flag(&self, project_id: i64, id: i64) -> Result<Option<Flag>, ApiError> {
        self.get(&self.tables.flags, flag_key(project_id, id)).await
    }

    async fn project_flags(&self, project_id: i64) -> Result<Vec<Flag>, ApiError> {
        self.query_prefix(&self.tables.flags, project_pk(project_id), "FLAG#")
            .await
    }

    async fn flag_list_entries(&self, project_id: i64) -> Result<Vec<ListEntry>, ApiError> {
        self.list_entries(project_id).await
    }

    async fn flags_by_ids(&self, project_id: i64, ids: &[i64]) -> Result<Vec<Flag>, ApiError> {
        let mut unique: Vec<i64> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let keys = unique.iter().map(|id| flag_key(project_id, *id)).collect();
        let items = self.batch_get(&self.tables.flags, keys, 4).await?;
        serde_dynamo::from_items(items).map_err(db_error)
    }

    async fn dependent_ids(&self, project_id: i64, target: i64) -> Result<Vec<i64>, ApiError> {
        self.ensure_flag_indexes(project_id).await?;
        let prefix = format!("FLAGDEP#{target}#");
        let items = self
            .query_prefix_items(&self.tables.flags, project_pk(project_id), &prefix)
            .await?;
        Ok(index_item_ids(items))
    }

    async fn deleted_key_holders(&self, project_id: i64, key: &str) -> Result<Vec<i64>, ApiError> {
        self.ensure_flag_indexes(project_id).await?;
        let prefix = format!("FLAGDEL#{key}#");
        let items = self
            .query_prefix_items(&self.tables.flags, project_pk(project_id), &prefix)
            .await?;
        Ok(index_item_ids(items))
    }

    async fn key_owner(&self, project_id: i64, key: &str) -> Result<Option<i64>, ApiError> {
        crate::limits::identifier("key", key)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(project_id)))
            .key("sk", s(key_sk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out.item.and_then(|item| {
            item.get("flag_id")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        }))
    }

    async fn next_flag_id(&self) -> Result<i64, ApiError> {
        self.next_counter(&self.tables.flags, "FLAG_ID").await
    }

    async fn write_flag(&self, write: FlagWrite) -> Result<Flag, WriteError> {
        self.put_flag_write(write, true).await
    }

    async fn write_flag_unbumped(&self, write: FlagWrite) -> Result<Flag, WriteError> {
        self.put_flag_write(write, false).await
    }

    async fn bump_definitions_version(&self, project_id: i64) -> Result<(), ApiError> {
        // A plain atomic ADD: nothing to condition on, so no transaction to lose.
        self.client
            .update_item()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(project_id)))
            .key("sk", s("DEFINITIONS"))
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

impl DynamoStore {
    /// Runs `build` once per project and marker: unless the marker item exists (or this
    /// process saw it), builds, then puts the marker. A marker is never removed.
    pub(super) async fn once_per_project<F, Fut>(
        &self,
        project_id: i64,
        marker_sk: &'static str,
        build: F,
    ) -> Result<(), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), ApiError>>,
    {
        let seen = (self.tables.flags.clone(), project_id, marker_sk);
        let marked = MARKED.get_or_init(Default::default);
        let known = marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&seen);
        if known {
            return Ok(());
        }
        let marker = HashMap::from([
            ("pk".to_string(), s(project_pk(project_id))),
            ("sk".to_string(), s(marker_sk)),
        ]);
        if self
            .get_item(&self.tables.flags, marker.clone())
            .await?
            .is_none()
        {
            build().await?;
            self.client
                .put_item()
                .table_name(&self.tables.flags)
                .set_item(Some(marker))
                .send()
                .await
                .map_err(db_error)?;
        }
        marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(seen);
        Ok(())
    }

    /// The indexes are written in every flag's transaction, but flags stored before they existed
    /// have none: the first index read of such a project reads its flags once and puts their
    /// index items. Racing writers are harmless: they write their own items in their
    /// transactions, and an item put from an older read is at worst stale, which readers
    /// tolerate (they read and check the flags an index names).
    async fn ensure_flag_indexes(&self, project_id: i64) -> Result<(), ApiError> {
        self.once_per_project(project_id, INDEXED_SK, || {
            self.build_flag_indexes(project_id)
        })
        .await
    }

    async fn build_flag_indexes(&self, project_id: i64) -> Result<(), ApiError> {
        let pk = project_pk(project_id);
        let flags = self.project_flags(project_id).await?;
        let items: Vec<(String, i64)> = flags
            .iter()
            .flat_map(|f| index_items(f).into_iter().map(move |sk| (sk, f.id)))
            .collect();
        stream::iter(items)
            .map(|(sk, id)| {
                self.client
                    .put_item()
                    .table_name(&self.tables.flags)
                    .item("pk", s(&pk))
                    .item("sk", s(sk))
                    .item("flag_id", n(id))
                    .send()
            })
            .buffer_unordered(8)
            .map_err(db_error)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// One flag change in one transaction; `bump` adds the definitions-version bump to it.
    async fn put_flag_write(&self, mut write: FlagWrite, bump: bool) -> Result<Flag, WriteError> {
        write.after.revision = write.before.as_ref().map_or(1, |b| b.revision + 1);
        let flag_item = to_flag_item(&write.after)?;
        let size = item_size(&flag_item);
        if size > MAX_FLAG_ITEM_BYTES {
            return Err(too_large(size, MAX_FLAG_ITEM_BYTES).into());
        }
        let mut ops = vec![self.put_flag(flag_item, write.before.as_ref())?];
        let key_put_index = self.key_ops(&write, &mut ops)?;
        for purged in &write.purge {
            ops.push(self.delete_purged(purged)?);
            ops.extend(self.index_ops(Some(purged), None)?);
        }
        ops.extend(self.index_ops(write.before.as_ref(), Some(&write.after))?);
        ops.extend(self.list_op(write.before.as_ref(), &write.after)?);
        if let Some(entry) = write.activity {
            self.activity_ops(entry, &mut ops).await?;
        }
        if let Some(feature) = &write.feature {
            ops.extend(self.feature_ops(feature)?);
        }
        if let Some(dashboard) = &write.dashboard {
            ops.push(self.put_dashboard(dashboard)?);
        }
        let schedule_index = match &write.schedule {
            Some(schedule) => {
                ops.push(self.put_schedule(schedule)?);
                Some(ops.len() - 1)
            }
            None => None,
        };
        if bump {
            ops.push(self.bump_definitions(write.after.project_id)?);
        }
        self.transact_claiming(ops, key_put_index, schedule_index)
            .await?;
        Ok(write.after)
    }
}

impl DynamoStore {
    fn put_flag(&self, item: Item, before: Option<&Flag>) -> Result<TransactWriteItem, ApiError> {
        let put = Put::builder()
            .table_name(&self.tables.flags)
            .set_item(Some(item));
        let put = match before {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(b) => {
                let (condition, read) = unchanged_since(b);
                put.condition_expression(condition)
                    .expression_attribute_values(":read", read)
            }
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(db_error)?)
            .build())
    }

    /// Moves the key-uniqueness item with the flag: only non-deleted flags hold their key.
    /// Returns the index of the op that claims a key, so a failure there reads as "key taken".
    fn key_ops(
        &self,
        write: &FlagWrite,
        ops: &mut Vec<TransactWriteItem>,
    ) -> Result<Option<usize>, ApiError> {
        let after = &write.after;
        let held = write
            .before
            .as_ref()
            .filter(|b| !b.deleted)
            .map(|b| b.key.as_str());
        let wanted = (!after.deleted).then_some(after.key.as_str());
        if held == wanted {
            return Ok(None);
        }
        let pk = project_pk(after.project_id);
        if let Some(old) = held {
            let delete = Delete::builder()
                .table_name(&self.tables.flags)
                .key("pk", s(&pk))
                .key("sk", s(key_sk(old)))
                .condition_expression("flag_id = :id")
                .expression_attribute_values(":id", n(after.id))
                .build()
                .map_err(db_error)?;
            ops.push(TransactWriteItem::builder().delete(delete).build());
        }
        let Some(new) = wanted else {
            return Ok(None);
        };
        let put = Put::builder()
            .table_name(&self.tables.flags)
            .item("pk", s(&pk))
            .item("sk", s(key_sk(new)))
            .item("flag_id", n(after.id))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(db_error)?;
        ops.push(TransactWriteItem::builder().put(put).build());
        Ok(Some(ops.len() - 1))
    }

    /// Keeps the dependency and deleted-key indexes in step with a flag going from `before` to
    /// `after` (`None`: not stored). Unconditional puts and deletes of the flag's own index
    /// items: the flag's conditional put in the same transaction orders its writers.
    fn index_ops(
        &self,
        before: Option<&Flag>,
        after: Option<&Flag>,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let Some(flag) = after.or(before) else {
            return Ok(Vec::new());
        };
        let pk = project_pk(flag.project_id);
        let held = before.map(index_items).unwrap_or_default();
        let wanted = after.map(index_items).unwrap_or_default();
        let mut ops = Vec::new();
        for sk in held.iter().filter(|sk| !wanted.contains(sk)) {
            ops.push(self.delete_index_item(&pk, sk.clone())?);
        }
        for sk in wanted.iter().filter(|sk| !held.contains(sk)) {
            ops.push(self.put_index_item(&pk, sk.clone(), flag.id)?);
        }
        Ok(ops)
    }

    fn put_index_item(&self, pk: &str, sk: String, id: i64) -> Result<TransactWriteItem, ApiError> {
        let put = Put::builder()
            .table_name(&self.tables.flags)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("flag_id", n(id))
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_index_item(&self, pk: &str, sk: String) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.tables.flags)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn delete_purged(&self, flag: &Flag) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.tables.flags)
            .set_key(Some(flag_key(flag.project_id, flag.id)))
            .condition_expression("deleted = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .build()
            .map_err(db_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Appends the entry at the next position of the project's and the item's logs. The
    /// counters are advanced conditionally on the values read, so two writers can never take
    /// the same position; the loser retries.
    async fn activity_ops(
        &self,
        mut entry: ActivityEntry,
        ops: &mut Vec<TransactWriteItem>,
    ) -> Result<(), ApiError> {
        let scope_pk = format!("PROJECT#{}#{}", entry.project_id, entry.scope);
        let counter_pk = format!("COUNTER#{scope_pk}");
        let item_sk = format!("ITEM#{}", entry.item_id);
        let counts = self.counters(&counter_pk, &["ALL", &item_sk]).await?;
        let (all, mine) = (counts[0], counts[1]);
        entry.seq = all + 1;
        entry.item_seq = mine + 1;
        entry.id = activity::positioned_entry_id(entry.created_at, entry.seq);
        let mut item: Item = serde_dynamo::to_item(&entry).map_err(db_error)?;
        item.insert("pk".into(), s(&scope_pk));
        item.insert("sk".into(), s(format!("SEQ#{}", padded(entry.seq))));
        item.insert("item_pk".into(), s(format!("{scope_pk}#{}", entry.item_id)));
        item.insert(
            "item_sk".into(),
            s(format!("SEQ#{}", padded(entry.item_seq))),
        );
        // The revert snapshot repeats the flag a third time (after the diff's before and
        // after); a change that big is still logged, only without a way to revert to it.
        if item_size(&item) > MAX_ITEM_BYTES {
            item.remove("snapshot");
        }
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(too_large(size, MAX_ITEM_BYTES));
        }
        let put = Put::builder()
            .table_name(&self.tables.activity)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(db_error)?;
        ops.push(TransactWriteItem::builder().put(put).build());
        ops.push(self.advance_counter(&counter_pk, "ALL", all)?);
        ops.push(self.advance_counter(&counter_pk, &item_sk, mine)?);
        Ok(())
    }

    async fn counters(&self, pk: &str, sks: &[&str]) -> Result<Vec<i64>, ApiError> {
        let keys = sks
            .iter()
            .map(|sk| HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(*sk))]))
            .collect();
        let found = self.batch_get(&self.tables.activity, keys, 1).await?;
        Ok(sks
            .iter()
            .map(|sk| {
                found
                    .iter()
                    .find(|item| {
                        item.get("sk")
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                            == Some(*sk)
                    })
                    .and_then(|item| item.get("n")?.as_n().ok()?.parse().ok())
                    .unwrap_or(0)
            })
            .collect())
    }

    fn advance_counter(
        &self,
        pk: &str,
        sk: &str,
        read: i64,
    ) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(&self.tables.activity)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET n = :next")
            .expression_attribute_values(":next", n(read + 1));
        let update = if read == 0 {
            update.condition_expression("attribute_not_exists(n)")
        } else {
            update
                .condition_expression("n = :read")
                .expression_attribute_values(":read", n(read))
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(db_error)?)
            .build())
    }

    pub(super) async fn transact(
        &self,
        ops: Vec<TransactWriteItem>,
        key_put: Option<usize>,
    ) -> Result<(), WriteError> {
        self.transact_claiming(ops, key_put, None).await
    }

    /// [`DynamoStore::transact`] where the op at `claim` is a scheduled change's transition:
    /// when its condition fails the change was run or edited by someone else since it was
    /// read, which no retry of this write can fix, so it is an error rather than a retry.
    async fn transact_claiming(
        &self,
        ops: Vec<TransactWriteItem>,
        key_put: Option<usize>,
        claim: Option<usize>,
    ) -> Result<(), WriteError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        if let SdkError::ServiceError(service) = &err {
            match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let reasons = cancel.cancellation_reasons();
                    let failed = |i: usize| {
                        reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                    };
                    if key_put.is_some_and(failed) {
                        return Err(WriteError::KeyTaken);
                    }
                    if claim.is_some_and(failed) {
                        return Err(WriteError::Api(crate::schedule::superseded()));
                    }
                    return Err(WriteError::Retry);
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    return Err(WriteError::Retry);
                }
                _ => {}
            }
        }
        Err(WriteError::Api(db_error(err)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_names_and_nested_values() {
        let item: Item = HashMap::from([
            ("ab".to_string(), s("xyz")),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([("k".to_string(), s("v"))])),
            ),
        ]);
        assert_eq!(item_size(&item), 2 + 3 + 1 + 3 + 1 + 1 + 1);
    }
}
