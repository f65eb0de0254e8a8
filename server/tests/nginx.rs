//! The nginx example (`examples/gateway/nginx/tokenops.conf`) run by a real
//! nginx in front of a small upstream, with tokenops answering its
//! `auth_request` checks: what reaches the upstream, what reaches the client.

mod common;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use common::Api;
use reqwest::StatusCode;
use serde_json::json;
use tokenops_testkit::nginx::{self, Nginx};
use tokenops_testkit::procfs::free_port;
use tokenops_testkit::{Backend, TestServer};

/// An upstream that answers every request with the X-Tokenops-* headers it got.
async fn echo_upstream() -> u16 {
    async fn echo(headers: HeaderMap) -> axum::Json<BTreeMap<String, String>> {
        axum::Json(
            headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-tokenops-"))
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                .collect(),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(echo))
            .await
            .unwrap()
    });
    port
}

/// The example, pointed at this test's tokenops, upstream and nginx ports.
pub fn example_conf(tokenops: u16, upstream: u16, listen: u16) -> String {
    let template =
        std::fs::read_to_string(nginx::example("examples/gateway/nginx/tokenops.conf")).unwrap();
    nginx::render(
        &template,
        &[
            ("127.0.0.1:8080", format!("127.0.0.1:{tokenops}")),
            ("127.0.0.1:3000", format!("127.0.0.1:{upstream}")),
            ("127.0.0.1:8000", format!("127.0.0.1:{listen}")),
        ],
    )
}

/// nginx running the example in front of an echo upstream and `srv`; its URL.
async fn gateway(srv: &TestServer) -> (Nginx, String) {
    let upstream = echo_upstream().await;
    let listen = free_port();
    let tokenops = srv.url().rsplit(':').next().unwrap().parse().unwrap();
    let conf = example_conf(tokenops, upstream, listen);
    let proxy = tokio::task::spawn_blocking(move || Nginx::start(&conf, &[listen]))
        .await
        .unwrap();
    (proxy, format!("http://127.0.0.1:{listen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_token_gets_429_with_retry_after_through_nginx() {
    if !Nginx::available() {
        return;
    }
    let srv = TestServer::with_config(
        Backend::Sqlite,
        "[rate_limit]\nrequests_per_second = 1\nburst = 2\n",
    )
    .await
    .unwrap();
    let api = Api::new(srv.url());
    let (_, reader) = api
        .create_role(&srv.owner_token(), "reader", "read-only")
        .await;
    let (proxy, base) = gateway(&srv).await;
    let http = reqwest::Client::new();
    let mut statuses = vec![];
    let mut last = None;
    for _ in 0..3 {
        let r = Api::reply(
            http.get(format!("{base}/v1/devices"))
                .header("x-api-key", &reader),
        )
        .await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 429], "{}", proxy.error_log());
    let r = last.unwrap();
    assert_eq!(r.body["code"], "rate_limited", "{}", r.text);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_through_only_what_tokenops_allows() {
    if !Nginx::available() {
        return;
    }
    let srv = TestServer::sqlite().await;
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (sensor_id, sensor) = api
        .create(
            &owner,
            json!({"name": "sensor gateway", "scopes": ["devices:read"], "lifetime": "720h",
                   "resources": [{"type": "device", "id": "SN-42"}]}),
        )
        .await;
    let (_, usage) = api
        .create(
            &owner,
            json!({"name": "usage", "scopes": ["usage:read"], "lifetime": "720h"}),
        )
        .await;
    let (proxy, base) = gateway(&srv).await;
    let http = reqwest::Client::new();
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut req = http.get(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Api::reply(req)
    };

    // 200: the upstream gets the identity, and not what the client claimed.
    let r = get(
        "/v1/devices/SN-42",
        &[
            ("x-api-key", &sensor),
            ("x-tokenops-role", "owner"),
            ("x-tokenops-project", "someone-else"),
        ],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}\n{}",
        r.text,
        proxy.error_log()
    );
    assert_eq!(
        r.body,
        json!({
            "x-tokenops-token-id": sensor_id,
            "x-tokenops-project": "default",
            "x-tokenops-token-name": "sensor gateway",
        }),
        "a token without a role reaches the upstream without X-Tokenops-Role"
    );
    let r = get(
        "/v1/devices",
        &[("authorization", &format!("Bearer {owner}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["x-tokenops-role"], "owner");

    // 401 and 403 reach the client; the challenge too.
    let r = get("/v1/devices/SN-42", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        r.headers.get("www-authenticate").unwrap(),
        r#"Bearer realm="tokenops""#
    );
    let r = get("/v1/devices/SN-43", &[("x-api-key", &sensor)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another device");
    // The route's permission is nginx's, not the client's.
    let r = get(
        "/v1/devices",
        &[
            ("x-api-key", &usage),
            ("x-tokenops-permission", "usage:read"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // The check itself cannot be reached from outside.
    let r = get("/_tokenops/authorize", &[("x-api-key", &sensor)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Revoked through the API: refused on the next request through nginx.
    let r = api
        .post(&format!("/v1/tokens/{sensor_id}/revoke"), &owner, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get("/v1/devices/SN-42", &[("x-api-key", &sensor)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(!r.text.contains(&sensor[4..20]));

    // tokenops down: the request is refused (503), never let through.
    srv.stop().await;
    let r = get(
        "/v1/devices",
        &[("authorization", &format!("Bearer {owner}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["code"], "unavailable");
    drop(proxy);
}
