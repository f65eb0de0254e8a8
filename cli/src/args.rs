//! The command line, as clap reads it.
//!
//! Values are checked while parsing (durations with the one shared parser,
//! dates, `type=id` resources, `key=value` labels), so a bad value is a usage
//! error that names its flag, before any request is made.
//!
//! The options every command shares (server, credentials, output) are global
//! and shown under their own heading after a command's own options. They do
//! not use clap's `env` support: the environment is read in
//! [`crate::config`], beside the config file, so that a value taken from the
//! environment never shows in a usage line as if it had been typed.
//!
//! The `///` comments here are the `--help` text, written for a terminal
//! rather than for rustdoc: angle brackets and bare URLs are meant literally.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokenops_client::secrecy::SecretString;
use tokenops_client::{ResourceRef, TokenStatus};

/// Heading of the options every command shares.
pub const GLOBAL_HEADING: &str = "Global options";

/// Manage API tokens on a tokenops server.
///
/// Tell it which server to use with a context from the config file
/// (~/.config/tokenops/config.toml, see `tokenops context --help`), or with
/// TOKENOPS_ENDPOINT and TOKENOPS_TOKEN, which win over the config file.
/// Prefer TOKENOPS_TOKEN or a context's token file to --token: other users can
/// see a command line in the process list, and it ends up in shell history.
#[derive(Debug, Parser)]
#[command(name = "tokenops", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Server, credentials and output: the same for every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Use this context of the config file (env TOKENOPS_CONTEXT; default: the
    /// file's current-context).
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL_HEADING)]
    pub context: Option<String>,

    /// URL of the tokenops server, e.g. https://tokens.example.com (env TOKENOPS_ENDPOINT).
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL_HEADING)]
    pub endpoint: Option<String>,

    /// API token to call the server with (env TOKENOPS_TOKEN, preferred).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        value_parser = secret,
        help_heading = GLOBAL_HEADING
    )]
    pub token: Option<SecretString>,

    /// PEM file with an extra CA certificate to trust, for a server with a
    /// private CA (env TOKENOPS_CA_CERT).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL_HEADING)]
    pub ca_cert: Option<PathBuf>,

    /// Time limit for each request, e.g. 30s, 2m [default: 30s].
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        value_parser = duration,
        help_heading = GLOBAL_HEADING
    )]
    pub timeout: Option<Duration>,

    /// Output format.
    #[arg(
        short,
        long,
        global = true,
        value_enum,
        default_value_t = Output::Table,
        help_heading = GLOBAL_HEADING
    )]
    pub output: Output,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Columns for people; cut to fit a terminal, whole when piped.
    Table,
    /// More columns (resources, project, labels) and exact dates, never cut.
    Wide,
    /// Ids only, one per line, for scripts.
    Name,
    /// JSON, one document per command.
    Json,
    /// YAML, one document per command.
    Yaml,
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
    /// Show the audit log, newest first: who did what to which token, when.
    Audit(AuditArgs),
    /// Show what the server allows: roles, resource types, lifetimes.
    Policy,
    /// List the contexts of the config file and say which one is in use.
    #[command(after_long_help = CONTEXT_HELP)]
    Context(ContextArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its value (shown only this once).
    Create(CreateArgs),
    /// List tokens.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one token.
    Get(TokenArg),
    /// Change a token's name, description or labels.
    Update(UpdateArgs),
    /// Issue a new value for a token and print it (shown only this once).
    Regenerate(RegenerateArgs),
    /// Revoke one token, several, or all matching a label selector.
    Revoke(RevokeArgs),
    /// Delete a token permanently.
    #[command(visible_alias = "rm")]
    Delete(TokenArg),
}

/// How a command names one token.
pub const TOKEN_ARG_HELP: &str =
    "Token id (tok_…), or its name when exactly one token has that name";

#[derive(Debug, Args)]
pub struct TokenArg {
    #[arg(value_name = "TOKEN", help = TOKEN_ARG_HELP)]
    pub target: String,
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
    /// How long the token lives, e.g. 720h, 30d, 2w.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "expires_at")]
    pub lifetime: Option<Duration>,
    /// When the token expires: a date (2027-03-31, meaning the end of that
    /// day, 23:59:59 UTC) or a time (2027-03-31T12:00:00Z).
    #[arg(long, value_name = "DATE|TIME", value_parser = expiry)]
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
    /// Only tokens in this state (active, expired, revoked); by default
    /// active and expired ones.
    #[arg(long, conflicts_with = "all")]
    pub status: Option<TokenStatus>,
    /// Tokens in every state, revoked ones included.
    #[arg(long)]
    pub all: bool,
    /// Only tokens of this project (organisation tokens see every project).
    #[arg(long)]
    pub project: Option<String>,
    /// Only tokens with exactly this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only tokens matching a label selector k=v,k2=v2.
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = selector)]
    pub selector: Option<String>,
    /// Fetch one page of this size instead of all tokens.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue a paged listing (with --limit).
    #[arg(long, requires = "limit", value_name = "PAGE_TOKEN")]
    pub page_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(value_name = "TOKEN", help = TOKEN_ARG_HELP)]
    pub target: String,
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

impl UpdateArgs {
    /// Whether any change was asked for.
    pub fn changes_something(&self) -> bool {
        self.name.is_some()
            || self.description.is_some()
            || self.clear_description
            || !self.labels.is_empty()
            || !self.remove_labels.is_empty()
    }
}

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    #[arg(value_name = "TOKEN", help = TOKEN_ARG_HELP)]
    pub target: String,
    /// New lifetime from now, e.g. 720h, 30d, 2w (default: the one it was created with).
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "expires_at")]
    pub lifetime: Option<Duration>,
    /// New expiry: a date (2027-03-31, meaning the end of that day, 23:59:59
    /// UTC) or a time (2027-03-31T12:00:00Z).
    #[arg(long, value_name = "DATE|TIME", value_parser = expiry)]
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the old value keeps working, e.g. 1h (default: it stops at once).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub grace_period: Option<Duration>,
    /// Idempotency key, to make repeating this exact command safe.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["targets", "selector"])))]
pub struct RevokeArgs {
    /// Tokens to revoke: ids (tok_…), or a name when exactly one token has it.
    #[arg(value_name = "TOKEN")]
    pub targets: Vec<String>,
    /// Revoke every token matching this label selector k=v,k2=v2 (never
    /// your own token).
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = selector, conflicts_with = "targets")]
    pub selector: Option<String>,
    /// Revoke later instead of now, e.g. 1h: the token keeps working until
    /// then (its expiry is brought forward), an overlap for its consumers.
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "selector")]
    pub after: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token value, or - to read it from standard input (keeps it out of the process list).
    #[arg(value_name = "VALUE", value_parser = secret)]
    pub value: SecretString,
    /// A permission the token must hold, e.g. billing:read.
    #[arg(long)]
    pub permission: Option<String>,
    /// A resource type=id the token must be allowed to act on.
    #[arg(long, value_name = "TYPE=ID", value_parser = resource)]
    pub resource: Option<ResourceRef>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events about this token (id, or a name when exactly one token has it).
    #[arg(long = "token-id", value_name = "TOKEN")]
    pub token_id: Option<String>,
    /// Only events caused by this token (id, or a name only one token has).
    #[arg(long, value_name = "TOKEN")]
    pub actor: Option<String>,
    /// Only events since this long ago (24h, 7d) or since a date or time
    /// (2027-03-31 means its start, 00:00 UTC).
    #[arg(long, value_name = "DURATION|DATE|TIME", value_parser = since)]
    pub since: Option<Since>,
    /// Show at most this many events, the newest.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// The start of an audit window, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// This instant.
    At(DateTime<Utc>),
}

impl Since {
    /// The instant the window starts at.
    pub fn instant(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::Ago(d) => chrono::TimeDelta::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            Since::At(t) => t,
        }
    }
}

/// How to write the config file, shown by `tokenops context --help`.
const CONTEXT_HELP: &str = "\
The config file is $XDG_CONFIG_HOME/tokenops/config.toml (by default
~/.config/tokenops/config.toml). Each context names a server and where its
token comes from; the token itself is never written in this file:

  current-context = \"local\"

  [contexts.local]
  endpoint = \"http://127.0.0.1:8080\"
  token-file = \"~/.config/tokenops/local.token\"     # first line of the file

  [contexts.prod]
  endpoint = \"https://tokens.example.com\"
  token-command = \"pass show tokenops/prod\"         # prints the token
  ca-cert = \"/etc/ssl/certs/example-ca.pem\"
  timeout = \"10s\"

Choose one with --context NAME or TOKENOPS_CONTEXT=NAME; otherwise
current-context is used. TOKENOPS_ENDPOINT, TOKENOPS_TOKEN and
TOKENOPS_CA_CERT, when set, win over the context's values.";

#[derive(Debug, Args)]
pub struct ContextArgs {
    /// Print only the name of the context in use.
    #[arg(long)]
    pub current: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Load it in the current shell, or add the line to your shell's start-up file:
  bash:        source <(tokenops completion bash)
  zsh:         source <(tokenops completion zsh)
  fish:        tokenops completion fish | source
  PowerShell:  tokenops completion powershell | Out-String | Invoke-Expression")]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s))
}

fn duration(s: &str) -> Result<Duration, String> {
    tokenops_client::parse_duration(s).map_err(|e| e.to_string())
}

/// A date alone means the end of that day in UTC (a token valid "until the
/// 31st" works all through the 31st); otherwise an RFC 3339 time.
pub fn expiry(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, NaiveTime::from_hms_opt(23, 59, 59).expect("valid time"))
}

/// A date alone means the start of that day in UTC.
fn start_of(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, NaiveTime::MIN)
}

fn parse_time(s: &str, time_of_day: NaiveTime) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_time(time_of_day).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{e}: give a date (2027-03-31) or a time in RFC 3339 (2027-03-31T12:00:00Z)")
        })
}

fn since(s: &str) -> Result<Since, String> {
    if let Ok(d) = tokenops_client::parse_duration(s) {
        return Ok(Since::Ago(d));
    }
    start_of(s).map(Since::At).map_err(|_| {
        "give a duration (24h, 7d), a date (2027-03-31) or a time (2027-03-31T12:00:00Z)"
            .to_string()
    })
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
        let err = Cli::try_parse_from(["tokenops", "token", "create", "n", "--expires-at", "soon"])
            .unwrap_err();
        assert!(err.to_string().contains("2027-03-31"), "{err}");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let cli =
            Cli::try_parse_from(["tokenops", "--token", "tko_secretvalue", "whoami"]).unwrap();
        assert!(!format!("{cli:?}").contains("secretvalue"));
    }

    #[test]
    fn a_date_alone_is_the_end_of_that_day_in_utc() {
        assert_eq!(
            expiry("2027-03-31").unwrap().to_rfc3339(),
            "2027-03-31T23:59:59+00:00"
        );
        assert_eq!(
            expiry("2027-03-31T12:00:00+02:00").unwrap().to_rfc3339(),
            "2027-03-31T10:00:00+00:00"
        );
        assert!(expiry("2027-02-30").is_err());
        assert!(expiry("31/03/2027").is_err());
    }

    #[test]
    fn weeks_are_durations_on_every_flag() {
        let cli = Cli::try_parse_from([
            "tokenops",
            "token",
            "create",
            "n",
            "--lifetime",
            "2w",
            "--timeout",
            "1m",
        ])
        .unwrap();
        let Command::Token(TokenCommand::Create(args)) = cli.command else {
            panic!("not create");
        };
        assert_eq!(args.lifetime, Some(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn since_takes_a_duration_a_date_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2027-04-02T10:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            since("24h").unwrap().instant(now).to_rfc3339(),
            "2027-04-01T10:00:00+00:00"
        );
        assert_eq!(
            since("2027-03-31").unwrap().instant(now).to_rfc3339(),
            "2027-03-31T00:00:00+00:00"
        );
        assert!(since("yesterday").is_err());
    }

    #[test]
    fn global_options_have_their_own_heading_after_the_command_s_own() {
        let mut cmd = Cli::command();
        cmd.build();
        let create = cmd
            .find_subcommand_mut("token")
            .unwrap()
            .find_subcommand_mut("create")
            .unwrap();
        let help = create.render_long_help().to_string();
        let own = help.find("--description").expect("own option");
        let heading = help.find(GLOBAL_HEADING).expect("global heading");
        let endpoint = help.find("--endpoint").expect("endpoint");
        assert!(own < heading && heading < endpoint, "{help}");
        let usage = create.render_usage().to_string();
        assert!(!usage.contains("--endpoint"), "{usage}");
    }
}
