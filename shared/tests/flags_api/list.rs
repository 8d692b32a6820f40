//! §5.1 list filters and order, §1.4 pagination.

use serde_json::{Value, json};
use shared::http::ApiRequest;

use crate::common::{World, add_user, assert_error};
use crate::support::*;

#[tokio::test]
async fn empty_list_shape() {
    let w = World::new().await;
    assert_eq!(
        list(&w, &[]).await,
        json!({"count": 0, "next": null, "previous": null, "results": []})
    );
}

#[tokio::test]
async fn newest_first_deleted_hidden_and_results_are_full_representations() {
    let w = World::new().await;
    create_id(&w, json!({"key": "first"})).await;
    let second = create_id(&w, json!({"key": "second"})).await;
    let third = create_id(&w, json!({"key": "third"})).await;
    patch_ok(&w, second, json!({"deleted": true})).await;
    let page = list(&w, &[]).await;
    assert_eq!(page["count"], 2);
    assert_eq!(keys(&page), ["third", "first"]);
    assert_eq!(
        page["results"][0],
        retrieve(&w, third).await,
        "list items are the retrieve representation"
    );
}

#[tokio::test]
async fn active_filter_true_false_and_anything_else() {
    let w = World::new().await;
    create_id(&w, json!({"key": "on"})).await;
    create_id(&w, json!({"key": "off", "active": false})).await;
    assert_eq!(listed(&w, &[("active", "true")]).await, ["on"]);
    for other in ["false", "True", "1", "yes", ""] {
        assert_eq!(
            listed(&w, &[("active", other)]).await,
            ["off"],
            "active={other}"
        );
    }
    assert_eq!(listed(&w, &[]).await, ["off", "on"]);
}

#[tokio::test]
async fn active_stale_selects_usage_and_config_staleness() {
    let w = World::new().await;
    let old = ago(40, 0);
    // Usage-based: called more than 30 days ago.
    let called_long_ago = create_id(
        &w,
        json!({"key": "called-long-ago", "filters": everyone(50)}),
    )
    .await;
    patch_ok(&w, called_long_ago, json!({"last_called_at": old})).await;
    let called_recently = create_id(
        &w,
        json!({"key": "called-recently", "filters": everyone(100)}),
    )
    .await;
    patch_ok(
        &w,
        called_recently,
        json!({"last_called_at": ago(1, 0), "created_at": old}),
    )
    .await;
    // Config-based: never called, old, fully rolled out.
    let boolean_100 = create_id(&w, json!({"key": "boolean-100", "filters": everyone(100)})).await;
    patch_ok(&w, boolean_100, json!({"created_at": old})).await;
    let variant_100 = create_id(
        &w,
        json!({"key": "variant-100", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [
                {"key": "a", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": 0}
            ]}
        }}),
    )
    .await;
    patch_ok(&w, variant_100, json!({"created_at": old})).await;
    let override_100 = create_id(
        &w,
        json!({"key": "override-100", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100, "variant": "b"}],
            "multivariate": {"variants": [
                {"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}
            ]}
        }}),
    )
    .await;
    patch_ok(&w, override_100, json!({"created_at": old})).await;
    let legacy_empty = create_id(&w, json!({"key": "legacy-empty"})).await;
    patch_ok(&w, legacy_empty, json!({"created_at": old})).await;
    // Not stale: partial rollout, conditions, young, disabled.
    let partial = create_id(&w, json!({"key": "partial", "filters": everyone(50)})).await;
    patch_ok(&w, partial, json!({"created_at": old})).await;
    let with_props = create_id(
        &w,
        json!({"key": "with-props", "filters": with_property(json!({"key": "email", "type": "person", "value": "a@b.c", "operator": "exact"}))}),
    )
    .await;
    patch_ok(&w, with_props, json!({"created_at": old})).await;
    let split = create_id(
        &w,
        json!({"key": "split", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [
                {"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}
            ]}
        }}),
    )
    .await;
    patch_ok(&w, split, json!({"created_at": old})).await;
    create_id(&w, json!({"key": "young", "filters": everyone(100)})).await;
    let disabled = create_id(
        &w,
        json!({"key": "disabled", "filters": everyone(100), "active": false}),
    )
    .await;
    patch_ok(
        &w,
        disabled,
        json!({"created_at": old, "last_called_at": old}),
    )
    .await;

    let page = list(&w, &[("active", "STALE")]).await;
    let mut stale = keys(&page);
    stale.sort();
    assert_eq!(
        stale,
        [
            "boolean-100",
            "called-long-ago",
            "legacy-empty",
            "override-100",
            "variant-100"
        ]
    );
    for flag in page["results"].as_array().unwrap() {
        assert_eq!(flag["status"], "STALE", "{}", flag["key"]);
    }
    assert_eq!(retrieve(&w, partial).await["status"], "ACTIVE");
    assert_eq!(retrieve(&w, disabled).await["status"], "ACTIVE");
}

#[tokio::test]
async fn created_by_id_filter() {
    let w = World::new().await;
    let other = add_user(&w.store, &w.org.id, "second@example.com").await;
    let other_key = w.add_key(other.id, &["*"], None).await;
    create_id(&w, json!({"key": "mine"})).await;
    let r = call_as(&w, &other_key, "POST", "", Some(json!({"key": "theirs"}))).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        listed(&w, &[("created_by_id", &w.user.id.to_string())]).await,
        ["mine"]
    );
    assert_eq!(
        listed(&w, &[("created_by_id", &other.id.to_string())]).await,
        ["theirs"]
    );
    assert_eq!(
        listed(&w, &[("created_by_id", "999999999")]).await,
        Vec::<String>::new()
    );
    let r = w
        .send(w.req("GET", "").with_query("created_by_id", "abc"))
        .await;
    assert_error(
        &r,
        400,
        "invalid_input",
        "A valid integer is required.",
        Some("created_by_id"),
    );
}

#[tokio::test]
async fn search_matches_key_or_name_case_insensitively() {
    let w = World::new().await;
    create_id(&w, json!({"key": "Checkout-Flow", "name": "payments"})).await;
    create_id(&w, json!({"key": "banner", "name": "New CHECKOUT banner"})).await;
    create_id(&w, json!({"key": "unrelated", "name": "nothing"})).await;
    assert_eq!(
        listed(&w, &[("search", "checkout")]).await,
        ["Checkout-Flow", "banner"]
    );
    assert_eq!(
        listed(&w, &[("search", "PAYMENTS")]).await,
        ["Checkout-Flow"]
    );
    assert_eq!(listed(&w, &[("search", "zzz")]).await, Vec::<String>::new());
}

#[tokio::test]
async fn type_filter() {
    let w = World::new().await;
    create_id(&w, json!({"key": "bool", "filters": everyone(100)})).await;
    create_id(
        &w,
        json!({"key": "multi", "filters": {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 100}]}
        }}),
    )
    .await;
    create_id(
        &w,
        json!({"key": "empty-variants", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}], "multivariate": {"variants": []}}}),
    )
    .await;
    create_id(
        &w,
        json!({"key": "remote", "is_remote_configuration": true}),
    )
    .await;
    assert_eq!(
        listed(&w, &[("type", "boolean")]).await,
        ["bool", "empty-variants", "remote"]
    );
    assert_eq!(listed(&w, &[("type", "multivariant")]).await, ["multi"]);
    assert_eq!(
        listed(&w, &[("type", "experiment")]).await,
        Vec::<String>::new(),
        "no experiments in this product"
    );
    assert_eq!(listed(&w, &[("type", "remote_config")]).await, ["remote"]);
    assert_eq!(listed(&w, &[("type", "whatever")]).await.len(), 4);
}

#[tokio::test]
async fn evaluation_runtime_filter_is_exact() {
    let w = World::new().await;
    create_id(&w, json!({"key": "srv", "evaluation_runtime": "server"})).await;
    create_id(&w, json!({"key": "cli", "evaluation_runtime": "client"})).await;
    create_id(&w, json!({"key": "both-sides"})).await;
    assert_eq!(
        listed(&w, &[("evaluation_runtime", "server")]).await,
        ["srv"]
    );
    assert_eq!(
        listed(&w, &[("evaluation_runtime", "client")]).await,
        ["cli"]
    );
    assert_eq!(
        listed(&w, &[("evaluation_runtime", "all")]).await,
        ["both-sides"]
    );
    assert_eq!(
        listed(&w, &[("evaluation_runtime", "both")]).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn excluded_properties_by_key_and_invalid_json_ignored() {
    let w = World::new().await;
    for key in ["a", "b", "c"] {
        create_id(&w, json!({"key": key})).await;
    }
    assert_eq!(
        listed(&w, &[("excluded_properties", r#"["a","b"]"#)]).await,
        ["c"]
    );
    assert_eq!(
        listed(&w, &[("excluded_properties", "[\"a\"")]).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        listed(&w, &[("excluded_properties", "not json")]).await,
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn tags_filter_is_any_of_and_exact() {
    let w = World::new().await;
    create_id(&w, json!({"key": "x-only", "tags": ["X"]})).await;
    create_id(&w, json!({"key": "y-and-z", "tags": ["y", "z"]})).await;
    create_id(&w, json!({"key": "untagged"})).await;
    assert_eq!(
        listed(&w, &[("tags", r#"["x","z"]"#)]).await,
        ["x-only", "y-and-z"]
    );
    assert_eq!(listed(&w, &[("tags", r#"["y"]"#)]).await, ["y-and-z"]);
    assert_eq!(
        listed(&w, &[("tags", r#"["X"]"#)]).await,
        Vec::<String>::new(),
        "stored tags are lower-case"
    );
    assert_eq!(
        listed(&w, &[("tags", "[oops")]).await.len(),
        3,
        "invalid JSON ignored"
    );
}

#[tokio::test]
async fn has_evaluation_tags_filter() {
    let w = World::new().await;
    create_id(
        &w,
        json!({"key": "scoped", "tags": ["web"], "evaluation_tags": ["web"]}),
    )
    .await;
    create_id(&w, json!({"key": "tagged-only", "tags": ["web"]})).await;
    for yes in ["true", "1", "yes", "YES", "True"] {
        assert_eq!(
            listed(&w, &[("has_evaluation_tags", yes)]).await,
            ["scoped"],
            "{yes}"
        );
    }
    for no in ["false", "0", "no", "whatever"] {
        assert_eq!(
            listed(&w, &[("has_evaluation_tags", no)]).await,
            ["tagged-only"],
            "{no}"
        );
    }
}

#[tokio::test]
async fn filters_combine_with_and() {
    let w = World::new().await;
    create_id(&w, json!({"key": "web-on", "tags": ["web"]})).await;
    create_id(
        &w,
        json!({"key": "web-off", "tags": ["web"], "active": false}),
    )
    .await;
    create_id(&w, json!({"key": "api-on", "tags": ["api"]})).await;
    assert_eq!(
        listed(&w, &[("tags", r#"["web"]"#), ("active", "true")]).await,
        ["web-on"]
    );
    assert_eq!(
        listed(&w, &[("search", "on"), ("active", "true")]).await,
        ["api-on", "web-on"]
    );
}

#[tokio::test]
async fn order_whitelist_and_unknown_ignored() {
    let w = World::new().await;
    let b = create_id(&w, json!({"key": "b", "name": "y-name"})).await;
    let a = create_id(&w, json!({"key": "a", "name": "z-name"})).await;
    let c = create_id(&w, json!({"key": "c", "name": "x-name"})).await;
    assert!(b < a && a < c, "ids increase");
    let order = |o: &'static str| {
        let w = &w;
        async move { keys(&list(w, &[("order", o)]).await) }
    };
    assert_eq!(order("key").await, ["a", "b", "c"]);
    assert_eq!(order("-key").await, ["c", "b", "a"]);
    assert_eq!(order("name").await, ["c", "b", "a"]);
    assert_eq!(order("-name").await, ["a", "b", "c"]);
    assert_eq!(order("id").await, ["b", "a", "c"]);
    assert_eq!(order("-id").await, ["c", "a", "b"]);
    assert_eq!(order("created_at").await, ["b", "a", "c"]);
    assert_eq!(order("-created_at").await, ["c", "a", "b"]);
    patch_ok(&w, b, json!({"name": "touched"})).await;
    assert_eq!(order("-updated_at").await[0], "b");
    assert_eq!(order("updated_at").await[2], "b");
    for unknown in ["bogus", "-bogus", "filters", "key; drop table"] {
        assert_eq!(
            order(unknown).await,
            ["c", "a", "b"],
            "order={unknown} keeps the default"
        );
    }
}

#[tokio::test]
async fn pagination_links_are_absolute_and_follow_drf() {
    let w = World::new().await;
    for i in 0..5 {
        create_id(&w, json!({"key": format!("flag-{i}")})).await;
    }
    let base = format!(
        "http://testserver/api/projects/{}/feature_flags/",
        w.project.id
    );
    let page = list(&w, &[("limit", "2")]).await;
    assert_eq!(page["count"], 5);
    assert_eq!(keys(&page), ["flag-4", "flag-3"]);
    assert_eq!(page["next"], format!("{base}?limit=2&offset=2"));
    assert_eq!(page["previous"], Value::Null);

    let page = list(&w, &[("limit", "2"), ("offset", "2")]).await;
    assert_eq!(keys(&page), ["flag-2", "flag-1"]);
    assert_eq!(page["next"], format!("{base}?limit=2&offset=4"));
    assert_eq!(
        page["previous"],
        format!("{base}?limit=2"),
        "offset dropped when the previous offset is 0"
    );

    let page = list(&w, &[("limit", "2"), ("offset", "3")]).await;
    assert_eq!(page["previous"], format!("{base}?limit=2&offset=1"));

    let page = list(&w, &[("offset", "4"), ("limit", "2")]).await;
    assert_eq!(keys(&page), ["flag-0"]);
    assert_eq!(page["next"], Value::Null);
    assert_eq!(page["previous"], format!("{base}?limit=2&offset=2"));

    // Other parameters are kept (sorted by name).
    let page = list(
        &w,
        &[("search", "flag"), ("limit", "1"), ("active", "true")],
    )
    .await;
    assert_eq!(
        page["next"],
        format!("{base}?active=true&limit=1&offset=1&search=flag")
    );

    // Values are encoded like Python's `urlencode` (quote_plus): `~` kept, `*` escaped.
    let page = list(
        &w,
        &[("limit", "1"), ("excluded_properties", r#"["a~b*c d"]"#)],
    )
    .await;
    assert_eq!(
        page["next"],
        format!("{base}?excluded_properties=%5B%22a~b%2Ac+d%22%5D&limit=1&offset=1")
    );

    // Without the trailing slash the links keep the client's path.
    let bare = w.path("");
    let bare = bare.trim_end_matches('/');
    let r = w
        .send(bearer(ApiRequest::new("GET", bare), &w.key).with_query("limit", "3"))
        .await;
    assert_eq!(
        r.body["next"],
        format!("{}?limit=3&offset=3", base.trim_end_matches('/'))
    );
}

#[tokio::test]
async fn pagination_edge_values() {
    let w = World::new().await;
    for i in 0..3 {
        create_id(&w, json!({"key": format!("flag-{i}")})).await;
    }
    let past = list(&w, &[("offset", "10")]).await;
    assert_eq!(past["count"], 3);
    assert_eq!(past["results"], json!([]));
    assert_eq!(past["next"], Value::Null);
    let base = format!(
        "http://testserver/api/projects/{}/feature_flags/",
        w.project.id
    );
    assert_eq!(past["previous"], format!("{base}?limit=100"));
    for (limit, offset) in [("0", "0"), ("-3", "-1"), ("abc", "x")] {
        let page = list(&w, &[("limit", limit), ("offset", offset)]).await;
        assert_eq!(
            keys(&page).len(),
            3,
            "limit={limit} offset={offset} fall back to 100 / 0"
        );
        assert_eq!(page["next"], Value::Null);
        assert_eq!(page["previous"], Value::Null);
    }
}

/// Stored list entries keep a long name's or tag list's beginning only; filters and the name
/// order still read the whole text.
#[tokio::test]
async fn long_names_and_tag_lists_filter_and_sort_by_their_whole_text() {
    let w = World::new().await;
    let many_tags: Vec<String> = (0..80).map(|i| format!("tag-{i}")).collect();
    let late_tags: Vec<String> = many_tags.iter().cloned().chain(["late".into()]).collect();
    let long = "x".repeat(250);
    create_id(
        &w,
        json!({"key": "long-b", "name": format!("{long}b needle"), "tags": late_tags}),
    )
    .await;
    create_id(
        &w,
        json!({"key": "long-a", "name": format!("{long}a"), "tags": many_tags}),
    )
    .await;
    create_id(&w, json!({"key": "short", "name": "Needle"})).await;
    assert_eq!(
        keys(&list(&w, &[("search", "NEEDLE")]).await),
        ["short", "long-b"]
    );
    assert_eq!(listed(&w, &[("tags", r#"["late"]"#)]).await, ["long-b"]);
    assert_eq!(
        listed(&w, &[("tags", r#"["tag-79"]"#)]).await,
        ["long-a", "long-b"]
    );
    assert_eq!(
        keys(&list(&w, &[("order", "name")]).await),
        ["short", "long-a", "long-b"]
    );
    assert_eq!(
        keys(&list(&w, &[("order", "-name"), ("search", "x")]).await),
        ["long-b", "long-a"]
    );
}

/// Flags stored before list entries existed: the project's first list builds their entries
/// (beside those of flags written since), and later writes keep them in step.
#[tokio::test]
async fn flags_stored_before_list_entries_are_listed() {
    use shared::flag::Flag;
    use shared::identity::UserSummary;
    use shared::store::FlagStore;

    let w = World::new().await;
    let creator = UserSummary::from(&w.user);
    let mut flags = Vec::new();
    for (age, key) in [(30, "old-a"), (20, "old-b"), (10, "old-gone")] {
        let id = w.store.next_flag_id().await.unwrap();
        let created = chrono::Utc::now() - chrono::TimeDelta::minutes(age);
        flags.push(Flag::new(
            id,
            w.project.id,
            key.into(),
            creator.clone(),
            created,
        ));
    }
    flags[1].name = "Searchable".into();
    flags[1].tags = vec!["t".into()];
    flags[2].deleted = true;
    store_as_before_indexes(&w, &flags).await;
    create_id(&w, json!({"key": "fresh"})).await;
    assert_eq!(keys(&list(&w, &[]).await), ["fresh", "old-b", "old-a"]);
    assert_eq!(
        keys(&list(&w, &[("search", "searchable")]).await),
        ["old-b"]
    );
    assert_eq!(listed(&w, &[("tags", r#"["t"]"#)]).await, ["old-b"]);
    patch_ok(&w, flags[0].id, json!({"name": "searchable too"})).await;
    assert_eq!(
        keys(&list(&w, &[("search", "searchable")]).await),
        ["old-b", "old-a"]
    );
    patch_ok(&w, flags[1].id, json!({"deleted": true})).await;
    assert_eq!(list(&w, &[]).await["count"], 2);
    assert_eq!(keys(&list(&w, &[]).await), ["fresh", "old-a"]);
}
