//! Token verification: the hot path behind every authenticated request and
//! `POST /v1/verify`.
//!
//! A value is first checked for shape and checksum (no storage touched), then
//! hashed and looked up in an in-memory cache of verified tokens, falling back
//! to storage. The cache never outlives a change on this replica: every write
//! invalidates the token's entries, and a global epoch stops a lookup that
//! raced with a write from caching what it read. Other replicas learn of
//! changes through PostgreSQL notifications (see `notify`), with a TTL as the
//! bound if one is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokenops_types::{Resources, VerifyCode, secret};

use crate::config::Policy;
use crate::store::{Store, TokenRow};

/// 32-byte hash of a value: the only thing about a value the server keeps.
pub type Hash = [u8; 32];

/// What the cache remembers about a verified value. Kept small: with 100,000
/// tokens cached, every field counts (project and role are shared strings).
#[derive(Debug)]
pub struct Credential {
    pub id: Arc<str>,
    pub project: Arc<str>,
    pub role: Option<Arc<str>>,
    /// Role bundle plus scopes (shared among tokens with the same role and no scopes).
    pub permissions: Arc<[String]>,
    pub resources: Resources,
    pub expires_at: Option<i64>,
    /// The token as `POST /v1/verify` describes it (a `VerifiedToken` JSON
    /// object), rendered once when the token is read from storage: the hot path
    /// copies it instead of serialising the same fields on every request. It
    /// also holds the name and masked value, which nothing else needs.
    pub json: Box<str>,
    pub revoked: bool,
    /// Set when this value is the previous one of a regenerated token: it
    /// verifies only until then.
    pub valid_until: Option<i64>,
    /// When a use of this token was last recorded (µs), to record at most once per granularity.
    last_recorded: AtomicI64,
}

/// Shares the strings many cached tokens have in common.
#[derive(Default)]
struct Interner {
    strings: DashMap<Box<str>, Arc<str>>,
    role_permissions: DashMap<Box<str>, Arc<[String]>>,
}

impl Interner {
    fn string(&self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        self.strings
            .entry(s.into())
            .or_insert_with(|| s.into())
            .clone()
    }

    fn permissions(&self, policy: &Policy, role: Option<&str>, scopes: &[String]) -> Arc<[String]> {
        match role {
            Some(r) if scopes.is_empty() => {
                if let Some(p) = self.role_permissions.get(r) {
                    return p.clone();
                }
                let p: Arc<[String]> = policy.effective_permissions(role, scopes).into();
                self.role_permissions.insert(r.into(), p.clone());
                p
            }
            _ => policy.effective_permissions(role, scopes).into(),
        }
    }
}

impl Credential {
    fn from_row(
        row: &TokenRow,
        is_previous: bool,
        policy: &Policy,
        interner: &Interner,
    ) -> Credential {
        let permissions = interner.permissions(policy, row.role.as_deref(), &row.scopes);
        let json = serde_json::to_string(&VerifiedRef {
            id: &row.id,
            project: &row.project,
            name: &row.name,
            role: row.role.as_deref(),
            permissions: &permissions,
            resources: &row.resources,
            expires_at: row.expires_at.map(crate::store::to_time),
            masked: &row.masked,
        })
        .expect("a token serialises to JSON")
        .into_boxed_str();
        Credential {
            id: row.id.as_str().into(),
            project: interner.string(&row.project),
            role: row.role.as_deref().map(|r| interner.string(r)),
            permissions,
            resources: row.resources.clone(),
            expires_at: row.expires_at,
            json,
            revoked: row.revoked_at.is_some(),
            last_recorded: AtomicI64::new(row.last_used_at.unwrap_or(i64::MIN / 2)),
            valid_until: if is_previous {
                Some(row.prev_valid_until.unwrap_or(0))
            } else {
                None
            },
        }
    }

    pub fn allows(&self, permission: &str) -> bool {
        tokenops_types::permission::any_allows(
            self.permissions.iter().map(String::as_str),
            permission,
        )
    }
}

/// Borrowed twin of [`tokenops_types::VerifiedToken`]: the same JSON.
#[derive(serde::Serialize)]
struct VerifiedRef<'a> {
    id: &'a str,
    project: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    permissions: &'a [String],
    resources: &'a Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    masked: &'a str,
}

/// Outcome of checking a value.
pub enum Checked {
    Valid(Arc<Credential>),
    Invalid(VerifyCode),
    /// Over the token's rate limit: retry after this many seconds.
    RateLimited(Arc<Credential>, u64),
}

type Limiter =
    RateLimiter<Arc<str>, governor::state::keyed::DashMapStateStore<Arc<str>>, DefaultClock>;

pub struct Verifier {
    store: Store,
    policy: Arc<Policy>,
    /// Hash → what it verifies as, and when that was read from storage (µs).
    /// A plain concurrent map: lookups take no lock but a shard read lock, and
    /// do no bookkeeping; expiry is checked on read and swept periodically.
    cache: DashMap<Hash, (Arc<Credential>, i64), HashKeyed>,
    /// Token id → the (at most two) hashes cached for it, so a change can drop them.
    by_id: DashMap<Arc<str>, [Option<Hash>; 2]>,
    interner: Interner,
    epoch: AtomicU64,
    /// How many checks had to read storage (malformed values never do).
    storage_lookups: AtomicU64,
    limiter: Option<Limiter>,
    /// Coalesced last-used times, written by the flusher.
    last_used: DashMap<Arc<str>, i64>,
}

impl Verifier {
    pub fn new(store: Store, policy: Arc<Policy>) -> Verifier {
        let limiter = policy.rate_limit.as_ref().map(|rl| {
            let rps = std::num::NonZeroU32::new(rl.requests_per_second)
                .expect("checked by Policy::check");
            let burst = rl.burst.and_then(std::num::NonZeroU32::new).unwrap_or(rps);
            RateLimiter::dashmap(Quota::per_second(rps).allow_burst(burst))
        });
        Verifier {
            store,
            policy,
            cache: DashMap::with_hasher(HashKeyed),
            by_id: DashMap::new(),
            interner: Interner::default(),
            epoch: AtomicU64::new(0),
            storage_lookups: AtomicU64::new(0),
            limiter,
            last_used: DashMap::new(),
        }
    }

    /// Hash of a value: SHA-256, or HMAC-SHA-256 when the policy sets a key.
    pub fn hash(&self, value: &str) -> Hash {
        hash_value(self.policy.hash_key.as_deref(), value)
    }

    /// Checks a presented value: format, existence, revocation, expiry, rate.
    pub async fn check(&self, value: &str, now_us: i64) -> anyhow::Result<Checked> {
        if secret::check(value, &self.policy.token_prefix).is_err() {
            return Ok(Checked::Invalid(VerifyCode::Malformed));
        }
        let hash = self.hash(value);
        let cached = self
            .cache
            .get(&hash)
            .filter(|e| now_us - e.1 < self.ttl_us())
            .map(|e| e.0.clone());
        let cred = match cached {
            Some(c) => c,
            // Boxed: the storage read is a large future, and inlining it would make
            // every check, even a malformed one, carry (and move) its state.
            None => match Box::pin(self.load(hash, now_us)).await? {
                Some(c) => c,
                None => return Ok(Checked::Invalid(VerifyCode::NotFound)),
            },
        };
        if let Some(until) = cred.valid_until
            && now_us >= until
        {
            return Ok(Checked::Invalid(VerifyCode::NotFound));
        }
        if cred.revoked {
            return Ok(Checked::Invalid(VerifyCode::Revoked));
        }
        if cred.expires_at.is_some_and(|e| now_us >= e) {
            return Ok(Checked::Invalid(VerifyCode::Expired));
        }
        if let Some(limiter) = &self.limiter
            && let Err(not_until) = limiter.check_key(&cred.id)
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Ok(Checked::RateLimited(cred, secs.max(1)));
        }
        let granularity =
            i64::try_from(self.policy.last_used_granularity.0.as_micros()).unwrap_or(i64::MAX);
        if now_us - cred.last_recorded.load(Ordering::Relaxed) >= granularity {
            cred.last_recorded.store(now_us, Ordering::Relaxed);
            self.last_used.insert(cred.id.clone(), now_us);
        }
        Ok(Checked::Valid(cred))
    }

    fn ttl_us(&self) -> i64 {
        i64::try_from(self.policy.cache_ttl.0.as_micros()).unwrap_or(i64::MAX)
    }

    async fn load(&self, hash: Hash, now_us: i64) -> anyhow::Result<Option<Arc<Credential>>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        self.storage_lookups.fetch_add(1, Ordering::Relaxed);
        let hex = hex::encode(hash);
        let Some(row) = self.store.find_by_hash(&hex).await? else {
            return Ok(None);
        };
        let is_previous = row.secret_hash != hex;
        let cred = Arc::new(Credential::from_row(
            &row,
            is_previous,
            &self.policy,
            &self.interner,
        ));
        // Cache only if no write happened since we started reading, and while
        // there is room (past capacity, the rest is read from storage).
        if self.epoch.load(Ordering::Acquire) == epoch
            && (self.cache.len() as u64) < self.policy.cache_capacity
        {
            let mut slots = self.by_id.entry(cred.id.clone()).or_default();
            if !slots.contains(&Some(hash)) {
                let free = slots.iter().position(Option::is_none).unwrap_or(0);
                if let Some(evicted) = slots[free].replace(hash) {
                    self.cache.remove(&evicted);
                }
            }
            drop(slots);
            self.cache.insert(hash, (cred.clone(), now_us));
        }
        Ok(Some(cred))
    }

    /// Forgets everything cached about these tokens. Call after every write.
    pub fn invalidate<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            if let Some((_, hashes)) = self.by_id.remove(id) {
                for h in hashes.into_iter().flatten() {
                    self.cache.remove(&h);
                }
            }
        }
    }

    /// Forgets the whole cache (e.g. change notifications may have been missed).
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.by_id.clear();
        self.cache.clear();
    }

    /// The pending (not yet written) last-used time of a token.
    pub fn pending_last_used(&self, id: &str) -> Option<i64> {
        self.last_used.get(id).map(|v| *v)
    }

    /// Writes pending last-used times. Entries updated meanwhile stay pending.
    pub async fn flush_last_used(&self) -> anyhow::Result<usize> {
        let batch: Vec<(String, i64)> = self
            .last_used
            .iter()
            .map(|e| (e.key().to_string(), *e.value()))
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        self.store.flush_last_used(&batch).await?;
        for (id, at) in &batch {
            self.last_used.remove_if(id.as_str(), |_, v| *v == *at);
        }
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
        Ok(batch.len())
    }

    /// Drops cache entries older than the TTL.
    pub fn sweep(&self, now_us: i64) {
        let ttl = self.ttl_us();
        self.cache.retain(|_, e| now_us - e.1 < ttl);
        self.by_id
            .retain(|_, hashes| hashes.iter().flatten().any(|h| self.cache.contains_key(h)));
    }

    /// How many checks have read storage so far.
    pub fn storage_lookups(&self) -> u64 {
        self.storage_lookups.load(Ordering::Relaxed)
    }

    /// How many tokens have a last-used time waiting to be written.
    pub fn pending_count(&self) -> usize {
        self.last_used.len()
    }

    pub fn cached_entries(&self) -> u64 {
        self.cache.len() as u64
    }
}

/// The cache's keys are SHA-256 outputs: already uniform, so their first
/// bytes are the table hash. Only values that verified against storage are
/// inserted, so callers cannot choose keys to collide.
#[derive(Clone, Copy, Default)]
pub struct HashKeyed;

impl std::hash::BuildHasher for HashKeyed {
    type Hasher = FirstBytes;
    fn build_hasher(&self) -> FirstBytes {
        FirstBytes(0)
    }
}

/// Hasher for [`HashKeyed`]: takes the first eight bytes written.
#[derive(Default)]
pub struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 && bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

pub fn hash_value(key: Option<&str>, value: &str) -> Hash {
    match key {
        Some(key) => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(value.as_bytes());
            mac.finalize().into_bytes().into()
        }
        None => Sha256::digest(value.as_bytes()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_future_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db").display().to_string();
        let store = Store::connect(&db, crate::config::SqliteSync::Normal)
            .await
            .unwrap();
        let verifier = Verifier::new(store, Arc::new(Policy::default()));
        let fut = verifier.check("tko_x", 0);
        assert!(
            std::mem::size_of_val(&fut) <= 256,
            "check future is {} bytes",
            std::mem::size_of_val(&fut)
        );
        assert!(matches!(
            fut.await.unwrap(),
            Checked::Invalid(VerifyCode::Malformed)
        ));
    }
}
