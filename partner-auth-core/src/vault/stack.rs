//! Assembling the vault from stores, a key source, a clock and the
//! directory.

use std::sync::Arc;

use super::{
    AuditEvent, AuditEvents, AuditLog, AuditStore, Channel, CredentialService, CredentialStore,
    KekId, KeyMetaStore, KeyReferences, KeySource, MIN_RETENTION_DAYS, MemoryAuditStore,
    MemoryCredentialStore, MemoryKeyMetaStore, Outcome, ResilientVault, RetryConfig, RewrapJob,
    RewrapReport, RotationScheduler, VaultEventSink, VaultKeyring,
};
use crate::{Clock, Directory, Error};

/// The three stores the vault needs.
#[derive(Clone)]
pub struct VaultStores {
    /// Credentials.
    pub credentials: Arc<dyn CredentialStore>,
    /// Key metadata (states and wrap counts; never key bytes).
    pub keys: Arc<dyn KeyMetaStore>,
    /// The audit chain.
    pub audit: Arc<dyn AuditStore>,
}

impl std::fmt::Debug for VaultStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStores").finish_non_exhaustive()
    }
}

impl VaultStores {
    /// In-memory stores.
    pub fn memory() -> Self {
        Self {
            credentials: Arc::new(MemoryCredentialStore::new()),
            keys: Arc::new(MemoryKeyMetaStore::new()),
            audit: Arc::new(MemoryAuditStore::new()),
        }
    }
}

/// Everything the vault offers, wired together.
#[derive(Clone)]
pub struct VaultStack {
    /// The stores underneath.
    pub stores: VaultStores,
    /// The loaded KEKs.
    pub keys: Arc<VaultKeyring>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Credentials; also a [`super::Vault`] for the login flow.
    pub credentials: Arc<CredentialService>,
    /// Rotation policy scheduler.
    pub scheduler: Arc<RotationScheduler>,
    /// Where vault events go.
    pub events: Arc<dyn VaultEventSink>,
}

impl std::fmt::Debug for VaultStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStack")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl VaultStack {
    /// Loads the keys from `source` and builds the stack over `stores`,
    /// keeping audit entries for [`MIN_RETENTION_DAYS`].
    pub async fn build(
        stores: VaultStores,
        source: &dyn KeySource,
        clock: Arc<dyn Clock>,
        directory: Arc<Directory>,
        events: Arc<dyn VaultEventSink>,
    ) -> Result<Self, Error> {
        Self::build_with_retention(stores, source, clock, directory, events, MIN_RETENTION_DAYS)
            .await
    }

    /// [`VaultStack::build`] with another audit retention (at least
    /// [`MIN_RETENTION_DAYS`]).
    pub async fn build_with_retention(
        stores: VaultStores,
        source: &dyn KeySource,
        clock: Arc<dyn Clock>,
        directory: Arc<Directory>,
        events: Arc<dyn VaultEventSink>,
        retention_days: u32,
    ) -> Result<Self, Error> {
        let material = source.load().await?;
        tracing::info!(source = %source.describe(), keys = material.len(), "vault keys loaded");
        let keys =
            Arc::new(VaultKeyring::open(material, stores.keys.clone(), clock.clone()).await?);
        let audit = Arc::new(AuditLog::new(
            stores.audit.clone(),
            keys.audit_key().await?,
            clock.clone(),
            retention_days,
        )?);
        let credentials = Arc::new(CredentialService::new(
            stores.credentials.clone(),
            keys.clone(),
            audit.clone(),
            directory.clone(),
            clock.clone(),
        ));
        let scheduler = Arc::new(RotationScheduler::new(
            stores.credentials.clone(),
            directory,
            clock,
            audit.clone(),
            events.clone(),
        ));
        Ok(Self {
            stores,
            keys,
            audit,
            credentials,
            scheduler,
            events,
        })
    }

    /// The vault to hand the login flow: the credential service behind a
    /// retry queue, so a failing store never fails a login. Starts a task.
    pub fn login_vault(&self, config: RetryConfig) -> Arc<ResilientVault> {
        ResilientVault::spawn(self.credentials.clone(), self.events.clone(), config)
    }

    /// An event sink that writes session events to the audit log. Starts a
    /// task.
    pub fn audit_events(&self, capacity: usize) -> Arc<AuditEvents> {
        AuditEvents::spawn(self.audit.clone(), capacity)
    }

    /// Runs the rotation scheduler and the audit retention purge every
    /// `every`, until the task is aborted. A failed pass is logged; the next
    /// one runs on time.
    pub fn spawn_maintenance(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let scheduler = self.scheduler.clone();
        let audit = self.audit.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                if let Err(e) = scheduler.run_once().await {
                    tracing::warn!(error = %e, "credential rotation pass failed");
                }
                if let Err(e) = audit.purge_expired().await {
                    tracing::warn!(error = %e, "audit retention purge failed");
                }
            }
        })
    }

    /// A rewrap job over the credential store.
    pub fn rewrap_job(&self) -> RewrapJob {
        RewrapJob::new(self.stores.credentials.clone(), self.keys.clone())
    }

    async fn audit_key_event(
        &self,
        action: &str,
        kek: &KekId,
        channel: Channel,
        result: Result<String, &Error>,
    ) -> Result<(), Error> {
        let (outcome, detail) = match result {
            Ok(detail) => (Outcome::Success, detail),
            Err(e) => (
                Outcome::Failure,
                format!("error={}", cut(&e.to_string(), 200)),
            ),
        };
        let event = AuditEvent {
            partner: None,
            actor: None,
            impersonator: None,
            channel,
            action: action.to_owned(),
            target: Some(format!("kek:{kek}")),
            outcome,
            detail: Some(detail),
        };
        self.audit.append(event).await.map(|_| ())
    }

    /// Moves every record (and the audit key) from `from` to the primary
    /// key, and writes an audit entry with the counts.
    pub async fn rewrap(&self, from: &KekId, channel: Channel) -> Result<RewrapReport, Error> {
        self.rewrap_bounded(from, channel, super::rewrap::DEFAULT_BATCH, None)
            .await
    }

    /// [`VaultStack::rewrap`] fetching `batch` rows per query and stopping
    /// after `max_rows` rows when given (call again to go on; the audit key
    /// moves in the run that finds no row left over its budget). Each call
    /// writes one audit entry with its counts.
    pub async fn rewrap_bounded(
        &self,
        from: &KekId,
        channel: Channel,
        batch: usize,
        max_rows: Option<u64>,
    ) -> Result<RewrapReport, Error> {
        let result = self
            .rewrap_job()
            .with_batch(batch)
            .run(from, max_rows)
            .await;
        let detail = result.as_ref().map(|r| {
            format!(
                "rewrapped={} skipped={} failed={} remaining={}",
                r.rewrapped, r.skipped, r.failed, r.remaining
            )
        });
        self.audit_key_event("vault.key_rewrap", from, channel, detail)
            .await?;
        result
    }

    /// Retires `kek` if no credential and not the audit key refer to it,
    /// and writes an audit entry either way.
    pub async fn retire_key(&self, kek: &KekId, channel: Channel) -> Result<(), Error> {
        let refs: [&dyn KeyReferences; 1] = [self.stores.credentials.as_ref()];
        let result = self.keys.retire(kek, &refs).await;
        self.audit_key_event(
            "vault.key_retire",
            kek,
            channel,
            result.as_ref().map(|()| String::from("retired")),
        )
        .await?;
        result
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
