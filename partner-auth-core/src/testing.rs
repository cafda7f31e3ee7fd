//! Conformance suite for [`SessionStore`] backends.
//!
//! Every backend must behave the same way, because [`crate::SessionManager`]
//! relies on the exact contract of each operation: a `create` never
//! overwrites, a `rotate` succeeds at most once per generation, a revoke keeps
//! its first reason. Each public `async fn` here checks one part of that
//! contract against a store and panics with a message naming the violation.
//!
//! Compiled for this crate's own tests and, for other crates, with the
//! `testing` feature (enable it in `[dev-dependencies]` only).
//!
//! Two ways to run the suite:
//!
//! - [`session_store_conformance!`] stamps one `#[tokio::test]` per case,
//!   each on a fresh store from the constructor it is given. The calling crate
//!   needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//! - [`run_all`] runs every case in turn, each on a fresh store.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use std::sync::Arc;
//! use partner_auth_core::MemorySessionStore;
//! use partner_auth_core::testing::{Fixture, run_all};
//!
//! run_all(|| async { Fixture::new(Arc::new(MemorySessionStore::new())) }).await;
//! # }
//! ```
//!
//! The cases use fixed timestamps, not the wall clock, and compare stored
//! times to within one second: a backend must keep at least second
//! precision, and may keep more.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::refresh::{RefreshToken, TokenDigest};
use crate::session::{RefreshRecord, RevokeReason, Session, SessionFilter, SessionStore};
use crate::{AuthMode, Error, PartnerId, Role, RoleGrant, SessionId, UserId};

pub use crate::session_store_conformance;

/// A store under test, plus whatever must live as long as it (a temporary
/// directory, a database handle).
pub struct Fixture {
    store: Arc<dyn SessionStore>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A store that needs nothing kept alive beside it.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self::with_guard(store, ())
    }

    /// A store and a value dropped only after the store (for example the
    /// temporary directory that holds its database file).
    pub fn with_guard(store: Arc<dyn SessionStore>, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

/// Stamps one `#[tokio::test]` per conformance case into the current module.
///
/// The argument is a constructor called once per test: anything callable with
/// no arguments that returns a future of a [`Fixture`], such as an `async fn`
/// or `|| async { ... }`.
///
/// ```
/// mod conformance {
///     use std::sync::Arc;
///     use partner_auth_core::MemorySessionStore;
///     use partner_auth_core::testing::Fixture;
///
///     async fn memory() -> Fixture {
///         Fixture::new(Arc::new(MemorySessionStore::new()))
///     }
///
///     partner_auth_core::session_store_conformance!(memory);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! session_store_conformance {
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = ($make)().await;
                $crate::testing::$case(&**fixture.store()).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::session_store_conformance!(@cases $make;
            create_then_get_round_trips_every_field,
            s2_create_with_existing_id_is_conflict_and_keeps_row,
            create_with_duplicate_refresh_digest_is_conflict,
            find_refresh_by_digest,
            rotate_is_compare_and_swap,
            rotate_refused_on_revoked_session,
            add_sibling_only_at_current_generation,
            revoke_first_reason_wins,
            revoke_user_counts_live_sessions,
            list_filters_and_orders_newest_first,
            purge_expired_removes_only_ended_sessions,
            health_ok,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_rotates_exactly_one_wins() {
            let fixture = ($make)().await;
            $crate::testing::concurrent_rotates_exactly_one_wins(
                ::std::sync::Arc::clone(fixture.store()),
            )
            .await;
        }
    };
}

/// Runs every case of the suite, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    create_then_get_round_trips_every_field(&**make().await.store()).await;
    s2_create_with_existing_id_is_conflict_and_keeps_row(&**make().await.store()).await;
    create_with_duplicate_refresh_digest_is_conflict(&**make().await.store()).await;
    find_refresh_by_digest(&**make().await.store()).await;
    rotate_is_compare_and_swap(&**make().await.store()).await;
    rotate_refused_on_revoked_session(&**make().await.store()).await;
    concurrent_rotates_exactly_one_wins(Arc::clone(make().await.store())).await;
    add_sibling_only_at_current_generation(&**make().await.store()).await;
    revoke_first_reason_wins(&**make().await.store()).await;
    revoke_user_counts_live_sessions(&**make().await.store()).await;
    list_filters_and_orders_newest_first(&**make().await.store()).await;
    purge_expired_removes_only_ended_sessions(&**make().await.store()).await;
    health_ok(&**make().await.store()).await;
}

// ---- building blocks -------------------------------------------------------

/// The instant the cases start from: fixed, with a sub-second part.
fn t0() -> OffsetDateTime {
    datetime!(2026-03-02 09:15:30.123_456 UTC)
}

fn partner(id: &str) -> PartnerId {
    PartnerId::new(id).expect("valid partner id")
}

fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

fn fresh_digest() -> TokenDigest {
    RefreshToken::generate().digest()
}

/// A plain live session of `user_id` in `partner_id`, created at `created_at`.
fn session(user_id: &str, partner_id: &str, created_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::random(),
        user_id: user(user_id),
        partner_id: partner(partner_id),
        roles: vec![RoleGrant::scoped(Role::Trader, partner(partner_id))],
        auth_mode: AuthMode::Mock,
        remember_me: false,
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::hours(8),
        refresh_generation: 0,
        rotated_at: created_at,
        revoked_at: None,
        revoke_reason: None,
        impersonator: None,
    }
}

fn record(session: &Session, generation: u32, issued_at: OffsetDateTime) -> RefreshRecord {
    RefreshRecord {
        digest: fresh_digest(),
        session_id: session.id,
        generation,
        issued_at,
        used_at: None,
    }
}

/// Creates `session` with a fresh first token and returns that token's record.
async fn create(store: &dyn SessionStore, session: &Session) -> RefreshRecord {
    let first = record(session, 0, session.created_at);
    store
        .create(session, &first)
        .await
        .unwrap_or_else(|e| panic!("create of a new session failed: {e:?}"));
    first
}

async fn get(store: &dyn SessionStore, id: SessionId) -> Session {
    store
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e:?}"))
        .unwrap_or_else(|| panic!("session {id} not found after it was created"))
}

async fn find(store: &dyn SessionStore, digest: &TokenDigest) -> Option<RefreshRecord> {
    store
        .find_refresh(digest)
        .await
        .unwrap_or_else(|e| panic!("find_refresh failed: {e:?}"))
}

fn assert_instant(what: &str, expected: OffsetDateTime, actual: OffsetDateTime) {
    assert!(
        (actual - expected).abs() < Duration::SECOND,
        "{what}: stored {actual}, expected {expected} (must keep at least second precision)"
    );
}

fn assert_opt_instant(
    what: &str,
    expected: Option<OffsetDateTime>,
    actual: Option<OffsetDateTime>,
) {
    match (expected, actual) {
        (None, None) => {}
        (Some(e), Some(a)) => assert_instant(what, e, a),
        _ => panic!("{what}: stored {actual:?}, expected {expected:?}"),
    }
}

/// Asserts that `actual` is `expected` field by field (times to the second).
fn assert_same_session(context: &str, expected: &Session, actual: &Session) {
    assert_eq!(actual.id, expected.id, "{context}: id");
    assert_eq!(actual.user_id, expected.user_id, "{context}: user_id");
    assert_eq!(
        actual.partner_id, expected.partner_id,
        "{context}: partner_id"
    );
    assert_eq!(actual.roles, expected.roles, "{context}: roles");
    assert_eq!(actual.auth_mode, expected.auth_mode, "{context}: auth_mode");
    assert_eq!(
        actual.remember_me, expected.remember_me,
        "{context}: remember_me"
    );
    assert_eq!(
        actual.refresh_generation, expected.refresh_generation,
        "{context}: refresh_generation"
    );
    assert_eq!(
        actual.revoke_reason, expected.revoke_reason,
        "{context}: revoke_reason"
    );
    assert_eq!(
        actual.impersonator, expected.impersonator,
        "{context}: impersonator"
    );
    assert_instant(
        &format!("{context}: created_at"),
        expected.created_at,
        actual.created_at,
    );
    assert_instant(
        &format!("{context}: last_seen_at"),
        expected.last_seen_at,
        actual.last_seen_at,
    );
    assert_instant(
        &format!("{context}: expires_at"),
        expected.expires_at,
        actual.expires_at,
    );
    assert_instant(
        &format!("{context}: rotated_at"),
        expected.rotated_at,
        actual.rotated_at,
    );
    assert_opt_instant(
        &format!("{context}: revoked_at"),
        expected.revoked_at,
        actual.revoked_at,
    );
}

fn assert_same_record(context: &str, expected: &RefreshRecord, actual: &RefreshRecord) {
    assert_eq!(actual.digest, expected.digest, "{context}: digest");
    assert_eq!(
        actual.session_id, expected.session_id,
        "{context}: session_id"
    );
    assert_eq!(
        actual.generation, expected.generation,
        "{context}: generation"
    );
    assert_instant(
        &format!("{context}: issued_at"),
        expected.issued_at,
        actual.issued_at,
    );
    assert_opt_instant(
        &format!("{context}: used_at"),
        expected.used_at,
        actual.used_at,
    );
}

fn assert_conflict(context: &str, result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{context}: expected Error::Conflict, got {other:?}"),
    }
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id).collect()
}

// ---- the cases -------------------------------------------------------------

/// `create` then `get` returns every field as written, for a rich session
/// (Google, remember-me, several grants, an impersonator) and a plain one;
/// the first refresh record comes back by digest; an unknown id is `None`.
pub async fn create_then_get_round_trips_every_field(store: &dyn SessionStore) {
    let start = t0();
    let rich = Session {
        id: SessionId::random(),
        user_id: user("nitin"),
        partner_id: partner("nikhil"),
        roles: vec![
            RoleGrant::global(Role::SuperAdmin),
            RoleGrant::scoped(Role::Admin, partner("nikhil")),
            RoleGrant::scoped(Role::Trader, partner("mukesh")),
            RoleGrant::scoped(Role::Viewer, partner("raja")),
        ],
        auth_mode: AuthMode::Google,
        remember_me: true,
        created_at: start,
        last_seen_at: start + Duration::minutes(3),
        expires_at: start + Duration::hours(24),
        refresh_generation: 0,
        rotated_at: start + Duration::minutes(2),
        revoked_at: None,
        revoke_reason: None,
        impersonator: Some(user("nitin-staff")),
    };
    let plain = Session {
        roles: Vec::new(),
        ..session("raja", "raja", start + Duration::seconds(1))
    };

    let rich_first = create(store, &rich).await;
    let plain_first = create(store, &plain).await;

    assert_same_session("rich session", &rich, &get(store, rich.id).await);
    assert_same_session("plain session", &plain, &get(store, plain.id).await);
    let found = find(store, &rich_first.digest)
        .await
        .expect("first refresh record not found by its digest");
    assert_same_record("first refresh record", &rich_first, &found);
    let found = find(store, &plain_first.digest)
        .await
        .expect("first refresh record not found by its digest");
    assert_same_record("first refresh record", &plain_first, &found);
    assert!(
        store.get(SessionId::random()).await.expect("get").is_none(),
        "get of an unknown id returned a session"
    );
}

/// S2: `create` with an id that already exists is [`Error::Conflict`] (a
/// plain insert, never an upsert); the stored row and its tokens are
/// untouched and the rejected token is not stored.
pub async fn s2_create_with_existing_id_is_conflict_and_keeps_row(store: &dyn SessionStore) {
    let original = session("nikhil", "nikhil", t0());
    let original_first = create(store, &original).await;
    let intruder = Session {
        id: original.id,
        roles: vec![RoleGrant::global(Role::SuperAdmin)],
        auth_mode: AuthMode::Google,
        remember_me: true,
        expires_at: original.expires_at + Duration::days(30),
        impersonator: Some(user("mallory")),
        ..session("mallory", "raja", t0() + Duration::minutes(1))
    };
    let intruder_first = record(&intruder, 0, intruder.created_at);

    let result = store.create(&intruder, &intruder_first).await;

    assert_conflict("create with an existing session id", result);
    assert_same_session(
        "session after a conflicting create",
        &original,
        &get(store, original.id).await,
    );
    assert!(
        find(store, &intruder_first.digest).await.is_none(),
        "the refresh token of a rejected create was stored"
    );
    assert!(
        find(store, &original_first.digest).await.is_some(),
        "the original refresh token vanished after a conflicting create"
    );
}

/// A first refresh digest that is already stored is [`Error::Conflict`];
/// the new session is not stored and the digest still names the old one.
pub async fn create_with_duplicate_refresh_digest_is_conflict(store: &dyn SessionStore) {
    let a = session("nikhil", "nikhil", t0());
    let a_first = create(store, &a).await;
    let b = session("mukesh", "mukesh", t0() + Duration::minutes(1));
    let b_first = RefreshRecord {
        session_id: b.id,
        ..a_first.clone()
    };

    let result = store.create(&b, &b_first).await;

    assert_conflict("create with a duplicate refresh digest", result);
    assert!(
        store.get(b.id).await.expect("get").is_none(),
        "a session whose first token collided was stored anyway"
    );
    let found = find(store, &a_first.digest).await.expect("digest lost");
    assert_eq!(
        found.session_id, a.id,
        "a colliding create moved the digest to another session"
    );
}

/// Records are found by digest, before and after a rotation; an unknown
/// digest is `None`.
pub async fn find_refresh_by_digest(store: &dyn SessionStore) {
    let s = session("nikhil", "nikhil", t0());
    let first = create(store, &s).await;
    let later = t0() + Duration::minutes(5);
    let next = record(&s, 1, later);

    assert!(
        find(store, &fresh_digest()).await.is_none(),
        "an unknown digest was found"
    );
    assert_same_record(
        "record before rotation",
        &first,
        &find(store, &first.digest).await.expect("first record"),
    );
    assert!(
        store
            .rotate(0, &first.digest, &next, later)
            .await
            .expect("rotate"),
        "rotation of a fresh session refused"
    );
    assert_same_record(
        "presented record after rotation",
        &RefreshRecord {
            used_at: Some(later),
            ..first.clone()
        },
        &find(store, &first.digest).await.expect("presented record"),
    );
    assert_same_record(
        "new record after rotation",
        &next,
        &find(store, &next.digest).await.expect("new record"),
    );
}

/// `rotate` is a compare-and-swap: it succeeds once from generation `g`;
/// a second rotate from `g`, or one that skips a generation, returns
/// `false` and changes nothing.
pub async fn rotate_is_compare_and_swap(store: &dyn SessionStore) {
    let s = session("nikhil", "nikhil", t0());
    let first = create(store, &s).await;
    let at = t0() + Duration::minutes(10);
    let winner = record(&s, 1, at);

    let rotated = store.rotate(0, &first.digest, &winner, at).await;

    assert!(
        rotated.expect("rotate"),
        "first rotate from generation 0 refused"
    );
    let after = get(store, s.id).await;
    let expected = Session {
        refresh_generation: 1,
        rotated_at: at,
        last_seen_at: at,
        ..s.clone()
    };
    assert_same_session("session after rotation", &expected, &after);

    let late = t0() + Duration::minutes(11);
    let loser = record(&s, 1, late);
    let again = store.rotate(0, &first.digest, &loser, late).await;

    assert!(
        !again.expect("rotate"),
        "a second rotate from generation 0 succeeded"
    );
    assert_same_session(
        "session after a refused rotation",
        &expected,
        &get(store, s.id).await,
    );
    assert!(
        find(store, &loser.digest).await.is_none(),
        "a refused rotation stored its new token"
    );
    assert_opt_instant(
        "presented token's used_at after a refused rotation",
        Some(at),
        find(store, &first.digest).await.expect("record").used_at,
    );

    let skipping = record(&s, 3, late);
    let skipped = store.rotate(1, &winner.digest, &skipping, late).await;

    assert!(
        !skipped.expect("rotate"),
        "a rotation that skips a generation succeeded"
    );
    assert!(
        find(store, &skipping.digest).await.is_none(),
        "a refused rotation stored its new token"
    );
    assert_eq!(get(store, s.id).await.refresh_generation, 1);

    let unknown = record(&session("nikhil", "nikhil", t0()), 1, late);
    let ghost = store.rotate(0, &fresh_digest(), &unknown, late).await;

    assert!(
        !ghost.expect("rotate"),
        "rotation of an unknown session succeeded"
    );
    assert!(find(store, &unknown.digest).await.is_none());
}

/// A revoked session never rotates.
pub async fn rotate_refused_on_revoked_session(store: &dyn SessionStore) {
    let s = session("nikhil", "nikhil", t0());
    let first = create(store, &s).await;
    let at = t0() + Duration::minutes(1);
    assert!(
        store
            .revoke(s.id, RevokeReason::Logout, at)
            .await
            .expect("revoke")
    );
    let next = record(&s, 1, at);

    let rotated = store.rotate(0, &first.digest, &next, at).await;

    assert!(!rotated.expect("rotate"), "a revoked session rotated");
    assert_eq!(get(store, s.id).await.refresh_generation, 0);
    assert!(
        find(store, &next.digest).await.is_none(),
        "rotation of a revoked session stored a token"
    );
}

/// 32 tasks rotate the same session from the same generation at once:
/// exactly one succeeds, and only its token is stored.
pub async fn concurrent_rotates_exactly_one_wins(store: Arc<dyn SessionStore>) {
    const RACERS: usize = 32;
    let s = session("mukesh", "mukesh", t0());
    let first = create(&*store, &s).await;
    let at = t0() + Duration::minutes(1);
    let candidates: Vec<RefreshRecord> = (0..RACERS).map(|_| record(&s, 1, at)).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for next in candidates.clone() {
        let store = Arc::clone(&store);
        let presented = first.digest;
        tasks.spawn(async move { store.rotate(0, &presented, &next, at).await });
    }
    let mut wins = 0;
    while let Some(joined) = tasks.join_next().await {
        let rotated = joined.expect("rotation task panicked");
        if rotated.unwrap_or_else(|e| panic!("concurrent rotate failed: {e:?}")) {
            wins += 1;
        }
    }

    assert_eq!(wins, 1, "{wins} of {RACERS} concurrent rotations succeeded");
    assert_eq!(get(&*store, s.id).await.refresh_generation, 1);
    let mut stored = 0;
    for next in &candidates {
        if find(&*store, &next.digest).await.is_some() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "{stored} successor tokens stored after the race");
}

/// `add_sibling` stores an extra token only at the session's current
/// generation and only while the session is live.
pub async fn add_sibling_only_at_current_generation(store: &dyn SessionStore) {
    let s = session("nikhil", "nikhil", t0());
    let first = create(store, &s).await;
    let rotated_at = t0() + Duration::minutes(1);
    let current = record(&s, 1, rotated_at);
    assert!(
        store
            .rotate(0, &first.digest, &current, rotated_at)
            .await
            .expect("rotate")
    );
    let at = rotated_at + Duration::seconds(3);

    let sibling = record(&s, 1, at);
    assert!(
        store.add_sibling(&sibling, at).await.expect("add_sibling"),
        "sibling at the current generation refused"
    );
    assert_same_record(
        "sibling record",
        &sibling,
        &find(store, &sibling.digest)
            .await
            .expect("sibling not stored"),
    );
    let after = get(store, s.id).await;
    assert_eq!(
        after.refresh_generation, 1,
        "a sibling moved the generation"
    );
    assert_instant("last_seen_at after a sibling", at, after.last_seen_at);
    assert_instant("rotated_at after a sibling", rotated_at, after.rotated_at);

    for generation in [0, 2] {
        let stale = record(&s, generation, at);
        assert!(
            !store.add_sibling(&stale, at).await.expect("add_sibling"),
            "sibling at generation {generation} accepted while the session is at 1"
        );
        assert!(find(store, &stale.digest).await.is_none());
    }

    let orphan = record(&session("nikhil", "nikhil", t0()), 0, at);
    assert!(
        !store.add_sibling(&orphan, at).await.expect("add_sibling"),
        "sibling for an unknown session accepted"
    );

    assert!(
        store
            .revoke(s.id, RevokeReason::Forced, at)
            .await
            .expect("revoke")
    );
    let late = record(&s, 1, at);
    assert!(
        !store.add_sibling(&late, at).await.expect("add_sibling"),
        "sibling accepted on a revoked session"
    );
    assert!(find(store, &late.digest).await.is_none());
}

/// `revoke` returns `true` once; a second revoke returns `false` and keeps
/// the first reason and time; an unknown id is `false`.
pub async fn revoke_first_reason_wins(store: &dyn SessionStore) {
    let s = session("raja", "raja", t0());
    create(store, &s).await;
    let first_at = t0() + Duration::minutes(1);
    let second_at = t0() + Duration::minutes(2);

    let first = store.revoke(s.id, RevokeReason::Logout, first_at).await;
    let second = store.revoke(s.id, RevokeReason::Forced, second_at).await;

    assert!(first.expect("revoke"), "first revoke returned false");
    assert!(!second.expect("revoke"), "second revoke returned true");
    let stored = get(store, s.id).await;
    assert_eq!(
        stored.revoke_reason,
        Some(RevokeReason::Logout),
        "first reason lost"
    );
    assert_opt_instant("revoked_at", Some(first_at), stored.revoked_at);
    assert!(
        !store
            .revoke(SessionId::random(), RevokeReason::Logout, second_at)
            .await
            .expect("revoke"),
        "revoke of an unknown session returned true"
    );
}

/// `revoke_user` revokes the user's live sessions only, returns how many,
/// leaves other users and earlier reasons alone, and is 0 the second time.
pub async fn revoke_user_counts_live_sessions(store: &dyn SessionStore) {
    let a1 = session("nikhil", "nikhil", t0());
    let a2 = session("nikhil", "nikhil", t0() + Duration::minutes(1));
    let a3 = session("nikhil", "nikhil", t0() + Duration::minutes(2));
    let other = session("mukesh", "mukesh", t0());
    for s in [&a1, &a2, &a3, &other] {
        create(store, s).await;
    }
    let earlier = t0() + Duration::minutes(3);
    assert!(
        store
            .revoke(a3.id, RevokeReason::Logout, earlier)
            .await
            .expect("revoke")
    );
    let at = t0() + Duration::minutes(4);

    let count = store
        .revoke_user(&user("nikhil"), RevokeReason::Forced, at)
        .await;

    assert_eq!(count.expect("revoke_user"), 2, "revoke_user count");
    for s in [&a1, &a2] {
        let stored = get(store, s.id).await;
        assert_eq!(stored.revoke_reason, Some(RevokeReason::Forced));
        assert_opt_instant("revoked_at", Some(at), stored.revoked_at);
    }
    let kept = get(store, a3.id).await;
    assert_eq!(
        kept.revoke_reason,
        Some(RevokeReason::Logout),
        "revoke_user overwrote an earlier reason"
    );
    assert_opt_instant("earlier revoked_at", Some(earlier), kept.revoked_at);
    assert!(
        get(store, other.id).await.revoked_at.is_none(),
        "revoke_user touched another user's session"
    );
    let again = store
        .revoke_user(&user("nikhil"), RevokeReason::Forced, at)
        .await;
    assert_eq!(again.expect("revoke_user"), 0, "second revoke_user count");
}

/// `list` filters by partner, user and liveness at a time (revoked and
/// ended sessions left out, an end exactly at that time counting as ended),
/// combines filters, and returns the newest first.
pub async fn list_filters_and_orders_newest_first(store: &dyn SessionStore) {
    let n_a_old = session("nikhil", "nikhil", t0());
    let n_b = session("nikhil-2", "nikhil", t0() + Duration::minutes(1));
    let r_c = session("raja", "raja", t0() + Duration::minutes(2));
    let n_a_revoked = session("nikhil", "nikhil", t0() + Duration::minutes(3));
    let n_a_new = session("nikhil", "nikhil", t0() + Duration::minutes(4));
    let n_a_ended = Session {
        expires_at: t0() + Duration::minutes(30),
        ..session("nikhil", "nikhil", t0() - Duration::hours(7))
    };
    for s in [&n_a_new, &r_c, &n_a_old, &n_a_ended, &n_a_revoked, &n_b] {
        create(store, s).await;
    }
    assert!(
        store
            .revoke(
                n_a_revoked.id,
                RevokeReason::Logout,
                t0() + Duration::minutes(5)
            )
            .await
            .expect("revoke")
    );
    let list = |filter: SessionFilter| async move {
        store
            .list(&filter)
            .await
            .unwrap_or_else(|e| panic!("list failed: {e:?}"))
    };

    let all = list(SessionFilter::default()).await;
    assert_eq!(
        ids(&all),
        [
            n_a_new.id,
            n_a_revoked.id,
            r_c.id,
            n_b.id,
            n_a_old.id,
            n_a_ended.id
        ],
        "unfiltered list is not newest first"
    );
    assert_same_session("listed session", &n_a_old, &all[4]);

    let nikhil = list(SessionFilter {
        partner: Some(partner("nikhil")),
        ..SessionFilter::default()
    })
    .await;
    assert_eq!(
        ids(&nikhil),
        [n_a_new.id, n_a_revoked.id, n_b.id, n_a_old.id, n_a_ended.id],
        "partner filter"
    );

    let user_a = list(SessionFilter {
        user: Some(user("nikhil")),
        ..SessionFilter::default()
    })
    .await;
    assert_eq!(
        ids(&user_a),
        [n_a_new.id, n_a_revoked.id, n_a_old.id, n_a_ended.id],
        "user filter"
    );

    let live = list(SessionFilter {
        active_at: Some(n_a_ended.expires_at),
        ..SessionFilter::default()
    })
    .await;
    assert_eq!(
        ids(&live),
        [n_a_new.id, r_c.id, n_b.id, n_a_old.id],
        "active_at filter (a session ending exactly then is not active)"
    );

    let combined = list(SessionFilter {
        partner: Some(partner("nikhil")),
        user: Some(user("nikhil")),
        active_at: Some(n_a_ended.expires_at + Duration::minutes(1)),
    })
    .await;
    assert_eq!(
        ids(&combined),
        [n_a_new.id, n_a_old.id],
        "partner + user + active_at"
    );

    let nobody = list(SessionFilter {
        partner: Some(partner("raja")),
        user: Some(user("nikhil")),
        ..SessionFilter::default()
    })
    .await;
    assert!(nobody.is_empty(), "filters are not combined with AND");
}

/// `purge_expired(cut)` deletes sessions whose absolute end is before
/// `cut`, with all their refresh records, and nothing else: not a session
/// ending exactly at `cut`, not a revoked one still within its lifetime.
pub async fn purge_expired_removes_only_ended_sessions(store: &dyn SessionStore) {
    let cut = t0() + Duration::hours(9);
    let ended = session("nikhil", "nikhil", t0());
    let at_cut = Session {
        expires_at: cut,
        ..session("mukesh", "mukesh", t0())
    };
    let live = session("raja", "raja", t0() + Duration::hours(2));
    let revoked_live = session("nitin", "nitin", t0() + Duration::hours(2));
    let ended_first = create(store, &ended).await;
    let at_cut_first = create(store, &at_cut).await;
    let live_first = create(store, &live).await;
    create(store, &revoked_live).await;
    let rotated_at = t0() + Duration::hours(1);
    let ended_second = record(&ended, 1, rotated_at);
    assert!(
        store
            .rotate(0, &ended_first.digest, &ended_second, rotated_at)
            .await
            .expect("rotate")
    );
    let ended_sibling = record(&ended, 1, rotated_at);
    assert!(
        store
            .add_sibling(&ended_sibling, rotated_at)
            .await
            .expect("add_sibling")
    );
    assert!(
        store
            .revoke(revoked_live.id, RevokeReason::Logout, rotated_at)
            .await
            .expect("revoke")
    );

    let purged = store.purge_expired(cut).await;

    assert_eq!(purged.expect("purge_expired"), 1, "purge count");
    assert!(
        store.get(ended.id).await.expect("get").is_none(),
        "an ended session survived the purge"
    );
    for digest in [
        ended_first.digest,
        ended_second.digest,
        ended_sibling.digest,
    ] {
        assert!(
            find(store, &digest).await.is_none(),
            "a refresh record of a purged session survived"
        );
    }
    for kept in [&at_cut, &live, &revoked_live] {
        assert!(
            store.get(kept.id).await.expect("get").is_some(),
            "purge removed a session that had not ended before the cut"
        );
    }
    assert!(find(store, &at_cut_first.digest).await.is_some());
    assert!(find(store, &live_first.digest).await.is_some());
    assert_eq!(
        store.purge_expired(cut).await.expect("purge_expired"),
        0,
        "second purge count"
    );
}

/// `health` answers `Ok` on a working store.
pub async fn health_ok(store: &dyn SessionStore) {
    store
        .health()
        .await
        .unwrap_or_else(|e| panic!("health of a working store failed: {e:?}"));
}

#[cfg(test)]
mod memory_store {
    use std::sync::Arc;

    use super::Fixture;
    use crate::MemorySessionStore;

    async fn memory() -> Fixture {
        Fixture::new(Arc::new(MemorySessionStore::new()))
    }

    crate::session_store_conformance!(memory);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_passes_on_memory() {
        super::run_all(memory).await;
    }
}
