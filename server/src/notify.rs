//! Cross-replica cache invalidation for PostgreSQL: every write publishes the
//! changed token ids with `pg_notify`, and every replica listens and drops
//! them from its verification cache. SQLite has a single server process, so
//! there is nothing to tell.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

use crate::store::{Engine, Store};
use crate::verify::Verifier;

const CHANNEL: &str = "tokenops_token_changes";
/// NOTIFY payloads must stay under 8000 bytes.
const MAX_PAYLOAD: usize = 7000;

#[derive(Clone)]
pub struct Notifier {
    pool: Option<PgPool>,
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Notifier {
    pub fn new(store: &Store) -> Notifier {
        let pool = (store.engine() == Engine::Postgres).then(|| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_lazy(store.url())
                .expect("URL was already accepted by the main pool")
        });
        Notifier {
            pool,
            listener: Arc::default(),
        }
    }

    /// Stops listening and closes the publishing connections, while the
    /// runtimes their sockets belong to still run (server shutdown).
    pub async fn close(&self) {
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener {
            listener.abort();
            let _ = listener.await;
        }
        if let Some(pool) = &self.pool {
            pool.close().await;
        }
    }

    /// Tells other replicas these tokens changed. Failure is logged, not fatal:
    /// the cache TTL bounds how long another replica may serve stale entries.
    pub async fn publish(&self, ids: &[String]) {
        let Some(pool) = &self.pool else { return };
        let mut payload = String::new();
        for id in ids {
            if payload.len() + id.len() + 1 > MAX_PAYLOAD {
                self.send(pool, &payload).await;
                payload.clear();
            }
            if !payload.is_empty() {
                payload.push(',');
            }
            payload.push_str(id);
        }
        if !payload.is_empty() {
            self.send(pool, &payload).await;
        }
    }

    async fn send(&self, pool: &PgPool, payload: &str) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(pool)
            .await
        {
            tracing::warn!(error = %e, "could not publish a cache invalidation");
        }
    }

    /// Listens for other replicas' changes until the process ends. After a
    /// reconnect the whole cache is dropped, since notifications may have been missed.
    pub fn spawn_listener(&self, url: String, verifier: Arc<Verifier>) {
        if self.pool.is_none() {
            return;
        }
        let task = tokio::spawn(async move {
            loop {
                match PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(CHANNEL).await {
                            tracing::warn!(error = %e, "cannot listen for token changes");
                        } else {
                            verifier.invalidate_all();
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(n)) => verifier.invalidate(n.payload().split(',')),
                                    Ok(None) => {
                                        // connection lost and re-established: anything may have changed
                                        verifier.invalidate_all();
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "token change listener failed");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect the token change listener")
                    }
                }
                verifier.invalidate_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        if let Ok(mut listener) = self.listener.lock()
            && let Some(old) = listener.replace(task)
        {
            old.abort();
        }
    }
}
