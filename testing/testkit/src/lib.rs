//! Test support shared by every crate's tests: real tokenops servers on
//! loopback, on SQLite or on a throw-away PostgreSQL, and the rule for tools
//! that may be missing (skip with a reason on a laptop, fail under `CI=true`).

pub mod nginx;
mod pg;
pub mod procfs;

use std::path::{Path, PathBuf};

pub use pg::PgCluster;
use tokenops_server::{BootstrapOptions, Policy, Server, ServerConfig};

/// Environment variable naming a PostgreSQL admin URL that tests may create databases on.
pub const POSTGRES_ENV: &str = "TOKENOPS_TEST_POSTGRES_URL";

/// Whether we run in CI, where every optional tool is required.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Reports a missing prerequisite: a printed skip on a laptop, a panic in CI.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("{reason} (required when CI=true)");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Whether `tool` is on the PATH.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// `true` if `tool` is on the PATH; otherwise skips (or fails in CI) with a reason.
pub fn require_tool(tool: &str) -> bool {
    if have_tool(tool) {
        return true;
    }
    skip_or_fail(&format!("`{tool}` is not on the PATH"));
    false
}

/// Path of a binary built by this workspace (`tokenops`, `tokenops-server`, …).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` (or the README test command) first",
        path.display()
    );
    path
}

/// Which storage a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test: its URL and whatever keeps it alive.
pub struct TestDatabase {
    pub url: String,
    dir: Option<tempfile::TempDir>,
    _cluster: Option<PgCluster>,
}

impl TestDatabase {
    /// A fresh SQLite file in a new temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("tokenops.db").display().to_string();
        TestDatabase {
            url,
            dir: Some(dir),
            _cluster: None,
        }
    }

    /// A fresh PostgreSQL database: on the cluster named by
    /// `TOKENOPS_TEST_POSTGRES_URL`, or on a cluster started for this test.
    /// `None` (after a printed reason) when PostgreSQL is not available.
    pub async fn postgres() -> Option<TestDatabase> {
        let (admin, cluster) = match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                if !have_tool("initdb") || !have_tool("pg_ctl") {
                    skip_or_fail(&format!(
                        "PostgreSQL is not available: set {POSTGRES_ENV} or put initdb and pg_ctl on the PATH"
                    ));
                    return None;
                }
                let cluster = PgCluster::start(true).expect("start a throw-away PostgreSQL");
                (cluster.admin_url(), Some(cluster))
            }
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let url = pg::create_database(&admin, &name)
            .await
            .expect("create a test database");
        Some(TestDatabase {
            url,
            dir: None,
            _cluster: cluster,
        })
    }

    pub async fn new(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// For SQLite, the directory holding the database files.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }
}

/// A real tokenops server on 127.0.0.1 (port chosen by the OS), bootstrapped
/// with an owner token.
pub struct TestServer {
    server: Option<Server>,
    owner: String,
    policy: Policy,
    pub db: TestDatabase,
}

impl TestServer {
    /// On a fresh SQLite database with the default policy.
    pub async fn sqlite() -> TestServer {
        Self::start(Backend::Sqlite, "")
            .await
            .expect("SQLite is always available")
    }

    /// On a fresh PostgreSQL database, or `None` after a printed skip reason.
    pub async fn postgres() -> Option<TestServer> {
        Self::start(Backend::Postgres, "").await
    }

    /// With a policy given as TOML text (empty for defaults).
    pub async fn with_config(backend: Backend, policy_toml: &str) -> Option<TestServer> {
        Self::start(backend, policy_toml).await
    }

    pub async fn start(backend: Backend, policy_toml: &str) -> Option<TestServer> {
        let policy = Policy::from_toml(policy_toml).expect("valid test policy");
        let db = TestDatabase::new(backend).await?;
        let owner = tokenops_server::bootstrap(
            &db.url,
            &policy,
            &BootstrapOptions {
                project: "default".into(),
                name: "test-owner".into(),
                lifetime: None,
            },
        )
        .await
        .expect("bootstrap");
        let server = Self::spawn(&db.url, &policy).await;
        Some(TestServer {
            server: Some(server),
            owner,
            policy,
            db,
        })
    }

    async fn spawn(database: &str, policy: &Policy) -> Server {
        Server::start(ServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            database: database.to_string(),
            policy: policy.clone(),
        })
        .await
        .expect("start tokenops-server")
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("server is running")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server().url()
    }

    /// The bootstrap owner token (`*` in project `default`).
    pub fn owner_token(&self) -> String {
        self.owner.clone()
    }

    /// The running server's state (storage, verifier) for white-box checks.
    pub fn state(&self) -> &tokenops_server::AppState {
        &self.server().state
    }

    /// Another owner token, e.g. in another project.
    pub async fn bootstrap(&self, project: &str) -> String {
        tokenops_server::bootstrap(
            &self.db.url,
            &self.policy,
            &BootstrapOptions {
                project: project.into(),
                name: format!("{project}-owner"),
                lifetime: None,
            },
        )
        .await
        .expect("bootstrap")
    }

    /// Stops gracefully (flushing last-used times) and starts again on the same database.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("graceful stop");
        }
        self.server = Some(Self::spawn(&self.db.url, &self.policy).await);
    }

    /// Stops gracefully and hands back the database (still on disk / reachable).
    pub async fn stop(mut self) -> TestDatabase {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("graceful stop");
        }
        self.db
    }
}

/// Defines, for each named `async fn(TestServer)`, one test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::TestServer::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(server) = $crate::TestServer::postgres().await {
                        super::$name(server).await;
                    }
                }
            }
        )*
    };
}
