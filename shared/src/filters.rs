//! Validation of a flag's `filters` object (management-api.md §4.1, §4.2).
