//! The session routes driven with `oneshot` on a manual clock: path
//! parameters, the cross-site guard, the remember-me cookie on refresh, an
//! earlier session replaced by a new login, and failed mock logins.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use partner_auth_axum::{AuthState, CookieSettings, app, routes};
use partner_auth_core::{
    AuthMode, Directory, KeyRing, ManualClock, MemorySessionStore, MockProvider, RecordedEvents,
    Role, RoleGrant, RunMode, SecurityEvent, SessionConfig, SessionManager, TokenConfig,
    TokenIssuer,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;

struct App {
    router: Router,
    sessions: Arc<SessionManager>,
    clock: ManualClock,
    events: Arc<RecordedEvents>,
}

fn start() -> App {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    let directory = Arc::new(Directory::launch().unwrap());
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let events = Arc::new(RecordedEvents::default());
    let sessions = Arc::new(
        SessionManager::new(
            Arc::new(MemorySessionStore::new()),
            Arc::new(issuer),
            directory.clone(),
            Arc::new(clock.clone()),
            events.clone(),
            SessionConfig::default(),
        )
        .unwrap(),
    );
    let mock = MockProvider::new(directory, RunMode::Development).unwrap();
    let state = AuthState {
        sessions: sessions.clone(),
        mock: Some(Arc::new(mock)),
        cookies: CookieSettings { secure: false },
    };
    App {
        router: app([routes::router(state)]),
        sessions,
        clock,
        events,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// The value of the `Set-Cookie` line for `name`, and the line.
    fn cookie(&self, name: &str) -> (String, String) {
        let line = self
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie"))
            .to_owned();
        let value = line
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_owned())
            .unwrap();
        (value, line)
    }

    fn max_age(&self, name: &str) -> Option<i64> {
        let (_, line) = self.cookie(name);
        line.split(';')
            .map(str::trim)
            .find_map(|a| a.strip_prefix("Max-Age="))
            .map(|v| v.parse().unwrap())
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<not a JSON error>")
    }
}

impl App {
    async fn call(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// A mock login; `cookie` is sent as the `Cookie` header.
    async fn login(&self, body: Value, cookie: Option<&str>) -> Reply {
        let mut req =
            Request::post("/api/login/mock").header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.call(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn session_with_bearer(&self, access: &str) -> Reply {
        self.call(
            Request::get("/api/session")
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// The id of a fresh session of `user`.
    async fn other_session(&self, user: &str) -> String {
        let reply = self
            .login(json!({"user": user, "delivery": "body"}), None)
            .await;
        reply.body["session"]["id"].as_str().unwrap().to_owned()
    }

    async fn refresh_body(&self, refresh: &str) -> Reply {
        self.call(
            Request::post("/api/token/refresh")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"refresh_token": refresh, "delivery": "body"}).to_string(),
                ))
                .unwrap(),
        )
        .await
    }
}

#[tokio::test]
async fn undecodable_path_parameters_are_json_400s() {
    let a = start();
    let login = a
        .login(json!({"user": "nitin", "delivery": "body"}), None)
        .await;
    let access = login.body["access_token"].as_str().unwrap();
    for (method, uri) in [
        ("DELETE", "/api/sessions/%FF"),
        ("DELETE", "/api/admin/sessions/%FF%FE"),
        ("POST", "/api/admin/users/%C3%28/sessions/revoke"),
    ] {
        let reply = a
            .call(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {access}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {uri}");
        assert_eq!(reply.error(), "invalid_path", "{method} {uri}");
        assert_eq!(
            reply.headers[header::CONTENT_TYPE],
            "application/json",
            "{method} {uri}"
        );
    }
    // A well-formed id that is nobody's is still the usual 404.
    let reply = a
        .call(
            Request::delete("/api/sessions/not-a-uuid")
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn cross_site_cookie_requests_that_change_state_are_refused() {
    let a = start();
    // Two sessions of one user: the second is revoked from the first.
    let browser = a.login(json!({"user": "nikhil"}), None).await;
    let (access, _) = browser.cookie("pa_access");
    let cookie = format!("pa_access={access}");

    let delete = |id: &str, extra: &[(&str, &str)], auth: Option<&str>| {
        let mut req =
            Request::delete(format!("/api/sessions/{id}")).header(header::HOST, "app.example.com");
        req = match auth {
            Some(bearer) => req.header(header::AUTHORIZATION, format!("Bearer {bearer}")),
            None => req.header(header::COOKIE, cookie.clone()),
        };
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.body(Body::empty()).unwrap()
    };

    for extra in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example.net")],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example.net"),
        ],
    ] {
        let id = a.other_session("nikhil").await;
        let reply = a.call(delete(&id, &extra, None)).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{extra:?}"
        );
    }

    // Same origin, a direct navigation, or no browser headers at all pass.
    for extra in [
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![("origin", "https://app.example.com")],
        vec![],
    ] {
        let id = a.other_session("nikhil").await;
        let reply = a.call(delete(&id, &extra, None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{extra:?}: {}", reply.body);
    }

    // A bearer token is not sent by browsers on their own: no site check.
    let bearer = a
        .login(json!({"user": "nikhil", "delivery": "body"}), None)
        .await;
    let bearer = bearer.body["access_token"].as_str().unwrap().to_owned();
    let id = a.other_session("nikhil").await;
    let reply = a
        .call(delete(
            &id,
            &[("sec-fetch-site", "cross-site")],
            Some(&bearer),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Reading with the cookie from another site is allowed (GET changes nothing).
    let reply = a
        .call(
            Request::get("/api/session")
                .header(header::COOKIE, cookie.clone())
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Refresh by cookie follows the same rule.
    let (refresh, _) = browser.cookie("pa_refresh");
    let refresh_req = |site: &str| {
        Request::post("/api/token/refresh")
            .header(header::COOKIE, format!("pa_refresh={refresh}"))
            .header("sec-fetch-site", site)
            .body(Body::empty())
            .unwrap()
    };
    let reply = a.call(refresh_req("cross-site")).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let reply = a.call(refresh_req("same-origin")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn refresh_and_logout_apply_the_site_check_only_to_cookies() {
    let a = start();
    let post = |uri: &str, cookie: Option<String>, body: Option<Value>| {
        let mut req = Request::post(uri)
            .header(header::HOST, "app.example.com")
            .header("sec-fetch-site", "cross-site");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        }
    };

    // A refresh token in the body, no cookie: a non-browser client. Both
    // routes serve it whatever the site headers say.
    for uri in ["/api/token/refresh", "/api/logout"] {
        let login = a
            .login(json!({"user": "mukesh", "delivery": "body"}), None)
            .await;
        let refresh = login.body["refresh_token"].as_str().unwrap();
        let reply = a
            .call(post(
                uri,
                None,
                Some(json!({"refresh_token": refresh, "delivery": "body"})),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
    }

    // The same cross-site request carrying its token by cookie is refused
    // on both routes.
    for uri in ["/api/token/refresh", "/api/logout"] {
        let browser = a.login(json!({"user": "mukesh"}), None).await;
        let (refresh, _) = browser.cookie("pa_refresh");
        let (access, _) = browser.cookie("pa_access");
        for cookie in [
            format!("pa_refresh={refresh}"),
            format!("pa_access={access}; pa_refresh={refresh}"),
        ] {
            let reply = a.call(post(uri, Some(cookie.clone()), None)).await;
            assert_eq!(
                (reply.status, reply.error()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{uri} {cookie}"
            );
        }
    }
}

#[tokio::test]
async fn remember_me_cookie_counts_down_the_absolute_lifetime() {
    let a = start();
    let login = a
        .login(json!({"user": "mukesh", "remember_me": true}), None)
        .await;
    assert_eq!(login.max_age("pa_refresh"), Some(86_400));
    let (mut refresh, _) = login.cookie("pa_refresh");

    for (advance, expected) in [(90 * 60, 86_400 - 90 * 60), (100 * 60, 86_400 - 190 * 60)] {
        a.clock.advance(Duration::seconds(advance));
        let reply = a
            .call(
                Request::post("/api/token/refresh")
                    .header(header::COOKIE, format!("pa_refresh={refresh}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.max_age("pa_refresh"), Some(expected));
        refresh = reply.cookie("pa_refresh").0;
    }

    // Without remember-me the refresh cookie stays a browser-session cookie.
    let login = a.login(json!({"user": "mukesh"}), None).await;
    assert_eq!(login.max_age("pa_refresh"), None);
}

#[tokio::test]
async fn a_new_login_revokes_the_session_of_the_refresh_cookie_it_carried() {
    let a = start();
    let earlier = a
        .login(json!({"user": "raja", "delivery": "body"}), None)
        .await;
    let earlier_access = earlier.body["access_token"].as_str().unwrap().to_owned();
    let earlier_refresh = earlier.body["refresh_token"].as_str().unwrap().to_owned();
    let earlier_id = earlier.body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.session_with_bearer(&earlier_access).await.status,
        StatusCode::OK
    );

    // The browser still holds the earlier refresh cookie when it signs in.
    let fresh = a
        .login(
            json!({"user": "raja"}),
            Some(&format!("pa_refresh={earlier_refresh}")),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_ne!(fresh.body["session"]["id"], earlier_id.as_str());

    let reply = a.session_with_bearer(&earlier_access).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    let reply = a.refresh_body(&earlier_refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert!(a.events.snapshot().iter().any(|e| matches!(
        e,
        SecurityEvent::SessionRevoked {
            reason: partner_auth_core::RevokeReason::Replaced,
            ..
        }
    )));

    // The new session works.
    let (access, _) = fresh.cookie("pa_access");
    assert_eq!(a.session_with_bearer(&access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_mock_login_of_an_unknown_user_raises_login_failed() {
    let a = start();
    let reply = a.login(json!({"user": "nobody@example.com"}), None).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::UNAUTHORIZED, "unknown_user")
    );
    assert_eq!(
        a.events.snapshot(),
        vec![SecurityEvent::LoginFailed {
            mode: AuthMode::Mock,
            reason: "unknown_user",
        }]
    );
}

/// The documented limits, to the byte: a header value over 8208 bytes is
/// `unauthenticated` before any parsing; up to that, a token over 8192 bytes
/// is an `invalid_token`.
#[tokio::test]
async fn bearer_size_limits_match_the_documentation() {
    let a = start();
    for (token_len, code) in [
        (8_192, "invalid_token"),
        (8_201, "invalid_token"),
        (8_202, "unauthenticated"),
        (100_000, "unauthenticated"),
    ] {
        let header_value = format!("Bearer {}", "a".repeat(token_len));
        let reply = a
            .call(
                Request::get("/api/session")
                    .header(header::AUTHORIZATION, header_value)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNAUTHORIZED, code),
            "token of {token_len} bytes"
        );
    }
}

#[tokio::test]
async fn guards_follow_the_session_roles_not_the_token() {
    let a = start();
    let raja = a
        .login(json!({"user": "raja", "delivery": "body"}), None)
        .await;
    let id = raja.body["session"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut session = a.sessions.store().get(id).await.unwrap().unwrap();
    // Re-signed with the server's key for raja's live session, claiming
    // the global super_admin role the login never granted.
    session.roles = vec![RoleGrant::global(Role::SuperAdmin)];
    let forged = a.sessions.issuer().issue(&session).unwrap();
    for uri in ["/api/admin/sessions", "/api/session"] {
        let reply = a
            .call(
                Request::get(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {}", forged.token))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{uri}"
        );
    }
    // raja's own token still works, and still is no admin.
    let access = raja.body["access_token"].as_str().unwrap();
    assert_eq!(a.session_with_bearer(access).await.status, StatusCode::OK);
    let reply = a
        .call(
            Request::get("/api/admin/sessions")
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}
