//! Handler and store tests for `/api/projects/{project_id}/feature_flags/…`, in-process
//! against DynamoDB Local (`DYNAMODB_ENDPOINT`). Every test builds its own `World` on fresh
//! tables, so tests run in parallel without sharing data.
//!
//! Coverage map (flag-management-rules.md): §2 auth → `auth`; §5.1 list → `list`; §3.1 defaults,
//! §5.2 create, key rules E1–E5 → `create`; §4 filters E6–E28 → `filters`; §5.3–§5.5
//! retrieve/update/delete, E31–E35 → `update`, `lifecycle`; §5.7 → `encrypted`; §5.6, §7 →
//! `status`; the DynamoDB adapter → `store`; limits → `limits`; parallel writers →
//! `concurrency`; §6.3 entries → `activity`; `archived` and `?key=` (newer PostHog) →
//! `archived`.

#[path = "../common/mod.rs"]
mod common;

mod activity;
mod archived;
mod auth;
mod bulk;
mod concurrency;
mod copy_flags;
mod create;
mod encrypted;
mod filters;
mod flag_actions;
mod flag_evaluation;
mod lifecycle;
mod limits;
mod list;
mod status;
mod store;
mod support;
mod update;
