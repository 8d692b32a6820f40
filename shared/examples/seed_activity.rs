//! Gives one existing flag many activity entries quickly, for `scripts/bench-activity.py`:
//! each entry is a real flag update (rename + version bump) written through the store's own
//! transaction (`FlagStore::write_flag`: flag, activity entry, counters), skipping only the
//! HTTP and authentication work around it.
//!
//!     cargo run -q -p shared --example seed_activity -- <project id> <flag id> <entries>
//!
//! Tables and endpoint come from the environment like the functions' (`FLAGS_TABLE`,
//! `ACTIVITY_TABLE`, `AWS_ENDPOINT_URL_DYNAMODB`, …). Prints `{"written", "seconds"}`.

use std::time::{Duration, Instant};

use shared::activity;
use shared::error::ApiError;
use shared::store::dynamo::DynamoStore;
use shared::store::{FlagStore, FlagWrite, WriteError};

#[derive(Debug, thiserror::Error)]
enum SeedError {
    #[error("usage: seed_activity <project id> <flag id> <entries>")]
    Usage,
    #[error("flag {1} not found in project {0}")]
    NoFlag(i64, i64),
    #[error("store: {0:?}")]
    Store(ApiError),
    #[error("flag {0} keeps changing under us; is something else writing it?")]
    Contended(i64),
}

impl From<ApiError> for SeedError {
    fn from(e: ApiError) -> Self {
        SeedError::Store(e)
    }
}

fn args() -> Result<(i64, i64, u32), SeedError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [project, flag, entries] = args.as_slice() else {
        return Err(SeedError::Usage);
    };
    let number = |s: &str| s.parse().map_err(|_| SeedError::Usage);
    Ok((
        number(project)?,
        number(flag)?,
        entries.parse().map_err(|_| SeedError::Usage)?,
    ))
}

/// One rename of the flag, logged like an API update. Retries when the stored version moved.
async fn rename(store: &DynamoStore, project: i64, id: i64, n: u32) -> Result<(), SeedError> {
    for _ in 0..20 {
        let before = store
            .get_flag(project, id)
            .await?
            .ok_or(SeedError::NoFlag(project, id))?;
        let now = chrono::Utc::now();
        let mut after = before.clone();
        after.name = format!("bench {n}");
        after.version += 1;
        after.updated_at = now;
        let user = before.last_modified_by.clone();
        let write = FlagWrite {
            activity: activity::flag_entry(Some(&before), &after, user.as_ref(), now),
            before: Some(before),
            after,
            purge: Vec::new(),
            feature: None,
            dashboard: None,
            schedule: None,
        };
        match store.write_flag(write).await {
            Ok(_) => return Ok(()),
            Err(WriteError::Retry) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(WriteError::KeyTaken) => return Err(SeedError::Contended(id)),
            Err(WriteError::Api(e)) => return Err(e.into()),
        }
    }
    Err(SeedError::Contended(id))
}

#[tokio::main]
async fn main() -> Result<(), SeedError> {
    let (project, flag, entries) = args()?;
    let store = DynamoStore::from_env().await;
    let started = Instant::now();
    for n in 0..entries {
        rename(&store, project, flag, n).await?;
    }
    println!(
        "{}",
        serde_json::json!({"written": entries, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}
