//! Runs the container images that `scripts/images.sh` writes under
//! `target/images/` with a real podman: loads the OCI archives (the files a
//! user loads into kind, k3d or minikube), starts containers under the
//! charts' container contract, and removes everything it made when dropped.
//!
//! Podman reads the project's `containers.conf` (runc, cgroupfs, ulimits no
//! higher than this machine's hard limits) that `images.sh` fills in next to
//! the archives, unless `CONTAINERS_CONF` already names one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tokenops_testkit::{require_tool, skip_or_fail};

/// The images, as the charts name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Server,
    Operator,
    Cli,
}

impl Image {
    /// Containerfile target, archive name (`<target>.oci.tar`) and image name.
    pub fn target(self) -> &'static str {
        match self {
            Image::Server => "tokenops-server",
            Image::Operator => "tokenops-operator",
            Image::Cli => "tokenops-cli",
        }
    }

    /// The binary the image runs.
    pub fn binary(self) -> &'static str {
        match self {
            Image::Server => "tokenops-server",
            Image::Operator => "tokenops-operator",
            Image::Cli => "tokenops",
        }
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// `target/images` of the target directory this test was built in (so
/// `CARGO_TARGET_DIR` is honoured): `<target>/debug/deps/<test>` → `<target>/images`.
pub fn images_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.pop();
    dir.join("images")
}

/// `repository:tag` the charts give an image: `image.repository` from the
/// chart's values.yaml (the CLI's next to the server's) and the appVersion.
pub fn chart_image_name(image: Image) -> String {
    let charts = workspace_root().join("charts");
    let chart = match image {
        Image::Operator => "tokenops-operator",
        Image::Server | Image::Cli => "tokenops-server",
    };
    let read = |file: &str| {
        std::fs::read_to_string(charts.join(chart).join(file))
            .unwrap_or_else(|e| panic!("charts/{chart}/{file}: {e}"))
    };
    let field = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
            .map(|value| value.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("charts/{chart}: no `{key}:`"))
    };
    let repository = field(&read("values.yaml"), "repository");
    let tag = field(&read("Chart.yaml"), "appVersion");
    match image {
        Image::Cli => {
            let registry = repository.rsplit_once('/').expect("a registry path").0;
            format!("{registry}/tokenops-cli:{tag}")
        }
        Image::Server | Image::Operator => format!("{repository}:{tag}"),
    }
}

/// Podman with the project's configuration.
#[derive(Debug, Clone)]
pub struct Podman {
    conf: Option<PathBuf>,
}

impl Podman {
    /// Podman and the archives, or `None` after a printed skip (a failure
    /// under `CI=true`) when either is missing.
    pub fn with_archives(images: &[Image]) -> Option<Podman> {
        if !require_tool("podman") {
            return None;
        }
        let dir = images_dir();
        if let Some(missing) = images
            .iter()
            .map(|image| dir.join(format!("{}.oci.tar", image.target())))
            .find(|archive| !archive.is_file())
        {
            skip_or_fail(&format!(
                "{} is missing: run scripts/images.sh first",
                missing.display()
            ));
            return None;
        }
        let conf = match std::env::var_os("CONTAINERS_CONF") {
            Some(_) => None,
            None => Some(dir.join("containers.conf")),
        };
        Some(Podman { conf })
    }

    /// A `podman` command with the configuration set.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        if let Some(conf) = &self.conf {
            command.env("CONTAINERS_CONF", conf);
        }
        command
    }

    /// Runs `podman <args>` and returns its output, whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("podman {}: {e}", args.join(" ")))
    }

    /// Runs `podman <args>`, which must succeed; returns stdout, trimmed.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "podman {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Loads an image's archive and returns the name it carries.
    pub fn load(&self, image: Image) -> String {
        let archive = images_dir().join(format!("{}.oci.tar", image.target()));
        let stdout = self.run(&["load", "--quiet", "--input", path_str(&archive)]);
        let name = stdout
            .lines()
            .find_map(|line| line.split_once(": ").map(|(_, name)| name.trim()))
            .unwrap_or_else(|| panic!("podman load printed no image name: {stdout}"));
        name.to_string()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Containers, volumes and networks one test made, removed when dropped; a
/// failing test prints its containers' logs first.
#[derive(Debug)]
pub struct Scratch {
    podman: Podman,
    /// A suffix that keeps this test's names apart from any other's.
    pub id: String,
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Scratch {
    pub fn new(podman: &Podman) -> Scratch {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        Scratch {
            podman: podman.clone(),
            id,
            containers: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// `<prefix>-<id>`.
    pub fn name(&self, prefix: &str) -> String {
        format!("tokenops-test-{prefix}-{}", self.id)
    }

    pub fn volume(&mut self, prefix: &str) -> String {
        let name = self.name(prefix);
        self.podman.run(&["volume", "create", &name]);
        self.volumes.push(name.clone());
        name
    }

    pub fn network(&mut self, prefix: &str) -> String {
        let name = self.name(prefix);
        self.podman.run(&["network", "create", &name]);
        self.networks.push(name.clone());
        name
    }

    /// `podman run --detach --name <prefix>-<id> <args>`; returns the name.
    pub fn start(&mut self, prefix: &str, args: &[&str]) -> String {
        let name = self.name(prefix);
        self.containers.push(name.clone());
        let mut all = vec!["run", "--detach", "--name", name.as_str()];
        all.extend_from_slice(args);
        self.podman.run(&all);
        name
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for container in &self.containers {
                let logs = self.podman.output(&["logs", container]);
                eprintln!(
                    "--- podman logs {container}:\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
        }
        for container in &self.containers {
            self.podman
                .output(&["rm", "--force", "--time", "2", container]);
        }
        for volume in &self.volumes {
            self.podman.output(&["volume", "rm", "--force", volume]);
        }
        for network in &self.networks {
            self.podman.output(&["network", "rm", "--force", network]);
        }
    }
}

/// The status code of `GET <path>` on `addr` (plain HTTP/1.1), or `None`
/// while nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `GET <path>` answers 200 (the server may still be starting).
pub fn wait_for_ok(addr: &str, path: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let status = http_status(addr, path);
        if status == Some(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET http://{addr}{path}: {status:?} after {limit:?}, not 200"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
