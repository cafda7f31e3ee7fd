//! Google sign-in over HTTP: `GET /api/login/google` and
//! `GET /api/login/google/callback`.
//!
//! - The start route stores a pending login and answers 302 to the
//!   provider, with the flow id in the `pa_google_flow` cookie (HttpOnly,
//!   SameSite=Lax so the provider's top-level redirect brings it back,
//!   Path=/api/login/google, ten minutes). Query: `return_to` (a same-origin
//!   relative path, default `/`) and `remember_me` (`true`/`false`); any
//!   other parameter is refused.
//! - The callback checks its query strictly (one `state` and one `code`, or
//!   one `error`; bounded lengths; UTF-8), finishes the login, sets the same
//!   session cookies as every other login and answers 303 to the return path.
//! - The provider's `error=...` (the user declined) redirects to
//!   `/login?error=access_denied` (or `provider_error`). The pending login
//!   ends only when the callback also carries this browser's `state`
//!   (compared in constant time); a forged cross-site `?error=` leaves it
//!   intact. Every other failure is
//!   a JSON error: 400 for a bad, stale or replayed callback or a refused ID
//!   token, 403 when the identity may not sign in, 502/503 when the provider
//!   is unreachable. No failure creates a session, and the flow is spent
//!   either way.
//! - The redirect URI sent to the provider is the configured one; no request
//!   header (`Host`, `X-Forwarded-*`) is ever read to build it.
//! - The subject of the last sign-in is kept in the `pa_google_sub` cookie,
//!   only to decide whether the provider must show the consent screen again
//!   (see `partner_auth_core::google`). It authenticates nothing.
//!
//! Log lines carry the failure code only: never a code, state, token or
//! query string.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cookie::{Cookie, SameSite};
use partner_auth_core::google::{
    BeginLogin, FlowId, GoogleError, GoogleSignIn, ReturnPath, failure_code,
};
use partner_auth_core::{Error, SessionManager};
use secrecy::SecretString;
use time::Duration;

use crate::ApiError;
use crate::cookies::{CookieSettings, read_cookie, set_session_cookies};

/// Cookie holding the pending login's flow id.
pub const FLOW_COOKIE: &str = "pa_google_flow";
/// Cookie holding the provider subject of this browser's last sign-in.
pub const SUBJECT_COOKIE: &str = "pa_google_sub";
/// Path of both cookies: the two Google routes only.
pub const COOKIE_PATH: &str = "/api/login/google";
/// Lifetime of the flow cookie.
pub const FLOW_COOKIE_MAX_AGE: Duration = Duration::minutes(10);
/// Lifetime of the subject cookie.
pub const SUBJECT_COOKIE_MAX_AGE: Duration = Duration::days(180);
/// Where a declined sign-in sends the browser (with `?error=CODE`).
pub const LOGIN_PAGE: &str = "/login";

/// Longest query string accepted by either route, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Longest `state` accepted (ours are 43 characters).
const MAX_STATE_LEN: usize = 256;
/// Longest `code` accepted (Google's are well under 512).
const MAX_CODE_LEN: usize = 2048;
/// Longest subject kept in the hint cookie.
const MAX_SUBJECT_LEN: usize = 255;

/// What the Google routes need.
#[derive(Clone)]
pub struct GoogleState {
    /// The sign-in service (provider, identities, sessions).
    pub sign_in: Arc<GoogleSignIn>,
    /// How cookies are marked.
    pub cookies: CookieSettings,
}

impl std::fmt::Debug for GoogleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleState")
            .field("sign_in", &self.sign_in)
            .field("cookies", &self.cookies)
            .finish()
    }
}

impl FromRef<GoogleState> for Arc<SessionManager> {
    fn from_ref(state: &GoogleState) -> Self {
        state.sign_in.sessions().clone()
    }
}

/// The Google routes, with `state` applied.
pub fn router(state: GoogleState) -> Router {
    Router::new()
        .route("/api/login/google", get(start))
        .route("/api/login/google/callback", get(callback))
        .with_state(state)
}

/// A query string as name-value pairs, refusing what a well-behaved client
/// never sends: too long, not UTF-8 after percent-decoding.
fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, GoogleError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(GoogleError::InvalidCallback("query too long"));
    }
    let mut pairs = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        // The decoder replaces invalid UTF-8 with U+FFFD; no valid parameter holds one.
        if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(GoogleError::InvalidCallback("parameter is not UTF-8"));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// The single value of `name`; two of them is an error.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, GoogleError> {
    let mut found = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match (found.next(), found.next()) {
        (_, Some(_)) => Err(GoogleError::InvalidCallback("duplicated parameter")),
        (value, None) => Ok(value),
    }
}

fn cookie_header(cookie: &Cookie<'_>) -> Option<HeaderValue> {
    HeaderValue::from_str(&cookie.encoded().to_string()).ok()
}

fn google_cookie(
    name: &'static str,
    value: String,
    max_age: Duration,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(COOKIE_PATH)
        .secure(secure)
        .max_age(max_age)
        .build()
}

fn subject_is_cookie_safe(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The JSON error of a failed callback (statuses are chosen in
/// [`crate::error`]), with the flow cookie removed.
fn refused(error: Error, secure: bool) -> Response {
    let api = ApiError::from(error);
    tracing::warn!(
        code = api.code,
        status = api.status.as_u16(),
        "google sign-in refused"
    );
    let mut response = api.into_response();
    clear_flow_cookie(response.headers_mut(), secure);
    response
}

fn clear_flow_cookie(headers: &mut HeaderMap, secure: bool) {
    let cookie = google_cookie(FLOW_COOKIE, String::new(), Duration::ZERO, secure);
    if let Some(v) = cookie_header(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    no_store(response.headers_mut());
    response
}

fn parse_start(raw: Option<&str>) -> Result<BeginLogin, ApiError> {
    let bad = |code: &'static str, message: &'static str| ApiError::bad_request(code, message);
    let pairs =
        query_pairs(raw).map_err(|_| bad("invalid_query", "query is too long or not UTF-8"))?;
    // A parameter we do not know is refused rather than ignored, so that a
    // misspelt `return_to` never silently sends the user to `/`.
    if pairs
        .iter()
        .any(|(name, _)| !matches!(name.as_str(), "return_to" | "remember_me"))
    {
        return Err(bad("invalid_query", "unknown query parameter"));
    }
    let return_to = single(&pairs, "return_to")
        .map_err(|_| bad("invalid_query", "return_to given twice"))?
        .map(|p| {
            ReturnPath::parse(p).ok_or_else(|| {
                bad(
                    "invalid_return_path",
                    "return_to must be a same-origin path starting with a single /",
                )
            })
        })
        .transpose()?
        .unwrap_or_default();
    let remember_me = match single(&pairs, "remember_me")
        .map_err(|_| bad("invalid_query", "remember_me given twice"))?
    {
        None | Some("false" | "0" | "") => false,
        Some("true" | "1" | "on") => true,
        Some(_) => return Err(bad("invalid_query", "remember_me must be true or false")),
    };
    Ok(BeginLogin {
        return_to,
        remember_me,
        known_subject: None,
    })
}

async fn start(
    State(state): State<GoogleState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut request = parse_start(raw.as_deref())?;
    request.known_subject =
        read_cookie(&headers, SUBJECT_COOKIE).filter(|s| subject_is_cookie_safe(s));

    let started = state.sign_in.begin(request).await?;

    let mut response = redirect(StatusCode::FOUND, started.authorization_url.as_str());
    let cookie = google_cookie(
        FLOW_COOKIE,
        started.flow_id.expose_secret().to_owned(),
        FLOW_COOKIE_MAX_AGE,
        state.cookies.secure,
    );
    if let Some(v) = cookie_header(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    tracing::debug!(consent = started.consent, "redirecting to the provider");
    Ok(response)
}

/// What a callback query says.
enum Callback {
    Code { state: String, code: SecretString },
    ProviderError { denied: bool, state: Option<String> },
}

fn parse_callback(raw: Option<&str>) -> Result<Callback, GoogleError> {
    let pairs = query_pairs(raw)?;
    let state = single(&pairs, "state")?;
    let code = single(&pairs, "code")?;
    if let Some(error) = single(&pairs, "error")? {
        return Ok(Callback::ProviderError {
            denied: error == "access_denied",
            state: state
                .filter(|s| s.len() <= MAX_STATE_LEN)
                .map(str::to_owned),
        });
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(GoogleError::InvalidCallback("state missing"))?;
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(GoogleError::InvalidCallback("code missing"))?;
    if state.len() > MAX_STATE_LEN || code.len() > MAX_CODE_LEN {
        return Err(GoogleError::InvalidCallback("parameter too long"));
    }
    Ok(Callback::Code {
        state: state.to_owned(),
        code: SecretString::from(code.to_owned()),
    })
}

async fn callback(
    State(state): State<GoogleState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let secure = state.cookies.secure;
    let flow_id = read_cookie(&headers, FLOW_COOKIE).and_then(|v| FlowId::parse(&v));

    let parsed = match parse_callback(raw.as_deref()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let e = state.sign_in.refuse(flow_id.as_ref(), e.into()).await;
            return refused(e, secure);
        }
    };
    let (presented_state, code) = match parsed {
        Callback::Code { state, code } => (state, code),
        Callback::ProviderError {
            denied,
            state: presented,
        } => {
            let e: Error = if denied {
                GoogleError::AccessDenied
            } else {
                GoogleError::ProviderError
            }
            .into();
            let ended = state
                .sign_in
                .provider_reported_error(flow_id.as_ref(), presented.as_deref(), &e)
                .await;
            let code = failure_code(&e);
            tracing::info!(
                code,
                flow_ended = ended,
                "provider reported an error; back to the login page"
            );
            let mut response = redirect(StatusCode::FOUND, &format!("{LOGIN_PAGE}?error={code}"));
            // Without this browser's state the login in progress stays usable.
            if ended {
                clear_flow_cookie(response.headers_mut(), secure);
            }
            return response;
        }
    };
    let Some(flow_id) = flow_id else {
        let e = state
            .sign_in
            .refuse(None, GoogleError::FlowNotFound.into())
            .await;
        return refused(e, secure);
    };

    let signed_in = match state
        .sign_in
        .complete(&flow_id, &presented_state, &code)
        .await
    {
        Ok(done) => done,
        Err(e) => return refused(e, secure),
    };

    crate::routes::end_earlier_session(
        state.sign_in.sessions(),
        &headers,
        signed_in.issued.session.id,
    )
    .await;
    let mut response = redirect(StatusCode::SEE_OTHER, signed_in.return_to.as_str());
    let headers = response.headers_mut();
    set_session_cookies(headers, &signed_in.issued, state.cookies);
    clear_flow_cookie(headers, secure);
    if subject_is_cookie_safe(&signed_in.subject) {
        let hint = google_cookie(
            SUBJECT_COOKIE,
            signed_in.subject.clone(),
            SUBJECT_COOKIE_MAX_AGE,
            secure,
        );
        if let Some(v) = cookie_header(&hint) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    tracing::info!(session = %signed_in.issued.session.id, "google sign-in completed");
    response
}
