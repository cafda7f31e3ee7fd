//! Security events of the session lifecycle as audit entries.
//!
//! [`AuditEvents`] is an [`EventSink`]: it never blocks the login or
//! refresh that raised the event. Events go into a bounded queue; a task
//! appends them to the audit log. When the queue is full the event is
//! dropped, counted and logged, rather than slowing sign-in down.
//!
//! An event's channel is the one the HTTP layer declared for the request
//! that raised it ([`with_request_channel`]): `api` for a request that
//! carried an `Authorization` header, `web` otherwise and when no request
//! declared one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{AuditEvent, AuditLog, Channel, Outcome};
use crate::{EventSink, PartnerId, SecurityEvent, UserId};

/// Default queue capacity.
pub const DEFAULT_QUEUE: usize = 1024;

/// Turns [`SecurityEvent`]s into audit entries through a bounded queue.
pub struct AuditEvents {
    tx: mpsc::Sender<AuditEvent>,
    accepted: AtomicU64,
    dropped: AtomicU64,
    written: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditEvents")
            .field("accepted", &self.accepted)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

tokio::task_local! {
    static REQUEST_CHANNEL: Channel;
}

/// Runs `work` (a request's handling) with `channel` as the channel of the
/// security events it raises. Events are raised synchronously inside the
/// request's task, so a task-local reaches the sink without every session
/// call having to carry it.
pub async fn with_request_channel<F: std::future::Future>(channel: Channel, work: F) -> F::Output {
    REQUEST_CHANNEL.scope(channel, work).await
}

/// The channel declared by [`with_request_channel`] for the current task.
pub fn request_channel() -> Option<Channel> {
    REQUEST_CHANNEL.try_with(|c| *c).ok()
}

/// The audit event for a security event: action `session.<name>`, the
/// session as target, and the mode, reason or grace flag as detail.
pub fn audit_event_for(event: &SecurityEvent) -> AuditEvent {
    // Reading the serialised form keeps this mapping working for event
    // variants added later.
    let v = serde_json::to_value(event).unwrap_or(Value::Null);
    let partner = text(&v, "partner").and_then(|p| PartnerId::new(p).ok());
    let user = text(&v, "user").and_then(|u| UserId::new(u).ok());
    let by = text(&v, "by").and_then(|u| UserId::new(u).ok());
    let outcome = match event {
        SecurityEvent::LoginFailed { .. } => Outcome::Failure,
        SecurityEvent::RefreshReuse { .. } => Outcome::Denied,
        _ => Outcome::Success,
    };
    let mut detail = Vec::new();
    for key in ["mode", "reason"] {
        if let Some(t) = text(&v, key) {
            detail.push(format!("{key}={t}"));
        }
    }
    if let Some(g) = v.get("grace").and_then(Value::as_bool) {
        detail.push(format!("grace={g}"));
    }
    // For a forced revoke the actor is the administrator; the session's
    // owner goes into the detail.
    if let (Some(b), Some(u)) = (&by, &user)
        && b != u
    {
        detail.push(format!("owner={u}"));
    }
    AuditEvent {
        partner,
        actor: by.or(user),
        impersonator: None,
        channel: request_channel().unwrap_or(Channel::Web),
        action: format!("session.{}", event.name()),
        target: text(&v, "session").map(|s| format!("session:{s}")),
        outcome,
        detail: (!detail.is_empty()).then(|| detail.join(" ")),
    }
}

impl AuditEvents {
    /// Starts the writer task on the current Tokio runtime.
    pub fn spawn(audit: Arc<AuditLog>, capacity: usize) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (w, f) = (written.clone(), failed.clone());
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match audit.append(event).await {
                    Ok(_) => {
                        w.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "security event not written to the audit log");
                    }
                }
            }
        });
        Arc::new(Self {
            tx,
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written,
            failed,
        })
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every accepted event has been written or has failed.
    pub async fn flush(&self) {
        loop {
            let done = self.written.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
            if done >= self.accepted.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
}

impl EventSink for AuditEvents {
    fn emit(&self, event: &SecurityEvent) {
        match self.tx.try_send(audit_event_for(event)) {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = event.name(),
                    "audit queue full; security event dropped"
                );
            }
        }
    }
}
