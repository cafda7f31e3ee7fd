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
    // Two events, in this order: the reuse, then the revocation it caused.
    let names: Vec<_> = f
        .events
        .snapshot()
        .iter()
        .filter_map(|e| match e {
            SecurityEvent::RefreshReuse { session, .. } => Some(("refresh_reuse", *session, None)),
            SecurityEvent::SessionRevoked {
                session, reason, ..
            } => Some(("session_revoked", *session, Some(*reason))),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            ("refresh_reuse", r0.session.id, None),
            (
                "session_revoked",
                r0.session.id,
                Some(RevokeReason::RefreshReuse)
            ),
        ]
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
    assert!(
        f.events
            .snapshot()
            .contains(&SecurityEvent::SessionRevoked {
                user: s.session.user_id.clone(),
                partner: s.session.partner_id.clone(),
                session: s.session.id,
                reason: RevokeReason::Idle,
                by: None,
            }),
        "an idle end is a revocation event like the others"
    );
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

/// The in-memory store with a rival request: before each of our first
/// `rivals` rotations, another refresh of the same token wins its
/// compare-and-swap, so ours is refused. With `always_lose`, every
/// compare-and-swap (rotation and sibling) is refused and nothing changes,
/// as on a backend that keeps losing under contention.
struct RacingStore {
    inner: MemorySessionStore,
    rivals: std::sync::atomic::AtomicU32,
    always_lose: bool,
    rival_token: std::sync::Mutex<Option<RefreshToken>>,
    attempts: std::sync::atomic::AtomicU32,
}

impl RacingStore {
    fn new(rivals: u32, always_lose: bool) -> Self {
        Self {
            inner: MemorySessionStore::new(),
            rivals: std::sync::atomic::AtomicU32::new(rivals),
            always_lose,
            rival_token: std::sync::Mutex::new(None),
            attempts: std::sync::atomic::AtomicU32::new(0),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for RacingStore {
    async fn create(&self, session: &Session, first: &RefreshRecord) -> Result<(), Error> {
        self.inner.create(session, first).await
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, Error> {
        self.inner.get(id).await
    }

    async fn find_refresh(
        &self,
        digest: &crate::refresh::TokenDigest,
    ) -> Result<Option<RefreshRecord>, Error> {
        self.inner.find_refresh(digest).await
    }

    async fn rotate(
        &self,
        from_generation: u32,
        presented: &crate::refresh::TokenDigest,
        next: &RefreshRecord,
        now: time::OffsetDateTime,
    ) -> Result<bool, Error> {
        use std::sync::atomic::Ordering;
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.always_lose {
            return Ok(false);
        }
        let rival_due = self
            .rivals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if rival_due {
            let token = RefreshToken::generate();
            let rival = RefreshRecord {
                digest: token.digest(),
                ..next.clone()
            };
            assert!(
                self.inner
                    .rotate(from_generation, presented, &rival, now)
                    .await?
            );
            *self.rival_token.lock().unwrap() = Some(token);
        }
        self.inner
            .rotate(from_generation, presented, next, now)
            .await
    }

    async fn add_sibling(
        &self,
        next: &RefreshRecord,
        now: time::OffsetDateTime,
    ) -> Result<bool, Error> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.always_lose {
            return Ok(false);
        }
        self.inner.add_sibling(next, now).await
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: time::OffsetDateTime,
    ) -> Result<bool, Error> {
        self.inner.revoke(id, reason, now).await
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: RevokeReason,
        now: time::OffsetDateTime,
    ) -> Result<u64, Error> {
        self.inner.revoke_user(user, reason, now).await
    }

    async fn list(&self, filter: &SessionFilter) -> Result<Vec<Session>, Error> {
        self.inner.list(filter).await
    }

    async fn purge_expired(&self, before: time::OffsetDateTime) -> Result<u64, Error> {
        self.inner.purge_expired(before).await
    }

    async fn health(&self) -> Result<(), Error> {
        self.inner.health().await
    }
}

fn racing_fixture(store: Arc<RacingStore>) -> Fixture {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let events = Arc::new(RecordedEvents::default());
    let sessions = SessionManager::new(
        store,
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

#[tokio::test]
async fn a_lost_rotation_is_retried_and_served_from_the_grace_window() {
    let store = Arc::new(RacingStore::new(1, false));
    let f = racing_fixture(store.clone());
    let first = login(&f, "nikhil", false).await;

    let ours = f.sessions.refresh(&first.refresh).await.unwrap();

    // The rival's rotation moved the session to generation 1; our retry saw
    // the presented token as the previous one, inside the window.
    assert!(ours.grace, "the retry must take the grace path");
    assert_eq!(ours.session.id, first.session.id);
    assert_eq!(ours.session.refresh_generation, 1);
    assert_eq!(store.attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(revoked(&f, first.session.id).await, None);
    assert!(f.sessions.authenticate(&ours.access.token).await.is_ok());

    // The rival's token and ours are both of the current generation, and
    // ours rotates on as usual.
    let rival = store.rival_token.lock().unwrap().take().unwrap();
    let rival_record = f
        .sessions
        .store()
        .find_refresh(&rival.digest())
        .await
        .unwrap();
    assert_eq!(rival_record.unwrap().generation, 1);
    let next = f.sessions.refresh(&ours.refresh).await.unwrap();
    assert_eq!(next.session.refresh_generation, 2);
    assert!(
        !f.events
            .snapshot()
            .iter()
            .any(|e| matches!(e, SecurityEvent::RefreshReuse { .. }))
    );
}

#[tokio::test]
async fn repeated_lost_compare_and_swaps_end_in_conflict() {
    let store = Arc::new(RacingStore::new(0, true));
    let f = racing_fixture(store.clone());
    let first = login(&f, "mukesh", false).await;

    let err = f.sessions.refresh(&first.refresh).await.unwrap_err();

    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(store.attempts.load(std::sync::atomic::Ordering::SeqCst), 4);
    // Losing races is not reuse: the session is intact.
    assert_eq!(revoked(&f, first.session.id).await, None);
    assert!(f.sessions.authenticate(&first.access.token).await.is_ok());
}

#[tokio::test]
async fn issued_debug_reveals_neither_token() {
    let f = fixture();
    let issued = login(&f, "raja", true).await;
    let shown = format!("{issued:?}");
    assert!(!shown.contains(&issued.access.token), "{shown}");
    assert!(!shown.contains(issued.refresh.expose_secret()), "{shown}");
}

#[tokio::test]
async fn end_replaced_revokes_the_earlier_session_only() {
    let f = fixture();
    let earlier = login(&f, "nikhil", false).await;
    let current = login(&f, "nikhil", false).await;

    assert!(
        f.sessions
            .end_replaced(&earlier.refresh, current.session.id)
            .await
            .unwrap()
    );
    assert_eq!(
        revoked(&f, earlier.session.id).await,
        Some(RevokeReason::Replaced)
    );
    assert_eq!(revoked(&f, current.session.id).await, None);
    // Already ended, or the new session's own token: nothing more happens.
    assert!(
        !f.sessions
            .end_replaced(&earlier.refresh, current.session.id)
            .await
            .unwrap()
    );
    assert!(
        !f.sessions
            .end_replaced(&current.refresh, current.session.id)
            .await
            .unwrap()
    );
    assert!(
        !f.sessions
            .end_replaced(&RefreshToken::generate(), current.session.id)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn login_failed_raises_the_event() {
    let f = fixture();
    f.sessions.login_failed(AuthMode::Mock, "unknown_user");
    assert_eq!(
        f.events.snapshot(),
        vec![SecurityEvent::LoginFailed {
            mode: AuthMode::Mock,
            reason: "unknown_user"
        }]
    );
}

#[test]
fn absurd_lifetimes_are_refused_by_the_constructor() {
    let make = |config: SessionConfig| {
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
        let issuer = TokenIssuer::new(
            KeyRing::generate().unwrap(),
            TokenConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        SessionManager::new(
            Arc::new(MemorySessionStore::new()),
            Arc::new(issuer),
            Arc::new(Directory::launch().unwrap()),
            Arc::new(clock),
            Arc::new(RecordedEvents::default()),
            config,
        )
    };
    let huge = Duration::hours(i64::from(u32::MAX));
    for config in [
        SessionConfig {
            session_lifetime: huge,
            ..SessionConfig::default()
        },
        SessionConfig {
            remember_me_lifetime: Duration::days(367),
            ..SessionConfig::default()
        },
        SessionConfig {
            idle_timeout: Duration::ZERO,
            ..SessionConfig::default()
        },
        SessionConfig {
            session_lifetime: Duration::seconds(-1),
            ..SessionConfig::default()
        },
    ] {
        assert!(
            matches!(make(config.clone()), Err(Error::Config(_))),
            "{config:?} accepted"
        );
    }
    assert!(
        make(SessionConfig {
            session_lifetime: MAX_SESSION_LIFETIME,
            ..SessionConfig::default()
        })
        .is_ok()
    );
}

#[tokio::test]
async fn a_token_whose_roles_differ_from_its_session_is_refused() {
    let f = fixture();
    let raja = login(&f, "raja", false).await;
    // Signed with the server's own key, for raja's live session, but
    // claiming a role the login never granted.
    let mut inflated = raja.session.clone();
    inflated.roles = vec![crate::RoleGrant::global(Role::SuperAdmin)];
    let forged = f.sessions.issuer().issue(&inflated).unwrap();
    assert!(matches!(
        f.sessions.authenticate(&forged.token).await,
        Err(Error::InvalidToken(crate::TokenRejection::Claims))
    ));

    // The genuine token decides from the session: no admin rights.
    let genuine = f.sessions.authenticate(&raja.access.token).await.unwrap();
    assert!(!genuine.is_super_admin());
    assert!(!genuine.has_role(Role::Admin));
    assert!(!genuine.can_administer(&raja.session.partner_id));
    assert!(!genuine.has_entitlement(Entitlement::ManageSessions));
}
