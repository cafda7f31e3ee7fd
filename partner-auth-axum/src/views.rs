//! JSON views of sessions and login results.

use partner_auth_core::{Directory, Issued, Session, SessionId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 text of a timestamp.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// A session as the API shows it. `current` marks the caller's own session
/// in listings.
pub fn session_json(session: &Session, directory: &Directory, current: Option<SessionId>) -> Value {
    let partner = directory.partner(&session.partner_id);
    let entitlements = directory.entitlements(&session.roles, &session.partner_id);
    let mut value = json!({
        "id": session.id,
        "user": session.user_id,
        "partner": {
            "id": session.partner_id,
            "display_name": partner.map(|p| p.display_name.as_str()),
            "persona": partner.map(|p| p.persona),
        },
        "roles": session.roles,
        "entitlements": entitlements,
        "auth_mode": session.auth_mode,
        "remember_me": session.remember_me,
        "created_at": rfc3339(session.created_at),
        "last_seen_at": rfc3339(session.last_seen_at),
        "expires_at": rfc3339(session.expires_at),
        "revoked_at": session.revoked_at.map(rfc3339),
        "revoke_reason": session.revoke_reason,
    });
    if let Some(current) = current {
        value["current"] = json!(session.id == current);
    }
    if let Some(actor) = &session.impersonator {
        value["impersonator"] = json!(actor);
    }
    value
}

/// The body of a login or refresh response. The refresh token is included
/// only when the client asked for body delivery.
pub fn issued_json(issued: &Issued, directory: &Directory, refresh_in_body: bool) -> Value {
    let mut body = json!({
        "access_token": issued.access.token,
        "token_type": "Bearer",
        "expires_in": issued.access.expires_in,
        "session": session_json(&issued.session, directory, None),
    });
    if refresh_in_body {
        body["refresh_token"] = json!(issued.refresh.expose_secret());
    }
    body
}
