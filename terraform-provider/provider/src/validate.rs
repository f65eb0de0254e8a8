//! Plan-time checks of token attributes, made before any API call. Each
//! problem is a diagnostic on the attribute at fault. The rules mirror the
//! backend's (DESIGN "The token model"), so a bad configuration fails at
//! `terraform plan` rather than half-way through an apply.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};
use tokenops_client::rotation::RenewBefore;
use tokenops_client::types::permission;
use tokenops_client::{
    LABEL_MANAGED_BY, PolicyDocument, parse_duration, validate_label_key, validate_label_value,
};

use crate::token::ResourceSelector;

/// Longest token name the backend accepts.
pub const MAX_NAME: usize = 128;
/// Longest description the backend accepts.
pub const MAX_DESCRIPTION: usize = 1024;

fn error(diags: &mut Diagnostics, path: AttributePath, summary: &str, detail: impl Into<String>) {
    diags.push(
        Diagnostic::error(summary)
            .with_detail(detail)
            .with_attribute(path),
    );
}

/// `name`: 1–128 characters.
pub fn name(value: &Value<String>, diags: &mut Diagnostics) {
    if let Value::Known(name) = value {
        let chars = name.chars().count();
        if name.trim().is_empty() {
            error(
                diags,
                "name".into(),
                "Invalid name",
                "The name must not be empty.",
            );
        } else if chars > MAX_NAME {
            error(
                diags,
                "name".into(),
                "Name too long",
                format!("The name has {chars} characters; at most {MAX_NAME} are allowed."),
            );
        }
    }
}

/// `description`: at most 1024 characters.
pub fn description(value: &Value<String>, diags: &mut Diagnostics) {
    if let Value::Known(d) = value {
        let chars = d.chars().count();
        if chars > MAX_DESCRIPTION {
            error(
                diags,
                "description".into(),
                "Description too long",
                format!(
                    "The description has {chars} characters; at most {MAX_DESCRIPTION} are allowed."
                ),
            );
        }
    }
}

/// A duration attribute (`lifetime`, `grace_period`): a Go-style duration
/// greater than zero. Returns the parsed value.
pub fn duration(attr: &str, value: &Value<String>, diags: &mut Diagnostics) -> Option<Duration> {
    let Value::Known(text) = value else {
        return None;
    };
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            error(
                diags,
                attr.into(),
                &format!("Invalid {attr}"),
                format!("{text:?} is zero; give a duration greater than zero, e.g. \"720h\"."),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            error(
                diags,
                attr.into(),
                &format!("Invalid {attr}"),
                format!(
                    "{text:?} is not a duration: {e}. Use a Go-style duration such as \"720h\", \"30m\", \"1h30m\", \"7d\" or \"2w\"."
                ),
            );
            None
        }
    }
}

/// `rotate_before`: a duration (`"240h"`) or a percentage (`"33%"`).
pub fn rotate_before(value: &Value<String>, diags: &mut Diagnostics) -> Option<RenewBefore> {
    let Value::Known(text) = value else {
        return None;
    };
    match text.parse::<RenewBefore>() {
        Ok(RenewBefore::Duration(d)) if d.is_zero() => {
            error(
                diags,
                "rotate_before".into(),
                "Invalid rotate_before",
                "A zero rotate_before would rotate only after expiry; give a duration such as \"240h\" or a percentage such as \"33%\".",
            );
            None
        }
        Ok(rb) => Some(rb),
        Err(e) => {
            error(
                diags,
                "rotate_before".into(),
                "Invalid rotate_before",
                format!(
                    "{text:?}: {e}. Give a duration before expiry (\"240h\") or the share of the lifetime left (\"33%\")."
                ),
            );
            None
        }
    }
}

/// `scopes`: patterns `<resource>:<action>`, `*` wildcards allowed.
pub fn scopes(value: &Value<Vec<String>>, diags: &mut Diagnostics) {
    let Value::Known(scopes) = value else { return };
    for (i, scope) in scopes.iter().enumerate() {
        if permission::parse(scope).is_err() {
            error(
                diags,
                AttributePath::new("scopes").index(i as i64),
                "Invalid scope",
                format!(
                    "{scope:?} is not a permission: a scope looks like <resource>:<action>, e.g. \"tokens:read\", \"billing:*\" or \"*\"."
                ),
            );
        }
    }
}

/// `resources`: omitted means all; an empty set would mean none and is refused.
pub fn resources(value: &Value<BTreeSet<ResourceSelector>>, diags: &mut Diagnostics) {
    let Value::Known(items) = value else { return };
    if items.is_empty() {
        error(
            diags,
            "resources".into(),
            "Empty resources",
            "An empty set would give the token no resources at all. Omit `resources` to allow all resources.",
        );
    }
    for item in items {
        for (field, v) in [("type", &item.r#type), ("id", &item.id)] {
            if v.known().is_some_and(|s| s.trim().is_empty()) {
                error(
                    diags,
                    "resources".into(),
                    "Invalid resource",
                    format!("Every resource needs a non-empty `{field}`."),
                );
            }
        }
    }
}

/// The checks that need the server's policy (`GET /v1/policy`): a role the
/// server defines, resource types it accepts, a lifetime within its maximum.
/// Run at plan time, so `terraform plan` fails on the attribute, not apply.
pub fn against_policy(
    policy: &PolicyDocument,
    role: &Value<String>,
    resources: &Value<BTreeSet<ResourceSelector>>,
    lifetime: Option<Duration>,
    diags: &mut Diagnostics,
) {
    if let Some(r) = role.known()
        && !policy.roles.contains_key(r)
    {
        let known: Vec<&str> = policy.roles.keys().map(String::as_str).collect();
        error(
            diags,
            "role".into(),
            "Unknown role",
            format!(
                "The tokenops server defines no such role. It defines: {}.",
                known.join(", ")
            ),
        );
    }
    if let Value::Known(items) = resources {
        for item in items {
            if let Some(t) = item.r#type.known()
                && !policy.resource_types.iter().any(|k| k == t)
            {
                error(
                    diags,
                    "resources".into(),
                    "Unknown resource type",
                    format!(
                        "The tokenops server accepts these resource types: {}.",
                        policy.resource_types.join(", ")
                    ),
                );
            }
        }
    }
    if let (Some(l), Ok(max)) = (lifetime, parse_duration(&policy.max_lifetime))
        && l > max
    {
        error(
            diags,
            "lifetime".into(),
            "Lifetime over the server's maximum",
            format!(
                "The tokenops server allows tokens to live at most {}.",
                policy.max_lifetime
            ),
        );
    }
}

/// `labels`: valid keys and values; `managed-by` is reserved for the provider.
pub fn labels(attr: &str, value: &Value<BTreeMap<String, String>>, diags: &mut Diagnostics) {
    let Value::Known(labels) = value else { return };
    for (k, v) in labels {
        let path = AttributePath::new(attr).key(k.clone());
        if k == LABEL_MANAGED_BY {
            error(
                diags,
                path,
                "Reserved label",
                format!(
                    "The provider sets {LABEL_MANAGED_BY}={} on every token it creates (the ownership label shared with the tokenops operator); remove it from `{attr}`.",
                    crate::MANAGED_BY_TERRAFORM
                ),
            );
            continue;
        }
        if let Err(e) = validate_label_key(k).and_then(|()| validate_label_value(v)) {
            error(diags, path, "Invalid label", e);
        }
    }
}

/// Combinations that cannot work together.
pub fn combinations(
    role: &Value<String>,
    scopes: &Value<Vec<String>>,
    lifetime: Option<Duration>,
    rotate_before: Option<RenewBefore>,
    grace_period: Option<Duration>,
    diags: &mut Diagnostics,
) {
    let no_role = role.is_null() || role.known().is_some_and(|r| r.is_empty());
    let no_scopes = scopes.is_null() || scopes.known().is_some_and(Vec::is_empty);
    if no_role && no_scopes {
        error(
            diags,
            "role".into(),
            "Missing permissions",
            "A token needs a `role` (e.g. \"read-only\") or `scopes` (e.g. [\"usage:read\"]), or both.",
        );
    }
    if let (Some(lifetime), Some(RenewBefore::Duration(lead))) = (lifetime, rotate_before)
        && lead >= lifetime
    {
        error(
            diags,
            "rotate_before".into(),
            "rotate_before conflicts with lifetime",
            format!(
                "rotate_before ({}) must be shorter than lifetime ({}): otherwise every new value would be due for rotation at once.",
                tokenops_client::format_duration(lead),
                tokenops_client::format_duration(lifetime)
            ),
        );
    }
    if let (Some(lifetime), Some(grace)) = (lifetime, grace_period)
        && grace >= lifetime
    {
        error(
            diags,
            "grace_period".into(),
            "grace_period conflicts with lifetime",
            format!(
                "grace_period ({}) must be shorter than lifetime ({}): the old value would outlive the new one.",
                tokenops_client::format_duration(grace),
                tokenops_client::format_duration(lifetime)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(diags: &Diagnostics) -> Vec<String> {
        diags
            .iter()
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn names_longer_than_128_characters_are_refused() {
        let mut diags = Diagnostics::new();
        name(&Value::Known("x".repeat(128)), &mut diags);
        assert!(diags.is_empty());
        name(&Value::Known("x".repeat(129)), &mut diags);
        assert_eq!(paths(&diags), ["name"]);
    }

    #[test]
    fn bad_durations_and_rotate_before_point_at_their_attribute() {
        let mut diags = Diagnostics::new();
        assert_eq!(
            duration("lifetime", &Value::Known("1h30m".into()), &mut diags),
            Some(Duration::from_secs(5400))
        );
        assert!(duration("lifetime", &Value::Known("5 minutes".into()), &mut diags).is_none());
        assert!(duration("grace_period", &Value::Known("0".into()), &mut diags).is_none());
        assert!(rotate_before(&Value::Known("150%".into()), &mut diags).is_none());
        assert!(rotate_before(&Value::Known("33%".into()), &mut diags).is_some());
        assert_eq!(paths(&diags), ["lifetime", "grace_period", "rotate_before"]);
    }

    #[test]
    fn weeks_are_durations_like_everywhere_else() {
        let mut diags = Diagnostics::new();
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(
            duration("lifetime", &Value::Known("2w".into()), &mut diags),
            Some(week * 2)
        );
        assert_eq!(
            duration("grace_period", &Value::Known("1w12h".into()), &mut diags),
            Some(week + Duration::from_secs(12 * 3600))
        );
        assert!(matches!(
            rotate_before(&Value::Known("1w".into()), &mut diags),
            Some(RenewBefore::Duration(d)) if d == week
        ));
        assert!(diags.is_empty(), "{diags:?}");
    }

    #[test]
    fn rotate_before_and_grace_period_must_be_shorter_than_the_lifetime() {
        let mut diags = Diagnostics::new();
        let day = Duration::from_secs(86_400);
        combinations(
            &Value::Known("owner".into()),
            &Value::Null,
            Some(day),
            Some(RenewBefore::Duration(day)),
            Some(day * 2),
            &mut diags,
        );
        assert_eq!(paths(&diags), ["rotate_before", "grace_period"]);
    }

    #[test]
    fn a_token_needs_a_role_or_scopes() {
        let mut diags = Diagnostics::new();
        combinations(
            &Value::Null,
            &Value::Known(vec![]),
            None,
            None,
            None,
            &mut diags,
        );
        assert_eq!(paths(&diags), ["role"]);
    }

    #[test]
    fn scopes_labels_and_resources_are_checked_element_by_element() {
        let mut diags = Diagnostics::new();
        scopes(
            &Value::Known(vec!["usage:read".into(), "nope".into()]),
            &mut diags,
        );
        labels(
            "labels",
            &Value::Known(BTreeMap::from([
                ("managed-by".to_owned(), "me".to_owned()),
                ("bad key".to_owned(), "v".to_owned()),
            ])),
            &mut diags,
        );
        resources(&Value::Known(BTreeSet::new()), &mut diags);
        assert_eq!(
            paths(&diags),
            [
                "scopes[1]",
                "labels[\"bad key\"]",
                "labels[\"managed-by\"]",
                "resources"
            ]
        );
    }
}
