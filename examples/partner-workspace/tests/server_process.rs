//! The example as a process: settings, modes, persistence, and what its logs
//! never contain.

mod support;

use std::process::Command;

use serde_json::json;
use support::{Server, client, files_below};

#[test]
fn help_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in [
        "--listen",
        "PARTNER_AUTH_LISTEN",
        "--data-dir",
        "PARTNER_AUTH_DATA_DIR",
        "PARTNER_AUTH_MODE",
        "PARTNER_AUTH_MOCK_LOGIN",
        "PARTNER_AUTH_REFRESH_GRACE_SECONDS",
        "PARTNER_AUTH_PUBLIC_URL",
        "127.0.0.1:8080",
        "./data",
    ] {
        assert!(help.contains(setting), "--help does not mention {setting}");
    }
}

#[test]
fn production_mode_refuses_the_mock_login() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("PARTNER_AUTH_MODE", "production")
        .env_remove("PARTNER_AUTH_VAULT_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused in production mode"), "{err}");
    assert!(out.stdout.is_empty(), "it must not start listening");
}

#[tokio::test]
async fn production_mode_without_mock_starts_and_has_no_mock_route() {
    let server = Server::start_with(&[
        ("PARTNER_AUTH_MODE", "production"),
        ("PARTNER_AUTH_MOCK_LOGIN", "false"),
        // Production mode never generates a vault key of its own.
        (
            "PARTNER_AUTH_VAULT_KEY",
            "prod:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
    ]);
    let res = client()
        .post(server.url("/api/login/mock"))
        .json(&json!({ "user": "nikhil" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    server.assert_healthy().await;
}

#[tokio::test]
async fn sessions_and_keys_survive_a_restart() {
    let server = Server::start();
    let login = server.login("nikhil", true).await;
    let state = server.state_dir();
    assert!(state.join("partner-auth.sqlite3").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in files_below(&state.join("signing-keys")) {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    let data = server.stop();

    let server = Server::start_in(data, &[]);
    let (status, body) = server.get("/api/session", &login.access).await;
    assert_eq!(status, 200, "access token from before the restart: {body}");
    let (status, _) = server.refresh(&login.refresh).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn logs_of_a_whole_flow_hold_no_token() {
    let server = Server::start_with(&[("RUST_LOG", "trace")]);
    let login = server.login("mukesh", true).await;
    let (_, refreshed) = server.refresh(&login.refresh).await;
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let cookie_login = client()
        .post(server.url("/api/login/mock"))
        .json(&json!({ "user": "raja", "remember_me": false }))
        .send()
        .await
        .unwrap();
    let cookie_refresh: Vec<String> = support::set_cookies(cookie_login.headers(), "pa_refresh")
        .iter()
        .map(|c| support::cookie_value(c).to_owned())
        .collect();
    assert_eq!(server.get("/api/session", &access2).await.0, 200);
    let res = client()
        .post(server.url("/api/logout"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Reuse is logged as a warning; the token still must not appear.
    let _ = server.refresh(&login.refresh).await;

    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = server.logs();
    assert!(
        logs.contains("security event"),
        "the flow was not logged at all"
    );
    let mut secrets = vec![
        login.access.clone(),
        login.refresh.clone(),
        access2,
        refresh2,
    ];
    secrets.extend(cookie_refresh);
    for secret in &secrets {
        // The random body of a refresh token (which may itself hold `_`), or
        // the signature of a JWT.
        let distinctive = match secret.strip_prefix("pa_rt_") {
            Some(body) => body,
            None => secret.rsplit('.').next().unwrap(),
        };
        assert!(distinctive.len() >= 20);
        assert!(!logs.contains(distinctive), "a token reached the logs");
    }
}
