//! Command-line flags and environment variables.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use partner_auth_core::{SessionConfig, TokenConfig};
use time::Duration;

/// The partner-auth example server.
#[derive(Debug, Parser)]
#[command(
    name = "partner-workspace",
    version,
    about,
    long_about = None,
    after_help = "Secrets and Google settings are read from the environment only:\n  \
        PARTNER_AUTH_VAULT_KEY             vault keys, `id:BASE64[,id:BASE64...]` (first is primary)\n  \
        PARTNER_AUTH_GOOGLE_CLIENT_ID      turns Google sign-in on\n  \
        PARTNER_AUTH_GOOGLE_CLIENT_SECRET  the OAuth client secret\n  \
        PARTNER_AUTH_GOOGLE_REDIRECT_URL   the registered callback URL\n  \
        PARTNER_AUTH_GOOGLE_ISSUER         default https://accounts.google.com\n  \
        PARTNER_AUTH_GOOGLE_HOSTED_DOMAINS comma-separated Workspace domains (`hd`) allowed; empty allows all\n  \
        RUST_LOG                           log filter (default info,tower_http=info,sqlx=warn)"
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Server settings.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Check the Google sign-in settings (`PARTNER_AUTH_GOOGLE_*`) the way
    /// the Google console will; exit code 0 only when all pass.
    CheckGoogle {
        /// Skip the discovery request to the issuer.
        #[arg(long)]
        offline: bool,
    },
    /// Operate the credential vault's keys (same --data-dir and vault key
    /// settings as the server).
    Vault {
        /// What to do.
        #[command(subcommand)]
        action: VaultAction,
    },
    /// Operate the audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
}

/// `partner-workspace vault ...`.
#[derive(Debug, Subcommand)]
pub enum VaultAction {
    /// Key ids, the primary, records per key, retired keys.
    Status,
    /// Move every record and the audit key from older keys to the primary
    /// (resumable and idempotent; audited with channel `cli`).
    Rewrap {
        /// Records moved per step; a progress line is printed after each.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
    },
    /// Retire a key; refused while any record or the audit key refers to it.
    Retire {
        /// The key id, as in PARTNER_AUTH_VAULT_KEY.
        key_id: String,
    },
}

/// `partner-workspace audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the audit chain; exit code 0 when intact, 1 at the first break.
    Verify,
}

/// Every setting of the server.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        env = "PARTNER_AUTH_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: String,

    /// Directory for the SQLite file and the signing keys (created 0700 when
    /// missing; an existing one keeps its mode and is refused when group or
    /// others may write to it).
    #[arg(
        long,
        env = "PARTNER_AUTH_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// `development` or `production`; production refuses the mock login.
    #[arg(
        long,
        env = "PARTNER_AUTH_MODE",
        default_value = "development",
        global = true
    )]
    pub mode: String,

    /// Enable `POST /api/login/mock` (development only).
    #[arg(long, env = "PARTNER_AUTH_MOCK_LOGIN", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub mock_login: bool,

    /// Seed file of partners and users; the four launch partners when omitted.
    #[arg(long, env = "PARTNER_AUTH_SEED", global = true)]
    pub seed: Option<PathBuf>,

    /// Public URL of the server, absolute `http://` or `https://`; an
    /// `https://` URL marks cookies `Secure`.
    #[arg(long, env = "PARTNER_AUTH_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,

    /// How long a request body may take to arrive in full, in seconds, 1 to
    /// 300; a late body gets 408 `request_timeout`.
    #[arg(
        long,
        env = "PARTNER_AUTH_BODY_TIMEOUT_SECONDS",
        default_value_t = partner_auth_axum::body::DEFAULT_BODY_TIMEOUT.as_secs() as u32,
        value_parser = clap::value_parser!(u32).range(1..=300),
        global = true
    )]
    pub body_timeout_seconds: u32,

    /// Access-token lifetime in seconds, 10 to 86400.
    #[arg(
        long,
        env = "PARTNER_AUTH_ACCESS_TTL_SECONDS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u32).range(10..=86_400),
        global = true
    )]
    pub access_ttl_seconds: u32,

    /// How long a just-rotated refresh token still works (racing tabs), 0 to 60.
    #[arg(long, env = "PARTNER_AUTH_REFRESH_GRACE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=60), global = true)]
    pub refresh_grace_seconds: u32,

    /// Absolute session lifetime without remember-me, in hours, 1 to 168.
    #[arg(
        long,
        env = "PARTNER_AUTH_SESSION_HOURS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=168),
        global = true
    )]
    pub session_hours: u32,

    /// Idle timeout in minutes, 1 to 10080: a session not refreshed for this
    /// long ends.
    #[arg(
        long,
        env = "PARTNER_AUTH_IDLE_MINUTES",
        default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=10_080),
        global = true
    )]
    pub idle_minutes: u32,

    /// `iss` of issued access tokens.
    #[arg(
        long,
        env = "PARTNER_AUTH_ISSUER",
        default_value = "partner-auth",
        global = true
    )]
    pub issuer: String,

    /// `aud` of issued access tokens.
    #[arg(
        long,
        env = "PARTNER_AUTH_AUDIENCE",
        default_value = "partner-auth",
        global = true
    )]
    pub audience: String,

    /// File holding the vault's key-encryption keys (same syntax as
    /// `PARTNER_AUTH_VAULT_KEY`, which takes precedence). Without either, a
    /// development key is generated in the data directory; production refuses.
    #[arg(long, env = "PARTNER_AUTH_VAULT_KEY_FILE", global = true)]
    pub vault_key_file: Option<PathBuf>,

    /// Log format: `text` or `json`.
    #[arg(
        long,
        env = "PARTNER_AUTH_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"],
        global = true
    )]
    pub log_format: String,
}

/// `--public-url`: an absolute `http` or `https` URL with a host and no
/// user name, password, query or fragment. Anything else would silently
/// leave cookies without `Secure`.
fn parse_public_url(text: &str) -> Result<String, String> {
    // The URL parser forgives what a typo looks like (surrounding spaces,
    // `https:host`, an empty `@`); a setting that decides `Secure` must not.
    let lower = text.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err("must start with http:// or https://".into());
    }
    if text.trim() != text || text.contains('@') {
        return Err("must not hold spaces or a user part (`@`)".into());
    }
    // With the prefix and no `@` checked, the parser itself refuses an empty
    // host and a user part can not occur.
    let url = url::Url::parse(text).map_err(|e| format!("not an absolute URL: {e}"))?;
    if url.port() == Some(0) {
        return Err("port 0 is not a port a browser can reach".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".into());
    }
    Ok(text.to_owned())
}

impl ServeArgs {
    /// How long a request body may take to arrive.
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.body_timeout_seconds))
    }

    /// Whether the server is reached over https.
    pub fn serves_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }

    /// Token settings from the flags.
    pub fn token_config(&self) -> TokenConfig {
        TokenConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            ttl: Duration::seconds(i64::from(self.access_ttl_seconds)),
            ..TokenConfig::default()
        }
    }

    /// Session settings from the flags.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            grace: Duration::seconds(i64::from(self.refresh_grace_seconds)),
            session_lifetime: Duration::hours(i64::from(self.session_hours)),
            idle_timeout: Duration::minutes(i64::from(self.idle_minutes)),
            ..SessionConfig::default()
        }
    }
}
