//! Events the vault raises for alerting: credentials due or overdue for
//! rotation, and provider tokens that could not be stored at login.

use std::sync::Mutex;

use serde::Serialize;

use super::CredentialKind;
use crate::{CredentialId, PartnerId, UserId};

/// Something the vault wants people to know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VaultEvent {
    /// A credential entered its rotation warning window.
    RotationDue {
        /// Owning partner.
        partner: PartnerId,
        /// The credential.
        credential: CredentialId,
        /// Its kind.
        kind: CredentialKind,
        /// Whole days since its last rotation.
        age_days: i64,
    },
    /// A credential is older than its partner's policy allows.
    RotationOverdue {
        /// Owning partner.
        partner: PartnerId,
        /// The credential.
        credential: CredentialId,
        /// Its kind.
        kind: CredentialKind,
        /// Whole days since its last rotation.
        age_days: i64,
    },
    /// Storing a provider refresh token at login failed; it was queued for
    /// another try and the login went on.
    ProviderTokenDeferred {
        /// The user's partner.
        partner: PartnerId,
        /// The user.
        user: UserId,
    },
    /// A queued provider refresh token was stored.
    ProviderTokenStored {
        /// The user's partner.
        partner: PartnerId,
        /// The user.
        user: UserId,
        /// Tries it took, the first included.
        attempts: u32,
    },
    /// A provider refresh token was given up on (queue full or too many
    /// failures); the user will be asked for consent again at next login.
    ProviderTokenDropped {
        /// The user's partner.
        partner: PartnerId,
        /// The user.
        user: UserId,
        /// `queue_full` or `retries_exhausted`.
        reason: &'static str,
    },
}

impl VaultEvent {
    /// Stable name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            VaultEvent::RotationDue { .. } => "credential_rotation_due",
            VaultEvent::RotationOverdue { .. } => "credential_rotation_overdue",
            VaultEvent::ProviderTokenDeferred { .. } => "provider_token_deferred",
            VaultEvent::ProviderTokenStored { .. } => "provider_token_stored",
            VaultEvent::ProviderTokenDropped { .. } => "provider_token_dropped",
        }
    }
}

/// Receives vault events. Must not block.
pub trait VaultEventSink: Send + Sync + 'static {
    /// Handles one event.
    fn emit(&self, event: &VaultEvent);
}

/// Writes every vault event to `tracing` at warn level.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingVaultEvents;

impl VaultEventSink for TracingVaultEvents {
    fn emit(&self, event: &VaultEvent) {
        tracing::warn!(event = event.name(), detail = ?event, "vault event");
    }
}

/// Keeps every vault event in memory; for tests.
#[derive(Default)]
pub struct RecordedVaultEvents {
    events: Mutex<Vec<VaultEvent>>,
}

impl RecordedVaultEvents {
    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<VaultEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl VaultEventSink for RecordedVaultEvents {
    fn emit(&self, event: &VaultEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
