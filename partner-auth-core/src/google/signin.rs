//! [`GoogleSignIn`]: a provider login turned into a session.

use std::sync::Arc;

use secrecy::SecretString;

use super::flow::{FlowId, ReturnPath};
use super::identity::{IdentityStore, LinkPolicy, resolve_user};
use super::provider::{BeginLogin, GoogleProvider, LoginStart};
use crate::{AuthMode, Error, Issued, SessionManager, metrics};

/// A completed sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session and its tokens.
    pub issued: Issued,
    /// Where to send the browser.
    pub return_to: ReturnPath,
    /// The provider subject, for the browser's subject hint.
    pub subject: String,
}

/// The stable code of a failed sign-in, for redirects, logs and metrics.
pub fn failure_code(error: &Error) -> &'static str {
    match error {
        Error::Google(g) => g.code(),
        Error::UserDisabled => "user_disabled",
        Error::UnknownUser => "unknown_user",
        _ => "login_failed",
    }
}

/// Runs the whole Google sign-in: the provider login, identity mapping,
/// keeping the provider refresh token, and the session.
pub struct GoogleSignIn {
    provider: Arc<GoogleProvider>,
    identities: Arc<dyn IdentityStore>,
    sessions: Arc<SessionManager>,
    policy: LinkPolicy,
}

impl std::fmt::Debug for GoogleSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSignIn")
            .field("provider", &self.provider)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GoogleSignIn {
    /// A sign-in over `provider`, linking identities in `identities` and
    /// starting sessions through `sessions`, with the default [`LinkPolicy`].
    pub fn new(
        provider: Arc<GoogleProvider>,
        identities: Arc<dyn IdentityStore>,
        sessions: Arc<SessionManager>,
    ) -> Self {
        Self {
            provider,
            identities,
            sessions,
            policy: LinkPolicy::default(),
        }
    }

    /// Replaces the link policy.
    #[must_use]
    pub fn with_policy(mut self, policy: LinkPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<GoogleProvider> {
        &self.provider
    }

    /// The session manager.
    pub fn sessions(&self) -> &Arc<SessionManager> {
        &self.sessions
    }

    /// Starts a login. A failure (for example `too_many_logins`) is counted
    /// under its code in [`metrics::GOOGLE_LOGIN_FAILURES_TOTAL`].
    pub async fn begin(&self, request: BeginLogin) -> Result<LoginStart, Error> {
        let started = self.provider.begin(request).await;
        if let Err(e) = &started {
            metrics::google_failure(failure_code(e));
        }
        started
    }

    /// Records a refused callback (and ends its flow, when there is one).
    pub async fn refuse(&self, flow_id: Option<&FlowId>, error: Error) -> Error {
        if let Some(id) = flow_id
            && let Err(e) = self.provider.abandon(id).await
        {
            tracing::warn!(error = %e, "pending sign-in could not be removed");
        }
        self.failed(&error);
        error
    }

    /// Records a callback on which the provider reported an error (the
    /// user declined, or another `error=`). The pending flow ends only when
    /// the callback's `state` is the flow's own, so a forged cross-site
    /// request can not cancel a login in progress. Returns whether the flow
    /// was ended.
    pub async fn provider_reported_error(
        &self,
        flow_id: Option<&FlowId>,
        state: Option<&str>,
        error: &Error,
    ) -> bool {
        let ended = match flow_id {
            Some(id) => match self.provider.abandon_if_state_matches(id, state).await {
                Ok(ended) => ended,
                Err(e) => {
                    tracing::warn!(error = %e, "pending sign-in could not be checked");
                    false
                }
            },
            None => false,
        };
        self.failed(error);
        ended
    }

    fn failed(&self, error: &Error) {
        let reason = failure_code(error);
        metrics::google_failure(reason);
        self.sessions.login_failed(AuthMode::Google, reason);
    }

    /// Finishes a login: provider checks, then the directory user (by link,
    /// or on a first login by verified e-mail), then the provider refresh
    /// token into the vault (only when the response carried one), then a
    /// session recording [`AuthMode::Google`].
    #[tracing::instrument(skip_all, fields(user = tracing::field::Empty))]
    pub async fn complete(
        &self,
        flow_id: &FlowId,
        state: &str,
        code: &SecretString,
    ) -> Result<SignedIn, Error> {
        let directory = self.sessions.directory().clone();
        let (user, login) = match async {
            let mut login = self.provider.complete(flow_id, state, code).await?;
            let user = resolve_user(
                &login.identity,
                self.identities.as_ref(),
                &directory,
                self.policy,
            )
            .await?;
            if let Some(token) = login.identity.provider_refresh_token.take() {
                self.provider
                    .keep_refresh_token(
                        user,
                        &login.identity.issuer,
                        &login.identity.subject,
                        token,
                    )
                    .await;
            }
            Ok::<_, Error>((user, login))
        }
        .await
        {
            Ok(done) => done,
            Err(e) => {
                self.failed(&e);
                return Err(e);
            }
        };
        tracing::Span::current().record("user", tracing::field::display(&user.id));

        // The session manager counts this login's outcome itself.
        let issued = self
            .sessions
            .login(user, AuthMode::Google, login.remember_me)
            .await
            .inspect_err(|e| metrics::google_failure(failure_code(e)))?;
        Ok(SignedIn {
            issued,
            return_to: login.return_to,
            subject: login.identity.subject,
        })
    }
}
