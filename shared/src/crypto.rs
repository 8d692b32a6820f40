//! Encrypted payloads (§5.7).
