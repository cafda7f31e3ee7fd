//! Key retirement and tenant binding on SQLite: a key still named by a
//! credential row or by the wrapped audit key can not be retired (V6), and a
//! row moved into another partner behind the library's back does not open
//! (V2, P5).

use std::sync::Arc;

use partner_auth_core::vault::{
    AuditContext, Channel, CredentialKind, Kek, KekId, KeySource, KeyState, NewCredential, Outcome,
    RecordedVaultEvents, VaultError, VaultStack,
};
use partner_auth_core::{Directory, Error, PartnerId, SystemClock, UserId};
use partner_auth_sqlx::{SqliteDatabase, vault_stack};
use secrecy::{ExposeSecret as _, SecretSlice};
use zeroize::Zeroizing;

/// Keys `(id, byte)`, the first primary.
struct Keys(&'static [(&'static str, u8)]);

#[async_trait::async_trait]
impl KeySource for Keys {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        self.0
            .iter()
            .map(|(id, b)| Ok(Kek::new(KekId::new(*id)?, Zeroizing::new([*b; 32]))))
            .collect()
    }

    fn describe(&self) -> String {
        "test keys".into()
    }
}

async fn stack(
    db: &SqliteDatabase,
    keys: &'static [(&'static str, u8)],
) -> Result<VaultStack, Error> {
    vault_stack(
        db,
        &Keys(keys),
        Arc::new(SystemClock),
        Arc::new(Directory::launch().unwrap()),
        Arc::new(RecordedVaultEvents::default()),
    )
    .await
}

fn ctx(user: &str) -> AuditContext {
    AuditContext::user(
        PartnerId::new(user).unwrap(),
        UserId::new(user).unwrap(),
        Channel::Api,
    )
}

fn new_key(secret: &str) -> NewCredential {
    NewCredential {
        kind: CredentialKind::ApiKey,
        owner: None,
        label: "desk".into(),
        broker: None,
        reference: None,
        expires_at: None,
        secret: SecretSlice::from(secret.as_bytes().to_vec()),
    }
}

fn k(id: &str) -> KekId {
    KekId::new(id).unwrap()
}

async fn file_db() -> (SqliteDatabase, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&dir.path().join("vault.sqlite3"))
        .await
        .unwrap();
    (db, dir)
}

#[tokio::test]
async fn v6_retire_is_refused_while_a_row_or_the_audit_key_names_the_key_on_sqlite() {
    let (db, _dir) = file_db().await;
    let old = stack(&db, &[("k1", 1)]).await.unwrap();
    let made = old
        .credentials
        .create(&ctx("nikhil"), new_key("sqlite-secret"))
        .await
        .unwrap();
    drop(old);

    // k2 promoted: k1 still wraps the credential and the audit key.
    let both = stack(&db, &[("k2", 2), ("k1", 1)]).await.unwrap();
    let refused = both.retire_key(&k("k1"), Channel::Cli).await;
    assert!(
        matches!(
            refused,
            Err(Error::Vault(VaultError::KeyInUse { references: 2, .. }))
        ),
        "{refused:?}"
    );
    assert!(matches!(
        both.retire_key(&k("k2"), Channel::Cli).await,
        Err(Error::Vault(VaultError::RetirePrimary))
    ));

    // Only the audit key left on k1: still refused.
    both.credentials
        .revoke(&ctx("nikhil"), made.id)
        .await
        .unwrap();
    let refused = both.retire_key(&k("k1"), Channel::Cli).await;
    assert!(
        matches!(
            refused,
            Err(Error::Vault(VaultError::KeyInUse { references: 1, .. }))
        ),
        "{refused:?}"
    );

    let report = both.rewrap(&k("k1"), Channel::Cli).await.unwrap();
    assert_eq!(report.remaining, 0);
    both.retire_key(&k("k1"), Channel::Cli).await.unwrap();
    let meta = both.keys.meta().get(&k("k1")).await.unwrap().unwrap();
    assert_eq!(meta.state, KeyState::Retired);

    // A retired key is never primary again; the audit chain survived.
    assert!(matches!(
        stack(&db, &[("k1", 1)]).await,
        Err(Error::Vault(VaultError::KeyRetired(_)))
    ));
    let again = stack(&db, &[("k2", 2)]).await.unwrap();
    assert_eq!(again.audit.verify().await.unwrap().first_broken, None);
}

#[tokio::test]
async fn p5_row_forged_into_another_partner_does_not_open_on_sqlite() {
    let (db, _dir) = file_db().await;
    let vault = stack(&db, &[("k1", 1)]).await.unwrap();
    let made = vault
        .credentials
        .create(&ctx("nikhil"), new_key("nikhil-only-secret"))
        .await
        .unwrap();

    // Someone with write access to the file moves the row to mukesh.
    sqlx::query(
        "UPDATE vault_credentials SET partner_id = 'mukesh', owner_id = 'mukesh' WHERE id = ?1",
    )
    .bind(made.id.to_string())
    .execute(db.pool())
    .await
    .unwrap();

    let forged = vault.credentials.reveal(&ctx("mukesh"), made.id).await;
    assert!(
        matches!(forged, Err(Error::Vault(VaultError::Open))),
        "{:?}",
        forged.map(|s| s.expose_secret().len())
    );
    assert!(matches!(
        vault.credentials.reveal(&ctx("nikhil"), made.id).await,
        Err(Error::Vault(VaultError::NotFound))
    ));

    // Moved back it opens again: nothing but the binding was in the way.
    sqlx::query(
        "UPDATE vault_credentials SET partner_id = 'nikhil', owner_id = 'nikhil' WHERE id = ?1",
    )
    .bind(made.id.to_string())
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(
        vault
            .credentials
            .reveal(&ctx("nikhil"), made.id)
            .await
            .unwrap()
            .expose_secret(),
        b"nikhil-only-secret"
    );

    let entries = vault.stores.audit.scan(0, 100).await.unwrap();
    let failed = entries
        .iter()
        .find(|e| e.action == "credential.reveal" && e.outcome == Outcome::Failure)
        .unwrap();
    assert_eq!(failed.partner, Some(PartnerId::new("mukesh").unwrap()));
    assert_eq!(failed.detail.as_deref(), Some("does_not_open"));
}

/// The stored key rows, as `(id, state, wraps, check value)`.
async fn key_rows(db: &SqliteDatabase) -> Vec<(String, String, i64, Option<Vec<u8>>)> {
    sqlx::query_as("SELECT id, state, wraps, check_value FROM vault_keys ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_id_is_tied_to_its_bytes_on_sqlite_and_old_rows_get_a_check_value() {
    let db = SqliteDatabase::open_in_memory().await.unwrap();
    let first = stack(&db, &[("k1", 1)]).await.unwrap();
    first
        .credentials
        .create(&ctx("nikhil"), new_key("kept"))
        .await
        .unwrap();
    let rows = key_rows(&db).await;
    let k1 = Kek::new(KekId::new("k1").unwrap(), Zeroizing::new([1; 32]));
    assert_eq!(rows[0].3.as_deref(), Some(k1.check_value().as_slice()));

    // Other bytes under a known id, first or after a new primary: refused,
    // nothing written.
    for keys in [
        &[("k1", 2)][..],
        &[("k2", 3), ("k1", 2)][..],
        &[("zz", 4)][..],
    ] {
        let refused = stack(&db, keys).await;
        assert!(
            matches!(
                refused,
                Err(Error::Vault(
                    VaultError::KeyMismatch(_) | VaultError::UnknownKey
                ))
            ),
            "{keys:?}: {refused:?}"
        );
        assert_eq!(key_rows(&db).await, rows, "{keys:?}");
    }

    // A database from before check values: wrong bytes do not open the
    // audit key and are refused without filling in the check value; the
    // right bytes fill it in.
    sqlx::query("UPDATE vault_keys SET check_value = NULL")
        .execute(db.pool())
        .await
        .unwrap();
    let legacy = key_rows(&db).await;
    assert!(matches!(
        stack(&db, &[("k1", 2)]).await,
        Err(Error::Vault(VaultError::KeyDoesNotOpen(id))) if id == "k1"
    ));
    assert_eq!(key_rows(&db).await, legacy);
    stack(&db, &[("k1", 1)]).await.unwrap();
    assert_eq!(key_rows(&db).await, rows);
}
