//! The authenticated caller, and guards on roles and entitlements.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use partner_auth_core::token::MAX_TOKEN_LEN;
use partner_auth_core::{Entitlement, Error, Principal, Role, SessionManager};

use crate::ApiError;
use crate::cookies::{ACCESS_COOKIE, read_cookie};

/// How the caller's access token arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer ...`.
    Bearer,
    /// The `pa_access` cookie.
    Cookie,
}

/// The authenticated caller: a verified access token whose session is live.
///
/// Extracting it reads `Authorization: Bearer` (scheme case-insensitive,
/// exactly one header, at most 8 KiB) or, failing that, the access cookie.
/// A cookie-authenticated request that changes state must not come from
/// another site (checked through `Sec-Fetch-Site` and `Origin`).
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
    /// Where the credential came from.
    pub source: CredentialSource,
}

impl Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Caller {
    /// The verified principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// 403 unless the caller's partner profile gives it `entitlement`.
    pub fn require_entitlement(&self, entitlement: Entitlement) -> Result<(), ApiError> {
        if self.principal.has_entitlement(entitlement) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "missing entitlement {}",
                entitlement.as_str()
            )))
        }
    }

    /// 403 unless the caller holds `role` in its partner (or globally).
    pub fn require_role(&self, role: Role) -> Result<(), ApiError> {
        if self.principal.has_role(role) || self.principal.is_super_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "missing role {}",
                role.as_str()
            )))
        }
    }
}

/// The bearer token of a request: `Ok(None)` without an `Authorization`
/// header, an error for anything malformed.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::unauthenticated(
            "more than one Authorization header",
        ));
    }
    if value.len() > MAX_TOKEN_LEN + 16 {
        return Err(ApiError::unauthenticated("credential too long"));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    let Some((scheme, token)) = text.split_once(' ') else {
        return Err(ApiError::unauthenticated("expected the Bearer scheme"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthenticated("expected the Bearer scheme"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::unauthenticated("empty credential"));
    }
    Ok(Some(token))
}

/// Whether a state-changing request authenticated by cookie comes from our
/// own site. Requests without either header (non-browser clients) pass.
pub fn same_site_request(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    same_site_headers(&parts.headers)
}

/// The header half of [`same_site_request`]: `Sec-Fetch-Site` is
/// `same-origin` or `none` when present, and `Origin` names our `Host`.
pub fn same_site_headers(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(origin);
        return host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host));
    }
    true
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<SessionManager>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let sessions = Arc::<SessionManager>::from_ref(state);
        let (token, source) = match bearer_token(&parts.headers)? {
            Some(t) => (t.to_owned(), CredentialSource::Bearer),
            None => {
                let Some(t) = read_cookie(&parts.headers, ACCESS_COOKIE) else {
                    return Err(ApiError::unauthenticated("no access token"));
                };
                if !same_site_request(parts) {
                    return Err(ApiError::forbidden("cross-site request refused"));
                }
                (t, CredentialSource::Cookie)
            }
        };

        let principal = sessions.authenticate(&token).await.map_err(|e| match e {
            Error::SessionNotFound => ApiError::from(Error::SessionRevoked),
            other => ApiError::from(other),
        })?;
        tracing::Span::current().record("user", tracing::field::display(principal.user()));
        tracing::Span::current().record("partner", tracing::field::display(principal.partner()));
        tracing::Span::current().record("session", tracing::field::display(principal.session.id));

        Ok(Self { principal, source })
    }
}

/// One path parameter (`/api/sessions/{id}`) as text. Unlike axum's `Path`,
/// whose rejections are plain text, a parameter that can not be decoded (a
/// percent escape that is not UTF-8, say) is a JSON 400 `invalid_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParam(pub String);

impl<S> FromRequestParts<S> for PathParam
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "path parameter refused");
                Err(ApiError::bad_request(
                    "invalid_path",
                    "a path parameter could not be decoded",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(
            bearer_token(&with_auth(&["bEaReR abc"])).unwrap(),
            Some("abc")
        );
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn bearer_rejects_hostile_shapes() {
        let dots = format!("Bearer {}", ".".repeat(1_000_000));
        let cases = [
            with_auth(&["Bearer a", "Bearer b"]),
            with_auth(&["Bearer "]),
            with_auth(&["Basic abc"]),
            with_auth(&["Bearer"]),
            with_auth(&[&dots]),
        ];
        for h in &cases {
            assert!(bearer_token(h).is_err());
        }
        let mut bytes = HeaderMap::new();
        bytes.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert!(bearer_token(&bytes).is_err());
    }
}
