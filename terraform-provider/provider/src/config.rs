//! The `provider "tokenops"` block: where the backend is and which token
//! the provider acts with. `configure` makes a `whoami` round trip, so a
//! wrong endpoint or token fails at the start of a run with a clear
//! diagnostic instead of in the middle of an apply.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tfplugin::{Diagnostic, Diagnostics, Result, Value};
use tokenops_client::{Client, Error, RetryPolicy};

use crate::backend::Connection;

/// Environment variable read when `endpoint` is not set.
pub const ENDPOINT_ENV: &str = "TOKENOPS_ENDPOINT";
/// Environment variable read when `token` is not set.
pub const TOKEN_ENV: &str = "TOKENOPS_TOKEN";

tfplugin::model! {
    /// The tokenops provider manages API tokens on a tokenops backend: tokens
    /// as resources (rotated in place before they expire), lookups as data
    /// sources, and short-lived tokens for one run as an ephemeral resource.
    ///
    /// The provider checks the endpoint and the token with a `whoami` call
    /// when it is configured, before planning anything.
    pub struct ProviderConfig {
        /// URL of the tokenops backend, e.g. `https://tokens.example.com`.
        /// Defaults to the `TOKENOPS_ENDPOINT` environment variable.
        #[tf(optional)]
        pub endpoint: Value<String>,
        /// Management token the provider authenticates with. It needs the
        /// `tokens:*` permissions (e.g. role `token-admin` or `owner`) and
        /// at least the permissions of every token it creates. Defaults to
        /// the `TOKENOPS_TOKEN` environment variable.
        #[tf(optional, sensitive)]
        pub token: Value<SecretString>,
        /// Project the tokens belong to. Defaults to the project of the
        /// provider's token, which is also the only project it may create
        /// tokens in.
        #[tf(optional)]
        pub project: Value<String>,
        /// PEM-encoded CA certificate(s) to trust for an `https` endpoint
        /// with a private CA, e.g. `file("ca.pem")`.
        #[tf(optional)]
        pub ca_cert: Value<String>,
    }
}

fn known_or_env(value: &Value<String>, env: &str) -> Option<String> {
    match value {
        Value::Known(v) if !v.trim().is_empty() => Some(v.clone()),
        _ => std::env::var(env).ok().filter(|v| !v.trim().is_empty()),
    }
}

/// Checks what can be checked without the network.
pub fn validate(config: &ProviderConfig, diags: &mut Diagnostics) {
    if let Value::Known(endpoint) = &config.endpoint
        && let Err(e) = Client::builder(endpoint.clone()).build()
    {
        diags.push(
            Diagnostic::error("Invalid endpoint")
                .with_detail(e.to_string())
                .with_attribute("endpoint"),
        );
    }
    if let Value::Known(pem) = &config.ca_cert
        && let Err(e) = Client::builder("https://localhost")
            .ca_cert_pem(pem.clone().into_bytes())
            .build()
    {
        diags.push(
            Diagnostic::error("Invalid CA certificate")
                .with_detail(e.to_string())
                .with_attribute("ca_cert"),
        );
    }
}

/// Resolves the configuration (block, then environment), builds the client
/// and proves it works with `whoami`.
pub async fn connect(config: ProviderConfig) -> Result<Connection> {
    for (name, unknown) in [
        ("endpoint", config.endpoint.is_unknown()),
        ("token", config.token.is_unknown()),
        ("project", config.project.is_unknown()),
        ("ca_cert", config.ca_cert.is_unknown()),
    ] {
        if unknown {
            return Err(Diagnostic::error("Provider configuration not known yet")
                .with_detail(format!(
                    "`{name}` depends on a value that is only known after apply; the tokenops \
                     provider needs it to plan. Use a value known at plan time (e.g. a variable \
                     or an ephemeral value)."
                ))
                .with_attribute(name)
                .into());
        }
    }
    let Some(endpoint) = known_or_env(&config.endpoint, ENDPOINT_ENV) else {
        return Err(Diagnostic::error("Missing tokenops endpoint")
            .with_detail(format!(
                "Set `endpoint` in the provider block or the {ENDPOINT_ENV} environment variable \
                 to the URL of the tokenops backend, e.g. https://tokens.example.com."
            ))
            .with_attribute("endpoint")
            .into());
    };
    let token = match &config.token {
        Value::Known(t) if !t.expose_secret().trim().is_empty() => Some(t.clone()),
        _ => std::env::var(TOKEN_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(SecretString::from),
    };
    let Some(token) = token else {
        return Err(Diagnostic::error("Missing tokenops token")
            .with_detail(format!(
                "Set `token` in the provider block or the {TOKEN_ENV} environment variable to a \
                 tokenops management token."
            ))
            .with_attribute("token")
            .into());
    };

    let ca_cert = config.ca_cert.known().cloned();
    let build = |retry: RetryPolicy| {
        let mut builder = Client::builder(endpoint.clone())
            .token(token.clone())
            .user_agent(concat!(
                "terraform-provider-tokenops/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(Duration::from_secs(5))
            .retry_policy(retry);
        if let Some(pem) = &ca_cert {
            builder = builder.ca_cert_pem(pem.clone().into_bytes());
        }
        builder.build()
    };
    let client = build(RetryPolicy::default()).map_err(|e| {
        let text = e.to_string();
        let attr = if text.contains("CA certificate") {
            "ca_cert"
        } else if text.contains("token") {
            "token"
        } else {
            "endpoint"
        };
        Diagnostics::from(
            Diagnostic::error("Invalid provider configuration")
                .with_detail(text)
                .with_attribute(attr),
        )
    })?;
    // The check retries once at most: a wrong endpoint should fail fast.
    let probe = build(RetryPolicy::default().max_retries(1)).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error("Invalid provider configuration").with_detail(e.to_string()),
        )
    })?;
    let whoami = whoami(&probe, &endpoint).await?;

    let project = match &config.project {
        Value::Known(p) if !p.is_empty() => {
            if *p != whoami.project {
                return Err(Diagnostic::error("Project does not match the provider's token")
                    .with_detail(format!(
                        "`project` is {p:?}, but the provider's token ({}) belongs to project {:?}. \
                         A token can only manage tokens in its own project: use a token of \
                         project {p:?}, or drop `project`.",
                        whoami.masked, whoami.project
                    ))
                    .with_attribute("project")
                    .into());
            }
            p.clone()
        }
        _ => whoami.project.clone(),
    };
    tracing::info!(endpoint = %endpoint, project = %project, caller = %whoami.masked, "configured tokenops provider");
    Ok(Connection {
        client,
        project,
        policy: Default::default(),
    })
}

/// The `whoami` round trip that proves endpoint and token work.
async fn whoami(probe: &Client, endpoint: &str) -> Result<tokenops_client::Token> {
    let Ok(result) = tokio::time::timeout(Duration::from_secs(30), probe.whoami()).await else {
        return Err(Diagnostic::error("Cannot reach the tokenops backend")
            .with_detail(format!("No answer from {endpoint} within 30 seconds."))
            .with_attribute("endpoint")
            .into());
    };
    result.map_err(|e| {
        let (summary, attr) = match &e {
            Error::Unauthorized { .. } => (
                "The tokenops backend rejected the provider's token",
                "token",
            ),
            Error::Forbidden { .. } => ("The provider's token may not call whoami", "token"),
            Error::Transport(_) => ("Cannot reach the tokenops backend", "endpoint"),
            _ => ("Cannot check the provider configuration", "endpoint"),
        };
        Diagnostics::from(
            Diagnostic::error(summary)
                .with_detail(format!(
                    "The provider checks its configuration with GET {endpoint}/v1/whoami: {e}"
                ))
                .with_attribute(attr),
        )
    })
}
