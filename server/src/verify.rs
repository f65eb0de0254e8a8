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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// What the cache remembers about a verified value.
#[derive(Debug)]
pub struct Credential {
    pub id: Arc<str>,
    pub project: Arc<str>,
    pub name: Arc<str>,
    pub role: Option<Arc<str>>,
    pub scopes: Box<[String]>,
    /// Role bundle plus scopes.
    pub permissions: Box<[String]>,
    pub resources: Resources,
    pub masked: Box<str>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    /// Set when this value is the previous one of a regenerated token: it
    /// verifies only until then.
    pub valid_until: Option<i64>,
}

impl Credential {
    fn from_row(row: &TokenRow, is_previous: bool, policy: &Policy) -> Credential {
        let permissions = policy.effective_permissions(row.role.as_deref(), &row.scopes);
        Credential {
            id: row.id.as_str().into(),
            project: row.project.as_str().into(),
            name: row.name.as_str().into(),
            role: row.role.as_deref().map(Into::into),
            scopes: row.scopes.clone().into_boxed_slice(),
            permissions: permissions.into_boxed_slice(),
            resources: row.resources.clone(),
            masked: row.masked.as_str().into(),
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
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
    cache: moka::sync::Cache<Hash, Arc<Credential>>,
    /// Token id → the hashes cached for it, so a change can drop them all.
    by_id: DashMap<Arc<str>, Vec<Hash>>,
    epoch: AtomicU64,
    /// How many checks had to read storage (malformed values never do).
    storage_lookups: AtomicU64,
    limiter: Option<Limiter>,
    /// Coalesced last-used times, written by the flusher.
    last_used: DashMap<Arc<str>, i64>,
}

impl Verifier {
    pub fn new(store: Store, policy: Arc<Policy>) -> Verifier {
        let cache = moka::sync::Cache::builder()
            .max_capacity(policy.cache_capacity)
            .time_to_live(policy.cache_ttl.0.max(Duration::from_millis(1)))
            .build();
        let limiter = policy.rate_limit.as_ref().map(|rl| {
            let rps = std::num::NonZeroU32::new(rl.requests_per_second)
                .expect("checked by Policy::check");
            let burst = rl.burst.and_then(std::num::NonZeroU32::new).unwrap_or(rps);
            RateLimiter::dashmap(Quota::per_second(rps).allow_burst(burst))
        });
        Verifier {
            store,
            policy,
            cache,
            by_id: DashMap::new(),
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
        let cred = match self.cache.get(&hash) {
            Some(c) => c,
            None => match self.load(hash).await? {
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
        self.last_used.insert(cred.id.clone(), now_us);
        Ok(Checked::Valid(cred))
    }

    async fn load(&self, hash: Hash) -> anyhow::Result<Option<Arc<Credential>>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        self.storage_lookups.fetch_add(1, Ordering::Relaxed);
        let hex = hex::encode(hash);
        let Some(row) = self.store.find_by_hash(&hex).await? else {
            return Ok(None);
        };
        let is_previous = row.secret_hash != hex;
        let cred = Arc::new(Credential::from_row(&row, is_previous, &self.policy));
        // Cache only if no write happened since we started reading.
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.by_id.entry(cred.id.clone()).or_default().push(hash);
            self.cache.insert(hash, cred.clone());
        }
        Ok(Some(cred))
    }

    /// Forgets everything cached about these tokens. Call after every write.
    pub fn invalidate<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            if let Some((_, hashes)) = self.by_id.remove(id) {
                for h in hashes {
                    self.cache.invalidate(&h);
                }
            }
        }
    }

    /// Forgets the whole cache (e.g. change notifications may have been missed).
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.by_id.clear();
        self.cache.invalidate_all();
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

    /// How many checks have read storage so far.
    pub fn storage_lookups(&self) -> u64 {
        self.storage_lookups.load(Ordering::Relaxed)
    }

    /// How many tokens have a last-used time waiting to be written.
    pub fn pending_count(&self) -> usize {
        self.last_used.len()
    }

    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }
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
