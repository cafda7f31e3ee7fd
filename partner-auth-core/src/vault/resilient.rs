//! Logins that do not depend on the vault being writable.
//!
//! [`ResilientVault`] wraps another [`Vault`]. When keeping a provider's
//! refresh token fails, the login still succeeds: the token goes into a
//! bounded in-memory queue (held in a [`SecretString`], wiped on drop), a
//! [`VaultEvent::ProviderTokenDeferred`] is raised, and a background task
//! tries again with a growing pause. A token that can not be queued or
//! still fails after the last try is dropped with
//! [`VaultEvent::ProviderTokenDropped`]; the next login asks the provider
//! for consent again and so gets a new one.
//!
//! A queued token is older than any token a later login for the same issuer
//! and subject brings. Each write takes a stamp; a retry goes ahead only
//! while its stamp is still the newest for that subject, under a
//! per-subject lock that also covers the later login's write, and is
//! otherwise dropped with the reason `superseded`. A stale token therefore
//! never overwrites a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::mpsc;

use super::{Vault, VaultEvent, VaultEventSink};
use crate::metrics::{self, ProviderTokenWrite};
use crate::{Error, User};

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Tokens waiting at most.
    pub capacity: usize,
    /// Tries per token, the first (inline) one included.
    pub max_attempts: u32,
    /// Pause before the first retry; doubles each time.
    pub backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            capacity: 256,
            max_attempts: 6,
            backoff: Duration::from_millis(500),
        }
    }
}

struct Pending {
    user: User,
    issuer: String,
    subject: String,
    token: SecretString,
    stamp: u64,
}

type Key = (String, String);

/// What is known about one issuer and subject while a write for it is in
/// flight or queued.
#[derive(Default)]
struct Slot {
    // The stamp of the newest write started for this subject.
    latest: u64,
    // Writes in flight or queued.
    users: usize,
    // Of those, queued for a retry.
    queued: usize,
    // Serialises writes for this subject, so that a retry's check of
    // `latest` and its write can not interleave with a newer login's write.
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// Per-subject bookkeeping shared by the inline path and the retry task.
#[derive(Default)]
struct Slots {
    next: u64,
    map: HashMap<Key, Slot>,
}

impl Slots {
    /// Starts a write: a new stamp, the newest for `key`.
    fn enter(&mut self, key: &Key) -> (u64, Arc<tokio::sync::Mutex<()>>) {
        self.next += 1;
        let slot = self.map.entry(key.clone()).or_default();
        slot.latest = self.next;
        slot.users += 1;
        (self.next, slot.lock.clone())
    }

    /// Ends a write (stored, superseded or given up).
    fn leave(&mut self, key: &Key, was_queued: bool) {
        if let Some(slot) = self.map.get_mut(key) {
            slot.users = slot.users.saturating_sub(1);
            if was_queued {
                slot.queued = slot.queued.saturating_sub(1);
            }
            if slot.users == 0 {
                self.map.remove(key);
            }
        }
    }
}

/// A [`Vault`] whose `keep_provider_token` never fails a login.
pub struct ResilientVault {
    inner: Arc<dyn Vault>,
    events: Arc<dyn VaultEventSink>,
    tx: mpsc::Sender<Pending>,
    slots: Arc<Mutex<Slots>>,
}

impl std::fmt::Debug for ResilientVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientVault").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a queued write ended.
enum Retried {
    Stored,
    Superseded,
    Exhausted,
}

impl ResilientVault {
    /// Wraps `inner` and starts the retry task on the current Tokio runtime.
    pub fn spawn(
        inner: Arc<dyn Vault>,
        events: Arc<dyn VaultEventSink>,
        config: RetryConfig,
    ) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<Pending>(config.capacity.max(1));
        let slots: Arc<Mutex<Slots>> = Arc::default();
        let this = Arc::new(Self {
            inner: inner.clone(),
            events: events.clone(),
            tx,
            slots: slots.clone(),
        });

        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                let key = (item.issuer.clone(), item.subject.clone());
                let mut pause = config.backoff;
                let mut attempts = 1;
                let outcome = loop {
                    if attempts >= config.max_attempts.max(1) {
                        break Retried::Exhausted;
                    }
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    let write_lock = lock(&slots).map.get(&key).map(|s| s.lock.clone());
                    let Some(write_lock) = write_lock else {
                        break Retried::Superseded;
                    };
                    let _writing = write_lock.lock().await;
                    // A later login stored or queued a newer token for this
                    // subject: writing this older one would overwrite it.
                    let newest = lock(&slots)
                        .map
                        .get(&key)
                        .is_some_and(|s| s.latest == item.stamp);
                    if !newest {
                        break Retried::Superseded;
                    }
                    attempts += 1;
                    let token = SecretString::from(item.token.expose_secret().to_owned());
                    match inner
                        .keep_provider_token(&item.user, &item.issuer, &item.subject, token)
                        .await
                    {
                        Ok(()) => break Retried::Stored,
                        Err(e) => {
                            tracing::warn!(user = %item.user.id, attempts, error = %e, "provider token retry failed")
                        }
                    }
                };
                lock(&slots).leave(&key, true);
                metrics::provider_token_write(match outcome {
                    Retried::Stored => ProviderTokenWrite::StoredAfterRetry,
                    Retried::Superseded => ProviderTokenWrite::Superseded,
                    Retried::Exhausted => ProviderTokenWrite::Dropped,
                });
                let (partner, user) = (item.user.partner.clone(), item.user.id.clone());
                let event = match outcome {
                    Retried::Stored => VaultEvent::ProviderTokenStored {
                        partner,
                        user,
                        attempts,
                    },
                    Retried::Superseded => VaultEvent::ProviderTokenDropped {
                        partner,
                        user,
                        reason: "superseded",
                    },
                    Retried::Exhausted => VaultEvent::ProviderTokenDropped {
                        partner,
                        user,
                        reason: "retries_exhausted",
                    },
                };
                events.emit(&event);
            }
        });
        this
    }

    /// Subjects with a token waiting for another try.
    pub fn pending(&self) -> usize {
        lock(&self.slots)
            .map
            .values()
            .filter(|s| s.queued > 0)
            .count()
    }
}

#[async_trait]
impl Vault for ResilientVault {
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error> {
        let key = (issuer.to_owned(), subject.to_owned());
        if lock(&self.slots)
            .map
            .get(&key)
            .is_some_and(|s| s.queued > 0)
        {
            return Ok(true);
        }
        match self.inner.holds_provider_token(issuer, subject).await {
            Ok(held) => Ok(held),
            Err(e) => {
                // Not knowing only means asking the provider for consent again.
                tracing::warn!(error = %e, "vault unreadable; assuming no provider token held");
                Ok(false)
            }
        }
    }

    async fn keep_provider_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error> {
        let copy = SecretString::from(token.expose_secret().to_owned());
        let key = (issuer.to_owned(), subject.to_owned());
        let (stamp, write_lock) = lock(&self.slots).enter(&key);
        let result = {
            let _writing = write_lock.lock().await;
            self.inner
                .keep_provider_token(user, issuer, subject, token)
                .await
        };
        let Err(e) = result else {
            lock(&self.slots).leave(&key, false);
            return Ok(());
        };
        tracing::warn!(user = %user.id, error = %e, "provider token not stored; queued for retry");

        let pending = Pending {
            user: user.clone(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            token: copy,
            stamp,
        };
        if let Some(slot) = lock(&self.slots).map.get_mut(&key) {
            slot.queued += 1;
        }
        let event = match self.tx.try_send(pending) {
            Ok(()) => {
                metrics::provider_token_write(ProviderTokenWrite::Deferred);
                VaultEvent::ProviderTokenDeferred {
                    partner: user.partner.clone(),
                    user: user.id.clone(),
                }
            }
            Err(_) => {
                lock(&self.slots).leave(&key, true);
                metrics::provider_token_write(ProviderTokenWrite::Dropped);
                VaultEvent::ProviderTokenDropped {
                    partner: user.partner.clone(),
                    user: user.id.clone(),
                    reason: "queue_full",
                }
            }
        };
        self.events.emit(&event);
        Ok(())
    }

    async fn provider_refresh_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecretString>, Error> {
        self.inner
            .provider_refresh_token(user, issuer, subject)
            .await
    }
}
