//! The tokenops token backend: named, scoped, expiring API tokens behind a
//! JSON HTTP API, stored as hashes in SQLite (default) or PostgreSQL.
//!
//! `app` builds the router (tests drive it over real HTTP), `Server::start`
//! binds and runs it with background tasks, and `bootstrap` creates the first
//! owner token. The binary in `main.rs` is a thin layer of flags over these.

pub mod api;
pub mod auth;
pub mod authority;
pub mod authorize;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod serve;
pub mod service;
pub mod state;
pub mod store;
pub mod ui;
pub mod validate;
pub mod verify;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Policy, ServerConfig};
use error::ApiError;
pub use state::AppState;
use store::{NewAudit, Store, TokenRow};

/// Every route template the server serves (also the `route` label of its metrics).
pub const ROUTES: [&str; 14] = [
    "/v1/tokens",
    "/v1/tokens/revoke",
    "/v1/tokens/{id}",
    "/v1/tokens/{id}/regenerate",
    "/v1/tokens/{id}/revoke",
    "/v1/whoami",
    "/v1/policy",
    "/v1/verify",
    "/v1/audit",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/authorize",
];

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let limit = state.policy.max_body_bytes;
    let [
        tokens,
        bulk_revoke,
        token,
        regenerate,
        revoke,
        whoami,
        policy_route,
        verify,
        audit,
        openapi_json,
        healthz,
        readyz,
        metrics_route,
        authorize_route,
    ] = ROUTES;
    let dashboard = if state.policy.ui.enabled {
        ui::router()
    } else {
        Router::new()
    };
    Router::new()
        .merge(dashboard)
        .route(tokens, post(api::create_token).get(api::list_tokens))
        .route(bulk_revoke, post(api::bulk_revoke))
        .route(
            token,
            get(api::get_token)
                .patch(api::update_token)
                .delete(api::delete_token),
        )
        .route(regenerate, post(api::regenerate_token))
        .route(revoke, post(api::revoke_token))
        .route(whoami, get(api::whoami))
        .route(policy_route, get(api::policy))
        .route(verify, post(api::verify))
        .route(audit, get(api::audit_log))
        .route(openapi_json, get(openapi::serve_document))
        .route(healthz, get(api::healthz))
        .route(readyz, get(api::readyz))
        .route(metrics_route, get(api::metrics))
        .route(authorize_route, any(authorize::authorize))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            let mut e = ApiError::forbidden("method not allowed on this route");
            e.status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
            e.code = tokenops_types::codes::METHOD_NOT_ALLOWED;
            e
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A running server: its address, and a handle to stop it gracefully.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Opens storage, binds `config.listen` and serves until [`Server::stop`],
    /// with the HTTP edge's default limits.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        Self::start_with(config, serve::HttpSettings::default()).await
    }

    /// [`Server::start`] with the HTTP edge's limits given.
    pub async fn start_with(
        config: ServerConfig,
        http: serve::HttpSettings,
    ) -> anyhow::Result<Server> {
        config.policy.check()?;
        http.check()?;
        let store = Store::connect(&config.database, config.policy.sqlite_synchronous).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState::new(store, config.policy);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            run(listener, serving, &http, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(Server {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, flushes last-used times.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains (up to the
/// shutdown deadline) and flushes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    http: &serve::HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    state
        .notifier
        .spawn_listener(state.store.url().to_string(), state.verifier.clone());
    let flusher = every(state.policy.last_used_flush_interval.0, {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move {
                state.verifier.sweep(store::now_us());
                if let Err(e) = state.verifier.flush_last_used().await {
                    tracing::warn!(error = %e, "could not write last-used times; will retry");
                }
                state
                    .metrics
                    .last_used_pending
                    .set(i64::try_from(state.verifier.pending_count()).unwrap_or(0));
            }
        }
    });
    let retention = every(RETENTION_SWEEP, {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move {
                if let Err(e) = service::purge_ended(&state).await {
                    tracing::warn!(error = %e, "could not delete tokens past their retention; will retry");
                }
            }
        }
    });
    let revalidator = every(state.verifier.revalidate_every(), {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move {
                match state.verifier.revalidate(store::now_us()).await {
                    Ok(n) if n > 0 => tracing::debug!(tokens = n, "revalidated cached tokens"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not revalidate cached tokens"),
                }
            }
        }
    });
    let mut connections = serve::Connections::start(app(state.clone()), http);
    let drained = match &mut connections {
        Ok(connections) => connections.drain(listener, shutdown).await,
        Err(e) => Err(std::io::Error::other(format!(
            "cannot start the serving threads: {e}"
        ))),
    };
    flusher.abort();
    revalidator.abort();
    retention.abort();
    let flushed = state.verifier.flush_last_used().await;
    if let Err(e) = &flushed {
        tracing::error!(error = %e, "could not write last-used times at shutdown");
    }
    // Storage closes before the serving threads end: see `serve`.
    state.notifier.close().await;
    state.store.close().await;
    if let Ok(connections) = connections {
        connections.finish().await;
    }
    drained?;
    flushed.map(|_| ())
}

/// How often tokens past their retention are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

/// Runs `task` every `period` (the first time at once) until aborted; a run
/// that overruns delays the next instead of bunching them up.
fn every<F, Fut>(period: Duration, task: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            task().await;
        }
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Options of `tokenops-server bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub project: String,
    pub name: String,
    /// Defaults to the policy's maximum lifetime.
    pub lifetime: Option<Duration>,
}

/// Creates an owner token directly in storage and returns its value.
pub async fn bootstrap(
    database: &str,
    policy: &Policy,
    opts: &BootstrapOptions,
) -> anyhow::Result<String> {
    policy.check()?;
    validate::project_of_new_token(&opts.project, true)
        .map_err(|e| anyhow::anyhow!("--project: {}", e.detail))?;
    validate::name("name", &opts.name).map_err(|e| anyhow::anyhow!("--name: {}", e.detail))?;
    let lifetime = opts.lifetime.unwrap_or(policy.max_lifetime.0);
    if lifetime > policy.max_lifetime.0 || lifetime.is_zero() {
        anyhow::bail!(
            "--lifetime: must be greater than zero and at most the policy's max_lifetime ({})",
            tokenops_types::format_duration(policy.max_lifetime.0)
        );
    }
    let store = Store::connect(database, policy.sqlite_synchronous).await?;
    // The bootstrap token is an owner: the `owner` role when the policy's
    // role holds every owner permission, otherwise those permissions as scopes.
    let owner_role_complete = policy.roles.get("owner").is_some_and(|r| {
        config::OWNER_PERMISSIONS.iter().all(|p| {
            tokenops_types::permission::any_allows(r.permissions.iter().map(String::as_str), p)
        })
    });
    let (role, scopes) = if owner_role_complete {
        (Some("owner".to_string()), vec![])
    } else {
        (
            None,
            config::OWNER_PERMISSIONS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        )
    };
    let value = tokenops_types::secret::generate(&policy.token_prefix);
    let now = store::now_us();
    let lifetime_us = i64::try_from(lifetime.as_micros())?;
    let row = TokenRow {
        id: api::new_token_id(),
        project: opts.project.clone(),
        name: opts.name.clone(),
        description: Some("created by tokenops-server bootstrap".to_string()),
        role,
        scopes,
        resources: Default::default(),
        labels: [("created-by".to_string(), "bootstrap".to_string())]
            .into_iter()
            .collect(),
        secret_hash: hex::encode(verify::hash_value(policy.hash_key.as_deref(), &value)),
        masked: tokenops_types::secret::mask(&value),
        prev_hash: None,
        prev_masked: None,
        prev_valid_until: None,
        lifetime_us: Some(lifetime_us),
        expires_at: Some(now + lifetime_us),
        revoked_at: None,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        regenerated_at: None,
        generation: 0,
        create_key: None,
        create_digest: None,
        regen_key: None,
        regen_digest: None,
    };
    let audit = NewAudit {
        project: row.project.clone(),
        actor: "bootstrap".to_string(),
        action: "token.create",
        token_id: Some(row.id.clone()),
        detail: serde_json::json!({"name": row.name, "role": row.role, "bootstrap": true}),
    };
    store.insert_token(&row, audit).await?;
    store.close().await;
    Ok(value)
}
