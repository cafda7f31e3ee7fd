//! # partner-auth-core
//!
//! The domain of partner-auth, an authentication library for trading
//! applications that serve several partners (tenants): who may sign in, what
//! each role may do inside each partner, how sessions start, renew and end,
//! and how access tokens are signed and checked. This crate knows nothing
//! of HTTP or SQL; `partner-auth-axum` and `partner-auth-sqlx` build on it.
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), partner_auth_core::Error> {
//! use std::sync::Arc;
//! use partner_auth_core::{
//!     AuthMode, Directory, KeyRing, MemorySessionStore, SessionConfig, SessionManager,
//!     SystemClock, TokenConfig, TokenIssuer, TracingEvents,
//! };
//!
//! let clock = Arc::new(SystemClock);
//! let issuer = TokenIssuer::new(KeyRing::generate()?, TokenConfig::default(), clock.clone())?;
//! let directory = Arc::new(Directory::launch()?);
//! let sessions = SessionManager::new(
//!     Arc::new(MemorySessionStore::new()),
//!     Arc::new(issuer),
//!     directory.clone(),
//!     clock,
//!     Arc::new(TracingEvents),
//!     SessionConfig::default(),
//! )?;
//!
//! let nikhil = directory.find_user("nikhil@example.com").expect("seeded");
//! let login = sessions.login(nikhil, AuthMode::Mock, true).await?;
//! let caller = sessions.authenticate(&login.access.token).await?;
//! assert_eq!(caller.partner().as_str(), "nikhil");
//!
//! let renewed = sessions.refresh(&login.refresh).await?;
//! assert_eq!(renewed.session.refresh_generation, 1);
//! # Ok(()) }
//! ```
//!
//! ## Concepts
//!
//! - [`AuthProvider`] turns an external login into an [`ExternalIdentity`];
//!   `MockProvider` (feature `dev-mock`) is the development login;
//!   `google::GoogleProvider` (feature `google`) is Google or any OpenID
//!   Connect provider, and `google::GoogleSignIn` turns its logins into
//!   sessions.
//! - [`Directory`] holds partner profiles and users, loaded from seed data;
//!   [`Role`]s map to [`Entitlement`]s per partner profile.
//! - [`SessionStore`] persists [`Session`]s and refresh-token digests; its
//!   `rotate` is a compare-and-swap so a token can never rotate twice.
//! - [`TokenIssuer`] signs short-lived JWT access tokens with a [`KeyRing`]
//!   (ES256, one algorithm per key, public keys as JWKS).
//! - [`SessionManager`] runs login, refresh with rotation, reuse detection
//!   (revokes the session), the racing-tabs grace window, logout and forced
//!   logout, and raises [`SecurityEvent`]s.
//! - [`Clock`] is injected so tests move time instead of sleeping.
//! - [`vault`] seals credentials (AES-256-GCM envelopes under rotating
//!   key-encryption keys), runs [`CredentialService`] and keeps the
//!   tamper-evident [`vault::AuditLog`]; [`VaultStack`] wires it together.
//!
//! ## Security notes
//!
//! - Refresh tokens are 256 random bits; stores keep only their SHA-256.
//! - Access-token verification pins the algorithm to the key named by `kid`,
//!   requires `typ: at+jwt`, `exp`, `iat`, `nbf`, `iss`, `aud` and `sub`,
//!   allows at most 60 s of clock skew, and never follows `jku`, `jwk`, `x5u`
//!   or `x5c`.
//! - Nothing here logs a token, a key or a provider secret; secret-bearing
//!   types have redacted `Debug` output and are wiped on drop.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `dev-mock` | no | `MockProvider`, refused in [`RunMode::Production`] |
//! | `google` | yes | the `google` module: Google / OpenID Connect sign-in |
//! | `testing` | no | the store conformance suite in `testing`, for backend tests |

pub mod clock;
pub mod error;
pub mod events;
#[cfg(feature = "google")]
pub mod google;
pub mod ids;
pub mod keys;
pub mod manager;
pub mod memory;
pub mod metrics;
pub mod partner;
pub mod provider;
pub mod refresh;
pub mod role;
pub mod session;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod token;
pub mod vault;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, TokenRejection};
pub use events::{EventFanout, EventSink, RecordedEvents, SecurityEvent, TracingEvents};
pub use ids::{CredentialId, PartnerId, SessionId, UserId};
pub use keys::{KeyRing, KeyStatus, SigningKey};
pub use manager::{Issued, Principal, SessionConfig, SessionManager};
pub use memory::MemorySessionStore;
pub use partner::{
    AlertChannel, Directory, Entitlement, PartnerProfile, Persona, RotationPolicy, User,
};
#[cfg(feature = "dev-mock")]
pub use provider::MockProvider;
pub use provider::{AuthMode, AuthProvider, ExternalIdentity, LoginProof, RunMode};
pub use refresh::{RefreshToken, TokenDigest};
pub use role::{Role, RoleGrant};
pub use session::{RefreshRecord, RevokeReason, Session, SessionFilter, SessionStore};
pub use token::{AccessClaims, AccessToken, Actor, TokenConfig, TokenIssuer};
pub use vault::{CredentialService, MemoryVault, Vault, VaultError, VaultStack};
