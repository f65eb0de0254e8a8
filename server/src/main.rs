//! `tokenops-server`: `serve` runs the backend, `bootstrap` prints a first owner token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokenops_server::{BootstrapOptions, Policy, bootstrap, shutdown_signal};

#[derive(Parser)]
#[command(
    name = "tokenops-server",
    version,
    about = "The tokenops token backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// SQLite file path, or a postgres:// URL.
    #[arg(long, env = "TOKENOPS_DATABASE", default_value = "tokenops.db")]
    database: String,
    /// Policy file (TOML): roles, resource types, lifetimes, prefix, rate limit.
    #[arg(long, env = "TOKENOPS_CONFIG")]
    config: Option<PathBuf>,
}

/// Limits of the HTTP edge.
#[derive(Args, Clone)]
struct Edge {
    /// Longest time from the first byte of a request head to its end
    /// (Go-style duration); the connection is closed after it.
    #[arg(long, env = "TOKENOPS_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_timeout: std::time::Duration,
    /// Keep-alive connections with no request, and requests on which no byte
    /// moves, are closed after this long.
    #[arg(long, env = "TOKENOPS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: std::time::Duration,
    /// Open connections beyond this are answered 503 and closed at once
    /// (default: the open-file limit, raised to its maximum, less a reserve).
    #[arg(long, env = "TOKENOPS_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// On SIGTERM, longest wait for in-flight requests before their
    /// connections are closed (idle connections close at once).
    #[arg(long, env = "TOKENOPS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    shutdown_timeout: std::time::Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on.
        #[arg(long, env = "TOKENOPS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Threads that serve HTTP connections, each with its own event loop
        /// (default: one per CPU available to the process).
        #[arg(long, env = "TOKENOPS_HTTP_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
        http_threads: Option<u16>,
        #[command(flatten)]
        edge: Edge,
        /// Serve the web dashboard at /ui/ (`--ui=false` turns it off; also `[ui] enabled` in the config file).
        #[arg(long, env = "TOKENOPS_UI", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        ui: Option<bool>,
    },
    /// Create an owner token and print only its value on stdout.
    Bootstrap {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        project: String,
        #[arg(long, default_value = "bootstrap")]
        name: String,
        /// Lifetime of the token (Go-style, e.g. 720h); defaults to the policy maximum.
        #[arg(long, value_parser = parse_duration)]
        lifetime: Option<std::time::Duration>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    tokenops_types::parse_duration(s).map_err(|e| e.to_string())
}

fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    match path {
        Some(p) => Policy::load(p),
        None => Ok(Policy::default()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOKENOPS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            common,
            listen,
            http_threads,
            edge,
            ui,
        } => serve(common, listen, http_threads, edge, ui).await,
        Command::Bootstrap {
            common,
            project,
            name,
            lifetime,
        } => match load_policy(common.config.as_ref()) {
            Ok(policy) => {
                let opts = BootstrapOptions {
                    project,
                    name,
                    lifetime,
                };
                bootstrap(&common.database, &policy, &opts)
                    .await
                    .map(|value| println!("{value}"))
            }
            Err(e) => Err(e),
        },
        Command::Openapi => {
            println!("{}", tokenops_server::openapi::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    common: Common,
    listen: SocketAddr,
    http_threads: Option<u16>,
    edge: Edge,
    ui: Option<bool>,
) -> anyhow::Result<()> {
    let mut policy = load_policy(common.config.as_ref())?;
    if let Some(enabled) = ui {
        policy.ui.enabled = enabled;
    }
    policy.check()?;
    let open_files = tokenops_server::serve::raise_open_file_limit();
    let http = tokenops_server::serve::HttpSettings {
        threads: http_threads.map_or_else(tokenops_server::serve::default_threads, usize::from),
        header_timeout: edge.header_timeout,
        idle_timeout: edge.idle_timeout,
        max_connections: edge
            .max_connections
            .map_or_else(tokenops_server::serve::default_max_connections, |n| {
                n as usize
            }),
        shutdown_timeout: edge.shutdown_timeout,
    };
    http.check()?;
    let store =
        tokenops_server::store::Store::connect(&common.database, policy.sqlite_synchronous).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, http_threads = http.threads, max_connections = http.max_connections, open_files, database = %tokenops_server::store::redact_url(&common.database), "tokenops-server listening");
    tracing::info!(policy = %policy.summary(), source = %common.config.as_ref().map_or("defaults".to_string(), |p| p.display().to_string()), "active policy");
    for warning in policy.warnings() {
        tracing::warn!("policy: {warning}");
    }
    let state = tokenops_server::AppState::new(store, policy);
    tokenops_server::run(listener, state, &http, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
