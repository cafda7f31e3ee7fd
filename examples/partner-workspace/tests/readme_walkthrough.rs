//! The README's curl walk-through, run as written against a fresh server.

mod support;

use std::process::Command;

use serde_json::Value;
use support::Server;

/// The first `sh` block under "## A walk through with curl".
fn walkthrough_script() -> String {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## A walk through with curl")
        .nth(1)
        .expect("README has the curl walk-through");
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("the walk-through has an sh block");
    block
        .split("\n```")
        .next()
        .expect("the sh block is closed")
        .to_owned()
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: the README walk-through needs curl and jq \
         (scripts/test.sh installs them with apt-get)"
    );
}

#[tokio::test]
async fn readme_curl_walkthrough_runs_as_written() {
    require("curl");
    require("jq");
    let script = walkthrough_script();
    assert!(
        script.contains("127.0.0.1:8080"),
        "the walk-through no longer talks to 127.0.0.1:8080"
    );

    let server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_owned();
    // The test server runs on a free port; everything else is as written.
    let script = script.replace("127.0.0.1:8080", &addr);
    let work = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(work.path())
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walk-through failed:\n{stdout}\n{stderr}"
    );

    // Five JSON answers, then the metrics lines in the Prometheus text format.
    let mut stream = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let answers: Vec<Value> = stream
        .by_ref()
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("output is not a series of JSON values ({e}):\n{stdout}"));
    let [login, session, refreshed, logout, after] = answers.as_slice() else {
        panic!("expected five answers, got {}:\n{stdout}", answers.len());
    };
    let metrics = &stdout[stream.byte_offset()..];
    for counter in [
        "partner_auth_logins_total{mode=\"mock\",outcome=\"success\"} ",
        "partner_auth_refreshes_total{outcome=\"rotated\"} ",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(counter)),
            "{counter} missing from the scraped metrics:\n{metrics}"
        );
    }
    assert!(
        metrics
            .trim()
            .lines()
            .all(|l| l.starts_with("partner_auth_")),
        "the last command prints only partner_auth_ lines:\n{metrics}"
    );

    let token = |v: &Value, name: &str| v[name].as_str().unwrap_or_default().to_owned();
    assert!(token(login, "access_token").starts_with("ey"), "{login}");
    assert!(
        token(login, "refresh_token").starts_with("pa_rt_"),
        "{login}"
    );
    assert_eq!(login["token_type"], "Bearer");

    assert_eq!(session["auth_mode"], "mock", "{session}");
    assert_eq!(session["user"], "nikhil");
    assert_eq!(session["remember_me"], true);

    assert!(
        token(refreshed, "refresh_token").starts_with("pa_rt_"),
        "{refreshed}"
    );
    assert_ne!(
        token(refreshed, "refresh_token"),
        token(login, "refresh_token")
    );
    assert_ne!(
        token(refreshed, "access_token"),
        token(login, "access_token")
    );
    assert_eq!(refreshed["session"]["id"], session["id"]);

    assert_eq!(logout["status"], "logged_out", "{logout}");
    // The last call is a 401: its JSON error says why.
    assert_eq!(after["error"], "session_revoked", "{after}");

    // The files the script wrote hold what it printed; the access token it
    // used last is now refused with a JSON 401.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("refresh.json")).unwrap())
            .unwrap();
    assert_eq!(saved["access_token"], refreshed["access_token"]);
    let (status, body) = server
        .get("/api/session", saved["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("session_revoked"))
    );
}
