//! `cargo bench -p protected-api --bench gateway` — what checking every
//! request with tokenops costs, measured side by side in one run with the same
//! load generator (`wrk`, 2 threads, 32 keep-alive connections, on loopback):
//!
//! * nginx → upstream with `auth_request` to tokenops (the example
//!   `examples/gateway/nginx/tokenops.conf`) against nginx → the same
//!   upstream with no check;
//! * the devices API with the tower layer (answers cached) against the same
//!   routes with a fixed identity and no layer;
//! * `GET /v1/authorize` against `GET /healthz` in the same tokenops server.
//!
//! tokenops, the upstream and the devices API run in this process (release
//! build); nginx and wrk in their own. The two sides of each pair alternate
//! over three rounds and the median round is reported. `BENCH_SECONDS` sets
//! the length of one measurement (default 5).

use std::time::Duration;

use serde_json::json;
use tokenops_client::gateway::{Gate, Identity};
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{Client, Resources, RetryPolicy};
use tokenops_testkit::nginx::{self, Nginx};
use tokenops_testkit::procfs::free_port;
use tokenops_testkit::{TestServer, have_tool};

const ROUNDS: usize = 3;

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Requests per second `wrk` reaches on `url` with `headers`.
fn wrk(url: &str, headers: &[(&str, &str)]) -> f64 {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{}s", seconds()), "--latency"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map(|n| n.trim().to_string());
    assert!(
        non_2xx.is_none(),
        "{url}: {non_2xx:?} refused answers:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec from wrk:\n{text}"))
}

/// Runs both sides `ROUNDS` times, alternating; returns the median of each.
fn pair(name: &str, with: impl Fn() -> f64, without: impl Fn() -> f64, floor: f64) {
    let mut a = vec![];
    let mut b = vec![];
    for _ in 0..ROUNDS {
        b.push(without());
        a.push(with());
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (a, b) = (a[ROUNDS / 2], b[ROUNDS / 2]);
    let ratio = a / b * 100.0;
    println!(
        "{name:<48} {a:>9.0} req/s vs {b:>9.0} req/s  = {ratio:5.1}%  (goal ≥ {floor:.0}%{})",
        if ratio >= floor { "" } else { ", MISSED" }
    );
}

async fn serve(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn main() {
    if !have_tool("wrk") || !have_tool("nginx") {
        eprintln!(
            "SKIPPED: the gateway benchmark needs wrk and nginx (apt-get install -y wrk nginx)"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let srv = rt.block_on(TestServer::sqlite());
    let tokenops = srv.url();
    let admin = Client::builder(&tokenops)
        .token(SecretString::from(srv.owner_token()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let created = rt
        .block_on(
            admin
                .create_token("bench")
                .scope("devices:read")
                .lifetime(Duration::from_secs(3600))
                .send(),
        )
        .unwrap();
    let token = created.secret.expose_secret().to_string();
    let auth = [
        ("x-api-key", token.as_str()),
        ("x-tokenops-permission", "devices:read"),
    ];
    println!(
        "gateway benchmark: wrk -t2 -c32 -d{}s, median of {ROUNDS} alternating rounds",
        seconds()
    );

    // 1. /v1/authorize vs /healthz in the same server.
    pair(
        "tokenops GET /v1/authorize vs GET /healthz",
        || wrk(&format!("{tokenops}/v1/authorize"), &auth),
        || wrk(&format!("{tokenops}/healthz"), &[]),
        70.0,
    );

    // 2. The devices API with the layer (cached) vs without it.
    let gate = Gate::builder(Client::builder(&tokenops).build().unwrap())
        .cache_ttl(Duration::from_secs(600))
        .build();
    let protected = rt.block_on(serve(protected_api::router(&gate)));
    let unchecked = rt.block_on(serve(protected_api::unchecked(Identity {
        id: created.token.id.clone(),
        project: "default".into(),
        name: "bench".into(),
        role: None,
        permissions: vec!["devices:read".into()],
        resources: Resources::all(),
    })));
    let key = [("x-api-key", token.as_str())];
    pair(
        "devices API GET /v1/devices/SN-42, layer vs none",
        || {
            wrk(
                &format!("http://127.0.0.1:{protected}/v1/devices/SN-42"),
                &key,
            )
        },
        || {
            wrk(
                &format!("http://127.0.0.1:{unchecked}/v1/devices/SN-42"),
                &key,
            )
        },
        90.0,
    );

    // 3. nginx → upstream, with auth_request vs without.
    let upstream = rt
        .block_on(serve(axum::Router::new().fallback(|| async {
            axum::Json(json!({"serial": "SN-42", "site": "berlin"}))
        })));
    let (checked, plain) = (free_port(), free_port());
    let template =
        std::fs::read_to_string(nginx::example("examples/gateway/nginx/tokenops.conf")).unwrap();
    let tokenops_port = tokenops.rsplit(':').next().unwrap().to_string();
    let mut conf = nginx::render(
        &template,
        &[
            ("127.0.0.1:8080", format!("127.0.0.1:{tokenops_port}")),
            ("127.0.0.1:3000", format!("127.0.0.1:{upstream}")),
            ("127.0.0.1:8000", format!("127.0.0.1:{checked}")),
        ],
    );
    conf.push_str(&format!(
        "\nserver {{\n    listen 127.0.0.1:{plain};\n    location / {{\n        \
         proxy_pass http://devices_api;\n        proxy_http_version 1.1;\n        \
         proxy_set_header Connection \"\";\n    }}\n}}\n"
    ));
    let proxy = Nginx::start(&conf, &[checked, plain]);
    pair(
        "nginx GET /v1/devices/SN-42, auth_request vs none",
        || {
            wrk(
                &format!("http://127.0.0.1:{checked}/v1/devices/SN-42"),
                &key,
            )
        },
        || wrk(&format!("http://127.0.0.1:{plain}/v1/devices/SN-42"), &key),
        50.0,
    );
    drop(proxy);
    rt.block_on(async move { drop(srv.stop().await) });
}
