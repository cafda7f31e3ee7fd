//! Conformance suites for credential, key-metadata and audit stores.
//!
//! A backend crate runs each suite against a fresh, empty store:
//!
//! ```text
//! partner_auth_core::vault::testing::credential_store_conformance(store).await;
//! ```
//!
//! Every check panics with a message naming the property that failed.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::{
    AuditAnchor, AuditEntry, AuditFilter, AuditStore, ChainHash, Channel, CredentialKind,
    CredentialRecord, CredentialStatus, CredentialStore, KekId, KeyMetaStore, KeyState, Outcome,
    RotationState, Sealed,
};
use crate::{CredentialId, Error, PartnerId, UserId};

fn pid(s: &str) -> PartnerId {
    PartnerId::new(s).expect("valid partner id")
}

fn kek(s: &str) -> KekId {
    KekId::new(s).expect("valid key id")
}

/// A fixed instant with microsecond digits, the precision stores keep.
pub fn base_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_000).expect("valid time")
}

/// A record of `partner` with placeholder envelope bytes under key `k1`.
pub fn sample_record(partner: &PartnerId, kind: CredentialKind, label: &str) -> CredentialRecord {
    CredentialRecord {
        id: CredentialId::random(),
        partner: partner.clone(),
        owner: UserId::new(partner.as_str()).expect("valid user id"),
        kind,
        label: label.to_owned(),
        broker: Some("zerodha".to_owned()),
        reference: None,
        status: CredentialStatus::Active,
        generation: 0,
        rotation: RotationState::Current,
        created_at: base_time(),
        rotated_at: base_time(),
        expires_at: Some(base_time() + Duration::days(90)),
        revoked_at: None,
        kek_id: Some(kek("k1")),
        sealed: Sealed(vec![1, 2, 3, 4]),
    }
}

/// Runs every credential-store check against an empty store.
pub async fn credential_store_conformance(store: Arc<dyn CredentialStore>) {
    let a = pid("conf-a");
    let b = pid("conf-b");

    // Insert and read back exactly, only through the owning partner.
    let mut first = sample_record(&a, CredentialKind::ApiKey, "first");
    first.reference = Some("ref one".into());
    store.insert(&first).await.expect("insert");
    let got = store.get(&a, first.id).await.expect("get").expect("found");
    assert_eq!(got, first, "a record reads back as written");
    assert!(
        store.get(&b, first.id).await.expect("get").is_none(),
        "a record is invisible through another partner"
    );

    // A duplicate id is a conflict and leaves the stored record alone.
    let mut dup = first.clone();
    dup.label = "changed".into();
    assert!(
        matches!(store.insert(&dup).await, Err(Error::Conflict { .. })),
        "a duplicate id is a conflict"
    );
    assert_eq!(
        store.get(&a, first.id).await.unwrap().unwrap().label,
        "first"
    );

    // Listing is per partner, oldest first.
    let mut second = sample_record(&a, CredentialKind::BrokerToken, "second");
    second.created_at = base_time() + Duration::seconds(5);
    second.broker = None;
    second.expires_at = None;
    store.insert(&second).await.expect("insert second");
    let other = sample_record(&b, CredentialKind::TotpSecret, "other");
    store.insert(&other).await.expect("insert other");
    let listed: Vec<_> = store
        .list(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        listed,
        vec![first.id, second.id],
        "list is per partner, oldest first"
    );
    assert_eq!(store.list(&b).await.unwrap().len(), 1);

    // Lookup by reference: partner, kind and active status all count.
    assert_eq!(
        store
            .find_by_reference(&a, CredentialKind::ApiKey, "ref one")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(first.id)
    );
    assert!(
        store
            .find_by_reference(&b, CredentialKind::ApiKey, "ref one")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_by_reference(&a, CredentialKind::BrokerToken, "ref one")
            .await
            .unwrap()
            .is_none()
    );

    // Replace is a compare-and-set on generation and status.
    let mut rotated = first.clone();
    rotated.generation = 1;
    rotated.rotated_at = base_time() + Duration::days(1);
    rotated.sealed = Sealed(vec![9, 9, 9]);
    rotated.kek_id = Some(kek("k2"));
    assert!(
        store.replace(&first, &rotated).await.unwrap(),
        "replace from the current state"
    );
    assert!(
        !store.replace(&first, &rotated).await.unwrap(),
        "replace from a stale generation is refused"
    );
    let mut forged = rotated.clone();
    forged.partner = b.clone();
    assert!(
        !store.replace(&forged, &forged).await.unwrap(),
        "replace through another partner is refused"
    );
    assert_eq!(store.get(&a, first.id).await.unwrap().unwrap(), rotated);

    // Rotation state lands only on the generation it was computed for.
    assert!(
        !store
            .set_rotation_state(&a, first.id, 0, RotationState::Due)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_rotation_state(&b, first.id, 1, RotationState::Due)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_rotation_state(&a, first.id, 1, RotationState::Overdue)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(&a, first.id).await.unwrap().unwrap().rotation,
        RotationState::Overdue
    );

    // Envelope swap is a compare-and-set on the envelope bytes.
    assert!(
        !store
            .swap_envelope(&a, second.id, &[0], &kek("k2"), &[7])
            .await
            .unwrap()
    );
    assert!(
        !store
            .swap_envelope(&b, second.id, &[1, 2, 3, 4], &kek("k2"), &[7])
            .await
            .unwrap()
    );
    assert!(
        store
            .swap_envelope(&a, second.id, &[1, 2, 3, 4], &kek("k2"), &[7, 7])
            .await
            .unwrap()
    );
    let swapped = store.get(&a, second.id).await.unwrap().unwrap();
    assert_eq!(swapped.sealed.as_bytes(), &[7, 7]);
    assert_eq!(swapped.kek_id, Some(kek("k2")));

    // Key references, across partners.
    assert_eq!(
        store.count_for_kek(&kek("k1")).await.unwrap(),
        1,
        "only `other` is on k1"
    );
    assert_eq!(store.count_for_kek(&kek("k2")).await.unwrap(), 2);
    assert_eq!(
        store.partners_with_kek(&kek("k2")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        store.partners_with_kek(&kek("k1")).await.unwrap(),
        vec![b.clone()]
    );

    // Paging through a key's records.
    let mut ids = [first.id, second.id];
    ids.sort();
    let page1 = store.list_for_kek(&a, &kek("k2"), None, 1).await.unwrap();
    assert_eq!(page1.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[0]]);
    let page2 = store
        .list_for_kek(&a, &kek("k2"), Some(ids[0]), 10)
        .await
        .unwrap();
    assert_eq!(page2.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert!(
        store
            .list_for_kek(&b, &kek("k2"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A revoked record holds no envelope and no key reference.
    let mut revoked = swapped.clone();
    revoked.status = CredentialStatus::Revoked;
    revoked.revoked_at = Some(base_time() + Duration::days(2));
    revoked.sealed = Sealed::default();
    revoked.kek_id = None;
    assert!(store.replace(&swapped, &revoked).await.unwrap());
    assert_eq!(store.count_for_kek(&kek("k2")).await.unwrap(), 1);
    assert_eq!(store.get(&a, second.id).await.unwrap().unwrap(), revoked);
    assert!(
        !store.replace(&swapped, &swapped).await.unwrap(),
        "a revoked record can not be replaced from its active state"
    );
}

/// Runs every key-metadata-store check against an empty store.
pub async fn key_meta_store_conformance(store: Arc<dyn KeyMetaStore>) {
    let at = base_time();
    let k1 = store
        .register(&kek("k1"), &[1; 16], at)
        .await
        .expect("register");
    assert_eq!(k1.state, KeyState::Staged);
    assert_eq!(k1.check, Some([1; 16]));
    assert_eq!(k1.wraps, 0);
    assert_eq!(k1.created_at, at);

    assert_eq!(store.reserve_wraps(&kek("k1"), 10, 25).await.unwrap(), 10);
    assert_eq!(store.reserve_wraps(&kek("k1"), 10, 25).await.unwrap(), 10);
    assert_eq!(
        store.reserve_wraps(&kek("k1"), 10, 25).await.unwrap(),
        5,
        "capped at the limit"
    );
    assert_eq!(
        store.reserve_wraps(&kek("k1"), 10, 25).await.unwrap(),
        0,
        "exhausted"
    );
    assert_eq!(
        store.reserve_wraps(&kek("nope"), 10, 25).await.unwrap(),
        0,
        "unknown key"
    );

    let again = store
        .register(&kek("k1"), &[2; 16], at + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(again.wraps, 25, "registering again keeps the count");
    assert_eq!(
        again.check,
        Some([1; 16]),
        "registering again never replaces the check value"
    );
    assert_eq!(again.created_at, at);

    assert!(
        store
            .set_state(&kek("k1"), KeyState::Primary, at)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_state(&kek("nope"), KeyState::Primary, at)
            .await
            .unwrap()
    );
    store.register(&kek("k0"), &[0; 16], at).await.unwrap();
    let all = store.list().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|m| (m.id.as_str().to_owned(), m.state))
            .collect::<Vec<_>>(),
        vec![
            ("k0".to_owned(), KeyState::Staged),
            ("k1".to_owned(), KeyState::Primary)
        ]
    );
    assert_eq!(
        store.get(&kek("k1")).await.unwrap().unwrap().state,
        KeyState::Primary
    );
    assert!(store.get(&kek("nope")).await.unwrap().is_none());

    // The wrapped audit key: created once, then only moved by a
    // compare-and-set on its stored bytes.
    assert_eq!(store.wrapped_audit_key().await.unwrap(), None);
    assert!(
        !store
            .swap_wrapped_audit_key(Some(&[1]), &[2])
            .await
            .unwrap(),
        "nothing stored: an expected value never matches"
    );
    assert_eq!(store.wrapped_audit_key().await.unwrap(), None);
    assert!(store.swap_wrapped_audit_key(None, &[1, 1]).await.unwrap());
    assert!(
        !store.swap_wrapped_audit_key(None, &[9, 9]).await.unwrap(),
        "a second creation loses"
    );
    assert_eq!(store.wrapped_audit_key().await.unwrap(), Some(vec![1, 1]));
    assert!(
        !store
            .swap_wrapped_audit_key(Some(&[1, 2]), &[3, 3])
            .await
            .unwrap(),
        "a stale expected value loses"
    );
    assert!(
        store
            .swap_wrapped_audit_key(Some(&[1, 1]), &[3, 3])
            .await
            .unwrap()
    );
    assert_eq!(store.wrapped_audit_key().await.unwrap(), Some(vec![3, 3]));
}

/// An entry with arbitrary (not chained) hashes; stores do not check them.
pub fn sample_entry(seq: u64, partner: Option<&PartnerId>, at: OffsetDateTime) -> AuditEntry {
    AuditEntry {
        seq,
        at,
        partner: partner.cloned(),
        actor: partner.map(|p| UserId::new(p.as_str()).expect("valid user id")),
        impersonator: seq
            .is_multiple_of(2)
            .then(|| UserId::new("staff").expect("valid user id")),
        channel: Channel::Api,
        action: "credential.reveal".into(),
        target: Some(format!("credential:{seq}")),
        outcome: Outcome::Success,
        detail: seq
            .is_multiple_of(3)
            .then(|| "reason=x, \"quoted\"".to_owned()),
        key_id: kek("k1"),
        prev_hash: ChainHash([u8::try_from(seq % 256).unwrap_or(0); 32]),
        hash: ChainHash([u8::try_from((seq + 1) % 256).unwrap_or(0); 32]),
    }
}

/// Runs every audit-store check against an empty store.
pub async fn audit_store_conformance(store: Arc<dyn AuditStore>) {
    let a = pid("conf-a");
    let b = pid("conf-b");
    assert!(store.head().await.unwrap().is_none());
    assert!(store.anchor().await.unwrap().is_none());

    let t = base_time();
    let entries: Vec<AuditEntry> = (1..=6)
        .map(|seq| {
            let partner = match seq {
                1 | 2 | 4 => Some(&a),
                3 | 5 => Some(&b),
                _ => None,
            };
            sample_entry(
                seq,
                partner,
                t + Duration::hours(i64::try_from(seq).unwrap_or(0)),
            )
        })
        .collect();
    for e in &entries {
        store.append(e).await.expect("append");
    }
    assert!(
        matches!(store.append(&entries[2]).await, Err(Error::Conflict { .. })),
        "a taken sequence number is a conflict"
    );
    assert_eq!(store.head().await.unwrap().as_ref(), Some(&entries[5]));

    // Scans cross partners, in order, and read back exactly.
    assert_eq!(store.scan(0, 100).await.unwrap(), entries);
    assert_eq!(store.scan(2, 2).await.unwrap(), entries[2..4].to_vec());

    // Queries are per partner, with time range, cursor, order and limit.
    let seqs = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let all_a = AuditFilter::default();
    assert_eq!(seqs(store.query(&a, &all_a).await.unwrap()), vec![1, 2, 4]);
    assert_eq!(seqs(store.query(&b, &all_a).await.unwrap()), vec![3, 5]);
    let ranged = AuditFilter {
        from: Some(t + Duration::hours(2)),
        to: Some(t + Duration::hours(4)),
        ..AuditFilter::default()
    };
    assert_eq!(
        seqs(store.query(&a, &ranged).await.unwrap()),
        vec![2],
        "from inclusive, to exclusive"
    );
    let after = AuditFilter {
        cursor: Some(1),
        limit: 1,
        ..AuditFilter::default()
    };
    assert_eq!(seqs(store.query(&a, &after).await.unwrap()), vec![2]);
    let newest = AuditFilter {
        newest_first: true,
        ..AuditFilter::default()
    };
    assert_eq!(seqs(store.query(&a, &newest).await.unwrap()), vec![4, 2, 1]);
    let before = AuditFilter {
        newest_first: true,
        cursor: Some(4),
        limit: 1,
        ..AuditFilter::default()
    };
    assert_eq!(seqs(store.query(&a, &before).await.unwrap()), vec![2]);

    // The purge removes through the anchor and keeps it.
    let anchor = AuditAnchor {
        seq: 3,
        hash: entries[2].hash,
        key_id: kek("k2"),
        at: t + Duration::days(400),
        mac: ChainHash([5; 32]),
    };
    assert_eq!(store.purge_through(&anchor).await.unwrap(), 3);
    assert_eq!(store.anchor().await.unwrap().as_ref(), Some(&anchor));
    assert_eq!(seqs(store.scan(0, 100).await.unwrap()), vec![4, 5, 6]);
    assert!(
        matches!(store.append(&entries[1]).await, Err(Error::Conflict { .. })),
        "nothing can be appended behind the anchor"
    );
}
