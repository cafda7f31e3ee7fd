//! The credential vault and audit log of the running example, over HTTP,
//! with the vault key from `PARTNER_AUTH_VAULT_KEY` and a real SQLite file.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Server, client, files_below, status_json};

/// 32 bytes, base64, with an id.
const KEY: &str = "main:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

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

#[tokio::test]
async fn credential_lifecycle_is_sealed_audited_and_partner_scoped() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY)]);
    let nikhil = server.login("nikhil", false).await;
    let secret = "broker-key-Zq8XvN3mKp2Lw7Rt";

    let (status, created) = post(
        &server,
        "/api/credentials",
        &nikhil.access,
        json!({ "kind": "api_key", "label": "Zerodha live", "broker": "zerodha", "secret": secret }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        !created.to_string().contains(secret),
        "metadata carries the secret"
    );

    let (status, list) = server.get("/api/credentials", &nikhil.access).await;
    assert_eq!(status, 200);
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(secret));

    let (status, revealed) = post(
        &server,
        &format!("/api/credentials/{id}/reveal"),
        &nikhil.access,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["secret"], secret);

    let rotated_secret = "broker-key-Hh4Yy6Uu8Ii0Oo2Pp";
    let (status, rotated) = post(
        &server,
        &format!("/api/credentials/{id}/rotate"),
        &nikhil.access,
        json!({ "secret": rotated_secret }),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");

    // Another partner's caller who may manage credentials in its own
    // partner: 404, exactly like an unknown id.
    let mukesh = server.login("mukesh", false).await;
    let (status, body) = post(
        &server,
        &format!("/api/credentials/{id}/rotate"),
        &mukesh.access,
        json!({ "secret": "hijacked-secret-value" }),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (_, theirs) = server.get("/api/credentials", &mukesh.access).await;
    assert_eq!(theirs["credentials"].as_array().unwrap().len(), 0);

    // A read-only persona may not reveal.
    let raja = server.login("raja", false).await;
    let (status, _) = post(
        &server,
        &format!("/api/credentials/{id}/reveal"),
        &raja.access,
        json!({}),
    )
    .await;
    assert!(status == 403 || status == 404, "{status}");

    let res = client()
        .delete(server.url(&format!("/api/credentials/{id}")))
        .bearer_auth(&nikhil.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Logins and every credential action are in the partner's audit log.
    let (status, audit) = server.get("/api/audit", &nikhil.access).await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    for action in [
        "session.login_succeeded",
        "credential.create",
        "credential.reveal",
        "credential.rotate",
        "credential.revoke",
    ] {
        assert!(text.contains(action), "no {action} entry in {text}");
    }
    assert!(!text.contains(secret) && !text.contains(rotated_secret));
    let res = client()
        .get(server.url("/api/audit/export?format=jsonl"))
        .bearer_auth(&nikhil.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jsonl = res.text().await.unwrap();
    assert!(
        jsonl
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );

    // Nothing of either secret in the database files or the logs.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = server.logs();
    for s in [secret, rotated_secret] {
        assert!(!logs.contains(s), "secret in logs");
        for file in files_below(&server.state_dir()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "secret in {}",
                file.display()
            );
        }
    }
}

#[test]
fn production_mode_needs_a_vault_key() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("PARTNER_AUTH_MODE", "production")
        .env("PARTNER_AUTH_MOCK_LOGIN", "false")
        .env_remove("PARTNER_AUTH_VAULT_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PARTNER_AUTH_VAULT_KEY"), "{err}");
}

#[tokio::test]
async fn a_wrong_vault_key_is_refused_at_start_and_stored_data_survives() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY)]);
    let nikhil = server.login("nikhil", false).await;
    let (status, _) = post(
        &server,
        "/api/credentials",
        &nikhil.access,
        json!({ "kind": "broker_token", "label": "session", "secret": "tok-1234567890" }),
    )
    .await;
    assert_eq!(status, 201);
    let data = server.stop();

    let other = "main:HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("state"))
        .env("PARTNER_AUTH_VAULT_KEY", other)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "started with a key that opens nothing"
    );

    let server = Server::start_in(data, &[("PARTNER_AUTH_VAULT_KEY", KEY)]);
    let nikhil = server.login("nikhil", false).await;
    let (_, list) = server.get("/api/credentials", &nikhil.access).await;
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sessions_s1_reuse_is_audited() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY)]);
    let r0 = server.login("nikhil", false).await;
    let (_, b1) = server.refresh(&r0.refresh).await;
    let (_, b2) = server.refresh(b1["refresh_token"].as_str().unwrap()).await;
    assert!(b2["access_token"].is_string());
    let (status, _) = server.refresh(&r0.refresh).await;
    assert_eq!(status, 401);

    // The session is gone, so read the audit log from a fresh one.
    let admin = server.login("nikhil", false).await;
    let mut found = (false, false);
    for _ in 0..50 {
        let (_, audit) = server.get("/api/audit", &admin.access).await;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        found = (
            entries
                .iter()
                .any(|e| e["action"] == "session.refresh_reuse" && e["outcome"] == "denied"),
            entries.iter().any(|e| {
                e["action"] == "session.session_revoked" && e["detail"] == "reason=refresh_reuse"
            }),
        );
        if found == (true, true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        found,
        (true, true),
        "session.refresh_reuse and session.session_revoked reason=refresh_reuse expected"
    );
}

/// Polls the caller's partner audit log until an entry matches.
async fn audit_entry(server: &Server, access: &str, found: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, audit) = server.get("/api/audit", access).await;
        if let Some(hit) = audit["entries"]
            .as_array()
            .and_then(|es| es.iter().find(|e| found(e)))
        {
            return hit.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no matching audit entry");
}

#[tokio::test]
async fn sessions_s3_logout_is_audited_with_reason_and_channel() {
    let server = Server::start_with(&[("PARTNER_AUTH_VAULT_KEY", KEY)]);
    let by_bearer = server.login("nikhil", false).await;
    let by_refresh = server.login("nikhil", false).await;

    let res = client()
        .post(server.url("/api/logout"))
        .bearer_auth(&by_bearer.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .post(server.url("/api/logout"))
        .json(&json!({ "refresh_token": by_refresh.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let admin = server.login("nikhil", false).await;
    for (login, channel) in [(&by_bearer, "api"), (&by_refresh, "web")] {
        let target = format!("session:{}", login.session_id);
        let entry = audit_entry(&server, &admin.access, |e| {
            e["action"] == "session.session_revoked" && e["target"] == target.as_str()
        })
        .await;
        assert_eq!(entry["detail"], "reason=logout", "{entry}");
        assert_eq!(entry["actor"], "nikhil");
        assert_eq!(entry["outcome"], "success");
        assert_eq!(entry["channel"], channel, "{entry}");
    }
}
