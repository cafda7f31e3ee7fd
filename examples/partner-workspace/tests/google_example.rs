//! The example binary against the test OpenID provider, both as processes
//! on 127.0.0.1, configured only through `PARTNER_AUTH_GOOGLE_*`: the
//! `check-google` checker, and a whole browserless sign-in.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;

const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";

/// Builds the provider binary once and returns its path.
fn provider_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let example = PathBuf::from(env!("CARGO_BIN_EXE_partner-workspace"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "partner-auth-test-oidc"])
                .current_dir(&workspace);
            if example.parent().is_some_and(|d| d.ends_with("release")) {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building the test provider failed");
            example.with_file_name(format!(
                "partner-auth-test-oidc{}",
                std::env::consts::EXE_SUFFIX
            ))
        })
        .clone()
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` and returns it with the first line of its standard output.
fn spawn_with_ready_line(mut cmd: Command) -> (Process, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    (Process(child), line.trim().to_owned())
}

fn start_provider() -> (Process, String) {
    let mut cmd = Command::new(provider_binary());
    cmd.stderr(Stdio::null()).args([
        "--listen",
        "127.0.0.1:0",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--default-user",
        "mukesh@example.com",
    ]);
    let (process, issuer) = spawn_with_ready_line(cmd);
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer:?}");
    (process, issuer)
}

fn workspace() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partner-workspace"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PARTNER_AUTH_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG").stderr(Stdio::null());
    // Loopback only: a proxy setting of the machine must not reroute it.
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    cmd
}

fn google_env(cmd: &mut Command, issuer: &str, redirect: &str) {
    cmd.env("PARTNER_AUTH_GOOGLE_CLIENT_ID", CLIENT_ID)
        .env("PARTNER_AUTH_GOOGLE_CLIENT_SECRET", CLIENT_SECRET)
        .env("PARTNER_AUTH_GOOGLE_REDIRECT_URL", redirect)
        .env("PARTNER_AUTH_GOOGLE_ISSUER", issuer);
}

fn run_check(cmd: &mut Command) -> (i32, Vec<String>) {
    let out = cmd.output().expect("check-google runs");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

#[test]
fn check_google_exit_codes_and_lines() {
    let (_provider, issuer) = start_provider();
    let redirect = "http://localhost:8080/api/login/google/callback";

    let mut online = workspace();
    online.arg("check-google");
    google_env(&mut online, &issuer, redirect);
    let (ok_code, ok_lines) = run_check(&mut online);

    let mut bad = workspace();
    bad.args(["check-google", "--offline"])
        .env("PARTNER_AUTH_GOOGLE_CLIENT_ID", "not a client id")
        .env(
            "PARTNER_AUTH_GOOGLE_REDIRECT_URL",
            "http://app.example.com/cb#x",
        );
    let (bad_code, bad_lines) = run_check(&mut bad);

    let mut unreachable = workspace();
    unreachable.arg("check-google");
    google_env(&mut unreachable, "http://127.0.0.1:9", redirect);
    let (down_code, down_lines) = run_check(&mut unreachable);

    assert_eq!(
        (ok_code, ok_lines),
        (0, vec!["google configuration ok".to_owned()])
    );
    assert_eq!(bad_code, 1);
    // Client id shape, secret missing, and the redirect URL's scheme, fragment and path.
    assert_eq!(bad_lines.len(), 5, "{bad_lines:#?}");
    assert!(
        bad_lines
            .iter()
            .all(|l| l.starts_with("PARTNER_AUTH_GOOGLE_"))
    );
    assert_eq!(down_code, 1);
    assert_eq!(down_lines.len(), 1, "{down_lines:#?}");
    assert!(down_lines[0].contains("discovery"));
}

/// A counter's value in a Prometheus text scrape: the sample named `name`
/// whose labels include every pair in `labels`; 0 when there is none.
fn counter(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series == &name || series.starts_with(&format!("{name}{{")))
        .filter(|(series, _)| {
            labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}

async fn scrape(base: &str) -> String {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A whole sign-in through the example binary, with its logs at trace
/// level: the session, the provider's refresh token sealed in the vault
/// (metadata only over the API), the counters at `GET /metrics` after a
/// refused and a completed Google login and a mock login, and no secret of
/// the flow anywhere in the log.
#[tokio::test]
async fn example_signs_in_with_the_test_provider() {
    let (_provider, issuer) = start_provider();
    // The redirect URL must name the port before the server starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let mut cmd = workspace();
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data.path().join("state"))
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log_path).unwrap());
    google_env(
        &mut cmd,
        &issuer,
        &format!("{base}/api/login/google/callback"),
    );
    let (_server, ready) = spawn_with_ready_line(cmd);
    assert_eq!(ready, format!("listening on {base}"));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap();
    let control = reqwest::Client::builder().no_proxy().build().unwrap();
    let before = scrape(&base).await;

    // A refused login: the user declines at the provider.
    let denied = control
        .post(format!("{issuer}/control/next-user"))
        .json(&serde_json::json!({"deny": true}))
        .send()
        .await
        .unwrap();
    assert!(denied.status().is_success());
    let start = browser
        .get(format!("{base}/api/login/google"))
        .send()
        .await
        .unwrap();
    let provider = browser
        .get(start.headers()[LOCATION].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let declined = browser
        .get(provider.headers()[LOCATION].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(declined.headers()[LOCATION], "/login?error=access_denied");

    let start = browser
        .get(format!("{base}/api/login/google?return_to=/workspace"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&issuer));
    let nonce = param(&authorize, "nonce").unwrap();
    let provider = browser.get(authorize).send().await.unwrap();
    let callback = provider.headers()[LOCATION].to_str().unwrap().to_owned();
    let state = param(&callback, "state").unwrap();
    let code = param(&callback, "code").unwrap();
    let done = browser.get(callback.clone()).send().await.unwrap();
    let replay = browser.get(callback).send().await.unwrap();
    let session: Value = browser
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let credentials = browser
        .get(format!("{base}/api/credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(credentials.status(), StatusCode::OK);
    let credentials: Value = credentials.json().await.unwrap();
    let api = reqwest::Client::builder().no_proxy().build().unwrap();
    let mock = api
        .post(format!("{base}/api/login/mock"))
        .json(&serde_json::json!({"user": "nikhil", "remember_me": false, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(mock.status(), StatusCode::OK);
    let unknown = api
        .post(format!("{base}/api/login/mock"))
        .json(&serde_json::json!({"user": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    // Two rotations, then the first token again: reuse, the session is revoked.
    let mut token = mock.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = token.clone();
    for _ in 0..2 {
        let rotated: Value = api
            .post(format!("{base}/api/token/refresh"))
            .json(&serde_json::json!({"refresh_token": token, "delivery": "body"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token = rotated["refresh_token"].as_str().unwrap().to_owned();
    }
    let reused = api
        .post(format!("{base}/api/token/refresh"))
        .json(&serde_json::json!({"refresh_token": first, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let after = scrape(&base).await;

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/workspace");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(session["auth_mode"], "google");
    assert_eq!(session["user"], "mukesh");

    // The provider's refresh token is sealed for mukesh; the API shows metadata only.
    let list = credentials["credentials"].as_array().unwrap();
    let sealed: Vec<&Value> = list
        .iter()
        .filter(|c| c["kind"] == "oauth_refresh_token")
        .collect();
    assert_eq!(sealed.len(), 1, "{credentials}");
    assert_eq!(sealed[0]["owner"], "mukesh");
    assert_eq!(sealed[0]["status"], "active");
    assert!(sealed[0].get("secret").is_none());
    assert!(!credentials.to_string().contains("1//"));

    let moved = |name: &str, labels: &[(&str, &str)]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    let logins = "partner_auth_logins_total";
    assert_eq!(
        moved(logins, &[("mode", "google"), ("outcome", "failure")]),
        2.0
    );
    assert_eq!(
        moved(logins, &[("mode", "google"), ("outcome", "success")]),
        1.0
    );
    assert_eq!(
        moved(logins, &[("mode", "mock"), ("outcome", "success")]),
        1.0
    );
    assert_eq!(
        moved(logins, &[("mode", "mock"), ("outcome", "failure")]),
        1.0
    );
    let refreshes = "partner_auth_refreshes_total";
    assert_eq!(moved(refreshes, &[("outcome", "rotated")]), 2.0);
    assert_eq!(moved(refreshes, &[("outcome", "reuse_detected")]), 1.0);
    let failures = "partner_auth_google_login_failures_total";
    assert_eq!(moved(failures, &[("code", "access_denied")]), 1.0);
    assert_eq!(moved(failures, &[("code", "login_expired")]), 1.0);
    assert!(
        counter(
            &after,
            "partner_auth_google_jwks_fetches_total",
            &[("outcome", "ok")]
        ) >= 1.0
    );
    // No label names a person.
    for who in ["mukesh", "nikhil", "example.com"] {
        assert!(!after.contains(who), "{who} in /metrics");
    }

    // Nothing secret reached the trace-level log.
    let stats: Value = control
        .get(format!("{issuer}/control/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verifier = stats["last_token_code_verifier"].as_str().unwrap();
    let id_token = stats["last_id_token"].as_str().unwrap();
    let access = set_cookie(&done, "pa_access").unwrap();
    let refresh = set_cookie(&done, "pa_refresh").unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("google sign-in completed"), "no log captured");
    assert!(logs.contains("TRACE"), "the log is not at trace level");
    for (what, secret) in [
        ("state", state.as_str()),
        ("code", code.as_str()),
        ("nonce", nonce.as_str()),
        ("PKCE verifier", verifier),
        ("ID token", id_token),
        ("ID token signature", id_token.rsplit('.').next().unwrap()),
        ("pa_access", access.as_str()),
        ("pa_refresh", refresh.as_str()),
        ("client secret", CLIENT_SECRET),
        ("reused refresh token", first.as_str()),
        ("latest refresh token", token.as_str()),
    ] {
        assert!(secret.len() >= 10, "{what} looks too short to search for");
        assert!(!logs.contains(secret), "the {what} reached the log");
    }
}

#[test]
fn help_lists_every_google_setting() {
    let out = workspace().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();

    for name in [
        "PARTNER_AUTH_GOOGLE_CLIENT_ID",
        "PARTNER_AUTH_GOOGLE_CLIENT_SECRET",
        "PARTNER_AUTH_GOOGLE_REDIRECT_URL",
        "PARTNER_AUTH_GOOGLE_ISSUER",
        "PARTNER_AUTH_GOOGLE_HOSTED_DOMAINS",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

/// The runbook and the metrics page quote metric names and log messages;
/// each must be one the code actually emits.
#[test]
fn runbook_quotes_only_real_metrics_and_log_lines() {
    use partner_auth_core::metrics as m;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let runbook = read("docs/runbooks/google-oauth.md");
    let metrics_page = read("docs/metrics.md");
    let sources = [
        read("partner-auth-core/src/events.rs"),
        read("partner-auth-core/src/google/jwks.rs"),
        read("partner-auth-core/src/vault/notify.rs"),
        read("partner-auth-axum/src/google_routes.rs"),
        read("partner-auth-axum/src/error.rs"),
    ]
    .concat();
    let known = [
        m::LOGINS_TOTAL,
        m::GOOGLE_LOGIN_FAILURES_TOTAL,
        m::REFRESHES_TOTAL,
        m::JWKS_FETCHES_TOTAL,
        m::PROVIDER_TOKEN_WRITES_TOTAL,
        m::PROVIDER_REFRESHES_TOTAL,
    ];

    for text in [&runbook, &metrics_page] {
        for (at, _) in text.match_indices("partner_auth_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // Module paths of log targets share the prefix; metrics are counters.
            if !name.ends_with("_total") {
                continue;
            }
            assert!(known.contains(&name.as_str()), "unknown metric {name}");
        }
    }
    for name in known {
        assert!(metrics_page.contains(name), "{name} not documented");
    }
    for message in [
        "login refused",
        "google sign-in refused",
        "request failed",
        "provider reported an error; back to the login page",
        "provider signing keys could not be refreshed; keeping the last good keys",
        "vault event",
    ] {
        assert!(runbook.contains(message), "runbook lacks {message:?}");
        assert!(
            sources.contains(&format!("\"{message}\"")),
            "no log line {message:?}"
        );
    }
}
