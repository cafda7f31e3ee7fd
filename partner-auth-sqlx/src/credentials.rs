//! The vault's credential and key-metadata stores on SQLite, and
//! [`vault_stack`], which builds the whole vault on a [`SqliteDatabase`].

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use partner_auth_core::vault::{
    CredentialKind, CredentialRecord, CredentialStatus, CredentialStore, KekId, KeyCheck, KeyMeta,
    KeyMetaStore, KeyReferences, KeySource, KeyState, RotationState, Sealed, VaultEventSink,
    VaultStack, VaultStores,
};
use partner_auth_core::{Clock, CredentialId, Directory, Error, PartnerId, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use crate::StoreError;
use crate::audit::SqliteAuditStore;
use crate::db::{SqliteDatabase, from_micros, to_micros};

const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

const COLUMNS: &str = "id, partner_id, owner_id, kind, label, broker, reference, status, \
     generation, rotation, created_at, rotated_at, expires_at, revoked_at, kek_id, envelope";

const AUDIT_KEY_NAME: &str = "audit-chain";

fn corrupt(what: &'static str) -> impl FnOnce(partner_auth_core::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        source: Some(Box::new(e)),
    }
}

fn corrupt_vault(
    what: &'static str,
) -> impl FnOnce(partner_auth_core::vault::VaultError) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        source: Some(Box::new(e)),
    }
}

fn opt_micros(v: Option<i64>, what: &'static str) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(|m| from_micros(m, what)).transpose()
}

fn decode(row: &SqliteRow) -> Result<CredentialRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let generation: i64 = row.try_get("generation")?;
    Ok(CredentialRecord {
        id: CredentialId::from_str(&id).map_err(corrupt("credential id"))?,
        partner: PartnerId::new(row.try_get::<String, _>("partner_id")?)
            .map_err(corrupt("partner id"))?,
        owner: UserId::new(row.try_get::<String, _>("owner_id")?).map_err(corrupt("owner id"))?,
        kind: CredentialKind::from_str(&row.try_get::<String, _>("kind")?)
            .map_err(corrupt_vault("credential kind"))?,
        label: row.try_get("label")?,
        broker: row.try_get("broker")?,
        reference: row.try_get("reference")?,
        status: CredentialStatus::from_str(&row.try_get::<String, _>("status")?)
            .map_err(corrupt_vault("credential status"))?,
        generation: u32::try_from(generation).map_err(|_| StoreError::Corrupt {
            what: "generation",
            source: None,
        })?,
        rotation: RotationState::from_str(&row.try_get::<String, _>("rotation")?)
            .map_err(corrupt_vault("rotation state"))?,
        created_at: from_micros(row.try_get("created_at")?, "created_at")?,
        rotated_at: from_micros(row.try_get("rotated_at")?, "rotated_at")?,
        expires_at: opt_micros(row.try_get("expires_at")?, "expires_at")?,
        revoked_at: opt_micros(row.try_get("revoked_at")?, "revoked_at")?,
        kek_id: row
            .try_get::<Option<String>, _>("kek_id")?
            .map(KekId::new)
            .transpose()
            .map_err(corrupt_vault("kek id"))?,
        sealed: Sealed(row.try_get("envelope")?),
    })
}

fn decode_all(rows: &[SqliteRow]) -> Result<Vec<CredentialRecord>, Error> {
    rows.iter()
        .map(|r| decode(r).map_err(Error::from))
        .collect()
}

/// Credentials in the `vault_credentials` table. Every query about a
/// credential is bound to its partner id.
#[derive(Debug, Clone)]
pub struct SqliteCredentialStore {
    pool: SqlitePool,
}

impl SqliteCredentialStore {
    /// A store over `db`'s connection pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

#[async_trait]
impl KeyReferences for SqliteCredentialStore {
    async fn count_for_kek(&self, kek: &KekId) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vault_credentials WHERE kek_id = ?1")
            .bind(kek.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl CredentialStore for SqliteCredentialStore {
    async fn insert(&self, r: &CredentialRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO vault_credentials (id, partner_id, owner_id, kind, label, broker, \
             reference, status, generation, rotation, created_at, rotated_at, expires_at, \
             revoked_at, kek_id, envelope) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .bind(r.id.to_string())
        .bind(r.partner.as_str())
        .bind(r.owner.as_str())
        .bind(r.kind.as_str())
        .bind(&r.label)
        .bind(&r.broker)
        .bind(&r.reference)
        .bind(r.status.as_str())
        .bind(i64::from(r.generation))
        .bind(r.rotation.as_str())
        .bind(to_micros(r.created_at)?)
        .bind(to_micros(r.rotated_at)?)
        .bind(r.expires_at.map(to_micros).transpose()?)
        .bind(r.revoked_at.map(to_micros).transpose()?)
        .bind(r.kek_id.as_ref().map(KekId::as_str))
        .bind(r.sealed.as_bytes())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert("credential", e))?;
        Ok(())
    }

    async fn get(
        &self,
        partner: &PartnerId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE partner_id = ?1 AND id = ?2"
        ))
        .bind(partner.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(row.as_ref().map(decode).transpose()?)
    }

    async fn list(&self, partner: &PartnerId) -> Result<Vec<CredentialRecord>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE partner_id = ?1 \
             ORDER BY created_at, id"
        ))
        .bind(partner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        decode_all(&rows)
    }

    async fn find_by_reference(
        &self,
        partner: &PartnerId,
        kind: CredentialKind,
        reference: &str,
    ) -> Result<Option<CredentialRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE partner_id = ?1 AND kind = ?2 \
             AND reference = ?3 AND status = 'active' ORDER BY created_at LIMIT 1"
        ))
        .bind(partner.as_str())
        .bind(kind.as_str())
        .bind(reference)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(row.as_ref().map(decode).transpose()?)
    }

    async fn replace(
        &self,
        before: &CredentialRecord,
        after: &CredentialRecord,
    ) -> Result<bool, Error> {
        if before.id != after.id || before.partner != after.partner {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE vault_credentials SET owner_id = ?1, kind = ?2, label = ?3, broker = ?4, \
             reference = ?5, status = ?6, generation = ?7, rotation = ?8, rotated_at = ?9, \
             expires_at = ?10, revoked_at = ?11, kek_id = ?12, envelope = ?13 \
             WHERE partner_id = ?14 AND id = ?15 AND generation = ?16 AND status = ?17",
        )
        .bind(after.owner.as_str())
        .bind(after.kind.as_str())
        .bind(&after.label)
        .bind(&after.broker)
        .bind(&after.reference)
        .bind(after.status.as_str())
        .bind(i64::from(after.generation))
        .bind(after.rotation.as_str())
        .bind(to_micros(after.rotated_at)?)
        .bind(after.expires_at.map(to_micros).transpose()?)
        .bind(after.revoked_at.map(to_micros).transpose()?)
        .bind(after.kek_id.as_ref().map(KekId::as_str))
        .bind(after.sealed.as_bytes())
        .bind(before.partner.as_str())
        .bind(before.id.to_string())
        .bind(i64::from(before.generation))
        .bind(before.status.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_rotation_state(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        generation: u32,
        state: RotationState,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE vault_credentials SET rotation = ?1 \
             WHERE partner_id = ?2 AND id = ?3 AND generation = ?4",
        )
        .bind(state.as_str())
        .bind(partner.as_str())
        .bind(id.to_string())
        .bind(i64::from(generation))
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn swap_envelope(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        expected: &[u8],
        kek: &KekId,
        envelope: &[u8],
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE vault_credentials SET envelope = ?1, kek_id = ?2 \
             WHERE partner_id = ?3 AND id = ?4 AND envelope = ?5",
        )
        .bind(envelope)
        .bind(kek.as_str())
        .bind(partner.as_str())
        .bind(id.to_string())
        .bind(expected)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn partners_with_kek(&self, kek: &KekId) -> Result<Vec<PartnerId>, Error> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT partner_id FROM vault_credentials WHERE kek_id = ?1 \
             ORDER BY partner_id",
        )
        .bind(kek.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        rows.into_iter()
            .map(|p| {
                PartnerId::new(p)
                    .map_err(corrupt("partner id"))
                    .map_err(Error::from)
            })
            .collect()
    }

    async fn list_for_kek(
        &self,
        partner: &PartnerId,
        kek: &KekId,
        after: Option<CredentialId>,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, Error> {
        // Hyphenated lowercase UUID text sorts like the UUID's bytes.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_credentials WHERE partner_id = ?1 AND kek_id = ?2 \
             AND id > ?3 ORDER BY id LIMIT ?4"
        ))
        .bind(partner.as_str())
        .bind(kek.as_str())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        decode_all(&rows)
    }
}

/// Key-encryption-key metadata in `vault_keys` and the wrapped audit key in
/// `vault_system_keys`. Never key bytes.
#[derive(Debug, Clone)]
pub struct SqliteKeyMetaStore {
    pool: SqlitePool,
}

impl SqliteKeyMetaStore {
    /// A store over `db`'s connection pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

fn decode_key(row: &SqliteRow) -> Result<KeyMeta, StoreError> {
    let wraps: i64 = row.try_get("wraps")?;
    Ok(KeyMeta {
        id: KekId::new(row.try_get::<String, _>("id")?).map_err(corrupt_vault("kek id"))?,
        state: KeyState::from_str(&row.try_get::<String, _>("state")?)
            .map_err(corrupt_vault("key state"))?,
        wraps: u64::try_from(wraps).map_err(|_| StoreError::Corrupt {
            what: "wraps",
            source: None,
        })?,
        created_at: from_micros(row.try_get("created_at")?, "created_at")?,
        changed_at: from_micros(row.try_get("changed_at")?, "changed_at")?,
        check: row
            .try_get::<Option<Vec<u8>>, _>("check_value")?
            .map(|c| {
                KeyCheck::try_from(c.as_slice()).map_err(|_| StoreError::Corrupt {
                    what: "key check value",
                    source: None,
                })
            })
            .transpose()?,
    })
}

#[async_trait]
impl KeyMetaStore for SqliteKeyMetaStore {
    async fn register(
        &self,
        id: &KekId,
        check: &KeyCheck,
        at: OffsetDateTime,
    ) -> Result<KeyMeta, Error> {
        // A stored check value is kept; only a missing one (a key registered
        // before the column existed) is filled in.
        sqlx::query(
            "INSERT INTO vault_keys (id, state, wraps, created_at, changed_at, check_value) \
             VALUES (?1, 'staged', 0, ?2, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET check_value = excluded.check_value \
             WHERE vault_keys.check_value IS NULL",
        )
        .bind(id.as_str())
        .bind(to_micros(at)?)
        .bind(check.as_slice())
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        self.get(id).await?.ok_or_else(|| {
            Error::from(StoreError::Corrupt {
                what: "vault key",
                source: None,
            })
        })
    }

    async fn get(&self, id: &KekId) -> Result<Option<KeyMeta>, Error> {
        let row = sqlx::query(
            "SELECT id, state, wraps, created_at, changed_at, check_value FROM vault_keys \
             WHERE id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(row.as_ref().map(decode_key).transpose()?)
    }

    async fn list(&self) -> Result<Vec<KeyMeta>, Error> {
        let rows = sqlx::query(
            "SELECT id, state, wraps, created_at, changed_at, check_value FROM vault_keys \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        rows.iter()
            .map(|r| decode_key(r).map_err(Error::from))
            .collect()
    }

    async fn set_state(
        &self,
        id: &KekId,
        state: KeyState,
        at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT state FROM vault_keys WHERE id = ?1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from)?;
        let Some(current) = known else {
            return Ok(false);
        };
        if current != state.as_str() {
            sqlx::query("UPDATE vault_keys SET state = ?1, changed_at = ?2 WHERE id = ?3")
                .bind(state.as_str())
                .bind(to_micros(at)?)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from)?;
        }
        Ok(true)
    }

    async fn reserve_wraps(&self, id: &KekId, n: u64, limit: u64) -> Result<u64, Error> {
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(StoreError::from)?;
        let wraps: Option<i64> = sqlx::query_scalar("SELECT wraps FROM vault_keys WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let Some(wraps) = wraps else {
            return Ok(0);
        };
        let wraps = u64::try_from(wraps).unwrap_or(u64::MAX);
        let granted = n.min(limit.saturating_sub(wraps));
        if granted > 0 {
            let total = i64::try_from(wraps + granted)
                .map_err(|_| StoreError::Unstorable { what: "wrap count" })?;
            sqlx::query("UPDATE vault_keys SET wraps = ?1 WHERE id = ?2")
                .bind(total)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(granted)
    }

    async fn wrapped_audit_key(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(
            sqlx::query_scalar("SELECT wrapped FROM vault_system_keys WHERE name = ?1")
                .bind(AUDIT_KEY_NAME)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from)?,
        )
    }

    async fn swap_wrapped_audit_key(
        &self,
        expected: Option<&[u8]>,
        wrapped: &[u8],
    ) -> Result<bool, Error> {
        let done =
            match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO vault_system_keys (name, wrapped) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(AUDIT_KEY_NAME)
                    .bind(wrapped)
                    .execute(&self.pool)
                    .await
                }
                Some(old) => sqlx::query(
                    "UPDATE vault_system_keys SET wrapped = ?1 WHERE name = ?2 AND wrapped = ?3",
                )
                .bind(wrapped)
                .bind(AUDIT_KEY_NAME)
                .bind(old)
                .execute(&self.pool)
                .await,
            }
            .map_err(StoreError::from)?;
        Ok(done.rows_affected() == 1)
    }
}

/// The vault's three stores on `db`.
pub fn vault_stores(db: &SqliteDatabase) -> VaultStores {
    VaultStores {
        credentials: Arc::new(SqliteCredentialStore::new(db)),
        keys: Arc::new(SqliteKeyMetaStore::new(db)),
        audit: Arc::new(SqliteAuditStore::new(db)),
    }
}

/// The whole vault on `db`: keys loaded from `source` (for example
/// [`partner_auth_core::vault::EnvKeySource::from_env`]), the audit log,
/// the credential service and the rotation scheduler.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use partner_auth_core::vault::{
///     DevKeySource, EnvKeySource, KeySource, RetryConfig, TracingVaultEvents,
/// };
/// use partner_auth_core::{Directory, EventFanout, SystemClock, TracingEvents};
/// use partner_auth_sqlx::{SqliteDatabase, vault_stack};
///
/// let db = SqliteDatabase::open("data/partner-auth.sqlite3".as_ref()).await?;
/// let directory = Arc::new(Directory::launch()?);
/// // PARTNER_AUTH_VAULT_KEY="id:BASE64[,id:BASE64...]", primary first; a
/// // generated development key file otherwise (it warns on every start).
/// let env = EnvKeySource::from_env();
/// let source: Box<dyn KeySource> = if env.is_set() {
///     Box::new(env)
/// } else {
///     Box::new(DevKeySource::new("data/vault-dev.key"))
/// };
/// let vault = vault_stack(
///     &db,
///     source.as_ref(),
///     Arc::new(SystemClock),
///     directory,
///     Arc::new(TracingVaultEvents),
/// )
/// .await?;
///
/// // Session events into the audit log, next to the tracing sink.
/// let events = EventFanout::new()
///     .with(Arc::new(TracingEvents))
///     .with(vault.audit_events(1024));
/// // What the Google sign-in keeps provider refresh tokens in.
/// let login_vault = vault.login_vault(RetryConfig::default());
/// // Rotation scheduler and audit retention, hourly.
/// let maintenance = vault.spawn_maintenance(Duration::from_secs(3600));
/// # let _ = (events, login_vault, maintenance);
/// # Ok(()) }
/// ```
pub async fn vault_stack(
    db: &SqliteDatabase,
    source: &dyn KeySource,
    clock: Arc<dyn Clock>,
    directory: Arc<Directory>,
    events: Arc<dyn VaultEventSink>,
) -> Result<VaultStack, Error> {
    VaultStack::build(vault_stores(db), source, clock, directory, events).await
}
