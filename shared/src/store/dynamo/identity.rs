//! Organizations, projects, users and keys in the identity table (layout in `super`'s docs).
//! Request-path lookups are GetItem/Query only; multi-item writes are one transaction each.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DynamoStore, db_error, n, padded, s};
use crate::error::ApiError;
use crate::identity::{Organization, PersonalApiKey, Project, User};
use crate::store::{IdentityAdmin, IdentityStore};

type Item = HashMap<String, AttributeValue>;

const GSI1: &str = "gsi1";

/// The stored item: the record's own attributes plus its keys.
fn item<T: Serialize>(value: &T, keys: &[(&str, String)]) -> Result<Item, ApiError> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(ApiError::internal)?;
    for (name, value) in keys {
        item.insert(name.to_string(), s(value.clone()));
    }
    Ok(item)
}

fn record<T: DeserializeOwned>(item: Item) -> Result<T, ApiError> {
    serde_dynamo::from_item(item).map_err(ApiError::internal)
}

fn project_keys(p: &Project) -> [(&'static str, String); 4] {
    [
        ("pk", format!("PROJECT#{}", p.id)),
        ("sk", "PROJECT".into()),
        ("gsi1pk", format!("ORG#{}", p.organization_id)),
        ("gsi1sk", format!("PROJECT#{}", padded(p.id))),
    ]
}

fn key_item_keys(k: &PersonalApiKey) -> [(&'static str, String); 4] {
    [
        ("pk", format!("APIKEY#{}", k.secure_value)),
        ("sk", "APIKEY".into()),
        ("gsi1pk", format!("USER#{}", k.user_id)),
        ("gsi1sk", format!("APIKEY#{}", k.id)),
    ]
}

/// A small pointer item (`TOKEN#…`, `SECRET#…`, `APIKEYID#…`) carrying one attribute.
fn pointer(pk: String, sk: &str, attr: &str, value: AttributeValue) -> Item {
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s(sk)),
        (attr.to_string(), value),
    ])
}

fn put(table: &str, item: Item) -> Result<Put, ApiError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(ApiError::internal)
}

fn transact_put(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

fn number(item: &Item, attr: &str) -> Result<i64, ApiError> {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::internal(format!("identity item without numeric {attr}")))
}

impl DynamoStore {
    async fn get_identity(&self, pk: String, sk: &str) -> Result<Option<Item>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.identity)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(db_error)?;
        Ok(out.item)
    }

    /// Every item of a `gsi1` partition whose sort key starts with `prefix`, in sort-key order.
    async fn query_gsi1(&self, gsi1pk: String, prefix: &str) -> Result<Vec<Item>, ApiError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.identity)
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :prefix)")
                .expression_attribute_values(":pk", s(gsi1pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(db_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Follows a pointer item's `project_id` to the project.
    async fn project_via(&self, pk: String, sk: &str) -> Result<Option<Project>, ApiError> {
        match self.get_identity(pk, sk).await? {
            Some(pointer) => self.project(number(&pointer, "project_id")?).await,
            None => Ok(None),
        }
    }

    async fn put_identity(&self, item: Item) -> Result<(), ApiError> {
        self.client
            .put_item()
            .table_name(&self.tables.identity)
            .set_item(Some(item))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

impl IdentityStore for DynamoStore {
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<PersonalApiKey>, ApiError> {
        self.get_identity(format!("APIKEY#{hash}"), "APIKEY")
            .await?
            .map(record)
            .transpose()
    }

    async fn user(&self, id: i64) -> Result<Option<User>, ApiError> {
        self.get_identity(format!("USER#{id}"), "USER")
            .await?
            .map(record)
            .transpose()
    }

    async fn project(&self, id: i64) -> Result<Option<Project>, ApiError> {
        self.get_identity(format!("PROJECT#{id}"), "PROJECT")
            .await?
            .map(record)
            .transpose()
    }

    async fn project_by_secret_hash(&self, hash: &str) -> Result<Option<Project>, ApiError> {
        let project = self.project_via(format!("SECRET#{hash}"), "SECRET").await?;
        // A pointer left behind by a rotated secret must not authenticate.
        Ok(project.filter(|p| p.secret_api_key_hash == hash))
    }

    async fn project_by_token(&self, token: &str) -> Result<Option<Project>, ApiError> {
        if !crate::limits::token_may_exist(token) {
            return Ok(None);
        }
        let project = self.project_via(format!("TOKEN#{token}"), "TOKEN").await?;
        Ok(project.filter(|p| p.api_token == token))
    }

    async fn organization_projects(&self, organization_id: &str) -> Result<Vec<Project>, ApiError> {
        self.query_gsi1(format!("ORG#{organization_id}"), "PROJECT#")
            .await?
            .into_iter()
            .map(record)
            .collect()
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>, ApiError> {
        self.get_identity(format!("ORG#{id}"), "ORG")
            .await?
            .map(record)
            .transpose()
    }
}

impl IdentityAdmin for DynamoStore {
    async fn put_organization(&self, org: &Organization) -> Result<(), ApiError> {
        let keys = [("pk", format!("ORG#{}", org.id)), ("sk", "ORG".into())];
        self.put_identity(item(org, &keys)?).await
    }

    async fn next_id(&self, sequence: &str) -> Result<i64, ApiError> {
        self.next_counter(&self.tables.identity, sequence).await
    }

    /// Project, `TOKEN#` and `SECRET#` items land together. The pointers may only be
    /// overwritten for the same project, so two projects can never share a token or secret.
    async fn put_project(&self, project: &Project) -> Result<(), ApiError> {
        let table = &self.tables.identity;
        let same_project = |pk: String, sk: &str| -> Result<Put, ApiError> {
            Put::builder()
                .table_name(table)
                .set_item(Some(pointer(pk, sk, "project_id", n(project.id))))
                .condition_expression("attribute_not_exists(pk) OR project_id = :id")
                .expression_attribute_values(":id", n(project.id))
                .build()
                .map_err(ApiError::internal)
        };
        let items = vec![
            transact_put(put(table, item(project, &project_keys(project))?)?),
            transact_put(same_project(
                format!("TOKEN#{}", project.api_token),
                "TOKEN",
            )?),
            transact_put(same_project(
                format!("SECRET#{}", project.secret_api_key_hash),
                "SECRET",
            )?),
        ];
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn put_user(&self, user: &User) -> Result<(), ApiError> {
        let keys = [("pk", format!("USER#{}", user.id)), ("sk", "USER".into())];
        self.put_identity(item(user, &keys)?).await
    }

    /// The key (found by hash) and its by-id pointer (for revocation) land together.
    async fn put_api_key(&self, key: &PersonalApiKey) -> Result<(), ApiError> {
        let table = &self.tables.identity;
        let by_id = pointer(
            format!("APIKEYID#{}", key.id),
            "APIKEYID",
            "secure_value",
            s(key.secure_value.clone()),
        );
        let items = vec![
            transact_put(put(table, item(key, &key_item_keys(key))?)?),
            transact_put(put(table, by_id)?),
        ];
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn user_api_keys(&self, user_id: i64) -> Result<Vec<PersonalApiKey>, ApiError> {
        let mut keys: Vec<PersonalApiKey> = self
            .query_gsi1(format!("USER#{user_id}"), "APIKEY#")
            .await?
            .into_iter()
            .map(record)
            .collect::<Result<_, _>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Deletes the key and its pointer in one transaction, each only if still there, so a
    /// concurrent revoke of the same key reports `false` instead of succeeding twice.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, ApiError> {
        let pointer_pk = format!("APIKEYID#{id}");
        let Some(pointer) = self.get_identity(pointer_pk.clone(), "APIKEYID").await? else {
            return Ok(false);
        };
        let secure_value = pointer
            .get("secure_value")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| ApiError::internal("APIKEYID item without secure_value"))?
            .clone();
        let table = &self.tables.identity;
        let delete = |pk: String, sk: &str| -> Result<TransactWriteItem, ApiError> {
            let delete = Delete::builder()
                .table_name(table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(ApiError::internal)?;
            Ok(TransactWriteItem::builder().delete(delete).build())
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(delete(format!("APIKEY#{secure_value}"), "APIKEY")?)
            .transact_items(delete(pointer_pk, "APIKEYID")?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(db_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse;

    #[test]
    fn items_carry_their_keys_and_read_back_ignoring_them() {
        let project = Project {
            id: 7,
            organization_id: "org-1".into(),
            name: "P".into(),
            api_token: "phc_x".into(),
            secret_api_key_hash: "abc".into(),
            created_at: parse("2024-01-02T03:04:05Z").unwrap(),
        };
        let stored = item(&project, &project_keys(&project)).unwrap();
        assert_eq!(stored["pk"], s("PROJECT#7"));
        assert_eq!(stored["gsi1pk"], s("ORG#org-1"));
        assert_eq!(stored["gsi1sk"], s("PROJECT#00000000000000000007"));
        assert_eq!(record::<Project>(stored).unwrap(), project);
    }

    #[test]
    fn counters_are_numbers() {
        let item = HashMap::from([("n".to_string(), n(42))]);
        assert_eq!(number(&item, "n").unwrap(), 42);
        assert!(number(&HashMap::new(), "n").is_err());
    }
}
