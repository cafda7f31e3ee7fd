//! The vault store conformance suites of partner-auth-core, run against a
//! real SQLite file and the in-memory database.

use std::sync::Arc;

use partner_auth_core::vault::testing;
use partner_auth_sqlx::{
    SqliteAuditStore, SqliteCredentialStore, SqliteDatabase, SqliteKeyMetaStore,
};

async fn file_db() -> (SqliteDatabase, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = SqliteDatabase::open(&dir.path().join("vault.sqlite3"))
        .await
        .expect("open a fresh database file");
    (db, dir)
}

#[tokio::test]
async fn credential_store_conformance_on_a_file() {
    let (db, _dir) = file_db().await;
    testing::credential_store_conformance(Arc::new(SqliteCredentialStore::new(&db))).await;
}

#[tokio::test]
async fn key_meta_store_conformance_on_a_file() {
    let (db, _dir) = file_db().await;
    testing::key_meta_store_conformance(Arc::new(SqliteKeyMetaStore::new(&db))).await;
}

#[tokio::test]
async fn audit_store_conformance_on_a_file() {
    let (db, _dir) = file_db().await;
    testing::audit_store_conformance(Arc::new(SqliteAuditStore::new(&db))).await;
}

#[tokio::test]
async fn all_vault_stores_conform_in_memory() {
    let db = SqliteDatabase::open_in_memory()
        .await
        .expect("in-memory database");
    testing::credential_store_conformance(Arc::new(SqliteCredentialStore::new(&db))).await;
    testing::key_meta_store_conformance(Arc::new(SqliteKeyMetaStore::new(&db))).await;
    testing::audit_store_conformance(Arc::new(SqliteAuditStore::new(&db))).await;
}
