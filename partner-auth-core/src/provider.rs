//! The [`AuthProvider`] trait and the identities providers return.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How a session was authenticated; recorded on every session and in the
/// access token's `amr` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Google (or another OpenID provider) through the authorization code flow.
    Google,
    /// The development mock login.
    Mock,
}

impl AuthMode {
    /// Canonical spelling, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Google => "google",
            AuthMode::Mock => "mock",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuthMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "google" => Ok(AuthMode::Google),
            "mock" => Ok(AuthMode::Mock),
            _ => Err(Error::store(crate::session::UnknownValue("auth mode"))),
        }
    }
}

/// A verified login from a provider, before it is mapped to a directory user.
pub struct ExternalIdentity {
    /// Which provider.
    pub mode: AuthMode,
    /// The provider's issuer (`mock` for the mock provider).
    pub issuer: String,
    /// The provider's stable subject id.
    pub subject: String,
    /// E-mail address the provider reported.
    pub email: Option<String>,
    /// Whether the provider verified that e-mail.
    pub email_verified: bool,
    /// The provider's refresh token, when it issued one.
    pub provider_refresh_token: Option<SecretString>,
}

impl fmt::Debug for ExternalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIdentity")
            .field("mode", &self.mode)
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("email_verified", &self.email_verified)
            .field(
                "provider_refresh_token",
                &self.provider_refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// What a client presents to prove who it is.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginProof {
    /// The mock login: a user id or e-mail from the directory.
    Mock {
        /// User id or e-mail.
        user: String,
    },
    /// The callback of an authorization-code login.
    AuthorizationCode {
        /// The pending login's id, from the browser's flow cookie.
        flow_id: SecretString,
        /// The `state` parameter of the callback.
        state: SecretString,
        /// The `code` parameter of the callback.
        code: SecretString,
    },
}

/// Turns an external login into a verified [`ExternalIdentity`].
#[async_trait]
pub trait AuthProvider: Send + Sync + 'static {
    /// The mode sessions from this provider record.
    fn mode(&self) -> AuthMode;

    /// Verifies `proof`. Providers refuse proofs of a kind they do not handle.
    async fn authenticate(&self, proof: LoginProof) -> Result<ExternalIdentity, Error>;
}

/// Whether the server runs for development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Development: the mock provider may be enabled.
    #[default]
    Development,
    /// Production: the mock provider is refused.
    Production,
}

impl std::str::FromStr for RunMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "development" | "dev" => Ok(RunMode::Development),
            "production" | "prod" => Ok(RunMode::Production),
            _ => Err(Error::Config(
                "mode must be `development` or `production`".into(),
            )),
        }
    }
}

/// The development login: accepts any user of the directory by id or e-mail,
/// without a password. Only compiled with the `dev-mock` feature, and
/// [`MockProvider::new`] refuses to build one in [`RunMode::Production`].
#[cfg(feature = "dev-mock")]
#[derive(Debug, Clone)]
pub struct MockProvider {
    directory: std::sync::Arc<crate::Directory>,
}

#[cfg(feature = "dev-mock")]
impl MockProvider {
    /// A mock provider over `directory`; [`Error::MockInProduction`] in production mode.
    pub fn new(directory: std::sync::Arc<crate::Directory>, mode: RunMode) -> Result<Self, Error> {
        if mode == RunMode::Production {
            return Err(Error::MockInProduction);
        }
        tracing::warn!("mock login enabled: anyone can sign in as any directory user");
        Ok(Self { directory })
    }
}

#[cfg(feature = "dev-mock")]
#[async_trait]
impl AuthProvider for MockProvider {
    fn mode(&self) -> AuthMode {
        AuthMode::Mock
    }

    async fn authenticate(&self, proof: LoginProof) -> Result<ExternalIdentity, Error> {
        let LoginProof::Mock { user } = proof else {
            return Err(Error::Forbidden {
                reason: "wrong login kind",
            });
        };
        let user = self.directory.find_user(&user).ok_or(Error::UnknownUser)?;

        Ok(ExternalIdentity {
            mode: AuthMode::Mock,
            issuer: "mock".into(),
            subject: user.id.to_string(),
            email: Some(user.email.clone()),
            email_verified: true,
            provider_refresh_token: None,
        })
    }
}

#[cfg(all(test, feature = "dev-mock"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Directory;

    #[test]
    fn mock_provider_is_refused_in_production() {
        let dir = Arc::new(Directory::launch().unwrap());
        assert!(matches!(
            MockProvider::new(dir.clone(), RunMode::Production),
            Err(Error::MockInProduction)
        ));
        assert!(MockProvider::new(dir, RunMode::Development).is_ok());
    }

    #[tokio::test]
    async fn mock_provider_finds_users_by_id_or_email() {
        let dir = Arc::new(Directory::launch().unwrap());
        let mock = MockProvider::new(dir, RunMode::Development).unwrap();
        let id = mock
            .authenticate(LoginProof::Mock {
                user: "RAJA@example.com".into(),
            })
            .await
            .unwrap();
        assert_eq!(id.subject, "raja");
        let err = mock
            .authenticate(LoginProof::Mock {
                user: "nobody".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnknownUser));
    }
}
