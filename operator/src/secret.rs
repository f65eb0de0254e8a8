//! The token's Secret: how it is rendered from an `ApiToken`, and how a found
//! Secret is judged (ours? value intact? metadata drifted?).
//!
//! # Tamper detection
//!
//! The value is never stored anywhere but the Secret. Next to it the operator
//! writes `tokenops.dev/value-hash`: `v1:` and the hex HMAC-SHA-256 of
//! `<token id> NUL <value>`, keyed by the operator's hash key (`--hash-key-file`)
//! or, without one, by the token id. A value edited by hand no longer matches
//! and is rotated (the backend never shows a value twice, so it cannot be
//! "restored"). With an operator key the hash also cannot be recomputed by
//! someone who edits the Secret; changing that key makes every Secret look
//! tampered and rotates every token once.
//!
//! `tokenops.dev/token-generation` records which regeneration of the token the
//! value belongs to. A Secret whose generation is behind the backend's holds a
//! value that a rotation replaced but never delivered (the operator stopped
//! between regenerate and the Secret write); it is rotated again.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::Sha256;

use crate::crd::ApiToken;
use crate::decide::SecretState;
use crate::{
    ANNOTATION_TOKEN_GENERATION, ANNOTATION_TOKEN_ID, ANNOTATION_VALUE_HASH, K8S_MANAGED_BY,
    MANAGED_BY_VALUE,
};

type HmacSha256 = Hmac<Sha256>;

/// Computes and checks the keyed hash of Secret values.
#[derive(Clone, Default)]
pub struct ValueHasher {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for ValueHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueHasher")
            .field("key", &self.key.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl ValueHasher {
    /// With an operator-wide key, or `None` to key by the token id.
    pub fn new(key: Option<Vec<u8>>) -> Self {
        ValueHasher {
            key: key.filter(|k| !k.is_empty()),
        }
    }

    fn mac(&self, token_id: &str) -> HmacSha256 {
        let key = self.key.as_deref().unwrap_or(token_id.as_bytes());
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(token_id.as_bytes());
        mac.update(&[0]);
        mac
    }

    /// The annotation value for `value` of token `token_id`.
    pub fn hash(&self, token_id: &str, value: &[u8]) -> String {
        let mut mac = self.mac(token_id);
        mac.update(value);
        format!("v1:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `annotation` is the hash of `value` (constant-time comparison).
    pub fn verify(&self, token_id: &str, value: &[u8], annotation: &str) -> bool {
        let Some(Ok(expected)) = annotation.strip_prefix("v1:").map(hex::decode) else {
            return false;
        };
        let mut mac = self.mac(token_id);
        mac.update(value);
        mac.verify_slice(&expected).is_ok()
    }
}

/// Labels every Secret of `tok` carries: the template's plus `managed-by`.
fn labels(tok: &ApiToken) -> BTreeMap<String, String> {
    let mut labels = tok
        .spec
        .secret_template
        .as_ref()
        .map(|t| t.labels.clone())
        .unwrap_or_default();
    labels.insert(K8S_MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels
}

fn owner_reference(tok: &ApiToken) -> Option<OwnerReference> {
    tok.controller_owner_ref(&())
}

/// Which value of which token a Secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub token_id: &'a str,
    /// The token's `generation` (regenerations so far) when the value was issued.
    pub generation: u64,
}

/// Renders the Secret holding `value` of token `held.token_id` for `tok`.
pub fn render(tok: &ApiToken, held: Held<'_>, value: &[u8], hasher: &ValueHasher) -> Secret {
    let token_id = held.token_id;
    let template = tok.spec.secret_template.clone().unwrap_or_default();
    let mut annotations = template.annotations;
    annotations.insert(ANNOTATION_TOKEN_ID.into(), token_id.into());
    annotations.insert(
        ANNOTATION_TOKEN_GENERATION.into(),
        held.generation.to_string(),
    );
    annotations.insert(ANNOTATION_VALUE_HASH.into(), hasher.hash(token_id, value));
    let mut data: BTreeMap<String, ByteString> = template
        .data
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    data.insert(tok.secret_key(), ByteString(value.to_vec()));
    Secret {
        metadata: ObjectMeta {
            name: Some(tok.secret_name()),
            namespace: tok.namespace(),
            labels: Some(labels(tok)),
            annotations: Some(annotations),
            owner_references: owner_reference(tok).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Whether `secret` is owned (as controller) by `tok`.
pub fn is_owned_by(secret: &Secret, tok: &ApiToken) -> bool {
    let uid = tok.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// The value stored in `secret` under `tok`'s key.
pub fn value<'a>(secret: &'a Secret, tok: &ApiToken) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()?
        .get(&tok.secret_key())
        .map(|v| v.0.as_slice())
}

/// The token id the Secret says it holds a value of (not yet checked against the hash).
pub fn token_id(secret: &Secret) -> Option<&str> {
    secret
        .annotations()
        .get(ANNOTATION_TOKEN_ID)
        .map(String::as_str)
}

/// Judges a found Secret for the decide step. `token_id` is the token the
/// status records; without one a Secret of ours holds nothing usable.
pub fn observe(
    secret: Option<&Secret>,
    tok: &ApiToken,
    token_id: Option<&str>,
    hasher: &ValueHasher,
) -> SecretState {
    let Some(secret) = secret else {
        return SecretState::Absent;
    };
    if !is_owned_by(secret, tok) {
        return SecretState::NotOwned;
    }
    let annotations = secret.annotations();
    let value_matches = match (token_id, value(secret, tok)) {
        (Some(id), Some(v)) => {
            annotations.get(ANNOTATION_TOKEN_ID).map(String::as_str) == Some(id)
                && annotations
                    .get(ANNOTATION_VALUE_HASH)
                    .is_some_and(|h| hasher.verify(id, v, h))
        }
        _ => false,
    };
    let template = tok.spec.secret_template.clone().unwrap_or_default();
    let have_labels = secret.labels();
    let labels_ok = labels(tok)
        .iter()
        .all(|(k, v)| have_labels.get(k) == Some(v));
    let annotations_ok = template
        .annotations
        .iter()
        .all(|(k, v)| annotations.get(k) == Some(v));
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let key = tok.secret_key();
    let data_ok = data.len() == template.data.len() + 1
        && template
            .data
            .iter()
            .all(|(k, v)| data.get(k).map(|b| b.0.as_slice()) == Some(v.as_bytes()))
        && data.contains_key(&key);
    let generation = annotations
        .get(ANNOTATION_TOKEN_GENERATION)
        .and_then(|g| g.parse().ok());
    SecretState::Present {
        value_matches,
        up_to_date: labels_ok && annotations_ok && data_ok && generation.is_some(),
        generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(template: serde_json::Value) -> ApiToken {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tokenops.dev/v1alpha1",
            "kind": "ApiToken",
            "metadata": {"name": "exporter", "namespace": "team-a", "uid": "u-1"},
            "spec": {"backendRef": {"name": "main"}, "secretTemplate": template},
        }))
        .unwrap()
    }

    const HELD: Held<'static> = Held {
        token_id: "tok_1",
        generation: 3,
    };

    fn hasher() -> ValueHasher {
        ValueHasher::new(Some(b"operator-key".to_vec()))
    }

    #[test]
    fn the_hash_is_keyed_and_never_contains_the_value() {
        let h = hasher();
        let a = h.hash("tok_1", b"tko_secret");
        assert!(a.starts_with("v1:") && !a.contains("tko_secret"));
        assert!(h.verify("tok_1", b"tko_secret", &a));
        assert!(!h.verify("tok_1", b"tko_other", &a));
        assert!(!h.verify("tok_2", b"tko_secret", &a));
        assert!(!ValueHasher::new(None).verify("tok_1", b"tko_secret", &a));
        assert!(!h.verify("tok_1", b"tko_secret", "garbage"));
        assert!(!format!("{h:?}").contains("operator-key"));
    }

    #[test]
    fn a_rendered_secret_is_owned_labelled_and_verifies() {
        let t = tok(
            serde_json::json!({"labels": {"team": "a"}, "annotations": {"note": "x"}, "data": {"url": "https://t"}}),
        );
        let s = render(&t, HELD, b"tko_v", &hasher());
        assert_eq!(s.metadata.name.as_deref(), Some("exporter"));
        assert_eq!(
            s.labels().get(K8S_MANAGED_BY).map(String::as_str),
            Some("tokenops-operator")
        );
        assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(value(&s, &t), Some(&b"tko_v"[..]));
        assert_eq!(
            observe(Some(&s), &t, Some("tok_1"), &hasher()),
            SecretState::Present {
                value_matches: true,
                up_to_date: true,
                generation: Some(3),
            }
        );
    }

    #[test]
    fn an_edited_value_is_detected() {
        let t = tok(serde_json::json!({}));
        let mut s = render(&t, HELD, b"tko_v", &hasher());
        s.data
            .as_mut()
            .unwrap()
            .insert("token".into(), ByteString(b"tko_x".to_vec()));
        assert_eq!(
            observe(Some(&s), &t, Some("tok_1"), &hasher()),
            SecretState::Present {
                value_matches: false,
                up_to_date: true,
                generation: Some(3),
            }
        );
    }

    #[test]
    fn drifted_metadata_is_detected_but_the_value_still_matches() {
        let t = tok(serde_json::json!({"labels": {"team": "a"}}));
        let mut s = render(&t, HELD, b"tko_v", &hasher());
        s.metadata.labels.as_mut().unwrap().remove("team");
        s.data
            .as_mut()
            .unwrap()
            .insert("extra".into(), ByteString(b"1".to_vec()));
        assert_eq!(
            observe(Some(&s), &t, Some("tok_1"), &hasher()),
            SecretState::Present {
                value_matches: true,
                up_to_date: false,
                generation: Some(3),
            }
        );
    }

    #[test]
    fn a_secret_without_our_owner_reference_is_not_ours() {
        let t = tok(serde_json::json!({}));
        let mut s = render(&t, HELD, b"tko_v", &hasher());
        s.metadata.owner_references = None;
        assert_eq!(
            observe(Some(&s), &t, Some("tok_1"), &hasher()),
            SecretState::NotOwned
        );
        assert_eq!(
            observe(None, &t, Some("tok_1"), &hasher()),
            SecretState::Absent
        );
    }
}
