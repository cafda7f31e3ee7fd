//! The session cookies. Every login (mock or Google) and every refresh sets
//! them through these helpers, so their attributes never drift apart.
//!
//! - `pa_refresh`: the refresh token. HttpOnly, SameSite=Lax, Path=/api,
//!   Secure when served over https; with remember-me `Max-Age` is what is
//!   left of the session's absolute lifetime (86400 at login, less on each
//!   refresh), and without it there is no `Max-Age` (a browser-session cookie).
//! - `pa_access`: the access token, for pages that can not set a header.
//!   HttpOnly, SameSite=Lax, Path=/, Max-Age of the token's lifetime.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use partner_auth_core::Issued;
use time::Duration;

/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "pa_refresh";
/// Name of the access-token cookie.
pub const ACCESS_COOKIE: &str = "pa_access";
/// Longest Max-Age of the refresh cookie with remember-me: 24 hours, the
/// remember-me session's absolute lifetime.
pub const REMEMBER_ME_MAX_AGE: Duration = Duration::hours(24);

/// How cookies are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSettings {
    /// Add `Secure`: the server is reached over https.
    pub secure: bool,
}

fn base<'a>(name: &'a str, value: String, path: &'a str, secure: bool) -> Cookie<'a> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path(path)
        .secure(secure)
        .build()
}

/// Appends `Set-Cookie` headers for a fresh login or refresh.
pub fn set_session_cookies(headers: &mut HeaderMap, issued: &Issued, settings: CookieSettings) {
    let mut refresh = base(
        REFRESH_COOKIE,
        issued.refresh.expose_secret().to_owned(),
        "/api",
        settings.secure,
    );
    if issued.session.remember_me {
        refresh.set_max_age(remaining_lifetime(issued));
    }
    let mut access = base(
        ACCESS_COOKIE,
        issued.access.token.clone(),
        "/",
        settings.secure,
    );
    access.set_max_age(Duration::seconds(
        i64::try_from(issued.access.expires_in).unwrap_or(0),
    ));
    append(headers, &refresh);
    append(headers, &access);
}

/// Whole seconds from the moment `issued` was issued (its access token's
/// `iat`, read from the injected clock) to the session's absolute end: a
/// refresh never stretches the cookie past the session it belongs to.
fn remaining_lifetime(issued: &Issued) -> Duration {
    let left = issued.session.expires_at.unix_timestamp() - issued.access.claims.iat;
    Duration::seconds(left.clamp(0, REMEMBER_ME_MAX_AGE.whole_seconds()))
}

/// Appends `Set-Cookie` headers that remove both cookies (logout).
pub fn clear_session_cookies(headers: &mut HeaderMap, settings: CookieSettings) {
    for (name, path) in [(REFRESH_COOKIE, "/api"), (ACCESS_COOKIE, "/")] {
        let mut c = base(name, String::new(), path, settings.secure);
        c.set_max_age(Duration::ZERO);
        append(headers, &c);
    }
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.encoded().to_string()) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The value of cookie `name` in the request, if exactly one is present.
/// Two cookies of the same name are ambiguous and count as none.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for c in Cookie::split_parse(text).flatten() {
            if c.name() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(c.value().to_owned());
            }
        }
    }
    found
}
