//! End-to-end tests under the real `terraform` binary, driving the example
//! provider (`examples/terraform-provider-echo.rs`) through plan, apply,
//! import, state upgrade, ephemeral resources, a panic, and destroy.
//!
//! `cargo test -p tfplugin` builds the example before running this file.
//! Without `terraform` on PATH the tests print why they skip, unless
//! `CI=true`, where a missing binary fails them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value as Json;

const SOURCE: &str = "example.com/test/echo";

/// `terraform` on PATH, or `None` (after saying why) when the test should
/// skip.
fn terraform() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("terraform"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("terraform is not on PATH, and CI=true requires the end-to-end tests to run");
        }
        // Written to the real stderr so the harness does not swallow it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: terraform is not on PATH (set CI=true to make this a failure)"
        );
    }
    found
}

/// The example provider binary, built by cargo next to this test binary.
fn provider_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let binary = profile_dir.join("examples").join("terraform-provider-echo");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo test -p tfplugin` (which builds examples) or \
         `cargo build -p tfplugin --example terraform-provider-echo` first",
        binary.display()
    );
    binary
}

/// A scratch Terraform setup: a CLI config with a dev override pointing at
/// a copy of the provider, and a working directory.
struct Workspace {
    terraform: PathBuf,
    _root: tempfile::TempDir,
    dir: PathBuf,
    cli_config: PathBuf,
    journal: PathBuf,
}

impl Workspace {
    fn new(terraform: PathBuf, main_tf: &str) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let bin = root.path().join("bin");
        let dir = root.path().join("work");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(provider_binary(), bin.join("terraform-provider-echo")).unwrap();
        let cli_config = root.path().join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                bin.display()
            ),
        )
        .unwrap();
        let journal = root.path().join("journal.txt");
        let provider_block = format!(
            "terraform {{\n  required_providers {{\n    echo = {{ source = \"{SOURCE}\" }}\n  }}\n}}\n\
             provider \"echo\" {{\n  prefix  = \"p-\"\n  journal = \"{}\"\n}}\n",
            journal.display()
        );
        std::fs::write(dir.join("provider.tf"), provider_block).unwrap();
        std::fs::write(dir.join("main.tf"), main_tf).unwrap();
        Self {
            terraform,
            _root: root,
            dir,
            cli_config,
            journal,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let output = Command::new(&self.terraform)
            .args(args)
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER")
            .stdin(Stdio::null())
            .output()
            .expect("run terraform");
        eprintln!(
            "terraform {} -> {} in {:?}",
            args.join(" "),
            output.status,
            started.elapsed()
        );
        output
    }

    /// Runs terraform and fails the test (showing its output) unless it
    /// succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "terraform {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn outputs(&self) -> Json {
        let text = self.ok(&["output", "-json"]);
        let outputs: Json = serde_json::from_str(&text).expect("output -json");
        outputs
    }

    fn output(&self, name: &str) -> Json {
        self.outputs()[name]["value"].clone()
    }

    fn state_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("terraform.tfstate")).unwrap_or_default()
    }
}

const MESSAGE_TF: &str = r#"
variable "input" {
  type    = string
  default = "hello"
}
variable "group" {
  type    = string
  default = null
}
ephemeral "echo_secret" "s" {
  name = "db"
}
resource "echo_message" "m" {
  input    = var.input
  group    = var.group
  password = ephemeral.echo_secret.s.value
}
data "echo_upper" "u" {
  input = echo_message.m.output
}
output "output" { value = echo_message.m.output }
output "upper" { value = data.echo_upper.u.result }
output "id" { value = echo_message.m.id }
output "revision" { value = echo_message.m.revision }
output "password_length" { value = echo_message.m.password_length }
"#;

#[test]
fn plan_apply_update_replace_and_destroy_under_real_terraform() {
    let Some(terraform) = terraform() else { return };
    let ws = Workspace::new(terraform, MESSAGE_TF);

    let plan = ws.ok(&["plan", "-no-color", "-input=false"]);
    assert!(plan.contains("+ resource \"echo_message\" \"m\""), "{plan}");
    assert!(
        plan.contains("password        = (write-only attribute)"),
        "{plan}"
    );
    assert!(
        plan.contains("id              = (known after apply)"),
        "{plan}"
    );

    ws.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(ws.output("output"), "p-hello");
    assert_eq!(ws.output("upper"), "P-HELLO");
    assert_eq!(ws.output("id"), "msg-hello");
    assert_eq!(ws.output("revision"), 0);
    // The ephemeral value reached create through the write-only attribute...
    assert_eq!(ws.output("password_length"), "s3cr3t-db".len());
    // ...and neither it nor the write-only attribute was stored.
    assert!(!ws.state_text().contains("s3cr3t"), "{}", ws.state_text());
    let journal = std::fs::read_to_string(&ws.journal).unwrap();
    assert!(
        journal.contains("open db") && journal.contains("close db"),
        "{journal}"
    );

    // Planning again with the same input proposes nothing.
    let unchanged = ws.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&unchanged.stdout)
    );

    // An in-place update: the plan hook marks `revision` unknown.
    let update_plan = ws.ok(&["plan", "-no-color", "-input=false", "-var", "input=world"]);
    assert!(update_plan.contains("~ update in-place"), "{update_plan}");
    assert!(
        update_plan.contains("revision        = 0 -> (known after apply)"),
        "{update_plan}"
    );
    let updated = ws.ok(&[
        "apply",
        "-auto-approve",
        "-no-color",
        "-input=false",
        "-var",
        "input=world",
    ]);
    // A warning added with `tfplugin::warn` during a successful update.
    assert!(updated.contains("Warning: Message changed"), "{updated}");
    assert_eq!(ws.output("output"), "p-world");
    assert_eq!(ws.output("upper"), "P-WORLD");
    assert_eq!(ws.output("revision"), 1);

    // A `requires_replace` attribute forces replacement.
    let replace_plan = ws.ok(&[
        "plan",
        "-no-color",
        "-input=false",
        "-var",
        "input=world",
        "-var",
        "group=blue",
    ]);
    assert!(replace_plan.contains("must be replaced"), "{replace_plan}");
    assert!(
        replace_plan.contains("# forces replacement"),
        "{replace_plan}"
    );
    ws.ok(&[
        "apply",
        "-auto-approve",
        "-no-color",
        "-input=false",
        "-var",
        "input=world",
        "-var",
        "group=blue",
    ]);
    assert_eq!(ws.output("revision"), 0);

    ws.ok(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-input=false",
        "-var",
        "input=world",
        "-var",
        "group=blue",
    ]);
    assert_eq!(ws.outputs(), serde_json::json!({}));
    let state: Json = serde_json::from_str(&ws.state_text()).unwrap();
    assert_eq!(state["resources"], serde_json::json!([]));
}

#[test]
fn import_blocks_use_the_import_hook() {
    let Some(terraform) = terraform() else { return };
    let ws = Workspace::new(
        terraform,
        r#"
import {
  to = echo_message.i
  id = "msg-imported"
}
resource "echo_message" "i" {
  input = "imported"
}
output "output" { value = echo_message.i.output }
"#,
    );
    let plan = ws.ok(&["plan", "-no-color", "-input=false"]);
    assert!(
        plan.contains("1 to import, 0 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
    ws.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(ws.output("output"), "p-imported");
}

#[test]
fn old_state_is_upgraded_by_the_provider() {
    let Some(terraform) = terraform() else { return };
    let ws = Workspace::new(
        terraform,
        r#"
resource "echo_message" "m" {
  input = "legacy"
}
"#,
    );
    // State written by schema version 0, which called `input` `text`.
    let state = serde_json::json!({
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 1,
        "lineage": "6c1c1a0e-9f3e-4d7e-8f4a-0c8e2b7d5a11",
        "outputs": {},
        "resources": [{
            "mode": "managed",
            "type": "echo_message",
            "name": "m",
            "provider": format!("provider[\"{SOURCE}\"]"),
            "instances": [{
                "schema_version": 0,
                "attributes": {
                    "text": "legacy",
                    "group": null,
                    "id": "msg-legacy",
                    "output": "p-legacy",
                    "password_length": 0,
                    "revision": 0
                },
                "sensitive_attributes": []
            }]
        }]
    });
    std::fs::write(ws.dir.join("terraform.tfstate"), state.to_string()).unwrap();

    let plan = ws.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "upgraded state should match the config\n{}\n{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );
    ws.ok(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-no-color",
        "-input=false",
    ]);
    let stored: Json = serde_json::from_str(&ws.state_text()).unwrap();
    let instance = &stored["resources"][0]["instances"][0];
    assert_eq!(instance["schema_version"], 1);
    assert_eq!(instance["attributes"]["input"], "legacy");
    assert!(instance["attributes"].get("text").is_none());
}

#[test]
fn a_panicking_provider_reports_a_generic_error_without_details() {
    let Some(terraform) = terraform() else { return };
    let ws = Workspace::new(
        terraform,
        r#"
resource "echo_message" "m" {
  input = "panic"
}
"#,
    );
    let output = ws.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains(tfplugin::PANIC_SUMMARY), "{all}");
    assert!(!all.contains("secret-in-panic-payload"), "{all}");
    assert!(!all.contains("backtrace"), "{all}");
    // The provider stayed up: nothing was half-created.
    assert!(!ws.state_text().contains("msg-panic"));
}
