//! The error type of the Google / OpenID sign-in.

/// Why an ID token was refused. The text is stable and safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenRejection {
    /// Empty, too long, not three segments, or not base64url JSON.
    Malformed,
    /// Header `alg` is anything but `RS256`.
    Algorithm,
    /// The header carries no `kid`, or one of bad syntax.
    MissingKeyId,
    /// The `kid` names no key the provider publishes, even after a refetch.
    UnknownKey,
    /// Headers that point elsewhere for keys (`jku`, `jwk`, `x5u`, `x5c`) or `crit`.
    ForbiddenHeader,
    /// The signature does not verify.
    Signature,
    /// `iss` is not the configured issuer (exact comparison).
    Issuer,
    /// `aud` is missing or does not contain the client id.
    Audience,
    /// `azp` is present and is not the client id.
    AuthorizedParty,
    /// `exp` is missing or in the past beyond the leeway.
    Expired,
    /// `iat` is missing, or `iat` or `nbf` is in the future beyond the leeway.
    NotYetValid,
    /// `nonce` is missing or is not the one sent with this login.
    Nonce,
    /// `sub` is missing, empty or too long, or a claim has the wrong type.
    Claims,
    /// The `hd` claim is missing or not in the allow list of hosted domains.
    HostedDomain,
}

impl IdTokenRejection {
    /// Stable text for logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenRejection::Malformed => "malformed",
            IdTokenRejection::Algorithm => "algorithm not allowed",
            IdTokenRejection::MissingKeyId => "missing or invalid key id",
            IdTokenRejection::UnknownKey => "unknown key",
            IdTokenRejection::ForbiddenHeader => "forbidden header",
            IdTokenRejection::Signature => "bad signature",
            IdTokenRejection::Issuer => "wrong issuer",
            IdTokenRejection::Audience => "wrong audience",
            IdTokenRejection::AuthorizedParty => "wrong authorized party",
            IdTokenRejection::Expired => "expired",
            IdTokenRejection::NotYetValid => "not yet valid",
            IdTokenRejection::Nonce => "nonce mismatch",
            IdTokenRejection::Claims => "missing or invalid claims",
            IdTokenRejection::HostedDomain => "hosted domain not allowed",
        }
    }
}

impl std::fmt::Display for IdTokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in a Google (or other OpenID provider) login.
///
/// Texts are fixed: no variant carries an authorization code, a state, a
/// token or a body returned by the token endpoint, so an error can be logged
/// and shown as it is. [`GoogleError::code`] gives a stable snake_case code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoogleError {
    /// A setting is missing or invalid; the text names which.
    #[error("google sign-in configuration: {0}")]
    Config(&'static str),
    /// The discovery document was unreachable or unusable.
    #[error("provider discovery failed: {0}")]
    Discovery(&'static str),
    /// An HTTP request to the provider failed (connection, timeout, status).
    #[error("request to the provider failed ({what})")]
    Unreachable {
        /// Which endpoint: `discovery`, `keys` or `token endpoint`.
        what: &'static str,
        /// The transport error; it names the endpoint URL, never a code or token.
        #[source]
        source: reqwest::Error,
    },
    /// The user declined at the provider (`error=access_denied`).
    #[error("the user declined the sign-in at the provider")]
    AccessDenied,
    /// The provider redirected back with another `error` parameter.
    #[error("the provider reported an error")]
    ProviderError,
    /// The callback request was malformed; the text says how.
    #[error("invalid callback: {0}")]
    InvalidCallback(&'static str),
    /// No pending login for this browser: cookie missing, flow unknown,
    /// expired or already completed.
    #[error("no pending sign-in for this browser, or it expired")]
    FlowNotFound,
    /// The callback's `state` is not the one issued for this browser.
    #[error("state does not match the pending sign-in")]
    StateMismatch,
    /// Too many sign-ins are pending at once; new ones are refused.
    #[error("too many pending sign-ins")]
    TooManyFlows,
    /// The token endpoint refused the authorization code (`invalid_grant`).
    #[error("the provider refused the authorization code")]
    CodeRejected,
    /// The token endpoint answered with an error or with something unreadable.
    #[error("token endpoint failure: {0}")]
    TokenEndpoint(&'static str),
    /// The provider refused a held refresh token in a refresh grant
    /// (`invalid_grant`: revoked by the user, expired or replaced).
    #[error("the provider refused the held refresh token")]
    ProviderTokenRejected,
    /// The token response carried no ID token.
    #[error("the token response carried no ID token")]
    IdTokenMissing,
    /// The ID token failed verification.
    #[error("ID token rejected: {0}")]
    IdToken(IdTokenRejection),
    /// No signing keys could be loaded from the provider at all.
    #[error("the provider's signing keys are unavailable")]
    KeysUnavailable,
    /// The provider did not verify the e-mail address and policy requires it.
    #[error("the provider has not verified this e-mail address")]
    EmailNotVerified,
    /// No user is linked to this identity and none could be matched.
    #[error("no user is linked to this account")]
    NoMatchingUser,
    /// The matched user is already linked to another account of this provider.
    #[error("the user is already linked to another account of this provider")]
    IdentityConflict,
    /// The linked user no longer exists in the directory.
    #[error("the linked user no longer exists")]
    LinkedUserMissing,
}

impl GoogleError {
    /// A stable snake_case code for error bodies, redirects and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            GoogleError::Config(_) => "google_config",
            GoogleError::Discovery(_) => "provider_discovery",
            GoogleError::Unreachable { .. } => "provider_unreachable",
            GoogleError::AccessDenied => "access_denied",
            GoogleError::ProviderError => "provider_error",
            GoogleError::InvalidCallback(_) => "invalid_callback",
            GoogleError::FlowNotFound => "login_expired",
            GoogleError::StateMismatch => "state_mismatch",
            GoogleError::TooManyFlows => "too_many_logins",
            GoogleError::CodeRejected => "code_rejected",
            GoogleError::TokenEndpoint(_) => "token_endpoint",
            GoogleError::ProviderTokenRejected => "provider_token_rejected",
            GoogleError::IdTokenMissing | GoogleError::IdToken(_) => "invalid_id_token",
            GoogleError::KeysUnavailable => "keys_unavailable",
            GoogleError::EmailNotVerified => "email_not_verified",
            GoogleError::NoMatchingUser => "unknown_user",
            GoogleError::IdentityConflict => "identity_conflict",
            GoogleError::LinkedUserMissing => "unknown_user",
        }
    }

    /// Whether the failure is the caller's (bad or stale request) rather
    /// than the provider's or ours.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            GoogleError::InvalidCallback(_)
                | GoogleError::FlowNotFound
                | GoogleError::StateMismatch
                | GoogleError::CodeRejected
                | GoogleError::IdTokenMissing
                | GoogleError::IdToken(_)
        )
    }

    /// Whether the identity is known but may not sign in (policy refusals).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            GoogleError::EmailNotVerified
                | GoogleError::NoMatchingUser
                | GoogleError::IdentityConflict
                | GoogleError::LinkedUserMissing
        )
    }
}
