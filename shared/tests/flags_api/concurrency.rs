//! Parallel writers (docs/reference/decisions.md §2): key uniqueness holds under a race, and concurrent
//! updates never lose one another (every write is conditional on the version it read).

use futures::future::join_all;
use serde_json::json;

use crate::common::{World, assert_error};
use crate::support::*;

const N: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_of_one_key_give_exactly_one_flag() {
    let w = World::new().await;
    let calls = (0..N).map(|i| {
        w.call(
            "POST",
            "",
            Some(json!({"key": "race", "name": format!("writer {i}")})),
        )
    });
    let results = join_all(calls).await;
    let created: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        created.len(),
        1,
        "statuses: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 201) {
        assert_error(
            r,
            400,
            "unique",
            "There is already a feature flag with this key.",
            Some("key"),
        );
    }
    let page = list(&w, &[]).await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["id"], created[0].body["id"]);
    assert_eq!(stored_all(&w).await.len(), 1, "no orphan rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_of_distinct_keys_all_succeed_with_distinct_ids() {
    let w = World::new().await;
    let calls = (0..N).map(|i| w.call("POST", "", Some(json!({"key": format!("k{i}")}))));
    let results = join_all(calls).await;
    let mut ids: Vec<i64> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            id_of(&r.body)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);
    assert_eq!(list(&w, &[]).await["count"], N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_patches_of_one_flag_lose_no_update() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "contended"})).await;
    let names: Vec<String> = (0..N).map(|i| format!("name-{i}")).collect();
    let calls = names
        .iter()
        .map(|name| patch(&w, id, json!({"name": name})));
    let results = join_all(calls).await;
    let mut versions = Vec::new();
    for r in &results {
        match r.status {
            200 => versions.push(r.body["version"].as_i64().unwrap()),
            409 => assert_eq!(r.body["code"], "conflict", "{}", r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let oks = versions.len() as i64;
    assert!(oks >= 1);
    versions.sort();
    assert_eq!(
        versions,
        (2..2 + oks).collect::<Vec<_>>(),
        "each success got its own version"
    );
    let f = retrieve(&w, id).await;
    assert_eq!(
        f["version"].as_i64().unwrap(),
        1 + oks,
        "final version counts every successful update"
    );
    assert!(names.iter().any(|n| f["name"] == json!(n)), "{}", f["name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_patches_of_different_fields_all_land() {
    let w = World::new().await;
    let id = create_id(&w, json!({"key": "fields"})).await;
    let bodies = [
        json!({"name": "named"}),
        json!({"tags": ["t"]}),
        json!({"evaluation_runtime": "server"}),
        json!({"ensure_experience_continuity": true}),
        json!({"filters": everyone(42)}),
    ];
    let results = join_all(bodies.iter().map(|b| patch(&w, id, b.clone()))).await;
    assert!(
        results.iter().all(|r| r.status == 200),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let f = retrieve(&w, id).await;
    assert_eq!(f["version"], 6);
    assert_eq!(f["name"], "named");
    assert_eq!(f["tags"], json!(["t"]));
    assert_eq!(f["evaluation_runtime"], "server");
    assert_eq!(f["ensure_experience_continuity"], true);
    assert_eq!(f["filters"], everyone(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_renames_to_one_key_give_it_to_exactly_one_flag() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(create_id(&w, json!({"key": format!("before-{i}")})).await);
    }
    let results = join_all(
        ids.iter()
            .map(|id| patch(&w, *id, json!({"key": "wanted"}))),
    )
    .await;
    assert_eq!(results.iter().filter(|r| r.status == 200).count(), 1);
    for r in results.iter().filter(|r| r.status != 200) {
        assert_error(
            r,
            400,
            "unique",
            "There is already a feature flag with this key.",
            Some("key"),
        );
    }
    let holders: Vec<_> = stored_all(&w)
        .await
        .into_iter()
        .filter(|f| f.key == "wanted")
        .collect();
    assert_eq!(holders.len(), 1);
    let r = raw(&w, w.req("GET", "wanted/remote_config")).await;
    assert_eq!(
        r.status, 404,
        "the key item points at a flag (not a remote config one)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_racing_a_create_of_the_same_key_never_yields_two_holders() {
    for round in 0..5 {
        let w = World::new().await;
        let old = create_id(&w, json!({"key": "k"})).await;
        patch_ok(&w, old, json!({"deleted": true})).await;
        let (restore, create) = tokio::join!(
            patch(&w, old, json!({"deleted": false})),
            w.call("POST", "", Some(json!({"key": "k"})))
        );
        let live: Vec<_> = stored_all(&w)
            .await
            .into_iter()
            .filter(|f| !f.deleted && f.key == "k")
            .collect();
        assert_eq!(
            live.len(),
            1,
            "round {round}: restore {} / create {}",
            restore.status,
            create.status
        );
        match (restore.status, create.status) {
            (200, 400) => assert_error(
                &create,
                400,
                "unique",
                "There is already a feature flag with this key.",
                Some("key"),
            ),
            // The create purged the soft-deleted row first: nothing left to restore, or the
            // restore still read the old row next to the new holder (reads aren't isolated
            // from a transaction in flight) and was refused because the key is taken.
            (404, 201) => assert!(stored(&w, old).await.is_none()),
            (400, 201) => {
                assert_error(
                    &restore,
                    400,
                    "unique",
                    "There is already a feature flag with this key.",
                    Some("key"),
                );
                assert!(stored(&w, old).await.is_none());
            }
            other => panic!(
                "round {round}: unexpected {other:?}: {} / {}",
                restore.body, create.body
            ),
        }
    }
}

/// Writers of different flags share list-entry chunk items (32 neighbouring ids each): parallel
/// renames, tag changes and soft deletes all show in the list, none overwritten by a neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writes_of_neighbouring_flags_all_show_in_the_list() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(create_id(&w, json!({"key": format!("n{i}")})).await);
    }
    let writes = ids.iter().enumerate().map(|(i, id)| {
        let body = if i % 3 == 0 {
            json!({"deleted": true})
        } else {
            json!({"name": format!("renamed {i}"), "tags": [format!("t{i}")]})
        };
        patch(&w, *id, body)
    });
    for r in join_all(writes).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let kept: Vec<usize> = (0..N).filter(|i| i % 3 != 0).collect();
    assert_eq!(list(&w, &[]).await["count"], kept.len());
    for i in kept {
        assert_eq!(
            keys(&list(&w, &[("search", &format!("renamed {i}"))]).await),
            [format!("n{i}")]
        );
        assert_eq!(
            keys(&list(&w, &[("tags", &format!("[\"t{i}\"]"))]).await),
            [format!("n{i}")]
        );
    }
}
