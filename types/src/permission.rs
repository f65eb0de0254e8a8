//! Permission strings `<resource>:<action>` with `*` wildcards, and the rule
//! that decides whether one set of permissions covers another.
//!
//! `*` alone means `*:*`. A granted pattern matches a required permission when
//! each side of the colon is `*` or equal — except that a wildcard resource
//! never reaches a *management* resource ([`MANAGEMENT_RESOURCES`]: `tokens`,
//! `audit`): those are granted only by naming them (`tokens:*`, `audit:read`).
//! A caller may hand out a pattern only if one of its own patterns *covers*
//! it: every permission the new pattern matches is matched by the caller's
//! pattern too.

/// Resources about tokenops itself. No wildcard resource matches them.
pub const MANAGEMENT_RESOURCES: [&str; 2] = ["tokens", "audit"];

/// Whether `pattern` is about tokenops itself (`tokens:…`, `audit:…`) rather
/// than the API the tokens protect. Malformed patterns are neither.
///
/// ```
/// use tokenops_types::permission::is_management;
/// assert!(is_management("tokens:*"));
/// assert!(!is_management("*"));
/// assert!(!is_management("billing:read"));
/// ```
pub fn is_management(pattern: &str) -> bool {
    parse(pattern).is_ok_and(|(resource, _)| MANAGEMENT_RESOURCES.contains(&resource))
}

/// Why a permission string is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "permission must look like <resource>:<action> using letters, digits, '-', '_', '.' or '*' (e.g. tokens:read, billing:*)"
)]
pub struct PermissionError;

fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 64
        && (part == "*"
            || part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// Splits and validates a permission pattern; `*` becomes `("*", "*")`.
pub fn parse(pattern: &str) -> Result<(&str, &str), PermissionError> {
    if pattern == "*" {
        return Ok(("*", "*"));
    }
    let (resource, action) = pattern.split_once(':').ok_or(PermissionError)?;
    if valid_part(resource) && valid_part(action) {
        Ok((resource, action))
    } else {
        Err(PermissionError)
    }
}

fn part_matches(granted: &str, wanted: &str) -> bool {
    granted == "*" || granted == wanted
}

fn resource_matches(granted: &str, wanted: &str) -> bool {
    if MANAGEMENT_RESOURCES.contains(&wanted) {
        granted == wanted
    } else {
        part_matches(granted, wanted)
    }
}

/// Whether the granted pattern allows the concrete (or wildcard) permission `wanted`.
///
/// ```
/// use tokenops_types::permission::allows;
/// assert!(allows("*:read", "billing:read"));
/// assert!(!allows("tokens:*", "billing:read"));
/// assert!(allows("tokens:*", "tokens:create"));
/// assert!(!allows("*", "tokens:create"), "wildcards never reach management resources");
/// assert!(!allows("*:read", "audit:read"));
/// ```
pub fn allows(granted: &str, wanted: &str) -> bool {
    match (parse(granted), parse(wanted)) {
        (Ok((gr, ga)), Ok((wr, wa))) => resource_matches(gr, wr) && part_matches(ga, wa),
        _ => false,
    }
}

/// Whether any of `granted` allows `wanted`.
pub fn any_allows<'a>(granted: impl IntoIterator<Item = &'a str>, wanted: &str) -> bool {
    granted.into_iter().any(|g| allows(g, wanted))
}

/// Whether the set `granted` covers every pattern in `requested` (no escalation).
pub fn covers_all<'a, 'b>(
    granted: impl IntoIterator<Item = &'a str> + Clone,
    requested: impl IntoIterator<Item = &'b str>,
) -> bool {
    requested
        .into_iter()
        .all(|r| granted.clone().into_iter().any(|g| allows(g, r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_per_side() {
        assert!(allows("tokens:*", "tokens:create"));
        assert!(allows("*:read", "usage:read"));
        assert!(!allows("*:read", "usage:write"));
        assert!(allows("*", "*:read"));
        assert!(
            !allows("tokens:read", "tokens:*"),
            "a narrow grant does not cover a wildcard"
        );
        assert!(allows("billing:read", "billing:read"));
    }

    #[test]
    fn wildcards_never_reach_management_resources() {
        for granted in ["*", "*:*", "*:read"] {
            for wanted in ["tokens:read", "tokens:create", "audit:read", "tokens:*"] {
                assert!(
                    !allows(granted, wanted),
                    "{granted} must not allow {wanted}"
                );
            }
        }
        assert!(allows("tokens:*", "tokens:revoke"));
        assert!(allows("audit:read", "audit:read"));
        assert!(!allows("tokens:read", "audit:read"));
        assert!(is_management("audit:read") && !is_management("*:read"));
    }

    #[test]
    fn covering_is_what_escalation_checks_use() {
        let caller = ["tokens:*", "billing:read"];
        assert!(covers_all(
            caller.iter().copied(),
            ["tokens:read", "billing:read"]
        ));
        assert!(!covers_all(caller.iter().copied(), ["usage:read"]));
        assert!(!covers_all(caller.iter().copied(), ["*"]));
        assert!(covers_all(["*"].iter().copied(), ["*"]));
        assert!(
            !covers_all(["*"].iter().copied(), ["tokens:*"]),
            "a product wildcard does not cover management"
        );
        assert!(!covers_all(["*:read"].iter().copied(), ["*"]));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in [
            "",
            "tokens",
            ":read",
            "tokens:",
            "a:b:c",
            "to kens:read",
            "tokens:re ad",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
