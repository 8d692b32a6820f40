//! Endpoint handlers.
