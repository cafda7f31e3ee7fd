//! Request bodies: JSON only, size-limited, read within a time limit, with
//! JSON errors for every rejection (axum's own rejections are plain text).

use std::time::Duration;

use axum::RequestExt as _;
use axum::body::{Bytes, HttpBody as _};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest accepted body on the credential routes: a secret may be
/// [`partner_auth_core::vault::envelope::MAX_SECRET_LEN`] bytes, and JSON may
/// spell each byte as six (`\u0001`); 16 KiB more covers the other fields.
pub const MAX_CREDENTIAL_BODY_BYTES: usize =
    6 * partner_auth_core::vault::envelope::MAX_SECRET_LEN + 16 * 1024;

/// How long a whole request body may take to arrive when no
/// [`BodyTimeout`] is set.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The time a request body may take to arrive in full, counted from the
/// moment the route starts reading it. Put it in the request extensions
/// (`router.layer(axum::Extension(BodyTimeout(...)))`, or
/// [`crate::serve::with_body_timeout`]); without it
/// [`DEFAULT_BODY_TIMEOUT`] applies. A body that is late is a JSON 408
/// `request_timeout`, so a client that announces a length and stops
/// sending cannot hold the connection open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

/// A JSON body that may also be absent (empty): `None` then.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (headers, bytes) = read(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        parse_json(&headers, &bytes).map(|v| Self(Some(v)))
    }
}

/// A required JSON body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (headers, bytes) = read(req, state).await?;
        if bytes.is_empty() {
            if !is_json(&headers) {
                return Err(ApiError::unsupported_media_type());
            }
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body is empty",
            ));
        }
        parse_json(&headers, &bytes).map(Self)
    }
}

/// The headers and the whole body, within the body limit and the body
/// timeout.
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = req.headers().clone();
    let timeout = req
        .extensions()
        .get::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    // The length a `Content-Length` header announces, against the route's
    // limit (which `with_limited_body` reflects in the size hint): a body
    // announced too long is refused before a byte of it is read.
    let announced = req.body().size_hint().exact();
    let req = req.with_limited_body();
    if let (Some(announced), Some(allowed)) = (announced, req.body().size_hint().upper())
        && announced > allowed
    {
        return Err(ApiError::payload_too_large());
    }
    let bytes = tokio::time::timeout(timeout, Bytes::from_request(req, state))
        .await
        .map_err(|_| ApiError::request_timeout())?
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
    Ok((headers, bytes))
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].contains('/')
            && essence.to_ascii_lowercase().ends_with("+json"))
}

fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let message = match e.classify() {
            serde_json::error::Category::Data => "request body has the wrong shape",
            _ => "request body is not valid JSON",
        };
        ApiError::bad_request("invalid_json", message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn content_types() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("+json")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
