//! The credential vault.
//!
//! [`Vault`] is what the login flow needs from it: keeping a provider's
//! refresh token, sealed, and saying whether one is held. [`MemoryVault`]
//! keeps them in process memory, for tests and quick starts.
//!
//! The full vault is built from these parts:
//!
//! - [`envelope`]: AES-256-GCM envelope encryption with a fresh data key per
//!   record, wrapped under a key-encryption key (KEK), bound to its record by
//!   associated data (`docs/vault-format.md` has the byte layout);
//! - [`KeySource`]s ([`EnvKeySource`], [`FileKeySource`], [`DevKeySource`])
//!   and the [`VaultKeyring`] with two-phase rotation, a wrap bound per KEK
//!   and retirement refused while a record refers to the key;
//! - [`RewrapJob`], the resumable, idempotent move of records to a new KEK;
//! - [`CredentialService`] (create, list, reveal, rotate, revoke; every call
//!   audited and scoped to a partner), which also implements [`Vault`];
//! - [`RotationScheduler`] applying each partner's [`crate::RotationPolicy`];
//! - [`AuditLog`], an append-only chain of entries under a keyed hash, with a
//!   verifier, retention and JSON Lines / CSV export;
//! - [`AuditEvents`], an [`crate::EventSink`] that audits logins, refreshes,
//!   logouts and reuse, and [`ResilientVault`], which keeps logins working
//!   when the vault is not writable;
//! - in-memory stores ([`MemoryCredentialStore`], [`MemoryKeyMetaStore`],
//!   [`MemoryAuditStore`]); the SQL stores live in `partner-auth-sqlx`.
//!
//! Nothing here logs or returns a secret, a key or an envelope's bytes.

pub mod audit;
pub mod credential;
pub mod envelope;
mod error;
pub mod keyring;
pub mod keysource;
pub mod memory;
pub mod notify;
pub mod policy;
pub mod resilient;
pub mod rewrap;
pub mod service;
pub mod sink;
pub mod stack;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use audit::{
    AuditAnchor, AuditContext, AuditEntry, AuditEvent, AuditFilter, AuditLog, AuditStore,
    BreakKind, ChainBreak, ChainHash, Channel, ExportFormat, MIN_RETENTION_DAYS, Outcome,
    VerifyReport,
};
pub use credential::{
    CredentialKind, CredentialMeta, CredentialRecord, CredentialStatus, MAX_BROKER_LEN,
    MAX_LABEL_LEN, MAX_REFERENCE_LEN, RotationState, Sealed,
};
pub use error::VaultError;
pub use keyring::{
    AuditKey, KeyMeta, KeyMetaStore, KeyReferences, KeyState, MAX_WRAPS_PER_KEK, VaultKeyring,
};
pub use keysource::{
    DevKeySource, EnvKeySource, FileKeySource, KEY_CHECK_LABEL, KEY_CHECK_LEN, Kek, KekId,
    KeyCheck, KeySource, MAX_KEK_ID_LEN, VAULT_KEY_ENV, parse_key_list,
};
pub use memory::{MemoryAuditStore, MemoryCredentialStore, MemoryKeyMetaStore};
pub use notify::{RecordedVaultEvents, TracingVaultEvents, VaultEvent, VaultEventSink};
pub use policy::{RotationScheduler, ScanReport};
pub use resilient::{ResilientVault, RetryConfig};
pub use rewrap::{RewrapJob, RewrapReport};
pub use service::{CredentialService, NewCredential, RevealScope};
pub use sink::{AuditEvents, request_channel, with_request_channel};
pub use stack::{VaultStack, VaultStores};
pub use store::CredentialStore;

/// `at` in UTC, cut to whole microseconds: the precision every store keeps,
/// so a record or audit entry reads back exactly as it was hashed.
pub fn to_stored_precision(at: time::OffsetDateTime) -> time::OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::{Error, User};

/// Keeps provider refresh tokens (and, through richer implementations,
/// other credentials) sealed.
#[async_trait]
pub trait Vault: Send + Sync + 'static {
    /// Whether a provider refresh token is held for this issuer and subject.
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error>;

    /// Keeps `token` for `user` under this issuer and subject, replacing an
    /// older one for the same subject. Callers never pass an empty token, so
    /// a response without a refresh token never overwrites a held one.
    async fn keep_provider_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error>;

    /// The provider refresh token held for `user` under this issuer and
    /// subject, to send in a refresh grant; `None` when none is held. The
    /// default refuses: a vault that only stores can not hand tokens out.
    async fn provider_refresh_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecretString>, Error> {
        let _ = (user, issuer, subject);
        Err(Error::Config(
            "this vault does not hand out provider refresh tokens".into(),
        ))
    }
}

/// A [`Vault`] in process memory; tokens stay in [`SecretString`]s.
#[derive(Default)]
pub struct MemoryVault {
    tokens: Mutex<HashMap<(String, String), SecretString>>,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token held for an issuer and subject; for tests.
    pub fn provider_token(&self, issuer: &str, subject: &str) -> Option<SecretString> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(issuer.to_owned(), subject.to_owned()))
            .cloned()
    }
}

#[async_trait]
impl Vault for MemoryVault {
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error> {
        Ok(self.provider_token(issuer, subject).is_some())
    }

    async fn keep_provider_token(
        &self,
        _user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((issuer.to_owned(), subject.to_owned()), token);
        Ok(())
    }

    async fn provider_refresh_token(
        &self,
        _user: &User,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecretString>, Error> {
        Ok(self.provider_token(issuer, subject))
    }
}
