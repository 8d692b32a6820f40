//! Credentials, scopes and project access (management-api.md §2).

use rand::Rng;
use sha2::{Digest, Sha256};

/// A new random secret with PostHog's prefix (`phx_`, `phc_`, `phs_`): 43 alphanumerics
/// (~256 bits).
pub fn generate_key(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..43)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{body}")
}

/// SHA-256 hex: how personal API keys and project secret keys are stored and looked up.
pub fn hash_key(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}
