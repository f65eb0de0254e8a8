//! Request validation: every rule a field must follow, each failure a problem
//! naming the field and the rule. Pure functions, tested without a server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokenops_types::{Labels, Resources, codes, parse_duration, permission};

use crate::config::Policy;
use crate::error::ApiError;

pub const MAX_NAME: usize = 128;
pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_SCOPES: usize = 64;
pub const MAX_RESOURCES: usize = 256;
pub const MAX_LABELS: usize = 64;
pub const MAX_RESOURCE_ID: usize = 128;

pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::field(
            codes::REQUIRED,
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > MAX_NAME {
        return Err(ApiError::field(
            codes::TOO_LONG,
            field,
            format!("{field} must be at most {MAX_NAME} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(
            codes::INVALID_FIELD,
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

pub fn description(value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::field(
            codes::TOO_LONG,
            "description",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    // Line breaks and tabs are text; other control characters (NUL among
    // them, which PostgreSQL cannot store) are refused on every backend alike.
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::field(
            codes::INVALID_FIELD,
            "description",
            "description must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

/// A token id as this server issues them (`tok_` and 16 base62 characters).
/// Anything else names no token: answered `404` without a storage read, on
/// every backend alike.
pub fn is_token_id(id: &str) -> bool {
    id.len() == 20 && id.starts_with("tok_") && id[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A text filter of a list (`name`, `actor`, `token_id`): bounded, no control characters.
pub fn filter_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(ApiError::field(
            codes::INVALID_FIELD,
            field,
            format!("{field} must be at most {MAX_NAME} characters, without control characters"),
        ));
    }
    Ok(())
}

/// A project name, or `*` (organisation tokens) where `organisation_allowed`.
pub fn project_of_new_token(value: &str, organisation_allowed: bool) -> Result<(), ApiError> {
    if value == tokenops_types::ORGANISATION_PROJECT {
        return if organisation_allowed {
            Ok(())
        } else {
            Err(ApiError::escalation(
                "project",
                "only an organisation token can create organisation tokens (project \"*\")",
            ))
        };
    }
    project(value)
}

pub fn project(value: &str) -> Result<(), ApiError> {
    let ok = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            codes::INVALID_FIELD,
            "project",
            "project must be 1 to 63 lowercase letters, digits or '-'",
        ))
    }
}

pub fn role(policy: &Policy, value: &str) -> Result<(), ApiError> {
    if policy.roles.contains_key(value) {
        Ok(())
    } else {
        let known: Vec<&str> = policy.roles.keys().map(String::as_str).collect();
        Err(ApiError::field(
            codes::UNKNOWN_ROLE,
            "role",
            format!("unknown role; this server defines: {}", known.join(", ")),
        ))
    }
}

pub fn scopes(values: &[String]) -> Result<(), ApiError> {
    if values.len() > MAX_SCOPES {
        return Err(ApiError::field(
            codes::TOO_LONG,
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    for (i, s) in values.iter().enumerate() {
        if permission::parse(s).is_err() {
            return Err(ApiError::field(
                codes::INVALID_PERMISSION,
                format!("scopes[{i}]"),
                "a scope must look like <resource>:<action>, e.g. tokens:read or billing:*",
            ));
        }
    }
    Ok(())
}

pub fn resources(policy: &Policy, value: &Resources) -> Result<(), ApiError> {
    let Resources::List(items) = value else {
        return Ok(());
    };
    if items.is_empty() {
        return Err(ApiError::field(
            codes::INVALID_FIELD,
            "resources",
            "resources must be \"all\" or a non-empty list of {type, id}",
        ));
    }
    if items.len() > MAX_RESOURCES {
        return Err(ApiError::field(
            codes::TOO_LONG,
            "resources",
            format!("at most {MAX_RESOURCES} resources"),
        ));
    }
    for (i, r) in items.iter().enumerate() {
        if !policy.resource_types.contains(&r.kind) {
            return Err(ApiError::field(
                codes::UNKNOWN_RESOURCE_TYPE,
                format!("resources[{i}].type"),
                format!(
                    "unknown resource type; this server accepts: {}",
                    policy.resource_types.join(", ")
                ),
            ));
        }
        if r.id.is_empty()
            || r.id.chars().count() > MAX_RESOURCE_ID
            || r.id.chars().any(char::is_control)
        {
            return Err(ApiError::field(
                codes::INVALID_FIELD,
                format!("resources[{i}].id"),
                format!("resource ids must be 1 to {MAX_RESOURCE_ID} printable characters"),
            ));
        }
    }
    Ok(())
}

pub fn labels(value: &Labels) -> Result<(), ApiError> {
    if value.len() > MAX_LABELS {
        return Err(ApiError::field(
            codes::TOO_LONG,
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (k, v) in value {
        tokenops_types::validate_label_key(k)
            .map_err(|m| ApiError::field(codes::INVALID_LABEL, "labels", m))?;
        tokenops_types::validate_label_value(v)
            .map_err(|m| ApiError::field(codes::INVALID_LABEL, format!("labels.{k}"), m))?;
    }
    Ok(())
}

/// The `status` filter of a list, as text from a query or a form.
pub fn status_filter(value: Option<&str>) -> Result<Option<tokenops_types::TokenStatus>, ApiError> {
    value
        .map(|s| {
            s.parse::<tokenops_types::TokenStatus>()
                .map_err(|m| ApiError::field(codes::INVALID_FIELD, "status", m))
        })
        .transpose()
}

/// The `label` selector filter of a list (`k=v,k2=v2`); none means no labels.
pub fn label_filter(value: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    Ok(value
        .map(|s| {
            tokenops_types::parse_selector(s)
                .map_err(|m| ApiError::field(codes::INVALID_SELECTOR, "label", m))
        })
        .transpose()?
        .unwrap_or_default())
}

/// An optional duration field (e.g. `expiring_within`).
pub fn optional_duration(field: &str, value: Option<&str>) -> Result<Option<Duration>, ApiError> {
    value.map(|d| duration(field, d)).transpose()
}

/// A Go-style duration field.
pub fn duration(field: &str, value: &str) -> Result<Duration, ApiError> {
    parse_duration(value).map_err(|e| {
        ApiError::field(
            codes::INVALID_DURATION,
            field,
            format!("{field}: {e} (examples: 720h, 30m, 1h30m, 7d)"),
        )
    })
}

/// Resolves `lifetime` / `expires_at` into an expiry, checked against policy.
/// `fallback` is used when neither is given (the token's previous lifetime on regenerate).
pub fn expiry(
    policy: &Policy,
    now: DateTime<Utc>,
    lifetime: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    fallback: Option<Duration>,
) -> Result<Option<(DateTime<Utc>, Duration)>, ApiError> {
    let max = policy.max_lifetime.0;
    let lifetime = match (lifetime, expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                codes::MUTUALLY_EXCLUSIVE,
                "lifetime",
                "give either lifetime or expires_at, not both",
            ));
        }
        (Some(l), None) => {
            let d = duration("lifetime", l)?;
            if d.is_zero() {
                return Err(ApiError::field(
                    codes::INVALID_DURATION,
                    "lifetime",
                    "lifetime must be greater than zero",
                ));
            }
            Some(("lifetime", d))
        }
        (None, Some(at)) => {
            if at <= now {
                return Err(ApiError::field(
                    codes::EXPIRY_IN_PAST,
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            let d = (at - now).to_std().unwrap_or(Duration::MAX);
            Some(("expires_at", d))
        }
        (None, None) => fallback.map(|d| ("lifetime", d)),
    };
    match lifetime {
        None if policy.require_expiry => Err(ApiError::field(
            codes::EXPIRY_REQUIRED,
            "lifetime",
            "this server requires every token to expire: give lifetime (e.g. 720h) or expires_at \
             (require_expiry = false in the server's policy file allows tokens without expiry)",
        )),
        None => Ok(None),
        Some((field, d)) if d > max => Err(ApiError::field(
            codes::LIFETIME_EXCEEDS_POLICY,
            field,
            format!(
                "the lifetime is longer than this server allows ({})",
                tokenops_types::format_duration(max)
            ),
        )),
        Some((_, d)) => {
            let delta = chrono::Duration::from_std(d).map_err(|_| {
                ApiError::field(
                    codes::LIFETIME_EXCEEDS_POLICY,
                    "lifetime",
                    "lifetime is too long",
                )
            })?;
            Ok(Some((now + delta, d)))
        }
    }
}

/// The idempotency key header: 1–255 visible ASCII characters.
pub fn idempotency_key(value: &str) -> Result<(), ApiError> {
    if (1..=255).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ApiError::field(
            codes::INVALID_FIELD,
            "Idempotency-Key",
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenops_types::ResourceRef;

    fn err_code(r: Result<impl std::fmt::Debug, ApiError>) -> (&'static str, Option<String>) {
        let e = r.unwrap_err();
        (e.code, e.field)
    }

    #[test]
    fn nul_and_odd_ids_are_refused_before_storage() {
        assert_eq!(
            err_code(description("a\0b")),
            (codes::INVALID_FIELD, Some("description".into()))
        );
        assert!(description("two\nlines\tand a tab").is_ok());
        assert!(is_token_id("tok_0123456789abcdef"));
        for bad in [
            "tok_0123456789abcde\0",
            "tok_short",
            "abc_0123456789abcdef",
            "tok_0123456789abcd-f",
        ] {
            assert!(!is_token_id(bad), "{bad:?}");
        }
        assert!(filter_text("name", "a\0").is_err());
        assert!(project_of_new_token("*", true).is_ok());
        assert_eq!(
            err_code(project_of_new_token("*", false)).0,
            codes::PERMISSION_ESCALATION
        );
    }

    #[test]
    fn names_are_bounded() {
        assert!(name("name", "ci").is_ok());
        assert_eq!(err_code(name("name", "")).0, codes::REQUIRED);
        assert_eq!(
            err_code(name("name", &"x".repeat(129))),
            (codes::TOO_LONG, Some("name".into()))
        );
        assert!(
            name("name", &"é".repeat(128)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn unknown_resource_types_name_the_entry() {
        let p = Policy::default();
        let r = Resources::list([
            ResourceRef::new("site", "s1"),
            ResourceRef::new("planet", "p1"),
        ]);
        assert_eq!(
            err_code(resources(&p, &r)),
            (
                codes::UNKNOWN_RESOURCE_TYPE,
                Some("resources[1].type".into())
            )
        );
        assert_eq!(
            err_code(resources(&p, &Resources::List(vec![]))).0,
            codes::INVALID_FIELD
        );
    }

    #[test]
    fn expiry_follows_policy() {
        let p = Policy::default();
        let now = Utc::now();
        let (at, d) = expiry(&p, now, Some("720h"), None, None).unwrap().unwrap();
        assert_eq!(d, Duration::from_secs(720 * 3600));
        assert_eq!(at, now + chrono::Duration::hours(720));
        assert_eq!(
            err_code(expiry(&p, now, Some("9000h"), None, None)).0,
            codes::LIFETIME_EXCEEDS_POLICY
        );
        assert_eq!(
            err_code(expiry(&p, now, None, None, None)).0,
            codes::EXPIRY_REQUIRED
        );
        assert_eq!(
            err_code(expiry(&p, now, Some("soon"), None, None)).0,
            codes::INVALID_DURATION
        );
        assert_eq!(
            err_code(expiry(&p, now, Some("1h"), Some(now), None)).0,
            codes::MUTUALLY_EXCLUSIVE
        );
        assert_eq!(
            err_code(expiry(
                &p,
                now,
                None,
                Some(now - chrono::Duration::seconds(1)),
                None
            ))
            .0,
            codes::EXPIRY_IN_PAST
        );
        let relaxed = Policy {
            require_expiry: false,
            ..Policy::default()
        };
        assert_eq!(expiry(&relaxed, now, None, None, None).unwrap(), None);
        let fallback = expiry(&p, now, None, None, Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert_eq!(fallback.1, Duration::from_secs(60));
    }

    #[test]
    fn scopes_must_be_patterns() {
        assert!(scopes(&["tokens:read".into(), "*".into()]).is_ok());
        assert_eq!(
            err_code(scopes(&["ok:read".into(), "nope".into()])),
            (codes::INVALID_PERMISSION, Some("scopes[1]".into()))
        );
    }
}
