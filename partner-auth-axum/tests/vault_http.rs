//! The credential and audit routes, driven with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use partner_auth_axum::vault_routes::{VaultState, router};
use partner_auth_core::vault::{
    Kek, KekId, KeySource, RecordedVaultEvents, VaultError, VaultStack, VaultStores,
};
use partner_auth_core::{
    AuthMode, Directory, EventFanout, KeyRing, MemorySessionStore, SessionConfig, SessionManager,
    SystemClock, TokenConfig, TokenIssuer,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use zeroize::Zeroizing;

struct TestKey;

#[async_trait::async_trait]
impl KeySource for TestKey {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        Ok(vec![Kek::new(KekId::new("k1")?, Zeroizing::new([8; 32]))])
    }

    fn describe(&self) -> String {
        "test key".into()
    }
}

struct App {
    router: Router,
    audit: Arc<partner_auth_core::vault::AuditLog>,
    sink: Arc<partner_auth_core::vault::AuditEvents>,
    sessions: Arc<SessionManager>,
    directory: Arc<Directory>,
}

async fn app() -> App {
    app_with(Directory::launch().unwrap()).await
}

async fn app_with(directory: Directory) -> App {
    app_on(directory, VaultStores::memory()).await
}

async fn app_on(directory: Directory, stores: VaultStores) -> App {
    let clock = Arc::new(SystemClock);
    let directory = Arc::new(directory);
    let stack = VaultStack::build(
        stores,
        &TestKey,
        clock.clone(),
        directory.clone(),
        Arc::new(RecordedVaultEvents::default()),
    )
    .await
    .unwrap();
    let sink = stack.audit_events(64);
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        clock.clone(),
    )
    .unwrap();
    let sessions = Arc::new(
        SessionManager::new(
            Arc::new(MemorySessionStore::new()),
            Arc::new(issuer),
            directory.clone(),
            clock,
            Arc::new(EventFanout::new().with(sink.clone())),
            SessionConfig::default(),
        )
        .unwrap(),
    );
    let state = VaultState {
        sessions: sessions.clone(),
        credentials: stack.credentials.clone(),
        audit: stack.audit.clone(),
    };
    App {
        router: partner_auth_axum::app([router(state)]),
        audit: stack.audit.clone(),
        sink,
        sessions,
        directory,
    }
}

impl App {
    async fn token(&self, user: &str) -> String {
        let user = self.directory.find_user(user).unwrap();
        self.sessions
            .login(user, AuthMode::Mock, false)
            .await
            .unwrap()
            .access
            .token
            .clone()
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let (status, bytes, headers) = self.raw(token, method, uri, body).await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, headers)
    }

    async fn raw(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec();
        (status, bytes, headers)
    }
}

fn new_key(secret: &str) -> Value {
    json!({"kind": "api_key", "label": "Zerodha main", "broker": "zerodha", "secret": secret})
}

#[tokio::test]
async fn credential_lifecycle_over_http() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;

    let (status, made, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(new_key("kite-secret-1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(made["kind"], "api_key");
    assert_eq!(made["generation"], 0);
    assert!(!made.to_string().contains("kite-secret"));
    let id = made["id"].as_str().unwrap().to_owned();

    let (status, listed, _) = app
        .call(Some(&nikhil), "GET", "/api/credentials", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["credentials"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains("kite-secret"));

    let (status, shown, headers) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/reveal"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["secret"], "kite-secret-1");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    let (status, rotated, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/rotate"),
            Some(json!({"secret": "kite-secret-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rotated["generation"], 1);
    let (_, shown, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/reveal"),
            None,
        )
        .await;
    assert_eq!(shown["secret"], "kite-secret-2");

    let (status, revoked, _) = app
        .call(
            Some(&nikhil),
            "DELETE",
            &format!("/api/credentials/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["status"], "revoked");
    let (status, body, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/reveal"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("credential_revoked"))
    );

    let (status, audit, _) = app
        .call(Some(&nikhil), "GET", "/api/audit?limit=50", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..7],
        [
            "credential.reveal",
            "credential.revoke",
            "credential.reveal",
            "credential.rotate",
            "credential.reveal",
            "credential.list",
            "credential.create",
        ]
    );
    assert!(audit["entries"].as_array().unwrap().iter().all(|e| e["channel"] == "api" || e["action"].as_str().unwrap().starts_with("session.")));
    assert!(!audit.to_string().contains("kite-secret"));
}

#[tokio::test]
async fn undecodable_credential_ids_are_json_400s() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    for (method, uri, body) in [
        (
            "POST",
            "/api/credentials/%FF/rotate",
            Some(json!({"secret": "s3cret-value"})),
        ),
        ("POST", "/api/credentials/%FF%FE/reveal", None),
        ("DELETE", "/api/credentials/%C3%28", None),
    ] {
        let (status, body, headers) = app.call(Some(&nikhil), method, uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
        assert_eq!(body["error"], "invalid_path", "{method} {uri}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }
}

#[tokio::test]
async fn cross_partner_request_is_404_and_leaks_nothing() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    let nitin = app.token("nitin").await;
    let (_, made, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(new_key("nikhil-only-secret")),
        )
        .await;
    let id = made["id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();

    for (method, path, body) in [
        ("POST", "reveal", None),
        ("POST", "rotate", Some(json!({"secret": "overwrite"}))),
        ("DELETE", "", None),
    ] {
        let uri = |id: &str| {
            if path.is_empty() {
                format!("/api/credentials/{id}")
            } else {
                format!("/api/credentials/{id}/{path}")
            }
        };
        let foreign = app.raw(Some(&nitin), method, &uri(id), body.clone()).await;
        let missing = app
            .raw(Some(&nitin), method, &uri(&unknown), body.clone())
            .await;
        assert_eq!(foreign.0, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            foreign.1, missing.1,
            "a foreign id answers exactly like an unknown one"
        );
        let text = String::from_utf8_lossy(&foreign.1);
        assert!(
            !text.contains("nikhil") && !text.contains("Zerodha"),
            "{text}"
        );
    }
    let (_, listed, _) = app
        .call(Some(&nitin), "GET", "/api/credentials", None)
        .await;
    assert_eq!(listed["credentials"], json!([]));
    let (_, audit, _) = app.call(Some(&nitin), "GET", "/api/audit", None).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["partner"] == "nitin")
    );
    let (_, export, _) = app
        .raw(Some(&nitin), "GET", "/api/audit/export?format=csv", None)
        .await;
    assert!(!String::from_utf8_lossy(&export).contains("nikhil"));

    // The owner still has it, untouched.
    let (_, shown, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/reveal"),
            None,
        )
        .await;
    assert_eq!(shown["secret"], "nikhil-only-secret");
    let (status, _, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials/not-a-uuid/reveal",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn routes_are_guarded_by_entitlements() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    let mukesh = app.token("mukesh").await;
    let raja = app.token("raja").await;
    let (_, made, _) = app
        .call(
            Some(&mukesh),
            "POST",
            "/api/credentials",
            Some(new_key("mukesh-secret")),
        )
        .await;
    let id = made["id"].as_str().unwrap();

    let cases = [
        (
            &mukesh,
            "POST",
            format!("/api/credentials/{id}/reveal"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &mukesh,
            "GET",
            "/api/audit".to_owned(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &raja,
            "POST",
            "/api/credentials".to_owned(),
            Some(new_key("x")),
            StatusCode::FORBIDDEN,
        ),
        (
            &raja,
            "GET",
            "/api/credentials".to_owned(),
            None,
            StatusCode::OK,
        ),
        (&raja, "GET", "/api/audit".to_owned(), None, StatusCode::OK),
        (
            &raja,
            "GET",
            "/api/audit/export".to_owned(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &nikhil,
            "GET",
            "/api/audit/export?format=xml".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            &nikhil,
            "GET",
            "/api/audit?from=yesterday".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            &nikhil,
            "GET",
            "/api/audit?bogus=1".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            &nikhil,
            "POST",
            "/api/credentials".to_owned(),
            Some(json!({"kind": "api_key", "label": "", "secret": "s"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            &nikhil,
            "POST",
            "/api/credentials".to_owned(),
            Some(json!({"kind": "password", "label": "l", "secret": "s"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, method, uri, body, expected) in cases {
        let (status, value, _) = app.call(Some(token), method, &uri, body).await;
        assert_eq!(status, expected, "{method} {uri}: {value}");
        if !status.is_success() {
            assert!(value["error"].is_string(), "{value}");
        }
    }
    let (status, _, _) = app.call(None, "GET", "/api/credentials", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Refusals are audited under the caller's partner.
    let mukesh_log = app
        .audit
        .list(
            &partner_auth_core::PartnerId::new("mukesh").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let denied: Vec<_> = mukesh_log
        .iter()
        .filter(|e| e.outcome == partner_auth_core::vault::Outcome::Denied)
        .map(|e| (e.action.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(
        denied,
        [
            (
                "credential.reveal",
                Some("missing_entitlement=reveal_credentials")
            ),
            ("audit.view", Some("missing_entitlement=view_audit")),
        ]
    );
}

#[tokio::test]
async fn audit_export_as_jsonl_and_csv() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    app.call(
        Some(&nikhil),
        "POST",
        "/api/credentials",
        Some(new_key("export-secret")),
    )
    .await;
    app.sink.flush().await;

    let (status, body, headers) = app
        .raw(Some(&nikhil), "GET", "/api/audit/export?format=jsonl", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["action"] == "credential.create"));
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "session.login_succeeded"),
        "logins are audited"
    );
    assert!(!text.contains("export-secret"));

    let (status, body, headers) = app
        .raw(
            Some(&nikhil),
            "GET",
            "/api/audit/export?format=csv&from=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = String::from_utf8(body).unwrap();
    assert!(csv.starts_with("seq,at,partner,actor"));
    assert!(csv.contains("credential.create"));

    let (_, body, _) = app
        .raw(
            Some(&nikhil),
            "GET",
            "/api/audit/export?format=csv&to=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(
        String::from_utf8(body).unwrap().lines().count(),
        1,
        "header only"
    );
}

#[tokio::test]
async fn credential_bodies_carry_the_longest_secret() {
    use partner_auth_axum::body::MAX_CREDENTIAL_BODY_BYTES;
    use partner_auth_core::vault::envelope::MAX_SECRET_LEN;

    let app = app().await;
    let nikhil = app.token("nikhil").await;
    let create = |secret: String| json!({"kind": "broker_token", "label": "max", "secret": secret});

    // The longest secret, in plain ASCII and in the costliest JSON spelling
    // (six bytes per secret byte), both beyond the app-wide 64 KiB.
    let plain = "a".repeat(MAX_SECRET_LEN);
    let (status, made, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(create(plain)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let escaped = "\u{1}".repeat(MAX_SECRET_LEN);
    let body = create(escaped);
    assert!(body.to_string().len() > 6 * MAX_SECRET_LEN);
    let (status, made, _) = app
        .call(Some(&nikhil), "POST", "/api/credentials", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let (status, _, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{id}/rotate"),
            Some(json!({"secret": "b".repeat(MAX_SECRET_LEN)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // One byte more is the vault's bound (400), a bigger body the limit (413).
    let (status, value, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(create("a".repeat(MAX_SECRET_LEN + 1))),
        )
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, value, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(create("a".repeat(MAX_CREDENTIAL_BODY_BYTES))),
        )
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn unknown_kind_has_its_own_code() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    let (status, value, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(json!({"kind": "password", "label": "l", "secret": "s"})),
        )
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_kind"))
    );
}

const DESK: &str = r#"{
  "partners": [{
    "id": "desk",
    "display_name": "Desk",
    "persona": "execution",
    "entitlements": {
      "super_admin": ["view_credentials", "manage_credentials", "reveal_credentials", "view_audit"],
      "admin": ["view_credentials", "manage_credentials", "reveal_credentials", "view_audit"],
      "trader": ["view_credentials", "manage_credentials", "reveal_credentials"],
      "viewer": []
    },
    "alert_channels": [],
    "credential_rotation": {"max_age_days": 30, "warn_before_days": 7, "block_when_overdue": false}
  }],
  "users": [
    {"id": "owner", "email": "owner@example.com", "display_name": "Owner", "partner": "desk",
     "grants": [{"role": "trader", "partner": "desk"}]},
    {"id": "colleague", "email": "colleague@example.com", "display_name": "Colleague", "partner": "desk",
     "grants": [{"role": "trader", "partner": "desk"}]},
    {"id": "boss", "email": "boss@example.com", "display_name": "Boss", "partner": "desk",
     "grants": [{"role": "admin", "partner": "desk"}]}
  ]
}"#;

#[tokio::test]
async fn reveal_of_another_users_credential_needs_admin() {
    let app = app_with(Directory::from_json(DESK).unwrap()).await;
    let owner = app.token("owner").await;
    let colleague = app.token("colleague").await;
    let boss = app.token("boss").await;
    let (_, made, _) = app
        .call(
            Some(&owner),
            "POST",
            "/api/credentials",
            Some(json!({"kind": "oauth_refresh_token", "label": "google", "secret": "1//owner-only"})),
        )
        .await;
    let reveal = format!("/api/credentials/{}/reveal", made["id"].as_str().unwrap());

    let (status, value, _) = app.call(Some(&colleague), "POST", &reveal, None).await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert!(!value.to_string().contains("owner-only"));
    for token in [&owner, &boss] {
        let (status, value, _) = app.call(Some(token), "POST", &reveal, None).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        assert_eq!(value["secret"], "1//owner-only");
    }

    let log = app
        .audit
        .list(
            &partner_auth_core::PartnerId::new("desk").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let reveals: Vec<_> = log
        .iter()
        .filter(|e| e.action == "credential.reveal")
        .map(|e| {
            (
                e.actor.as_ref().map(|a| a.as_str().to_owned()),
                e.outcome,
                e.detail.as_deref(),
            )
        })
        .collect();
    use partner_auth_core::vault::Outcome;
    assert_eq!(
        reveals,
        [
            (
                Some("colleague".to_owned()),
                Outcome::Denied,
                Some("not_owner")
            ),
            (Some("owner".to_owned()), Outcome::Success, None),
            (Some("boss".to_owned()), Outcome::Success, None),
        ]
    );
}

/// A credential store whose database is gone.
struct DownStore;

fn down() -> partner_auth_core::Error {
    partner_auth_core::Error::store(std::io::Error::other("database file vanished"))
}

#[async_trait::async_trait]
impl partner_auth_core::vault::KeyReferences for DownStore {
    async fn count_for_kek(&self, _: &KekId) -> Result<u64, partner_auth_core::Error> {
        Err(down())
    }
}

#[async_trait::async_trait]
impl partner_auth_core::vault::CredentialStore for DownStore {
    async fn insert(
        &self,
        _: &partner_auth_core::vault::CredentialRecord,
    ) -> Result<(), partner_auth_core::Error> {
        Err(down())
    }

    async fn get(
        &self,
        _: &partner_auth_core::PartnerId,
        _: partner_auth_core::CredentialId,
    ) -> Result<Option<partner_auth_core::vault::CredentialRecord>, partner_auth_core::Error> {
        Err(down())
    }

    async fn list(
        &self,
        _: &partner_auth_core::PartnerId,
    ) -> Result<Vec<partner_auth_core::vault::CredentialRecord>, partner_auth_core::Error> {
        Err(down())
    }

    async fn find_by_reference(
        &self,
        _: &partner_auth_core::PartnerId,
        _: partner_auth_core::vault::CredentialKind,
        _: &str,
    ) -> Result<Option<partner_auth_core::vault::CredentialRecord>, partner_auth_core::Error> {
        Err(down())
    }

    async fn replace(
        &self,
        _: &partner_auth_core::vault::CredentialRecord,
        _: &partner_auth_core::vault::CredentialRecord,
    ) -> Result<bool, partner_auth_core::Error> {
        Err(down())
    }

    async fn set_rotation_state(
        &self,
        _: &partner_auth_core::PartnerId,
        _: partner_auth_core::CredentialId,
        _: u32,
        _: partner_auth_core::vault::RotationState,
    ) -> Result<bool, partner_auth_core::Error> {
        Err(down())
    }

    async fn swap_envelope(
        &self,
        _: &partner_auth_core::PartnerId,
        _: partner_auth_core::CredentialId,
        _: &[u8],
        _: &KekId,
        _: &[u8],
    ) -> Result<bool, partner_auth_core::Error> {
        Err(down())
    }

    async fn partners_with_kek(
        &self,
        _: &KekId,
    ) -> Result<Vec<partner_auth_core::PartnerId>, partner_auth_core::Error> {
        Err(down())
    }

    async fn list_for_kek(
        &self,
        _: &partner_auth_core::PartnerId,
        _: &KekId,
        _: Option<partner_auth_core::CredentialId>,
        _: usize,
    ) -> Result<Vec<partner_auth_core::vault::CredentialRecord>, partner_auth_core::Error> {
        Err(down())
    }
}

#[tokio::test]
async fn a_vault_store_failure_is_named_as_such() {
    let stores = VaultStores {
        credentials: Arc::new(DownStore),
        ..VaultStores::memory()
    };
    let app = app_on(Directory::launch().unwrap(), stores).await;
    let nikhil = app.token("nikhil").await;

    for (method, uri, body) in [
        ("GET", "/api/credentials", None),
        ("POST", "/api/credentials", Some(new_key("never-stored"))),
    ] {
        let (status, value, _) = app.call(Some(&nikhil), method, uri, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}");
        assert_eq!(value["error"], "store_unavailable");
        assert_eq!(
            value["message"],
            "the credential vault or audit store is unavailable"
        );
        assert!(!value.to_string().contains("vanished"), "{value}");
    }
}

#[tokio::test]
async fn rotate_and_revoke_of_another_users_credential_need_admin() {
    let app = app_with(Directory::from_json(DESK).unwrap()).await;
    let owner = app.token("owner").await;
    let colleague = app.token("colleague").await;
    let boss = app.token("boss").await;
    let (_, made, _) = app
        .call(
            Some(&owner),
            "POST",
            "/api/credentials",
            Some(json!({"kind": "api_key", "label": "broker", "secret": "OWNER-CHOSEN"})),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let rotate = format!("/api/credentials/{id}/rotate");
    let reveal = format!("/api/credentials/{id}/reveal");
    let revoke = format!("/api/credentials/{id}");

    let (status, value, _) = app
        .call(
            Some(&colleague),
            "POST",
            &rotate,
            Some(json!({"secret": "COLLEAGUE-CHOSEN"})),
        )
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{value}"
    );
    let (status, value, _) = app.call(Some(&colleague), "DELETE", &revoke, None).await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{value}"
    );
    let (_, value, _) = app.call(Some(&owner), "POST", &reveal, None).await;
    assert_eq!(value["secret"], "OWNER-CHOSEN");

    // The owner and the partner's admin may.
    let (status, value, _) = app
        .call(
            Some(&owner),
            "POST",
            &rotate,
            Some(json!({"secret": "OWNER-AGAIN"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let (status, value, _) = app
        .call(
            Some(&boss),
            "POST",
            &rotate,
            Some(json!({"secret": "BOSS-CHOSEN"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let (_, value, _) = app.call(Some(&owner), "POST", &reveal, None).await;
    assert_eq!(value["secret"], "BOSS-CHOSEN");
    let (status, value, _) = app.call(Some(&boss), "DELETE", &revoke, None).await;
    assert_eq!(
        (status, value["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );

    let log = app
        .audit
        .list(
            &partner_auth_core::PartnerId::new("desk").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    use partner_auth_core::vault::Outcome;
    let denied: Vec<_> = log
        .iter()
        .filter(|e| e.outcome == Outcome::Denied)
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.as_ref().map(|a| a.as_str().to_owned()),
                e.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [
            (
                "credential.rotate",
                Some("colleague".to_owned()),
                Some("not_owner")
            ),
            (
                "credential.revoke",
                Some("colleague".to_owned()),
                Some("not_owner")
            ),
        ]
    );
}

#[tokio::test]
async fn unsafe_labels_and_past_expiry_get_their_own_codes() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    for (body, code) in [
        (
            json!({"kind": "api_key", "label": "evil\u{202E}txt.exe", "secret": "s"}),
            "invalid_text",
        ),
        (
            json!({"kind": "api_key", "label": "ok", "broker": "a\u{2067}b", "secret": "s"}),
            "invalid_text",
        ),
        (
            json!({"kind": "api_key", "label": "line\nbreak", "secret": "s"}),
            "invalid_text",
        ),
        (
            json!({"kind": "api_key", "label": "ok", "secret": "s",
                   "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_in_past",
        ),
    ] {
        let (status, value, _) = app
            .call(
                Some(&nikhil),
                "POST",
                "/api/credentials",
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (status, value["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}"
        );
    }
    let (status, made, _) = app
        .call(
            Some(&nikhil),
            "POST",
            "/api/credentials",
            Some(json!({"kind": "api_key", "label": "ok", "secret": "s",
                        "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, value, _) = app
        .call(
            Some(&nikhil),
            "POST",
            &format!("/api/credentials/{}/rotate", made["id"].as_str().unwrap()),
            Some(json!({"secret": "t", "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, value["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expires_in_past"))
    );
}

#[tokio::test]
async fn each_audit_route_refuses_parameters_it_does_not_take_and_out_of_range_limits() {
    let app = app().await;
    let nikhil = app.token("nikhil").await;
    for uri in [
        "/api/audit?format=xml",
        "/api/audit?format=csv",
        "/api/audit?limit=0",
        "/api/audit?limit=1001",
        "/api/audit?limit=-1",
        "/api/audit/export?before=3",
        "/api/audit/export?limit=5",
        "/api/audit/export?before=3&limit=5",
    ] {
        let (status, value, _) = app.call(Some(&nikhil), "GET", uri, None).await;
        assert_eq!(
            (status, value["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{uri}: {value}"
        );
    }
    for uri in [
        "/api/audit?limit=1",
        "/api/audit?limit=1000&before=5",
        "/api/audit/export?format=csv&from=2020-01-01T00:00:00Z",
    ] {
        let (status, _, _) = app.raw(Some(&nikhil), "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn refused_requests_never_put_raw_path_text_in_the_audit_log() {
    let app = app().await;
    let mukesh = app.token("mukesh").await;
    let valid = uuid::Uuid::new_v4();
    for uri in [
        "/api/credentials/a%E2%80%AEb/reveal".to_owned(),
        "/api/credentials/%3DHYPERLINK(%22http:x%22)/reveal".to_owned(),
        format!("/api/credentials/{valid}/reveal"),
    ] {
        let (status, value, _) = app.call(Some(&mukesh), "POST", &uri, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {value}");
    }

    let log = app
        .audit
        .list(
            &partner_auth_core::PartnerId::new("mukesh").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    let mut targets: Vec<_> = log
        .iter()
        .filter(|e| e.action == "credential.reveal")
        .map(|e| e.target.clone().unwrap_or_default())
        .collect();
    targets.sort();
    let mut expected = vec![
        "credential:invalid".to_owned(),
        "credential:invalid".to_owned(),
        format!("credential:{valid}"),
    ];
    expected.sort();
    assert_eq!(targets, expected);
}
