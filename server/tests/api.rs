//! The v1 API against a real server over HTTP, every scenario on SQLite and on PostgreSQL.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Api, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokenops_testkit::{Backend, TestServer, on_both_backends};

on_both_backends!(
    secret_is_shown_once_and_listed_masked,
    secret_bytes_never_reach_storage,
    wrong_checksum_is_rejected_without_a_storage_lookup,
    both_header_styles_authenticate,
    an_expired_token_reads_and_verifies_as_expired,
    permissions_are_immutable_but_name_description_labels_are_not,
    privilege_escalation_is_refused,
    regenerate_keeps_the_id_and_grace_period_ends_the_old_value,
    bulk_revoke_by_selector_and_by_ids,
    pagination_visits_every_token_once,
    label_lists_page_alike_for_rare_and_common_labels,
    every_bad_input_gets_a_problem_naming_the_field,
    delete_removes_the_token_but_keeps_its_audit_trail,
    idempotent_create_and_regenerate_never_duplicate,
    last_used_is_coalesced_and_flushed_on_shutdown,
    parallel_regenerates_leave_exactly_one_current_value,
    verify_checks_permissions_and_resources,
    operations_endpoints_answer,
);

async fn secret_is_shown_once_and_listed_masked(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let r = api
        .post(
            "/v1/tokens",
            &owner,
            json!({"name": "ci", "role": "read-only", "lifetime": "720h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["token"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tko_") && id.starts_with("tok_"));
    let masked = r.body["token"]["masked"].as_str().unwrap();
    assert!(masked.starts_with("tko_…") && secret.ends_with(&masked["tko_…".len()..]));
    for path in [
        format!("/v1/tokens/{id}"),
        "/v1/tokens".to_string(),
        "/v1/audit".to_string(),
    ] {
        let r = api.get(&path, &owner).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(!r.text.contains(&secret), "{path} shows the secret");
        assert!(
            !r.text.contains(&secret[4..20]),
            "{path} shows part of the secret"
        );
    }
    let got = api.get(&format!("/v1/tokens/{id}"), &owner).await;
    assert!(got.body.get("secret").is_none());
    assert_eq!(got.body["status"], "active");
    assert_eq!(api.verify(&secret).await, "VALID");
}

async fn secret_bytes_never_reach_storage(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let mut secrets = vec![owner.clone()];
    for i in 0..5 {
        let (id, s) = api.create_role(&owner, &format!("t{i}"), "read-only").await;
        secrets.push(s);
        let r = api
            .post(
                &format!("/v1/tokens/{id}/regenerate"),
                &owner,
                json!({"grace_period": "1h"}),
            )
            .await;
        secrets.push(r.body["secret"].as_str().unwrap().to_string());
    }
    let db = srv.stop().await;
    let url = db.url.clone();
    match db.dir().map(|d| d.to_path_buf()) {
        Some(dir) => {
            // SQLite: the database file, its WAL and anything beside it.
            let mut files = 0;
            for entry in std::fs::read_dir(&dir).unwrap() {
                // The WAL file may vanish as the last connection closes.
                let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
                    continue;
                };
                files += 1;
                for s in &secrets {
                    assert!(
                        !contains(&bytes, s.as_bytes()),
                        "a secret is stored in clear"
                    );
                    assert!(
                        !contains(&bytes, &s.as_bytes()[4..24]),
                        "part of a secret is stored"
                    );
                }
            }
            assert!(files >= 1);
        }
        None => {
            // PostgreSQL: every column of every table, as text.
            use sqlx::{Connection, Row};
            let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
            for table in ["tokens", "token_labels", "audit_events"] {
                let rows = sqlx::query(&format!("SELECT t::text AS row FROM {table} t"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                assert!(!rows.is_empty() || table == "token_labels");
                for row in rows {
                    let text: String = row.get("row");
                    for s in &secrets {
                        assert!(!text.contains(&s[4..24]), "{table} holds a secret");
                    }
                }
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn wrong_checksum_is_rejected_without_a_storage_lookup(srv: TestServer) {
    let api = Api::new(srv.url());
    let (_, secret) = api.create_role(&srv.owner_token(), "x", "read-only").await;
    let mut bytes = secret.clone().into_bytes();
    bytes[8] = if bytes[8] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(bytes).unwrap();
    let before = srv.state().verifier.storage_lookups();
    for bad in [
        typo.as_str(),
        "tko_short",
        "not-a-token",
        "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(api.verify(bad).await, "MALFORMED", "{bad}");
        let r = api.get("/v1/whoami", bad).await;
        r.assert_problem(401, "unauthenticated");
        assert!(!r.text.contains(bad));
    }
    assert_eq!(
        srv.state().verifier.storage_lookups(),
        before,
        "malformed values must not touch storage"
    );
    // a well-formed unknown value does read storage
    let unknown = tokenops_types::secret::generate("tko");
    assert_eq!(api.verify(&unknown).await, "NOT_FOUND");
    assert_eq!(srv.state().verifier.storage_lookups(), before + 1);
}

async fn both_header_styles_authenticate(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let by_key = Api::reply(
        api.http
            .get(format!("{}/v1/whoami", api.url))
            .header("x-api-key", &owner),
    )
    .await;
    assert_eq!(by_key.status, StatusCode::OK);
    let by_bearer = Api::reply(
        api.http
            .get(format!("{}/v1/whoami", api.url))
            .bearer_auth(&owner),
    )
    .await;
    assert_eq!(by_bearer.status, StatusCode::OK);
    assert_eq!(by_key.body["id"], by_bearer.body["id"]);
    let lower = Api::reply(
        api.http
            .get(format!("{}/v1/whoami", api.url))
            .header("authorization", format!("bearer {owner}")),
    )
    .await;
    assert_eq!(lower.status, StatusCode::OK);
    let none = api.raw(Method::GET, "/v1/whoami", None, None).await;
    none.assert_problem(401, "unauthenticated");
    let basic = Api::reply(
        api.http
            .get(format!("{}/v1/whoami", api.url))
            .basic_auth("u", Some(&owner)),
    )
    .await;
    basic.assert_problem(401, "unauthenticated");
}

async fn an_expired_token_reads_and_verifies_as_expired(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, secret) = api
        .create(
            &owner,
            json!({"name": "short", "scopes": ["usage:read"], "lifetime": "1s"}),
        )
        .await;
    eventually(Duration::from_secs(10), "the token expires", || async {
        api.verify(&secret).await == "EXPIRED"
    })
    .await;
    assert_eq!(
        api.get(&format!("/v1/tokens/{id}"), &owner).await.body["status"],
        "expired"
    );
    let expired = api.get("/v1/tokens?status=expired", &owner).await;
    let ids: Vec<_> = expired.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(id)]);
    let active = api.get("/v1/tokens?status=active", &owner).await;
    assert!(
        active.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != json!(id))
    );
    api.get("/v1/whoami", &secret)
        .await
        .assert_problem(401, "unauthenticated");
}

async fn permissions_are_immutable_but_name_description_labels_are_not(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, secret) = api.create_role(&owner, "svc", "read-only").await;
    let path = format!("/v1/tokens/{id}");
    for (field, value) in [
        ("role", json!("owner")),
        ("scopes", json!(["*"])),
        ("resources", json!("all")),
        ("project", json!("other")),
        ("expires_at", json!("2030-01-01T00:00:00Z")),
    ] {
        let r = api.patch(&path, &owner, json!({ field: value })).await;
        r.assert_problem(422, "immutable_field");
        assert_eq!(r.field(), field);
    }
    let r = api.patch(&path, &owner, json!({"name": "svc-renamed", "description": "for the dashboard", "labels": {"team": "web"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "svc-renamed");
    assert_eq!(r.body["description"], "for the dashboard");
    assert_eq!(r.body["labels"], json!({"team": "web"}));
    assert_eq!(r.body["role"], "read-only");
    let r = api.patch(&path, &owner, json!({"description": ""})).await;
    assert!(r.body.get("description").is_none());
    assert_eq!(
        api.verify(&secret).await,
        "VALID",
        "edits keep the value working"
    );
    let filtered = api.get("/v1/tokens?label=team%3Dweb", &owner).await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 1);
}

async fn privilege_escalation_is_refused(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, admin) = api.create_role(&owner, "admin", "token-admin").await;
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "role": "owner", "lifetime": "1h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    assert_eq!(r.field(), "role");
    // token-admin grants any product permission, but no management permission it lacks
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "scopes": ["audit:read"], "lifetime": "1h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    assert_eq!(r.field(), "scopes");
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "scopes": ["tokens:read"], "lifetime": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let (_, site1) = api
        .create(&owner, json!({"name": "site1", "scopes": ["tokens:*"], "resources": [{"type": "site", "id": "s-1"}], "lifetime": "1h"}))
        .await;
    for resources in [json!("all"), json!([{"type": "site", "id": "s-2"}])] {
        let r = api.post("/v1/tokens", &site1, json!({"name": "x", "scopes": ["tokens:read"], "resources": resources, "lifetime": "30m"})).await;
        r.assert_problem(403, "permission_escalation");
        assert_eq!(r.field(), "resources");
    }
    let r = api.post("/v1/tokens", &site1, json!({"name": "x", "scopes": ["tokens:read"], "resources": [{"type": "site", "id": "s-1"}], "lifetime": "30m"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // no foreign project, and no regeneration of a stronger token
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "scopes": ["tokens:read"], "project": "other", "lifetime": "1h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    let owner_id = api.get("/v1/whoami", &owner).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/v1/tokens/{owner_id}/regenerate"),
        &admin,
        json!({}),
    )
    .await
    .assert_problem(403, "permission_escalation");
    // a read-only token reads product APIs, not the token inventory, and writes nothing
    let (_, reader) = api.create_role(&owner, "reader", "read-only").await;
    assert_eq!(
        api.get("/v1/tokens", &reader).await.status,
        StatusCode::FORBIDDEN
    );
    api.post(
        "/v1/tokens",
        &reader,
        json!({"name": "x", "scopes": ["tokens:read"], "lifetime": "1h"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // another project's owner sees nothing of this project
    let other = srv.bootstrap("other").await;
    api.get(&format!("/v1/tokens/{owner_id}"), &other)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        api.get("/v1/tokens", &other).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn regenerate_keeps_the_id_and_grace_period_ends_the_old_value(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, v0) = api.create_role(&owner, "rotating", "read-only").await;
    let before = api.get(&format!("/v1/tokens/{id}"), &owner).await.body;
    // without grace: the old value stops at once
    let r = api
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            &owner,
            json!({"lifetime": "48h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v1 = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(r.body["token"]["id"], json!(id));
    assert_eq!(r.body["token"]["generation"], 1);
    assert_ne!(r.body["token"]["expires_at"], before["expires_at"]);
    assert_ne!(v1, v0);
    assert_eq!(api.verify(&v0).await, "NOT_FOUND");
    assert_eq!(api.verify(&v1).await, "VALID");
    // with grace: both work until the grace period ends
    let r = api
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            &owner,
            json!({"grace_period": "2s"}),
        )
        .await;
    let v2 = r.body["secret"].as_str().unwrap().to_string();
    assert!(r.body["token"]["previous_valid_until"].is_string());
    assert_eq!(
        api.verify(&v1).await,
        "VALID",
        "old value works during grace"
    );
    assert_eq!(api.verify(&v2).await, "VALID");
    eventually(Duration::from_secs(10), "grace ends", || async {
        api.verify(&v1).await == "NOT_FOUND"
    })
    .await;
    assert_eq!(api.verify(&v2).await, "VALID");
    // a revoked token cannot be regenerated
    api.post(&format!("/v1/tokens/{id}/revoke"), &owner, json!({}))
        .await;
    api.post(&format!("/v1/tokens/{id}/regenerate"), &owner, json!({}))
        .await
        .assert_problem(409, "token_revoked");
    assert_eq!(api.verify(&v2).await, "REVOKED");
}

async fn bulk_revoke_by_selector_and_by_ids(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let mut team_a = vec![];
    for i in 0..3 {
        team_a.push(api.create(&owner, json!({"name": format!("a{i}"), "role": "read-only", "lifetime": "1h", "labels": {"team": "a", "env": "prod"}})).await);
    }
    let (b_id, b) = api.create(&owner, json!({"name": "b", "role": "read-only", "lifetime": "1h", "labels": {"team": "b", "env": "prod"}})).await;
    let r = api
        .post(
            "/v1/tokens/revoke",
            &owner,
            json!({"selector": "team=a,env=prod"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["revoked"], 3);
    for (_, s) in &team_a {
        assert_eq!(api.verify(s).await, "REVOKED");
    }
    assert_eq!(api.verify(&b).await, "VALID");
    let again = api
        .post("/v1/tokens/revoke", &owner, json!({"selector": "team=a"}))
        .await;
    assert_eq!(
        again.body["revoked"], 0,
        "already revoked tokens are not counted twice"
    );
    let r = api
        .post(
            "/v1/tokens/revoke",
            &owner,
            json!({"ids": [b_id, "tok_doesnotexist00"]}),
        )
        .await;
    assert_eq!(r.body["revoked"], 1);
    assert_eq!(api.verify(&b).await, "REVOKED");
    api.post(
        "/v1/tokens/revoke",
        &owner,
        json!({"ids": ["x"], "selector": "a=b"}),
    )
    .await
    .assert_problem(422, "mutually_exclusive");
    api.post("/v1/tokens/revoke", &owner, json!({}))
        .await
        .assert_problem(422, "required");
    let bad = api
        .post("/v1/tokens/revoke", &owner, json!({"selector": "team"}))
        .await;
    bad.assert_problem(422, "invalid_selector");
    assert_eq!(bad.field(), "selector");
    let audit = api.get("/v1/audit", &owner).await;
    let revokes = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revoke")
        .count();
    assert_eq!(revokes, 4);
    assert_eq!(
        api.get("/v1/tokens?status=revoked", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// Pages of a label list, in order, with their ids.
async fn pages_of(api: &Api, owner: &str, query: &str) -> Vec<String> {
    let mut ids = vec![];
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(t) => format!("/v1/tokens?{query}&limit=400&page_token={t}"),
            None => format!("/v1/tokens?{query}&limit=400"),
        };
        let r = api.get(&path, owner).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        for t in r.body["items"].as_array().unwrap() {
            ids.push(t["id"].as_str().unwrap().to_string());
        }
        match r.body["next_page_token"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => return ids,
        }
    }
}

/// A label few tokens carry is looked up from the label index, one most
/// tokens carry by walking the project's tokens (more than 1,000 rows): both
/// give every match once, in creation order, across pages.
async fn label_lists_page_alike_for_rare_and_common_labels(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let mut created = vec![];
    for chunk in 0..11 {
        let batch = (0..100).map(|i| {
            let n = chunk * 100 + i;
            let labels = if n % 400 == 7 {
                json!({"common": "yes", "rare": "yes"})
            } else {
                json!({"common": "yes"})
            };
            let api = &api;
            let owner = &owner;
            async move {
                let (id, _) = api
                    .create(owner, json!({"name": format!("l{n}"), "role": "read-only", "lifetime": "1h", "labels": labels}))
                    .await;
                (n, id)
            }
        });
        created.extend(futures::future::join_all(batch).await);
    }
    api.create(
        &owner,
        json!({"name": "other", "role": "read-only", "lifetime": "1h", "labels": {"common": "no"}}),
    )
    .await;
    let all: HashSet<String> = created.iter().map(|(_, id)| id.clone()).collect();
    let rare: HashSet<String> = created
        .iter()
        .filter(|(n, _)| n % 400 == 7)
        .map(|(_, id)| id.clone())
        .collect();
    let common = pages_of(&api, &owner, "label=common%3Dyes").await;
    assert_eq!(common.len(), 1100);
    assert_eq!(common.iter().cloned().collect::<HashSet<_>>(), all);
    let unfiltered = pages_of(&api, &owner, "label=common%3Dyes%2Crare%3Dyes").await;
    assert_eq!(unfiltered.iter().cloned().collect::<HashSet<_>>(), rare);
    let rare_first = pages_of(&api, &owner, "label=rare%3Dyes%2Ccommon%3Dyes").await;
    assert_eq!(rare_first, unfiltered, "the same tokens in the same order");
    // both plans return creation order: the common list, restricted to the
    // rare tokens, is the rare list
    let order: Vec<&String> = common.iter().filter(|id| rare.contains(*id)).collect();
    assert_eq!(order, rare_first.iter().collect::<Vec<_>>());
}

async fn pagination_visits_every_token_once(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    for i in 0..7 {
        api.create_role(&owner, &format!("p{i}"), "read-only").await;
    }
    let mut seen = HashSet::new();
    let mut pages = vec![];
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(t) => format!("/v1/tokens?limit=3&page_token={t}"),
            None => "/v1/tokens?limit=3".to_string(),
        };
        let r = api.get(&path, &owner).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.body["items"].as_array().unwrap();
        pages.push(items.len());
        for t in items {
            assert!(
                seen.insert(t["id"].as_str().unwrap().to_string()),
                "a token appeared twice"
            );
        }
        match r.body["next_page_token"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, vec![3, 3, 2]);
    assert_eq!(seen.len(), 8);
    api.get("/v1/tokens?page_token=garbage!", &owner)
        .await
        .assert_problem(422, "invalid_field");
    let r = api.get("/v1/tokens?limit=0", &owner).await;
    r.assert_problem(422, "invalid_field");
    assert_eq!(r.field(), "limit");
    api.get("/v1/tokens?status=sleeping", &owner)
        .await
        .assert_problem(422, "invalid_field");
    let page = api.get("/v1/audit?limit=2", &owner).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert!(page.body["next_page_token"].is_string());
}

async fn every_bad_input_gets_a_problem_naming_the_field(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let cases = [
        (
            json!({"name": "x", "role": "wizard", "lifetime": "1h"}),
            422,
            "unknown_role",
            "role",
        ),
        (
            json!({"name": "x", "role": "owner", "resources": [{"type": "planet", "id": "p"}], "lifetime": "1h"}),
            422,
            "unknown_resource_type",
            "resources[0].type",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "9000h"}),
            422,
            "lifetime_exceeds_policy",
            "lifetime",
        ),
        (
            json!({"name": "x".repeat(129), "role": "owner", "lifetime": "1h"}),
            422,
            "too_long",
            "name",
        ),
        (
            json!({"name": "x", "role": "owner", "description": "d".repeat(1025), "lifetime": "1h"}),
            422,
            "too_long",
            "description",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "a while"}),
            422,
            "invalid_duration",
            "lifetime",
        ),
        (
            json!({"name": "x", "role": "owner"}),
            422,
            "expiry_required",
            "lifetime",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "1h", "expires_at": "2099-01-01T00:00:00Z"}),
            422,
            "mutually_exclusive",
            "lifetime",
        ),
        (
            json!({"name": "x", "role": "owner", "expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "expiry_in_past",
            "expires_at",
        ),
        (
            json!({"name": "x", "scopes": ["nonsense"], "lifetime": "1h"}),
            422,
            "invalid_permission",
            "scopes[0]",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "1h", "labels": {"bad key": "v"}}),
            422,
            "invalid_label",
            "labels",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "1h", "colour": "red"}),
            422,
            "unknown_field",
            "body",
        ),
        (
            json!({"role": "owner", "lifetime": "1h"}),
            422,
            "required",
            "name",
        ),
        (
            json!({"name": 5, "role": "owner", "lifetime": "1h"}),
            422,
            "invalid_field",
            "name",
        ),
        (
            json!({"name": "x", "role": "owner", "lifetime": "1h", "resources": "some"}),
            422,
            "invalid_field",
            "resources",
        ),
        (
            json!({"name": "x", "lifetime": "1h"}),
            422,
            "required",
            "role",
        ),
    ];
    for (body, status, code, field) in cases {
        let r = api.post("/v1/tokens", &owner, body.clone()).await;
        r.assert_problem(status, code);
        assert_eq!(r.field(), field, "for {body}");
    }
    // malformed JSON, wrong content type, oversized body
    let url = format!("{}/v1/tokens", api.url);
    let r = Api::reply(
        api.http
            .post(&url)
            .bearer_auth(&owner)
            .header("content-type", "application/json")
            .body("{\"name\": "),
    )
    .await;
    r.assert_problem(400, "malformed_json");
    let r = Api::reply(
        api.http
            .post(&url)
            .bearer_auth(&owner)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    r.assert_problem(415, "unsupported_media_type");
    let big = json!({"name": "x", "description": "d".repeat(200_000)}).to_string();
    let r = Api::reply(
        api.http
            .post(&url)
            .bearer_auth(&owner)
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    r.assert_problem(413, "payload_too_large");
    assert_eq!(
        r.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "the refused body was not read: the connection must not be reused"
    );
    // unknown id, unknown route, wrong method
    api.get("/v1/tokens/tok_nothere", &owner)
        .await
        .assert_problem(404, "not_found");
    api.get("/v1/nothing", &owner)
        .await
        .assert_problem(404, "not_found");
    api.raw(Method::PUT, "/v1/tokens", Some(&owner), None)
        .await
        .assert_problem(405, "method_not_allowed");
    // a rejected value is never echoed
    let secretish = tokenops_types::secret::generate("tko");
    let r = api.post("/v1/tokens", &owner, json!({"name": "x", "role": "owner", "lifetime": 5, "description": ["a"], "scopes": secretish.clone()})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !r.text.contains(&secretish[4..]),
        "error echoes a value: {}",
        r.text
    );
    let r = api.post("/v1/verify", &owner, json!({"token": 12})).await;
    r.assert_problem(422, "invalid_field");
    // nothing was written by any of the failures
    assert_eq!(
        api.get("/v1/tokens", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn delete_removes_the_token_but_keeps_its_audit_trail(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, secret) = api.create_role(&owner, "temp", "read-only").await;
    let r = api
        .raw(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.get(&format!("/v1/tokens/{id}"), &owner)
        .await
        .assert_problem(404, "not_found");
    api.raw(
        Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(api.verify(&secret).await, "NOT_FOUND");
    let audit = api.get(&format!("/v1/audit?token_id={id}"), &owner).await;
    let actions: Vec<_> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        vec!["token.delete", "token.create"],
        "newest first"
    );
    let owner_id = api.get("/v1/whoami", &owner).await.body["id"].clone();
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == owner_id)
    );
}

async fn idempotent_create_and_regenerate_never_duplicate(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let body = json!({"name": "once", "role": "read-only", "lifetime": "1h"});
    let send = |key: &'static str, body: serde_json::Value| {
        let req = api
            .http
            .post(format!("{}/v1/tokens", api.url))
            .bearer_auth(&owner)
            .header("idempotency-key", key)
            .json(&body);
        Api::reply(req)
    };
    let first = send("k-1", body.clone()).await;
    let second = send("k-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body["token"]["id"], second.body["token"]["id"]);
    let (s1, s2) = (
        first.body["secret"].as_str().unwrap(),
        second.body["secret"].as_str().unwrap(),
    );
    assert_eq!(
        api.verify(s1).await,
        "NOT_FOUND",
        "the lost value is replaced"
    );
    assert_eq!(api.verify(s2).await, "VALID");
    let named = api.get("/v1/tokens?name=once", &owner).await;
    assert_eq!(
        named.body["items"].as_array().unwrap().len(),
        1,
        "exactly one token"
    );
    send(
        "k-1",
        json!({"name": "other", "role": "read-only", "lifetime": "1h"}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");

    // regenerate with a key: a replay replaces the lost value but keeps the grace of the one before
    let id = first.body["token"]["id"].as_str().unwrap().to_string();
    let regen = |key: &'static str| {
        let req = api
            .http
            .post(format!("{}/v1/tokens/{id}/regenerate", api.url))
            .bearer_auth(&owner)
            .header("idempotency-key", key)
            .json(&json!({"grace_period": "1h"}));
        Api::reply(req)
    };
    let r1 = regen("r-1").await;
    let r2 = regen("r-1").await;
    assert_eq!(r1.body["token"]["generation"], 1);
    assert_eq!(
        r2.body["token"]["generation"], 1,
        "a replay is not a second regeneration"
    );
    assert_eq!(
        api.verify(s2).await,
        "VALID",
        "the value before the regeneration keeps its grace"
    );
    assert_eq!(
        api.verify(r1.body["secret"].as_str().unwrap()).await,
        "NOT_FOUND"
    );
    assert_eq!(
        api.verify(r2.body["secret"].as_str().unwrap()).await,
        "VALID"
    );
}

async fn last_used_is_coalesced_and_flushed_on_shutdown(mut srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, secret) = api.create_role(&owner, "used", "read-only").await;
    assert!(
        api.get(&format!("/v1/tokens/{id}"), &owner)
            .await
            .body
            .get("last_used_at")
            .is_none()
    );
    for _ in 0..20 {
        assert_eq!(api.verify(&secret).await, "VALID");
    }
    // shown at once from memory, before any write
    let shown = api.get(&format!("/v1/tokens/{id}"), &owner).await.body["last_used_at"].clone();
    assert!(shown.is_string());
    let stored = srv
        .state()
        .store
        .get("default", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_used_at, None, "no write per request");
    srv.restart().await;
    let api = Api::new(srv.url());
    let after = api.get(&format!("/v1/tokens/{id}"), &owner).await.body["last_used_at"].clone();
    assert!(after.is_string(), "flushed at shutdown");
}

async fn parallel_regenerates_leave_exactly_one_current_value(srv: TestServer) {
    let api = std::sync::Arc::new(Api::new(srv.url()));
    let owner = srv.owner_token();
    let (id, _) = api.create_role(&owner, "contended", "read-only").await;
    let mut tasks = vec![];
    for _ in 0..12 {
        let (api, owner, id) = (api.clone(), owner.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = api
                .post(&format!("/v1/tokens/{id}/regenerate"), &owner, json!({}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body["secret"].as_str().unwrap().to_string()
        }));
    }
    let mut values = vec![];
    for t in tasks {
        values.push(t.await.unwrap());
    }
    let mut valid = 0;
    for v in &values {
        if api.verify(v).await == "VALID" {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "exactly one current value");
    assert_eq!(
        api.get(&format!("/v1/tokens/{id}"), &owner).await.body["generation"],
        12
    );
}

async fn verify_checks_permissions_and_resources(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, acct) = api
        .create(&owner, json!({"name": "acct", "role": "accounting", "resources": [{"type": "site", "id": "s-1"}], "lifetime": "1h"}))
        .await;
    let check = |permission: Option<&str>, resource: Option<serde_json::Value>| {
        let mut body = json!({"token": acct});
        if let Some(p) = permission {
            body["permission"] = json!(p);
        }
        if let Some(r) = resource {
            body["resource"] = r;
        }
        api.raw(Method::POST, "/v1/verify", None, Some(body))
    };
    let ok = check(
        Some("billing:read"),
        Some(json!({"type": "site", "id": "s-1"})),
    )
    .await;
    assert_eq!(ok.body["code"], "VALID");
    assert_eq!(
        ok.body["token"]["permissions"],
        json!(["billing:read", "usage:read"])
    );
    assert!(!ok.text.contains(&acct));
    assert_eq!(
        check(Some("billing:write"), None).await.body["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    assert_eq!(
        check(None, Some(json!({"type": "site", "id": "s-2"})))
            .await
            .body["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    let bad = check(Some("no colon"), None).await;
    bad.assert_problem(422, "invalid_permission");

    // The answer describes exactly the token verified, whether its grants are
    // shared with other tokens of its role or its own (scopes, resources).
    let (_, viewer_a) = api.create_role(&owner, "viewer \"a\"", "read-only").await;
    let (_, viewer_b) = api.create_role(&owner, "viewer-b", "read-only").await;
    let (_, scoped) = api
        .create(&owner, json!({"name": "scoped", "scopes": ["usage:read"], "resources": [{"type": "site", "id": "s-9"}], "lifetime": "2h", "labels": {"k": "v"}}))
        .await;
    for value in [&viewer_a, &viewer_b, &scoped, &acct, &viewer_a] {
        let r = api.verify_reply(value).await;
        assert_eq!(r.body["code"], "VALID", "{}", r.text);
        let answer: tokenops_types::VerifyResponse = serde_json::from_str(&r.text).unwrap();
        let token = answer.token.expect("a valid answer describes the token");
        let stored = api.get(&format!("/v1/tokens/{}", token.id), &owner).await;
        assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
        let view = &stored.body;
        assert_eq!(token.name, view["name"].as_str().unwrap());
        assert_eq!(token.project, view["project"].as_str().unwrap());
        assert_eq!(token.role.as_deref(), view["role"].as_str());
        assert_eq!(json!(token.resources), view["resources"]);
        assert_eq!(json!(token.masked), view["masked"]);
        assert_eq!(json!(token.expires_at), view["expires_at"]);
        assert_eq!(token.masked, tokenops_types::secret::mask(value));
        let scoped_token = *value == scoped;
        assert_eq!(
            token.permissions.contains(&"usage:read".to_string()),
            scoped_token || *value == acct,
            "{:?}",
            token.permissions
        );
    }
}

async fn operations_endpoints_answer(srv: TestServer) {
    let api = Api::new(srv.url());
    assert_eq!(
        api.raw(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.raw(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    api.verify("tko_bad").await;
    let m = api.raw(Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("tokenops_verifications_total{code=\"MALFORMED\"} 1"),
        "{}",
        m.text
    );
    assert!(m.text.contains("tokenops_http_requests_total"));
    let doc = api.raw(Method::GET, "/openapi.json", None, None).await;
    for path in [
        "/v1/tokens",
        "/v1/tokens/{id}",
        "/v1/tokens/{id}/regenerate",
        "/v1/tokens/{id}/revoke",
        "/v1/tokens/revoke",
        "/v1/whoami",
        "/v1/verify",
        "/v1/audit",
    ] {
        assert!(
            doc.body["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let srv = TestServer::with_config(
        Backend::Sqlite,
        "[rate_limit]\nrequests_per_second = 1\nburst = 2\n",
    )
    .await
    .unwrap();
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let mut statuses = vec![];
    let mut retry_after = None;
    for _ in 0..3 {
        let r = api.get("/v1/whoami", &owner).await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            r.assert_problem(429, "rate_limited");
            retry_after = r
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    assert!(retry_after.is_some_and(|s| s >= 1));
    let r = api
        .raw(
            Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": owner})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["code"], "RATE_LIMITED");
    assert!(r.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn a_policy_without_required_expiry_allows_eternal_tokens() {
    let srv = TestServer::with_config(Backend::Sqlite, "require_expiry = false\n")
        .await
        .unwrap();
    let api = Api::new(srv.url());
    let (id, secret) = api
        .create(
            &srv.owner_token(),
            json!({"name": "forever", "role": "read-only"}),
        )
        .await;
    assert_eq!(api.verify(&secret).await, "VALID");
    assert!(
        api.get(&format!("/v1/tokens/{id}"), &srv.owner_token())
            .await
            .body
            .get("expires_at")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_flush_writes_many_tokens_and_never_goes_backwards() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(srv) = TestServer::start(backend, "").await else {
            continue;
        };
        let store = &srv.state().store;
        let api = Api::new(srv.url());
        let owner = srv.owner_token();
        let mut ids = vec![];
        for i in 0..3 {
            ids.push(
                api.create_role(&owner, &format!("lu{i}"), "read-only")
                    .await
                    .0,
            );
        }
        // 1,203 entries: more than one statement's worth, most for unknown ids
        let mut batch: Vec<(String, i64)> =
            (0..1200).map(|i| (format!("tok_missing{i}"), 5)).collect();
        batch.extend(ids.iter().map(|id| (id.clone(), 2_000_000)));
        store.flush_last_used(&batch).await.unwrap();
        let older: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), 1_000_000)).collect();
        store.flush_last_used(&older).await.unwrap();
        for id in &ids {
            let row = store.get("default", id).await.unwrap().unwrap();
            assert_eq!(
                row.last_used_at,
                Some(2_000_000),
                "{backend:?}: a later time is kept"
            );
        }
    }
}

/// With a 1 s cache TTL: a token in steady use is revalidated in the
/// background and never read on the request path again, while a revocation
/// written where this server does not hear of it (another replica whose
/// notification was lost) still shows within the TTL.
async fn cached_tokens_in_use_outlive_the_ttl_and_changes_behind_the_cache_show(backend: Backend) {
    let Some(srv) = TestServer::with_config(backend, "cache_ttl = \"1s\"\n").await else {
        return;
    };
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, used) = api.create_role(&owner, "used", "read-only").await;
    let (behind_id, behind) = api.create_role(&owner, "behind", "read-only").await;
    assert_eq!(api.verify(&behind).await, "VALID");
    let verifier = &srv.state().verifier;
    let before = verifier.storage_lookups();
    assert_eq!(api.verify(&used).await, "VALID");
    assert_eq!(verifier.storage_lookups(), before + 1);

    let audit = tokenops_server::store::NewAudit {
        project: "default".into(),
        actor: "another replica".into(),
        action: "token.revoke",
        token_id: Some(behind_id.clone()),
        detail: json!({}),
    };
    srv.state()
        .store
        .revoke("default", &behind_id, audit)
        .await
        .unwrap()
        .unwrap();
    let revoked_seen = std::time::Instant::now();
    eventually(
        Duration::from_secs(3),
        "the revocation behind the cache shows",
        || {
            let api = &api;
            let behind = &behind;
            async move { api.verify(behind).await == "REVOKED" }
        },
    )
    .await;
    assert!(revoked_seen.elapsed() < Duration::from_millis(1500));

    // 3.2 TTLs of steady use: without revalidation each TTL costs a read.
    let lookups = verifier.storage_lookups();
    let until = std::time::Instant::now() + Duration::from_millis(3200);
    while std::time::Instant::now() < until {
        assert_eq!(api.verify(&used).await, "VALID");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reads = verifier.storage_lookups() - lookups;
    assert!(
        reads <= 1,
        "{reads} storage reads for a token in steady use over three TTLs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_in_use_outlive_the_ttl_sqlite() {
    cached_tokens_in_use_outlive_the_ttl_and_changes_behind_the_cache_show(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_in_use_outlive_the_ttl_postgres() {
    cached_tokens_in_use_outlive_the_ttl_and_changes_behind_the_cache_show(Backend::Postgres).await;
}
