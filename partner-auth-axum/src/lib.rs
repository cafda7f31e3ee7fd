//! # partner-auth-axum
//!
//! HTTP for partner-auth on [axum]: the login, refresh, logout and session
//! routes, the [`Caller`] extractor for authenticated requests, guards on
//! roles and entitlements, the session cookies, and JSON errors with stable
//! codes. The routes are documented in `docs/api.md` of the repository.
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use partner_auth_axum::{AuthState, CookieSettings, app, routes, serve};
//! use partner_auth_core::{
//!     Directory, KeyRing, MemorySessionStore, SessionConfig, SessionManager, SystemClock,
//!     TokenConfig, TokenIssuer, TracingEvents,
//! };
//!
//! let clock = Arc::new(SystemClock);
//! let issuer = TokenIssuer::new(KeyRing::generate()?, TokenConfig::default(), clock.clone())?;
//! let sessions = SessionManager::new(
//!     Arc::new(MemorySessionStore::new()),
//!     Arc::new(issuer),
//!     Arc::new(Directory::launch()?),
//!     clock,
//!     Arc::new(TracingEvents),
//!     SessionConfig::default(),
//! )?;
//! let state = AuthState {
//!     sessions: Arc::new(sessions),
//!     mock: None,
//!     cookies: CookieSettings { secure: false },
//! };
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app([routes::router(state)]), std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Concepts
//!
//! - [`routes::router`] mounts the session routes; other features (the
//!   vault, Google sign-in) bring routers of their own, and [`app`] merges
//!   them under the shared layers: JSON 404/405, a 64 KiB body limit (the
//!   credential routes raise it to
//!   [`body::MAX_CREDENTIAL_BODY_BYTES`]), the audit channel of each
//!   request (`api` with an `Authorization` header, `web` without) and a
//!   tracing span per request.
//! - [`google_routes::router`] mounts `GET /api/login/google` and its
//!   callback over a `partner_auth_core::google::GoogleSignIn`.
//! - [`Caller`] is the authenticated caller. It takes the access token from
//!   `Authorization: Bearer` or the `pa_access` cookie, verifies it, and
//!   checks that the session is still live in the store, so a revoked
//!   session stops working at once on every route that extracts it.
//! - [`ApiError`] turns every failure into `{"error", "message"}` with a
//!   status; the mapping from core errors lives in one place.
//! - [`cookies`] sets the refresh cookie (HttpOnly, SameSite=Lax, Secure over
//!   https, `Max-Age=86400` only with remember-me) and the access cookie.
//!
//! ## Security notes
//!
//! - Request spans record method and path only, never query strings, bodies,
//!   cookies or headers; tokens never reach the log.
//! - Cookie-authenticated requests that change state are refused when
//!   `Sec-Fetch-Site` or `Origin` says they come from another site.
//! - A request body must arrive within [`body::BodyTimeout`] (10 s unless
//!   [`serve::with_body_timeout`] sets another) or gets a JSON 408; a
//!   `Content-Length` above the route's limit is a JSON 413 before any of
//!   the body is read.
//! - Bearer credentials are capped at 8 KiB and checked for shape before any
//!   decoding; two `Authorization` headers are refused.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `dev-mock` | no | builds the core's `MockProvider` for `POST /api/login/mock` |

pub mod body;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod google_routes;
pub mod routes;
pub mod serve;
pub mod state;
pub mod vault_routes;
pub mod views;

pub use cookies::CookieSettings;
pub use error::ApiError;
pub use extract::{Caller, CredentialSource};
pub use serve::{app, serve};
pub use state::AuthState;
