//! The session routes of the running example, over real HTTP on 127.0.0.1,
//! backed by a real SQLite file.

mod support;

use serde_json::{Value, json};
use support::{Server, client, cookie_value, set_cookies, status_json};

const PERSONAS: [(&str, &str, &[&str]); 4] = [
    ("nikhil", "execution", &["admin", "trader"]),
    ("mukesh", "throughput", &["trader"]),
    ("raja", "analytics", &["viewer"]),
    ("nitin", "architecture", &["super_admin"]),
];

fn roles(session: &Value) -> Vec<String> {
    let mut r: Vec<String> = session["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap().to_owned())
        .collect();
    r.sort();
    r
}

#[tokio::test]
async fn every_persona_logs_in_and_sees_its_session() {
    let server = Server::start();
    for (user, persona, expected_roles) in PERSONAS {
        for name in [user.to_owned(), format!("{user}@example.com")] {
            let login = server.login(&name, true).await;
            assert_eq!(login.body["token_type"], "Bearer");
            assert_eq!(login.body["expires_in"], 600);
            assert!(login.refresh.starts_with("pa_rt_"));

            let (status, session) = server.get("/api/session", &login.access).await;
            assert_eq!(status, 200, "{session}");
            assert_eq!(session["auth_mode"], "mock");
            assert_eq!(session["user"], user);
            assert_eq!(session["partner"]["id"], user);
            assert_eq!(session["partner"]["persona"], persona);
            assert_eq!(session["id"], login.session_id.as_str());
            assert_eq!(roles(&session), expected_roles);
        }
    }
}

#[tokio::test]
async fn login_without_body_delivery_sets_only_the_cookie() {
    let server = Server::start();
    for (remember_me, max_age) in [(true, Some("Max-Age=86400")), (false, None)] {
        let res = client()
            .post(server.url("/api/login/mock"))
            .json(&json!({ "user": "nikhil", "remember_me": remember_me }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let refresh = set_cookies(res.headers(), "pa_refresh");
        assert_eq!(refresh.len(), 1);
        let cookie = refresh[0];
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/api"] {
            assert!(cookie.contains(attr), "{attr} missing in {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "plain http must not mark Secure: {cookie}"
        );
        match max_age {
            Some(m) => assert!(cookie.contains(m), "{cookie}"),
            None => assert!(!cookie.contains("Max-Age"), "{cookie}"),
        }
        assert!(cookie_value(cookie).starts_with("pa_rt_"));
        let body: Value = res.json().await.unwrap();
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert!(body["access_token"].is_string());
    }
}

#[tokio::test]
async fn cookies_are_secure_when_served_over_https() {
    let server = Server::start_with(&[("PARTNER_AUTH_PUBLIC_URL", "https://auth.example.test")]);
    let res = client()
        .post(server.url("/api/login/mock"))
        .json(&json!({ "user": "raja", "remember_me": true }))
        .send()
        .await
        .unwrap();
    let refresh = set_cookies(res.headers(), "pa_refresh");
    assert!(refresh[0].contains("Secure"), "{}", refresh[0]);
}

#[tokio::test]
async fn refresh_rotates_with_body_and_with_cookie() {
    let server = Server::start();
    let login = server.login("mukesh", false).await;
    let (status, body) = server.refresh(&login.refresh).await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, login.refresh);
    assert_eq!(body["session"]["id"], login.session_id.as_str());
    let (status, _) = server
        .get("/api/session", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);

    // Cookie-only refresh answers with a new cookie, not a body token.
    let res = client()
        .post(server.url("/api/token/refresh"))
        .header("cookie", format!("pa_refresh={next}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = set_cookies(res.headers(), "pa_refresh");
    assert_eq!(cookie.len(), 1);
    assert_ne!(cookie_value(cookie[0]), next);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn sessions_s1_two_tabs_race_and_both_keep_the_session() {
    let server = Server::start();
    let res = client()
        .post(server.url("/api/login/mock"))
        .json(&json!({ "user": "nikhil", "remember_me": true }))
        .send()
        .await
        .unwrap();
    let r0 = cookie_value(set_cookies(res.headers(), "pa_refresh")[0]).to_owned();

    let tab = || {
        client()
            .post(server.url("/api/token/refresh"))
            .header("cookie", format!("pa_refresh={r0}"))
            .send()
    };
    let (a, b) = tokio::join!(tab(), tab());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);

    let mut successors = Vec::new();
    for res in [&a, &b] {
        let set = set_cookies(res.headers(), "pa_refresh");
        assert_eq!(set.len(), 1);
        // Never a clearing cookie: the loser must not wipe what the winner set.
        assert!(!set[0].contains("Max-Age=0"), "{}", set[0]);
        let value = cookie_value(set[0]);
        assert!(value.starts_with("pa_rt_"), "{}", set[0]);
        successors.push(value.to_owned());
    }
    // Whichever cookie the browser kept, the session goes on.
    for token in successors {
        let (status, body) = server.refresh(&token).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn sessions_s1_reuse_after_the_successor_was_used_revokes_the_session() {
    let server = Server::start();
    let r0 = server.login("nikhil", false).await;
    let (_, b1) = server.refresh(&r0.refresh).await;
    let r1 = b1["refresh_token"].as_str().unwrap().to_owned();
    let (_, b2) = server.refresh(&r1).await;
    let access = b2["access_token"].as_str().unwrap().to_owned();
    let r2 = b2["refresh_token"].as_str().unwrap().to_owned();

    let (status, body) = server.refresh(&r0.refresh).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "refresh_token_reused");
    assert!(body["message"].is_string());

    let (status, body) = server.refresh(&r2).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = server.get("/api/session", &access).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sessions_s1_reuse_after_the_grace_window_revokes_the_session() {
    let server = Server::start_with(&[("PARTNER_AUTH_REFRESH_GRACE_SECONDS", "1")]);
    let r0 = server.login("raja", true).await;
    let (_, b1) = server.refresh(&r0.refresh).await;
    let r1 = b1["refresh_token"].as_str().unwrap().to_owned();

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = server.refresh(&r0.refresh).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "refresh_token_reused");
    let (status, body) = server.refresh(&r1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("session_revoked"))
    );
}

#[tokio::test]
async fn sessions_s3_logout_revokes_refresh_in_body_and_access() {
    let server = Server::start();
    let login = server.login("nitin", true).await;
    let res = client()
        .post(server.url("/api/logout"))
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cleared = set_cookies(res.headers(), "pa_refresh");
    assert!(cleared[0].contains("Max-Age=0"));

    let (status, body) = server.refresh(&login.refresh).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "session_revoked");
    let (status, body) = server.get("/api/session", &login.access).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "session_revoked");
}

#[tokio::test]
async fn logout_by_refresh_token_in_the_body() {
    let server = Server::start();
    let login = server.login("mukesh", false).await;
    let res = client()
        .post(server.url("/api/logout"))
        .json(&json!({ "refresh_token": login.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = server.get("/api/session", &login.access).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sign_out_elsewhere_revokes_only_the_other_session() {
    let server = Server::start();
    let laptop = server.login("nikhil", true).await;
    let phone = server.login("nikhil", true).await;

    let (status, list) = server.get("/api/sessions", &laptop.access).await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    let res = client()
        .delete(server.url(&format!("/api/sessions/{}", phone.session_id)))
        .bearer_auth(&laptop.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.get("/api/session", &phone.access).await.0, 401);
    assert_eq!(server.get("/api/session", &laptop.access).await.0, 200);

    // Somebody else's session id is not found, whoever asks.
    let other = server.login("mukesh", false).await;
    let res = client()
        .delete(server.url(&format!("/api/sessions/{}", other.session_id)))
        .bearer_auth(&laptop.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(server.get("/api/session", &other.access).await.0, 200);
}

#[tokio::test]
async fn guards_refuse_callers_without_the_role_or_entitlement() {
    let server = Server::start();
    let raja = server.login("raja", false).await;
    let mukesh = server.login("mukesh", false).await;

    // Entitlement guard: manage_sessions.
    let (status, body) = server.get("/api/admin/sessions", &raja.access).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        server.get("/api/admin/sessions", &mukesh.access).await.0,
        403
    );

    // Role guard: admin.
    let res = client()
        .post(server.url("/api/admin/users/nikhil/sessions/revoke"))
        .bearer_auth(&mukesh.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn admins_manage_sessions_within_their_partner_and_super_admin_across() {
    let server = Server::start();
    let nikhil = server.login("nikhil", false).await;
    let mukesh = server.login("mukesh", false).await;
    let nitin = server.login("nitin", false).await;

    let (status, list) = server.get("/api/admin/sessions", &nikhil.access).await;
    assert_eq!(status, 200);
    let partners: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["partner"]["id"].as_str().unwrap())
        .collect();
    assert!(
        !partners.is_empty() && partners.iter().all(|p| *p == "nikhil"),
        "{partners:?}"
    );
    assert_eq!(
        server
            .get("/api/admin/sessions?partner=mukesh", &nikhil.access)
            .await
            .0,
        403
    );

    // A partner admin can not revoke another partner's session: 404, and it lives.
    let res = client()
        .delete(server.url(&format!("/api/admin/sessions/{}", mukesh.session_id)))
        .bearer_auth(&nikhil.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(server.get("/api/session", &mukesh.access).await.0, 200);

    // The super admin sees every partner and revokes across them.
    let (_, all) = server
        .get("/api/admin/sessions?partner=mukesh", &nitin.access)
        .await;
    assert_eq!(all["sessions"].as_array().unwrap().len(), 1);
    let res = client()
        .delete(server.url(&format!("/api/admin/sessions/{}", mukesh.session_id)))
        .bearer_auth(&nitin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["revoke_reason"], "forced");
    assert_eq!(server.get("/api/session", &mukesh.access).await.0, 401);

    let res = client()
        .post(server.url("/api/admin/users/nikhil/sessions/revoke"))
        .bearer_auth(&nitin.access)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["revoked"], 1);
    assert_eq!(server.get("/api/session", &nikhil.access).await.0, 401);
}

#[tokio::test]
async fn jwks_and_health() {
    let server = Server::start();
    server.assert_healthy().await;
    let res = client()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jwks: Value = res.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert!(key["kid"].is_string());
    assert!(key.get("d").is_none(), "private part published");
}

#[tokio::test]
async fn sessions_s2_fixation_a_login_never_adopts_ids_the_browser_carried() {
    let server = Server::start();
    let earlier = server.login("nikhil", false).await;
    let planted = format!("pa_rt_{}", "B".repeat(43));

    // The browser arrives carrying an earlier session's cookies and a planted one.
    let res = client()
        .post(server.url("/api/login/mock"))
        .header(
            "cookie",
            format!("pa_access={}; pa_refresh={planted}", earlier.access),
        )
        .json(&json!({ "user": "nikhil" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let issued = cookie_value(set_cookies(res.headers(), "pa_refresh")[0]).to_owned();
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["session"]["id"], earlier.session_id.as_str());
    assert_ne!(issued, planted);

    // The planted value never became a credential.
    let (status, _) = server.refresh(&planted).await;
    assert_eq!(status, 401);
}
