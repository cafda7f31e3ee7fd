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

use std::collections::HashSet;
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
}

/// A [`Vault`] whose `keep_provider_token` never fails a login.
pub struct ResilientVault {
    inner: Arc<dyn Vault>,
    events: Arc<dyn VaultEventSink>,
    tx: mpsc::Sender<Pending>,
    waiting: Arc<Mutex<HashSet<(String, String)>>>,
}

impl std::fmt::Debug for ResilientVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientVault").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ResilientVault {
    /// Wraps `inner` and starts the retry task on the current Tokio runtime.
    pub fn spawn(
        inner: Arc<dyn Vault>,
        events: Arc<dyn VaultEventSink>,
        config: RetryConfig,
    ) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<Pending>(config.capacity.max(1));
        let waiting: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
        let this = Arc::new(Self {
            inner: inner.clone(),
            events: events.clone(),
            tx,
            waiting: waiting.clone(),
        });

        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                let key = (item.issuer.clone(), item.subject.clone());
                let mut pause = config.backoff;
                let mut attempts = 1;
                let stored = loop {
                    if attempts >= config.max_attempts.max(1) {
                        break false;
                    }
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempts += 1;
                    let token = SecretString::from(item.token.expose_secret().to_owned());
                    match inner
                        .keep_provider_token(&item.user, &item.issuer, &item.subject, token)
                        .await
                    {
                        Ok(()) => break true,
                        Err(e) => {
                            tracing::warn!(user = %item.user.id, attempts, error = %e, "provider token retry failed")
                        }
                    }
                };
                lock(&waiting).remove(&key);
                metrics::provider_token_write(if stored {
                    ProviderTokenWrite::StoredAfterRetry
                } else {
                    ProviderTokenWrite::Dropped
                });
                let event = if stored {
                    VaultEvent::ProviderTokenStored {
                        partner: item.user.partner.clone(),
                        user: item.user.id.clone(),
                        attempts,
                    }
                } else {
                    VaultEvent::ProviderTokenDropped {
                        partner: item.user.partner.clone(),
                        user: item.user.id.clone(),
                        reason: "retries_exhausted",
                    }
                };
                events.emit(&event);
            }
        });
        this
    }

    /// Tokens waiting for another try.
    pub fn pending(&self) -> usize {
        lock(&self.waiting).len()
    }
}

#[async_trait]
impl Vault for ResilientVault {
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error> {
        if lock(&self.waiting).contains(&(issuer.to_owned(), subject.to_owned())) {
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
        let Err(e) = self
            .inner
            .keep_provider_token(user, issuer, subject, token)
            .await
        else {
            return Ok(());
        };
        tracing::warn!(user = %user.id, error = %e, "provider token not stored; queued for retry");

        let pending = Pending {
            user: user.clone(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            token: copy,
        };
        let key = (issuer.to_owned(), subject.to_owned());
        lock(&self.waiting).insert(key.clone());
        let event = match self.tx.try_send(pending) {
            Ok(()) => {
                metrics::provider_token_write(ProviderTokenWrite::Deferred);
                VaultEvent::ProviderTokenDeferred {
                    partner: user.partner.clone(),
                    user: user.id.clone(),
                }
            }
            Err(_) => {
                lock(&self.waiting).remove(&key);
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
