//! How results are shown: tables and relative times for people, JSON for scripts.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use tokenops_client::{AuditEvent, Resources, Token, VerifyResponse};

/// Writes `value` as pretty JSON followed by a newline.
pub fn json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .apply_modifier(comfy_table::modifiers::UTF8_ROUND_CORNERS)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// "3d ago", "in 5h", "just now".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let past = secs < 0;
    let abs = secs.unsigned_abs();
    if abs < 60 {
        return "just now".to_string();
    }
    // Round to the nearest unit, so a fresh 30-day token reads "in 30d", not "in 29d".
    let nearest = |unit: u64| (abs + unit / 2) / unit;
    let amount = if nearest(60) < 60 {
        format!("{}m", nearest(60))
    } else if nearest(3600) < 24 {
        format!("{}h", nearest(3600))
    } else if nearest(86_400) < 365 {
        format!("{}d", nearest(86_400))
    } else {
        format!("{}y", nearest(86_400 * 365).max(1))
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

fn relative_or(t: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> String {
    t.map(|t| relative(t, now))
        .unwrap_or_else(|| none.to_string())
}

fn absolute_and_relative(t: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> String {
    match t {
        Some(t) => format!(
            "{} ({})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            relative(t, now)
        ),
        None => none.to_string(),
    }
}

/// "read-only", "billing:read, usage:read", or "read-only + tokens:read".
pub fn permissions(token: &Token) -> String {
    let scopes = token.scopes.join(", ");
    match (&token.role, scopes.is_empty()) {
        (Some(role), true) => role.clone(),
        (Some(role), false) => format!("{role} + {scopes}"),
        (None, false) => scopes,
        (None, true) => "-".to_string(),
    }
}

fn resources(r: &Resources) -> String {
    match r {
        Resources::All(_) => "all".to_string(),
        Resources::List(items) => items
            .iter()
            .map(|r| format!("{}={}", r.kind, r.id))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn labels(token: &Token) -> String {
    if token.labels.is_empty() {
        return "-".to_string();
    }
    token
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The list view: one row per token, the columns a token dashboard shows.
pub fn token_table(out: &mut dyn Write, tokens: &[Token], now: DateTime<Utc>) -> io::Result<()> {
    if tokens.is_empty() {
        return writeln!(out, "No tokens found.");
    }
    let mut t = table();
    t.set_header([
        "ID",
        "NAME",
        "TOKEN",
        "PERMISSIONS",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for token in tokens {
        t.add_row([
            token.id.clone(),
            token.name.clone(),
            token.masked.clone(),
            permissions(token),
            token.status.to_string(),
            relative(token.created_at, now),
            relative_or(token.expires_at, now, "never"),
            relative_or(token.last_used_at, now, "never"),
        ]);
    }
    writeln!(out, "{t}")
}

/// The detail view of one token: field and value.
pub fn token_detail(out: &mut dyn Write, token: &Token, now: DateTime<Utc>) -> io::Result<()> {
    let mut t = table();
    let rows: Vec<(&str, String)> = vec![
        ("id", token.id.clone()),
        ("name", token.name.clone()),
        (
            "description",
            token.description.clone().unwrap_or_else(|| "-".into()),
        ),
        ("project", token.project.clone()),
        ("token", token.masked.clone()),
        ("status", token.status.to_string()),
        ("role", token.role.clone().unwrap_or_else(|| "-".into())),
        (
            "scopes",
            if token.scopes.is_empty() {
                "-".into()
            } else {
                token.scopes.join(", ")
            },
        ),
        ("resources", resources(&token.resources)),
        ("labels", labels(token)),
        (
            "created",
            absolute_and_relative(Some(token.created_at), now, "-"),
        ),
        (
            "expires",
            absolute_and_relative(token.expires_at, now, "never"),
        ),
        (
            "last used",
            absolute_and_relative(token.last_used_at, now, "never"),
        ),
        (
            "regenerated",
            absolute_and_relative(token.regenerated_at, now, "never"),
        ),
        ("generation", token.generation.to_string()),
    ];
    for (k, v) in rows {
        t.add_row([k.to_string(), v]);
    }
    if let Some(at) = token.revoked_at {
        t.add_row([
            "revoked".to_string(),
            absolute_and_relative(Some(at), now, "-"),
        ]);
    }
    if let Some(at) = token.previous_valid_until {
        t.add_row([
            "old value valid until".to_string(),
            absolute_and_relative(Some(at), now, "-"),
        ]);
    }
    writeln!(out, "{t}")
}

/// The outcome of verify: the code on the first line, then what the token may do.
pub fn verify(out: &mut dyn Write, answer: &VerifyResponse) -> io::Result<()> {
    let code = serde_json::to_value(answer.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", answer.code));
    writeln!(out, "{code}")?;
    if let Some(token) = &answer.token {
        writeln!(
            out,
            "token:       {} ({}, {})",
            token.id, token.name, token.masked
        )?;
        writeln!(out, "project:     {}", token.project)?;
        writeln!(out, "permissions: {}", token.permissions.join(", "))?;
        writeln!(out, "resources:   {}", resources(&token.resources))?;
        if let Some(at) = token.expires_at {
            writeln!(
                out,
                "expires:     {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )?;
        }
    }
    Ok(())
}

/// The audit log as a table.
pub fn audit_table(
    out: &mut dyn Write,
    events: &[AuditEvent],
    now: DateTime<Utc>,
) -> io::Result<()> {
    if events.is_empty() {
        return writeln!(out, "No audit events found.");
    }
    let mut t = table();
    t.set_header(["WHEN", "ACTOR", "ACTION", "TOKEN", "DETAIL"]);
    for e in events {
        let detail = match &e.detail {
            serde_json::Value::Null => String::new(),
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        t.add_row([
            format!(
                "{} ({})",
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                relative(e.at, now)
            ),
            e.actor.clone(),
            e.action.clone(),
            e.token_id.clone().unwrap_or_else(|| "-".into()),
            detail,
        ]);
    }
    writeln!(out, "{t}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - TimeDelta::minutes(5), now), "5m ago");
        assert_eq!(relative(now + TimeDelta::hours(3), now), "in 3h");
        assert_eq!(
            relative(now + TimeDelta::days(29) + TimeDelta::hours(1), now),
            "in 29d"
        );
        assert_eq!(relative(now - TimeDelta::days(800), now), "2y ago");
        assert_eq!(
            relative(now + TimeDelta::days(30) - TimeDelta::seconds(5), now),
            "in 30d"
        );
        assert_eq!(relative(now - TimeDelta::seconds(3599), now), "1h ago");
        assert_eq!(relative(now - TimeDelta::seconds(89), now), "1m ago");
    }
}
