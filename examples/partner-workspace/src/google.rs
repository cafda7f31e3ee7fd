//! Google sign-in for the example server: settings from the environment,
//! the router, and the `check-google` configuration checker.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `PARTNER_AUTH_GOOGLE_CLIENT_ID` | OAuth client id; Google sign-in is on when set |
//! | `PARTNER_AUTH_GOOGLE_CLIENT_SECRET` | its secret (never logged) |
//! | `PARTNER_AUTH_GOOGLE_REDIRECT_URL` | `https://HOST/api/login/google/callback`, exactly as registered |
//! | `PARTNER_AUTH_GOOGLE_ISSUER` | default `https://accounts.google.com`; another OpenID provider for tests and staging |
//! | `PARTNER_AUTH_GOOGLE_HOSTED_DOMAINS` | optional comma-separated allow list of Workspace domains (`hd`) |

use std::env::VarError;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use partner_auth_axum::CookieSettings;
use partner_auth_axum::google_routes::{self, GoogleState};
use partner_auth_core::google::{
    GOOGLE_ISSUER, GoogleProvider, GoogleSignIn, IdentityStore, Setting, SettingsToCheck,
    check_settings, discover, provider_http_client,
};
use partner_auth_core::{SessionManager, Vault};
use secrecy::{ExposeSecret, SecretString};

/// Variable holding the OAuth client id.
pub const ENV_CLIENT_ID: &str = "PARTNER_AUTH_GOOGLE_CLIENT_ID";
/// Variable holding the OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "PARTNER_AUTH_GOOGLE_CLIENT_SECRET";
/// Variable holding the redirect URL.
pub const ENV_REDIRECT_URL: &str = "PARTNER_AUTH_GOOGLE_REDIRECT_URL";
/// Variable holding the issuer.
pub const ENV_ISSUER: &str = "PARTNER_AUTH_GOOGLE_ISSUER";
/// Variable holding the hosted-domain allow list.
pub const ENV_HOSTED_DOMAINS: &str = "PARTNER_AUTH_GOOGLE_HOSTED_DOMAINS";

/// The Google settings as read, each possibly missing.
pub struct RawSettings {
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    redirect_url: Option<String>,
    issuer: String,
    hosted_domains: Vec<String>,
    /// Variables that are set but not valid UTF-8 (reported as such, not
    /// as missing).
    not_utf8: Vec<&'static str>,
}

impl std::fmt::Debug for RawSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSettings")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("issuer", &self.issuer)
            .field("hosted_domains", &self.hosted_domains)
            .field("not_utf8", &self.not_utf8)
            .finish()
    }
}

impl RawSettings {
    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn read(lookup: impl Fn(&str) -> Result<String, VarError>) -> Self {
        let mut not_utf8 = Vec::new();
        let mut non_empty = |name: &'static str| match lookup(name) {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) | Err(VarError::NotPresent) => None,
            Err(VarError::NotUnicode(_)) => {
                not_utf8.push(name);
                None
            }
        };
        let client_id = non_empty(ENV_CLIENT_ID);
        let client_secret = non_empty(ENV_CLIENT_SECRET).map(SecretString::from);
        let redirect_url = non_empty(ENV_REDIRECT_URL);
        let issuer = non_empty(ENV_ISSUER).unwrap_or_else(|| GOOGLE_ISSUER.to_owned());
        let hosted_domains = non_empty(ENV_HOSTED_DOMAINS)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            client_id,
            client_secret,
            redirect_url,
            issuer,
            hosted_domains,
            not_utf8,
        }
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Self {
        Self::read(|name| std::env::var(name))
    }

    /// Whether Google sign-in is switched on (the client id is set, even to
    /// something unusable, which then stops the server at start).
    pub fn enabled(&self) -> bool {
        self.client_id.is_some() || self.not_utf8.contains(&ENV_CLIENT_ID)
    }

    /// The offline problems, one line each, prefixed with the variable name.
    pub fn problems(&self) -> Vec<String> {
        let settings = SettingsToCheck {
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_ref().map(|s| s.expose_secret()),
            redirect_url: self.redirect_url.as_deref(),
            issuer: &self.issuer,
        };
        let mut problems: Vec<String> = self
            .not_utf8
            .iter()
            .map(|name| format!("{name}: is not valid UTF-8"))
            .collect();
        problems.extend(
            check_settings(&settings)
                .into_iter()
                .filter(|p| !self.not_utf8.contains(&variable(p.setting)))
                .map(|p| format!("{}: {}", variable(p.setting), p.message)),
        );
        problems
    }
}

fn variable(setting: Setting) -> &'static str {
    match setting {
        Setting::ClientId => ENV_CLIENT_ID,
        Setting::ClientSecret => ENV_CLIENT_SECRET,
        Setting::RedirectUrl => ENV_REDIRECT_URL,
        Setting::Issuer => ENV_ISSUER,
    }
}

/// The Google routes when `PARTNER_AUTH_GOOGLE_CLIENT_ID` is set, `None`
/// otherwise. Refuses to start on an invalid configuration (the same checks
/// as `check-google --offline`) or when discovery fails.
pub async fn router_from_env(
    sessions: Arc<SessionManager>,
    identities: Arc<dyn IdentityStore>,
    vault: Arc<dyn Vault>,
    cookies: CookieSettings,
) -> anyhow::Result<Option<Router>> {
    let settings = RawSettings::from_env();
    if !settings.enabled() {
        tracing::info!("google sign-in off ({ENV_CLIENT_ID} not set)");
        return Ok(None);
    }
    let problems = settings.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "google sign-in configuration: {}",
        problems.join("; ")
    );
    router(settings, sessions, identities, vault, cookies)
        .await
        .map(Some)
}

/// The Google routes for `settings` (discovery runs now).
pub async fn router(
    settings: RawSettings,
    sessions: Arc<SessionManager>,
    identities: Arc<dyn IdentityStore>,
    vault: Arc<dyn Vault>,
    cookies: CookieSettings,
) -> anyhow::Result<Router> {
    let (Some(client_id), Some(secret), Some(redirect)) = (
        settings.client_id,
        settings.client_secret,
        settings.redirect_url,
    ) else {
        anyhow::bail!(
            "google sign-in needs {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET} and {ENV_REDIRECT_URL}"
        );
    };
    let provider = GoogleProvider::builder(client_id, secret, &redirect)?
        .issuer(settings.issuer.clone())
        .hosted_domains(settings.hosted_domains)
        .vault(vault)
        .discover()
        .await
        .with_context(|| format!("google sign-in: discovery at {}", settings.issuer))?;
    tracing::info!(issuer = %provider.issuer(), client_id = %provider.client_id(), "google sign-in on");

    let sign_in = Arc::new(GoogleSignIn::new(Arc::new(provider), identities, sessions));
    Ok(google_routes::router(GoogleState { sign_in, cookies }))
}

/// `partner-workspace check-google [--offline]`: validates the settings the
/// way the Google console will and, unless `offline`, that discovery
/// answers. Prints one line per problem (or one `ok` line) on standard
/// output; returns the process exit code: 0 only when everything passes.
pub async fn run_check_google(offline: bool) -> i32 {
    let settings = RawSettings::from_env();
    let mut out = std::io::stdout();
    let code = check(&settings, offline, &mut out).await;
    let _ = out.flush();
    code
}

/// The checker over explicit settings and output.
pub async fn check(settings: &RawSettings, offline: bool, out: &mut dyn Write) -> i32 {
    let mut problems = settings.problems();
    let issuer_ok = !problems.iter().any(|p| p.starts_with(ENV_ISSUER));
    if !offline && issuer_ok {
        let result = match provider_http_client() {
            Ok(http) => discover(&http, &settings.issuer).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            problems.push(format!(
                "{ENV_ISSUER}: discovery at {}/.well-known/openid-configuration failed: {e}",
                settings.issuer.trim_end_matches('/')
            ));
        }
    }

    if problems.is_empty() {
        let how = if offline {
            " (offline; discovery not checked)"
        } else {
            ""
        };
        let _ = writeln!(out, "google configuration ok{how}");
        return 0;
    }
    for problem in &problems {
        let _ = writeln!(out, "{problem}");
    }
    1
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> RawSettings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RawSettings::read(|name| map.get(name).cloned().ok_or(VarError::NotPresent))
    }

    const GOOD: [(&str, &str); 3] = [
        (
            ENV_CLIENT_ID,
            "123456789012-abc123def456.apps.googleusercontent.com",
        ),
        (ENV_CLIENT_SECRET, "GOCSPX-not-a-real-secret"),
        (
            ENV_REDIRECT_URL,
            "https://app.example.com/api/login/google/callback",
        ),
    ];

    async fn run(s: &RawSettings) -> (i32, String) {
        let mut out = Vec::new();
        let code = check(s, true, &mut out).await;
        (code, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn check_google_offline_passes_a_good_configuration() {
        let (code, out) = run(&settings(&GOOD)).await;

        assert_eq!(code, 0, "{out}");
        assert_eq!(out.lines().count(), 1);
    }

    #[tokio::test]
    async fn check_google_reports_one_line_per_problem() {
        let s = settings(&[
            (ENV_CLIENT_ID, "web-id"),
            (ENV_REDIRECT_URL, "http://app.example.com/callback#x"),
        ]);

        let (code, out) = run(&s).await;

        assert_eq!(code, 1);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.iter().any(|l| l.starts_with(ENV_CLIENT_ID)), "{out}");
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("{ENV_CLIENT_SECRET}: is not set")),
            "{out}"
        );
        for text in ["https", "fragment", "path must be exactly"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(ENV_REDIRECT_URL) && l.contains(text)),
                "{text}: {out}"
            );
        }
        assert!(!out.contains("GOCSPX"));
    }

    #[tokio::test]
    async fn check_google_reports_a_value_that_is_not_utf8_as_such() {
        use std::os::unix::ffi::OsStringExt as _;

        let s = RawSettings::read(|name| match name {
            ENV_CLIENT_ID => Err(VarError::NotUnicode(std::ffi::OsString::from_vec(
                b"abc\xff.apps.googleusercontent.com".to_vec(),
            ))),
            other => GOOD
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(VarError::NotPresent),
        });
        // Set, though unusable: the server must not start without Google.
        assert!(s.enabled());

        let (code, out) = run(&s).await;

        assert_eq!(code, 1);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [format!("{ENV_CLIENT_ID}: is not valid UTF-8")],
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_google_online_reports_unreachable_discovery() {
        // A closed loopback port: discovery must fail, and say so in one line.
        let mut pairs = GOOD.to_vec();
        pairs.push((ENV_ISSUER, "http://127.0.0.1:9"));
        pairs[0] = (ENV_CLIENT_ID, "test-client");
        let s = settings(&pairs);
        let mut out = Vec::new();

        let code = check(&s, false, &mut out).await;

        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 1);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with(ENV_ISSUER) && out.contains("discovery"),
            "{out}"
        );
    }

    #[test]
    fn google_is_off_without_a_client_id() {
        assert!(!settings(&[]).enabled());
        assert!(!settings(&[(ENV_CLIENT_ID, "")]).enabled());
        assert!(settings(&GOOD).enabled());
        let s = settings(&[(ENV_HOSTED_DOMAINS, "example.com, corp.example ,")]);
        assert_eq!(s.hosted_domains, ["example.com", "corp.example"]);
        assert_eq!(s.issuer, GOOGLE_ISSUER);
        assert!(!format!("{:?}", settings(&GOOD)).contains("GOCSPX"));
    }
}
