//! Behaviour of the assembled vault over the in-memory stores.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use time::{Duration, OffsetDateTime, macros::datetime};
use zeroize::Zeroizing;

use super::*;
use crate::{
    Clock, CredentialId, Directory, Error, EventSink, ManualClock, PartnerId, SecurityEvent,
    SessionId, UserId,
};

fn pid(s: &str) -> PartnerId {
    PartnerId::new(s).unwrap()
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn kek(id: &str, byte: u8) -> Kek {
    Kek::new(KekId::new(id).unwrap(), Zeroizing::new([byte; 32]))
}

struct Fixed(Vec<(String, u8)>);

#[async_trait::async_trait]
impl KeySource for Fixed {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        Ok(self.0.iter().map(|(id, b)| kek(id, *b)).collect())
    }

    fn describe(&self) -> String {
        "fixed test keys".into()
    }
}

const START: OffsetDateTime = datetime!(2026-01-01 09:00 UTC);

struct World {
    clock: ManualClock,
    directory: Arc<Directory>,
    stores: VaultStores,
    stack: VaultStack,
    events: Arc<RecordedVaultEvents>,
}

async fn world_with(stores: VaultStores, keys: &[(&str, u8)]) -> World {
    let clock = ManualClock::new(START);
    let directory = Arc::new(Directory::launch().unwrap());
    let events = Arc::new(RecordedVaultEvents::default());
    let source = Fixed(keys.iter().map(|(i, b)| ((*i).to_owned(), *b)).collect());
    let stack = VaultStack::build(
        stores.clone(),
        &source,
        Arc::new(clock.clone()),
        directory.clone(),
        events.clone(),
    )
    .await
    .unwrap();
    World {
        clock,
        directory,
        stores,
        stack,
        events,
    }
}

async fn world() -> World {
    world_with(VaultStores::memory(), &[("k1", 1)]).await
}

fn ctx(partner: &str) -> AuditContext {
    AuditContext::user(pid(partner), uid(partner), Channel::Web)
}

fn secret(text: &str) -> SecretSlice<u8> {
    SecretSlice::from(text.as_bytes().to_vec())
}

fn new_key(label: &str, text: &str) -> NewCredential {
    NewCredential {
        kind: CredentialKind::ApiKey,
        owner: None,
        label: label.into(),
        broker: Some("zerodha".into()),
        reference: None,
        expires_at: None,
        secret: secret(text),
    }
}

async fn actions(w: &World) -> Vec<(String, Outcome)> {
    w.stores
        .audit
        .scan(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

#[tokio::test]
async fn conformance_of_memory_stores() {
    testing::credential_store_conformance(Arc::new(MemoryCredentialStore::new())).await;
    testing::key_meta_store_conformance(Arc::new(MemoryKeyMetaStore::new())).await;
    testing::audit_store_conformance(Arc::new(MemoryAuditStore::new())).await;
}

#[tokio::test]
async fn credential_lifecycle_is_sealed_and_audited() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let nikhil = ctx("nikhil");

    let created = svc
        .create(&nikhil, new_key("Zerodha key", "api-secret-1"))
        .await
        .unwrap();
    assert_eq!(created.generation, 0);
    assert_eq!(created.owner, uid("nikhil"));
    let stored = w
        .stores
        .credentials
        .get(&pid("nikhil"), created.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored
            .sealed
            .as_bytes()
            .windows(12)
            .any(|win| win == b"api-secret-1")
    );

    let listed = svc.list(&nikhil).await.unwrap();
    assert_eq!(listed, vec![created.clone()]);
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains("api-secret")
    );

    let shown = svc.reveal(&nikhil, created.id).await.unwrap();
    assert_eq!(shown.expose_secret(), b"api-secret-1");

    w.clock.advance(Duration::days(3));
    let rotated = svc
        .rotate(&nikhil, created.id, secret("api-secret-2"), None)
        .await
        .unwrap();
    assert_eq!(rotated.generation, 1);
    assert_eq!(rotated.rotated_at, START + Duration::days(3));
    let after = w
        .stores
        .credentials
        .get(&pid("nikhil"), created.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        envelope::nonces_of(after.sealed.as_bytes()).unwrap(),
        envelope::nonces_of(stored.sealed.as_bytes()).unwrap()
    );
    assert_eq!(
        svc.reveal(&nikhil, created.id)
            .await
            .unwrap()
            .expose_secret(),
        b"api-secret-2"
    );

    let revoked = svc.revoke(&nikhil, created.id).await.unwrap();
    assert_eq!(revoked.status, CredentialStatus::Revoked);
    assert!(
        w.stores
            .credentials
            .get(&pid("nikhil"), created.id)
            .await
            .unwrap()
            .unwrap()
            .sealed
            .is_empty()
    );
    assert!(matches!(
        svc.reveal(&nikhil, created.id).await,
        Err(Error::Vault(VaultError::Revoked))
    ));

    use Outcome::*;
    let expected: Vec<(String, Outcome)> = [
        ("credential.create", Success),
        ("credential.list", Success),
        ("credential.reveal", Success),
        ("credential.rotate", Success),
        ("credential.reveal", Success),
        ("credential.revoke", Success),
        ("credential.reveal", Denied),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_owned(), o))
    .collect();
    assert_eq!(actions(&w).await, expected);
    let report = w.stack.audit.verify().await.unwrap();
    assert_eq!(report.first_broken, None);
    assert_eq!(report.checked, 7);
}

#[tokio::test]
async fn cross_partner_access_is_not_found_and_audited_under_the_caller() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let made = svc
        .create(&ctx("nikhil"), new_key("key", "nikhil-secret"))
        .await
        .unwrap();
    let raja = ctx("raja");

    for result in [
        svc.reveal(&raja, made.id).await.map(|_| ()),
        svc.rotate(&raja, made.id, secret("x"), None)
            .await
            .map(|_| ()),
        svc.revoke(&raja, made.id).await.map(|_| ()),
        svc.get(&raja, made.id).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::Vault(VaultError::NotFound))));
    }
    assert!(svc.list(&raja).await.unwrap().is_empty());
    assert_eq!(
        svc.reveal(&ctx("nikhil"), made.id)
            .await
            .unwrap()
            .expose_secret(),
        b"nikhil-secret"
    );

    let raja_entries = w
        .stack
        .audit
        .list(&pid("raja"), &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(raja_entries.len(), 4);
    assert!(
        raja_entries[..3]
            .iter()
            .all(|e| e.outcome == Outcome::Failure && e.detail.as_deref() == Some("not_found"))
    );
}

#[tokio::test]
async fn v2_envelope_moved_to_another_row_or_partner_does_not_open() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let a = svc
        .create(&ctx("nikhil"), new_key("a", "secret-a"))
        .await
        .unwrap();
    let b = svc
        .create(&ctx("nikhil"), new_key("b", "secret-b"))
        .await
        .unwrap();
    let c = svc
        .create(&ctx("mukesh"), new_key("c", "secret-c"))
        .await
        .unwrap();
    let store = &w.stores.credentials;
    let env_a = store
        .get(&pid("nikhil"), a.id)
        .await
        .unwrap()
        .unwrap()
        .sealed;
    let env_b = store
        .get(&pid("nikhil"), b.id)
        .await
        .unwrap()
        .unwrap()
        .sealed;
    let env_c = store
        .get(&pid("mukesh"), c.id)
        .await
        .unwrap()
        .unwrap()
        .sealed;
    let k1 = KekId::new("k1").unwrap();

    assert!(
        store
            .swap_envelope(
                &pid("nikhil"),
                b.id,
                env_b.as_bytes(),
                &k1,
                env_a.as_bytes()
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .swap_envelope(
                &pid("mukesh"),
                c.id,
                env_c.as_bytes(),
                &k1,
                env_a.as_bytes()
            )
            .await
            .unwrap()
    );
    for (partner, id) in [("nikhil", b.id), ("mukesh", c.id)] {
        assert!(matches!(
            svc.reveal(&ctx(partner), id).await,
            Err(Error::Vault(VaultError::Open))
        ));
    }

    // Same row, other kind.
    let mut record = store.get(&pid("nikhil"), a.id).await.unwrap().unwrap();
    let mut as_token = record.clone();
    as_token.kind = CredentialKind::BrokerToken;
    assert!(store.replace(&record, &as_token).await.unwrap());
    assert!(matches!(
        svc.reveal(&ctx("nikhil"), a.id).await,
        Err(Error::Vault(VaultError::Open))
    ));
    record.kind = CredentialKind::BrokerToken;
    assert!(
        store
            .replace(&record, &{
                let mut r = record.clone();
                r.kind = CredentialKind::ApiKey;
                r
            })
            .await
            .unwrap()
    );
    assert_eq!(
        svc.reveal(&ctx("nikhil"), a.id)
            .await
            .unwrap()
            .expose_secret(),
        b"secret-a"
    );
}

#[tokio::test]
async fn v1_unknown_key_id_is_a_typed_error() {
    let stores = VaultStores::memory();
    let first = world_with(stores.clone(), &[("k1", 1)]).await;
    let made = first
        .stack
        .credentials
        .create(&ctx("nikhil"), new_key("a", "s"))
        .await
        .unwrap();

    // A deployment that lost k1: the audit key can not be unwrapped, so the
    // ring refuses to open and records nothing.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(START));
    let before = stores.keys.list().await.unwrap();
    assert!(matches!(
        VaultKeyring::open(vec![kek("k2", 2)], stores.keys.clone(), clock.clone()).await,
        Err(Error::Vault(VaultError::UnknownKey))
    ));
    assert_eq!(stores.keys.list().await.unwrap(), before);
    // Records sealed under k1 name a key the ring does not hold.
    let ring = Arc::new(
        VaultKeyring::open(
            vec![kek("k2", 2)],
            Arc::new(MemoryKeyMetaStore::new()),
            clock.clone(),
        )
        .await
        .unwrap(),
    );
    let audit = Arc::new(
        AuditLog::new(
            stores.audit.clone(),
            AuditKey::new(Zeroizing::new([0; 32])),
            clock.clone(),
            365,
        )
        .unwrap(),
    );
    let svc = CredentialService::new(
        stores.credentials.clone(),
        ring,
        audit,
        first.directory.clone(),
        clock,
    );
    assert!(matches!(
        svc.reveal(&ctx("nikhil"), made.id).await,
        Err(Error::Vault(VaultError::UnknownKey))
    ));
}

#[tokio::test]
async fn v6_v7_rotation_then_rewrap_interrupted_and_resumed() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let mut made = Vec::new();
    for i in 0..10 {
        let partner = if i % 2 == 0 { "nikhil" } else { "mukesh" };
        let m = svc
            .create(
                &ctx(partner),
                new_key(&format!("key {i}"), &format!("secret-{i}")),
            )
            .await
            .unwrap();
        made.push((partner, m.id, format!("secret-{i}")));
    }
    let ring = &w.stack.keys;
    let (k1, k2) = (KekId::new("k1").unwrap(), KekId::new("k2").unwrap());

    // Phase one: k2 opens but does not seal yet.
    ring.stage(kek("k2", 2)).await.unwrap();
    assert_eq!(ring.primary_id(), k1);
    let staged = svc
        .create(&ctx("nikhil"), new_key("staged", "while-staged"))
        .await
        .unwrap();
    assert_eq!(staged.kek_id, Some(k1.clone()));

    // Phase two.
    ring.promote(&k2).await.unwrap();
    assert_eq!(
        ring.meta().get(&k1).await.unwrap().unwrap().state,
        KeyState::Previous
    );
    let fresh = svc
        .create(&ctx("nikhil"), new_key("fresh", "after-promote"))
        .await
        .unwrap();
    assert_eq!(fresh.kek_id, Some(k2.clone()));

    // A retirement while rows still refer to the key is refused.
    let refs: [&dyn KeyReferences; 1] = [w.stores.credentials.as_ref()];
    assert!(matches!(
        ring.retire(&k1, &refs).await,
        Err(Error::Vault(VaultError::KeyInUse { references: 12, .. }))
    ));
    assert!(matches!(
        ring.retire(&k2, &refs).await,
        Err(Error::Vault(VaultError::RetirePrimary))
    ));

    // Interrupted after four rows.
    let job = w.stack.rewrap_job().with_batch(3);
    let first = job.run(&k1, Some(4)).await.unwrap();
    assert_eq!((first.rewrapped, first.remaining), (4, 7));
    // A row rotated meanwhile moves to k2 by itself (partners go in id
    // order, so the first four rows were mukesh's and this is nikhil's).
    svc.rotate(&ctx(made[8].0), made[8].1, secret("rotated-8"), None)
        .await
        .unwrap();
    made[8].2 = "rotated-8".into();

    // Resumed: the rest moves; a third run changes nothing.
    let second = job.run(&k1, None).await.unwrap();
    assert_eq!(
        (second.rewrapped + 4 + 1, second.remaining, second.failed),
        (11, 0, 0)
    );
    let third = job.run(&k1, None).await.unwrap();
    assert_eq!(third, RewrapReport::default());

    for (partner, id, expected) in &made {
        let meta = svc.get(&ctx(partner), *id).await.unwrap();
        assert_eq!(meta.kek_id, Some(k2.clone()));
        assert_eq!(
            svc.reveal(&ctx(partner), *id)
                .await
                .unwrap()
                .expose_secret(),
            expected.as_bytes()
        );
    }
    assert_eq!(
        svc.reveal(&ctx("nikhil"), staged.id)
            .await
            .unwrap()
            .expose_secret(),
        b"while-staged"
    );

    // Now k1 can go, and the audit chain still verifies (its key moved too).
    ring.retire(&k1, &refs).await.unwrap();
    assert!(ring.key(&k1).is_none());
    assert_eq!(
        ring.meta().get(&k1).await.unwrap().unwrap().state,
        KeyState::Retired
    );
    assert_eq!(w.stack.audit.verify().await.unwrap().first_broken, None);
    assert!(matches!(
        VaultKeyring::open(
            vec![kek("k1", 1)],
            w.stores.keys.clone(),
            Arc::new(w.clock.clone())
        )
        .await,
        Err(Error::Vault(VaultError::KeyRetired(_)))
    ));
}

#[tokio::test]
async fn v4_wraps_per_kek_are_bounded() {
    let meta: Arc<dyn KeyMetaStore> = Arc::new(MemoryKeyMetaStore::new());
    let ring = VaultKeyring::with_wrap_limit(
        vec![kek("k1", 1)],
        meta.clone(),
        Arc::new(ManualClock::new(START)),
        3,
    )
    .await
    .unwrap();
    for _ in 0..3 {
        ring.wrapping_key().await.unwrap();
    }
    assert!(matches!(
        ring.wrapping_key().await,
        Err(Error::Vault(VaultError::KeyExhausted(_)))
    ));
    assert_eq!(
        meta.get(&KekId::new("k1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .wraps,
        3
    );
}

#[tokio::test]
async fn v8_policy_and_scheduler_on_days_29_30_31() {
    let policy = crate::RotationPolicy::default();
    assert_eq!(
        policy::evaluate(&policy, START, START + Duration::days(22)),
        RotationState::Current
    );
    assert_eq!(
        policy::evaluate(&policy, START, START + Duration::days(23)),
        RotationState::Due
    );

    let w = world().await;
    let svc = &w.stack.credentials;
    let nikhil = svc
        .create(&ctx("nikhil"), new_key("n", "ns"))
        .await
        .unwrap();
    let mukesh = svc
        .create(&ctx("mukesh"), new_key("m", "ms"))
        .await
        .unwrap();

    w.clock.set(START + Duration::days(29));
    let day29 = w.stack.scheduler.run_once().await.unwrap();
    assert_eq!(
        (day29.checked, day29.due, day29.overdue, day29.changed),
        (2, 2, 0, 2)
    );
    assert_eq!(
        svc.get(&ctx("nikhil"), nikhil.id).await.unwrap().rotation,
        RotationState::Due
    );

    w.clock.set(START + Duration::days(30));
    let day30 = w.stack.scheduler.run_once().await.unwrap();
    assert_eq!(
        (day30.due, day30.overdue, day30.changed),
        (2, 0, 0),
        "no repeat events"
    );
    assert!(
        svc.reveal(&ctx("nikhil"), nikhil.id).await.is_ok(),
        "day 30 is still in policy"
    );

    w.clock.set(START + Duration::days(31));
    let day31 = w.stack.scheduler.run_once().await.unwrap();
    assert_eq!((day31.due, day31.overdue, day31.changed), (0, 2, 2));

    let names: Vec<_> = w.events.snapshot().iter().map(VaultEvent::name).collect();
    assert_eq!(
        names,
        [
            "credential_rotation_due",
            "credential_rotation_due",
            "credential_rotation_overdue",
            "credential_rotation_overdue"
        ]
    );

    // nikhil's profile blocks overdue credentials; mukesh's does not.
    assert!(matches!(
        svc.reveal(&ctx("nikhil"), nikhil.id).await,
        Err(Error::Vault(VaultError::RotationOverdue))
    ));
    assert!(svc.reveal(&ctx("mukesh"), mukesh.id).await.is_ok());

    // Rotating puts it back in policy.
    svc.rotate(&ctx("nikhil"), nikhil.id, secret("ns2"), None)
        .await
        .unwrap();
    assert_eq!(
        svc.reveal(&ctx("nikhil"), nikhil.id)
            .await
            .unwrap()
            .expose_secret(),
        b"ns2"
    );
    let after = w.stack.scheduler.run_once().await.unwrap();
    assert_eq!((after.due, after.overdue), (0, 1));

    let scheduler_entries = w
        .stores
        .audit
        .scan(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.channel == Channel::Scheduler)
        .count();
    assert_eq!(scheduler_entries, 4);
}

#[tokio::test]
async fn sealed_vault_keeps_provider_tokens_for_the_login() {
    let w = world().await;
    let nikhil = w.directory.find_user("nikhil").unwrap().clone();
    let vault: &dyn Vault = w.stack.credentials.as_ref();
    let issuer = "https://accounts.google.com";

    assert!(!vault.holds_provider_token(issuer, "sub-1").await.unwrap());
    vault
        .keep_provider_token(
            &nikhil,
            issuer,
            "sub-1",
            SecretString::from("1//first-refresh"),
        )
        .await
        .unwrap();
    assert!(vault.holds_provider_token(issuer, "sub-1").await.unwrap());
    vault
        .keep_provider_token(
            &nikhil,
            issuer,
            "sub-1",
            SecretString::from("1//second-refresh"),
        )
        .await
        .unwrap();

    let records = w.stores.credentials.list(&pid("nikhil")).await.unwrap();
    assert_eq!(records.len(), 1, "a new token replaces the held one");
    assert_eq!(records[0].kind, CredentialKind::OauthRefreshToken);
    assert_eq!(records[0].generation, 1);
    let shown = w
        .stack
        .credentials
        .reveal(&ctx("nikhil"), records[0].id)
        .await
        .unwrap();
    assert_eq!(shown.expose_secret(), b"1//second-refresh");
}

#[tokio::test]
async fn sealed_vault_hands_back_the_provider_token_audited() {
    let w = world().await;
    let nikhil = w.directory.find_user("nikhil").unwrap().clone();
    let mukesh = w.directory.find_user("mukesh").unwrap().clone();
    let vault: &dyn Vault = w.stack.credentials.as_ref();
    let issuer = "https://accounts.google.com";
    vault
        .keep_provider_token(&nikhil, issuer, "sub-1", SecretString::from("1//held"))
        .await
        .unwrap();

    let held = vault
        .provider_refresh_token(&nikhil, issuer, "sub-1")
        .await
        .unwrap();
    let other_subject = vault
        .provider_refresh_token(&nikhil, issuer, "sub-2")
        .await
        .unwrap();
    let other_partner = vault
        .provider_refresh_token(&mukesh, issuer, "sub-1")
        .await
        .unwrap();

    assert_eq!(held.unwrap().expose_secret(), "1//held");
    assert!(other_subject.is_none());
    assert!(
        other_partner.is_none(),
        "another partner's token was handed out"
    );
    let reveals = w
        .stores
        .audit
        .scan(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "credential.reveal")
        .count();
    assert_eq!(reveals, 1);
}

struct BrokenVault {
    fail_first: std::sync::atomic::AtomicU32,
    inner: MemoryVault,
}

#[async_trait::async_trait]
impl Vault for BrokenVault {
    async fn holds_provider_token(&self, _issuer: &str, _subject: &str) -> Result<bool, Error> {
        Err(Error::Config("store down".into()))
    }

    async fn keep_provider_token(
        &self,
        user: &crate::User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error> {
        if self.fail_first.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.fail_first
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return Err(Error::Config("store down".into()));
        }
        self.inner
            .keep_provider_token(user, issuer, subject, token)
            .await
    }
}

#[tokio::test]
async fn item_9_failing_vault_never_fails_the_login_and_retries() {
    let directory = Directory::launch().unwrap();
    let user = directory.find_user("mukesh").unwrap().clone();
    let inner = Arc::new(BrokenVault {
        fail_first: 2.into(),
        inner: MemoryVault::new(),
    });
    let events = Arc::new(RecordedVaultEvents::default());
    let config = RetryConfig {
        capacity: 1,
        max_attempts: 4,
        backoff: std::time::Duration::from_millis(5),
    };
    let vault = ResilientVault::spawn(inner.clone(), events.clone(), config);

    vault
        .keep_provider_token(&user, "iss", "sub", SecretString::from("tok-1"))
        .await
        .unwrap();
    assert!(
        vault.holds_provider_token("iss", "sub").await.unwrap(),
        "a queued token counts as held"
    );
    for _ in 0..200 {
        if vault.pending() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        inner
            .inner
            .provider_token("iss", "sub")
            .unwrap()
            .expose_secret(),
        "tok-1"
    );
    let names: Vec<_> = events.snapshot().iter().map(VaultEvent::name).collect();
    assert_eq!(names, ["provider_token_deferred", "provider_token_stored"]);

    // A store that never recovers: given up on after the last try, still no
    // failed login, and an unreadable store reads as "not held".
    inner
        .fail_first
        .store(100, std::sync::atomic::Ordering::SeqCst);
    vault
        .keep_provider_token(&user, "iss", "sub2", SecretString::from("tok-2"))
        .await
        .unwrap();
    for _ in 0..400 {
        if vault.pending() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!vault.holds_provider_token("iss", "sub2").await.unwrap());
    assert_eq!(
        events.snapshot().last().map(VaultEvent::name),
        Some("provider_token_dropped")
    );
}

#[tokio::test]
async fn session_events_become_audit_entries() {
    let w = world().await;
    let sink = w.stack.audit_events(16);
    let session = SessionId::random();
    sink.emit(&SecurityEvent::LoginSucceeded {
        user: uid("nikhil"),
        partner: pid("nikhil"),
        session,
        mode: crate::AuthMode::Mock,
    });
    sink.emit(&SecurityEvent::Refreshed {
        user: uid("nikhil"),
        partner: pid("nikhil"),
        session,
        grace: false,
    });
    sink.emit(&SecurityEvent::RefreshReuse {
        user: uid("nikhil"),
        partner: pid("nikhil"),
        session,
    });
    sink.emit(&SecurityEvent::SessionRevoked {
        user: uid("nikhil"),
        partner: pid("nikhil"),
        session,
        reason: crate::RevokeReason::Forced,
        by: Some(uid("nitin")),
    });
    sink.emit(&SecurityEvent::LoginFailed {
        mode: crate::AuthMode::Mock,
        reason: "unknown_user",
    });
    sink.flush().await;

    let entries = w.stores.audit.scan(0, 100).await.unwrap();
    let got: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.outcome,
                e.actor.as_ref().map(UserId::as_str),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("session.login_succeeded", Outcome::Success, Some("nikhil")),
            ("session.refreshed", Outcome::Success, Some("nikhil")),
            ("session.refresh_reuse", Outcome::Denied, Some("nikhil")),
            ("session.session_revoked", Outcome::Success, Some("nitin")),
            ("session.login_failed", Outcome::Failure, None),
        ]
    );
    assert_eq!(entries[0].target, Some(format!("session:{session}")));
    assert_eq!(
        entries[3].detail.as_deref(),
        Some("reason=forced owner=nikhil")
    );
    assert_eq!(entries[4].partner, None);
    assert_eq!(w.stack.audit.verify().await.unwrap().first_broken, None);
}

#[tokio::test]
async fn bad_inputs_are_refused_before_anything_is_stored() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let nikhil = ctx("nikhil");
    for bad in [
        new_key("", "s"),
        new_key("line\nbreak", "s"),
        new_key(&"x".repeat(129), "s"),
        new_key("ok", ""),
    ] {
        assert!(svc.create(&nikhil, bad).await.is_err());
    }
    assert!(
        w.stores
            .credentials
            .list(&pid("nikhil"))
            .await
            .unwrap()
            .is_empty()
    );
    let _ = CredentialId::random();
}

#[tokio::test]
async fn key_management_through_the_stack_is_audited() {
    let w = world().await;
    w.stack
        .credentials
        .create(&ctx("raja"), new_key("r", "raja-secret"))
        .await
        .unwrap();
    let (k1, k2) = (KekId::new("k1").unwrap(), KekId::new("k2").unwrap());
    w.stack.keys.stage(kek("k2", 2)).await.unwrap();
    w.stack.keys.promote(&k2).await.unwrap();

    assert!(w.stack.retire_key(&k1, Channel::Cli).await.is_err());
    let report = w.stack.rewrap(&k1, Channel::Cli).await.unwrap();
    assert_eq!((report.rewrapped, report.remaining), (1, 0));
    w.stack.retire_key(&k1, Channel::Cli).await.unwrap();

    let entries = w.stores.audit.scan(0, 100).await.unwrap();
    let keys: Vec<_> = entries
        .iter()
        .filter(|e| e.action.starts_with("vault."))
        .map(|e| (e.action.as_str(), e.outcome, e.channel, e.partner.is_none()))
        .collect();
    assert_eq!(
        keys,
        [
            ("vault.key_retire", Outcome::Failure, Channel::Cli, true),
            ("vault.key_rewrap", Outcome::Success, Channel::Cli, true),
            ("vault.key_retire", Outcome::Success, Channel::Cli, true),
        ]
    );
    assert_eq!(w.stack.audit.verify().await.unwrap().first_broken, None);
}

async fn wait_until<F, Fut>(mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if done().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn stale_queued_provider_token_never_overwrites_a_newer_login() {
    let directory = Directory::launch().unwrap();
    let user = directory.find_user("mukesh").unwrap().clone();
    let inner = Arc::new(BrokenVault {
        fail_first: 1.into(),
        inner: MemoryVault::new(),
    });
    let events = Arc::new(RecordedVaultEvents::default());
    let config = RetryConfig {
        capacity: 4,
        max_attempts: 4,
        backoff: std::time::Duration::from_millis(100),
    };
    let vault = ResilientVault::spawn(inner.clone(), events.clone(), config);

    // The first login's write fails and is queued; a second login for the
    // same subject stores its newer token before the retry comes round.
    vault
        .keep_provider_token(&user, "iss", "sub", SecretString::from("tok-old"))
        .await
        .unwrap();
    vault
        .keep_provider_token(&user, "iss", "sub", SecretString::from("tok-new"))
        .await
        .unwrap();
    assert!(wait_until(|| async { vault.pending() == 0 }).await);

    assert_eq!(
        inner
            .inner
            .provider_token("iss", "sub")
            .unwrap()
            .expose_secret(),
        "tok-new"
    );
    let got = events.snapshot();
    assert!(
        matches!(
            got.as_slice(),
            [
                VaultEvent::ProviderTokenDeferred { .. },
                VaultEvent::ProviderTokenDropped {
                    reason: "superseded",
                    ..
                }
            ]
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn maintenance_task_marks_due_credentials_and_purges_on_its_interval() {
    let w = world().await;
    let made = w
        .stack
        .credentials
        .create(&ctx("nikhil"), new_key("desk", "desk-secret"))
        .await
        .unwrap();
    let first_seq = w.stores.audit.head().await.unwrap().unwrap().seq;
    let task = w
        .stack
        .spawn_maintenance(std::time::Duration::from_millis(20));
    let state = |w: &World| {
        let store = w.stores.credentials.clone();
        async move {
            store
                .get(&pid("nikhil"), made.id)
                .await
                .unwrap()
                .unwrap()
                .rotation
        }
    };
    let audited = |w: &World, action: &'static str| {
        let audit = w.stores.audit.clone();
        async move {
            audit
                .scan(0, 1000)
                .await
                .unwrap()
                .iter()
                .any(|e| e.action == action && e.channel == Channel::Scheduler)
        }
    };

    // Passes run while nothing is due: nothing changes.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_eq!(state(&w).await, RotationState::Current);

    // The clock moves past the warning point; a later pass marks it.
    w.clock.advance(Duration::days(24));
    assert!(wait_until(|| async { state(&w).await == RotationState::Due }).await);
    assert!(wait_until(|| audited(&w, "credential.rotation_due")).await);
    assert!(w.events.snapshot().iter().any(
        |e| matches!(e, VaultEvent::RotationDue { credential, .. } if *credential == made.id)
    ));

    // Past the audit retention: the next pass also purges the old entries
    // and leaves an anchor from which the chain still verifies.
    w.clock.advance(Duration::days(400));
    assert!(wait_until(|| async { state(&w).await == RotationState::Overdue }).await);
    assert!(
        wait_until(|| async {
            w.stores
                .audit
                .anchor()
                .await
                .unwrap()
                .is_some_and(|a| a.seq >= first_seq)
        })
        .await
    );
    task.abort();
    assert_eq!(w.stack.audit.verify().await.unwrap().first_broken, None);
}

#[tokio::test]
async fn session_events_carry_the_request_channel() {
    let w = world().await;
    let sink = w.stack.audit_events(16);
    let revoked = |session| SecurityEvent::SessionRevoked {
        user: uid("nikhil"),
        partner: pid("nikhil"),
        session,
        reason: crate::RevokeReason::Logout,
        by: None,
    };
    let (by_bearer, by_cookie) = (SessionId::random(), SessionId::random());

    with_request_channel(Channel::Api, async { sink.emit(&revoked(by_bearer)) }).await;
    with_request_channel(Channel::Web, async { sink.emit(&revoked(by_cookie)) }).await;
    sink.emit(&revoked(SessionId::random()));
    sink.flush().await;

    let entries = w.stores.audit.scan(0, 100).await.unwrap();
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.channel, e.detail.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Channel::Api, Some("reason=logout")),
            (Channel::Web, Some("reason=logout")),
            (Channel::Web, Some("reason=logout")),
        ]
    );
    assert_eq!(entries[0].target, Some(format!("session:{by_bearer}")));
}

#[tokio::test]
async fn reveal_of_another_users_credential_needs_the_partner_scope() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let owner = ctx("nikhil");
    let colleague = AuditContext::user(pid("nikhil"), uid("desk-two"), Channel::Api);
    let made = svc
        .create(&owner, new_key("oauth", "owner-only-secret"))
        .await
        .unwrap();

    assert!(matches!(
        svc.reveal(&colleague, made.id).await,
        Err(Error::Vault(VaultError::NotOwner))
    ));
    assert!(matches!(
        svc.reveal_scoped(
            &AuditContext::system(pid("nikhil"), Channel::Cli),
            made.id,
            RevealScope::Own
        )
        .await,
        Err(Error::Vault(VaultError::NotOwner))
    ));
    assert_eq!(
        svc.reveal(&owner, made.id).await.unwrap().expose_secret(),
        b"owner-only-secret"
    );
    assert_eq!(
        svc.reveal_scoped(&colleague, made.id, RevealScope::Partner)
            .await
            .unwrap()
            .expose_secret(),
        b"owner-only-secret"
    );

    let reveals: Vec<_> = w
        .stores
        .audit
        .scan(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "credential.reveal")
        .map(|e| (e.actor.map(|a| a.to_string()), e.outcome, e.detail))
        .collect();
    assert_eq!(
        reveals[0],
        (
            Some("desk-two".to_owned()),
            Outcome::Denied,
            Some("not_owner".to_owned())
        )
    );
    assert_eq!(reveals.len(), 4);
    assert_eq!(reveals[3].1, Outcome::Success);
}

#[tokio::test]
async fn rotate_and_revoke_of_another_users_credential_need_the_partner_scope() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let owner = ctx("nikhil");
    let colleague = AuditContext::user(pid("nikhil"), uid("desk-two"), Channel::Api);
    let made = svc
        .create(&owner, new_key("broker", "owner-chosen"))
        .await
        .unwrap();

    assert!(matches!(
        svc.rotate(&colleague, made.id, secret("colleague-chosen"), None)
            .await,
        Err(Error::Vault(VaultError::NotOwner))
    ));
    assert!(matches!(
        svc.revoke(&colleague, made.id).await,
        Err(Error::Vault(VaultError::NotOwner))
    ));
    assert_eq!(
        svc.reveal(&owner, made.id).await.unwrap().expose_secret(),
        b"owner-chosen"
    );

    let rotated = svc
        .rotate_scoped(
            &colleague,
            made.id,
            secret("admin-chosen"),
            None,
            RevealScope::Partner,
        )
        .await
        .unwrap();
    assert_eq!(rotated.generation, 1);
    assert_eq!(
        svc.reveal(&owner, made.id).await.unwrap().expose_secret(),
        b"admin-chosen"
    );
    let revoked = svc
        .revoke_scoped(&colleague, made.id, RevealScope::Partner)
        .await
        .unwrap();
    assert_eq!(revoked.status, CredentialStatus::Revoked);

    let denied: Vec<_> = w
        .stores
        .audit
        .scan(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.outcome == Outcome::Denied)
        .map(|e| (e.action, e.detail))
        .collect();
    assert_eq!(
        denied,
        [
            ("credential.rotate".to_owned(), Some("not_owner".to_owned())),
            ("credential.revoke".to_owned(), Some("not_owner".to_owned())),
        ]
    );
}

#[tokio::test]
async fn unsafe_text_and_past_expiry_are_refused_and_expired_credentials_are_not_revealed() {
    let w = world().await;
    let svc = &w.stack.credentials;
    let nikhil = ctx("nikhil");
    for label in [
        "pay\u{202E}lpaypal",
        "iso\u{2066}late",
        "mark\u{200F}ed",
        "\u{200B}\u{200B}",
        "line\u{2028}break",
        "bom\u{FEFF}",
        "alm\u{061C}x",
        "tab\there",
        "nul\u{0}",
    ] {
        assert!(
            matches!(
                svc.create(&nikhil, new_key(label, "s")).await,
                Err(Error::Vault(VaultError::UnsafeText("label")))
            ),
            "{label:?}"
        );
    }
    let mut bad_broker = new_key("ok", "s");
    bad_broker.broker = Some("zero\u{202D}dha".into());
    assert!(matches!(
        svc.create(&nikhil, bad_broker).await,
        Err(Error::Vault(VaultError::UnsafeText("broker")))
    ));
    let mut past = new_key("ok", "s");
    past.expires_at = Some(START - Duration::seconds(1));
    assert!(matches!(
        svc.create(&nikhil, past).await,
        Err(Error::Vault(VaultError::ExpiresInPast))
    ));
    assert!(
        w.stores
            .credentials
            .list(&pid("nikhil"))
            .await
            .unwrap()
            .is_empty()
    );

    let mut soon = new_key("expiring", "before-expiry");
    soon.expires_at = Some(START + Duration::days(1));
    let made = svc.create(&nikhil, soon).await.unwrap();
    assert!(matches!(
        svc.rotate(
            &nikhil,
            made.id,
            secret("x"),
            Some(START - Duration::minutes(1))
        )
        .await,
        Err(Error::Vault(VaultError::ExpiresInPast))
    ));
    assert_eq!(
        svc.reveal(&nikhil, made.id).await.unwrap().expose_secret(),
        b"before-expiry"
    );

    // Past its expiry the secret is no longer handed out; a rotation
    // replaces it and drops the stale expiry.
    w.clock.advance(Duration::days(1));
    assert!(matches!(
        svc.reveal(&nikhil, made.id).await,
        Err(Error::Vault(VaultError::Expired))
    ));
    let rotated = svc
        .rotate(&nikhil, made.id, secret("after-expiry"), None)
        .await
        .unwrap();
    assert_eq!(rotated.expires_at, None);
    assert_eq!(
        svc.reveal(&nikhil, made.id).await.unwrap().expose_secret(),
        b"after-expiry"
    );
    let details: Vec<_> = w
        .stores
        .audit
        .scan(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "credential.reveal" && e.outcome == Outcome::Denied)
        .map(|e| e.detail)
        .collect();
    assert_eq!(details, [Some("expired".to_owned())]);
}

#[tokio::test]
async fn a_key_id_is_tied_to_its_bytes_and_a_refused_start_writes_nothing() {
    let stores = VaultStores::memory();
    let first = world_with(stores.clone(), &[("k1", 1)]).await;
    first
        .stack
        .credentials
        .create(&ctx("nikhil"), new_key("a", "s"))
        .await
        .unwrap();
    let stored = stores.keys.list().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].check, Some(kek("k1", 1).check_value()));
    assert_ne!(kek("k1", 1).check_value(), kek("k1", 2).check_value());

    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(START));
    for keys in [
        // The same id with other bytes, as primary or after it.
        vec![kek("k1", 2)],
        vec![kek("zz", 5), kek("k1", 2)],
        // A new id as primary while the key holding the audit key is absent.
        vec![kek("zz", 5)],
    ] {
        let ids: Vec<String> = keys.iter().map(|k| k.id().to_string()).collect();
        let refused = VaultKeyring::open(keys, stores.keys.clone(), clock.clone()).await;
        assert!(
            matches!(
                refused,
                Err(Error::Vault(
                    VaultError::KeyMismatch(_) | VaultError::UnknownKey
                ))
            ),
            "{ids:?}: {refused:?}"
        );
        assert_eq!(stores.keys.list().await.unwrap(), stored, "{ids:?}");
    }
    let refused = VaultKeyring::open(vec![kek("k1", 2)], stores.keys.clone(), clock.clone()).await;
    assert!(matches!(
        refused,
        Err(Error::Vault(VaultError::KeyMismatch(id))) if id == "k1"
    ));

    // Staging is held to the same rule.
    let ring = VaultKeyring::open(vec![kek("k1", 1)], stores.keys.clone(), clock.clone())
        .await
        .unwrap();
    ring.stage(kek("k2", 2)).await.unwrap();
    let other = VaultKeyring::open(vec![kek("k1", 1)], stores.keys.clone(), clock)
        .await
        .unwrap();
    assert!(matches!(
        other.stage(kek("k2", 3)).await,
        Err(Error::Vault(VaultError::KeyMismatch(_)))
    ));
    assert!(other.key(&KekId::new("k2").unwrap()).is_none());
}

#[tokio::test]
async fn inspecting_the_key_ring_writes_nothing() {
    let stores = VaultStores::memory();
    world_with(stores.clone(), &[("k1", 1)]).await;
    let stored = stores.keys.list().await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(START + Duration::days(1)));

    let ring = VaultKeyring::inspect(
        vec![kek("k3", 3), kek("k1", 1)],
        stores.keys.clone(),
        clock.clone(),
    )
    .await
    .unwrap();
    assert_eq!(ring.primary_id().as_str(), "k3");
    assert_eq!(stores.keys.list().await.unwrap(), stored);
    assert!(matches!(
        VaultKeyring::inspect(vec![kek("k1", 9)], stores.keys.clone(), clock).await,
        Err(Error::Vault(VaultError::KeyMismatch(_)))
    ));
    assert_eq!(stores.keys.list().await.unwrap(), stored);
}
