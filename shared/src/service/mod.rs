//! The rules for changing flags, early access links and cohorts, whoever asks: HTTP handlers,
//! and any future caller (a scheduled change, a CLI) that must obey exactly the same rules.
//! Services read and write through the narrow store traits and answer [`ApiError`]s; turning
//! those into responses stays with the handlers.

pub mod cohorts;
pub mod early_access;
pub mod flag_list;
pub mod flags;
pub mod persons;
pub mod projects;
pub mod schedules;
pub mod users;

use std::future::Future;

use crate::error::{ApiError, ApiResult};
use crate::flag::input;
use crate::retry::Backoff;
use crate::store::WriteError;

pub use cohorts::CohortService;
pub use early_access::FeatureService;
pub use flags::{Changes, Expected, FlagService, Lifecycle, VersionCheck};
pub use persons::PersonService;
pub use projects::ProjectService;
pub use schedules::ScheduleService;

/// Optimistic writes retry when another writer got in first; past this many tries the
/// request answers 409 rather than spin.
pub const MAX_WRITE_ATTEMPTS: u32 = 40;

/// Runs `attempt` (read, decide, conditional write) again after every lost race, so each try
/// decides on fresh data; `busy` is the 409 once [`MAX_WRITE_ATTEMPTS`] were lost.
pub(crate) async fn retry_lost_races<T, F, Fut>(
    busy: fn() -> ApiError,
    mut attempt: F,
) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WriteError>>,
{
    for n in 0..MAX_WRITE_ATTEMPTS {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(WriteError::Retry) => Backoff::WRITE_RACE.pause(n).await,
            Err(WriteError::KeyTaken) => return Err(input::key_taken()),
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Err(busy())
}

/// A flag write that kept losing races.
fn flag_busy() -> ApiError {
    ApiError::Conflict(
        "The feature flag is being changed by many requests at once. Please retry.".into(),
    )
}
