//! RFC 9457 problem details, the body of every error the API returns.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes. Clients match on these, never on text.
pub mod codes {
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    pub const FORBIDDEN: &str = "forbidden";
    pub const PERMISSION_ESCALATION: &str = "permission_escalation";
    pub const NOT_FOUND: &str = "not_found";
    pub const CONFLICT: &str = "conflict";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// The request could not be read at the HTTP layer (e.g. a path that is not UTF-8).
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const INVALID_FIELD: &str = "invalid_field";
    pub const REQUIRED: &str = "required";
    pub const TOO_LONG: &str = "too_long";
    pub const INVALID_DURATION: &str = "invalid_duration";
    pub const LIFETIME_EXCEEDS_POLICY: &str = "lifetime_exceeds_policy";
    pub const EXPIRY_REQUIRED: &str = "expiry_required";
    pub const EXPIRY_IN_PAST: &str = "expiry_in_past";
    pub const UNKNOWN_ROLE: &str = "unknown_role";
    pub const UNKNOWN_RESOURCE_TYPE: &str = "unknown_resource_type";
    pub const INVALID_PERMISSION: &str = "invalid_permission";
    pub const INVALID_LABEL: &str = "invalid_label";
    pub const INVALID_SELECTOR: &str = "invalid_selector";
    pub const MUTUALLY_EXCLUSIVE: &str = "mutually_exclusive";
    pub const IMMUTABLE_FIELD: &str = "immutable_field";
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    pub const TOKEN_REVOKED: &str = "token_revoked";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const INTERNAL: &str = "internal";
}

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem (`https://tokenops.dev/problems/<code>`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request, in words a person can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, see [`codes`].
    pub code: String,
    /// The request field at fault (a JSON path such as `resources[1].type`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, code: &str, title: &str) -> Self {
        Problem {
            kind: format!("https://tokenops.dev/problems/{code}"),
            title: title.to_string(),
            status,
            detail: None,
            code: code.to_string(),
            field: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.detail.as_deref().unwrap_or(&self.title),
            self.code
        )?;
        if let Some(field) = &self.field {
            write!(f, " [field: {field}]")?;
        }
        Ok(())
    }
}
