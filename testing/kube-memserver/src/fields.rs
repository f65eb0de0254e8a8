//! Field ownership for `metadata.managedFields` and server-side apply.
//!
//! A field set is a set of leaf paths. Maps are tracked key by key; lists and
//! scalars are atomic (a list is owned as a whole, which is a simplification of
//! Kubernetes' associative lists).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

pub(crate) type Path = Vec<String>;
pub(crate) type FieldSet = BTreeSet<Path>;

/// Paths the server owns itself; never attributed to a manager.
fn ignored(p: &[String]) -> bool {
    match p {
        [a] => a == "apiVersion" || a == "kind",
        [m, f, ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Whether `p` belongs to the part of the object a write to `subresource` may touch.
pub(crate) fn in_scope(p: &[String], subresource: &str, has_status: bool) -> bool {
    if ignored(p) {
        return false;
    }
    let is_status = p.first().is_some_and(|f| f == "status");
    if subresource == "status" {
        is_status
    } else {
        !(has_status && is_status)
    }
}

fn collect_leaves(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect_leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// All leaf paths of `v` (an empty map counts as a leaf).
pub(crate) fn leaf_paths(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect_leaves(v, &mut Vec::new(), &mut out);
    out
}

fn diff_into(
    old: &Value,
    new: &Value,
    prefix: &mut Path,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !o.is_empty() && !n.is_empty() => {
            for (k, nv) in n {
                prefix.push(k.clone());
                match o.get(k) {
                    Some(ov) => diff_into(ov, nv, prefix, changed, removed),
                    None => collect_leaves(nv, prefix, changed),
                }
                prefix.pop();
            }
            for (k, ov) in o {
                if !n.contains_key(k) {
                    prefix.push(k.clone());
                    collect_leaves(ov, prefix, removed);
                    prefix.pop();
                }
            }
        }
        _ if old == new => {}
        _ => {
            let mut old_leaves = FieldSet::new();
            collect_leaves(old, prefix, &mut old_leaves);
            collect_leaves(new, prefix, changed);
            removed.extend(old_leaves.into_iter().filter(|p| !changed.contains(p)));
        }
    }
}

/// Leaf paths that were added or changed, and leaf paths that were removed.
pub(crate) fn diff_paths(old: &Value, new: &Value) -> (FieldSet, FieldSet) {
    let (mut changed, mut removed) = (FieldSet::new(), FieldSet::new());
    diff_into(old, new, &mut Vec::new(), &mut changed, &mut removed);
    (changed, removed)
}

/// One path is a prefix of the other (they name overlapping parts of the object).
pub(crate) fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

pub(crate) fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, seg| cur.get(seg))
}

/// Removes the field at `p`, then any maps left empty above it.
pub(crate) fn remove_path(v: &mut Value, p: &[String]) {
    fn go(v: &mut Value, p: &[String]) -> bool {
        let Some(m) = v.as_object_mut() else {
            return false;
        };
        match p {
            [] => false,
            [last] => m.remove(last).is_some(),
            [first, rest @ ..] => {
                let Some(child) = m.get_mut(first) else {
                    return false;
                };
                let removed = go(child, rest);
                if removed && child.as_object().is_some_and(Map::is_empty) {
                    m.remove(first);
                }
                removed
            }
        }
    }
    go(v, p);
}

/// Recursively merges `patch` into `target`: maps merge, everything else replaces,
/// and `null` removes.
pub(crate) fn deep_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    t.remove(k);
                } else if let Some(tv) = t.get_mut(k) {
                    deep_merge(tv, pv);
                } else {
                    t.insert(k.clone(), pv.clone());
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manager {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Manager {
    pub fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn v1_to_fields(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else {
        return;
    };
    if m.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, child) in m {
        if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_string());
            v1_to_fields(child, prefix, out);
            prefix.pop();
        } else if k != "." && !prefix.is_empty() {
            // List element keys (k:/v:/i:): the list is tracked atomically here.
            out.insert(prefix.clone());
        }
    }
}

fn fields_to_v1(fs: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in fs {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are maps")
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

pub(crate) fn parse_managed(obj: &Value) -> Vec<Manager> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                v1_to_fields(f, &mut Vec::new(), &mut fields);
            }
            Manager {
                manager: s("manager"),
                operation: s("operation"),
                subresource: s("subresource"),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

pub(crate) fn render_managed(ms: &[Manager]) -> Value {
    Value::Array(
        ms.iter()
            .filter(|m| !m.fields.is_empty())
            .map(|m| {
                let mut e = json!({
                    "manager": m.manager,
                    "operation": m.operation,
                    "apiVersion": m.api_version,
                    "time": m.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields_to_v1(&m.fields),
                });
                if !m.subresource.is_empty() {
                    e["subresource"] = json!(m.subresource);
                }
                e
            })
            .collect(),
    )
}

/// Records an `Update`-style write by `manager`: it takes over every field it
/// changed; removed fields are dropped from every manager.
pub(crate) fn record_update(
    managers: &mut Vec<Manager>,
    old: &Value,
    new: &Value,
    scope: impl Fn(&[String]) -> bool,
    who: (&str, &str, &str),
    now: &str,
) {
    let (manager, subresource, api_version) = who;
    let (changed, removed) = diff_paths(old, new);
    let changed: FieldSet = changed.into_iter().filter(|p| scope(p)).collect();
    let removed: FieldSet = removed.into_iter().filter(|p| scope(p)).collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for m in managers.iter_mut() {
        let before = m.fields.len();
        m.fields.retain(|q| {
            !removed.iter().any(|r| q.starts_with(r)) && !changed.iter().any(|c| overlaps(c, q))
        });
        if m.fields.len() != before {
            m.time = now.to_string();
        }
    }
    let idx = match managers
        .iter()
        .position(|m| m.is(manager, "Update", subresource))
    {
        Some(i) => i,
        None => {
            managers.push(Manager {
                manager: manager.to_string(),
                operation: "Update".into(),
                subresource: subresource.to_string(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                fields: FieldSet::new(),
            });
            managers.len() - 1
        }
    };
    let me = &mut managers[idx];
    me.fields.extend(changed);
    me.time = now.to_string();
    me.api_version = api_version.to_string();
    managers.retain(|m| !m.fields.is_empty());
}

/// A field another manager owns with a different value than the applied one.
#[derive(Debug, Clone)]
pub(crate) struct ApplyConflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

/// Server-side apply of `config` (already restricted to the subresource's scope)
/// by `manager` onto `current`. Returns the merged object and the new manager
/// list, or the conflicts when `force` is false.
pub(crate) fn apply(
    current: &Value,
    config: &Value,
    managers: &[Manager],
    scope: impl Fn(&[String]) -> bool,
    who: (&str, &str, &str),
    force: bool,
    now: &str,
) -> Result<(Value, Vec<Manager>), Vec<ApplyConflict>> {
    let (manager, subresource, api_version) = who;
    let applied: FieldSet = leaf_paths(config)
        .into_iter()
        .filter(|p| {
            scope(p)
                && !get_path(config, p).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
        })
        .collect();
    let mut managers: Vec<Manager> = managers.to_vec();
    let mine = managers
        .iter()
        .position(|m| m.is(manager, "Apply", subresource));

    // Conflicts: another manager owns an overlapping field whose value differs.
    let mut conflicts = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        for q in &m.fields {
            for p in applied.iter().filter(|p| overlaps(p, q)) {
                if get_path(current, p) != get_path(config, p) {
                    conflicts.push(ApplyConflict {
                        manager: m.manager.clone(),
                        api_version: m.api_version.clone(),
                        path: p.clone(),
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        for (i, m) in managers.iter_mut().enumerate() {
            if Some(i) == mine {
                continue;
            }
            let before = m.fields.len();
            m.fields.retain(|q| {
                !applied
                    .iter()
                    .any(|p| overlaps(p, q) && get_path(current, p) != get_path(config, p))
            });
            if m.fields.len() != before {
                m.time = now.to_string();
            }
        }
    }

    // Fields this manager applied before but no longer does, and nobody else owns, go away.
    let mut merged = current.clone();
    if let Some(i) = mine {
        let dropped: Vec<Path> = managers[i]
            .fields
            .iter()
            .filter(|q| !applied.iter().any(|p| overlaps(p, q)))
            .cloned()
            .collect();
        for q in dropped {
            let owned_elsewhere = managers
                .iter()
                .enumerate()
                .any(|(j, m)| j != i && m.fields.iter().any(|o| overlaps(o, &q)));
            if !owned_elsewhere {
                remove_path(&mut merged, &q);
            }
        }
    }
    let scoped = restrict(config, &scope);
    deep_merge(&mut merged, &scoped);

    match mine {
        Some(i) => {
            if managers[i].fields != applied {
                managers[i].fields = applied;
                managers[i].time = now.to_string();
            }
            managers[i].api_version = api_version.to_string();
        }
        None => managers.push(Manager {
            manager: manager.to_string(),
            operation: "Apply".into(),
            subresource: subresource.to_string(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: applied,
        }),
    }
    // Fields the merge removed (explicit nulls) leave every other manager too.
    let (_, removed) = diff_paths(current, &merged);
    for m in managers.iter_mut() {
        m.fields
            .retain(|q| !removed.iter().any(|r| q.starts_with(r)));
    }
    managers.retain(|m| !m.fields.is_empty());
    Ok((merged, managers))
}

/// The part of `v` whose leaf paths are in scope.
fn restrict(v: &Value, scope: &impl Fn(&[String]) -> bool) -> Value {
    let mut out = Value::Object(Map::new());
    for p in leaf_paths(v) {
        if !scope(&p) {
            continue;
        }
        let leaf = get_path(v, &p).cloned().unwrap_or(Value::Null);
        let mut cur = &mut out;
        for (i, seg) in p.iter().enumerate() {
            let m = cur.as_object_mut().expect("restricted nodes are maps");
            if i + 1 == p.len() {
                m.insert(seg.clone(), leaf.clone());
                break;
            }
            cur = m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn fields_v1_round_trips() {
        let fs: FieldSet = [p("spec.a"), p("spec.b.c"), p("metadata.labels.x")].into();
        let v = fields_to_v1(&fs);
        assert_eq!(v["f:spec"]["f:b"]["f:c"], json!({}));
        let mut back = FieldSet::new();
        v1_to_fields(&v, &mut Vec::new(), &mut back);
        assert_eq!(back, fs);
    }

    #[test]
    fn diff_reports_changed_and_removed_leaves() {
        let old = json!({"spec": {"a": 1, "b": {"c": 2}, "d": [1]}});
        let new = json!({"spec": {"a": 2, "d": [1], "e": "x"}});
        let (changed, removed) = diff_paths(&old, &new);
        assert_eq!(changed, [p("spec.a"), p("spec.e")].into());
        assert_eq!(removed, [p("spec.b.c")].into());
    }

    #[test]
    fn apply_conflicts_unless_forced_and_drops_fields_no_longer_applied() {
        let all = |_: &[String]| true;
        let now = "t";
        let cur = json!({"spec": {"a": 1}});
        let (obj, ms) = apply(
            &cur,
            &json!({"spec": {"a": 1, "b": 2}}),
            &[],
            all,
            ("one", "", "v1"),
            false,
            now,
        )
        .unwrap();
        assert_eq!(obj, json!({"spec": {"a": 1, "b": 2}}));
        let err = apply(
            &obj,
            &json!({"spec": {"b": 3}}),
            &ms,
            all,
            ("two", "", "v1"),
            false,
            now,
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "one");
        let (obj, ms) = apply(
            &obj,
            &json!({"spec": {"b": 3}}),
            &ms,
            all,
            ("two", "", "v1"),
            true,
            now,
        )
        .unwrap();
        assert_eq!(obj["spec"]["b"], 3);
        // "one" stops applying a: it is removed since nobody else owns it.
        let (obj, _) = apply(
            &obj,
            &json!({"spec": {}}),
            &ms,
            all,
            ("one", "", "v1"),
            false,
            now,
        )
        .unwrap();
        assert_eq!(obj, json!({"spec": {"b": 3}}));
    }
}
