//! `cargo bench -p tokenops-server --bench throughput` — the figures of the
//! README's Performance section, measured side by side in one run:
//!
//! * `verify` vs `/healthz` throughput and latency over keep-alive connections
//!   (the ratio shows what verification costs);
//! * token creation on SQLite and on PostgreSQL;
//! * malformed vs valid values through the verifier itself (no HTTP), and over HTTP;
//! * unknown (well-formed, in no token) vs valid values over HTTP: the
//!   negative cache makes a value seen recently cost no storage read;
//! * resident memory of the server with 100,000 tokens stored and verified;
//! * `/healthz` latency for one client while 1,000 idle keep-alive
//!   connections are held open.
//!
//! The server is the real release binary in its own process; the load
//! generator is this process. `/healthz` and verify alternate over five
//! rounds and the median round is reported. Set `BENCH_TOKENS` /
//! `BENCH_SECONDS` to scale, and `BENCH_EXTRA_POLICY` to add lines to the
//! server's policy file (e.g. `cache_ttl = "1ms"` to see verification
//! without its cache). `BENCH_SERVER_BIN` runs another build of the server
//! (e.g. one of `main`, to compare) under the same load generator.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 5;
const IDLE_CONNECTIONS: usize = 1_000;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    fn start(database: &str, config: &std::path::Path) -> ServerProcess {
        let port = tokenops_testkit::procfs::free_port();
        let child = Command::new(server_bin())
            .args([
                "serve",
                "--database",
                database,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--config")
            .arg(config)
            .env("TOKENOPS_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tokenops-server");
        ServerProcess { child, port }
    }

    /// CPU time (user + system) the server process has used, in seconds.
    fn cpu_seconds(&self) -> f64 {
        tokenops_testkit::procfs::process_cpu_seconds(self.child.id())
    }

    fn rss_mb(&self) -> f64 {
        tokenops_testkit::procfs::memory_mb(self.child.id()).0
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The server binary under test: this build's, or `BENCH_SERVER_BIN`.
fn server_bin() -> String {
    std::env::var("BENCH_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tokenops-server").to_string())
}

fn bootstrap(database: &str, config: &std::path::Path) -> String {
    let out = Command::new(server_bin())
        .args(["bootstrap", "--database", database])
        .arg("--config")
        .arg(config)
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn { sender }
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> (u16, Bytes) {
        self.sender.ready().await.unwrap();
        let res = self.sender.send_request(req).await.expect("response");
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post(path: &str, auth: Option<&str>, body: String) -> Request<Full<Bytes>> {
    let mut b = Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

fn post_bytes(path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap()
}

struct Run {
    requests: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Runs `make(i)` requests on CONNECTIONS keep-alive connections for `secs`, checking each status.
async fn load(
    port: u16,
    secs: f64,
    expect: u16,
    make: Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>,
) -> Run {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = vec![];
    for c in 0..CONNECTIONS {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut lat = Vec::with_capacity(100_000);
            let mut i = c as u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, body) = conn.send(make(i)).await;
                assert_eq!(status, expect, "{}", String::from_utf8_lossy(&body));
                lat.push(t.elapsed().as_micros() as u32);
                i += CONNECTIONS as u64;
            }
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as u64
    };
    Run {
        requests: all.len() as u64,
        seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// Creates `n` tokens with `CONNECTIONS` in flight; returns their values and the rate.
async fn create_tokens(port: u16, owner: &str, n: usize) -> (Vec<String>, f64) {
    let start = Instant::now();
    let per = n.div_ceil(CONNECTIONS);
    let mut tasks = vec![];
    for c in 0..CONNECTIONS {
        let owner = owner.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut out = Vec::with_capacity(per);
            for i in 0..per {
                let body = format!(r#"{{"name":"bench-{c}-{i}","role":"read-only","lifetime":"720h","labels":{{"bench":"yes"}}}}"#);
                let (status, body) = conn.send(post("/v1/tokens", Some(&owner), body)).await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                out.push(v["secret"].as_str().unwrap().to_string());
            }
            out
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    (all, rate)
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            drop(s);
            let mut c = Conn::open(port).await;
            if c.send(get("/readyz")).await.0 == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU time of the calling thread, in seconds: what a check costs, whatever
/// else the machine is doing.
fn thread_cpu_seconds() -> f64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9
}

/// Checks per CPU-second of `values`, walked with a stride through all of
/// them (the same walk for valid and malformed inputs). Each batch of inputs
/// is first copied into a small buffer, untimed: a presented value has just
/// been read from a request, so it is in the CPU cache, while what a valid
/// value is looked up in (100,000 cached tokens) is not.
async fn time_checks(
    verifier: &tokenops_server::verify::Verifier,
    values: &[String],
    secs: f64,
) -> f64 {
    const BATCH: usize = 256;
    let n = values.len();
    let start = Instant::now();
    let mut batch: Vec<String> = vec![String::with_capacity(64); BATCH];
    let (mut cpu, mut done, mut i) = (0.0, 0u64, 0usize);
    while start.elapsed().as_secs_f64() < secs {
        for slot in batch.iter_mut() {
            slot.clear();
            slot.push_str(&values[i]);
            i = (i + 7919) % n;
        }
        let t0 = thread_cpu_seconds();
        for v in &batch {
            let _ = verifier.check(v, 0).await.unwrap();
        }
        cpu += thread_cpu_seconds() - t0;
        done += BATCH as u64;
    }
    done as f64 / cpu
}

/// The verifier alone, on one thread of this process: every stored value (all
/// cached) vs the same values with one character changed (malformed: the
/// checksum fails, nothing else is looked at).
fn verifier_only(database: &str, values: &[String], secs: f64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let policy = tokenops_server::Policy::default();
        let store = tokenops_server::store::Store::connect(database, policy.sqlite_synchronous)
            .await
            .unwrap();
        let verifier = tokenops_server::verify::Verifier::new(store, Arc::new(policy));
        for v in values {
            verifier.check(v, 0).await.unwrap();
        }
        let malformed: Vec<String> = values
            .iter()
            .map(|v| {
                let mut b = v.as_bytes().to_vec();
                b[6] = if b[6] == b'x' { b'y' } else { b'x' };
                String::from_utf8(b).unwrap()
            })
            .collect();
        let valid = time_checks(&verifier, values, secs).await;
        let bad = time_checks(&verifier, &malformed, secs).await;
        (valid, bad)
    })
}

/// Raises this process's soft limit on open files to the hard limit (the
/// idle-connection phase holds over 1,000 sockets); returns the limit.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("open-file limit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise the open-file limit");
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s)
}

/// Opens `n` keep-alive connections, each answered once and then left idle.
async fn hold_idle_connections(port: u16, n: usize) -> Vec<Conn> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Conn::open(port).await;
        assert_eq!(c.send(get("/healthz")).await.0, 200);
        held.push(c);
    }
    held
}

/// One client's sequential `/healthz` requests for `secs`: latency percentiles.
async fn lone_client(port: u16, secs: f64) -> Run {
    let mut conn = Conn::open(port).await;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut lat = Vec::with_capacity(100_000);
    while Instant::now() < deadline {
        let t = Instant::now();
        assert_eq!(conn.send(get("/healthz")).await.0, 200);
        lat.push(t.elapsed().as_micros() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Run {
        requests: lat.len() as u64,
        seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
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
    let tokens = env_num("BENCH_TOKENS", 100_000) as usize;
    let secs = env_num("BENCH_SECONDS", 8) as f64;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("policy.toml");
    std::fs::write(
        &config,
        format!(
            "last_used_flush_interval = \"5s\"\n{}",
            std::env::var("BENCH_EXTRA_POLICY").unwrap_or_default()
        ),
    )
    .unwrap();
    let open_files = raise_open_files();
    println!(
        "tokenops-server benchmark: {tokens} tokens, {secs}s per load phase, {CONNECTIONS} keep-alive connections, 2 cores shared by server and load generator, open-file limit {open_files}, server {}\n",
        server_bin()
    );

    // --- SQLite ---
    let db = dir.path().join("bench.db").display().to_string();
    let owner = bootstrap(&db, &config);
    let server = ServerProcess::start(&db, &config);
    wait_ready(server.port).await;
    let port = server.port;
    let rss_empty = server.rss_mb();
    let (mut values, create_sqlite) = create_tokens(port, &owner, 5_000).await;
    let (more, _) = create_tokens(port, &owner, tokens.saturating_sub(5_000)).await;
    values.extend(more);
    let values = Arc::new(values);
    // Request bodies are built before the clock starts: the load generator
    // shares the cores with the server and should spend as little as possible.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        values
            .iter()
            .map(|v| Bytes::from(format!(r#"{{"token":"{v}"}}"#)))
            .collect(),
    );
    let malformed_bodies: Arc<Vec<Bytes>> = Arc::new(
        values
            .iter()
            .map(|v| {
                let mut b = v.as_bytes().to_vec();
                b[6] = if b[6] == b'x' { b'y' } else { b'x' };
                Bytes::from(format!(
                    r#"{{"token":"{}"}}"#,
                    String::from_utf8(b).unwrap()
                ))
            })
            .collect(),
    );

    // every token verified once, then the side-by-side load
    let n = values.len() as u64;
    let b = bodies.clone();
    load(
        port,
        secs.clamp(2.0, 10.0) * 2.0,
        200,
        Arc::new(move |i| post_bytes("/v1/verify", b[(i % n) as usize].clone())),
    )
    .await;
    // Five rounds of /healthz then verify, back to back: a busy moment of the
    // machine lands on both sides of a round. Reported: the median round.
    let mut rounds = Vec::new();
    let (mut healthz_cpu, mut verify_cpu, mut healthz_n, mut verify_n) = (0.0, 0.0, 0u64, 0u64);
    for _ in 0..ROUNDS {
        let cpu0 = server.cpu_seconds();
        let healthz = load(port, secs, 200, Arc::new(|_| get("/healthz"))).await;
        let cpu1 = server.cpu_seconds();
        let b = bodies.clone();
        let verify = load(
            port,
            secs,
            200,
            Arc::new(move |i| post_bytes("/v1/verify", b[(i * 7919 % n) as usize].clone())),
        )
        .await;
        let cpu2 = server.cpu_seconds();
        healthz_cpu += cpu1 - cpu0;
        verify_cpu += cpu2 - cpu1;
        healthz_n += healthz.requests;
        verify_n += verify.requests;
        rounds.push((healthz, verify));
    }
    rounds.sort_by(|a, b| {
        (a.1.rate() / a.0.rate())
            .partial_cmp(&(b.1.rate() / b.0.rate()))
            .unwrap()
    });
    let ratios: Vec<String> = rounds
        .iter()
        .map(|(h, v)| format!("{:.0}%", 100.0 * v.rate() / h.rate()))
        .collect();
    let (healthz, verify) = rounds.swap_remove(ROUNDS / 2);
    let healthz_cpu_us = healthz_cpu * 1e6 / healthz_n as f64;
    let verify_cpu_us = verify_cpu * 1e6 / verify_n as f64;
    let b = malformed_bodies.clone();
    let malformed_http = load(
        port,
        secs,
        200,
        Arc::new(move |i| post_bytes("/v1/verify", b[(i % n) as usize].clone())),
    )
    .await;
    // Unknown values: well-formed, checksum right, in no token. Each is seen
    // once, then the load repeats them (what a scanner or a client with a
    // dead token does) right after a valid load of the same length.
    let unknown_bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..10_000)
            .map(|_| {
                Bytes::from(format!(
                    r#"{{"token":"{}"}}"#,
                    tokenops_types::secret::generate("tko")
                ))
            })
            .collect(),
    );
    let un = unknown_bodies.len() as u64;
    let b = unknown_bodies.clone();
    load(
        port,
        2.0,
        200,
        Arc::new(move |i| post_bytes("/v1/verify", b[(i % un) as usize].clone())),
    )
    .await;
    let b = bodies.clone();
    let valid_again = load(
        port,
        secs,
        200,
        Arc::new(move |i| post_bytes("/v1/verify", b[(i * 7919 % n) as usize].clone())),
    )
    .await;
    let b = unknown_bodies.clone();
    let unknown_http = load(
        port,
        secs,
        200,
        Arc::new(move |i| post_bytes("/v1/verify", b[(i * 7919 % un) as usize].clone())),
    )
    .await;
    let rss_full = server.rss_mb();
    let alone = lone_client(port, secs.min(4.0)).await;
    let held = hold_idle_connections(port, IDLE_CONNECTIONS).await;
    let beside_idle = lone_client(port, secs).await;
    drop(held);
    server.stop();
    let (valid_core, malformed_core) = {
        let (db, values) = (db.clone(), values.clone());
        tokio::task::spawn_blocking(move || verifier_only(&db, &values, 2.0))
            .await
            .unwrap()
    };

    // --- PostgreSQL (fsync on: a real commit per create) ---
    let create_pg = if tokenops_testkit::have_tool("initdb") {
        let cluster = tokenops_testkit::PgCluster::start(false).expect("start PostgreSQL");
        let url = tokenops_testkit::PgCluster::admin_url(&cluster);
        let owner = bootstrap(&url, &config);
        let server = ServerProcess::start(&url, &config);
        wait_ready(server.port).await;
        let (_, rate) = create_tokens(server.port, &owner, 5_000).await;
        server.stop();
        Some(rate)
    } else {
        println!("(PostgreSQL not available: initdb not on the PATH)");
        None
    };

    println!("| measure | result | target |");
    println!("| --- | --- | --- |");
    println!(
        "| `/healthz` (no work) | {:.0} req/s, p50 {} µs, p99 {} µs | — |",
        healthz.rate(),
        healthz.p50_us,
        healthz.p99_us
    );
    println!(
        "| `POST /v1/verify` (valid, {} tokens) | {:.0} req/s, p50 {} µs, p99 {} µs | ≥ 20,000/s |",
        values.len(),
        verify.rate(),
        verify.p50_us,
        verify.p99_us
    );
    println!(
        "| verify / healthz throughput (median of {ROUNDS} rounds: {}) | {:.0}% | ≥ 70% |",
        ratios.join(", "),
        100.0 * verify.rate() / healthz.rate()
    );
    println!(
        "| server CPU per request: `/healthz` / valid verify | {healthz_cpu_us:.1} µs / {verify_cpu_us:.1} µs | — |"
    );
    println!(
        "| `POST /v1/verify` (malformed) over HTTP | {:.0} req/s | — |",
        malformed_http.rate()
    );
    println!(
        "| `POST /v1/verify` (unknown, seen before) vs valid in the same run | {:.0} vs {:.0} req/s = {:.0}% | ≥ 50% |",
        unknown_http.rate(),
        valid_again.rate(),
        100.0 * unknown_http.rate() / valid_again.rate()
    );
    println!("| verifier alone, one thread: valid | {valid_core:.0} checks per CPU-second | — |");
    println!(
        "| verifier alone, one thread: malformed | {malformed_core:.0} checks per CPU-second ({:.1}× valid) | ≥ 5× |",
        malformed_core / valid_core
    );
    println!("| create on SQLite | {create_sqlite:.0} tokens/s | ≥ 1,000/s |");
    match create_pg {
        Some(r) => println!("| create on PostgreSQL (fsync on) | {r:.0} tokens/s | ≥ 1,000/s |"),
        None => println!("| create on PostgreSQL | not measured | ≥ 1,000/s |"),
    }
    println!(
        "| server RSS: empty / {} tokens stored and verified | {rss_empty:.1} MB / {rss_full:.1} MB | ≤ 100 MB |",
        values.len()
    );
    println!(
        "| `/healthz`, one client alone | {:.0} req/s, p50 {} µs, p99 {} µs | — |",
        alone.rate(),
        alone.p50_us,
        alone.p99_us
    );
    println!(
        "| `/healthz`, one client beside {IDLE_CONNECTIONS} idle keep-alive connections | {:.0} req/s, p50 {} µs, p99 {} µs | p99 < 10 ms |",
        beside_idle.rate(),
        beside_idle.p50_us,
        beside_idle.p99_us
    );
}
