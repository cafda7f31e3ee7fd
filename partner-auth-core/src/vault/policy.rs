//! Credential rotation policy and the scheduler that applies it.
//!
//! A credential is `current` while younger than `max_age_days -
//! warn_before_days`, `due` from then until it is `max_age_days` old, and
//! `overdue` once older than that. With the default policy (30 days, warned
//! 7 days before) a credential rotated on day 0 is due on days 23 to 30 and
//! overdue from day 31 on ("older than 30 days").

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::{
    AuditContext, AuditEvent, AuditLog, Channel, CredentialStatus, CredentialStore, Outcome,
    RotationState, VaultEvent, VaultEventSink,
};
use crate::{Clock, Directory, Error, RotationPolicy};

/// Where a credential last rotated at `rotated_at` stands at `now`.
pub fn evaluate(
    policy: &RotationPolicy,
    rotated_at: OffsetDateTime,
    now: OffsetDateTime,
) -> RotationState {
    let age = now - rotated_at;
    let max = Duration::days(i64::from(policy.max_age_days));
    let warn = Duration::days(i64::from(policy.warn_before_days.min(policy.max_age_days)));
    if age > max {
        RotationState::Overdue
    } else if age >= max - warn {
        RotationState::Due
    } else {
        RotationState::Current
    }
}

/// What one scheduler pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Active credentials looked at.
    pub checked: u64,
    /// Of those, due.
    pub due: u64,
    /// Of those, overdue.
    pub overdue: u64,
    /// Credentials whose state changed in this pass (one event each when it
    /// became due or overdue).
    pub changed: u64,
}

/// Marks credentials due and overdue per their partner's policy, raising an
/// event and writing an audit entry on every change.
pub struct RotationScheduler {
    store: Arc<dyn CredentialStore>,
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditLog>,
    events: Arc<dyn VaultEventSink>,
}

impl std::fmt::Debug for RotationScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationScheduler").finish_non_exhaustive()
    }
}

impl RotationScheduler {
    /// A scheduler over these stores.
    pub fn new(
        store: Arc<dyn CredentialStore>,
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditLog>,
        events: Arc<dyn VaultEventSink>,
    ) -> Self {
        Self {
            store,
            directory,
            clock,
            audit,
            events,
        }
    }

    /// One pass over every partner's active credentials.
    pub async fn run_once(&self) -> Result<ScanReport, Error> {
        let now = self.clock.now();
        let mut report = ScanReport::default();
        for profile in self.directory.partners() {
            let policy = profile.credential_rotation;
            for record in self.store.list(&profile.id).await? {
                if record.status != CredentialStatus::Active {
                    continue;
                }
                report.checked += 1;
                let state = evaluate(&policy, record.rotated_at, now);
                match state {
                    RotationState::Due => report.due += 1,
                    RotationState::Overdue => report.overdue += 1,
                    RotationState::Current => {}
                }
                if state == record.rotation {
                    continue;
                }
                let stored = self
                    .store
                    .set_rotation_state(&record.partner, record.id, record.generation, state)
                    .await?;
                if !stored {
                    continue;
                }
                report.changed += 1;

                let age_days = (now - record.rotated_at).whole_days();
                let (event, action) = match state {
                    RotationState::Current => continue,
                    RotationState::Due => (
                        VaultEvent::RotationDue {
                            partner: record.partner.clone(),
                            credential: record.id,
                            kind: record.kind,
                            age_days,
                        },
                        "credential.rotation_due",
                    ),
                    RotationState::Overdue => (
                        VaultEvent::RotationOverdue {
                            partner: record.partner.clone(),
                            credential: record.id,
                            kind: record.kind,
                            age_days,
                        },
                        "credential.rotation_overdue",
                    ),
                };
                self.events.emit(&event);
                let ctx = AuditContext::system(record.partner.clone(), Channel::Scheduler);
                self.audit
                    .append(
                        AuditEvent::new(
                            &ctx,
                            action,
                            Some(format!("credential:{}", record.id)),
                            Outcome::Success,
                        )
                        .with_detail(format!("age_days={age_days}")),
                    )
                    .await?;
            }
        }
        Ok(report)
    }

    /// Runs a pass every `every` until the task is aborted; a failed pass is
    /// logged and the next one runs on time.
    pub fn spawn(self: Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                match self.run_once().await {
                    Ok(r) => tracing::debug!(
                        checked = r.checked,
                        due = r.due,
                        overdue = r.overdue,
                        "credential rotation pass"
                    ),
                    Err(e) => tracing::warn!(error = %e, "credential rotation pass failed"),
                }
            }
        })
    }
}
