//! ID-token verification.
//!
//! Before any cryptography the header is checked: `alg` must be `RS256`, a
//! `kid` is required, and headers that point elsewhere for keys are refused.
//! The signature is verified with the key the [`JwksCache`] holds for that
//! `kid`; claims are then checked by hand against the injected clock, so an
//! odd claim value (say `"email_verified": "yes"`) is a policy answer and
//! never a parse failure.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;
use time::Duration;

use super::error::IdTokenRejection;
use super::flow::secrets_equal;
use super::jwks::{JwksCache, kid_is_acceptable};
use super::{GOOGLE_ISSUER, GOOGLE_ISSUER_BARE, GoogleError};
use crate::Clock;

/// Longest ID token accepted, in bytes.
pub const MAX_ID_TOKEN_LEN: usize = 16 * 1024;
/// Longest `sub` accepted (OpenID Connect allows 255 ASCII characters).
const MAX_SUBJECT_LEN: usize = 255;
/// Largest leeway for clock skew.
pub const MAX_ID_TOKEN_LEEWAY: Duration = Duration::seconds(300);

/// What a verified ID token says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdToken {
    /// The `sub` claim: the provider's stable id for the user.
    pub subject: String,
    /// The `email` claim.
    pub email: Option<String>,
    /// `email_verified`, read by [`email_verified`].
    pub email_verified: bool,
    /// The `hd` claim (Google Workspace domain).
    pub hosted_domain: Option<String>,
    /// The `name` claim.
    pub name: Option<String>,
}

/// Reads `email_verified`: `true`, `"true"` and `"TRUE"` count as verified;
/// anything else (false, other strings, numbers, null, absent) does not.
pub fn email_verified(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "TRUE",
        _ => false,
    }
}

/// Which `iss` values are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerRule {
    /// Google: exactly `accounts.google.com` or `https://accounts.google.com`.
    Google,
    /// Any other provider: exactly this string.
    Exact(String),
}

impl IssuerRule {
    /// The rule for a configured issuer.
    pub fn for_issuer(issuer: &str) -> Self {
        if issuer == GOOGLE_ISSUER || issuer == GOOGLE_ISSUER_BARE {
            IssuerRule::Google
        } else {
            IssuerRule::Exact(issuer.to_owned())
        }
    }

    /// Whether `iss` passes (exact string comparison).
    pub fn accepts(&self, iss: &str) -> bool {
        match self {
            IssuerRule::Google => iss == GOOGLE_ISSUER || iss == GOOGLE_ISSUER_BARE,
            IssuerRule::Exact(expected) => iss == expected,
        }
    }
}

/// The checks an ID token must pass besides its signature.
#[derive(Debug, Clone)]
pub struct IdTokenRules {
    /// Accepted issuers.
    pub issuer: IssuerRule,
    /// The OAuth client id: must be in `aud`, and equal `azp` when present.
    pub client_id: String,
    /// Clock-skew allowance for `exp`, `iat` and `nbf`.
    pub leeway: Duration,
    /// When not empty, `hd` must be one of these (ASCII case-insensitive).
    pub hosted_domains: Vec<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<Value>,
    jku: Option<Value>,
    jwk: Option<Value>,
    x5u: Option<Value>,
    x5c: Option<Value>,
    crit: Option<Value>,
}

/// Verifies ID tokens of one provider and client.
pub struct IdTokenVerifier {
    keys: Arc<JwksCache>,
    rules: IdTokenRules,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IdTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenVerifier")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl IdTokenVerifier {
    /// A verifier using `keys` and `rules`, with time from `clock`.
    pub fn new(keys: Arc<JwksCache>, rules: IdTokenRules, clock: Arc<dyn Clock>) -> Self {
        Self { keys, rules, clock }
    }

    /// The key cache.
    pub fn keys(&self) -> &Arc<JwksCache> {
        &self.keys
    }

    /// Verifies `token`, which must carry `expected_nonce`.
    pub async fn verify(
        &self,
        token: &str,
        expected_nonce: &str,
    ) -> Result<VerifiedIdToken, GoogleError> {
        use IdTokenRejection as R;

        if token.is_empty() || token.len() > MAX_ID_TOKEN_LEN || !token.is_ascii() {
            return Err(R::Malformed.into());
        }
        let mut parts = token.split('.');
        let (Some(head), Some(_), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed.into());
        };
        if sig.is_empty() {
            return Err(R::Malformed.into());
        }
        let header: RawHeader = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(R::Malformed)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(R::ForbiddenHeader.into());
        }
        if header.alg.as_deref() != Some("RS256") {
            return Err(R::Algorithm.into());
        }
        let Some(Value::String(kid)) = header.kid else {
            return Err(R::MissingKeyId.into());
        };
        if !kid_is_acceptable(&kid) {
            return Err(R::MissingKeyId.into());
        }

        let key = self.keys.key(&kid).await?;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &signature_only())
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind as K;
                    match e.kind() {
                        K::InvalidSignature | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
                            R::Signature
                        }
                        K::InvalidAlgorithm | K::InvalidAlgorithmName => R::Algorithm,
                        K::Json(_) | K::InvalidClaimFormat(_) => R::Claims,
                        _ => R::Malformed,
                    }
                })?;

        self.check_claims(&data.claims, expected_nonce)
            .map_err(GoogleError::IdToken)
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, Value>,
        expected_nonce: &str,
    ) -> Result<VerifiedIdToken, IdTokenRejection> {
        use IdTokenRejection as R;
        let rules = &self.rules;

        let iss = claims.get("iss").and_then(Value::as_str).ok_or(R::Issuer)?;
        if !rules.issuer.accepts(iss) {
            return Err(R::Issuer);
        }

        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == &rules.client_id,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(rules.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(R::Audience);
        }
        match claims.get("azp") {
            None => {}
            Some(Value::String(azp)) if azp == &rules.client_id => {}
            Some(_) => return Err(R::AuthorizedParty),
        }

        let now = self.clock.now().unix_timestamp();
        let leeway = rules.leeway.whole_seconds();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(R::Expired)?;
        if exp.saturating_add(leeway) < now {
            return Err(R::Expired);
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or(R::NotYetValid)?;
        if iat > now.saturating_add(leeway) {
            return Err(R::NotYetValid);
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => {
                let nbf = nbf.as_i64().ok_or(R::NotYetValid)?;
                if nbf > now.saturating_add(leeway) {
                    return Err(R::NotYetValid);
                }
            }
        }

        let nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .ok_or(R::Nonce)?;
        if !secrets_equal(nonce, expected_nonce) {
            return Err(R::Nonce);
        }

        let subject = claims.get("sub").and_then(Value::as_str).ok_or(R::Claims)?;
        if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN || !subject.is_ascii() {
            return Err(R::Claims);
        }

        let hosted_domain = claims.get("hd").and_then(Value::as_str).map(str::to_owned);
        if !rules.hosted_domains.is_empty() {
            let allowed = hosted_domain.as_deref().is_some_and(|hd| {
                rules
                    .hosted_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(hd))
            });
            if !allowed {
                return Err(R::HostedDomain);
            }
        }

        Ok(VerifiedIdToken {
            subject: subject.to_owned(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            email_verified: email_verified(claims.get("email_verified")),
            hosted_domain,
            name: claims
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// Settings for the JWT crate: RS256 signature only. Every claim is checked
/// by [`IdTokenVerifier::check_claims`] against the injected clock.
fn signature_only() -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

impl From<IdTokenRejection> for GoogleError {
    fn from(r: IdTokenRejection) -> Self {
        GoogleError::IdToken(r)
    }
}
