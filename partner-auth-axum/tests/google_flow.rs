//! Google sign-in over HTTP against the test OpenID provider running as its
//! own process on 127.0.0.1 (`partner-auth-test-oidc`, built on first use):
//! the full browserless flow, and every way a callback can be wrong.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use partner_auth_axum::google_routes::{self, GoogleState};
use partner_auth_axum::{AuthState, CookieSettings, app, routes, serve};
use partner_auth_core::google::{GoogleProvider, GoogleSignIn, MemoryIdentityStore};
use partner_auth_core::vault::{RecordedVaultEvents, ResilientVault, RetryConfig, VaultEvent};
use partner_auth_core::{
    Directory, Error, KeyRing, MemorySessionStore, MemoryVault, RecordedEvents, SecurityEvent,
    SessionConfig, SessionFilter, SessionManager, SystemClock, TokenConfig, TokenIssuer, Vault,
};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";

/// Builds the provider binary once per test run and returns its path.
fn provider_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            // target/<profile>/deps/<this test> -> target/<profile>/
            let exe = std::env::current_exe().expect("test executable path");
            let profile_dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target dir")
                .to_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "partner-auth-test-oidc"])
                .current_dir(&workspace);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building the test provider failed");
            profile_dir.join(format!(
                "partner-auth-test-oidc{}",
                std::env::consts::EXE_SUFFIX
            ))
        })
        .clone()
}

/// The provider process; killed when dropped.
struct ProviderProcess {
    child: Child,
    base: String,
}

impl ProviderProcess {
    fn start() -> Self {
        let mut child = Command::new(provider_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
                "--default-user",
                "nikhil@example.com",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("provider starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("provider prints its address");
        let base = line.trim().to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base:?}");
        Self { child, base }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Harness {
    provider: ProviderProcess,
    base: String,
    redirect_url: String,
    vault: Arc<MemoryVault>,
    events: Arc<RecordedEvents>,
    sessions: Arc<SessionManager>,
    google: Arc<GoogleProvider>,
    control: reqwest::Client,
}

/// A browser: keeps cookies, never follows redirects by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap()
}

impl Harness {
    async fn start() -> Self {
        Self::start_with_vault(None).await
    }

    /// A harness whose sign-in keeps provider tokens in `login_vault`
    /// instead of the harness's memory vault.
    async fn start_with_vault(login_vault: Option<Arc<dyn Vault>>) -> Self {
        let provider = ProviderProcess::start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let redirect_url = format!("{base}/api/login/google/callback");

        let clock = Arc::new(SystemClock);
        let issuer = TokenIssuer::new(
            KeyRing::generate().unwrap(),
            TokenConfig::default(),
            clock.clone(),
        )
        .unwrap();
        let events = Arc::new(RecordedEvents::default());
        let sessions = Arc::new(
            SessionManager::new(
                Arc::new(MemorySessionStore::new()),
                Arc::new(issuer),
                Arc::new(Directory::launch().unwrap()),
                clock,
                events.clone(),
                SessionConfig::default(),
            )
            .unwrap(),
        );
        let vault = Arc::new(MemoryVault::new());
        let google =
            GoogleProvider::builder(CLIENT_ID, SecretString::from(CLIENT_SECRET), &redirect_url)
                .unwrap()
                .issuer(provider.base.clone())
                .vault(login_vault.unwrap_or_else(|| vault.clone()))
                .discover()
                .await
                .unwrap();
        let google = Arc::new(google);
        let sign_in = Arc::new(GoogleSignIn::new(
            google.clone(),
            Arc::new(MemoryIdentityStore::new()),
            sessions.clone(),
        ));
        let cookies = CookieSettings { secure: false };
        let router = app([
            routes::router(AuthState {
                sessions: sessions.clone(),
                mock: None,
                cookies,
            }),
            google_routes::router(GoogleState { sign_in, cookies }),
        ]);
        tokio::spawn(serve(listener, router, std::future::pending()));

        Self {
            provider,
            base,
            redirect_url,
            vault,
            events,
            sessions,
            google,
            control: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn control(&self, path: &str, body: Value) {
        let response = self
            .control
            .post(format!("{}/control/{path}", self.provider.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    async fn stats(&self) -> Value {
        self.control
            .get(format!("{}/control/stats", self.provider.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token_requests(&self) -> u64 {
        self.stats().await["token_requests"].as_u64().unwrap()
    }

    async fn session_count(&self) -> usize {
        self.sessions
            .store()
            .list(&SessionFilter::default())
            .await
            .unwrap()
            .len()
    }

    /// Starts a login in `browser` and returns the provider URL.
    async fn begin(&self, browser: &reqwest::Client, query: &str) -> reqwest::Url {
        let response = browser
            .get(format!("{}/api/login/google{query}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[LOCATION].to_str().unwrap();
        assert!(location.starts_with(&self.provider.base), "{location}");
        reqwest::Url::parse(location).unwrap()
    }

    /// Starts a login and lets the provider answer; returns the callback URL.
    async fn callback_url(&self, browser: &reqwest::Client, query: &str) -> reqwest::Url {
        let authorize = self.begin(browser, query).await;
        let response = browser.get(authorize).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[LOCATION].to_str().unwrap();
        assert!(location.starts_with(&self.redirect_url), "{location}");
        reqwest::Url::parse(location).unwrap()
    }

    /// Runs a whole login; returns the callback response.
    async fn login(&self, browser: &reqwest::Client, query: &str) -> reqwest::Response {
        let callback = self.callback_url(browser, query).await;
        browser.get(callback).send().await.unwrap()
    }
}

fn param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn google_full_flow_against_provider_process() {
    let h = Harness::start().await;
    let b = browser();

    let authorize = h.begin(&b, "?remember_me=true&return_to=/workspace").await;
    assert_eq!(param(&authorize, "prompt").as_deref(), Some("consent"));
    let done = h.login_from(&b, authorize).await;

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/workspace");
    let cookies = set_cookies(&done);
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("pa_refresh="))
        .unwrap();
    assert!(refresh_cookie.contains("HttpOnly") && refresh_cookie.contains("Max-Age=86400"));
    assert!(cookies.iter().any(|c| c.starts_with("pa_access=")));
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("pa_google_flow=;") && c.contains("Max-Age=0"))
    );

    let session: Value = b
        .get(format!("{}/api/session", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["auth_mode"], "google");
    assert_eq!(session["user"], "nikhil");

    let refreshed = b
        .post(format!("{}/api/token/refresh", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let logout = b
        .post(format!("{}/api/logout", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let after = b
        .get(format!("{}/api/session", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    let stats = h.stats().await;
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["refresh_tokens_issued"], 1);
    assert!(h.events.snapshot().iter().any(|e| matches!(
        e,
        SecurityEvent::LoginSucceeded {
            mode: partner_auth_core::AuthMode::Google,
            ..
        }
    )));
}

impl Harness {
    async fn login_from(
        &self,
        browser: &reqwest::Client,
        authorize: reqwest::Url,
    ) -> reqwest::Response {
        let response = browser.get(authorize).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let callback = response.headers()[LOCATION].to_str().unwrap().to_owned();
        browser.get(callback).send().await.unwrap()
    }
}

/// G8: the first login's refresh token stays in the vault when later logins
/// and refreshes bring none; consent is asked for only while none is held.
#[tokio::test]
async fn google_refresh_token_kept() {
    let h = Harness::start().await;
    let b = browser();
    let issuer = h.provider.base.clone();

    let first = h.login(&b, "").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let subject = cookie_value(&first, "pa_google_sub").expect("subject hint set");
    let kept = h
        .vault
        .provider_token(&issuer, &subject)
        .expect("first refresh token kept");
    let kept = kept.expose_secret().to_owned();
    assert!(kept.starts_with("1//"));

    let again = h.begin(&b, "").await;
    assert_eq!(
        param(&again, "prompt"),
        None,
        "consent asked although a token is held"
    );
    assert_eq!(param(&again, "access_type").as_deref(), Some("offline"));
    let second = h.login_from(&b, again).await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let refreshed = b
        .post(format!("{}/api/token/refresh", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);

    let nikhil = h.sessions.directory().find_user("nikhil").unwrap().clone();
    let grant = h
        .google
        .refresh_provider_access(&nikhil, &subject)
        .await
        .unwrap()
        .expect("a refresh token is held");

    assert!(!grant.expose_access_token().is_empty());
    assert!(!grant.refresh_token_replaced);
    let stats = h.stats().await;
    assert_eq!(stats["refresh_grants"], 1);
    assert_eq!(stats["last_refresh_token_presented"], json!(kept));
    assert_eq!(stats["refresh_tokens_issued"], 1);
    let still = h.vault.provider_token(&issuer, &subject).unwrap();
    assert_eq!(still.expose_secret(), kept);
    // A browser without the subject hint (first login there) gets consent again.
    let fresh = h.begin(&browser(), "").await;
    assert_eq!(param(&fresh, "prompt").as_deref(), Some("consent"));
}

/// A refresh grant whose response carries a new refresh token replaces the
/// held one; a subject with nothing held sends no grant at all.
#[tokio::test]
async fn google_provider_refresh_replaces_only_on_a_new_token() {
    let h = Harness::start().await;
    let b = browser();
    let first = h.login(&b, "").await;
    let subject = cookie_value(&first, "pa_google_sub").unwrap();
    let kept = h
        .vault
        .provider_token(&h.provider.base, &subject)
        .unwrap()
        .expose_secret()
        .to_owned();
    let nikhil = h.sessions.directory().find_user("nikhil").unwrap().clone();

    h.control("next-refresh", json!({"rotate": true})).await;
    let rotated = h
        .google
        .refresh_provider_access(&nikhil, &subject)
        .await
        .unwrap()
        .unwrap();
    let replaced = h
        .vault
        .provider_token(&h.provider.base, &subject)
        .unwrap()
        .expose_secret()
        .to_owned();
    let nothing_held = h
        .google
        .refresh_provider_access(&nikhil, "10000000000000000000")
        .await
        .unwrap();

    assert!(rotated.refresh_token_replaced);
    assert_ne!(replaced, kept);
    assert!(replaced.starts_with("1//"));
    assert!(nothing_held.is_none());
    assert_eq!(h.stats().await["refresh_grants"], 1);
    assert!(!format!("{rotated:?}").contains(rotated.expose_access_token()));
}

/// A vault that refuses every write.
struct DownVault;

#[async_trait::async_trait]
impl Vault for DownVault {
    async fn holds_provider_token(&self, _issuer: &str, _subject: &str) -> Result<bool, Error> {
        Err(Error::Config("vault down".into()))
    }

    async fn keep_provider_token(
        &self,
        _user: &partner_auth_core::User,
        _issuer: &str,
        _subject: &str,
        _token: SecretString,
    ) -> Result<(), Error> {
        Err(Error::Config("vault down".into()))
    }
}

/// A login while the vault can not be written still completes: 303, a
/// working session, and the vault event that says the token was deferred
/// and then given up.
#[tokio::test]
async fn google_login_succeeds_while_the_vault_write_fails() {
    let vault_events = Arc::new(RecordedVaultEvents::default());
    let resilient = ResilientVault::spawn(
        Arc::new(DownVault),
        vault_events.clone(),
        RetryConfig {
            capacity: 4,
            max_attempts: 2,
            backoff: std::time::Duration::from_millis(1),
        },
    );
    let h = Harness::start_with_vault(Some(resilient)).await;
    let b = browser();

    let done = h.login(&b, "").await;
    let session = b
        .get(format!("{}/api/session", h.base))
        .send()
        .await
        .unwrap();

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(session.status(), StatusCode::OK);
    assert_eq!(h.stats().await["refresh_tokens_issued"], 1);
    let deferred = vault_events
        .snapshot()
        .iter()
        .any(|e| matches!(e, VaultEvent::ProviderTokenDeferred { .. }));
    assert!(deferred, "{:?}", vault_events.snapshot());
    let mut dropped = false;
    for _ in 0..200 {
        dropped = vault_events
            .snapshot()
            .iter()
            .any(|e| matches!(e, VaultEvent::ProviderTokenDropped { .. }));
        if dropped {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(dropped, "{:?}", vault_events.snapshot());
    assert!(h.events.snapshot().iter().any(|e| matches!(
        e,
        SecurityEvent::LoginSucceeded {
            mode: partner_auth_core::AuthMode::Google,
            ..
        }
    )));
}

/// The value of cookie `name` set by `response`.
fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(response).into_iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
    })
}

/// G6: forged forwarding headers change nothing; both legs use the
/// configured redirect URI byte for byte.
#[tokio::test]
async fn google_redirect_uri_ignores_forwarded_headers() {
    let h = Harness::start().await;
    let b = browser();

    for (proto, host) in [
        (None, "evil.example"),
        (Some("http"), "evil.example"),
        (Some("https"), "app.example.com"),
    ] {
        let mut request = b
            .get(format!("{}/api/login/google", h.base))
            .header("X-Forwarded-Host", host)
            .header("Forwarded", format!("host={host};proto=https"));
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto);
        }
        let response = request.send().await.unwrap();
        let location = reqwest::Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert_eq!(
            param(&location, "redirect_uri").as_deref(),
            Some(h.redirect_url.as_str())
        );
    }
    let done = h.login(&b, "").await;

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let stats = h.stats().await;
    assert_eq!(stats["last_token_redirect_uri"], json!(h.redirect_url));
    let authorize: Vec<(String, String)> =
        serde_json::from_value(stats["last_authorize"].clone()).unwrap();
    let sent = authorize
        .iter()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.clone());
    assert_eq!(sent.as_deref(), Some(h.redirect_url.as_str()));
}

/// G6 on the token-exchange leg: a login whose start and callback both
/// carry forged forwarding headers still sends the configured redirect URI,
/// byte for byte, to the token endpoint.
#[tokio::test]
async fn google_token_exchange_ignores_forwarded_headers() {
    let h = Harness::start().await;
    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Port", "8443")
            .header("Forwarded", "for=203.0.113.9;host=evil.example;proto=https")
    };
    let b = browser();

    let start = forged(b.get(format!("{}/api/login/google", h.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    let at_provider = b.get(authorize).send().await.unwrap();
    let callback = at_provider.headers()[LOCATION].to_str().unwrap().to_owned();
    let done = forged(b.get(callback)).send().await.unwrap();

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let stats = h.stats().await;
    assert_eq!(stats["token_requests"], 1);
    let seen = stats["last_token_redirect_uri"].as_str().unwrap();
    assert_eq!(seen.as_bytes(), h.redirect_url.as_bytes());
    let authorize: Vec<(String, String)> =
        serde_json::from_value(stats["last_authorize"].clone()).unwrap();
    let sent = authorize
        .iter()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.clone());
    assert_eq!(sent.as_deref(), Some(h.redirect_url.as_str()));
}

/// G5 over the wire: the token request carries the verifier of the
/// challenge in the authorization URL.
#[tokio::test]
async fn google_pkce_verifier_sent_to_token_endpoint() {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let h = Harness::start().await;
    let b = browser();

    let authorize = h.begin(&b, "").await;
    let challenge = param(&authorize, "code_challenge").unwrap();
    let done = h.login_from(&b, authorize).await;

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let stats = h.stats().await;
    let verifier = stats["last_token_code_verifier"].as_str().unwrap();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    assert_eq!(computed, challenge);
}

/// Turns the issued state into the one presented (`None`: left out).
type Mutation = fn(&str) -> Option<String>;

/// G4: every wrong state gets 400, the token endpoint is never called, and
/// no session is created.
#[tokio::test]
async fn google_state_mismatch_variants() {
    let h = Harness::start().await;

    let mutations: [(&str, Mutation); 5] = [
        ("last character changed", |s| {
            let mut t = s[..s.len() - 1].to_owned();
            t.push(if s.ends_with('A') { 'B' } else { 'A' });
            Some(t)
        }),
        ("missing", |_| None),
        ("empty", |_| Some(String::new())),
        ("one character", |_| Some("x".into())),
        ("10 KB", |_| Some("x".repeat(10 * 1024))),
    ];
    for (what, mutate) in mutations {
        let b = browser();
        let callback = h.callback_url(&b, "").await;
        let state = param(&callback, "state").unwrap();
        let code = param(&callback, "code").unwrap();
        let mut url = reqwest::Url::parse(&h.redirect_url).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(s) = mutate(&state) {
                q.append_pair("state", &s);
            }
        }

        let response = b.get(url).send().await.unwrap();

        let (status, code) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert!(
            ["state_mismatch", "invalid_callback"].contains(&code.as_str()),
            "{what}: {code}"
        );
        // The flow is spent: the genuine callback no longer works either.
        let genuine = b.get(callback).send().await.unwrap();
        assert_eq!(
            error_code(genuine).await,
            (StatusCode::BAD_REQUEST, "login_expired".into())
        );
    }

    assert_eq!(h.token_requests().await, 0);
    assert_eq!(h.session_count().await, 0);
}

#[tokio::test]
async fn google_state_without_flow_cookie_or_replayed() {
    let h = Harness::start().await;
    let b = browser();
    let callback = h.callback_url(&b, "").await;

    let stranger = browser().get(callback.clone()).send().await.unwrap();
    assert_eq!(
        error_code(stranger).await,
        (StatusCode::BAD_REQUEST, "login_expired".into())
    );
    assert_eq!(h.token_requests().await, 0);

    let b = browser();
    let callback = h.callback_url(&b, "").await;
    let first = b.get(callback.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let replay = b.get(callback).send().await.unwrap();

    assert_eq!(
        error_code(replay).await,
        (StatusCode::BAD_REQUEST, "login_expired".into())
    );
    assert_eq!(h.token_requests().await, 1);
    assert_eq!(h.session_count().await, 1);
}

/// Bad input at the callback: a 4xx, no session, the server stays up.
#[tokio::test]
async fn google_callback_bad_input() {
    let h = Harness::start().await;
    let cases = [
        ("", "no query"),
        ("?code=abc", "state missing"),
        ("?state=abc", "code missing"),
        ("?state=a&state=b&code=c", "duplicated state"),
        ("?state=a&code=b&code=c", "duplicated code"),
        ("?state=a&code=b&error=x&error=y", "duplicated error"),
        ("?state=%FF%FE&code=abc", "non-UTF-8 state"),
        ("?state=abc&code=%C3%28", "non-UTF-8 code"),
    ];
    for (query, what) in cases {
        let b = browser();
        h.begin(&b, "").await;
        let response = b
            .get(format!("{}{query}", h.redirect_url))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{what}: {status}");
        assert!(
            !set_cookies(&response)
                .iter()
                .any(|c| c.starts_with("pa_refresh=")),
            "{what}"
        );
    }
    let huge = format!("{}?state={}&code=c", h.redirect_url, "s".repeat(20_000));
    let response = browser().get(huge).send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let huge_code = format!("{}?state=s&code={}", h.redirect_url, "c".repeat(5_000));
    let response = browser().get(huge_code).send().await.unwrap();
    assert!(response.status().is_client_error());

    assert_eq!(h.token_requests().await, 0);
    assert_eq!(h.session_count().await, 0);
    let health = browser()
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
}

#[tokio::test]
async fn google_start_refuses_unsafe_return_paths() {
    let h = Harness::start().await;
    for query in [
        "?return_to=//evil.example",
        "?return_to=https://evil.example",
        "?return_to=/%5Cevil.example",
        "?return_to=evil",
        "?return_to=/a&return_to=/b",
        "?remember_me=maybe",
    ] {
        let response = browser()
            .get(format!("{}/api/login/google{query}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn google_start_refuses_unknown_parameters() {
    let h = Harness::start().await;
    for query in [
        "?foo=1",
        "?return_to=/desk&foo=1",
        "?remember_me=true&Return_To=/desk",
        "?=1",
    ] {
        let response = browser()
            .get(format!("{}/api/login/google{query}", h.base))
            .send()
            .await
            .unwrap();
        assert!(set_cookies(&response).is_empty(), "{query}");
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_query".to_owned()),
            "{query}"
        );
    }
    // The documented parameters, and none at all, still start a login.
    for query in ["", "?return_to=/desk&remember_me=true"] {
        let response = browser()
            .get(format!("{}/api/login/google{query}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{query}");
    }
}

/// A forged `?error=access_denied` without this browser's state (a
/// cross-site top-level GET) redirects to the login page but leaves the
/// login in progress intact; the genuine callback still completes.
#[tokio::test]
async fn google_forged_access_denied_leaves_the_flow_intact() {
    let h = Harness::start().await;
    let b = browser();
    let callback = h.callback_url(&b, "").await;
    let state = param(&callback, "state").unwrap();
    let wrong_state = format!("{}x", &state[..state.len() - 1]);

    let mut forged = Vec::new();
    for query in [
        "?error=access_denied".to_owned(),
        format!("?error=access_denied&state={wrong_state}"),
        "?error=server_error&state=".to_owned(),
    ] {
        let response = b
            .get(format!("{}{query}", h.redirect_url))
            .send()
            .await
            .unwrap();
        forged.push(response);
    }
    let genuine = b.get(callback).send().await.unwrap();

    for response in &forged {
        assert_eq!(response.status(), StatusCode::FOUND);
        assert!(
            response.headers()[LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?error=")
        );
        assert!(
            !set_cookies(response)
                .iter()
                .any(|c| c.starts_with("pa_google_flow=")),
            "the flow cookie was cleared"
        );
    }
    assert_eq!(genuine.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.session_count().await, 1);
}

/// With this browser's state, the provider's error ends the pending login:
/// the code that might still arrive for it is refused.
#[tokio::test]
async fn google_access_denied_with_state_ends_the_flow() {
    let h = Harness::start().await;
    let b = browser();
    let callback = h.callback_url(&b, "").await;
    let state = param(&callback, "state").unwrap();

    let denied = b
        .get(format!(
            "{}?error=access_denied&state={state}",
            h.redirect_url
        ))
        .send()
        .await
        .unwrap();
    let late = b.get(callback).send().await.unwrap();

    assert_eq!(denied.status(), StatusCode::FOUND);
    assert_eq!(denied.headers()[LOCATION], "/login?error=access_denied");
    assert!(
        set_cookies(&denied)
            .iter()
            .any(|c| c.starts_with("pa_google_flow=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(
        error_code(late).await,
        (StatusCode::BAD_REQUEST, "login_expired".into())
    );
    assert_eq!(h.token_requests().await, 0);
    assert_eq!(h.session_count().await, 0);
}

#[tokio::test]
async fn google_access_denied_redirects_to_login_page() {
    let h = Harness::start().await;
    let b = browser();
    h.control("next-user", json!({"deny": true})).await;

    let callback = h.callback_url(&b, "").await;
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    let response = b.get(callback).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()[LOCATION], "/login?error=access_denied");
    assert!(
        !set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("pa_refresh="))
    );
    assert_eq!(h.token_requests().await, 0);
    assert_eq!(h.session_count().await, 0);
    assert!(h.events.snapshot().iter().any(|e| matches!(
        e,
        SecurityEvent::LoginFailed {
            reason: "access_denied",
            ..
        }
    )));
}

/// G1 and G2 over the wire: tokens with a wrong issuer or audience, or
/// without `kid`, are refused with 400 and create no session.
#[tokio::test]
async fn google_bad_id_tokens_refused_over_http() {
    let h = Harness::start().await;
    for next in [
        json!({"claims": {"iss": format!("{}/", h.provider.base)}}),
        json!({"claims": {"iss": "https://accounts.google.com"}}),
        json!({"claims": {"aud": ["other"]}}),
        json!({"claims": {"aud": []}}),
        json!({"claims": {"azp": "other"}}),
        json!({"claims": {"nonce": "not-the-nonce"}}),
        json!({"claims": {"exp": 1_000_000_000}}),
        json!({"omit_kid": true}),
        json!({"remove": ["nonce"]}),
    ] {
        h.control("next-token", next.clone()).await;
        let response = h.login(&browser(), "").await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_id_token".into()),
            "{next}"
        );
    }
    assert_eq!(h.session_count().await, 0);
}

/// G7 over the wire: an odd `email_verified` never breaks the callback; an
/// unverified address gets 403.
#[tokio::test]
async fn google_email_verified_policy_over_http() {
    let h = Harness::start().await;
    for value in [json!("TRUE"), json!("true")] {
        h.control("next-token", json!({"claims": {"email_verified": value}}))
            .await;
        let response = h.login(&browser(), "").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{value}");
    }
    for value in [json!(false), json!("yes"), json!(1), json!(null)] {
        h.control("next-token", json!({"claims": {"email_verified": value}}))
            .await;
        let response = h.login(&browser(), "").await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::FORBIDDEN, "email_not_verified".into()),
            "{value}"
        );
    }
    h.control("next-token", json!({"remove": ["email_verified"]}))
        .await;
    let response = h.login(&browser(), "").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.session_count().await, 2);
}

/// G9 over the wire: first logins link by ASCII-case-insensitive e-mail
/// only. `ni\u{212A}hil` (Kelvin sign) folds to `nikhil` under Unicode case
/// folding, so this refusal fails if matching ever goes beyond ASCII.
#[tokio::test]
async fn google_email_matching_over_http() {
    let h = Harness::start().await;
    assert!(
        "ni\u{212A}hil".to_lowercase() == "nikhil",
        "the probe folds to a seeded user"
    );

    h.control("next-user", json!({"email": "ni\u{212A}hil@example.com"}))
        .await;
    let kelvin = h.login(&browser(), "").await;
    h.control("next-user", json!({"email": "nikhil@ex\u{0430}mple.com"}))
        .await;
    let cyrillic = h.login(&browser(), "").await;
    h.control("next-user", json!({"email": "RAJA@Example.COM"}))
        .await;
    let upper = h.login(&browser(), "").await;

    for refused in [kelvin, cyrillic] {
        assert!(
            !set_cookies(&refused)
                .iter()
                .any(|c| c.starts_with("pa_refresh=") || c.starts_with("pa_access=")),
            "a refused login set session cookies"
        );
        assert_eq!(
            error_code(refused).await,
            (StatusCode::FORBIDDEN, "unknown_user".into())
        );
    }
    assert_eq!(upper.status(), StatusCode::SEE_OTHER);
    let sessions = h
        .sessions
        .store()
        .list(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user_id.as_str(), "raja");
}

/// G3 against the provider process: a rotated key verifies after one
/// refetch, and a failing key endpoint leaves the cached keys in use.
#[tokio::test]
async fn google_key_rotation_and_outage_over_http() {
    let h = Harness::start().await;
    assert_eq!(
        h.login(&browser(), "").await.status(),
        StatusCode::SEE_OTHER
    );
    let before = h.stats().await["jwks_fetches"].as_u64().unwrap();

    h.control("rotate-keys", json!({})).await;
    let rotated = h.login(&browser(), "").await;
    let after_rotation = h.stats().await["jwks_fetches"].as_u64().unwrap();
    h.control("jwks", json!({"fail": true})).await;
    let during_outage = h.login(&browser(), "").await;
    h.control("next-token", json!({"omit_kid": true})).await;
    let without_kid = h.login(&browser(), "").await;

    assert_eq!(rotated.status(), StatusCode::SEE_OTHER);
    assert_eq!(after_rotation, before + 1);
    assert_eq!(during_outage.status(), StatusCode::SEE_OTHER);
    assert_eq!(error_code(without_kid).await.0, StatusCode::BAD_REQUEST);
}

/// Installs (once) a global subscriber at trace level that writes into a
/// buffer. Global, because a thread-local one misses callsites that
/// parallel tests registered first; the other tests' output lands in the
/// buffer too, which only widens the check.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = {
                let buffer = buffer.clone();
                move || LogWriter(buffer.clone())
            };
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(writer)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            buffer
        })
        .clone()
}

/// Nothing secret reaches the log: a whole flow's output (at trace level)
/// holds no code, state, token or client secret.
#[tokio::test]
async fn google_flow_logs_no_secrets() {
    let buffer = capture_logs();

    let h = Harness::start().await;
    let b = browser();
    let callback = h.callback_url(&b, "").await;
    let state = param(&callback, "state").unwrap();
    let code = param(&callback, "code").unwrap();
    let done = b.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let access = cookie_value(&done, "pa_access").unwrap();
    let refresh = cookie_value(&done, "pa_refresh").unwrap();
    let subject = cookie_value(&done, "pa_google_sub").unwrap();
    let stats = h.stats().await;
    let verifier = stats["last_token_code_verifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let id_token = stats["last_id_token"].as_str().unwrap().to_owned();
    let authorize: Vec<(String, String)> =
        serde_json::from_value(stats["last_authorize"].clone()).unwrap();
    let nonce = authorize
        .iter()
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.clone())
        .unwrap();
    let bad = b
        .get(format!("{}?state={state}x&code={code}", h.redirect_url))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());

    let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("google sign-in completed"),
        "the capture saw nothing"
    );
    let provider_token = h.vault.provider_token(&h.provider.base, &subject).unwrap();
    let secrets = [
        ("state", state.as_str()),
        ("code", code.as_str()),
        ("nonce", nonce.as_str()),
        ("PKCE verifier", verifier.as_str()),
        ("ID token", id_token.as_str()),
        ("pa_access", access.as_str()),
        ("pa_refresh", refresh.as_str()),
        ("client secret", CLIENT_SECRET),
        ("provider refresh token", provider_token.expose_secret()),
    ];
    for (what, secret) in secrets {
        assert!(secret.len() >= 10, "{what} looks too short to search for");
        assert!(!logs.contains(secret), "the {what} reached the log");
    }
    // The ID token's signature alone is as secret as the whole token.
    let signature = id_token.rsplit('.').next().unwrap();
    assert!(
        !logs.contains(signature),
        "the ID token signature reached the log"
    );
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Session fixation (cases/sessions.md S2) on the Google callback: a browser
/// that signs in again while holding the refresh cookie of an earlier session
/// ends that session; only the new one is live.
#[tokio::test]
async fn google_login_replaces_the_session_of_the_refresh_cookie_it_carried() {
    let h = Harness::start().await;
    let b = browser();
    let first = h.login(&b, "").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = h.login(&b, "").await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);

    let sessions = h
        .sessions
        .store()
        .list(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let reasons: Vec<_> = sessions.iter().map(|s| s.revoke_reason).collect();
    assert!(
        reasons.contains(&Some(partner_auth_core::RevokeReason::Replaced))
            && reasons.contains(&None),
        "{reasons:?}"
    );
    // The newest session is the live one.
    assert_eq!(sessions[0].revoke_reason, None);
}
