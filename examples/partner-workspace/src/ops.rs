//! Operator commands: `vault status`, `vault rewrap`, `vault retire` and
//! `audit verify`.
//!
//! They open the server's SQLite file with the server's settings (the data
//! directory, `PARTNER_AUTH_VAULT_KEY` or the key file) and may run while
//! the server does. `vault status` and `audit verify` only read: they check
//! the keys as the server would and never create, migrate or register
//! anything; a refused `vault retire` writes nothing either. For the
//! writers, SQLite in WAL mode serialises them across processes, and every
//! record is moved with a compare-and-set. Results go to standard
//! output, refusals and errors to standard error. Exit codes: 0 done, 1
//! refused or found broken, 2 could not run.

use std::sync::Arc;

use anyhow::Context;
use partner_auth_core::vault::{
    AuditLog, BreakKind, Channel, KekId, KeyReferences as _, KeyState, MIN_RETENTION_DAYS,
    TracingVaultEvents, VaultError, VaultKeyring, VaultStack, envelope,
};
use partner_auth_core::{Error, RunMode, SystemClock};
use partner_auth_sqlx::{
    SqliteAuditStore, SqliteCredentialStore, SqliteDatabase, SqliteKeyMetaStore,
};

use crate::config::{AuditAction, ServeArgs, VaultAction};

/// Done.
const OK: i32 = 0;
/// Refused, or the audit chain is broken.
const REFUSED: i32 = 1;
/// The command could not run (settings, database, keys).
const FAILED: i32 = 2;

#[expect(clippy::print_stdout, reason = "the command's output")]
fn say(line: &str) {
    println!("{line}");
}

#[expect(clippy::print_stderr, reason = "refusals and errors for the operator")]
fn complain(line: &str) {
    eprintln!("{line}");
}

fn failed(error: &anyhow::Error) -> i32 {
    complain(&format!("error: {error:#}"));
    FAILED
}

async fn open_db(args: &ServeArgs) -> anyhow::Result<SqliteDatabase> {
    let db_path = db_path(args)?;
    SqliteDatabase::open(&db_path)
        .await
        .with_context(|| format!("opening {}", db_path.display()))
}

/// The database for commands that only read: never created or migrated.
async fn open_db_current(args: &ServeArgs) -> anyhow::Result<SqliteDatabase> {
    let db_path = db_path(args)?;
    SqliteDatabase::open_current(&db_path)
        .await
        .with_context(|| {
            format!(
                "opening {} (start the server once with this binary to set it up)",
                db_path.display()
            )
        })
}

fn db_path(args: &ServeArgs) -> anyhow::Result<std::path::PathBuf> {
    let db_path = args.data_dir.join("partner-auth.sqlite3");
    anyhow::ensure!(
        db_path.exists(),
        "no database at {}; check --data-dir",
        db_path.display()
    );
    Ok(db_path)
}

/// Opens the vault exactly as the server does, without starting any task.
async fn open(args: &ServeArgs) -> anyhow::Result<VaultStack> {
    let mode: RunMode = args.mode.parse()?;
    let db = open_db(args).await?;
    let directory = Arc::new(crate::load_directory(args)?);
    let source = crate::vault_key_source(args, mode, crate::DevKey::Generate)?;
    partner_auth_sqlx::vault_stack(
        &db,
        source.as_ref(),
        Arc::new(SystemClock),
        directory,
        Arc::new(TracingVaultEvents),
    )
    .await
    .context("opening the credential vault")
}

/// What `vault status` reads: the configured keys checked against the
/// database exactly as the server checks them, but with nothing written (no
/// key registered, no primary recorded, no audit key created).
struct Inspection {
    db: SqliteDatabase,
    keys: VaultKeyring,
    credentials: SqliteCredentialStore,
}

async fn inspect(args: &ServeArgs) -> anyhow::Result<Inspection> {
    let mode: RunMode = args.mode.parse()?;
    let db = open_db_current(args).await?;
    let source = crate::vault_key_source(args, mode, crate::DevKey::ExistingOnly)?;
    let material = source.load().await.context("loading the vault keys")?;
    let keys = VaultKeyring::inspect(
        material,
        Arc::new(SqliteKeyMetaStore::new(&db)),
        Arc::new(SystemClock),
    )
    .await
    .context("checking the vault keys")?;
    Ok(Inspection {
        credentials: SqliteCredentialStore::new(&db),
        db,
        keys,
    })
}

/// The KEK the wrapped audit key is under, if one was created.
async fn audit_key_kek(keys: &VaultKeyring) -> anyhow::Result<Option<KekId>> {
    let wrapped = keys.meta().wrapped_audit_key().await?;
    Ok(wrapped.map(|w| envelope::system_key_kek(&w)).transpose()?)
}

/// Runs `partner-workspace vault ACTION`; returns the exit code.
pub async fn run_vault(args: &ServeArgs, action: VaultAction) -> i32 {
    let result = match action {
        VaultAction::Status => status(args).await,
        VaultAction::Rewrap { batch } => match open(args).await {
            Ok(stack) => rewrap(&stack, batch).await,
            Err(e) => Err(e),
        },
        VaultAction::Retire { key_id } => match refuse_retire(args, &key_id).await {
            Ok(Some(refusal)) => {
                complain(&refusal);
                Ok(REFUSED)
            }
            Ok(None) => match open(args).await {
                Ok(stack) => retire(&stack, &key_id).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| failed(&e))
}

/// Runs `partner-workspace audit ACTION`; returns the exit code.
pub async fn run_audit(args: &ServeArgs, action: AuditAction) -> i32 {
    match action {
        AuditAction::Verify => verify(args).await.unwrap_or_else(|e| failed(&e)),
    }
}

async fn status(args: &ServeArgs) -> anyhow::Result<i32> {
    let inspection = inspect(args).await?;
    let keys = &inspection.keys;
    let listed_first = keys.primary_id();
    let loaded = keys.key_ids();
    let audit_kek = audit_key_kek(keys).await?;
    let stored = keys.meta().list().await?;
    // The primary is what the database records (what the running servers
    // seal with), not what this command's key list would make it.
    let primary = stored
        .iter()
        .find(|m| m.state == KeyState::Primary)
        .map(|m| m.id.clone());
    match &primary {
        Some(p) => say(&format!("primary key: {p}")),
        None => say("primary key: none recorded"),
    }
    if primary.as_ref() != Some(&listed_first) {
        say(&format!(
            "key list starts with {listed_first}: it becomes the primary when the server \
             starts with this list"
        ));
    }
    for meta in stored {
        let records = inspection.credentials.count_for_kek(&meta.id).await?;
        let mut notes = String::new();
        if audit_kek.as_ref() == Some(&meta.id) {
            notes.push_str(", holds the audit key");
        }
        if !loaded.contains(&meta.id) {
            notes.push_str(", not loaded");
        }
        if meta.check.is_none() {
            notes.push_str(", no check value yet");
        }
        say(&format!(
            "key {}: {}, {} records, {} wraps reserved{notes}",
            meta.id,
            meta.state.as_str(),
            records,
            meta.wraps
        ));
    }
    Ok(OK)
}

async fn rewrap(stack: &VaultStack, batch: u64) -> anyhow::Result<i32> {
    let primary = stack.keys.primary_id();
    let loaded = stack.keys.key_ids();
    let mut code = OK;
    let mut moved_any = false;

    for meta in stack.keys.meta().list().await? {
        let from = meta.id;
        if from == primary {
            continue;
        }
        let records = stack.stores.credentials.count_for_kek(&from).await?;
        let holds_audit_key = audit_key_kek(&stack.keys).await?.as_ref() == Some(&from);
        if records == 0 && !holds_audit_key {
            continue;
        }
        if !loaded.contains(&from) {
            complain(&format!(
                "key {from} is not loaded but {records} records refer to it; add it to the \
                 key list (after the primary) and run the rewrap again"
            ));
            code = REFUSED;
            continue;
        }
        moved_any = true;

        let (mut rewrapped, mut skipped) = (0, 0);
        loop {
            let before = audit_key_kek(&stack.keys).await?;
            let report = stack
                .rewrap_bounded(
                    &from,
                    Channel::Cli,
                    usize::try_from(batch).unwrap_or(usize::MAX),
                    Some(batch),
                )
                .await?;
            let after = audit_key_kek(&stack.keys).await?;
            rewrapped += report.rewrapped;
            skipped += report.skipped;
            say(&format!(
                "rewrap {from} -> {primary}: {rewrapped} rewrapped, {skipped} already moved, \
                 {} failed, {} remaining",
                report.failed, report.remaining
            ));
            if report.remaining == 0 && after.as_ref() != Some(&from) {
                say(&format!("key {from}: every record and the audit key moved"));
                break;
            }
            // Only rows that do not open are left: going on would loop.
            if report.rewrapped + report.skipped == 0 && before == after {
                complain(&format!(
                    "key {from}: {} records do not open with it and were left as they are",
                    report.remaining
                ));
                code = REFUSED;
                break;
            }
        }
    }
    if !moved_any && code == OK {
        say(&format!("nothing to rewrap: every record is on {primary}"));
    }
    Ok(code)
}

/// Why retiring `key_id` is refused, decided by the keyring's own check on
/// the inspected keys, so that a refused retire leaves the database (keys
/// and audit log) as it was; `None` when it may go ahead.
async fn refuse_retire(args: &ServeArgs, key_id: &str) -> anyhow::Result<Option<String>> {
    let Ok(id) = KekId::new(key_id) else {
        return Ok(Some(format!("refused: {key_id:?} is not a key id")));
    };
    let inspection = inspect(args).await?;
    match inspection
        .keys
        .check_retire(&id, &[&inspection.credentials])
        .await
    {
        Ok(()) => Ok(None),
        Err(e) => Ok(Some(retire_refusal(&id, e)?)),
    }
}

/// The line for a refused retirement; an error that is no refusal is
/// passed on.
fn retire_refusal(id: &KekId, error: Error) -> anyhow::Result<String> {
    Ok(match error {
        Error::Vault(VaultError::KeyInUse { references, .. }) => format!(
            "refused: key {id} is still referenced by {references} records (the audit key \
             counts as one); run `partner-workspace vault rewrap` first"
        ),
        Error::Vault(VaultError::RetirePrimary) => {
            format!("refused: key {id} is the primary; promote another key first")
        }
        Error::Vault(VaultError::UnknownKey) => {
            format!("refused: this vault has never seen a key {id}")
        }
        other => return Err(other.into()),
    })
}

async fn retire(stack: &VaultStack, key_id: &str) -> anyhow::Result<i32> {
    let Ok(id) = KekId::new(key_id) else {
        complain(&format!("refused: {key_id:?} is not a key id"));
        return Ok(REFUSED);
    };
    match stack.retire_key(&id, Channel::Cli).await {
        Ok(()) => {
            say(&format!(
                "key {id} retired; remove it from the key list; it will never be used again"
            ));
            Ok(OK)
        }
        Err(e) => {
            complain(&retire_refusal(&id, e)?);
            Ok(REFUSED)
        }
    }
}

/// Walks the audit chain with the keys checked read-only: the audit key is
/// unwrapped, never created, and nothing is registered.
async fn verify(args: &ServeArgs) -> anyhow::Result<i32> {
    let inspection = inspect(args).await?;
    let keys = &inspection.keys;
    anyhow::ensure!(
        keys.meta().wrapped_audit_key().await?.is_some(),
        "no audit key is recorded: the server has not written an audit entry yet"
    );
    // With a wrapped key present, `audit_key` only unwraps it.
    let key = keys.audit_key().await?;
    let log = AuditLog::new(
        Arc::new(SqliteAuditStore::new(&inspection.db)),
        key,
        Arc::new(SystemClock),
        MIN_RETENTION_DAYS,
    )?;
    let report = log.verify().await?;
    let Some(broken) = report.first_broken else {
        say(&format!(
            "audit chain ok: {} entries checked",
            report.checked
        ));
        return Ok(OK);
    };
    let why = match broken.kind {
        BreakKind::Missing => "missing",
        BreakKind::Altered => "altered",
        BreakKind::Linkage => "linkage",
        BreakKind::UnknownKey => "unknown key",
        BreakKind::Anchor => "anchor altered",
    };
    say(&format!(
        "audit chain broken at sequence {} ({why}); {} entries before it are intact",
        broken.seq, report.checked
    ));
    Ok(REFUSED)
}
