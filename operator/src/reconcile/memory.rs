//! What this process last wrote for each `ApiToken`, so that a reconcile never
//! acts on a watch cache that is behind our own writes.
//!
//! A reconcile reads the `ApiToken` and its Secret from the controller's
//! caches, not from the API server. Right after our own finalizer patch,
//! Secret write or status write those caches may still show the object as it
//! was before; acting on such a copy would issue or rotate twice. So each
//! write is remembered here, by `ApiToken` UID, for [`Memory::TTL`]:
//!
//! - the status: only this operator writes it, so the last status we wrote is
//!   the newest there is, whatever the cache shows ([`Memory::overlay_status`]);
//! - the finalizer: once we added it, a stale copy without it is not patched again;
//! - the Secret's resourceVersion: a cached Secret at another version (or none)
//!   is read from the API server once instead ([`Memory::secret_version`]);
//! - the `ApiToken` resourceVersions we acted on or produced, and the token as
//!   the backend last showed it: a reconcile woken by our own writes (the cache
//!   holds one of those versions, so nothing else changed the `ApiToken`) needs
//!   no backend read either ([`Memory::known_token`]).
//!
//! A restarted process starts with an empty memory and reads everything once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use tokenops_client::Token;

use crate::crd::{ApiToken, ApiTokenStatus};

/// What is remembered of one `ApiToken`, each with when it was written.
#[derive(Default)]
struct Entry {
    /// resourceVersions of the `ApiToken` that this process acted on or produced.
    versions: Vec<String>,
    finalizer: Option<Instant>,
    /// The status, the resourceVersion our write of it produced, and when.
    status: Option<(ApiTokenStatus, Option<String>, Instant)>,
    /// The Secret name and resourceVersion after our last write (or read) of it.
    secret: Option<(String, String, Instant)>,
    /// The token and when the backend showed it so.
    token: Option<(Token, Instant)>,
    /// The last time anything here was updated.
    touched: Option<Instant>,
}

/// Whether something written at `at` is still remembered.
fn fresh(at: Instant) -> bool {
    at.elapsed() < Memory::TTL
}

/// Remembered writes by `ApiToken` UID (see the module documentation).
#[derive(Default)]
pub struct Memory {
    /// The entries, and when stale ones were last dropped.
    inner: Mutex<(HashMap<String, Entry>, Option<Instant>)>,
}

/// How many resourceVersions of one `ApiToken` are remembered.
const VERSIONS_KEPT: usize = 4;

impl Memory {
    /// How long a write is remembered: far longer than a watch cache is
    /// behind, short enough that the memory holds only the `ApiToken`s written
    /// in the last seconds.
    pub const TTL: Duration = Duration::from_secs(10);
    /// How long a token read from (or returned by) the backend stands in for
    /// another read, in a reconcile that our own writes woke.
    pub const TOKEN_TTL: Duration = Duration::from_secs(10);

    /// Runs `f` on `tok`'s entry (created if missing, and marked as touched).
    fn with<T>(&self, tok: &ApiToken, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let uid = tok.uid()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (entries, pruned) = &mut *inner;
        // Drop stale entries once per TTL (amortised over all the calls meanwhile).
        if pruned.is_none_or(|p| !fresh(p)) {
            entries.retain(|_, e| e.touched.is_some_and(fresh));
            *pruned = Some(Instant::now());
        }
        let entry = entries.entry(uid).or_default();
        if entry.touched.is_some_and(|t| !fresh(t)) {
            *entry = Entry::default();
        }
        entry.touched = Some(Instant::now());
        Some(f(entry))
    }

    /// Runs `f` on the entry of the `ApiToken` with `uid`, if there is a fresh
    /// one (without creating one); drops the entry when `f` leaves nothing in
    /// it that a cache could still be behind on.
    fn peek<T>(&self, uid: &str, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = inner
            .0
            .get_mut(uid)
            .filter(|e| e.touched.is_some_and(fresh))?;
        let result = f(entry);
        if entry.status.is_none() && entry.secret.is_none() && entry.finalizer.is_none() {
            inner.0.remove(uid);
        }
        Some(result)
    }

    /// Whether `tok`, as a watch event brings it, is what our own finalizer
    /// patch or status write made of it (the reconcile that wrote it has
    /// already acted on it). Once the event of our status write has come, the
    /// cache holds everything we wrote to the `ApiToken`: that part is
    /// forgotten (the memory holds only what caches may still be behind on).
    pub fn made(&self, tok: &ApiToken) -> bool {
        let (Some(uid), Some(version)) = (tok.uid(), tok.resource_version()) else {
            return false;
        };
        self.peek(&uid, |e| {
            let made = e.versions.contains(&version);
            if e.status
                .as_ref()
                .is_some_and(|(_, v, _)| v.as_ref() == Some(&version))
            {
                e.status = None;
                e.finalizer = None;
                e.token = None;
                e.versions.clear();
            }
            made
        })
        .unwrap_or(false)
    }

    /// Whether `secret`, as a watch event brings it, is our own last write of
    /// it (for the `ApiToken` with UID `owner`); if so, the cache now holds it
    /// and it is forgotten.
    pub fn wrote_secret(&self, owner: &str, secret: &Secret) -> bool {
        let (name, Some(version)) = (secret.name_any(), secret.resource_version()) else {
            return false;
        };
        self.peek(owner, |e| {
            let ours = e
                .secret
                .as_ref()
                .is_some_and(|(n, v, at)| *n == name && *v == version && fresh(*at));
            if ours {
                e.secret = None;
            }
            ours
        })
        .unwrap_or(false)
    }

    fn add_version(entry: &mut Entry, version: Option<String>) {
        if let Some(v) = version
            && !entry.versions.contains(&v)
        {
            if entry.versions.len() >= VERSIONS_KEPT {
                entry.versions.remove(0);
            }
            entry.versions.push(v);
        }
    }

    /// `tok` with the status we last wrote, when we wrote one recently: the
    /// cache may not have it yet.
    pub fn overlay_status(&self, tok: &mut ApiToken) {
        let written = self.with(tok, |e| {
            e.status
                .as_ref()
                .filter(|(_, _, at)| fresh(*at))
                .map(|(s, _, _)| s.clone())
        });
        if let Some(Some(status)) = written {
            tok.status = Some(status);
        }
    }

    /// Whether we added our finalizer to `tok` recently.
    pub fn has_finalizer(&self, tok: &ApiToken) -> bool {
        self.with(tok, |e| e.finalizer.is_some_and(fresh))
            .unwrap_or(false)
    }

    /// Records that a reconcile of `tok` succeeded, having acted on the
    /// `ApiToken` at `version` (as the controller handed it over).
    pub fn acted_on(&self, tok: &ApiToken, version: Option<String>) {
        self.with(tok, |e| Self::add_version(e, version));
    }

    /// Records our finalizer patch, which left `tok` as it is.
    pub fn added_finalizer(&self, tok: &ApiToken) {
        self.with(tok, |e| {
            e.finalizer = Some(Instant::now());
            Self::add_version(e, tok.resource_version());
        });
    }

    /// Records our status write, which gave the `ApiToken` `version`.
    pub fn wrote_status(&self, tok: &ApiToken, status: &ApiTokenStatus, version: Option<String>) {
        self.with(tok, |e| {
            e.status = Some((status.clone(), version.clone(), Instant::now()));
            Self::add_version(e, version);
        });
    }

    /// Records the Secret `name` at `version` (`None`: absent), as we wrote or read it.
    pub fn saw_secret(&self, tok: &ApiToken, name: &str, version: Option<String>) {
        self.with(tok, |e| {
            e.secret = version.map(|v| (name.to_string(), v, Instant::now()));
        });
    }

    /// The resourceVersion of Secret `name` as we last wrote or read it recently.
    pub fn secret_version(&self, tok: &ApiToken, name: &str) -> Option<String> {
        self.with(tok, |e| {
            e.secret
                .as_ref()
                .filter(|(n, _, at)| n == name && fresh(*at))
                .map(|(_, v, _)| v.clone())
        })
        .flatten()
    }

    /// Records the token as the backend showed it at `seen`.
    pub fn saw_token(&self, tok: &ApiToken, token: Token, seen: Instant) {
        self.with(tok, |e| e.token = Some((token, seen)));
    }

    /// The token as the backend last showed it, without asking again, when
    /// nothing but our own writes has changed `tok` since (it is at a
    /// resourceVersion we acted on or produced) and that was less than
    /// `ttl` (at most [`Memory::TOKEN_TTL`]) ago. The periodic resync and any
    /// change to the `ApiToken` still read the backend.
    pub fn known_token(&self, tok: &ApiToken, ttl: Duration) -> Option<(Token, Instant)> {
        let version = tok.resource_version()?;
        self.with(tok, |e| {
            if !e.versions.contains(&version) {
                return None;
            }
            e.token
                .clone()
                .filter(|(_, seen)| seen.elapsed() < ttl.min(Self::TOKEN_TTL))
        })
        .flatten()
    }

    /// Forgets the token we saw (after a failure, its state is read afresh).
    pub fn forget_token(&self, tok: &ApiToken) {
        self.with(tok, |e| e.token = None);
    }

    /// Forgets everything about `tok`.
    pub fn forget(&self, tok: &ApiToken) {
        if let Some(uid) = tok.uid() {
            self.inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_token(version: &str) -> ApiToken {
        serde_json::from_value(json!({
            "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
            "metadata": {"name": "a", "namespace": "n", "uid": "u-1", "resourceVersion": version},
            "spec": {"backendRef": {"name": "b"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_cache_behind_our_status_write_gets_the_status_we_wrote() {
        let memory = Memory::default();
        let mut stale = api_token("1");
        let status = ApiTokenStatus {
            token_id: Some("t-1".into()),
            ..Default::default()
        };
        memory.wrote_status(&stale, &status, Some("3".into()));
        memory.overlay_status(&mut stale);
        assert_eq!(stale.status, Some(status));
    }

    #[test]
    fn the_event_of_our_status_write_is_ours_and_ends_the_memory_of_it() {
        let memory = Memory::default();
        let tok = api_token("1");
        memory.added_finalizer(&api_token("2"));
        let status = ApiTokenStatus {
            token_id: Some("t-1".into()),
            ..Default::default()
        };
        memory.wrote_status(&tok, &status, Some("3".into()));
        assert!(memory.made(&api_token("2")), "the finalizer patch");
        assert!(!memory.made(&api_token("4")), "someone else's change");
        assert!(memory.made(&api_token("3")), "the status write");
        // The cache has caught up: nothing more to stand in for.
        let mut later = api_token("3");
        later.status = None;
        memory.overlay_status(&mut later);
        assert_eq!(later.status, None);
        assert!(!memory.has_finalizer(&later));
    }

    #[test]
    fn the_token_is_known_only_at_versions_we_acted_on_or_produced() {
        let memory = Memory::default();
        let first = api_token("1");
        let token: Token = serde_json::from_value(json!({
            "id": "t-1", "name": "a", "masked": "tko_…", "project": "p",
            "status": "active", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "generation": 0
        }))
        .unwrap_or_else(|e| panic!("a token: {e}"));
        memory.saw_token(&first, token, Instant::now());
        memory.wrote_status(&first, &ApiTokenStatus::default(), Some("2".into()));
        let ttl = Duration::from_secs(600);
        assert!(
            memory.known_token(&api_token("1"), ttl).is_none(),
            "not acted on yet"
        );
        memory.acted_on(&first, Some("1".into()));
        assert!(memory.known_token(&api_token("1"), ttl).is_some());
        assert!(memory.known_token(&api_token("2"), ttl).is_some());
        assert!(
            memory.known_token(&api_token("5"), ttl).is_none(),
            "changed by someone else"
        );
        memory.forget(&first);
        assert!(memory.known_token(&api_token("2"), ttl).is_none());
    }
}
