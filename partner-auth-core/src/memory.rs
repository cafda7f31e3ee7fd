//! In-memory stores, for unit tests and quick starts. They keep the same
//! guarantees as the SQL stores (atomic rotation, no upsert on create) but
//! lose everything when the process ends.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::refresh::TokenDigest;
use crate::session::{RefreshRecord, RevokeReason, Session, SessionFilter, SessionStore};
use crate::{Error, SessionId, UserId};

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, Session>,
    tokens: HashMap<[u8; 32], RefreshRecord>,
}

/// A [`SessionStore`] in a mutex-guarded map.
#[derive(Default)]
pub struct MemorySessionStore {
    inner: Mutex<Inner>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: &Session, first: &RefreshRecord) -> Result<(), Error> {
        let mut inner = self.lock();
        if inner.sessions.contains_key(&session.id) {
            return Err(Error::Conflict { what: "session" });
        }
        if inner.tokens.contains_key(first.digest.as_bytes()) {
            return Err(Error::Conflict {
                what: "refresh token",
            });
        }
        inner.sessions.insert(session.id, session.clone());
        inner.tokens.insert(*first.digest.as_bytes(), first.clone());
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, Error> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn find_refresh(&self, digest: &TokenDigest) -> Result<Option<RefreshRecord>, Error> {
        Ok(self.lock().tokens.get(digest.as_bytes()).cloned())
    }

    async fn rotate(
        &self,
        from_generation: u32,
        presented: &TokenDigest,
        next: &RefreshRecord,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut inner = self.lock();
        if inner.tokens.contains_key(next.digest.as_bytes()) {
            return Err(Error::Conflict {
                what: "refresh token",
            });
        }
        let Some(session) = inner.sessions.get_mut(&next.session_id) else {
            return Ok(false);
        };
        if session.revoked_at.is_some()
            || session.refresh_generation != from_generation
            || next.generation != from_generation + 1
        {
            return Ok(false);
        }
        session.refresh_generation = next.generation;
        session.rotated_at = now;
        session.last_seen_at = now;
        if let Some(old) = inner.tokens.get_mut(presented.as_bytes()) {
            old.used_at = Some(now);
        }
        inner.tokens.insert(*next.digest.as_bytes(), next.clone());
        Ok(true)
    }

    async fn add_sibling(&self, next: &RefreshRecord, now: OffsetDateTime) -> Result<bool, Error> {
        let mut inner = self.lock();
        if inner.tokens.contains_key(next.digest.as_bytes()) {
            return Err(Error::Conflict {
                what: "refresh token",
            });
        }
        let Some(session) = inner.sessions.get_mut(&next.session_id) else {
            return Ok(false);
        };
        if session.revoked_at.is_some() || session.refresh_generation != next.generation {
            return Ok(false);
        }
        session.last_seen_at = now;
        inner.tokens.insert(*next.digest.as_bytes(), next.clone());
        Ok(true)
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut inner = self.lock();
        match inner.sessions.get_mut(&id) {
            Some(s) if s.revoked_at.is_none() => {
                s.revoked_at = Some(now);
                s.revoke_reason = Some(reason);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, Error> {
        let mut inner = self.lock();
        let mut count = 0;
        for s in inner.sessions.values_mut() {
            if &s.user_id == user && s.revoked_at.is_none() {
                s.revoked_at = Some(now);
                s.revoke_reason = Some(reason);
                count += 1;
            }
        }
        Ok(count)
    }

    async fn list(&self, filter: &SessionFilter) -> Result<Vec<Session>, Error> {
        let inner = self.lock();
        let mut out: Vec<Session> = inner
            .sessions
            .values()
            .filter(|s| filter.partner.as_ref().is_none_or(|p| &s.partner_id == p))
            .filter(|s| filter.user.as_ref().is_none_or(|u| &s.user_id == u))
            .filter(|s| filter.active_at.is_none_or(|t| s.is_active(t)))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn purge_expired(&self, before: OffsetDateTime) -> Result<u64, Error> {
        let mut inner = self.lock();
        let gone: Vec<SessionId> = inner
            .sessions
            .values()
            .filter(|s| s.expires_at < before)
            .map(|s| s.id)
            .collect();
        for id in &gone {
            inner.sessions.remove(id);
        }
        inner.tokens.retain(|_, t| !gone.contains(&t.session_id));
        Ok(gone.len() as u64)
    }

    async fn health(&self) -> Result<(), Error> {
        Ok(())
    }
}
