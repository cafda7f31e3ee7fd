//! The vault on SQLite as the example wires it: two handles on one file
//! share the audit chain and its key, and a vault that can not be written
//! does not fail a login.

use std::sync::Arc;
use std::time::Duration;

use partner_auth_core::vault::{
    AuditContext, AuditEvent, Channel, Kek, KekId, KeySource, Outcome, RecordedVaultEvents,
    RetryConfig, VaultError, VaultEvent,
};
use partner_auth_core::{Directory, PartnerId, SystemClock, UserId, Vault};
use partner_auth_sqlx::{SqliteDatabase, vault_stack};
use secrecy::SecretString;
use zeroize::Zeroizing;

struct OneKey;

#[async_trait::async_trait]
impl KeySource for OneKey {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        Ok(vec![Kek::new(KekId::new("k1")?, Zeroizing::new([6; 32]))])
    }

    fn describe(&self) -> String {
        "test key".into()
    }
}

async fn stack_on(
    db: &SqliteDatabase,
    events: Arc<RecordedVaultEvents>,
) -> partner_auth_core::VaultStack {
    vault_stack(
        db,
        &OneKey,
        Arc::new(SystemClock),
        Arc::new(Directory::launch().unwrap()),
        events,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_append_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.sqlite3");
    let db_a = SqliteDatabase::open(&path).await.unwrap();
    let db_b = SqliteDatabase::open(&path).await.unwrap();
    let a = stack_on(&db_a, Arc::default()).await;
    let b = stack_on(&db_b, Arc::default()).await;

    let ctx = AuditContext::user(
        PartnerId::new("raja").unwrap(),
        UserId::new("raja").unwrap(),
        Channel::Cli,
    );
    let write = |log: Arc<partner_auth_core::vault::AuditLog>, who: &'static str| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let event = AuditEvent::new(
                    &ctx,
                    "test.append",
                    Some(format!("{who}:{i}")),
                    Outcome::Success,
                );
                log.append(event).await.unwrap();
            }
        })
    };
    let (ra, rb) = tokio::join!(write(a.audit.clone(), "a"), write(b.audit.clone(), "b"));
    ra.unwrap();
    rb.unwrap();

    for stack in [&a, &b] {
        let report = stack.audit.verify().await.unwrap();
        assert_eq!(report.first_broken, None);
        assert_eq!(report.checked, 80);
    }
}

#[tokio::test]
async fn login_goes_on_when_the_vault_can_not_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&dir.path().join("vault.sqlite3"))
        .await
        .unwrap();
    let events = Arc::new(RecordedVaultEvents::default());
    let stack = stack_on(&db, events.clone()).await;
    let vault = stack.login_vault(RetryConfig {
        capacity: 4,
        max_attempts: 3,
        backoff: Duration::from_millis(5),
    });
    let directory = Directory::launch().unwrap();
    let user = directory.find_user("nikhil").unwrap();

    // The database goes away under the running service.
    db.close().await;
    vault
        .keep_provider_token(
            user,
            "https://accounts.google.com",
            "sub-9",
            SecretString::from("1//refresh"),
        )
        .await
        .expect("keeping the token never fails the login");
    assert!(
        !vault
            .holds_provider_token("https://accounts.google.com", "other")
            .await
            .unwrap()
    );

    for _ in 0..200 {
        if vault.pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got: Vec<_> = events.snapshot();
    assert!(
        matches!(got.first(), Some(VaultEvent::ProviderTokenDeferred { .. })),
        "{got:?}"
    );
    assert!(
        matches!(
            got.last(),
            Some(VaultEvent::ProviderTokenDropped {
                reason: "retries_exhausted",
                ..
            })
        ),
        "{got:?}"
    );
}
