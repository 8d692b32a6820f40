//! Organizations, projects, users and keys in the identity table (layout in `super`'s docs).
//! Request-path lookups are GetItem/Query only; multi-item writes are one transaction each.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{DynamoStore, all_items, db_error, n, padded, s};
use crate::error::ApiError;
use crate::identity::{Organization, PersonalApiKey, Project, User};
use crate::store::{IdentityAdmin, IdentityStore, IdentityWrites, UserChanges, WriteError};

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

/// The sort key of a project's name claim in its organization: trimmed and lowercased, so
/// names differing only in case or surrounding spaces collide (PostHog compares them so).
fn name_claim_sk(name: &str) -> String {
    format!("PROJECTNAME#{}", name.trim().to_lowercase())
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

    /// Every item of a `gsi1` partition whose sort key starts with `prefix`, in sort-key order
    /// (an index: never a consistent read).
    async fn query_gsi1(&self, gsi1pk: String, prefix: &str) -> Result<Vec<Item>, ApiError> {
        all_items(
            self.client
                .query()
                .table_name(&self.tables.identity)
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :prefix)")
                .expression_attribute_values(":pk", s(gsi1pk))
                .expression_attribute_values(":prefix", s(prefix)),
        )
        .await
    }

    /// Every item of the table partition `pk` whose sort key starts with `prefix`.
    async fn query_partition(&self, pk: String, prefix: &str) -> Result<Vec<Item>, ApiError> {
        self.query_prefix_items(&self.tables.identity, pk, prefix)
            .await
    }

    /// A pointer put that may only overwrite a pointer of the same project, so two projects
    /// never share a token, secret or name.
    fn project_pointer(
        &self,
        project_id: i64,
        pk: String,
        sk: &str,
    ) -> Result<TransactWriteItem, ApiError> {
        let put = Put::builder()
            .table_name(&self.tables.identity)
            .set_item(Some(pointer(pk, sk, "project_id", n(project_id))))
            .condition_expression("attribute_not_exists(pk) OR project_id = :id")
            .expression_attribute_values(":id", n(project_id))
            .build()
            .map_err(ApiError::internal)?;
        Ok(transact_put(put))
    }

    /// The project item with its `TOKEN#` and `SECRET#` pointers.
    fn project_items(&self, project: &Project) -> Result<Vec<TransactWriteItem>, ApiError> {
        let table = &self.tables.identity;
        Ok(vec![
            transact_put(put(table, item(project, &project_keys(project))?)?),
            self.project_pointer(project.id, format!("TOKEN#{}", project.api_token), "TOKEN")?,
            self.project_pointer(
                project.id,
                format!("SECRET#{}", project.secret_api_key_hash),
                "SECRET",
            )?,
        ])
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

    async fn organization_members(&self, organization_id: &str) -> Result<Vec<User>, ApiError> {
        let keys = self
            .query_partition(format!("ORG#{organization_id}"), "MEMBER#")
            .await?
            .iter()
            .map(|member| {
                let id = number(member, "user_id")?;
                Ok(HashMap::from([
                    ("pk".to_string(), s(format!("USER#{id}"))),
                    ("sk".to_string(), s("USER")),
                ]))
            })
            .collect::<Result<Vec<Item>, ApiError>>()?;
        let mut users: Vec<User> = self
            .batch_get(&self.tables.identity, keys, 2)
            .await?
            .into_iter()
            .map(record)
            .collect::<Result<_, _>>()?;
        // A membership item outlives nothing today, but a user who left is not a member.
        users.retain(|u: &User| u.organization_ids.iter().any(|o| o == organization_id));
        users.sort_by_key(|u| u.id);
        Ok(users)
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

    async fn home_settings(
        &self,
        user_id: i64,
        project_id: i64,
    ) -> Result<Option<Value>, ApiError> {
        let Some(item) = self
            .get_identity(format!("USER#{user_id}"), &format!("HOME#{project_id}"))
            .await?
        else {
            return Ok(None);
        };
        let text = item
            .get("settings")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| ApiError::internal("HOME item without settings"))?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(ApiError::internal)
    }
}

impl IdentityWrites for DynamoStore {
    async fn next_id(&self, sequence: &str) -> Result<i64, ApiError> {
        self.next_counter(&self.tables.identity, sequence).await
    }

    /// The project, its pointers and its name claim land together; the claim is the last
    /// step so a failed condition there reads as "name taken".
    async fn create_project(&self, project: &Project) -> Result<(), WriteError> {
        let mut ops = self.project_items(project)?;
        ops.push(self.project_pointer(
            project.id,
            format!("ORG#{}", project.organization_id),
            &name_claim_sk(&project.name),
        )?);
        let claim = ops.len() - 1;
        self.transact(ops, Some(claim)).await
    }

    /// The project item changes only if its name is still the one read; the old claim goes
    /// (if it was this project's) and the new one is taken, all in one transaction.
    async fn rename_project(&self, before: &Project, name: &str) -> Result<(), WriteError> {
        let table = &self.tables.identity;
        let rename = Update::builder()
            .table_name(table)
            .key("pk", s(format!("PROJECT#{}", before.id)))
            .key("sk", s("PROJECT"))
            .update_expression("SET #name = :new")
            .condition_expression("#name = :old")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":new", s(name))
            .expression_attribute_values(":old", s(before.name.clone()))
            .build()
            .map_err(ApiError::internal)?;
        let org_pk = format!("ORG#{}", before.organization_id);
        let mut ops = vec![TransactWriteItem::builder().update(rename).build()];
        let (old_claim, new_claim) = (name_claim_sk(&before.name), name_claim_sk(name));
        if old_claim != new_claim {
            let release = Delete::builder()
                .table_name(table)
                .key("pk", s(org_pk.clone()))
                .key("sk", s(old_claim))
                .condition_expression("attribute_not_exists(pk) OR project_id = :id")
                .expression_attribute_values(":id", n(before.id))
                .build()
                .map_err(ApiError::internal)?;
            ops.push(TransactWriteItem::builder().delete(release).build());
        }
        ops.push(self.project_pointer(before.id, org_pk, &new_claim)?);
        let claim = ops.len() - 1;
        self.transact(ops, Some(claim)).await
    }

    async fn update_user(&self, user_id: i64, changes: &UserChanges) -> Result<(), ApiError> {
        let mut sets = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.identity)
            .key("pk", s(format!("USER#{user_id}")))
            .key("sk", s("USER"))
            .condition_expression("attribute_exists(pk)");
        let strings = [
            ("first_name", &changes.first_name),
            ("last_name", &changes.last_name),
            ("current_organization_id", &changes.current_organization_id),
        ];
        for (attr, value) in strings {
            if let Some(value) = value {
                sets.push(format!("#{attr} = :{attr}"));
                update = update
                    .expression_attribute_names(format!("#{attr}"), attr)
                    .expression_attribute_values(format!(":{attr}"), s(value.clone()));
            }
        }
        if let Some(project_id) = changes.current_project_id {
            sets.push("#current_project_id = :current_project_id".into());
            update = update
                .expression_attribute_names("#current_project_id", "current_project_id")
                .expression_attribute_values(":current_project_id", n(project_id));
        }
        // A new organization without a project leaves no current project (not another
        // organization's).
        let remove =
            changes.current_organization_id.is_some() && changes.current_project_id.is_none();
        if sets.is_empty() {
            return Ok(());
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if remove {
            expression.push_str(" REMOVE current_project_id");
        }
        update
            .update_expression(expression)
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn put_home_settings(
        &self,
        user_id: i64,
        project_id: i64,
        settings: &Value,
    ) -> Result<(), ApiError> {
        let item = HashMap::from([
            ("pk".to_string(), s(format!("USER#{user_id}"))),
            ("sk".to_string(), s(format!("HOME#{project_id}"))),
            ("settings".to_string(), s(settings.to_string())),
        ]);
        self.put_identity(item).await
    }
}

impl IdentityAdmin for DynamoStore {
    async fn put_organization(&self, org: &Organization) -> Result<(), ApiError> {
        let keys = [("pk", format!("ORG#{}", org.id)), ("sk", "ORG".into())];
        self.put_identity(item(org, &keys)?).await
    }

    /// Project, `TOKEN#` and `SECRET#` items land together. The pointers may only be
    /// overwritten for the same project, so two projects can never share a token or secret.
    async fn put_project(&self, project: &Project) -> Result<(), ApiError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(self.project_items(project)?))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// The user and its `MEMBER#` items (one per organization) land together.
    async fn put_user(&self, user: &User) -> Result<(), ApiError> {
        let table = &self.tables.identity;
        let keys = [("pk", format!("USER#{}", user.id)), ("sk", "USER".into())];
        let mut items = vec![transact_put(put(table, item(user, &keys)?)?)];
        for org in &user.organization_ids {
            let member = pointer(
                format!("ORG#{org}"),
                &format!("MEMBER#{}", padded(user.id)),
                "user_id",
                n(user.id),
            );
            items.push(transact_put(put(table, member)?));
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(db_error)?;
        Ok(())
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
