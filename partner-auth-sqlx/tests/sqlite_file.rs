//! The SQLite database file itself: pragmas, persistence across reopening,
//! permissions, constraints, and what a copy of the file would reveal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use partner_auth_core::refresh::REFRESH_PREFIX;
use partner_auth_core::{
    AuthMode, Directory, Error, Issued, KeyRing, ManualClock, RevokeReason, SessionConfig,
    SessionManager, SessionStore, TokenConfig, TokenIssuer, TracingEvents,
};
use partner_auth_sqlx::{SqliteDatabase, SqliteSessionStore, StoreError};
use time::{Duration, OffsetDateTime};

struct Harness {
    sessions: SessionManager,
    directory: Arc<Directory>,
    clock: ManualClock,
}

fn harness(db: &SqliteDatabase) -> Harness {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let issuer = TokenIssuer::new(
        KeyRing::generate().expect("signing key"),
        TokenConfig::default(),
        Arc::new(clock.clone()),
    )
    .expect("issuer");
    let directory = Arc::new(Directory::launch().expect("launch seed"));
    let sessions = SessionManager::new(
        Arc::new(SqliteSessionStore::new(db)),
        Arc::new(issuer),
        directory.clone(),
        Arc::new(clock.clone()),
        Arc::new(TracingEvents),
        SessionConfig::default(),
    )
    .expect("session manager");
    Harness {
        sessions,
        directory,
        clock,
    }
}

async fn login(h: &Harness, who: &str, remember_me: bool) -> Issued {
    let user = h.directory.find_user(who).expect("seeded user");
    h.sessions
        .login(user, AuthMode::Mock, remember_me)
        .await
        .expect("login")
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("auth.sqlite3")
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn journal_mode_is_wal_and_pragmas_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&db_path(&dir)).await.unwrap();

    let mut conn = db.pool().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();

    assert_eq!(mode, "wal");
    assert_eq!(foreign_keys, 1, "foreign_keys");
    assert_eq!(synchronous, 1, "synchronous = NORMAL");
    assert!(busy_timeout >= 1000, "busy_timeout is {busy_timeout} ms");
    db.health().await.unwrap();
}

#[tokio::test]
async fn reopened_file_keeps_sessions_and_refresh_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = SqliteDatabase::open(&path).await.unwrap();
    let h = harness(&db);
    let first = login(&h, "nitin", true).await;
    h.clock.advance(Duration::seconds(30));
    let second = h.sessions.refresh(&first.refresh).await.unwrap();
    let revoked = login(&h, "raja", false).await;
    h.sessions
        .end(&revoked.session, RevokeReason::Logout, None)
        .await
        .unwrap();
    db.close().await;

    let db = SqliteDatabase::open(&path).await.unwrap();
    let store = SqliteSessionStore::new(&db);

    let stored = store.get(first.session.id).await.unwrap().expect("session");
    assert_eq!(stored, second.session);
    assert_eq!(stored.auth_mode, AuthMode::Mock);
    assert!(stored.remember_me);
    let old = store
        .find_refresh(&first.refresh.digest())
        .await
        .unwrap()
        .expect("first token record");
    assert_eq!(old.generation, 0);
    assert!(old.used_at.is_some(), "rotation mark lost on reopen");
    let new = store
        .find_refresh(&second.refresh.digest())
        .await
        .unwrap()
        .expect("second token record");
    assert_eq!((new.generation, new.used_at), (1, None));
    let gone = store.get(revoked.session.id).await.unwrap().unwrap();
    assert_eq!(gone.revoke_reason, Some(RevokeReason::Logout));
    db.migrate().await.expect("migrating again is harmless");
}

#[tokio::test]
async fn t1_database_dump_holds_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = SqliteDatabase::open(&path).await.unwrap();
    let h = harness(&db);
    let mut issued = Vec::new();
    for who in ["nikhil", "mukesh", "raja", "nitin"] {
        let mut current = login(&h, who, who != "raja").await;
        for _ in 0..3 {
            h.clock.advance(Duration::seconds(20));
            let next = h.sessions.refresh(&current.refresh).await.unwrap();
            issued.push(current);
            current = next;
        }
        issued.push(current);
    }
    // Read while the pool is open, so recent writes are still in the WAL.
    let mut dump = std::fs::read(&path).unwrap();
    let wal = std::fs::read(wal_path(&path)).expect("a -wal file next to the database");
    assert!(
        !wal.is_empty(),
        "the WAL is empty; the scan would prove nothing"
    );
    dump.extend_from_slice(&wal);

    for one in &issued {
        let refresh = one.refresh.expose_secret();
        let random = &refresh[REFRESH_PREFIX.len()..];
        let raw = URL_SAFE_NO_PAD.decode(random).unwrap();
        let access = &one.access.token;
        let signature = access.rsplit('.').next().unwrap();
        let payload = access.split('.').nth(1).unwrap();

        assert!(
            !contains(&dump, refresh.as_bytes()),
            "refresh token in the file"
        );
        assert!(
            !contains(&dump, random.as_bytes()),
            "refresh token body in the file"
        );
        assert!(
            !contains(&dump, &raw),
            "refresh token's random bytes in the file"
        );
        assert!(
            !contains(&dump, access.as_bytes()),
            "access token in the file"
        );
        assert!(
            !contains(&dump, signature.as_bytes()),
            "access token signature in the file"
        );
        assert!(
            !contains(&dump, payload.as_bytes()),
            "access token payload in the file"
        );
        // The scan does see the data: digests and session ids are there.
        assert!(
            contains(&dump, one.refresh.digest().as_bytes()),
            "digest not found"
        );
        assert!(contains(&dump, one.session.id.to_string().as_bytes()));
    }
    assert!(
        !contains(&dump, REFRESH_PREFIX.as_bytes()),
        "refresh token prefix in the file"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn new_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = SqliteDatabase::open(&path).await.unwrap();
    let h = harness(&db);
    login(&h, "nikhil", false).await;

    for file in [path.clone(), wal_path(&path)] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

#[tokio::test]
async fn open_in_a_missing_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();

    let err = SqliteDatabase::open(&dir.path().join("missing/auth.sqlite3"))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::CreateFile { .. }), "{err:?}");
}

#[tokio::test]
async fn check_constraints_refuse_unknown_values_and_short_digests() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&db_path(&dir)).await.unwrap();
    let h = harness(&db);
    let login = login(&h, "nikhil", false).await;
    let id = login.session.id.to_string();

    for (what, sql) in [
        (
            "auth_mode",
            "UPDATE sessions SET auth_mode = 'password' WHERE id = ?1",
        ),
        (
            "revoke_reason",
            "UPDATE sessions SET revoked_at = 1, revoke_reason = 'bored' WHERE id = ?1",
        ),
        (
            "reason without time",
            "UPDATE sessions SET revoke_reason = 'logout' WHERE id = ?1",
        ),
        (
            "roles",
            "UPDATE sessions SET roles = 'not json' WHERE id = ?1",
        ),
        (
            "remember_me",
            "UPDATE sessions SET remember_me = 2 WHERE id = ?1",
        ),
    ] {
        let err = sqlx::query(sql)
            .bind(&id)
            .execute(db.pool())
            .await
            .expect_err(what);
        let kind = err
            .as_database_error()
            .map(sqlx::error::DatabaseError::kind);
        assert_eq!(kind, Some(sqlx::error::ErrorKind::CheckViolation), "{what}");
    }
    sqlx::query("UPDATE sessions SET revoked_at = 1, revoke_reason = 'forced' WHERE id = ?1")
        .bind(&id)
        .execute(db.pool())
        .await
        .expect("a well-formed revocation passes the constraints");
    let short = sqlx::query(
        "INSERT INTO refresh_tokens (digest, session_id, generation, issued_at) \
         VALUES (?1, ?2, 0, 0)",
    )
    .bind(vec![7u8; 31])
    .bind(&id)
    .execute(db.pool())
    .await;
    assert!(short.is_err(), "a 31-byte digest was stored");
}

#[tokio::test]
async fn undecodable_rows_are_store_errors_with_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&db_path(&dir)).await.unwrap();
    let h = harness(&db);
    let login = login(&h, "nikhil", false).await;
    sqlx::query(r#"UPDATE sessions SET roles = '[{"role":"root"}]' WHERE id = ?1"#)
        .bind(login.session.id.to_string())
        .execute(db.pool())
        .await
        .unwrap();

    let err = SqliteSessionStore::new(&db)
        .get(login.session.id)
        .await
        .unwrap_err();

    let Error::Store(source) = &err else {
        panic!("expected Error::Store, got {err:?}");
    };
    let store = source.downcast_ref::<StoreError>().expect("a StoreError");
    assert!(
        matches!(
            store,
            StoreError::Corrupt {
                what: "roles",
                source: Some(_)
            }
        ),
        "{store:?}"
    );
}

#[tokio::test]
async fn s1_racing_refreshes_on_sqlite_both_keep_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&db_path(&dir)).await.unwrap();
    let h = harness(&db);
    let r0 = login(&h, "mukesh", true).await;

    let (a, b) = tokio::join!(
        h.sessions.refresh(&r0.refresh),
        h.sessions.refresh(&r0.refresh)
    );

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(
        a.grace, b.grace,
        "one rotates, the other is served from the window"
    );
    h.clock.advance(Duration::seconds(1));
    let a2 = h
        .sessions
        .refresh(&a.refresh)
        .await
        .expect("first tab renews");
    let b2 = h
        .sessions
        .refresh(&b.refresh)
        .await
        .expect("second tab renews");
    assert!(
        b2.grace,
        "the second tab's token is the previous generation now"
    );
    for access in [&a2.access.token, &b2.access.token] {
        h.sessions
            .authenticate(access)
            .await
            .expect("session alive");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_rotate_a_generation_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let one = SqliteDatabase::open(&path).await.unwrap();
    let two = SqliteDatabase::open(&path).await.unwrap();
    let h = harness(&one);
    let login = login(&h, "nikhil", true).await;
    let stores: [Arc<dyn SessionStore>; 2] = [
        Arc::new(SqliteSessionStore::new(&one)),
        Arc::new(SqliteSessionStore::new(&two)),
    ];

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let store = Arc::clone(&stores[i % 2]);
        let presented = login.refresh.digest();
        let next = partner_auth_core::RefreshRecord {
            digest: partner_auth_core::RefreshToken::generate().digest(),
            session_id: login.session.id,
            generation: 1,
            issued_at: OffsetDateTime::now_utc(),
            used_at: None,
        };
        tasks.spawn(async move { store.rotate(0, &presented, &next, next.issued_at).await });
    }
    let mut wins = 0;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap().expect("rotate under contention") {
            wins += 1;
        }
    }

    assert_eq!(wins, 1, "{wins} rotations from generation 0 succeeded");
    let stored = stores[1].get(login.session.id).await.unwrap().unwrap();
    assert_eq!(stored.refresh_generation, 1);
}

/// The migration that admits the `replaced` reason rebuilds both session
/// tables: sessions and refresh tokens written before it survive it, and the
/// new reason is stored and read back.
#[tokio::test]
async fn replaced_reason_migration_keeps_existing_rows() {
    use partner_auth_core::RefreshToken;
    use sqlx::sqlite::SqliteConnectOptions;

    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let token = RefreshToken::generate();
    let session_id = partner_auth_core::SessionId::random();
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                partner_auth_sqlx::SQLITE_MIGRATIONS
                    .migrations
                    .iter()
                    .filter(|m| m.version < 4)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, partner_id, roles, auth_mode, remember_me, \
             created_at, last_seen_at, expires_at, refresh_generation, rotated_at) \
             VALUES (?1, 'raja', 'raja', '[]', 'mock', 0, 1, 1, 253402300799000000, 0, 1)",
        )
        .bind(session_id.to_string())
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO refresh_tokens (digest, session_id, generation, issued_at) \
             VALUES (?1, ?2, 0, 1)",
        )
        .bind(token.digest().as_bytes().as_slice())
        .bind(session_id.to_string())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    let db = SqliteDatabase::open(&path).await.unwrap();
    let store = SqliteSessionStore::new(&db);
    let record = store
        .find_refresh(&token.digest())
        .await
        .unwrap()
        .expect("refresh token kept through the rebuild");
    assert_eq!(record.session_id, session_id);
    assert!(
        store
            .revoke(
                session_id,
                RevokeReason::Replaced,
                OffsetDateTime::now_utc()
            )
            .await
            .unwrap()
    );
    let session = store.get(session_id).await.unwrap().unwrap();
    assert_eq!(session.revoke_reason, Some(RevokeReason::Replaced));
    db.migrate().await.expect("migrating again is harmless");
}
