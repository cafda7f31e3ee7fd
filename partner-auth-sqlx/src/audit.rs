//! The audit log on SQLite: the `audit_log` and `audit_anchor` tables.
//!
//! Triggers make `audit_log` append-only: an `UPDATE` is refused, and a
//! `DELETE` only passes for entries at or before the purge anchor, which the
//! retention purge writes first in the same transaction. Whoever can write
//! the file can drop the triggers; the keyed hash chain detects what they do.

use std::str::FromStr;

use async_trait::async_trait;
use partner_auth_core::vault::{
    AuditAnchor, AuditEntry, AuditFilter, AuditStore, ChainHash, Channel, KekId, Outcome,
};
use partner_auth_core::{Error, PartnerId, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::StoreError;
use crate::db::{SqliteDatabase, from_micros, to_micros};

const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

const COLUMNS: &str = "seq, at, partner_id, actor, impersonator, channel, action, target, \
     outcome, detail, key_id, prev_hash, hash";

fn bad(what: &'static str) -> StoreError {
    StoreError::Corrupt { what, source: None }
}

fn hash32(bytes: Vec<u8>, what: &'static str) -> Result<ChainHash, StoreError> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(ChainHash)
        .map_err(|_| bad(what))
}

fn decode(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let user = |col: &'static str| -> Result<Option<UserId>, StoreError> {
        row.try_get::<Option<String>, _>(col)?
            .map(UserId::new)
            .transpose()
            .map_err(|_| bad(col))
    };
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(|_| bad("seq"))?,
        at: from_micros(row.try_get("at")?, "at")?,
        partner: row
            .try_get::<Option<String>, _>("partner_id")?
            .map(PartnerId::new)
            .transpose()
            .map_err(|_| bad("partner_id"))?,
        actor: user("actor")?,
        impersonator: user("impersonator")?,
        channel: Channel::from_str(&row.try_get::<String, _>("channel")?)
            .map_err(|_| bad("channel"))?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: Outcome::from_str(&row.try_get::<String, _>("outcome")?)
            .map_err(|_| bad("outcome"))?,
        detail: row.try_get("detail")?,
        key_id: KekId::new(row.try_get::<String, _>("key_id")?).map_err(|_| bad("key_id"))?,
        prev_hash: hash32(row.try_get("prev_hash")?, "prev_hash")?,
        hash: hash32(row.try_get("hash")?, "hash")?,
    })
}

fn decode_all(rows: &[SqliteRow]) -> Result<Vec<AuditEntry>, Error> {
    rows.iter()
        .map(|r| decode(r).map_err(Error::from))
        .collect()
}

fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Unstorable { what: "sequence" })
}

/// The audit chain in `audit_log`, with the purge anchor in `audit_anchor`.
#[derive(Debug, Clone)]
pub struct SqliteAuditStore {
    pool: SqlitePool,
}

impl SqliteAuditStore {
    /// A store over `db`'s connection pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

#[async_trait]
impl AuditStore for SqliteAuditStore {
    async fn head(&self) -> Result<Option<AuditEntry>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(row.as_ref().map(decode).transpose()?)
    }

    async fn append(&self, e: &AuditEntry) -> Result<(), Error> {
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(StoreError::from)?;
        let anchor: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_anchor WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if anchor.is_some_and(|a| seq_param(e.seq).is_ok_and(|s| s <= a)) {
            return Err(Error::Conflict {
                what: "audit sequence",
            });
        }
        sqlx::query(
            "INSERT INTO audit_log (seq, at, partner_id, actor, impersonator, channel, action, \
             target, outcome, detail, key_id, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(seq_param(e.seq)?)
        .bind(to_micros(e.at)?)
        .bind(e.partner.as_ref().map(PartnerId::as_str))
        .bind(e.actor.as_ref().map(UserId::as_str))
        .bind(e.impersonator.as_ref().map(UserId::as_str))
        .bind(e.channel.as_str())
        .bind(&e.action)
        .bind(&e.target)
        .bind(e.outcome.as_str())
        .bind(&e.detail)
        .bind(e.key_id.as_str())
        .bind(e.prev_hash.0.as_slice())
        .bind(e.hash.0.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(|err| StoreError::from_insert("audit sequence", err))?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn scan(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        decode_all(&rows)
    }

    async fn query(
        &self,
        partner: &PartnerId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, Error> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE partner_id = "
        ));
        q.push_bind(partner.as_str());
        if let Some(from) = filter.from {
            q.push(" AND at >= ").push_bind(to_micros(from)?);
        }
        if let Some(to) = filter.to {
            q.push(" AND at < ").push_bind(to_micros(to)?);
        }
        if let Some(cursor) = filter.cursor {
            let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
            q.push(if filter.newest_first {
                " AND seq < "
            } else {
                " AND seq > "
            })
            .push_bind(cursor);
        }
        q.push(if filter.newest_first {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq LIMIT "
        })
        .push_bind(i64::try_from(filter.limit).unwrap_or(i64::MAX));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
        decode_all(&rows)
    }

    async fn anchor(&self) -> Result<Option<AuditAnchor>, Error> {
        let row = sqlx::query("SELECT seq, hash, key_id, at, mac FROM audit_anchor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::from)?;
        let Some(row) = row else { return Ok(None) };
        let decode = || -> Result<AuditAnchor, StoreError> {
            let seq: i64 = row.try_get("seq")?;
            Ok(AuditAnchor {
                seq: u64::try_from(seq).map_err(|_| bad("anchor seq"))?,
                hash: hash32(row.try_get("hash")?, "anchor hash")?,
                key_id: KekId::new(row.try_get::<String, _>("key_id")?)
                    .map_err(|_| bad("anchor key_id"))?,
                at: from_micros(row.try_get("at")?, "anchor at")?,
                mac: hash32(row.try_get("mac")?, "anchor mac")?,
            })
        };
        Ok(Some(decode()?))
    }

    async fn purge_through(&self, anchor: &AuditAnchor) -> Result<u64, Error> {
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(StoreError::from)?;
        // The anchor first: the delete trigger lets rows at or before it go.
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, key_id, at, mac) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
             key_id = excluded.key_id, at = excluded.at, mac = excluded.mac",
        )
        .bind(seq_param(anchor.seq)?)
        .bind(anchor.hash.0.as_slice())
        .bind(anchor.key_id.as_str())
        .bind(to_micros(anchor.at)?)
        .bind(anchor.mac.0.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let done = sqlx::query("DELETE FROM audit_log WHERE seq <= ?1")
            .bind(seq_param(anchor.seq)?)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(done.rows_affected())
    }
}
