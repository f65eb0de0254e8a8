//! Prometheus metrics of the operator, served on `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// Every metric the operator exports, prefixed `tokenops_operator_`.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Reconciles started, by kind.
    pub reconciles: Family<Labels, Counter>,
    /// Failed reconciles, by kind and error reason.
    pub errors: Family<Labels, Counter>,
    /// Values issued, by action (`issue`, `rotate`, `replace`) and reason.
    pub rotations: Family<Labels, Counter>,
    /// Expiry of each `ApiToken`'s current value, as a Unix timestamp.
    pub token_expiry: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// Kubernetes API requests, by verb and resource (see [`crate::kube_requests`]).
    pub kube_requests: Family<Labels, Counter>,
    /// Backend HTTP requests (every attempt), by client operation and outcome.
    pub backend_requests: Family<Labels, Histogram, fn() -> Histogram>,
}

fn backend_latency_histogram() -> Histogram {
    // 0.5 ms to ~4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tokenops_operator");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let rotations = Family::<Labels, Counter>::default();
        let token_expiry = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let kube_requests = Family::<Labels, Counter>::default();
        let backend_requests = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            backend_latency_histogram,
        );
        registry.register(
            "backend_request_duration_seconds",
            "Requests to tokenops backends (each attempt), by operation and outcome (HTTP status class, or error when no response arrived)",
            backend_requests.clone(),
        );
        registry.register(
            "kube_requests",
            "Kubernetes API requests sent, by verb (get, list, watch, create, apply, patch, update, delete) and resource",
            kube_requests.clone(),
        );
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason",
            errors.clone(),
        );
        registry.register(
            "token_issuances",
            "Token values issued, by action and reason (rotations are action=rotate)",
            rotations.clone(),
        );
        registry.register(
            "token_expiry_timestamp_seconds",
            "Expiry of the current value of each ApiToken (Unix time)",
            token_expiry.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            errors,
            rotations,
            token_expiry,
            duration,
            kube_requests,
            backend_requests,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn kube_request(&self, verb: &str, resource: &str) {
        self.kube_requests
            .get_or_create(&vec![
                ("verb", verb.to_string()),
                ("resource", resource.to_string()),
            ])
            .inc();
    }

    pub fn failed(&self, kind: &str, reason: &str) {
        self.errors
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    pub fn issued(&self, action: &str, reason: &str) {
        self.rotations
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    pub fn set_expiry(&self, namespace: &str, name: &str, unix: Option<i64>) {
        let labels = vec![
            ("namespace", namespace.to_string()),
            ("name", name.to_string()),
        ];
        match unix {
            Some(t) => {
                self.token_expiry.get_or_create(&labels).set(t as f64);
            }
            None => {
                self.token_expiry.remove(&labels);
            }
        }
    }

    /// Records one backend request attempt.
    pub fn backend_request(&self, attempt: &tokenops_client::Attempt<'_>) {
        let outcome = match attempt.status {
            Some(s) if s < 300 => "2xx",
            Some(s) if s < 400 => "3xx",
            Some(s) if s < 500 => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        self.backend_requests
            .get_or_create(&vec![
                ("operation", attempt.operation.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .observe(attempt.elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_labels() {
        let m = Metrics::default();
        m.reconciled("ApiToken");
        m.failed("ApiToken", "backend_unreachable");
        m.issued("rotate", "Due");
        m.set_expiry("team-a", "exporter", Some(1_800_000_000));
        let text = m.render();
        assert!(
            text.contains("tokenops_operator_reconciles_total{kind=\"ApiToken\"} 1"),
            "{text}"
        );
        assert!(text.contains("reason=\"backend_unreachable\""));
        assert!(text.contains(
            "tokenops_operator_token_issuances_total{action=\"rotate\",reason=\"Due\"} 1"
        ));
        assert!(text.contains("tokenops_operator_token_expiry_timestamp_seconds{namespace=\"team-a\",name=\"exporter\"} 1800000000"));
        m.set_expiry("team-a", "exporter", None);
        assert!(!m.render().contains("name=\"exporter\""));
    }
}
