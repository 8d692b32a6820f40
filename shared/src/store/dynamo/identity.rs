//! Organizations, projects, users and keys.
