//! Server settings: where to listen, which database, and the token policy.
//!
//! `listen` and `database` come from flags or the environment; the policy comes
//! from an optional TOML file. Every setting has a default, so
//! `tokenops-server serve` alone runs with an embedded SQLite file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokenops_types::GoDuration;

/// Per-token request rate limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second allowed for one token.
    pub requests_per_second: u32,
    /// Requests allowed in a burst; defaults to `requests_per_second`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// How SQLite commits reach the disk.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// Commits survive a crash of the server process (the WAL default).
    #[default]
    Normal,
    /// Commits also survive a power loss, at the cost of an fsync per commit.
    Full,
}

/// A role: what its holders may do, and what more they may hand out.
///
/// In the policy file a role is a table `{ permissions = [...], grants = [...] }`,
/// or — as before roles had grants — just the list of its permissions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "RoleSpec")]
pub struct Role {
    /// Product and management permissions a holder has.
    pub permissions: Vec<String>,
    /// Product permissions a holder may give to tokens it creates, beyond its own.
    pub grants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RoleSpec {
    Permissions(Vec<String>),
    Full(FullRole),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullRole {
    permissions: Vec<String>,
    #[serde(default)]
    grants: Vec<String>,
}

impl From<RoleSpec> for Role {
    fn from(spec: RoleSpec) -> Role {
        match spec {
            RoleSpec::Permissions(permissions) => Role {
                permissions,
                grants: Vec::new(),
            },
            RoleSpec::Full(FullRole {
                permissions,
                grants,
            }) => Role {
                permissions,
                grants,
            },
        }
    }
}

impl Role {
    fn new(permissions: &[&str], grants: &[&str]) -> Role {
        Role {
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            grants: grants.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// The permissions that make a token an owner: every product permission and
/// all of token management and audit. Owners are not held to their own
/// remaining lifetime when they issue tokens.
pub const OWNER_PERMISSIONS: [&str; 3] = ["*", "tokens:*", "audit:read"];

/// The web dashboard's settings (`[ui]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    /// Whether `/ui/` is served (`serve --ui=false` turns it off).
    pub enabled: bool,
    /// A dashboard session ends after this long without a request.
    pub idle_timeout: GoDuration,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            enabled: true,
            idle_timeout: GoDuration(Duration::from_secs(30 * 60)),
        }
    }
}

/// The policy every token request is checked against.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Prefix of issued values (`tko` → `tko_…`).
    pub token_prefix: String,
    /// Whether every token must expire.
    pub require_expiry: bool,
    /// Longest lifetime a token may be given.
    pub max_lifetime: GoDuration,
    /// Role name → what it may do and hand out.
    pub roles: BTreeMap<String, Role>,
    /// Resource types tokens may be limited to.
    pub resource_types: Vec<String>,
    /// Per-token request rate limit; off when absent.
    pub rate_limit: Option<RateLimit>,
    /// How often coalesced `last_used_at` updates are written.
    pub last_used_flush_interval: GoDuration,
    /// Precision of `last_used_at`: a token's use is recorded at most once per
    /// this period, so busy tokens cost no storage writes between records.
    pub last_used_granularity: GoDuration,
    /// Largest accepted request body in bytes (larger → 413).
    pub max_body_bytes: usize,
    /// How many verified tokens the in-memory verification cache holds.
    pub cache_capacity: u64,
    /// Longest time a cached verification is trusted without a storage read
    /// (bounds staleness between replicas if a change notification is lost).
    pub cache_ttl: GoDuration,
    /// Optional server key: values are then hashed with HMAC-SHA-256 instead of SHA-256.
    /// Changing it invalidates every existing token.
    pub hash_key: Option<String>,
    /// SQLite durability (`normal` or `full`).
    pub sqlite_synchronous: SqliteSync,
    /// How long revoked and expired tokens are kept before they are deleted
    /// (their audit events stay).
    pub retention: GoDuration,
    /// The web dashboard.
    pub ui: UiSettings,
}

impl Default for Policy {
    fn default() -> Self {
        let roles = [
            ("owner", Role::new(&OWNER_PERMISSIONS, &[])),
            ("token-admin", Role::new(&["tokens:*"], &["*"])),
            ("read-only", Role::new(&["*:read"], &[])),
            (
                "accounting",
                Role::new(&["billing:read", "usage:read"], &[]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Policy {
            token_prefix: tokenops_types::secret::DEFAULT_PREFIX.to_string(),
            require_expiry: true,
            max_lifetime: GoDuration(Duration::from_secs(365 * 86_400)),
            roles,
            resource_types: ["device", "device_group", "site"]
                .map(String::from)
                .to_vec(),
            rate_limit: None,
            last_used_flush_interval: GoDuration(Duration::from_secs(10)),
            last_used_granularity: GoDuration(Duration::from_secs(60)),
            max_body_bytes: 64 * 1024,
            cache_capacity: 250_000,
            cache_ttl: GoDuration(Duration::from_secs(60)),
            hash_key: None,
            sqlite_synchronous: SqliteSync::Normal,
            retention: GoDuration(Duration::from_secs(30 * 86_400)),
            ui: UiSettings::default(),
        }
    }
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn from_toml(text: &str) -> anyhow::Result<Policy> {
        let policy: Policy = toml::from_str(text)?;
        policy.check()?;
        Ok(policy)
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    /// Rejects settings that cannot work, naming the setting.
    pub fn check(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if !tokenops_types::secret::valid_prefix(&self.token_prefix) {
            bail!("token_prefix: 1-16 lowercase letters or digits, starting with a letter");
        }
        if self.max_lifetime.0.is_zero() {
            bail!("max_lifetime: must be greater than zero");
        }
        for (name, role) in &self.roles {
            for p in &role.permissions {
                if tokenops_types::permission::parse(p).is_err() {
                    bail!(
                        "roles.{name}.permissions: {p:?} is not a permission pattern <resource>:<action>"
                    );
                }
            }
            for p in &role.grants {
                if tokenops_types::permission::parse(p).is_err() {
                    bail!(
                        "roles.{name}.grants: {p:?} is not a permission pattern <resource>:<action>"
                    );
                }
                if tokenops_types::permission::is_management(p) {
                    bail!(
                        "roles.{name}.grants: {p:?} is a management permission; grants hold product permissions only (give management permissions in `permissions`)"
                    );
                }
            }
        }
        if self.retention.0.is_zero() {
            bail!("retention: must be greater than zero");
        }
        for t in &self.resource_types {
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                bail!("resource_types: {t:?} must be letters, digits, '_' or '-'");
            }
        }
        if let Some(rl) = &self.rate_limit
            && (rl.requests_per_second == 0 || rl.burst == Some(0))
        {
            bail!("rate_limit: requests_per_second and burst must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes: must be at least 1024");
        }
        if self.last_used_flush_interval.0.is_zero() {
            bail!("last_used_flush_interval: must be greater than zero");
        }
        if self.ui.idle_timeout.0.is_zero() {
            bail!("ui.idle_timeout: must be greater than zero");
        }
        Ok(())
    }

    /// The effective permissions of a role plus extra scopes.
    pub fn effective_permissions(&self, role: Option<&str>, scopes: &[String]) -> Vec<String> {
        let mut out: Vec<String> = role
            .and_then(|r| self.roles.get(r))
            .map(|r| r.permissions.clone())
            .unwrap_or_default();
        for s in scopes {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }
}

impl Policy {
    /// What a holder of `role` may hand out beyond its own permissions.
    pub fn grants(&self, role: Option<&str>) -> Vec<String> {
        role.and_then(|r| self.roles.get(r))
            .map(|r| r.grants.clone())
            .unwrap_or_default()
    }

    /// Settings that load but probably do not mean what they say, in words
    /// for the log (a policy file written before management permissions
    /// were kept apart from product permissions).
    pub fn warnings(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, r)| {
                r.permissions.iter().any(|p| p == "*" || p == "*:*")
                    && !r
                        .permissions
                        .iter()
                        .any(|p| tokenops_types::permission::is_management(p))
            })
            .map(|(name, _)| {
                format!(
                    "role {name}: \"*\" does not include managing tokens or reading the audit log; \
                     add \"tokens:*\" and \"audit:read\" to its permissions if its holders should"
                )
            })
            .collect()
    }

    /// One line describing the active policy, logged at start.
    pub fn summary(&self) -> String {
        let roles: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        format!(
            "expiry {}, max lifetime {}, retention {}, roles [{}], resource types [{}], rate limit {}",
            if self.require_expiry {
                "required (require_expiry = false allows tokens without expiry)"
            } else {
                "optional"
            },
            tokenops_types::format_duration(self.max_lifetime.0),
            tokenops_types::format_duration(self.retention.0),
            roles.join(", "),
            self.resource_types.join(", "),
            match &self.rate_limit {
                Some(rl) => format!(
                    "{}/s burst {}",
                    rl.requests_per_second,
                    rl.burst.unwrap_or(rl.requests_per_second)
                ),
                None => "off".to_string(),
            }
        )
    }

    /// The policy as `GET /v1/policy` shows it.
    pub fn document(&self) -> tokenops_types::PolicyDocument {
        tokenops_types::PolicyDocument {
            roles: self
                .roles
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        tokenops_types::RoleDefinition {
                            permissions: r.permissions.clone(),
                            grants: r.grants.clone(),
                        },
                    )
                })
                .collect(),
            resource_types: self.resource_types.clone(),
            require_expiry: self.require_expiry,
            max_lifetime: tokenops_types::format_duration(self.max_lifetime.0),
            retention: tokenops_types::format_duration(self.retention.0),
            token_prefix: self.token_prefix.clone(),
            rate_limit: self
                .rate_limit
                .as_ref()
                .map(|rl| tokenops_types::RateLimitDocument {
                    requests_per_second: rl.requests_per_second,
                    burst: rl.burst.unwrap_or(rl.requests_per_second),
                }),
            management_resources: tokenops_types::permission::MANAGEMENT_RESOURCES
                .iter()
                .map(|r| r.to_string())
                .collect(),
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// A SQLite path or URL, or a `postgres://` URL.
    pub database: String,
    pub policy: Policy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
    }

    #[test]
    fn settings_are_read_and_checked() {
        let p = Policy::from_toml(
            "token_prefix = \"acme\"\nmax_lifetime = \"720h\"\n[rate_limit]\nrequests_per_second = 5\n[roles]\nviewer = [\"*:read\"]\n",
        )
        .unwrap();
        assert_eq!(p.token_prefix, "acme");
        assert_eq!(p.max_lifetime.0, Duration::from_secs(720 * 3600));
        assert_eq!(p.rate_limit.unwrap().requests_per_second, 5);
        assert_eq!(p.roles.len(), 1);
        let err = Policy::from_toml("token_prefix = \"Bad_\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_prefix"), "{err}");
        let err = Policy::from_toml("max_lifetime = \"forever\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_lifetime") || err.contains("unit"),
            "{err}"
        );
        let err = Policy::from_toml("[roles]\nx = [\"nope\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("roles.x"), "{err}");
        assert!(Policy::from_toml("unknown_setting = 1").is_err());
    }

    #[test]
    fn roles_are_tables_with_grants_or_plain_permission_lists() {
        let p = Policy::from_toml(
            "[roles]\nold-owner = [\"*\"]\nbot = { permissions = [\"tokens:*\"], grants = [\"billing:*\"] }\n",
        )
        .unwrap();
        assert_eq!(p.roles["old-owner"].permissions, ["*"]);
        assert!(p.roles["old-owner"].grants.is_empty());
        assert_eq!(p.roles["bot"].grants, ["billing:*"]);
        let warnings = p.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("old-owner"), "{warnings:?}");
        let err = Policy::from_toml("[roles]\nbot = { permissions = [], grants = [\"tokens:*\"] }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("roles.bot.grants"), "{err}");
        let defaults = Policy::default();
        assert!(defaults.warnings().is_empty());
        assert_eq!(defaults.grants(Some("token-admin")), ["*"]);
        assert!(defaults.summary().contains("require_expiry = false"));
    }
}
