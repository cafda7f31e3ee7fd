//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a partner-auth SQL store.
///
/// Messages are fixed text plus, at most, a file path: they never hold a
/// token, a digest or a row's contents. The driver error stays attached as
/// the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be created, opened or configured
    /// (permissions, a missing directory, a file that is not SQLite).
    #[error("could not open database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating the database file with owner-only permissions failed.
    #[error("could not create database file {path}")]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database did not switch to write-ahead logging; it reports
    /// another journal mode.
    #[error("database journal mode is {mode:?}, expected \"wal\"")]
    JournalMode {
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// [`SqliteDatabase::open_current`](crate::SqliteDatabase::open_current)
    /// found a database that lacks migrations this crate has: it was never
    /// set up, or was last opened by an older version. Nothing was written.
    #[error("the database schema is not current: {missing} migrations not applied")]
    SchemaNotCurrent {
        /// How many embedded migrations the database lacks.
        missing: usize,
    },
    /// Applying the embedded migrations failed, or the database was
    /// migrated by a newer version of this crate.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// An insert collided with a unique key (an existing session id or
    /// refresh-token digest); nothing was written.
    #[error("{what} already exists")]
    Conflict {
        /// What collided.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed: the database is busy beyond the timeout, the disk
    /// is full, the file is damaged, the connection was lost.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// A stored value does not decode (a role, mode, reason or id that this
    /// version does not know, or a malformed digest or timestamp): the
    /// database was changed behind the library's back or by a newer version.
    #[error("stored {what} is invalid")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// Why it did not decode, where a decoder said.
        #[source]
        source: Option<partner_auth_core::error::BoxError>,
    },
    /// A value cannot be stored (for example a timestamp outside the
    /// representable range).
    #[error("{what} cannot be stored")]
    Unstorable {
        /// Which value.
        what: &'static str,
    },
}

impl StoreError {
    /// Maps a driver error from an insert: a unique violation becomes
    /// [`StoreError::Conflict`], anything else [`StoreError::Query`].
    pub(crate) fn from_insert(what: &'static str, source: sqlx::Error) -> Self {
        let unique = source
            .as_database_error()
            .is_some_and(sqlx::error::DatabaseError::is_unique_violation);
        if unique {
            StoreError::Conflict { what, source }
        } else {
            StoreError::Query(source)
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        StoreError::Query(source)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(source: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(source)
    }
}

impl From<StoreError> for partner_auth_core::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what, .. } => partner_auth_core::Error::Conflict { what },
            other => partner_auth_core::Error::store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn conflicts_map_to_core_conflict_and_the_rest_keeps_its_source() {
        let conflict = StoreError::Conflict {
            what: "session",
            source: sqlx::Error::RowNotFound,
        };
        assert!(matches!(
            partner_auth_core::Error::from(conflict),
            partner_auth_core::Error::Conflict { what: "session" }
        ));

        let core = partner_auth_core::Error::from(StoreError::Query(sqlx::Error::PoolTimedOut));

        let partner_auth_core::Error::Store(inner) = &core else {
            panic!("expected Error::Store, got {core:?}");
        };
        let store = inner
            .downcast_ref::<StoreError>()
            .expect("the store error is kept, not flattened");
        assert!(matches!(
            store,
            StoreError::Query(sqlx::Error::PoolTimedOut)
        ));
        assert!(store.source().is_some(), "driver error kept as the source");
    }
}
