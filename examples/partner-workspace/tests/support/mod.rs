//! Starts the real `partner-workspace` binary on 127.0.0.1 with a fresh data
//! directory, and talks to it over HTTP.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The data directory.
    pub data: tempfile::TempDir,
    /// File receiving the server's standard error (its logs).
    pub log_path: PathBuf,
}

impl Server {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        Self::start_in(data, env)
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(data: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        let log_path = data.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_partner-workspace"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data.path().join("state"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start partner-workspace");

        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready line");
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("server did not start: {line:?}\n{log}");
        };
        Self {
            child,
            base: addr.to_owned(),
            data,
            log_path,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The state directory the server writes to.
    pub fn state_dir(&self) -> PathBuf {
        self.data.path().join("state")
    }

    /// The logs written so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the server (SIGKILL) and hands back the data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data, data)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Logs in through the mock provider with the refresh token in the body.
    pub async fn login(&self, user: &str, remember_me: bool) -> Login {
        let res = client()
            .post(self.url("/api/login/mock"))
            .json(&json!({ "user": user, "remember_me": remember_me, "delivery": "body" }))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login as {user}");
        let body: Value = res.json().await.expect("login body");
        Login::from_body(body)
    }

    /// `GET path` with a bearer token; returns status and JSON body.
    pub async fn get(&self, path: &str, access: &str) -> (u16, Value) {
        let res = client()
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    /// Refreshes with the token in the body.
    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let res = client()
            .post(self.url("/api/token/refresh"))
            .json(&json!({ "refresh_token": refresh_token, "delivery": "body" }))
            .send()
            .await
            .expect("refresh request");
        status_json(res).await
    }

    /// Waits until `/healthz` answers 200.
    pub async fn assert_healthy(&self) {
        let (status, body) = status_json(
            client()
                .get(self.url("/healthz"))
                .send()
                .await
                .expect("healthz"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The interesting parts of a login or refresh response.
#[derive(Debug, Clone)]
pub struct Login {
    /// The access token.
    pub access: String,
    /// The refresh token (body delivery).
    pub refresh: String,
    /// The session id.
    pub session_id: String,
    /// The whole body.
    pub body: Value,
}

impl Login {
    /// Reads a response body.
    pub fn from_body(body: Value) -> Self {
        Self {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            session_id: body["session"]["id"]
                .as_str()
                .expect("session id")
                .to_owned(),
            body,
        }
    }
}

/// A client without a cookie store.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Status and JSON body (Null when the body is not JSON).
pub async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every `Set-Cookie` header for `name`.
pub fn set_cookies<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with(&format!("{name}=")))
        .collect()
}

/// The value of a `Set-Cookie` line.
pub fn cookie_value(line: &str) -> &str {
    line.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Polls `cond` for up to five seconds.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every file below `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
