//! The audit chain on a real SQLite file, tampered with directly in SQL.

use std::sync::Arc;

use partner_auth_core::vault::{
    AuditContext, AuditEvent, BreakKind, ChainBreak, Channel, Kek, KekId, KeySource, Outcome,
    RecordedVaultEvents, VaultError, VaultStack,
};
use partner_auth_core::{Clock as _, Directory, ManualClock, PartnerId, UserId};
use partner_auth_sqlx::{SqliteDatabase, vault_stack};
use time::Duration;
use time::macros::datetime;
use zeroize::Zeroizing;

struct OneKey;

#[async_trait::async_trait]
impl KeySource for OneKey {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        Ok(vec![Kek::new(KekId::new("k1")?, Zeroizing::new([3; 32]))])
    }

    fn describe(&self) -> String {
        "test key".into()
    }
}

struct World {
    db: SqliteDatabase,
    stack: VaultStack,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&dir.path().join("audit.sqlite3"))
        .await
        .unwrap();
    let clock = ManualClock::new(datetime!(2026-02-01 08:00 UTC));
    let stack = vault_stack(
        &db,
        &OneKey,
        Arc::new(clock.clone()),
        Arc::new(Directory::launch().unwrap()),
        Arc::new(RecordedVaultEvents::default()),
    )
    .await
    .unwrap();
    World {
        db,
        stack,
        clock,
        _dir: dir,
    }
}

fn event(n: u32) -> AuditEvent {
    let ctx = AuditContext::user(
        PartnerId::new("nikhil").unwrap(),
        UserId::new("nikhil").unwrap(),
        Channel::Web,
    );
    AuditEvent::new(
        &ctx,
        "credential.reveal",
        Some(format!("credential:{n}")),
        Outcome::Success,
    )
}

async fn six_entries() -> World {
    let w = world().await;
    for n in 1..=6 {
        w.clock.advance(Duration::minutes(1));
        w.stack.audit.append(event(n)).await.unwrap();
    }
    assert_eq!(w.stack.audit.verify().await.unwrap().first_broken, None);
    w
}

async fn sql(w: &World, statements: &[&str]) {
    for s in statements {
        sqlx::query(s)
            .execute(w.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

const DROP_TRIGGERS: [&str; 3] = [
    "DROP TRIGGER audit_log_no_update",
    "DROP TRIGGER audit_log_no_delete",
    "DROP TRIGGER audit_log_no_insert_behind_anchor",
];

async fn broken(w: &World) -> Option<ChainBreak> {
    w.stack.audit.verify().await.unwrap().first_broken
}

#[tokio::test]
async fn a1_triggers_refuse_update_and_delete() {
    let w = six_entries().await;
    for s in [
        "UPDATE audit_log SET outcome = 'denied' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 2",
    ] {
        let err = sqlx::query(s).execute(w.db.pool()).await.unwrap_err();
        assert!(err.to_string().contains("audit_log"), "{err}");
    }
    assert_eq!(broken(&w).await, None);
}

#[tokio::test]
async fn a1_changed_row_is_named() {
    let w = six_entries().await;
    sql(&w, &DROP_TRIGGERS).await;
    sql(
        &w,
        &["UPDATE audit_log SET outcome = 'denied' WHERE seq = 3"],
    )
    .await;
    assert_eq!(
        broken(&w).await,
        Some(ChainBreak {
            seq: 3,
            kind: BreakKind::Altered
        })
    );
}

#[tokio::test]
async fn a1_deleted_row_is_named() {
    let w = six_entries().await;
    sql(&w, &DROP_TRIGGERS).await;
    sql(&w, &["DELETE FROM audit_log WHERE seq = 4"]).await;
    assert_eq!(
        broken(&w).await,
        Some(ChainBreak {
            seq: 4,
            kind: BreakKind::Missing
        })
    );
}

#[tokio::test]
async fn a1_reordered_rows_are_named() {
    let w = six_entries().await;
    sql(&w, &DROP_TRIGGERS).await;
    sql(
        &w,
        &[
            "UPDATE audit_log SET seq = 1002 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 1002",
        ],
    )
    .await;
    assert_eq!(
        broken(&w).await,
        Some(ChainBreak {
            seq: 2,
            kind: BreakKind::Altered
        })
    );
}

#[tokio::test]
async fn a1_inserted_row_is_named() {
    let w = six_entries().await;
    sql(&w, &DROP_TRIGGERS).await;
    sql(
        &w,
        &[
            "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4",
            "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1004",
            "INSERT INTO audit_log (seq, at, partner_id, actor, impersonator, channel, action, \
         target, outcome, detail, key_id, prev_hash, hash) \
         SELECT 4, at, partner_id, actor, impersonator, channel, 'credential.revoke', target, \
         outcome, detail, key_id, hash, hash FROM audit_log WHERE seq = 3",
        ],
    )
    .await;
    assert_eq!(
        broken(&w).await,
        Some(ChainBreak {
            seq: 4,
            kind: BreakKind::Altered
        })
    );
}

#[tokio::test]
async fn a1_forged_anchor_is_named() {
    let w = six_entries().await;
    w.clock.advance(Duration::days(400));
    w.stack.audit.append(event(7)).await.unwrap();
    assert_eq!(w.stack.audit.purge_expired().await.unwrap(), 6);
    assert_eq!(broken(&w).await, None);

    // Pretending fewer entries were purged (to hide a deletion) breaks the anchor.
    sql(&w, &["UPDATE audit_anchor SET seq = 5"]).await;
    assert_eq!(
        broken(&w).await,
        Some(ChainBreak {
            seq: 6,
            kind: BreakKind::Anchor
        })
    );
}

#[tokio::test]
async fn a2_retention_purge_never_touches_a_younger_entry() {
    let w = world().await;
    let start = w.clock.now();
    for day in [0, 10, 364, 366] {
        w.clock.set(start + Duration::days(day));
        w.stack
            .audit
            .append(event(u32::try_from(day).unwrap()))
            .await
            .unwrap();
    }
    // Day 366 after the start: entries of day 0 are older than 365 days.
    w.clock.set(start + Duration::days(366));
    assert_eq!(w.stack.audit.purge_expired().await.unwrap(), 1);
    w.clock
        .set(start + Duration::days(375) + Duration::hours(1));
    assert_eq!(
        w.stack.audit.purge_expired().await.unwrap(),
        1,
        "day 10 goes, day 364 stays"
    );

    let left: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_log ORDER BY seq")
        .fetch_all(w.db.pool())
        .await
        .unwrap();
    assert_eq!(left, vec![3, 4]);
    let err = sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(w.db.pool())
        .await;
    assert!(
        err.is_err(),
        "a young entry can not be deleted behind the library's back"
    );
    assert_eq!(broken(&w).await, None);
}
