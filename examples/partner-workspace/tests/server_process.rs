//! The example as a process: settings, modes, persistence, and what its logs
//! never contain.

mod support;

use std::process::Command;

use serde_json::json;
use support::{Server, client, files_below};

/// Words of `text` made of letters, digits, `_` and `-`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
}

/// Whether `word` is a long flag such as `--data-dir`.
fn is_flag(word: &str) -> bool {
    word.strip_prefix("--")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// The flags and variables of the README's table of settings.
fn readme_settings() -> (Vec<String>, Vec<String>) {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## Settings of the example server")
        .nth(1)
        .expect("README has the settings section");
    let section = section.split("\n## ").next().unwrap();
    let (mut flags, mut vars) = (Vec::new(), Vec::new());
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (flag, var) = (cells[1].trim_matches('`'), cells[2].trim_matches('`'));
        if is_flag(flag) {
            flags.push(flag.to_owned());
        }
        if var.starts_with("PARTNER_AUTH_") || var == "RUST_LOG" {
            vars.push(var.to_owned());
        }
    }
    assert!(flags.len() >= 14 && vars.len() >= 15, "{flags:?} {vars:?}");
    (flags, vars)
}

/// Every `PARTNER_AUTH_*` name the server's sources read from the environment.
fn variables_in_sources() -> Vec<String> {
    let sources = [
        include_str!("../src/config.rs"),
        include_str!("../src/main.rs"),
        include_str!("../src/google.rs"),
        include_str!("../../../partner-auth-core/src/vault/keysource.rs"),
    ];
    let mut vars: Vec<String> = sources
        .iter()
        .flat_map(|s| words(s))
        .filter(|w| w.starts_with("PARTNER_AUTH_") && w.len() > "PARTNER_AUTH_".len())
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let (flags, vars) = readme_settings();

    for setting in flags.iter().chain(&vars) {
        assert!(
            help.contains(setting.as_str()),
            "--help does not mention {setting}"
        );
    }
    for read in variables_in_sources() {
        assert!(
            help.contains(&read),
            "--help does not mention {read}, which the server reads"
        );
    }
    // And the other way round: nothing in --help is missing from the README.
    let readme = include_str!("../../../README.md");
    for word in words(&help) {
        if is_flag(word) && !matches!(word, "--help" | "--version") {
            assert!(
                flags.iter().any(|f| f == word),
                "{word} is not in the README's settings table"
            );
        }
        if word.starts_with("PARTNER_AUTH_") {
            assert!(readme.contains(word), "{word} is not in the README");
        }
    }
    for default in ["127.0.0.1:8080", "./data"] {
        assert!(help.contains(default), "--help does not show {default}");
    }
}

/// Runs the binary with `args` and `env` on a fresh data directory and
/// expects it to refuse to start: the first line of standard error.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partner-workspace"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("state"))
        .args(args)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} {env:?} started: {err}");
    assert!(out.stdout.is_empty(), "{args:?} {env:?} started listening");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn numeric_settings_out_of_range_are_refused_at_start() {
    for (flag, var, bad) in [
        (
            "--session-hours",
            "PARTNER_AUTH_SESSION_HOURS",
            "4294967295",
        ),
        ("--session-hours", "PARTNER_AUTH_SESSION_HOURS", "0"),
        ("--session-hours", "PARTNER_AUTH_SESSION_HOURS", "169"),
        ("--idle-minutes", "PARTNER_AUTH_IDLE_MINUTES", "0"),
        ("--idle-minutes", "PARTNER_AUTH_IDLE_MINUTES", "10081"),
        (
            "--access-ttl-seconds",
            "PARTNER_AUTH_ACCESS_TTL_SECONDS",
            "0",
        ),
        (
            "--access-ttl-seconds",
            "PARTNER_AUTH_ACCESS_TTL_SECONDS",
            "86401",
        ),
        (
            "--refresh-grace-seconds",
            "PARTNER_AUTH_REFRESH_GRACE_SECONDS",
            "61",
        ),
        ("--session-hours", "PARTNER_AUTH_SESSION_HOURS", "-1"),
        (
            "--body-timeout-seconds",
            "PARTNER_AUTH_BODY_TIMEOUT_SECONDS",
            "0",
        ),
        (
            "--body-timeout-seconds",
            "PARTNER_AUTH_BODY_TIMEOUT_SECONDS",
            "301",
        ),
    ] {
        let by_flag = refused_start(&[&format!("{flag}={bad}")], &[]);
        assert!(by_flag.contains(flag), "{flag}={bad}: {by_flag}");
        let by_env = refused_start(&[], &[(var, bad)]);
        assert!(by_env.contains(flag), "{var}={bad}: {by_env}");
    }
}

#[test]
fn public_url_must_be_an_absolute_http_url() {
    for bad in [
        "notaurl",
        "/relative/path",
        "ftp://auth.example.test",
        "https://",
        "https://user:pass@auth.example.test",
        "https://auth.example.test/?a=1",
        "",
        "https:auth.example.test",
        "https://@auth.example.test",
        "https://auth.example.test:0",
        " https://auth.example.test",
    ] {
        let line = refused_start(&["--public-url", bad], &[]);
        assert!(line.contains("--public-url"), "{bad:?}: {line}");
        let line = refused_start(&[], &[("PARTNER_AUTH_PUBLIC_URL", bad)]);
        assert!(line.contains("--public-url"), "{bad:?}: {line}");
    }
}

#[tokio::test]
async fn the_body_timeout_setting_ends_a_stalled_body_with_a_json_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = Server::start_with(&[
        ("PARTNER_AUTH_BODY_TIMEOUT_SECONDS", "1"),
        ("PARTNER_AUTH_PUBLIC_URL", "http://127.0.0.1:8080/"),
    ]);
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Announces 50 bytes, sends 7, then nothing.
    stream
        .write_all(
            b"POST /api/login/mock HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"user",
        )
        .await
        .unwrap();
    // The server answers and closes; the client would wait far longer.
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("the server kept the stalled request open")
    .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains(r#""error":"request_timeout""#), "{reply}");
}

#[test]
fn log_format_accepts_only_text_or_json() {
    for bad in ["yaml", "JSON", ""] {
        let line = refused_start(&["--log-format", bad], &[]);
        assert!(line.contains("--log-format"), "{bad:?}: {line}");
        let line = refused_start(&[], &[("PARTNER_AUTH_LOG_FORMAT", bad)]);
        assert!(line.contains("--log-format"), "{bad:?}: {line}");
    }
}

#[tokio::test]
async fn largest_settings_start_and_log_in() {
    let server = Server::start_with(&[
        ("PARTNER_AUTH_SESSION_HOURS", "168"),
        ("PARTNER_AUTH_IDLE_MINUTES", "10080"),
        ("PARTNER_AUTH_ACCESS_TTL_SECONDS", "86400"),
        ("PARTNER_AUTH_LOG_FORMAT", "json"),
    ]);
    let login = server.login("nikhil", false).await;
    assert_eq!(login.body["expires_in"], 86_400);
    let (status, body) = server.get("/api/session", &login.access).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn listen_address_and_data_dir_come_from_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("from-env");
    // A free port, found by binding and letting go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .env("PARTNER_AUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("PARTNER_AUTH_DATA_DIR", &dir)
        .env_remove("RUST_LOG")
        .current_dir(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let result = async {
        assert_eq!(line.trim(), format!("listening on http://127.0.0.1:{port}"));
        let res = client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            dir.join("partner-auth.sqlite3").is_file(),
            "no database in {}",
            dir.display()
        );
        assert!(
            !data.path().join("data").exists(),
            "the default ./data was used"
        );
    };
    result.await;
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_data_dir_keeps_its_mode_and_a_writable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_in(data, &[]);
    server.assert_healthy().await;
    assert_eq!(mode(&state), 0o755, "the existing data dir was chmodded");
    assert_eq!(mode(&state.join("signing-keys")), 0o700);
    assert!(
        server.logs().contains("readable by group or others"),
        "no warning: {}",
        server.logs()
    );
    let data = server.stop();

    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_partner-workspace"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it must not start listening");
    assert!(err.contains("writable by group or others"), "{err}");
    assert_eq!(mode(&state), 0o775);
    drop(data);
}

#[tokio::test]
async fn the_access_cookie_authenticates_a_read() {
    let server = Server::start();
    let res = client()
        .post(server.url("/api/login/mock"))
        .json(&json!({ "user": "raja" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let access = support::set_cookies(res.headers(), "pa_access")
        .first()
        .map(|c| support::cookie_value(c).to_owned())
        .expect("pa_access cookie");
    let res = client()
        .get(server.url("/api/session"))
        .header("cookie", format!("pa_access={access}"))
        .send()
        .await
        .unwrap();
    let (status, body) = support::status_json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth_mode"], "mock");
    assert_eq!(body["user"], "raja");

    // Without the cookie the same request is a JSON 401.
    let res = client()
        .get(server.url("/api/session"))
        .send()
        .await
        .unwrap();
    let (status, body) = support::status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );
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
    // Not mounted at all: no body, another content type or another method
    // get the same JSON 404, never a 415 or 405 that would reveal a route.
    let bare = client()
        .post(server.url("/api/login/mock"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 404);
    let get = client()
        .get(server.url("/api/login/mock"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let body: serde_json::Value = get.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
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
        // The server created the data directory, so it made it owner-only;
        // an existing one keeps its mode (tested separately).
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let keys = state.join("signing-keys");
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
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
