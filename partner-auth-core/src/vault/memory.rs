//! In-memory credential, key-metadata and audit stores, for tests and quick
//! starts. Same guarantees as the SQL stores; nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    AuditAnchor, AuditEntry, AuditFilter, AuditStore, CredentialKind, CredentialRecord,
    CredentialStatus, CredentialStore, KekId, KeyCheck, KeyMeta, KeyMetaStore, KeyReferences,
    KeyState, RotationState, Sealed,
};
use crate::{CredentialId, Error, PartnerId};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`CredentialStore`] in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryCredentialStore {
    records: Mutex<BTreeMap<CredentialId, CredentialRecord>>,
}

impl MemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyReferences for MemoryCredentialStore {
    async fn count_for_kek(&self, kek: &KekId) -> Result<u64, Error> {
        let n = lock(&self.records)
            .values()
            .filter(|r| r.kek_id.as_ref() == Some(kek))
            .count();
        Ok(n as u64)
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    async fn insert(&self, record: &CredentialRecord) -> Result<(), Error> {
        let mut records = lock(&self.records);
        if records.contains_key(&record.id) {
            return Err(Error::Conflict { what: "credential" });
        }
        records.insert(record.id, record.clone());
        Ok(())
    }

    async fn get(
        &self,
        partner: &PartnerId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, Error> {
        Ok(lock(&self.records)
            .get(&id)
            .filter(|r| &r.partner == partner)
            .cloned())
    }

    async fn list(&self, partner: &PartnerId) -> Result<Vec<CredentialRecord>, Error> {
        let mut out: Vec<_> = lock(&self.records)
            .values()
            .filter(|r| &r.partner == partner)
            .cloned()
            .collect();
        out.sort_by_key(|r| (r.created_at, r.id));
        Ok(out)
    }

    async fn find_by_reference(
        &self,
        partner: &PartnerId,
        kind: CredentialKind,
        reference: &str,
    ) -> Result<Option<CredentialRecord>, Error> {
        Ok(lock(&self.records)
            .values()
            .find(|r| {
                &r.partner == partner
                    && r.kind == kind
                    && r.status == CredentialStatus::Active
                    && r.reference.as_deref() == Some(reference)
            })
            .cloned())
    }

    async fn replace(
        &self,
        before: &CredentialRecord,
        after: &CredentialRecord,
    ) -> Result<bool, Error> {
        if before.id != after.id || before.partner != after.partner {
            return Ok(false);
        }
        let mut records = lock(&self.records);
        match records.get_mut(&before.id) {
            Some(stored)
                if stored.partner == before.partner
                    && stored.generation == before.generation
                    && stored.status == before.status =>
            {
                *stored = after.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_rotation_state(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        generation: u32,
        state: RotationState,
    ) -> Result<bool, Error> {
        let mut records = lock(&self.records);
        match records.get_mut(&id) {
            Some(r) if &r.partner == partner && r.generation == generation => {
                r.rotation = state;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn swap_envelope(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        expected: &[u8],
        kek: &KekId,
        envelope: &[u8],
    ) -> Result<bool, Error> {
        let mut records = lock(&self.records);
        match records.get_mut(&id) {
            Some(r) if &r.partner == partner && r.sealed.as_bytes() == expected => {
                r.sealed = Sealed(envelope.to_vec());
                r.kek_id = Some(kek.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn partners_with_kek(&self, kek: &KekId) -> Result<Vec<PartnerId>, Error> {
        let mut out: Vec<PartnerId> = lock(&self.records)
            .values()
            .filter(|r| r.kek_id.as_ref() == Some(kek))
            .map(|r| r.partner.clone())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn list_for_kek(
        &self,
        partner: &PartnerId,
        kek: &KekId,
        after: Option<CredentialId>,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, Error> {
        Ok(lock(&self.records)
            .values()
            .filter(|r| {
                &r.partner == partner
                    && r.kek_id.as_ref() == Some(kek)
                    && after.is_none_or(|a| r.id > a)
            })
            .take(limit)
            .cloned()
            .collect())
    }
}

/// A [`KeyMetaStore`] in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryKeyMetaStore {
    keys: Mutex<BTreeMap<KekId, KeyMeta>>,
    audit_key: Mutex<Option<Vec<u8>>>,
}

impl MemoryKeyMetaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyMetaStore for MemoryKeyMetaStore {
    async fn register(
        &self,
        id: &KekId,
        check: &KeyCheck,
        at: OffsetDateTime,
    ) -> Result<KeyMeta, Error> {
        let mut keys = lock(&self.keys);
        let meta = keys.entry(id.clone()).or_insert_with(|| KeyMeta {
            id: id.clone(),
            state: KeyState::Staged,
            wraps: 0,
            created_at: at,
            changed_at: at,
            check: Some(*check),
        });
        meta.check.get_or_insert(*check);
        Ok(meta.clone())
    }

    async fn get(&self, id: &KekId) -> Result<Option<KeyMeta>, Error> {
        Ok(lock(&self.keys).get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<KeyMeta>, Error> {
        Ok(lock(&self.keys).values().cloned().collect())
    }

    async fn set_state(
        &self,
        id: &KekId,
        state: KeyState,
        at: OffsetDateTime,
    ) -> Result<bool, Error> {
        match lock(&self.keys).get_mut(id) {
            Some(meta) => {
                if meta.state != state {
                    meta.state = state;
                    meta.changed_at = at;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn reserve_wraps(&self, id: &KekId, n: u64, limit: u64) -> Result<u64, Error> {
        let mut keys = lock(&self.keys);
        let Some(meta) = keys.get_mut(id) else {
            return Ok(0);
        };
        let granted = n.min(limit.saturating_sub(meta.wraps));
        meta.wraps += granted;
        Ok(granted)
    }

    async fn wrapped_audit_key(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(lock(&self.audit_key).clone())
    }

    async fn swap_wrapped_audit_key(
        &self,
        expected: Option<&[u8]>,
        wrapped: &[u8],
    ) -> Result<bool, Error> {
        let mut stored = lock(&self.audit_key);
        if stored.as_deref() != expected {
            return Ok(false);
        }
        *stored = Some(wrapped.to_vec());
        Ok(true)
    }
}

#[derive(Default)]
struct AuditInner {
    entries: BTreeMap<u64, AuditEntry>,
    anchor: Option<AuditAnchor>,
}

/// An [`AuditStore`] in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryAuditStore {
    inner: Mutex<AuditInner>,
}

impl MemoryAuditStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditStore for MemoryAuditStore {
    async fn head(&self) -> Result<Option<AuditEntry>, Error> {
        Ok(lock(&self.inner).entries.values().next_back().cloned())
    }

    async fn append(&self, entry: &AuditEntry) -> Result<(), Error> {
        let mut inner = lock(&self.inner);
        let behind_anchor = inner.anchor.as_ref().is_some_and(|a| entry.seq <= a.seq);
        if inner.entries.contains_key(&entry.seq) || behind_anchor {
            return Err(Error::Conflict {
                what: "audit sequence",
            });
        }
        inner.entries.insert(entry.seq, entry.clone());
        Ok(())
    }

    async fn scan(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        Ok(lock(&self.inner)
            .entries
            .range(after_seq.saturating_add(1)..)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn query(
        &self,
        partner: &PartnerId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, Error> {
        let inner = lock(&self.inner);
        let matches = |e: &&AuditEntry| {
            e.partner.as_ref() == Some(partner)
                && filter.from.is_none_or(|f| e.at >= f)
                && filter.to.is_none_or(|t| e.at < t)
                && filter.cursor.is_none_or(|c| {
                    if filter.newest_first {
                        e.seq < c
                    } else {
                        e.seq > c
                    }
                })
        };
        let out = if filter.newest_first {
            inner
                .entries
                .values()
                .rev()
                .filter(matches)
                .take(filter.limit)
                .cloned()
                .collect()
        } else {
            inner
                .entries
                .values()
                .filter(matches)
                .take(filter.limit)
                .cloned()
                .collect()
        };
        Ok(out)
    }

    async fn anchor(&self) -> Result<Option<AuditAnchor>, Error> {
        Ok(lock(&self.inner).anchor.clone())
    }

    async fn purge_through(&self, anchor: &AuditAnchor) -> Result<u64, Error> {
        let mut inner = lock(&self.inner);
        let before = inner.entries.len();
        inner.entries.retain(|seq, _| *seq > anchor.seq);
        inner.anchor = Some(anchor.clone());
        Ok((before - inner.entries.len()) as u64)
    }
}
