//! Early access features and their flag-link items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::{DynamoStore, Item, db_error, n, project_pk, s};
use crate::early_access::Feature;
use crate::error::ApiError;
use crate::store::{FeatureStore, FeatureWrite, WriteError};

fn feature_key(project_id: i64, id: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s(project_pk(project_id))),
        ("sk".to_string(), s(format!("FEATURE#{id}"))),
    ])
}

fn link_key(project_id: i64, flag_id: i64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(project_pk(project_id))),
        ("sk".to_string(), s(format!("FLAGLINK#{flag_id}"))),
    ])
}

impl FeatureStore for DynamoStore {
    async fn project_features(&self, project_id: i64) -> Result<Vec<Feature>, ApiError> {
        let table = &self.tables.early_access;
        self.query_prefix(table, project_pk(project_id), "FEATURE#")
            .await
    }

    async fn feature(&self, project_id: i64, id: &str) -> Result<Option<Feature>, ApiError> {
        self.get(&self.tables.early_access, feature_key(project_id, id))
            .await
    }

    async fn write_feature(&self, write: FeatureWrite) -> Result<(), WriteError> {
        let ops = self.feature_ops(&write)?;
        self.transact(ops, None).await
    }
}

impl DynamoStore {
    /// The operations of a feature change, to run alone or inside a flag's transaction.
    pub(super) fn feature_ops(
        &self,
        write: &FeatureWrite,
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        let table = &self.tables.early_access;
        let mut ops = Vec::new();
        match write {
            FeatureWrite::Create(feature) => {
                ops.push(self.put_feature(feature, None)?);
                if let Some(flag_id) = feature.feature_flag_id {
                    let link = Put::builder()
                        .table_name(table)
                        .set_item(Some(link_key(feature.project_id, flag_id)))
                        .item("feature_id", s(&feature.id))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(db_error)?;
                    ops.push(TransactWriteItem::builder().put(link).build());
                }
            }
            FeatureWrite::Update { before, after } => {
                ops.push(self.put_feature(after, Some(before))?)
            }
            FeatureWrite::Delete(feature) => {
                let delete = Delete::builder()
                    .table_name(table)
                    .set_key(Some(feature_key(feature.project_id, &feature.id)))
                    .condition_expression("version = :read")
                    .expression_attribute_values(":read", n(feature.version))
                    .build()
                    .map_err(db_error)?;
                ops.push(TransactWriteItem::builder().delete(delete).build());
                if let Some(flag_id) = feature.feature_flag_id {
                    let unlink = Delete::builder()
                        .table_name(table)
                        .set_key(Some(link_key(feature.project_id, flag_id)))
                        .build()
                        .map_err(db_error)?;
                    ops.push(TransactWriteItem::builder().delete(unlink).build());
                }
            }
        }
        Ok(ops)
    }

    fn put_feature(
        &self,
        feature: &Feature,
        before: Option<&Feature>,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut item: Item = serde_dynamo::to_item(feature).map_err(db_error)?;
        item.extend(feature_key(feature.project_id, &feature.id));
        let put = Put::builder()
            .table_name(&self.tables.early_access)
            .set_item(Some(item));
        let put = match before {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(b) => put
                .condition_expression("version = :read")
                .expression_attribute_values(":read", n(b.version)),
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(db_error)?)
            .build())
    }
}
