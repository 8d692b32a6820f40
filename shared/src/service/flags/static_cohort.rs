//! The static cohort made from a flag's matching persons (flag-management-rules.md §8).

use super::FlagService;
use crate::cohort::{self, Cohort};
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::identity::UserSummary;
use crate::store::{FeatureStore, FlagStore};
use crate::time::Timestamp;
use crate::workers::cohort_fill;

impl<S: FlagStore + FeatureStore> FlagService<'_, S> {
    /// A static cohort of `flag`'s matching persons, filled in the background by
    /// [`cohort_fill`] (its `is_calculating` item is the job). A flag that can't be filled from
    /// (deleted, inactive, group-based) gets an empty cohort with `count: null` and no job.
    pub async fn create_static_cohort(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        flag: &Flag,
        now: Timestamp,
    ) -> ApiResult<Cohort> {
        let cohort_id = self.store.next_cohort_id().await?;
        let mut created = Cohort::new(cohort_id, project_id, actor.cloned(), now);
        created.name = Some(cohort::flag_cohort_name(&flag.key, now));
        created.is_static = true;
        if cohort_fill::fillable(flag) {
            created.is_calculating = true;
            created.fill = Some(cohort::Fill {
                flag_id: flag.id,
                cursor: None,
                matched: 0,
                step: 0,
                updated_at: now,
            });
        }
        self.store
            .write_cohort(&created, true)
            .await?
            .ok_or_else(|| ApiError::internal("a new cohort id was already taken"))
    }
}
