//! The session routes: mock login, refresh, logout, the caller's session
//! and sessions, administration of other users' sessions, JWKS and health.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use partner_auth_core::{
    AuthMode, Entitlement, Error, LoginProof, PartnerId, RefreshToken, Role, SessionId,
    SessionManager, UserId,
};
use serde::Deserialize;
use serde_json::json;

use crate::body::{JsonBody, OptionalJson};
use crate::cookies::{REFRESH_COOKIE, clear_session_cookies, read_cookie, set_session_cookies};
use crate::extract::{Caller, PathParam, bearer_token};
use crate::views::{issued_json, session_json};
use crate::{ApiError, AuthState};

/// Longest user id or e-mail accepted by the mock login.
const MAX_LOGIN_NAME: usize = 254;

/// Where the refresh token goes in a login or refresh response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Only in the HttpOnly cookie (browsers).
    #[default]
    Cookie,
    /// In the response body, and no cookies are set (other clients).
    Body,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MockLoginRequest {
    user: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    delivery: Delivery,
}

/// Body of refresh and logout. Redacted in `Debug`: it holds a refresh token.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    delivery: Delivery,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("delivery", &self.delivery)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSessionsQuery {
    partner: Option<String>,
    user: Option<String>,
}

/// The session routes, with `state` applied.
pub fn router(state: AuthState) -> Router {
    // Without a mock provider the route does not exist at all: every request
    // to it is the plain 404 of an unknown route, whatever its method or body.
    let router = if state.mock.is_some() {
        Router::new().route("/api/login/mock", post(mock_login))
    } else {
        Router::new()
    };
    router
        .route("/api/token/refresh", post(refresh))
        .route("/api/logout", post(logout))
        .route("/api/session", get(current_session))
        .route("/api/sessions", get(own_sessions))
        .route("/api/sessions/{id}", delete(revoke_own_session))
        .route("/api/admin/sessions", get(admin_sessions))
        .route("/api/admin/sessions/{id}", delete(admin_revoke_session))
        .route(
            "/api/admin/users/{user}/sessions/revoke",
            post(admin_revoke_user),
        )
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .with_state(state)
}

fn login_response(
    state: &AuthState,
    issued: &partner_auth_core::Issued,
    delivery: Delivery,
) -> Response {
    let body = issued_json(
        issued,
        state.sessions.directory(),
        delivery == Delivery::Body,
    );
    let mut headers = HeaderMap::new();
    if delivery == Delivery::Cookie {
        set_session_cookies(&mut headers, issued, state.cookies);
    }
    headers.insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    (StatusCode::OK, headers, Json(body)).into_response()
}

async fn mock_login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<MockLoginRequest>,
) -> Result<Response, ApiError> {
    let Some(mock) = &state.mock else {
        return Err(ApiError::not_found());
    };
    if req.user.is_empty() || req.user.len() > MAX_LOGIN_NAME {
        return Err(ApiError::bad_request(
            "invalid_user",
            "user must be 1 to 254 bytes",
        ));
    }

    let unknown = |state: &AuthState| {
        state.sessions.login_failed(AuthMode::Mock, "unknown_user");
        ApiError::new(StatusCode::UNAUTHORIZED, "unknown_user", "no such user")
    };
    let identity = match mock.authenticate(LoginProof::Mock { user: req.user }).await {
        Ok(identity) => identity,
        Err(Error::UnknownUser) => return Err(unknown(&state)),
        Err(other) => {
            let refused = ApiError::from(other);
            state.sessions.login_failed(AuthMode::Mock, refused.code);
            return Err(refused);
        }
    };
    let directory = state.sessions.directory();
    let Some(user) = directory.find_user(&identity.subject) else {
        return Err(unknown(&state));
    };

    let issued = state
        .sessions
        .login(user, identity.mode, req.remember_me)
        .await?;
    end_earlier_session(&state.sessions, &headers, issued.session.id).await;
    Ok(login_response(&state, &issued, req.delivery))
}

/// After a successful login, revokes the session whose refresh cookie the
/// request still carried (reason `replaced`), so that a session id planted
/// in the browser before the login is worthless after it. The new session
/// stands either way; a store failure here is logged.
pub(crate) async fn end_earlier_session(
    sessions: &SessionManager,
    headers: &HeaderMap,
    current: SessionId,
) {
    let Some(earlier) = read_cookie(headers, REFRESH_COOKIE).and_then(|t| RefreshToken::parse(&t))
    else {
        return;
    };
    match sessions.end_replaced(&earlier, current).await {
        Ok(true) => tracing::info!("earlier session in this browser replaced by the login"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "earlier session could not be revoked"),
    }
}

/// The refresh token of a request: from the body when it carries one,
/// otherwise from the cookie. A token of the wrong shape is simply unknown.
fn presented_refresh(headers: &HeaderMap, body: Option<&str>) -> Result<RefreshToken, ApiError> {
    let text = match body {
        Some(t) => t.to_owned(),
        None => read_cookie(headers, REFRESH_COOKIE).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_refresh_token",
                "no refresh token in the body or cookie",
            )
        })?,
    };
    RefreshToken::parse(&text).ok_or_else(|| Error::UnknownRefreshToken.into())
}

async fn refresh(
    State(state): State<AuthState>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let req = req.unwrap_or_default();
    let from_cookie = req.refresh_token.is_none();
    if from_cookie && !crate::extract::same_site_headers(&headers) {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    let presented = presented_refresh(&headers, req.refresh_token.as_deref())?;

    let issued = state.sessions.refresh(&presented).await?;
    // A body-delivered token is answered in the body; a cookie with a cookie.
    let delivery = if from_cookie {
        Delivery::Cookie
    } else {
        req.delivery
    };
    Ok(login_response(&state, &issued, delivery))
}

async fn logout(
    State(state): State<AuthState>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let req = req.unwrap_or_default();
    let bearer = bearer_token(&headers)?;
    // Only a request that relies on a cookie can be forged by another site;
    // a bearer or a refresh token in the body is never sent by the browser
    // on its own, exactly as on refresh.
    let by_cookie = bearer.is_none() && req.refresh_token.is_none();
    if by_cookie && !crate::extract::same_site_headers(&headers) {
        return Err(ApiError::forbidden("cross-site request refused"));
    }

    if let Some(token) = bearer {
        let principal = state.sessions.authenticate(token).await?;
        state.sessions.logout(&principal).await?;
    } else if let Some(access) = read_cookie(&headers, crate::cookies::ACCESS_COOKIE)
        && req.refresh_token.is_none()
        && let Ok(principal) = state.sessions.authenticate(&access).await
    {
        state.sessions.logout(&principal).await?;
    } else {
        let presented = presented_refresh(&headers, req.refresh_token.as_deref())?;
        state.sessions.logout_refresh(&presented).await?;
    }

    let mut out = HeaderMap::new();
    clear_session_cookies(&mut out, state.cookies);
    Ok((StatusCode::OK, out, Json(json!({ "status": "logged_out" }))).into_response())
}

async fn current_session(
    State(state): State<AuthState>,
    caller: Caller,
) -> Json<serde_json::Value> {
    Json(session_json(
        &caller.session,
        state.sessions.directory(),
        None,
    ))
}

async fn own_sessions(
    State(state): State<AuthState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let sessions = state.sessions.own_sessions(&caller).await?;
    Ok(session_list(&state, &sessions, &caller))
}

/// A session or user that is missing, or belongs to a partner the caller may
/// not see, is one and the same 404.
fn hide_missing(error: Error) -> ApiError {
    match error {
        Error::SessionNotFound | Error::UnknownUser => ApiError::not_found(),
        other => other.into(),
    }
}

/// `{"sessions": [...]}`, each marked whether it is the caller's own.
fn session_list(
    state: &AuthState,
    sessions: &[partner_auth_core::Session],
    caller: &Caller,
) -> Json<serde_json::Value> {
    let directory = state.sessions.directory();
    let list: Vec<_> = sessions
        .iter()
        .map(|s| session_json(s, directory, Some(caller.session.id)))
        .collect();
    Json(json!({ "sessions": list }))
}

fn parse_session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

async fn revoke_own_session(
    State(state): State<AuthState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_session_id(&id)?;
    state
        .sessions
        .revoke_own(&caller, id)
        .await
        .map_err(hide_missing)?;
    Ok(Json(json!({ "status": "revoked", "id": id })))
}

async fn admin_sessions(
    State(state): State<AuthState>,
    caller: Caller,
    query: Result<Query<AdminSessionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_entitlement(Entitlement::ManageSessions)?;
    let Query(query) = query
        .map_err(|_| ApiError::bad_request("invalid_query", "unknown or malformed parameter"))?;
    let partner = query
        .partner
        .map(PartnerId::new)
        .transpose()
        .map_err(ApiError::from)?;
    let user = query
        .user
        .map(UserId::new)
        .transpose()
        .map_err(ApiError::from)?;

    let sessions = state
        .sessions
        .admin_sessions(&caller, partner.as_ref(), user.as_ref())
        .await?;
    Ok(session_list(&state, &sessions, &caller))
}

async fn admin_revoke_session(
    State(state): State<AuthState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_entitlement(Entitlement::ManageSessions)?;
    let id = parse_session_id(&id)?;
    let session = state
        .sessions
        .admin_revoke(&caller, id)
        .await
        .map_err(hide_missing)?;
    Ok(Json(session_json(
        &session,
        state.sessions.directory(),
        None,
    )))
}

async fn admin_revoke_user(
    State(state): State<AuthState>,
    caller: Caller,
    PathParam(user): PathParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !caller.has_role(Role::Admin) && !caller.is_super_admin() {
        return Err(ApiError::forbidden("missing role admin"));
    }
    caller.require_entitlement(Entitlement::ManageSessions)?;
    let user = UserId::new(user).map_err(|_| ApiError::not_found())?;
    let revoked = state
        .sessions
        .admin_revoke_user(&caller, &user)
        .await
        .map_err(hide_missing)?;
    Ok(Json(json!({ "user": user, "revoked": revoked })))
}

async fn jwks(State(state): State<AuthState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        "public, max-age=300".parse().expect("static header"),
    );
    (headers, Json(state.sessions.issuer().jwks())).into_response()
}

async fn healthz(State(state): State<AuthState>) -> Response {
    match state.sessions.store().health().await {
        Ok(()) => Json(json!({ "status": "ok", "store": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "degraded", "store": "unavailable" })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_request_debug_hides_the_token() {
        let req: RefreshRequest = serde_json::from_str(
            r#"{"refresh_token": "pa_rt_AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKK", "delivery": "body"}"#,
        )
        .unwrap();
        let shown = format!("{req:?}");
        assert!(!shown.contains("AAAAbbbb"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
