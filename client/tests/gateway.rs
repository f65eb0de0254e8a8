//! The tower layer of `tokenops_client::gateway` in an axum service, checking
//! tokens against a real tokenops server: every outcome, the cache and its
//! expiry, and what happens when the server is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Json, Router};
use tokenops_client::gateway::{Gate, GateBuilder, Identity};
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{Client, ResourceRef, RetryPolicy};
use tokenops_testkit::{Backend, TestServer};

/// The owner's client, to create and revoke tokens.
fn admin(srv: &TestServer) -> Client {
    Client::builder(srv.url())
        .token(SecretString::from(srv.owner_token()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// A client for the gate that counts its calls to the server.
fn counting(url: &str) -> (Client, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let client = Client::builder(url)
        .timeout(Duration::from_secs(2))
        .observer(move |a| {
            if a.operation == "verify" {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    (client, calls)
}

/// A service whose one route needs `devices:read` and answers with the identity.
async fn protected(gate: GateBuilder) -> String {
    let gate = gate.build();
    let app = Router::new()
        .route(
            "/whoami",
            get(|Extension(me): Extension<Arc<Identity>>| async move {
                Json(serde_json::json!({
                    "id": me.id, "project": me.project, "name": me.name, "role": me.role,
                }))
            }),
        )
        .layer(gate.require("devices:read"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: serde_json::Value,
    text: String,
}

async fn call(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::Client::new().get(format!("{url}/whoami"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or_default(),
        text,
    }
}

impl Answer {
    fn assert_refused(&self, status: u16, code: &str, detail: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.headers["content-type"], "application/problem+json");
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert!(
            self.body["detail"].as_str().unwrap().contains(detail),
            "{}",
            self.text
        );
    }
}

async fn create(admin: &Client, name: &str, scope: &str, lifetime: Duration) -> (String, String) {
    let t = admin
        .create_token(name)
        .scope(scope)
        .lifetime(lifetime)
        .await
        .unwrap();
    (t.token.id, t.secret.expose_secret().to_string())
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_answers_every_outcome_like_authorize() {
    let srv = TestServer::sqlite().await;
    let admin = admin(&srv);
    let (client, _) = counting(&srv.url());
    let url = protected(Gate::builder(client).cache_ttl(Duration::from_secs(60))).await;
    let (id, reader) = create(&admin, "reader", "devices:read", DAY).await;
    let (_, usage) = create(&admin, "usage", "usage:read", DAY).await;
    let (short_id, short) = create(&admin, "short", "devices:read", Duration::from_secs(1)).await;
    let _ = short_id;

    for auth in [
        ("x-api-key", reader.clone()),
        ("authorization", format!("Bearer {reader}")),
    ] {
        let r = call(&url, &[(auth.0, &auth.1)]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body,
            serde_json::json!({"id": id, "project": "default", "name": "reader", "role": null})
        );
    }
    let mut answers = vec![];
    let r = call(&url, &[]).await;
    r.assert_refused(401, "unauthenticated", "missing credentials");
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="tokenops""#);
    answers.push(r);
    let r = call(&url, &[("x-api-key", &usage)]).await;
    r.assert_refused(403, "forbidden", "devices:read");
    answers.push(r);
    let bad = format!(
        "{}{}",
        &reader[..reader.len() - 1],
        if reader.ends_with('x') { 'y' } else { 'x' }
    );
    let r = call(&url, &[("x-api-key", &bad)]).await;
    r.assert_refused(401, "unauthenticated", "malformed");
    assert_eq!(
        r.headers["www-authenticate"],
        r#"Bearer realm="tokenops", error="invalid_token""#
    );
    answers.push(r);
    let unknown = tokenops_client::secret::generate("tko");
    let r = call(&url, &[("x-api-key", &unknown)]).await;
    r.assert_refused(401, "unauthenticated", "not known");
    answers.push(r);
    // A value first seen after it expired or was revoked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin
        .verify(SecretString::from(short.clone()))
        .await
        .unwrap()
        .valid
    {
        assert!(Instant::now() < deadline, "the short token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = call(&url, &[("x-api-key", &short)]).await;
    r.assert_refused(401, "unauthenticated", "expired");
    answers.push(r);
    let (revoked_id, revoked) = create(&admin, "gone", "devices:read", DAY).await;
    admin.revoke_token(&revoked_id).await.unwrap();
    let r = call(&url, &[("x-api-key", &revoked)]).await;
    r.assert_refused(401, "unauthenticated", "revoked");
    answers.push(r);

    for a in &answers {
        let all = format!("{:?} {}", a.headers, a.text);
        for v in [&reader, &usage, &bad, &unknown, &short, &revoked] {
            assert!(!all.contains(&v[4..20]), "an answer shows a value: {all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_for_the_ttl_and_a_refusal_replaces_them() {
    let srv = TestServer::sqlite().await;
    let admin = admin(&srv);
    let (client, calls) = counting(&srv.url());
    let ttl = Duration::from_millis(400);
    let url = protected(Gate::builder(client).cache_ttl(ttl)).await;
    let (id, reader) = create(&admin, "reader", "devices:read", DAY).await;

    let first = Instant::now();
    for _ in 0..10 {
        assert_eq!(call(&url, &[("x-api-key", &reader)]).await.status, 200);
    }
    if first.elapsed() < ttl {
        assert_eq!(calls.load(Ordering::Relaxed), 1, "one call to the server");
    }
    admin.revoke_token(&id).await.unwrap();
    // Until the cached answer expires, the revoked token still passes here;
    // then the server's refusal replaces it, and is itself cached.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = call(&url, &[("x-api-key", &reader)]).await;
        if r.status == 401 {
            r.assert_refused(401, "unauthenticated", "revoked");
            break;
        }
        assert_eq!(r.status, 200);
        assert!(Instant::now() < deadline, "the cached answer never expired");
    }
    let asked = calls.load(Ordering::Relaxed);
    let r = call(&url, &[("x-api-key", &reader)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        asked,
        "the refusal is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_tokens_get_429_with_retry_after() {
    let srv = TestServer::with_config(
        Backend::Sqlite,
        "[rate_limit]\nrequests_per_second = 1\nburst = 1\n",
    )
    .await
    .unwrap();
    let admin = admin(&srv);
    let (client, _) = counting(&srv.url());
    let url = protected(Gate::builder(client).cache_ttl(Duration::ZERO)).await;
    let (_, reader) = create(&admin, "reader", "devices:read", DAY).await;
    assert_eq!(call(&url, &[("x-api-key", &reader)]).await.status, 200);
    let r = call(&url, &[("x-api-key", &reader)]).await;
    r.assert_refused(429, "rate_limited", "retry after");
    let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_the_layer_fails_closed() {
    let srv = TestServer::sqlite().await;
    let admin = admin(&srv);
    let (_, reader) = create(&admin, "reader", "devices:read", DAY).await;
    let (_, other) = create(&admin, "other", "devices:read", DAY).await;
    let ttl = Duration::from_millis(200);
    let (client, _) = counting(&srv.url());
    let closed = protected(Gate::builder(client.clone()).cache_ttl(ttl)).await;
    let stale = protected(
        Gate::builder(client)
            .cache_ttl(ttl)
            .stale_if_unavailable(Duration::from_secs(60)),
    )
    .await;
    for url in [&closed, &stale] {
        assert_eq!(call(url, &[("x-api-key", &reader)]).await.status, 200);
    }
    srv.stop().await;
    tokio::time::sleep(ttl).await; // the cached answers must be past their time
    let r = call(&closed, &[("x-api-key", &reader)]).await;
    r.assert_refused(503, "unavailable", "cannot be checked");
    // Accepted recently: still accepted while the server is away; others are not.
    assert_eq!(call(&stale, &[("x-api-key", &reader)]).await.status, 200);
    call(&stale, &[("x-api-key", &other)]).await.assert_refused(
        503,
        "unavailable",
        "cannot be checked",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_checks_resources_with_the_identity() {
    let srv = TestServer::sqlite().await;
    let admin = admin(&srv);
    let t = admin
        .create_token("berlin")
        .scope("devices:read")
        .resource(ResourceRef::new("site", "berlin"))
        .lifetime(DAY)
        .await
        .unwrap();
    let gate = Gate::builder(admin.clone()).build();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", t.secret.expose_secret().parse().unwrap());
    let me = gate.check(&headers, Some("devices:read")).await.unwrap();
    let berlin = [
        ResourceRef::new("device", "SN-44"),
        ResourceRef::new("site", "berlin"),
    ];
    let paris = [
        ResourceRef::new("device", "SN-43"),
        ResourceRef::new("site", "paris"),
    ];
    assert!(me.require_any(&berlin).is_ok());
    let refusal = me.require_any(&paris).unwrap_err();
    assert_eq!(refusal.status, 403);
    assert!(
        refusal.detail.contains("device SN-43 or site paris"),
        "{}",
        refusal.detail
    );
    assert_eq!(gate.cached(), 1);
}
