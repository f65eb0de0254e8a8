//! Benchmarks of the provider under the real `terraform` binary, printing
//! figures (not a pass/fail test):
//!
//! - provider start to go-plugin handshake line (median of 20 starts);
//! - `terraform apply` creating 100 `tokenops_api_token`s;
//! - no-change `terraform plan` (with refresh) of those 100 tokens versus
//!   100 `terraform_data` (built into Terraform), and their ratio (target ≤ 2×);
//! - the same plan of 100 resources of two providers without a backend, to
//!   read the ratio against: tfplugin's echo provider (a 7-attribute schema),
//!   and `terraform-provider-floor` (this crate's example: exactly the
//!   `tokenops_api_token` schema, no logic). The floor provider is what
//!   Terraform itself costs for this schema through a plugin; tokenops over
//!   the floor is what the provider and its backend add.
//!
//! Run: `cargo build --release -p terraform-provider-tokenops --bins --examples
//! -p tfplugin && target/release/examples/bench`. `TOKENOPS_PROVIDER_DIR`
//! points at another directory holding the provider binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

const RUNS: usize = 9;

fn provider_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOKENOPS_PROVIDER_DIR") {
        return PathBuf::from(dir).join("terraform-provider-tokenops");
    }
    let exe = std::env::current_exe().expect("bench path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("terraform-provider-tokenops");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p terraform-provider-tokenops --bins --examples` first",
        bin.display()
    );
    bin
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

async fn handshake_time(bin: &Path) -> Duration {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env(tfplugin::MAGIC_COOKIE_KEY, tfplugin::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start provider");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("handshake line");
    let elapsed = started.elapsed();
    assert!(
        line.starts_with("1|6|tcp|"),
        "unexpected handshake {line:?}"
    );
    let _ = child.kill().await;
    elapsed
}

struct Work {
    _root: tempfile::TempDir,
    dir: PathBuf,
    cli_config: PathBuf,
    endpoint: String,
    token: String,
}

impl Work {
    fn new(bin_dir: &Path, endpoint: &str, token: &str, main_tf: &str) -> Self {
        Self::with_override(
            bin_dir,
            "registry.terraform.io/tokenops/tokenops",
            endpoint,
            token,
            main_tf,
        )
    }

    fn with_override(
        bin_dir: &Path,
        source: &str,
        endpoint: &str,
        token: &str,
        main_tf: &str,
    ) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        let cli_config = root.path().join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{source}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                bin_dir.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("main.tf"), main_tf).unwrap();
        Self {
            _root: root,
            dir,
            cli_config,
            endpoint: endpoint.into(),
            token: token.into(),
        }
    }

    async fn timed(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let out = tokio::process::Command::new("terraform")
            .args(args)
            .arg("-input=false")
            .arg("-no-color")
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TOKENOPS_ENDPOINT", &self.endpoint)
            .env("TOKENOPS_TOKEN", &self.token)
            .env_remove("TF_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("terraform");
        let elapsed = started.elapsed();
        let code = out.status.code();
        assert!(
            code == Some(0),
            "terraform {args:?} -> {code:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        elapsed
    }
}

/// The configuration of 100 tokens, for the tokenops provider or for the
/// floor provider that has the same schema under another name.
fn tokens_config(local_name: &str, source: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    {local_name} = {{ source = "{source}" }}
  }}
}}
resource "{local_name}_api_token" "t" {{
  count    = 100
  name     = "bench-${{count.index}}"
  role     = "read-only"
  lifetime = "720h"
}}
"#
    )
}

/// A provider without a backend that the bench plans next to tokenops.
struct Reference {
    what: &'static str,
    build: &'static str,
    work: Option<Work>,
    plans: Vec<Duration>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let bin = provider_binary();
    let bin_dir = bin.parent().unwrap().to_path_buf();

    let mut starts = Vec::new();
    for _ in 0..20 {
        starts.push(handshake_time(&bin).await);
    }
    println!(
        "provider start to handshake (no AutoMTLS cert), median of 20: {:?}",
        median(starts)
    );

    let server = tokenops_testkit::TestServer::sqlite().await;
    let tokens_tf = tokens_config("tokenops", "tokenops/tokenops");
    let data_tf = r#"resource "terraform_data" "t" {
  count = 100
  input = "bench-${count.index}"
}
"#;
    let echo_tf = r#"terraform {
  required_providers {
    echo = { source = "example.com/test/echo" }
  }
}
resource "echo_message" "m" {
  count = 100
  input = "bench-${count.index}"
}
"#;
    let floor_tf = tokens_config("floor", "example.com/bench/floor");
    let examples = bin_dir.join("examples");
    // A provider built as an example of its crate, if it was built.
    let example = |binary: &str, source: &str, main_tf: &str| {
        examples
            .join(binary)
            .is_file()
            .then(|| Work::with_override(&examples, source, "", "", main_tf))
    };
    let echo = example("terraform-provider-echo", "example.com/test/echo", echo_tf);
    let floor = example(
        "terraform-provider-floor",
        "example.com/bench/floor",
        &floor_tf,
    );
    let tokens = Work::new(&bin_dir, &server.url(), &server.owner_token(), &tokens_tf);
    let data = Work::new(&bin_dir, &server.url(), &server.owner_token(), data_tf);

    let apply = tokens.timed(&["apply", "-auto-approve"]).await;
    println!("terraform apply, 100 tokenops_api_token: {apply:?}");
    let data_apply = data.timed(&["apply", "-auto-approve"]).await;
    println!("terraform apply, 100 terraform_data: {data_apply:?}");

    // Providers without a backend, to read the ratio against: what they
    // are, how to build them, their work directory, their plan times.
    let mut references = [
        Reference {
            what: "100 echo_message, 7 attributes, no backend",
            build: "cargo build --release -p tfplugin --examples",
            work: echo,
            plans: Vec::new(),
        },
        Reference {
            what: "100 floor_api_token, the tokenops schema, no backend",
            build: "cargo build --release -p terraform-provider-tokenops --examples",
            work: floor,
            plans: Vec::new(),
        },
    ];
    for work in references.iter().filter_map(|r| r.work.as_ref()) {
        work.timed(&["apply", "-auto-approve"]).await;
    }
    let mut plan_tokens = Vec::new();
    let mut plan_data = Vec::new();
    // Interleaved, so a slower moment of the machine hits all of them alike.
    for _ in 0..RUNS {
        plan_tokens.push(tokens.timed(&["plan", "-detailed-exitcode"]).await);
        plan_data.push(data.timed(&["plan", "-detailed-exitcode"]).await);
        for r in &mut references {
            if let Some(work) = &r.work {
                r.plans
                    .push(work.timed(&["plan", "-detailed-exitcode"]).await);
            }
        }
    }
    let (pt, pd) = (median(plan_tokens), median(plan_data));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("no-change plan, 100 tokenops_api_token (median of {RUNS}): {pt:?}");
    println!("no-change plan, 100 terraform_data (median of {RUNS}): {pd:?}");
    println!(
        "ratio tokenops/terraform_data: {:.2}x (target <= 2x)",
        ratio(pt, pd)
    );
    for r in references {
        if r.plans.is_empty() {
            println!("({} not built: `{}` adds its figure)", r.what, r.build);
            continue;
        }
        let p = median(r.plans);
        println!(
            "no-change plan, {} (median of {RUNS}): {p:?} = {:.2}x terraform_data; tokenops = {:.2}x this",
            r.what,
            ratio(p, pd),
            ratio(pt, p)
        );
    }
    let mut no_refresh = Vec::new();
    for _ in 0..RUNS {
        no_refresh.push(tokens.timed(&["plan", "-refresh=false"]).await);
    }
    println!(
        "no-change plan -refresh=false, 100 tokenops_api_token (median of {RUNS}): {:?}",
        median(no_refresh)
    );
    tokens.timed(&["destroy", "-auto-approve"]).await;
}
