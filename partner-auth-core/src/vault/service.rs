//! [`CredentialService`]: create, list, reveal, rotate and revoke
//! credentials, each audited.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use time::OffsetDateTime;

use super::credential::check_text;
use super::envelope::{self, Binding};
use super::{
    AuditContext, AuditEvent, AuditLog, Channel, CredentialKind, CredentialMeta, CredentialRecord,
    CredentialStatus, CredentialStore, MAX_BROKER_LEN, MAX_LABEL_LEN, MAX_REFERENCE_LEN, Outcome,
    RotationState, Sealed, Vault, VaultError, VaultKeyring, policy,
};
use crate::{Clock, CredentialId, Directory, Error, User, UserId};

/// What a new credential is made of.
pub struct NewCredential {
    /// Its kind.
    pub kind: CredentialKind,
    /// Its owner; the acting user when `None`.
    pub owner: Option<UserId>,
    /// Name shown to people (1 to 128 bytes, no control characters).
    pub label: String,
    /// The broker, where it applies.
    pub broker: Option<String>,
    /// An external lookup key, for example a provider's issuer and subject.
    pub reference: Option<String>,
    /// When it stops working at its issuer, if known.
    pub expires_at: Option<OffsetDateTime>,
    /// The secret (1 byte to 64 KiB).
    pub secret: SecretSlice<u8>,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Whose credentials a reveal, rotation or revocation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevealScope {
    /// Only credentials the acting user owns. What every caller gets unless
    /// the host has checked that it administers the partner.
    Own,
    /// Any credential of the context's partner: for a caller holding `admin`
    /// in that partner or `super_admin`, or for the system itself.
    Partner,
}

/// The action names the service writes to the audit log.
pub mod actions {
    /// A credential was created.
    pub const CREATE: &str = "credential.create";
    /// Credential metadata was listed.
    pub const LIST: &str = "credential.list";
    /// A secret was revealed.
    pub const REVEAL: &str = "credential.reveal";
    /// A secret was replaced.
    pub const ROTATE: &str = "credential.rotate";
    /// A credential was revoked.
    pub const REVOKE: &str = "credential.revoke";
}

fn target(id: CredentialId) -> Option<String> {
    Some(format!("credential:{id}"))
}

fn outcome_of(err: &Error) -> (Outcome, &'static str) {
    match err {
        Error::Vault(VaultError::NotFound) => (Outcome::Failure, "not_found"),
        Error::Vault(VaultError::Revoked) => (Outcome::Denied, "revoked"),
        Error::Vault(VaultError::RotationOverdue) => (Outcome::Denied, "rotation_overdue"),
        Error::Vault(VaultError::NotOwner) => (Outcome::Denied, "not_owner"),
        Error::Vault(VaultError::Concurrent) => (Outcome::Failure, "concurrent_change"),
        Error::Vault(
            VaultError::Invalid(_)
            | VaultError::SecretLength { .. }
            | VaultError::UnsafeText(_)
            | VaultError::ExpiresInPast,
        ) => (Outcome::Failure, "invalid_input"),
        Error::Vault(VaultError::Expired) => (Outcome::Denied, "expired"),
        Error::Vault(VaultError::UnknownKey | VaultError::Open | VaultError::Malformed(_)) => {
            (Outcome::Failure, "does_not_open")
        }
        Error::Vault(VaultError::KeyExhausted(_)) => (Outcome::Failure, "key_exhausted"),
        Error::Forbidden { .. } => (Outcome::Denied, "forbidden"),
        _ => (Outcome::Failure, "error"),
    }
}

/// Credentials, sealed, with every operation audited. Every call takes the
/// acting context; its partner scopes every query.
pub struct CredentialService {
    store: Arc<dyn CredentialStore>,
    keys: Arc<VaultKeyring>,
    audit: Arc<AuditLog>,
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CredentialService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialService")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl CredentialService {
    /// A service over these parts.
    pub fn new(
        store: Arc<dyn CredentialStore>,
        keys: Arc<VaultKeyring>,
        audit: Arc<AuditLog>,
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            keys,
            audit,
            directory,
            clock,
        }
    }

    /// The credential store.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        &self.store
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<VaultKeyring> {
        &self.keys
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    async fn record<T>(
        &self,
        ctx: &AuditContext,
        action: &str,
        id: Option<CredentialId>,
        result: &Result<T, Error>,
    ) -> Result<(), Error> {
        let event = match result {
            Ok(_) => AuditEvent::new(ctx, action, id.and_then(target), Outcome::Success),
            Err(e) => {
                let (outcome, reason) = outcome_of(e);
                AuditEvent::new(ctx, action, id.and_then(target), outcome).with_detail(reason)
            }
        };
        self.audit.append(event).await.map(|_| ())
    }

    async fn seal(&self, record: &CredentialRecord, secret: &[u8]) -> Result<Sealed, Error> {
        let kek = self.keys.wrapping_key().await?;
        let binding = Binding {
            partner: &record.partner,
            kind: record.kind,
            credential: record.id,
        };
        Ok(Sealed(envelope::seal(&kek, &binding, secret)?))
    }

    fn open(&self, record: &CredentialRecord) -> Result<SecretSlice<u8>, Error> {
        let kek_id = envelope::kek_id_of(record.sealed.as_bytes())?;
        let kek = self.keys.key(&kek_id).ok_or(VaultError::UnknownKey)?;
        let binding = Binding {
            partner: &record.partner,
            kind: record.kind,
            credential: record.id,
        };
        let plain = envelope::open(&kek, &binding, record.sealed.as_bytes())?;
        Ok(SecretSlice::from(plain.to_vec()))
    }

    async fn active(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
    ) -> Result<CredentialRecord, Error> {
        let record = self
            .store
            .get(&ctx.partner, id)
            .await?
            .ok_or(VaultError::NotFound)?;
        if record.status != CredentialStatus::Active {
            return Err(VaultError::Revoked.into());
        }
        Ok(record)
    }

    /// Refuses an expiry that is not in the future: a credential stored
    /// already expired could never be revealed.
    fn check_expiry(&self, expires_at: Option<OffsetDateTime>) -> Result<(), Error> {
        match expires_at {
            Some(at) if self.is_past(at) => Err(VaultError::ExpiresInPast.into()),
            _ => Ok(()),
        }
    }

    /// Whether an expiry `at` has been reached.
    fn is_past(&self, at: OffsetDateTime) -> bool {
        at <= self.clock.now()
    }

    /// Seals and stores a new credential. An `expires_at` that is not in the
    /// future is refused with [`VaultError::ExpiresInPast`].
    pub async fn create(
        &self,
        ctx: &AuditContext,
        new: NewCredential,
    ) -> Result<CredentialMeta, Error> {
        let id = CredentialId::random();
        let result = self.create_inner(ctx, id, new).await;
        self.record(ctx, actions::CREATE, Some(id), &result).await?;
        result
    }

    async fn create_inner(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        new: NewCredential,
    ) -> Result<CredentialMeta, Error> {
        check_text(&new.label, MAX_LABEL_LEN, "label")?;
        if let Some(b) = &new.broker {
            check_text(b, MAX_BROKER_LEN, "broker")?;
        }
        if let Some(r) = &new.reference {
            check_text(r, MAX_REFERENCE_LEN, "reference")?;
        }
        self.check_expiry(new.expires_at)?;
        let owner = new
            .owner
            .or_else(|| ctx.actor.clone())
            .ok_or(VaultError::Invalid("owner"))?;

        let now = super::to_stored_precision(self.clock.now());
        let mut record = CredentialRecord {
            id,
            partner: ctx.partner.clone(),
            owner,
            kind: new.kind,
            label: new.label,
            broker: new.broker,
            reference: new.reference,
            status: CredentialStatus::Active,
            generation: 0,
            rotation: RotationState::Current,
            created_at: now,
            rotated_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            kek_id: None,
            sealed: Sealed::default(),
        };
        record.sealed = self.seal(&record, new.secret.expose_secret()).await?;
        record.kek_id = Some(envelope::kek_id_of(record.sealed.as_bytes())?);
        self.store.insert(&record).await?;
        tracing::debug!(credential = %id, kind = %record.kind, partner = %record.partner, "credential created");
        Ok(record.meta())
    }

    /// Metadata of every credential of the context's partner; no secret.
    pub async fn list(&self, ctx: &AuditContext) -> Result<Vec<CredentialMeta>, Error> {
        let result = self
            .store
            .list(&ctx.partner)
            .await
            .map(|rs| rs.iter().map(CredentialRecord::meta).collect::<Vec<_>>());
        self.record(ctx, actions::LIST, None, &result).await?;
        result
    }

    /// Metadata of one credential of the context's partner; not audited, it
    /// holds no secret.
    pub async fn get(&self, ctx: &AuditContext, id: CredentialId) -> Result<CredentialMeta, Error> {
        self.store
            .get(&ctx.partner, id)
            .await?
            .map(|r| r.meta())
            .ok_or_else(|| VaultError::NotFound.into())
    }

    /// Opens a credential's secret, if the acting user owns it
    /// ([`RevealScope::Own`]). The audit entry is written before the secret
    /// is handed out; if it can not be written, nothing is revealed.
    pub async fn reveal(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
    ) -> Result<SecretSlice<u8>, Error> {
        self.reveal_scoped(ctx, id, RevealScope::Own).await
    }

    fn check_owner(
        ctx: &AuditContext,
        record: &CredentialRecord,
        scope: RevealScope,
    ) -> Result<(), Error> {
        if scope == RevealScope::Own && ctx.actor.as_ref() != Some(&record.owner) {
            return Err(VaultError::NotOwner.into());
        }
        Ok(())
    }

    /// Opens a credential's secret within `scope`. A credential owned by
    /// another user is refused with [`VaultError::NotOwner`] unless `scope`
    /// is [`RevealScope::Partner`]; one past its `expires_at` with
    /// [`VaultError::Expired`]; each refusal is audited as `denied`.
    pub async fn reveal_scoped(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        scope: RevealScope,
    ) -> Result<SecretSlice<u8>, Error> {
        let result = self.reveal_inner(ctx, id, scope).await;
        self.record(ctx, actions::REVEAL, Some(id), &result).await?;
        result
    }

    async fn reveal_inner(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        scope: RevealScope,
    ) -> Result<SecretSlice<u8>, Error> {
        let record = self.active(ctx, id).await?;
        Self::check_owner(ctx, &record, scope)?;
        // A secret past its expiry no longer works at its issuer; handing it
        // out would only hide that it needs replacing.
        if record.expires_at.is_some_and(|at| self.is_past(at)) {
            return Err(VaultError::Expired.into());
        }
        if let Some(profile) = self.directory.partner(&record.partner) {
            let policy = profile.credential_rotation;
            let state = policy::evaluate(&policy, record.rotated_at, self.clock.now());
            if state == RotationState::Overdue && policy.block_when_overdue {
                return Err(VaultError::RotationOverdue.into());
            }
        }
        self.open(&record)
    }

    /// Replaces a credential's secret, if the acting user owns it
    /// ([`RevealScope::Own`]): a new data key, a new envelope under the
    /// primary KEK, the generation one higher.
    pub async fn rotate(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        secret: SecretSlice<u8>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<CredentialMeta, Error> {
        self.rotate_scoped(ctx, id, secret, expires_at, RevealScope::Own)
            .await
    }

    /// [`CredentialService::rotate`] within `scope`: another user's
    /// credential is refused with [`VaultError::NotOwner`] (audited as
    /// `denied`) unless `scope` is [`RevealScope::Partner`].
    pub async fn rotate_scoped(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        secret: SecretSlice<u8>,
        expires_at: Option<OffsetDateTime>,
        scope: RevealScope,
    ) -> Result<CredentialMeta, Error> {
        let result = self.rotate_inner(ctx, id, &secret, expires_at, scope).await;
        self.record(ctx, actions::ROTATE, Some(id), &result).await?;
        result
    }

    async fn rotate_inner(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        secret: &SecretSlice<u8>,
        expires_at: Option<OffsetDateTime>,
        scope: RevealScope,
    ) -> Result<CredentialMeta, Error> {
        let before = self.active(ctx, id).await?;
        Self::check_owner(ctx, &before, scope)?;
        self.check_expiry(expires_at)?;
        let mut after = before.clone();
        after.generation = before
            .generation
            .checked_add(1)
            .ok_or(VaultError::Invalid("generation"))?;
        after.rotated_at = super::to_stored_precision(self.clock.now());
        after.rotation = RotationState::Current;
        // The old expiry carries over unless it has passed: it described
        // the secret being replaced, and keeping it would leave the new one
        // born expired.
        after.expires_at = expires_at.or(before.expires_at.filter(|&at| !self.is_past(at)));
        after.sealed = self.seal(&after, secret.expose_secret()).await?;
        after.kek_id = Some(envelope::kek_id_of(after.sealed.as_bytes())?);
        if !self.store.replace(&before, &after).await? {
            return Err(VaultError::Concurrent.into());
        }
        Ok(after.meta())
    }

    /// Revokes a credential and erases its envelope, if the acting user
    /// owns it ([`RevealScope::Own`]).
    pub async fn revoke(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
    ) -> Result<CredentialMeta, Error> {
        self.revoke_scoped(ctx, id, RevealScope::Own).await
    }

    /// [`CredentialService::revoke`] within `scope`: another user's
    /// credential is refused with [`VaultError::NotOwner`] (audited as
    /// `denied`) unless `scope` is [`RevealScope::Partner`].
    pub async fn revoke_scoped(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        scope: RevealScope,
    ) -> Result<CredentialMeta, Error> {
        let result = self.revoke_inner(ctx, id, scope).await;
        self.record(ctx, actions::REVOKE, Some(id), &result).await?;
        result
    }

    async fn revoke_inner(
        &self,
        ctx: &AuditContext,
        id: CredentialId,
        scope: RevealScope,
    ) -> Result<CredentialMeta, Error> {
        let before = self.active(ctx, id).await?;
        Self::check_owner(ctx, &before, scope)?;
        let mut after = before.clone();
        after.status = CredentialStatus::Revoked;
        after.revoked_at = Some(super::to_stored_precision(self.clock.now()));
        after.sealed = Sealed::default();
        after.kek_id = None;
        if !self.store.replace(&before, &after).await? {
            return Err(VaultError::Concurrent.into());
        }
        Ok(after.meta())
    }

    fn provider_reference(issuer: &str, subject: &str) -> String {
        format!("{issuer} {subject}")
    }
}

fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[async_trait]
impl Vault for CredentialService {
    async fn holds_provider_token(&self, issuer: &str, subject: &str) -> Result<bool, Error> {
        let reference = Self::provider_reference(issuer, subject);
        for profile in self.directory.partners() {
            let found = self
                .store
                .find_by_reference(&profile.id, CredentialKind::OauthRefreshToken, &reference)
                .await?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn keep_provider_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> Result<(), Error> {
        let reference = Self::provider_reference(issuer, subject);
        let ctx = AuditContext::user(user.partner.clone(), user.id.clone(), Channel::Web);
        let secret = SecretSlice::from(token.expose_secret().as_bytes().to_vec());
        let existing = self
            .store
            .find_by_reference(&user.partner, CredentialKind::OauthRefreshToken, &reference)
            .await?;
        match existing {
            Some(record) => self.rotate(&ctx, record.id, secret, None).await.map(|_| ()),
            None => self
                .create(
                    &ctx,
                    NewCredential {
                        kind: CredentialKind::OauthRefreshToken,
                        owner: Some(user.id.clone()),
                        label: cut(&format!("sign-in refresh token ({issuer})"), MAX_LABEL_LEN),
                        broker: None,
                        reference: Some(reference),
                        expires_at: None,
                        secret,
                    },
                )
                .await
                .map(|_| ()),
        }
    }

    async fn provider_refresh_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<SecretString>, Error> {
        let reference = Self::provider_reference(issuer, subject);
        let Some(record) = self
            .store
            .find_by_reference(&user.partner, CredentialKind::OauthRefreshToken, &reference)
            .await?
        else {
            return Ok(None);
        };
        // The reveal is audited like any other, on the user's behalf.
        let ctx = AuditContext::user(user.partner.clone(), user.id.clone(), Channel::Api);
        let secret = self.reveal(&ctx, record.id).await?;
        let text = std::str::from_utf8(secret.expose_secret())
            .map_err(|_| VaultError::Malformed("provider refresh token is not UTF-8"))?;
        Ok(Some(SecretString::from(text.to_owned())))
    }
}
