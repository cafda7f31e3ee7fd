//! The audit log: append-only entries chained by a keyed hash.
//!
//! Every entry carries a sequence number, its UTC time, the partner, the
//! actor and impersonator, the channel, the action, the target and the
//! outcome, the previous entry's hash and its own hash:
//! `HMAC-SHA256(audit key, canonical encoding of all of those)`. The audit
//! key is a random key kept wrapped under the vault's primary KEK (see
//! [`super::VaultKeyring::audit_key`]); each entry records its id. Changing, deleting, reordering or inserting a row breaks
//! the chain at that row, and [`AuditLog::verify`] names the first broken
//! sequence number.
//!
//! Entries never hold a secret, token or one-time code: the types only take
//! ids, fixed action names and short, checked free text.
//!
//! Retention is at least [`MIN_RETENTION_DAYS`]; the purge removes only the
//! oldest run of entries older than that, and leaves a keyed anchor so the
//! verifier still checks the remaining chain from its first entry. Removing
//! entries at the end of the chain can not be told from a quiet period by
//! the chain alone; shipping exports elsewhere covers that.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{AuditKey, KekId, VaultError};
use crate::{Clock, Error, PartnerId, UserId};

/// Shortest retention accepted, in days.
pub const MIN_RETENTION_DAYS: u32 = 365;
/// Longest action name.
pub const MAX_ACTION_LEN: usize = 64;
/// Longest target.
pub const MAX_TARGET_LEN: usize = 256;
/// Longest detail text.
pub const MAX_DETAIL_LEN: usize = 512;
/// Most entries one query returns.
pub const MAX_QUERY_LIMIT: usize = 1000;

const CHAIN_LABEL: &[u8] = b"partner-auth/audit/v1";
const ANCHOR_LABEL: &[u8] = b"partner-auth/audit-anchor/v1";

/// How a request reached the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A browser session.
    Web,
    /// An API client.
    Api,
    /// A background task.
    Scheduler,
    /// An operator's command line.
    Cli,
}

impl Channel {
    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Api => "api",
            Channel::Scheduler => "scheduler",
            Channel::Cli => "cli",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        match s {
            "web" => Ok(Channel::Web),
            "api" => Ok(Channel::Api),
            "scheduler" => Ok(Channel::Scheduler),
            "cli" => Ok(Channel::Cli),
            _ => Err(VaultError::Invalid("channel")),
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It failed (not found, invalid, store failure).
    Failure,
    /// It was refused (policy, permission, reuse).
    Denied,
}

impl Outcome {
    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            _ => Err(VaultError::Invalid("outcome")),
        }
    }
}

/// Who did something, for which partner, through which channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// The partner acted within.
    pub partner: PartnerId,
    /// The user acting; `None` for the system itself.
    pub actor: Option<UserId>,
    /// The staff member acting as `actor`, when impersonating.
    pub impersonator: Option<UserId>,
    /// How the request arrived.
    pub channel: Channel,
}

impl AuditContext {
    /// A user acting for themselves.
    pub fn user(partner: PartnerId, actor: UserId, channel: Channel) -> Self {
        Self {
            partner,
            actor: Some(actor),
            impersonator: None,
            channel,
        }
    }

    /// The system acting (scheduler, rewrap job).
    pub fn system(partner: PartnerId, channel: Channel) -> Self {
        Self {
            partner,
            actor: None,
            impersonator: None,
            channel,
        }
    }

    /// The context of a verified caller: its partner, user and impersonator.
    pub fn from_principal(principal: &crate::Principal, channel: Channel) -> Self {
        Self {
            partner: principal.partner().clone(),
            actor: Some(principal.user().clone()),
            impersonator: principal.session.impersonator.clone(),
            channel,
        }
    }

    /// Records `by` as the impersonator.
    #[must_use]
    pub fn impersonated_by(mut self, by: UserId) -> Self {
        self.impersonator = Some(by);
        self
    }
}

/// Something to audit, before it gets a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The partner, when the event has one (a failed login may not).
    pub partner: Option<PartnerId>,
    /// The acting user.
    pub actor: Option<UserId>,
    /// The impersonating staff member.
    pub impersonator: Option<UserId>,
    /// How the request arrived.
    pub channel: Channel,
    /// What was done: `a-z`, `0-9`, `.` and `_`, for example
    /// `credential.reveal`.
    pub action: String,
    /// What it was done to, for example `credential:UUID`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Short, non-secret detail (a reason code).
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event in `ctx` with the given action, target and outcome.
    pub fn new(ctx: &AuditContext, action: &str, target: Option<String>, outcome: Outcome) -> Self {
        Self {
            partner: Some(ctx.partner.clone()),
            actor: ctx.actor.clone(),
            impersonator: ctx.impersonator.clone(),
            channel: ctx.channel,
            action: action.to_owned(),
            target,
            outcome,
            detail: None,
        }
    }

    /// Adds a detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn check(&self) -> Result<(), VaultError> {
        let action_ok = !self.action.is_empty()
            && self.action.len() <= MAX_ACTION_LEN
            && self
                .action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        if !action_ok {
            return Err(VaultError::Invalid("audit action"));
        }
        let text_ok = |v: &Option<String>, max: usize| {
            v.as_ref()
                .is_none_or(|t| t.len() <= max && !t.chars().any(char::is_control))
        };
        if !text_ok(&self.target, MAX_TARGET_LEN) {
            return Err(VaultError::Invalid("audit target"));
        }
        if !text_ok(&self.detail, MAX_DETAIL_LEN) {
            return Err(VaultError::Invalid("audit detail"));
        }
        Ok(())
    }
}

/// A 32-byte chain hash, shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, VaultError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(VaultError::Invalid("chain hash"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let digit = |c: u8| char::from(c).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = u8::try_from(h * 16 + l).unwrap_or(0),
                _ => return Err(VaultError::Invalid("chain hash")),
            }
        }
        Ok(Self(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was written, UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The partner, if any.
    pub partner: Option<PartnerId>,
    /// The acting user.
    pub actor: Option<UserId>,
    /// The impersonating staff member.
    pub impersonator: Option<UserId>,
    /// How the request arrived.
    pub channel: Channel,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Short detail.
    pub detail: Option<String>,
    /// The audit key that computed `hash`.
    pub key_id: KekId,
    /// The previous entry's hash (zeros for the first).
    pub prev_hash: ChainHash,
    /// This entry's keyed hash.
    pub hash: ChainHash,
}

fn put(mac: &mut hmac::Hmac<sha2::Sha256>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    mac.update(&len.to_be_bytes());
    mac.update(field);
}

fn put_opt(mac: &mut hmac::Hmac<sha2::Sha256>, field: Option<&str>) {
    match field {
        None => mac.update(&[0]),
        Some(v) => {
            mac.update(&[1]);
            put(mac, v.as_bytes());
        }
    }
}

impl AuditEntry {
    /// The keyed hash of this entry under `key` (its `hash` field excluded).
    pub fn compute_hash(&self, key: &super::AuditKey) -> ChainHash {
        let mut mac = key.mac();
        mac.update(CHAIN_LABEL);
        mac.update(&self.seq.to_be_bytes());
        let nanos = i64::try_from(self.at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        mac.update(&nanos.to_be_bytes());
        put(&mut mac, self.key_id.as_str().as_bytes());
        put_opt(&mut mac, self.partner.as_ref().map(PartnerId::as_str));
        put_opt(&mut mac, self.actor.as_ref().map(UserId::as_str));
        put_opt(&mut mac, self.impersonator.as_ref().map(UserId::as_str));
        put(&mut mac, self.channel.as_str().as_bytes());
        put(&mut mac, self.action.as_bytes());
        put_opt(&mut mac, self.target.as_deref());
        put(&mut mac, self.outcome.as_str().as_bytes());
        put_opt(&mut mac, self.detail.as_deref());
        mac.update(&self.prev_hash.0);
        ChainHash(mac.finalize().into_bytes().into())
    }
}

/// Where the chain continues after a retention purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// The last purged sequence number.
    pub seq: u64,
    /// Its hash: the next entry's `prev_hash`.
    pub hash: ChainHash,
    /// The audit key that computed `mac`.
    pub key_id: KekId,
    /// When the purge ran.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Keyed hash over the fields above.
    pub mac: ChainHash,
}

impl AuditAnchor {
    /// The keyed hash of the anchor under `key`.
    pub fn compute_mac(&self, key: &super::AuditKey) -> ChainHash {
        let mut mac = key.mac();
        mac.update(ANCHOR_LABEL);
        mac.update(&self.seq.to_be_bytes());
        mac.update(&self.hash.0);
        put(&mut mac, self.key_id.as_str().as_bytes());
        let nanos = i64::try_from(self.at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        mac.update(&nanos.to_be_bytes());
        ChainHash(mac.finalize().into_bytes().into())
    }
}

/// Which entries of a partner to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Entries before this time.
    pub to: Option<OffsetDateTime>,
    /// Oldest first: entries after this sequence number; newest first:
    /// entries before it.
    pub cursor: Option<u64>,
    /// At most this many (capped at [`MAX_QUERY_LIMIT`]).
    pub limit: usize,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self {
            from: None,
            to: None,
            cursor: None,
            limit: 100,
            newest_first: false,
        }
    }
}

/// Persists the audit chain. Append-only, except the retention purge.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// The entry with the highest sequence number.
    async fn head(&self) -> Result<Option<AuditEntry>, Error>;

    /// Appends an entry; [`Error::Conflict`] if its sequence number is taken.
    async fn append(&self, entry: &AuditEntry) -> Result<(), Error>;

    /// Up to `limit` entries after `after_seq`, across partners, in order;
    /// for the verifier and the purge.
    async fn scan(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, Error>;

    /// Entries of one partner.
    async fn query(
        &self,
        partner: &PartnerId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, Error>;

    /// The anchor left by the last purge.
    async fn anchor(&self) -> Result<Option<AuditAnchor>, Error>;

    /// Stores `anchor` and deletes every entry up to and including
    /// `anchor.seq`, in one transaction; returns how many were deleted.
    async fn purge_through(&self, anchor: &AuditAnchor) -> Result<u64, Error>;
}

/// Why the chain broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The entry with this sequence number is missing.
    Missing,
    /// The entry's hash does not match its content.
    Altered,
    /// The entry's `prev_hash` does not match the entry before.
    Linkage,
    /// The entry names an audit key that is not loaded.
    UnknownKey,
    /// The purge anchor was altered.
    Anchor,
}

/// The first place the chain fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first bad sequence number.
    pub seq: u64,
    /// What is wrong there.
    pub kind: BreakKind,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked and found good.
    pub checked: u64,
    /// The first break, if any.
    pub first_broken: Option<ChainBreak>,
}

/// Checks entries one by one, in sequence order.
pub struct ChainVerifier<'a> {
    key: &'a AuditKey,
    expected_seq: u64,
    prev: ChainHash,
    checked: u64,
}

impl<'a> ChainVerifier<'a> {
    /// Starts at the anchor (or at sequence 1 with a zero hash); fails if the
    /// anchor's keyed hash does not match.
    pub fn new(key: &'a AuditKey, anchor: Option<&AuditAnchor>) -> Result<Self, ChainBreak> {
        let (expected_seq, prev) = match anchor {
            None => (1, ChainHash::default()),
            Some(a) => {
                let good = &a.key_id == key.id() && a.compute_mac(key) == a.mac;
                if !good {
                    return Err(ChainBreak {
                        seq: a.seq.saturating_add(1),
                        kind: BreakKind::Anchor,
                    });
                }
                (a.seq.saturating_add(1), a.hash)
            }
        };
        Ok(Self {
            key,
            expected_seq,
            prev,
            checked: 0,
        })
    }

    /// Checks the next entry.
    pub fn feed(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let at = |kind| ChainBreak {
            seq: self.expected_seq,
            kind,
        };
        if entry.seq != self.expected_seq {
            return Err(at(BreakKind::Missing));
        }
        if &entry.key_id != self.key.id() {
            return Err(at(BreakKind::UnknownKey));
        }
        if entry.compute_hash(self.key) != entry.hash {
            return Err(at(BreakKind::Altered));
        }
        if entry.prev_hash != self.prev {
            return Err(at(BreakKind::Linkage));
        }
        self.prev = entry.hash;
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// The columns of a CSV export, in order.
pub const CSV_HEADER: &str =
    "seq,at,partner,actor,impersonator,channel,action,target,outcome,detail,key_id,prev_hash,hash";

fn csv_field(out: &mut String, value: &str) {
    // A leading formula character would be evaluated by spreadsheets.
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&guarded.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&guarded);
    }
}

/// One entry as a CSV row (with the line end).
pub fn csv_row(entry: &AuditEntry) -> String {
    let at = entry
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let fields = [
        entry.seq.to_string(),
        at,
        entry
            .partner
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        entry
            .actor
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        entry
            .impersonator
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        entry.channel.as_str().to_owned(),
        entry.action.clone(),
        entry.target.clone().unwrap_or_default(),
        entry.outcome.as_str().to_owned(),
        entry.detail.clone().unwrap_or_default(),
        entry.key_id.to_string(),
        entry.prev_hash.to_hex(),
        entry.hash.to_hex(),
    ];
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, f);
    }
    out.push_str("\r\n");
    out
}

/// Appends, verifies, purges and exports the audit chain.
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    key: AuditKey,
    clock: Arc<dyn Clock>,
    retention: Duration,
    append_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// An audit log over `store`, hashing with `key`, keeping entries for
    /// `retention_days` (at least [`MIN_RETENTION_DAYS`]).
    pub fn new(
        store: Arc<dyn AuditStore>,
        key: AuditKey,
        clock: Arc<dyn Clock>,
        retention_days: u32,
    ) -> Result<Self, Error> {
        if retention_days < MIN_RETENTION_DAYS {
            return Err(VaultError::RetentionTooShort {
                min: MIN_RETENTION_DAYS,
                got: retention_days,
            }
            .into());
        }
        Ok(Self {
            store,
            key,
            clock,
            retention: Duration::days(i64::from(retention_days)),
            append_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.store
    }

    /// How long entries are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Appends one entry at the end of the chain and returns it.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditEntry, Error> {
        event.check()?;
        let _guard = self.append_lock.lock().await;
        let key_id = self.key.id().clone();

        // Another process may append between our read and our write; the
        // store's unique sequence makes that a conflict, and we go again.
        for _ in 0..32 {
            let (seq, prev) = match self.store.head().await? {
                Some(head) => (head.seq + 1, head.hash),
                None => match self.store.anchor().await? {
                    Some(anchor) => (anchor.seq + 1, anchor.hash),
                    None => (1, ChainHash::default()),
                },
            };
            let mut entry = AuditEntry {
                seq,
                at: super::to_stored_precision(self.clock.now()),
                partner: event.partner.clone(),
                actor: event.actor.clone(),
                impersonator: event.impersonator.clone(),
                channel: event.channel,
                action: event.action.clone(),
                target: event.target.clone(),
                outcome: event.outcome,
                detail: event.detail.clone(),
                key_id: key_id.clone(),
                prev_hash: prev,
                hash: ChainHash::default(),
            };
            entry.hash = entry.compute_hash(&self.key);
            match self.store.append(&entry).await {
                Ok(()) => return Ok(entry),
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            what: "audit sequence",
        })
    }

    /// Walks the whole chain and names the first broken entry.
    pub async fn verify(&self) -> Result<VerifyReport, Error> {
        let anchor = self.store.anchor().await?;
        let mut verifier = match ChainVerifier::new(&self.key, anchor.as_ref()) {
            Ok(v) => v,
            Err(b) => {
                return Ok(VerifyReport {
                    checked: 0,
                    first_broken: Some(b),
                });
            }
        };
        let mut after = anchor.map_or(0, |a| a.seq);
        loop {
            let batch = self.store.scan(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for entry in &batch {
                if let Err(b) = verifier.feed(entry) {
                    return Ok(VerifyReport {
                        checked: verifier.checked(),
                        first_broken: Some(b),
                    });
                }
            }
        }
        Ok(VerifyReport {
            checked: verifier.checked(),
            first_broken: None,
        })
    }

    /// Deletes the oldest run of entries older than the retention, leaving
    /// an anchor. An entry younger than the retention is never removed, nor
    /// anything after it. Returns how many entries were removed.
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        let _guard = self.append_lock.lock().await;
        let cutoff = self.clock.now() - self.retention;
        let mut after = self.store.anchor().await?.map_or(0, |a| a.seq);
        let mut last_old: Option<AuditEntry> = None;
        'scan: loop {
            let batch = self.store.scan(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for entry in batch {
                if entry.at >= cutoff {
                    break 'scan;
                }
                last_old = Some(entry);
            }
        }
        let Some(last_old) = last_old else {
            return Ok(0);
        };

        let mut anchor = AuditAnchor {
            seq: last_old.seq,
            hash: last_old.hash,
            key_id: self.key.id().clone(),
            at: super::to_stored_precision(self.clock.now()),
            mac: ChainHash::default(),
        };
        anchor.mac = anchor.compute_mac(&self.key);
        let removed = self.store.purge_through(&anchor).await?;
        tracing::info!(removed, through = anchor.seq, "audit retention purge");
        Ok(removed)
    }

    /// Entries of `partner` matching `filter`.
    pub async fn list(
        &self,
        partner: &PartnerId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, Error> {
        let mut filter = filter.clone();
        filter.limit = filter.limit.clamp(1, MAX_QUERY_LIMIT);
        self.store.query(partner, &filter).await
    }

    /// Every entry of `partner` in `[from, to)`, oldest first, as JSON Lines
    /// or CSV.
    pub async fn export(
        &self,
        partner: &PartnerId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        format: ExportFormat,
    ) -> Result<String, Error> {
        let mut out = String::new();
        if format == ExportFormat::Csv {
            out.push_str(CSV_HEADER);
            out.push_str("\r\n");
        }
        let mut cursor = None;
        loop {
            let filter = AuditFilter {
                from,
                to,
                cursor,
                limit: MAX_QUERY_LIMIT,
                newest_first: false,
            };
            let batch = self.store.query(partner, &filter).await?;
            let Some(last) = batch.last() else { break };
            cursor = Some(last.seq);
            for entry in &batch {
                match format {
                    ExportFormat::Jsonl => {
                        out.push_str(&serde_json::to_string(entry).map_err(Error::store)?);
                        out.push('\n');
                    }
                    ExportFormat::Csv => out.push_str(&csv_row(entry)),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
