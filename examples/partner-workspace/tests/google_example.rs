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
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    (Process(child), line.trim().to_owned())
}

fn start_provider() -> (Process, String) {
    let mut cmd = Command::new(provider_binary());
    cmd.args([
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
    cmd.env_remove("RUST_LOG");
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
    let mut cmd = workspace();
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data.path().join("state"));
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

    let start = browser
        .get(format!("{base}/api/login/google?return_to=/workspace"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&issuer));
    let provider = browser.get(authorize).send().await.unwrap();
    let callback = provider.headers()[LOCATION].to_str().unwrap().to_owned();
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

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/workspace");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(session["auth_mode"], "google");
    assert_eq!(session["user"], "mukesh");
}
