//! [`GoogleProvider`]: discovery, the authorization URL, the code exchange
//! and the verified identity.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpClientError, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::Duration;
use url::Url;

use super::flow::{FlowId, FlowStore, MemoryFlowStore, PendingLogin, ReturnPath, random_token};
use super::id_token::{IdTokenRules, IdTokenVerifier, IssuerRule, MAX_ID_TOKEN_LEEWAY};
use super::jwks::{HttpKeySource, JwksCache, KeySource, read_limited};
use super::{GOOGLE_ISSUER, GOOGLE_ISSUER_BARE, GoogleError};
use crate::{
    AuthMode, AuthProvider, Clock, Error, ExternalIdentity, LoginProof, MemoryVault, SystemClock,
    User, Vault, metrics,
};

/// How long a started login may take before its callback is refused.
pub const DEFAULT_FLOW_TTL: Duration = Duration::minutes(10);
/// Default clock-skew allowance for ID tokens.
pub const DEFAULT_LEEWAY: Duration = Duration::seconds(60);
/// Largest discovery document accepted, in bytes.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024;
/// Scopes every login asks for.
pub const SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The token response's extra field: the ID token. Redacted in `Debug`.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}

impl ExtraTokenFields for IdTokenField {}

type CodeClient = Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The parts of an OpenID provider's discovery document we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer; must equal the configured one.
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
    /// Signing algorithms of ID tokens, when listed.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// PKCE methods, when listed.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Whether `url` is https, or http on a loopback host (for tests and local
/// development only).
pub fn is_https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback_host(url),
        _ => false,
    }
}

/// Whether the URL's host is `localhost`, `127.0.0.1` or `[::1]`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The issuer in its canonical form: Google's bare form becomes the https one.
fn canonical_issuer(issuer: &str) -> String {
    if issuer == GOOGLE_ISSUER_BARE {
        GOOGLE_ISSUER.to_owned()
    } else {
        issuer.to_owned()
    }
}

/// An HTTP client fit for talking to a provider: no redirects followed, short
/// timeouts.
pub fn provider_http_client() -> Result<reqwest::Client, GoogleError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|_| GoogleError::Config("HTTP client could not be built"))
}

/// Fetches and checks `ISSUER/.well-known/openid-configuration`.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, GoogleError> {
    let issuer = canonical_issuer(issuer);
    let base = Url::parse(&issuer).map_err(|_| GoogleError::Config("issuer is not a URL"))?;
    if !is_https_or_loopback(&base) {
        return Err(GoogleError::Config("issuer must use https"));
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let unreachable = |source| GoogleError::Unreachable {
        what: "discovery",
        source,
    };
    let response = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unreachable)?;
    let body = read_limited(response, MAX_DISCOVERY_BYTES)
        .await
        .map_err(unreachable)?
        .ok_or(GoogleError::Discovery("document too large"))?;
    let metadata: ProviderMetadata = serde_json::from_slice(&body)
        .map_err(|_| GoogleError::Discovery("document is not valid"))?;
    check_metadata(&metadata, &issuer)?;
    Ok(metadata)
}

fn check_metadata(metadata: &ProviderMetadata, issuer: &str) -> Result<(), GoogleError> {
    if metadata.issuer != issuer {
        return Err(GoogleError::Discovery(
            "document names another issuer than the configured one",
        ));
    }
    for endpoint in [
        &metadata.authorization_endpoint,
        &metadata.token_endpoint,
        &metadata.jwks_uri,
    ] {
        let ok = Url::parse(endpoint).is_ok_and(|u| is_https_or_loopback(&u));
        if !ok {
            return Err(GoogleError::Discovery("an endpoint is not an https URL"));
        }
    }
    let algs = &metadata.id_token_signing_alg_values_supported;
    if !algs.is_empty() && !algs.iter().any(|a| a == "RS256") {
        return Err(GoogleError::Discovery("provider does not sign with RS256"));
    }
    let methods = &metadata.code_challenge_methods_supported;
    if !methods.is_empty() && !methods.iter().any(|m| m == "S256") {
        return Err(GoogleError::Discovery(
            "provider does not support PKCE S256",
        ));
    }
    Ok(())
}

/// Builds a [`GoogleProvider`]. The client id, client secret and redirect
/// URL are required by [`GoogleProvider::builder`], so a provider without
/// them can not exist.
#[must_use]
pub struct GoogleProviderBuilder {
    client_id: String,
    client_secret: SecretString,
    redirect_url: Url,
    issuer: String,
    hosted_domains: Vec<String>,
    leeway: Duration,
    flow_ttl: Duration,
    flows: Option<Arc<dyn FlowStore>>,
    vault: Option<Arc<dyn Vault>>,
    clock: Option<Arc<dyn Clock>>,
    http: Option<reqwest::Client>,
    key_source: Option<Arc<dyn KeySource>>,
}

impl fmt::Debug for GoogleProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleProviderBuilder")
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url.as_str())
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl GoogleProviderBuilder {
    /// Sets the issuer (default `https://accounts.google.com`); discovery
    /// reads `ISSUER/.well-known/openid-configuration`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = canonical_issuer(&issuer.into());
        self
    }

    /// Allows only Google Workspace accounts of these domains (`hd` claim).
    pub fn hosted_domains<I, S>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosted_domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Clock-skew allowance for ID tokens (default 60 s, at most 300 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long a started login stays valid (default 10 minutes).
    pub fn flow_ttl(mut self, ttl: Duration) -> Self {
        self.flow_ttl = ttl;
        self
    }

    /// Where pending logins are kept (default: in memory).
    pub fn flow_store(mut self, flows: Arc<dyn FlowStore>) -> Self {
        self.flows = Some(flows);
        self
    }

    /// The vault that keeps provider refresh tokens (default: in memory).
    pub fn vault(mut self, vault: Arc<dyn Vault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The HTTP client for discovery, keys and the token endpoint. It should
    /// not follow redirects; the default is [`provider_http_client`].
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Where signing keys come from (default: the discovered `jwks_uri`).
    pub fn key_source(mut self, source: Arc<dyn KeySource>) -> Self {
        self.key_source = Some(source);
        self
    }

    /// Fetches the discovery document and builds the provider.
    pub async fn discover(self) -> Result<GoogleProvider, GoogleError> {
        let http = match &self.http {
            Some(http) => http.clone(),
            None => provider_http_client()?,
        };
        let metadata = discover(&http, &self.issuer).await?;
        self.http_client(http).with_metadata(metadata)
    }

    /// Builds the provider from an already known discovery document.
    pub fn with_metadata(self, metadata: ProviderMetadata) -> Result<GoogleProvider, GoogleError> {
        check_metadata(&metadata, &self.issuer)?;
        if self.leeway.is_negative() || self.leeway > MAX_ID_TOKEN_LEEWAY {
            return Err(GoogleError::Config("leeway must be between 0 and 300 s"));
        }
        if self.flow_ttl <= Duration::ZERO || self.flow_ttl > Duration::hours(1) {
            return Err(GoogleError::Config(
                "flow lifetime must be between 1 s and 1 h",
            ));
        }
        let http = match self.http {
            Some(http) => http,
            None => provider_http_client()?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let auth_url = AuthUrl::new(metadata.authorization_endpoint.clone())
            .map_err(|_| GoogleError::Discovery("authorization endpoint is not a URL"))?;
        let token_url = TokenUrl::new(metadata.token_endpoint.clone())
            .map_err(|_| GoogleError::Discovery("token endpoint is not a URL"))?;
        let jwks_url = Url::parse(&metadata.jwks_uri)
            .map_err(|_| GoogleError::Discovery("jwks_uri is not a URL"))?;
        let client: CodeClient = Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_redirect_uri(RedirectUrl::from_url(self.redirect_url.clone()));

        let source = self
            .key_source
            .unwrap_or_else(|| Arc::new(HttpKeySource::new(http.clone(), jwks_url)));
        let keys = Arc::new(JwksCache::new(source, clock.clone()));
        let rules = IdTokenRules {
            issuer: IssuerRule::for_issuer(&self.issuer),
            client_id: self.client_id.clone(),
            leeway: self.leeway,
            hosted_domains: self.hosted_domains,
        };

        Ok(GoogleProvider {
            client,
            http,
            issuer: self.issuer,
            client_id: self.client_id,
            redirect_url: self.redirect_url,
            verifier: IdTokenVerifier::new(keys, rules, clock.clone()),
            flows: self
                .flows
                .unwrap_or_else(|| Arc::new(MemoryFlowStore::new())),
            vault: self.vault.unwrap_or_else(|| Arc::new(MemoryVault::new())),
            clock,
            flow_ttl: self.flow_ttl,
        })
    }
}

/// What starting a login needs.
#[derive(Debug, Clone, Default)]
pub struct BeginLogin {
    /// Where to send the browser after the login.
    pub return_to: ReturnPath,
    /// Whether the session should be remembered (24 h).
    pub remember_me: bool,
    /// The provider subject this browser signed in with last time, if known.
    /// Consent (and with it a new provider refresh token) is requested only
    /// when no refresh token is held for this subject; unknown means consent.
    pub known_subject: Option<String>,
}

/// A started login: send the browser to `authorization_url` and keep
/// `flow_id` in its flow cookie. Redacted in `Debug`: the URL carries the
/// flow's `state`, `nonce` and PKCE challenge.
pub struct LoginStart {
    /// The id of the pending login, for the HttpOnly flow cookie.
    pub flow_id: FlowId,
    /// Where to send the browser.
    pub authorization_url: Url,
    /// Whether `prompt=consent` was asked for.
    pub consent: bool,
}

impl fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut endpoint = self.authorization_url.clone();
        endpoint.set_query(None);
        f.debug_struct("LoginStart")
            .field("flow_id", &self.flow_id)
            .field("authorization_endpoint", &endpoint.as_str())
            .field("consent", &self.consent)
            .finish()
    }
}

/// A finished provider login, before it is mapped to a directory user.
#[derive(Debug)]
pub struct CompletedLogin {
    /// The verified identity (with the provider refresh token, if one came).
    pub identity: ExternalIdentity,
    /// Where to send the browser.
    pub return_to: ReturnPath,
    /// Whether the session should be remembered.
    pub remember_me: bool,
}

/// A provider access token obtained with a refresh grant. Redacted in
/// `Debug`; the token is wiped on drop.
pub struct ProviderAccess {
    access_token: SecretString,
    /// The lifetime the provider gave the access token, when it said.
    pub expires_in: Option<std::time::Duration>,
    /// Whether the response carried a new refresh token, which replaced the
    /// held one in the vault.
    pub refresh_token_replaced: bool,
}

impl ProviderAccess {
    /// The provider access token, for calls to the provider's APIs only.
    pub fn expose_access_token(&self) -> &str {
        self.access_token.expose_secret()
    }
}

impl fmt::Debug for ProviderAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderAccess")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("refresh_token_replaced", &self.refresh_token_replaced)
            .finish()
    }
}

/// Google (or any OpenID Connect provider) sign-in through the
/// authorization code flow with PKCE S256, `state` and `nonce`.
pub struct GoogleProvider {
    client: CodeClient,
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    redirect_url: Url,
    verifier: IdTokenVerifier,
    flows: Arc<dyn FlowStore>,
    vault: Arc<dyn Vault>,
    clock: Arc<dyn Clock>,
    flow_ttl: Duration,
}

impl fmt::Debug for GoogleProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url.as_str())
            .finish_non_exhaustive()
    }
}

impl GoogleProvider {
    /// A builder; these three settings are required, everything else has a
    /// default. Fails when the client id is empty or the redirect URL is not
    /// an absolute http(s) URL without fragment (https unless on loopback).
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: SecretString,
        redirect_url: &str,
    ) -> Result<GoogleProviderBuilder, GoogleError> {
        let client_id = client_id.into();
        if client_id.trim().is_empty() || client_id.len() > 255 {
            return Err(GoogleError::Config("client id is missing"));
        }
        if client_secret.expose_secret().trim().is_empty() {
            return Err(GoogleError::Config("client secret is missing"));
        }
        let redirect_url = Url::parse(redirect_url)
            .map_err(|_| GoogleError::Config("redirect URL is not an absolute URL"))?;
        if !is_https_or_loopback(&redirect_url) {
            return Err(GoogleError::Config(
                "redirect URL must use https (http only on localhost)",
            ));
        }
        if redirect_url.fragment().is_some() {
            return Err(GoogleError::Config("redirect URL must not have a fragment"));
        }
        Ok(GoogleProviderBuilder {
            client_id,
            client_secret,
            redirect_url,
            issuer: GOOGLE_ISSUER.to_owned(),
            hosted_domains: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            flow_ttl: DEFAULT_FLOW_TTL,
            flows: None,
            vault: None,
            clock: None,
            http: None,
            key_source: None,
        })
    }

    /// The configured issuer, in canonical form; identities are keyed on it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The configured redirect URL, used byte for byte in the authorization
    /// URL and the token request.
    pub fn redirect_url(&self) -> &Url {
        &self.redirect_url
    }

    /// The vault that keeps provider refresh tokens.
    pub fn vault(&self) -> &Arc<dyn Vault> {
        &self.vault
    }

    /// The ID-token verifier (and through it the key cache).
    pub fn verifier(&self) -> &IdTokenVerifier {
        &self.verifier
    }

    /// Starts a login: stores a pending flow and returns the authorization URL.
    #[tracing::instrument(skip_all)]
    pub async fn begin(&self, request: BeginLogin) -> Result<LoginStart, Error> {
        let consent = match request.known_subject.as_deref() {
            Some(subject) => match self.vault.holds_provider_token(&self.issuer, subject).await {
                Ok(held) => !held,
                Err(e) => {
                    // Asking for consent again is harmless; failing the login is not.
                    tracing::warn!(error = %e, "vault unavailable; asking for consent");
                    true
                }
            },
            None => true,
        };
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = random_token();
        let nonce = random_token();

        let mut request_url = self
            .client
            .authorize_url(|| CsrfToken::new(state.clone()))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .add_extra_param("access_type", "offline");
        if consent {
            request_url = request_url.add_extra_param("prompt", "consent");
        }
        if let Some(subject) = &request.known_subject {
            request_url = request_url.add_extra_param("login_hint", subject.clone());
        }
        let (authorization_url, _) = request_url.url();

        let now = self.clock.now();
        let flow_id = FlowId::generate();
        let flow = PendingLogin {
            state: SecretString::from(state),
            pkce_verifier: SecretString::from(verifier.into_secret()),
            nonce: SecretString::from(nonce),
            remember_me: request.remember_me,
            return_to: request.return_to,
            expires_at: now + self.flow_ttl,
        };
        self.flows.put(&flow_id, flow, now).await?;
        tracing::debug!(consent, "sign-in started");

        Ok(LoginStart {
            flow_id,
            authorization_url,
            consent,
        })
    }

    /// Ends a pending flow without exchanging anything (the callback was
    /// unusable).
    pub async fn abandon(&self, flow_id: &FlowId) -> Result<(), Error> {
        self.flows.take(flow_id, self.clock.now()).await?;
        Ok(())
    }

    /// Ends a pending flow because the provider reported an error, but only
    /// when `state` is the flow's own (compared in constant time). Anyone
    /// can send a browser to the callback with `?error=...`; without the
    /// state such a request must not cancel the login in progress, so the
    /// flow is put back as it was. Returns whether the flow was ended.
    pub async fn abandon_if_state_matches(
        &self,
        flow_id: &FlowId,
        state: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(state) = state else {
            return Ok(false);
        };
        let now = self.clock.now();
        let taken = self
            .flows
            .take_if(flow_id, now, &|flow| flow.state_matches(state))
            .await?;
        Ok(taken.is_some())
    }

    /// Hands a provider refresh token to the vault; a refusal is counted and
    /// logged (without the token) but never fails the caller: the next login
    /// asks for consent again, which yields a new one. `true` when the vault
    /// accepted it (a retrying vault may only have queued it).
    pub(crate) async fn keep_refresh_token(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        token: SecretString,
    ) -> bool {
        match self
            .vault
            .keep_provider_token(user, issuer, subject, token)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                metrics::provider_token_write(metrics::ProviderTokenWrite::Failed);
                tracing::warn!(error = %e, "provider refresh token could not be kept");
                false
            }
        }
    }

    /// Sends a refresh grant with the refresh token held in the vault for
    /// `user` and this provider's `subject`, and returns the fresh provider
    /// access token. `None` when no refresh token is held (nothing is sent).
    ///
    /// Google answers a refresh grant without a new refresh token: the held
    /// one stays as it is. Only when the response carries a different one
    /// does it replace the held one (a new generation in the vault).
    #[tracing::instrument(skip_all)]
    pub async fn refresh_provider_access(
        &self,
        user: &User,
        subject: &str,
    ) -> Result<Option<ProviderAccess>, Error> {
        let result = self.refresh_grant(user, subject).await;
        let outcome = match &result {
            Ok(Some(access)) if access.refresh_token_replaced => metrics::ProviderRefresh::Replaced,
            Ok(Some(_)) => metrics::ProviderRefresh::Ok,
            Ok(None) => metrics::ProviderRefresh::NoToken,
            Err(Error::Google(GoogleError::ProviderTokenRejected)) => {
                metrics::ProviderRefresh::Rejected
            }
            Err(_) => metrics::ProviderRefresh::Error,
        };
        metrics::provider_refresh(outcome);
        result
    }

    async fn refresh_grant(
        &self,
        user: &User,
        subject: &str,
    ) -> Result<Option<ProviderAccess>, Error> {
        let Some(held) = self
            .vault
            .provider_refresh_token(user, &self.issuer, subject)
            .await?
        else {
            tracing::debug!("no provider refresh token held");
            return Ok(None);
        };
        let response = self
            .client
            .exchange_refresh_token(&oauth2::RefreshToken::new(held.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match token_error(e) {
                GoogleError::CodeRejected => GoogleError::ProviderTokenRejected,
                other => other,
            })?;
        let access_token = SecretString::from(response.access_token().secret().to_owned());
        let new_refresh = response
            .refresh_token()
            .map(|t| t.secret().as_str())
            .filter(|t| !t.is_empty() && *t != held.expose_secret());

        let mut refresh_token_replaced = false;
        if let Some(new) = new_refresh {
            refresh_token_replaced = self
                .keep_refresh_token(
                    user,
                    &self.issuer,
                    subject,
                    SecretString::from(new.to_owned()),
                )
                .await;
        }
        tracing::debug!(refresh_token_replaced, "provider access refreshed");

        Ok(Some(ProviderAccess {
            access_token,
            expires_in: response.expires_in(),
            refresh_token_replaced,
        }))
    }

    /// Finishes a login: consumes the flow, checks `state` in constant time,
    /// exchanges `code` with the flow's PKCE verifier, and verifies the ID
    /// token (signature, issuer, audience, authorized party, times, nonce,
    /// hosted domain). The token endpoint is called only after the state matched.
    #[tracing::instrument(skip_all)]
    pub async fn complete(
        &self,
        flow_id: &FlowId,
        state: &str,
        code: &SecretString,
    ) -> Result<CompletedLogin, Error> {
        let now = self.clock.now();
        let flow = self
            .flows
            .take(flow_id, now)
            .await?
            .ok_or(GoogleError::FlowNotFound)?;
        if !flow.state_matches(state) {
            return Err(GoogleError::StateMismatch.into());
        }

        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                flow.pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or(GoogleError::IdTokenMissing)?;
        let verified = self
            .verifier
            .verify(id_token, flow.nonce.expose_secret())
            .await?;
        let provider_refresh_token = response
            .refresh_token()
            .map(|t| t.secret().as_str())
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned()));
        tracing::debug!(
            refresh_token = provider_refresh_token.is_some(),
            "provider login verified"
        );

        Ok(CompletedLogin {
            identity: ExternalIdentity {
                mode: AuthMode::Google,
                issuer: self.issuer.clone(),
                subject: verified.subject,
                email: verified.email,
                email_verified: verified.email_verified,
                provider_refresh_token,
            },
            return_to: flow.return_to,
            remember_me: flow.remember_me,
        })
    }
}

/// Maps a token-endpoint failure to a fixed text; the response body (which
/// may echo the code) is dropped here.
fn token_error(
    e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::CodeRejected,
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                GoogleError::TokenEndpoint("client authentication failed")
            }
            _ => GoogleError::TokenEndpoint("error response"),
        },
        RequestTokenError::Request(HttpClientError::Reqwest(source)) => GoogleError::Unreachable {
            what: "token endpoint",
            source: *source,
        },
        RequestTokenError::Request(_) => GoogleError::TokenEndpoint("request failed"),
        RequestTokenError::Parse(..) => GoogleError::TokenEndpoint("unreadable response"),
        RequestTokenError::Other(_) => GoogleError::TokenEndpoint("unexpected response"),
    }
}

#[async_trait]
impl AuthProvider for GoogleProvider {
    fn mode(&self) -> AuthMode {
        AuthMode::Google
    }

    async fn authenticate(&self, proof: LoginProof) -> Result<ExternalIdentity, Error> {
        let LoginProof::AuthorizationCode {
            flow_id,
            state,
            code,
        } = proof
        else {
            return Err(Error::Forbidden {
                reason: "wrong login kind",
            });
        };
        let flow_id = FlowId::parse(flow_id.expose_secret()).ok_or(GoogleError::FlowNotFound)?;
        self.complete(&flow_id, state.expose_secret(), &code)
            .await
            .map(|done| done.identity)
    }
}
