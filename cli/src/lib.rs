//! `tokenops`, the command line for tokenops tokens.
//!
//! `main.rs` only calls [`main`]; everything else is here so tests can drive
//! the CLI in-process with their own input and output.
//!
//! Exit codes (see [`exit`]): 0 success, 1 `verify` found the token not valid,
//! 2 usage error, 3 not found, 4 authentication or permission denied,
//! 5 request rejected (validation, conflict, rate limit), 6 server or network
//! failure, or an endpoint where no tokenops server answers.

pub mod args;
pub mod config;
pub mod output;
pub mod table;

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use chrono::Utc;
use tokenops_client::secrecy::zeroize::Zeroize;
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{
    BulkRevoke, Client, CreatedToken, Error, Labels, RetryPolicy, Token, TokenStatus,
};

pub use args::Cli;
use args::{Command, Output, TokenCommand};
use output::View;

/// Process exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// `verify`: the token is not valid (or lacks the permission asked for).
    pub const NOT_VALID: u8 = 1;
    /// Bad arguments or settings (clap uses 2 for its own usage errors too).
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    /// 401 or 403.
    pub const AUTH: u8 = 4;
    /// Any other 4xx: validation, conflict, rate limit.
    pub const REJECTED: u8 = 5;
    /// 5xx, transport failures, unreadable responses, local I/O, and an
    /// endpoint that does not answer like a tokenops server.
    pub const FAILURE: u8 = 6;
}

/// The width assumed for a terminal that reports none (or 0) and no `COLUMNS`.
pub const FALLBACK_WIDTH: usize = 80;

/// Where a run reads and writes; the real process uses stdin, stdout and stderr.
pub struct Io<'a> {
    pub stdin: &'a mut dyn BufRead,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    /// The width of the terminal stdout writes to, or `None` when stdout is
    /// not a terminal (then tables are written whole, for scripts).
    pub terminal_width: Option<usize>,
}

/// Why a command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] Error),
    /// The endpoint answered, but not as a tokenops server does.
    #[error(
        "no tokenops server answers at {endpoint}: {tried} got {answer}; the endpoint is the server's base URL, e.g. http://127.0.0.1:8080{hint}"
    )]
    NotTokenops {
        endpoint: String,
        tried: String,
        answer: String,
        hint: &'static str,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Failure {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Io(_) | Failure::NotTokenops { .. } => exit::FAILURE,
            Failure::Api(e) => api_exit_code(e),
        }
    }
}

/// The exit code for a client error.
pub fn api_exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound { .. } => exit::NOT_FOUND,
        Error::Unauthorized { .. } | Error::Forbidden { .. } => exit::AUTH,
        Error::Validation { .. } | Error::Conflict { .. } | Error::RateLimited { .. } => {
            exit::REJECTED
        }
        Error::Config(_) => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// The width to fit tables to when stdout is a terminal: its own width, else
/// `COLUMNS`, else [`FALLBACK_WIDTH`] (a terminal may report 0 columns).
pub fn terminal_width() -> Option<usize> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let reported = terminal_size::terminal_size_of(&stdout)
        .map(|(w, _)| usize::from(w.0))
        .filter(|w| *w > 0);
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0);
    Some(reported.or(columns).unwrap_or(FALLBACK_WIDTH))
}

/// Runs the process: parses `std::env::args`, runs the command, maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        terminal_width: terminal_width(),
    };
    ExitCode::from(runtime.block_on(run(cli, &mut io)))
}

/// Runs one parsed command line and returns its exit code. Errors are written
/// to `io.stderr` with their cause chain.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> u8 {
    let mut session = Session {
        cli: &cli,
        client: None,
    };
    let result = dispatch(&mut session, io).await;
    match result {
        Ok(code) => code,
        Err(failure) => {
            let failure = match (&failure, &session.client) {
                (Failure::Api(e), Some(client)) if could_be_another_server(e) => {
                    check_server(client, failure).await
                }
                _ => failure,
            };
            let _ = writeln!(io.stderr, "error: {}", describe(&failure));
            failure.exit_code()
        }
    }
}

/// The failure and its causes on one line ("…: connection refused").
fn describe(failure: &Failure) -> String {
    let mut text = failure.to_string();
    let mut source = std::error::Error::source(failure);
    if matches!(failure, Failure::Api(_)) {
        // `transparent` already shows the client error; start from its cause.
        source = source.and_then(std::error::Error::source);
    }
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Answers a wrong path or another kind of server gives.
fn could_be_another_server(e: &Error) -> bool {
    match e {
        Error::NotFound { .. } | Error::Decode { .. } => true,
        Error::Validation { status, .. } => matches!(status, 405 | 415),
        _ => false,
    }
}

/// Tells a tokenops server from anything else at the endpoint: any tokenops
/// server answers a malformed value on `POST /v1/verify` with a verify
/// answer, without a credential and without touching its storage.
async fn check_server(client: &Client, original: Failure) -> Failure {
    let probe = client.verify(SecretString::from("tko_probe")).send().await;
    let answer = match probe {
        Ok(_) | Err(Error::Transport(_)) | Err(Error::RateLimited { .. }) => return original,
        Err(Error::Decode { status, .. }) => {
            format!("HTTP {status} with a body that is not a tokenops answer")
        }
        Err(e) => match e.status() {
            Some(status) => format!("HTTP {status} ({e})"),
            None => e.to_string(),
        },
    };
    let endpoint = client.endpoint().as_str().to_string();
    let tried = format!("POST {}", endpoint_join(&endpoint, "v1/verify"));
    let hint = if client
        .endpoint()
        .path()
        .trim_end_matches('/')
        .ends_with("/v1")
    {
        " (without /v1)"
    } else {
        ""
    };
    Failure::NotTokenops {
        endpoint,
        tried,
        answer,
        hint,
    }
}

fn endpoint_join(endpoint: &str, path: &str) -> String {
    format!("{}/{path}", endpoint.trim_end_matches('/'))
}

/// One run: the command line and the client once it is made (kept to check
/// the server when a call fails in a way a wrong endpoint would explain).
struct Session<'a> {
    cli: &'a Cli,
    client: Option<Client>,
}

impl Session<'_> {
    fn format(&self) -> Output {
        self.cli.global.output
    }

    fn client(&mut self, need_token: bool, stderr: &mut dyn Write) -> Result<Client, Failure> {
        let settings = config::resolve(&self.cli.global, need_token, stderr)?;
        let mut builder = Client::builder(&settings.endpoint)
            .timeout(settings.timeout)
            .retry_policy(RetryPolicy::default())
            .user_agent(concat!("tokenops-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = settings.token {
            builder = builder.token(token);
        }
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::Usage(format!(
                    "cannot read CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            builder = builder.ca_cert_pem(pem);
        }
        let client = builder.build()?;
        self.client = Some(client.clone());
        Ok(client)
    }
}

fn view<'a>(io: &'a mut Io<'_>, format: Output) -> View<'a> {
    View {
        out: io.stdout,
        width: io.terminal_width,
        now: Utc::now(),
        format,
    }
}

async fn dispatch(session: &mut Session<'_>, io: &mut Io<'_>) -> Result<u8, Failure> {
    let format = session.format();
    let cli = session.cli;
    match &cli.command {
        Command::Whoami => {
            let me = session.client(true, io.stderr)?.whoami().await?;
            if !output::document(io.stdout, format, &me)? {
                output::token(&mut view(io, format), &me)?;
            }
        }
        Command::Verify(args) => {
            let client = session.client(false, io.stderr)?;
            let token = if args.value.expose_secret() == "-" {
                read_token(io)?
            } else {
                args.value.clone()
            };
            let mut call = client.verify(token);
            if let Some(p) = &args.permission {
                call = call.permission(p);
            }
            if let Some(r) = &args.resource {
                call = call.resource(r.clone());
            }
            let answer = call.await?;
            if !output::document(io.stdout, format, &answer)? {
                output::verify(&mut view(io, format), &answer)?;
            }
            return Ok(if answer.valid {
                exit::OK
            } else {
                exit::NOT_VALID
            });
        }
        Command::Audit(args) => {
            let client = session.client(true, io.stderr)?;
            let now = Utc::now();
            let mut call = client.audit();
            if let Some(token) = &args.token_id {
                call = call.token_id(resolve_token(&client, token).await?);
            }
            if let Some(actor) = &args.actor {
                call = call.actor(resolve_token(&client, actor).await?);
            }
            if let Some(since) = args.since {
                call = call.since(since.instant(now));
            }
            let mut events = call.all().await?;
            if let Some(since) = args.since {
                let start = since.instant(now);
                events.retain(|e| e.at >= start);
            }
            // Newest first, whatever order the server pages in.
            events.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
            if let Some(limit) = args.limit {
                events.truncate(limit);
            }
            if !output::document(
                io.stdout,
                format,
                &tokenops_client::Page {
                    items: events.clone(),
                    next_page_token: None,
                },
            )? {
                let names = if format == Output::Name {
                    HashMap::new()
                } else {
                    token_names(&client).await
                };
                output::audit(&mut view(io, format), &events, &names)?;
            }
        }
        Command::Context(args) => return context_command(args, format, io),
        Command::Policy => {
            let client = session.client(true, io.stderr)?;
            return policy(&client, format, io).await;
        }
        Command::Completion(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "tokenops", io.stdout);
        }
        Command::Token(cmd) => return token_command(session, cmd, io).await,
    }
    Ok(exit::OK)
}

/// Names of the tokens the caller may list, by id, to show actors by name.
/// Empty when the caller may not list tokens: ids are shown then.
async fn token_names(client: &Client) -> HashMap<String, String> {
    let mut names = HashMap::new();
    if let Ok(tokens) = client.list_tokens().all_statuses().all().await {
        for t in tokens {
            names.insert(t.id, t.name);
        }
    }
    names
}

/// Whether `arg` has the shape of a token value (`<prefix>_<28 base62>`),
/// which is never sent anywhere as an id or a name.
fn looks_like_a_value(arg: &str) -> bool {
    let Some((prefix, rest)) = arg.split_once('_') else {
        return false;
    };
    !prefix.is_empty()
        && rest.len()
            == tokenops_client::types::secret::RANDOM_LEN
                + tokenops_client::types::secret::CHECKSUM_LEN
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The id of the token `arg` names: `arg` itself when it is an id (`tok_…`),
/// else the one token with that name (active or expired ones first, then
/// revoked ones).
async fn resolve_token(client: &Client, arg: &str) -> Result<String, Failure> {
    if looks_like_a_value(arg) {
        return Err(Failure::Usage(
            "that is a token value, not an id or a name (it was not sent anywhere); `tokenops verify -` tells which token a value belongs to".to_string(),
        ));
    }
    if arg.starts_with("tok_") {
        return Ok(arg.to_string());
    }
    let found: Vec<Token> = client.list_tokens().name(arg).all_statuses().all().await?;
    let live: Vec<&Token> = found
        .iter()
        .filter(|t| t.status != TokenStatus::Revoked)
        .collect();
    let candidates: Vec<&Token> = if live.is_empty() {
        found.iter().collect()
    } else {
        live
    };
    match candidates.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Failure::Api(Error::NotFound {
            code: tokenops_client::codes::NOT_FOUND.to_string(),
            detail: format!("no token has the id or name {arg:?}"),
        })),
        several => Err(Failure::Usage(format!(
            "{} tokens are named {arg:?}; give one of their ids: {}",
            several.len(),
            several
                .iter()
                .map(|t| format!(
                    "{} ({}, created {})",
                    t.id,
                    t.status,
                    output::exact(t.created_at)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn token_command(
    session: &mut Session<'_>,
    cmd: &TokenCommand,
    io: &mut Io<'_>,
) -> Result<u8, Failure> {
    let format = session.format();
    // Checks that need no server come first.
    match cmd {
        TokenCommand::Create(_) | TokenCommand::Regenerate(_) if format == Output::Name => {
            return Err(Failure::Usage(
                "-o name would print only the id, and the value is shown only this once: use -o json (or yaml) for both".to_string(),
            ));
        }
        TokenCommand::Update(a) if !a.changes_something() => {
            return Err(Failure::Usage(
                "nothing to change: give --name, --description, --clear-description, --label or --remove-label".to_string(),
            ));
        }
        _ => {}
    }
    let client = session.client(true, io.stderr)?;
    match cmd {
        TokenCommand::Create(a) => {
            let mut call = client.create_token(&a.name);
            if let Some(v) = &a.description {
                call = call.description(v);
            }
            if let Some(v) = &a.project {
                call = call.project(v);
            }
            if let Some(v) = &a.role {
                call = call.role(v);
            }
            if !a.scopes.is_empty() {
                call = call.scopes(a.scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()));
            }
            for r in &a.resources {
                call = call.resource(r.clone());
            }
            if let Some(v) = a.lifetime {
                call = call.lifetime(v);
            }
            if let Some(v) = a.expires_at {
                call = call.expires_at(v);
            }
            if !a.labels.is_empty() {
                call = call.labels(a.labels.iter().cloned().collect());
            }
            if let Some(v) = &a.idempotency_key {
                call = call.idempotency_key(v);
            }
            let created = call.await?;
            print_secret(io, &created, format, "created")?;
        }
        TokenCommand::List(a) => {
            let mut call = client.list_tokens();
            if let Some(s) = a.status {
                call = call.status(s);
            }
            if let Some(n) = &a.name {
                call = call.name(n);
            }
            if let Some(s) = &a.selector {
                call = call.selector(s);
            }
            if a.all {
                call = call.all_statuses();
            }
            if let Some(p) = &a.project {
                call = call.project(p);
            }
            let page = match a.limit {
                Some(limit) => {
                    call = call.limit(limit);
                    if let Some(t) = &a.page_token {
                        call = call.page_token(t);
                    }
                    call.await?
                }
                None => tokenops_client::Page {
                    items: call.all().await?,
                    next_page_token: None,
                },
            };
            if !output::document(io.stdout, format, &page)? {
                output::token_list(&mut view(io, format), &page.items)?;
                next_page_hint(io, page.next_page_token.as_deref())?;
            }
        }
        TokenCommand::Get(a) => {
            let id = resolve_token(&client, &a.target).await?;
            let token = client.get_token(&id).await?;
            show_token(io, &token, format)?;
        }
        TokenCommand::Update(a) => {
            let id = resolve_token(&client, &a.target).await?;
            let mut call = client.update_token(&id);
            if let Some(v) = &a.name {
                call = call.name(v);
            }
            if let Some(v) = &a.description {
                call = call.description(v);
            }
            if a.clear_description {
                call = call.clear_description();
            }
            if !a.labels.is_empty() || !a.remove_labels.is_empty() {
                // The API replaces labels as a whole; start from the current ones.
                let mut labels: Labels = client.get_token(&id).await?.labels;
                for k in &a.remove_labels {
                    labels.remove(k);
                }
                labels.extend(a.labels.iter().cloned());
                call = call.labels(labels);
            }
            let token = call.await?;
            show_token(io, &token, format)?;
        }
        TokenCommand::Regenerate(a) => {
            let id = resolve_token(&client, &a.target).await?;
            let mut call = client.regenerate_token(&id);
            if let Some(v) = a.lifetime {
                call = call.lifetime(v);
            }
            if let Some(v) = a.expires_at {
                call = call.expires_at(v);
            }
            if let Some(v) = a.grace_period {
                call = call.grace_period(v);
            }
            if let Some(v) = &a.idempotency_key {
                call = call.idempotency_key(v);
            }
            let created = call.await?;
            print_secret(io, &created, format, "regenerated")?;
        }
        TokenCommand::Revoke(a) => return revoke(&client, a, format, io).await,
        TokenCommand::Delete(a) => {
            let id = resolve_token(&client, &a.target).await?;
            client.delete_token(&id).await?;
            if !output::document(io.stdout, format, &serde_json::json!({ "deleted": id }))? {
                if format == Output::Name {
                    writeln!(io.stdout, "{id}")?;
                } else {
                    writeln!(io.stdout, "Deleted {id}.")?;
                }
            }
        }
    }
    Ok(exit::OK)
}

/// `token revoke`: one token (now or `--after` a while), several, or a selector.
/// Several ids or a selector go in one bulk call, which says which ids named
/// no token and which tokens it left alone; any id not found makes the
/// command fail with the not-found code, naming them, after the others are revoked.
async fn revoke(
    client: &Client,
    a: &args::RevokeArgs,
    format: Output,
    io: &mut Io<'_>,
) -> Result<u8, Failure> {
    // Names are resolved first; a name that matches nothing counts as not found.
    let mut ids = Vec::with_capacity(a.targets.len());
    let mut unresolved = Vec::new();
    for t in &a.targets {
        match resolve_token(client, t).await {
            Ok(id) => ids.push(id),
            Err(Failure::Api(Error::NotFound { .. })) if a.targets.len() > 1 => {
                unresolved.push(t.clone())
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(after) = a.after {
        let mut revoked = Vec::new();
        for id in &ids {
            revoked.push(client.revoke_token_after(id, after).await?);
        }
        if !output::document(io.stdout, format, &revoked)? {
            for token in &revoked {
                if format == Output::Name {
                    writeln!(io.stdout, "{}", token.id)?;
                } else {
                    let until = token
                        .expires_at
                        .map(output::exact)
                        .unwrap_or_else(|| "-".into());
                    writeln!(
                        io.stdout,
                        "{} ({}) keeps working until {until}, then ends.",
                        token.id, token.name
                    )?;
                }
            }
        }
        return not_found_outcome(io, &unresolved);
    }
    if let ([id], None, []) = (ids.as_slice(), &a.selector, unresolved.as_slice()) {
        let token = client.revoke_token(id).await?;
        if !output::document(io.stdout, format, &token)? {
            if format == Output::Name {
                writeln!(io.stdout, "{}", token.id)?;
            } else {
                writeln!(io.stdout, "Revoked {} ({}).", token.id, token.name)?;
            }
        }
        return Ok(exit::OK);
    }
    let mut outcome = if let Some(selector) = &a.selector {
        client.revoke_tokens(BulkRevoke::selector(selector)).await?
    } else if ids.is_empty() {
        tokenops_client::BulkRevokeResponse::default()
    } else {
        client
            .revoke_tokens(BulkRevoke::ids(ids.iter().cloned()))
            .await?
    };
    outcome.not_found.extend(unresolved);
    if !output::document(io.stdout, format, &outcome)? {
        let skipped: std::collections::HashSet<&String> = outcome.skipped.iter().collect();
        let missing: std::collections::HashSet<&String> = outcome.not_found.iter().collect();
        if format == Output::Name {
            for id in ids
                .iter()
                .filter(|id| !skipped.contains(id) && !missing.contains(id))
            {
                writeln!(io.stdout, "{id}")?;
            }
        } else {
            let noun = if outcome.revoked == 1 {
                "token"
            } else {
                "tokens"
            };
            writeln!(io.stdout, "Revoked {} {noun}.", outcome.revoked)?;
            if !outcome.skipped.is_empty() {
                writeln!(
                    io.stdout,
                    "Skipped (outside your authority, or your own token matched by the selector): {}",
                    outcome.skipped.join(", ")
                )?;
            }
        }
    }
    not_found_outcome(io, &outcome.not_found)
}

/// Fails with the not-found code, naming them, when some ids named no token.
fn not_found_outcome(io: &mut Io<'_>, not_found: &[String]) -> Result<u8, Failure> {
    if not_found.is_empty() {
        return Ok(exit::OK);
    }
    writeln!(
        io.stderr,
        "error: not found: {} (nothing revoked for {})",
        not_found.join(", "),
        if not_found.len() == 1 { "it" } else { "them" }
    )?;
    Ok(exit::NOT_FOUND)
}

/// `tokenops policy`: what the server allows.
async fn policy(client: &Client, format: Output, io: &mut Io<'_>) -> Result<u8, Failure> {
    let policy = client.policy().await?;
    if output::document(io.stdout, format, &policy)? {
        return Ok(exit::OK);
    }
    if format == Output::Name {
        for role in policy.roles.keys() {
            writeln!(io.stdout, "{role}")?;
        }
        return Ok(exit::OK);
    }
    let rate = policy
        .rate_limit
        .map(|r| {
            format!(
                "{}/s per token, bursts of {}",
                r.requests_per_second, r.burst
            )
        })
        .unwrap_or_else(|| "off".into());
    output::fields(
        io.stdout,
        &[
            ("token prefix", policy.token_prefix.clone()),
            (
                "expiry",
                if policy.require_expiry {
                    "required".to_string()
                } else {
                    "optional (require_expiry = false)".to_string()
                },
            ),
            ("max lifetime", policy.max_lifetime.clone()),
            (
                "retention",
                format!("{} after revocation or expiry", policy.retention),
            ),
            ("rate limit", rate),
            ("resource types", policy.resource_types.join(", ")),
            ("management", policy.management_resources.join(", ")),
        ],
    )?;
    writeln!(io.stdout)?;
    use table::{Column, Fit, Table};
    let mut t = Table::new(vec![
        Column::new("ROLE", Fit::Keep),
        Column::new("PERMISSIONS", Fit::Shrink),
        Column::new("GRANTS", Fit::ShrinkOrDrop { drop: 1 }),
    ]);
    for (name, role) in &policy.roles {
        t.row(vec![
            name.clone(),
            role.permissions.join(","),
            role.grants.join(","),
        ]);
    }
    t.write(
        io.stdout,
        if format == Output::Wide {
            None
        } else {
            io.terminal_width
        },
    )?;
    Ok(exit::OK)
}

fn show_token(io: &mut Io<'_>, token: &Token, format: Output) -> Result<(), Failure> {
    if !output::document(io.stdout, format, token)? {
        output::token(&mut view(io, format), token)?;
    }
    Ok(())
}

/// Create and regenerate: the value alone on stdout (so `$(tokenops token create …)`
/// captures it), a warning on stderr. With JSON or YAML, token and value together.
fn print_secret(
    io: &mut Io<'_>,
    created: &CreatedToken,
    format: Output,
    verb: &str,
) -> Result<(), Failure> {
    let doc = serde_json::json!({
        "token": created.token,
        "secret": created.secret.expose_secret(),
    });
    if !output::document(io.stdout, format, &doc)? {
        writeln!(io.stdout, "{}", created.secret.expose_secret())?;
    }
    writeln!(
        io.stderr,
        "warning: token {} {verb}; its value is shown only this once, store it now",
        created.token.id
    )?;
    Ok(())
}

fn next_page_hint(io: &mut Io<'_>, next: Option<&str>) -> Result<(), Failure> {
    if let Some(next) = next {
        writeln!(io.stderr, "more results: repeat with --page-token {next}")?;
    }
    Ok(())
}

/// `tokenops context`: the contexts of the config file, the one in use marked.
fn context_command(
    args: &args::ContextArgs,
    format: Output,
    io: &mut Io<'_>,
) -> Result<u8, Failure> {
    let path = config::config_path();
    let file = config::load()?.map(|(_, f)| f).unwrap_or_default();
    let current = std::env::var("TOKENOPS_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| file.current_context.clone());
    if args.current {
        return match current {
            Some(c) => {
                writeln!(io.stdout, "{c}")?;
                Ok(exit::OK)
            }
            None => Err(Failure::Usage("no context is in use".to_string())),
        };
    }
    if output::document(io.stdout, format, &file)? {
        return Ok(exit::OK);
    }
    if format == Output::Name {
        for name in file.contexts.keys() {
            writeln!(io.stdout, "{name}")?;
        }
        return Ok(exit::OK);
    }
    if file.contexts.is_empty() {
        let where_ = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/tokenops/config.toml".into());
        writeln!(
            io.stdout,
            "No contexts: {where_} defines none (see `tokenops context --help`)."
        )?;
        return Ok(exit::OK);
    }
    use table::{Column, Fit, Table};
    let mut t = Table::new(vec![
        Column::new("CURRENT", Fit::Keep),
        Column::new("NAME", Fit::Keep),
        Column::new("ENDPOINT", Fit::Shrink),
        Column::new("TOKEN FROM", Fit::ShrinkOrDrop { drop: 1 }),
    ]);
    for (name, ctx) in &file.contexts {
        let token_from = match (&ctx.token_file, &ctx.token_command) {
            (Some(f), _) => format!("file {}", f.display()),
            (None, Some(_)) => "command".to_string(),
            (None, None) => String::new(),
        };
        t.row(vec![
            if current.as_deref() == Some(name) {
                "*"
            } else {
                ""
            }
            .to_string(),
            name.clone(),
            ctx.endpoint.clone().unwrap_or_default(),
            token_from,
        ]);
    }
    t.write(io.stdout, io.terminal_width)?;
    Ok(exit::OK)
}

/// Reads a token value from the first line of stdin (for `verify -`).
fn read_token(io: &mut Io<'_>) -> Result<SecretString, Failure> {
    let mut line = String::new();
    io.stdin.read_line(&mut line)?;
    let value = SecretString::from(line.trim());
    // Wipe the plain copy; the SecretString holds the value from here on.
    line.zeroize();
    if value.expose_secret().is_empty() {
        return Err(Failure::Usage("no token on standard input".to_string()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_documented_exit_codes() {
        let s = String::new;
        assert_eq!(
            api_exit_code(&Error::NotFound {
                code: s(),
                detail: s()
            }),
            3
        );
        assert_eq!(
            api_exit_code(&Error::Unauthorized {
                code: s(),
                detail: s()
            }),
            4
        );
        assert_eq!(
            api_exit_code(&Error::Forbidden {
                code: s(),
                detail: s()
            }),
            4
        );
        assert_eq!(
            api_exit_code(&Error::Conflict {
                code: s(),
                detail: s()
            }),
            5
        );
        assert_eq!(
            api_exit_code(&Error::Validation {
                status: 422,
                field: None,
                code: s(),
                detail: s()
            }),
            5
        );
        assert_eq!(
            api_exit_code(&Error::RateLimited {
                retry_after: None,
                code: s()
            }),
            5
        );
        assert_eq!(
            api_exit_code(&Error::Server {
                status: 500,
                code: s(),
                detail: s()
            }),
            6
        );
        assert_eq!(api_exit_code(&Error::Config(s())), 2);
    }

    #[test]
    fn token_values_are_told_from_ids_and_names() {
        let value = tokenops_client::secret::generate("tko");
        assert!(looks_like_a_value(&value));
        assert!(!looks_like_a_value("tok_0123456789abcdef"));
        assert!(!looks_like_a_value("grafana"));
        assert!(!looks_like_a_value("my_service_token"));
    }
}
