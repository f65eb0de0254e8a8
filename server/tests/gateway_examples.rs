//! The gateway examples that cannot run here (Traefik, Envoy, ingress-nginx:
//! none is installable from the package registries CI reaches) are parsed,
//! and the check each one describes is made against a real tokenops server
//! exactly as the configuration says: the address, the headers sent, and
//! the answer headers it copies. The nginx example runs for real (`nginx.rs`).

mod common;

use serde_json::{Value, json};
use tokenops_testkit::TestServer;
use tokenops_testkit::nginx::example;

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(example(path)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const IDENTITY: [&str; 4] = [
    "x-tokenops-token-id",
    "x-tokenops-project",
    "x-tokenops-token-name",
    "x-tokenops-role",
];

fn lower(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|h| {
            h.as_str()
                .or_else(|| h["exact"].as_str())
                .unwrap()
                .to_ascii_lowercase()
        })
        .collect()
}

/// What tokens a test gives the checks: one that holds devices:read, one that does not.
struct Tokens {
    srv: TestServer,
    reader: String,
    other: String,
}

async fn tokens() -> Tokens {
    let srv = TestServer::sqlite().await;
    let api = common::Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, reader) = api
        .create(
            &owner,
            json!({"name": "reader", "scopes": ["devices:read"], "lifetime": "1h"}),
        )
        .await;
    let (_, other) = api
        .create(
            &owner,
            json!({"name": "other", "scopes": ["usage:read"], "lifetime": "1h"}),
        )
        .await;
    Tokens { srv, reader, other }
}

/// Makes the check a gateway would make: `url` on the test server, with
/// `headers`; returns the status and the answer's headers.
async fn ask(
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> (u16, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.headers().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_asks_authorize_and_copies_the_identity() {
    let docs = yaml_docs("examples/gateway/traefik/dynamic.yaml");
    let http = &docs[0]["http"];
    let router = &http["routers"]["devices"];
    let chain: Vec<&str> = router["middlewares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(chain.len(), 2);
    let set = &http["middlewares"][chain[0]]["headers"]["customRequestHeaders"];
    let auth = &http["middlewares"][chain[1]]["forwardAuth"];
    assert!(
        set.is_object(),
        "the permission is set before forwardAuth runs"
    );
    let address = auth["address"].as_str().unwrap();
    let path = address.strip_prefix("http://127.0.0.1:8080").unwrap();
    assert_eq!(path, "/v1/authorize");
    let forwarded = lower(&auth["authRequestHeaders"]);
    for h in ["authorization", "x-api-key", "x-tokenops-permission"] {
        assert!(forwarded.contains(&h.to_string()), "{h} is not forwarded");
    }
    assert_eq!(lower(&auth["authResponseHeaders"]), IDENTITY);
    assert_eq!(router["service"], "devices-api");
    assert!(http["services"]["devices-api"].is_object());

    // The check as Traefik makes it: the headers middleware's values (empty
    // ones removed), then only the listed request headers, GET to the address.
    let t = tokens().await;
    let url = format!("{}{path}", t.srv.url());
    for (token, status) in [(&t.reader, 200), (&t.other, 403)] {
        let client = [
            ("X-Api-Key".to_string(), token.clone()),
            (
                "X-Tokenops-Permission".to_string(),
                "usage:read".to_string(),
            ),
        ];
        let mut sent: Vec<(String, String)> = client
            .into_iter()
            .filter(|(k, _)| set.get(k).is_none())
            .collect();
        for (k, v) in set.as_object().unwrap() {
            if !v.as_str().unwrap().is_empty() {
                sent.push((k.clone(), v.as_str().unwrap().to_string()));
            }
        }
        sent.retain(|(k, _)| forwarded.contains(&k.to_ascii_lowercase()));
        let (got, headers) = ask("GET", &url, &sent).await;
        assert_eq!(
            got,
            status,
            "token {}",
            if status == 200 { "reader" } else { "other" }
        );
        if got == 200 {
            for h in IDENTITY {
                assert!(headers.contains_key(h), "{h} missing from the answer");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_asks_authorize_and_copies_the_identity() {
    let docs = yaml_docs("examples/gateway/envoy/envoy.yaml");
    let resources = &docs[0]["static_resources"];
    let manager = &resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = manager["http_filters"].as_array().unwrap();
    assert_eq!(filters[0]["name"], "envoy.filters.http.ext_authz");
    assert_eq!(
        filters.last().unwrap()["name"],
        "envoy.filters.http.router",
        "ext_authz runs before the router"
    );
    let authz = &filters[0]["typed_config"];
    assert_eq!(authz["failure_mode_allow"], false, "fails closed");
    let service = &authz["http_service"];
    let cluster = service["server_uri"]["cluster"].as_str().unwrap();
    assert!(
        resources["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == cluster),
        "the cluster {cluster} is defined"
    );
    let prefix = service["path_prefix"].as_str().unwrap();
    assert!(prefix.starts_with("/v1/authorize?"), "{prefix}");
    let request = &service["authorization_request"];
    let allowed = lower(&request["allowed_headers"]["patterns"]);
    assert!(allowed.contains(&"authorization".into()) && allowed.contains(&"x-api-key".into()));
    let added: Vec<(String, String)> = request["headers_to_add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().to_string(),
                h["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let response = &service["authorization_response"];
    assert_eq!(
        lower(&response["allowed_upstream_headers"]["patterns"]),
        IDENTITY
    );
    let to_client = lower(&response["allowed_client_headers"]["patterns"]);
    for h in ["www-authenticate", "retry-after"] {
        assert!(
            to_client.contains(&h.to_string()),
            "{h} is not passed to the client"
        );
    }

    // The check as Envoy makes it: the client's method, path_prefix + the
    // client's path, the allowed headers plus headers_to_add.
    let t = tokens().await;
    for (method, token, status) in [
        ("GET", Some(&t.reader), 200),
        ("POST", Some(&t.reader), 200),
        ("GET", Some(&t.other), 403),
        ("GET", None, 401),
    ] {
        let mut sent = added.clone();
        if let Some(token) = token {
            sent.push(("authorization".into(), format!("Bearer {token}")));
        }
        sent.retain(|(k, _)| {
            allowed.contains(&k.to_ascii_lowercase()) || added.iter().any(|(a, _)| a == k)
        });
        let url = format!("{}{prefix}/v1/devices/SN-42", t.srv.url());
        let (got, headers) = ask(method, &url, &sent).await;
        assert_eq!(got, status, "{method} {token:?}");
        if got == 200 {
            for h in IDENTITY {
                assert!(headers.contains_key(h), "{h} missing from the answer");
            }
        } else if got == 401 {
            assert!(headers.contains_key("www-authenticate"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_nginx_annotations_target_the_chart_service() {
    let docs = yaml_docs("examples/gateway/ingress-nginx/ingress.yaml");
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap();
    let ingress = kind("Ingress");
    let notes = &ingress["metadata"]["annotations"];
    let auth_url = notes["nginx.ingress.kubernetes.io/auth-url"]
        .as_str()
        .unwrap();
    // The Service of charts/tokenops-server installed as release
    // `tokenops-server` in namespace `tokenops` (named after the release, port 80).
    let chart_values =
        std::fs::read_to_string(example("charts/tokenops-server/values.yaml")).unwrap();
    assert!(
        chart_values.contains("  port: 80"),
        "the chart's Service port changed"
    );
    assert_eq!(
        auth_url,
        "http://tokenops-server.tokenops.svc.cluster.local/v1/authorize"
    );
    let copied: Vec<String> = notes["nginx.ingress.kubernetes.io/auth-response-headers"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    assert_eq!(copied, IDENTITY);
    let set_headers = notes["nginx.ingress.kubernetes.io/auth-proxy-set-headers"]
        .as_str()
        .unwrap();
    let config = kind("ConfigMap");
    assert_eq!(
        set_headers,
        format!(
            "{}/{}",
            config["metadata"]["namespace"].as_str().unwrap(),
            config["metadata"]["name"].as_str().unwrap()
        )
    );
    let permission = config["data"]["X-Tokenops-Permission"].as_str().unwrap();
    let token = kind("ApiToken");
    assert_eq!(
        token["metadata"]["namespace"],
        ingress["metadata"]["namespace"]
    );
    assert!(
        token["spec"]["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == permission),
        "the operator's token holds the permission the Ingress requires"
    );

    let t = tokens().await;
    let url = format!("{}/v1/authorize", t.srv.url());
    for (token, status) in [(&t.reader, 200), (&t.other, 403)] {
        let sent = vec![
            ("x-api-key".to_string(), token.clone()),
            ("X-Tokenops-Permission".to_string(), permission.to_string()),
        ];
        let (got, headers) = ask("GET", &url, &sent).await;
        assert_eq!(got, status);
        if got == 200 {
            for h in &copied {
                assert!(
                    headers.contains_key(h.as_str()),
                    "{h} missing from the answer"
                );
            }
        }
    }
}
