//! The flag list's entries (`crate::flag::list::ListEntry`), packed several to an item so a
//! list reads a few hundred small items instead of every flag.
//!
//! * `PROJECT#<p>` / `FLAGLIST#<10-digit chunk>` → `f<id>`: the entry of flag `id`, for every
//!   non-deleted flag whose `id / CHUNK` is the chunk. Written in the flag's own transaction
//!   (set while the flag is not deleted, removed when it is).
//! * `PROJECT#<p>` / `FLAGLIST` → the marker: every flag of the project has its entry.
//!
//! An entry is a short text of its fields (a few dozen bytes, at most about a kilobyte since
//! stored entries are bounded), so a chunk stays well inside DynamoDB's item limit and a write
//! rewrites a few kilobytes at most.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock, PoisonError};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use chrono::DateTime;
use futures::{StreamExt, TryStreamExt, stream};

use super::{DynamoStore, Item, all_items, db_error, project_pk, s};
use crate::error::ApiError;
use crate::flag::Flag;
use crate::flag::list::ListEntry;
use crate::retry::Backoff;
use crate::store::FlagStore;

/// Flags per chunk item. Ids are global, so a project's chunks are as dense as its share of
/// the ids handed out while its flags were created.
const CHUNK: i64 = 32;
const MARKER_SK: &str = "FLAGLIST";
const ENTRY_PREFIX: char = 'f';
/// Tries of one chunk of the first build before giving up on a project being written to.
const BUILD_TRIES: u32 = 5;

fn chunk_sk(id: i64) -> String {
    chunk_sk_of(id.div_euclid(CHUNK))
}

fn chunk_sk_of(chunk: i64) -> String {
    format!("FLAGLIST#{chunk:010}")
}

const LAST_CHUNK: i64 = 9_999_999_999;

/// A big project's entries take more than one Query page (1 MB), read one after the other.
/// So a read notes where its items could be cut into parts of about this size, and the next
/// read of the project by this process Queries those parts at once. The parts always cover
/// every chunk whatever the notes say: they only decide how fast a read is.
const SEGMENT_BYTES: usize = 384 * 1024;
const SEGMENTS_IN_FLIGHT: usize = 4;
/// Per (table, project): the chunk numbers starting each part.
type SegmentStarts = HashMap<(String, i64), Vec<i64>>;
static SEGMENTS: OnceLock<Mutex<SegmentStarts>> = OnceLock::new();

/// The chunk numbers starting each part of about [`SEGMENT_BYTES`] of `items` (in order).
fn segment_starts(items: &[Item]) -> Vec<i64> {
    let mut starts = vec![0];
    let mut bytes = 0;
    for item in items {
        let size = super::flags::item_size(item);
        if bytes > 0 && bytes + size > SEGMENT_BYTES {
            let chunk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix("FLAGLIST#")?.parse().ok());
            if let Some(chunk) = chunk {
                starts.push(chunk);
                bytes = 0;
            }
        }
        bytes += size;
    }
    starts
}

fn entry_attr(id: i64) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

/// Bits of the packed entry.
const ACTIVE: u8 = 1;
const ARCHIVED: u8 = 2;
const MULTIVARIANT: u8 = 4;
const REMOTE: u8 = 8;
const EVALUATION_TAGS: u8 = 16;
const NAME_CUT: u8 = 32;
const TAGS_CUT: u8 = 64;

/// The entry as text: each field followed by `,`; a text is `<byte length>:<text>` (so no
/// character needs escaping), a number is decimal, a missing creator is empty; the tags are
/// their count, then each. Read by plain string slicing: it is decoded for every flag of a
/// project on every list, so it must be cheap even in a debug build.
fn encode(entry: &ListEntry) -> String {
    use std::fmt::Write;
    let bit = |on: bool, bit: u8| if on { bit } else { 0 };
    let bits = bit(entry.active, ACTIVE)
        | bit(entry.archived, ARCHIVED)
        | bit(entry.multivariant, MULTIVARIANT)
        | bit(entry.remote_configuration, REMOTE)
        | bit(entry.has_evaluation_tags, EVALUATION_TAGS)
        | bit(entry.name_cut, NAME_CUT)
        | bit(entry.tags_cut, TAGS_CUT);
    let text = |out: &mut String, t: &str| {
        let _ = write!(out, "{}:{t},", t.len());
    };
    let mut out = String::new();
    text(&mut out, &entry.key);
    text(&mut out, &entry.name);
    let creator = entry
        .created_by
        .map(|id| id.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "{},{},{creator},{bits},",
        entry.created_at.timestamp_micros(),
        entry.updated_at.timestamp_micros(),
    );
    text(&mut out, &entry.evaluation_runtime);
    let _ = write!(out, "{},", entry.tags.len());
    for tag in &entry.tags {
        text(&mut out, tag);
    }
    out
}

/// Reads the fields of [`encode`]'s text in order.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn text(&mut self) -> Option<&'a str> {
        let (len, rest) = self.rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let text = rest.get(..len)?;
        self.rest = rest.get(len..)?.strip_prefix(',')?;
        Some(text)
    }

    fn raw(&mut self) -> Option<&'a str> {
        let (field, rest) = self.rest.split_once(',')?;
        self.rest = rest;
        Some(field)
    }

    fn number<T: std::str::FromStr>(&mut self) -> Option<T> {
        self.raw()?.parse().ok()
    }

    fn time(&mut self) -> Option<crate::time::Timestamp> {
        DateTime::from_timestamp_micros(self.number()?)
    }
}

fn decode(id: i64, text: &str) -> Result<ListEntry, ApiError> {
    decode_fields(id, Fields { rest: text })
        .ok_or_else(|| db_error(format!("flag {id}: unreadable list entry {text:?}")))
}

fn decode_fields(id: i64, mut f: Fields) -> Option<ListEntry> {
    let key = f.text()?.to_string();
    let name = f.text()?.to_string();
    let created_at = f.time()?;
    let updated_at = f.time()?;
    let created_by = match f.raw()? {
        "" => None,
        creator => Some(creator.parse().ok()?),
    };
    let bits: u8 = f.number()?;
    let evaluation_runtime = f.text()?.to_string();
    let count: usize = f.number()?;
    let tags = (0..count)
        .map(|_| f.text().map(String::from))
        .collect::<Option<Vec<_>>>()?;
    Some(ListEntry {
        id,
        key,
        name,
        name_cut: bits & NAME_CUT != 0,
        created_at,
        updated_at,
        created_by,
        active: bits & ACTIVE != 0,
        archived: bits & ARCHIVED != 0,
        multivariant: bits & MULTIVARIANT != 0,
        remote_configuration: bits & REMOTE != 0,
        evaluation_runtime,
        tags,
        tags_cut: bits & TAGS_CUT != 0,
        has_evaluation_tags: bits & EVALUATION_TAGS != 0,
    })
}

fn entries_of(item: &Item) -> Result<Vec<ListEntry>, ApiError> {
    item.iter()
        .filter_map(|(name, value)| {
            let id = name.strip_prefix(ENTRY_PREFIX)?.parse().ok()?;
            Some((id, value.as_s().ok()?))
        })
        .map(|(id, text)| decode(id, text))
        .collect()
}

/// The flag's listing as stored: `None` while deleted (lists never show deleted flags).
fn stored_entry(flag: &Flag) -> Result<Option<String>, ApiError> {
    if flag.deleted {
        return Ok(None);
    }
    Ok(Some(encode(&ListEntry::of(flag).stored())))
}

impl DynamoStore {
    /// Every non-deleted flag's list entry, in no particular order.
    pub(super) async fn list_entries(&self, project_id: i64) -> Result<Vec<ListEntry>, ApiError> {
        self.once_per_project(project_id, MARKER_SK, || self.build_list(project_id))
            .await?;
        let project = (self.tables.flags.clone(), project_id);
        let starts = SEGMENTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&project)
            .cloned()
            .unwrap_or_else(|| vec![0]);
        let segments: Vec<(i64, i64)> = starts
            .iter()
            .zip(
                starts
                    .iter()
                    .skip(1)
                    .map(|next| next - 1)
                    .chain([LAST_CHUNK]),
            )
            .map(|(&from, to)| (from, to))
            .collect();
        let items: Vec<Item> = stream::iter(segments)
            .map(|(from, to)| self.query_chunks(project_id, from, to))
            .buffered(SEGMENTS_IN_FLIGHT)
            .try_collect::<Vec<Vec<Item>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        SEGMENTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(project, segment_starts(&items));
        let mut entries = Vec::new();
        for item in &items {
            entries.extend(entries_of(item)?);
        }
        Ok(entries)
    }

    /// The chunk items `from..=to`, in order.
    async fn query_chunks(
        &self,
        project_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<Item>, ApiError> {
        all_items(
            self.client
                .query()
                .table_name(&self.tables.flags)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(project_pk(project_id)))
                .expression_attribute_values(":from", s(chunk_sk_of(from)))
                .expression_attribute_values(":to", s(chunk_sk_of(to)))
                .consistent_read(true),
        )
        .await
    }

    /// The op keeping the flag's entry in step with its write, if the entry changes. Not
    /// conditional: the flag's conditional put in the same transaction orders its writers.
    pub(super) fn list_op(
        &self,
        before: Option<&Flag>,
        after: &Flag,
    ) -> Result<Option<TransactWriteItem>, ApiError> {
        let old = before.map(stored_entry).transpose()?.flatten();
        let new = stored_entry(after)?;
        if old == new {
            return Ok(None);
        }
        let update = Update::builder()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(after.project_id)))
            .key("sk", s(chunk_sk(after.id)))
            .expression_attribute_names("#e", entry_attr(after.id));
        let update = match new {
            Some(text) => update
                .update_expression("SET #e = :entry")
                .expression_attribute_values(":entry", s(text)),
            None => update.update_expression("REMOVE #e"),
        };
        Ok(Some(
            TransactWriteItem::builder()
                .update(update.build().map_err(db_error)?)
                .build(),
        ))
    }

    /// Entries for a project whose flags were stored before entries existed: each chunk's
    /// entries are set in one transaction that also checks each flag is still at the revision
    /// read, so an entry is never older than its flag; a chunk whose flags moved is read again.
    async fn build_list(&self, project_id: i64) -> Result<(), ApiError> {
        let mut chunks: BTreeMap<String, Vec<Flag>> = BTreeMap::new();
        for flag in self.project_flags(project_id).await? {
            if !flag.deleted {
                chunks.entry(chunk_sk(flag.id)).or_default().push(flag);
            }
        }
        stream::iter(chunks.into_values())
            .map(|flags| self.build_chunk(project_id, flags))
            .buffer_unordered(4)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    async fn build_chunk(&self, project_id: i64, mut flags: Vec<Flag>) -> Result<(), ApiError> {
        for attempt in 0..BUILD_TRIES {
            if attempt > 0 {
                Backoff::BATCH.pause(attempt - 1).await;
                let ids: Vec<i64> = flags.iter().map(|f| f.id).collect();
                flags = self.flags_by_ids(project_id, &ids).await?;
                flags.retain(|f| !f.deleted);
            }
            if flags.is_empty() || self.put_chunk(&flags).await? {
                return Ok(());
            }
        }
        Err(ApiError::Internal(format!(
            "project {project_id}: flags kept changing while their list entries were built"
        )))
    }

    /// `false` when a flag changed since it was read.
    async fn put_chunk(&self, flags: &[Flag]) -> Result<bool, ApiError> {
        let first = &flags[0];
        let mut sets = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut ops = Vec::new();
        for (i, flag) in flags.iter().enumerate() {
            let Some(text) = stored_entry(flag)? else {
                continue;
            };
            sets.push(format!("#e{i} = :e{i}"));
            names.insert(format!("#e{i}"), entry_attr(flag.id));
            values.insert(format!(":e{i}"), s(text));
            let (condition, read) = super::flags::unchanged_since(flag);
            let check = ConditionCheck::builder()
                .table_name(&self.tables.flags)
                .set_key(Some(super::flags::flag_key(flag.project_id, flag.id)))
                .condition_expression(condition)
                .expression_attribute_values(":read", read)
                .build()
                .map_err(db_error)?;
            ops.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let update = Update::builder()
            .table_name(&self.tables.flags)
            .key("pk", s(project_pk(first.project_id)))
            .key("sk", s(chunk_sk(first.id)))
            .update_expression(format!("SET {}", sets.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(db_error)?;
        ops.push(TransactWriteItem::builder().update(update).build());
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_))
                | Some(TransactWriteItemsError::TransactionInProgressException(_)) => Ok(false),
                _ => Err(db_error(err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserSummary;

    fn flag() -> Flag {
        let user = UserSummary {
            id: 7,
            uuid: "u".into(),
            distinct_id: "d".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: "a@b.c".into(),
        };
        let now = crate::time::parse("2026-01-02T03:04:05.123456Z").unwrap();
        let mut flag = Flag::new(41, 1, "checkout".into(), user, now);
        flag.name = "Checkout \"v2\" é".into();
        flag.tags = vec!["web".into(), "beta".into()];
        flag.evaluation_tags = vec!["web".into()];
        flag.archived = true;
        flag
    }

    #[test]
    fn entries_round_trip_through_their_text() {
        let entry = ListEntry::of(&flag());
        let text = encode(&entry);
        assert_eq!(decode(41, &text).unwrap(), entry);
        let mut cut = flag();
        cut.name = "é".repeat(300);
        cut.tags = (0..100).map(|i| format!("tag-{i}")).collect();
        let stored = ListEntry::of(&cut).stored();
        assert!(stored.name_cut && stored.tags_cut);
        assert_eq!(decode(41, &encode(&stored)).unwrap(), stored);
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let text = encode(&ListEntry::of(&flag()));
        for cut in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            assert!(decode(41, &text[..cut]).is_err(), "{cut}");
        }
        assert!(decode(41, "7:checkou,").is_err());
        assert!(decode(41, "99:short,").is_err());
        assert!(decode(41, "x:y,").is_err());
    }

    #[test]
    fn deleted_flags_have_no_entry_and_chunks_group_neighbouring_ids() {
        let mut gone = flag();
        gone.deleted = true;
        assert_eq!(stored_entry(&gone).unwrap(), None);
        assert_eq!(chunk_sk(0), chunk_sk(31));
        assert_ne!(chunk_sk(31), chunk_sk(32));
        assert_eq!(chunk_sk(64), "FLAGLIST#0000000002");
    }

    #[test]
    fn only_entry_attributes_are_read_from_a_chunk() {
        let entry = ListEntry::of(&flag());
        let item: Item = HashMap::from([
            ("pk".to_string(), s("PROJECT#1")),
            ("sk".to_string(), s(chunk_sk(41))),
            (entry_attr(41), s(encode(&entry))),
        ]);
        assert_eq!(entries_of(&item).unwrap(), vec![entry]);
    }
}
