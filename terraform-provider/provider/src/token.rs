//! Resource `tokenops_api_token`: one API token managed as code.
//!
//! Plan behaviour, deliberately:
//!
//! | change | plan |
//! | --- | --- |
//! | `name`, `description`, `labels` | update in place (PATCH) |
//! | `role`, `scopes`, `resources`, `project` | replace (the backend keeps permissions immutable) |
//! | `lifetime`, `rotation_triggers`, rotation window reached | update in place that regenerates: same `id`, new `token`, `expires_at`, `masked` |
//! | `rotate_before`, `grace_period` | state only (a new `rotate_before` may open the rotation window) |
//!
//! A token revoked, or deleted, outside Terraform reads as gone, so the next
//! plan creates it again. Destroy revokes (the record stays for audit); with a
//! `grace_period` it revokes after that period, so a replacement overlaps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tfplugin::{Diagnostic, Diagnostics, Plan, Resource, Result, TfValue, Value};
use tokenops_client::rotation::{self, RenewBefore};
use tokenops_client::{
    CreateTokenRequest, LABEL_MANAGED_BY, ResourceRef, Resources, Token, TokenStatus,
    format_duration, parse_duration,
};
use tokio::sync::OnceCell;

use crate::backend::{
    Backend, api_error, labels_for_backend, labels_from_backend, managed_by, operator_owned,
    refuse_operator_token,
};
use crate::{MANAGED_BY_OPERATOR, validate};

tfplugin::model! {
    /// One resource a token is limited to.
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    pub struct ResourceSelector {
        /// Resource type, one of the backend's configured types (defaults:
        /// `device`, `device_group`, `site`).
        #[tf(required)]
        pub r#type: Value<String>,
        /// Identifier of the resource.
        #[tf(required)]
        pub id: Value<String>,
    }
}

tfplugin::model! {
    /// An API token on the tokenops backend, managed as code.
    ///
    /// The secret value is in `token`, known only after the token is created
    /// or regenerated (it cannot be recovered on import). Before the token
    /// expires — once its rotation window opens (`rotate_before`, by default
    /// when a third of the lifetime is left) — `terraform plan` proposes an
    /// in-place update that regenerates it: same `id`, new `token` and
    /// `expires_at`. Changing `lifetime` or `rotation_triggers` regenerates
    /// it the same way. Permissions (`role`, `scopes`, `resources`,
    /// `project`) cannot change on the backend, so changing them replaces
    /// the token. Destroying the resource revokes the token.
    ///
    /// Tokens created by Terraform carry the label `managed-by=terraform`
    /// (set by the provider, not shown in `labels`). Tokens labelled
    /// `managed-by=tokenops-operator` belong to the Kubernetes operator and
    /// cannot be imported or changed here.
    pub struct ApiToken {
        /// Display name, 1–128 characters. Updates in place.
        #[tf(required)]
        pub name: Value<String>,
        /// Free text, at most 1024 characters. Updates in place.
        #[tf(optional)]
        pub description: Value<String>,
        /// Project (tenant) of the token. Defaults to the provider's
        /// project. Changing it replaces the token.
        #[tf(optional, computed, requires_replace)]
        pub project: Value<String>,
        /// Name of a permission bundle defined by the backend (defaults:
        /// `owner`, `read-only`, `accounting`, `token-admin`). Changing it
        /// replaces the token.
        #[tf(optional, requires_replace)]
        pub role: Value<String>,
        /// Extra permissions `<resource>:<action>` (`*` wildcards allowed),
        /// e.g. `["usage:read"]`. A token needs `role`, `scopes` or both.
        /// Changing them replaces the token.
        #[tf(optional, requires_replace)]
        pub scopes: Value<Vec<String>>,
        /// The resources the token is limited to, as a set of objects
        /// `{ type = "site", id = "s-1" }`. Omitted means all resources.
        /// Changing it replaces the token.
        #[tf(optional, requires_replace, nested)]
        pub resources: Value<BTreeSet<ResourceSelector>>,
        /// How long each value of the token lives, as a duration such as
        /// `"720h"`, `"90d"` or `"1h30m"`. Required by the backend's default
        /// policy. Changing it regenerates the token in place with the new
        /// lifetime.
        #[tf(optional)]
        pub lifetime: Value<String>,
        /// Labels for selection and bulk revoke. Updates in place. The key
        /// `managed-by` is reserved for the provider.
        #[tf(optional)]
        pub labels: Value<BTreeMap<String, String>>,
        /// When to rotate: a duration before expiry (`"240h"`) or the share
        /// of the lifetime left (`"33%"`). Default: when a third of the
        /// lifetime is left. From that time on, `terraform plan` proposes
        /// regenerating the token in place.
        #[tf(optional)]
        pub rotate_before: Value<String>,
        /// How long the previous value keeps working after a regeneration
        /// (a duration, e.g. `"1h"`), so consumers can pick up the new one.
        /// Default: none, the old value stops working at once.
        #[tf(optional)]
        pub grace_period: Value<String>,
        /// Arbitrary values; any change regenerates the token in place (e.g.
        /// `{ rotated = "2026-11" }` to rotate on demand).
        #[tf(optional)]
        pub rotation_triggers: Value<BTreeMap<String, String>>,
        /// The token's id (`tok_…`); stable across regenerations.
        #[tf(computed)]
        pub id: Value<String>,
        /// The secret value. Known after create and after each regeneration;
        /// null after import (the backend never shows a value again).
        #[tf(computed, sensitive)]
        pub token: Value<SecretString>,
        /// The masked value, e.g. `tko_…a1B2`: safe to show and log.
        #[tf(computed)]
        pub masked: Value<String>,
        /// When the current value expires (RFC 3339).
        #[tf(computed)]
        pub expires_at: Value<String>,
        /// `active`, `expired` or `revoked`.
        #[tf(computed)]
        pub status: Value<String>,
        /// When the token was created (RFC 3339).
        #[tf(computed)]
        pub created_at: Value<String>,
        /// When the token was last regenerated (RFC 3339); null if never.
        #[tf(computed)]
        pub regenerated_at: Value<String>,
        /// When the current value becomes due for rotation (RFC 3339), by the
        /// rule shared with the tokenops operator; null for a token that
        /// never expires.
        #[tf(computed)]
        pub renewal_at: Value<String>,
    }
}

/// Formats a timestamp the way state stores it.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(v: &Value<String>) -> Option<DateTime<Utc>> {
    v.known()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn known_or_null<T>(v: Option<T>) -> Value<T> {
    v.map_or(Value::Null, Value::Known)
}

fn rotate_before_of(v: &Value<String>) -> Option<RenewBefore> {
    v.known().and_then(|s| s.parse().ok())
}

fn lifetime_of(v: &Value<String>) -> Option<std::time::Duration> {
    v.known().and_then(|s| parse_duration(s).ok())
}

/// Why an update regenerates the token, or `None` when it does not.
/// `prior` is the refreshed state, `planned` the proposed one.
pub fn regeneration_reason(
    prior: &ApiToken,
    planned: &ApiToken,
    now: DateTime<Utc>,
) -> Option<String> {
    if prior.rotation_triggers != planned.rotation_triggers {
        return Some("rotation_triggers changed".into());
    }
    if let (Some(old), Some(new)) = (lifetime_of(&prior.lifetime), lifetime_of(&planned.lifetime))
        && old != new
    {
        return Some(format!(
            "lifetime changed from {} to {}",
            format_duration(old),
            format_duration(new)
        ));
    }
    if prior.status.known().map(String::as_str) == Some("expired") {
        return Some("the token has expired".into());
    }
    let expires = parse_time(&prior.expires_at)?;
    let issued = parse_time(&prior.regenerated_at).or_else(|| parse_time(&prior.created_at))?;
    let rb = rotate_before_of(&planned.rotate_before);
    let renewal = rotation::renewal_time(issued, expires, rb.as_ref());
    (now >= renewal).then(|| format!("its rotation window opened at {}", timestamp(renewal)))
}

/// The renewal time for state.
fn renewal_at(
    issued: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    rotate_before: &Value<String>,
) -> Value<String> {
    match (issued, expires) {
        (Some(i), Some(e)) => Value::Known(timestamp(rotation::renewal_time(
            i,
            e,
            rotate_before_of(rotate_before).as_ref(),
        ))),
        _ => Value::Null,
    }
}

/// Private state kept with the resource: who manages the token on the
/// backend, so a plan can refuse changes to an operator's token.
fn private_for(token: &Token) -> Vec<u8> {
    managed_by(token).unwrap_or_default().as_bytes().to_vec()
}

/// Copies what the backend knows into `state`, keeping the user's spelling
/// of values that mean the same (null vs. empty, scope order).
pub fn merge(mut state: ApiToken, token: &Token) -> ApiToken {
    state.id = Value::Known(token.id.clone());
    state.name = Value::Known(token.name.clone());
    state.description = match token.description.as_deref() {
        Some(d) if !d.is_empty() => Value::Known(d.to_owned()),
        _ if state.description.known().is_some_and(String::is_empty) => Value::Known(String::new()),
        _ => Value::Null,
    };
    state.project = Value::Known(token.project.clone());
    state.role = known_or_null(token.role.clone());
    state.scopes = match &state.scopes {
        Value::Known(mine) if same_set(mine, &token.scopes) => Value::Known(mine.clone()),
        _ if token.scopes.is_empty() => Value::Null,
        _ => Value::Known(token.scopes.clone()),
    };
    state.resources = match &token.resources {
        Resources::All(_) => Value::Null,
        Resources::List(items) => Value::Known(
            items
                .iter()
                .map(|r| ResourceSelector {
                    r#type: Value::Known(r.kind.clone()),
                    id: Value::Known(r.id.clone()),
                })
                .collect(),
        ),
    };
    let labels = labels_from_backend(&token.labels);
    state.labels = if labels.is_empty() && !state.labels.is_known() {
        Value::Null
    } else {
        Value::Known(labels)
    };
    state.masked = Value::Known(token.masked.clone());
    state.expires_at = known_or_null(token.expires_at.map(timestamp));
    state.status = Value::Known(token.status.to_string());
    state.created_at = Value::Known(timestamp(token.created_at));
    state.regenerated_at = known_or_null(token.regenerated_at.map(timestamp));
    state.renewal_at = renewal_at(
        Some(rotation::issued_at(token)),
        token.expires_at,
        &state.rotate_before,
    );
    if state.token.is_unknown() {
        state.token = Value::Null;
    }
    state
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// The create request for a planned token.
pub fn create_request(planned: &ApiToken, default_project: &str) -> CreateTokenRequest {
    CreateTokenRequest {
        name: planned.name.known().cloned().unwrap_or_default(),
        description: planned
            .description
            .known()
            .filter(|d| !d.is_empty())
            .cloned(),
        project: Some(
            planned
                .project
                .known()
                .cloned()
                .unwrap_or_else(|| default_project.to_owned()),
        ),
        role: planned.role.known().cloned(),
        scopes: planned.scopes.known().cloned(),
        resources: planned.resources.known().map(|items| {
            Resources::list(items.iter().map(|r| {
                ResourceRef::new(
                    r.r#type.known().cloned().unwrap_or_default(),
                    r.id.known().cloned().unwrap_or_default(),
                )
            }))
        }),
        lifetime: lifetime_of(&planned.lifetime).map(format_duration),
        expires_at: None,
        labels: Some(labels_for_backend(planned.labels.known())),
    }
}

/// Reads after which a refresh lists the Terraform-managed tokens once
/// instead of fetching each token: a plan of many tokens then costs a few
/// list pages rather than one request per token, while a small
/// configuration never lists.
const PREFETCH_AFTER: usize = 3;

/// The tokens labelled `managed-by=terraform`, listed once per provider
/// process (Terraform starts a fresh process for each plan or apply walk,
/// and refreshes happen together at the start of a plan).
#[derive(Default)]
struct Prefetch {
    reads: AtomicUsize,
    listed: OnceCell<Option<HashMap<String, Token>>>,
}

/// `tokenops_api_token`.
pub struct ApiTokenResource {
    backend: Backend,
    prefetch: Arc<Prefetch>,
}

impl ApiTokenResource {
    /// The resource, using the provider's shared connection.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            prefetch: Arc::default(),
        }
    }

    /// The token `id` as the backend has it now; `None` when it is gone.
    async fn lookup(&self, id: &str) -> Result<Option<Token>> {
        let client = self.backend.client()?;
        if self.prefetch.reads.fetch_add(1, Ordering::Relaxed) >= PREFETCH_AFTER {
            let listed = self
                .prefetch
                .listed
                .get_or_init(|| async {
                    let list = client
                        .list_tokens()
                        .label(LABEL_MANAGED_BY, crate::MANAGED_BY_TERRAFORM)
                        .limit(500);
                    match list.all().await {
                        Ok(tokens) => Some(tokens.into_iter().map(|t| (t.id.clone(), t)).collect()),
                        Err(e) => {
                            tracing::debug!(error = %e, "listing tokens failed; reading one by one");
                            None
                        }
                    }
                })
                .await;
            // Tokens missing from the list (deleted, or not labelled) are fetched singly.
            if let Some(token) = listed.as_ref().and_then(|m| m.get(id)) {
                return Ok(Some(token.clone()));
            }
        }
        match client.get_token(id).await {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(api_error(&format!("Cannot read token {id}"), &e)),
        }
    }

    /// Reads a token for `action`, refusing tokens the operator manages.
    async fn fetch_owned(&self, id: &str, action: &str) -> Result<Option<Token>> {
        let client = self.backend.client()?;
        match client.get_token(id).await {
            Ok(token) => {
                refuse_operator_token(&token, action)?;
                Ok(Some(token))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(api_error(&format!("Cannot read token {id}"), &e)),
        }
    }
}

/// Checks a resource configuration (also what `validate` runs).
pub fn validate_config(config: &ApiToken, diags: &mut Diagnostics) {
    validate::name(&config.name, diags);
    validate::description(&config.description, diags);
    validate::scopes(&config.scopes, diags);
    validate::resources(&config.resources, diags);
    validate::labels("labels", &config.labels, diags);
    let lifetime = validate::duration("lifetime", &config.lifetime, diags);
    let grace = validate::duration("grace_period", &config.grace_period, diags);
    let rb = validate::rotate_before(&config.rotate_before, diags);
    validate::combinations(&config.role, &config.scopes, lifetime, rb, grace, diags);
}

fn id_of(state: &ApiToken) -> Result<String> {
    state.id.known().cloned().ok_or_else(|| {
        Diagnostic::error("Token id missing from state")
            .with_detail(
                "The state of this tokenops_api_token has no id. This is a bug in the provider.",
            )
            .into()
    })
}

/// Fills what apply learnt into the planned state: known planned values
/// stay (Terraform insists), unknown ones come from the backend.
fn fill_unknowns(mut planned: ApiToken, token: &Token, secret: Option<SecretString>) -> ApiToken {
    let fresh = merge(planned.clone(), token);
    macro_rules! fill {
        ($($field:ident),*) => {$(
            if planned.$field.is_unknown() {
                planned.$field = fresh.$field.clone();
            }
        )*};
    }
    fill!(
        id,
        project,
        masked,
        expires_at,
        status,
        created_at,
        regenerated_at,
        renewal_at,
        description,
        labels
    );
    if planned.token.is_unknown() {
        planned.token = known_or_null(secret);
    }
    planned
}

#[tfplugin::async_trait]
impl Resource for ApiTokenResource {
    type State = ApiToken;

    async fn validate(&self, config: &ApiToken, diags: &mut Diagnostics) {
        validate_config(config, diags);
    }

    async fn modify_plan(&self, plan: &mut Plan<ApiToken>, diags: &mut Diagnostics) {
        // Validation again, for values that were unknown at validate time,
        // and against what the server allows (its policy).
        validate_config(&plan.config, diags);
        if diags.has_errors() {
            return;
        }
        if let Ok(connection) = self.backend.get()
            && let Some(policy) = connection.policy().await
        {
            let mut quiet = Diagnostics::default();
            let lifetime = validate::duration("lifetime", &plan.config.lifetime, &mut quiet);
            validate::against_policy(
                policy,
                &plan.config.role,
                &plan.config.resources,
                lifetime,
                diags,
            );
            if diags.has_errors() {
                return;
            }
        }
        let Some(prior) = plan.prior.clone() else {
            if plan.planned.project.is_unknown()
                && let Ok(connection) = self.backend.get()
            {
                plan.planned.project = Value::Known(connection.project.clone());
            }
            return;
        };
        let planned = &mut plan.planned;
        let reason = regeneration_reason(&prior, planned, Utc::now());
        if let Some(reason) = &reason
            && plan.requires_replace.is_empty()
        {
            tracing::info!(id = ?prior.id.known(), %reason, "planning regeneration");
            planned.token = Value::Unknown;
            planned.masked = Value::Unknown;
            planned.expires_at = Value::Unknown;
            planned.regenerated_at = Value::Unknown;
            planned.renewal_at = Value::Unknown;
            planned.status = Value::Known(TokenStatus::Active.to_string());
        } else if prior.rotate_before != planned.rotate_before {
            let issued =
                parse_time(&prior.regenerated_at).or_else(|| parse_time(&prior.created_at));
            planned.renewal_at = renewal_at(
                issued,
                parse_time(&prior.expires_at),
                &planned.rotate_before,
            );
        }
        let changing = planned.to_dynamic() != prior.to_dynamic();
        if changing && plan.private == MANAGED_BY_OPERATOR.as_bytes() {
            let id = prior.id.known().cloned().unwrap_or_default();
            diags.push(operator_owned(&id, "change or rotate it from Terraform"));
        }
    }

    async fn read(&self, state: ApiToken, private: &mut Vec<u8>) -> Result<Option<ApiToken>> {
        let id = id_of(&state)?;
        match self.lookup(&id).await? {
            None => Ok(None),
            Some(token) if token.status == TokenStatus::Revoked => {
                tracing::info!(%id, "token was revoked outside Terraform; it reads as gone");
                Ok(None)
            }
            Some(token) => {
                *private = private_for(&token);
                Ok(Some(merge(state, &token)))
            }
        }
    }

    async fn create(
        &self,
        planned: ApiToken,
        _config: ApiToken,
        private: &mut Vec<u8>,
    ) -> Result<ApiToken> {
        let connection = self.backend.get()?;
        let request = create_request(&planned, &connection.project);
        let name = request.name.clone();
        let created = connection
            .client
            .create_token_from(request)
            .await
            .map_err(|e| api_error(&format!("Cannot create token {name:?}"), &e))?;
        *private = private_for(&created.token);
        Ok(fill_unknowns(planned, &created.token, Some(created.secret)))
    }

    async fn update(
        &self,
        prior: ApiToken,
        planned: ApiToken,
        _config: ApiToken,
        private: &mut Vec<u8>,
    ) -> Result<ApiToken> {
        let id = id_of(&prior)?;
        let client = self.backend.client()?;
        let Some(mut current) = self.fetch_owned(&id, "change it from Terraform").await? else {
            return Err(Diagnostic::error(format!("Token {id} no longer exists"))
                .with_detail("It was deleted after the plan was made. Run `terraform apply` again to create it anew.")
                .into());
        };

        let edits = prior.name != planned.name
            || prior.description != planned.description
            || prior.labels != planned.labels
            || managed_by(&current) != Some(crate::MANAGED_BY_TERRAFORM);
        if edits {
            let mut update = client
                .update_token(id.clone())
                .labels(labels_for_backend(planned.labels.known()));
            if let Value::Known(name) = &planned.name {
                update = update.name(name.clone());
            }
            update = match planned.description.known() {
                Some(d) if !d.is_empty() => update.description(d.clone()),
                _ => update.clear_description(),
            };
            current = update
                .await
                .map_err(|e| api_error(&format!("Cannot update token {id}"), &e))?;
        }

        let mut secret = None;
        if planned.token.is_unknown() {
            let mut regenerate = client.regenerate_token(id.clone());
            if let Some(lifetime) = lifetime_of(&planned.lifetime) {
                regenerate = regenerate.lifetime(lifetime);
            }
            if let Some(grace) = lifetime_of(&planned.grace_period) {
                regenerate = regenerate.grace_period(grace);
            }
            let renewed = regenerate
                .await
                .map_err(|e| api_error(&format!("Cannot regenerate token {id}"), &e))?;
            current = renewed.token;
            secret = Some(renewed.secret);
        }
        *private = private_for(&current);
        Ok(fill_unknowns(planned, &current, secret))
    }

    async fn delete(&self, prior: ApiToken, _private: &[u8]) -> Result<()> {
        let id = id_of(&prior)?;
        let Some(token) = self.fetch_owned(&id, "revoke it from Terraform").await? else {
            return Ok(());
        };
        if token.status == TokenStatus::Revoked {
            return Ok(());
        }
        // With a grace period the old value keeps working that long (a
        // replacement forced by a permission change overlaps with it).
        let grace = lifetime_of(&prior.grace_period).filter(|g| !g.is_zero());
        let client = self.backend.client()?;
        let revoked = match grace {
            Some(g) => client.revoke_token_after(&id, g).await,
            None => client.revoke_token(&id).await,
        };
        match revoked {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(api_error(&format!("Cannot revoke token {id}"), &e)),
        }
    }

    async fn import(&self, id: &str) -> Result<ApiToken> {
        let client = self.backend.client()?;
        let token = match client.get_token(id).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => {
                return Err(Diagnostic::error(format!("Cannot import token {id}"))
                    .with_detail(format!("The backend has no token with id {id:?}."))
                    .into());
            }
            Err(e) => return Err(api_error(&format!("Cannot import token {id}"), &e)),
        };
        refuse_operator_token(&token, "import it into Terraform")?;
        if token.status == TokenStatus::Revoked {
            return Err(Diagnostic::error(format!("Cannot import token {id}"))
                .with_detail("The token is revoked; a revoked token cannot be managed.")
                .into());
        }
        tfplugin::warn(
            Diagnostic::warning("Token value not imported").with_detail(format!(
                "The backend shows a token's value only when it is created or regenerated, so \
                 `token` stays null for the imported token {id} ({}). To get a value into \
                 Terraform, regenerate it: change `rotation_triggers`.",
                token.masked
            )),
        );
        let lifetime = token
            .expires_at
            .and_then(|e| (e - rotation::issued_at(&token)).to_std().ok())
            .map(|d| {
                // Whole seconds, rounded: the backend may store sub-second offsets.
                let secs = (d + std::time::Duration::from_millis(500)).as_secs();
                format_duration(std::time::Duration::from_secs(secs))
            });
        let empty = ApiToken {
            name: Value::Null,
            description: Value::Null,
            project: Value::Null,
            role: Value::Null,
            scopes: Value::Null,
            resources: Value::Null,
            lifetime: known_or_null(lifetime),
            labels: Value::Null,
            rotate_before: Value::Null,
            grace_period: Value::Null,
            rotation_triggers: Value::Null,
            id: Value::Null,
            token: Value::Null,
            masked: Value::Null,
            expires_at: Value::Null,
            status: Value::Null,
            created_at: Value::Null,
            regenerated_at: Value::Null,
            renewal_at: Value::Null,
        };
        Ok(merge(empty, &token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_json(extra: serde_json::Value) -> Token {
        let mut base = serde_json::json!({
            "id": "tok_1", "project": "default", "name": "ci", "status": "active",
            "masked": "tko_…abcd", "created_at": "2026-11-01T00:00:00Z",
            "updated_at": "2026-11-01T00:00:00Z", "expires_at": "2026-12-01T00:00:00Z",
            "generation": 0, "role": "owner",
            "labels": {"managed-by": "terraform", "team": "web"}
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn state() -> ApiToken {
        let mut s = ApiTokenResource::empty_for_tests();
        s.lifetime = Value::Known("720h".into());
        merge(s, &token_json(serde_json::json!({})))
    }

    impl ApiTokenResource {
        fn empty_for_tests() -> ApiToken {
            ApiToken::from_dynamic(
                tfplugin::Dynamic::object(Vec::<(&str, tfplugin::Dynamic)>::new()),
                &tfplugin::AttributePath::root(),
            )
            .unwrap()
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn merge_hides_managed_by_and_keeps_nulls() {
        let s = state();
        assert_eq!(
            s.labels,
            Value::Known(BTreeMap::from([("team".to_owned(), "web".to_owned())]))
        );
        assert!(s.scopes.is_null() && s.resources.is_null() && s.description.is_null());
        // Default rule: two thirds of 30 days.
        assert_eq!(
            s.renewal_at,
            Value::Known("2026-11-21T00:00:00.000Z".into())
        );
    }

    #[test]
    fn rotation_is_planned_once_the_window_opens() {
        let prior = state();
        let planned = prior.clone();
        assert_eq!(
            regeneration_reason(&prior, &planned, at("2026-11-20T23:59:59Z")),
            None
        );
        let reason = regeneration_reason(&prior, &planned, at("2026-11-21T00:00:00Z")).unwrap();
        assert!(reason.contains("rotation window"), "{reason}");

        let mut early = planned.clone();
        early.rotate_before = Value::Known("15d".into());
        assert!(regeneration_reason(&prior, &early, at("2026-11-16T00:00:00Z")).is_some());
    }

    #[test]
    fn lifetime_and_trigger_changes_regenerate_but_spelling_does_not() {
        let prior = state();
        let now = at("2026-11-02T00:00:00Z");
        let mut same = prior.clone();
        same.lifetime = Value::Known("30d".into());
        assert_eq!(regeneration_reason(&prior, &same, now), None);
        let mut longer = prior.clone();
        longer.lifetime = Value::Known("60d".into());
        assert!(
            regeneration_reason(&prior, &longer, now)
                .unwrap()
                .contains("lifetime")
        );
        let mut triggered = prior.clone();
        triggered.rotation_triggers =
            Value::Known(BTreeMap::from([("v".to_owned(), "2".to_owned())]));
        assert!(regeneration_reason(&prior, &triggered, now).is_some());
    }

    #[test]
    fn regeneration_counts_from_the_last_regeneration() {
        let regenerated = merge(
            state(),
            &token_json(serde_json::json!({
                "regenerated_at": "2026-11-20T00:00:00Z",
                "expires_at": "2026-12-20T00:00:00Z"
            })),
        );
        let now = at("2026-11-21T00:00:00Z");
        assert_eq!(regeneration_reason(&regenerated, &regenerated, now), None);
    }

    #[test]
    fn create_request_adds_the_ownership_label_and_defaults_the_project() {
        let mut planned = state();
        planned.project = Value::Unknown;
        let req = create_request(&planned, "acme");
        assert_eq!(req.project.as_deref(), Some("acme"));
        assert_eq!(req.lifetime.as_deref(), Some("720h"));
        assert_eq!(
            req.labels.unwrap().get("managed-by").map(String::as_str),
            Some("terraform")
        );
    }
}
