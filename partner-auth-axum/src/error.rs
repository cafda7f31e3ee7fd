//! JSON errors with stable codes; the one place where errors become statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use partner_auth_core::Error;
use partner_auth_core::vault::VaultError;
use serde_json::json;

/// An error as the HTTP API reports it: `{"error": "snake_code", "message": "..."}`.
///
/// The message is fixed text chosen here or in the core; it never holds a
/// token, a secret or a raw upstream response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// Words for people.
    pub message: String,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code of the caller's choosing.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthenticated`: no credential, or one that did not verify.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`, deliberately saying nothing about why.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body exceeds the limit",
        )
    }

    /// 408 `request_timeout`: the body did not arrive within the body timeout.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        use StatusCode as S;
        if let Error::Vault(v) = &error {
            return vault_api_error(v);
        }
        let (status, code) = match &error {
            Error::InvalidId { .. } => (S::BAD_REQUEST, "invalid_id"),
            Error::UnknownRole { .. } => (S::BAD_REQUEST, "unknown_role"),
            Error::UnknownUser => (S::NOT_FOUND, "unknown_user"),
            Error::UserDisabled => (S::FORBIDDEN, "user_disabled"),
            Error::InvalidToken(_) => (S::UNAUTHORIZED, "invalid_token"),
            Error::UnknownRefreshToken => (S::UNAUTHORIZED, "invalid_refresh_token"),
            Error::RefreshTokenReused => (S::UNAUTHORIZED, "refresh_token_reused"),
            Error::SessionRevoked => (S::UNAUTHORIZED, "session_revoked"),
            Error::SessionExpired => (S::UNAUTHORIZED, "session_expired"),
            Error::SessionNotFound => (S::NOT_FOUND, "not_found"),
            Error::Conflict { .. } => (S::CONFLICT, "conflict"),
            Error::Forbidden { .. } => (S::FORBIDDEN, "forbidden"),
            Error::Store(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            Error::Google(g) => (google_status(g), g.code()),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            // The cause may name files or backends; it goes to the log, not the client.
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
            let message = if code == "store_unavailable" {
                "the session store is unavailable"
            } else {
                "internal error"
            };
            return Self::new(status, code, message);
        }
        Self::new(status, code, error.to_string())
    }
}

/// Status of a failed Google sign-in: 400 for a bad, stale or replayed
/// callback or a refused ID token, 403 when the identity may not sign in,
/// 502 or 503 when the provider or the flow store is unavailable.
fn google_status(error: &partner_auth_core::google::GoogleError) -> StatusCode {
    use partner_auth_core::google::GoogleError as G;
    if error.is_bad_request() || matches!(error, G::AccessDenied | G::ProviderError) {
        StatusCode::BAD_REQUEST
    } else if error.is_forbidden() {
        StatusCode::FORBIDDEN
    } else if matches!(error, G::TooManyFlows) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if matches!(error, G::Config(_)) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_GATEWAY
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// JSON 404 for unknown routes.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found()
}

/// JSON 405 for a known route with the wrong method.
pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// The HTTP form of a vault error: a missing or foreign credential is 404,
/// a refusal by policy 403, a revoked one 409, bad input 400; an envelope
/// that does not open is logged and reported as a 500 without detail.
fn vault_api_error(v: &VaultError) -> ApiError {
    match v {
        VaultError::NotFound => ApiError::not_found(),
        VaultError::Revoked => ApiError::new(
            StatusCode::CONFLICT,
            "credential_revoked",
            "the credential was revoked",
        ),
        VaultError::Concurrent => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the credential changed meanwhile; try again",
        ),
        VaultError::NotOwner => ApiError::forbidden(v.to_string()),
        VaultError::RotationOverdue => ApiError::new(
            StatusCode::FORBIDDEN,
            "rotation_overdue",
            "the credential is overdue for rotation; rotate it first",
        ),
        VaultError::Invalid(_) | VaultError::SecretLength { .. } => {
            ApiError::bad_request("invalid_input", v.to_string())
        }
        VaultError::UnsafeText(_) => ApiError::bad_request("invalid_text", v.to_string()),
        VaultError::ExpiresInPast => ApiError::bad_request("expires_in_past", v.to_string()),
        VaultError::Expired => ApiError::new(
            StatusCode::CONFLICT,
            "credential_expired",
            "the credential is past its expires_at; rotate it first",
        ),
        VaultError::KeyExhausted(_) => {
            tracing::error!(error = %v, "vault refused to seal");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "vault_unavailable",
                "the vault can not seal right now",
            )
        }
        _ => {
            tracing::error!(error = %v, "vault failure");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "vault_error",
                "the credential could not be read",
            )
        }
    }
}
