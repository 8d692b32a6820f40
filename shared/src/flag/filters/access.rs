//! Typed access to a stored `filters` object, so the rest of the crate does not walk its JSON.
//!
//! Reading is lenient: a part of the wrong shape reads as absent (no groups, no properties),
//! which is how the engine and PostHog's readers treat stored filters. Shapes are refused only
//! by validation, which walks the raw JSON because it must name what is wrong.

use serde_json::{Map, Value};

/// The lists of condition sets a flag may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Release conditions (`groups`).
    Groups,
    /// Early-access enrollment conditions (`super_groups`).
    SuperGroups,
    /// `holdout_groups`.
    HoldoutGroups,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Groups => "groups",
            Section::SuperGroups => "super_groups",
            Section::HoldoutGroups => "holdout_groups",
        }
    }
}

/// A borrowed `filters` value (anything: a non-object reads as empty).
#[derive(Debug, Clone, Copy)]
pub struct Filters<'a>(&'a Value);

impl<'a> Filters<'a> {
    pub fn of(filters: &'a Value) -> Self {
        Filters(filters)
    }

    pub fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    /// Whether `groups` is present at all, whatever its value: legacy rows have none.
    pub fn has_groups(self) -> bool {
        self.get("groups").is_some()
    }

    /// The condition sets of a section, in order; empty unless the section is a list.
    pub fn conditions(self, section: Section) -> impl Iterator<Item = ConditionSet<'a>> {
        self.get(section.key())
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(ConditionSet)
    }

    pub fn groups(self) -> impl Iterator<Item = ConditionSet<'a>> {
        self.conditions(Section::Groups)
    }

    pub fn super_groups(self) -> impl Iterator<Item = ConditionSet<'a>> {
        self.conditions(Section::SuperGroups)
    }

    /// `multivariate` as stored: PostHog tolerates `null` and other falsy values there.
    pub fn multivariate(self) -> Option<&'a Value> {
        self.get("multivariate")
    }

    /// `multivariate.variants`, in stored order; empty for boolean flags.
    pub fn variants(self) -> impl Iterator<Item = VariantDef<'a>> {
        self.multivariate()
            .and_then(|m| m.get("variants"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(VariantDef)
    }

    /// Payload texts by `"true"` or variant key, when `payloads` is an object.
    pub fn payloads(self) -> Option<&'a Map<String, Value>> {
        self.get("payloads").and_then(Value::as_object)
    }

    /// The experiment holdout (`{"id", "exclusion_percentage"}`), unchecked.
    pub fn holdout(self) -> Option<&'a Value> {
        self.get("holdout")
    }

    /// Flag dependencies: `type: flag` properties of the release conditions (super groups
    /// never hold them, and PostHog does not look there).
    pub fn flag_dependencies(self) -> impl Iterator<Item = &'a Value> {
        self.groups()
            .flat_map(ConditionSet::properties)
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("flag"))
    }
}

/// One condition set (`{"properties": [...], "rollout_percentage": ..., "variant": ...}`).
#[derive(Debug, Clone, Copy)]
pub struct ConditionSet<'a>(&'a Value);

impl<'a> ConditionSet<'a> {
    /// A condition set not taken from a stored list (PostHog's legacy single group).
    pub fn of(raw: &'a Value) -> Self {
        ConditionSet(raw)
    }

    pub fn raw(self) -> &'a Value {
        self.0
    }

    pub fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    /// Property filters, in order; empty unless `properties` is a list.
    pub fn properties(self) -> impl Iterator<Item = &'a Value> {
        self.get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }

    pub fn rollout_percentage(self) -> Option<&'a Value> {
        self.get("rollout_percentage")
    }

    /// The variant override as stored (falsy values are PostHog's "no override").
    pub fn variant(self) -> Option<&'a Value> {
        self.get("variant")
    }
}

/// One entry of `multivariate.variants`.
#[derive(Debug, Clone, Copy)]
pub struct VariantDef<'a>(&'a Value);

impl<'a> VariantDef<'a> {
    pub fn raw(self) -> &'a Value {
        self.0
    }

    pub fn key(self) -> Option<&'a str> {
        self.0.get("key").and_then(Value::as_str)
    }

    pub fn rollout_percentage(self) -> Option<&'a Value> {
        self.0.get("rollout_percentage")
    }
}

/// The property filters (objects only) of a section, to rewrite in place.
pub fn properties_mut(
    filters: &mut Value,
    section: Section,
) -> impl Iterator<Item = &mut Map<String, Value>> {
    filters
        .get_mut(section.key())
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get_mut("properties").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// `payloads`, to rewrite in place, when it is an object.
pub fn payloads_mut(filters: &mut Value) -> Option<&mut Map<String, Value>> {
    filters.get_mut("payloads").and_then(Value::as_object_mut)
}
