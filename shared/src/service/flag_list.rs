//! Reading `GET /feature_flags/` (§5.1): the stored list entries are filtered, counted and
//! sorted, and only the flags of the page (and any flag an entry cannot decide alone, see
//! [`list::Verdict::Undecided`]) are read in full.

use std::collections::HashMap;

use crate::error::ApiResult;
use crate::flag::Flag;
use crate::flag::list::{self, ListQuery};
use crate::store::FlagStore;
use crate::time::Timestamp;

/// BatchGetItem bills each flag as a whole read unit (4 KB), a Query only the bytes it reads
/// (a flag is about 1 KB). A read of this many times fewer flags than the project holds is
/// cheaper by id; anything more reads the project.
const FLAGS_PER_READ_UNIT: usize = 4;

/// One page of the list, and how many flags the whole list holds.
pub struct ListPage {
    pub count: usize,
    pub flags: Vec<Flag>,
}

/// The flags at `offset..offset + limit` of the list `query` asks for.
pub async fn list_flags<S: FlagStore>(
    store: &S,
    project_id: i64,
    query: &ListQuery,
    offset: usize,
    limit: usize,
    now: Timestamp,
) -> ApiResult<ListPage> {
    let entries = store.flag_list_entries(project_id).await?;
    let project_size = entries.len();
    let selection = list::select(entries, query);
    let mut read = read_flags(store, project_id, &selection.undecided, project_size).await?;
    let listed = selection.decide(&read, query, now);
    let count = listed.len();
    let page: Vec<i64> = list::page(listed, query, offset, limit)
        .iter()
        .map(|e| e.id)
        .collect();
    let missing: Vec<i64> = page
        .iter()
        .copied()
        .filter(|id| !read.contains_key(id))
        .collect();
    read.extend(read_flags(store, project_id, &missing, project_size).await?);
    // A flag deleted since its entry was read is left out of the page rather than shown.
    let flags = page
        .iter()
        .filter_map(|id| read.remove(id).filter(|f| !f.deleted))
        .collect();
    Ok(ListPage { count, flags })
}

/// The flags with these ids (at least), by id or with the whole project, whichever costs less.
async fn read_flags<S: FlagStore>(
    store: &S,
    project_id: i64,
    ids: &[i64],
    project_size: usize,
) -> ApiResult<HashMap<i64, Flag>> {
    let flags = if ids.is_empty() {
        Vec::new()
    } else if ids.len() * FLAGS_PER_READ_UNIT >= project_size {
        store.project_flags(project_id).await?
    } else {
        store.flags_by_ids(project_id, ids).await?
    };
    Ok(flags.into_iter().map(|f| (f.id, f)).collect())
}
