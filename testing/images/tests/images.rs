//! The container images, run with podman: each names itself as the charts
//! do and prints its version; the server answers its probes under the
//! charts' container contract; the CLI image reaches the server image over a
//! container network with a token bootstrapped inside the server container.
//!
//! The archives come from `scripts/images.sh` (which `scripts/test.sh` runs
//! before the tests); without podman or the archives these tests print
//! SKIPPED on a laptop and fail under `CI=true`.

use std::time::Duration;

use serde_json::Value;
use tokenops_image_tests::{Image, Podman, Scratch, chart_image_name, wait_for_ok};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DATA_DIR: &str = "/var/lib/tokenops";
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// What the charts set for the server container: read-only root, no
/// capabilities, no privilege escalation, the image's user, an empty /tmp.
const CHART_CONTRACT: &[&str] = &[
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs=/tmp",
    "--cap-drop=all",
    "--security-opt=no-new-privileges",
    "--user=65532:65532",
];

fn image_config(podman: &Podman, name: &str) -> Value {
    let json = podman.run(&["image", "inspect", "--format", "{{json .Config}}", name]);
    serde_json::from_str(&json).expect("image config as JSON")
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn each_image_carries_the_chart_name_runs_as_65532_and_prints_its_version() {
    let all = [Image::Server, Image::Operator, Image::Cli];
    let Some(podman) = Podman::with_archives(&all) else {
        return;
    };
    for image in all {
        let name = podman.load(image);
        assert_eq!(
            name,
            chart_image_name(image),
            "name in {}.oci.tar",
            image.target()
        );
        assert!(
            name.ends_with(&format!(":{VERSION}")),
            "{name}: the tag (the charts' appVersion) is not the workspace version {VERSION}"
        );

        let config = image_config(&podman, &name);
        assert_eq!(config["User"], "65532:65532", "{name}: user");
        assert_eq!(
            strings(&config["Entrypoint"]),
            [format!("/usr/local/bin/{}", image.binary())],
            "{name}: entrypoint"
        );
        if image == Image::Server {
            assert_eq!(strings(&config["Cmd"]), ["serve"], "{name}: command");
            assert!(
                config["Volumes"].get(DATA_DIR).is_some(),
                "{name}: {DATA_DIR} is not a volume: {config}"
            );
        }

        let version = podman.run(&["run", "--rm", &name, "--version"]);
        assert_eq!(
            version,
            format!("{} {VERSION}", image.binary()),
            "{name} --version"
        );
    }
}

#[test]
fn server_image_answers_its_probes_under_the_chart_container_contract() {
    let Some(podman) = Podman::with_archives(&[Image::Server]) else {
        return;
    };
    let image = podman.load(Image::Server);
    let mut scratch = Scratch::new(&podman);
    let volume = scratch.volume("data");
    let mount = format!("{volume}:{DATA_DIR}");

    let mut args = CHART_CONTRACT.to_vec();
    args.extend([
        "--volume",
        mount.as_str(),
        "--publish",
        "127.0.0.1::8080",
        image.as_str(),
    ]);
    let server = scratch.start("server", &args);

    let addr = podman.run(&["port", &server, "8080/tcp"]);
    assert!(
        addr.starts_with("127.0.0.1:"),
        "published on loopback only: {addr}"
    );
    wait_for_ok(&addr, "/healthz", STARTUP_LIMIT);
    wait_for_ok(&addr, "/readyz", STARTUP_LIMIT);

    // The root filesystem is read-only: the database can only be in the volume.
    let mountpoint = podman.run(&["volume", "inspect", "--format", "{{.Mountpoint}}", &volume]);
    let database = std::path::Path::new(&mountpoint).join("tokenops.db");
    assert!(
        database.is_file(),
        "{} missing: the server wrote no database to its volume",
        database.display()
    );
}

#[test]
fn cli_image_reaches_the_server_image_over_a_container_network() {
    let Some(podman) = Podman::with_archives(&[Image::Server, Image::Cli]) else {
        return;
    };
    let server_image = podman.load(Image::Server);
    let cli_image = podman.load(Image::Cli);
    let mut scratch = Scratch::new(&podman);
    let network = scratch.network("net");
    let volume = scratch.volume("data");
    let mount = format!("{volume}:{DATA_DIR}");

    let mut args = CHART_CONTRACT.to_vec();
    args.extend([
        "--network",
        network.as_str(),
        "--volume",
        mount.as_str(),
        "--publish",
        "127.0.0.1::8080",
        server_image.as_str(),
    ]);
    let server = scratch.start("server", &args);
    let addr = podman.run(&["port", &server, "8080/tcp"]);
    wait_for_ok(&addr, "/readyz", STARTUP_LIMIT);

    // As the chart's NOTES say: bootstrap inside the server container, on its
    // database in the volume. Only the token's value is on stdout.
    let token = podman.run(&[
        "exec",
        &server,
        "tokenops-server",
        "bootstrap",
        "--name",
        "image-test",
    ]);
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "one token value on stdout"
    );

    // The CLI container gets the token through its environment, never its arguments.
    let endpoint = format!("TOKENOPS_ENDPOINT=http://{server}:8080");
    let cli = |command: &[&str]| -> Value {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            network.as_str(),
            "--read-only",
            "--cap-drop=all",
            "--env",
            endpoint.as_str(),
            "--env",
            "TOKENOPS_TOKEN",
            cli_image.as_str(),
            "--output",
            "json",
        ];
        args.extend_from_slice(command);
        let output = podman
            .command()
            .env("TOKENOPS_TOKEN", &token)
            .args(&args)
            .output()
            .expect("podman run");
        assert!(
            output.status.success(),
            "tokenops {} in the CLI image failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON from the CLI")
    };

    let me = cli(&["whoami"]);
    assert_eq!(me["name"], "image-test", "whoami: {me}");
    assert_eq!(me["project"], "default", "whoami: {me}");
    let id = me["id"].as_str().expect("whoami id");

    let listed = cli(&["token", "list"]);
    assert!(
        listed.to_string().contains(&format!("\"id\":\"{id}\"")),
        "token list does not show {id}: {listed}"
    );
}
