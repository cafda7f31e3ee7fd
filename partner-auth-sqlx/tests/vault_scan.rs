//! After a full credential lifecycle on a SQLite file, neither the database
//! file, its write-ahead log nor the captured logs hold a plaintext secret
//! or key.

use std::io::Write;
use std::sync::{Arc, Mutex};

use partner_auth_core::vault::{
    AuditContext, Channel, CredentialKind, Kek, KekId, KeySource, NewCredential,
    RecordedVaultEvents, VaultError,
};
use partner_auth_core::{Directory, EventSink, SecurityEvent, SessionId, SystemClock, Vault};
use partner_auth_sqlx::{SqliteDatabase, vault_stack};
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use zeroize::Zeroizing;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Keys(Vec<[u8; 32]>);

#[async_trait::async_trait]
impl KeySource for Keys {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok(Kek::new(
                    KekId::new(format!("k{}", i + 1))?,
                    Zeroizing::new(*k),
                ))
            })
            .collect()
    }

    fn describe(&self) -> String {
        "scan test keys".into()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const SECRETS: [&str; 4] = [
    "sk-live-PLAINTEXT-first-4b1d",
    "sk-live-PLAINTEXT-second-77c1",
    "1//provider-refresh-PLAINTEXT-9e2a",
    "JBSWY3DPEHPK3PXP-PLAINTEXT-totp",
];

#[tokio::test]
async fn no_plaintext_secret_in_the_database_file_wal_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.sqlite3");
    let db = SqliteDatabase::open(&path).await.unwrap();
    let key1 = rand_key(1);
    let key2 = rand_key(2);
    let directory = Arc::new(Directory::launch().unwrap());
    let stack = vault_stack(
        &db,
        &Keys(vec![key1]),
        Arc::new(SystemClock),
        directory.clone(),
        Arc::new(RecordedVaultEvents::default()),
    )
    .await
    .unwrap();
    let svc = &stack.credentials;
    let nikhil = directory.find_user("nikhil").unwrap().clone();
    let ctx = AuditContext::user(nikhil.partner.clone(), nikhil.id.clone(), Channel::Web);

    // Create, list, reveal, rotate, reveal, a provider token, a TOTP seed.
    let made = svc
        .create(
            &ctx,
            NewCredential {
                kind: CredentialKind::ApiKey,
                owner: None,
                label: "Zerodha".into(),
                broker: Some("zerodha".into()),
                reference: None,
                expires_at: None,
                secret: SecretSlice::from(SECRETS[0].as_bytes().to_vec()),
            },
        )
        .await
        .unwrap();
    svc.list(&ctx).await.unwrap();
    assert_eq!(
        svc.reveal(&ctx, made.id).await.unwrap().expose_secret(),
        SECRETS[0].as_bytes()
    );
    svc.rotate(
        &ctx,
        made.id,
        SecretSlice::from(SECRETS[1].as_bytes().to_vec()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        svc.reveal(&ctx, made.id).await.unwrap().expose_secret(),
        SECRETS[1].as_bytes()
    );
    let vault: &dyn Vault = svc.as_ref();
    vault
        .keep_provider_token(
            &nikhil,
            "https://accounts.google.com",
            "1234",
            SecretString::from(SECRETS[2]),
        )
        .await
        .unwrap();
    let totp = svc
        .create(
            &ctx,
            NewCredential {
                kind: CredentialKind::TotpSecret,
                owner: None,
                label: "second factor".into(),
                broker: None,
                reference: None,
                expires_at: None,
                secret: SecretSlice::from(SECRETS[3].as_bytes().to_vec()),
            },
        )
        .await
        .unwrap();

    // Session events through the audit sink.
    let sink = stack.audit_events(16);
    sink.emit(&SecurityEvent::LoginSucceeded {
        user: nikhil.id.clone(),
        partner: nikhil.partner.clone(),
        session: SessionId::random(),
        mode: partner_auth_core::AuthMode::Google,
    });
    sink.flush().await;

    // Key rotation and rewrap, then revoke one.
    let k2 = Kek::new(KekId::new("k2").unwrap(), Zeroizing::new(key2));
    stack.keys.stage(k2).await.unwrap();
    stack
        .keys
        .promote(&KekId::new("k2").unwrap())
        .await
        .unwrap();
    let report = stack
        .rewrap_job()
        .run(&KekId::new("k1").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.remaining, 0);
    svc.revoke(&ctx, totp.id).await.unwrap();
    assert_eq!(stack.audit.verify().await.unwrap().first_broken, None);

    // Scan the files while open (the WAL holds the recent pages), then after
    // closing (checkpointed into the main file).
    let mut scanned = 0;
    let wal = dir.path().join("vault.sqlite3-wal");
    for file in [&path, &wal] {
        if let Ok(bytes) = std::fs::read(file) {
            scanned += bytes.len();
            assert_no_secret(&bytes, &[key1, key2], &format!("{}", file.display()));
        }
    }
    assert!(
        std::fs::metadata(&wal).is_ok(),
        "WAL file present while open"
    );
    db.close().await;
    let mut after = std::fs::read(&path).unwrap();
    after.extend(std::fs::read(&wal).unwrap_or_default());
    assert_no_secret(&after, &[key1, key2], "database and WAL after close");
    assert!(scanned > 4096);
    assert!(
        contains(&after, b"credential.reveal"),
        "the scan reads real content"
    );

    let logged = logs.0.lock().unwrap().clone();
    assert!(
        contains(&logged, b"credential created"),
        "logs were captured"
    );
    assert_no_secret(&logged, &[key1, key2], "captured logs");
}

fn assert_no_secret(bytes: &[u8], keys: &[[u8; 32]], what: &str) {
    use base64::Engine as _;
    for s in SECRETS {
        assert!(
            !contains(bytes, s.as_bytes()),
            "{what} holds the secret {s}"
        );
        assert!(
            !contains(bytes, &s.as_bytes()[..12]),
            "{what} holds a prefix of {s}"
        );
    }
    for k in keys {
        assert!(!contains(bytes, k), "{what} holds raw key bytes");
        let b64 = base64::engine::general_purpose::STANDARD.encode(k);
        assert!(
            !contains(bytes, b64.as_bytes()),
            "{what} holds a base64 key"
        );
    }
}

fn rand_key(salt: u8) -> [u8; 32] {
    // Distinct, non-trivial bytes; a constant pattern could match by chance.
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::try_from((i * 37 + usize::from(salt) * 101) % 251).unwrap() ^ 0xa5;
    }
    k
}
