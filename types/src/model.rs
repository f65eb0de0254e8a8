//! The token model and the request and response bodies of the v1 API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Labels attached to a token: a string map used for selection, ownership and bulk revoke.
pub type Labels = BTreeMap<String, String>;

/// Label every front end sets on the tokens it manages.
pub const LABEL_MANAGED_BY: &str = "managed-by";

/// Prefix of the label keys reserved for ownership, like [`LABEL_MANAGED_BY`].
pub const OWNERSHIP_LABEL_PREFIX: &str = "tokenops.dev/";

/// Whether a label key records ownership: such labels are set once and never change.
///
/// ```
/// use tokenops_types::is_ownership_label;
/// assert!(is_ownership_label("managed-by"));
/// assert!(is_ownership_label("tokenops.dev/uid"));
/// assert!(!is_ownership_label("team"));
/// ```
pub fn is_ownership_label(key: &str) -> bool {
    key == LABEL_MANAGED_BY || key.starts_with(OWNERSHIP_LABEL_PREFIX)
}

/// The project of organisation tokens: they act in every project.
pub const ORGANISATION_PROJECT: &str = "*";

/// The duration syntax as a regular expression, for API documents and schemas.
pub const DURATION_PATTERN: &str =
    r"^\+?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))+$";

/// Lifecycle state of a token. An active token past its expiry reads as `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(TokenStatus::Active),
            "expired" => Ok(TokenStatus::Expired),
            "revoked" => Ok(TokenStatus::Revoked),
            _ => Err("unknown status (use active, expired or revoked)".to_string()),
        }
    }
}

/// One resource a token is limited to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// Resource type, one of the server's configured types (defaults: `device`, `device_group`, `site`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier of the resource.
    pub id: String,
}

impl ResourceRef {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        ResourceRef {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AllResources {
    #[serde(rename = "all")]
    All,
}

/// Which resources a token may act on: `"all"` (the default) or a list of `{type, id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Resources {
    All(AllResources),
    List(Vec<ResourceRef>),
}

impl Default for Resources {
    fn default() -> Self {
        Resources::All(AllResources::All)
    }
}

impl Resources {
    /// `"all"`.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn list(items: impl IntoIterator<Item = ResourceRef>) -> Self {
        Resources::List(items.into_iter().collect())
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Resources::All(_))
    }

    /// Whether this set allows acting on `r`.
    pub fn allows(&self, r: &ResourceRef) -> bool {
        match self {
            Resources::All(_) => true,
            Resources::List(items) => items.contains(r),
        }
    }

    /// Whether every resource in `other` is also in `self` (no escalation).
    pub fn covers(&self, other: &Resources) -> bool {
        match (self, other) {
            (Resources::All(_), _) => true,
            (Resources::List(_), Resources::All(_)) => false,
            (Resources::List(_), Resources::List(items)) => items.iter().all(|r| self.allows(r)),
        }
    }
}

/// A token as every endpoint shows it: never with its value, only `masked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// Public, stable identifier (`tok_…`); survives regeneration.
    pub id: String,
    /// Tenant the token belongs to.
    pub project: String,
    /// Display name, 1–128 characters.
    pub name: String,
    /// Free text, at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Server-defined permission bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Extra permission patterns `<resource>:<action>`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Resources the token is limited to.
    #[serde(default)]
    pub resources: Resources,
    /// When the token stops working; absent means never (only if policy allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// `active`, `expired` or `revoked`.
    pub status: TokenStatus,
    /// The only form of the value shown after creation, e.g. `tko_…a1B2`.
    pub masked: String,
    #[serde(default)]
    pub labels: Labels,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regenerated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Until when the value replaced by the last regeneration keeps verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// How many times the token was regenerated.
    pub generation: u64,
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Defaults to the caller's project; a caller may only create in its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Go-style duration, e.g. `720h`; exclusive with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\+?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))+$")
    )]
    pub lifetime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// Response of create and regenerate: the token and its value, shown this once.
/// `Debug` leaves the value out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenWithSecret {
    pub token: Token,
    /// The token value. It is not stored and cannot be shown again.
    pub secret: String,
}

impl std::fmt::Debug for TokenWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenWithSecret")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Body of `PATCH /v1/tokens/{id}`: only `name`, `description` and `labels` may change.
///
/// The permission fields are accepted so the server can answer `immutable_field`
/// instead of a generic unknown-field error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A string sets the description; `null` or `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces all labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub role: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub scopes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub resources: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub project: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub expires_at: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub lifetime: Option<serde_json::Value>,
}

/// Body of `POST /v1/tokens/{id}/regenerate`. With neither `lifetime` nor
/// `expires_at` the token keeps the lifetime it was created with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\+?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))+$")
    )]
    pub lifetime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the replaced value keeps verifying (Go-style duration); default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\+?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))+$")
    )]
    pub grace_period: Option<String>,
}

/// Body of `POST /v1/tokens/revoke`: exactly one of `ids` or `selector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkRevokeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Label selector `k=v,k2=v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// Response of bulk revoke.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRevokeResponse {
    /// How many active tokens were revoked by this call.
    pub revoked: u64,
    /// Ids given that name no token the caller can see.
    #[serde(default)]
    pub not_found: Vec<String>,
    /// Tokens left alone: outside the caller's authority, or the caller itself
    /// when chosen by a selector.
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// Body of `POST /v1/tokens/{id}/revoke` (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Revoke later instead of now: the token's expiry is brought forward to
    /// now plus this duration (Go-style), so consumers get an overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A role of the server's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleDefinition {
    /// What a holder may do: product permissions and management permissions
    /// (`tokens:*`, `audit:read`).
    pub permissions: Vec<String>,
    /// Product permissions a holder may hand out beyond its own.
    #[serde(default)]
    pub grants: Vec<String>,
}

/// Response of `GET /v1/policy`: what this server allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyDocument {
    /// Role name → definition.
    pub roles: BTreeMap<String, RoleDefinition>,
    /// Resource types tokens may be limited to.
    pub resource_types: Vec<String>,
    /// Whether every token must expire (`require_expiry` in the policy file).
    pub require_expiry: bool,
    /// Longest lifetime a token may be given (Go-style duration).
    pub max_lifetime: String,
    /// Revoked and expired tokens are deleted this long after they ended.
    pub retention: String,
    /// Prefix of issued values.
    pub token_prefix: String,
    /// Per-token request rate limit, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitDocument>,
    /// Reserved resources that only named management permissions reach.
    pub management_resources: Vec<String>,
}

/// The rate limit part of [`PolicyDocument`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitDocument {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Body of `POST /v1/verify`. `Debug` leaves the value out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token value to check.
    pub token: String,
    /// A permission the token must hold, e.g. `billing:read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// A resource the token must be allowed to act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &"<redacted>")
            .field("permission", &self.permission)
            .field("resource", &self.resource)
            .finish()
    }
}

/// Outcome codes of `POST /v1/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    Malformed,
    NotFound,
    Expired,
    Revoked,
    InsufficientPermissions,
    RateLimited,
}

impl VerifyCode {
    /// Every code, in declaration order.
    pub const ALL: [VerifyCode; 7] = [
        VerifyCode::Valid,
        VerifyCode::Malformed,
        VerifyCode::NotFound,
        VerifyCode::Expired,
        VerifyCode::Revoked,
        VerifyCode::InsufficientPermissions,
        VerifyCode::RateLimited,
    ];

    /// The code as it appears on the wire (e.g. `NOT_FOUND`).
    pub const fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::RateLimited => "RATE_LIMITED",
        }
    }
}

/// What a successful verification tells about the token (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifiedToken {
    pub id: String,
    pub project: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Effective permissions: the role's bundle plus the token's own scopes.
    pub permissions: Vec<String>,
    pub resources: Resources,
    /// When this value stops verifying: the token's expiry, or for a previous
    /// value the end of its grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The masked form of the value that was presented.
    pub masked: String,
    /// The token's labels (e.g. the app it is tied to), for attributing requests.
    #[serde(default)]
    pub labels: Labels,
    /// `true` when the presented value is the one replaced by the last
    /// regeneration, still verifying during its grace period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous: bool,
}

/// Response of `POST /v1/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: VerifyCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<VerifiedToken>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub project: String,
    /// The token that made the call (`bootstrap` for the bootstrap command).
    pub actor: String,
    /// e.g. `token.create`, `token.regenerate`, `token.revoke`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Non-secret details of the change.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

/// Parses a label selector `k=v,k2=v2` into pairs.
///
/// ```
/// use tokenops_types::parse_selector;
/// assert_eq!(parse_selector("team=web, env=prod").unwrap(),
///            vec![("team".to_string(), "web".to_string()), ("env".to_string(), "prod".to_string())]);
/// assert!(parse_selector("team").is_err());
/// ```
pub fn parse_selector(selector: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, part) in selector.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // Messages name the term's position, never its text: a secret pasted
        // into a selector must not come back in an error.
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("selector term {} must have the form key=value", i + 1))?;
        let (k, v) = (k.trim(), v.trim());
        validate_label_key(k)?;
        validate_label_value(v)?;
        out.push((k.to_string(), v.to_string()));
    }
    if out.is_empty() {
        return Err("selector is empty: give at least one key=value".to_string());
    }
    Ok(out)
}

/// Label keys: 1–128 characters of letters, digits, `.`, `_`, `-`, `/`.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > 128 {
        return Err("label keys must be 1 to 128 characters".to_string());
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return Err(
            "label keys may only contain letters, digits, '.', '_', '-' and '/'".to_string(),
        );
    }
    Ok(())
}

/// Label values: at most 256 characters, without `,` or `=` (they delimit selectors) or control characters.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.len() > 256 {
        return Err("label values must be at most 256 characters".to_string());
    }
    if v.chars().any(|c| c == ',' || c == '=' || c.is_control()) {
        return Err("label values may not contain ',', '=' or control characters".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_never_quote_what_was_given() {
        let secret = "tko_s3cr3tValueThatMustNotEcho";
        for err in [
            parse_selector(secret).unwrap_err(),
            parse_selector(&format!("{secret}!=x")).unwrap_err(),
            validate_label_key(&format!("{secret}!")).unwrap_err(),
            secret.parse::<TokenStatus>().unwrap_err(),
        ] {
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn resources_serialise_as_all_or_a_list() {
        assert_eq!(serde_json::to_string(&Resources::all()).unwrap(), "\"all\"");
        let list = Resources::list([ResourceRef::new("site", "s-1")]);
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"[{"type":"site","id":"s-1"}]"#
        );
        let back: Resources = serde_json::from_str(r#"[{"type":"site","id":"s-1"}]"#).unwrap();
        assert_eq!(back, list);
        assert!(serde_json::from_str::<Resources>("\"some\"").is_err());
    }

    #[test]
    fn resource_coverage_prevents_widening() {
        let all = Resources::all();
        let one = Resources::list([ResourceRef::new("site", "s-1")]);
        let two = Resources::list([
            ResourceRef::new("site", "s-1"),
            ResourceRef::new("site", "s-2"),
        ]);
        assert!(all.covers(&two));
        assert!(two.covers(&one));
        assert!(!one.covers(&two));
        assert!(!one.covers(&all));
    }

    #[test]
    fn selectors_reject_bad_terms() {
        assert!(parse_selector("").is_err());
        assert!(parse_selector("a=b,c").is_err());
        assert!(parse_selector("bad key=x").is_err());
        assert_eq!(parse_selector("a=").unwrap(), vec![("a".into(), "".into())]);
    }

    #[test]
    fn verify_codes_spell_as_serde_does() {
        for code in VerifyCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }

    #[test]
    fn debug_never_shows_a_value() {
        let value = crate::secret::generate("tko");
        let req = VerifyRequest {
            token: value.clone(),
            permission: None,
            resource: None,
        };
        assert!(!format!("{req:?}").contains(&value));
    }
}
