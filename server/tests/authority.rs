//! Who may do what (DESIGN.md): each problem a security review found, as a
//! scenario over real HTTP on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{Api, Reply, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokenops_testkit::{Backend, TestServer, on_both_backends};

on_both_backends!(
    read_only_sees_no_token_and_no_audit_entry,
    token_admin_creates_product_tokens_but_never_management_ones,
    a_narrow_token_cannot_touch_a_stronger_one,
    a_selector_never_revokes_the_caller_and_unknown_ids_are_reported,
    an_idempotency_key_belongs_to_its_caller,
    ownership_labels_are_set_once,
    no_error_quotes_a_value_that_was_sent,
    nul_bytes_are_refused_alike_on_every_backend,
    a_previous_value_verifies_as_itself_during_its_grace_period,
    an_organisation_token_starts_a_project,
    any_token_reads_the_policy,
    refusals_are_audited_and_failed_authentications_counted,
    revoke_after_brings_the_expiry_forward,
    unknown_values_are_remembered_without_a_storage_read,
);

async fn id_of(api: &Api, token: &str) -> String {
    api.get("/v1/whoami", token).await.body["id"]
        .as_str()
        .expect("whoami id")
        .to_string()
}

async fn read_only_sees_no_token_and_no_audit_entry(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, partner) = api
        .create(
            &owner,
            json!({"name": "partner", "role": "read-only", "lifetime": "1h",
                   "resources": [{"type": "device", "id": "SN-42"}]}),
        )
        .await;
    api.get("/v1/tokens", &partner)
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/audit", &partner)
        .await
        .assert_problem(403, "forbidden");
    let owner_id = id_of(&api, &owner).await;
    api.get(&format!("/v1/tokens/{owner_id}"), &partner)
        .await
        .assert_problem(403, "forbidden");
    // …while it still reads devices: *:read is a product permission.
    let r = api
        .raw(
            Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": partner, "permission": "devices:read",
                        "resource": {"type": "device", "id": "SN-42"}})),
        )
        .await;
    assert_eq!(r.body["code"], "VALID", "{}", r.text);
}

async fn token_admin_creates_product_tokens_but_never_management_ones(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, admin) = api.create_role(&owner, "automation", "token-admin").await;
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "grafana", "role": "read-only", "lifetime": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "billing", "scopes": ["billing:*", "*:read"], "lifetime": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "role": "owner", "lifetime": "1h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    assert_eq!(r.field(), "role");
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "x", "scopes": ["audit:read"], "lifetime": "1h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    assert_eq!(r.field(), "scopes");
    // It may create another token-admin (management permissions it holds itself).
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "peer", "role": "token-admin", "lifetime": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A token issued by a non-owner cannot outlive its issuer.
    let r = api
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "long", "role": "read-only", "lifetime": "2000h"}),
        )
        .await;
    r.assert_problem(403, "permission_escalation");
    assert_eq!(r.field(), "lifetime");
}

async fn a_narrow_token_cannot_touch_a_stronger_one(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let owner_id = id_of(&api, &owner).await;
    let (_, site_admin) = api
        .create(
            &owner,
            json!({"name": "site-admin", "role": "token-admin", "lifetime": "1h",
                   "resources": [{"type": "site", "id": "s-1"}]}),
        )
        .await;
    let (_, revoker) = api
        .create(
            &owner,
            json!({"name": "revoker", "scopes": ["tokens:revoke"], "lifetime": "1h"}),
        )
        .await;
    for caller in [&site_admin, &revoker] {
        api.post(&format!("/v1/tokens/{owner_id}/revoke"), caller, json!({}))
            .await
            .assert_problem(403, "permission_escalation");
        let r = api
            .raw(
                Method::DELETE,
                &format!("/v1/tokens/{owner_id}"),
                Some(caller),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let r = api
            .patch(
                &format!("/v1/tokens/{owner_id}"),
                caller,
                json!({"name": "pwned"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let r = api
            .post("/v1/tokens/revoke", caller, json!({"ids": [owner_id]}))
            .await;
        assert_eq!(r.body["revoked"], 0, "{}", r.text);
        assert_eq!(r.body["skipped"], json!([owner_id]));
    }
    assert_eq!(api.verify(&owner).await, "VALID");
    // Within its site, the site admin does act.
    let (site_token, _) = api
        .create(
            &site_admin,
            json!({"name": "on-site", "role": "read-only", "lifetime": "30m",
                   "resources": [{"type": "site", "id": "s-1"}]}),
        )
        .await;
    let r = api
        .post(
            &format!("/v1/tokens/{site_token}/revoke"),
            &site_admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Any token may revoke itself, even without tokens:revoke.
    let (_, reader) = api.create_role(&owner, "reader", "read-only").await;
    let reader_id = id_of(&api, &reader).await;
    let r = api
        .post(
            &format!("/v1/tokens/{reader_id}/revoke"),
            &reader,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(api.verify(&reader).await, "REVOKED");
}

async fn a_selector_never_revokes_the_caller_and_unknown_ids_are_reported(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (admin_id, admin) = api
        .create(
            &owner,
            json!({"name": "admin", "role": "token-admin", "lifetime": "1h", "labels": {"team": "web"}}),
        )
        .await;
    let (a, _) = api
        .create(
            &admin,
            json!({"name": "a", "role": "read-only", "lifetime": "30m", "labels": {"team": "web"}}),
        )
        .await;
    let r = api
        .post("/v1/tokens/revoke", &admin, json!({"selector": "team=web"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["revoked"], 1, "{}", r.text);
    assert_eq!(r.body["skipped"], json!([admin_id]));
    assert_eq!(api.verify(&admin).await, "VALID", "no self-lockout");
    let typo = "tok_0000000000000000";
    let (b, _) = api
        .create(
            &admin,
            json!({"name": "b", "role": "read-only", "lifetime": "30m"}),
        )
        .await;
    let r = api
        .post("/v1/tokens/revoke", &admin, json!({"ids": [typo, b, a]}))
        .await;
    assert_eq!(r.body["revoked"], 1, "{}", r.text);
    assert_eq!(r.body["not_found"], json!([typo]));
    assert_eq!(r.body["skipped"], json!([]));
}

async fn an_idempotency_key_belongs_to_its_caller(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, operator) = api.create_role(&owner, "operator", "token-admin").await;
    let (_, tenant) = api.create_role(&owner, "co-tenant", "token-admin").await;
    let body = json!({"name": "app", "role": "read-only", "lifetime": "30m"});
    let send = |token: String| {
        let api = &api;
        let body = body.clone();
        async move {
            Api::reply(
                api.http
                    .post(format!("{}/v1/tokens", api.url))
                    .header("x-api-key", token)
                    .header("idempotency-key", "uid-1234")
                    .json(&body),
            )
            .await
        }
    };
    let first = send(operator.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let foreign = send(tenant).await;
    foreign.assert_problem(409, "idempotency_key_reused");
    assert!(!foreign.text.contains("tko_"), "{}", foreign.text);
    let first_secret = first.body["secret"].as_str().unwrap();
    assert_eq!(
        api.verify(first_secret).await,
        "VALID",
        "holder not cut off"
    );
    let again = send(operator).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["token"]["id"], first.body["token"]["id"]);
}

async fn ownership_labels_are_set_once(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, admin) = api.create_role(&owner, "admin", "token-admin").await;
    let (managed, _) = api
        .create(
            &owner,
            json!({"name": "m", "role": "read-only", "lifetime": "30m",
                   "labels": {"managed-by": "tokenops-operator", "tokenops.dev/uid": "u-1"}}),
        )
        .await;
    for labels in [
        json!({"managed-by": "terraform", "tokenops.dev/uid": "u-1"}),
        json!({"tokenops.dev/uid": "u-1"}),
        json!({}),
    ] {
        let r = api
            .patch(
                &format!("/v1/tokens/{managed}"),
                &admin,
                json!({"labels": labels}),
            )
            .await;
        r.assert_problem(422, "immutable_field");
        assert_eq!(r.field(), "labels");
    }
    // Other labels still change; the ownership ones stay as they are.
    let r = api
        .patch(
            &format!("/v1/tokens/{managed}"),
            &admin,
            json!({"labels": {"managed-by": "tokenops-operator", "tokenops.dev/uid": "u-1", "team": "a"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A token without owner labels can be adopted once (Terraform import).
    let (free, _) = api
        .create(
            &owner,
            json!({"name": "f", "role": "read-only", "lifetime": "30m"}),
        )
        .await;
    let r = api
        .patch(
            &format!("/v1/tokens/{free}"),
            &admin,
            json!({"labels": {"managed-by": "terraform"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    api.patch(
        &format!("/v1/tokens/{free}"),
        &admin,
        json!({"labels": {"managed-by": "tokenops-operator"}}),
    )
    .await
    .assert_problem(422, "immutable_field");
}

async fn no_error_quotes_a_value_that_was_sent(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, leaked) = api.create_role(&owner, "leaked", "read-only").await;
    let secret_part = &leaked[4..20];
    let replies: Vec<Reply> = vec![
        api.post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": "owner", "lifetime": "1h", leaked.clone(): 1}),
        )
        .await,
        api.post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": "owner", "lifetime": "1h", "labels": {format!("{leaked}!"): "v"}}),
        )
        .await,
        api.post("/v1/tokens/revoke", &owner, json!({"selector": leaked}))
            .await,
        api.post(
            "/v1/tokens/revoke",
            &owner,
            json!({"selector": format!("team={leaked},x")}),
        )
        .await,
        api.get(&format!("/v1/tokens?status={leaked}"), &owner).await,
        api.get(&format!("/v1/tokens?label={leaked}"), &owner).await,
        api.post("/v1/tokens/revoke", &owner, json!({"ids": [leaked]}))
            .await,
        api.post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": leaked, "lifetime": "1h"}),
        )
        .await,
        api.post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": "owner", "lifetime": leaked}),
        )
        .await,
    ];
    for r in replies {
        assert!(
            !r.text.contains(secret_part),
            "an answer quoted the value: {}",
            r.text
        );
    }
}

async fn nul_bytes_are_refused_alike_on_every_backend(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let r = api
        .post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": "read-only", "lifetime": "1h", "description": "a\u{0}b"}),
        )
        .await;
    r.assert_problem(422, "invalid_field");
    assert_eq!(r.field(), "description");
    for path in ["/v1/tokens/tok_%00", "/v1/tokens/tok_aaaaaaaaaaaaaaa%00"] {
        api.get(path, &owner).await.assert_problem(404, "not_found");
    }
    let r = api.get("/v1/tokens?name=a%00b", &owner).await;
    r.assert_problem(422, "invalid_field");
    let r = api.get("/v1/audit?token_id=a%00b", &owner).await;
    r.assert_problem(422, "invalid_field");
}

async fn a_previous_value_verifies_as_itself_during_its_grace_period(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, old) = api
        .create(
            &owner,
            json!({"name": "app", "role": "read-only", "lifetime": "720h", "labels": {"app": "mobile"}}),
        )
        .await;
    let r = api
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            &owner,
            json!({"grace_period": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let new = r.body["secret"].as_str().unwrap().to_string();
    let new_masked = r.body["token"]["masked"].as_str().unwrap().to_string();
    let previous = api.verify_reply(&old).await;
    assert_eq!(previous.body["code"], "VALID");
    let t = &previous.body["token"];
    assert_eq!(t["previous"], true, "{}", previous.text);
    assert_eq!(t["labels"]["app"], "mobile");
    assert_ne!(t["masked"], json!(new_masked));
    assert!(
        t["masked"]
            .as_str()
            .unwrap()
            .ends_with(&old[old.len() - 4..])
    );
    let ends = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().unwrap()).unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (ends.with_timezone(&chrono::Utc) - in_an_hour)
            .num_seconds()
            .abs()
            < 60,
        "the previous value's own end, not the token's: {ends}"
    );
    let current = api.verify_reply(&new).await;
    assert_eq!(current.body["token"].get("previous"), None);
    assert_eq!(current.body["token"]["masked"], json!(new_masked));
    assert_eq!(current.body["token"]["labels"]["app"], "mobile");
}

async fn an_organisation_token_starts_a_project(srv: TestServer) {
    let api = Api::new(srv.url());
    let org = srv.bootstrap("*").await;
    let r = api
        .post(
            "/v1/tokens",
            &org,
            json!({"name": "payments-admin", "role": "token-admin", "lifetime": "720h", "project": "payments"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let payments_admin = r.body["secret"].as_str().unwrap().to_string();
    let (_, app) = api
        .create(
            &payments_admin,
            json!({"name": "app", "role": "read-only", "lifetime": "1h"}),
        )
        .await;
    assert_eq!(
        api.get("/v1/whoami", &app).await.body["project"],
        "payments"
    );
    // Without a project an organisation token must say which.
    api.post(
        "/v1/tokens",
        &org,
        json!({"name": "x", "role": "read-only", "lifetime": "1h"}),
    )
    .await
    .assert_problem(422, "required");
    // It lists every project, or one.
    let all = api.get("/v1/tokens?limit=500", &org).await;
    let projects: std::collections::HashSet<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["project"].as_str().unwrap())
        .collect();
    assert!(
        projects.contains("payments") && projects.contains("default"),
        "{projects:?}"
    );
    let one = api.get("/v1/tokens?project=payments", &org).await;
    assert!(
        one.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["project"] == "payments")
    );
    let audit = api.get("/v1/audit", &org).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    // A project token neither sees nor names another project.
    let owner = srv.owner_token();
    api.get("/v1/tokens?project=payments", &owner)
        .await
        .assert_problem(403, "permission_escalation");
    api.post(
        "/v1/tokens",
        &owner,
        json!({"name": "x", "role": "read-only", "lifetime": "1h", "project": "*"}),
    )
    .await
    .assert_problem(403, "permission_escalation");
}

async fn any_token_reads_the_policy(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, reader) = api.create_role(&owner, "reader", "read-only").await;
    let r = api.get("/v1/policy", &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["roles"]["token-admin"]["grants"], json!(["*"]));
    assert_eq!(
        r.body["roles"]["owner"]["permissions"],
        json!(["*", "tokens:*", "audit:read"])
    );
    assert_eq!(r.body["require_expiry"], true);
    assert_eq!(r.body["max_lifetime"], "8760h");
    assert_eq!(r.body["retention"], "720h");
    assert_eq!(
        r.body["resource_types"],
        json!(["device", "device_group", "site"])
    );
    api.get("/v1/policy", "")
        .await
        .assert_problem(401, "unauthenticated");
    // The expiry rule says which setting allows tokens without expiry.
    let r = api
        .post(
            "/v1/tokens",
            &owner,
            json!({"name": "x", "role": "read-only"}),
        )
        .await;
    r.assert_problem(422, "expiry_required");
    assert!(r.text.contains("require_expiry = false"), "{}", r.text);
}

async fn refusals_are_audited_and_failed_authentications_counted(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let owner_id = id_of(&api, &owner).await;
    let (admin_id, admin) = api.create_role(&owner, "admin", "token-admin").await;
    api.post(&format!("/v1/tokens/{owner_id}/revoke"), &admin, json!({}))
        .await
        .assert_problem(403, "permission_escalation");
    let audit = api
        .get(&format!("/v1/audit?actor={admin_id}"), &owner)
        .await;
    let first = &audit.body["items"][0];
    assert_eq!(first["action"], "token.revoke.denied", "{}", audit.text);
    assert_eq!(first["token_id"], json!(owner_id));
    let unknown = "tko_000000000000000000000000000000";
    for _ in 0..2 {
        api.get("/v1/tokens", unknown)
            .await
            .assert_problem(401, "unauthenticated");
    }
    let metrics = api.raw(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("tokenops_authentication_failures_total{reason=\"malformed\"} 2")
            || l.starts_with("tokenops_authentication_failures_total{reason=\"unknown\"} 2")),
        "{metrics}"
    );
    assert!(
        metrics.contains("tokenops_refused_actions_total{action=\"revoke\"} 1"),
        "{metrics}"
    );
}

async fn revoke_after_brings_the_expiry_forward(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, value) = api.create_role(&owner, "old", "read-only").await;
    let r = api
        .post(
            &format!("/v1/tokens/{id}/revoke"),
            &owner,
            json!({"after": "1h"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "active");
    let ends = chrono::DateTime::parse_from_rfc3339(r.body["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(
        (ends - (chrono::Utc::now() + chrono::Duration::hours(1)))
            .num_seconds()
            .abs()
            < 60
    );
    assert_eq!(api.verify(&value).await, "VALID");
    api.post(
        &format!("/v1/tokens/{id}/revoke"),
        &owner,
        json!({"after": "forever"}),
    )
    .await
    .assert_problem(422, "invalid_duration");
    let r = api
        .post(&format!("/v1/tokens/{id}/revoke"), &owner, json!({}))
        .await;
    assert_eq!(r.body["status"], "revoked");
    // Revoked tokens leave the default list; `all=true` or a status shows them.
    let listed = |r: &Reply| -> bool {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(id))
    };
    assert!(!listed(&api.get("/v1/tokens", &owner).await));
    assert!(listed(&api.get("/v1/tokens?all=true", &owner).await));
    assert!(listed(&api.get("/v1/tokens?status=revoked", &owner).await));
}

async fn unknown_values_are_remembered_without_a_storage_read(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, value) = api.create_role(&owner, "gone", "read-only").await;
    let id = id_of(&api, &value).await;
    let r = api
        .raw(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.verify(&value).await, "NOT_FOUND");
    let reads = srv.state().verifier.storage_lookups();
    for _ in 0..20 {
        assert_eq!(api.verify(&value).await, "NOT_FOUND");
    }
    // On PostgreSQL this replica also hears its own delete notification,
    // which empties the negative cache once: at most one more read.
    let extra = srv.state().verifier.storage_lookups() - reads;
    assert!(
        extra <= 1,
        "an unknown value seen recently costs no storage read ({extra} reads for 20 checks)"
    );
}

mod retention {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::ended_tokens_are_deleted_after_the_retention(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::ended_tokens_are_deleted_after_the_retention(super::Backend::Postgres).await;
    }
}

async fn ended_tokens_are_deleted_after_the_retention(backend: Backend) {
    let Some(srv) = TestServer::with_config(backend, "retention = \"50ms\"").await else {
        return;
    };
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (kept, _) = api.create_role(&owner, "kept", "read-only").await;
    let (gone, _) = api.create_role(&owner, "gone", "read-only").await;
    let r = api
        .post(&format!("/v1/tokens/{gone}/revoke"), &owner, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    eventually(
        Duration::from_secs(10),
        "the revoked token is purged",
        || {
            let state = srv.state().clone();
            let gone = gone.clone();
            async move {
                tokenops_server::service::purge_ended(&state).await.unwrap();
                state.store.get_by_id(&gone).await.unwrap().is_none()
            }
        },
    )
    .await;
    assert!(srv.state().store.get_by_id(&kept).await.unwrap().is_some());
    let audit = api.get(&format!("/v1/audit?token_id={gone}"), &owner).await;
    let actions: Vec<&Value> = audit.body["items"].as_array().unwrap().iter().collect();
    assert_eq!(actions.len(), 2, "its audit events stay: {}", audit.text);
}
