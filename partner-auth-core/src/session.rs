//! Sessions, refresh-token records and the [`SessionStore`] trait.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::refresh::TokenDigest;
use crate::{AuthMode, Error, PartnerId, RoleGrant, SessionId, UserId};

/// A login session, as stored. Holds no secret: refresh tokens are kept
/// only as digests, in [`RefreshRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Fresh random id for every completed login.
    pub id: SessionId,
    /// Who signed in.
    pub user_id: UserId,
    /// The partner the session acts within.
    pub partner_id: PartnerId,
    /// Role grants captured at login.
    pub roles: Vec<RoleGrant>,
    /// Which provider authenticated the user.
    pub auth_mode: AuthMode,
    /// Whether the user asked to be remembered (24 h absolute lifetime).
    pub remember_me: bool,
    /// When the login completed.
    pub created_at: OffsetDateTime,
    /// Last successful refresh (or the login); drives the idle timeout.
    pub last_seen_at: OffsetDateTime,
    /// Absolute end of the session, whatever happens.
    pub expires_at: OffsetDateTime,
    /// Generation of the refresh tokens that are current (starts at 0).
    pub refresh_generation: u32,
    /// When the session moved to the current generation.
    pub rotated_at: OffsetDateTime,
    /// Set once the session is revoked; never cleared.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<RevokeReason>,
    /// The staff member acting as the user, when impersonating.
    pub impersonator: Option<UserId>,
}

impl Session {
    /// Whether the session can still be used at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// The user signed out this session from another one.
    SignedOutElsewhere,
    /// An administrator revoked it.
    Forced,
    /// A rotated refresh token was presented again.
    RefreshReuse,
    /// The idle timeout passed.
    Idle,
    /// The browser holding it signed in again, so the earlier session (and
    /// any id planted in that browser before the login) is worthless.
    Replaced,
}

impl RevokeReason {
    /// Canonical spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::SignedOutElsewhere => "signed_out_elsewhere",
            RevokeReason::Forced => "forced",
            RevokeReason::RefreshReuse => "refresh_reuse",
            RevokeReason::Idle => "idle",
            RevokeReason::Replaced => "replaced",
        }
    }
}

impl std::str::FromStr for RevokeReason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        [
            RevokeReason::Logout,
            RevokeReason::SignedOutElsewhere,
            RevokeReason::Forced,
            RevokeReason::RefreshReuse,
            RevokeReason::Idle,
            RevokeReason::Replaced,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| Error::store(UnknownValue("revoke reason")))
    }
}

/// A stored value that the code does not know; the database was changed
/// behind the library's back or by a newer version.
#[derive(Debug, thiserror::Error)]
#[error("unknown {0} in store")]
pub struct UnknownValue(pub &'static str);

/// One issued refresh token, known only by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// The session generation it was issued for.
    pub generation: u32,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// When it was exchanged for a successor, if it was.
    pub used_at: Option<OffsetDateTime>,
}

/// Which sessions a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this partner's sessions.
    pub partner: Option<PartnerId>,
    /// Only this user's sessions.
    pub user: Option<UserId>,
    /// Leave out revoked sessions and those past their absolute lifetime at this time.
    pub active_at: Option<OffsetDateTime>,
}

/// Persistent session state.
///
/// Every backend must pass the conformance suite in
/// [`crate::testing::session_store_conformance`] (behind the `testing` items).
/// The one operation that must be atomic is [`SessionStore::rotate`].
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session and its first refresh token. An existing id (or
    /// digest) is a [`Error::Conflict`] and leaves the stored row untouched.
    async fn create(&self, session: &Session, first: &RefreshRecord) -> Result<(), Error>;

    /// A session by id.
    async fn get(&self, id: SessionId) -> Result<Option<Session>, Error>;

    /// A refresh-token record by digest.
    async fn find_refresh(&self, digest: &TokenDigest) -> Result<Option<RefreshRecord>, Error>;

    /// Compare-and-swap rotation: only if the session is not revoked and its
    /// generation is still `from_generation`, move it to `next.generation`
    /// (which must be `from_generation + 1`), set `rotated_at` and
    /// `last_seen_at` to `now`, mark `presented` used, and store `next`.
    /// Returns `false`, changing nothing, when the condition does not hold.
    async fn rotate(
        &self,
        from_generation: u32,
        presented: &TokenDigest,
        next: &RefreshRecord,
        now: OffsetDateTime,
    ) -> Result<bool, Error>;

    /// Stores an extra token for the session's current generation (the grace
    /// path for racing tabs), only if the session is not revoked and its
    /// generation is still `next.generation`. Returns whether it was stored.
    async fn add_sibling(&self, next: &RefreshRecord, now: OffsetDateTime) -> Result<bool, Error>;

    /// Marks a session revoked. Returns `false` if it was already revoked or
    /// does not exist; the first reason wins.
    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, Error>;

    /// Revokes every live session of a user; returns how many.
    async fn revoke_user(
        &self,
        user: &UserId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, Error>;

    /// Sessions matching `filter`, newest first.
    async fn list(&self, filter: &SessionFilter) -> Result<Vec<Session>, Error>;

    /// Removes sessions whose absolute lifetime ended before `before`, with
    /// their refresh records; returns how many sessions.
    async fn purge_expired(&self, before: OffsetDateTime) -> Result<u64, Error>;

    /// Cheap check that the backend answers.
    async fn health(&self) -> Result<(), Error>;
}
