//! Request parsing and responses.
