//! Early access features (flag-management-rules.md §11.3–§11.5) and what they do to their flag: every
//! flag change goes through [`FlagService`]'s rules and is written in the same DynamoDB
//! transaction as the feature itself.

use serde_json::{Map, Value, json};

use super::flags::{Changes, FlagService};
use super::{flag_busy, retry_lost_races};
use crate::activity;
use crate::crypto::PayloadCipher;
use crate::early_access::{self as ea, Feature, FeatureInput};
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::identity::UserSummary;
use crate::store::{FeatureStore, FeatureWrite, FlagStore, FlagWrite, WriteError};
use crate::time::Timestamp;

pub struct FeatureService<'a, S> {
    store: &'a S,
    cipher: &'a PayloadCipher,
}

/// A new feature, and the flag made for it when the body linked none.
pub struct Created {
    pub feature: Feature,
    pub new_flag: Option<Flag>,
}

#[derive(Clone, Copy)]
struct Edit<'e> {
    project_id: i64,
    actor: Option<&'e UserSummary>,
    now: Timestamp,
}

impl<'a, S: FlagStore + FeatureStore> FeatureService<'a, S> {
    pub fn new(store: &'a S, cipher: &'a PayloadCipher) -> Self {
        FeatureService { store, cipher }
    }

    fn flags(&self) -> FlagService<'a, S> {
        FlagService::new(self.store, self.cipher)
    }

    /// §11.3: a feature linked to the flag `input` names, or to a new flag made for it.
    pub async fn create(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        input: &FeatureInput,
        now: Timestamp,
    ) -> ApiResult<Created> {
        let mut feature = Feature {
            id: uuid::Uuid::now_v7().to_string(),
            project_id,
            feature_flag_id: None,
            name: String::new(),
            description: String::new(),
            stage: String::new(),
            documentation_url: String::new(),
            payload: json!({}),
            created_by: actor.cloned(),
            created_at: now,
            version: 1,
        };
        feature.apply(input);
        let edit = Edit {
            project_id,
            actor,
            now,
        };
        match input.feature_flag_id {
            Some(flag_id) => self.link_existing(edit, feature, flag_id).await,
            None => self.create_with_new_flag(edit, feature).await,
        }
    }

    /// §11.4: stage changes add or remove the enrollment gate; other fields never touch the
    /// flag. Returns the feature as written.
    pub async fn update(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        before: &Feature,
        input: &FeatureInput,
        now: Timestamp,
    ) -> ApiResult<Feature> {
        let mut after = before.clone();
        after.apply(input);
        after.version = before.version + 1;
        let write = FeatureWrite::Update {
            before: Box::new(before.clone()),
            after: Box::new(after.clone()),
        };
        let edit = Edit {
            project_id,
            actor,
            now,
        };
        match (before.feature_flag_id, input.stage.as_deref()) {
            (Some(flag_id), Some(stage)) if !ea::enrols(&before.stage) && ea::enrols(stage) => {
                self.enrol(edit, flag_id, write).await?
            }
            (Some(flag_id), Some(stage)) if !ea::enrols(stage) => {
                self.remove_enrollment(edit, flag_id, write).await?
            }
            _ => self.write_alone(write).await?,
        }
        Ok(after)
    }

    /// §11.5: drop the gate from the flag (which is kept) and hard-delete the feature.
    pub async fn delete(
        &self,
        project_id: i64,
        actor: Option<&UserSummary>,
        feature: &Feature,
        now: Timestamp,
    ) -> ApiResult<()> {
        let write = FeatureWrite::Delete(feature.clone());
        let edit = Edit {
            project_id,
            actor,
            now,
        };
        match feature.feature_flag_id {
            Some(flag_id) => self.remove_enrollment(edit, flag_id, write).await,
            None => self.write_alone(write).await,
        }
    }

    /// §11.3 with `feature_flag_id`: validate the flag, then add the enrollment gate through
    /// the flag update rules when the stage enrols people. Both paths check the flag again on
    /// every write attempt, so parallel links of one flag give one feature and 400s.
    async fn link_existing(
        &self,
        edit: Edit<'_>,
        mut feature: Feature,
        flag_id: i64,
    ) -> ApiResult<Created> {
        let flag = self.store.get_flag(edit.project_id, flag_id).await?;
        let linked = self.is_linked(edit.project_id, flag_id).await?;
        ea::check_linkable(flag.as_ref(), linked)?;
        feature.feature_flag_id = Some(flag_id);
        let write = FeatureWrite::Create(feature.clone());
        if ea::enrols(&feature.stage) {
            self.enrol(edit, flag_id, write).await?;
        } else {
            self.link_unchanged(edit.project_id, flag_id, write).await?;
        }
        Ok(Created {
            feature,
            new_flag: None,
        })
    }

    /// §11.3 without `feature_flag_id`: a new flag through the flag create rules.
    async fn create_with_new_flag(&self, edit: Edit<'_>, feature: Feature) -> ApiResult<Created> {
        let body = ea::new_flag_body(&feature.name, &feature.stage);
        let flag = self
            .flags()
            .create(edit.project_id, edit.actor, &body, Some(&feature), edit.now)
            .await?;
        Ok(Created {
            feature: Feature {
                feature_flag_id: Some(flag.id),
                ..feature
            },
            new_flag: Some(flag),
        })
    }

    /// Adds the enrollment gate to the flag with exactly PATCH's rules, `write` alongside.
    async fn enrol(&self, edit: Edit<'_>, flag_id: i64, write: FeatureWrite) -> ApiResult<()> {
        let cipher = self.cipher;
        let changes = Changes::patch_from_stored(|current| Ok(enrollment_body(current, cipher)))
            .with_feature(write);
        self.flags()
            .update(edit.project_id, edit.actor, flag_id, changes, edit.now)
            .await
            .map(drop)
    }

    /// PostHog's "direct save" that drops the enrollment gate: no validation and no version
    /// bump, but an activity entry, all in one transaction with `feature`.
    async fn remove_enrollment(
        &self,
        edit: Edit<'_>,
        flag_id: i64,
        feature: FeatureWrite,
    ) -> ApiResult<()> {
        retry_lost_races(flag_busy, || {
            self.try_remove_enrollment(edit, flag_id, &feature)
        })
        .await
    }

    async fn try_remove_enrollment(
        &self,
        edit: Edit<'_>,
        flag_id: i64,
        feature: &FeatureWrite,
    ) -> Result<(), WriteError> {
        let current = self.store.get_flag(edit.project_id, flag_id).await?;
        let Some(current) = current.filter(|f| ea::has_enrollment(&f.filters)) else {
            return self.store.write_feature(feature.clone()).await;
        };
        let mut after = current.clone();
        after.filters = ea::without_enrollment(&current.filters);
        after.updated_at = edit.now;
        let write = FlagWrite {
            activity: activity::flag_entry(Some(&current), &after, edit.actor, edit.now),
            before: Some(current),
            after,
            purge: Vec::new(),
            feature: Some(feature.clone()),
            dashboard: None,
            schedule: None,
        };
        self.store.write_flag(write).await.map(drop)
    }

    /// Links a new feature to its flag without changing the flag (a stage that does not
    /// enrol), re-checking §11.3 on every attempt. The flag row is still rewritten, unchanged,
    /// in the same transaction: that advances its hidden revision, so a concurrent soft delete
    /// or switch to group-based (conditional on the revision it read) retries and then meets
    /// the link (E29/E27), and if that change landed first this write retries and refuses the
    /// link. Without it a feature could end up linked to a deleted or group-based flag.
    /// Version, `updated_at` and the activity log stay as they were: nothing a user sees
    /// changes (only the definitions counter moves, so SDK caches revalidate once).
    async fn link_unchanged(
        &self,
        project_id: i64,
        flag_id: i64,
        feature: FeatureWrite,
    ) -> ApiResult<()> {
        retry_lost_races(flag_busy, || {
            self.try_link_unchanged(project_id, flag_id, &feature)
        })
        .await
    }

    async fn try_link_unchanged(
        &self,
        project_id: i64,
        flag_id: i64,
        feature: &FeatureWrite,
    ) -> Result<(), WriteError> {
        let current = self.store.get_flag(project_id, flag_id).await?;
        let linked = self.is_linked(project_id, flag_id).await?;
        let current = ea::check_linkable(current.as_ref(), linked)?.clone();
        let write = FlagWrite {
            before: Some(current.clone()),
            after: current,
            purge: Vec::new(),
            activity: None,
            feature: Some(feature.clone()),
            dashboard: None,
            schedule: None,
        };
        self.store.write_flag(write).await.map(drop)
    }

    async fn is_linked(&self, project_id: i64, flag_id: i64) -> ApiResult<bool> {
        let features = self.store.project_features(project_id).await?;
        Ok(features.iter().any(|f| f.feature_flag_id == Some(flag_id)))
    }

    /// A change that touches no flag. A concurrent writer got in first: tell the client.
    async fn write_alone(&self, write: FeatureWrite) -> ApiResult<()> {
        match self.store.write_feature(write).await {
            Ok(()) => Ok(()),
            Err(WriteError::Api(e)) => Err(e),
            Err(WriteError::Retry | WriteError::KeyTaken) => Err(ApiError::Conflict(
                "The early access feature was changed by another request at the same time. Please refresh and try again.".into(),
            )),
        }
    }
}

/// The PATCH body that adds the gate to `flag`'s filters. Stored payloads are ciphertext when
/// encrypted; the update path expects what a reader sends, so reveal them first.
fn enrollment_body(flag: &Flag, cipher: &PayloadCipher) -> Map<String, Value> {
    let mut filters = flag.effective_filters();
    if flag.has_encrypted_payloads == Some(true) {
        filters = cipher.reveal(&filters, true);
    }
    let mut body = Map::new();
    body.insert("filters".into(), ea::with_enrollment(&filters, &flag.key));
    body
}
