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
        #[arg(long, value_parser = parse_lifetime)]
        lifetime: Option<std::time::Duration>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn parse_lifetime(s: &str) -> Result<std::time::Duration, String> {
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
        } => serve(common, listen, http_threads).await,
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
) -> anyhow::Result<()> {
    let policy = load_policy(common.config.as_ref())?;
    policy.check()?;
    let store =
        tokenops_server::store::Store::connect(&common.database, policy.sqlite_synchronous).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let http_threads =
        http_threads.map_or_else(tokenops_server::serve::default_threads, usize::from);
    tracing::info!(%addr, http_threads, database = %tokenops_server::store::redact_url(&common.database), "tokenops-server listening");
    tracing::info!(policy = %policy.summary(), source = %common.config.as_ref().map_or("defaults".to_string(), |p| p.display().to_string()), "active policy");
    for warning in policy.warnings() {
        tracing::warn!("policy: {warning}");
    }
    let state = tokenops_server::AppState::new(store, policy);
    tokenops_server::run(listener, state, http_threads, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
