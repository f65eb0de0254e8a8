//! The devices API as `main.rs` serves it, checking tokens against a real
//! tokenops server: a fresh token works, a revoked one stops working, a token
//! for another device, site or group sees only what it may.

use std::time::{Duration, Instant};

use tokenops_client::gateway::Gate;
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{Client, ResourceRef, RetryPolicy};
use tokenops_testkit::TestServer;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn token(admin: &Client, name: &str, resources: &[(&str, &str)]) -> (String, String) {
    let mut create = admin
        .create_token(name)
        .scope("devices:read")
        .lifetime(Duration::from_secs(3600));
    for (kind, id) in resources {
        create = create.resource(ResourceRef::new(*kind, *id));
    }
    let t = create.await.unwrap();
    (t.token.id, t.secret.expose_secret().to_string())
}

async fn get(url: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

fn serials(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_shown_to_the_tokens_that_may_see_them() {
    let srv = TestServer::sqlite().await;
    let admin = Client::builder(srv.url())
        .token(SecretString::from(srv.owner_token()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let ttl = Duration::from_millis(300);
    let gate = Gate::builder(Client::builder(srv.url()).build().unwrap())
        .cache_ttl(ttl)
        .build();
    let url = serve(protected_api::router(&gate)).await;

    let (_, all) = token(&admin, "everything", &[]).await;
    let (_, one) = token(&admin, "one device", &[("device", "SN-42")]).await;
    let (_, berlin) = token(&admin, "berlin", &[("site", "berlin")]).await;
    let (cameras_id, cameras) = token(&admin, "cameras", &[("device_group", "cameras")]).await;
    let usage = admin
        .create_token("usage")
        .scope("usage:read")
        .lifetime(Duration::from_secs(3600))
        .await
        .unwrap();

    let (status, list) = get(&url, "/v1/devices", &all).await;
    assert_eq!(status, 200);
    assert_eq!(serials(&list), ["SN-42", "SN-43", "SN-44", "SN-45"]);
    assert_eq!(serials(&get(&url, "/v1/devices", &one).await.1), ["SN-42"]);
    assert_eq!(
        serials(&get(&url, "/v1/devices", &berlin).await.1),
        ["SN-42", "SN-44"]
    );
    assert_eq!(
        serials(&get(&url, "/v1/devices", &cameras).await.1),
        ["SN-44", "SN-45"]
    );

    assert_eq!(get(&url, "/v1/devices/SN-42", &one).await.0, 200);
    let (status, problem) = get(&url, "/v1/devices/SN-43", &one).await;
    assert_eq!(status, 403, "another device");
    assert_eq!(problem["code"], "forbidden");
    assert_eq!(
        get(&url, "/v1/devices/SN-44", &berlin).await.0,
        200,
        "by its site"
    );
    assert_eq!(get(&url, "/v1/devices/SN-43", &berlin).await.0, 403);
    assert_eq!(
        get(&url, "/v1/devices/SN-45", &cameras).await.0,
        200,
        "by its group"
    );
    assert_eq!(
        get(&url, "/v1/devices/SN-99", &one).await.0,
        403,
        "unknown to this token"
    );
    assert_eq!(get(&url, "/v1/devices/SN-99", &all).await.0, 404);
    assert_eq!(
        get(&url, "/v1/devices", usage.secret.expose_secret())
            .await
            .0,
        403,
        "no devices:read"
    );
    assert_eq!(get(&url, "/v1/devices", "tko_nothing").await.0, 401);

    // Revoked: refused once the layer's cached answer is older than its TTL.
    admin.revoke_token(&cameras_id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&url, "/v1/devices", &cameras).await.0 == 200 {
        assert!(Instant::now() < deadline, "the revoked token kept working");
    }
    assert_eq!(get(&url, "/v1/devices", &cameras).await.0, 401);
}
