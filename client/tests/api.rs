//! Every client method against a real tokenops server over HTTP (SQLite, and
//! PostgreSQL when one is available).

mod support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{
    BulkRevoke, Client, CreateTokenRequest, Error, Labels, ResourceRef, RetryPolicy, TokenStatus,
    VerifyCode, codes,
};
use tokenops_testkit::TestServer;

fn owner(server: &TestServer) -> Client {
    support::client(&server.url(), &server.owner_token(), RetryPolicy::none())
}

fn secret(s: &SecretString) -> SecretString {
    s.clone()
}

/// The whole life of a token through the client, on any backend.
async fn token_lifecycle(server: &TestServer) {
    let client = owner(server);

    // create
    let created = client
        .create_token("ci-deployer")
        .description("deploys from CI")
        .role("read-only")
        .scope("billing:read")
        .resource(ResourceRef::new("site", "s-1"))
        .lifetime(Duration::from_secs(30 * 86_400))
        .label("team", "web")
        .label("env", "dev")
        .await
        .unwrap();
    let t = &created.token;
    assert!(t.id.starts_with("tok_"), "{}", t.id);
    assert_eq!(t.name, "ci-deployer");
    assert_eq!(t.description.as_deref(), Some("deploys from CI"));
    assert_eq!(t.role.as_deref(), Some("read-only"));
    assert_eq!(t.scopes, vec!["billing:read".to_string()]);
    assert_eq!(t.status, TokenStatus::Active);
    assert_eq!(t.generation, 0);
    assert_eq!(t.labels.get("team").map(String::as_str), Some("web"));
    let expires = t.expires_at.expect("a lifetime sets an expiry");
    assert!(
        (expires - Utc::now() - TimeDelta::days(30))
            .num_seconds()
            .abs()
            < 120
    );
    let value = created.secret.expose_secret().to_string();
    assert!(value.starts_with("tko_"));
    assert!(
        !t.masked.contains(&value[4..]),
        "masked form must not contain the value"
    );
    assert!(
        !format!("{created:?}").contains(&value),
        "Debug must not show the secret"
    );

    // get
    let got = client.get_token(&t.id).await.unwrap();
    assert_eq!(&got, t);

    // list (one page) and filters
    let page = client.list_tokens().name("ci-deployer").await.unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [t.id.as_str()]
    );
    let page = client
        .list_tokens()
        .label("team", "web")
        .status(TokenStatus::Active)
        .await
        .unwrap();
    assert!(page.items.iter().any(|x| x.id == t.id));
    let page = client.list_tokens().selector("team=nobody").await.unwrap();
    assert!(page.items.is_empty());

    // update
    let updated = client
        .update_token(&t.id)
        .name("ci-deployer-2")
        .clear_description()
        .labels(Labels::from([("team".to_string(), "platform".to_string())]))
        .await
        .unwrap();
    assert_eq!(updated.name, "ci-deployer-2");
    assert_eq!(updated.description, None);
    assert_eq!(updated.labels.len(), 1);
    assert_eq!(
        updated.role.as_deref(),
        Some("read-only"),
        "permissions do not change"
    );

    // verify: valid, with permission, and without
    let answer = client
        .verify(secret(&created.secret))
        .permission("billing:read")
        .await
        .unwrap();
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.code, VerifyCode::Valid);
    assert_eq!(
        answer.token.as_ref().map(|v| v.id.as_str()),
        Some(t.id.as_str())
    );
    let answer = client
        .verify(secret(&created.secret))
        .permission("tokens:create")
        .await
        .unwrap();
    assert!(!answer.valid);
    assert_eq!(answer.code, VerifyCode::InsufficientPermissions);
    let answer = client
        .verify(secret(&created.secret))
        .permission("billing:read")
        .resource(ResourceRef::new("site", "s-2"))
        .await
        .unwrap();
    assert!(!answer.valid, "another site is out of bounds: {answer:?}");

    // whoami as the new token
    let as_token = client.with_token(created.secret.clone()).unwrap();
    let me = as_token.whoami().await.unwrap();
    assert_eq!(me.id, t.id);

    // regenerate: same id, new value, old value ends at once
    let renewed = client
        .regenerate_token(&t.id)
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(renewed.token.id, t.id);
    assert_eq!(renewed.token.generation, 1);
    assert_ne!(
        renewed.secret.expose_secret(),
        created.secret.expose_secret()
    );
    assert!(renewed.token.regenerated_at.is_some());
    let old = client.verify(secret(&created.secret)).await.unwrap();
    assert!(
        !old.valid,
        "old value must stop working without a grace period: {old:?}"
    );
    let new = client.verify(secret(&renewed.secret)).await.unwrap();
    assert!(new.valid);

    // regenerate with a grace period: the previous value keeps verifying
    let again = client
        .regenerate_token(&t.id)
        .grace_period(Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(again.token.generation, 2);
    assert!(again.token.previous_valid_until.is_some());
    assert!(
        client.verify(secret(&renewed.secret)).await.unwrap().valid,
        "grace period"
    );
    assert!(client.verify(secret(&again.secret)).await.unwrap().valid);

    // audit
    let events = client.audit().token_id(&t.id).all().await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"token.create"), "{actions:?}");
    assert!(actions.contains(&"token.regenerate"), "{actions:?}");
    assert!(
        events
            .iter()
            .all(|e| e.token_id.as_deref() == Some(t.id.as_str()))
    );
    let page = client.audit().limit(1).await.unwrap();
    assert_eq!(page.items.len(), 1);

    // revoke: status changes, value stops verifying, revoking again is fine
    let revoked = client.revoke_token(&t.id).await.unwrap();
    assert_eq!(revoked.status, TokenStatus::Revoked);
    assert!(revoked.revoked_at.is_some());
    let answer = client.verify(secret(&again.secret)).await.unwrap();
    assert_eq!(answer.code, VerifyCode::Revoked);
    assert_eq!(
        client.revoke_token(&t.id).await.unwrap().status,
        TokenStatus::Revoked
    );
    let err = client.regenerate_token(&t.id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { code, .. } if code == codes::TOKEN_REVOKED),
        "{err:?}"
    );

    // delete: gone for good
    client.delete_token(&t.id).await.unwrap();
    let err = client.get_token(&t.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), Some(codes::NOT_FOUND));
    let err = client.delete_token(&t.id).await.unwrap_err();
    assert!(
        err.is_not_found(),
        "a first-attempt 404 on delete is an error: {err:?}"
    );
}

#[tokio::test]
async fn token_lifecycle_on_sqlite() {
    let server = TestServer::sqlite().await;
    token_lifecycle(&server).await;
}

#[tokio::test]
async fn token_lifecycle_on_postgres() {
    let Some(server) = TestServer::postgres().await else {
        return;
    };
    token_lifecycle(&server).await;
}

#[tokio::test]
async fn listing_follows_pages_and_bulk_revoke_counts() {
    let server = TestServer::sqlite().await;
    let client = owner(&server);
    let mut ids = Vec::new();
    for i in 0..5 {
        let team = if i < 3 { "red" } else { "blue" };
        let t = client
            .create_token(format!("t{i}"))
            .role("read-only")
            .lifetime(Duration::from_secs(3600))
            .label("team", team)
            .await
            .unwrap();
        ids.push(t.token.id);
    }

    let first = client
        .list_tokens()
        .label("team", "red")
        .limit(2)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let next = first.next_page_token.clone().expect("a second page");
    let second = client
        .list_tokens()
        .label("team", "red")
        .limit(2)
        .page_token(next)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_page_token, None);

    let all = client.list_tokens().limit(2).all().await.unwrap();
    for id in &ids {
        assert_eq!(
            all.iter().filter(|t| &t.id == id).count(),
            1,
            "{id} exactly once"
        );
    }
    let same = client
        .list_all_tokens(client.list_tokens().label("team", "blue").limit(1))
        .await
        .unwrap();
    assert_eq!(same.len(), 2);

    let n = client
        .revoke_tokens(BulkRevoke::selector("team=red"))
        .await
        .unwrap()
        .revoked;
    assert_eq!(n, 3);
    let n = client
        .revoke_tokens(BulkRevoke::selector("team=red"))
        .await
        .unwrap()
        .revoked;
    assert_eq!(n, 0, "only active tokens count");
    let n = client
        .revoke_tokens(BulkRevoke::ids([ids[3].clone(), ids[4].clone()]))
        .await
        .unwrap()
        .revoked;
    assert_eq!(n, 2);
    let revoked = client
        .list_tokens()
        .status(TokenStatus::Revoked)
        .all()
        .await
        .unwrap();
    assert_eq!(revoked.iter().filter(|t| ids.contains(&t.id)).count(), 5);

    let err = client
        .revoke_tokens(BulkRevoke::selector("not a selector"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err:?}");
}

#[tokio::test]
async fn errors_carry_the_servers_codes() {
    let server = TestServer::sqlite().await;
    let client = owner(&server);

    // 422 with the field at fault
    let err = client
        .create_token("too-long")
        .role("read-only")
        .lifetime(Duration::from_secs(400 * 86_400))
        .await
        .unwrap_err();
    match &err {
        Error::Validation {
            code,
            field,
            status,
            ..
        } => {
            assert_eq!(code, codes::LIFETIME_EXCEEDS_POLICY);
            assert_eq!(field.as_deref(), Some("lifetime"));
            assert_eq!(*status, 422);
        }
        other => panic!("{other:?}"),
    }
    let bad = CreateTokenRequest {
        name: "x".into(),
        role: Some("read-only".into()),
        lifetime: Some("5 minutes".into()),
        ..Default::default()
    };
    let err = client.create_token_from(bad).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::INVALID_DURATION), "{err:?}");
    let err = client
        .create_token("")
        .role("read-only")
        .lifetime(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field: Some(f), .. } if f == "name"),
        "{err:?}"
    );

    // 401: a well-formed value the server never issued
    let stranger = client
        .with_token(SecretString::from(tokenops_client::secret::generate("tko")))
        .unwrap();
    let err = stranger.whoami().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let anonymous = Client::builder(server.url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(
        anonymous.list_tokens().await.unwrap_err(),
        Error::Unauthorized { .. }
    ));

    // 403: a read-only token cannot create tokens (let alone wider ones)
    let reader = client
        .create_token("reader")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();
    let reader = client.with_token(reader.secret).unwrap();
    let err = reader
        .create_token("wider")
        .role("owner")
        .lifetime(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert!(
        err.code() == Some(codes::FORBIDDEN) || err.code() == Some(codes::PERMISSION_ESCALATION)
    );

    // No error text contains a token value.
    let text = format!("{err} {err:?}");
    assert!(!text.contains("tko_") || text.contains("tko_…"), "{text}");
}

#[tokio::test]
async fn idempotency_keys_make_create_and_regenerate_repeatable() {
    let server = TestServer::sqlite().await;
    let client = owner(&server);
    let create = || {
        client
            .create_token("idem")
            .role("read-only")
            .lifetime(Duration::from_secs(3600))
            .idempotency_key("key-1")
    };

    let first = create().await.unwrap();
    let replay = create().await.unwrap();
    assert_eq!(first.token.id, replay.token.id, "same key, same token");
    assert_ne!(
        first.secret.expose_secret(),
        replay.secret.expose_secret(),
        "a fresh value"
    );
    assert!(
        !client.verify(secret(&first.secret)).await.unwrap().valid,
        "the lost value is invalidated"
    );
    assert!(client.verify(secret(&replay.secret)).await.unwrap().valid);
    assert_eq!(
        client.list_tokens().name("idem").await.unwrap().items.len(),
        1
    );

    let err = client
        .create_token("idem-other")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .idempotency_key("key-1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { code, status: 422, .. } if code == codes::IDEMPOTENCY_KEY_REUSED),
        "{err:?}"
    );

    let regen = || {
        client
            .regenerate_token(&first.token.id)
            .idempotency_key("regen-1")
    };
    let a = regen().await.unwrap();
    let b = regen().await.unwrap();
    assert_eq!(a.token.generation, 1);
    assert_eq!(b.token.generation, 1, "a replay does not regenerate twice");
    assert!(client.verify(secret(&b.secret)).await.unwrap().valid);
}

#[tokio::test]
async fn verify_needs_no_credentials_and_reports_codes() {
    let server = TestServer::sqlite().await;
    let client = owner(&server);
    let anonymous = Client::builder(server.url()).build().unwrap();

    let created = client
        .create_token("v")
        .role("read-only")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();
    let answer = anonymous.verify(created.secret.clone()).await.unwrap();
    assert!(answer.valid);
    let token = answer.token.unwrap();
    assert_eq!(token.id, created.token.id);
    assert!(!token.permissions.is_empty());

    let answer = anonymous
        .verify(SecretString::from("not-a-token"))
        .await
        .unwrap();
    assert_eq!((answer.valid, answer.code), (false, VerifyCode::Malformed));
    let unknown = tokenops_client::secret::generate("tko");
    let answer = anonymous.verify(SecretString::from(unknown)).await.unwrap();
    assert_eq!((answer.valid, answer.code), (false, VerifyCode::NotFound));
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::sqlite().await;
    let anonymous = Client::builder(server.url()).build().unwrap();
    anonymous.health().await.unwrap();
    assert!(anonymous.ready().await.unwrap());
}

#[tokio::test]
async fn expired_tokens_read_as_expired() {
    let server = TestServer::sqlite().await;
    let client = owner(&server);
    let t = client
        .create_token("short")
        .role("read-only")
        .lifetime(Duration::from_secs(1))
        .await
        .unwrap();
    // Wait for the condition (expiry), polling the server rather than sleeping blindly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client.verify(t.secret.clone()).await.unwrap();
        if answer.code == VerifyCode::Expired {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "token never expired: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        client.get_token(&t.token.id).await.unwrap().status,
        TokenStatus::Expired
    );
    let expired = client
        .list_tokens()
        .status(TokenStatus::Expired)
        .await
        .unwrap();
    assert!(expired.items.iter().any(|x| x.id == t.token.id));
}
