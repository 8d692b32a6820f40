//! Handler and store tests of the SDK endpoints (the `flags` function), in-process against
//! DynamoDB Local (`DYNAMODB_ENDPOINT`), each on fresh tables. Requests go through one
//! long-lived cache, as a warm Lambda instance serves them.
//!
//! Coverage map (evaluation-rules.md): §3 `/flags`, `/decide` → `remote`; §4 definitions →
//! `definitions`; §5 capture → `capture`; the DynamoDB adapter → `store`; what posthog-js
//! in a browser sends (remote config, base64 forms, gzip `text/plain`) → `posthog_js`.

#[path = "../common/mod.rs"]
mod common;

mod capture;
mod definitions;
mod posthog_js;
mod remote;
mod store;
mod support;
