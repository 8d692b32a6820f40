//! PostHog's bucketing hash (evaluation-rules.md §1.1): the first 15 hex digits of a SHA-1, scaled to
//! `[0, 1]`. Every SDK and the server compute it the same way, so a user lands in the same bucket
//! whoever evaluates the flag; this function must stay bit-identical to theirs.

use sha1::{Digest, Sha1};

/// `0xFFFFFFFFFFFFFFF` as PostHog divides by it. As an f64 it rounds to exactly 2^60, which is
/// what Python's `float(0xFFFFFFFFFFFFFFF)` and JS's `parseInt` produce too.
const LONG_SCALE: f64 = 0x0FFF_FFFF_FFFF_FFFF_u64 as f64;

/// `SHA1(prefix + identifier + salt)`, first 60 bits as an integer, divided by `LONG_SCALE`.
///
/// Rollout: `hash("<key>.", id, "")`; variant: `hash("<key>.", id, "variant")`; holdout:
/// `hash("holdout-", id, "")`. The three parts are hashed as one string without building it.
pub fn hash(prefix: &str, identifier: &str, salt: &str) -> f64 {
    let parts = [prefix.as_bytes(), identifier.as_bytes(), salt.as_bytes()];
    let first_60_bits = single_block(&parts).unwrap_or_else(|| streamed(&parts));
    first_60_bits as f64 / LONG_SCALE
}

/// Almost every hashed string (key, id, salt) fits one 64-byte SHA-1 block with its padding:
/// compress that block directly instead of going through the streaming hasher, which is most
/// of the cost for such short inputs.
fn single_block(parts: &[&[u8]; 3]) -> Option<u64> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // Room for the 0x80 marker and the 8-byte length.
    if len > 55 {
        return None;
    }
    let mut block = [0_u8; 64];
    let mut at = 0;
    for part in parts {
        block[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    block[len] = 0x80;
    block[56..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    let mut state = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let block = sha1::digest::generic_array::GenericArray::from_slice(&block);
    sha1::compress(&mut state, std::slice::from_ref(block));
    // The digest starts with state[0] and state[1], big-endian: its first 8 bytes.
    Some(((u64::from(state[0]) << 32) | u64::from(state[1])) >> 4)
}

fn streamed(parts: &[&[u8]; 3]) -> u64 {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 64 bits shifted right by 4 = the first 15 hex digits.
    u64::from_be_bytes(first) >> 4
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
