//! Credentials as records: what the vault keeps and the metadata around it.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{KekId, VaultError};
use crate::{CredentialId, PartnerId, UserId};

/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 128;
/// Longest broker name, in bytes.
pub const MAX_BROKER_LEN: usize = 64;
/// Longest external reference, in bytes.
pub const MAX_REFERENCE_LEN: usize = 512;

/// What a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A login provider's OAuth refresh token.
    OauthRefreshToken,
    /// A broker API key.
    ApiKey,
    /// A broker session or access token.
    BrokerToken,
    /// A grant of delegated access to another party.
    DelegatedGrant,
    /// A TOTP seed.
    TotpSecret,
}

impl CredentialKind {
    /// Every kind.
    pub const ALL: [CredentialKind; 5] = [
        CredentialKind::OauthRefreshToken,
        CredentialKind::ApiKey,
        CredentialKind::BrokerToken,
        CredentialKind::DelegatedGrant,
        CredentialKind::TotpSecret,
    ];

    /// Canonical spelling; also the bytes bound into the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::OauthRefreshToken => "oauth_refresh_token",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::BrokerToken => "broker_token",
            CredentialKind::DelegatedGrant => "delegated_grant",
            CredentialKind::TotpSecret => "totp_secret",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CredentialKind {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(VaultError::Invalid("credential kind"))
    }
}

/// Whether a credential can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    /// In use.
    Active,
    /// Revoked; the sealed secret has been erased.
    Revoked,
}

impl CredentialStatus {
    /// Canonical spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Active => "active",
            CredentialStatus::Revoked => "revoked",
        }
    }
}

impl std::str::FromStr for CredentialStatus {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        match s {
            "active" => Ok(CredentialStatus::Active),
            "revoked" => Ok(CredentialStatus::Revoked),
            _ => Err(VaultError::Invalid("credential status")),
        }
    }
}

/// Where a credential stands against its partner's rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// Younger than the warning threshold.
    Current,
    /// Inside the warning window: rotate soon.
    Due,
    /// Older than the policy allows.
    Overdue,
}

impl RotationState {
    /// Canonical spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationState::Current => "current",
            RotationState::Due => "due",
            RotationState::Overdue => "overdue",
        }
    }
}

impl std::str::FromStr for RotationState {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        match s {
            "current" => Ok(RotationState::Current),
            "due" => Ok(RotationState::Due),
            "overdue" => Ok(RotationState::Overdue),
            _ => Err(VaultError::Invalid("rotation state")),
        }
    }
}

/// A sealed envelope's bytes. Not secret (it is ciphertext), but `Debug`
/// shows only its length to keep logs short and free of key-dependent data.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sealed(pub Vec<u8>);

impl Sealed {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the envelope was erased (revoked credential).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A credential as stored: metadata plus the sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Random id.
    pub id: CredentialId,
    /// The partner it belongs to; part of every query and of the envelope's
    /// associated data.
    pub partner: PartnerId,
    /// The user who owns it.
    pub owner: UserId,
    /// What it is.
    pub kind: CredentialKind,
    /// Name shown to people.
    pub label: String,
    /// The broker, for broker keys and tokens.
    pub broker: Option<String>,
    /// An external lookup key, for example a provider's issuer and subject.
    pub reference: Option<String>,
    /// Active or revoked.
    pub status: CredentialStatus,
    /// Starts at 0, grows by one on every rotation of the secret.
    pub generation: u32,
    /// Last state the rotation scheduler recorded.
    pub rotation: RotationState,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When the secret was last replaced (the creation time at first).
    pub rotated_at: OffsetDateTime,
    /// When the secret stops working at its issuer, if known.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// The key that wrapped the data key; `None` once revoked.
    pub kek_id: Option<KekId>,
    /// The envelope; empty once revoked.
    pub sealed: Sealed,
}

impl CredentialRecord {
    /// The metadata, without the envelope.
    pub fn meta(&self) -> CredentialMeta {
        CredentialMeta {
            id: self.id,
            partner: self.partner.clone(),
            owner: self.owner.clone(),
            kind: self.kind,
            label: self.label.clone(),
            broker: self.broker.clone(),
            status: self.status,
            generation: self.generation,
            rotation: self.rotation,
            created_at: self.created_at,
            rotated_at: self.rotated_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            kek_id: self.kek_id.clone(),
        }
    }
}

/// What listing shows about a credential: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMeta {
    /// Random id.
    pub id: CredentialId,
    /// Owning partner.
    pub partner: PartnerId,
    /// Owning user.
    pub owner: UserId,
    /// What it is.
    pub kind: CredentialKind,
    /// Name shown to people.
    pub label: String,
    /// The broker, where it applies.
    pub broker: Option<String>,
    /// Active or revoked.
    pub status: CredentialStatus,
    /// Number of rotations so far.
    pub generation: u32,
    /// Standing against the rotation policy.
    pub rotation: RotationState,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last rotation time.
    #[serde(with = "time::serde::rfc3339")]
    pub rotated_at: OffsetDateTime,
    /// Expiry at the issuer, if known.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Revocation time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The key-encryption key currently wrapping it.
    pub kek_id: Option<KekId>,
}

/// Whether `c` reorders or hides text: a bidirectional embedding, override,
/// isolate or mark (U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C),
/// a zero-width or invisible character (U+200B..U+200D, U+2060..U+2064,
/// U+FEFF, U+180E), or a line or paragraph separator (U+2028, U+2029). Any
/// of them makes a label display otherwise than it is stored, so one name
/// could pose as another.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'..='\u{2064}'
            | '\u{061C}'
            | '\u{FEFF}'
            | '\u{180E}'
    )
}

/// Checks a label, broker name or reference against its bounds: not empty,
/// within `max` bytes ([`VaultError::Invalid`]), no control and no bidi
/// override characters ([`VaultError::UnsafeText`]).
pub(crate) fn check_text(value: &str, max: usize, what: &'static str) -> Result<(), VaultError> {
    if value.trim().is_empty() || value.len() > max {
        return Err(VaultError::Invalid(what));
    }
    if value.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(VaultError::UnsafeText(what));
    }
    Ok(())
}
