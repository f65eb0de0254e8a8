//! The resource types the server knows: built-in kinds plus the ones installed by
//! CustomResourceDefinitions, and the discovery documents derived from them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{ApiError, Subject};

/// One served version of a resource type.
#[derive(Debug, Clone)]
pub(crate) struct VersionInfo {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// Whether `/status` is a separate subresource for this version.
    pub status: bool,
    /// The CRD's `openAPIV3Schema`, if any.
    pub schema: Option<Value>,
    /// The CRD's `additionalPrinterColumns` (what `kubectl get` shows).
    pub printer_columns: Vec<Value>,
}

/// A kind of object the server stores (group + plural identify it).
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub versions: Vec<VersionInfo>,
    /// The server maintains `metadata.generation` (bumped on non-metadata changes).
    pub generation: bool,
    /// `PUT` without `metadata.resourceVersion` is accepted (true for most built-ins,
    /// false for custom resources).
    pub unconditional_update: bool,
    /// Installed by a CRD (as opposed to built in).
    pub custom: bool,
}

/// Core `v1` Events and `events.k8s.io/v1` Events are one storage (as in
/// Kubernetes); objects are kept in the `events.k8s.io` shape. Field renames
/// between the two, as (core, events.k8s.io).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields(obj: &Value, to_storage: bool) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        for (core, new) in EVENT_FIELDS {
            let (from, to) = if to_storage { (core, new) } else { (new, core) };
            if let Some(v) = m.remove(*from) {
                m.insert(to.to_string(), v);
            }
        }
    }
    out
}

pub(crate) type TypeKey = (String, String);

impl ResourceType {
    pub fn key(&self) -> TypeKey {
        (self.group.clone(), self.plural.clone())
    }

    fn is_core_events(&self) -> bool {
        self.group.is_empty() && self.plural == "events"
    }

    /// Where objects of this type are stored (another type's storage for core Events).
    pub fn storage_group(&self) -> &str {
        if self.is_core_events() {
            "events.k8s.io"
        } else {
            &self.group
        }
    }

    /// The `apiVersion` objects are stored under (the storage version; for core
    /// Events, `events.k8s.io/v1`).
    pub fn storage_api_version(&self) -> String {
        let v = self
            .versions
            .iter()
            .find(|v| v.storage)
            .or(self.versions.first())
            .map(|v| v.name.as_str())
            .unwrap_or("v1");
        match self.storage_group() {
            "" => v.to_string(),
            g => format!("{g}/{v}"),
        }
    }

    /// Whether `obj` (stored shape) matches `sel` in the shape this type serves.
    pub fn selects(&self, sel: &crate::selector::Selector, obj: &Value) -> bool {
        if self.is_core_events() {
            sel.matches(&self.served_shape(obj))
        } else {
            sel.matches(obj)
        }
    }

    /// The object as stored, from the shape this type is served in.
    pub fn to_storage(&self, obj: Value) -> Value {
        if self.is_core_events() {
            rename_fields(&obj, true)
        } else {
            obj
        }
    }

    /// The object as this type serves it, from its stored shape.
    pub fn served_shape(&self, obj: &Value) -> Value {
        if self.is_core_events() {
            rename_fields(obj, false)
        } else {
            obj.clone()
        }
    }

    pub fn version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v && x.served)
    }

    pub fn has_status(&self, v: &str) -> bool {
        self.version(v).is_some_and(|x| x.status)
    }

    pub fn api_version(&self, v: &str) -> String {
        if self.group.is_empty() {
            v.to_string()
        } else {
            format!("{}/{}", self.group, v)
        }
    }

    pub fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject {
            group: &self.group,
            plural: &self.plural,
            kind: &self.kind,
            name,
        }
    }

    fn served_versions(&self) -> impl Iterator<Item = &VersionInfo> {
        self.versions.iter().filter(|v| v.served)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short: &'static [&'static str],
}

const BUILTINS: &[Builtin] = &[
    b("", "namespaces", "Namespace", false, true, false, &["ns"]),
    b("", "secrets", "Secret", true, false, false, &[]),
    b("", "configmaps", "ConfigMap", true, false, false, &["cm"]),
    b("", "events", "Event", true, false, false, &["ev"]),
    b(
        "",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        false,
        &["sa"],
    ),
    b("", "services", "Service", true, true, false, &["svc"]),
    b("", "pods", "Pod", true, true, false, &["po"]),
    b(
        "apps",
        "deployments",
        "Deployment",
        true,
        true,
        true,
        &["deploy"],
    ),
    b(
        "apps",
        "statefulsets",
        "StatefulSet",
        true,
        true,
        true,
        &["sts"],
    ),
    b("apps", "daemonsets", "DaemonSet", true, true, true, &["ds"]),
    b(
        "apps",
        "replicasets",
        "ReplicaSet",
        true,
        true,
        true,
        &["rs"],
    ),
    b(
        "coordination.k8s.io",
        "leases",
        "Lease",
        true,
        false,
        false,
        &[],
    ),
    b(
        "events.k8s.io",
        "events",
        "Event",
        true,
        false,
        false,
        &["ev"],
    ),
    b(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        true,
        &["crd", "crds"],
    ),
];

const fn b(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
        status,
        generation,
        short,
    }
}

/// The built-in resource types, keyed by (group, plural).
pub(crate) fn builtins() -> BTreeMap<TypeKey, Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            let rt = ResourceType {
                group: b.group.to_string(),
                plural: b.plural.to_string(),
                singular: b.kind.to_lowercase(),
                kind: b.kind.to_string(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: Vec::new(),
                versions: vec![VersionInfo {
                    name: b.version.to_string(),
                    served: true,
                    storage: true,
                    status: b.status,
                    schema: None,
                    printer_columns: Vec::new(),
                }],
                generation: b.generation,
                unconditional_update: true,
                custom: false,
            };
            (rt.key(), Arc::new(rt))
        })
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return Vec::new(),
        }
    }
    cur.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the resource type a CustomResourceDefinition declares, or explains (422)
/// why the definition is invalid.
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let subject = Subject {
        group: "apiextensions.k8s.io",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        name,
    };
    let invalid = |msg: &str| ApiError::invalid(subject, msg);
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default();
    if group.is_empty() {
        return Err(invalid("spec.group: Required value"));
    }
    if plural.is_empty() {
        return Err(invalid("spec.names.plural: Required value"));
    }
    if kind.is_empty() {
        return Err(invalid("spec.names.kind: Required value"));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(&format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        )));
    }
    let namespaced = match str_at(crd, &["spec", "scope"]) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(invalid(&format!(
                "spec.scope: Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            )));
        }
    };
    let versions: Vec<VersionInfo> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| VersionInfo {
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                    storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                    status: v.pointer("/subresources/status").is_some(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    printer_columns: v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions: Invalid value: must have at least one version",
        ));
    }
    if versions.iter().any(|v| v.name.is_empty()) {
        return Err(invalid("spec.versions[].name: Required value"));
    }
    if versions.iter().filter(|v| v.storage).count() != 1 {
        return Err(invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let singular = str_at(crd, &["spec", "names", "singular"])
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = str_at(crd, &["spec", "names", "listKind"])
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    Ok(ResourceType {
        group: group.to_string(),
        plural: plural.to_string(),
        singular,
        kind: kind.to_string(),
        list_kind,
        namespaced,
        short_names: strings_at(crd, &["spec", "names", "shortNames"]),
        categories: strings_at(crd, &["spec", "names", "categories"]),
        versions,
        generation: true,
        unconditional_update: false,
        custom: true,
    })
}

/// Orders versions the way Kubernetes prefers them: GA > beta > alpha, higher first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    let (stage, minor_str) = if tail.is_empty() {
        (3, "")
    } else if let Some(m) = tail.strip_prefix("beta") {
        (2, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (1, m)
    } else {
        return (0, 0, 0);
    };
    let minor = if minor_str.is_empty() {
        0
    } else {
        match minor_str.parse() {
            Ok(m) => m,
            Err(_) => return (0, 0, 0),
        }
    };
    (stage, major, minor)
}

/// Versions of a group, most preferred first.
fn group_versions<'a>(types: impl Iterator<Item = &'a Arc<ResourceType>>) -> Vec<String> {
    let mut vs: Vec<String> = Vec::new();
    for rt in types {
        for v in rt.served_versions() {
            if !vs.contains(&v.name) {
                vs.push(v.name.clone());
            }
        }
    }
    vs.sort_by(|a, b| version_priority(b).cmp(&version_priority(a)).then(a.cmp(b)));
    vs
}

/// `GET /apis/<group>` body, or `None` if the group is unknown.
pub(crate) fn api_group(
    types: &BTreeMap<TypeKey, Arc<ResourceType>>,
    group: &str,
) -> Option<Value> {
    let vs = group_versions(types.values().filter(|rt| rt.group == group));
    if vs.is_empty() || group.is_empty() {
        return None;
    }
    let gv = |v: &String| json!({ "groupVersion": format!("{group}/{v}"), "version": v });
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": vs.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&vs[0]),
    }))
}

/// `GET /apis` body.
pub(crate) fn api_group_list(types: &BTreeMap<TypeKey, Arc<ResourceType>>) -> Value {
    let mut groups: Vec<&str> = types
        .values()
        .map(|rt| rt.group.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    groups.sort_unstable();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .filter_map(|g| {
            let mut v = api_group(types, g)?;
            let obj = v.as_object_mut()?;
            obj.remove("kind");
            obj.remove("apiVersion");
            Some(v)
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /api/<v>` or `GET /apis/<group>/<v>` body, or `None` if nothing is served there.
pub(crate) fn api_resource_list(
    types: &BTreeMap<TypeKey, Arc<ResourceType>>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in types.values().filter(|rt| rt.group == group) {
        let Some(v) = rt.version(version) else {
            continue;
        };
        resources.push(json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": rt.short_names,
            "categories": rt.categories,
        }));
        if v.status {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// `GET /api` (core) or `GET /apis` body in the aggregated discovery format
/// (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`).
pub(crate) fn aggregated_discovery(
    types: &BTreeMap<TypeKey, Arc<ResourceType>>,
    core: bool,
) -> Value {
    let mut groups: Vec<&str> = types
        .values()
        .map(|rt| rt.group.as_str())
        .filter(|g| g.is_empty() == core)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let in_group: Vec<&Arc<ResourceType>> = types.values().filter(|rt| rt.group == g).collect();
            let versions: Vec<Value> = group_versions(in_group.iter().copied())
                .into_iter()
                .map(|v| {
                    let resources: Vec<Value> = in_group
                        .iter()
                        .filter_map(|rt| Some((rt, rt.version(&v)?)))
                        .map(|(rt, vi)| {
                            let gvk = json!({ "group": g, "version": v, "kind": rt.kind });
                            let subresources: Vec<Value> = if vi.status {
                                vec![json!({
                                    "subresource": "status",
                                    "responseKind": gvk,
                                    "verbs": ["get", "patch", "update"],
                                })]
                            } else {
                                Vec::new()
                            };
                            json!({
                                "resource": rt.plural,
                                "responseKind": gvk,
                                "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": rt.singular,
                                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                                "shortNames": rt.short_names,
                                "categories": rt.categories,
                                "subresources": subresources,
                            })
                        })
                        .collect();
                    json!({ "version": v, "resources": resources, "freshness": "Current" })
                })
                .collect();
            json!({ "metadata": { "name": g }, "versions": versions })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `GET /api` body.
pub(crate) fn core_api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
    })
}

/// `GET /version` body.
pub(crate) fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "gitVersion": "v1.37.0-memserver",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_ga_then_beta_then_alpha() {
        let mut vs = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            vs,
            vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
