//! [`IdentityStore`] on SQLite: the `identities` table.

use async_trait::async_trait;
use partner_auth_core::google::IdentityStore;
use partner_auth_core::{Error, User, UserId};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use crate::StoreError;
use crate::db::{SqliteDatabase, to_micros};

/// Links of provider identities (issuer, subject) to directory users.
///
/// The primary key is (issuer, subject); a unique key on (issuer, user)
/// keeps one account of a provider per user. Linking never replaces a row:
/// a collision is [`Error::Conflict`] and the existing link stays.
#[derive(Debug, Clone)]
pub struct SqliteIdentityStore {
    pool: SqlitePool,
}

impl SqliteIdentityStore {
    /// A store over `db`'s connection pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

#[async_trait]
impl IdentityStore for SqliteIdentityStore {
    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<UserId>, Error> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM identities WHERE issuer = ? AND subject = ?")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from)?;
        row.map(|id| {
            UserId::new(id).map_err(|e| {
                Error::from(StoreError::Corrupt {
                    what: "identity user id",
                    source: Some(Box::new(e)),
                })
            })
        })
        .transpose()
    }

    async fn link(&self, issuer: &str, subject: &str, user: &User) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO identities (issuer, subject, user_id, partner_id, linked_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user.id.as_str())
        .bind(user.partner.as_str())
        .bind(to_micros(OffsetDateTime::now_utc())?)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert("identity", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use partner_auth_core::Directory;
    use partner_auth_core::google::{GOOGLE_ISSUER, MemoryIdentityStore};

    use super::*;

    /// The same behaviour from the memory and the SQLite store.
    async fn conformance(store: &dyn IdentityStore) {
        let dir = Directory::launch().unwrap();
        let nikhil = dir.find_user("nikhil").unwrap();
        let raja = dir.find_user("raja").unwrap();

        assert_eq!(store.find(GOOGLE_ISSUER, "s-1").await.unwrap(), None);
        store.link(GOOGLE_ISSUER, "s-1", nikhil).await.unwrap();
        assert_eq!(
            store.find(GOOGLE_ISSUER, "s-1").await.unwrap(),
            Some(nikhil.id.clone())
        );

        let same_subject = store.link(GOOGLE_ISSUER, "s-1", raja).await;
        let same_user = store.link(GOOGLE_ISSUER, "s-2", nikhil).await;
        assert!(matches!(same_subject, Err(Error::Conflict { .. })));
        assert!(matches!(same_user, Err(Error::Conflict { .. })));
        assert_eq!(
            store.find(GOOGLE_ISSUER, "s-1").await.unwrap(),
            Some(nikhil.id.clone())
        );

        // Another issuer is another namespace.
        store
            .link("https://idp.example", "s-1", raja)
            .await
            .unwrap();
        assert_eq!(
            store.find("https://idp.example", "s-1").await.unwrap(),
            Some(raja.id.clone())
        );
        assert_eq!(store.find(GOOGLE_ISSUER, "S-1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn identities_conformance_memory() {
        conformance(&MemoryIdentityStore::new()).await;
    }

    #[tokio::test]
    async fn identities_conformance_sqlite() {
        let db = SqliteDatabase::open_in_memory().await.unwrap();
        conformance(&SqliteIdentityStore::new(&db)).await;
    }

    #[tokio::test]
    async fn identities_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.sqlite3");
        let users = Directory::launch().unwrap();
        let mukesh = users.find_user("mukesh").unwrap();
        {
            let db = SqliteDatabase::open(&path).await.unwrap();
            SqliteIdentityStore::new(&db)
                .link(GOOGLE_ISSUER, "sub-9", mukesh)
                .await
                .unwrap();
            db.close().await;
        }

        let db = SqliteDatabase::open(&path).await.unwrap();
        let found = SqliteIdentityStore::new(&db)
            .find(GOOGLE_ISSUER, "sub-9")
            .await
            .unwrap();

        assert_eq!(found, Some(mukesh.id.clone()));
    }
}
