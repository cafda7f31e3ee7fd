//! The credential vault.
//!
//! [`Vault`] is what the login flow needs from it: keeping a provider's
//! refresh token, sealed, and saying whether one is held. [`MemoryVault`]
//! keeps them in process memory, for tests and quick starts.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::{Error, User};

/// Keeps provider refresh tokens (and, through richer implementations,
/// other credentials) sealed.
#[async_trait]
pub trait Vault: Send + Sync + 'static {
    /// Whether a provider refresh token is held for this issuer and subject.
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error>;

    /// Keeps `token` for `user` under this issuer and subject, replacing an
    /// older one for the same subject. Callers never pass an empty token, so
    /// a response without a refresh token never overwrites a held one.
    async fn keep_provider_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error>;
}

/// A [`Vault`] in process memory; tokens stay in [`SecretString`]s.
#[derive(Default)]
pub struct MemoryVault {
    tokens: Mutex<HashMap<(String, String), SecretString>>,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token held for an issuer and subject; for tests.
    pub fn provider_token(&self, issuer: &str, subject: &str) -> Option<SecretString> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(issuer.to_owned(), subject.to_owned()))
            .cloned()
    }
}

#[async_trait]
impl Vault for MemoryVault {
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error> {
        Ok(self.provider_token(issuer, subject).is_some())
    }

    async fn keep_provider_token(
        &self,
        _user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((issuer.to_owned(), subject.to_owned()), token);
        Ok(())
    }
}
