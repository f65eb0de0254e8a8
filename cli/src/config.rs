//! Which server to call and with which credentials.
//!
//! Each setting is taken from the first place that has it: the command-line
//! flag, then the environment (`TOKENOPS_ENDPOINT`, `TOKENOPS_TOKEN`,
//! `TOKENOPS_CA_CERT`), then the context in use from the config file
//! (`$XDG_CONFIG_HOME/tokenops/config.toml`, by default
//! `~/.config/tokenops/config.toml`):
//!
//! ```toml
//! current-context = "local"
//!
//! [contexts.local]
//! endpoint = "http://127.0.0.1:8080"
//! token-file = "~/.config/tokenops/local.token"
//!
//! [contexts.prod]
//! endpoint = "https://tokens.example.com"
//! token-command = "pass show tokenops/prod"
//! ca-cert = "/etc/ssl/certs/example-ca.pem"
//! timeout = "10s"
//! ```
//!
//! The context in use is `--context`, else `TOKENOPS_CONTEXT`, else the file's
//! `current-context`. A token is never written in the file itself: it comes
//! from a file or from a command's standard output (a password manager), and is
//! read only by commands that need one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokenops_client::secrecy::{ExposeSecret, SecretString};

use crate::Failure;
use crate::args::GlobalArgs;

/// The request time limit when nothing sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The config file: named contexts and the one in use.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// The context used when neither `--context` nor `TOKENOPS_CONTEXT` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// Contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One server and how to authenticate to it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    /// Base URL of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A file holding the token (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A shell command that prints the token on its standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_command: Option<String>,
    /// PEM file with an extra CA certificate to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Time limit for each request, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Where the config file is: `$XDG_CONFIG_HOME/tokenops/config.toml`, or
/// `~/.config/tokenops/config.toml` when `XDG_CONFIG_HOME` is unset or not absolute.
pub fn config_path() -> Option<PathBuf> {
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("tokenops").join("config.toml"))
}

/// The config file, if there is one.
pub fn load() -> Result<Option<(PathBuf, ConfigFile)>, Failure> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read config file {}: {e}",
                path.display()
            )));
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        Failure::Usage(format!(
            "config file {}: {} (keys: current-context, and per context endpoint, token-file, token-command, ca-cert, timeout)",
            path.display(),
            e.message()
        ))
    })?;
    Ok(Some((path, file)))
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// `~/x` is under the home directory; a relative path is relative to the config file's folder.
fn expand(path: &Path, config_dir: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = home()
    {
        return home.join(rest);
    }
    if path.is_relative() {
        config_dir.join(path)
    } else {
        path.to_path_buf()
    }
}

/// The context chosen for this run and where it comes from.
pub struct Chosen {
    pub name: String,
    pub context: Context,
    pub config_dir: PathBuf,
}

/// The context named by `--context`, `TOKENOPS_CONTEXT` or the file's
/// `current-context`, if any. Naming a context that does not exist is an error.
pub fn choose(global: &GlobalArgs) -> Result<Option<Chosen>, Failure> {
    let asked = global
        .context
        .clone()
        .map(|c| (c, "--context"))
        .or_else(|| env("TOKENOPS_CONTEXT").map(|c| (c, "TOKENOPS_CONTEXT")));
    let loaded = load()?;
    let Some((path, file)) = loaded else {
        if let Some((name, from)) = asked {
            let where_ = config_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.config/tokenops/config.toml".into());
            return Err(Failure::Usage(format!(
                "{from} names context {name:?}, but there is no config file at {where_}"
            )));
        }
        return Ok(None);
    };
    let (name, from) = match asked {
        Some(asked) => asked,
        None => match &file.current_context {
            Some(c) => (c.clone(), "current-context"),
            None => return Ok(None),
        },
    };
    let Some(context) = file.contexts.get(&name) else {
        let known: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
        return Err(Failure::Usage(format!(
            "{from} names context {name:?}, which {} does not define (contexts: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    Ok(Some(Chosen {
        name,
        context: context.clone(),
        config_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    }))
}

/// Everything needed to build a client.
pub struct Settings {
    pub endpoint: String,
    pub token: Option<SecretString>,
    pub ca_cert: Option<PathBuf>,
    pub timeout: Duration,
}

/// Resolves the settings of this run. The token is read (from a file or a
/// command) only when `need_token` is set.
pub fn resolve(
    global: &GlobalArgs,
    need_token: bool,
    stderr: &mut dyn Write,
) -> Result<Settings, Failure> {
    let chosen = choose(global)?;
    let ctx = chosen.as_ref().map(|c| &c.context);
    let ctx_name = chosen.as_ref().map(|c| c.name.as_str()).unwrap_or("");

    // A context named on purpose whose values the environment replaces is
    // worth a word: the environment wins, but the user may not expect it.
    let explicit = global.context.is_some() || env("TOKENOPS_CONTEXT").is_some();
    let mut overridden = Vec::new();

    let endpoint = match (&global.endpoint, env("TOKENOPS_ENDPOINT")) {
        (Some(flag), _) => flag.clone(),
        (None, Some(from_env)) => {
            if ctx.is_some_and(|c| c.endpoint.is_some()) {
                overridden.push("TOKENOPS_ENDPOINT");
            }
            from_env
        }
        (None, None) => ctx.and_then(|c| c.endpoint.clone()).ok_or_else(|| {
            Failure::Usage(match &chosen {
                Some(c) => format!("context {:?} has no endpoint", c.name),
                None => "no server given: set TOKENOPS_ENDPOINT, pass --endpoint, or add a context to the config file (see `tokenops context --help`)".to_string(),
            })
        })?,
    };
    check_endpoint(&endpoint)?;

    let token = match (&global.token, env("TOKENOPS_TOKEN")) {
        (Some(flag), _) => Some(flag.clone()).filter(|t| !t.expose_secret().trim().is_empty()),
        (None, Some(from_env)) => {
            if ctx.is_some_and(|c| c.token_file.is_some() || c.token_command.is_some()) {
                overridden.push("TOKENOPS_TOKEN");
            }
            Some(SecretString::from(from_env))
        }
        (None, None) => match &chosen {
            Some(c) if need_token => context_token(c)?,
            _ => None,
        },
    };
    if token.is_none() && need_token {
        return Err(Failure::Usage(match &chosen {
            Some(c) => format!(
                "no token given: context {:?} has neither token-file nor token-command; set TOKENOPS_TOKEN or add one",
                c.name
            ),
            None => "no token given: set TOKENOPS_TOKEN (preferred) or pass --token".to_string(),
        }));
    }

    let ca_cert = match (&global.ca_cert, env("TOKENOPS_CA_CERT")) {
        (Some(flag), _) => Some(flag.clone()),
        (None, Some(from_env)) => Some(PathBuf::from(from_env)),
        (None, None) => chosen
            .as_ref()
            .and_then(|c| c.context.ca_cert.as_ref().map(|p| expand(p, &c.config_dir))),
    };

    let timeout = match (global.timeout, ctx.and_then(|c| c.timeout.as_deref())) {
        (Some(t), _) => t,
        (None, Some(text)) => tokenops_client::parse_duration(text)
            .map_err(|e| Failure::Usage(format!("context {ctx_name:?}: timeout: {e}")))?,
        (None, None) => DEFAULT_TIMEOUT,
    };

    if explicit && !overridden.is_empty() {
        writeln!(
            stderr,
            "note: {} set in the environment, used instead of context {ctx_name:?}",
            overridden.join(" and ")
        )?;
    }
    Ok(Settings {
        endpoint,
        token,
        ca_cert,
        timeout,
    })
}

/// An endpoint must be an http(s) URL; say how to write it when it is not.
fn check_endpoint(endpoint: &str) -> Result<(), Failure> {
    let lower = endpoint.trim().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(());
    }
    if lower.contains("://") {
        return Err(Failure::Usage(format!(
            "endpoint {endpoint:?} must be an http:// or https:// URL"
        )));
    }
    Err(Failure::Usage(format!(
        "endpoint {endpoint:?} has no scheme: write http://{0} or https://{0}",
        endpoint.trim()
    )))
}

/// The token of a context, from its file or its command.
fn context_token(chosen: &Chosen) -> Result<Option<SecretString>, Failure> {
    let ctx = &chosen.context;
    let name = &chosen.name;
    if let Some(file) = &ctx.token_file {
        let path = expand(file, &chosen.config_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::Usage(format!(
                "context {name:?}: cannot read token-file {}: {e}",
                path.display()
            ))
        })?;
        let token = first_line(text);
        if token.expose_secret().is_empty() {
            return Err(Failure::Usage(format!(
                "context {name:?}: token-file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(token));
    }
    if let Some(command) = &ctx.token_command {
        // stdin and stderr stay the terminal's, so a password manager can ask.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| {
                Failure::Usage(format!("context {name:?}: cannot run token-command: {e}"))
            })?;
        if !out.status.success() {
            return Err(Failure::Usage(format!(
                "context {name:?}: token-command failed ({})",
                out.status
            )));
        }
        let token = first_line(String::from_utf8_lossy(&out.stdout).into_owned());
        if token.expose_secret().is_empty() {
            return Err(Failure::Usage(format!(
                "context {name:?}: token-command printed nothing"
            )));
        }
        return Ok(Some(token));
    }
    Ok(None)
}

/// The first line, trimmed, as a secret; the plain copy is wiped.
fn first_line(mut text: String) -> SecretString {
    use tokenops_client::secrecy::zeroize::Zeroize;
    let token = SecretString::from(text.lines().next().unwrap_or("").trim());
    text.zeroize();
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_scheme_say_how_to_write_them() {
        let Err(Failure::Usage(msg)) = check_endpoint("127.0.0.1:8080") else {
            panic!("accepted");
        };
        assert!(msg.contains("http://127.0.0.1:8080"), "{msg}");
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("HTTPS://tokens.example.com").is_ok());
    }

    #[test]
    fn the_file_format_refuses_unknown_keys_without_echoing_values() {
        let err = toml::from_str::<ConfigFile>(
            "[contexts.a]\nendpoint = \"http://x\"\ntoken = \"tko_secretvalue\"\n",
        )
        .unwrap_err();
        assert!(err.message().contains("token"), "{}", err.message());
        assert!(!err.message().contains("secretvalue"), "{}", err.message());
        let ok: ConfigFile = toml::from_str(
            "current-context = \"a\"\n[contexts.a]\nendpoint = \"http://x\"\ntoken-file = \"t\"\n",
        )
        .unwrap();
        assert_eq!(ok.current_context.as_deref(), Some("a"));
    }

    #[test]
    fn paths_expand_home_and_are_relative_to_the_config_folder() {
        let dir = Path::new("/etc/tokenops");
        assert_eq!(
            expand(Path::new("t"), dir),
            PathBuf::from("/etc/tokenops/t")
        );
        assert_eq!(expand(Path::new("/abs"), dir), PathBuf::from("/abs"));
    }
}
