//! The state shared by every handler: one `Arc`, so the per-request clone
//! that axum's `State` extractor makes is a single reference-count increment.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Policy;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::store::Store;
use crate::verify::Verifier;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub policy: Arc<Policy>,
    pub verifier: Arc<Verifier>,
    pub metrics: Arc<Metrics>,
    pub notifier: Notifier,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, policy: Policy) -> AppState {
        let policy = Arc::new(policy);
        let verifier = Arc::new(Verifier::new(store.clone(), policy.clone()));
        let notifier = Notifier::new(&store);
        AppState(Arc::new(Shared {
            store,
            policy,
            verifier,
            metrics: Metrics::new(),
            notifier,
        }))
    }

    /// After a write: drop the tokens from this replica's cache and tell the others.
    pub async fn changed(&self, ids: &[String]) {
        self.verifier.invalidate(ids.iter().map(String::as_str));
        self.notifier.publish(ids).await;
    }
}
