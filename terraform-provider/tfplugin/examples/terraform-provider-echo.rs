//! `terraform-provider-echo`: a small provider that exercises every part of
//! tfplugin under the real Terraform binary (see `tests/terraform_e2e.rs`).
//!
//! - resource `echo_message`: echoes `input` into computed `output`, counts
//!   updates in `revision`, takes a write-only `password` (only its length
//!   is kept) and replaces itself when `group` changes; schema version 1,
//!   upgrading version-0 state that called `input` `text`;
//! - data source `echo_upper`: upper-cases `input`;
//! - ephemeral resource `echo_secret`: makes a value that exists only for
//!   one run; `open`/`close` are appended to the provider's `journal` file.
//!
//! It is built as a cargo example: `cargo build --example terraform-provider-echo`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tfplugin::{
    ConfigureRequest, DataSource, Diagnostic, Diagnostics, EphemeralResource, Opened, Plan,
    Provider, Registry, Resource, Result, Value,
};

tfplugin::model! {
    /// The echo provider.
    pub struct EchoConfig {
        /// Prepended to every `output`.
        #[tf(optional)]
        pub prefix: Option<String>,
        /// File that ephemeral `open`/`close` calls are appended to.
        #[tf(optional)]
        pub journal: Option<String>,
    }
}

/// What `configure` sets and the resources read.
#[derive(Default)]
struct Settings {
    prefix: String,
    journal: Option<String>,
}

type Shared = Arc<Mutex<Settings>>;

struct EchoProvider {
    settings: Shared,
}

#[tfplugin::async_trait]
impl Provider for EchoProvider {
    type Config = EchoConfig;

    fn register(&self, registry: &mut Registry) {
        registry
            .resource(
                "echo_message",
                MessageResource {
                    settings: self.settings.clone(),
                },
            )
            .data_source("echo_upper", UpperDataSource)
            .ephemeral_resource(
                "echo_secret",
                SecretEphemeral {
                    settings: self.settings.clone(),
                },
            );
    }

    async fn validate(&self, config: &EchoConfig, diags: &mut Diagnostics) {
        if config.prefix.as_deref().is_some_and(|p| p.len() > 16) {
            diags.push(
                Diagnostic::error("Prefix too long")
                    .with_detail("At most 16 characters.")
                    .with_attribute("prefix"),
            );
        }
    }

    async fn configure(&self, request: ConfigureRequest<EchoConfig>) -> Result<()> {
        tracing::info!(terraform = %request.terraform_version, "configuring echo provider");
        let mut settings = self.settings.lock().expect("settings lock");
        settings.prefix = request.config.prefix.unwrap_or_default();
        settings.journal = request.config.journal;
        Ok(())
    }
}

tfplugin::model! {
    /// Echoes its input.
    pub struct Message {
        /// Text to echo.
        #[tf(required)]
        pub input: Value<String>,
        /// Changing the group replaces the message.
        #[tf(optional, requires_replace)]
        pub group: Value<String>,
        /// A secret that is used on create and never stored.
        #[tf(optional, sensitive, write_only)]
        pub password: Value<String>,
        /// Length of the password given at create time.
        #[tf(computed)]
        pub password_length: Value<i64>,
        /// Identifier.
        #[tf(computed)]
        pub id: Value<String>,
        /// The provider prefix followed by `input`.
        #[tf(computed)]
        pub output: Value<String>,
        /// Number of in-place updates.
        #[tf(computed)]
        pub revision: Value<i64>,
    }
}

struct MessageResource {
    settings: Shared,
}

impl MessageResource {
    fn output(&self, input: &Value<String>) -> Value<String> {
        let prefix = self.settings.lock().expect("settings lock").prefix.clone();
        match input {
            Value::Known(s) => Value::Known(format!("{prefix}{s}")),
            _ => Value::Unknown,
        }
    }
}

#[tfplugin::async_trait]
impl Resource for MessageResource {
    type State = Message;

    fn schema_version(&self) -> i64 {
        1
    }

    async fn validate(&self, config: &Message, diags: &mut Diagnostics) {
        if config.input.known().is_some_and(|s| s.is_empty()) {
            diags.push(Diagnostic::error("Empty input").with_attribute("input"));
        }
    }

    async fn modify_plan(&self, plan: &mut Plan<Message>, _diags: &mut Diagnostics) {
        if let Some(prior) = &plan.prior
            && prior.input != plan.planned.input
        {
            plan.planned.output = self.output(&plan.planned.input);
            plan.planned.revision = Value::Unknown;
        }
    }

    async fn read(&self, state: Message, _private: &mut Vec<u8>) -> Result<Option<Message>> {
        Ok(Some(state))
    }

    async fn create(
        &self,
        mut planned: Message,
        config: Message,
        _: &mut Vec<u8>,
    ) -> Result<Message> {
        if config.input.known().map(String::as_str) == Some("panic") {
            panic!("secret-in-panic-payload");
        }
        let length = config.password.known().map_or(0, |p| p.len() as i64);
        planned.password_length = Value::Known(length);
        planned.id = Value::Known(format!(
            "msg-{}",
            config.input.known().cloned().unwrap_or_default()
        ));
        planned.output = self.output(&planned.input);
        planned.revision = Value::Known(0);
        Ok(planned)
    }

    async fn update(
        &self,
        prior: Message,
        mut planned: Message,
        _: Message,
        _: &mut Vec<u8>,
    ) -> Result<Message> {
        planned.output = self.output(&planned.input);
        let revision = prior.revision.known().copied().unwrap_or(0);
        if prior.input != planned.input {
            tfplugin::warn(
                Diagnostic::warning("Message changed")
                    .with_detail("Consumers of the old output see the new one from now on.")
                    .with_attribute("input"),
            );
        }
        planned.revision = Value::Known(if prior.input != planned.input {
            revision + 1
        } else {
            revision
        });
        Ok(planned)
    }

    async fn delete(&self, _prior: Message, _private: &[u8]) -> Result<()> {
        Ok(())
    }

    async fn import(&self, id: &str) -> Result<Message> {
        let input = id.strip_prefix("msg-").unwrap_or(id).to_owned();
        Ok(Message {
            output: self.output(&Value::Known(input.clone())),
            input: Value::Known(input),
            group: Value::Null,
            password: Value::Null,
            password_length: Value::Known(0),
            id: Value::Known(id.to_owned()),
            revision: Value::Known(0),
        })
    }

    async fn upgrade_state(
        &self,
        version: i64,
        mut state: serde_json::Value,
    ) -> Result<serde_json::Value> {
        match version {
            0 => {
                // Version 0 called `input` `text`.
                if let Some(obj) = state.as_object_mut()
                    && let Some(text) = obj.remove("text")
                {
                    obj.insert("input".into(), text);
                }
                Ok(state)
            }
            other => Err(Diagnostic::error(format!("Cannot upgrade state version {other}")).into()),
        }
    }
}

tfplugin::model! {
    /// Upper-cases its input.
    pub struct Upper {
        /// Text to convert.
        #[tf(required)]
        pub input: String,
        /// The upper-cased text.
        #[tf(computed)]
        pub result: Value<String>,
    }
}

struct UpperDataSource;

#[tfplugin::async_trait]
impl DataSource for UpperDataSource {
    type State = Upper;

    async fn read(&self, mut config: Upper) -> Result<Upper> {
        config.result = Value::Known(config.input.to_uppercase());
        Ok(config)
    }
}

tfplugin::model! {
    /// A value that exists only during one Terraform run.
    pub struct Secret {
        /// Name of the secret.
        #[tf(required)]
        pub name: String,
        /// The secret value.
        #[tf(computed, sensitive)]
        pub value: Value<String>,
    }
}

struct SecretEphemeral {
    settings: Shared,
}

impl SecretEphemeral {
    fn journal(&self, line: &str) -> Result<()> {
        let path = self.settings.lock().expect("settings lock").journal.clone();
        let Some(path) = path else { return Ok(()) };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Diagnostic::error("Cannot write journal").with_detail(e.to_string()))?;
        writeln!(file, "{line}").map_err(|e| {
            Diagnostics::from(Diagnostic::error("Cannot write journal").with_detail(e.to_string()))
        })
    }
}

#[tfplugin::async_trait]
impl EphemeralResource for SecretEphemeral {
    type State = Secret;

    async fn open(&self, mut config: Secret) -> Result<Opened<Secret>> {
        self.journal(&format!("open {}", config.name))?;
        let value = format!("s3cr3t-{}", config.name);
        let private = config.name.clone().into_bytes();
        config.value = Value::Known(value);
        Ok(Opened {
            result: config,
            private: Some(private),
            renew_at: None,
        })
    }

    async fn close(&self, private: Option<Vec<u8>>) -> Result<()> {
        let name = String::from_utf8_lossy(private.as_deref().unwrap_or_default()).into_owned();
        self.journal(&format!("close {name}"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let provider = EchoProvider {
        settings: Shared::default(),
    };
    match tfplugin::serve(provider).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
