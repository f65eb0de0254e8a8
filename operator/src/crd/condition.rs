//! The status condition shared by every kind (the shape of `metav1.Condition`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One observation of the resource's state, e.g. `Ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition; `Ready` for every tokenops resource.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable, CamelCase reason for the last transition (e.g. `Issued`, `BackendUnavailable`).
    pub reason: String,
    /// Human-readable explanation; never contains a token value.
    #[serde(default)]
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Sets a condition in `conditions`, keeping its `lastTransitionTime` when the
/// status does not change — so rewriting an unchanged status is a no-op and
/// does not wake the controller again.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time;
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ready(status: ConditionStatus, reason: &str, at: i64) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Utc.timestamp_opt(at, 0).unwrap(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn unchanged_status_keeps_the_transition_time() {
        let mut conds = vec![ready(ConditionStatus::True, "Issued", 10)];
        set_condition(&mut conds, ready(ConditionStatus::True, "Rotated", 20));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].reason, "Rotated");
        assert_eq!(conds[0].last_transition_time.timestamp(), 10);
    }

    #[test]
    fn changed_status_moves_the_transition_time() {
        let mut conds = vec![ready(ConditionStatus::True, "Issued", 10)];
        set_condition(
            &mut conds,
            ready(ConditionStatus::False, "BackendUnavailable", 20),
        );
        assert_eq!(conds[0].last_transition_time.timestamp(), 20);
    }
}
