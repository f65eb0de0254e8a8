//! Label and field selectors, as used by list and watch requests.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, PartialEq)]
enum FieldReq {
    Eq(String, String),
    NotEq(String, String),
}

/// A parsed `labelSelector` plus `fieldSelector`; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn parse_label(part: &str) -> Result<LabelReq, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key.trim().to_string()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim().to_string();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(LabelReq::Exists(key));
    }
    if let Some(r) = rest.strip_prefix("notin") {
        return Ok(LabelReq::NotIn(key, set_values(r).ok_or_else(bad)?));
    }
    if let Some(r) = rest.strip_prefix("in") {
        return Ok(LabelReq::In(key, set_values(r).ok_or_else(bad)?));
    }
    Err(bad())
}

fn parse_field(part: &str) -> Result<FieldReq, ApiError> {
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(FieldReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(FieldReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(FieldReq::Eq(k.trim().into(), v.trim().into()));
    }
    Err(ApiError::bad_request(format!(
        "invalid selector: '{part}'; can't understand '{part}'"
    )))
}

/// The string value of a dotted field path (missing or null reads as "").
fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Selector {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        Ok(Self {
            labels: labels
                .map(split_top)
                .unwrap_or_default()
                .into_iter()
                .map(parse_label)
                .collect::<Result<_, _>>()?,
            fields: fields
                .map(split_top)
                .unwrap_or_default()
                .into_iter()
                .map(parse_field)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|r| match r {
                FieldReq::Eq(k, v) => field_value(obj, k) == *v,
                FieldReq::NotEq(k, v) => field_value(obj, k) != *v,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_requirements_combine() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x", "tier": "db"}}});
        let m = |l: Option<&str>, f: Option<&str>| Selector::parse(l, f).unwrap().matches(&obj);
        assert!(m(None, None));
        assert!(m(Some("app=x"), None));
        assert!(m(Some("app==x,tier in (db, web)"), None));
        assert!(!m(Some("app=x,tier notin (db)"), None));
        assert!(m(Some("app,!missing"), None));
        assert!(!m(Some("missing"), None));
        assert!(m(
            Some("app!=y"),
            Some("metadata.name=a,metadata.namespace==ns")
        ));
        assert!(!m(None, Some("metadata.name!=a")));
        assert!(Selector::parse(None, Some("nonsense")).is_err());
    }
}
