//! The credential store trait.

use async_trait::async_trait;

use super::{CredentialKind, CredentialRecord, KekId, KeyReferences, RotationState};
use crate::{CredentialId, Error, PartnerId};

/// Persists [`CredentialRecord`]s. Every query about a credential takes the
/// partner it belongs to: a record is never visible through another partner.
/// The only queries that cross partners concern key management (which
/// partners hold records under a KEK, how many), and return no secret.
#[async_trait]
pub trait CredentialStore: KeyReferences + Send + Sync + 'static {
    /// Inserts a new record; [`Error::Conflict`] if the id exists (the stored
    /// one is untouched).
    async fn insert(&self, record: &CredentialRecord) -> Result<(), Error>;

    /// One record of `partner`.
    async fn get(
        &self,
        partner: &PartnerId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, Error>;

    /// Every record of `partner`, oldest first.
    async fn list(&self, partner: &PartnerId) -> Result<Vec<CredentialRecord>, Error>;

    /// The active record of `partner` with this kind and external reference.
    async fn find_by_reference(
        &self,
        partner: &PartnerId,
        kind: CredentialKind,
        reference: &str,
    ) -> Result<Option<CredentialRecord>, Error>;

    /// Replaces `before` with `after` (same partner and id) if the stored
    /// record still has `before`'s generation and status; returns whether it
    /// did.
    async fn replace(
        &self,
        before: &CredentialRecord,
        after: &CredentialRecord,
    ) -> Result<bool, Error>;

    /// Records the rotation state of a record at `generation`; returns
    /// whether a record matched.
    async fn set_rotation_state(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        generation: u32,
        state: RotationState,
    ) -> Result<bool, Error>;

    /// Swaps the envelope if it still equals `expected`: the rewrap job's
    /// per-row compare-and-set.
    async fn swap_envelope(
        &self,
        partner: &PartnerId,
        id: CredentialId,
        expected: &[u8],
        kek: &KekId,
        envelope: &[u8],
    ) -> Result<bool, Error>;

    /// Partners holding at least one record under `kek`.
    async fn partners_with_kek(&self, kek: &KekId) -> Result<Vec<PartnerId>, Error>;

    /// Up to `limit` records of `partner` under `kek`, by id, after `after`.
    async fn list_for_kek(
        &self,
        partner: &PartnerId,
        kek: &KekId,
        after: Option<CredentialId>,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, Error>;
}
