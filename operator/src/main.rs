//! `tokenops-operator`: with no arguments runs the controller; `crd` prints the CRDs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokenops_operator::run::LeaseConfig;
use tokenops_operator::{Config, crd};

#[derive(Parser, Debug)]
#[command(
    name = "tokenops-operator",
    version,
    about = "Kubernetes operator for tokenops API tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,

    /// Elect a leader through a Lease so only one replica acts.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,

    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "tokenops-operator")]
    lease_name: String,

    /// File holding the key of the Secret value hash (tamper detection).
    #[arg(long, env = "HASH_KEY_FILE")]
    hash_key_file: Option<PathBuf>,

    /// How long a deletion keeps retrying to revoke on a backend that is down (e.g. 15m).
    #[arg(long, env = "CLEANUP_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    cleanup_timeout: Duration,

    /// How many ApiTokens are reconciled at once (per watched namespace).
    #[arg(long, env = "CONCURRENCY", default_value_t = tokenops_operator::controller::DEFAULT_CONCURRENCY)]
    concurrency: u16,

    /// How often each ApiToken is checked against its backend when nothing
    /// changed in Kubernetes (e.g. 10m), besides its renewal time.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    resync_period: Duration,

    /// Log as JSON.
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (the content of crds/).
    Crd,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tokenops_client::parse_duration(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Crd) = cli.command {
        print!("{}", crd::all_yaml());
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    if cli.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let hash_key = match &cli.hash_key_file {
        Some(path) => Some(std::fs::read(path)?.trim_ascii().to_vec()),
        None => None,
    };
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("tokenops-operator-{}", std::process::id()));
    let config = Config {
        namespaces: cli
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        http_addr: Some(cli.http_addr),
        leader_election: cli
            .leader_election
            .then(|| LeaseConfig::new(&cli.lease_namespace, &cli.lease_name, &identity)),
        hash_key,
        cleanup_timeout: cli.cleanup_timeout,
        resync_period: cli.resync_period,
        concurrency: cli.concurrency,
    };
    let client = kube::Client::try_default().await?;
    tokenops_operator::run(client, config).await
}
