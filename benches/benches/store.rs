//! Session store throughput: logins and refresh-token rotations against the
//! in-memory store and a SQLite file in a temporary directory (WAL,
//! `synchronous = NORMAL`, as `SqliteDatabase::open` configures it).
//!
//! - `store_rotate`: the store's compare-and-swap `rotate` alone, one
//!   session rotating over and over.
//! - `session_refresh`: `SessionManager::refresh` end to end: look up the
//!   digest, load the session, rotate, reload, sign a new access token.
//! - `session_login`: `SessionManager::login`: insert a session and its
//!   first token, sign an access token.
//!
//! Run with `cargo bench -p partner-auth-benches --bench store`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_main};
use partner_auth_core::{
    AuthMode, Directory, KeyRing, MemorySessionStore, PartnerId, RefreshRecord, RefreshToken, Role,
    RoleGrant, Session, SessionConfig, SessionId, SessionManager, SessionStore, SystemClock,
    TokenConfig, TokenDigest, TokenIssuer, TracingEvents, UserId,
};
use partner_auth_sqlx::{SqliteDatabase, SqliteSessionStore};
use time::{Duration, OffsetDateTime};
use tokio::runtime::Runtime;

/// A store plus what must outlive it.
struct Backend {
    name: &'static str,
    store: Arc<dyn SessionStore>,
    _dir: Option<tempfile::TempDir>,
}

fn backends(rt: &Runtime) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = rt
        .block_on(SqliteDatabase::open(&dir.path().join("bench.sqlite3")))
        .expect("open SQLite file");
    vec![
        Backend {
            name: "memory",
            store: Arc::new(MemorySessionStore::new()),
            _dir: None,
        },
        Backend {
            name: "sqlite_file",
            store: Arc::new(SqliteSessionStore::new(&db)),
            _dir: Some(dir),
        },
    ]
}

fn manager(store: Arc<dyn SessionStore>) -> (SessionManager, Arc<Directory>) {
    let clock = Arc::new(SystemClock);
    let issuer = TokenIssuer::new(
        KeyRing::generate().expect("key"),
        TokenConfig::default(),
        clock.clone(),
    )
    .expect("issuer");
    let directory = Arc::new(Directory::launch().expect("seed"));
    let sessions = SessionManager::new(
        store,
        Arc::new(issuer),
        directory.clone(),
        clock,
        Arc::new(TracingEvents),
        SessionConfig::default(),
    )
    .expect("manager");
    (sessions, directory)
}

/// Distinct digests without the cost of hashing.
fn counter_digest(n: u64) -> TokenDigest {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8] = 0xbe;
    TokenDigest::from_bytes(bytes)
}

fn store_rotate(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("store_rotate");
    group.throughput(Throughput::Elements(1));

    for backend in backends(&rt) {
        let now = OffsetDateTime::now_utc();
        let partner = PartnerId::new("mukesh").expect("id");
        let session = Session {
            id: SessionId::random(),
            user_id: UserId::new("mukesh").expect("id"),
            partner_id: partner.clone(),
            roles: vec![RoleGrant::scoped(Role::Trader, partner)],
            auth_mode: AuthMode::Mock,
            remember_me: true,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::days(365),
            refresh_generation: 0,
            rotated_at: now,
            revoked_at: None,
            revoke_reason: None,
            impersonator: None,
        };
        let first = RefreshRecord {
            digest: counter_digest(0),
            session_id: session.id,
            generation: 0,
            issued_at: now,
            used_at: None,
        };
        rt.block_on(backend.store.create(&session, &first))
            .expect("create");
        let mut generation = 0u32;

        group.bench_function(backend.name, |b| {
            b.iter(|| {
                let now = OffsetDateTime::now_utc();
                let next = RefreshRecord {
                    digest: counter_digest(u64::from(generation) + 1),
                    session_id: session.id,
                    generation: generation + 1,
                    issued_at: now,
                    used_at: None,
                };
                let presented = counter_digest(u64::from(generation));
                let rotated = rt
                    .block_on(backend.store.rotate(generation, &presented, &next, now))
                    .expect("rotate");
                assert!(rotated, "rotation refused");
                generation += 1;
            });
        });
    }
    group.finish();
}

fn session_refresh(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("session_refresh");
    group.throughput(Throughput::Elements(1));

    for backend in backends(&rt) {
        let (sessions, directory) = manager(backend.store.clone());
        let user = directory.find_user("nikhil").expect("seeded");
        let mut token: RefreshToken = rt
            .block_on(sessions.login(user, AuthMode::Mock, true))
            .expect("login")
            .refresh;

        group.bench_function(backend.name, |b| {
            b.iter(|| {
                token = rt
                    .block_on(sessions.refresh(&token))
                    .expect("refresh")
                    .refresh;
            });
        });
    }
    group.finish();
}

fn session_login(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("session_login");
    group.throughput(Throughput::Elements(1));

    for backend in backends(&rt) {
        let (sessions, directory) = manager(backend.store.clone());
        let user = directory.find_user("raja").expect("seeded");

        group.bench_function(backend.name, |b| {
            b.iter(|| {
                rt.block_on(sessions.login(user, AuthMode::Mock, false))
                    .expect("login")
            });
        });
    }
    group.finish();
}

mod groups {
    // A private module: criterion's generated group function needs no docs here.
    use super::{session_login, session_refresh, store_rotate};

    criterion::criterion_group!(benches, store_rotate, session_refresh, session_login);
}

criterion_main!(groups::benches);
