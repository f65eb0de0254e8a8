//! The one error type of the operator; every variant has a metric label.

use std::time::Duration;

/// Everything that can make a reconcile fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// Shown without the userinfo of any URL in it (a backend URL may carry
    /// credentials; see [`crate::redact`]).
    #[error("tokenops backend: {}", crate::redact::redact_userinfo(&.0.to_string()))]
    Backend(#[from] tokenops_client::Error),

    #[error("{kind} {name:?} not found")]
    BackendNotFound { kind: &'static str, name: String },

    #[error("backend credentials: {0}")]
    Credentials(String),

    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),

    #[error("object has no {0}")]
    MissingField(&'static str),
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, fixed label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Backend(e) => match e.kind() {
                "transport" => "backend_unreachable",
                "unauthorized" | "forbidden" => "backend_denied",
                "rate_limited" => "backend_rate_limited",
                "validation" | "conflict" => "backend_rejected",
                _ => "backend_error",
            },
            Error::BackendNotFound { .. } => "backend_not_found",
            Error::Credentials(_) => "credentials",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Finalizer(_) => "finalizer",
            Error::MissingField(_) => "missing_field",
        }
    }

    /// The `Ready` condition reason this failure shows as.
    pub fn condition_reason(&self) -> &'static str {
        match self.metric_label() {
            "backend_unreachable" | "backend_error" | "backend_rate_limited" => {
                "BackendUnavailable"
            }
            "backend_denied" => "BackendDenied",
            "backend_rejected" => "BackendRejected",
            "backend_not_found" => "BackendNotFound",
            "credentials" => "CredentialsNotFound",
            "invalid_spec" => "InvalidSpec",
            _ => "ReconcileError",
        }
    }

    /// Whether waiting can fix it without anybody changing anything (used by the
    /// finalizer: permanent failures do not hold a deletion).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(_) => true,
            Error::Backend(e) => e.is_retryable() || e.status().is_none_or(|s| s >= 500),
            Error::Finalizer(_) => true,
            _ => false,
        }
    }
}

/// Back-off for a failing object: 5 s doubling per consecutive failure, capped at 5 min.
pub fn backoff(failures: u32) -> Duration {
    Backoff::default().delay(failures)
}

/// Per-object exponential back-off: `initial`, doubling per consecutive failure, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (0 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << failures.min(16))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(5), Duration::from_secs(160));
        assert_eq!(backoff(6), Duration::from_secs(300));
        assert_eq!(backoff(60), Duration::from_secs(300));
    }

    #[test]
    fn backend_failures_have_stable_labels() {
        let e = Error::Backend(tokenops_client::Error::Forbidden {
            code: "forbidden".into(),
            detail: String::new(),
        });
        assert_eq!(e.metric_label(), "backend_denied");
        assert_eq!(e.condition_reason(), "BackendDenied");
        assert!(!e.is_transient());
        let e = Error::BackendNotFound {
            kind: "TokenBackend",
            name: "x".into(),
        };
        assert!(!e.is_transient());
    }
}
