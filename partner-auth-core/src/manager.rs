//! The session lifecycle: login, refresh with rotation, reuse detection,
//! logout and forced logout.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use crate::events::{EventSink, SecurityEvent};
use crate::metrics;
use crate::refresh::RefreshToken;
use crate::session::{RefreshRecord, RevokeReason, Session, SessionFilter, SessionStore};
use crate::token::{AccessClaims, AccessToken, TokenIssuer};
use crate::{
    AuthMode, Clock, Directory, Entitlement, Error, PartnerId, Role, SessionId, User, UserId,
};

/// Longest grace window for racing refreshes.
pub const MAX_GRACE: Duration = Duration::seconds(60);

/// Longest absolute session lifetime or idle timeout a manager accepts: one
/// year. Anything longer is a configuration mistake (and far enough out, it
/// would overflow the date arithmetic of a login).
pub const MAX_SESSION_LIFETIME: Duration = Duration::days(366);

/// Lifetimes and windows of a [`SessionManager`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long after a rotation the previous refresh token still yields a
    /// session (two tabs racing). 0 to 60 s; default 10 s.
    pub grace: Duration,
    /// Absolute lifetime with remember-me: 24 hours.
    pub remember_me_lifetime: Duration,
    /// Absolute lifetime without remember-me: 8 hours by default.
    pub session_lifetime: Duration,
    /// A session not refreshed for this long ends: 2 hours by default.
    pub idle_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            grace: Duration::seconds(10),
            remember_me_lifetime: Duration::hours(24),
            session_lifetime: Duration::hours(8),
            idle_timeout: Duration::hours(2),
        }
    }
}

/// What a successful login or refresh hands back.
#[derive(Debug)]
pub struct Issued {
    /// The session, as stored after the operation.
    pub session: Session,
    /// A new access token.
    pub access: AccessToken,
    /// A new refresh token.
    pub refresh: RefreshToken,
    /// Whether the refresh was served from the grace window.
    pub grace: bool,
}

/// A caller whose access token verified and whose session is live.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The verified claims.
    pub claims: AccessClaims,
    /// The session as stored.
    pub session: Session,
    /// Entitlements the session's roles give inside its partner.
    pub entitlements: BTreeSet<Entitlement>,
}

impl Principal {
    /// The user.
    pub fn user(&self) -> &UserId {
        &self.claims.sub
    }

    /// The partner the session acts within.
    pub fn partner(&self) -> &PartnerId {
        &self.claims.pid
    }

    /// Whether the session holds `role` inside its own partner (or globally).
    ///
    /// Every role check reads the stored session, never the token: a token
    /// only names the session, so one minted with the signing key cannot
    /// lend it more than the login granted.
    pub fn has_role(&self, role: Role) -> bool {
        self.session
            .roles
            .iter()
            .any(|g| g.covers(role, &self.session.partner_id))
    }

    /// Whether the session holds the global `super_admin` role.
    pub fn is_super_admin(&self) -> bool {
        self.session
            .roles
            .iter()
            .any(|g| g.role == Role::SuperAdmin && g.partner.is_none())
    }

    /// Whether the caller may administer `partner`: `super_admin`, or `admin`
    /// scoped to that partner.
    pub fn can_administer(&self, partner: &PartnerId) -> bool {
        self.is_super_admin()
            || self
                .session
                .roles
                .iter()
                .any(|g| g.covers(Role::Admin, partner))
    }

    /// Whether the caller's partner profile gives it `entitlement`.
    pub fn has_entitlement(&self, entitlement: Entitlement) -> bool {
        self.entitlements.contains(&entitlement)
    }
}

/// Runs logins, refreshes and logouts over a [`SessionStore`].
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    issuer: Arc<TokenIssuer>,
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    config: SessionConfig,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager; refuses a grace window outside 0 to 60 s, and lifetimes or
    /// an idle timeout that are not positive or exceed
    /// [`MAX_SESSION_LIFETIME`].
    pub fn new(
        store: Arc<dyn SessionStore>,
        issuer: Arc<TokenIssuer>,
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
        events: Arc<dyn EventSink>,
        config: SessionConfig,
    ) -> Result<Self, Error> {
        if config.grace.is_negative() || config.grace > MAX_GRACE {
            return Err(Error::Config(
                "grace window must be between 0 and 60 s".into(),
            ));
        }
        for (name, value) in [
            ("session lifetime", config.session_lifetime),
            ("remember-me lifetime", config.remember_me_lifetime),
            ("idle timeout", config.idle_timeout),
        ] {
            if !value.is_positive() || value > MAX_SESSION_LIFETIME {
                return Err(Error::Config(format!(
                    "{name} must be positive and at most {} days",
                    MAX_SESSION_LIFETIME.whole_days()
                )));
            }
        }
        Ok(Self {
            store,
            issuer,
            directory,
            clock,
            events,
            config,
        })
    }

    /// Now, cut to whole microseconds: the precision every store keeps, so a
    /// session reads back exactly as it was written.
    fn now(&self) -> time::OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The token issuer.
    pub fn issuer(&self) -> &Arc<TokenIssuer> {
        &self.issuer
    }

    /// The directory of partners and users.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The event sink.
    pub fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Starts a fresh session for `user`. The session id is always new, so
    /// nothing a client carried before the login survives it.
    #[tracing::instrument(skip_all, fields(user = %user.id, partner = %user.partner, mode = %mode))]
    pub async fn login(
        &self,
        user: &User,
        mode: AuthMode,
        remember_me: bool,
    ) -> Result<Issued, Error> {
        let result = self.login_inner(user, mode, remember_me).await;
        let outcome = if result.is_ok() {
            metrics::LoginOutcome::Success
        } else {
            metrics::LoginOutcome::Failure
        };
        metrics::login(mode, outcome);
        result
    }

    async fn login_inner(
        &self,
        user: &User,
        mode: AuthMode,
        remember_me: bool,
    ) -> Result<Issued, Error> {
        if user.disabled {
            self.events.emit(&SecurityEvent::LoginFailed {
                mode,
                reason: "user_disabled",
            });
            return Err(Error::UserDisabled);
        }
        let now = self.now();
        let lifetime = if remember_me {
            self.config.remember_me_lifetime
        } else {
            self.config.session_lifetime
        };
        let session = Session {
            id: SessionId::random(),
            user_id: user.id.clone(),
            partner_id: user.partner.clone(),
            roles: user.grants.clone(),
            auth_mode: mode,
            remember_me,
            created_at: now,
            last_seen_at: now,
            // The constructor bounds the lifetime; checked all the same, so
            // no setting can turn a login into a panic.
            expires_at: now
                .checked_add(lifetime)
                .ok_or_else(|| Error::Config("session lifetime out of range".into()))?,
            refresh_generation: 0,
            rotated_at: now,
            revoked_at: None,
            revoke_reason: None,
            impersonator: None,
        };
        let refresh = RefreshToken::generate();
        let record = RefreshRecord {
            digest: refresh.digest(),
            session_id: session.id,
            generation: 0,
            issued_at: now,
            used_at: None,
        };

        self.store.create(&session, &record).await?;
        let access = self.issuer.issue(&session)?;
        self.events.emit(&SecurityEvent::LoginSucceeded {
            user: session.user_id.clone(),
            partner: session.partner_id.clone(),
            session: session.id,
            mode,
        });
        tracing::debug!(session = %session.id, remember_me, "session created");

        Ok(Issued {
            session,
            access,
            refresh,
            grace: false,
        })
    }

    /// Records a login refused before [`login`](Self::login) was reached, such
    /// as a name the directory does not know, as a
    /// [`SecurityEvent::LoginFailed`] like every other refused login.
    pub fn login_failed(&self, mode: AuthMode, reason: &'static str) {
        metrics::login(mode, metrics::LoginOutcome::Failure);
        self.events
            .emit(&SecurityEvent::LoginFailed { mode, reason });
    }

    /// Ends the earlier session whose refresh token a client still carried
    /// when it signed in again (session fixation: an id planted in the browser
    /// before a login is worthless after it). An unknown token, a session
    /// already ended, or `current` itself is left alone; `Ok(true)` when a
    /// session was revoked, with [`RevokeReason::Replaced`].
    pub async fn end_replaced(
        &self,
        earlier: &RefreshToken,
        current: SessionId,
    ) -> Result<bool, Error> {
        let Some(record) = self.store.find_refresh(&earlier.digest()).await? else {
            return Ok(false);
        };
        if record.session_id == current {
            return Ok(false);
        }
        let Some(session) = self.store.get(record.session_id).await? else {
            return Ok(false);
        };
        self.revoke_and_report(&session, RevokeReason::Replaced, None)
            .await
    }

    /// Exchanges a refresh token for a new access token and refresh token.
    ///
    /// The current token rotates (compare-and-swap in the store). The token
    /// just before it is accepted for [`SessionConfig::grace`] after its
    /// rotation and yields an extra token of the current generation, so two
    /// tabs racing both keep the session. Anything older, or the previous
    /// token after the window, is reuse: the whole session is revoked.
    #[tracing::instrument(skip_all, fields(session = tracing::field::Empty, grace = tracing::field::Empty))]
    pub async fn refresh(&self, presented: &RefreshToken) -> Result<Issued, Error> {
        let result = self.refresh_inner(presented).await;
        let outcome = match &result {
            Ok(issued) if issued.grace => metrics::RefreshOutcome::Grace,
            Ok(_) => metrics::RefreshOutcome::Rotated,
            Err(Error::RefreshTokenReused) => metrics::RefreshOutcome::ReuseDetected,
            Err(Error::UnknownRefreshToken) => metrics::RefreshOutcome::Unknown,
            Err(Error::SessionRevoked | Error::SessionExpired | Error::SessionNotFound) => {
                metrics::RefreshOutcome::SessionEnded
            }
            Err(_) => metrics::RefreshOutcome::Error,
        };
        metrics::refresh(outcome);
        result
    }

    async fn refresh_inner(&self, presented: &RefreshToken) -> Result<Issued, Error> {
        let digest = presented.digest();
        let Some(record) = self.store.find_refresh(&digest).await? else {
            tracing::debug!("unknown refresh token");
            return Err(Error::UnknownRefreshToken);
        };
        tracing::Span::current().record("session", tracing::field::display(record.session_id));

        // A concurrent rotation can move the generation between our read and
        // our write; the store's compare-and-swap refuses, and we look again.
        for _ in 0..4 {
            let session = self.live_session(record.session_id).await?;
            let now = self.now();
            let next = RefreshToken::generate();

            if record.generation == session.refresh_generation {
                let next_record = RefreshRecord {
                    digest: next.digest(),
                    session_id: session.id,
                    generation: session.refresh_generation + 1,
                    issued_at: now,
                    used_at: None,
                };
                if self
                    .store
                    .rotate(record.generation, &digest, &next_record, now)
                    .await?
                {
                    return self.issued(session.id, next, false).await;
                }
                continue;
            }

            let previous = record.generation + 1 == session.refresh_generation;
            if previous && now - session.rotated_at <= self.config.grace {
                let sibling = RefreshRecord {
                    digest: next.digest(),
                    session_id: session.id,
                    generation: session.refresh_generation,
                    issued_at: now,
                    used_at: None,
                };
                if self.store.add_sibling(&sibling, now).await? {
                    return self.issued(session.id, next, true).await;
                }
                continue;
            }

            self.events.emit(&SecurityEvent::RefreshReuse {
                user: session.user_id.clone(),
                partner: session.partner_id.clone(),
                session: session.id,
            });
            // The revocation is an event of its own, like every other one,
            // so that whoever follows `session_revoked` sees this one too.
            self.end(&session, RevokeReason::RefreshReuse, None).await?;
            return Err(Error::RefreshTokenReused);
        }
        Err(Error::Conflict {
            what: "concurrent refresh",
        })
    }

    async fn issued(
        &self,
        id: SessionId,
        refresh: RefreshToken,
        grace: bool,
    ) -> Result<Issued, Error> {
        let session = self.store.get(id).await?.ok_or(Error::SessionNotFound)?;
        let access = self.issuer.issue(&session)?;
        tracing::Span::current().record("grace", grace);
        self.events.emit(&SecurityEvent::Refreshed {
            user: session.user_id.clone(),
            partner: session.partner_id.clone(),
            session: session.id,
            grace,
        });
        Ok(Issued {
            session,
            access,
            refresh,
            grace,
        })
    }

    /// Loads a session and checks that it is neither revoked nor past its
    /// absolute or idle lifetime (an idle session is revoked on the way).
    async fn live_session(&self, id: SessionId) -> Result<Session, Error> {
        let session = self.store.get(id).await?.ok_or(Error::SessionNotFound)?;
        let now = self.now();
        if session.revoked_at.is_some() {
            return Err(Error::SessionRevoked);
        }
        if now >= session.expires_at {
            return Err(Error::SessionExpired);
        }
        if now - session.last_seen_at > self.config.idle_timeout {
            // Through `end`, so the idle end is an event (and audited) like
            // every other revocation.
            self.end(&session, RevokeReason::Idle, None).await?;
            return Err(Error::SessionExpired);
        }
        Ok(session)
    }

    /// Verifies an access token and checks that its session is still live.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, Error> {
        let claims = self.issuer.verify(access_token)?;
        let session = self
            .store
            .get(claims.sid)
            .await?
            .ok_or(Error::SessionNotFound)?;
        let now = self.now();
        if session.revoked_at.is_some() {
            return Err(Error::SessionRevoked);
        }
        if now >= session.expires_at {
            return Err(Error::SessionExpired);
        }
        // A token that disagrees with its session in any claim that decides
        // access was not issued for it, whoever signed it.
        if session.user_id != claims.sub
            || session.partner_id != claims.pid
            || session.roles != claims.roles
        {
            return Err(Error::InvalidToken(crate::TokenRejection::Claims));
        }
        let entitlements = self
            .directory
            .entitlements(&session.roles, &session.partner_id);

        Ok(Principal {
            claims,
            session,
            entitlements,
        })
    }

    /// Ends the caller's own session.
    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        self.end(&principal.session, RevokeReason::Logout, None)
            .await
    }

    /// Ends the session a refresh token belongs to (logout without an access token).
    pub async fn logout_refresh(&self, presented: &RefreshToken) -> Result<(), Error> {
        let record = self
            .store
            .find_refresh(&presented.digest())
            .await?
            .ok_or(Error::UnknownRefreshToken)?;
        let session = self
            .store
            .get(record.session_id)
            .await?
            .ok_or(Error::SessionNotFound)?;
        self.end(&session, RevokeReason::Logout, None).await
    }

    /// Ends `session` for `reason`, on behalf of `by` when that is not the owner.
    pub async fn end(
        &self,
        session: &Session,
        reason: RevokeReason,
        by: Option<&UserId>,
    ) -> Result<(), Error> {
        self.revoke_and_report(session, reason, by)
            .await
            .map(|_| ())
    }

    /// [`end`](Self::end), returning whether this call revoked the session
    /// (`false`: it had already ended).
    async fn revoke_and_report(
        &self,
        session: &Session,
        reason: RevokeReason,
        by: Option<&UserId>,
    ) -> Result<bool, Error> {
        let now = self.now();
        let revoked = self.store.revoke(session.id, reason, now).await?;
        if revoked {
            self.events.emit(&SecurityEvent::SessionRevoked {
                user: session.user_id.clone(),
                partner: session.partner_id.clone(),
                session: session.id,
                reason,
                by: by.cloned(),
            });
        }
        Ok(revoked)
    }

    /// The caller's own sessions that are still live.
    pub async fn own_sessions(&self, principal: &Principal) -> Result<Vec<Session>, Error> {
        self.store
            .list(&SessionFilter {
                user: Some(principal.user().clone()),
                active_at: Some(self.now()),
                ..SessionFilter::default()
            })
            .await
    }

    /// Revokes one of the caller's own sessions ("sign out elsewhere").
    /// A session of somebody else is reported as not found.
    pub async fn revoke_own(&self, principal: &Principal, id: SessionId) -> Result<(), Error> {
        let session = self.store.get(id).await?.ok_or(Error::SessionNotFound)?;
        if &session.user_id != principal.user() {
            return Err(Error::SessionNotFound);
        }
        let reason = if session.id == principal.session.id {
            RevokeReason::Logout
        } else {
            RevokeReason::SignedOutElsewhere
        };
        self.end(&session, reason, None).await
    }

    /// Sessions an administrator may see: a partner's (for its `admin`) or
    /// any (for `super_admin`), optionally for one user.
    pub async fn admin_sessions(
        &self,
        admin: &Principal,
        partner: Option<&PartnerId>,
        user: Option<&UserId>,
    ) -> Result<Vec<Session>, Error> {
        let partner = match partner {
            Some(p) if admin.can_administer(p) => Some(p.clone()),
            Some(_) => {
                return Err(Error::Forbidden {
                    reason: "not an administrator of that partner",
                });
            }
            None if admin.is_super_admin() => None,
            None if admin.can_administer(admin.partner()) => Some(admin.partner().clone()),
            None => {
                return Err(Error::Forbidden {
                    reason: "administrator role required",
                });
            }
        };
        self.store
            .list(&SessionFilter {
                partner,
                user: user.cloned(),
                active_at: Some(self.now()),
            })
            .await
    }

    /// Force-revokes a session; an administrator of another partner gets
    /// [`Error::SessionNotFound`], so ids of other tenants leak nothing.
    pub async fn admin_revoke(&self, admin: &Principal, id: SessionId) -> Result<Session, Error> {
        let session = self.store.get(id).await?.ok_or(Error::SessionNotFound)?;
        if !admin.can_administer(&session.partner_id) {
            return Err(Error::SessionNotFound);
        }
        self.end(&session, RevokeReason::Forced, Some(admin.user()))
            .await?;
        self.store.get(id).await?.ok_or(Error::SessionNotFound)
    }

    /// Force-revokes every live session of a user the admin may administer.
    pub async fn admin_revoke_user(&self, admin: &Principal, user: &UserId) -> Result<u64, Error> {
        let target = self.directory.user(user).ok_or(Error::UnknownUser)?;
        if !admin.can_administer(&target.partner) {
            return Err(Error::UnknownUser);
        }
        let sessions = self
            .store
            .list(&SessionFilter {
                user: Some(user.clone()),
                active_at: Some(self.now()),
                ..SessionFilter::default()
            })
            .await?;
        for session in &sessions {
            self.end(session, RevokeReason::Forced, Some(admin.user()))
                .await?;
        }
        Ok(sessions.len() as u64)
    }
}

#[cfg(test)]
mod tests;
