//! The model crate shared by every Lambda function: domain rules, authentication, the
//! DynamoDB store and HTTP plumbing. Functions stay thin and call into this crate.

pub mod activity;
pub mod api;
pub mod auth;
pub mod capture;
pub mod cohort;
pub mod crypto;
pub mod dashboard;
pub mod definitions;
pub mod early_access;
pub mod error;
pub mod evaluation;
pub mod flag;
pub mod http;
pub mod identity;
pub mod json_text;
pub mod limits;
pub mod person;
pub mod python;
pub mod rate_limit;
pub mod request_log;
pub mod retry;
pub mod schedule;
pub mod service;
pub mod store;
pub mod time;
pub mod usage;
pub mod workers;

pub use error::{ApiError, ApiResult};
