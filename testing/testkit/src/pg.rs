//! A throw-away PostgreSQL cluster on loopback: `initdb` into a temporary
//! directory, `pg_ctl start` on a free port, `pg_ctl stop` on drop. When run as
//! root (CI containers), the server runs as the `postgres` user, since
//! PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sqlx::Connection;

pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
    keep: bool,
    _tmp: Option<tempfile::TempDir>,
}

fn run(run_as: Option<&str>, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", program]);
            c
        }
        None => Command::new(program),
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl PgCluster {
    /// Starts a cluster in a new temporary directory, removed on drop.
    /// `fast` turns off fsync (fine for tests, not for benchmarks).
    pub fn start(fast: bool) -> anyhow::Result<PgCluster> {
        let tmp = tempfile::Builder::new().prefix("tokenops-pg-").tempdir()?;
        let mut c = Self::start_in(tmp.path(), fast)?;
        c._tmp = Some(tmp);
        Ok(c)
    }

    /// Starts a cluster in `dir` (created if needed) that stays until [`PgCluster::stop`].
    pub fn start_in(dir: &Path, fast: bool) -> anyhow::Result<PgCluster> {
        std::fs::create_dir_all(dir)?;
        let run_as = if nix::unistd::Uid::effective().is_root() {
            let user = nix::unistd::User::from_name("postgres")?
                .context("running as root needs a `postgres` user to run PostgreSQL as")?;
            nix::unistd::chown(dir, Some(user.uid), Some(user.gid))?;
            Some("postgres".to_string())
        } else {
            None
        };
        let data = dir.join("data");
        let data_s = data.display().to_string();
        run(
            run_as.as_deref(),
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB",
            dir.display()
        );
        if fast {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = dir.join("postgres.log").display().to_string();
        run(
            run_as.as_deref(),
            "pg_ctl",
            &[
                "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        )?;
        Ok(PgCluster {
            dir: dir.to_path_buf(),
            port,
            run_as,
            keep: false,
            _tmp: None,
        })
    }

    /// Leaves the cluster running when this value is dropped.
    pub fn keep_running(mut self) -> PgCluster {
        self.keep = true;
        self
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the `postgres` database as the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the cluster in `dir` (immediate shutdown).
    pub fn stop_in(dir: &Path) -> anyhow::Result<()> {
        let run_as = nix::unistd::Uid::effective()
            .is_root()
            .then_some("postgres");
        let data = dir.join("data").display().to_string();
        run(
            run_as,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        )
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.dir.join("data").display().to_string();
        run(
            self.run_as.as_deref(),
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.stop();
        }
    }
}

/// Creates database `name` through `admin_url` and returns its URL.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::postgres::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("admin URL has a database part")?;
    Ok(format!("{base}/{name}"))
}
