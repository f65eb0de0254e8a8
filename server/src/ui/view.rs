//! What the pages show: tokens, dates and errors turned into text, and the
//! askama templates (compile-time checked, HTML-escaped) that lay them out.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Utc};
use tokenops_types::{AuditEvent, LABEL_MANAGED_BY, Resources, Token, TokenStatus};

use crate::error::ApiError;

/// A moment as the dashboard shows it: relative in the page, exact on hover.
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub exact: String,
    pub relative: String,
}

impl When {
    pub fn new(at: DateTime<Utc>, now: DateTime<Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            exact: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            relative: relative(at, now),
        }
    }
}

/// "3 days ago", "in 2 hours", "just now".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (at - now).num_seconds();
    let future = secs > 0;
    let s = secs.unsigned_abs();
    if s < 45 {
        return "just now".into();
    }
    let (n, unit) = match s {
        0..=5_399 => (s.div_ceil(60).max(1), "minute"),
        5_400..=129_599 => ((s + 1_800) / 3_600, "hour"),
        129_600..=3_887_999 => ((s + 43_200) / 86_400, "day"),
        3_888_000..=47_303_999 => ((s + 1_296_000) / 2_592_000, "month"),
        _ => ((s + 15_768_000) / 31_536_000, "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// Where a token is managed, from its `managed-by` label: `Some` for the
/// front ends that own their tokens (Terraform, the Kubernetes operator), which
/// the dashboard shows read-only.
pub fn managed_elsewhere(token: &Token) -> Option<&'static str> {
    match token.labels.get(LABEL_MANAGED_BY).map(String::as_str) {
        Some("terraform") => Some("Terraform"),
        Some("tokenops-operator") => Some("Kubernetes (tokenops-operator)"),
        _ => None,
    }
}

/// A token as the list and the detail page show it.
#[derive(Debug, Clone)]
pub struct TokenView {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub description: Option<String>,
    pub masked: String,
    /// The role, or the scopes.
    pub access: Vec<String>,
    /// `type:id` of each resource; empty means all.
    pub resources: Vec<String>,
    pub project: String,
    pub status: &'static str,
    pub labels: Vec<(String, String)>,
    pub created: When,
    pub updated: When,
    pub expires: Option<When>,
    pub last_used: Option<When>,
    pub regenerated: Option<When>,
    pub revoked: Option<When>,
    pub previous_valid_until: Option<When>,
    pub generation: u64,
    pub manager: String,
    pub manager_class: &'static str,
    /// Offered in the list's bulk revoke.
    pub selectable: bool,
}

impl TokenView {
    pub fn new(t: &Token, now: DateTime<Utc>) -> TokenView {
        let when = |d: DateTime<Utc>| When::new(d, now);
        let short_id = match t.id.char_indices().nth(10) {
            Some((i, _)) => format!("{}…", &t.id[..i]),
            None => t.id.clone(),
        };
        let mut access: Vec<String> = t.role.iter().cloned().collect();
        access.extend(t.scopes.iter().cloned());
        let resources = match &t.resources {
            Resources::List(list) => list
                .iter()
                .map(|r| format!("{}:{}", r.kind, r.id))
                .collect(),
            _ => Vec::new(),
        };
        let (manager, manager_class) = match (managed_elsewhere(t), t.labels.get(LABEL_MANAGED_BY))
        {
            (Some("Terraform"), _) => ("Terraform".to_string(), "managed"),
            (Some(_), _) => ("Kubernetes".to_string(), "managed"),
            (None, Some(other)) => (other.clone(), "managed"),
            (None, None) => ("A person".to_string(), "person"),
        };
        TokenView {
            id: t.id.clone(),
            short_id,
            name: t.name.clone(),
            description: t.description.clone().filter(|d| !d.is_empty()),
            masked: t.masked.clone(),
            access,
            resources,
            project: t.project.clone(),
            status: t.status.as_str(),
            labels: t
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            created: when(t.created_at),
            updated: when(t.updated_at),
            expires: t.expires_at.map(when),
            last_used: t.last_used_at.map(when),
            regenerated: t.regenerated_at.map(when),
            revoked: t.revoked_at.map(when),
            previous_valid_until: t.previous_valid_until.map(when),
            generation: t.generation,
            manager,
            manager_class,
            selectable: t.status != TokenStatus::Revoked && managed_elsewhere(t).is_none(),
        }
    }
}

/// An audit event as the pages show it.
pub struct EventView {
    pub at: When,
    pub action: String,
    pub actor: String,
    pub project: String,
    pub token_id: Option<String>,
    pub detail: String,
}

impl EventView {
    pub fn new(e: &AuditEvent, now: DateTime<Utc>) -> EventView {
        let detail = match &e.detail {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        EventView {
            at: When::new(e.at, now),
            action: e.action.clone(),
            actor: e.actor.clone(),
            project: e.project.clone(),
            token_id: e.token_id.clone(),
            detail,
        }
    }
}

/// Errors of a form: each next to the field it names, the rest at the top.
#[derive(Debug, Default)]
pub struct FieldErrors {
    by_field: BTreeMap<String, String>,
    general: Option<String>,
}

impl FieldErrors {
    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_none()
    }

    /// An error for one form field.
    pub fn add(&mut self, field: &str, text: impl Into<String>) {
        self.by_field
            .entry(field.to_string())
            .or_insert_with(|| text.into());
    }

    /// Places an error from the service next to the form field it names
    /// (`fields` maps the API's field names to the form's), or at the top.
    pub fn from_api(e: &ApiError, fields: &[(&str, &str)]) -> FieldErrors {
        let mut errors = FieldErrors::default();
        let api_field = e.field.as_deref().map(|f| {
            let end = f.find(['.', '[']).unwrap_or(f.len());
            &f[..end]
        });
        match api_field.and_then(|f| fields.iter().find(|(api, _)| *api == f)) {
            Some((_, form)) => errors.add(form, e.detail.clone()),
            None => errors.general = Some(e.detail.clone()),
        }
        errors
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }

    pub fn has(&self, field: &str) -> bool {
        self.by_field.contains_key(field)
    }

    pub fn general(&self) -> Option<&str> {
        self.general.as_deref()
    }
}

/// A one-line message at the top of a page after an action.
pub struct Notice {
    pub kind: &'static str,
    pub text: String,
}

/// The top bar of a signed-in page.
pub struct Chrome {
    pub token_id: String,
    pub role: Option<String>,
    pub project: String,
    pub csrf: String,
    pub section: &'static str,
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
pub struct SignInPage {
    pub chrome: Option<Chrome>,
    pub csrf: String,
    pub ended: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/message.html")]
pub struct MessagePage {
    pub chrome: Option<Chrome>,
    pub title: String,
    pub kind: &'static str,
    pub text: String,
}

/// The list's filters as entered, for the form and the pager links.
#[derive(Debug, Default, Clone)]
pub struct ListFilterForm {
    pub name: String,
    pub label: String,
    pub status: String,
    pub expiring_within: String,
    /// Any filter set (shows "Clear").
    pub any: bool,
    /// Not on the first page (shows "First page").
    pub paged: bool,
}

/// An error about one of the list's filters.
pub struct FilterError {
    pub field: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "ui/tokens.html")]
pub struct TokensPage {
    pub chrome: Option<Chrome>,
    pub csrf: String,
    pub notice: Option<Notice>,
    /// Set when the caller may not read the inventory: says why, instead of the table.
    pub denied: Option<String>,
    pub filter: ListFilterForm,
    pub filter_error: Option<FilterError>,
    pub status_options: Vec<(&'static str, &'static str)>,
    pub tokens: Vec<TokenView>,
    pub next_page: Option<String>,
    pub first_page: String,
}

/// One resource type's input on the create form.
#[derive(Debug, Clone)]
pub struct ResourceInput {
    pub kind: String,
    pub label: String,
    pub ids: String,
}

/// The create form as entered.
#[derive(Debug, Clone, Default)]
pub struct CreateForm {
    pub name: String,
    pub description: String,
    pub project: String,
    pub expiry_mode: String,
    pub lifetime: String,
    pub expires_on: String,
    pub access_mode: String,
    pub role: String,
    pub scopes: String,
    pub resources_mode: String,
    pub resources: Vec<ResourceInput>,
    pub labels: String,
}

/// A role offered on the create form.
pub struct RoleOption {
    pub name: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "ui/token_new.html")]
pub struct CreatePage {
    pub chrome: Option<Chrome>,
    pub csrf: String,
    /// One-time id of this form (a second post of it is refused).
    pub once: String,
    pub form: CreateForm,
    pub errors: FieldErrors,
    pub show_project: bool,
    pub roles: Vec<RoleOption>,
    pub lifetimes: Vec<(String, String)>,
    pub require_expiry: bool,
    pub max_lifetime: String,
    pub tomorrow: String,
    pub latest_date: String,
}

#[derive(Template)]
#[template(path = "ui/secret.html")]
pub struct SecretPage {
    pub chrome: Option<Chrome>,
    pub heading: &'static str,
    pub token_id: String,
    pub token_name: String,
    pub masked: String,
    pub secret: String,
    pub grace_note: Option<String>,
}

/// Which actions the detail page offers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offers {
    pub update: bool,
    pub regenerate: bool,
    pub revoke: bool,
    pub delete: bool,
}

/// The edit form as entered.
#[derive(Debug, Default, Clone)]
pub struct EditForm {
    pub name: String,
    pub description: String,
    pub labels: String,
}

#[derive(Template)]
#[template(path = "ui/token.html")]
pub struct TokenPage {
    pub chrome: Option<Chrome>,
    pub csrf: String,
    /// One-time id of the regenerate form.
    pub once: String,
    pub t: TokenView,
    pub notice: Option<Notice>,
    pub errors: FieldErrors,
    pub managed_in: Option<&'static str>,
    pub can: Offers,
    pub edit: EditForm,
    pub audit: Vec<EventView>,
    pub audit_denied: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
pub struct AuditPage {
    pub chrome: Option<Chrome>,
    pub denied: Option<String>,
    pub error: Option<String>,
    pub token_filter: String,
    pub actor_filter: String,
    pub filtered: bool,
    pub events: Vec<EventView>,
    pub next_page: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/confirm_revoke.html")]
pub struct ConfirmRevokePage {
    pub chrome: Option<Chrome>,
    pub csrf: String,
    pub heading: String,
    pub ids: Vec<String>,
}

/// Labels as the forms show them: one `key=value` per line.
pub fn labels_text(labels: &tokenops_types::Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_dates_read_naturally() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(relative(at(-10), now), "just now");
        assert_eq!(relative(at(-60), now), "1 minute ago");
        assert_eq!(relative(at(3 * 3600), now), "in 3 hours");
        assert_eq!(relative(at(-2 * 86_400), now), "2 days ago");
        assert_eq!(relative(at(30 * 86_400), now), "in 30 days");
        assert_eq!(relative(at(90 * 86_400), now), "in 3 months");
        assert_eq!(relative(at(365 * 86_400), now), "in 12 months");
        assert_eq!(relative(at(-800 * 86_400), now), "2 years ago");
    }
}
