//! `POST /api/organizations/{organization_id}/feature_flags/copy_flags/` and
//! `…/copy_flags/dependency_requirements/` (issue 13), after PostHog's
//! `organization_feature_flag.py`: a flag of one project copied into other projects of the same
//! organization, with the flags it depends on when asked. Each copy is an ordinary create (or an
//! update of the target's live flag with the same key) through [`FlagService`], one batch per
//! request, so every target project's definitions version moves once.
//!
//! Differences (docs/differences-from-posthog.md): no per-object access control (a member
//! whose key may write flags may copy), `copy_schedule` is accepted and ignored (the source
//! flag's scheduled changes are not copied), and a target's work is not one database transaction: a dependency copied
//! before a later failure of the same target stays.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::Context;
use super::flag_view::FlagView;
use crate::auth::{self, Accepts, Caller};
use crate::cohort::{self, Cohort};
use crate::error::{ApiError, ApiResult};
use crate::flag::Flag;
use crate::flag::filters::Filters;
use crate::http::{ApiRequest, ApiResponse};
use crate::identity::{Organization, Project, UserSummary};
use crate::python;
use crate::service::cohorts::CohortService;
use crate::service::{Changes, FlagService};
use crate::store::{FeatureStore, FlagStore, IdentityStore, PersonStore};

/// PostHog's `max_length` of `target_project_ids`.
pub const MAX_TARGET_PROJECTS: usize = 50;
/// PostHog's `MAX_COPY_DEPENDENCY_FLAGS`.
pub const MAX_COPY_DEPENDENCY_FLAGS: usize = 50;

const SCOPE: &str = "feature_flag:write";
const PROJECT_NOT_FOUND: &str = "Project not found.";

/// `(organization segment, segments after feature_flags/)` of an organization flags path.
pub(super) fn org_route<'p>(segments: &[&'p str]) -> Option<(&'p str, Vec<&'p str>)> {
    let start = segments.iter().position(|s| *s == "api")?;
    match &segments[start..] {
        ["api", "organizations", org, "feature_flags", rest @ ..] => Some((org, rest.to_vec())),
        _ => None,
    }
}

/// Authentication, PostHog's scope, the organization check ([`Caller::organization`]), then the
/// two actions (POST only).
pub(super) async fn handle<S: FlagStore + IdentityStore + FeatureStore + PersonStore>(
    ctx: &Context<'_, S>,
    req: &ApiRequest,
    org_segment: &str,
    rest: &[&str],
) -> ApiResult<ApiResponse> {
    let requirements = match rest {
        ["copy_flags"] => false,
        ["copy_flags", "dependency_requirements"] => true,
        _ => return Err(ApiError::not_found()),
    };
    let body = req.body_object();
    let caller =
        auth::authenticate(req, body.as_ref().ok(), ctx.store, Accepts::PersonalKeys).await?;
    caller.require_scope(SCOPE)?;
    let organization = caller.organization(org_segment, ctx.store).await?;
    if req.method != "POST" {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    let request = CopyRequest::parse(&body?, requirements)?;
    let copier = Copier {
        ctx,
        caller: &caller,
        organization: &organization,
    };
    if requirements {
        copier.dependency_requirements(&request).await
    } else {
        copier.copy_flags(&request).await
    }
}

fn error(status: u16, message: impl Into<String>) -> ApiResponse {
    ApiResponse::json(status, json!({"error": message.into()}))
}

/// A validated body (PostHog's `CopyFlagsRequestSerializer`).
struct CopyRequest {
    key: String,
    from_project: i64,
    targets: Vec<i64>,
    disable_copied_flag: bool,
    copy_dependencies: bool,
}

impl CopyRequest {
    fn parse(body: &Map<String, Value>, requirements: bool) -> ApiResult<Self> {
        let key = match body.get("feature_flag_key") {
            None => return Err(required("feature_flag_key")),
            Some(Value::Null) => return Err(null("feature_flag_key")),
            Some(Value::String(s)) => python::strip(s).to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(ApiError::field(
                    "feature_flag_key",
                    "invalid",
                    "Not a valid string.",
                ));
            }
        };
        if key.is_empty() {
            return Err(ApiError::field(
                "feature_flag_key",
                "blank",
                "This field may not be blank.",
            ));
        }
        crate::limits::identifier("feature_flag_key", &key)?;
        let from_project = match body.get("from_project") {
            None => return Err(required("from_project")),
            Some(Value::Null) => return Err(null("from_project")),
            Some(v) => integer(v).ok_or_else(|| not_integer("from_project"))?,
        };
        let targets = match body.get("target_project_ids") {
            None => return Err(required("target_project_ids")),
            Some(Value::Null) => return Err(null("target_project_ids")),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ApiError::field(
                    "target_project_ids",
                    "not_a_list",
                    format!(
                        "Expected a list of items but got type \"{}\".",
                        python::type_name(other)
                    ),
                ));
            }
        };
        if targets.is_empty() {
            return Err(ApiError::field(
                "target_project_ids",
                "min_length",
                "Ensure this field has at least 1 elements.",
            ));
        }
        if targets.len() > MAX_TARGET_PROJECTS {
            return Err(ApiError::field(
                "target_project_ids",
                "max_length",
                format!("Ensure this field has no more than {MAX_TARGET_PROJECTS} elements."),
            ));
        }
        let targets = targets
            .iter()
            .enumerate()
            .map(|(i, v)| {
                integer(v).ok_or_else(|| not_integer(&format!("target_project_ids__{i}")))
            })
            .collect::<ApiResult<Vec<i64>>>()?;
        let flag = |name: &str| -> ApiResult<bool> {
            if requirements {
                return Ok(false);
            }
            match body.get(name) {
                None => Ok(false),
                Some(v) => boolean(v)
                    .ok_or_else(|| ApiError::field(name, "invalid", "Must be a valid boolean.")),
            }
        };
        // `copy_schedule` is validated like the others, then ignored: schedules are not copied.
        flag("copy_schedule")?;
        Ok(CopyRequest {
            key,
            from_project,
            targets,
            disable_copied_flag: flag("disable_copied_flag")?,
            copy_dependencies: flag("copy_dependencies")?,
        })
    }
}

fn required(attr: &str) -> ApiError {
    ApiError::field(attr, "required", "This field is required.")
}

fn null(attr: &str) -> ApiError {
    ApiError::field(attr, "null", "This field may not be null.")
}

fn not_integer(attr: &str) -> ApiError {
    ApiError::field(attr, "invalid", "A valid integer is required.")
}

/// DRF's `IntegerField`: integral numbers and integer strings.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => python::strip(s).parse().ok(),
        _ => None,
    }
}

/// DRF's `BooleanField` spellings.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "TRUE" | "t" | "T" | "on" | "On" | "ON" | "y" | "Y" | "yes"
            | "Yes" | "YES" | "1" => Some(true),
            "false" | "False" | "FALSE" | "f" | "F" | "off" | "Off" | "OFF" | "n" | "N" | "no"
            | "No" | "NO" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A flag-dependency reference as written (`key` of a `type: flag` property), normalized as
/// PostHog does: trimmed text, or a non-negative integer's digits.
fn reference(key: Option<&Value>) -> Option<String> {
    match key? {
        Value::String(s) => Some(python::strip(s).to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

/// The distinct dependency references of a flag's condition sets, in order.
fn references(filters: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for prop in Filters::of(filters).flag_dependencies() {
        if let Some(r) = reference(prop.get("key"))
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out
}

/// The live flag of the source project a reference names: by id when it is digits naming
/// one, else by key.
fn resolve<'f>(reference: &str, live: &[&'f Flag]) -> Option<&'f Flag> {
    let by_id = reference
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| reference.parse::<i64>().ok())
        .flatten()
        .and_then(|id| live.iter().find(|f| f.id == id));
    by_id
        .or_else(|| live.iter().find(|f| f.key == reference))
        .copied()
}

/// The source flag's transitive flag dependencies: dependencies before their dependents.
struct Graph {
    /// Ids, each after the flags it depends on.
    order: Vec<i64>,
    /// The source flag's direct dependencies, in `order`.
    roots: Vec<i64>,
    /// Flag id → the ids it depends on directly.
    edges: HashMap<i64, Vec<i64>>,
}

fn dependency_graph(source: &Flag, live: &[&Flag]) -> Result<Graph, String> {
    struct Walk<'w, 'f> {
        live: &'w [&'f Flag],
        source_id: i64,
        visiting: HashSet<i64>,
        visited: HashSet<i64>,
        discovered: HashSet<i64>,
        order: Vec<i64>,
        edges: HashMap<i64, Vec<i64>>,
    }
    impl Walk<'_, '_> {
        fn visit(&mut self, flag: &Flag) -> Result<(), String> {
            if self.visiting.contains(&flag.id) {
                return Err("A circular flag dependency was detected, so dependencies can't be copied automatically. Copy the flag without dependencies or remove the cycle first.".into());
            }
            if self.visited.contains(&flag.id) {
                return Ok(());
            }
            self.visiting.insert(flag.id);
            let mut direct = Vec::new();
            for r in references(&flag.filters) {
                let dependency = resolve(&r, self.live).ok_or_else(|| {
                    format!("Removed a flag dependency (source flag reference {r}) because the dependency flag could not be resolved in the source project.")
                })?;
                if dependency.id != self.source_id && !direct.contains(&dependency.id) {
                    direct.push(dependency.id);
                }
                if dependency.id != self.source_id
                    && !self.visited.contains(&dependency.id)
                    && !self.visiting.contains(&dependency.id)
                    && self.discovered.insert(dependency.id)
                    && self.discovered.len() > MAX_COPY_DEPENDENCY_FLAGS
                {
                    return Err(format!(
                        "This flag depends on more than {MAX_COPY_DEPENDENCY_FLAGS} flags, so dependencies can't be copied automatically. Copy the flag without dependencies or reduce the dependency chain."
                    ));
                }
                self.visit(dependency)?;
            }
            self.edges.insert(flag.id, direct);
            self.visiting.remove(&flag.id);
            self.visited.insert(flag.id);
            if flag.id != self.source_id {
                self.order.push(flag.id);
            }
            Ok(())
        }
    }
    let mut walk = Walk {
        live,
        source_id: source.id,
        visiting: HashSet::new(),
        visited: HashSet::new(),
        discovered: HashSet::new(),
        order: Vec::new(),
        edges: HashMap::new(),
    };
    walk.visit(source)?;
    let direct = walk.edges.get(&source.id).cloned().unwrap_or_default();
    let roots = walk
        .order
        .iter()
        .copied()
        .filter(|id| direct.contains(id))
        .collect();
    Ok(Graph {
        order: walk.order,
        roots,
        edges: walk.edges,
    })
}

/// What copying the dependencies would do in the targets (PostHog's
/// `_get_dependency_target_requirements`).
struct Requirements {
    can_copy: bool,
    copied: Vec<String>,
    reused: Vec<String>,
    warnings: Vec<String>,
    reason: String,
}

#[derive(Clone)]
struct Decision {
    can_copy: bool,
    copy: BTreeSet<String>,
    reuse: BTreeSet<String>,
}

/// One target's decision for dependency `id`, memoized (PostHog's
/// `_collect_dependency_copy_requirements`).
fn decide(
    id: i64,
    by_id: &HashMap<i64, &Flag>,
    graph: &Graph,
    target_live: &[&Flag],
    memo: &mut HashMap<i64, Decision>,
    warnings: &mut Vec<String>,
) -> Decision {
    if let Some(done) = memo.get(&id) {
        return done.clone();
    }
    let deny =
        |memo: &mut HashMap<i64, Decision>, warnings: &mut Vec<String>, w: Option<String>| {
            warnings.extend(w);
            let d = Decision {
                can_copy: false,
                copy: BTreeSet::new(),
                reuse: BTreeSet::new(),
            };
            memo.insert(id, d.clone());
            d
        };
    let Some(source) = by_id.get(&id) else {
        return Decision {
            can_copy: true,
            copy: BTreeSet::new(),
            reuse: BTreeSet::new(),
        };
    };
    if !source.active {
        return deny(
            memo,
            warnings,
            Some(format!(
                "Cannot automatically copy dependency flag '{}' because it is disabled in the source project.",
                source.key
            )),
        );
    }
    match target_live.iter().find(|f| f.key == source.key) {
        Some(existing) if existing.active => {
            let d = Decision {
                can_copy: true,
                copy: BTreeSet::new(),
                reuse: BTreeSet::from([source.key.clone()]),
            };
            memo.insert(id, d.clone());
            return d;
        }
        Some(_) => {
            return deny(
                memo,
                warnings,
                Some(format!(
                    "Dependency copying isn't available because flag '{}' is disabled in the target project. Copy this flag without dependencies to leave that target flag unchanged.",
                    source.key
                )),
            );
        }
        None => {}
    }
    let mut children: Vec<i64> = graph.edges.get(&id).cloned().unwrap_or_default();
    children.retain(|c| by_id.contains_key(c));
    children.sort_by_key(|c| graph.order.iter().position(|o| o == c));
    let mut decision = Decision {
        can_copy: true,
        copy: BTreeSet::new(),
        reuse: BTreeSet::new(),
    };
    for child in children {
        let d = decide(child, by_id, graph, target_live, memo, warnings);
        decision.can_copy &= d.can_copy;
        decision.copy.extend(d.copy);
        decision.reuse.extend(d.reuse);
    }
    if !decision.can_copy {
        return deny(memo, warnings, None);
    }
    decision.copy.insert(source.key.clone());
    memo.insert(id, decision.clone());
    decision
}

/// `targets`: each requested project with its live flags, `None` when the caller cannot use it.
fn requirements(
    graph: &Graph,
    by_id: &HashMap<i64, &Flag>,
    targets: &[Option<Vec<&Flag>>],
) -> Requirements {
    let keys: Vec<String> = graph
        .order
        .iter()
        .filter_map(|id| by_id.get(id).map(|f| f.key.clone()))
        .collect();
    if keys.is_empty() {
        return Requirements {
            can_copy: false,
            copied: Vec::new(),
            reused: Vec::new(),
            warnings: Vec::new(),
            reason: "This feature flag doesn't have dependencies to copy.".into(),
        };
    }
    let mut copied: BTreeSet<String> = BTreeSet::new();
    let mut reused: Option<BTreeSet<String>> = None;
    let mut warnings: Vec<String> = Vec::new();
    let mut unreachable = false;
    for target in targets {
        let Some(target_live) = target else {
            unreachable = true;
            warnings.push(PROJECT_NOT_FOUND.into());
            reused = Some(BTreeSet::new());
            continue;
        };
        let mut memo = HashMap::new();
        let mut target_reused = BTreeSet::new();
        for root in &graph.roots {
            let d = decide(*root, by_id, graph, target_live, &mut memo, &mut warnings);
            copied.extend(d.copy);
            target_reused.extend(d.reuse);
        }
        reused = Some(match reused {
            None => target_reused,
            Some(before) => before.intersection(&target_reused).cloned().collect(),
        });
    }
    let mut deduped: Vec<String> = Vec::new();
    for w in warnings {
        if !deduped.contains(&w) {
            deduped.push(w);
        }
    }
    let reused = reused.unwrap_or_default();
    let mut copied_keys: Vec<String> = keys
        .iter()
        .filter(|k| copied.contains(*k))
        .cloned()
        .collect();
    let mut reused_keys: Vec<String> = keys
        .iter()
        .filter(|k| reused.contains(*k) && !copied.contains(*k))
        .cloned()
        .collect();
    let (can_copy, reason) = if unreachable {
        copied_keys.clear();
        reused_keys.clear();
        (false, PROJECT_NOT_FOUND.to_string())
    } else if !copied_keys.is_empty() {
        let n = copied_keys.len();
        let mut reason = format!(
            "{n} dependency flag{} can be copied.",
            if n == 1 { "" } else { "s" }
        );
        if !deduped.is_empty() {
            reason.push_str(" Some dependencies will be left unchanged.");
        }
        (true, reason)
    } else if let Some(first) = deduped.first() {
        (false, first.clone())
    } else {
        (false, "No dependency flags need to be copied because existing active target flags satisfy this flag's dependencies.".into())
    };
    Requirements {
        can_copy,
        copied: copied_keys,
        reused: reused_keys,
        warnings: deduped,
        reason,
    }
}

/// Rewrites flag-dependency references for the target project (PostHog's
/// `_remap_flag_dependencies_with_target_context`): by key to the target's active flag, else
/// dropped with a warning. Returns the warnings.
fn remap_dependencies(
    filters: &mut Value,
    source_keys: &HashMap<String, String>,
    disabled_source_keys: &HashSet<String>,
    target_live: &[&Flag],
) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(groups) = filters.get_mut("groups").and_then(Value::as_array_mut) else {
        return warnings;
    };
    for group in groups {
        let Some(properties) = group.get_mut("properties").and_then(Value::as_array_mut) else {
            continue;
        };
        if properties.is_empty() {
            continue;
        }
        let mut kept = Vec::new();
        let mut dropped = false;
        for mut prop in std::mem::take(properties) {
            if prop.get("type").and_then(Value::as_str) != Some("flag") {
                kept.push(prop);
                continue;
            }
            let raw = prop.get("key").cloned().unwrap_or(Value::Null);
            let Some(source_key) = reference(Some(&raw)).and_then(|r| source_keys.get(&r)) else {
                dropped = true;
                warnings.push(format!("Removed a flag dependency (source flag reference {}) because the dependency flag could not be resolved in the source project.", python::str(&raw)));
                continue;
            };
            if disabled_source_keys.contains(source_key) {
                dropped = true;
                warnings.push(format!("Removed dependency on flag '{source_key}' because that flag is disabled in the source project."));
                continue;
            }
            match target_live.iter().find(|f| &f.key == source_key) {
                Some(target) if target.active => {
                    prop["key"] = Value::String(target.id.to_string());
                    kept.push(prop);
                }
                Some(_) => {
                    dropped = true;
                    warnings.push(format!("Removed dependency on flag '{source_key}' because that flag is disabled in the target project."));
                }
                None => {
                    dropped = true;
                    warnings.push(format!("Removed dependency on flag '{source_key}' because no flag with that key exists in the target project."));
                }
            }
        }
        if dropped && kept.is_empty() {
            warnings.push("A condition group now has no remaining constraints and will match all users at its rollout percentage — review and re-gate it before re-enabling this flag.".into());
        }
        *properties = kept;
    }
    warnings
}

/// Points every `type: cohort` leaf of `value` (a flag's condition sets or a cohort's filter
/// tree) at the target cohort of the same name; leaves whose cohort has no mapping are kept.
fn remap_cohorts(value: &mut Value, names: &HashMap<i64, String>, targets: &HashMap<String, i64>) {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| remap_cohorts(v, names, targets)),
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("cohort") {
                let target = map
                    .get("value")
                    .and_then(cohort_id)
                    .and_then(|id| names.get(&id))
                    .and_then(|name| targets.get(name));
                if let Some(id) = target {
                    map.insert("value".into(), json!(id));
                }
                return;
            }
            map.values_mut()
                .for_each(|v| remap_cohorts(v, names, targets));
        }
        _ => {}
    }
}

fn cohort_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The cohorts a flag names, each after the cohorts it references (creation order).
fn cohorts_in_order<'c>(flag: &Flag, live: &HashMap<i64, &'c Cohort>) -> Vec<&'c Cohort> {
    fn visit<'c>(
        id: i64,
        live: &HashMap<i64, &'c Cohort>,
        seen: &mut HashSet<i64>,
        out: &mut Vec<&'c Cohort>,
    ) {
        if !seen.insert(id) {
            return;
        }
        let Some(c) = live.get(&id) else {
            return;
        };
        for child in cohort::cohort_references(&c.filters) {
            visit(child, live, seen, out);
        }
        out.push(c);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in cohort::flag_cohort_ids(&flag.filters) {
        visit(id, live, &mut seen, &mut out);
    }
    out
}

struct Copier<'a, S> {
    ctx: &'a Context<'a, S>,
    caller: &'a Caller,
    organization: &'a Organization,
}

/// The source project as read once per request.
struct Source<'s> {
    project: Project,
    flags: Vec<Flag>,
    flag: &'s Flag,
}

impl<S: FlagStore + IdentityStore + FeatureStore + PersonStore> Copier<'_, S> {
    fn actor(&self) -> Option<UserSummary> {
        self.caller.user().map(UserSummary::from)
    }

    /// A project of this organization the caller may use.
    async fn project(&self, id: i64) -> ApiResult<Option<Project>> {
        Ok(self
            .ctx
            .store
            .project(id)
            .await?
            .filter(|p| p.organization_id == self.organization.id && self.caller.sees_project(p)))
    }

    /// The source project and its flags, or PostHog's 400 when the flag is not there.
    async fn source_flags(&self, request: &CopyRequest) -> ApiResult<Option<(Project, Vec<Flag>)>> {
        let Some(project) = self.project(request.from_project).await? else {
            return Ok(None);
        };
        let flags = self.ctx.store.project_flags(project.id).await?;
        if !flags.iter().any(|f| !f.deleted && f.key == request.key) {
            return Ok(None);
        }
        Ok(Some((project, flags)))
    }

    async fn dependency_requirements(&self, request: &CopyRequest) -> ApiResult<ApiResponse> {
        let Some((_, flags)) = self.source_flags(request).await? else {
            return Ok(error(400, "Feature flag to copy does not exist."));
        };
        let live: Vec<&Flag> = flags.iter().filter(|f| !f.deleted).collect();
        let Some(source) = live.iter().find(|f| f.key == request.key).copied() else {
            return Ok(error(400, "Feature flag to copy does not exist."));
        };
        let graph = match dependency_graph(source, &live) {
            Ok(graph) => graph,
            Err(reason) => {
                return Ok(ApiResponse::ok(json!({
                    "can_copy_dependencies": false,
                    "dependency_count": 0,
                    "copied_dependency_keys": [],
                    "reused_dependency_keys": [],
                    "warnings": [reason],
                    "reason": reason,
                })));
            }
        };
        let mut target_flags = Vec::new();
        for id in &request.targets {
            target_flags.push(match self.project(*id).await? {
                Some(p) => Some(self.ctx.store.project_flags(p.id).await?),
                None => None,
            });
        }
        let targets: Vec<Option<Vec<&Flag>>> = target_flags
            .iter()
            .map(|t| {
                t.as_ref()
                    .map(|flags| flags.iter().filter(|f| !f.deleted).collect())
            })
            .collect();
        let by_id: HashMap<i64, &Flag> = live.iter().map(|f| (f.id, *f)).collect();
        let r = requirements(&graph, &by_id, &targets);
        Ok(ApiResponse::ok(json!({
            "can_copy_dependencies": r.can_copy,
            "dependency_count": graph.order.len(),
            "copied_dependency_keys": r.copied,
            "reused_dependency_keys": r.reused,
            "warnings": r.warnings,
            "reason": r.reason,
        })))
    }

    async fn copy_flags(&self, request: &CopyRequest) -> ApiResult<ApiResponse> {
        let Some((project, flags)) = self.source_flags(request).await? else {
            return Ok(error(400, "Feature flag to copy does not exist."));
        };
        let live: Vec<&Flag> = flags.iter().filter(|f| !f.deleted).collect();
        let Some(flag) = live.iter().find(|f| f.key == request.key).copied() else {
            return Ok(error(400, "Feature flag to copy does not exist."));
        };
        let graph = if request.copy_dependencies {
            match dependency_graph(flag, &live) {
                Ok(graph) => graph,
                Err(reason) => return Ok(error(400, reason)),
            }
        } else {
            Graph {
                order: Vec::new(),
                roots: Vec::new(),
                edges: HashMap::new(),
            }
        };
        let source = Source {
            project: project.clone(),
            flags: flags.clone(),
            flag,
        };
        let service = FlagService::batch(self.ctx.store, self.ctx.cipher);
        let mut success = Vec::new();
        let mut failed = Vec::new();
        for target_id in &request.targets {
            let Some(target) = self.project(*target_id).await? else {
                failed.push(json!({"project_id": target_id, "error_message": PROJECT_NOT_FOUND}));
                continue;
            };
            match Box::pin(self.copy_to(&service, &source, &graph, &target, request)).await {
                Ok(result) => success.push(result),
                Err(e) => {
                    failed.push(json!({"project_id": target_id, "error_message": e.to_string()}))
                }
            }
        }
        service.finish_batch().await?;
        Ok(ApiResponse::ok(
            json!({"success": success, "failed": failed}),
        ))
    }

    /// One target: the missing dependencies (when asked), then the flag.
    async fn copy_to(
        &self,
        service: &FlagService<'_, S>,
        source: &Source<'_>,
        graph: &Graph,
        target: &Project,
        request: &CopyRequest,
    ) -> ApiResult<Value> {
        let mut copied_keys = Vec::new();
        let mut dependency_warnings = Vec::new();
        if !graph.order.is_empty() {
            let by_id: HashMap<i64, &Flag> = source
                .flags
                .iter()
                .filter(|f| !f.deleted && graph.order.contains(&f.id))
                .map(|f| (f.id, f))
                .collect();
            let target_flags = self.ctx.store.project_flags(target.id).await?;
            let target_live: Vec<&Flag> = target_flags.iter().filter(|f| !f.deleted).collect();
            let plan = requirements(graph, &by_id, &[Some(target_live)]);
            for id in &graph.order {
                let Some(dependency) = by_id.get(id) else {
                    continue;
                };
                if !plan.copied.contains(&dependency.key) {
                    continue;
                }
                let result =
                    Box::pin(self.copy_flag(service, source, dependency, target, false, false))
                        .await?;
                copied_keys.push(dependency.key.clone());
                if let Some(w) = result
                    .get("flag_dependency_warnings")
                    .and_then(Value::as_array)
                {
                    dependency_warnings
                        .extend(w.iter().filter_map(Value::as_str).map(String::from));
                }
            }
        }
        let mut result = Box::pin(self.copy_flag(
            service,
            source,
            source.flag,
            target,
            request.disable_copied_flag,
            true,
        ))
        .await?;
        if !copied_keys.is_empty() {
            result["copied_dependency_keys"] = json!(copied_keys);
        }
        if !dependency_warnings.is_empty() {
            result["dependency_copy_warnings"] = json!(dependency_warnings);
        }
        Ok(result)
    }

    /// PostHog's `_copy_feature_flag_to_target`: cohorts matched by name (or created), flag
    /// dependencies remapped by key, payloads decrypted for the target to encrypt again, then a
    /// create or an update of the target's live flag with the key.
    async fn copy_flag(
        &self,
        service: &FlagService<'_, S>,
        source: &Source<'_>,
        flag: &Flag,
        target: &Project,
        disable: bool,
        update_existing: bool,
    ) -> ApiResult<Value> {
        let target_flags = self.ctx.store.project_flags(target.id).await?;
        let target_live: Vec<&Flag> = target_flags.iter().filter(|f| !f.deleted).collect();
        let existing = target_live.iter().find(|f| f.key == flag.key).map(|f| f.id);
        if existing.is_some() && !update_existing {
            return Err(ApiError::object(format!(
                "Dependency flag '{}' already exists in the target project. It was left unchanged.",
                flag.key
            )));
        }
        let mut filters = flag.filters.clone();
        Box::pin(self.copy_cohorts(flag, source, target, &mut filters)).await?;
        let live_source: Vec<&Flag> = source.flags.iter().filter(|f| !f.deleted).collect();
        let mut source_keys = HashMap::new();
        let mut disabled = HashSet::new();
        for r in references(&flag.filters) {
            if let Some(dependency) = resolve(&r, &live_source) {
                if !dependency.active {
                    disabled.insert(dependency.key.clone());
                }
                source_keys.insert(r, dependency.key.clone());
            }
        }
        let warnings = remap_dependencies(&mut filters, &source_keys, &disabled, &target_live);
        if flag.has_encrypted_payloads == Some(true) {
            filters = self.ctx.cipher.reveal(&filters, true);
        }
        // A copy with dropped dependencies never lands enabled: a condition lost its gate.
        let active = !disable && warnings.is_empty() && flag.active;
        let body: Map<String, Value> = json!({
            "key": flag.key,
            "name": flag.name,
            "filters": filters,
            "active": active,
            "ensure_experience_continuity": flag.ensure_experience_continuity,
            "deleted": false,
            "evaluation_runtime": flag.evaluation_runtime,
            "bucketing_identifier": flag.bucketing_identifier,
            "is_remote_configuration": flag.is_remote_configuration,
            "has_encrypted_payloads": flag.has_encrypted_payloads,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let actor = self.actor();
        // Boxed, as are the cohort writes: one request awaits several of these large futures,
        // and unboxed they overflowed a 2 MiB worker stack in debug builds.
        let saved = match existing {
            Some(id) => {
                let changes = Changes::patch(&body);
                Box::pin(service.update(target.id, actor.as_ref(), id, changes, self.ctx.now))
                    .await?
            }
            None => {
                Box::pin(service.create(target.id, actor.as_ref(), &body, None, self.ctx.now))
                    .await?
            }
        };
        let view = FlagView::new(self.ctx, self.caller, target);
        let mut result = view.shown(&saved, &view.features().await?).await?;
        result["team_id"] = json!(target.id);
        if !warnings.is_empty() {
            result["flag_dependency_warnings"] = json!(warnings);
        }
        Ok(result)
    }

    /// The flag's cohorts in the target: the live cohort of the same name, else a new one with
    /// the source's definition (nested cohorts remapped; static ones created empty, as PostHog
    /// does). Rewrites the flag's cohort references in `filters`.
    async fn copy_cohorts(
        &self,
        flag: &Flag,
        source: &Source<'_>,
        target: &Project,
        filters: &mut Value,
    ) -> ApiResult<()> {
        if cohort::flag_cohort_ids(&flag.filters).is_empty() {
            return Ok(());
        }
        let source_cohorts = self.ctx.store.project_cohorts(source.project.id).await?;
        let live: HashMap<i64, &Cohort> = source_cohorts
            .iter()
            .filter(|c| !c.deleted)
            .map(|c| (c.id, c))
            .collect();
        let names: HashMap<i64, String> = live
            .values()
            .filter_map(|c| c.name.clone().map(|n| (c.id, n)))
            .collect();
        let mut targets: HashMap<String, i64> = HashMap::new();
        let actor = self.actor();
        for c in cohorts_in_order(flag, &live) {
            let Some(name) = c.name.clone() else {
                continue;
            };
            let target_cohorts = self.ctx.store.project_cohorts(target.id).await?;
            let found = target_cohorts
                .iter()
                .find(|t| !t.deleted && t.name.as_deref() == Some(name.as_str()))
                .map(|t| t.id);
            let id = match found {
                Some(id) => id,
                None => {
                    let mut definition = c.filters.clone();
                    remap_cohorts(&mut definition, &names, &targets);
                    let mut body = Map::new();
                    body.insert("name".into(), json!(name));
                    body.insert("description".into(), json!(c.description));
                    body.insert("is_static".into(), json!(c.is_static));
                    body.insert("groups".into(), json!([]));
                    if !c.is_static {
                        body.insert("filters".into(), definition);
                    }
                    let service = CohortService::new(self.ctx.store);
                    Box::pin(service.create(target.id, actor.as_ref(), &body, self.ctx.now))
                        .await?
                        .id
                }
            };
            targets.insert(name, id);
        }
        if let Some(groups) = filters.get_mut("groups") {
            remap_cohorts(groups, &names, &targets);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(id: i64, key: &str, deps: &[&str], active: bool) -> Flag {
        let nobody = UserSummary {
            id: 0,
            uuid: String::new(),
            distinct_id: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
        };
        let mut f = Flag::new(id, 1, key.into(), nobody, chrono::Utc::now());
        let props: Vec<Value> = deps
            .iter()
            .map(|d| json!({"key": d, "type": "flag", "value": true, "operator": "flag_evaluates_to"}))
            .collect();
        f.filters = json!({"groups": [{"properties": props, "rollout_percentage": 100}]});
        f.active = active;
        f
    }

    #[test]
    fn dependencies_come_before_their_dependents_and_cycles_are_refused() {
        let flags = [
            flag(1, "main", &["2", "c"], true),
            flag(2, "b", &["c"], true),
            flag(3, "c", &[], true),
        ];
        let live: Vec<&Flag> = flags.iter().collect();
        let graph = dependency_graph(&flags[0], &live).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(graph.order, vec![3, 2]);
        assert_eq!(graph.roots, vec![3, 2]);
        let cyclic = [flag(1, "a", &["2"], true), flag(2, "b", &["1"], true)];
        let live: Vec<&Flag> = cyclic.iter().collect();
        assert!(
            dependency_graph(&cyclic[0], &live)
                .err()
                .is_some_and(|e| e.starts_with("A circular flag dependency"))
        );
        let deeper = [
            flag(1, "a", &["2"], true),
            flag(2, "b", &["3"], true),
            flag(3, "c", &["2"], true),
        ];
        let live: Vec<&Flag> = deeper.iter().collect();
        assert!(
            dependency_graph(&deeper[0], &live)
                .err()
                .is_some_and(|e| e.starts_with("A circular flag dependency"))
        );
        let missing = [flag(1, "a", &["nope"], true)];
        let live: Vec<&Flag> = missing.iter().collect();
        assert!(
            dependency_graph(&missing[0], &live)
                .err()
                .is_some_and(|e| e.contains("source flag reference nope"))
        );
    }

    #[test]
    fn requirements_copy_missing_reuse_active_and_refuse_disabled() {
        let flags = [
            flag(1, "main", &["2", "3"], true),
            flag(2, "b", &[], true),
            flag(3, "c", &[], true),
        ];
        let live: Vec<&Flag> = flags.iter().collect();
        let graph = dependency_graph(&flags[0], &live).unwrap_or_else(|e| panic!("{e}"));
        let by_id: HashMap<i64, &Flag> = live.iter().skip(1).map(|f| (f.id, *f)).collect();
        let target_c = flag(9, "c", &[], true);
        let r = requirements(&graph, &by_id, &[Some(vec![&target_c])]);
        assert_eq!(
            (r.can_copy, r.copied.clone(), r.reused.clone()),
            (true, vec!["b".to_string()], vec!["c".to_string()])
        );
        assert_eq!(r.reason, "1 dependency flag can be copied.");
        let off = flag(9, "c", &[], false);
        let r = requirements(&graph, &by_id, &[Some(vec![&off])]);
        assert_eq!(r.copied, vec!["b".to_string()]);
        assert!(r.warnings[0].starts_with("Dependency copying isn't available because flag 'c'"));
        let r = requirements(&graph, &by_id, &[None]);
        assert_eq!(
            (r.can_copy, r.reason.as_str()),
            (false, "Project not found.")
        );
    }

    #[test]
    fn dependencies_are_remapped_by_key_or_dropped_with_a_warning() {
        let target_b = flag(20, "b", &[], true);
        let target_c = flag(21, "c", &[], false);
        let mut filters = json!({"groups": [
            {"properties": [{"key": "2", "type": "flag", "value": true}], "rollout_percentage": 100},
            {"properties": [{"key": "3", "type": "flag", "value": true}], "rollout_percentage": 50}
        ]});
        let keys = HashMap::from([
            ("2".to_string(), "b".to_string()),
            ("3".to_string(), "c".to_string()),
        ]);
        let warnings = remap_dependencies(
            &mut filters,
            &keys,
            &HashSet::new(),
            &[&target_b, &target_c],
        );
        assert_eq!(filters["groups"][0]["properties"][0]["key"], "20");
        assert_eq!(filters["groups"][1]["properties"], json!([]));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("disabled in the target project"));
    }
}
