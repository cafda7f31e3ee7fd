//! [`SessionStore`] on SQLite.

use std::str::FromStr;

use async_trait::async_trait;
use partner_auth_core::session::{
    RefreshRecord, RevokeReason, Session, SessionFilter, SessionStore,
};
use partner_auth_core::{AuthMode, Error, PartnerId, RoleGrant, SessionId, TokenDigest, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use crate::StoreError;
use crate::db::{SqliteDatabase, from_micros, to_micros};

/// Starts a write transaction that takes SQLite's write lock at once, so two
/// writers queue on the busy timeout instead of one failing on upgrade.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

const SESSION_COLUMNS: &str = "id, user_id, partner_id, roles, auth_mode, remember_me, \
     created_at, last_seen_at, expires_at, refresh_generation, rotated_at, revoked_at, \
     revoke_reason, impersonator";

/// Sessions and refresh-token digests in the `sessions` and
/// `refresh_tokens` tables of a [`SqliteDatabase`].
///
/// Rotation is a compare-and-swap: one conditional `UPDATE` of the session's
/// generation inside an immediate write transaction, which also marks the
/// presented token used and stores its successor, or changes nothing.
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    pool: SqlitePool,
}

impl SqliteSessionStore {
    /// A store over `db`'s connection pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }

    async fn insert_refresh(
        conn: &mut SqliteConnection,
        record: &RefreshRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (digest, session_id, generation, issued_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(record.digest.as_bytes().as_slice())
        .bind(record.session_id.to_string())
        .bind(i64::from(record.generation))
        .bind(to_micros(record.issued_at)?)
        .bind(record.used_at.map(to_micros).transpose()?)
        .execute(conn)
        .await
        .map_err(|e| StoreError::from_insert("refresh token", e))?;
        Ok(())
    }

    async fn create_inner(
        &self,
        session: &Session,
        first: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let roles = serde_json::to_string(&session.roles)
            .map_err(|_| StoreError::Unstorable { what: "roles" })?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        // A plain INSERT: an existing id is a conflict, never an overwrite.
        sqlx::query(
            "INSERT INTO sessions (id, user_id, partner_id, roles, auth_mode, remember_me, \
             created_at, last_seen_at, expires_at, refresh_generation, rotated_at, revoked_at, \
             revoke_reason, impersonator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.as_str())
        .bind(session.partner_id.as_str())
        .bind(roles)
        .bind(session.auth_mode.as_str())
        .bind(session.remember_me)
        .bind(to_micros(session.created_at)?)
        .bind(to_micros(session.last_seen_at)?)
        .bind(to_micros(session.expires_at)?)
        .bind(i64::from(session.refresh_generation))
        .bind(to_micros(session.rotated_at)?)
        .bind(session.revoked_at.map(to_micros).transpose()?)
        .bind(session.revoke_reason.map(RevokeReason::as_str))
        .bind(session.impersonator.as_ref().map(UserId::as_str))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_insert("session", e))?;
        Self::insert_refresh(&mut tx, first).await?;

        tx.commit().await?;
        Ok(())
    }

    async fn get_inner(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_session).transpose()
    }

    async fn find_refresh_inner(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, session_id, generation, issued_at, used_at \
             FROM refresh_tokens WHERE digest = ?1",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_refresh).transpose()
    }

    async fn rotate_inner(
        &self,
        from_generation: u32,
        presented: &TokenDigest,
        next: &RefreshRecord,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if from_generation.checked_add(1) != Some(next.generation) {
            return Ok(false);
        }
        let now = to_micros(now)?;
        let session_id = next.session_id.to_string();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        // The compare-and-swap. Under the write lock no other rotation can
        // run between this check and the inserts below.
        let swapped = sqlx::query(
            "UPDATE sessions SET refresh_generation = ?1, rotated_at = ?2, last_seen_at = ?2 \
             WHERE id = ?3 AND refresh_generation = ?4 AND revoked_at IS NULL",
        )
        .bind(i64::from(next.generation))
        .bind(now)
        .bind(&session_id)
        .bind(i64::from(from_generation))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if swapped == 0 {
            tx.rollback().await?;
            tracing::trace!(session = %next.session_id, "rotation refused: generation moved or session revoked");
            return Ok(false);
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = ?1 WHERE digest = ?2 AND session_id = ?3")
            .bind(now)
            .bind(presented.as_bytes().as_slice())
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_refresh(&mut tx, next).await?;

        tx.commit().await?;
        Ok(true)
    }

    async fn add_sibling_inner(
        &self,
        next: &RefreshRecord,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        let current = sqlx::query(
            "UPDATE sessions SET last_seen_at = ?1 \
             WHERE id = ?2 AND refresh_generation = ?3 AND revoked_at IS NULL",
        )
        .bind(to_micros(now)?)
        .bind(next.session_id.to_string())
        .bind(i64::from(next.generation))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if current == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::insert_refresh(&mut tx, next).await?;

        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_inner(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1, revoke_reason = ?2 \
             WHERE id = ?3 AND revoked_at IS NULL",
        )
        .bind(to_micros(now)?)
        .bind(reason.as_str())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_inner(
        &self,
        user: &UserId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1, revoke_reason = ?2 \
             WHERE user_id = ?3 AND revoked_at IS NULL",
        )
        .bind(to_micros(now)?)
        .bind(reason.as_str())
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn list_inner(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"
        ));
        if let Some(partner) = &filter.partner {
            query
                .push(" AND partner_id = ")
                .push_bind(partner.as_str().to_owned());
        }
        if let Some(user) = &filter.user {
            query
                .push(" AND user_id = ")
                .push_bind(user.as_str().to_owned());
        }
        if let Some(at) = filter.active_at {
            query
                .push(" AND revoked_at IS NULL AND expires_at > ")
                .push_bind(to_micros(at)?);
        }
        // The id breaks ties the way the in-memory store does: lowercase
        // hyphenated UUID text sorts like the UUID's bytes.
        query.push(" ORDER BY created_at DESC, id DESC");

        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode_session).collect()
    }

    async fn purge_expired_inner(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = to_micros(before)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;

        // Explicit rather than left to ON DELETE CASCADE, so the purge holds
        // even on a connection opened without foreign keys.
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM sessions WHERE expires_at < ?1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let purged = sqlx::query("DELETE FROM sessions WHERE expires_at < ?1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();

        tx.commit().await?;
        if purged > 0 {
            tracing::debug!(purged, "expired sessions purged");
        }
        Ok(purged)
    }
}

fn corrupt(what: &'static str) -> impl FnOnce(Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        source: Some(Box::new(e)),
    }
}

fn generation(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| StoreError::Corrupt {
        what: "generation",
        source: Some(Box::new(e)),
    })
}

fn decode_session(row: &SqliteRow) -> Result<Session, StoreError> {
    let id: String = row.try_get("id")?;
    let user_id: String = row.try_get("user_id")?;
    let partner_id: String = row.try_get("partner_id")?;
    let roles: String = row.try_get("roles")?;
    let auth_mode: String = row.try_get("auth_mode")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let revoke_reason: Option<String> = row.try_get("revoke_reason")?;
    let impersonator: Option<String> = row.try_get("impersonator")?;

    let roles: Vec<RoleGrant> = serde_json::from_str(&roles).map_err(|e| StoreError::Corrupt {
        what: "roles",
        source: Some(Box::new(e)),
    })?;
    Ok(Session {
        id: SessionId::from_str(&id).map_err(corrupt("session id"))?,
        user_id: UserId::new(user_id).map_err(corrupt("user id"))?,
        partner_id: PartnerId::new(partner_id).map_err(corrupt("partner id"))?,
        roles,
        auth_mode: AuthMode::from_str(&auth_mode).map_err(corrupt("auth mode"))?,
        remember_me: row.try_get("remember_me")?,
        created_at: from_micros(row.try_get("created_at")?, "created_at")?,
        last_seen_at: from_micros(row.try_get("last_seen_at")?, "last_seen_at")?,
        expires_at: from_micros(row.try_get("expires_at")?, "expires_at")?,
        refresh_generation: generation(row.try_get("refresh_generation")?)?,
        rotated_at: from_micros(row.try_get("rotated_at")?, "rotated_at")?,
        revoked_at: revoked_at
            .map(|t| from_micros(t, "revoked_at"))
            .transpose()?,
        revoke_reason: revoke_reason
            .map(|r| RevokeReason::from_str(&r).map_err(corrupt("revoke reason")))
            .transpose()?,
        impersonator: impersonator
            .map(|u| UserId::new(u).map_err(corrupt("impersonator")))
            .transpose()?,
    })
}

fn decode_refresh(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    let digest: Vec<u8> = row.try_get("digest")?;
    let session_id: String = row.try_get("session_id")?;
    let used_at: Option<i64> = row.try_get("used_at")?;

    Ok(RefreshRecord {
        digest: TokenDigest::from_slice(&digest).ok_or(StoreError::Corrupt {
            what: "digest",
            source: None,
        })?,
        session_id: SessionId::from_str(&session_id).map_err(corrupt("session id"))?,
        generation: generation(row.try_get("generation")?)?,
        issued_at: from_micros(row.try_get("issued_at")?, "issued_at")?,
        used_at: used_at.map(|t| from_micros(t, "used_at")).transpose()?,
    })
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create(&self, session: &Session, first: &RefreshRecord) -> Result<(), Error> {
        Ok(self.create_inner(session, first).await?)
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, Error> {
        Ok(self.get_inner(id).await?)
    }

    async fn find_refresh(&self, digest: &TokenDigest) -> Result<Option<RefreshRecord>, Error> {
        Ok(self.find_refresh_inner(digest).await?)
    }

    async fn rotate(
        &self,
        from_generation: u32,
        presented: &TokenDigest,
        next: &RefreshRecord,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(self
            .rotate_inner(from_generation, presented, next, now)
            .await?)
    }

    async fn add_sibling(&self, next: &RefreshRecord, now: OffsetDateTime) -> Result<bool, Error> {
        Ok(self.add_sibling_inner(next, now).await?)
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(self.revoke_inner(id, reason, now).await?)
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, Error> {
        Ok(self.revoke_user_inner(user, reason, now).await?)
    }

    async fn list(&self, filter: &SessionFilter) -> Result<Vec<Session>, Error> {
        Ok(self.list_inner(filter).await?)
    }

    async fn purge_expired(&self, before: OffsetDateTime) -> Result<u64, Error> {
        Ok(self.purge_expired_inner(before).await?)
    }

    async fn health(&self) -> Result<(), Error> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }
}
