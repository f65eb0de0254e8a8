//! The one error taxonomy of the client.
//!
//! Every failure of a call ends up as one [`Error`] variant a caller can act on:
//! the HTTP status classes of the API map onto `NotFound`, `Conflict`,
//! `Validation`, `Unauthorized`, `Forbidden`, `RateLimited` and `Server`, each
//! carrying the stable problem `code` the server sent (see [`crate::codes`]).
//! Nothing in an error ever contains a token value: the server never echoes
//! one, and the client never formats one.

use std::time::Duration;

use crate::Problem;

/// `Result` with the client's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call failed.
///
/// ```
/// use tokenops_client::{codes, Error};
///
/// fn describe(err: &Error) -> &'static str {
///     match err {
///         Error::NotFound { .. } => "gone",
///         Error::Validation { code, .. } if code == codes::IMMUTABLE_FIELD => "make a new token",
///         Error::RateLimited { .. } => "slow down",
///         e if e.is_retryable() => "try again later",
///         _ => "give up",
///     }
/// }
/// let err = Error::NotFound { code: codes::NOT_FOUND.into(), detail: "no token tok_1".into() };
/// assert_eq!(describe(&err), "gone");
/// assert_eq!(err.code(), Some("not_found"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 404: the token (or other resource) does not exist.
    #[error("not found: {detail} ({code})")]
    NotFound {
        /// The server's problem code, e.g. `not_found`.
        code: String,
        /// What went wrong, in words (never containing a token value).
        detail: String,
    },

    /// 409: the request conflicts with the current state.
    #[error("conflict: {detail} ({code})")]
    Conflict {
        /// The server's problem code, e.g. `conflict`.
        code: String,
        /// What went wrong, in words (never containing a token value).
        detail: String,
    },

    /// Any other 4xx (400, 413, 415, 422, …): the request itself is wrong and
    /// repeating it will not help. `field` names the request field at fault
    /// (a JSON path such as `resources[1].type`) when the server knows it.
    #[error("invalid request: {detail} ({code}{})", field_suffix(.field))]
    Validation {
        /// The HTTP status (400, 413, 415, 422, …).
        status: u16,
        /// The request field at fault, when known.
        field: Option<String>,
        /// The server's problem code, e.g. `invalid_duration`.
        code: String,
        /// What went wrong, in words (never containing a token value).
        detail: String,
    },

    /// 401: no credentials, or credentials the server does not accept.
    #[error("unauthorized: {detail} ({code})")]
    Unauthorized {
        /// The server's problem code, e.g. `unauthenticated`.
        code: String,
        /// What went wrong, in words (never containing a token value).
        detail: String,
    },

    /// 403: authenticated, but not allowed (`forbidden` or `permission_escalation`).
    #[error("forbidden: {detail} ({code})")]
    Forbidden {
        /// The server's problem code, e.g. `permission_escalation`.
        code: String,
        /// What went wrong, in words (never containing a token value).
        detail: String,
    },

    /// 429 after the retry policy gave up. `retry_after` is the server's last hint.
    #[error("rate limited{}", retry_after_suffix(.retry_after))]
    RateLimited {
        /// How long the server asked to wait, from `Retry-After`.
        retry_after: Option<Duration>,
        /// `rate_limited`.
        code: String,
    },

    /// 5xx (after retries where they apply), or a status the client does not know.
    #[error("server error {status}: {detail} ({code})")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's problem code (`internal`, `unavailable`, …).
        code: String,
        /// What went wrong, in words.
        detail: String,
    },

    /// The request did not complete: connection refused or reset, TLS, timeout,
    /// or the response was lost on the way.
    #[error("request to the tokenops server failed: {0}")]
    Transport(#[source] reqwest::Error),

    /// The server answered with a body the client cannot read.
    #[error("unexpected response body (HTTP {status}): {source}")]
    Decode {
        /// The HTTP status of the unreadable response.
        status: u16,
        /// Why it could not be read.
        #[source]
        source: serde_json::Error,
    },

    /// The client was configured with something unusable (bad URL, bad CA, bad header value).
    #[error("client configuration: {0}")]
    Config(String),
}

fn field_suffix(field: &Option<String>) -> String {
    field
        .as_deref()
        .map(|f| format!(", field {f}"))
        .unwrap_or_default()
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {}s)", d.as_secs_f64().ceil() as u64))
        .unwrap_or_default()
}

impl Error {
    /// The server's stable problem code, when the failure came from the server.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// let err = Error::Config("bad url".into());
    /// assert_eq!(err.code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Validation { code, .. }
            | Error::Unauthorized { code, .. }
            | Error::Forbidden { code, .. }
            | Error::RateLimited { code, .. }
            | Error::Server { code, .. } => Some(code),
            Error::Transport(_) | Error::Decode { .. } | Error::Config(_) => None,
        }
    }

    /// The HTTP status the server answered with, if it answered.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// let err = Error::Conflict { code: "conflict".into(), detail: "busy".into() };
    /// assert_eq!(err.status(), Some(409));
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::Validation { status, .. } => Some(*status),
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::RateLimited { .. } => Some(429),
            Error::Server { status, .. } | Error::Decode { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::Config(_) => None,
        }
    }

    /// Whether the same call may succeed later without changes: rate limiting,
    /// gateway and availability errors, and transport failures. The client has
    /// already retried these per its [`RetryPolicy`](crate::RetryPolicy); this
    /// tells a caller (an operator's requeue, say) whether to try again later.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// assert!(Error::RateLimited { retry_after: None, code: "rate_limited".into() }.is_retryable());
    /// assert!(!Error::NotFound { code: "not_found".into(), detail: String::new() }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Transport(_) => true,
            Error::Server { status, .. } => crate::retry::is_retryable_status(*status),
            _ => false,
        }
    }

    /// A short, fixed name of the variant, for metric labels and logs.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// assert_eq!(Error::Config("x".into()).kind(), "config");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Validation { .. } => "validation",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Server { .. } => "server",
            Error::Transport(_) => "transport",
            Error::Decode { .. } => "decode",
            Error::Config(_) => "config",
        }
    }

    /// Shorthand for `matches!(err, Error::NotFound { .. })`.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// assert!(Error::NotFound { code: "not_found".into(), detail: String::new() }.is_not_found());
    /// ```
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The error for a non-success response, from its status, its body (a
    /// problem document when the server wrote it, anything when a proxy did)
    /// and its `Retry-After` header.
    ///
    /// ```
    /// use tokenops_client::Error;
    /// let body = br#"{"type":"https://tokenops.dev/problems/immutable_field","title":"Invalid request",
    ///   "status":422,"detail":"role cannot change","code":"immutable_field","field":"role"}"#;
    /// match Error::from_response(422, body, None) {
    ///     Error::Validation { field, code, .. } => {
    ///         assert_eq!(code, "immutable_field");
    ///         assert_eq!(field.as_deref(), Some("role"));
    ///     }
    ///     other => panic!("{other}"),
    /// }
    /// ```
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
        let problem = serde_json::from_slice::<Problem>(body).ok();
        let (code, detail, field) = match problem {
            Some(p) => {
                let detail = p.detail.unwrap_or(p.title);
                (p.code, detail, p.field)
            }
            None => (
                default_code(status).to_string(),
                reason(status).to_string(),
                None,
            ),
        };
        Error::from_parts(status, code, detail, field, retry_after)
    }

    /// The error for a parsed problem document.
    ///
    /// ```
    /// use tokenops_client::{Error, Problem};
    /// let p = Problem::new(403, "permission_escalation", "Forbidden");
    /// assert!(matches!(Error::from_problem(p, None), Error::Forbidden { .. }));
    /// ```
    pub fn from_problem(problem: Problem, retry_after: Option<Duration>) -> Error {
        let detail = problem.detail.unwrap_or(problem.title);
        Error::from_parts(
            problem.status,
            problem.code,
            detail,
            problem.field,
            retry_after,
        )
    }

    fn from_parts(
        status: u16,
        code: String,
        detail: String,
        field: Option<String>,
        retry_after: Option<Duration>,
    ) -> Error {
        match status {
            401 => Error::Unauthorized { code, detail },
            403 => Error::Forbidden { code, detail },
            404 => Error::NotFound { code, detail },
            409 => Error::Conflict { code, detail },
            429 => Error::RateLimited { retry_after, code },
            400..=499 => Error::Validation {
                status,
                field,
                code,
                detail,
            },
            _ => Error::Server {
                status,
                code,
                detail,
            },
        }
    }
}

/// The code used when a response carries no problem document (e.g. a proxy's 502 page).
fn default_code(status: u16) -> &'static str {
    use crate::codes;
    match status {
        401 => codes::UNAUTHENTICATED,
        403 => codes::FORBIDDEN,
        404 => codes::NOT_FOUND,
        405 => codes::METHOD_NOT_ALLOWED,
        409 => codes::CONFLICT,
        413 => codes::PAYLOAD_TOO_LARGE,
        415 => codes::UNSUPPORTED_MEDIA_TYPE,
        429 => codes::RATE_LIMITED,
        502..=504 => codes::UNAVAILABLE,
        400..=499 => codes::INVALID_FIELD,
        _ => codes::INTERNAL,
    }
}

fn reason(status: u16) -> &'static str {
    http_reason(status).unwrap_or("unexpected response")
}

fn http_reason(status: u16) -> Option<&'static str> {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    fn problem(status: u16, code: &str, field: Option<&str>) -> Vec<u8> {
        let mut p = Problem::new(status, code, "Title").with_detail("what happened");
        if let Some(f) = field {
            p = p.with_field(f);
        }
        serde_json::to_vec(&p).unwrap()
    }

    #[test]
    fn each_status_class_maps_to_its_variant_and_keeps_the_code() {
        let cases: &[(u16, &str)] = &[
            (401, codes::UNAUTHENTICATED),
            (403, codes::PERMISSION_ESCALATION),
            (404, codes::NOT_FOUND),
            (409, codes::CONFLICT),
            (413, codes::PAYLOAD_TOO_LARGE),
            (415, codes::UNSUPPORTED_MEDIA_TYPE),
            (422, codes::IDEMPOTENCY_KEY_REUSED),
            (429, codes::RATE_LIMITED),
            (500, codes::INTERNAL),
            (503, codes::UNAVAILABLE),
        ];
        for &(status, code) in cases {
            let err = Error::from_response(status, &problem(status, code, None), None);
            assert_eq!(err.code(), Some(code), "{status}");
            assert_eq!(err.status(), Some(status), "{status}");
            let ok = match status {
                401 => matches!(err, Error::Unauthorized { .. }),
                403 => matches!(err, Error::Forbidden { .. }),
                404 => matches!(err, Error::NotFound { .. }),
                409 => matches!(err, Error::Conflict { .. }),
                429 => matches!(err, Error::RateLimited { .. }),
                400..=499 => matches!(err, Error::Validation { .. }),
                _ => matches!(err, Error::Server { .. }),
            };
            assert!(ok, "{status} mapped to {err:?}");
        }
    }

    #[test]
    fn validation_errors_name_the_field_in_display() {
        let err = Error::from_response(
            422,
            &problem(422, codes::INVALID_DURATION, Some("lifetime")),
            None,
        );
        match &err {
            Error::Validation {
                field,
                code,
                detail,
                status,
            } => {
                assert_eq!(field.as_deref(), Some("lifetime"));
                assert_eq!(code, codes::INVALID_DURATION);
                assert_eq!(detail, "what happened");
                assert_eq!(*status, 422);
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("lifetime") && text.contains("invalid_duration"),
            "{text}"
        );
    }

    #[test]
    fn bodies_that_are_not_problems_still_map_by_status() {
        let err = Error::from_response(502, b"<html>Bad Gateway</html>", None);
        assert!(matches!(&err, Error::Server { status: 502, .. }));
        assert_eq!(err.code(), Some(codes::UNAVAILABLE));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Bad Gateway"), "{err}");

        let err = Error::from_response(404, b"", None);
        assert!(err.is_not_found());
        assert_eq!(err.code(), Some(codes::NOT_FOUND));
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        // A verify 429 carries a VerifyResponse body rather than a problem.
        let body = br#"{"valid":false,"code":"RATE_LIMITED"}"#;
        let err = Error::from_response(429, body, Some(Duration::from_secs(2)));
        match &err {
            Error::RateLimited { retry_after, code } => {
                assert_eq!(*retry_after, Some(Duration::from_secs(2)));
                assert_eq!(code, codes::RATE_LIMITED);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.to_string(), "rate limited (retry after 2s)");
    }

    #[test]
    fn problem_without_detail_uses_the_title() {
        let p = Problem::new(409, codes::CONFLICT, "Conflict");
        let err = Error::from_problem(p, None);
        assert_eq!(err.to_string(), "conflict: Conflict (conflict)");
    }
}
