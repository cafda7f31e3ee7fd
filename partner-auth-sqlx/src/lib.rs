//! # partner-auth-sqlx
//!
//! SQL storage for partner-auth. SQLite, a single file in write-ahead-log
//! mode, is the embedded default; it needs no server and suits one process.
//!
//! ## Quick start
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use partner_auth_core::{
//!     AuthMode, Directory, KeyRing, SessionConfig, SessionManager, SystemClock, TokenConfig,
//!     TokenIssuer, TracingEvents,
//! };
//! use partner_auth_sqlx::{SqliteDatabase, SqliteSessionStore};
//!
//! // Creates the file (owner-only) if needed and applies the embedded migrations.
//! let db = SqliteDatabase::open(Path::new("data/partner-auth.sqlite3")).await?;
//! let store = Arc::new(SqliteSessionStore::new(&db));
//!
//! let clock = Arc::new(SystemClock);
//! let issuer = TokenIssuer::new(KeyRing::generate()?, TokenConfig::default(), clock.clone())?;
//! let directory = Arc::new(Directory::launch()?);
//! let sessions = SessionManager::new(
//!     store,
//!     Arc::new(issuer),
//!     directory.clone(),
//!     clock,
//!     Arc::new(TracingEvents),
//!     SessionConfig::default(),
//! )?;
//!
//! let raja = directory.find_user("raja").expect("seeded");
//! let login = sessions.login(raja, AuthMode::Mock, false).await?;
//! let renewed = sessions.refresh(&login.refresh).await?;
//! assert_eq!(renewed.session.refresh_generation, 1);
//! # Ok(()) }
//! ```
//!
//! ## The database
//!
//! [`SqliteDatabase::open`] sets, on every connection: `journal_mode = WAL`
//! (checked; opening fails where WAL is unavailable), `foreign_keys = ON`,
//! `synchronous = NORMAL` and a 5 s busy timeout. The migrations under
//! `migrations/sqlite/` are compiled into the crate and applied at open, in
//! file-name order; a database already migrated further by a newer version
//! is refused rather than guessed at.
//!
//! ## What is stored
//!
//! - `sessions`: one row per login: user, partner, role grants (a JSON array
//!   with the canonical role spellings `super_admin`, `admin`, `trader`,
//!   `viewer`), `auth_mode` (`google` or `mock`), remember-me, the refresh
//!   generation, creation, last use, rotation, absolute end, revocation time
//!   and reason, and the impersonating staff member if any. Enumerated
//!   columns are checked by `CHECK` constraints.
//! - `refresh_tokens`: one row per refresh token issued for a stored
//!   session: its SHA-256 digest (32-byte primary key), session, generation,
//!   issue time and the time it was exchanged. Rows go with their session
//!   when [`SessionStore::purge_expired`](partner_auth_core::SessionStore::purge_expired)
//!   removes it.
//!
//! - `identities`: provider identities (issuer and subject) linked to
//!   directory users, with the user's partner and the link time; unique per
//!   subject and per user and issuer ([`SqliteIdentityStore`]).
//!
//! - `vault_credentials`, `vault_keys`, `vault_system_keys`, `audit_log`,
//!   `audit_anchor`: the credential vault ([`vault_stack`]). Credentials
//!   hold only AES-256-GCM envelopes; key rows hold states and wrap counts,
//!   never key bytes; `audit_log` is append-only by trigger and chained by a
//!   keyed hash.
//!
//! Times are whole microseconds since the Unix epoch, UTC, in `INTEGER`
//! columns, so SQL comparisons and ordering are exact.
//!
//! ## Rotation
//!
//! [`SqliteSessionStore`]'s `rotate` runs in a `BEGIN IMMEDIATE` transaction
//! whose first statement is the compare-and-swap
//! `UPDATE sessions ... WHERE id = ? AND refresh_generation = ? AND revoked_at IS NULL`.
//! If it touches no row, the transaction rolls back and `rotate` returns
//! `false`; otherwise the presented token is marked used and its successor
//! inserted before the commit. Concurrent rotations from one generation,
//! from any number of connections or processes on the same file, therefore
//! succeed exactly once.
//!
//! ## Security notes
//!
//! - Refresh tokens are never stored, only their SHA-256; a copy of the
//!   database file (and of its `-wal` file) holds no token that could be
//!   presented. Access tokens are not stored at all.
//! - A new file is created with mode `0600` on Unix; SQLite gives the `-wal`
//!   and `-shm` files the same mode.
//! - Errors carry fixed text and the driver's error as their source; no
//!   message contains a digest, a token or a row.
//! - SQLite has no row-level security: every tenant-scoped query takes a
//!   typed [`PartnerId`](partner_auth_core::PartnerId).
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `sqlite` | yes | [`SqliteDatabase`] and the SQLite stores |
//! | `postgres` | no | reserved for the Postgres stores |

mod error;

#[cfg(feature = "sqlite")]
mod audit;
#[cfg(feature = "sqlite")]
mod credentials;
#[cfg(feature = "sqlite")]
mod db;
#[cfg(feature = "sqlite")]
mod identities;
#[cfg(feature = "sqlite")]
mod sessions;

pub use error::StoreError;

#[cfg(feature = "sqlite")]
pub use audit::SqliteAuditStore;
#[cfg(feature = "sqlite")]
pub use credentials::{SqliteCredentialStore, SqliteKeyMetaStore, vault_stack, vault_stores};
#[cfg(feature = "sqlite")]
pub use db::{SQLITE_MIGRATIONS, SqliteDatabase};
#[cfg(feature = "sqlite")]
pub use identities::SqliteIdentityStore;
#[cfg(feature = "sqlite")]
pub use sessions::SqliteSessionStore;
