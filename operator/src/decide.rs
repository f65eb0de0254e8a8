//! The pure core of the reconcile: from what was observed — the spec, the
//! status, the Secret, the token on the backend and the time — to what should
//! happen next. No Kubernetes or backend client is involved, so every rule is
//! a unit test.
//!
//! | observed (first match wins)                                  | action |
//! | --- | --- |
//! | token labelled for another manager or another `ApiToken`      | `Blocked(NotOwned)` — never touched |
//! | Secret of that name exists but is not ours                    | `Blocked(SecretConflict)` |
//! | `status.backend` differs from `spec.backendRef`               | `Replace(BackendChanged)` (`Issue` if there was no token) |
//! | no token id in status                                         | `Issue(New)` |
//! | token not found on the backend                                | `Issue(NotFound)` |
//! | token revoked                                                 | `Issue(Revoked)` |
//! | role, scopes, resources or project differ                     | `Replace(PermissionsChanged)` |
//! | token expired                                                 | `Rotate(Expired)` |
//! | Secret missing                                                | `Rotate(SecretLost)` — the value cannot be recovered |
//! | Secret value does not match its keyed hash                    | `Rotate(SecretTampered)` |
//! | Secret holds an older generation than the backend's            | `Rotate(SecretStale)` — a rotation was interrupted before its value reached the Secret |
//! | `tokenops.dev/rotate` annotation not yet acted on             | `Rotate(Manual)` |
//! | lifetime differs from `spec.lifetime`                         | `Rotate(LifetimeChanged)` |
//! | `now ≥ renewalTime`                                           | `Rotate(Due)` |
//! | name or description differ                                    | `EditInPlace` |
//! | Secret labels, annotations, keys or owner drifted             | `RepairSecret` |
//! | otherwise                                                     | `Nothing` |
//!
//! Every decision on an active token requeues for exactly its renewal time
//! (the controller brings that forward to the resync period when it is sooner).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokenops_client::rotation::{self, RenewBefore};
use tokenops_client::{Resources, Token, TokenStatus};

use crate::{LABEL_OWNER_UID, MANAGED_BY, MANAGED_BY_VALUE};

/// The token the spec asks for, validated and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Display name on the backend.
    pub name: String,
    pub description: Option<String>,
    pub role: Option<String>,
    /// Sorted, without duplicates.
    pub scopes: Vec<String>,
    pub resources: Resources,
    /// The backend's `spec.project`; `None` means the management token's project.
    pub project: Option<String>,
    pub lifetime: Option<Duration>,
    pub renew_before: Option<RenewBefore>,
    pub grace_period: Option<Duration>,
    /// `<kind>/<namespace>/<name>` of the backend.
    pub backend: String,
    /// UID of the `ApiToken`: the ownership label on the token.
    pub uid: String,
    /// Current value of the `tokenops.dev/rotate` annotation.
    pub rotate_request: Option<String>,
}

/// What the status says the operator did before.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub token_id: Option<String>,
    pub backend: Option<String>,
    pub last_rotate_request: Option<String>,
}

/// The Secret as found in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    Absent,
    /// A Secret of that name exists and is not owned by this `ApiToken`.
    NotOwned,
    Present {
        /// The value matches the keyed hash written with it.
        value_matches: bool,
        /// Labels, annotations, extra keys and owner are as the spec renders them.
        up_to_date: bool,
        /// The token `generation` the value belongs to (`None`: written by an
        /// operator that did not record it; taken to be current).
        generation: Option<u64>,
    },
}

/// The token as found on the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenState {
    /// Not looked up: no token id recorded, or the backend changed.
    Unknown,
    NotFound,
    Found(Box<Token>),
}

/// Why a new token is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueReason {
    New,
    NotFound,
    Revoked,
}

/// Why an existing token is replaced by a new one (and the old one revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceReason {
    /// Permissions are immutable on the backend.
    PermissionsChanged,
    BackendChanged,
}

/// Why the token's value is regenerated (same id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateReason {
    Due,
    Manual,
    Expired,
    SecretLost,
    SecretTampered,
    /// The backend regenerated the token but the new value never reached the Secret.
    SecretStale,
    LifetimeChanged,
}

/// Why the operator will not act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockReason {
    /// The token carries another manager's labels (e.g. `managed-by=terraform`).
    NotOwned { managed_by: Option<String> },
    /// A Secret of the wanted name exists and does not belong to this `ApiToken`.
    SecretConflict,
}

/// Fields to change on the token in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenEdit {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Issue(IssueReason),
    Replace(ReplaceReason),
    Rotate(RotateReason),
    EditInPlace(TokenEdit),
    RepairSecret,
    Blocked(BlockReason),
    Nothing,
}

impl Action {
    /// Whether the action writes a new value into the Secret.
    pub fn issues_value(&self) -> bool {
        matches!(
            self,
            Action::Issue(_) | Action::Replace(_) | Action::Rotate(_)
        )
    }
}

/// The action and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// Exactly the time until the current token's renewal; `None` when nothing is scheduled
    /// (a new value is about to be issued, the token never expires, or the operator is blocked).
    pub requeue_after: Option<Duration>,
}

/// Decides the next step. Pure: same inputs, same answer.
pub fn decide(
    desired: &Desired,
    recorded: &Recorded,
    secret: SecretState,
    token: &TokenState,
    now: DateTime<Utc>,
) -> Decision {
    let act = |action| Decision {
        action,
        requeue_after: None,
    };

    if let TokenState::Found(t) = token
        && !owned_by(t, &desired.uid)
    {
        return act(Action::Blocked(BlockReason::NotOwned {
            managed_by: t.labels.get(MANAGED_BY).cloned(),
        }));
    }
    if secret == SecretState::NotOwned {
        return act(Action::Blocked(BlockReason::SecretConflict));
    }
    if recorded.token_id.is_some()
        && recorded
            .backend
            .as_deref()
            .is_some_and(|b| b != desired.backend)
    {
        return act(Action::Replace(ReplaceReason::BackendChanged));
    }
    let t = match (recorded.token_id.as_deref(), token) {
        (None, _) | (Some(_), TokenState::Unknown) => return act(Action::Issue(IssueReason::New)),
        (Some(_), TokenState::NotFound) => return act(Action::Issue(IssueReason::NotFound)),
        (Some(_), TokenState::Found(t)) => t,
    };
    if t.status == TokenStatus::Revoked {
        return act(Action::Issue(IssueReason::Revoked));
    }
    if !permissions_match(desired, t) {
        return act(Action::Replace(ReplaceReason::PermissionsChanged));
    }
    let expired = t.status == TokenStatus::Expired || t.expires_at.is_some_and(|e| e <= now);
    let rotate = if expired {
        Some(RotateReason::Expired)
    } else {
        match secret {
            SecretState::Absent => Some(RotateReason::SecretLost),
            SecretState::Present {
                value_matches: false,
                ..
            } => Some(RotateReason::SecretTampered),
            SecretState::Present {
                generation: Some(g),
                ..
            } if g != t.generation => Some(RotateReason::SecretStale),
            _ if rotate_requested(desired, recorded) => Some(RotateReason::Manual),
            _ if lifetime_changed(desired, t) => Some(RotateReason::LifetimeChanged),
            _ => None,
        }
    };
    if let Some(reason) = rotate {
        return act(Action::Rotate(reason));
    }
    let renewal = renewal_time(desired, t);
    if renewal.is_some_and(|r| now >= r) {
        return act(Action::Rotate(RotateReason::Due));
    }
    let requeue_after = renewal.map(|r| until(now, r));
    let action = if let Some(edit) = edit_for(desired, t) {
        Action::EditInPlace(edit)
    } else if matches!(
        secret,
        SecretState::Present {
            up_to_date: false,
            ..
        }
    ) {
        Action::RepairSecret
    } else {
        Action::Nothing
    };
    Decision {
        action,
        requeue_after,
    }
}

/// Whether the token carries this operator's ownership labels for this `ApiToken`.
pub fn owned_by(t: &Token, uid: &str) -> bool {
    t.labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && t.labels.get(LABEL_OWNER_UID).map(String::as_str) == Some(uid)
}

/// When the token's current value is due for renewal, by the one shared rule.
pub fn renewal_time(desired: &Desired, t: &Token) -> Option<DateTime<Utc>> {
    rotation::token_renewal_time(t, desired.renew_before.as_ref())
}

/// Time from `now` until `at`, zero if past.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

fn rotate_requested(desired: &Desired, recorded: &Recorded) -> bool {
    match desired.rotate_request.as_deref() {
        None | Some("") => false,
        Some(req) => recorded.last_rotate_request.as_deref() != Some(req),
    }
}

/// Whether the token has the role, scopes, resources and project the spec asks for.
pub fn permissions_match(desired: &Desired, t: &Token) -> bool {
    let mut scopes = t.scopes.clone();
    scopes.sort();
    scopes.dedup();
    desired.role == t.role
        && desired.scopes == scopes
        && normalise(&desired.resources) == normalise(&t.resources)
        && desired.project.as_ref().is_none_or(|p| *p == t.project)
}

fn normalise(r: &Resources) -> Resources {
    match r {
        Resources::All(_) => Resources::all(),
        Resources::List(items) => {
            let mut items = items.clone();
            items.sort();
            items.dedup();
            Resources::List(items)
        }
    }
}

fn lifetime_changed(desired: &Desired, t: &Token) -> bool {
    let (Some(want), Some(expires)) = (desired.lifetime, t.expires_at) else {
        return false;
    };
    let Ok(want) = TimeDelta::from_std(want) else {
        return false;
    };
    let have = expires - rotation::issued_at(t);
    (have - want).abs() > TimeDelta::seconds(1)
}

fn edit_for(desired: &Desired, t: &Token) -> Option<TokenEdit> {
    let mut edit = TokenEdit::default();
    if desired.name != t.name {
        edit.name = Some(desired.name.clone());
    }
    let want = desired.description.as_deref().filter(|d| !d.is_empty());
    let have = t.description.as_deref().filter(|d| !d.is_empty());
    if want != have {
        edit.description = Some(want.map(str::to_string));
    }
    (edit != TokenEdit::default()).then_some(edit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tokenops_client::{Labels, ResourceRef};

    const UID: &str = "8d5c8b8e-0000-4000-8000-000000000001";
    const BACKEND: &str = "TokenBackend/team-a/main";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn desired() -> Desired {
        Desired {
            name: "team-a/exporter".into(),
            description: None,
            role: Some("read-only".into()),
            scopes: vec![],
            resources: Resources::all(),
            project: None,
            lifetime: Some(Duration::from_secs(30 * 86_400)),
            renew_before: None,
            grace_period: None,
            backend: BACKEND.into(),
            uid: UID.into(),
            rotate_request: None,
        }
    }

    fn owned_labels() -> Labels {
        Labels::from([
            (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
            (LABEL_OWNER_UID.to_string(), UID.to_string()),
        ])
    }

    /// An active token issued at t0 for 30 days: renewal at t0 + 20 days.
    fn token() -> Token {
        Token {
            id: "tok_1".into(),
            project: "default".into(),
            name: "team-a/exporter".into(),
            description: None,
            role: Some("read-only".into()),
            scopes: vec![],
            resources: Resources::all(),
            expires_at: Some(t0() + TimeDelta::days(30)),
            status: TokenStatus::Active,
            masked: "tko_…abcd".into(),
            labels: owned_labels(),
            created_at: t0(),
            updated_at: t0(),
            last_used_at: None,
            regenerated_at: None,
            revoked_at: None,
            previous_valid_until: None,
            generation: 0,
        }
    }

    fn recorded() -> Recorded {
        Recorded {
            token_id: Some("tok_1".into()),
            backend: Some(BACKEND.into()),
            last_rotate_request: None,
        }
    }

    const GOOD: SecretState = SecretState::Present {
        value_matches: true,
        up_to_date: true,
        generation: Some(0),
    };

    fn at(days: i64) -> DateTime<Utc> {
        t0() + TimeDelta::days(days)
    }

    fn decide_found(d: &Desired, t: Token, secret: SecretState, now: DateTime<Utc>) -> Decision {
        decide(d, &recorded(), secret, &TokenState::Found(Box::new(t)), now)
    }

    #[test]
    fn a_fresh_api_token_issues_a_token() {
        let got = decide(
            &desired(),
            &Recorded::default(),
            SecretState::Absent,
            &TokenState::Unknown,
            t0(),
        );
        assert_eq!(got.action, Action::Issue(IssueReason::New));
        assert_eq!(got.requeue_after, None);
    }

    #[test]
    fn a_healthy_token_does_nothing_and_requeues_for_exactly_its_renewal_time() {
        let got = decide_found(&desired(), token(), GOOD, at(1));
        assert_eq!(got.action, Action::Nothing);
        assert_eq!(got.requeue_after, Some(Duration::from_secs(19 * 86_400)));
    }

    #[test]
    fn renew_before_moves_the_renewal_time() {
        let mut d = desired();
        d.renew_before = Some("240h".parse().unwrap());
        assert_eq!(
            decide_found(&d, token(), GOOD, at(19)).requeue_after,
            Some(Duration::from_secs(86_400))
        );
        d.renew_before = Some(RenewBefore::Percentage(10.0));
        assert_eq!(
            decide_found(&d, token(), GOOD, at(26)).requeue_after,
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn a_token_at_its_renewal_time_is_rotated() {
        let got = decide_found(&desired(), token(), GOOD, at(20));
        assert_eq!(got.action, Action::Rotate(RotateReason::Due));
        let got = decide_found(&desired(), token(), GOOD, at(20) - TimeDelta::seconds(1));
        assert_eq!(got.action, Action::Nothing);
        assert_eq!(got.requeue_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_regenerated_token_counts_from_its_regeneration() {
        let mut t = token();
        t.regenerated_at = Some(at(20));
        t.expires_at = Some(at(50));
        let got = decide_found(&desired(), t, GOOD, at(21));
        assert_eq!(got.action, Action::Nothing);
        assert_eq!(got.requeue_after, Some(Duration::from_secs(19 * 86_400)));
    }

    #[test]
    fn an_expired_token_is_rotated_in_place() {
        let mut t = token();
        t.status = TokenStatus::Expired;
        assert_eq!(
            decide_found(&desired(), t, GOOD, at(31)).action,
            Action::Rotate(RotateReason::Expired)
        );
    }

    #[test]
    fn a_revoked_or_vanished_token_is_issued_anew() {
        let mut t = token();
        t.status = TokenStatus::Revoked;
        assert_eq!(
            decide_found(&desired(), t, GOOD, at(1)).action,
            Action::Issue(IssueReason::Revoked)
        );
        let got = decide(&desired(), &recorded(), GOOD, &TokenState::NotFound, at(1));
        assert_eq!(got.action, Action::Issue(IssueReason::NotFound));
    }

    #[test]
    fn changed_permissions_replace_the_token() {
        for change in [
            |d: &mut Desired| d.role = Some("owner".into()),
            |d: &mut Desired| d.scopes = vec!["billing:read".into()],
            |d: &mut Desired| d.resources = Resources::list([ResourceRef::new("site", "s-1")]),
            |d: &mut Desired| d.project = Some("other".into()),
        ] {
            let mut d = desired();
            change(&mut d);
            assert_eq!(
                decide_found(&d, token(), GOOD, at(1)).action,
                Action::Replace(ReplaceReason::PermissionsChanged)
            );
        }
    }

    #[test]
    fn scope_and_resource_order_is_not_a_change() {
        let mut d = desired();
        d.scopes = vec!["a:read".into(), "b:read".into()];
        d.resources = Resources::list([
            ResourceRef::new("site", "s-1"),
            ResourceRef::new("device", "d-1"),
        ]);
        let mut t = token();
        t.scopes = vec!["b:read".into(), "a:read".into()];
        t.resources = Resources::list([
            ResourceRef::new("device", "d-1"),
            ResourceRef::new("site", "s-1"),
        ]);
        assert_eq!(decide_found(&d, t, GOOD, at(1)).action, Action::Nothing);
    }

    #[test]
    fn a_changed_backend_replaces_the_token_without_asking_the_new_backend() {
        let mut d = desired();
        d.backend = "ClusterTokenBackend//shared".into();
        let got = decide(&d, &recorded(), GOOD, &TokenState::Unknown, at(1));
        assert_eq!(got.action, Action::Replace(ReplaceReason::BackendChanged));
    }

    #[test]
    fn a_lost_or_tampered_secret_is_rotated_because_the_value_cannot_be_recovered() {
        assert_eq!(
            decide_found(&desired(), token(), SecretState::Absent, at(1)).action,
            Action::Rotate(RotateReason::SecretLost)
        );
        let tampered = SecretState::Present {
            value_matches: false,
            up_to_date: true,
            generation: Some(0),
        };
        assert_eq!(
            decide_found(&desired(), token(), tampered, at(1)).action,
            Action::Rotate(RotateReason::SecretTampered)
        );
    }

    #[test]
    fn a_value_from_before_the_last_regeneration_is_rotated_again() {
        // The operator stopped after regenerate and before the Secret write:
        // the backend is at generation 1, the Secret still holds generation 0.
        let mut t = token();
        t.generation = 1;
        t.regenerated_at = Some(at(1));
        t.expires_at = Some(at(31));
        assert_eq!(
            decide_found(&desired(), t.clone(), GOOD, at(1)).action,
            Action::Rotate(RotateReason::SecretStale)
        );
        let current = SecretState::Present {
            value_matches: true,
            up_to_date: true,
            generation: Some(1),
        };
        assert_eq!(
            decide_found(&desired(), t.clone(), current, at(1)).action,
            Action::Nothing
        );
        // A Secret written before generations were recorded is taken as current
        // and only has its annotations repaired.
        let legacy = SecretState::Present {
            value_matches: true,
            up_to_date: false,
            generation: None,
        };
        assert_eq!(
            decide_found(&desired(), t, legacy, at(1)).action,
            Action::RepairSecret
        );
    }

    #[test]
    fn drifted_secret_metadata_is_repaired_without_a_new_value() {
        let drifted = SecretState::Present {
            value_matches: true,
            up_to_date: false,
            generation: Some(0),
        };
        let got = decide_found(&desired(), token(), drifted, at(1));
        assert_eq!(got.action, Action::RepairSecret);
        assert_eq!(got.requeue_after, Some(Duration::from_secs(19 * 86_400)));
    }

    #[test]
    fn a_new_rotate_annotation_rotates_once() {
        let mut d = desired();
        d.rotate_request = Some("2026-11-22".into());
        assert_eq!(
            decide_found(&d, token(), GOOD, at(1)).action,
            Action::Rotate(RotateReason::Manual)
        );
        let mut rec = recorded();
        rec.last_rotate_request = Some("2026-11-22".into());
        let got = decide(&d, &rec, GOOD, &TokenState::Found(Box::new(token())), at(1));
        assert_eq!(got.action, Action::Nothing);
    }

    #[test]
    fn a_changed_lifetime_rotates() {
        let mut d = desired();
        d.lifetime = Some(Duration::from_secs(7 * 86_400));
        assert_eq!(
            decide_found(&d, token(), GOOD, at(1)).action,
            Action::Rotate(RotateReason::LifetimeChanged)
        );
        d.lifetime = None;
        assert_eq!(
            decide_found(&d, token(), GOOD, at(1)).action,
            Action::Nothing
        );
    }

    #[test]
    fn name_and_description_are_edited_in_place() {
        let mut d = desired();
        d.name = "exporter".into();
        d.description = Some("nightly".into());
        let got = decide_found(&d, token(), GOOD, at(1));
        assert_eq!(
            got.action,
            Action::EditInPlace(TokenEdit {
                name: Some("exporter".into()),
                description: Some(Some("nightly".into()))
            })
        );
        let mut t = token();
        t.description = Some("old".into());
        let got = decide_found(&desired(), t, GOOD, at(1));
        assert_eq!(
            got.action,
            Action::EditInPlace(TokenEdit {
                name: None,
                description: Some(None)
            })
        );
    }

    #[test]
    fn a_terraform_token_is_never_touched() {
        let mut t = token();
        t.labels = Labels::from([(MANAGED_BY.to_string(), "terraform".to_string())]);
        t.status = TokenStatus::Expired;
        let got = decide_found(&desired(), t, SecretState::Absent, at(40));
        assert_eq!(
            got.action,
            Action::Blocked(BlockReason::NotOwned {
                managed_by: Some("terraform".into())
            })
        );
        assert_eq!(got.requeue_after, None);
    }

    #[test]
    fn a_token_of_another_api_token_is_not_touched() {
        let mut t = token();
        t.labels
            .insert(LABEL_OWNER_UID.into(), "someone-else".into());
        assert!(matches!(
            decide_found(&desired(), t, GOOD, at(1)).action,
            Action::Blocked(BlockReason::NotOwned { .. })
        ));
    }

    #[test]
    fn a_foreign_secret_of_the_same_name_is_not_overwritten() {
        let got = decide(
            &desired(),
            &Recorded::default(),
            SecretState::NotOwned,
            &TokenState::Unknown,
            t0(),
        );
        assert_eq!(got.action, Action::Blocked(BlockReason::SecretConflict));
    }

    #[test]
    fn a_token_that_never_expires_is_not_requeued() {
        let mut t = token();
        t.expires_at = None;
        let got = decide_found(&desired(), t, GOOD, at(400));
        assert_eq!(
            got,
            Decision {
                action: Action::Nothing,
                requeue_after: None
            }
        );
    }

    #[test]
    fn only_value_issuing_actions_write_a_new_value() {
        assert!(Action::Rotate(RotateReason::Due).issues_value());
        assert!(Action::Issue(IssueReason::New).issues_value());
        assert!(!Action::RepairSecret.issues_value());
        assert!(!Action::Nothing.issues_value());
    }
}
