//! Flag status (§5.6): ACTIVE / STALE / DELETED, computed on read.

use super::Flag;
use crate::time::Timestamp;

pub fn status_name(flag: &Flag, _now: Timestamp) -> &'static str {
    if flag.deleted { "DELETED" } else { "ACTIVE" }
}
