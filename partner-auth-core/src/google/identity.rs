//! Linking provider identities to directory users.
//!
//! A user is found by the provider's issuer and stable subject, never by
//! e-mail alone. Only on the first login of an identity may it be linked to
//! a directory user by a provider-verified e-mail address, compared ASCII
//! case-insensitively (so `Quack@Example.COM` finds `quack@example.com`, but
//! a Kelvin sign or a Cyrillic letter never matches a Latin one). Everything
//! else is refused.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::GoogleError;
use crate::{Directory, Error, ExternalIdentity, User, UserId};

/// Maps (issuer, subject) to a directory user.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The user linked to this issuer and subject.
    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<UserId>, Error>;

    /// Links this issuer and subject to `user`. Fails with
    /// [`Error::Conflict`] when the subject is already linked, or when the
    /// user is already linked to another subject of the same issuer; the
    /// existing link is untouched.
    async fn link(&self, issuer: &str, subject: &str, user: &User) -> Result<(), Error>;
}

/// An [`IdentityStore`] in process memory.
#[derive(Default)]
pub struct MemoryIdentityStore {
    links: Mutex<HashMap<(String, String), UserId>>,
}

impl MemoryIdentityStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdentityStore for MemoryIdentityStore {
    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<UserId>, Error> {
        Ok(self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(issuer.to_owned(), subject.to_owned()))
            .cloned())
    }

    async fn link(&self, issuer: &str, subject: &str, user: &User) -> Result<(), Error> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let key = (issuer.to_owned(), subject.to_owned());
        let user_taken = links
            .iter()
            .any(|((iss, _), linked)| iss == issuer && linked == &user.id);
        if links.contains_key(&key) || user_taken {
            return Err(Error::Conflict { what: "identity" });
        }
        links.insert(key, user.id.clone());
        Ok(())
    }
}

/// How identities without a link are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    /// Link a first login to the directory user with the same verified
    /// e-mail address (ASCII case-insensitive).
    pub match_email: bool,
    /// Refuse any login whose e-mail the provider has not verified.
    pub require_verified_email: bool,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        Self {
            match_email: true,
            require_verified_email: true,
        }
    }
}

/// Finds (or, on a first login, links) the directory user of `identity`.
pub async fn resolve_user<'d>(
    identity: &ExternalIdentity,
    identities: &dyn IdentityStore,
    directory: &'d Directory,
    policy: LinkPolicy,
) -> Result<&'d User, Error> {
    if policy.require_verified_email && !identity.email_verified {
        return Err(GoogleError::EmailNotVerified.into());
    }

    if let Some(id) = identities.find(&identity.issuer, &identity.subject).await? {
        return directory
            .user(&id)
            .ok_or_else(|| GoogleError::LinkedUserMissing.into());
    }

    if !policy.match_email {
        return Err(GoogleError::NoMatchingUser.into());
    }
    let Some(email) = identity.email.as_deref() else {
        return Err(GoogleError::NoMatchingUser.into());
    };
    if !identity.email_verified {
        return Err(GoogleError::EmailNotVerified.into());
    }
    let user = directory
        .user_by_email(email)
        .ok_or(GoogleError::NoMatchingUser)?;

    match identities
        .link(&identity.issuer, &identity.subject, user)
        .await
    {
        Ok(()) => {
            tracing::info!(user = %user.id, "provider identity linked by verified e-mail");
            Ok(user)
        }
        Err(Error::Conflict { .. }) => Err(GoogleError::IdentityConflict.into()),
        Err(e) => Err(e),
    }
}
