//! `cargo run -p protected-api`: the devices API on `LISTEN` (default
//! 127.0.0.1:3000), checking tokens with the tokenops server at `TOKENOPS_URL`
//! (default http://127.0.0.1:8080).

use std::time::Duration;

use tokenops_client::Client;
use tokenops_client::gateway::Gate;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let tokenops = std::env::var("TOKENOPS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let client = Client::builder(&tokenops)
        .timeout(Duration::from_secs(2))
        .build()?;
    let gate = Gate::builder(client)
        .cache_ttl(Duration::from_secs(5))
        .build();
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "devices API on http://{} (tokens checked by {tokenops})",
        listener.local_addr()?
    );
    axum::serve(listener, protected_api::router(&gate)).await?;
    Ok(())
}
