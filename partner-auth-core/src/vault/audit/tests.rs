use time::macros::datetime;
use zeroize::Zeroizing;

use super::*;
use crate::ManualClock;
use crate::vault::MemoryAuditStore;

const START: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn pid(s: &str) -> PartnerId {
    PartnerId::new(s).unwrap()
}

fn log(clock: &ManualClock) -> (AuditLog, Arc<MemoryAuditStore>) {
    let store = Arc::new(MemoryAuditStore::new());
    let log = AuditLog::new(
        store.clone(),
        AuditKey::new(Zeroizing::new([4; 32])),
        Arc::new(clock.clone()),
        MIN_RETENTION_DAYS,
    )
    .unwrap();
    (log, store)
}

fn event(partner: &str, action: &str) -> AuditEvent {
    let ctx = AuditContext::user(pid(partner), UserId::new(partner).unwrap(), Channel::Api);
    AuditEvent::new(&ctx, action, Some("credential:x".into()), Outcome::Success)
}

async fn chain(n: usize) -> (Vec<AuditEntry>, AuditKey) {
    let clock = ManualClock::new(START);
    let (log, _) = log(&clock);
    let mut out = Vec::new();
    for i in 0..n {
        clock.advance(Duration::minutes(1));
        out.push(
            log.append(event("nikhil", &format!("test.step_{i}")))
                .await
                .unwrap(),
        );
    }
    (out, AuditKey::new(Zeroizing::new([4; 32])))
}

fn first_break(key: &AuditKey, entries: &[AuditEntry]) -> Option<ChainBreak> {
    let mut v = ChainVerifier::new(key, None).unwrap();
    entries.iter().find_map(|e| v.feed(e).err())
}

#[tokio::test]
async fn a1_verifier_names_the_first_tampered_entry() {
    let (entries, key) = chain(6).await;
    assert_eq!(first_break(&key, &entries), None);

    let mut changed = entries.clone();
    changed[2].outcome = Outcome::Denied;
    assert_eq!(
        first_break(&key, &changed),
        Some(ChainBreak {
            seq: 3,
            kind: BreakKind::Altered
        })
    );

    let mut deleted = entries.clone();
    deleted.remove(3);
    assert_eq!(
        first_break(&key, &deleted),
        Some(ChainBreak {
            seq: 4,
            kind: BreakKind::Missing
        })
    );

    let mut reordered = entries.clone();
    reordered.swap(1, 2);
    (reordered[1].seq, reordered[2].seq) = (2, 3);
    assert_eq!(first_break(&key, &reordered).map(|b| b.seq), Some(2));

    // A forged entry rehashed with the right key but linked wrongly.
    let mut inserted = entries.clone();
    let mut forged = entries[4].clone();
    forged.prev_hash = ChainHash([1; 32]);
    forged.hash = forged.compute_hash(&key);
    inserted[4] = forged;
    assert_eq!(
        first_break(&key, &inserted),
        Some(ChainBreak {
            seq: 5,
            kind: BreakKind::Linkage
        })
    );

    let other = AuditKey::new(Zeroizing::new([5; 32]));
    assert_eq!(
        first_break(&other, &entries),
        Some(ChainBreak {
            seq: 1,
            kind: BreakKind::Altered
        })
    );
}

#[tokio::test]
async fn a2_retention_shorter_than_a_year_is_refused() {
    let store = Arc::new(MemoryAuditStore::new());
    let err = AuditLog::new(
        store,
        AuditKey::new(Zeroizing::new([4; 32])),
        Arc::new(ManualClock::new(START)),
        364,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Vault(VaultError::RetentionTooShort { min: 365, got: 364 })
    ));
}

#[tokio::test]
async fn a2_purge_never_touches_a_younger_entry() {
    let clock = ManualClock::new(START);
    let (log, store) = log(&clock);
    log.append(event("nikhil", "test.day_0")).await.unwrap();
    clock.set(START + Duration::days(1));
    log.append(event("nikhil", "test.day_1")).await.unwrap();
    clock.set(START + Duration::days(200));
    log.append(event("nikhil", "test.day_200")).await.unwrap();
    // The clock stepped back: an old timestamp after a young one.
    clock.set(START + Duration::days(2));
    log.append(event("nikhil", "test.day_2_late"))
        .await
        .unwrap();

    clock.set(START + Duration::days(366));
    assert_eq!(
        log.purge_expired().await.unwrap(),
        1,
        "only day 0 is past 365 days"
    );
    clock.set(START + Duration::days(380));
    assert_eq!(
        log.purge_expired().await.unwrap(),
        1,
        "day 1 goes; day 200 stops the purge"
    );
    let left: Vec<_> = store
        .scan(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(left, ["test.day_200", "test.day_2_late"]);

    // The chain still verifies from the anchor, and goes on from it.
    assert_eq!(
        log.verify().await.unwrap(),
        VerifyReport {
            checked: 2,
            first_broken: None
        }
    );
    clock.set(START + Duration::days(600));
    assert_eq!(log.purge_expired().await.unwrap(), 2);
    let next = log
        .append(event("nikhil", "test.after_purge"))
        .await
        .unwrap();
    assert_eq!(next.seq, 5);
    assert_eq!(
        log.verify().await.unwrap(),
        VerifyReport {
            checked: 1,
            first_broken: None
        }
    );
}

#[tokio::test]
async fn export_filters_by_partner_and_time_and_escapes_csv() {
    let clock = ManualClock::new(START);
    let (log, _) = log(&clock);
    log.append(event("nikhil", "test.one")).await.unwrap();
    clock.advance(Duration::hours(1));
    log.append(event("raja", "test.other_partner"))
        .await
        .unwrap();
    log.append(event("nikhil", "test.two").with_detail("=cmd(), \"x\""))
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    log.append(event("nikhil", "test.three")).await.unwrap();

    let jsonl = log
        .export(
            &pid("nikhil"),
            Some(START + Duration::minutes(30)),
            Some(START + Duration::minutes(90)),
            ExportFormat::Jsonl,
        )
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["action"], "test.two");
    assert_eq!(lines[0]["seq"], 3);
    let back: AuditEntry = serde_json::from_value(lines[0].clone()).unwrap();
    assert_eq!(back.hash.to_hex().len(), 64);

    let csv = log
        .export(&pid("nikhil"), None, None, ExportFormat::Csv)
        .await
        .unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows[0], CSV_HEADER);
    assert_eq!(rows.len(), 4);
    assert!(rows[2].contains(",\"'=cmd(), \"\"x\"\"\","), "{}", rows[2]);
    assert!(!csv.contains("raja"));
}

#[tokio::test]
async fn bad_audit_fields_are_refused() {
    let clock = ManualClock::new(START);
    let (log, store) = log(&clock);
    for bad in [
        event("nikhil", "Upper.Case"),
        event("nikhil", ""),
        event("nikhil", "ok").with_detail("line\nbreak"),
        event("nikhil", "ok").with_detail("x".repeat(MAX_DETAIL_LEN + 1)),
    ] {
        assert!(log.append(bad).await.is_err());
    }
    assert!(store.head().await.unwrap().is_none());
}
