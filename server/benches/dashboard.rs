//! `cargo bench -p tokenops-server --bench dashboard` — the dashboard's figures
//! of docs/performance.md, printed:
//!
//! * the token list's first page (and a later one) with 100,000 tokens
//!   stored: time per request as the client sees it on loopback (p50, p95)
//!   and page weight (HTML, and HTML + stylesheet + script);
//! * verify throughput of the same database served with the dashboard on and
//!   with `--ui=false`, alternating rounds in the same run: the dashboard adds
//!   nothing to the verify path.
//!
//! The server is the real release binary in its own process; the tokens are
//! written straight into its SQLite file before it starts. `BENCH_TOKENS`,
//! `BENCH_PAGES` and `BENCH_SECONDS` scale it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(database: &str, ui: bool) -> ServerProcess {
        let port = tokenops_testkit::procfs::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tokenops-server"))
            .args(["serve", "--database", database, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("--ui={ui}"))
            .env("TOKENOPS_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tokenops-server");
        ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn bootstrap(database: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenops-server"))
        .args(["bootstrap", "--database", database])
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes `n` tokens straight into the SQLite file (schema of migration 0001).
async fn seed(database: &str, n: u64) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{database}"))
        .await
        .expect("open the database");
    let now = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
    let mut tx = conn.begin().await.unwrap();
    for i in 0..n {
        let created = now + i as i64;
        sqlx::query(
            "INSERT INTO tokens (id, project, name, description, role, scopes, resources, labels, \
             secret_hash, masked, lifetime_us, expires_at, created_at, updated_at, generation) \
             VALUES ($1, 'default', $2, $3, 'read-only', '[]', $4, $5, $6, $7, $8, $9, $10, $10, 0)",
        )
        .bind(format!("tok_bench{i:011}"))
        .bind(format!("service-{i}"))
        .bind(format!("Reads the inventory for integration {i}"))
        .bind(if i % 3 == 0 {
            r#"[{"type":"site","id":"s-1"},{"type":"device","id":"SN-42"}]"#.to_string()
        } else {
            r#""all""#.to_string()
        })
        .bind(format!(r#"{{"team":"t{}"}}"#, i % 50))
        .bind(format!("{i:064x}"))
        .bind(format!("tko_…{:04}", i % 10_000))
        .bind(30 * 86_400_000_000i64)
        .bind(created + 30 * 86_400_000_000)
        .bind(created)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO token_labels (token_id, key, value) VALUES ($1, 'team', $2)")
            .bind(format!("tok_bench{i:011}"))
            .bind(format!("t{}", i % 50))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Signs in through the dashboard's own form; returns the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let page = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let pre = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..at + 64].to_string();
    let res = http
        .post(format!("{base}/ui/sign-in"))
        .header("cookie", pre)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tokenops_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string()
}

/// `pages` sequential GETs of `path`: sorted latencies (ms) and the body size of the last.
async fn time_page(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    pages: u64,
) -> (Vec<f64>, usize, String) {
    let mut lat = Vec::new();
    let mut body = String::new();
    for _ in 0..pages {
        let t = Instant::now();
        let res = http.get(url).header("cookie", cookie).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        body = res.text().await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let size = body.len();
    (lat, size, body)
}

/// Verify calls per second over 16 concurrent keep-alive requests for `secs`.
async fn verify_rate(base: &str, value: &str, secs: f64) -> f64 {
    let http = reqwest::Client::new();
    let body = Arc::new(format!(r#"{{"token":"{value}"}}"#));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, body, done, url) = (
            http.clone(),
            body.clone(),
            done.clone(),
            format!("{base}/v1/verify"),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let res = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status().as_u16(), 200);
                let _ = res.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let tokens = env_num("BENCH_TOKENS", 100_000);
    let pages = env_num("BENCH_PAGES", 200);
    let secs = env_num("BENCH_SECONDS", 4) as f64;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dashboard.db").display().to_string();
    let owner = bootstrap(&db);
    let t = Instant::now();
    seed(&db, tokens).await;
    println!(
        "tokenops dashboard benchmark: {tokens} tokens stored (written in {:.1}s), {pages} page loads, 2 cores shared by server and client\n",
        t.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let server = ServerProcess::start(&db, true);
    server.ready(&http).await;
    let cookie = sign_in(&http, &server.base, &owner).await;
    let first_url = format!("{}/ui/", server.base);
    // Warm up (first storage reads, connection set-up), untimed.
    time_page(&http, &first_url, &cookie, 5).await;
    let (first, first_bytes, html) = time_page(&http, &first_url, &cookie, pages).await;
    let next = html
        .split("href=\"")
        .find(|s| s.contains("page_token="))
        .and_then(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .expect("a next-page link");
    let (later, _, _) = time_page(&http, &format!("{}{next}", server.base), &cookie, pages).await;
    let filtered_url = format!("{}/ui/?label=team%3Dt7", server.base);
    let (filtered, _, _) = time_page(&http, &filtered_url, &cookie, pages / 4).await;
    let mut asset_bytes = 0;
    for asset in ["/ui/assets/app.css", "/ui/assets/app.js"] {
        asset_bytes += http
            .get(format!("{}{asset}", server.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
    }
    server.stop();

    println!(
        "token list, first page (50 rows): p50 {:.1} ms, p95 {:.1} ms (target p95 <= 50 ms)",
        percentile(&first, 0.5),
        percentile(&first, 0.95)
    );
    println!(
        "token list, a later page (cursor): p50 {:.1} ms, p95 {:.1} ms",
        percentile(&later, 0.5),
        percentile(&later, 0.95)
    );
    println!(
        "token list, label filter team=t7: p50 {:.1} ms, p95 {:.1} ms",
        percentile(&filtered, 0.5),
        percentile(&filtered, 0.95)
    );
    println!(
        "page weight: HTML {:.1} KB, with stylesheet and script {:.1} KB (target <= 100 KB)\n",
        first_bytes as f64 / 1024.0,
        (first_bytes + asset_bytes) as f64 / 1024.0
    );

    // Verify throughput, dashboard on vs off: both servers run on the same
    // database at once and are measured in alternating one-second slices,
    // so a busy moment of the machine falls on both.
    let on_server = ServerProcess::start(&db, true);
    let off_server = ServerProcess::start(&db, false);
    on_server.ready(&http).await;
    off_server.ready(&http).await;
    verify_rate(&on_server.base, &owner, 1.0).await;
    verify_rate(&off_server.base, &owner, 1.0).await;
    let (mut on, mut off) = (0.0, 0.0);
    let slices = (secs * 3.0) as u32;
    for slice in 0..slices {
        let order = if slice % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for ui in order {
            let base = if ui {
                &on_server.base
            } else {
                &off_server.base
            };
            let rate = verify_rate(base, &owner, 1.0).await;
            if ui {
                on += rate / f64::from(slices);
            } else {
                off += rate / f64::from(slices);
            }
        }
    }
    on_server.stop();
    off_server.stop();
    println!(
        "verify throughput (mean of {slices} alternating 1 s slices each): dashboard on {on:.0}/s, --ui=false {off:.0}/s ({:+.1}%)",
        100.0 * (on - off) / off
    );
}
