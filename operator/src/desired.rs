//! The validate step: an `ApiToken`'s spec into the [`Desired`] token, or a
//! message saying what is wrong with it. Checks what the CRD schema cannot
//! (durations, the `resources` union) so the same rules hold without CEL.

use kube::ResourceExt;
use tokenops_client::rotation::RenewBefore;
use tokenops_client::{Resources, parse_duration};

use crate::ANNOTATION_ROTATE;
use crate::crd::ApiToken;
use crate::decide::Desired;

/// Builds the desired token for `tok` on the backend `backend` (`<kind>/<ns>/<name>`)
/// whose `spec.project` is `project`.
pub fn desired(tok: &ApiToken, backend: &str, project: Option<&str>) -> Result<Desired, String> {
    let spec = &tok.spec;
    let uid = tok.uid().ok_or("the ApiToken has no UID yet")?;
    let duration = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_duration(s).map_err(|e| format!("spec.{field}: {e}")))
            .transpose()
    };
    let lifetime = duration("lifetime", &spec.lifetime)?;
    let grace_period = duration("gracePeriod", &spec.grace_period)?;
    if lifetime.is_some_and(|l| l.is_zero()) {
        return Err("spec.lifetime must be longer than 0".into());
    }
    let renew_before = match (&spec.renew_before, spec.renew_before_percentage) {
        (Some(_), Some(_)) => {
            return Err(
                "set at most one of spec.renewBefore and spec.renewBeforePercentage".into(),
            );
        }
        (Some(d), None) => Some(RenewBefore::Duration(
            parse_duration(d).map_err(|e| format!("spec.renewBefore: {e}"))?,
        )),
        (None, Some(p)) => Some(
            RenewBefore::percentage(f64::from(p))
                .map_err(|e| format!("spec.renewBeforePercentage: {e}"))?,
        ),
        (None, None) => None,
    };
    if let Some(l) = lifetime {
        if grace_period.is_some_and(|g| g >= l) {
            return Err("spec.gracePeriod must be shorter than spec.lifetime".into());
        }
        if let Some(RenewBefore::Duration(d)) = renew_before
            && d >= l
        {
            return Err("spec.renewBefore must be shorter than spec.lifetime".into());
        }
    }
    let name = tok.token_name();
    if name.is_empty() || name.chars().count() > 128 {
        return Err("the token name must be 1 to 128 characters".into());
    }
    let resources: Resources = match &spec.resources {
        None => Resources::all(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            "spec.resources must be \"all\" or a list of {type, id} objects".to_string()
        })?,
    };
    if let Resources::List(items) = &resources
        && items.iter().any(|r| r.kind.is_empty() || r.id.is_empty())
    {
        return Err("spec.resources: every entry needs a non-empty type and id".into());
    }
    let key = tok.secret_key();
    if spec
        .secret_template
        .as_ref()
        .is_some_and(|t| t.data.contains_key(&key))
    {
        return Err(format!(
            "spec.secretTemplate.data must not set the token key {key:?}"
        ));
    }
    if spec
        .secret_template
        .as_ref()
        .is_some_and(|t| t.annotations.keys().any(|k| k.starts_with("tokenops.dev/")))
    {
        return Err(
            "spec.secretTemplate.annotations: keys under tokenops.dev/ are reserved".into(),
        );
    }
    let mut scopes = spec.scopes.clone();
    scopes.sort();
    scopes.dedup();
    Ok(Desired {
        name,
        description: spec.description.clone().filter(|d| !d.is_empty()),
        role: spec.role.clone(),
        scopes,
        resources,
        project: project.map(str::to_string),
        lifetime,
        renew_before,
        grace_period,
        backend: backend.to_string(),
        uid,
        rotate_request: tok.annotations().get(ANNOTATION_ROTATE).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(spec: serde_json::Value) -> ApiToken {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tokenops.dev/v1alpha1",
            "kind": "ApiToken",
            "metadata": {"name": "exporter", "namespace": "team-a", "uid": "u-1",
                         "annotations": {"tokenops.dev/rotate": "1"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"backendRef": {"name": "main"}})
    }

    #[test]
    fn defaults_come_from_the_object() {
        let d = desired(&token(base()), "TokenBackend/team-a/main", None).unwrap();
        assert_eq!(d.name, "team-a/exporter");
        assert_eq!(d.resources, Resources::all());
        assert_eq!(d.uid, "u-1");
        assert_eq!(d.rotate_request.as_deref(), Some("1"));
        assert_eq!(d.lifetime, None);
    }

    #[test]
    fn durations_and_resources_are_parsed() {
        let mut spec = base();
        spec["lifetime"] = "30d".into();
        spec["renewBeforePercentage"] = 25.into();
        spec["gracePeriod"] = "1h".into();
        spec["resources"] = serde_json::json!([{"type": "site", "id": "s-1"}]);
        spec["scopes"] = serde_json::json!(["b:read", "a:read", "b:read"]);
        let d = desired(&token(spec), "b", Some("proj")).unwrap();
        assert_eq!(d.lifetime, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(d.renew_before, Some(RenewBefore::Percentage(25.0)));
        assert_eq!(d.grace_period, Some(Duration::from_secs(3600)));
        assert_eq!(d.scopes, vec!["a:read", "b:read"]);
        assert!(!d.resources.is_all());
        assert_eq!(d.project.as_deref(), Some("proj"));
    }

    #[test]
    fn contradictions_are_rejected_with_the_field_named() {
        for (patch, needle) in [
            (
                serde_json::json!({"renewBefore": "1h", "renewBeforePercentage": 10}),
                "at most one",
            ),
            (
                serde_json::json!({"lifetime": "1h", "gracePeriod": "2h"}),
                "gracePeriod",
            ),
            (
                serde_json::json!({"lifetime": "1h", "renewBefore": "1h"}),
                "renewBefore",
            ),
            (serde_json::json!({"lifetime": "soon"}), "spec.lifetime"),
            (serde_json::json!({"lifetime": "0s"}), "spec.lifetime"),
            (
                serde_json::json!({"resources": [{"type": "", "id": "x"}]}),
                "spec.resources",
            ),
            (serde_json::json!({"resources": "some"}), "spec.resources"),
            (
                serde_json::json!({"secretTemplate": {"data": {"token": "x"}}}),
                "token key",
            ),
            (
                serde_json::json!({"secretTemplate": {"annotations": {"tokenops.dev/x": "y"}}}),
                "reserved",
            ),
        ] {
            let mut spec = base();
            for (k, v) in patch.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let err = desired(&token(spec), "b", None).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
