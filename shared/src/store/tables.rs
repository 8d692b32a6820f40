//! Tables from template.yaml, the single definition of every DynamoDB table: tests, `make dev`
//! and `flagsctl create-tables` create their copies by reading it, so local tables can never
//! drift from the deployed ones.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::Tables;
use crate::error::ApiError;

/// One `AWS::DynamoDB::Table` resource of the template: its logical id and the parts of its
/// `Properties` that matter for creating it (CloudFormation's names equal the API's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    #[serde(skip)]
    pub logical_id: String,
    pub attribute_definitions: Vec<AttributeSpec>,
    pub key_schema: Vec<KeySpec>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// Local copies get the stream too: the static-cohort fill is driven by it.
    #[serde(default)]
    pub stream_specification: Option<StreamSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpec {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeSpec {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySpec {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexSpec {
    pub index_name: String,
    pub key_schema: Vec<KeySpec>,
    pub projection: ProjectionSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    pub projection_type: String,
    #[serde(default)]
    pub non_key_attributes: Option<Vec<String>>,
}

impl Tables {
    /// The table name for a template resource (`FlagsTable` → `flags`, ...). A new
    /// `<Name>Table` resource needs a field here, so forgetting it fails loudly.
    pub fn for_logical_id(&self, logical_id: &str) -> Option<&str> {
        match logical_id {
            "FlagsTable" => Some(&self.flags),
            "ActivityTable" => Some(&self.activity),
            "IdentityTable" => Some(&self.identity),
            "EarlyAccessTable" => Some(&self.early_access),
            "HashKeyOverridesTable" => Some(&self.hash_key_overrides),
            "PersonsTable" => Some(&self.persons),
            "CohortsTable" => Some(&self.cohorts),
            "UsageTable" => Some(&self.usage),
            _ => None,
        }
    }
}

/// Every DynamoDB table of the template, in logical-id order.
pub fn table_specs(template: &str) -> Result<Vec<TableSpec>, ApiError> {
    let doc: Value = serde_yaml_ng::from_str(template)
        .map_err(|e| ApiError::internal(format!("template.yaml: {e}")))?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| ApiError::internal("template.yaml has no Resources"))?;
    let mut specs = BTreeMap::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::DynamoDB::Table") {
            continue;
        }
        let id = id
            .as_str()
            .ok_or_else(|| ApiError::internal("template.yaml: non-string logical id"))?;
        let properties = resource
            .get("Properties")
            .cloned()
            .ok_or_else(|| ApiError::internal(format!("template.yaml: {id} has no Properties")))?;
        let mut spec: TableSpec = serde_yaml_ng::from_value(properties)
            .map_err(|e| ApiError::internal(format!("template.yaml: {id}: {e}")))?;
        spec.logical_id = id.to_string();
        specs.insert(id.to_string(), spec);
    }
    Ok(specs.into_values().collect())
}

fn key_schema(keys: &[KeySpec]) -> Result<Vec<KeySchemaElement>, ApiError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(ApiError::internal)
        })
        .collect()
}

fn attribute(a: &AttributeSpec) -> Result<AttributeDefinition, ApiError> {
    AttributeDefinition::builder()
        .attribute_name(&a.attribute_name)
        .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
        .build()
        .map_err(ApiError::internal)
}

async fn create_table(client: &Client, name: &str, spec: &TableSpec) -> Result<(), ApiError> {
    let attributes = spec
        .attribute_definitions
        .iter()
        .map(attribute)
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = spec
        .global_secondary_indexes
        .iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(projection(index))
                .build()
                .map_err(ApiError::internal)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stream = spec
        .stream_specification
        .as_ref()
        .map(|stream| {
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                .build()
                .map_err(ApiError::internal)
        })
        .transpose()?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&spec.key_schema)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .set_stream_specification(stream)
        .send()
        .await
        .map_err(|e| ApiError::internal(format!("creating table {name}: {e:?}")))?;
    Ok(())
}

/// A table made before the template gave it a GSI (a `make dev` database kept across
/// updates) gets the index added, as CloudFormation adds it to the deployed table.
async fn add_missing_indexes(
    client: &Client,
    name: &str,
    spec: &TableSpec,
) -> Result<(), ApiError> {
    let describe = |e| ApiError::internal(format!("describing table {name}: {e:?}"));
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(describe)?;
    let existing: Vec<String> = table
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.index_name().map(str::to_string))
        .collect();
    for index in &spec.global_secondary_indexes {
        if existing.contains(&index.index_name) {
            continue;
        }
        let attributes = index
            .key_schema
            .iter()
            .filter_map(|k| {
                spec.attribute_definitions
                    .iter()
                    .find(|a| a.attribute_name == k.attribute_name)
            })
            .map(attribute)
            .collect::<Result<Vec<_>, _>>()?;
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(&index.index_name)
            .set_key_schema(Some(key_schema(&index.key_schema)?))
            .projection(projection(index))
            .build()
            .map_err(ApiError::internal)?;
        client
            .update_table()
            .table_name(name)
            .set_attribute_definitions(Some(attributes))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await
            .map_err(|e| {
                ApiError::internal(format!(
                    "adding index {} to {name}: {e:?}",
                    index.index_name
                ))
            })?;
    }
    Ok(())
}

fn projection(index: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(
            index.projection.projection_type.as_str(),
        ))
        .set_non_key_attributes(index.projection.non_key_attributes.clone())
        .build()
}

/// `Some(status)` of an existing table, `None` when there is no such table.
async fn table_status(client: &Client, name: &str) -> Result<Option<TableStatus>, ApiError> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(Some(
            out.table()
                .and_then(|t| t.table_status().cloned())
                .unwrap_or(TableStatus::Active),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(ApiError::internal(format!(
            "describing table {name}: {e:?}"
        ))),
    }
}

/// Creates the template's tables that do not exist yet under the names in `tables`
/// (pay-per-request, with their GSIs) and waits until they are active. Returns the names
/// created. Point-in-time recovery and other AWS-only settings are left to CloudFormation.
pub async fn create_missing_tables(
    client: &Client,
    template: &str,
    tables: &Tables,
) -> Result<Vec<String>, ApiError> {
    let specs = table_specs(template)?;
    let mut created = Vec::new();
    for spec in &specs {
        let name = tables.for_logical_id(&spec.logical_id).ok_or_else(|| {
            ApiError::internal(format!(
                "template.yaml table {} has no name in store::Tables",
                spec.logical_id
            ))
        })?;
        if table_status(client, name).await?.is_none() {
            create_table(client, name, spec).await?;
            created.push(name.to_string());
        } else {
            add_missing_indexes(client, name, spec).await?;
        }
    }
    // DynamoDB Local creates tables active; AWS takes a few seconds per table.
    for name in &created {
        let mut waited = Duration::ZERO;
        while table_status(client, name).await? != Some(TableStatus::Active) {
            if waited > Duration::from_secs(300) {
                return Err(ApiError::internal(format!(
                    "table {name} not active after 5 min"
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    fn keys(spec: &[KeySpec]) -> Vec<(&str, &str)> {
        spec.iter()
            .map(|k| (k.attribute_name.as_str(), k.key_type.as_str()))
            .collect()
    }

    #[test]
    fn real_template_defines_every_table_with_its_keys_and_indexes() {
        let specs = table_specs(TEMPLATE).unwrap();
        let ids: Vec<&str> = specs.iter().map(|s| s.logical_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ActivityTable",
                "CohortsTable",
                "EarlyAccessTable",
                "FlagsTable",
                "HashKeyOverridesTable",
                "IdentityTable",
                "PersonsTable",
                "UsageTable"
            ]
        );
        let streams: Vec<&str> = specs
            .iter()
            .filter(|s| s.stream_specification.is_some())
            .map(|s| s.logical_id.as_str())
            .collect();
        assert_eq!(streams, ["CohortsTable"]);
        for spec in &specs {
            assert_eq!(keys(&spec.key_schema), [("pk", "HASH"), ("sk", "RANGE")]);
            assert!(
                spec.attribute_definitions
                    .iter()
                    .all(|a| a.attribute_type == "S")
            );
        }
        let activity = &specs[0];
        assert_eq!(activity.global_secondary_indexes.len(), 1);
        assert_eq!(activity.global_secondary_indexes[0].index_name, "by-item");
        assert_eq!(
            keys(&activity.global_secondary_indexes[0].key_schema),
            [("item_pk", "HASH"), ("item_sk", "RANGE")]
        );
        let identity = &specs[5];
        assert_eq!(identity.global_secondary_indexes[0].index_name, "gsi1");
        assert_eq!(
            keys(&identity.global_secondary_indexes[0].key_schema),
            [("gsi1pk", "HASH"), ("gsi1sk", "RANGE")]
        );
        assert_eq!(
            identity.global_secondary_indexes[0]
                .projection
                .projection_type,
            "ALL"
        );
    }

    #[test]
    fn every_template_table_has_a_name_in_tables() {
        let tables = Tables::prefixed("t-");
        for spec in table_specs(TEMPLATE).unwrap() {
            let name = tables.for_logical_id(&spec.logical_id);
            assert!(
                name.is_some_and(|n| n.starts_with("t-")),
                "{}",
                spec.logical_id
            );
        }
        assert_eq!(tables.for_logical_id("NopeTable"), None);
    }

    #[test]
    fn broken_templates_are_errors_not_panics() {
        assert!(table_specs("not: [yaml").is_err());
        assert!(table_specs("Foo: 1").is_err());
        assert!(
            table_specs(
                "Resources:\n  XTable:\n    Type: AWS::DynamoDB::Table\n    Properties: {}"
            )
            .is_err()
        );
    }
}
