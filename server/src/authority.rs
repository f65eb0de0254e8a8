//! Who may do what: the one authority check every management action goes
//! through, whether it comes from the JSON API or the dashboard.
//!
//! The rule (DESIGN.md, "Who may do what"): a caller acts on a token only when
//! it could have created that token itself —
//!
//! 1. it holds the management permission of the action (`tokens:create`, …);
//! 2. the token's product permissions are within the caller's permissions
//!    plus its role's grants, and the token's management permissions within
//!    the caller's own permissions (grants never hold management permissions);
//! 3. the token's resources are within the caller's resources;
//! 4. the token is in the caller's project, or the caller is an organisation
//!    token (project `*`).
//!
//! A token may always regenerate and revoke itself. Reading needs only
//! `tokens:read` and the project. Expiry limits (the caller's own remaining
//! lifetime) are [`check_expiry`].

use tokenops_types::{ORGANISATION_PROJECT, Resources, permission};

use crate::config::{OWNER_PERMISSIONS, Policy};
use crate::error::ApiError;
use crate::verify::Credential;

/// A management action on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Regenerate,
    Revoke,
    Delete,
}

impl Action {
    /// The management permission the action needs.
    pub fn permission(self) -> &'static str {
        match self {
            Action::Read => "tokens:read",
            Action::Create => "tokens:create",
            Action::Update => "tokens:update",
            Action::Regenerate => "tokens:regenerate",
            Action::Revoke => "tokens:revoke",
            Action::Delete => "tokens:delete",
        }
    }

    /// The verb, as audit events name it (`token.<verb>`).
    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Regenerate => "regenerate",
            Action::Revoke => "revoke",
            Action::Delete => "delete",
        }
    }
}

/// What the authority check needs to know about the token acted on.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `None` for a token not created yet.
    pub id: Option<&'a str>,
    pub project: &'a str,
    pub role: Option<&'a str>,
    pub scopes: &'a [String],
    pub resources: &'a Resources,
}

impl<'a> Target<'a> {
    /// The target described by a stored token.
    pub fn of(row: &'a crate::store::TokenRow) -> Target<'a> {
        Target {
            id: Some(&row.id),
            project: &row.project,
            role: row.role.as_deref(),
            scopes: &row.scopes,
            resources: &row.resources,
        }
    }
}

/// Whether the caller is an organisation token (acts in every project).
pub fn is_organisation(caller: &Credential) -> bool {
    &*caller.project == ORGANISATION_PROJECT
}

/// Whether the caller may see tokens and audit events of `project`.
pub fn sees_project(caller: &Credential, project: &str) -> bool {
    is_organisation(caller) || *caller.project == *project
}

/// Whether the caller holds every permission of an owner.
pub fn is_owner(caller: &Credential) -> bool {
    OWNER_PERMISSIONS.iter().all(|p| caller.allows(p))
}

/// Requires a permission the caller must hold itself (e.g. `audit:read`).
pub fn require(caller: &Credential, permission: &str) -> Result<(), ApiError> {
    if caller.allows(permission) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this token lacks the permission {permission}"
        )))
    }
}

/// The one authority check: may `caller` do `action` to `target`?
/// The error is a `403` naming the rule (and the field, where one is to blame).
pub fn check(
    policy: &Policy,
    caller: &Credential,
    action: Action,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    let is_self = target.id.is_some_and(|id| id == &*caller.id);
    if is_self && matches!(action, Action::Regenerate | Action::Revoke) {
        return Ok(());
    }
    require(caller, action.permission())?;
    if !sees_project(caller, target.project) {
        return Err(ApiError::escalation(
            "project",
            "this token can only act on tokens of its own project",
        ));
    }
    if action == Action::Read {
        return Ok(());
    }
    within_permissions(policy, caller, target)?;
    if !caller.resources.covers(target.resources) {
        return Err(ApiError::escalation(
            "resources",
            "the token's resources are not all within the calling token's resources",
        ));
    }
    Ok(())
}

/// Rule 2: every permission of the target is within what the caller holds
/// (management permissions) or holds or may grant (product permissions).
fn within_permissions(
    policy: &Policy,
    caller: &Credential,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    let held = caller.permissions.iter().map(String::as_str);
    let grantable = held.clone().chain(caller.grants.iter().map(String::as_str));
    let wanted = policy.effective_permissions(target.role, target.scopes);
    for p in &wanted {
        let ok = if permission::is_management(p) {
            permission::covers_all(held.clone(), [p.as_str()])
        } else {
            permission::covers_all(grantable.clone(), [p.as_str()])
        };
        if !ok {
            let from_role = target
                .role
                .and_then(|r| policy.roles.get(r))
                .is_some_and(|r| r.permissions.contains(p));
            let field = if from_role { "role" } else { "scopes" };
            return Err(ApiError::escalation(
                field,
                format!("{p} is not within the calling token's permissions or grants"),
            ));
        }
    }
    Ok(())
}

/// On create and regenerate: a token issued by a caller that is not an owner
/// ends no later than the caller does (a token cannot outlive its maker's
/// authority). `expires_at` is the new expiry in µs, `None` for never.
/// A token regenerating itself is exempt: that is how it renews.
pub fn check_expiry(
    caller: &Credential,
    target_id: Option<&str>,
    expires_at: Option<i64>,
) -> Result<(), ApiError> {
    let is_self = target_id.is_some_and(|id| id == &*caller.id);
    let Some(limit) = caller.expires_at else {
        return Ok(());
    };
    if is_self || is_owner(caller) {
        return Ok(());
    }
    if expires_at.is_none_or(|at| at > limit) {
        return Err(ApiError::escalation(
            "lifetime",
            "the token would outlive the calling token: give a shorter lifetime or use an owner token",
        ));
    }
    Ok(())
}
