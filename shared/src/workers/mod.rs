//! Background workers: Lambda handlers fed by an event source (a DynamoDB stream), not by HTTP.
//! Each is one function binary's whole `main` (`serve`); the HTTP endpoint groups live in
//! [`crate::api`].
//!
//! * [`cohort_fill`]: the cohorts table's stream → static cohort fill, step by step
//!   (`functions/cohort-jobs`).

pub mod cohort_fill;
