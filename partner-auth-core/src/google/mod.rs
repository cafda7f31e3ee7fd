//! Google sign-in (or any OpenID Connect provider): the authorization code
//! flow with PKCE S256, `state` and `nonce`, and verified ID tokens.
//!
//! ## The flow
//!
//! 1. [`GoogleSignIn::begin`] stores a [`PendingLogin`] (state, PKCE
//!    verifier, nonce, remember-me, return path) in a [`FlowStore`] under a
//!    random [`FlowId`] and returns the authorization URL. The HTTP layer
//!    puts the flow id in a short-lived HttpOnly cookie.
//! 2. The callback hands the flow id, `state` and `code` to
//!    [`GoogleSignIn::complete`]: the flow is taken (single use), the state
//!    compared in constant time, and only then the code exchanged with the
//!    flow's verifier. The ID token is verified against the provider's keys
//!    ([`JwksCache`]): RS256 only, `iss`, `aud`, `azp`, `exp`/`iat` with
//!    leeway, `nonce`, and the optional hosted-domain allow list.
//! 3. The identity is mapped to a directory user by issuer and subject
//!    ([`IdentityStore`]); a first login may link by verified e-mail.
//! 4. A provider refresh token, when the response carries one, goes to the
//!    [`Vault`](crate::Vault); a response without one never replaces it.
//! 5. The session records [`AuthMode::Google`](crate::AuthMode::Google).
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn run(sessions: std::sync::Arc<partner_auth_core::SessionManager>)
//! # -> Result<(), partner_auth_core::Error> {
//! use std::sync::Arc;
//! use partner_auth_core::MemoryVault;
//! use partner_auth_core::google::{
//!     BeginLogin, GoogleProvider, GoogleSignIn, MemoryIdentityStore, ReturnPath,
//! };
//! use secrecy::SecretString;
//!
//! let provider = GoogleProvider::builder(
//!     "123456789012-abc.apps.googleusercontent.com",
//!     SecretString::from(std::env::var("GOOGLE_CLIENT_SECRET").unwrap_or_default()),
//!     "https://app.example.com/api/login/google/callback",
//! )?
//! .vault(Arc::new(MemoryVault::new()))
//! .discover() // GET https://accounts.google.com/.well-known/openid-configuration
//! .await?;
//! let sign_in = GoogleSignIn::new(
//!     Arc::new(provider),
//!     Arc::new(MemoryIdentityStore::new()),
//!     sessions,
//! );
//!
//! // Start: send the browser to `authorization_url`, keep `flow_id` in a cookie.
//! let started = sign_in
//!     .begin(BeginLogin {
//!         return_to: ReturnPath::parse("/workspace").unwrap_or_default(),
//!         ..BeginLogin::default()
//!     })
//!     .await?;
//! # let (state, code) = (String::new(), SecretString::from(String::new()));
//! // Callback: the flow id from the cookie, `state` and `code` from the query.
//! let signed_in = sign_in.complete(&started.flow_id, &state, &code).await?;
//! assert_eq!(signed_in.issued.session.auth_mode.as_str(), "google");
//! # Ok(()) }
//! ```
//!
//! ## When consent is asked for
//!
//! Google returns a refresh token only when the consent screen was shown.
//! The authorization URL always asks for offline access, and adds
//! `prompt=consent` unless the vault holds a refresh token for the subject
//! this browser signed in with last time ([`BeginLogin::known_subject`],
//! which the HTTP layer keeps in a subject-hint cookie). A browser without
//! the hint (a first login, or cleared cookies) always gets consent. The
//! hint decides nothing but the prompt: identity always comes from the
//! verified ID token.
//!
//! ## Calling the provider later
//!
//! [`GoogleProvider::refresh_provider_access`] sends a refresh grant with the
//! refresh token the vault holds for a user and subject, and returns a fresh
//! provider access token ([`ProviderAccess`]). Google answers without a new
//! refresh token, and the held one stays; only an answer that carries a
//! different one replaces it (a new generation in the vault). A refused
//! token is [`GoogleError::ProviderTokenRejected`] (`provider_token_rejected`):
//! the user revoked the app, and the next login must ask for consent.
//!
//! ## Metrics
//!
//! Sign-in failures, key fetches, provider-token writes and refresh grants
//! are counted through [`crate::metrics`].
//!
//! ## What is never logged
//!
//! Codes, states, nonces, PKCE verifiers, ID tokens, access and refresh
//! tokens, the client secret and token-endpoint bodies never appear in a log
//! line or an error text.

mod check;
mod error;
mod flow;
mod id_token;
mod identity;
mod jwks;
mod provider;
mod signin;

#[cfg(test)]
mod tests;

pub use check::{
    CALLBACK_PATH, Problem, Setting, SettingsToCheck, check_settings, looks_like_google_client_id,
};
pub use error::{GoogleError, IdTokenRejection};
pub use flow::{
    FlowId, FlowStore, MAX_RETURN_PATH_LEN, MEMORY_FLOW_CAPACITY, MemoryFlowStore, PendingLogin,
    RANDOM_TOKEN_LEN, ReturnPath, secrets_equal,
};
pub use id_token::{
    IdTokenRules, IdTokenVerifier, IssuerRule, MAX_ID_TOKEN_LEN, VerifiedIdToken, email_verified,
};
pub use identity::{IdentityStore, LinkPolicy, MemoryIdentityStore, resolve_user};
pub use jwks::{
    FetchedKeys, HttpKeySource, JwksCache, KeySource, UNKNOWN_KID_REFETCH_INTERVAL, parse_jwks,
    parse_max_age,
};
pub use provider::{
    BeginLogin, CompletedLogin, DEFAULT_FLOW_TTL, GoogleProvider, GoogleProviderBuilder,
    LoginStart, ProviderAccess, ProviderMetadata, SCOPES, discover, is_https_or_loopback,
    provider_http_client,
};
pub use signin::{GoogleSignIn, SignedIn, failure_code};

/// Google's issuer, as its discovery document spells it.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// The scheme-less form Google also puts in `iss`.
pub const GOOGLE_ISSUER_BARE: &str = "accounts.google.com";
