//! Access tokens: issuing and verifying the short-lived JWTs.
//!
//! Verification rejects by default. Before any signature work it checks the
//! token's length, its segment count and its header: `alg` must be exactly
//! the algorithm pinned to the key named by `kid`, `typ` must be `at+jwt`, and
//! headers that point elsewhere for keys (`jku`, `jwk`, `x5u`, `x5c`) or
//! demand extensions (`crit`) are refused. Time claims are checked against the
//! injected [`Clock`], not the system time.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::keys::{KeyRing, kid_is_well_formed};
use crate::{AuthMode, Clock, Error, PartnerId, RoleGrant, Session, TokenRejection, UserId};

/// Longest token accepted for verification, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Longest accepted header segment, in bytes of base64url.
const MAX_HEADER_SEGMENT: usize = 1024;

/// Largest leeway allowed for clock skew.
pub const MAX_LEEWAY: Duration = Duration::seconds(60);

/// Longest access-token lifetime an issuer accepts: one day. Access tokens
/// are meant to be short-lived; a session outlives them through refresh.
pub const MAX_ACCESS_TTL: Duration = Duration::days(1);

/// The JWT `typ` of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The `act` claim (RFC 8693): who is really acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting user.
    pub sub: UserId,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The session id.
    pub sid: crate::SessionId,
    /// The partner the session acts within.
    pub pid: PartnerId,
    /// Role grants.
    pub roles: Vec<RoleGrant>,
    /// Authentication methods: the session's [`AuthMode`].
    pub amr: Vec<AuthMode>,
    /// The impersonating staff member, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

/// A freshly issued access token. The JWT is redacted in `Debug`.
#[derive(Clone)]
pub struct AccessToken {
    /// The compact JWT. Not secret-wrapped: it is short-lived and meant to be
    /// sent, but it is still never logged.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its claims.
    pub claims: AccessClaims,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The JWT is a bearer credential: whoever reads a log line could use it.
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Settings of a [`TokenIssuer`].
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `iss` of issued tokens, and the only one accepted.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Extra audiences accepted on verification.
    pub accepted_audiences: Vec<String>,
    /// Access-token lifetime (default 10 minutes).
    pub ttl: Duration,
    /// Clock-skew allowance, at most [`MAX_LEEWAY`].
    pub leeway: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: "partner-auth".into(),
            audience: "partner-auth".into(),
            accepted_audiences: Vec::new(),
            ttl: Duration::minutes(10),
            leeway: Duration::seconds(60),
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<serde_json::Value>,
    jwk: Option<serde_json::Value>,
    x5u: Option<serde_json::Value>,
    x5c: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

/// Issues and verifies access tokens with a [`KeyRing`].
pub struct TokenIssuer {
    ring: Arc<RwLock<KeyRing>>,
    config: TokenConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer over `ring`. Refuses a leeway above [`MAX_LEEWAY`] or a
    /// lifetime that is not positive or exceeds [`MAX_ACCESS_TTL`].
    pub fn new(ring: KeyRing, config: TokenConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        if config.leeway > MAX_LEEWAY || config.leeway.is_negative() {
            return Err(Error::Config(
                "token leeway must be between 0 and 60 s".into(),
            ));
        }
        if !config.ttl.is_positive() || config.ttl > MAX_ACCESS_TTL {
            return Err(Error::Config(
                "access-token lifetime must be between 1 s and 1 day".into(),
            ));
        }
        let mut ring = ring;
        ring.stamp_retiring(clock.now());
        Ok(Self {
            ring: Arc::new(RwLock::new(ring)),
            config,
            clock,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The key ring, for rotation.
    pub fn ring(&self) -> &RwLock<KeyRing> {
        &self.ring
    }

    /// Makes `kid` (already in the ring, published through
    /// [`KeyRing::add_next`]) the signing key now; the old primary keeps
    /// verifying.
    pub fn promote(&self, kid: &str) -> Result<(), Error> {
        let now = self.clock.now();
        self.ring
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .promote(kid, now)
    }

    /// Removes a retiring key once every token it signed has expired: it
    /// must have been retiring for the access-token lifetime plus the
    /// leeway, otherwise [`Error::SigningKey`].
    pub fn remove_retired(&self, kid: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let keep = self.config.ttl + self.config.leeway;
        self.ring
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove_retired(kid, now, keep)
    }

    /// The public keys as JWKS.
    pub fn jwks(&self) -> serde_json::Value {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).jwks()
    }

    /// Signs an access token for `session` with the primary key.
    pub fn issue(&self, session: &Session) -> Result<AccessToken, Error> {
        let now = self.clock.now().unix_timestamp();
        let ttl = self.config.ttl.whole_seconds();
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: session.user_id.clone(),
            sid: session.id,
            pid: session.partner_id.clone(),
            roles: session.roles.clone(),
            amr: vec![session.auth_mode],
            act: session.impersonator.clone().map(|sub| Actor { sub }),
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: uuid::Uuid::new_v4().to_string(),
        };

        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring.primary();
        let mut header = Header::new(key.algorithm());
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key.encoding())
            .map_err(|_| Error::SigningKey("signing failed"))?;

        Ok(AccessToken {
            token,
            expires_in: u64::try_from(ttl).unwrap_or(0),
            claims,
        })
    }

    /// Verifies a presented access token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        self.verify_inner(token).map_err(Error::InvalidToken)
    }

    fn verify_inner(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        use TokenRejection as R;

        if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Err(R::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(head), Some(_), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed);
        };
        if head.len() > MAX_HEADER_SEGMENT || sig.is_empty() {
            return Err(R::Malformed);
        }

        let header = parse_header(head)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(R::ForbiddenHeader);
        }
        let alg = header.alg.ok_or(R::Algorithm)?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(R::Type);
        }
        let kid = header.kid.ok_or(R::UnknownKey)?;
        if !kid_is_well_formed(&kid) {
            return Err(R::UnknownKey);
        }

        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let key = ring.verifier(&kid).ok_or(R::UnknownKey)?;
        // The key's own algorithm, compared before any cryptography: an HS256
        // header over an ES256 key never reaches a MAC computation.
        if alg != algorithm_name(key.algorithm()) {
            return Err(R::Algorithm);
        }
        let validation = self.validation(key.algorithm());
        let data = jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &validation)
            .map_err(|e| map_jwt_error(&e))?;
        drop(ring);

        self.check_times(&data.claims)?;
        Ok(data.claims)
    }

    /// The settings handed to the JWT crate: signature, `iss` and `aud`, and
    /// the presence of the registered claims. Time claims are checked by
    /// [`TokenIssuer::check_times`] against the injected clock.
    fn validation(&self, alg: jsonwebtoken::Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_required_spec_claims(&["exp", "iat", "nbf", "sub", "iss", "aud"]);
        v.set_issuer(&[&self.config.issuer]);
        let mut audiences: Vec<&str> = vec![&self.config.audience];
        audiences.extend(self.config.accepted_audiences.iter().map(String::as_str));
        v.set_audience(&audiences);
        v.validate_aud = true;
        // The crate would compare against the system clock; ours is injected.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        v
    }

    fn check_times(&self, claims: &AccessClaims) -> Result<(), TokenRejection> {
        let now = self.clock.now().unix_timestamp();
        let leeway = self.config.leeway.whole_seconds();

        if claims.exp + leeway < now {
            return Err(TokenRejection::Expired);
        }
        if claims.nbf > now + leeway || claims.iat > now + leeway {
            return Err(TokenRejection::NotYetValid);
        }
        if claims.exp - claims.iat > self.config.ttl.whole_seconds() || claims.exp < claims.iat {
            return Err(TokenRejection::LifetimeTooLong);
        }
        Ok(())
    }
}

fn parse_header(segment: &str) -> Result<RawHeader, TokenRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRejection::Malformed)
}

fn algorithm_name(alg: jsonwebtoken::Algorithm) -> &'static str {
    use jsonwebtoken::Algorithm as A;
    match alg {
        A::HS256 => "HS256",
        A::HS384 => "HS384",
        A::HS512 => "HS512",
        A::ES256 => "ES256",
        A::ES384 => "ES384",
        A::RS256 => "RS256",
        A::RS384 => "RS384",
        A::RS512 => "RS512",
        A::PS256 => "PS256",
        A::PS384 => "PS384",
        A::PS512 => "PS512",
        A::EdDSA => "EdDSA",
        // A newer crate version may add algorithms; none of them is ours.
        _ => "unsupported",
    }
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> TokenRejection {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidKeyFormat => TokenRejection::Signature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenRejection::Algorithm,
        K::InvalidIssuer | K::InvalidAudience => TokenRejection::Audience,
        K::ExpiredSignature => TokenRejection::Expired,
        K::ImmatureSignature => TokenRejection::NotYetValid,
        K::MissingRequiredClaim(_) | K::Json(_) | K::InvalidSubject => TokenRejection::Claims,
        _ => TokenRejection::Malformed,
    }
}

/// Names of the registered claims the JWT crate is told to require; exposed
/// so a test can pin them.
pub fn required_claims(issuer: &TokenIssuer) -> HashSet<String> {
    issuer
        .validation(
            issuer
                .ring
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .primary()
                .algorithm(),
        )
        .required_spec_claims
}

#[cfg(test)]
mod tests;
