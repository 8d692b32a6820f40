//! Background workers: Lambda handlers fed by an event source (a DynamoDB stream), not by HTTP.
//! Each is one function binary's whole `main` (`serve`); the HTTP endpoint groups live in
//! [`crate::api`].
//!
//! * [`cohort_fill`]: the cohorts table's stream → static cohort fill, step by step
//!   (`functions/cohort-jobs`).
//! * [`scheduled_changes`]: a once-a-minute schedule → due scheduled flag changes applied
//!   (`functions/scheduled-changes`).

pub mod cohort_fill;
pub mod scheduled_changes;
