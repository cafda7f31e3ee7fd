//! Session lifecycle against the in-memory store (cases/sessions.md S1 to S3,
//! SECURITY.md T1 to T4). The same flows run over HTTP in the example's tests.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::{KeyRing, ManualClock, MemorySessionStore, RecordedEvents, TokenConfig};

struct Fixture {
    sessions: SessionManager,
    clock: ManualClock,
    events: Arc<RecordedEvents>,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let events = Arc::new(RecordedEvents::default());
    let sessions = SessionManager::new(
        Arc::new(MemorySessionStore::new()),
        Arc::new(issuer),
        Arc::new(Directory::launch().unwrap()),
        Arc::new(clock.clone()),
        events.clone(),
        SessionConfig::default(),
    )
    .unwrap();
    Fixture {
        sessions,
        clock,
        events,
    }
}

async fn login(f: &Fixture, user: &str, remember_me: bool) -> Issued {
    let user = f.sessions.directory().find_user(user).unwrap().clone();
    f.sessions
        .login(&user, AuthMode::Mock, remember_me)
        .await
        .unwrap()
}

async fn revoked(f: &Fixture, id: SessionId) -> Option<RevokeReason> {
    f.sessions
        .store()
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .revoke_reason
}

#[tokio::test]
async fn refresh_rotates_and_the_new_token_works() {
    let f = fixture();
    let first = login(&f, "nikhil", false).await;
    let second = f.sessions.refresh(&first.refresh).await.unwrap();
    assert_eq!(second.session.id, first.session.id);
    assert_eq!(second.session.refresh_generation, 1);
    assert!(!second.grace);
    let third = f.sessions.refresh(&second.refresh).await.unwrap();
    assert_eq!(third.session.refresh_generation, 2);
}

#[tokio::test]
async fn sessions_s1_two_tabs_race_inside_the_grace_window() {
    let f = fixture();
    let r0 = login(&f, "nikhil", true).await;
    let (a, b) = tokio::join!(
        f.sessions.refresh(&r0.refresh),
        f.sessions.refresh(&r0.refresh)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(
        a.grace, b.grace,
        "one rotates, the other is served from the window"
    );
    // Both successors keep working: neither tab loses the session.
    f.clock.advance(Duration::seconds(1));
    let a2 = f.sessions.refresh(&a.refresh).await.unwrap();
    assert!(f.sessions.authenticate(&a2.access.token).await.is_ok());
    assert!(f.sessions.authenticate(&b.access.token).await.is_ok());
}

#[tokio::test]
async fn sessions_s1_reuse_after_the_grace_window_revokes() {
    let f = fixture();
    let r0 = login(&f, "mukesh", false).await;
    let r1 = f.sessions.refresh(&r0.refresh).await.unwrap();
    f.clock.advance(Duration::seconds(11));
    let err = f.sessions.refresh(&r0.refresh).await.unwrap_err();
    assert!(matches!(err, Error::RefreshTokenReused));
    assert_eq!(
        revoked(&f, r0.session.id).await,
        Some(RevokeReason::RefreshReuse)
    );
    // R1 is dead too: the whole session went (T2).
    assert!(matches!(
        f.sessions.refresh(&r1.refresh).await,
        Err(Error::SessionRevoked)
    ));
    assert!(
        f.events
            .snapshot()
            .iter()
            .any(|e| matches!(e, SecurityEvent::RefreshReuse { .. }))
    );
}

#[tokio::test]
async fn sessions_s1_t3_reuse_after_the_successor_was_used_revokes_even_inside_the_window() {
    let f = fixture();
    let r1 = login(&f, "nikhil", false).await;
    let r2 = f.sessions.refresh(&r1.refresh).await.unwrap();
    let r3 = f.sessions.refresh(&r2.refresh).await.unwrap();
    // T3: the window covers only the immediately previous token.
    let err = f.sessions.refresh(&r1.refresh).await.unwrap_err();
    assert!(matches!(err, Error::RefreshTokenReused));
    assert!(f.sessions.authenticate(&r3.access.token).await.is_err());
}

#[tokio::test]
async fn sessions_s2_fixation_every_login_gets_a_fresh_id() {
    let f = fixture();
    let a = login(&f, "raja", false).await;
    let b = login(&f, "raja", false).await;
    assert_ne!(a.session.id, b.session.id);
    let record = RefreshRecord {
        digest: RefreshToken::generate().digest(),
        session_id: a.session.id,
        generation: 0,
        issued_at: a.session.created_at,
        used_at: None,
    };
    let dup = f.sessions.store().create(&a.session, &record).await;
    assert!(matches!(dup, Err(Error::Conflict { .. })));
}

#[tokio::test]
async fn sessions_s3_logout_revokes_refresh_and_access() {
    let f = fixture();
    let s = login(&f, "nitin", true).await;
    let caller = f.sessions.authenticate(&s.access.token).await.unwrap();
    f.sessions.logout(&caller).await.unwrap();
    assert!(matches!(
        f.sessions.refresh(&s.refresh).await,
        Err(Error::SessionRevoked)
    ));
    assert!(matches!(
        f.sessions.authenticate(&s.access.token).await,
        Err(Error::SessionRevoked)
    ));
    assert_eq!(revoked(&f, s.session.id).await, Some(RevokeReason::Logout));
}

#[tokio::test]
async fn remember_me_sessions_last_24_hours_others_8() {
    let f = fixture();
    let long = login(&f, "nikhil", true).await;
    let short = login(&f, "nikhil", false).await;
    assert_eq!(
        long.session.expires_at - long.session.created_at,
        Duration::hours(24)
    );
    assert_eq!(
        short.session.expires_at - short.session.created_at,
        Duration::hours(8)
    );

    // Keep both alive past 8 hours by refreshing within the idle timeout.
    let (mut l, mut s) = (long.refresh, short.refresh);
    for _ in 0..9 {
        f.clock.advance(Duration::minutes(55));
        l = f.sessions.refresh(&l).await.unwrap().refresh;
        if let Ok(next) = f.sessions.refresh(&s).await {
            s = next.refresh;
        }
    }
    assert!(matches!(
        f.sessions.refresh(&s).await,
        Err(Error::SessionExpired)
    ));
    assert!(f.sessions.refresh(&l).await.is_ok());
}

#[tokio::test]
async fn idle_sessions_end() {
    let f = fixture();
    let s = login(&f, "mukesh", true).await;
    f.clock.advance(Duration::hours(2) + Duration::seconds(1));
    assert!(matches!(
        f.sessions.refresh(&s.refresh).await,
        Err(Error::SessionExpired)
    ));
    assert_eq!(revoked(&f, s.session.id).await, Some(RevokeReason::Idle));
}

#[tokio::test]
async fn admins_see_their_partner_and_super_admins_all() {
    let f = fixture();
    let nikhil = login(&f, "nikhil", false).await;
    let mukesh = login(&f, "mukesh", false).await;
    let nitin = login(&f, "nitin", false).await;
    let admin = f.sessions.authenticate(&nikhil.access.token).await.unwrap();
    let staff = f.sessions.authenticate(&nitin.access.token).await.unwrap();

    let seen = f.sessions.admin_sessions(&admin, None, None).await.unwrap();
    assert!(seen.iter().all(|s| s.partner_id.as_str() == "nikhil"));
    assert!(matches!(
        f.sessions
            .admin_sessions(&admin, Some(&mukesh.session.partner_id), None)
            .await,
        Err(Error::Forbidden { .. })
    ));
    // Another partner's session id is simply not found for a partner admin.
    assert!(matches!(
        f.sessions.admin_revoke(&admin, mukesh.session.id).await,
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        f.sessions
            .admin_sessions(&staff, None, None)
            .await
            .unwrap()
            .len(),
        3
    );
    f.sessions
        .admin_revoke(&staff, mukesh.session.id)
        .await
        .unwrap();
    assert_eq!(
        revoked(&f, mukesh.session.id).await,
        Some(RevokeReason::Forced)
    );
}

#[tokio::test]
async fn grace_window_outside_range_is_refused() {
    let f = fixture();
    let config = SessionConfig {
        grace: Duration::seconds(61),
        ..SessionConfig::default()
    };
    let made = SessionManager::new(
        f.sessions.store().clone(),
        f.sessions.issuer().clone(),
        f.sessions.directory().clone(),
        f.sessions.clock().clone(),
        f.sessions.events().clone(),
        config,
    );
    assert!(made.is_err());
}
