//! The SQLite database: opening, pragmas, migrations, health.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

use crate::StoreError;

/// The embedded SQLite migrations, applied in file-name order at open.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before it
/// fails as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in a file database's pool. SQLite runs one writer at a time;
/// the rest serve concurrent readers under WAL.
const MAX_CONNECTIONS: u32 = 8;

/// An open SQLite database with the partner-auth schema applied.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
    path: Option<PathBuf>,
}

/// The pool for the database file at `path` with `options`.
async fn connect_file(
    path: &Path,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })
}

impl SqliteDatabase {
    /// Opens the database file at `path`, creating it (owner-only
    /// permissions on Unix) if it does not exist, and applies the embedded
    /// migrations.
    ///
    /// Every connection runs with write-ahead logging, `foreign_keys = ON`,
    /// `synchronous = NORMAL` (durable across application crashes; the last
    /// commits may be lost on power failure) and a 5 s busy timeout. Opening
    /// fails with [`StoreError::JournalMode`] where WAL is not available
    /// (for example on some network file systems).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = connect_file(path, options).await?;

        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode { mode });
        }
        let db = Self {
            pool,
            path: Some(path.to_owned()),
        };
        db.migrate().await?;
        tracing::debug!(path = %path.display(), "sqlite database open");

        Ok(db)
    }

    /// Opens an existing database file without creating or migrating
    /// anything, for tools that must only read: refused with
    /// [`StoreError::SchemaNotCurrent`] when any embedded migration is not
    /// applied (a file never set up by [`open`](Self::open), or one an older
    /// version last opened), and with [`StoreError::Open`] when the file does
    /// not exist.
    pub async fn open_current(path: &Path) -> Result<Self, StoreError> {
        // No journal-mode pragma: a database set up by `open` is already in
        // WAL mode, and switching modes would be a write.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = connect_file(path, options).await?;

        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&pool)
        .await?;
        let applied: Vec<i64> = if has_table {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&pool)
                .await?
        } else {
            Vec::new()
        };
        let missing = SQLITE_MIGRATIONS
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count();
        if missing > 0 {
            pool.close().await;
            return Err(StoreError::SchemaNotCurrent { missing });
        }

        Ok(Self {
            pool,
            path: Some(path.to_owned()),
        })
    }

    /// A private in-memory database, for tests and experiments: one
    /// connection, no WAL, gone when the last clone is dropped.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection that never expires: every connection to `:memory:`
        // is a database of its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(":memory:"),
                source,
            })?;
        let db = Self { pool, path: None };
        db.migrate().await?;

        Ok(db)
    }

    /// The connection pool, for stores that share this database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Applies any embedded migrations not yet applied. [`open`](Self::open)
    /// already does this; calling it again is harmless.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        SQLITE_MIGRATIONS.run(&self.pool).await?;
        Ok(())
    }

    /// Checks that the database answers a query.
    pub async fn health(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection, checkpointing the write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates an empty database file readable by its owner only, so that
/// SQLite (which gives its `-wal` and `-shm` files the database's mode)
/// never makes the data world-readable. An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A time as stored: whole microseconds since the Unix epoch, UTC. Integers
/// compare and sort correctly in SQL, whatever the offset of the input.
pub(crate) fn to_micros(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| StoreError::Unstorable { what: "timestamp" })
}

/// The inverse of [`to_micros`].
pub(crate) fn from_micros(micros: i64, what: &'static str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|e| {
        StoreError::Corrupt {
            what,
            source: Some(Box::new(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn micros_round_trip_and_order_across_offsets() {
        let at = datetime!(2026-03-02 09:15:30.123_456 UTC);
        let same_in_india = at.to_offset(time::macros::offset!(+5:30));
        let before_epoch = datetime!(1969-12-31 23:59:59.5 UTC);

        assert_eq!(from_micros(to_micros(at).unwrap(), "t").unwrap(), at);
        assert_eq!(to_micros(same_in_india).unwrap(), to_micros(at).unwrap());
        assert_eq!(to_micros(before_epoch).unwrap(), -500_000);
        assert!(to_micros(before_epoch).unwrap() < to_micros(at).unwrap());
    }
}
