//! The HTTP edge against the real `tokenops-server` binary over real sockets:
//! header and idle timeouts, the connection limit, the shutdown deadline,
//! problem+json for errors of the HTTP layer, and how `--database` names and
//! opens a SQLite file.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokenops_testkit::{TestDatabase, bin_path};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `tokenops-server serve`, killed when dropped.
struct Served {
    child: Child,
    port: u16,
    database: String,
    owner: String,
    api: Api,
}

impl Served {
    async fn start(db: &TestDatabase, flags: &[&str]) -> Served {
        let owner = bootstrap(&db.url);
        Self::start_on(&db.url, owner, flags).await
    }

    async fn start_on(database: &str, owner: String, flags: &[&str]) -> Served {
        let port = tokenops_testkit::procfs::free_port();
        let mut command = Command::new(bin_path("tokenops-server"));
        command
            .args(["serve", "--database", database, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(flags)
            .env("TOKENOPS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Self::launch(command, port, database, owner).await
    }

    async fn launch(mut command: Command, port: u16, database: &str, owner: String) -> Served {
        let child = command.spawn().expect("spawn tokenops-server");
        let served = Served {
            child,
            port,
            database: database.to_string(),
            owner,
            api: Api::new(format!("http://127.0.0.1:{port}")),
        };
        served.wait_healthy().await;
        served
    }

    async fn wait_healthy(&self) {
        eventually(
            Duration::from_secs(30),
            "server answers /healthz",
            || async {
                self.api
                    .http
                    .get(format!("{}/healthz", self.api.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect")
    }

    /// Sends SIGTERM and returns how long the process took to exit, and whether it exited cleanly.
    fn terminate(&mut self) -> (Duration, bool) {
        let start = Instant::now();
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        (start.elapsed(), status.success())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn bootstrap(database: &str) -> String {
    let out = Command::new(bin_path("tokenops-server"))
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

/// Reads until the server closes the connection; returns what it sent and
/// when it closed. Fails if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open for {within:?}; it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on a raw connection, kept open afterwards; returns the
/// answer's head, or `None` if the server closed the connection first.
async fn try_request(stream: &mut TcpStream, path: &str) -> Option<String> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: edge\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10s")
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

async fn request_keep_alive(stream: &mut TcpStream, path: &str) -> String {
    try_request(stream, path)
        .await
        .expect("connection closed before an answer")
}

const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: edge\r\nx-slow: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_closed_within_the_header_timeout() {
    let db = TestDatabase::sqlite();
    let served = Served::start(&db, &["--header-timeout", "1s", "--idle-timeout", "1h"]).await;
    // a head that never ends, and a connection that never sends anything
    let mut half = served.connect().await;
    half.write_all(HALF_HEAD).await.unwrap();
    let mut silent = served.connect().await;
    let (got, took) = read_until_closed(&mut half, Duration::from_secs(10)).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before the header timeout"
    );
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10));
    // a head that keeps trickling in is timed from its first byte, not its last
    let mut trickle = served.connect().await;
    let start = Instant::now();
    let mut probe = [0u8; 64];
    let closed_after = 'sending: loop {
        for b in HALF_HEAD.iter().chain(std::iter::repeat(&b'a')) {
            if trickle.write_all(&[*b]).await.is_err() {
                break 'sending start.elapsed();
            }
            match tokio::time::timeout(Duration::from_millis(100), trickle.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break 'sending start.elapsed(),
                Ok(Ok(_)) => panic!("an answer to half a head"),
                Err(_) => assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "trickle kept open"
                ),
            }
        }
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
    // whole requests still work on a kept-alive connection past the timeout
    let mut kept = served.connect().await;
    assert!(
        request_keep_alive(&mut kept, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_closes_after_the_idle_timeout() {
    let db = TestDatabase::sqlite();
    let served = Served::start(&db, &["--idle-timeout", "1s"]).await;
    let mut conn = served.connect().await;
    assert!(
        request_keep_alive(&mut conn, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let (got, took) = read_until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(got.is_empty());
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_delayed_by_stalled_connections_and_flushes_last_used() {
    let db = TestDatabase::sqlite();
    // Timeouts far longer than the test: only shutdown can close these.
    let mut served = Served::start(
        &db,
        &[
            "--header-timeout",
            "10m",
            "--idle-timeout",
            "10m",
            "--shutdown-timeout",
            "10m",
        ],
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut c = served.connect().await;
        c.write_all(HALF_HEAD).await.unwrap();
        stalled.push(c);
        let mut idle = served.connect().await;
        assert!(
            request_keep_alive(&mut idle, "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        stalled.push(idle);
    }
    let me = served.api.get("/v1/whoami", &served.owner).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (took, clean) = served.terminate();
    assert!(clean, "SIGTERM is a clean shutdown");
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for idle or half-sent connections"
    );
    for c in &mut stalled {
        read_until_closed(c, Duration::from_secs(1)).await;
    }
    let served = Served::start_on(&served.database, served.owner.clone(), &[]).await;
    let token = served
        .api
        .get(&format!("/v1/tokens/{me}"), &served.owner)
        .await;
    assert!(
        token.body["last_used_at"].is_string(),
        "last-used date lost at shutdown: {}",
        token.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_holds_shutdown_only_until_the_deadline() {
    let db = TestDatabase::sqlite();
    let mut served =
        Served::start(&db, &["--shutdown-timeout", "1s", "--idle-timeout", "10m"]).await;
    // a request whose body never finishes arriving is in flight for ever;
    // `100 Continue` says the handler has started reading it
    let mut conn = served.connect().await;
    conn.write_all(
        b"POST /v1/verify HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\ncontent-length: 100\r\nexpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    conn.write_all(b"{\"token\":").await.unwrap();
    let (took, clean) = served.terminate();
    assert!(clean);
    assert!(
        took >= Duration::from_millis(900),
        "shutdown did not wait for the request in flight ({took:?})"
    );
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    read_until_closed(&mut conn, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_connections_do_not_stop_healthz() {
    let db = TestDatabase::sqlite();
    let served = Served::start(&db, &[]).await;
    let mut held = Vec::new();
    for i in 0..200 {
        let mut c = served.connect().await;
        if i % 2 == 0 {
            c.write_all(HALF_HEAD).await.unwrap();
        }
        held.push(c);
    }
    for _ in 0..20 {
        let r = served
            .api
            .http
            .get(format!("{}/healthz", served.api.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/healthz answers with 200 connections held open");
        assert!(r.status().is_success());
    }
    // the held connections are still open (not closed to make room)
    let mut probe = [0u8; 1];
    for c in &mut held {
        assert!(
            tokio::time::timeout(Duration::from_millis(1), c.read(&mut probe))
                .await
                .is_err(),
            "an idle connection was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_at_once() {
    let db = TestDatabase::sqlite();
    let mut served = Served::start(&db, &["--max-connections", "5"]).await;
    // the health check's pooled connection goes with its client
    served.api = Api::new(served.api.url.clone());
    let mut held = Vec::new();
    while held.len() < 5 {
        let mut c = served.connect().await;
        if try_request(&mut c, "/healthz")
            .await
            .is_some_and(|head| head.starts_with("HTTP/1.1 200"))
        {
            held.push(c);
        }
    }
    let mut extra = served.connect().await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: edge\r\n\r\n")
        .await;
    let (got, took) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(took < Duration::from_secs(2));
    if !got.is_empty() {
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(got.contains("application/problem+json"), "{got}");
        assert!(got.contains("connection: close"), "{got}");
        assert!(got.contains("\"code\":\"unavailable\""), "{got}");
    }
    // a place freed is a place taken
    held.pop();
    eventually(
        Duration::from_secs(10),
        "a new connection is served",
        || async {
            served
                .api
                .http
                .get(format!("{}/healthz", served.api.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_neither_stalls_nor_spins() {
    let db = TestDatabase::sqlite();
    let owner = bootstrap(&db.url);
    // A limit on open files the server cannot raise, and a connection limit above it.
    let port = tokenops_testkit::procfs::free_port();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} serve --database {} --listen 127.0.0.1:{port} --max-connections 1000",
            bin_path("tokenops-server").display(),
            db.url
        ))
        .env("TOKENOPS_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut served = Served::launch(command, port, &db.url, owner).await;
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(served.connect().await);
    }
    // beyond the descriptors: answered or closed at once, not left waiting
    let mut extra = served.connect().await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: edge\r\n\r\n")
        .await;
    read_until_closed(&mut extra, Duration::from_secs(3)).await;
    let pid = served.child.id();
    let cpu_before = tokenops_testkit::procfs::process_cpu_seconds(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = tokenops_testkit::procfs::process_cpu_seconds(pid) - cpu_before;
    assert!(cpu < 0.25, "the server spun: {cpu:.2}s of CPU in 0.5s");
    drop(held);
    served.wait_healthy().await;
    assert!(served.terminate().1, "SIGTERM is a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_the_http_layer_are_problems_that_quote_nothing() {
    let db = TestDatabase::sqlite();
    let served = Served::start(&db, &[]).await;
    let api = &served.api;
    // a path segment that is not UTF-8 once percent-decoded
    for (method, path) in [
        (reqwest::Method::GET, "/v1/tokens/%FF%FEtko_secretvalue"),
        (reqwest::Method::POST, "/v1/tokens/%C0%80/regenerate"),
    ] {
        let body = (method == reqwest::Method::POST).then(|| serde_json::json!({}));
        let r = api.raw(method, path, Some(&served.owner), body).await;
        r.assert_problem(400, "bad_request");
        assert!(!r.text.contains("secretvalue"), "{}", r.text);
        assert!(
            !r.text.contains("%FF") && !r.text.contains("%C0"),
            "{}",
            r.text
        );
    }
    // unknown route and wrong method stay problems
    api.get("/nowhere", &served.owner)
        .await
        .assert_problem(404, "not_found");
    api.raw(
        reqwest::Method::PUT,
        "/v1/whoami",
        Some(&served.owner),
        None,
    )
    .await
    .assert_problem(405, "method_not_allowed");
    // a header value that is not text
    let r = Api::reply(api.http.get(format!("{}/v1/whoami", api.url)).header(
        "authorization",
        reqwest::header::HeaderValue::from_bytes(b"Bearer tko_\xff\xfe").unwrap(),
    ))
    .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert_eq!(r.content_type(), "application/problem+json", "{}", r.text);
}

fn sqlite_file_created(database: &str, dir: &std::path::Path, file: &str) {
    let out = Command::new(bin_path("tokenops-server"))
        .args(["bootstrap", "--database", database])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{database}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join(file).is_file(), "{database} did not create {file}");
}

#[test]
fn sqlite_urls_create_the_file_like_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("absolute.db");
    sqlite_file_created(
        &format!("sqlite://{}", abs.display()),
        dir.path(),
        "absolute.db",
    );
    sqlite_file_created("sqlite:relative.db", dir.path(), "relative.db");
    sqlite_file_created("sqlite://slashes.db", dir.path(), "slashes.db");
    sqlite_file_created("sqlite:query.db?cache=private", dir.path(), "query.db");
    sqlite_file_created("plain path #1?.db", dir.path(), "plain path #1?.db");
}

fn open_error(database: &str) -> String {
    let out = Command::new(bin_path("tokenops-server"))
        .args(["bootstrap", "--database", database])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{database} opened");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_database_that_cannot_be_opened_is_explained_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("tokenops.db");
    let err = open_error(&missing.display().to_string());
    assert!(
        err.contains(&format!(
            "the directory {} does not exist",
            dir.path().join("no-such-dir").display()
        )),
        "{err}"
    );
    let err = open_error(&format!("sqlite://{}", missing.display()));
    assert!(err.contains("does not exist"), "{err}");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are not the tables you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = open_error(&text.display().to_string());
    assert!(err.contains("is not a SQLite database"), "{err}");

    let err = open_error(&dir.path().display().to_string());
    assert!(err.contains("is a directory"), "{err}");

    if nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: permission denied cannot be shown to root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let err = open_error(&locked.join("tokenops.db").display().to_string());
    assert!(err.contains("permission denied"), "{err}");
}
