//! The DynamoDB adapter of the SDK endpoints' store traits: conditions and transactions.

use chrono::TimeDelta;
use serde_json::json;
use shared::store::{DefinitionsStore, GroupType, GroupTypeError, HashKeyOverrideStore};

use crate::support::{Sdk, everyone};

#[tokio::test]
async fn last_called_at_is_written_at_most_once_a_minute() {
    let sdk = Sdk::new().await;
    let id = sdk
        .create(json!({"key": "f", "filters": everyone(100.0)}))
        .await;
    let store = &sdk.world.store;
    let project = sdk.world.project.id;
    let t0 = chrono::Utc::now();
    assert!(store.record_flag_called(project, id, t0).await.unwrap());
    assert!(
        !store
            .record_flag_called(project, id, t0 + TimeDelta::seconds(59))
            .await
            .unwrap()
    );
    let later = t0 + TimeDelta::seconds(61);
    assert!(store.record_flag_called(project, id, later).await.unwrap());
    let stored = sdk
        .stored(id)
        .await
        .last_called_at
        .map(|t| shared::time::format(&t));
    assert_eq!(stored, Some(shared::time::format(&later)));
    assert!(
        !store
            .record_flag_called(project, 999_999, t0)
            .await
            .unwrap(),
        "no item is created for an unknown flag"
    );
    assert!(
        shared::store::FlagStore::get_flag(store, project, 999_999)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn group_types_are_unique_by_index_and_name_and_bump_the_version() {
    let sdk = Sdk::new().await;
    let store = &sdk.world.store;
    let project = sdk.world.project.id;
    assert_eq!(store.definitions_version(project).await.unwrap(), 0);
    let group = |index, name: &str| GroupType {
        project_id: project,
        index,
        name: name.into(),
    };
    store.create_group_type(&group(3, "company")).await.unwrap();
    assert_eq!(store.definitions_version(project).await.unwrap(), 1);
    assert!(matches!(
        store.create_group_type(&group(3, "team")).await,
        Err(GroupTypeError::IndexTaken(3))
    ));
    assert!(matches!(
        store.create_group_type(&group(1, "company")).await,
        Err(GroupTypeError::NameTaken(_))
    ));
    store.create_group_type(&group(0, "team")).await.unwrap();
    assert_eq!(store.definitions_version(project).await.unwrap(), 2);
    assert_eq!(
        store.group_types(project).await.unwrap(),
        [group(0, "team"), group(3, "company")]
    );
}

#[tokio::test]
async fn hash_key_overrides_keep_the_first_value() {
    let sdk = Sdk::new().await;
    let store = &sdk.world.store;
    let project = sdk.world.project.id;
    let many: Vec<String> = (0..120).map(|i| format!("flag-{i}")).collect();
    let keys: Vec<&str> = many.iter().map(String::as_str).collect();
    store
        .add_hash_key_overrides(project, &["person", "anon"], &keys[..2], "anon")
        .await
        .unwrap();
    store
        .add_hash_key_overrides(project, &["person"], &keys, "later")
        .await
        .unwrap();
    let found = store.hash_key_overrides(project, "person").await.unwrap();
    assert_eq!(found.len(), 120, "all chunks written");
    assert_eq!(found["flag-0"], "anon");
    assert_eq!(found["flag-1"], "anon");
    assert_eq!(found["flag-2"], "later");
    assert_eq!(
        store
            .hash_key_overrides(project, "anon")
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .hash_key_overrides(project, "nobody")
            .await
            .unwrap()
            .is_empty()
    );
}
