//! Security events raised by the session lifecycle.
//!
//! The core raises events synchronously and never blocks on them; sinks that
//! need I/O (the audit log, alert routing, Server-Sent Events) queue them.

use std::sync::Arc;

use serde::Serialize;

use crate::{AuthMode, PartnerId, RevokeReason, SessionId, UserId};

/// Something security-relevant happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecurityEvent {
    /// A login completed and a session was created.
    LoginSucceeded {
        /// Who.
        user: UserId,
        /// Within which partner.
        partner: PartnerId,
        /// The new session.
        session: SessionId,
        /// Which provider.
        mode: AuthMode,
    },
    /// A login was refused.
    LoginFailed {
        /// Which provider.
        mode: AuthMode,
        /// Stable reason code.
        reason: &'static str,
    },
    /// A refresh token was exchanged.
    Refreshed {
        /// Whose.
        user: UserId,
        /// Within which partner.
        partner: PartnerId,
        /// The session.
        session: SessionId,
        /// Whether it was served from the racing-tabs grace window.
        grace: bool,
    },
    /// A rotated refresh token came back: the session was revoked.
    RefreshReuse {
        /// Whose.
        user: UserId,
        /// Within which partner.
        partner: PartnerId,
        /// The revoked session.
        session: SessionId,
    },
    /// A session ended before its time.
    SessionRevoked {
        /// Whose.
        user: UserId,
        /// Within which partner.
        partner: PartnerId,
        /// The session.
        session: SessionId,
        /// Why.
        reason: RevokeReason,
        /// Who revoked it, when not the owner.
        by: Option<UserId>,
    },
}

impl SecurityEvent {
    /// Stable name of the event, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SecurityEvent::LoginSucceeded { .. } => "login_succeeded",
            SecurityEvent::LoginFailed { .. } => "login_failed",
            SecurityEvent::Refreshed { .. } => "refreshed",
            SecurityEvent::RefreshReuse { .. } => "refresh_reuse",
            SecurityEvent::SessionRevoked { .. } => "session_revoked",
        }
    }
}

/// Receives security events. Must not block.
pub trait EventSink: Send + Sync + 'static {
    /// Handles one event.
    fn emit(&self, event: &SecurityEvent);
}

/// Writes every event to `tracing` (warn for reuse, info otherwise).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn emit(&self, event: &SecurityEvent) {
        match event {
            SecurityEvent::RefreshReuse { session, user, .. } => {
                tracing::warn!(event = event.name(), %session, %user, "refresh token reuse; session revoked");
            }
            SecurityEvent::LoginFailed { mode, reason } => {
                tracing::warn!(event = event.name(), %mode, reason, "login refused");
            }
            other => tracing::info!(event = other.name(), detail = ?other, "security event"),
        }
    }
}

/// Sends each event to several sinks in order.
#[derive(Clone, Default)]
pub struct EventFanout {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl EventFanout {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }
}

impl EventSink for EventFanout {
    fn emit(&self, event: &SecurityEvent) {
        for sink in &self.sinks {
            sink.emit(event);
        }
    }
}

/// Keeps every event in memory; for tests.
#[derive(Default)]
pub struct RecordedEvents {
    events: std::sync::Mutex<Vec<SecurityEvent>>,
}

impl RecordedEvents {
    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<SecurityEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for RecordedEvents {
    fn emit(&self, event: &SecurityEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
