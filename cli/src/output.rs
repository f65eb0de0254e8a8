//! How results are shown: tables and relative times for people, ids for
//! `-o name`, JSON and YAML documents for scripts.

use std::collections::HashMap;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokenops_client::{AuditEvent, Resources, Token, VerifyResponse};

use crate::args::Output;
use crate::table::{Column, Fit, Table};

/// Where a view is written and how wide it may be.
pub struct View<'a> {
    pub out: &'a mut dyn Write,
    /// The terminal's width, or `None` when stdout is not a terminal.
    pub width: Option<usize>,
    pub now: DateTime<Utc>,
    pub format: Output,
}

impl View<'_> {
    fn wide(&self) -> bool {
        self.format == Output::Wide
    }

    /// Tables are fitted to the terminal, except wide ones.
    fn fit_width(&self) -> Option<usize> {
        if self.wide() { None } else { self.width }
    }
}

/// Writes `value` as a JSON or YAML document; `false` for the other formats.
pub fn document<T: Serialize + ?Sized>(
    out: &mut dyn Write,
    format: Output,
    value: &T,
) -> io::Result<bool> {
    match format {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            writeln!(out)?;
        }
        Output::Yaml => {
            let text = yaml_serde::to_string(value).map_err(io::Error::other)?;
            out.write_all(text.as_bytes())?;
        }
        Output::Table | Output::Wide | Output::Name => return Ok(false),
    }
    Ok(true)
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

/// An exact time, to the second, in UTC.
pub fn exact(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Relative in a table, exact in a wide one.
fn when(view: &View<'_>, t: Option<DateTime<Utc>>, none: &str) -> String {
    match t {
        Some(t) if view.wide() => exact(t),
        Some(t) => relative(t, view.now),
        None => none.to_string(),
    }
}

fn absolute_and_relative(t: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> String {
    match t {
        Some(t) => format!("{} ({})", exact(t), relative(t, now)),
        None => none.to_string(),
    }
}

/// "read-only", "billing:read, usage:read", or "read-only + tokens:read".
pub fn permissions(token: &Token) -> String {
    let scopes = token.scopes.join(",");
    match (&token.role, scopes.is_empty()) {
        (Some(role), true) => role.clone(),
        (Some(role), false) => format!("{role}+{scopes}"),
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
            .join(","),
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
        .join(",")
}

/// The list view: one row per token, the columns a token dashboard shows;
/// `-o wide` adds resources, project and labels and gives exact dates.
pub fn token_list(view: &mut View<'_>, tokens: &[Token]) -> io::Result<()> {
    if view.format == Output::Name {
        for t in tokens {
            writeln!(view.out, "{}", t.id)?;
        }
        return Ok(());
    }
    if tokens.is_empty() {
        return writeln!(view.out, "No tokens found.");
    }
    let mut columns = vec![
        Column::new("ID", Fit::Keep),
        Column::new("NAME", Fit::Shrink),
        Column::new("TOKEN", Fit::Optional { drop: 2 }),
        Column::new("PERMISSIONS", Fit::ShrinkOrDrop { drop: 4 }),
    ];
    if view.wide() {
        columns.push(Column::new("RESOURCES", Fit::Keep));
        columns.push(Column::new("PROJECT", Fit::Keep));
    }
    columns.extend([
        Column::new("STATUS", Fit::Keep),
        Column::new("CREATED", Fit::Optional { drop: 1 }),
        Column::new("EXPIRES", Fit::Optional { drop: 5 }),
        Column::new("LAST USED", Fit::Optional { drop: 3 }),
    ]);
    if view.wide() {
        columns.push(Column::new("LABELS", Fit::Keep));
    }
    let mut table = Table::new(columns);
    for token in tokens {
        let mut row = vec![
            token.id.clone(),
            token.name.clone(),
            token.masked.clone(),
            permissions(token),
        ];
        if view.wide() {
            row.push(resources(&token.resources));
            row.push(token.project.clone());
        }
        row.extend([
            token.status.to_string(),
            when(view, Some(token.created_at), "-"),
            when(view, token.expires_at, "never"),
            when(view, token.last_used_at, "never"),
        ]);
        if view.wide() {
            row.push(labels(token));
        }
        table.row(row);
    }
    let width = view.fit_width();
    table.write(view.out, width)
}

/// One token: `-o name` prints its id, the table formats every field, one per line.
pub fn token(view: &mut View<'_>, token: &Token) -> io::Result<()> {
    if view.format == Output::Name {
        return writeln!(view.out, "{}", token.id);
    }
    let now = view.now;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows: Vec<(&str, String)> = vec![
        ("id", token.id.clone()),
        ("name", token.name.clone()),
        ("description", or_dash(&token.description)),
        ("project", token.project.clone()),
        ("token", token.masked.clone()),
        ("status", token.status.to_string()),
        ("role", or_dash(&token.role)),
        (
            "scopes",
            if token.scopes.is_empty() {
                "-".into()
            } else {
                token.scopes.join(", ")
            },
        ),
        ("resources", resources(&token.resources).replace(',', ", ")),
        ("labels", labels(token).replace(',', ", ")),
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
    if let Some(at) = token.revoked_at {
        rows.push(("revoked", absolute_and_relative(Some(at), now, "-")));
    }
    if let Some(at) = token.previous_valid_until {
        rows.push((
            "old value valid until",
            absolute_and_relative(Some(at), now, "-"),
        ));
    }
    fields(view.out, &rows)
}

/// `key:  value` lines with the values aligned.
pub fn fields(out: &mut dyn Write, rows: &[(&str, String)]) -> io::Result<()> {
    let key_width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in rows {
        writeln!(out, "{:<key_width$}  {v}", format!("{k}:"))?;
    }
    Ok(())
}

/// The outcome of verify: the code on the first line, then what the token may do.
pub fn verify(view: &mut View<'_>, answer: &VerifyResponse) -> io::Result<()> {
    if view.format == Output::Name {
        if let Some(token) = &answer.token {
            writeln!(view.out, "{}", token.id)?;
        }
        return Ok(());
    }
    let code = serde_json::to_value(answer.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", answer.code));
    writeln!(view.out, "{code}")?;
    if let Some(token) = &answer.token {
        let mut rows = vec![
            (
                "token",
                format!("{} ({}, {})", token.id, token.name, token.masked),
            ),
            ("project", token.project.clone()),
            ("permissions", token.permissions.join(", ")),
            ("resources", resources(&token.resources).replace(',', ", ")),
        ];
        if let Some(at) = token.expires_at {
            rows.push(("expires", exact(at)));
        }
        fields(view.out, &rows)?;
    }
    Ok(())
}

/// The audit log as a table, in the order given (newest first). Actors and
/// tokens are shown by name where `names` knows them, by id otherwise.
pub fn audit(
    view: &mut View<'_>,
    events: &[AuditEvent],
    names: &HashMap<String, String>,
) -> io::Result<()> {
    if view.format == Output::Name {
        for e in events {
            writeln!(view.out, "{}", e.id)?;
        }
        return Ok(());
    }
    if events.is_empty() {
        return writeln!(view.out, "No audit events found.");
    }
    let name_of = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut columns = vec![
        Column::new("WHEN", Fit::Keep),
        Column::new("ACTOR", Fit::Shrink),
    ];
    if view.wide() {
        columns.push(Column::new("ACTOR ID", Fit::Keep));
    }
    columns.extend([
        Column::new("ACTION", Fit::Keep),
        Column::new("TOKEN", Fit::Keep),
    ]);
    if view.wide() {
        columns.push(Column::new("TOKEN NAME", Fit::Keep));
        columns.push(Column::new("PROJECT", Fit::Keep));
    }
    columns.push(Column::new("DETAIL", Fit::ShrinkOrDrop { drop: 1 }));
    let mut table = Table::new(columns);
    for e in events {
        let detail = match &e.detail {
            serde_json::Value::Null => String::new(),
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        let token = e.token_id.clone().unwrap_or_default();
        let mut row = vec![when(view, Some(e.at), "-"), name_of(&e.actor)];
        if view.wide() {
            row.push(e.actor.clone());
        }
        row.extend([e.action.clone(), token.clone()]);
        if view.wide() {
            row.push(
                e.token_id
                    .as_deref()
                    .and_then(|id| names.get(id).cloned())
                    .unwrap_or_default(),
            );
            row.push(e.project.clone());
        }
        row.push(detail);
        table.row(row);
    }
    let width = view.fit_width();
    table.write(view.out, width)
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

    #[test]
    fn yaml_and_json_documents_carry_the_same_fields() {
        let value = serde_json::json!({"items": [{"id": "tok_1", "name": "a"}]});
        let mut json = Vec::new();
        assert!(document(&mut json, Output::Json, &value).unwrap());
        let mut yaml = Vec::new();
        assert!(document(&mut yaml, Output::Yaml, &value).unwrap());
        let back: serde_json::Value = yaml_serde::from_slice(&yaml).unwrap();
        assert_eq!(back, value);
        assert!(!document(&mut Vec::new(), Output::Table, &value).unwrap());
    }
}
