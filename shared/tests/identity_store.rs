//! The identity store against DynamoDB Local (`DYNAMODB_ENDPOINT`, started by `make test`):
//! every test gets its own freshly created, prefixed tables from template.yaml.

use shared::auth::{generate_key, hash_key};
use shared::identity::{Organization, PersonalApiKey, Project, User};
use shared::store::dynamo::DynamoStore;
use shared::store::tables::create_missing_tables;
use shared::store::testing::{TEMPLATE, local_store};
use shared::store::{IdentityAdmin, IdentityStore, IdentityWrites};
use shared::time::{Timestamp, parse};
use uuid::Uuid;

fn ts(text: &str) -> Timestamp {
    parse(text).unwrap()
}

async fn org(store: &DynamoStore, name: &str) -> Organization {
    let org = Organization {
        id: Uuid::now_v7().to_string(),
        name: name.into(),
        created_at: ts("2024-01-01T00:00:00Z"),
    };
    store.put_organization(&org).await.unwrap();
    org
}

/// A project and its plaintext secret key.
async fn project(store: &DynamoStore, org: &Organization, name: &str) -> (Project, String) {
    let secret = generate_key("phs_");
    let project = Project {
        id: store.next_id("project").await.unwrap(),
        organization_id: org.id.clone(),
        name: name.into(),
        api_token: generate_key("phc_"),
        secret_api_key_hash: hash_key(&secret),
        created_at: ts("2024-01-02T00:00:00.123456Z"),
    };
    store.put_project(&project).await.unwrap();
    (project, secret)
}

async fn user(store: &DynamoStore, org: &Organization, email: &str) -> User {
    let user = User {
        id: store.next_id("user").await.unwrap(),
        uuid: Uuid::now_v7().to_string(),
        distinct_id: Uuid::new_v4().simple().to_string(),
        email: email.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        organization_ids: vec![org.id.clone()],
        current_project_id: None,
        current_organization_id: None,
        is_active: true,
        created_at: ts("2024-01-03T00:00:00Z"),
    };
    store.put_user(&user).await.unwrap();
    user
}

/// A key and its plaintext value.
async fn key(
    store: &DynamoStore,
    user: &User,
    scopes: &[&str],
    created: &str,
) -> (PersonalApiKey, String) {
    let value = generate_key("phx_");
    let key = PersonalApiKey {
        id: Uuid::now_v7().to_string(),
        user_id: user.id,
        label: format!("key {created}"),
        secure_value: hash_key(&value),
        mask_value: format!("phx_...{}", &value[value.len() - 4..]),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        scoped_teams: None,
        scoped_organizations: None,
        created_at: ts(created),
    };
    store.put_api_key(&key).await.unwrap();
    (key, value)
}

#[tokio::test]
async fn tables_come_from_the_template_and_are_created_once() {
    let store = local_store().await;
    let again = create_missing_tables(&store.client, TEMPLATE, &store.tables)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    for name in [
        &store.tables.flags,
        &store.tables.activity,
        &store.tables.identity,
    ] {
        let table = store
            .client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let table = table.table().unwrap();
        assert_eq!(table.table_name(), Some(name.as_str()));
    }
    let identity = store
        .client
        .describe_table()
        .table_name(&store.tables.identity)
        .send()
        .await
        .unwrap();
    let indexes = identity.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0].index_name(), Some("gsi1"));
}

#[tokio::test]
async fn counters_hand_out_increasing_ids_per_sequence() {
    let store = local_store().await;
    assert_eq!(store.next_id("project").await.unwrap(), 1);
    assert_eq!(store.next_id("project").await.unwrap(), 2);
    assert_eq!(store.next_id("user").await.unwrap(), 1);
    assert_eq!(store.next_id("project").await.unwrap(), 3);
}

#[tokio::test]
async fn organizations_projects_and_users_read_back() {
    let store = local_store().await;
    assert_eq!(store.organization("nope").await.unwrap(), None);
    assert_eq!(store.project(1).await.unwrap(), None);
    assert_eq!(store.user(1).await.unwrap(), None);

    let acme = org(&store, "Acme").await;
    assert_eq!(
        store.organization(&acme.id).await.unwrap(),
        Some(acme.clone())
    );

    let (web, secret) = project(&store, &acme, "Web").await;
    assert_eq!(store.project(web.id).await.unwrap(), Some(web.clone()));
    assert_eq!(
        store.project_by_token(&web.api_token).await.unwrap(),
        Some(web.clone())
    );
    assert_eq!(
        store
            .project_by_secret_hash(&hash_key(&secret))
            .await
            .unwrap(),
        Some(web.clone())
    );
    assert_eq!(store.project_by_token("phc_unknown").await.unwrap(), None);
    assert_eq!(
        store
            .project_by_secret_hash(&hash_key("phs_unknown"))
            .await
            .unwrap(),
        None
    );
    // The token is public, the secret is not: looking the token up as a secret finds nothing.
    assert_eq!(
        store.project_by_secret_hash(&web.api_token).await.unwrap(),
        None
    );

    let ada = user(&store, &acme, "ada@example.com").await;
    assert_eq!(store.user(ada.id).await.unwrap(), Some(ada));
}

#[tokio::test]
async fn organization_projects_are_listed_by_id_and_only_their_own() {
    let store = local_store().await;
    let acme = org(&store, "Acme").await;
    let other = org(&store, "Other").await;
    assert!(
        store
            .organization_projects(&acme.id)
            .await
            .unwrap()
            .is_empty()
    );
    let mut acme_projects = Vec::new();
    for i in 0..11 {
        let (p, _) = project(&store, &acme, &format!("P{i}")).await;
        acme_projects.push(p);
        if i == 4 {
            project(&store, &other, "Theirs").await;
        }
    }
    // Ids 1..=12 with 6 taken by the other org: string order would put 10 before 2.
    let listed = store.organization_projects(&acme.id).await.unwrap();
    assert_eq!(listed, acme_projects);
    let ids: Vec<i64> = listed.iter().map(|p| p.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
    assert_eq!(
        store.organization_projects(&other.id).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_token_can_never_point_at_two_projects() {
    let store = local_store().await;
    let acme = org(&store, "Acme").await;
    let (first, _) = project(&store, &acme, "First").await;
    let mut copy = first.clone();
    copy.id = store.next_id("project").await.unwrap();
    copy.secret_api_key_hash = hash_key("phs_other");
    assert!(store.put_project(&copy).await.is_err());
    // Nothing of the failed transaction landed.
    assert_eq!(store.project(copy.id).await.unwrap(), None);
    assert_eq!(
        store
            .project_by_secret_hash(&hash_key("phs_other"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.project_by_token(&first.api_token).await.unwrap(),
        Some(first.clone())
    );
    // Rewriting the same project (a rename) is fine.
    let mut renamed = first.clone();
    renamed.name = "Renamed".into();
    store.put_project(&renamed).await.unwrap();
    assert_eq!(
        store.project_by_token(&first.api_token).await.unwrap(),
        Some(renamed)
    );
}

#[tokio::test]
async fn api_keys_are_found_by_hash_listed_per_user_and_revoked_by_id() {
    let store = local_store().await;
    let acme = org(&store, "Acme").await;
    let ada = user(&store, &acme, "ada@example.com").await;
    let bob = user(&store, &acme, "bob@example.com").await;
    assert!(store.user_api_keys(ada.id).await.unwrap().is_empty());

    let (newer, newer_value) = key(&store, &ada, &["*"], "2024-02-02T00:00:00Z").await;
    let (older, older_value) =
        key(&store, &ada, &["feature_flag:read"], "2024-02-01T00:00:00Z").await;
    let (bobs, _) = key(&store, &bob, &["*"], "2024-02-03T00:00:00Z").await;

    assert_eq!(
        store
            .api_key_by_hash(&hash_key(&newer_value))
            .await
            .unwrap(),
        Some(newer.clone())
    );
    assert_eq!(
        store.api_key_by_hash(&hash_key("phx_nope")).await.unwrap(),
        None
    );
    // Only hashes are stored: the plaintext is not a lookup key.
    assert_eq!(store.api_key_by_hash(&newer_value).await.unwrap(), None);

    // Oldest first, only the user's own.
    assert_eq!(
        store.user_api_keys(ada.id).await.unwrap(),
        [older.clone(), newer.clone()]
    );
    assert_eq!(
        store.user_api_keys(bob.id).await.unwrap(),
        std::slice::from_ref(&bobs)
    );

    assert!(store.revoke_api_key(&older.id).await.unwrap());
    assert_eq!(
        store
            .api_key_by_hash(&hash_key(&older_value))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.user_api_keys(ada.id).await.unwrap(),
        std::slice::from_ref(&newer)
    );
    // Revoking again, or an unknown id, reports false.
    assert!(!store.revoke_api_key(&older.id).await.unwrap());
    assert!(!store.revoke_api_key("unknown").await.unwrap());
    // The other keys still work.
    assert_eq!(
        store
            .api_key_by_hash(&hash_key(&newer_value))
            .await
            .unwrap(),
        Some(newer)
    );
    assert_eq!(store.user_api_keys(bob.id).await.unwrap(), [bobs]);
}

#[tokio::test]
async fn scoped_teams_round_trip() {
    let store = local_store().await;
    let acme = org(&store, "Acme").await;
    let ada = user(&store, &acme, "ada@example.com").await;
    let value = generate_key("phx_");
    let key = PersonalApiKey {
        id: Uuid::now_v7().to_string(),
        user_id: ada.id,
        label: "restricted".into(),
        secure_value: hash_key(&value),
        mask_value: "phx_...abcd".into(),
        scopes: None,
        scoped_teams: Some(vec![3, 1]),
        scoped_organizations: None,
        created_at: ts("2024-03-01T00:00:00Z"),
    };
    store.put_api_key(&key).await.unwrap();
    let read = store
        .api_key_by_hash(&hash_key(&value))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.scoped_teams, Some(vec![3, 1]));
    assert_eq!(read.scopes, None);
    assert_eq!(read, key);
}
