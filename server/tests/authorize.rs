//! `/v1/authorize`, the gateway check, over real HTTP on SQLite and PostgreSQL:
//! every outcome a gateway sees, and no answer carrying the presented value.

mod common;

use std::time::Duration;

use common::{Api, Reply, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokenops_testkit::{Backend, TestServer, on_both_backends};

on_both_backends!(
    authorize_answers_each_outcome_without_echoing_the_value,
    a_previous_value_passes_during_its_grace_only,
    allowed_checks_are_served_from_the_cache_and_counted_by_result,
);

/// Every answer seen, to check at the end that none carries a presented value.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn record(&mut self, r: &Reply) {
        let mut all = r.text.clone();
        for (name, value) in &r.headers {
            all.push_str(&format!(
                "\n{name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        self.0.push(all);
    }

    fn assert_never_shows(&self, values: &[&str]) {
        for answer in &self.0 {
            for v in values {
                assert!(
                    !answer.contains(v),
                    "an answer shows a presented value: {answer}"
                );
                // Not even the part after the prefix (a partial echo).
                assert!(
                    !answer.contains(&v[4..20]),
                    "an answer shows part of a value: {answer}"
                );
            }
        }
    }
}

async fn authorize(api: &Api, method: Method, headers: &[(&str, &str)]) -> Reply {
    let mut req = api
        .http
        .request(method, format!("{}/v1/authorize", api.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Api::reply(req).await
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_unauthenticated(r: &Reply, detail: &str, challenge: &str) {
    r.assert_problem(401, "unauthenticated");
    assert!(
        r.body["detail"].as_str().unwrap().contains(detail),
        "{}",
        r.text
    );
    assert_eq!(header(r, "www-authenticate"), Some(challenge), "{}", r.text);
    assert_eq!(header(r, "x-tokenops-token-id"), None);
}

const NO_CREDENTIALS: &str = r#"Bearer realm="tokenops""#;
const BAD_CREDENTIALS: &str = r#"Bearer realm="tokenops", error="invalid_token""#;

async fn authorize_answers_each_outcome_without_echoing_the_value(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let mut seen = Seen::default();
    let (device_id, device) = api
        .create(
            &owner,
            json!({"name": "Zürich sensor", "scopes": ["devices:read"], "lifetime": "720h",
                   "resources": [{"type": "device", "id": "SN-42"}]}),
        )
        .await;
    let (reader_id, reader) = api.create_role(&owner, "reader", "read-only").await;
    let read = ("x-tokenops-permission", "devices:read");

    // Both header styles, any method: 200 and the identity, no body.
    let bearer = format!("Bearer {reader}");
    for (method, auth) in [
        (Method::GET, ("authorization", bearer.as_str())),
        (Method::POST, ("x-api-key", reader.as_str())),
        (
            Method::DELETE,
            ("authorization", &format!("bearer  {reader} ")),
        ),
    ] {
        let r = authorize(&api, method.clone(), &[auth, read]).await;
        seen.record(&r);
        assert_eq!(r.status, StatusCode::OK, "{method}: {}", r.text);
        assert_eq!(header(&r, "x-tokenops-token-id"), Some(reader_id.as_str()));
        assert_eq!(header(&r, "x-tokenops-project"), Some("default"));
        assert_eq!(header(&r, "x-tokenops-token-name"), Some("reader"));
        assert_eq!(header(&r, "x-tokenops-role"), Some("read-only"));
        assert!(r.text.is_empty());
    }
    // The resource the route acts on; a name that is not ASCII arrives percent-encoded.
    let r = authorize(
        &api,
        Method::GET,
        &[
            ("x-api-key", &device),
            read,
            ("x-tokenops-resource", "device=SN-42"),
        ],
    )
    .await;
    seen.record(&r);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(header(&r, "x-tokenops-token-id"), Some(device_id.as_str()));
    assert_eq!(
        header(&r, "x-tokenops-token-name"),
        Some("Z%C3%BCrich sensor")
    );
    assert_eq!(
        header(&r, "x-tokenops-role"),
        Some(""),
        "a token with scopes only has no role"
    );
    // Without a permission header: authentication only.
    let r = authorize(&api, Method::GET, &[("x-api-key", &device)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // 403: the permission, then the resource.
    let r = authorize(
        &api,
        Method::GET,
        &[
            ("x-api-key", &device),
            ("x-tokenops-permission", "devices:write"),
        ],
    )
    .await;
    seen.record(&r);
    r.assert_problem(403, "forbidden");
    assert!(r.text.contains("devices:write"), "{}", r.text);
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(r#"Bearer realm="tokenops", error="insufficient_scope""#)
    );
    for other in ["device=SN-43", "site=berlin"] {
        let r = authorize(
            &api,
            Method::GET,
            &[("x-api-key", &device), read, ("x-tokenops-resource", other)],
        )
        .await;
        seen.record(&r);
        r.assert_problem(403, "forbidden");
        assert_eq!(header(&r, "x-tokenops-token-id"), None);
    }
    // A role without the permission.
    let r = authorize(
        &api,
        Method::GET,
        &[
            ("x-api-key", &reader),
            ("x-tokenops-permission", "devices:write"),
        ],
    )
    .await;
    seen.record(&r);
    r.assert_problem(403, "forbidden");

    // 401: no value, a malformed one, an unknown one.
    for headers in [
        vec![read],
        vec![read, ("authorization", "Basic dXNlcjpwYXNz")],
    ] {
        let r = authorize(&api, Method::GET, &headers).await;
        seen.record(&r);
        assert_unauthenticated(&r, "missing credentials", NO_CREDENTIALS);
    }
    let last = if reader.ends_with('x') { 'y' } else { 'x' };
    let malformed = format!("{}{last}", &reader[..reader.len() - 1]);
    let r = authorize(&api, Method::GET, &[("x-api-key", &malformed), read]).await;
    seen.record(&r);
    assert_unauthenticated(&r, "malformed", BAD_CREDENTIALS);
    let unknown = tokenops_types::secret::generate("tko");
    let r = authorize(&api, Method::GET, &[("x-api-key", &unknown), read]).await;
    seen.record(&r);
    assert_unauthenticated(&r, "not known", BAD_CREDENTIALS);

    // Revoked (through the API): refused on the very next check.
    let r = api
        .post(&format!("/v1/tokens/{reader_id}/revoke"), &owner, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = authorize(&api, Method::GET, &[("x-api-key", &reader), read]).await;
    seen.record(&r);
    assert_unauthenticated(&r, "revoked", BAD_CREDENTIALS);

    // Expired.
    let (_, short) = api
        .create(
            &owner,
            json!({"name": "short", "scopes": ["devices:read"], "lifetime": "1s"}),
        )
        .await;
    let r = authorize(&api, Method::GET, &[("x-api-key", &short), read]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    eventually(Duration::from_secs(10), "the token expires", || async {
        authorize(&api, Method::GET, &[("x-api-key", &short), read])
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    let r = authorize(&api, Method::GET, &[("x-api-key", &short), read]).await;
    seen.record(&r);
    assert_unauthenticated(&r, "expired", BAD_CREDENTIALS);

    // What the gateway sends is checked before any value: a misconfigured
    // route is a 400 naming the header (a gateway makes it an error, not access).
    for (name, value, code) in [
        ("x-tokenops-permission", "devices", "invalid_permission"),
        ("x-tokenops-resource", "SN-42", "invalid_field"),
        (
            "x-tokenops-resource",
            "planet=mars",
            "unknown_resource_type",
        ),
    ] {
        let r = authorize(&api, Method::GET, &[("x-api-key", &device), (name, value)]).await;
        seen.record(&r);
        r.assert_problem(400, code);
        assert_eq!(r.field(), name, "{}", r.text);
    }

    seen.assert_never_shows(&[&reader, &device, &malformed, &unknown, &short]);
}

async fn a_previous_value_passes_during_its_grace_only(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (id, old) = api.create_role(&owner, "rotating", "read-only").await;
    let r = api
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            &owner,
            json!({"grace_period": "2s"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_string();
    let read = ("x-tokenops-permission", "devices:read");
    for value in [&old, &new] {
        let r = authorize(&api, Method::GET, &[("x-api-key", value), read]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(header(&r, "x-tokenops-token-id"), Some(id.as_str()));
    }
    eventually(Duration::from_secs(10), "the grace period ends", || async {
        authorize(&api, Method::GET, &[("x-api-key", &old), read])
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    let r = authorize(&api, Method::GET, &[("x-api-key", &new), read]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = authorize(&api, Method::GET, &[("x-api-key", &old), read]).await;
    assert_unauthenticated(&r, "not known", BAD_CREDENTIALS);
    let mut seen = Seen::default();
    seen.record(&r);
    seen.assert_never_shows(&[&old, &new]);
}

async fn allowed_checks_are_served_from_the_cache_and_counted_by_result(srv: TestServer) {
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let (_, reader) = api.create_role(&owner, "reader", "read-only").await;
    let read = ("x-tokenops-permission", "devices:read");
    let r = authorize(&api, Method::GET, &[("x-api-key", &reader), read]).await;
    assert_eq!(r.status, StatusCode::OK);
    let lookups = srv.state().verifier.storage_lookups();
    for _ in 0..20 {
        let r = authorize(&api, Method::GET, &[("x-api-key", &reader), read]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = authorize(
        &api,
        Method::GET,
        &[
            ("x-api-key", &reader),
            ("x-tokenops-permission", "devices:write"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        srv.state().verifier.storage_lookups(),
        lookups,
        "a cached token is authorized without reading storage"
    );
    authorize(&api, Method::GET, &[read]).await;

    let metrics = api.raw(Method::GET, "/metrics", None, None).await.text;
    for (result, n) in [
        ("allowed", 21),
        ("forbidden", 1),
        ("missing", 1),
        ("revoked", 0),
    ] {
        let line = format!("tokenops_authorizations_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"route="/v1/authorize""#),
        "requests are counted under the route template"
    );
}

async fn rate_limited(backend: Backend) {
    let Some(srv) = TestServer::with_config(
        backend,
        "[rate_limit]\nrequests_per_second = 1\nburst = 2\n",
    )
    .await
    else {
        return;
    };
    let api = Api::new(srv.url());
    let owner = srv.owner_token();
    let read = ("x-tokenops-permission", "devices:read");
    let mut statuses = vec![];
    let mut last = None;
    for _ in 0..3 {
        let r = authorize(&api, Method::GET, &[("x-api-key", &owner), read]).await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let r = last.unwrap();
    r.assert_problem(429, "rate_limited");
    let retry_after: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let mut seen = Seen::default();
    seen.record(&r);
    seen.assert_never_shows(&[&owner]);
}

mod rate_limited_tokens_get_429_with_retry_after {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::rate_limited(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::rate_limited(super::Backend::Postgres).await;
    }
}

#[tokio::test]
async fn the_openapi_document_describes_authorize() {
    let srv = TestServer::sqlite().await;
    let api = Api::new(srv.url());
    let doc = api.raw(Method::GET, "/openapi.json", None, None).await;
    let op = &doc.body["paths"]["/v1/authorize"]["get"];
    assert!(op.is_object(), "{}", doc.text);
    for status in ["200", "400", "401", "403", "429"] {
        assert!(
            op["responses"][status].is_object(),
            "no {status} documented"
        );
    }
    assert!(
        op["responses"]["200"]["headers"]["X-Tokenops-Token-Id"].is_object(),
        "{}",
        op
    );
}
