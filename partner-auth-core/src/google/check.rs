//! Checks of a Google OAuth client configuration, the way the Google Cloud
//! console judges them, so that a mistake shows up before the first login.

use url::Url;

use super::GOOGLE_ISSUER;
use super::provider::{is_https_or_loopback, is_loopback_host};

/// The callback route; the redirect URL's path must be exactly this.
pub const CALLBACK_PATH: &str = "/api/login/google/callback";

/// Which setting a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The OAuth client id.
    ClientId,
    /// The OAuth client secret.
    ClientSecret,
    /// The redirect URL.
    RedirectUrl,
    /// The issuer.
    Issuer,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting.
    pub setting: Setting,
    /// What is wrong, in one line.
    pub message: &'static str,
}

/// The settings as read, each possibly missing. The secret is redacted in
/// `Debug`.
#[derive(Clone, Default)]
pub struct SettingsToCheck<'a> {
    /// The client id.
    pub client_id: Option<&'a str>,
    /// Whether a client secret is set, and whether it has surrounding blanks.
    pub client_secret: Option<&'a str>,
    /// The redirect URL.
    pub redirect_url: Option<&'a str>,
    /// The issuer.
    pub issuer: &'a str,
}

impl std::fmt::Debug for SettingsToCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsToCheck")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.map(|_| "[redacted]"))
            .field("redirect_url", &self.redirect_url)
            .field("issuer", &self.issuer)
            .finish()
    }
}

fn problem(setting: Setting, message: &'static str) -> Problem {
    Problem { setting, message }
}

/// Whether `id` has the shape of a Google web client id:
/// `DIGITS-LOWERALNUM.apps.googleusercontent.com`.
pub fn looks_like_google_client_id(id: &str) -> bool {
    let Some(head) = id.strip_suffix(".apps.googleusercontent.com") else {
        return false;
    };
    let Some((number, rest)) = head.split_once('-') else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Everything that can be checked without the network. Empty means all pass.
pub fn check_settings(s: &SettingsToCheck<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let google = s.issuer == GOOGLE_ISSUER || s.issuer == "accounts.google.com";

    match s.client_id.map(str::trim) {
        None | Some("") => problems.push(problem(Setting::ClientId, "is not set")),
        Some(_) if s.client_id.is_some_and(|id| id.trim() != id) => problems.push(problem(
            Setting::ClientId,
            "has leading or trailing whitespace",
        )),
        Some(id) if google && !looks_like_google_client_id(id) => problems.push(problem(
            Setting::ClientId,
            "does not look like a Google web client id (NUMBER-ID.apps.googleusercontent.com)",
        )),
        Some(id) if id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) => {
            problems.push(problem(
                Setting::ClientId,
                "must be printable ASCII, at most 255 characters",
            ))
        }
        Some(_) => {}
    }

    match s.client_secret {
        None => problems.push(problem(Setting::ClientSecret, "is not set")),
        Some(secret) if secret.trim().is_empty() => {
            problems.push(problem(Setting::ClientSecret, "is empty"));
        }
        Some(secret) if secret.trim() != secret => problems.push(problem(
            Setting::ClientSecret,
            "has leading or trailing whitespace",
        )),
        Some(_) => {}
    }

    match s.redirect_url {
        None => problems.push(problem(Setting::RedirectUrl, "is not set")),
        Some(raw) => check_redirect_url(raw, &mut problems),
    }

    match Url::parse(s.issuer) {
        Ok(url) if is_https_or_loopback(&url) => {}
        Ok(_) => problems.push(problem(
            Setting::Issuer,
            "must use https (http only on localhost)",
        )),
        Err(_) if s.issuer == "accounts.google.com" => {}
        Err(_) => problems.push(problem(Setting::Issuer, "is not an absolute URL")),
    }
    problems
}

fn check_redirect_url(raw: &str, problems: &mut Vec<Problem>) {
    let bad = |message| problem(Setting::RedirectUrl, message);
    if raw.trim() != raw {
        problems.push(bad("has leading or trailing whitespace"));
        return;
    }
    let Ok(url) = Url::parse(raw) else {
        problems.push(bad("is not an absolute URL"));
        return;
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        problems.push(bad("must be an http(s) URL with a host"));
        return;
    }
    if !is_https_or_loopback(&url) {
        problems.push(bad("must use https (http only for localhost)"));
    }
    if url.scheme() == "https"
        && matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        && !is_loopback_host(&url)
    {
        problems.push(bad("must not be a raw IP address (except localhost)"));
    }
    if raw.contains('#') {
        problems.push(bad("must not contain a fragment"));
    }
    if raw.contains('*') {
        problems.push(bad("must not contain a wildcard"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        problems.push(bad("must not contain user information"));
    }
    if url.path() != CALLBACK_PATH {
        problems.push(bad("path must be exactly /api/login/google/callback"));
    }
    if url.query().is_some() {
        problems.push(bad("must not carry a query"));
    }
}
