//! The DynamoDB flag adapter on its own: conditional writes, the key-uniqueness item, purges,
//! the definitions-version counter and the item budget (docs/reference/decisions.md §3, flag-management-rules.md §13).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::flag::Flag;
use shared::identity::UserSummary;
use shared::store::{FlagStore, FlagWrite, WriteError};

use crate::common::World;

/// A new flag; its timestamps at the microseconds PostHog's format (and so the store) keeps.
async fn new_flag(w: &World, key: &str) -> Flag {
    let id = w.store.next_flag_id().await.unwrap();
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    Flag::new(
        id,
        w.project.id,
        key.into(),
        UserSummary::from(&w.user),
        now,
    )
}

fn write(before: Option<&Flag>, after: &Flag) -> FlagWrite {
    FlagWrite {
        before: before.cloned(),
        after: after.clone(),
        purge: vec![],
        feature: None,
        dashboard: None,
        activity: None,
        schedule: None,
    }
}

/// The project's definitions version (bumped by every flag write; SDK caches key on it).
async fn definitions_version(w: &World) -> i64 {
    let out = w
        .store
        .client
        .get_item()
        .table_name(&w.store.tables.flags)
        .key("pk", AttributeValue::S(format!("PROJECT#{}", w.project.id)))
        .key("sk", AttributeValue::S("DEFINITIONS".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
        .and_then(|i| {
            i.get("version")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn ids_increase_and_writes_are_conditional_on_the_version_read() {
    let w = World::new().await;
    let a = w.store.next_flag_id().await.unwrap();
    let b = w.store.next_flag_id().await.unwrap();
    assert!(b > a);
    let flag = new_flag(&w, "k").await;
    let flag = w.store.write_flag(write(None, &flag)).await.unwrap();
    // Creating the same id again (under another key) fails the attribute_not_exists condition.
    let mut same_id = flag.clone();
    same_id.key = "other".into();
    assert!(matches!(
        w.store.write_flag(write(None, &same_id)).await,
        Err(WriteError::Retry)
    ));
    assert_eq!(
        w.store.key_owner(w.project.id, "other").await.unwrap(),
        None
    );
    let mut v2 = flag.clone();
    v2.version = 2;
    v2.name = "second".into();
    let v2 = w.store.write_flag(write(Some(&flag), &v2)).await.unwrap();
    // A writer that read version 1 loses now, and changes nothing.
    let mut stale = flag.clone();
    stale.version = 2;
    stale.name = "lost".into();
    assert!(matches!(
        w.store.write_flag(write(Some(&flag), &stale)).await,
        Err(WriteError::Retry)
    ));
    let stored = w
        .store
        .get_flag(w.project.id, flag.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.name.as_str(), stored.version), ("second", 2));
    assert_eq!(stored, v2, "round-trips exactly");
}

#[tokio::test]
async fn key_item_is_claimed_moved_released_and_reclaimed() {
    let w = World::new().await;
    let flag = new_flag(&w, "k").await;
    let flag = w.store.write_flag(write(None, &flag)).await.unwrap();
    assert_eq!(
        w.store.key_owner(w.project.id, "k").await.unwrap(),
        Some(flag.id)
    );
    // A second flag can't claim it.
    let rival = new_flag(&w, "k").await;
    assert!(matches!(
        w.store.write_flag(write(None, &rival)).await,
        Err(WriteError::KeyTaken)
    ));
    assert!(
        w.store
            .get_flag(w.project.id, rival.id)
            .await
            .unwrap()
            .is_none(),
        "all or nothing"
    );
    // Rename moves it.
    let mut renamed = flag.clone();
    renamed.key = "k2".into();
    renamed.version = 2;
    let renamed = w
        .store
        .write_flag(write(Some(&flag), &renamed))
        .await
        .unwrap();
    assert_eq!(w.store.key_owner(w.project.id, "k").await.unwrap(), None);
    assert_eq!(
        w.store.key_owner(w.project.id, "k2").await.unwrap(),
        Some(flag.id)
    );
    // Soft delete releases it; another flag takes it; restoring the first is KeyTaken.
    let mut deleted = renamed.clone();
    deleted.deleted = true;
    deleted.version = 3;
    let deleted = w
        .store
        .write_flag(write(Some(&renamed), &deleted))
        .await
        .unwrap();
    assert_eq!(w.store.key_owner(w.project.id, "k2").await.unwrap(), None);
    let taker = new_flag(&w, "k2").await;
    w.store.write_flag(write(None, &taker)).await.unwrap();
    let mut restored = deleted.clone();
    restored.deleted = false;
    restored.version = 4;
    assert!(matches!(
        w.store.write_flag(write(Some(&deleted), &restored)).await,
        Err(WriteError::KeyTaken)
    ));
    assert!(
        w.store
            .get_flag(w.project.id, flag.id)
            .await
            .unwrap()
            .unwrap()
            .deleted
    );
    assert_eq!(
        w.store.key_owner(w.project.id, "k2").await.unwrap(),
        Some(taker.id)
    );
}

#[tokio::test]
async fn purge_removes_only_soft_deleted_rows() {
    let w = World::new().await;
    let old = new_flag(&w, "k").await;
    let old = w.store.write_flag(write(None, &old)).await.unwrap();
    // Purging a live flag is refused (and the new flag isn't written either).
    let mut newer = new_flag(&w, "other").await;
    let purge_live = FlagWrite {
        purge: vec![old.clone()],
        feature: None,
        dashboard: None,
        ..write(None, &newer)
    };
    assert!(w.store.write_flag(purge_live).await.is_err());
    assert!(
        w.store
            .get_flag(w.project.id, newer.id)
            .await
            .unwrap()
            .is_none()
    );
    let mut deleted = old.clone();
    deleted.deleted = true;
    deleted.version = 2;
    let deleted = w
        .store
        .write_flag(write(Some(&old), &deleted))
        .await
        .unwrap();
    newer.key = "k".into();
    w.store
        .write_flag(FlagWrite {
            purge: vec![deleted],
            feature: None,
            dashboard: None,
            ..write(None, &newer)
        })
        .await
        .unwrap();
    assert!(
        w.store
            .get_flag(w.project.id, old.id)
            .await
            .unwrap()
            .is_none()
    );
    let all = w.store.project_flags(w.project.id).await.unwrap();
    assert_eq!(all.iter().map(|f| f.id).collect::<Vec<_>>(), [newer.id]);
}

#[tokio::test]
async fn every_flag_write_bumps_the_definitions_version_and_failed_ones_do_not() {
    let w = World::new().await;
    assert_eq!(definitions_version(&w).await, 0);
    let flag = new_flag(&w, "k").await;
    let flag = w.store.write_flag(write(None, &flag)).await.unwrap();
    assert_eq!(definitions_version(&w).await, 1);
    let mut v2 = flag.clone();
    v2.version = 2;
    w.store.write_flag(write(Some(&flag), &v2)).await.unwrap();
    assert_eq!(definitions_version(&w).await, 2);
    assert!(w.store.write_flag(write(Some(&flag), &v2)).await.is_err());
    assert_eq!(definitions_version(&w).await, 2);
    // Through the API too: create, update; a rejected update doesn't count.
    let r = w.call("POST", "", Some(json!({"key": "api"}))).await;
    let id = r.body["id"].as_i64().unwrap();
    w.call("PATCH", &id.to_string(), Some(json!({"name": "n"})))
        .await;
    w.call("PATCH", &id.to_string(), Some(json!({"key": "bad key"})))
        .await;
    assert_eq!(definitions_version(&w).await, 4);
}

#[tokio::test]
async fn project_flags_reads_every_page_and_only_the_project() {
    let w = World::new().await;
    let other = w.add_project(&w.org.id).await;
    // Big enough flags that one Query page (1 MB) can't hold them all.
    let filler = "x".repeat(120 * 1024);
    for i in 0..12 {
        let mut flag = new_flag(&w, &format!("k{i}")).await;
        flag.name = filler.clone();
        w.store.write_flag(write(None, &flag)).await.unwrap();
    }
    let mut elsewhere = new_flag(&w, "k0").await;
    elsewhere.project_id = other.id;
    w.store.write_flag(write(None, &elsewhere)).await.unwrap();
    let all = w.store.project_flags(w.project.id).await.unwrap();
    assert_eq!(all.len(), 12);
    assert!(all.iter().all(|f| f.project_id == w.project.id));
    assert_eq!(w.store.project_flags(other.id).await.unwrap().len(), 1);
    assert!(
        w.store
            .get_flag(w.project.id, elsewhere.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn items_over_the_budget_are_a_400_not_a_dynamodb_error() {
    let w = World::new().await;
    let mut flag = new_flag(&w, "huge").await;
    flag.filters = json!({"groups": [], "payloads": {"true": "x".repeat(200 * 1024)}});
    match w.store.write_flag(write(None, &flag)).await {
        Err(WriteError::Api(e)) => assert_eq!(e.status(), 400, "{e}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(
        w.store
            .get_flag(w.project.id, flag.id)
            .await
            .unwrap()
            .is_none()
    );
}
