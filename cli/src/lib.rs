//! `tokenops`, the command line for tokenops tokens.
//!
//! `main.rs` only parses the arguments and calls [`run`]; everything else is
//! here so tests can drive the CLI in-process with their own input and output.
//!
//! Exit codes (see [`exit`]): 0 success, 1 `verify` found the token not valid,
//! 2 usage error, 3 not found, 4 authentication or permission denied,
//! 5 request rejected (validation, conflict, rate limit), 6 server or network failure.

pub mod args;
pub mod output;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use chrono::Utc;
use tokenops_client::secrecy::zeroize::Zeroize;
use tokenops_client::secrecy::{ExposeSecret, SecretString};
use tokenops_client::{BulkRevoke, Client, CreatedToken, Error, Labels, RetryPolicy};

pub use args::Cli;
use args::{Command, Output, TokenCommand};

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
    /// 5xx, transport failures, unreadable responses, local I/O.
    pub const FAILURE: u8 = 6;
}

/// Where a run reads and writes; the real process uses stdin, stdout and stderr.
pub struct Io<'a> {
    pub stdin: &'a mut dyn BufRead,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Why a command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Failure {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Io(_) => exit::FAILURE,
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
    };
    ExitCode::from(runtime.block_on(run(cli, &mut io)))
}

/// Runs one parsed command line and returns its exit code. Errors are written
/// to `io.stderr` with their cause chain.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> u8 {
    match dispatch(cli, io).await {
        Ok(code) => code,
        Err(failure) => {
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

fn client(cli: &Cli, need_token: bool) -> Result<Client, Failure> {
    let endpoint = cli.endpoint.as_deref().ok_or_else(|| {
        Failure::Usage("no server given: set TOKENOPS_ENDPOINT or pass --endpoint".to_string())
    })?;
    let mut builder = Client::builder(endpoint)
        .timeout(cli.timeout)
        .retry_policy(RetryPolicy::default())
        .user_agent(concat!("tokenops-cli/", env!("CARGO_PKG_VERSION")));
    // An empty TOKENOPS_TOKEN counts as none.
    let token = cli
        .token
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty());
    match token {
        Some(token) => builder = builder.token(token.clone()),
        None if need_token => {
            return Err(Failure::Usage(
                "no token given: set TOKENOPS_TOKEN (preferred) or pass --token".to_string(),
            ));
        }
        None => {}
    }
    if let Some(path) = &cli.ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::Usage(format!(
                "cannot read CA certificate {}: {e}",
                path.display()
            ))
        })?;
        builder = builder.ca_cert_pem(pem);
    }
    Ok(builder.build()?)
}

async fn dispatch(cli: Cli, io: &mut Io<'_>) -> Result<u8, Failure> {
    let json = cli.output == Output::Json;
    let now = Utc::now();
    match &cli.command {
        Command::Whoami => {
            let me = client(&cli, true)?.whoami().await?;
            if json {
                output::json(io.stdout, &me)?;
            } else {
                output::token_detail(io.stdout, &me, now)?;
            }
        }
        Command::Verify(args) => {
            let client = client(&cli, false)?;
            let token = if args.token.expose_secret() == "-" {
                read_token(io)?
            } else {
                args.token.clone()
            };
            let mut call = client.verify(token);
            if let Some(p) = &args.permission {
                call = call.permission(p);
            }
            if let Some(r) = &args.resource {
                call = call.resource(r.clone());
            }
            let answer = call.await?;
            if json {
                output::json(io.stdout, &answer)?;
            } else {
                output::verify(io.stdout, &answer)?;
            }
            return Ok(if answer.valid {
                exit::OK
            } else {
                exit::NOT_VALID
            });
        }
        Command::Audit(args) => {
            let client = client(&cli, true)?;
            let mut call = client.audit();
            if let Some(id) = &args.token_id {
                call = call.token_id(id);
            }
            let page = match args.limit {
                Some(limit) => {
                    call = call.limit(limit);
                    if let Some(t) = &args.page_token {
                        call = call.page_token(t);
                    }
                    call.await?
                }
                None => tokenops_client::Page {
                    items: call.all().await?,
                    next_page_token: None,
                },
            };
            if json {
                output::json(io.stdout, &page)?;
            } else {
                output::audit_table(io.stdout, &page.items, now)?;
                next_page_hint(io, page.next_page_token.as_deref())?;
            }
        }
        Command::Token(cmd) => return token_command(&cli, cmd, io).await,
    }
    Ok(exit::OK)
}

async fn token_command(cli: &Cli, cmd: &TokenCommand, io: &mut Io<'_>) -> Result<u8, Failure> {
    let json = cli.output == Output::Json;
    let now = Utc::now();
    let client = client(cli, true)?;
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
            print_secret(io, &created, json, "created")?;
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
            if json {
                output::json(io.stdout, &page)?;
            } else {
                output::token_table(io.stdout, &page.items, now)?;
                next_page_hint(io, page.next_page_token.as_deref())?;
            }
        }
        TokenCommand::Get(a) => {
            let token = client.get_token(&a.id).await?;
            show_token(io, &token, json)?;
        }
        TokenCommand::Update(a) => {
            let mut call = client.update_token(&a.id);
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
                let mut labels: Labels = client.get_token(&a.id).await?.labels;
                for k in &a.remove_labels {
                    labels.remove(k);
                }
                labels.extend(a.labels.iter().cloned());
                call = call.labels(labels);
            }
            let token = call.await?;
            show_token(io, &token, json)?;
        }
        TokenCommand::Regenerate(a) => {
            let mut call = client.regenerate_token(&a.id);
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
            print_secret(io, &created, json, "regenerated")?;
        }
        TokenCommand::Revoke(a) => {
            if let [id] = a.ids.as_slice() {
                let token = client.revoke_token(id).await?;
                if json {
                    output::json(io.stdout, &token)?;
                } else {
                    writeln!(io.stdout, "Revoked {} ({}).", token.id, token.name)?;
                }
            } else {
                let target = match &a.selector {
                    Some(s) => BulkRevoke::selector(s),
                    None => BulkRevoke::ids(a.ids.iter().cloned()),
                };
                let revoked = client.revoke_tokens(target).await?.revoked;
                if json {
                    output::json(io.stdout, &serde_json::json!({ "revoked": revoked }))?;
                } else {
                    let noun = if revoked == 1 { "token" } else { "tokens" };
                    writeln!(io.stdout, "Revoked {revoked} {noun}.")?;
                }
            }
        }
        TokenCommand::Delete(a) => {
            client.delete_token(&a.id).await?;
            if json {
                output::json(io.stdout, &serde_json::json!({ "deleted": a.id }))?;
            } else {
                writeln!(io.stdout, "Deleted {}.", a.id)?;
            }
        }
    }
    Ok(exit::OK)
}

fn show_token(io: &mut Io<'_>, token: &tokenops_client::Token, json: bool) -> Result<(), Failure> {
    if json {
        output::json(io.stdout, token)?;
    } else {
        output::token_detail(io.stdout, token, Utc::now())?;
    }
    Ok(())
}

/// Create and regenerate: the value alone on stdout (so `$(tokenops token create …)`
/// captures it), a warning on stderr. With JSON, token and value together.
fn print_secret(
    io: &mut Io<'_>,
    created: &CreatedToken,
    json: bool,
    verb: &str,
) -> Result<(), Failure> {
    if json {
        let doc = serde_json::json!({
            "token": created.token,
            "secret": created.secret.expose_secret(),
        });
        output::json(io.stdout, &doc)?;
    } else {
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
}
