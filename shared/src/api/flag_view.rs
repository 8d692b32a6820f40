//! How a flag is shown (PostHog's representation) by every endpoint that answers with one:
//! `feature_flags`, and `activity`'s revert, which answers as PATCH does.

use std::collections::HashMap;

use serde_json::Value;

use super::Context;
use crate::auth::Caller;
use crate::cohort;
use crate::early_access::Feature;
use crate::error::ApiResult;
use crate::flag::{self, Flag};
use crate::identity::Project;
use crate::store::{FeatureStore, FlagStore};

pub(super) struct FlagView<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    project: &'a Project,
}

impl<'a, S: FlagStore + FeatureStore> FlagView<'a, S> {
    pub(super) fn new(ctx: &'a Context<'a, S>, caller: &'a Caller, project: &'a Project) -> Self {
        FlagView {
            ctx,
            caller,
            project,
        }
    }

    /// The project's early access features, whose links every representation lists.
    pub(super) async fn features(&self) -> ApiResult<Vec<Feature>> {
        self.ctx.store.project_features(self.project.id).await
    }

    /// The PostHog representation, payloads decrypted only for personal API keys.
    pub(super) fn show(&self, flag: &Flag, features: &[Feature]) -> Value {
        let linked = linked_summaries(features, flag);
        flag::representation(flag, self.visible_filters(flag), &linked, self.ctx.now)
    }

    /// [`Self::show`] with `cohort_name` on cohort properties.
    pub(super) async fn shown(&self, flag: &Flag, features: &[Feature]) -> ApiResult<Value> {
        let names = self.cohort_names(std::iter::once(flag)).await?;
        Ok(with_cohort_names(self.show(flag, features), &names))
    }

    /// Name of every cohort the flags' conditions name (`None` for a missing or deleted one);
    /// no read when none does.
    pub(super) async fn cohort_names<'f>(
        &self,
        flags: impl Iterator<Item = &'f Flag>,
    ) -> ApiResult<HashMap<i64, Option<String>>> {
        let wanted: Vec<i64> = flags
            .flat_map(|f| cohort::flag_cohort_ids(&f.filters))
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let cohorts = self.ctx.store.project_cohorts(self.project.id).await?;
        Ok(cohorts
            .into_iter()
            .filter(|c| !c.deleted)
            .map(|c| (c.id, c.name))
            .collect())
    }

    fn visible_filters(&self, flag: &Flag) -> Value {
        let filters = flag.effective_filters();
        if flag.has_encrypted_payloads == Some(true) {
            self.ctx
                .cipher
                .reveal(&filters, self.caller.sees_decrypted_payloads())
        } else {
            filters
        }
    }
}

/// `value` (a flag's representation) with `cohort_name` on its cohort properties.
pub(super) fn with_cohort_names(mut value: Value, names: &HashMap<i64, Option<String>>) -> Value {
    if let Some(filters) = value.get_mut("filters") {
        cohort::add_cohort_names(filters, names);
    }
    value
}

/// Early access features linked to `flag`, in PostHog's short form.
fn linked_summaries(features: &[Feature], flag: &Flag) -> Vec<Value> {
    features
        .iter()
        .filter(|f| f.feature_flag_id == Some(flag.id))
        .map(|f| f.summary(&flag.key))
        .collect()
}
