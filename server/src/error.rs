//! The one error type of the HTTP layer. Each constructor documents its status;
//! every error renders as `application/problem+json` with a stable `code`.
//! Internal errors are logged with their cause and answered with a generic body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokenops_types::{Problem, codes};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 422 — a request field breaks a rule; `field` is its JSON path.
    pub fn field(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
        e.field = Some(field.into());
        e
    }

    /// 400 — the body is not JSON at all.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::MALFORMED_JSON, detail)
    }

    /// 401 — no credentials, or credentials that do not verify.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED, detail)
    }

    /// 403 — authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, detail)
    }

    /// 403 — the request would grant more than the caller holds.
    pub fn escalation(field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, codes::PERMISSION_ESCALATION, detail);
        e.field = Some(field.to_string());
        e
    }

    /// 404 — no such token in the caller's project.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("{what} not found"),
        )
    }

    /// 409 — the request conflicts with the token's state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 429 — the token's request rate is over its limit.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("rate limit reached for this token; retry after {retry_after_secs}s"),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "request body must be JSON: send Content-Type: application/json",
        )
    }

    /// 503 — storage is unreachable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, detail)
    }

    /// 500 — logs the cause; the body says nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal server error",
        )
    }

    pub fn to_problem(&self) -> Problem {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut p =
            Problem::new(self.status.as_u16(), self.code, title).with_detail(self.detail.clone());
        p.field = self.field.clone();
        p
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %e, "storage unavailable");
                ApiError::unavailable("storage is unavailable; retry later")
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sqlx) => sqlx.into(),
            Err(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was refused unread, so the server closes the connection
            // after this answer. Saying so keeps a client from sending its next
            // request on a connection that is going away.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}
