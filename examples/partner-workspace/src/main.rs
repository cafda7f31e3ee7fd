//! # partner-workspace
//!
//! The runnable partner-auth server: sessions in a SQLite file under the data
//! directory, the four launch partners seeded, mock login on in development,
//! signing keys created on first run and kept in the data directory with
//! owner-only permissions.
//!
//! ```text
//! cargo run -p partner-workspace -- --listen 127.0.0.1:8080 --data-dir ./data
//! ```
//!
//! Every setting has a command-line flag and an environment variable; run
//! with `--help` for the list. Besides serving, the binary runs the
//! operator commands `vault status`, `vault rewrap [--batch N]`,
//! `vault retire KEY_ID` and `audit verify` on the same data directory and
//! keys (see `ops.rs` and the README's "Rotating the vault key"). Logs go to
//! standard error through `tracing` (`RUST_LOG` overrides the default filter); the one line on standard output
//! is `listening on http://ADDR`, printed once the socket is bound, so that
//! scripts and tests can start the server on port 0 and find it. `GET
//! /metrics` serves the library's counters in the Prometheus text format
//! (see `docs/metrics.md`).

mod config;
mod google;
mod ops;
mod scrape;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use partner_auth_axum::serve::with_body_timeout;
use partner_auth_axum::vault_routes::{self, VaultState};
use partner_auth_axum::{AuthState, CookieSettings, app, routes, serve};
use partner_auth_core::vault::{
    DevKeySource, EnvKeySource, FileKeySource, KeySource, RetryConfig, TracingVaultEvents,
};
use partner_auth_core::{
    AuthProvider, Directory, EventFanout, KeyRing, RunMode, SessionManager, SystemClock,
    TokenIssuer, TracingEvents,
};
use partner_auth_sqlx::{SqliteDatabase, SqliteIdentityStore, SqliteSessionStore};
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServeArgs};

/// How often credential rotation is checked and the audit retention purge runs.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Security events waiting to be written to the audit log.
const AUDIT_QUEUE: usize = 1024;

/// Filter used when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info,tower_http=info,sqlx=warn";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.serve.log_format);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(run(cli.serve)),
        Command::CheckGoogle { offline } => {
            std::process::exit(runtime.block_on(google::run_check_google(offline)))
        }
        Command::Vault { action } => {
            std::process::exit(runtime.block_on(ops::run_vault(&cli.serve, action)))
        }
        Command::Audit { action } => {
            std::process::exit(runtime.block_on(ops::run_audit(&cli.serve, action)))
        }
    }
}

fn init_logging(format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mode: RunMode = args.mode.parse()?;
    // Installed first, so that every counter from start-up on is exported.
    let metrics = scrape::install().context("installing the metrics recorder")?;
    let data_dir = &args.data_dir;
    // An existing directory keeps its mode (it may be `.` or `$HOME`); the
    // files written inside are owner-only either way.
    let access = partner_auth_core::keys::create_private_dir(data_dir)
        .with_context(|| format!("data directory {}", data_dir.display()))?;
    if access == partner_auth_core::keys::DirAccess::ReadableByOthers {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "data directory is readable by group or others; its files stay owner-only, \
             but consider `chmod go-rwx` on it"
        );
    }

    let directory = Arc::new(load_directory(&args)?);

    // Refused settings fail before anything is opened or generated.
    let mock = mock_provider(&args, directory.clone(), mode)?;

    let db_path = data_dir.join("partner-auth.sqlite3");
    let db = SqliteDatabase::open(&db_path)
        .await
        .with_context(|| format!("opening {}", db_path.display()))?;
    let store = Arc::new(SqliteSessionStore::new(&db));

    let clock = Arc::new(SystemClock);

    // The vault comes before the sessions: its audit log receives their events.
    let key_source = vault_key_source(&args, mode, DevKey::Generate)?;
    let vault = partner_auth_sqlx::vault_stack(
        &db,
        key_source.as_ref(),
        clock.clone(),
        directory.clone(),
        Arc::new(TracingVaultEvents),
    )
    .await
    .context("opening the credential vault")?;
    let _maintenance = vault.spawn_maintenance(MAINTENANCE_EVERY);

    let ring = KeyRing::load_or_create(&data_dir.join("signing-keys"))?;
    let issuer = Arc::new(TokenIssuer::new(ring, args.token_config(), clock.clone())?);
    let events = Arc::new(
        EventFanout::new()
            .with(Arc::new(TracingEvents))
            .with(vault.audit_events(AUDIT_QUEUE)),
    );
    let sessions = Arc::new(SessionManager::new(
        store,
        issuer,
        directory.clone(),
        clock,
        events,
        args.session_config(),
    )?);

    let cookies = CookieSettings {
        secure: args.serves_https(),
    };
    // Google sign-in is on when PARTNER_AUTH_GOOGLE_CLIENT_ID is set. Google's
    // refresh tokens are sealed in the vault; a failed write never fails the
    // login, it is retried from a bounded queue.
    let google = google::router_from_env(
        sessions.clone(),
        Arc::new(SqliteIdentityStore::new(&db)),
        vault.login_vault(RetryConfig::default()),
        cookies,
    )
    .await?;
    let vault_router = vault_routes::router(VaultState {
        sessions: sessions.clone(),
        credentials: vault.credentials.clone(),
        audit: vault.audit.clone(),
    });
    let state = AuthState {
        sessions,
        mock,
        cookies,
    };
    let router = with_body_timeout(
        app(
            [routes::router(state), vault_router, scrape::router(metrics)]
                .into_iter()
                .chain(google),
        ),
        args.body_timeout(),
    );

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?mode, data_dir = %data_dir.display(), partners = directory.partners().count(), "partner-workspace started");
    announce(addr);

    serve(listener, router, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The partners and users: `--seed`, or the four launch partners.
fn load_directory(args: &ServeArgs) -> anyhow::Result<Directory> {
    Ok(match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading seed file {}", path.display()))?;
            Directory::from_json(&text)?
        }
        None => Directory::launch()?,
    })
}

/// Whether the development key file may be generated when it is missing:
/// by the server and the writing commands, never by a command that reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DevKey {
    Generate,
    ExistingOnly,
}

/// Where the vault's key-encryption keys come from: `PARTNER_AUTH_VAULT_KEY`,
/// else `--vault-key-file`, else (development only) the key file in the data
/// directory, generated on first use when `dev_key` allows.
fn vault_key_source(
    args: &ServeArgs,
    mode: RunMode,
    dev_key: DevKey,
) -> anyhow::Result<Box<dyn KeySource>> {
    let env = EnvKeySource::from_env();
    if env.is_set() {
        return Ok(Box::new(env));
    }
    if let Some(path) = &args.vault_key_file {
        return Ok(Box::new(FileKeySource::new(path)));
    }
    anyhow::ensure!(
        mode != RunMode::Production,
        "production mode needs PARTNER_AUTH_VAULT_KEY or PARTNER_AUTH_VAULT_KEY_FILE"
    );
    let path = args.data_dir.join("vault-dev.key");
    anyhow::ensure!(
        dev_key == DevKey::Generate || path.exists(),
        "no vault key: set PARTNER_AUTH_VAULT_KEY or --vault-key-file (there is no {} \
         either)",
        path.display()
    );
    Ok(Box::new(DevKeySource::new(path)))
}

#[expect(
    clippy::print_stdout,
    reason = "the ready line is the program's output"
)]
fn announce(addr: std::net::SocketAddr) {
    println!("listening on http://{addr}");
}

#[cfg(feature = "dev-mock")]
fn mock_provider(
    args: &ServeArgs,
    directory: Arc<Directory>,
    mode: RunMode,
) -> anyhow::Result<Option<Arc<dyn AuthProvider>>> {
    if !args.mock_login {
        return Ok(None);
    }
    let mock = partner_auth_core::MockProvider::new(directory, mode)
        .context("mock login is refused in production mode; set PARTNER_AUTH_MOCK_LOGIN=false")?;
    Ok(Some(Arc::new(mock)))
}

#[cfg(not(feature = "dev-mock"))]
fn mock_provider(
    args: &ServeArgs,
    _directory: Arc<Directory>,
    _mode: RunMode,
) -> anyhow::Result<Option<Arc<dyn AuthProvider>>> {
    anyhow::ensure!(
        !args.mock_login,
        "built without the dev-mock feature; mock login is unavailable"
    );
    Ok(None)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
