//! Storage: one implementation over `sqlx::Any` for both SQLite (the embedded
//! default, WAL mode) and PostgreSQL, with the same migrations and the same SQL.
//!
//! Only portable SQL is used: `$n` placeholders, TEXT and BIGINT columns,
//! timestamps as microseconds. Every change and its audit event commit in one
//! transaction, so a failed request leaves nothing half-written.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tokenops_types::{AuditEvent, Labels, Resources};

use crate::config::SqliteSync;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A token as stored (everything but the value, which is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: String,
    pub project: String,
    pub name: String,
    pub description: Option<String>,
    pub role: Option<String>,
    pub scopes: Vec<String>,
    pub resources: Resources,
    pub labels: Labels,
    pub secret_hash: String,
    pub masked: String,
    pub prev_hash: Option<String>,
    /// The masked form of the previous value.
    pub prev_masked: Option<String>,
    pub prev_valid_until: Option<i64>,
    pub lifetime_us: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub regenerated_at: Option<i64>,
    pub generation: i64,
    pub create_key: Option<String>,
    pub create_digest: Option<String>,
    pub regen_key: Option<String>,
    pub regen_digest: Option<String>,
}

/// An audit event to record with a change.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub project: String,
    pub actor: String,
    pub action: &'static str,
    pub token_id: Option<String>,
    pub detail: serde_json::Value,
}

/// Filters of a token list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// One state; without it, active and expired tokens (and revoked ones
    /// too when `include_revoked`).
    pub status: Option<tokenops_types::TokenStatus>,
    pub include_revoked: bool,
    pub name: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Only tokens that expire before this time (µs) — and have not yet.
    pub expiring_before: Option<i64>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub token_id: Option<String>,
    pub actor: Option<String>,
    /// Only events at or after this time (µs).
    pub since: Option<i64>,
}

/// A position in a list ordered by `(created_at, id)`.
pub type Cursor = (i64, String);

/// What a regeneration changes.
#[derive(Debug, Clone)]
pub struct Regeneration {
    pub new_hash: String,
    pub masked: String,
    pub expires_at: Option<i64>,
    pub lifetime_us: Option<i64>,
    /// Until when the replaced value keeps verifying; `None` ends it now.
    pub grace_until: Option<i64>,
    pub key: Option<String>,
    pub digest: Option<String>,
}

/// Outcome of inserting a token with an idempotency key.
#[derive(Debug)]
pub enum Insert {
    Created(TokenRow),
    /// A token with the same idempotency key already exists.
    KeyExists(TokenRow),
}

/// Up to this many tokens with a label, a list by that label starts from the
/// label index and sorts what it finds.
const SELECTIVE_LABEL_ROWS: i64 = 1000;

/// [`COLUMNS`] with each column prefixed by a table alias.
fn qualified_columns(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn to_time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    url: String,
    /// SQLite allows one writer at a time and makes waiting writers sleep in
    /// its busy handler; queueing them here instead keeps writes flowing.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// Revokes one active token (`$1` now, `$2` id, `$3` project); its previous
/// value stops verifying with it.
const REVOKE_ACTIVE: &str = "UPDATE tokens SET revoked_at = $1, updated_at = $1, prev_hash = NULL, \
    prev_masked = NULL, prev_valid_until = NULL WHERE id = $2 AND project = $3 AND revoked_at IS NULL";

const COLUMNS: &str = "id, project, name, description, role, scopes, resources, labels, secret_hash, masked, \
    prev_hash, prev_masked, prev_valid_until, lifetime_us, expires_at, revoked_at, created_at, updated_at, last_used_at, \
    regenerated_at, generation, create_key, create_digest, regen_key, regen_digest";

fn row_to_token(row: &AnyRow) -> anyhow::Result<TokenRow> {
    let scopes: String = row.try_get("scopes")?;
    let resources: String = row.try_get("resources")?;
    let labels: String = row.try_get("labels")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        role: row.try_get("role")?,
        scopes: serde_json::from_str(&scopes).context("stored scopes")?,
        resources: serde_json::from_str(&resources).context("stored resources")?,
        labels: serde_json::from_str(&labels).context("stored labels")?,
        secret_hash: row.try_get("secret_hash")?,
        masked: row.try_get("masked")?,
        prev_hash: row.try_get("prev_hash")?,
        prev_masked: row.try_get("prev_masked")?,
        prev_valid_until: row.try_get("prev_valid_until")?,
        lifetime_us: row.try_get("lifetime_us")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_used_at: row.try_get("last_used_at")?,
        regenerated_at: row.try_get("regenerated_at")?,
        generation: row.try_get("generation")?,
        create_key: row.try_get("create_key")?,
        create_digest: row.try_get("create_digest")?,
        regen_key: row.try_get("regen_key")?,
        regen_digest: row.try_get("regen_digest")?,
    })
}

fn row_to_audit(row: &AnyRow) -> anyhow::Result<AuditEvent> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: to_time(row.try_get("at")?),
        project: row.try_get("project")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        token_id: row.try_get("token_id")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

/// The sqlx URL for `--database`. A PostgreSQL URL is used as given. SQLite
/// is opened read-write and the file created when missing, whether it is
/// named by a plain path or by a URL (`sqlite:///abs/path`, `sqlite://rel`,
/// `sqlite:rel`), unless the URL sets its own `mode` or is in memory.
pub fn database_url(database: &str) -> String {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return database.to_string();
    }
    if !database.starts_with("sqlite:") {
        // A plain path: `%`, `?` and `#` would be read as URL syntax.
        let mut path = String::with_capacity(database.len());
        for c in database.chars() {
            match c {
                '%' => path.push_str("%25"),
                '?' => path.push_str("%3F"),
                '#' => path.push_str("%23"),
                c => path.push(c),
            }
        }
        return format!("sqlite:{path}?mode=rwc");
    }
    let query = database.split_once('?').map_or("", |(_, q)| q);
    let sets_mode = query.split('&').any(|kv| kv.starts_with("mode="));
    if sets_mode || database.contains(":memory:") {
        database.to_string()
    } else if query.is_empty() {
        format!("{}?mode=rwc", database.trim_end_matches('?'))
    } else {
        format!("{database}&mode=rwc")
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

impl Store {
    /// Connects, applies SQLite settings, and runs the migrations.
    pub async fn connect(database: &str, sync: SqliteSync) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let url = database_url(database);
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            Engine::Postgres
        };
        let mut opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(match engine {
                // Writes are serialised anyway and verification is served from
                // memory: a few connections keep SQLite's page caches small.
                Engine::Sqlite => 4,
                Engine::Postgres => 16,
            });
        if engine == Engine::Sqlite {
            let sync = match sync {
                SqliteSync::Normal => "NORMAL",
                SqliteSync::Full => "FULL",
            };
            opts = opts.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(format!("PRAGMA synchronous = {sync}").as_str())
                        .await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA cache_size = -1024").await?;
                    Ok(())
                })
            });
        }
        let failed = |e: sqlx::Error| {
            let why = match engine {
                Engine::Sqlite => sqlite_failure(&url, &e),
                Engine::Postgres => None,
            };
            let what = format!("cannot open the database {}", redact_url(database));
            match why {
                Some(why) => anyhow::anyhow!("{what}: {why}"),
                None => anyhow::Error::new(e).context(what),
            }
        };
        if engine == Engine::Sqlite {
            // One connection first: the pool retries a connection whose
            // set-up fails (a file that is not a database) until it times out.
            use sqlx::Connection;
            let probe = async {
                let mut conn = sqlx::AnyConnection::connect(&url).await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.close().await
            };
            probe.await.map_err(failed)?;
        }
        let pool = opts.connect(&url).await.map_err(failed)?;

        /// Why SQLite could not open `url`, in words, when it can be told:
        /// SQLite itself only says "unable to open database file".
        fn sqlite_failure(url: &str, e: &sqlx::Error) -> Option<String> {
            use std::str::FromStr;
            if let sqlx::Error::Database(db) = e
                && (db.code().as_deref() == Some("26") || db.message().contains("not a database"))
            {
                return Some("the file is not a SQLite database".to_string());
            }
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
            let path = options.get_filename();
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            match std::fs::metadata(dir) {
                Err(_) => return Some(format!("the directory {} does not exist", dir.display())),
                Ok(m) if !m.is_dir() => {
                    return Some(format!("{} is not a directory", dir.display()));
                }
                Ok(_) => {}
            }
            if path.is_dir() {
                return Some(format!("{} is a directory", path.display()));
            }
            // Open it as SQLite would, to learn what the system refused.
            let existed = path.exists();
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path);
            if !existed && opened.is_ok() {
                let _ = std::fs::remove_file(path);
            }
            match opened {
                Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
                    "permission denied: this user cannot {} {}",
                    if existed {
                        "read and write"
                    } else {
                        "create files in"
                    },
                    if existed { path } else { dir }.display()
                )),
                Err(io) if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                    Some(format!("{} is on a read-only file system", path.display()))
                }
                Err(io) => Some(format!("{}: {io}", path.display())),
                Ok(_) => None,
            }
        }
        MIGRATOR
            .run(&pool)
            .await
            .context("running database migrations")?;
        let write_gate = (engine == Engine::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store {
            pool,
            engine,
            url,
            write_gate,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection URL (for a PostgreSQL change listener).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, for tables kept by other modules (the dashboard's sessions).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Readiness: one round trip to storage.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.pool.begin().await
    }

    /// Waits for this process's turn to write (SQLite only); hold the guard until commit.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Inserts a token with its labels and audit event. With an idempotency key
    /// already used in the project, nothing is written and the existing token is returned.
    pub async fn insert_token(&self, row: &TokenRow, audit: NewAudit) -> anyhow::Result<Insert> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let res = sqlx::query(&format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25)"
        ))
        .bind(&row.id)
        .bind(&row.project)
        .bind(&row.name)
        .bind(&row.description)
        .bind(&row.role)
        .bind(serde_json::to_string(&row.scopes)?)
        .bind(serde_json::to_string(&row.resources)?)
        .bind(serde_json::to_string(&row.labels)?)
        .bind(&row.secret_hash)
        .bind(&row.masked)
        .bind(&row.prev_hash)
        .bind(&row.prev_masked)
        .bind(row.prev_valid_until)
        .bind(row.lifetime_us)
        .bind(row.expires_at)
        .bind(row.revoked_at)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.last_used_at)
        .bind(row.regenerated_at)
        .bind(row.generation)
        .bind(&row.create_key)
        .bind(&row.create_digest)
        .bind(&row.regen_key)
        .bind(&row.regen_digest)
        .execute(&mut *tx)
        .await;
        if let Err(e) = res {
            if is_unique_violation(&e) {
                drop(tx);
                if let Some(key) = &row.create_key
                    && let Some(existing) = self.find_by_create_key(&row.project, key).await?
                {
                    return Ok(Insert::KeyExists(existing));
                }
            }
            return Err(e.into());
        }
        Self::insert_labels(&mut tx, &row.id, &row.labels).await?;
        Self::write_audit(&mut tx, &audit, row.created_at).await?;
        tx.commit().await?;
        Ok(Insert::Created(row.clone()))
    }

    async fn write_labels(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
        labels: &Labels,
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM token_labels WHERE token_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Self::insert_labels(tx, id, labels).await
    }

    async fn insert_labels(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
        labels: &Labels,
    ) -> sqlx::Result<()> {
        for (k, v) in labels {
            sqlx::query("INSERT INTO token_labels (token_id, key, value) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(k)
                .bind(v)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn write_audit(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        audit: &NewAudit,
        at: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, project, actor, action, token_id, detail) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(format!("evt_{}", uuid::Uuid::new_v4().simple()))
        .bind(at)
        .bind(&audit.project)
        .bind(&audit.actor)
        .bind(audit.action)
        .bind(&audit.token_id)
        .bind(audit.detail.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Ends a change: records its audit event, reads the row back and commits.
    async fn audit_and_commit(
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        audit: &NewAudit,
        now: i64,
        id: &str,
    ) -> anyhow::Result<TokenRow> {
        Self::write_audit(&mut tx, audit, now).await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row_to_token(&row)
    }

    /// Records an audit event on its own (e.g. an idempotent replay).
    pub async fn audit(&self, audit: NewAudit) -> anyhow::Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        Self::write_audit(&mut tx, &audit, now_us()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_by_create_key(
        &self,
        project: &str,
        key: &str,
    ) -> anyhow::Result<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE project = $1 AND create_key = $2"
        ))
        .bind(project)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_token).transpose()
    }

    /// One token of a project.
    pub async fn get(&self, project: &str, id: &str) -> anyhow::Result<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE id = $1 AND project = $2"
        ))
        .bind(id)
        .bind(project)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_token).transpose()
    }

    /// One token of any project (the caller's authority decides whether it may see it).
    pub async fn get_by_id(&self, id: &str) -> anyhow::Result<Option<TokenRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_to_token).transpose()
    }

    /// The token whose current or previous value hashes to `hash`.
    pub async fn find_by_hash(&self, hash: &str) -> anyhow::Result<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE secret_hash = $1 OR prev_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_token).transpose()
    }

    /// The tokens with these ids (any project; missing ids are left out).
    pub async fn find_by_ids(&self, ids: &[&str]) -> anyhow::Result<Vec<TokenRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE id IN ({})",
            placeholders.join(",")
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(row_to_token).collect()
    }

    /// Whether at most [`SELECTIVE_LABEL_ROWS`] tokens carry `key=value`
    /// (counted from the label index, stopping there).
    async fn label_is_selective(&self, key: &str, value: &str) -> anyhow::Result<bool> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM token_labels WHERE key = $1 AND value = $2 LIMIT {}) s",
            SELECTIVE_LABEL_ROWS + 1
        );
        let row = sqlx::query(&sql)
            .bind(key)
            .bind(value)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n <= SELECTIVE_LABEL_ROWS)
    }

    /// One page of a project's tokens (or every project's, with `None`)
    /// ordered by creation, after `cursor`.
    pub async fn list(
        &self,
        project: Option<&str>,
        filter: &ListFilter,
        after: Option<&Cursor>,
        limit: u32,
        now: i64,
    ) -> anyhow::Result<Vec<TokenRow>> {
        // The first selective label (few tokens carry it, e.g. the operator's
        // `tokenops.dev/apitoken-uid`) drives the query from the label index,
        // and its handful of rows is sorted; otherwise the project's tokens are
        // walked in page order and each is checked against the labels. A plain
        // `id IN (…)` leaves that choice to SQLite, which (without statistics)
        // walks every token of the project even for one match. `CROSS JOIN`
        // fixes SQLite's join order; PostgreSQL plans it as any inner join.
        let mut driving_at = None;
        for (i, (k, v)) in filter.labels.iter().enumerate() {
            if self.label_is_selective(k, v).await? {
                driving_at = Some(i);
                break;
            }
        }
        let driving = driving_at.map(|i| &filter.labels[i]);
        // `COALESCE($1, t.project)`: a NULL project (organisation tokens) matches every project.
        let mut sql = match driving {
            Some(_) => format!(
                "SELECT {} FROM token_labels d CROSS JOIN tokens t \
                 WHERE d.key = $2 AND d.value = $3 AND t.id = d.token_id AND t.project = COALESCE($1, t.project)",
                qualified_columns("t")
            ),
            None if project.is_some() => {
                format!("SELECT {COLUMNS} FROM tokens t WHERE t.project = $1")
            }
            None => format!("SELECT {COLUMNS} FROM tokens t WHERE $1 IS NULL"),
        };
        let mut binds: Vec<Bind> = vec![Bind::OptText(project.map(str::to_string))];
        let mut n = 1;
        if let Some((k, v)) = driving {
            binds.push(Bind::Text(k.clone()));
            binds.push(Bind::Text(v.clone()));
            n = 3;
        }
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if let Some(status) = filter.status {
            use tokenops_types::TokenStatus::*;
            let p = next();
            sql.push_str(&match status {
                Active => format!(
                    " AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > {p})"
                ),
                Expired => format!(" AND t.revoked_at IS NULL AND t.expires_at <= {p}"),
                Revoked => format!(" AND t.revoked_at IS NOT NULL AND {p} = {p}"),
            });
            binds.push(Bind::Int(now));
        } else if !filter.include_revoked {
            sql.push_str(" AND t.revoked_at IS NULL");
        }
        if let Some(before) = filter.expiring_before {
            let (p1, p2) = (next(), next());
            sql.push_str(&format!(
                " AND t.revoked_at IS NULL AND t.expires_at > {p1} AND t.expires_at <= {p2}"
            ));
            binds.push(Bind::Int(now));
            binds.push(Bind::Int(before));
        }
        if let Some(name) = &filter.name {
            sql.push_str(&format!(" AND t.name = {}", next()));
            binds.push(Bind::Text(name.clone()));
        }
        for (_, (k, v)) in filter
            .labels
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != driving_at)
        {
            let (pk, pv) = (next(), next());
            sql.push_str(&format!(
                " AND t.id IN (SELECT token_id FROM token_labels WHERE key = {pk} AND value = {pv})"
            ));
            binds.push(Bind::Text(k.clone()));
            binds.push(Bind::Text(v.clone()));
        }
        if let Some((at, id)) = after {
            let (p1, p2, p3) = (next(), next(), next());
            sql.push_str(&format!(
                " AND (t.created_at > {p1} OR (t.created_at = {p2} AND t.id > {p3}))"
            ));
            binds.push(Bind::Int(*at));
            binds.push(Bind::Int(*at));
            binds.push(Bind::Text(id.clone()));
        }
        sql.push_str(&format!(" ORDER BY t.created_at, t.id LIMIT {}", next()));
        binds.push(Bind::Int(i64::from(limit)));
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_token).collect()
    }

    /// Edits name, description and labels. Returns the new row, or `None` if absent.
    pub async fn update_meta(
        &self,
        project: &str,
        id: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
        labels: Option<&Labels>,
        audit: NewAudit,
    ) -> anyhow::Result<Option<TokenRow>> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE tokens SET name = COALESCE($1, name), \
             description = CASE WHEN $2 = 1 THEN $3 ELSE description END, \
             labels = COALESCE($4, labels), updated_at = $5 WHERE id = $6 AND project = $7",
        )
        .bind(name)
        .bind(i64::from(description.is_some()))
        .bind(description.flatten())
        .bind(labels.map(serde_json::to_string).transpose()?)
        .bind(now)
        .bind(id)
        .bind(project)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        if let Some(labels) = labels {
            Self::write_labels(&mut tx, id, labels).await?;
        }
        Self::audit_and_commit(tx, &audit, now, id).await.map(Some)
    }

    /// Gives a token a new value and expiry. The current value becomes the
    /// previous one (verifying until `grace_until`), unless `replay` is set:
    /// then only the current value is replaced (the lost response of an
    /// idempotent retry), and the previous value keeps its grace.
    /// Returns the new row, or `None` if there is no active token with that id.
    pub async fn regenerate(
        &self,
        project: &str,
        id: &str,
        regen: &Regeneration,
        replay: bool,
        audit: NewAudit,
    ) -> anyhow::Result<Option<TokenRow>> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        // Write first so SQLite takes its write lock before reading anything.
        let updated = if replay {
            sqlx::query(
                "UPDATE tokens SET secret_hash = $1, masked = $2, updated_at = $3 \
                 WHERE id = $4 AND project = $5 AND revoked_at IS NULL",
            )
            .bind(&regen.new_hash)
            .bind(&regen.masked)
            .bind(now)
            .bind(id)
            .bind(project)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE tokens SET prev_hash = CASE WHEN $1 = 1 THEN secret_hash ELSE NULL END, \
                 prev_masked = CASE WHEN $1 = 1 THEN masked ELSE NULL END, prev_valid_until = $2, secret_hash = $3, masked = $4, expires_at = $5, lifetime_us = $6, \
                 regenerated_at = $7, updated_at = $7, generation = generation + 1, regen_key = $8, regen_digest = $9 \
                 WHERE id = $10 AND project = $11 AND revoked_at IS NULL",
            )
            .bind(i64::from(regen.grace_until.is_some()))
            .bind(regen.grace_until)
            .bind(&regen.new_hash)
            .bind(&regen.masked)
            .bind(regen.expires_at)
            .bind(regen.lifetime_us)
            .bind(now)
            .bind(&regen.key)
            .bind(&regen.digest)
            .bind(id)
            .bind(project)
            .execute(&mut *tx)
            .await?
        };
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        Self::audit_and_commit(tx, &audit, now, id).await.map(Some)
    }

    /// Revokes one token (idempotent). Returns the row, or `None` if absent.
    pub async fn revoke(
        &self,
        project: &str,
        id: &str,
        audit: NewAudit,
    ) -> anyhow::Result<Option<TokenRow>> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let changed = sqlx::query(REVOKE_ACTIVE)
            .bind(now)
            .bind(id)
            .bind(project)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE id = $1 AND project = $2"
        ))
        .bind(id)
        .bind(project)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if changed.rows_affected() > 0 {
            Self::write_audit(&mut tx, &audit, now).await?;
        }
        tx.commit().await?;
        Ok(Some(row_to_token(&row)?))
    }

    /// Deletes a token for good. Returns whether it existed.
    pub async fn delete(&self, project: &str, id: &str, audit: NewAudit) -> anyhow::Result<bool> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let deleted = sqlx::query("DELETE FROM tokens WHERE id = $1 AND project = $2")
            .bind(id)
            .bind(project)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM token_labels WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::write_audit(&mut tx, &audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Brings a token's expiry forward to `at` (revoke later, for an
    /// overlap); a token that ends sooner keeps its own end. The previous
    /// value's grace ends by then too. Returns the row, or `None` if there is
    /// no active token with that id.
    pub async fn expire_early(
        &self,
        project: &str,
        id: &str,
        at: i64,
        audit: NewAudit,
    ) -> anyhow::Result<Option<TokenRow>> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE tokens SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $1 THEN $1 ELSE expires_at END, \
             prev_valid_until = CASE WHEN prev_valid_until > $1 THEN $1 ELSE prev_valid_until END, updated_at = $2 \
             WHERE id = $3 AND project = $4 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(now)
        .bind(id)
        .bind(project)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        Self::audit_and_commit(tx, &audit, now, id).await.map(Some)
    }

    /// Revokes these tokens (each id with its project, already authorised)
    /// in one transaction; each revocation is audited in the token's project.
    /// Returns the ids that were active and are now revoked.
    pub async fn revoke_many(
        &self,
        targets: &[(String, String)],
        actor: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<Vec<String>> {
        let now = now_us();
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let mut revoked: Vec<String> = Vec::new();
        for (id, project) in targets {
            let r = sqlx::query(REVOKE_ACTIVE)
                .bind(now)
                .bind(id)
                .bind(project)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() > 0 {
                let audit = NewAudit {
                    project: project.clone(),
                    actor: actor.to_string(),
                    action: "token.revoke",
                    token_id: Some(id.clone()),
                    detail: detail.clone(),
                };
                Self::write_audit(&mut tx, &audit, now).await?;
                revoked.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// Deletes the tokens that ended (were revoked, or expired) before
    /// `before` (µs), with their labels; their audit events stay. Returns how
    /// many were deleted.
    pub async fn purge_ended(&self, before: i64) -> anyhow::Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        let ended = "SELECT id FROM tokens WHERE (revoked_at IS NOT NULL AND revoked_at < $1) \
                     OR (revoked_at IS NULL AND expires_at < $1)";
        sqlx::query(&format!(
            "DELETE FROM token_labels WHERE token_id IN ({ended})"
        ))
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(&format!("DELETE FROM tokens WHERE id IN ({ended})"))
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    /// Writes coalesced last-used times in one transaction, many tokens per
    /// statement (`UPDATE … FROM (VALUES …)`, which SQLite ≥ 3.33 and
    /// PostgreSQL both accept), never moving a time backwards.
    pub async fn flush_last_used<S: AsRef<str>>(&self, entries: &[(S, i64)]) -> anyhow::Result<()> {
        const ROWS_PER_STATEMENT: usize = 500;
        if entries.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.begin().await?;
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, CAST(${} AS BIGINT))", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "UPDATE tokens SET last_used_at = v.column2 FROM (VALUES {}) AS v \
                 WHERE tokens.id = v.column1 AND (tokens.last_used_at IS NULL OR tokens.last_used_at < v.column2)",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, at) in chunk {
                q = q.bind(id.as_ref()).bind(*at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of a project's audit log (or every project's, with `None`),
    /// newest first, after `cursor`.
    pub async fn audit_list(
        &self,
        project: Option<&str>,
        filter: &AuditFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> anyhow::Result<Vec<AuditEvent>> {
        let mut sql = String::from(
            "SELECT id, at, project, actor, action, token_id, detail FROM audit_events WHERE 1 = 1",
        );
        let mut binds: Vec<Bind> = Vec::new();
        let push = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(p) = project {
            let p = push(&mut binds, Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project = {p}"));
        }
        if let Some(t) = &filter.token_id {
            let p = push(&mut binds, Bind::Text(t.clone()));
            sql.push_str(&format!(" AND token_id = {p}"));
        }
        if let Some(a) = &filter.actor {
            let p = push(&mut binds, Bind::Text(a.clone()));
            sql.push_str(&format!(" AND actor = {p}"));
        }
        if let Some(since) = filter.since {
            let p = push(&mut binds, Bind::Int(since));
            sql.push_str(&format!(" AND at >= {p}"));
        }
        if let Some((at, id)) = after {
            let p1 = push(&mut binds, Bind::Int(*at));
            let p2 = push(&mut binds, Bind::Text(id.clone()));
            sql.push_str(&format!(" AND (at < {p1} OR (at = {p1} AND id < {p2}))"));
        }
        let p = push(&mut binds, Bind::Int(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT {p}"));
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_audit).collect()
    }

    /// Number of tokens stored (all projects).
    pub async fn count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }
}

enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::OptText(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    q
}

/// Hides the password of a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
