//! Moving records to the primary KEK after a rotation.
//!
//! The job unwraps each record's data key with the old KEK and wraps it
//! under the primary; the payload's bytes are copied unchanged and never
//! decrypted. Each row is written with a compare-and-set on its envelope, so
//! a row rotated or rewrapped meanwhile is left alone. The job keeps no
//! state of its own: it asks the store which rows still name the old key,
//! so running it again after an interruption picks up where it stopped, and
//! running it twice changes nothing the second time.

use std::sync::Arc;

use super::envelope::{self, Binding};
use super::{CredentialStore, KekId, VaultError, VaultKeyring};
use crate::Error;

/// Rows fetched per query.
pub const DEFAULT_BATCH: usize = 100;

/// What a rewrap run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Rows moved to the primary key.
    pub rewrapped: u64,
    /// Rows changed by someone else between read and write (already moved).
    pub skipped: u64,
    /// Rows whose data key did not unwrap; left as they are.
    pub failed: u64,
    /// Rows still naming the old key after this run.
    pub remaining: u64,
}

/// Rewraps every record under one KEK to the primary KEK.
pub struct RewrapJob {
    store: Arc<dyn CredentialStore>,
    keys: Arc<VaultKeyring>,
    batch: usize,
}

impl std::fmt::Debug for RewrapJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewrapJob")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl RewrapJob {
    /// A job over `store` with `keys`.
    pub fn new(store: Arc<dyn CredentialStore>, keys: Arc<VaultKeyring>) -> Self {
        Self {
            store,
            keys,
            batch: DEFAULT_BATCH,
        }
    }

    /// Fetches `batch` rows per query.
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Moves rows from `from` to the primary, at most `max_rows` of them
    /// when given (a bounded run; call again to go on).
    pub async fn run(&self, from: &KekId, max_rows: Option<u64>) -> Result<RewrapReport, Error> {
        let primary = self.keys.primary_id();
        if &primary == from {
            return Err(VaultError::Invalid("rewrap source is the primary key").into());
        }
        let old = self.keys.key(from).ok_or(VaultError::UnknownKey)?;
        let mut report = RewrapReport::default();
        let budget = max_rows.unwrap_or(u64::MAX);

        'partners: for partner in self.store.partners_with_kek(from).await? {
            let mut after = None;
            loop {
                let rows = self
                    .store
                    .list_for_kek(&partner, from, after, self.batch)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id);
                let short = rows.len() < self.batch;

                for row in rows {
                    if report.rewrapped + report.skipped + report.failed >= budget {
                        break 'partners;
                    }
                    let binding = Binding {
                        partner: &row.partner,
                        kind: row.kind,
                        credential: row.id,
                    };
                    let new_key = self.keys.wrapping_key().await?;
                    let moved = match envelope::rewrap(
                        &old,
                        &new_key,
                        &binding,
                        row.sealed.as_bytes(),
                    ) {
                        Ok(moved) => moved,
                        Err(e) => {
                            tracing::warn!(credential = %row.id, partner = %row.partner, error = %e, "rewrap: data key does not unwrap");
                            report.failed += 1;
                            continue;
                        }
                    };
                    let swapped = self
                        .store
                        .swap_envelope(
                            &row.partner,
                            row.id,
                            row.sealed.as_bytes(),
                            new_key.id(),
                            &moved,
                        )
                        .await?;
                    if swapped {
                        report.rewrapped += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
                if short {
                    break;
                }
            }
        }

        if report.rewrapped + report.skipped + report.failed < budget {
            self.keys.rewrap_audit_key().await?;
        }
        report.remaining = self.store.count_for_kek(from).await?;
        tracing::info!(
            from = %from,
            to = %primary,
            rewrapped = report.rewrapped,
            skipped = report.skipped,
            failed = report.failed,
            remaining = report.remaining,
            "vault rewrap run"
        );
        Ok(report)
    }
}
