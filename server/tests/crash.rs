//! Durability and robustness against the real `tokenops-server` binary:
//! SIGKILL in the middle of creates, then restart — every token whose create
//! answered 201 must still verify. Runs on SQLite and PostgreSQL.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Api, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokenops_testkit::{Backend, TestDatabase, bin_path};

fn spawn_server(database: &str, port: u16) -> Child {
    Command::new(bin_path("tokenops-server"))
        .args([
            "serve",
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("TOKENOPS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tokenops-server")
}

async fn wait_healthy(api: &Api) {
    eventually(
        Duration::from_secs(30),
        "server answers /healthz",
        || async {
            api.http
                .get(format!("{}/healthz", api.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
}

async fn kill_during_creates(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let out = Command::new(bin_path("tokenops-server"))
        .args(["bootstrap", "--database", &db.url])
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(owner.starts_with("tko_"), "bootstrap prints only the value");

    let port = tokenops_testkit::procfs::free_port();
    let mut child = spawn_server(&db.url, port);
    let api = Arc::new(Api::new(format!("http://127.0.0.1:{port}")));
    wait_healthy(&api).await;

    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for w in 0..4 {
        let (api, owner, created, stop) =
            (api.clone(), owner.clone(), created.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body =
                    json!({"name": format!("w{w}-{i}"), "role": "read-only", "lifetime": "1h"});
                let res = api
                    .http
                    .post(format!("{}/v1/tokens", api.url))
                    .bearer_auth(&owner)
                    .json(&body)
                    .send()
                    .await;
                let Ok(res) = res else { break };
                if res.status() == reqwest::StatusCode::CREATED
                    && let Ok(v) = res.json::<serde_json::Value>().await
                {
                    created
                        .lock()
                        .unwrap()
                        .push(v["secret"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    eventually(Duration::from_secs(60), "200 tokens created", || async {
        created.lock().unwrap().len() >= 200
    })
    .await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let mut child = spawn_server(&db.url, port);
    wait_healthy(&api).await;
    let secrets = created.lock().unwrap().clone();
    assert!(secrets.len() >= 200);
    for s in &secrets {
        assert_eq!(
            api.verify(s).await,
            "VALID",
            "a token acknowledged with 201 was lost"
        );
    }
    // the survivor count matches storage: nothing half-written (audit and token rows agree)
    let page = api.get("/v1/audit?limit=500", &owner).await;
    assert!(page.status.is_success());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "SIGTERM is a clean shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_creates_loses_no_acknowledged_token_sqlite() {
    kill_during_creates(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_creates_loses_no_acknowledged_token_postgres() {
    kill_during_creates(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_flushes_last_used() {
    let db = TestDatabase::sqlite();
    let out = Command::new(bin_path("tokenops-server"))
        .args(["bootstrap", "--database", &db.url])
        .output()
        .unwrap();
    let owner = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = tokenops_testkit::procfs::free_port();
    let mut child = spawn_server(&db.url, port);
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    wait_healthy(&api).await;
    let me = api.get("/v1/whoami", &owner).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    // the last-used time of the whoami call reached storage
    let mut child = spawn_server(&db.url, port);
    wait_healthy(&api).await;
    let token = api.get(&format!("/v1/tokens/{me}"), &owner).await;
    assert!(token.body["last_used_at"].is_string(), "{}", token.text);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let out = Command::new(bin_path("tokenops-server"))
        .args(["bootstrap", "--database", &db.url])
        .output()
        .unwrap();
    let owner = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&owner[4..]),
        "bootstrap logged the value"
    );
    let port = tokenops_testkit::procfs::free_port();
    let mut child = Command::new(bin_path("tokenops-server"))
        .args([
            "serve",
            "--database",
            &db.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("TOKENOPS_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    wait_healthy(&api).await;
    let mut secrets = vec![owner.clone()];
    let (id, s) = api.create_role(&owner, "logged", "read-only").await;
    secrets.push(s.clone());
    let r = api
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            &owner,
            json!({"grace_period": "1m"}),
        )
        .await;
    secrets.push(r.body["secret"].as_str().unwrap().to_string());
    for s in secrets.clone() {
        api.verify(&s).await;
        api.get("/v1/whoami", &s).await;
        // a value in a field where it does not belong
        api.post("/v1/tokens", &owner, json!({"name": s, "role": 5}))
            .await;
    }
    let mut typo = s.into_bytes();
    typo[7] = if typo[7] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    api.verify(&typo).await;
    secrets.push(typo);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() > 5, "trace logging produced output");
    for s in &secrets {
        assert!(!log.contains(&s[4..]), "a token value is in the server log");
    }
}
