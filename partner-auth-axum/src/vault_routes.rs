//! Credential and audit routes.
//!
//! | route | entitlement | does |
//! | --- | --- | --- |
//! | `GET /api/credentials` | `view_credentials` | metadata of the partner's credentials |
//! | `POST /api/credentials` | `manage_credentials` | seals and stores a new credential |
//! | `POST /api/credentials/{id}/rotate` | `manage_credentials` | replaces the secret |
//! | `POST /api/credentials/{id}/reveal` | `reveal_credentials` | returns the secret, audited |
//! | `DELETE /api/credentials/{id}` | `manage_credentials` | revokes it and erases the secret |
//! | `GET /api/audit?from&to&before&limit` | `view_audit` | the partner's audit entries, newest first |
//! | `GET /api/audit/export?from&to&format=jsonl\|csv` | `export_audit` | the partner's entries as a file |
//!
//! Every query is scoped to the caller's partner: another partner's
//! credential id answers 404 `not_found`, exactly like an id that does not
//! exist. A credential owned by another user is revealed, rotated or
//! revoked only by a caller holding `admin` in the partner or
//! `super_admin` (403 `forbidden` otherwise, audited as `denied`). Responses carrying a
//! secret are marked `Cache-Control: no-store`. Request bodies may be up to
//! [`MAX_CREDENTIAL_BODY_BYTES`], enough for the longest secret in JSON.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use partner_auth_core::vault::service::actions;
use partner_auth_core::vault::{
    AuditContext, AuditEvent, AuditFilter, AuditLog, Channel, CredentialKind, CredentialService,
    ExportFormat, NewCredential, Outcome, RevealScope,
};
use partner_auth_core::{CredentialId, Entitlement, Error, SessionManager};
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ApiError;
use crate::body::{JsonBody, MAX_CREDENTIAL_BODY_BYTES};
use crate::extract::{Caller, CredentialSource, PathParam};

/// What the vault routes need.
#[derive(Clone)]
pub struct VaultState {
    /// Authenticates callers.
    pub sessions: Arc<SessionManager>,
    /// Credentials.
    pub credentials: Arc<CredentialService>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
}

impl std::fmt::Debug for VaultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultState").finish_non_exhaustive()
    }
}

impl FromRef<VaultState> for Arc<SessionManager> {
    fn from_ref(state: &VaultState) -> Self {
        state.sessions.clone()
    }
}

/// The credential and audit routes, with their state.
pub fn router(state: VaultState) -> Router {
    Router::new()
        .route("/api/credentials", get(list).post(create))
        .route("/api/credentials/{id}", axum::routing::delete(revoke))
        .route("/api/credentials/{id}/rotate", post(rotate))
        .route("/api/credentials/{id}/reveal", post(reveal))
        .route("/api/audit", get(audit))
        .route("/api/audit/export", get(export))
        // Overrides the app-wide 64 KiB limit: a secret of the longest
        // allowed length must fit, JSON escaping included.
        .layer(DefaultBodyLimit::max(MAX_CREDENTIAL_BODY_BYTES))
        .with_state(state)
}

/// The HTTP form of an error from the vault routes; the mapping itself lives
/// with every other error mapping in [`crate::error`].
pub fn vault_error(error: Error) -> ApiError {
    if let Error::Store(cause) = &error {
        // The shared mapping speaks of the session store; here it is the
        // credential or audit store that failed.
        tracing::error!(error = %cause, "vault store failed");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the credential vault or audit store is unavailable",
        );
    }
    ApiError::from(error)
}

/// Checks an entitlement; a refusal is written to the audit log (outcome
/// `denied`) before the 403 goes out.
async fn guard(
    state: &VaultState,
    caller: &Caller,
    entitlement: Entitlement,
    action: &str,
    id: Option<&str>,
) -> Result<(), ApiError> {
    let Err(refused) = caller.require_entitlement(entitlement) else {
        return Ok(());
    };
    // Only a well-formed id is named: raw path text (bidi overrides, formula
    // text) never reaches the audit log or its CSV export.
    let target = id.map(|raw| match raw.parse::<CredentialId>() {
        Ok(id) => format!("credential:{id}"),
        Err(_) => "credential:invalid".to_owned(),
    });
    let event = AuditEvent::new(&context(caller), action, target, Outcome::Denied)
        .with_detail(format!("missing_entitlement={}", entitlement.as_str()));
    if let Err(e) = state.audit.append(event).await {
        tracing::warn!(error = %e, "denied request not audited");
    }
    Err(refused)
}

fn context(caller: &Caller) -> AuditContext {
    let channel = match caller.source {
        CredentialSource::Bearer => Channel::Api,
        CredentialSource::Cookie => Channel::Web,
    };
    AuditContext::from_principal(caller.principal(), channel)
}

/// Another user's credential (a colleague's OAuth refresh token, say) is
/// revealed, rotated or revoked only by those who administer the partner.
fn scope(caller: &Caller) -> RevealScope {
    if caller.can_administer(caller.partner()) {
        RevealScope::Partner
    } else {
        RevealScope::Own
    }
}

fn parse_id(raw: &str) -> Result<CredentialId, ApiError> {
    // A malformed id is as unknown as a foreign one.
    raw.parse().map_err(|_| ApiError::not_found())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn list(State(state): State<VaultState>, caller: Caller) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::ViewCredentials,
        actions::LIST,
        None,
    )
    .await?;
    let items = state
        .credentials
        .list(&context(&caller))
        .await
        .map_err(vault_error)?;
    Ok(Json(json!({ "credentials": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    // Parsed after the guard, so that an unknown kind gets its own code.
    kind: String,
    label: String,
    #[serde(default)]
    broker: Option<String>,
    secret: SecretString,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

async fn create(
    State(state): State<VaultState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::ManageCredentials,
        actions::CREATE,
        None,
    )
    .await?;
    let kind: CredentialKind = body.kind.parse().map_err(|_| {
        let kinds: Vec<_> = CredentialKind::ALL.map(CredentialKind::as_str).into();
        ApiError::bad_request(
            "invalid_kind",
            format!("kind must be one of {}", kinds.join(", ")),
        )
    })?;
    let new = NewCredential {
        kind,
        owner: None,
        label: body.label,
        broker: body.broker,
        reference: None,
        expires_at: body.expires_at,
        secret: SecretSlice::from(body.secret.expose_secret().as_bytes().to_vec()),
    };
    let meta = state
        .credentials
        .create(&context(&caller), new)
        .await
        .map_err(vault_error)?;
    Ok((StatusCode::CREATED, Json(meta)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    secret: SecretString,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

async fn rotate(
    State(state): State<VaultState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<RotateBody>,
) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::ManageCredentials,
        actions::ROTATE,
        Some(id.as_str()),
    )
    .await?;
    let id = parse_id(&id)?;
    let secret = SecretSlice::from(body.secret.expose_secret().as_bytes().to_vec());
    let meta = state
        .credentials
        .rotate_scoped(
            &context(&caller),
            id,
            secret,
            body.expires_at,
            scope(&caller),
        )
        .await
        .map_err(vault_error)?;
    Ok(Json(meta).into_response())
}

async fn reveal(
    State(state): State<VaultState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::RevealCredentials,
        actions::REVEAL,
        Some(id.as_str()),
    )
    .await?;
    let id = parse_id(&id)?;
    let secret = state
        .credentials
        .reveal_scoped(&context(&caller), id, scope(&caller))
        .await
        .map_err(vault_error)?;
    let bytes = secret.expose_secret();
    let body = match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "id": id, "encoding": "utf8", "secret": text }),
        Err(_) => json!({
            "id": id,
            "encoding": "base64",
            "secret": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    };
    Ok(no_store(Json(body).into_response()))
}

async fn revoke(
    State(state): State<VaultState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::ManageCredentials,
        actions::REVOKE,
        Some(id.as_str()),
    )
    .await?;
    let id = parse_id(&id)?;
    let meta = state
        .credentials
        .revoke_scoped(&context(&caller), id, scope(&caller))
        .await
        .map_err(vault_error)?;
    Ok(Json(meta).into_response())
}

/// Page size of `GET /api/audit` when `limit` is not given.
const DEFAULT_AUDIT_LIMIT: usize = 100;
/// Largest page `GET /api/audit` returns; a larger `limit` is refused.
const MAX_AUDIT_LIMIT: usize = 1000;

// Each route takes only its own parameters: one it does not use is refused
// rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

fn parse_time(value: Option<&str>, name: &'static str) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time"))
            })
        })
        .transpose()
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|_| ApiError::bad_request("invalid_query", "unknown or malformed query parameter"))
}

async fn audit(
    State(state): State<VaultState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    guard(&state, &caller, Entitlement::ViewAudit, "audit.view", None).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_AUDIT_LIMIT}"),
        ));
    }
    let filter = AuditFilter {
        from: parse_time(q.from.as_deref(), "from")?,
        to: parse_time(q.to.as_deref(), "to")?,
        cursor: q.before,
        limit,
        newest_first: true,
    };
    let entries = state
        .audit
        .list(caller.partner(), &filter)
        .await
        .map_err(vault_error)?;
    let next = (entries.len() == filter.limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_before": next })).into_response())
}

async fn export(
    State(state): State<VaultState>,
    caller: Caller,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    guard(
        &state,
        &caller,
        Entitlement::ExportAudit,
        "audit.export",
        None,
    )
    .await?;
    let q = query(q)?;
    let (format, content_type, ext) = match q.format.as_deref() {
        Some("jsonl") | None => (ExportFormat::Jsonl, "application/x-ndjson", "jsonl"),
        Some("csv") => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "format must be jsonl or csv",
            ));
        }
    };
    let from = parse_time(q.from.as_deref(), "from")?;
    let to = parse_time(q.to.as_deref(), "to")?;
    let body = state
        .audit
        .export(caller.partner(), from, to, format)
        .await
        .map_err(vault_error)?;
    // Who took a copy of the log is itself worth a line in it.
    let event = AuditEvent::new(&context(&caller), "audit.export", None, Outcome::Success)
        .with_detail(format!("format={ext}"));
    state.audit.append(event).await.map_err(vault_error)?;
    let disposition = format!("attachment; filename=\"audit-{}.{ext}\"", caller.partner());
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(no_store(response))
}
