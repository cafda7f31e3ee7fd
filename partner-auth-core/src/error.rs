//! The crate's error type.

/// Boxed source error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in partner-auth-core.
///
/// Messages are fixed text: they never contain a token, a secret or a raw
/// provider response, so an error can be logged or returned as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id did not match its documented syntax.
    #[error("invalid {kind} id")]
    InvalidId {
        /// Which kind of id.
        kind: &'static str,
    },
    /// A role string is none of `super_admin`, `admin`, `trader`, `viewer`.
    #[error("unknown role {value:?}; expected super_admin, admin, trader or viewer")]
    UnknownRole {
        /// The offending text, cut to 32 characters.
        value: String,
    },
    /// The login names nobody in the directory.
    #[error("unknown user")]
    UnknownUser,
    /// The user exists but may not log in (disabled, or no partner).
    #[error("user is not allowed to sign in")]
    UserDisabled,
    /// An access token failed verification.
    #[error("access token rejected: {0}")]
    InvalidToken(TokenRejection),
    /// A refresh token is not known to the store.
    #[error("refresh token not recognised")]
    UnknownRefreshToken,
    /// A refresh token was presented after it had been rotated; the whole
    /// session has been revoked.
    #[error("refresh token reused; the session has been revoked")]
    RefreshTokenReused,
    /// The session has been revoked (logout, forced logout, reuse).
    #[error("session revoked")]
    SessionRevoked,
    /// The session passed its absolute or idle lifetime.
    #[error("session expired")]
    SessionExpired,
    /// No session with that id (or not visible to the caller).
    #[error("session not found")]
    SessionNotFound,
    /// A create collided with an existing record; the existing one is untouched.
    #[error("{what} already exists")]
    Conflict {
        /// What collided.
        what: &'static str,
    },
    /// The caller lacks a role or entitlement.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// What was missing, in words safe to show.
        reason: &'static str,
    },
    /// The mock login provider was asked for in production mode.
    #[error("the mock login provider is refused in production mode")]
    MockInProduction,
    /// A configuration value is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The seed file of partners and users is invalid.
    #[error("seed data: {0}")]
    Seed(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A signing key could not be generated, parsed or used.
    #[error("signing key: {0}")]
    SigningKey(&'static str),
    /// A store backend failed; the source says why.
    #[error("store failure")]
    Store(#[source] BoxError),
    /// A Google (or other OpenID provider) sign-in failed; the inner error says why.
    #[cfg(feature = "google")]
    #[error(transparent)]
    Google(#[from] crate::google::GoogleError),
    /// The credential vault refused or failed an operation.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

/// Why an access token was refused. The text is stable and safe to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Empty, too long, wrong segment count, or not base64url JSON.
    Malformed,
    /// Header `alg` missing, `none`, or not the algorithm pinned to the key.
    Algorithm,
    /// Header `typ` is not `at+jwt`.
    Type,
    /// No `kid`, a `kid` of bad syntax, or one that names no configured key.
    UnknownKey,
    /// Headers we refuse to follow (`jku`, `jwk`, `x5u`, `x5c`, `crit`).
    ForbiddenHeader,
    /// The signature does not verify.
    Signature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// `exp - iat` exceeds the configured maximum lifetime.
    LifetimeTooLong,
    /// `iss` or `aud` is not ours.
    Audience,
    /// A required claim is missing or has the wrong type.
    Claims,
}

impl TokenRejection {
    /// Stable text for logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::Algorithm => "algorithm not allowed",
            TokenRejection::Type => "wrong token type",
            TokenRejection::UnknownKey => "unknown key",
            TokenRejection::ForbiddenHeader => "forbidden header",
            TokenRejection::Signature => "bad signature",
            TokenRejection::Expired => "expired",
            TokenRejection::NotYetValid => "not yet valid",
            TokenRejection::LifetimeTooLong => "lifetime too long",
            TokenRejection::Audience => "wrong issuer or audience",
            TokenRejection::Claims => "missing or invalid claims",
        }
    }
}

impl std::fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Wraps a backend error.
    pub fn store(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store(Box::new(source))
    }
}
