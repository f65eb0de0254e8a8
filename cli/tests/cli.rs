//! The `tokenops` binary end to end against a real server.

use std::process::Stdio;

use serde_json::Value;
use tokenops_testkit::TestServer;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A config folder that does not exist, so no user's config file is read.
const NO_CONFIG: &str = "/nonexistent/tokenops-test-config";

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
        .env_remove("TOKENOPS_CONTEXT")
        .env("XDG_CONFIG_HOME", NO_CONFIG)
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
    if !extra.contains(&"--role") && !extra.contains(&"--scope") {
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
        .env("XDG_CONFIG_HOME", NO_CONFIG)
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
        .env("XDG_CONFIG_HOME", NO_CONFIG)
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
        terminal_width: None,
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
        terminal_width: None,
    };
    assert_eq!(
        tokenops_cli::run(cli, &mut io).await,
        tokenops_cli::exit::NOT_FOUND
    );
    assert!(String::from_utf8_lossy(&stderr).starts_with("error: not found"));
}

/// Runs `tokenops` in a real pseudo-terminal of `cols` columns (`script`
/// from util-linux; `stty cols 0` is a terminal that reports no width).
/// Returns the screen output with `\r\n` made `\n`, or `None` after a skip.
async fn tokenops_in_terminal(server: &TestServer, cols: u16, args: &[&str]) -> Option<String> {
    if !tokenops_testkit::require_tool("script") || !tokenops_testkit::require_tool("stty") {
        return None;
    }
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_tokenops"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let inner = format!("stty cols {cols} rows 50 && exec {}", quoted.join(" "));
    let out = Command::new("script")
        .args(["-qfec", &inner, "/dev/null"])
        .env("TOKENOPS_ENDPOINT", server.url())
        .env("TOKENOPS_TOKEN", server.owner_token())
        .env("XDG_CONFIG_HOME", NO_CONFIG)
        .env_remove("COLUMNS")
        .env_remove("TOKENOPS_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run script");
    let text = String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n");
    assert!(out.status.success(), "{text}");
    Some(text)
}

const BOX_CHARACTERS: &[char] = &[
    '─', '│', '┌', '┐', '└', '┘', '├', '┤', '┼', '╭', '╮', '╯', '╰', '═', '║', '+', '|',
];

/// Creates tokens whose names are long enough to need cutting at 80 columns.
async fn long_named_tokens(server: &TestServer) -> Vec<String> {
    let mut ids = Vec::new();
    for name in [
        "grafana-production-dashboards-readonly-exporter",
        "billing-nightly-export-to-the-data-warehouse",
    ] {
        let (id, _) = create(
            server,
            name,
            &[
                "--scope",
                "billing:read,usage:read,devices:read",
                "--label",
                "team=data",
            ],
        )
        .await;
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_fits_an_80_column_terminal_and_never_cuts_an_id() {
    let server = TestServer::sqlite().await;
    let ids = long_named_tokens(&server).await;
    let Some(screen) = tokenops_in_terminal(&server, 80, &["token", "list"]).await else {
        return;
    };
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1 + ids.len() + 1,
        "header, tokens and the owner:\n{screen}"
    );
    for line in &lines {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("NAME"),
        "{screen}"
    );
    for id in &ids {
        let line = lines.iter().find(|l| l.contains(id.as_str()));
        assert!(line.is_some(), "{id} whole on one line:\n{screen}");
        assert!(line.unwrap().starts_with(id.as_str()));
    }
    assert!(
        screen.replace("tko_…", "").contains('…'),
        "long names are cut with …:\n{screen}"
    );
    assert!(screen.contains("grafana-"), "{screen}");
    assert!(!screen.contains(BOX_CHARACTERS[0]), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_reports_no_width_gets_80_columns() {
    let server = TestServer::sqlite().await;
    let ids = long_named_tokens(&server).await;
    let Some(screen) = tokenops_in_terminal(&server, 0, &["token", "list"]).await else {
        return;
    };
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 4, "one line per token:\n{screen}");
    for line in &lines {
        let width = line.chars().count();
        assert!((40..=80).contains(&width), "{width} columns: {line:?}");
    }
    for id in &ids {
        assert!(screen.contains(id.as_str()), "{id}:\n{screen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_lists_are_plain_columns_that_awk_can_read() {
    let server = TestServer::sqlite().await;
    let ids = long_named_tokens(&server).await;
    let run = tokenops(&server, &["token", "list"], None).await.ok();
    assert!(
        !run.stdout.contains(BOX_CHARACTERS),
        "no box characters when piped:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.replace("tko_…", "").contains('…'),
        "nothing is cut when piped (masked values aside)"
    );
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..2], ["ID", "NAME"]);
    let first_fields: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    for id in &ids {
        assert!(first_fields.contains(&id.as_str()), "{:?}", first_fields);
    }
    let grafana = rows.iter().find(|r| r[0] == ids[0]).unwrap();
    assert_eq!(
        grafana[1],
        "grafana-production-dashboards-readonly-exporter"
    );
    // Columns line up: every row's second field starts where NAME does.
    let name_at = run.stdout.lines().next().unwrap().find("NAME").unwrap();
    for line in run.stdout.lines().skip(1) {
        assert_eq!(
            line[name_at..].chars().next().map(char::is_whitespace),
            Some(false),
            "{line:?}"
        );
        assert!(line[..name_at].ends_with("  "), "{line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_name_yaml_and_wide() {
    let server = TestServer::sqlite().await;
    let (id, _) = create(
        &server,
        "exporter",
        &["--resource", "site=s-1", "--label", "team=data"],
    )
    .await;

    let run = tokenops(
        &server,
        &["token", "list", "-o", "name", "-l", "team=data"],
        None,
    )
    .await
    .ok();
    assert_eq!(run.stdout, format!("{id}\n"));
    let run = tokenops(&server, &["token", "get", &id, "-o", "name"], None)
        .await
        .ok();
    assert_eq!(run.stdout.trim(), id);

    let run = tokenops(&server, &["token", "list", "-o", "yaml"], None)
        .await
        .ok();
    let doc: Value = yaml_serde::from_str(&run.stdout).expect("YAML");
    let items = doc["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|t| t["id"] == id.as_str() && t["labels"]["team"] == "data")
    );
    let run = tokenops(&server, &["token", "get", &id, "-o", "yaml"], None)
        .await
        .ok();
    let doc: Value = yaml_serde::from_str(&run.stdout).expect("YAML");
    assert_eq!(doc["name"], "exporter");

    let run = tokenops(&server, &["token", "list", "-o", "wide"], None)
        .await
        .ok();
    let header = run.stdout.lines().next().unwrap();
    for column in ["RESOURCES", "PROJECT", "LABELS", "EXPIRES"] {
        assert!(header.contains(column), "{header}");
    }
    let row = run.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(
        row.contains("site=s-1") && row.contains("team=data") && row.contains("default"),
        "{row}"
    );
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert!(
        fields
            .iter()
            .filter(|f| f.len() == 20 && f.ends_with('Z') && f.contains('T'))
            .count()
            >= 2,
        "exact dates: {row}"
    );

    // The value is shown once: -o name, which would lose it, is refused before any request.
    let run = tokenops(
        &server,
        &[
            "token",
            "create",
            "x",
            "--role",
            "read-only",
            "--lifetime",
            "1h",
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc = tokenops(
        &server,
        &["token", "list", "-o", "json", "--name", "x"],
        None,
    )
    .await
    .ok()
    .json();
    assert!(doc["items"].as_array().unwrap().is_empty());
    // YAML carries the value with the token.
    let run = tokenops(
        &server,
        &[
            "token",
            "create",
            "y",
            "--role",
            "read-only",
            "--lifetime",
            "1h",
            "-o",
            "yaml",
        ],
        None,
    )
    .await
    .ok();
    let doc: Value = yaml_serde::from_str(&run.stdout).unwrap();
    assert!(doc["secret"].as_str().unwrap().starts_with("tko_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_named_by_id_or_by_a_name_only_one_has() {
    let server = TestServer::sqlite().await;
    let (grafana, _) = create(&server, "grafana", &[]).await;
    let (twin_a, _) = create(&server, "twin", &[]).await;
    let (twin_b, _) = create(&server, "twin", &[]).await;

    let doc = tokenops(&server, &["token", "get", "grafana", "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["id"], grafana.as_str());

    let run = tokenops(&server, &["token", "get", "twin"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&twin_a) && run.stderr.contains(&twin_b),
        "{}",
        run.stderr
    );
    let run = tokenops(&server, &["token", "revoke", "twin"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    let run = tokenops(&server, &["token", "get", "nobody"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("nobody"), "{}", run.stderr);

    // A token value given where a name goes is neither sent nor echoed.
    let value = tokenops_client::secret::generate("tko");
    let run = tokenops(&server, &["token", "get", &value], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains(&value[4..]), "{}", run.stderr);

    // Revoke, regenerate and delete by name too; once one twin is revoked, the
    // other is the only live "twin".
    tokenops(&server, &["token", "revoke", &twin_a], None)
        .await
        .ok();
    let run = tokenops(&server, &["token", "regenerate", "twin"], None)
        .await
        .ok();
    assert!(run.stderr.contains(&twin_b), "{}", run.stderr);
    let run = tokenops(&server, &["token", "revoke", "grafana"], None)
        .await
        .ok();
    assert!(run.stdout.contains(&grafana), "{}", run.stdout);
    let run = tokenops(&server, &["token", "delete", "grafana"], None)
        .await
        .ok();
    assert!(run.stdout.contains(&grafana), "{}", run.stdout);
    let run = tokenops(&server, &["token", "get", &grafana], None).await;
    assert_eq!(run.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completion_loads_and_completes_commands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenops"))
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("complete") && script.contains("tokenops"),
        "{script}"
    );
    for shell in ["zsh", "fish", "powershell"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenops"))
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    if !tokenops_testkit::require_tool("bash") {
        return;
    }
    // Load it into a real bash and ask for the completions of `tokenops tok` and `tokenops token re`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenops.bash");
    std::fs::write(&file, &script).unwrap();
    let probe = format!(
        r#"source '{}'
complete -p tokenops
for line in "tokenops tok" "tokenops token re"; do
  COMP_LINE="$line"; COMP_WORDS=($line); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_POINT=${{#line}}
  _tokenops tokenops "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"
  echo "$line => ${{COMPREPLY[*]}}"
done"#,
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tokenops tok => token"), "{text}");
    let revoke_line = text
        .lines()
        .find(|l| l.starts_with("tokenops token re =>"))
        .unwrap();
    assert!(
        revoke_line.contains("regenerate") && revoke_line.contains("revoke"),
        "{text}"
    );
}

/// Runs `tokenops` with a config folder and no TOKENOPS_* variables but `env`.
async fn tokenops_with_config(
    config_home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenops"));
    cmd.args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("TOKENOPS_ENDPOINT")
        .env_remove("TOKENOPS_TOKEN")
        .env_remove("TOKENOPS_CA_CERT")
        .env_remove("TOKENOPS_CONTEXT")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_from_the_config_file_with_the_environment_winning() {
    let server = TestServer::sqlite().await;
    let other = TestServer::sqlite().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("tokenops");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.token"),
        format!("{}\n", server.owner_token()),
    )
    .unwrap();
    let other_token_file = home.path().join("other-secret");
    std::fs::write(&other_token_file, other.owner_token()).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            r#"current-context = "main"

[contexts.main]
endpoint = "{}"
token-file = "main.token"

[contexts.other]
endpoint = "{}"
token-command = "cat '{}'"
timeout = "5s"
"#,
            server.url(),
            other.url(),
            other_token_file.display()
        ),
    )
    .unwrap();
    let (main_only, _) = create(&server, "only-on-main", &[]).await;

    // The current context: endpoint and token file.
    let run = tokenops_with_config(home.path(), &[], &["token", "list", "-o", "name"])
        .await
        .ok();
    assert!(run.stdout.contains(&main_only), "{}", run.stdout);

    // --context and TOKENOPS_CONTEXT pick another one, whose token comes from a command.
    for (env, args) in [
        (
            vec![],
            vec!["--context", "other", "token", "list", "-o", "name"],
        ),
        (
            vec![("TOKENOPS_CONTEXT", "other")],
            vec!["token", "list", "-o", "name"],
        ),
    ] {
        let run = tokenops_with_config(home.path(), &env, &args).await.ok();
        assert!(!run.stdout.contains(&main_only), "{}", run.stdout);
        assert_eq!(
            run.stdout.lines().count(),
            1,
            "only the other owner: {}",
            run.stdout
        );
    }

    // The environment wins over the context, and says so when the context was named.
    let url = server.url();
    let token = server.owner_token();
    let run = tokenops_with_config(
        home.path(),
        &[("TOKENOPS_ENDPOINT", &url), ("TOKENOPS_TOKEN", &token)],
        &["--context", "other", "token", "list", "-o", "name"],
    )
    .await
    .ok();
    assert!(run.stdout.contains(&main_only), "{}", run.stdout);
    assert!(run.stderr.contains("TOKENOPS_ENDPOINT"), "{}", run.stderr);
    assert!(!run.stderr.contains(&token));

    // An unknown context is a usage error naming the ones there are.
    let run = tokenops_with_config(home.path(), &[], &["--context", "prod", "whoami"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("main, other"), "{}", run.stderr);

    // `tokenops context` lists them and marks the one in use.
    let run = tokenops_with_config(home.path(), &[], &["context"])
        .await
        .ok();
    let current: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(current.len(), 1, "{}", run.stdout);
    assert!(
        current[0].contains("main") && current[0].contains(&server.url()),
        "{}",
        run.stdout
    );
    let run = tokenops_with_config(
        home.path(),
        &[("TOKENOPS_CONTEXT", "other")],
        &["context", "--current"],
    )
    .await
    .ok();
    assert_eq!(run.stdout.trim(), "other");

    // A token written in the file itself is refused, without echoing it.
    std::fs::write(
        dir.join("config.toml"),
        "[contexts.bad]\nendpoint = \"http://127.0.0.1:1\"\ntoken = \"tko_notinthefile\"\n",
    )
    .unwrap();
    let run = tokenops_with_config(home.path(), &[], &["--context", "bad", "whoami"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
    assert!(!run.stderr.contains("notinthefile"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_alone_expires_at_the_end_of_that_day_and_weeks_are_durations() {
    let server = TestServer::sqlite().await;
    let day = (chrono::Utc::now() + chrono::TimeDelta::days(10)).date_naive();
    let date = day.format("%Y-%m-%d").to_string();
    let doc = tokenops(
        &server,
        &[
            "-o",
            "json",
            "token",
            "create",
            "until-a-date",
            "--role",
            "read-only",
            "--expires-at",
            &date,
        ],
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(doc["token"]["expires_at"], format!("{date}T23:59:59Z"));

    let doc = tokenops(
        &server,
        &[
            "-o",
            "json",
            "token",
            "create",
            "two-weeks",
            "--role",
            "read-only",
            "--lifetime",
            "2w",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let at =
        |k: &str| chrono::DateTime::parse_from_rfc3339(doc["token"][k].as_str().unwrap()).unwrap();
    let lived = at("expires_at") - at("created_at");
    assert!((lived.num_seconds() - 14 * 86_400).abs() <= 2, "{lived}");

    let help = tokenops(&server, &["token", "create", "--help"], None)
        .await
        .ok();
    assert!(help.stdout.contains("end of that day"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_newest_first_with_since_limit_and_actor_names() {
    let server = TestServer::sqlite().await;
    let (first, _) = create(&server, "first", &[]).await;
    let (second, _) = create(&server, "second", &[]).await;
    tokenops(&server, &["token", "revoke", &second], None)
        .await
        .ok();

    let doc = tokenops(&server, &["audit", "-o", "json"], None)
        .await
        .ok()
        .json();
    let items = doc["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{doc}");
    let times: Vec<&str> = items.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(items[0]["action"], "token.revoke");

    let run = tokenops(&server, &["audit", "--limit", "1"], None)
        .await
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[1].contains("token.revoke") && lines[1].contains(&second),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].contains("test-owner"),
        "the actor by name: {}",
        run.stdout
    );

    let run = tokenops(&server, &["audit", "--token-id", "first"], None)
        .await
        .ok();
    assert!(
        run.stdout.contains(&first) && !run.stdout.contains(&second),
        "{}",
        run.stdout
    );

    let doc = tokenops(&server, &["audit", "--since", "1h", "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["items"].as_array().unwrap().len(), items.len());
    let future = (chrono::Utc::now() + chrono::TimeDelta::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let run = tokenops(&server, &["audit", "--since", &future], None)
        .await
        .ok();
    assert_eq!(run.stdout.trim(), "No audit events found.");

    // A caller that may read the log but not list tokens sees actors as ids.
    let owner_id = tokenops(&server, &["whoami", "-o", "name"], None)
        .await
        .ok()
        .stdout;
    let (_, auditor) = create(&server, "auditor", &["--scope", "audit:read"]).await;
    let run = tokenops_as(&server, &auditor, &["audit", "--limit", "1"], None)
        .await
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[1].contains(owner_id.trim()), "{}", run.stdout);
    assert!(!lines[1].contains("test-owner"), "{}", run.stdout);
}

/// A server on loopback that answers every request with a 404 web page, like a
/// web server that is not tokenops.
async fn not_tokenops_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let body = "<html><body>Not Found</body></html>";
                let reply = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_endpoint_is_reported_with_the_url_tried() {
    let server = TestServer::sqlite().await;
    let token = server.owner_token();
    let with_endpoint = |endpoint: String, args: &'static [&'static str]| {
        let token = token.clone();
        async move {
            let out = Command::new(env!("CARGO_BIN_EXE_tokenops"))
                .args(args)
                .env("XDG_CONFIG_HOME", NO_CONFIG)
                .env("TOKENOPS_ENDPOINT", &endpoint)
                .env("TOKENOPS_TOKEN", &token)
                .output()
                .await
                .unwrap();
            (
                out.status.code().unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        }
    };

    // tokenops itself, with /v1 added to the endpoint.
    let (code, stderr) = with_endpoint(format!("{}/v1", server.url()), &["token", "list"]).await;
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("no tokenops server answers"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/v1/v1/verify", server.url())),
        "{stderr}"
    );
    assert!(stderr.contains("without /v1"), "{stderr}");

    // Another web server.
    let other = not_tokenops_server().await;
    let (code, stderr) =
        with_endpoint(other.clone(), &["token", "get", "tok_0000000000000000"]).await;
    assert_eq!(code, 6, "not the not-found code: {stderr}");
    assert!(
        stderr.contains(&other) && stderr.contains("404"),
        "{stderr}"
    );

    // No scheme.
    let bare = server.url().trim_start_matches("http://").to_string();
    let (code, stderr) = with_endpoint(bare.clone(), &["whoami"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("http://{bare}")), "{stderr}");

    // The right server still says not found for a token it does not have.
    let (code, stderr) =
        with_endpoint(server.url(), &["token", "get", "tok_0000000000000000"]).await;
    assert_eq!(code, 3, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_nothing_to_change_is_a_usage_error() {
    let server = TestServer::sqlite().await;
    let (id, _) = create(&server, "unchanged", &[]).await;
    let before = tokenops(&server, &["token", "get", &id, "-o", "json"], None)
        .await
        .ok()
        .json();
    let run = tokenops(&server, &["token", "update", &id], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("nothing to change"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let after = tokenops(&server, &["token", "get", &id, "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(before["updated_at"], after["updated_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_puts_global_options_last_and_usage_lines_show_no_connection_flags() {
    let server = TestServer::sqlite().await;
    let run = tokenops(&server, &["token", "create", "--help"], None)
        .await
        .ok();
    let own = run.stdout.find("--role").unwrap();
    let heading = run.stdout.find("Global options:").unwrap();
    let token = run.stdout.find("--token <TOKEN>").unwrap();
    assert!(own < heading && heading < token, "{}", run.stdout);
    // With the endpoint and token in the environment, a usage error's usage line
    // still shows only what the command needs.
    let run = tokenops(&server, &["token", "create"], None).await;
    assert_eq!(run.code, 2);
    let usage = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap();
    assert!(
        !usage.contains("--endpoint") && !usage.contains("--token"),
        "{usage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_shows_what_the_server_allows() {
    let server = TestServer::sqlite().await;
    let run = tokenops(&server, &["policy"], None).await.ok();
    for expected in [
        "token prefix:",
        "tko",
        "max lifetime:",
        "ROLE",
        "token-admin",
        "read-only",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    let doc = tokenops(&server, &["policy", "-o", "json"], None)
        .await
        .ok()
        .json();
    assert!(doc["roles"]["owner"]["permissions"].is_array(), "{doc}");
    let run = tokenops(&server, &["policy", "-o", "name"], None)
        .await
        .ok();
    assert!(
        run.stdout.lines().any(|l| l == "accounting"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_revoke_names_the_ids_it_did_not_find_and_fails() {
    let server = TestServer::sqlite().await;
    let (a, _) = create(&server, "a", &[]).await;
    let (b, _) = create(&server, "b", &[]).await;
    let typo = "tok_0000000000000000";
    let run = tokenops(
        &server,
        &["token", "revoke", typo, &a, "b", "no-such-name"],
        None,
    )
    .await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Revoked 2 tokens"), "{}", run.stdout);
    assert!(
        run.stderr.contains(typo) && run.stderr.contains("no-such-name"),
        "{}",
        run.stderr
    );
    for id in [&a, &b] {
        let doc = tokenops(&server, &["token", "get", id, "-o", "json"], None)
            .await
            .ok()
            .json();
        assert_eq!(doc["status"], "revoked");
    }
    let run = tokenops(&server, &["-o", "json", "token", "revoke", &a, typo], None).await;
    assert_eq!(run.code, 3);
    let doc = run.json();
    assert_eq!(doc["not_found"], serde_json::json!([typo]));

    // A selector never revokes the caller; what it left alone is said.
    tokenops(
        &server,
        &["token", "update", "test-owner", "--label", "team=red"],
        None,
    )
    .await
    .ok();
    let (c, _) = create(&server, "c", &["--label", "team=red"]).await;
    let run = tokenops(&server, &["token", "revoke", "-l", "team=red"], None)
        .await
        .ok();
    assert!(run.stdout.contains("Revoked 1 token."), "{}", run.stdout);
    assert!(run.stdout.contains("Skipped"), "{}", run.stdout);
    // The caller still works, and the other token is revoked.
    tokenops(&server, &["whoami"], None).await.ok();
    let doc = tokenops(&server, &["token", "get", &c, "-o", "json"], None)
        .await
        .ok()
        .json();
    assert_eq!(doc["status"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_listed_on_request_and_revoke_can_wait() {
    let server = TestServer::sqlite().await;
    let (gone, _) = create(&server, "gone", &[]).await;
    let (later, secret) = create(&server, "later", &[]).await;
    tokenops(&server, &["token", "revoke", "gone"], None)
        .await
        .ok();

    let listed = |args: &'static [&'static str]| {
        let server = &server;
        async move { tokenops(server, args, None).await.ok().stdout }
    };
    let default = listed(&["token", "list", "-o", "name"]).await;
    assert!(
        !default.contains(&gone) && default.contains(&later),
        "{default}"
    );
    let revoked = listed(&["token", "list", "-o", "name", "--status", "revoked"]).await;
    assert_eq!(revoked.trim(), gone);
    let all = listed(&["token", "list", "-o", "name", "--all"]).await;
    assert!(all.contains(&gone) && all.contains(&later), "{all}");

    let run = tokenops(
        &server,
        &["token", "revoke", "later", "--after", "1h"],
        None,
    )
    .await
    .ok();
    assert!(run.stdout.contains("keeps working until"), "{}", run.stdout);
    let doc = tokenops(&server, &["token", "get", &later, "-o", "json"], None)
        .await
        .ok()
        .json();
    let expires =
        chrono::DateTime::parse_from_rfc3339(doc["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.to_utc() - chrono::Utc::now();
    assert!(
        left.num_minutes() > 50 && left.num_minutes() <= 60,
        "{left}"
    );
    let run = tokenops(&server, &["verify", &secret], None).await;
    assert_eq!(run.code, 0, "still works during the overlap");
}
