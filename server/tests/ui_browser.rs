//! The web dashboard in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`), against a real tokenops server.
//!
//! One browser serves the whole walk-through, step by step as a person would
//! use the dashboard; every step checks what the page says and, where it
//! matters, what the API says afterwards. The walk writes screenshots of the
//! token list, the create form and the shown-once panel into the test target
//! directory (and into `TOKENOPS_SCREENSHOTS_DIR` when set: `docs/` keeps the
//! current ones). Without Chromium the test is skipped with a reason; with
//! `CI=true` it fails instead.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokenops_testkit::{TestServer, have_tool, skip_or_fail};

/// chromedriver and its browser session; chromedriver is stopped on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn start_browser() -> Option<Browser> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|t| have_tool(t));
    let (Some(chromium), true) = (chromium, have_tool("chromedriver")) else {
        skip_or_fail(
            "Chromium and chromedriver are not on the PATH (Debian: apt-get install chromium chromium-driver)",
        );
        return None;
    };
    let port = tokenops_testkit::procfs::free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("browser profile dir");
    let driver_url = format!("http://127.0.0.1:{port}");
    // chromedriver answers /status once it listens.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{driver_url}/status")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let binary = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(chromium))
        .find(|p| p.is_file())
        .expect("chromium path");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a Chromium session");
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

/// The API as a script would use it.
struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("API call");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a token; returns (id, value).
    async fn create(&self, owner: &str, body: Value) -> (String, String) {
        let (status, v) = self
            .call(reqwest::Method::POST, "/v1/tokens", owner, Some(body))
            .await;
        assert_eq!(status, 201, "{v}");
        (
            v["token"]["id"].as_str().unwrap().to_string(),
            v["secret"].as_str().unwrap().to_string(),
        )
    }

    async fn verifies(&self, value: &str) -> bool {
        let res: Value = self
            .http
            .post(format!("{}/v1/verify", self.url))
            .json(&json!({ "token": value }))
            .send()
            .await
            .expect("verify")
            .json()
            .await
            .expect("verify JSON");
        res["valid"] == json!(true)
    }

    async fn status_of(&self, owner: &str, id: &str) -> (u16, String) {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/tokens/{id}"),
                owner,
                None,
            )
            .await;
        (status, v["status"].as_str().unwrap_or_default().to_string())
    }
}

fn button(text: &str) -> String {
    format!("//button[normalize-space()='{text}']")
}

async fn click_button(c: &Client, text: &str) {
    c.find(Locator::XPath(&button(text)))
        .await
        .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn fill(c: &Client, id: &str, text: &str) {
    let field = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Waits until an element matching `css` contains `expected` (after a click
/// the old page may still be there for a moment); returns its text.
async fn wait_text(c: &Client, css: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            if text.contains(expected) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let url = c
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    let page = c.source().await.unwrap_or_default();
    let start = page.find("<main").unwrap_or(0);
    let end = (start + 3000).min(page.len());
    panic!(
        "{css} on {url} never contained {expected:?} (last: {last:?})\n{}",
        page.get(start..end).unwrap_or(&page)
    );
}

/// The text of the first element matching `css`, once there is one.
async fn text_of(c: &Client, css: &str) -> String {
    wait_text(c, css, "").await
}

async fn go(c: &Client, base: &str, path: &str) {
    c.goto(&format!("{base}{path}")).await.expect("navigate");
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")];
    if let Some(d) = std::env::var_os("TOKENOPS_SCREENSHOTS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
    }
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    go(c, base, "/ui/sign-in").await;
    fill(c, "token", token).await;
    click_button(c, "Sign in").await;
}

async fn sign_out(c: &Client) {
    click_button(c, "Sign out").await;
    wait_text(c, "h1", "Sign in to tokenops").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let server = TestServer::sqlite().await;
    let base = server.url();
    let owner = server.owner_token();
    let api = Api {
        url: base.clone(),
        http: reqwest::Client::new(),
    };
    let c = &browser.client;

    // Tokens made over the API, as other tools would.
    let xss_name = "<img src=x onerror=alert(1)>";
    let (xss_id, _) = api
        .create(
            &owner,
            json!({"name": xss_name, "role": "read-only", "lifetime": "24h"}),
        )
        .await;
    let (tf_id, _) = api
        .create(&owner, json!({"name": "tf-managed", "role": "read-only", "lifetime": "24h", "labels": {"managed-by": "terraform"}}))
        .await;
    let (bulk_a, _) = api
        .create(&owner, json!({"name": "bulk-a", "role": "read-only", "lifetime": "24h", "labels": {"batch": "old"}}))
        .await;
    let (bulk_b, _) = api
        .create(&owner, json!({"name": "bulk-b", "role": "read-only", "lifetime": "24h", "labels": {"batch": "old"}}))
        .await;
    let (doomed_id, _) = api
        .create(
            &owner,
            json!({"name": "delete-me", "role": "read-only", "lifetime": "24h"}),
        )
        .await;
    let (_, read_only) = api
        .create(
            &owner,
            json!({"name": "partner", "role": "read-only", "lifetime": "24h"}),
        )
        .await;
    let (second_admin_id, second_admin) = api
        .create(
            &owner,
            json!({"name": "second-admin", "role": "owner", "lifetime": "24h"}),
        )
        .await;

    // The root leads to the dashboard, which asks to sign in.
    go(c, &base, "/").await;
    wait_text(c, "h1", "Sign in to tokenops").await;

    // A bad token: an error next to the field, no session.
    sign_in(c, &base, "tko_notarealtoken").await;
    let err = text_of(c, "#token-error").await;
    assert!(err.contains("not a tokenops token"), "{err}");
    assert!(c.get_named_cookie("tokenops_session").await.is_err());

    // A good one: the token list.
    sign_in(c, &base, &owner).await;
    wait_text(c, "h1", "API tokens").await;

    // Create a scoped token and read its value once.
    c.find(Locator::LinkText("Create token"))
        .await
        .expect("Create token link")
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", "Create token").await;
    fill(c, "name", "ci-scoped").await;
    fill(c, "description", "Reads one device and one site").await;
    screenshot(c, "dashboard-create").await;
    c.find(Locator::Css("input[name=resources_mode][value=scoped]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "res-device", "SN-42").await;
    fill(c, "res-site", "s-1").await;
    fill(c, "labels", "team=web").await;
    click_button(c, "Create token").await;
    wait_text(c, "h1", "Token created").await;
    let value_field = c
        .find(Locator::Id("secret-value"))
        .await
        .expect("shown-once value");
    let value = value_field.prop("value").await.unwrap().expect("value");
    assert!(value.starts_with("tko_"), "{value}");
    assert!(api.verifies(&value).await, "the value shown works");
    let warning = text_of(c, "#shown-once .notice").await;
    assert!(warning.contains("cannot be shown again"), "{warning}");
    assert!(
        c.find(Locator::XPath(&button("Copy")))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    screenshot(c, "dashboard-shown-once").await;

    // Reload: the value is gone (never cached, never in a URL), and the
    // form posted again by the reload issues nothing.
    assert!(!c.current_url().await.unwrap().as_str().contains(&value));
    c.refresh().await.expect("reload");
    wait_text(c, "h1", "Already done").await;
    assert!(
        !c.source().await.unwrap().contains(&value),
        "a reload showed the value again"
    );
    let (_, list) = api
        .call(
            reqwest::Method::GET,
            "/v1/tokens?name=ci-scoped",
            &owner,
            None,
        )
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "one token, not two: {list}"
    );

    // The list shows it masked, with its resources; back never brings the value back.
    go(c, &base, "/ui/?name=ci-scoped").await;
    let row = text_of(c, "#tokens tbody tr").await;
    assert!(row.contains("ci-scoped") && row.contains("tko_…"), "{row}");
    assert!(
        row.contains("device:SN-42") && row.contains("site:s-1"),
        "{row}"
    );
    assert!(!c.source().await.unwrap().contains(&value));
    c.back().await.expect("back");
    assert!(
        !c.source().await.unwrap().contains(&value),
        "back showed the value again"
    );

    // Regenerate with a 1-hour grace: both values verify.
    go(c, &base, "/ui/?name=ci-scoped").await;
    c.find(Locator::LinkText("ci-scoped"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", "ci-scoped").await;
    c.find(Locator::Id("grace"))
        .await
        .unwrap()
        .select_by_value("1h")
        .await
        .unwrap();
    click_button(c, "Regenerate").await;
    wait_text(c, "h1", "Token regenerated").await;
    let new_value = c
        .find(Locator::Id("secret-value"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new_value, value);
    assert!(api.verifies(&new_value).await, "new value works");
    assert!(
        api.verifies(&value).await,
        "old value works during the grace period"
    );
    wait_text(c, "#shown-once", "previous value keeps working until").await;

    // Revoke two at once, confirming a count.
    go(c, &base, "/ui/?label=batch%3Dold").await;
    for id in [&bulk_a, &bulk_b] {
        c.find(Locator::Css(&format!("input[name=id][value='{id}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    wait_text(c, "#selected-count", "2 tokens selected").await;
    click_button(c, "Revoke").await;
    wait_text(c, "h1", "Revoke 2 tokens?").await;
    click_button(c, "Revoke").await;
    wait_text(c, ".notice", "Revoked 2 tokens.").await;
    for id in [&bulk_a, &bulk_b] {
        assert_eq!(
            api.status_of(&owner, id).await,
            (200, "revoked".to_string())
        );
    }

    // Delete by typing the name: a wrong name is refused next to the field.
    go(c, &base, &format!("/ui/tokens/{doomed_id}")).await;
    fill(c, "confirm-name", "delete-you").await;
    click_button(c, "Delete").await;
    wait_text(c, "#confirm_name-error", "Type the token's name").await;
    assert_eq!(api.status_of(&owner, &doomed_id).await.0, 200);
    fill(c, "confirm-name", "delete-me").await;
    click_button(c, "Delete").await;
    wait_text(c, ".notice", "deleted").await;
    assert_eq!(api.status_of(&owner, &doomed_id).await.0, 404);

    // A name that is markup is shown as text.
    go(c, &base, "/ui/").await;
    let link = c
        .find(Locator::Css(&format!("a[href='/ui/tokens/{xss_id}']")))
        .await
        .unwrap();
    assert_eq!(link.text().await.unwrap(), xss_name);
    assert!(
        c.find_all(Locator::Css("#tokens img"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(c.get_alert_text().await.is_err(), "a script ran");
    screenshot(c, "dashboard-tokens").await;

    // At a phone's width no page scrolls sideways (wide tables scroll in
    // their own box), and the list keeps its actions.
    c.set_window_size(390, 844).await.expect("phone width");
    for path in [
        "/ui/".to_string(),
        "/ui/tokens/new".to_string(),
        format!("/ui/tokens/{xss_id}"),
        "/ui/audit".to_string(),
    ] {
        go(c, &base, &path).await;
        let fits = c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("page width");
        let (page_width, view_width) = (fits[0].as_u64().unwrap(), fits[1].as_u64().unwrap());
        assert!(
            page_width <= view_width,
            "{path} is {page_width} px wide in a {view_width} px window"
        );
    }
    go(c, &base, "/ui/").await;
    assert!(
        !c.find_all(Locator::LinkText("Create token"))
            .await
            .unwrap()
            .is_empty(),
        "the list keeps its Create token action at a phone's width"
    );
    screenshot(c, "dashboard-phone").await;
    c.set_window_size(1280, 900).await.expect("desktop width");

    // A form posted without its CSRF token is refused, and nothing changes.
    let session = c
        .get_named_cookie("tokenops_session")
        .await
        .expect("session cookie");
    let res = reqwest::Client::new()
        .post(format!("{base}/ui/tokens/{xss_id}/revoke"))
        .header("cookie", format!("tokenops_session={}", session.value()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("confirm=yes")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(api.status_of(&owner, &xss_id).await.1, "active");

    // A Terraform-managed token is read-only: no Regenerate.
    go(c, &base, &format!("/ui/tokens/{tf_id}")).await;
    wait_text(c, "#managed-note", "Terraform").await;
    assert!(
        c.find_all(Locator::XPath(&button("Regenerate")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        c.find_all(Locator::XPath(&button("Delete")))
            .await
            .unwrap()
            .is_empty()
    );

    // A session whose token is revoked through the API ends on its next click.
    sign_out(c).await;
    sign_in(c, &base, &second_admin).await;
    wait_text(c, "h1", "API tokens").await;
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/tokens/{second_admin_id}/revoke"),
            &owner,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    c.find(Locator::LinkText("Audit log"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", "Sign in to tokenops").await;
    wait_text(c, ".notice", "revoked").await;

    // A read-only token signs in but sees no token list.
    sign_in(c, &base, &read_only).await;
    wait_text(c, "#no-inventory", "may not read the token inventory").await;
    assert!(c.find_all(Locator::Id("tokens")).await.unwrap().is_empty());

    browser
        .client
        .clone()
        .close()
        .await
        .expect("close the browser");
}
