//! The operator commands of the example binary: a KEK rotation from key A
//! to key B done entirely with `vault status`, `vault rewrap` and `vault
//! retire`, with the server storing and revealing credentials over HTTP
//! around it, and `audit verify` on an intact and on a tampered chain.

mod support;

use std::path::Path;
use std::process::Command;

use partner_auth_core::vault::{AuditStore as _, Channel, Outcome};
use partner_auth_sqlx::{SqliteAuditStore, SqliteDatabase};
use serde_json::{Value, json};
use support::{Server, client, status_json};

const KEY_A: &str = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "b:HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `partner-workspace ARGS --data-dir STATE` with the vault keys `keys`.
fn cli(state: &Path, keys: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .args(args)
        .arg("--data-dir")
        .arg(state)
        .env("PARTNER_AUTH_VAULT_KEY", keys)
        .env_remove("RUST_LOG")
        .output()
        .expect("run partner-workspace");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn post(server: &Server, path: &str, access: &str, body: Value) -> (u16, Value) {
    let res = client()
        .post(server.url(path))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    status_json(res).await
}

async fn store(server: &Server, access: &str, secret: &str) -> String {
    let (status, made) = post(
        server,
        "/api/credentials",
        access,
        json!({ "kind": "api_key", "label": "desk", "secret": secret }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made["id"].as_str().unwrap().to_owned()
}

async fn cli_audit_entries(state: &Path) -> Vec<(String, Outcome)> {
    let db = SqliteDatabase::open(&state.join("partner-auth.sqlite3"))
        .await
        .unwrap();
    let entries = SqliteAuditStore::new(&db).scan(0, 10_000).await.unwrap();
    db.close().await;
    entries
        .into_iter()
        .filter(|e| e.channel == Channel::Cli)
        .map(|e| (e.action, e.outcome))
        .collect()
}

#[tokio::test]
async fn v6_v7_key_rotation_with_the_operator_commands() {
    // Credentials sealed under key A, in two partners.
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY_A)]);
    let nikhil = server.login("nikhil", false).await;
    let mukesh = server.login("mukesh", false).await;
    let mut secrets = Vec::new();
    for i in 0..3 {
        let secret = format!("nikhil-broker-secret-{i}");
        secrets.push((store(&server, &nikhil.access, &secret).await, secret));
    }
    store(&server, &mukesh.access, "mukesh-broker-secret").await;
    let data = server.stop();
    let state = data.path().join("state");

    let run = cli(&state, KEY_A, &["vault", "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("primary key: a"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("key a: primary, 4 records, 1024 wraps reserved, holds the audit key"),
        "{}",
        run.stdout
    );

    // B is promoted by listing it first; new credentials go to B.
    let both = format!("{KEY_B},{KEY_A}");
    let server = Server::start_in(data, &[("PARTNER_AUTH_VAULT_KEY", &both)]);
    let nikhil = server.login("nikhil", false).await;
    let fresh = "nikhil-broker-secret-on-b".to_owned();
    secrets.push((store(&server, &nikhil.access, &fresh).await, fresh));
    let data = server.stop();

    // A can not be retired while records (and the audit key) are under it.
    let run = cli(&state, &both, &["vault", "retire", "a"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("refused: key a is still referenced by 5 records"),
        "{}",
        run.stderr
    );

    // The rewrap moves two records per step and reports each step.
    let run = cli(&state, &both, &["vault", "rewrap", "--batch", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let steps: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("rewrap a -> b:"))
        .collect();
    assert!(steps.len() >= 2, "{}", run.stdout);
    assert!(
        steps[0].contains("2 rewrapped") && steps[0].contains("2 remaining"),
        "{}",
        run.stdout
    );
    assert!(
        steps
            .last()
            .unwrap()
            .contains("4 rewrapped, 0 already moved, 0 failed, 0 remaining"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("key a: every record and the audit key moved")
    );

    // Running it again changes nothing.
    let run = cli(&state, &both, &["vault", "rewrap"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("nothing to rewrap: every record is on b"),
        "{}",
        run.stdout
    );

    let run = cli(&state, &both, &["vault", "status"]);
    assert!(
        run.stdout.contains("key a: previous, 0 records"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("key b: primary, 5 records"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("key b:") && l.ends_with("holds the audit key")),
        "{}",
        run.stdout
    );

    let run = cli(&state, &both, &["vault", "retire", "a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("key a retired"), "{}", run.stdout);
    let run = cli(&state, KEY_B, &["vault", "status"]);
    assert!(
        run.stdout.contains("key a: retired, 0 records"),
        "{}",
        run.stdout
    );
    let run = cli(&state, KEY_B, &["audit", "verify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("audit chain ok"), "{}", run.stdout);

    // Every step that changed something is in the audit log, on the
    // operator's channel; the refused retire changed nothing and wrote
    // nothing.
    let audited = cli_audit_entries(&state).await;
    assert!(
        !audited.contains(&("vault.key_retire".to_owned(), Outcome::Failure)),
        "{audited:?}"
    );
    assert_eq!(
        audited.last(),
        Some(&("vault.key_retire".to_owned(), Outcome::Success))
    );
    assert!(
        audited
            .iter()
            .filter(|(a, o)| a == "vault.key_rewrap" && *o == Outcome::Success)
            .count()
            >= 2
    );

    // The server runs with B alone and reveals what was sealed under A.
    let server = Server::start_in(data, &[("PARTNER_AUTH_VAULT_KEY", KEY_B)]);
    let nikhil = server.login("nikhil", false).await;
    for (id, secret) in &secrets {
        let (status, shown) = post(
            &server,
            &format!("/api/credentials/{id}/reveal"),
            &nikhil.access,
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["secret"], secret.as_str());
    }
    let (_, list) = server.get("/api/credentials", &nikhil.access).await;
    assert!(
        list["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kek_id"] == "b"),
        "{list}"
    );
}

#[tokio::test]
async fn retire_refuses_the_primary_and_unknown_keys() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY_A)]);
    let data = server.stop();
    let state = data.path().join("state");

    let run = cli(&state, KEY_A, &["vault", "retire", "a"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("refused: key a is the primary"),
        "{}",
        run.stderr
    );
    let run = cli(&state, KEY_A, &["vault", "retire", "zz"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);

    let run = cli(&data.path().join("nowhere"), KEY_A, &["vault", "status"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no database"), "{}", run.stderr);
}

#[tokio::test]
async fn a1_audit_verify_names_the_first_broken_sequence() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY_A)]);
    for _ in 0..3 {
        server.login("nikhil", false).await;
    }
    // The audit writer is asynchronous; wait for the three logins.
    let nikhil = server.login("nikhil", false).await;
    for _ in 0..100 {
        let (_, audit) = server.get("/api/audit", &nikhil.access).await;
        if audit["entries"].as_array().map_or(0, Vec::len) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let data = server.stop();
    let state = data.path().join("state");

    let run = cli(&state, KEY_A, &["audit", "verify"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // Someone with write access to the file drops the trigger and edits
    // the second entry.
    let db = SqliteDatabase::open(&state.join("partner-auth.sqlite3"))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'failure' WHERE seq = 2")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;

    let run = cli(&state, KEY_A, &["audit", "verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("audit chain broken at sequence 2 (altered)"),
        "{}",
        run.stdout
    );
}

/// The stored key rows, as `(id, state, wraps, check value)`.
async fn key_rows(state: &Path) -> Vec<(String, String, i64, Option<Vec<u8>>)> {
    let db = SqliteDatabase::open(&state.join("partner-auth.sqlite3"))
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT id, state, wraps, check_value FROM vault_keys ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    db.close().await;
    rows
}

/// Starts the server with `keys` and expects it to refuse; returns its
/// standard error.
fn refused_start(state: &Path, keys: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(state)
        .env("PARTNER_AUTH_VAULT_KEY", keys)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run partner-workspace");
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the server accepted {keys}");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return err;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server started with {keys}");
}

const KEY_C: &str = "c:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const WRONG_A: &str = "a:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

#[tokio::test]
async fn vault_status_writes_nothing_and_a_refused_start_leaves_the_database_as_it_was() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY_A)]);
    let nikhil = server.login("nikhil", false).await;
    store(&server, &nikhil.access, "kept-under-a").await;
    let data = server.stop();
    let state = data.path().join("state");
    let rows = key_rows(&state).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("a", "primary"));
    assert_eq!(rows[0].3.as_ref().map(Vec::len), Some(16));

    // A new id with bytes that open nothing: refused, nothing recorded.
    let run = cli(
        &state,
        "zz:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        &["vault", "status"],
    );
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert_eq!(key_rows(&state).await, rows);

    // A known id with other bytes: refused by its check value.
    let run = cli(&state, WRONG_A, &["vault", "status"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("key a is not the key first registered"),
        "{}",
        run.stderr
    );
    assert_eq!(key_rows(&state).await, rows);

    // A list that would promote c reports it, twice, without promoting it.
    let listed = format!("{KEY_C},{KEY_A}");
    for _ in 0..2 {
        let run = cli(&state, &listed, &["vault", "status"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("primary key: a"), "{}", run.stdout);
        assert!(
            run.stdout
                .contains("key list starts with c: it becomes the primary"),
            "{}",
            run.stdout
        );
        assert_eq!(key_rows(&state).await, rows);
    }

    // The server refuses the same keys at start, with one clear line, and
    // writes nothing either.
    let err = refused_start(&state, WRONG_A);
    assert!(
        err.contains("key a is not the key first registered"),
        "{err}"
    );
    let err = refused_start(&state, &format!("zz:{},{WRONG_A}", &KEY_C[2..]));
    assert!(
        err.contains("key a is not the key first registered"),
        "{err}"
    );
    assert_eq!(key_rows(&state).await, rows);
    drop(data);
}

/// One number read from the database file without migrating or creating it.
async fn scalar(state: &Path, sql: &str) -> i64 {
    let url = format!(
        "sqlite://{}?mode=ro",
        state.join("partner-auth.sqlite3").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn refused_operator_commands_change_nothing() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY_A)]);
    let nikhil = server.login("nikhil", false).await;
    store(&server, &nikhil.access, "kept-under-a").await;
    let data = server.stop();
    let state = data.path().join("state");
    let rows = key_rows(&state).await;
    let audit = scalar(&state, "SELECT COUNT(*) FROM audit_log").await;

    // Each refusal is decided before anything is opened for writing: no key
    // is registered or promoted, and no audit entry is written.
    for (keys, target, why) in [
        (
            format!("{KEY_B},{KEY_A}"),
            "a",
            "refused: key a is the primary",
        ),
        (
            format!("{KEY_A},{KEY_B}"),
            "a",
            "refused: key a is the primary",
        ),
        (format!("{KEY_A},{KEY_B}"), "b", "never seen a key b"),
        (KEY_A.to_owned(), "nope", "never seen a key nope"),
        (KEY_A.to_owned(), "not/an id", "is not a key id"),
    ] {
        let run = cli(&state, &keys, &["vault", "retire", target]);
        assert_eq!(run.code, 1, "{keys} {target}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(why), "{target}: {}", run.stderr);
        assert_eq!(key_rows(&state).await, rows, "{keys} retire {target}");
        assert_eq!(
            scalar(&state, "SELECT COUNT(*) FROM audit_log").await,
            audit,
            "{keys} retire {target}"
        );
    }

    // `audit verify` reads too: a key list that would register and promote
    // b verifies the chain and leaves the keys as they were.
    let run = cli(&state, &format!("{KEY_B},{KEY_A}"), &["audit", "verify"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("audit chain ok"), "{}", run.stdout);
    assert_eq!(key_rows(&state).await, rows);

    // Without any configured key the reading commands and a refused retire
    // do not generate the development key file the server would.
    for args in [
        &["vault", "status"][..],
        &["audit", "verify"],
        &["vault", "retire", "a"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
            .args(args)
            .arg("--data-dir")
            .arg(&state)
            .env_remove("PARTNER_AUTH_VAULT_KEY")
            .env_remove("PARTNER_AUTH_VAULT_KEY_FILE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no vault key"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!state.join("vault-dev.key").exists(), "{args:?}");
    }

    // `vault status` never migrates: a database that lacks a migration is
    // refused (exit 2) and left behind as it was.
    let versions = "SELECT COUNT(*) FROM _sqlx_migrations";
    let db = SqliteDatabase::open(&state.join("partner-auth.sqlite3"))
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    db.close().await;
    let behind = scalar(&state, versions).await;
    let run = cli(&state, KEY_A, &["vault", "status"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("schema is not current"),
        "{}",
        run.stderr
    );
    assert_eq!(scalar(&state, versions).await, behind);

    // Nor does it set up an empty file as a database.
    let empty = data.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("partner-auth.sqlite3"), b"").unwrap();
    let run = cli(&empty, KEY_A, &["vault", "status"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::metadata(empty.join("partner-auth.sqlite3"))
            .unwrap()
            .len(),
        0
    );
}
