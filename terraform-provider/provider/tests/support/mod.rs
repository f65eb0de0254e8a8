//! Shared test support: a scratch Terraform working directory whose CLI
//! config points `registry.terraform.io/tokenops/tokenops` at the provider
//! binary cargo built for these tests (a `dev_overrides` entry, so nothing
//! is downloaded), plus a client of the test server for checks behind
//! Terraform's back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

use serde_json::Value as Json;
use tokenops_client::Client;
use tokenops_client::secrecy::SecretString;

/// The provider binary cargo built for this package's tests.
pub fn provider_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_terraform-provider-tokenops"));
    bin.parent().expect("binary directory").to_path_buf()
}

/// A client of `url` acting as `token`.
pub fn client(url: &str, token: &str) -> Client {
    Client::builder(url)
        .token(SecretString::from(token.to_owned()))
        .build()
        .expect("client")
}

/// A Terraform working directory.
pub struct Tf {
    root: tempfile::TempDir,
    pub dir: PathBuf,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

impl Tf {
    /// A working directory whose provider reaches `endpoint` with `token`
    /// (through TOKENOPS_ENDPOINT / TOKENOPS_TOKEN).
    pub fn new(endpoint: &str, token: &str) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        let cli_config = root.path().join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"registry.terraform.io/tokenops/tokenops\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display()
            ),
        )
        .unwrap();
        Self {
            root,
            dir,
            cli_config,
            env: vec![
                ("TOKENOPS_ENDPOINT".into(), endpoint.into()),
                ("TOKENOPS_TOKEN".into(), token.into()),
            ],
        }
    }

    /// Sets (or, with an empty value, removes) an environment variable for
    /// every following run.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Writes `main.tf` (with the `required_providers` block in front).
    pub fn config(&self, main_tf: &str) {
        let header = "terraform {\n  required_providers {\n    tokenops = { source = \"tokenops/tokenops\" }\n  }\n}\n";
        std::fs::write(self.dir.join("main.tf"), format!("{header}{main_tf}")).unwrap();
    }

    /// Runs terraform with `args`.
    pub async fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new("terraform");
        cmd.args(args)
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_LOG")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let output = cmd.output().await.expect("run terraform");
        eprintln!(
            "terraform {} -> {} in {:?}",
            args.join(" "),
            output.status,
            started.elapsed()
        );
        output
    }

    /// Runs terraform and fails the test unless it succeeded; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(&with_defaults(args)).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "terraform {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs terraform expecting failure; returns stdout and stderr together.
    pub async fn fails(&self, args: &[&str]) -> String {
        let output = self.run(&with_defaults(args)).await;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.status.success(),
            "terraform {args:?} succeeded:\n{all}"
        );
        all
    }

    /// `terraform plan -detailed-exitcode`: (exit code, output).
    pub async fn plan(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["plan", "-detailed-exitcode"];
        args.extend_from_slice(extra);
        let output = self.run(&with_defaults(&args)).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let code = output.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 2, "plan failed ({code}):\n{text}");
        (code, text)
    }

    /// `terraform apply -auto-approve`.
    pub async fn apply(&self, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-auto-approve"];
        args.extend_from_slice(extra);
        self.ok(&args).await
    }

    /// The raw state file.
    pub fn state_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("terraform.tfstate")).unwrap_or_default()
    }

    /// The attributes of resource `address` (e.g. `tokenops_api_token.ci`)
    /// in the state file.
    pub fn attributes(&self, address: &str) -> Json {
        let state: Json = serde_json::from_str(&self.state_text()).expect("state JSON");
        let (ty, name) = address.split_once('.').expect("type.name");
        state["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["mode"] == "managed" && r["type"] == ty && r["name"] == name)
            .map(|r| r["instances"][0]["attributes"].clone())
            .unwrap_or(Json::Null)
    }

    /// The value of output `name`.
    pub async fn output(&self, name: &str) -> Json {
        let text = self.ok(&["output", "-json"]).await;
        let outputs: Json = serde_json::from_str(&text).expect("output -json");
        outputs[name]["value"].clone()
    }

    /// Keeps the scratch directory alive.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

fn with_defaults<'a>(args: &[&'a str]) -> Vec<&'a str> {
    // Flags go right after the subcommand, before any positional argument.
    let mut all = args[..1].to_vec();
    if !matches!(
        args.first(),
        Some(&"output") | Some(&"show") | Some(&"state") | Some(&"validate")
    ) {
        all.push("-input=false");
    }
    all.push("-no-color");
    all.extend_from_slice(&args[1..]);
    all
}

/// Whether some full token value (not a masked one) occurs in `text`:
/// values look like `tko_<base62>`, masked ones like `tko_…abcd`.
pub fn contains_token_value(text: &str) -> bool {
    text.match_indices("tko_").any(|(i, _)| {
        text[i + 4..]
            .chars()
            .take(20)
            .filter(char::is_ascii_alphanumeric)
            .count()
            == 20
    })
}
