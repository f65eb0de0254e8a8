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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
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

/// What the cache remembers about a verified value. Kept small: with 100,000
/// tokens cached, every field counts (project and role are shared strings).
#[derive(Debug)]
pub struct Credential {
    pub id: Arc<str>,
    pub project: Arc<str>,
    pub role: Option<Arc<str>>,
    /// Role bundle plus scopes (shared among tokens with the same role and no scopes).
    pub permissions: Arc<[String]>,
    /// Product permissions the token's role may hand out beyond its own (shared per role).
    pub grants: Arc<[String]>,
    pub resources: Resources,
    pub expires_at: Option<i64>,
    /// The token as `POST /v1/verify` describes it (a `VerifiedToken` JSON
    /// object) is rendered once, when the token is read from storage, in two
    /// parts: the hot path copies them instead of serialising the same fields
    /// on every request ([`Credential::write_json`]). This part holds what is
    /// the token's own (`id`, `name`, `expires_at`, `masked`: about 120 bytes),
    /// and is the only place the name and masked value are kept.
    json_own: Box<str>,
    /// The other part: `project`, `role`, `permissions`, `resources`, shared
    /// by the tokens of a project and role that have no scopes or resources
    /// of their own (with 100,000 tokens, a whole answer per token was ~19 MB).
    json_grants: Arc<str>,
    pub revoked: bool,
    /// Set when this value is the previous one of a regenerated token: it
    /// verifies only until then.
    pub valid_until: Option<i64>,
    /// When a use of this token was last recorded (µs), to record at most once per granularity.
    last_recorded: AtomicI64,
    /// Checked since it was last read from storage: only such entries are
    /// revalidated ([`Verifier::revalidate`]); the others expire.
    used: AtomicBool,
}

/// Shares the strings many cached tokens have in common.
#[derive(Default)]
struct Interner {
    strings: DashMap<Box<str>, Arc<str>>,
    role_permissions: DashMap<Box<str>, Arc<[String]>>,
    role_grants: DashMap<Box<str>, Arc<[String]>>,
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

    fn grants(&self, policy: &Policy, role: Option<&str>) -> Arc<[String]> {
        let Some(r) = role else {
            return Arc::from(Vec::new());
        };
        if let Some(g) = self.role_grants.get(r) {
            return g.clone();
        }
        let g: Arc<[String]> = policy.grants(role).into();
        self.role_grants.insert(r.into(), g.clone());
        g
    }
}

impl Credential {
    /// What the value whose hash is `hex` verifies as, according to `row`:
    /// its current value, or its previous one (in a grace period). `None`
    /// when the row holds neither (the token was regenerated or revoked since).
    fn from_row(
        row: &TokenRow,
        hex: &str,
        policy: &Policy,
        interner: &Interner,
    ) -> Option<Credential> {
        let is_previous = if row.secret_hash == hex {
            false
        } else if row.prev_hash.as_deref() == Some(hex) {
            true
        } else {
            return None;
        };
        let permissions = interner.permissions(policy, row.role.as_deref(), &row.scopes);
        let grants = interner.grants(policy, row.role.as_deref());
        // A previous value is described as itself: its own masked form, and
        // the end of its grace period (or the token's end, if sooner).
        let valid_until = is_previous.then(|| row.prev_valid_until.unwrap_or(0));
        let ends_at = match (row.expires_at, valid_until) {
            (Some(e), Some(v)) => Some(e.min(v)),
            (e, v) => e.or(v),
        };
        let json_own = json_members(&VerifiedOwn {
            id: &row.id,
            name: &row.name,
            expires_at: ends_at.map(crate::store::to_time),
            masked: if is_previous {
                row.prev_masked.as_deref().unwrap_or("")
            } else {
                &row.masked
            },
            labels: &row.labels,
            previous: is_previous,
        });
        let authority = json_members(&VerifiedGrants {
            project: &row.project,
            role: row.role.as_deref(),
            permissions: &permissions,
            resources: &row.resources,
        });
        // Shared only where the grants follow from project and role alone, so
        // the interner stays bounded by the policy's roles and the projects.
        let json_grants = if row.scopes.is_empty() && row.resources.is_all() {
            interner.string(&authority)
        } else {
            authority.into()
        };
        Some(Credential {
            id: row.id.as_str().into(),
            project: interner.string(&row.project),
            role: row.role.as_deref().map(|r| interner.string(r)),
            permissions,
            grants,
            resources: row.resources.clone(),
            expires_at: row.expires_at,
            json_own: json_own.into_boxed_str(),
            json_grants,
            revoked: row.revoked_at.is_some(),
            last_recorded: AtomicI64::new(row.last_used_at.unwrap_or(i64::MIN / 2)),
            used: AtomicBool::new(false),
            valid_until,
        })
    }

    /// Whether `other` verifies exactly as this one does.
    fn same_as(&self, other: &Credential) -> bool {
        self.json_own == other.json_own
            && self.json_grants == other.json_grants
            && self.revoked == other.revoked
            && self.expires_at == other.expires_at
            && self.valid_until == other.valid_until
    }

    /// Appends the token as `POST /v1/verify` describes it: a `VerifiedToken`
    /// JSON object.
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        out.push_str(&self.json_own);
        out.push(',');
        out.push_str(&self.json_grants);
        out.push('}');
    }

    /// The length of what [`Credential::write_json`] appends.
    pub fn json_len(&self) -> usize {
        self.json_own.len() + self.json_grants.len() + 3
    }

    /// The token's name (kept only inside its rendered JSON, see `json_own`).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        crate::authorize::json_string_member(&self.json_own, "name").unwrap_or_default()
    }

    pub fn allows(&self, permission: &str) -> bool {
        tokenops_types::permission::any_allows(
            self.permissions.iter().map(String::as_str),
            permission,
        )
    }

    /// Whether this is the previous value of a regenerated token, verifying
    /// during its grace period.
    pub fn is_previous(&self) -> bool {
        self.valid_until.is_some()
    }
}

/// What of a [`tokenops_types::VerifiedToken`] is the token's own, borrowed.
#[derive(serde::Serialize)]
struct VerifiedOwn<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    masked: &'a str,
    labels: &'a tokenops_types::Labels,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    previous: bool,
}

/// The rest of a [`tokenops_types::VerifiedToken`], borrowed.
#[derive(serde::Serialize)]
struct VerifiedGrants<'a> {
    project: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    permissions: &'a [String],
    resources: &'a Resources,
}

/// The members of `value`'s JSON object, without the braces.
fn json_members(value: &impl serde::Serialize) -> String {
    let mut json = serde_json::to_string(value).expect("a token serialises to JSON");
    json.pop();
    json.remove(0);
    json
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
    /// Well-formed values recently found in no token: verifying one again
    /// costs no storage read. Bounded; emptied by every change (a create or
    /// regenerate could make a value known), and entries live one cache TTL.
    /// Keyed with a random hasher: callers choose these keys.
    unknown: moka::sync::Cache<Hash, ()>,
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
        let unknown = moka::sync::Cache::builder()
            .max_capacity(NEGATIVE_CACHE_CAPACITY)
            .time_to_live(policy.cache_ttl.0)
            .build();
        Verifier {
            store,
            policy,
            cache: DashMap::with_hasher(HashKeyed),
            by_id: DashMap::new(),
            interner: Interner::default(),
            unknown,
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
        self.check_hash(&self.hash(value), now_us).await
    }

    /// Checks a value known by its hash (a dashboard session keeps the hash,
    /// never the value): existence, revocation, expiry, rate.
    pub async fn check_hash(&self, hash: &Hash, now_us: i64) -> anyhow::Result<Checked> {
        let hash = *hash;
        let cached = self
            .cache
            .get(&hash)
            .filter(|e| now_us - e.1 < self.ttl_us())
            .map(|e| e.0.clone());
        let cred = match cached {
            Some(c) => c,
            None if self.unknown.contains_key(&hash) => {
                return Ok(Checked::Invalid(VerifyCode::NotFound));
            }
            // Boxed: the storage read is a large future, and inlining it would make
            // every check, even a malformed one, carry (and move) its state.
            None => match Box::pin(self.load(hash, now_us)).await? {
                Some(c) => c,
                None => return Ok(Checked::Invalid(VerifyCode::NotFound)),
            },
        };
        if !cred.used.load(Ordering::Relaxed) {
            cred.used.store(true, Ordering::Relaxed);
        }
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
        let Some(cred) = self
            .store
            .find_by_hash(&hex)
            .await?
            .and_then(|row| Credential::from_row(&row, &hex, &self.policy, &self.interner))
        else {
            if self.epoch.load(Ordering::Acquire) == epoch {
                self.unknown.insert(hash, ());
            }
            return Ok(None);
        };
        let cred = Arc::new(cred);
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

    /// Forgets every value remembered as unknown (after a create).
    pub fn forget_unknown(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.unknown.invalidate_all();
    }

    /// Forgets everything cached about these tokens, and every value
    /// remembered as unknown. Call after every write (creates included).
    pub fn invalidate<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.unknown.invalidate_all();
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
        self.unknown.invalidate_all();
        self.by_id.clear();
        self.cache.clear();
    }

    /// The pending (not yet written) last-used time of a token.
    pub fn pending_last_used(&self, id: &str) -> Option<i64> {
        self.last_used.get(id).map(|v| *v)
    }

    /// Writes pending last-used times. Entries updated meanwhile stay pending.
    pub async fn flush_last_used(&self) -> anyhow::Result<usize> {
        let batch: Vec<(Arc<str>, i64)> = self
            .last_used
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        self.store.flush_last_used(&batch).await?;
        for (id, at) in &batch {
            self.last_used.remove_if(&**id, |_, v| *v == *at);
        }
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
        Ok(batch.len())
    }

    /// How often [`Verifier::revalidate`] should run: a quarter of the TTL, so
    /// that an entry in use is re-read between half and three quarters of it.
    pub fn revalidate_every(&self) -> Duration {
        (self.policy.cache_ttl.0 / 4).max(Duration::from_millis(100))
    }

    /// Re-reads from storage, in batches of [`REVALIDATE_BATCH`], the cached
    /// tokens that were checked since they were last read and are past half
    /// the TTL. An entry that storage still describes the same way counts as
    /// read when the batch started; any other is dropped, and the next check
    /// reads storage. A token in steady use thus stays cached for as long as
    /// it is used, at the cost of one batched read per TTL instead of a storage
    /// read on the request path, and the TTL still bounds how stale an entry
    /// can be. Returns how many tokens were re-read.
    pub async fn revalidate(&self, now_us: i64) -> anyhow::Result<usize> {
        let ttl = self.ttl_us();
        let mut due: Vec<Arc<str>> = Vec::new();
        for entry in self.cache.iter() {
            let (cred, loaded) = entry.value();
            let age = now_us - loaded;
            if age >= ttl / 2 && age < ttl && cred.used.load(Ordering::Relaxed) {
                due.push(cred.id.clone());
            }
        }
        // A token with a previous value in its grace period has two entries.
        due.sort_unstable();
        due.dedup();
        let clock = std::time::Instant::now();
        for chunk in due.chunks(REVALIDATE_BATCH) {
            // `now_us` advanced by the time spent so far: when this read began.
            let started =
                now_us + i64::try_from(clock.elapsed().as_micros()).unwrap_or(i64::MAX / 4);
            // Two statement shapes only (16 or a full batch): short batches
            // repeat their last id rather than prepare a statement per size.
            let mut ids: Vec<&str> = chunk.iter().map(|id| &**id).collect();
            let padded = if ids.len() <= 16 {
                16
            } else {
                REVALIDATE_BATCH
            };
            ids.resize(padded, ids[ids.len() - 1]);
            let rows = self.store.find_by_ids(&ids).await?;
            let rows: HashMap<&str, &TokenRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
            for id in chunk {
                let Some(hashes) = self.by_id.get(&**id).map(|h| *h) else {
                    continue;
                };
                for hash in hashes.into_iter().flatten() {
                    let Some(mut entry) = self.cache.get_mut(&hash) else {
                        continue;
                    };
                    if entry.1 > started {
                        // Read again after this batch began: newer than what we read.
                        continue;
                    }
                    let current = rows.get(&**id).and_then(|row| {
                        Credential::from_row(row, &hex::encode(hash), &self.policy, &self.interner)
                    });
                    if current.is_some_and(|c| c.same_as(&entry.0)) {
                        entry.1 = started;
                        entry.0.used.store(false, Ordering::Relaxed);
                    } else {
                        drop(entry);
                        self.cache.remove(&hash);
                    }
                }
            }
        }
        Ok(due.len())
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

/// Unknown values remembered by the negative cache (32-byte keys: ~10 MB at most).
pub const NEGATIVE_CACHE_CAPACITY: u64 = 100_000;

/// Tokens re-read per storage query by [`Verifier::revalidate`].
pub const REVALIDATE_BATCH: usize = 256;

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

    async fn token(db: &str, policy: &Policy, name: &str) -> String {
        let opts = crate::BootstrapOptions {
            project: "default".into(),
            name: name.into(),
            lifetime: None,
        };
        crate::bootstrap(db, policy, &opts).await.unwrap()
    }

    #[tokio::test]
    async fn tokens_in_use_stay_cached_through_revalidation_and_changes_behind_the_cache_are_dropped()
     {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db").display().to_string();
        let policy = Policy {
            cache_ttl: tokenops_types::GoDuration(Duration::from_secs(100)),
            ..Policy::default()
        };
        let (a, b, c) = (
            token(&db, &policy, "a").await,
            token(&db, &policy, "b").await,
            token(&db, &policy, "c").await,
        );
        let store = Store::connect(&db, crate::config::SqliteSync::Normal)
            .await
            .unwrap();
        let verifier = Verifier::new(store.clone(), Arc::new(policy));
        let s = 1_000_000;
        let t0 = crate::store::now_us();
        for v in [&a, &b, &c] {
            assert!(matches!(
                verifier.check(v, t0).await.unwrap(),
                Checked::Valid(_)
            ));
        }
        assert_eq!(verifier.storage_lookups(), 3);

        // b is revoked where this cache does not hear of it (another replica
        // whose notification was lost).
        let b_row = store
            .find_by_hash(&hex::encode(verifier.hash(&b)))
            .await
            .unwrap()
            .unwrap();
        let audit = crate::store::NewAudit {
            project: "default".into(),
            actor: "test".into(),
            action: "token.revoke",
            token_id: Some(b_row.id.clone()),
            detail: serde_json::json!({}),
        };
        store.revoke("default", &b_row.id, audit).await.unwrap();

        // Before half the TTL nothing is due.
        assert_eq!(verifier.revalidate(t0 + 40 * s).await.unwrap(), 0);
        assert_eq!(verifier.revalidate(t0 + 60 * s).await.unwrap(), 3);
        assert!(matches!(
            verifier.check(&b, t0 + 61 * s).await.unwrap(),
            Checked::Invalid(VerifyCode::Revoked)
        ));
        assert_eq!(
            verifier.storage_lookups(),
            4,
            "b was dropped and read again"
        );
        assert!(matches!(
            verifier.check(&a, t0 + 61 * s).await.unwrap(),
            Checked::Valid(_)
        ));
        assert_eq!(verifier.storage_lookups(), 4, "a is still cached");

        // a was used since, c was not: only a (and b's new entry) are re-read.
        assert_eq!(verifier.revalidate(t0 + 120 * s).await.unwrap(), 2);
        assert!(matches!(
            verifier.check(&a, t0 + 170 * s).await.unwrap(),
            Checked::Valid(_)
        ));
        assert_eq!(
            verifier.storage_lookups(),
            4,
            "a outlived its first TTL in the cache"
        );
        assert!(matches!(
            verifier.check(&c, t0 + 170 * s).await.unwrap(),
            Checked::Valid(_)
        ));
        assert_eq!(
            verifier.storage_lookups(),
            5,
            "c expired and was read again"
        );
    }

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
