//! The vault's error type.

/// Everything that can go wrong while sealing, opening, rotating or auditing.
///
/// Messages are fixed text: they never carry key material, a secret, or the
/// bytes of an envelope, so an error can be logged or returned as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The envelope begins with a format version this build does not know.
    #[error("unknown envelope format version {0}")]
    UnknownVersion(u8),
    /// The envelope names a key-encryption key that is not loaded.
    #[error("envelope names a key that is not loaded")]
    UnknownKey,
    /// A length or field of the envelope is out of bounds.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// Authentication failed: the envelope was altered, moved to another
    /// record, or sealed under another key.
    #[error("envelope does not open for this record")]
    Open,
    /// A secret is empty or longer than the bound.
    #[error("secret must be 1 to {max} bytes")]
    SecretLength {
        /// The bound, in bytes.
        max: usize,
    },
    /// A key id does not match its syntax.
    #[error("invalid key id; expected 1 to 32 of a-z, 0-9, '-', '_'")]
    InvalidKeyId,
    /// The key configuration is missing or invalid; the text names the
    /// problem, never a key.
    #[error("vault key configuration: {0}")]
    KeyConfig(String),
    /// A key file is readable by others than its owner.
    #[error("key file {0} must be readable by its owner only (mode 0600)")]
    InsecureKeyFile(std::path::PathBuf),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key-encryption key has wrapped as many data keys as it may.
    #[error("key {0} reached its wrap bound; promote a new primary key")]
    KeyExhausted(String),
    /// A key was asked to retire while records still refer to it.
    #[error("key {kek} is still referenced by {references} records")]
    KeyInUse {
        /// The key.
        kek: String,
        /// How many records refer to it.
        references: u64,
    },
    /// The primary key can not be retired.
    #[error("the primary key can not be retired")]
    RetirePrimary,
    /// The key was retired and may not be loaded or used again.
    #[error("key {0} is retired")]
    KeyRetired(String),
    /// A loaded key's bytes do not match the check value stored for its id:
    /// the id was first registered with other bytes.
    #[error(
        "key {0} is not the key first registered under that id (its check value differs); \
         give it its original bytes or a new id"
    )]
    KeyMismatch(String),
    /// A loaded key does not open what is stored under its id (the wrapped
    /// audit key): wrong bytes for that id.
    #[error("key {0} does not open the records stored under it; wrong key bytes for that id")]
    KeyDoesNotOpen(String),
    /// No credential with that id inside the caller's partner.
    #[error("credential not found")]
    NotFound,
    /// The credential was revoked; its secret is gone.
    #[error("credential revoked")]
    Revoked,
    /// The credential is past its rotation deadline and the partner's policy
    /// blocks its use.
    #[error("credential is overdue for rotation and blocked by policy")]
    RotationOverdue,
    /// The credential belongs to another user, and the caller may reveal,
    /// rotate or revoke only its own (touching others' needs `admin` in the
    /// partner or `super_admin`).
    #[error(
        "only the owner or an administrator of the partner may reveal, rotate or revoke this \
         credential"
    )]
    NotOwner,
    /// Another writer changed the record first; the caller may retry.
    #[error("credential changed concurrently")]
    Concurrent,
    /// An audit retention shorter than the minimum was asked for.
    #[error("audit retention must be at least {min} days, got {got}")]
    RetentionTooShort {
        /// The minimum, in days.
        min: u32,
        /// What was asked.
        got: u32,
    },
    /// An input field is out of its documented bounds.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A text field holds a control character or one that reorders or
    /// hides text (bidirectional controls and marks, zero-width and
    /// invisible characters, line and paragraph separators).
    #[error("{0} must not contain control or bidirectional override characters")]
    UnsafeText(&'static str),
    /// An `expires_at` given at create or rotate is not in the future.
    #[error("expires_at must be in the future")]
    ExpiresInPast,
    /// The credential is past its `expires_at`: its secret is no longer
    /// revealed; rotate it with a new secret (and expiry) first.
    #[error("credential expired; rotate it first")]
    Expired,
}
