//! PostHog's bucketing hash (evaluation.md §1.1): the first 15 hex digits of a SHA-1, scaled to
//! `[0, 1]`. Every SDK and the server compute it the same way, so a user lands in the same bucket
//! whoever evaluates the flag; this function must stay bit-identical to theirs.

use sha1::{Digest, Sha1};

/// `0xFFFFFFFFFFFFFFF` as PostHog divides by it. As an f64 it rounds to exactly 2^60, which is
/// what Python's `float(0xFFFFFFFFFFFFFFF)` and JS's `parseInt` produce too.
const LONG_SCALE: f64 = 0x0FFF_FFFF_FFFF_FFFF_u64 as f64;

/// `SHA1(prefix + identifier + salt)`, first 60 bits as an integer, divided by `LONG_SCALE`.
///
/// Rollout: `hash("<key>.", id, "")`; variant: `hash("<key>.", id, "variant")`; holdout:
/// `hash("holdout-", id, "")`. The three parts are fed to the hasher in turn, which equals
/// hashing their concatenation, without building the string.
pub fn hash(prefix: &str, identifier: &str, salt: &str) -> f64 {
    let mut hasher = Sha1::new();
    hasher.update(prefix.as_bytes());
    hasher.update(identifier.as_bytes());
    hasher.update(salt.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 64 bits shifted right by 4 = the first 15 hex digits.
    (u64::from_be_bytes(first) >> 4) as f64 / LONG_SCALE
}

/// The server's `get_hash`: an empty identifier (a group flag without a usable group key) is
/// not hashed at all and yields 0.0.
pub(crate) fn bucket(prefix: &str, identifier: &str, salt: &str) -> f64 {
    if identifier.is_empty() {
        0.0
    } else {
        hash(prefix, identifier, salt)
    }
}
