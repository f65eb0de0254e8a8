//! Prometheus metrics, one registry per server instance.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub verifications: Family<CodeLabels, Counter>,
    pub token_changes: Family<ActionLabels, Counter>,
    /// Requests to the API whose credentials did not verify, by reason.
    pub authentication_failures: Family<ReasonLabels, Counter>,
    /// Management actions refused by the authority check, by action.
    pub refused_actions: Family<ActionLabels, Counter>,
    pub cache_entries: Gauge,
    pub last_used_pending: Gauge,
    /// One counter per verification code, resolved once (the verify path allocates nothing for metrics).
    verify_by_code: Vec<(tokenops_types::VerifyCode, Counter)>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tokenops");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 12))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let verifications = Family::<CodeLabels, Counter>::default();
        registry.register(
            "verifications",
            "Token verifications by result code",
            verifications.clone(),
        );
        let token_changes = Family::<ActionLabels, Counter>::default();
        registry.register(
            "token_changes",
            "Token changes by action",
            token_changes.clone(),
        );
        let authentication_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "authentication_failures",
            "API requests whose credentials did not verify, by reason",
            authentication_failures.clone(),
        );
        let refused_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "refused_actions",
            "Management actions refused by the authority check, by action",
            refused_actions.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "verify_cache_entries",
            "Tokens held in the verification cache",
            cache_entries.clone(),
        );
        let last_used_pending = Gauge::default();
        registry.register(
            "last_used_pending",
            "Tokens whose last-used time waits to be written",
            last_used_pending.clone(),
        );
        let verify_by_code = tokenops_types::VerifyCode::ALL
            .into_iter()
            .map(|code| {
                let name = code.as_str().to_string();
                (
                    code,
                    verifications
                        .get_or_create(&CodeLabels { code: name })
                        .clone(),
                )
            })
            .collect();
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            verifications,
            token_changes,
            authentication_failures,
            refused_actions,
            cache_entries,
            last_used_pending,
            verify_by_code,
        })
    }

    pub fn changed(&self, action: &str, n: u64) {
        self.token_changes
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .inc_by(n);
    }

    /// Counts an API request whose credentials did not verify.
    pub fn authentication_failed(&self, reason: &'static str) {
        self.authentication_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a management action the authority check refused.
    pub fn refused(&self, action: &str) {
        self.refused_actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .inc();
    }

    /// Counts one verification outcome.
    pub fn verified(&self, code: tokenops_types::VerifyCode) {
        if let Some((_, c)) = self.verify_by_code.iter().find(|(k, _)| *k == code) {
            c.inc();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The method as a label; methods no route serves share one label.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route template as a label (one of [`crate::ROUTES`]), never the raw path.
fn route_label(req: &Request) -> &'static str {
    req.extensions()
        .get::<MatchedPath>()
        .and_then(|p| crate::ROUTES.iter().find(|r| **r == p.as_str()))
        .copied()
        .unwrap_or("unmatched")
}

/// Middleware counting and timing every request by its route template.
/// Labels are static strings: no allocation per request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = route_label(&req);
    let res = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}
