//! The web dashboard over plain HTTP, on both storage backends: the headers
//! every page carries, sessions stored in the database, CSRF, and the switch
//! that turns the dashboard off. (The browser walk-through is `ui_browser`.)

use reqwest::redirect::Policy;
use tokenops_testkit::{Backend, TestServer};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the `Set-Cookie` header for `name`.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_string()
}

/// Signs in over HTTP; returns the session's `Cookie` header value.
async fn sign_in(base: &str, token: &str) -> String {
    let http = client();
    let page = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let pre = cookie_pair(&set_cookie(&page, "tokenops_sign_in").expect("sign-in cookie"));
    let csrf = hidden_csrf(&page.text().await.unwrap());
    let res = http
        .post(format!("{base}/ui/sign-in"))
        .header("cookie", &pre)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let session = set_cookie(&res, "tokenops_session").expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain HTTP: no Secure flag");
    cookie_pair(&session)
}

async fn sessions_and_headers(server: TestServer) {
    let base = server.url();
    let http = client();

    // The root redirects to the dashboard, which redirects to the sign-in page.
    let res = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/ui/");
    let res = http.get(format!("{base}/ui/")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/ui/sign-in");

    // Every page: strict CSP without inline script, no framing, not cached.
    let res = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style"
    );

    // Sign-in without the CSRF token is refused.
    let res = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", server.owner_token().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(set_cookie(&res, "tokenops_session").is_none());

    // A session works, is stored hashed, and ends on sign-out.
    let cookie = sign_in(&base, &server.owner_token()).await;
    let res = http
        .get(format!("{base}/ui/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("test-owner"),
        "the list shows the bootstrap token"
    );
    assert!(!html.contains(&server.owner_token()));
    let session_id = cookie.split_once('=').unwrap().1.to_string();
    let stored: Vec<String> = sqlx_ids(&server).await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], session_id, "the session id is stored hashed");
    let csrf = hidden_csrf(&html);
    let res = http
        .post(format!("{base}/ui/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert!(sqlx_ids(&server).await.is_empty());
    let res = http
        .get(format!("{base}/ui/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "the old cookie no longer works");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let res = http
        .get(format!("{base}/ui/sign-in"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(&res, "tokenops_sign_in")
            .unwrap()
            .contains("; Secure")
    );
}

async fn sqlx_ids(server: &TestServer) -> Vec<String> {
    tokenops_server::ui::session::stored_hashes(&server.state().store)
        .await
        .unwrap()
}

tokenops_testkit::on_both_backends!(sessions_and_headers);

#[tokio::test]
async fn the_dashboard_can_be_turned_off() {
    let server = TestServer::with_config(Backend::Sqlite, "[ui]\nenabled = false\n")
        .await
        .unwrap();
    let res = client()
        .get(format!("{}/ui/", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// Creates a token over the API as `caller`; returns `(id, value)`.
async fn create_over_api(base: &str, caller: &str, body: serde_json::Value) -> (String, String) {
    let res = client()
        .post(format!("{base}/v1/tokens"))
        .bearer_auth(caller)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "create {body}");
    let v: serde_json::Value = res.json().await.unwrap();
    (
        v["token"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

async fn page(base: &str, cookie: &str, path: &str) -> (u16, String) {
    let res = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The list's "expiring within N days" and label filters, and the audit log's
/// actor filter, as a person uses them from the dashboard.
async fn list_and_audit_filters(server: TestServer) {
    let base = server.url();
    let owner = server.owner_token();
    let (admin_id, admin) = create_over_api(
        &base,
        &owner,
        serde_json::json!({"name": "filter-admin", "role": "token-admin", "lifetime": "30d"}),
    )
    .await;
    create_over_api(
        &base,
        &owner,
        serde_json::json!({"name": "soon-ending", "role": "read-only", "lifetime": "2d",
                           "labels": {"app": "billing"}}),
    )
    .await;
    create_over_api(
        &base,
        &owner,
        serde_json::json!({"name": "long-lived", "role": "read-only", "lifetime": "60d"}),
    )
    .await;
    let (by_admin_id, _) = create_over_api(
        &base,
        &admin,
        serde_json::json!({"name": "made-by-admin", "role": "read-only", "lifetime": "10d"}),
    )
    .await;
    let cookie = sign_in(&base, &owner).await;

    // Expiring within 7 days: only the 2-day token.
    let (status, html) = page(&base, &cookie, "/ui/?expiring_within=7").await;
    assert_eq!(status, 200);
    assert!(html.contains("soon-ending"), "the 2-day token is listed");
    assert!(!html.contains("long-lived"), "a 60-day token is not");
    assert!(!html.contains("made-by-admin"), "a 10-day token is not");
    // Within 14 days the 10-day token joins it.
    let (_, html) = page(&base, &cookie, "/ui/?expiring_within=14").await;
    assert!(html.contains("soon-ending") && html.contains("made-by-admin"));
    assert!(!html.contains("long-lived"));
    // A filter that is not a number is answered next to its field.
    let (status, html) = page(&base, &cookie, "/ui/?expiring_within=soon").await;
    assert_eq!(status, 422);
    assert!(html.contains("Give a whole number of days"), "{html}");
    // A label selector.
    let (status, html) = page(&base, &cookie, "/ui/?label=app%3Dbilling").await;
    assert_eq!(status, 200);
    assert!(html.contains("soon-ending") && !html.contains("long-lived"));

    // The audit log filtered by actor shows only what that token did.
    let (status, html) = page(&base, &cookie, &format!("/ui/audit?actor={admin_id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&by_admin_id),
        "the admin's create is listed: {html}"
    );
    assert_eq!(html.matches("token.create").count(), 1, "one event: {html}");
}

tokenops_testkit::on_both_backends!(list_and_audit_filters);
