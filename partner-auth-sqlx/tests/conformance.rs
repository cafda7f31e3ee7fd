//! The session store conformance suite of partner-auth-core, run against
//! SQLite: a real database file in a temporary directory, and the in-memory
//! database.

use std::sync::Arc;

use partner_auth_core::testing::Fixture;
use partner_auth_sqlx::{SqliteDatabase, SqliteSessionStore};

async fn sqlite_file() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = SqliteDatabase::open(&dir.path().join("sessions.sqlite3"))
        .await
        .expect("open a fresh database file");
    let store = Arc::new(SqliteSessionStore::new(&db));
    // The directory goes last, after the pool is dropped.
    Fixture::with_guard(store, (db, dir))
}

partner_auth_core::session_store_conformance!(sqlite_file);

mod in_memory {
    use super::*;

    async fn sqlite_memory() -> Fixture {
        let db = SqliteDatabase::open_in_memory()
            .await
            .expect("open an in-memory database");
        Fixture::with_guard(Arc::new(SqliteSessionStore::new(&db)), db)
    }

    partner_auth_core::session_store_conformance!(sqlite_memory);
}
