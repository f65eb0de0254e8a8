//! The command line, as clap reads it.
//!
//! Values are checked while parsing (durations with the one shared parser,
//! `type=id` resources, `key=value` labels), so a bad value is a usage error
//! that names its flag, before any request is made.
//!
//! The `///` comments here are the `--help` text, written for a terminal
//! rather than for rustdoc: angle brackets and bare URLs are meant literally.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokenops_client::secrecy::SecretString;
use tokenops_client::{ResourceRef, TokenStatus};

/// Manage API tokens on a tokenops server.
///
/// Set the server with TOKENOPS_ENDPOINT and your token with TOKENOPS_TOKEN
/// (preferred over --token, which other users can see in the process list and
/// which ends up in shell history).
#[derive(Debug, Parser)]
#[command(name = "tokenops", version, propagate_version = true)]
pub struct Cli {
    /// URL of the tokenops server, e.g. https://tokens.example.com.
    #[arg(long, global = true, env = "TOKENOPS_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// API token to call the server with. Prefer the TOKENOPS_TOKEN environment variable.
    #[arg(
        long,
        global = true,
        env = "TOKENOPS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = secret
    )]
    pub token: Option<SecretString>,

    /// PEM file with an extra CA certificate to trust (a server with a private CA).
    #[arg(long, global = true, env = "TOKENOPS_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Output format: a table for people, JSON for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Time limit for each request (e.g. 30s, 2m).
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables; on create and regenerate only the value.
    Table,
    /// JSON, one document per command.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, change, regenerate, revoke and delete tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show the token you are calling with.
    Whoami,
    /// Check a token value; exits 0 when valid, 1 when not.
    Verify(VerifyArgs),
    /// Show the audit log: who did what to which token, when.
    Audit(AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its value (shown only this once).
    Create(CreateArgs),
    /// List tokens.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one token.
    Get(IdArg),
    /// Change a token's name, description or labels.
    Update(UpdateArgs),
    /// Issue a new value for a token and print it (shown only this once).
    Regenerate(RegenerateArgs),
    /// Revoke one token, several by id, or all matching a label selector.
    Revoke(RevokeArgs),
    /// Delete a token permanently.
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Token id (tok_…).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Display name of the token.
    pub name: String,
    /// What the token is for.
    #[arg(long)]
    pub description: Option<String>,
    /// Project to create the token in (default: yours).
    #[arg(long)]
    pub project: Option<String>,
    /// Permission bundle, e.g. read-only.
    #[arg(long)]
    pub role: Option<String>,
    /// Extra permission <resource>:<action> (repeatable, or comma-separated).
    #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Limit the token to a resource type=id (repeatable); default all resources.
    #[arg(long = "resource", value_name = "TYPE=ID", value_parser = resource)]
    pub resources: Vec<ResourceRef>,
    /// How long the token lives, e.g. 720h, 30d.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "expires_at")]
    pub lifetime: Option<Duration>,
    /// When the token expires (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Label key=value (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
    /// Idempotency key, to make repeating this exact command safe.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tokens in this state (active, expired, revoked).
    #[arg(long)]
    pub status: Option<TokenStatus>,
    /// Only tokens with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only tokens matching a label selector k=v,k2=v2.
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = selector)]
    pub selector: Option<String>,
    /// Fetch one page of this size instead of all tokens.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue a paged listing (with --limit).
    #[arg(long, requires = "limit")]
    pub page_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Token id (tok_…).
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New description.
    #[arg(long, conflicts_with = "clear_description")]
    pub description: Option<String>,
    /// Remove the description.
    #[arg(long)]
    pub clear_description: bool,
    /// Set a label key=value (repeatable); other labels are kept.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
    /// Remove a label (repeatable).
    #[arg(long = "remove-label", value_name = "KEY")]
    pub remove_labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    /// Token id (tok_…).
    pub id: String,
    /// New lifetime from now (default: the one it was created with).
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "expires_at")]
    pub lifetime: Option<Duration>,
    /// New expiry time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the old value keeps working (default: it stops at once).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub grace_period: Option<Duration>,
    /// Idempotency key, to make repeating this exact command safe.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["ids", "selector"])))]
pub struct RevokeArgs {
    /// Token ids to revoke.
    pub ids: Vec<String>,
    /// Revoke every token matching this label selector k=v,k2=v2.
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = selector, conflicts_with = "ids")]
    pub selector: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token value, or - to read it from standard input (keeps it out of the process list).
    #[arg(value_name = "TOKEN", value_parser = secret)]
    pub token: SecretString,
    /// A permission the token must hold, e.g. billing:read.
    #[arg(long)]
    pub permission: Option<String>,
    /// A resource type=id the token must be allowed to act on.
    #[arg(long, value_name = "TYPE=ID", value_parser = resource)]
    pub resource: Option<ResourceRef>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events about this token.
    #[arg(long, value_name = "ID")]
    pub token_id: Option<String>,
    /// Fetch one page of this size instead of everything.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue a paged listing (with --limit).
    #[arg(long, requires = "limit")]
    pub page_token: Option<String>,
}

fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s))
}

fn duration(s: &str) -> Result<Duration, String> {
    tokenops_client::parse_duration(s).map_err(|e| e.to_string())
}

fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e} (use RFC 3339, e.g. 2027-01-01T00:00:00Z)"))
}

fn resource(s: &str) -> Result<ResourceRef, String> {
    match s.split_once('=') {
        Some((kind, id)) if !kind.trim().is_empty() && !id.trim().is_empty() => {
            Ok(ResourceRef::new(kind.trim(), id.trim()))
        }
        _ => Err("expected TYPE=ID, e.g. site=s-1".to_string()),
    }
}

fn label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or("expected KEY=VALUE, e.g. team=web")?;
    let (k, v) = (k.trim(), v.trim());
    tokenops_client::validate_label_key(k)?;
    tokenops_client::validate_label_value(v)?;
    Ok((k.to_string(), v.to_string()))
}

fn selector(s: &str) -> Result<String, String> {
    tokenops_client::parse_selector(s)?;
    Ok(s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        let err = Cli::try_parse_from([
            "tokenops",
            "token",
            "create",
            "n",
            "--lifetime",
            "5 minutes",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--lifetime"), "{err}");
        let err = Cli::try_parse_from(["tokenops", "token", "create", "n", "--resource", "site"])
            .unwrap_err();
        assert!(err.to_string().contains("--resource"), "{err}");
        let err = Cli::try_parse_from(["tokenops", "token", "revoke"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let cli =
            Cli::try_parse_from(["tokenops", "--token", "tko_secretvalue", "whoami"]).unwrap();
        assert!(!format!("{cli:?}").contains("secretvalue"));
    }
}
