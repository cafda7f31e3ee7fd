//! Counters recorded through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The library only records; the application installs a recorder (the
//! example server exports them for Prometheus at `GET /metrics`). Without a
//! recorder every call here is a no-op.
//!
//! Every label value comes from a fixed set: an enum below, an
//! [`AuthMode`], or a stable failure code (`&'static str`). No label ever
//! carries a user id, an e-mail address, a partner or anything a request
//! supplied, so the series count stays bounded and a scrape reveals nothing
//! about who signed in.
//!
//! | metric | labels |
//! | --- | --- |
//! | [`LOGINS_TOTAL`] | `mode` ([`AuthMode::as_str`]), `outcome` ([`LoginOutcome`]) |
//! | [`GOOGLE_LOGIN_FAILURES_TOTAL`] | `code` (the `error` code of the failed sign-in) |
//! | [`REFRESHES_TOTAL`] | `outcome` ([`RefreshOutcome`]) |
//! | [`JWKS_FETCHES_TOTAL`] | `outcome` ([`JwksFetch`]) |
//! | [`PROVIDER_TOKEN_WRITES_TOTAL`] | `outcome` ([`ProviderTokenWrite`]) |
//! | [`PROVIDER_REFRESHES_TOTAL`] | `outcome` ([`ProviderRefresh`]) |

use crate::AuthMode;

/// Finished logins by auth mode and outcome.
pub const LOGINS_TOTAL: &str = "partner_auth_logins_total";
/// Failed Google sign-ins (start or callback) by error code.
pub const GOOGLE_LOGIN_FAILURES_TOTAL: &str = "partner_auth_google_login_failures_total";
/// Refresh-token exchanges by outcome.
pub const REFRESHES_TOTAL: &str = "partner_auth_refreshes_total";
/// Fetches of the provider's signing keys by outcome.
pub const JWKS_FETCHES_TOTAL: &str = "partner_auth_google_jwks_fetches_total";
/// Provider refresh tokens that did not reach the vault at once, by outcome.
pub const PROVIDER_TOKEN_WRITES_TOTAL: &str = "partner_auth_provider_token_writes_total";
/// Refresh grants sent to the provider by outcome.
pub const PROVIDER_REFRESHES_TOTAL: &str = "partner_auth_google_provider_refreshes_total";

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A session was created.
    Success,
    /// The login was refused or failed.
    Failure,
}

impl LoginOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
        }
    }
}

/// How a refresh-token exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token rotated.
    Rotated,
    /// The previous token came back inside the racing-tabs grace window.
    Grace,
    /// A rotated token came back: the session was revoked.
    ReuseDetected,
    /// The token is unknown.
    Unknown,
    /// The session is revoked, expired or gone.
    SessionEnded,
    /// The store failed or the rotation kept losing races.
    Error,
}

impl RefreshOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::Grace => "grace",
            RefreshOutcome::ReuseDetected => "reuse_detected",
            RefreshOutcome::Unknown => "unknown_token",
            RefreshOutcome::SessionEnded => "session_ended",
            RefreshOutcome::Error => "error",
        }
    }
}

/// How a fetch of the provider's signing keys ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksFetch {
    /// Keys were loaded.
    Ok,
    /// The endpoint did not answer, or answered with an error status.
    Unreachable,
    /// The answer held no usable key (or was too large).
    Invalid,
}

impl JwksFetch {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwksFetch::Ok => "ok",
            JwksFetch::Unreachable => "unreachable",
            JwksFetch::Invalid => "invalid",
        }
    }
}

/// What happened to a provider refresh token the vault did not take at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderTokenWrite {
    /// The write failed and the token was queued for another try.
    Deferred,
    /// A queued token was stored by a later try.
    StoredAfterRetry,
    /// The token was given up (queue full or tries exhausted).
    Dropped,
    /// A queued token was discarded because a newer one for the same
    /// subject had been stored or queued since: nothing was lost.
    Superseded,
    /// The vault refused it and nothing retries (a vault without a queue).
    Failed,
}

impl ProviderTokenWrite {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderTokenWrite::Deferred => "deferred",
            ProviderTokenWrite::StoredAfterRetry => "stored_after_retry",
            ProviderTokenWrite::Dropped => "dropped",
            ProviderTokenWrite::Superseded => "superseded",
            ProviderTokenWrite::Failed => "failed",
        }
    }
}

/// How a refresh grant sent to the provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderRefresh {
    /// A fresh access token came back; the held refresh token stays.
    Ok,
    /// A fresh access token and a new refresh token, which replaced the held one.
    Replaced,
    /// No refresh token is held for the subject; nothing was sent.
    NoToken,
    /// The provider refused the refresh token (`invalid_grant`).
    Rejected,
    /// The provider or the vault failed.
    Error,
}

impl ProviderRefresh {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderRefresh::Ok => "ok",
            ProviderRefresh::Replaced => "replaced",
            ProviderRefresh::NoToken => "no_token",
            ProviderRefresh::Rejected => "rejected",
            ProviderRefresh::Error => "error",
        }
    }
}

/// Counts a finished login.
pub fn login(mode: AuthMode, outcome: LoginOutcome) {
    ::metrics::counter!(LOGINS_TOTAL, "mode" => mode.as_str(), "outcome" => outcome.as_str())
        .increment(1);
}

/// Counts a failed Google sign-in under its stable error code.
pub fn google_failure(code: &'static str) {
    ::metrics::counter!(GOOGLE_LOGIN_FAILURES_TOTAL, "code" => code).increment(1);
}

/// Counts a refresh-token exchange.
pub fn refresh(outcome: RefreshOutcome) {
    ::metrics::counter!(REFRESHES_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a fetch of the provider's signing keys.
pub fn jwks_fetch(outcome: JwksFetch) {
    ::metrics::counter!(JWKS_FETCHES_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a provider refresh token that missed the vault.
pub fn provider_token_write(outcome: ProviderTokenWrite) {
    ::metrics::counter!(PROVIDER_TOKEN_WRITES_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a refresh grant sent to the provider.
pub fn provider_refresh(outcome: ProviderRefresh) {
    ::metrics::counter!(PROVIDER_REFRESHES_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Registers a description of every counter with the installed recorder,
/// so an exporter can print `# HELP` lines. Call once after installing it.
pub fn describe() {
    ::metrics::describe_counter!(LOGINS_TOTAL, "Finished logins by auth mode and outcome.");
    ::metrics::describe_counter!(
        GOOGLE_LOGIN_FAILURES_TOTAL,
        "Failed Google sign-ins by error code."
    );
    ::metrics::describe_counter!(REFRESHES_TOTAL, "Refresh-token exchanges by outcome.");
    ::metrics::describe_counter!(
        JWKS_FETCHES_TOTAL,
        "Fetches of the provider's signing keys by outcome."
    );
    ::metrics::describe_counter!(
        PROVIDER_TOKEN_WRITES_TOTAL,
        "Provider refresh tokens that missed the vault at first, by outcome."
    );
    ::metrics::describe_counter!(
        PROVIDER_REFRESHES_TOTAL,
        "Refresh grants sent to the provider by outcome."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_snake_case_and_distinct() {
        let values = [
            LoginOutcome::Success.as_str(),
            LoginOutcome::Failure.as_str(),
            RefreshOutcome::Rotated.as_str(),
            RefreshOutcome::Grace.as_str(),
            RefreshOutcome::ReuseDetected.as_str(),
            RefreshOutcome::Unknown.as_str(),
            RefreshOutcome::SessionEnded.as_str(),
            RefreshOutcome::Error.as_str(),
        ];
        for v in values {
            assert!(
                v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{v}"
            );
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), values.len());
    }
}
