//! The README's Terraform install snippet, run as written (taken from
//! README.md between its markers) in an empty home folder, then `terraform
//! init` with the real `terraform` to show that it finds the provider — once
//! with no Terraform CLI configuration, once with one that already has a
//! `provider_installation` block (the snippet must print what to add and
//! leave the file alone). Neither init reaches the network: the provider comes
//! from the local folder and no other provider is required.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokenops_testkit::{require_tool, skip_or_fail};

const START: &str = "<!-- terraform-install:start -->";
const END: &str = "<!-- terraform-install:end -->";

/// The shell snippet between the markers, without its code fence.
fn snippet() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme.find(START).expect("start marker") + START.len();
    let end = readme[start..].find(END).expect("end marker") + start;
    let block = readme[start..end].trim();
    let body = block
        .strip_prefix("```sh")
        .and_then(|b| b.strip_suffix("```"))
        .expect("one ```sh block between the markers");
    body.trim().to_string()
}

/// The provider binary the workspace build made, if it did.
fn provider_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test executable");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("terraform-provider-tokenops");
    if path.is_file() {
        Some(path)
    } else {
        skip_or_fail(
            "terraform-provider-tokenops is not built (run `cargo build --workspace`, as scripts/test.sh does)",
        );
        None
    }
}

/// A checkout-like folder holding `target/release/terraform-provider-tokenops`,
/// where the snippet runs (it follows `cargo build --release`).
fn checkout(provider: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::fs::copy(
        provider,
        dir.path()
            .join("target/release/terraform-provider-tokenops"),
    )
    .unwrap();
    dir
}

fn in_home(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("TF_CLI_CONFIG_FILE")
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .env("CHECKPOINT_DISABLE", "1");
}

fn run_snippet(checkout: &Path, home: &Path) -> String {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &snippet()])
        .current_dir(checkout);
    in_home(&mut cmd, home);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `terraform init` of a configuration that only requires tokenops/tokenops.
fn terraform_init(home: &Path) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        "terraform {\n  required_providers {\n    tokenops = { source = \"tokenops/tokenops\" }\n  }\n}\n",
    )
    .unwrap();
    let mut cmd = Command::new("terraform");
    cmd.args(["init", "-input=false", "-no-color"])
        .current_dir(dir.path());
    in_home(&mut cmd, home);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = dir
        .path()
        .join(".terraform/providers/registry.terraform.io/tokenops/tokenops")
        .is_dir();
    (out.status.success() && installed, text)
}

#[test]
fn the_snippet_names_this_version() {
    let text = snippet();
    assert!(
        text.contains(&format!("/{}/", env!("CARGO_PKG_VERSION"))),
        "the README installs version {}: {text}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn readme_terraform_install_works_without_a_cli_config() {
    if !require_tool("terraform") || !require_tool("bash") {
        return;
    }
    let Some(provider) = provider_binary() else {
        return;
    };
    let checkout = checkout(&provider);
    let home = tempfile::tempdir().unwrap();
    let printed = run_snippet(checkout.path(), home.path());
    assert!(printed.trim().is_empty(), "nothing to add: {printed}");
    let (ok, text) = terraform_init(home.path());
    assert!(ok, "terraform init: {text}");
    assert!(!home.path().join(".terraformrc").exists());
}

#[test]
fn readme_terraform_install_prints_what_an_existing_cli_config_needs() {
    if !require_tool("terraform") || !require_tool("bash") {
        return;
    }
    let Some(provider) = provider_binary() else {
        return;
    };
    let checkout = checkout(&provider);
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join(".terraformrc");
    let original = "provider_installation {\n  direct {}\n}\n";
    std::fs::write(&rc, original).unwrap();

    let printed = run_snippet(checkout.path(), home.path());
    assert_eq!(
        std::fs::read_to_string(&rc).unwrap(),
        original,
        "the file is left alone"
    );
    // (Not run before the edit: Terraform would then ask the public registry,
    // and tests reach nothing but loopback.)
    // Do what the printed text says, and init finds the provider.
    let lines: Vec<&str> = printed.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains("add these lines inside it"))
        .expect(&printed)
        + 1;
    let last = lines
        .iter()
        .position(|l| l.starts_with("and add"))
        .expect(&printed);
    let block = lines[first..last].join("\n");
    assert!(block.contains("filesystem_mirror"), "{printed}");
    assert!(
        lines[last].contains("exclude = [\"registry.terraform.io/tokenops/*\"]"),
        "{printed}"
    );
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n{block}\n  direct {{\n    exclude = [\"registry.terraform.io/tokenops/*\"]\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let (ok, text) = terraform_init(home.path());
    assert!(ok, "terraform init after the edit: {text}");
}
