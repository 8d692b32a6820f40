//! `POST /feature_flags/{id}/enable|disable|archive|unarchive/`, `/roll_out_to_everyone/` and
//! `/set_release_condition_rollout/` (flag-management-rules.md §5.9): the body read and
//! checked as PostHog's request serializers do, the write left to [`FlagService`], the flag
//! answered as GET shows it.

use serde_json::{Map, Value, json};

use super::Context;
use super::flag_view::FlagView;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::flag::{Flag, input};
use crate::http::ApiResponse;
use crate::identity::{Project, UserSummary};
use crate::service::flags::{ConditionRollout, deleted_flag_message};
use crate::service::{Expected, FlagService, Lifecycle, VersionCheck};
use crate::store::{FeatureStore, FlagStore};

pub(super) struct FlagActions<'a, S> {
    pub ctx: &'a Context<'a, S>,
    pub caller: &'a Caller,
    pub project: &'a Project,
}

/// The action segments this module answers (`POST /feature_flags/{id}/<action>/`).
pub(super) fn is_action(segment: &str) -> bool {
    Lifecycle::from_segment(segment).is_some()
        || matches!(
            segment,
            "roll_out_to_everyone" | "set_release_condition_rollout"
        )
}

/// A body read into an action's request: PostHog validates it before finding the flag.
enum Action<'b> {
    State(Lifecycle, Option<Expected>),
    RollOut(Option<&'b str>, Expected),
    ConditionRollout(ConditionRollout, Expected),
}

impl<S: FlagStore + FeatureStore> FlagActions<'_, S> {
    /// `action` is the last path segment (`enable`, …, `set_release_condition_rollout`).
    pub(super) async fn run(
        &self,
        id: &str,
        action: &str,
        body: &Map<String, Value>,
    ) -> ApiResult<ApiResponse> {
        let parsed = parse(action, body)?;
        let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
        let found = self
            .ctx
            .store
            .get_flag(self.project.id, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if found.deleted {
            let hint = match parsed {
                Action::State(lifecycle, _) => lifecycle.gerund(),
                Action::RollOut(..) => "rolling it out",
                Action::ConditionRollout(..) => "changing its rollout",
            };
            return Ok(ApiResponse::json(
                400,
                json!({"success": false, "error": deleted_flag_message(hint)}),
            ));
        }
        let flag = self.write(id, parsed).await?;
        let view = FlagView::new(self.ctx, self.caller, self.project);
        let features = view.features().await?;
        view.shown(&flag, &features).await.map(ApiResponse::ok)
    }

    async fn write(&self, id: i64, action: Action<'_>) -> ApiResult<Flag> {
        let service = FlagService::new(self.ctx.store, self.ctx.cipher);
        let actor = self.caller.user().map(UserSummary::from);
        let (project, actor, now) = (self.project.id, actor.as_ref(), self.ctx.now);
        match action {
            Action::State(lifecycle, expected) => {
                service
                    .set_state(project, actor, id, lifecycle, expected, now)
                    .await
            }
            Action::RollOut(variant, expected) => {
                service
                    .roll_out_to_everyone(project, actor, id, variant, expected, now)
                    .await
            }
            Action::ConditionRollout(rollout, expected) => {
                service
                    .set_release_condition_rollout(project, actor, id, rollout, expected, now)
                    .await
            }
        }
    }
}

fn parse<'b>(action: &str, body: &'b Map<String, Value>) -> ApiResult<Action<'b>> {
    if let Some(lifecycle) = Lifecycle::from_segment(action) {
        // Optional; null is the same as leaving it out.
        let expected = version(body)?.map(|version| Expected {
            version,
            check: VersionCheck::WhenChanging,
        });
        return Ok(Action::State(lifecycle, expected));
    }
    match action {
        "roll_out_to_everyone" => {
            let variant = match body.get("variant_key") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(ApiError::field(
                        "variant_key",
                        "blank",
                        "This field may not be blank.",
                    ));
                }
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err(ApiError::invalid("variant_key", "Not a valid string.")),
            };
            Ok(Action::RollOut(variant, required_version(body)?))
        }
        "set_release_condition_rollout" => {
            let index = required(body, "condition_index")?;
            let index = integer("condition_index", index)?;
            if index < 0 {
                return Err(min_value("condition_index", 0));
            }
            let rollout = number("rollout_percentage", required(body, "rollout_percentage")?)?;
            if rollout < 0.0 {
                return Err(min_value("rollout_percentage", 0));
            }
            if rollout > 100.0 {
                return Err(ApiError::field(
                    "rollout_percentage",
                    "max_value",
                    "Ensure this value is less than or equal to 100.",
                ));
            }
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            let rollout = ConditionRollout {
                index,
                percentage: rollout,
            };
            Ok(Action::ConditionRollout(rollout, required_version(body)?))
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The rollout actions require `version`; null is what a flag written before versioning reads
/// as, and counts as 0.
fn required_version(body: &Map<String, Value>) -> ApiResult<Expected> {
    required(body, "version")?;
    Ok(Expected {
        version: version(body)?.unwrap_or(0),
        check: VersionCheck::Always,
    })
}

fn version(body: &Map<String, Value>) -> ApiResult<Option<i64>> {
    match body.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(raw) => {
            let v = integer("version", raw)?;
            if v < 0 {
                return Err(min_value("version", 0));
            }
            Ok(Some(v))
        }
    }
}

fn required<'b>(body: &'b Map<String, Value>, attr: &str) -> ApiResult<&'b Value> {
    body.get(attr)
        .ok_or_else(|| ApiError::field(attr, "required", "This field is required."))
}

fn null(attr: &str) -> ApiError {
    ApiError::field(attr, "null", "This field may not be null.")
}

fn min_value(attr: &str, min: i64) -> ApiError {
    ApiError::field(
        attr,
        "min_value",
        format!("Ensure this value is greater than or equal to {min}."),
    )
}

/// DRF `IntegerField` (the flag fields' reading), null refused.
fn integer(attr: &str, raw: &Value) -> ApiResult<i64> {
    input::integer(attr, raw)?.ok_or_else(|| null(attr))
}

/// DRF `FloatField`: finite numbers and numeric strings.
fn number(attr: &str, raw: &Value) -> ApiResult<f64> {
    let parsed = match raw {
        Value::Null => return Err(null(attr)),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed
        .filter(|f| f.is_finite())
        .ok_or_else(|| ApiError::invalid(attr, "A valid number is required."))
}
