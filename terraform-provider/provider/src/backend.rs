//! The connection `configure` establishes and every resource uses, and the
//! translation of client errors into Terraform diagnostics.

use std::sync::{Arc, OnceLock};

use tfplugin::{AttributePath, Diagnostic, Diagnostics, Result};
use tokenops_client::{Client, Error, LABEL_MANAGED_BY, Labels, PolicyDocument, Token};

use crate::{MANAGED_BY_OPERATOR, MANAGED_BY_TERRAFORM};

/// A configured connection to the backend.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The API client, authenticated with the provider's token.
    pub client: Client,
    /// `project` from the provider block (or the token's own project).
    pub project: String,
    /// The server's policy (`GET /v1/policy`), read once per provider process
    /// for plan-time checks.
    pub policy: Arc<tokio::sync::OnceCell<Option<PolicyDocument>>>,
}

impl Connection {
    /// The server's policy, fetched on first use. `None` when the server
    /// cannot say (an older server, or it is unreachable at plan time): then
    /// the plan-time checks that need it are left to apply.
    pub async fn policy(&self) -> Option<&PolicyDocument> {
        self.policy
            .get_or_init(|| async {
                match self.client.policy().await {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::debug!(error = %e, "no policy for plan-time checks");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

/// Shared between the provider (which fills it in `configure`) and its
/// resources (which read it). Terraform configures a provider process once.
#[derive(Debug, Clone, Default)]
pub struct Backend(Arc<OnceLock<Connection>>);

impl Backend {
    /// Stores the connection made by `configure`.
    pub fn set(&self, connection: Connection) {
        // A second configure in one process does not happen with Terraform;
        // keeping the first connection is the safe answer if it does.
        let _ = self.0.set(connection);
    }

    /// The connection, or an error diagnostic when `configure` has not run.
    pub fn get(&self) -> Result<&Connection> {
        self.0.get().ok_or_else(|| {
            Diagnostic::error("Provider not configured")
                .with_detail(
                    "The tokenops provider was used before it was configured. \
                     This is a bug in Terraform or the provider.",
                )
                .into()
        })
    }

    /// The client of the connection.
    pub fn client(&self) -> Result<&Client> {
        Ok(&self.get()?.client)
    }
}

/// An error diagnostic for a failed call: `action` says what was tried
/// (e.g. "Cannot create token"). Validation errors naming a request field
/// point at the attribute of the same name.
pub fn api_error(action: &str, err: &Error) -> Diagnostics {
    let mut detail = err.to_string();
    match err {
        Error::Unauthorized { .. } => detail.push_str(
            "\n\nThe backend did not accept the provider's token: check `token` / TOKENOPS_TOKEN.",
        ),
        Error::Forbidden { .. } => detail.push_str(
            "\n\nThe provider's token may not do this. A token acts only on tokens it could have \
             created itself: permissions within its own (or its role's grants — token-admin \
             grants every product permission), resources within its own, in its own project, \
             and — unless it is an owner — ending no later than it does.",
        ),
        Error::Transport(_) => detail
            .push_str("\n\nCheck `endpoint` / TOKENOPS_ENDPOINT and that the backend is running."),
        _ => {}
    }
    let mut diag = Diagnostic::error(action).with_detail(detail);
    if let Error::Validation {
        field: Some(field), ..
    } = err
    {
        let top = field
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_owned();
        if !top.is_empty() {
            diag = diag.with_attribute(AttributePath::new(top));
        }
    }
    diag.into()
}

/// The `managed-by` label of a token, if any.
pub fn managed_by(token: &Token) -> Option<&str> {
    token.labels.get(LABEL_MANAGED_BY).map(String::as_str)
}

/// Refuses to touch a token the Kubernetes operator manages (DESIGN:
/// "neither front end rotates, edits or revokes a token that the other
/// manages").
pub fn refuse_operator_token(token: &Token, action: &str) -> Result<()> {
    if managed_by(token) == Some(MANAGED_BY_OPERATOR) {
        return Err(operator_owned(&token.id, action).into());
    }
    Ok(())
}

/// The diagnostic for a token that belongs to the Kubernetes operator.
pub fn operator_owned(id: &str, action: &str) -> Diagnostic {
    Diagnostic::error(format!("Token {id} is managed by the tokenops operator"))
        .with_detail(format!(
            "Cannot {action}: token {id} carries the label {LABEL_MANAGED_BY}={MANAGED_BY_OPERATOR}, \
             so its lifecycle (rotation, edits, revocation) belongs to the Kubernetes operator and its \
             ApiToken resource. Manage it there, or remove it from Terraform with \
             `terraform state rm` (this leaves the token untouched)."
        ))
}

/// The labels sent to the backend: the user's plus `managed-by=terraform`.
pub fn labels_for_backend(user: Option<&Labels>) -> Labels {
    let mut labels = user.cloned().unwrap_or_default();
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_TERRAFORM.to_owned());
    labels
}

/// The labels shown in state: the backend's without `managed-by`, which the
/// provider manages itself.
pub fn labels_from_backend(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| k.as_str() != LABEL_MANAGED_BY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_by_is_added_for_the_backend_and_hidden_from_state() {
        let user = Labels::from([("team".to_owned(), "web".to_owned())]);
        let sent = labels_for_backend(Some(&user));
        assert_eq!(
            sent.get("managed-by").map(String::as_str),
            Some("terraform")
        );
        assert_eq!(labels_from_backend(&sent), user);
        assert_eq!(
            labels_for_backend(None),
            Labels::from([("managed-by".to_owned(), "terraform".to_owned())])
        );
    }

    #[test]
    fn validation_errors_point_at_the_attribute_named_by_the_server() {
        let err = Error::Validation {
            status: 422,
            field: Some("resources[1].type".into()),
            code: "invalid_field".into(),
            detail: "unknown type".into(),
        };
        let diags = api_error("Cannot create token", &err);
        let diag = diags.iter().next().unwrap();
        assert_eq!(diag.attribute, Some(AttributePath::new("resources")));
    }
}
