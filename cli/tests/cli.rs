//! The `tokenops` binary end to end against a real server.

use std::process::Stdio;

use serde_json::Value;
use tokenops_testkit::TestServer;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `tokenops` with the server in the environment (the documented way to
/// pass endpoint and token), optionally feeding stdin.
async fn tokenops(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Run {
    tokenops_as(server, &server.owner_token(), args, stdin).await
}

async fn tokenops_as(server: &TestServer, token: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenops"));
    cmd.args(args)
        .env("TOKENOPS_ENDPOINT", server.url())
        .env_remove("TOKENOPS_CA_CERT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if token.is_empty() {
        cmd.env_remove("TOKENOPS_TOKEN");
    } else {
        cmd.env("TOKENOPS_TOKEN", token);
    }
    let mut child = cmd.spawn().expect("run tokenops");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

async fn create(server: &TestServer, name: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["-o", "json", "token", "create", name, "--lifetime", "720h"];
    if !extra.contains(&"--role") {
        args.extend_from_slice(&["--role", "read-only"]);
    }
    args.extend_from_slice(extra);
    let doc = tokenops(server, &args, None).await.ok().json();
    (
        doc["token"]["id"].as_str().unwrap().to_string(),
        doc["secret"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_only_the_secret_and_warns_on_stderr() {
    let server = TestServer::sqlite().await;
    let run = tokenops(
        &server,
        &[
            "token",
            "create",
            "deploy-bot",
            "--role",
            "read-only",
            "--lifetime",
            "30d",
            "--label",
            "team=web",
        ],
        None,
    )
    .await
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly the secret: {:?}", run.stdout);
    assert!(lines[0].starts_with("tko_"), "{}", lines[0]);
    assert!(run.stderr.contains("only"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains(lines[0]),
        "the warning does not repeat the value"
    );

    // The captured value works.
    let verify = tokenops(&server, &["verify", lines[0]], None).await;
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(verify.stdout.starts_with("VALID"), "{}", verify.stdout);

    // JSON output carries token and secret together.
    let doc = tokenops(
        &server,
        &[
            "-o",
            "json",
            "token",
            "create",
            "json-bot",
            "--role",
            "read-only",
            "--lifetime",
            "1h",
        ],
        None,
    )
    .await
    .ok()
    .json();
    assert!(doc["secret"].as_str().unwrap().starts_with("tko_"));
    assert_eq!(doc["token"]["name"], "json-bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_a_table_or_json() {
    let server = TestServer::sqlite().await;
    let (id, secret) = create(
        &server,
        "listed",
        &["--role", "read-only", "--label", "team=red"],
    )
    .await;

    let run = tokenops(&server, &["token", "list"], None).await.ok();
    for header in [
        "ID",
        "NAME",
        "TOKEN",
        "PERMISSIONS",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ] {
        assert!(
            run.stdout.contains(header),
            "missing {header}:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains(&id));
    assert!(run.stdout.contains("listed"));
    assert!(run.stdout.contains("read-only"));
    assert!(run.stdout.contains("in 30d"), "{}", run.stdout);
    assert!(!run.stdout.contains(&secret), "list never shows a value");
    assert!(
        run.stdout.contains(&secret[secret.len() - 4..]),
        "the masked tail is shown"
    );

    let doc = tokenops(
        &server,
        &["token", "list", "-o", "json", "--selector", "team=red"],
        None,
    )
    .await
    .ok()
    .json();
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    let doc = tokenops(
        &server,
        &["token", "list", "--output", "json", "-l", "team=blue"],
        None,
    )
    .await
    .ok()
    .json();
    assert!(doc["items"].as_array().unwrap().is_empty());
    let doc = tokenops(
        &server,
        &["token", "list", "-o", "json", "--status", "revoked"],
        None,
    )
    .await
    .ok()
    .json();
    assert!(doc["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_update_regenerate_revoke_delete() {
    let server = TestServer::sqlite().await;
    let (id, secret) = create(
        &server,
        "lifecycle",
        &["--label", "keep=me", "--label", "drop=me"],
    )
    .await;

    let run = tokenops(&server, &["token", "get", &id], None).await.ok();
    assert!(
        run.stdout.contains("lifecycle") && run.stdout.contains("keep=me"),
        "{}",
        run.stdout
    );
    let doc = tokenops(&server, &["token", "get", &id, "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["id"], id.as_str());

    let doc = tokenops(
        &server,
        &[
            "-o",
            "json",
            "token",
            "update",
            &id,
            "--name",
            "renamed",
            "--description",
            "d",
            "--label",
            "new=1",
            "--remove-label",
            "drop",
        ],
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(doc["name"], "renamed");
    assert_eq!(doc["description"], "d");
    assert_eq!(doc["labels"], serde_json::json!({"keep": "me", "new": "1"}));

    let run = tokenops(
        &server,
        &["token", "regenerate", &id, "--grace-period", "10m"],
        None,
    )
    .await
    .ok();
    let new_secret = run.stdout.trim().to_string();
    assert_eq!(run.stdout.lines().count(), 1);
    assert!(new_secret.starts_with("tko_") && new_secret != secret);
    assert!(run.stderr.contains("only"), "{}", run.stderr);
    let doc = tokenops(&server, &["-o", "json", "token", "regenerate", &id], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["token"]["generation"], 2);

    let run = tokenops(&server, &["token", "revoke", &id], None)
        .await
        .ok();
    assert!(run.stdout.contains(&id), "{}", run.stdout);
    let doc = tokenops(&server, &["token", "get", &id, "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["status"], "revoked");

    let run = tokenops(&server, &["token", "delete", &id], None)
        .await
        .ok();
    assert!(run.stdout.contains(&id));
    let run = tokenops(&server, &["token", "get", &id], None).await;
    assert_eq!(run.code, 3, "not found: {}", run.stderr);
    assert!(run.stderr.contains("not_found"), "{}", run.stderr);
    let run = tokenops(&server, &["token", "delete", &id], None).await;
    assert_eq!(run.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_revoke_by_selector_and_by_ids() {
    let server = TestServer::sqlite().await;
    let (a, _) = create(&server, "a", &["--label", "team=red"]).await;
    let (b, _) = create(&server, "b", &["--label", "team=red"]).await;
    let (c, _) = create(&server, "c", &["--label", "team=blue"]).await;
    let (d, _) = create(&server, "d", &["--label", "team=blue"]).await;

    let run = tokenops(
        &server,
        &["token", "revoke", "--selector", "team=red"],
        None,
    )
    .await
    .ok();
    assert!(run.stdout.contains("Revoked 2 tokens"), "{}", run.stdout);
    let doc = tokenops(&server, &["-o", "json", "token", "revoke", &c, &d], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["revoked"], 2);
    for id in [&a, &b, &c, &d] {
        let doc = tokenops(&server, &["token", "get", id, "-o", "json"], None)
            .await
            .ok()
            .json();
        assert_eq!(doc["status"], "revoked", "{id}");
    }
    let run = tokenops(&server, &["token", "revoke"], None).await;
    assert_eq!(run.code, 2, "ids or a selector are required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_and_verify_exit_codes() {
    let server = TestServer::sqlite().await;
    let run = tokenops(&server, &["whoami"], None).await.ok();
    assert!(run.stdout.contains("tok_"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(&server.owner_token()),
        "whoami never echoes the token"
    );
    let doc = tokenops(&server, &["whoami", "-o", "json"], None)
        .await
        .ok()
        .json();
    assert!(doc["id"].as_str().unwrap().starts_with("tok_"));

    let (id, secret) = create(
        &server,
        "verified",
        &["--role", "read-only", "--resource", "site=s-1"],
    )
    .await;

    // From stdin, with a permission it has and one it lacks.
    let run = tokenops(
        &server,
        &["verify", "-", "--permission", "billing:read"],
        Some(&format!("{secret}\n")),
    )
    .await;
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("VALID"));
    assert!(run.stdout.contains(&id));
    let run = tokenops(
        &server,
        &["verify", "-", "--permission", "tokens:create"],
        Some(&secret),
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("INSUFFICIENT_PERMISSIONS"),
        "{}",
        run.stdout
    );
    let run = tokenops(
        &server,
        &[
            "verify",
            &secret,
            "--permission",
            "billing:read",
            "--resource",
            "site=s-2",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);

    let run = tokenops(&server, &["verify", "tko_garbage"], None).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("MALFORMED"), "{}", run.stdout);
    let run = tokenops(&server, &["verify", "-o", "json", "tko_garbage"], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["code"], "MALFORMED");

    tokenops(&server, &["token", "revoke", &id], None)
        .await
        .ok();
    let run = tokenops(&server, &["verify", &secret], None).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("REVOKED"), "{}", run.stdout);

    // Verify needs no token of its own.
    let run = tokenops_as(&server, "", &["verify", "tko_garbage"], None).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_exit_codes_and_name_the_field() {
    let server = TestServer::sqlite().await;

    // A duration the parser rejects: a usage error naming the flag, before any request.
    let run = tokenops(
        &server,
        &["token", "create", "x", "--lifetime", "5 minutes"],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--lifetime"), "{}", run.stderr);

    // A duration the server rejects (beyond policy): exit 5, naming the field.
    let run = tokenops(
        &server,
        &[
            "token",
            "create",
            "x",
            "--role",
            "read-only",
            "--lifetime",
            "9000h",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("lifetime"), "{}", run.stderr);
    assert!(
        run.stderr.contains("lifetime_exceeds_policy"),
        "{}",
        run.stderr
    );

    // Unknown token id: 3.
    let run = tokenops(&server, &["token", "get", "tok_nope"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);

    // Bad credentials: 4, and the token is not echoed.
    let stranger = tokenops_client::secret::generate("tko");
    let run = tokenops_as(&server, &stranger, &["whoami"], None).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(!run.stderr.contains(&stranger) && !run.stdout.contains(&stranger));

    // No token at all: a usage error.
    let run = tokenops_as(&server, "", &["token", "list"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("TOKENOPS_TOKEN"), "{}", run.stderr);

    // An empty TOKENOPS_TOKEN is no token either.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenops"))
        .args(["token", "list"])
        .env("TOKENOPS_ENDPOINT", server.url())
        .env("TOKENOPS_TOKEN", "")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Server unreachable: 6.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenops"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = cmd
        .args(["whoami", "--timeout", "2s"])
        .env("TOKENOPS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("TOKENOPS_TOKEN", "tko_x")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_library_runs_commands_in_process() {
    use clap::Parser;
    let server = TestServer::sqlite().await;
    let url = server.url();
    let token = server.owner_token();
    let args = [
        "tokenops",
        "--endpoint",
        &url,
        "--token",
        &token,
        "-o",
        "json",
        "whoami",
    ];
    let cli = tokenops_cli::Cli::try_parse_from(args).unwrap();
    let (mut stdin, mut stdout, mut stderr) = (&b""[..], Vec::new(), Vec::new());
    let mut io = tokenops_cli::Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let code = tokenops_cli::run(cli, &mut io).await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&stderr));
    let me: Value = serde_json::from_slice(&stdout).unwrap();
    assert!(me["id"].as_str().unwrap().starts_with("tok_"));

    let cli = tokenops_cli::Cli::try_parse_from([
        "tokenops",
        "--endpoint",
        &url,
        "--token",
        &token,
        "token",
        "get",
        "tok_missing",
    ])
    .unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut io = tokenops_cli::Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    assert_eq!(
        tokenops_cli::run(cli, &mut io).await,
        tokenops_cli::exit::NOT_FOUND
    );
    assert!(String::from_utf8_lossy(&stderr).starts_with("error: not found"));
}
