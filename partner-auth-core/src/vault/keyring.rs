//! The vault's key ring: which KEKs are loaded, which one seals, how many
//! data keys each has wrapped, and the two-phase rotation.
//!
//! ## Rotation
//!
//! 1. Stage: the new key is loaded everywhere as an opening-only key
//!    ([`VaultKeyring::stage`], or listed after the primary in the key list).
//! 2. Promote: it becomes the primary and seals from now on
//!    ([`VaultKeyring::promote`], or moved to the front of the key list).
//!    The rewrap job then moves every record to it.
//! 3. Retire: the old key is retired once no record refers to it
//!    ([`VaultKeyring::retire`] refuses otherwise); it may then be removed
//!    from the key list.
//!
//! ## Wrap bound
//!
//! Random 96-bit nonces keep AES-GCM safe for at most 2^32 messages per key.
//! Each data key seals one payload (a rotation draws a new data key), so the
//! bound falls on the KEK, which wraps one data key per seal or rewrap. The
//! ring counts wraps per KEK in the key-metadata store, reserving them in
//! blocks so that the count only ever overstates use (a crash loses the
//! unused part of a block), and refuses to wrap past [`MAX_WRAPS_PER_KEK`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{Kek, KekId, KeyCheck, VaultError, envelope};
use crate::{Clock, Error};

/// NIST SP 800-38D's bound for random nonces: wraps allowed per KEK.
pub const MAX_WRAPS_PER_KEK: u64 = 1 << 32;

/// How many wraps the ring reserves from the store at once.
pub const WRAP_BLOCK: u64 = 1024;

/// The life-cycle state of a KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Loaded for opening only.
    Staged,
    /// Seals new records.
    Primary,
    /// Was primary; opens records not yet rewrapped.
    Previous,
    /// Retired: never loaded or used again.
    Retired,
}

impl KeyState {
    /// Canonical spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Staged => "staged",
            KeyState::Primary => "primary",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
        }
    }
}

impl std::str::FromStr for KeyState {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        match s {
            "staged" => Ok(KeyState::Staged),
            "primary" => Ok(KeyState::Primary),
            "previous" => Ok(KeyState::Previous),
            "retired" => Ok(KeyState::Retired),
            _ => Err(VaultError::Invalid("key state")),
        }
    }
}

/// What the store knows about a KEK: never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The key's id.
    pub id: KekId,
    /// Its state.
    pub state: KeyState,
    /// Wraps reserved so far (an upper bound on wraps done).
    pub wraps: u64,
    /// When the store first saw it.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its state last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// The key's check value ([`Kek::check_value`]), set when the key is
    /// first registered; `None` only for a key registered before check
    /// values existed, until it is next loaded.
    pub check: Option<KeyCheck>,
}

/// Persists [`KeyMeta`].
#[async_trait]
pub trait KeyMetaStore: Send + Sync + 'static {
    /// Records a key if it is new (state `staged`, 0 wraps, check value
    /// `check`), sets `check` on a known key that has none, and returns
    /// what is stored. A stored check value is never changed: the caller
    /// compares it with its own.
    async fn register(
        &self,
        id: &KekId,
        check: &KeyCheck,
        at: OffsetDateTime,
    ) -> Result<KeyMeta, Error>;

    /// One key.
    async fn get(&self, id: &KekId) -> Result<Option<KeyMeta>, Error>;

    /// Every key, by id.
    async fn list(&self) -> Result<Vec<KeyMeta>, Error>;

    /// Sets a key's state. Returns false if the key is unknown.
    async fn set_state(
        &self,
        id: &KekId,
        state: KeyState,
        at: OffsetDateTime,
    ) -> Result<bool, Error>;

    /// Atomically reserves up to `n` wraps without passing `limit`, and
    /// returns how many were granted (0 once the key is exhausted).
    async fn reserve_wraps(&self, id: &KekId, n: u64, limit: u64) -> Result<u64, Error>;

    /// The audit-chain key, wrapped under a KEK.
    async fn wrapped_audit_key(&self) -> Result<Option<Vec<u8>>, Error>;

    /// Stores the wrapped audit key if the stored value still equals
    /// `expected` (`None`: only if none is stored); returns whether it did.
    async fn swap_wrapped_audit_key(
        &self,
        expected: Option<&[u8]>,
        wrapped: &[u8],
    ) -> Result<bool, Error>;
}

/// Counts records that refer to a KEK; retirement asks every such store.
#[async_trait]
pub trait KeyReferences: Send + Sync {
    /// How many records name `kek`.
    async fn count_for_kek(&self, kek: &KekId) -> Result<u64, Error>;
}

struct Ring {
    keys: BTreeMap<KekId, Arc<Kek>>,
    primary: KekId,
    // Wraps still available from the last reservation, per key.
    leased: BTreeMap<KekId, u64>,
}

/// The loaded KEKs and the primary among them.
pub struct VaultKeyring {
    ring: RwLock<Ring>,
    meta: Arc<dyn KeyMetaStore>,
    clock: Arc<dyn Clock>,
    wrap_limit: u64,
    lease_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for VaultKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.read();
        f.debug_struct("VaultKeyring")
            .field("primary", &ring.primary)
            .field("keys", &ring.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl VaultKeyring {
    /// Loads `keys` (the first is the primary), registers them in `meta`,
    /// and records the primary. A key the store marks retired is refused as
    /// primary and skipped otherwise.
    ///
    /// Every check comes before the first write: a key whose bytes do not
    /// match the check value stored for its id
    /// ([`VaultError::KeyMismatch`]), or that does not open the wrapped
    /// audit key stored under its id ([`VaultError::KeyDoesNotOpen`]), is
    /// refused and leaves the store as it was.
    pub async fn open(
        keys: Vec<Kek>,
        meta: Arc<dyn KeyMetaStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        Self::with_wrap_limit(keys, meta, clock, MAX_WRAPS_PER_KEK).await
    }

    /// [`VaultKeyring::open`] with a lower wrap bound; tests use it to reach
    /// the bound quickly.
    pub async fn with_wrap_limit(
        keys: Vec<Kek>,
        meta: Arc<dyn KeyMetaStore>,
        clock: Arc<dyn Clock>,
        wrap_limit: u64,
    ) -> Result<Self, Error> {
        let ring = Self::checked(keys, meta, clock, wrap_limit).await?;
        let now = super::to_stored_precision(ring.clock.now());
        let loaded: Vec<Arc<Kek>> = ring.read().keys.values().cloned().collect();
        for kek in loaded {
            let check = kek.check_value();
            let stored = ring.meta.register(kek.id(), &check, now).await?;
            // Another process may have registered the id in between.
            if stored.check != Some(check) {
                return Err(VaultError::KeyMismatch(kek.id().to_string()).into());
            }
        }
        let primary = ring.primary_id();
        ring.record_primary(&primary).await?;
        Ok(ring)
    }

    /// The ring `keys` would make, checked exactly as [`VaultKeyring::open`]
    /// checks them, without writing anything: no key is registered, no
    /// check value filled in, no primary recorded. For read-only tools
    /// (`vault status`); sealing through it is not meant to happen.
    pub async fn inspect(
        keys: Vec<Kek>,
        meta: Arc<dyn KeyMetaStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        Self::checked(keys, meta, clock, MAX_WRAPS_PER_KEK).await
    }

    async fn checked(
        keys: Vec<Kek>,
        meta: Arc<dyn KeyMetaStore>,
        clock: Arc<dyn Clock>,
        wrap_limit: u64,
    ) -> Result<Self, Error> {
        let mut loaded = BTreeMap::new();
        let mut primary = None;
        for kek in keys {
            let first = primary.is_none();
            if let Some(stored) = meta.get(kek.id()).await? {
                if stored.check.is_some_and(|c| c != kek.check_value()) {
                    return Err(VaultError::KeyMismatch(kek.id().to_string()).into());
                }
                if stored.state == KeyState::Retired {
                    if first {
                        return Err(VaultError::KeyRetired(kek.id().to_string()).into());
                    }
                    tracing::warn!(kek = %kek.id(), "retired vault key still configured; ignored");
                    continue;
                }
            }
            if first {
                primary = Some(kek.id().clone());
            }
            loaded.insert(kek.id().clone(), Arc::new(kek));
        }
        let primary =
            primary.ok_or_else(|| Error::from(VaultError::KeyConfig("no key given".into())))?;

        // The wrapped audit key is a stored record every vault has: the key
        // it names must be loaded and must open it. This catches wrong bytes
        // for an id registered before check values existed.
        if let Some(wrapped) = meta.wrapped_audit_key().await? {
            let kek_id = envelope::system_key_kek(&wrapped)?;
            let kek = loaded.get(&kek_id).ok_or(VaultError::UnknownKey)?;
            envelope::unwrap_system_key(kek, AUDIT_KEY_NAME, &wrapped)
                .map_err(|_| VaultError::KeyDoesNotOpen(kek_id.to_string()))?;
        }

        Ok(Self {
            ring: RwLock::new(Ring {
                keys: loaded,
                primary,
                leased: BTreeMap::new(),
            }),
            meta,
            clock,
            wrap_limit,
            lease_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(|e| e.into_inner())
    }

    async fn record_primary(&self, primary: &KekId) -> Result<(), Error> {
        let now = super::to_stored_precision(self.clock.now());
        for meta in self.meta.list().await? {
            if meta.state == KeyState::Primary && &meta.id != primary {
                self.meta
                    .set_state(&meta.id, KeyState::Previous, now)
                    .await?;
            }
        }
        self.meta.set_state(primary, KeyState::Primary, now).await?;
        Ok(())
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> KekId {
        self.read().primary.clone()
    }

    /// The ids of every loaded key.
    pub fn key_ids(&self) -> Vec<KekId> {
        self.read().keys.keys().cloned().collect()
    }

    /// The loaded key with this id, if any. Opening uses exactly the key an
    /// envelope names and never tries another.
    pub fn key(&self, id: &KekId) -> Option<Arc<Kek>> {
        self.read().keys.get(id).cloned()
    }

    /// The key-metadata store.
    pub fn meta(&self) -> &Arc<dyn KeyMetaStore> {
        &self.meta
    }

    /// Phase one of a rotation: loads `kek` for opening only.
    pub async fn stage(&self, kek: Kek) -> Result<(), Error> {
        let check = kek.check_value();
        if let Some(known) = self.meta.get(kek.id()).await?
            && known.check.is_some_and(|c| c != check)
        {
            return Err(VaultError::KeyMismatch(kek.id().to_string()).into());
        }
        let stored = self
            .meta
            .register(
                kek.id(),
                &check,
                super::to_stored_precision(self.clock.now()),
            )
            .await?;
        if stored.check != Some(check) {
            return Err(VaultError::KeyMismatch(kek.id().to_string()).into());
        }
        if stored.state == KeyState::Retired {
            return Err(VaultError::KeyRetired(kek.id().to_string()).into());
        }
        tracing::info!(kek = %kek.id(), "vault key staged");
        self.write().keys.insert(kek.id().clone(), Arc::new(kek));
        Ok(())
    }

    /// Phase two: makes a loaded key the primary. Call it only once every
    /// instance has the key staged.
    pub async fn promote(&self, id: &KekId) -> Result<(), Error> {
        if self.key(id).is_none() {
            return Err(VaultError::UnknownKey.into());
        }
        self.record_primary(id).await?;
        self.write().primary = id.clone();
        tracing::info!(kek = %id, "vault key promoted to primary");
        Ok(())
    }

    /// Retires a key: refused for the primary and for a key that any of
    /// `references` still counts. Unloads it on success.
    pub async fn retire(&self, id: &KekId, references: &[&dyn KeyReferences]) -> Result<(), Error> {
        self.check_retire(id, references).await?;
        if !self
            .meta
            .set_state(
                id,
                KeyState::Retired,
                super::to_stored_precision(self.clock.now()),
            )
            .await?
        {
            return Err(VaultError::UnknownKey.into());
        }
        self.write().keys.remove(id);
        tracing::info!(kek = %id, "vault key retired");
        Ok(())
    }

    /// Whether `id` may be retired, with nothing written: refused
    /// ([`VaultError::RetirePrimary`]) for the primary, whether this ring's or
    /// the one recorded in the key metadata; ([`VaultError::UnknownKey`]) for
    /// a key never registered; ([`VaultError::KeyInUse`]) while the wrapped
    /// audit key or any record in `references` names it.
    pub async fn check_retire(
        &self,
        id: &KekId,
        references: &[&dyn KeyReferences],
    ) -> Result<(), Error> {
        let Some(meta) = self.meta.get(id).await? else {
            return Err(VaultError::UnknownKey.into());
        };
        if &self.primary_id() == id || meta.state == KeyState::Primary {
            return Err(VaultError::RetirePrimary.into());
        }
        let mut total = 0;
        if let Some(wrapped) = self.meta.wrapped_audit_key().await?
            && &envelope::system_key_kek(&wrapped)? == id
        {
            total += 1;
        }
        for store in references {
            total += store.count_for_kek(id).await?;
        }
        if total > 0 {
            return Err(VaultError::KeyInUse {
                kek: id.to_string(),
                references: total,
            }
            .into());
        }
        Ok(())
    }

    /// The primary key with one wrap counted against its bound.
    pub async fn wrapping_key(&self) -> Result<Arc<Kek>, Error> {
        let _guard = self.lease_lock.lock().await;
        let (id, key) = {
            let ring = self.read();
            let id = ring.primary.clone();
            let key = ring.keys.get(&id).cloned();
            (id, key)
        };
        let key = key.ok_or_else(|| Error::from(VaultError::UnknownKey))?;

        let left = self.read().leased.get(&id).copied().unwrap_or(0);
        let left = if left == 0 {
            let granted = self
                .meta
                .reserve_wraps(&id, WRAP_BLOCK, self.wrap_limit)
                .await?;
            if granted == 0 {
                tracing::error!(kek = %id, "vault key reached its wrap bound");
                return Err(VaultError::KeyExhausted(id.to_string()).into());
            }
            granted
        } else {
            left
        };
        self.write().leased.insert(id, left - 1);
        Ok(key)
    }

    /// The audit-chain key: created on first use, kept wrapped under the
    /// primary KEK in the key-metadata store, moved by [`Self::rewrap_audit_key`].
    pub async fn audit_key(&self) -> Result<AuditKey, Error> {
        for _ in 0..3 {
            if let Some(wrapped) = self.meta.wrapped_audit_key().await? {
                let kek_id = envelope::system_key_kek(&wrapped)?;
                let kek = self.key(&kek_id).ok_or(VaultError::UnknownKey)?;
                let key = envelope::unwrap_system_key(&kek, AUDIT_KEY_NAME, &wrapped)?;
                return Ok(AuditKey::new(key));
            }
            let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, fresh.as_mut());
            let kek = self.wrapping_key().await?;
            let wrapped = envelope::wrap_system_key(&kek, AUDIT_KEY_NAME, &fresh)?;
            if self.meta.swap_wrapped_audit_key(None, &wrapped).await? {
                tracing::info!("audit-chain key created");
                return Ok(AuditKey::new(fresh));
            }
        }
        Err(VaultError::Concurrent.into())
    }

    /// Moves the wrapped audit key to the primary KEK if it names another;
    /// returns whether it moved.
    pub async fn rewrap_audit_key(&self) -> Result<bool, Error> {
        let Some(wrapped) = self.meta.wrapped_audit_key().await? else {
            return Ok(false);
        };
        let kek_id = envelope::system_key_kek(&wrapped)?;
        if kek_id == self.primary_id() {
            return Ok(false);
        }
        let old = self.key(&kek_id).ok_or(VaultError::UnknownKey)?;
        let key = envelope::unwrap_system_key(&old, AUDIT_KEY_NAME, &wrapped)?;
        let new = self.wrapping_key().await?;
        let moved = envelope::wrap_system_key(&new, AUDIT_KEY_NAME, &key)?;
        self.meta
            .swap_wrapped_audit_key(Some(&wrapped), &moved)
            .await
    }
}

/// The name bound into the wrapped audit key's associated data.
pub const AUDIT_KEY_NAME: &str = "audit-chain";

/// The id recorded in audit entries for the current audit key.
pub const AUDIT_KEY_ID: &str = "audit-1";

/// The key of the audit log's keyed hash. Wiped on drop.
pub struct AuditKey {
    id: KekId,
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl AuditKey {
    /// Wraps 32 key bytes under the id [`AUDIT_KEY_ID`].
    pub fn new(key: zeroize::Zeroizing<[u8; 32]>) -> Self {
        Self {
            id: KekId::new(AUDIT_KEY_ID).unwrap_or_else(|_| unreachable!("valid constant id")),
            key,
        }
    }

    /// The key's id, recorded in every entry it hashes.
    pub fn id(&self) -> &KekId {
        &self.id
    }

    /// A fresh HMAC-SHA256 instance under this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC accepts keys of any length")
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}
