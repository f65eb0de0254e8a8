//! Server-side printing: a custom resource (or a list of them) as a
//! `meta.k8s.io/v1` `Table`, the way the API server answers `kubectl get`
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`). Columns are
//! `Name` and the CRD's `additionalPrinterColumns`; a `date` cell is printed as
//! an age (`5m`, `3d`), so a time in the future reads `<invalid>` — as in
//! Kubernetes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Whether the client asked for a `Table` (kubectl does; it also accepts JSON).
pub(crate) fn wanted(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// `body` (an object or a list) as a `Table` with `columns` (a CRD version's
/// `additionalPrinterColumns`); `include_object` is the `includeObject` query
/// parameter (`None`, `Object`, or the default `Metadata`).
pub(crate) fn convert(
    body: &Value,
    columns: &[Value],
    include_object: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    if body.get("kind").and_then(Value::as_str) == Some("Status") {
        return body.clone();
    }
    let default_age =
        [json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    let columns = if columns.is_empty() {
        &default_age[..]
    } else {
        columns
    };
    let mut definitions = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    definitions.extend(columns.iter().map(|c| {
        json!({
            "name": c.get("name").cloned().unwrap_or(json!("")),
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        })
    }));
    let items: Vec<&Value> = match body.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![body],
    };
    let rows: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let mut cells = vec![
                item.pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            cells.extend(columns.iter().map(|c| cell(c, item, now)));
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => item.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = body.pointer("/metadata/resourceVersion") {
        metadata["resourceVersion"] = rv.clone();
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// One cell: the first value the column's JSONPath finds, printed by its type.
fn cell(column: &Value, object: &Value, now: DateTime<Utc>) -> Value {
    let path = column.get("jsonPath").and_then(Value::as_str).unwrap_or("");
    let Some(value) = json_path(object, path).into_iter().next() else {
        return Value::Null;
    };
    match column
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
    {
        "string" => match value {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        "integer" => value.as_i64().map_or(Value::Null, |n| json!(n)),
        "number" => value.as_f64().map_or(Value::Null, |n| json!(n)),
        "boolean" => value.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match value.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => json!(human_duration(now - t.with_timezone(&Utc))),
            Some(Err(_)) => json!("<invalid>"),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// The values a simple JSONPath (`.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`) selects in `root`.
fn json_path<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![root];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Vec::new();
            };
            let selector = &after[..end];
            rest = &after[end + 1..];
            let elements = current
                .into_iter()
                .filter_map(Value::as_array)
                .flat_map(|a| a.iter());
            current = if selector == "*" {
                elements.collect()
            } else if let Ok(i) = selector.parse::<usize>() {
                elements.skip(i).take(1).collect()
            } else if let Some(filter) = selector
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                let Some((field, wanted)) = filter.split_once("==") else {
                    return Vec::new();
                };
                let wanted = wanted.trim().trim_matches(['"', '\'']);
                elements
                    .filter(|e| e.get(field.trim()).and_then(Value::as_str) == Some(wanted))
                    .collect()
            } else {
                return Vec::new();
            };
        } else {
            return Vec::new();
        }
    }
    current
}

/// An elapsed time as Kubernetes prints ages (`HumanDuration`): `<invalid>`
/// for more than a second in the future.
fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(59)), "59s");
        assert_eq!(human_duration(s(150)), "2m30s");
        assert_eq!(human_duration(s(3 * 3600 + 60)), "3h1m");
        assert_eq!(human_duration(s(3 * 86400 + 3600)), "3d1h");
        assert_eq!(human_duration(s(-1)), "0s");
        assert_eq!(human_duration(s(-3600)), "<invalid>");
    }

    #[test]
    fn a_future_time_in_a_date_column_reads_invalid_and_as_a_string_reads_as_written() {
        let now = Utc::now();
        let later = (now + chrono::Duration::days(30)).to_rfc3339();
        let object = json!({
            "metadata": {"name": "t", "creationTimestamp": (now - chrono::Duration::hours(5)).to_rfc3339()},
            "status": {"expiresAt": later, "conditions": [
                {"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
        });
        let columns = [
            json!({"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}),
            json!({"name": "Expires", "type": "date", "jsonPath": ".status.expiresAt"}),
            json!({"name": "Expires", "type": "string", "jsonPath": ".status.expiresAt"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".status.renewalTime"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let table = convert(&object, &columns, None, now);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["t", "True", "<invalid>", later, null, "5h"])
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["columnDefinitions"][2]["name"], "Expires");
    }
}
