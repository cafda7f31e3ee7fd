//! A small OpenID Connect provider for tests and local development.
//!
//! It serves discovery, a JWKS (with `Cache-Control: max-age`), an
//! authorization endpoint that signs the user in at once and redirects back
//! with a code, and a token endpoint that checks client credentials, the
//! redirect URI and the PKCE verifier before it returns an RS256 ID token.
//! A refresh token is returned only when the authorization request carried
//! `prompt=consent` and `access_type=offline`, as Google does.
//!
//! Control endpoints let tests steer it: rotate keys, make the JWKS fail,
//! count fetches, pick the next user or a denial, change the next ID
//! token's claims, and make the next refresh grant return a new refresh
//! token. `/control/stats` reports counts and what the token endpoint last
//! saw (redirect URI, PKCE verifier, presented refresh token) and the last
//! ID token it signed. It binds to loopback only. It is a test tool: it has no
//! users of its own beyond what it is told, and no security worth the name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// How the provider is set up. The client secret is redacted in `Debug`.
#[derive(Clone)]
pub struct Config {
    /// The only client id accepted.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Redirect URIs accepted; empty means any loopback http(s) URI.
    pub redirect_uris: Vec<String>,
    /// The user signed in when nothing else chooses one.
    pub default_user: String,
    /// `iss` of tokens; `None` means the provider's own base URL.
    pub issuer: Option<String>,
    /// `max-age` of the JWKS response, in seconds.
    pub jwks_max_age: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .field("default_user", &self.default_user)
            .field("issuer", &self.issuer)
            .field("jwks_max_age", &self.jwks_max_age)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            redirect_uris: Vec::new(),
            default_user: "nikhil@example.com".into(),
            issuer: None,
            jwks_max_age: 3600,
        }
    }
}

struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
}

impl SigningKey {
    fn generate() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self {
            kid: hex(&id),
            pair,
        }
    }

    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stable subject for an e-mail address: 21 digits, like Google's.
pub fn subject_for(email: &str) -> String {
    let digest = Sha256::digest(email.to_ascii_lowercase().as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    format!("1{:020}", n % 10u64.pow(19))
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    email: String,
    subject: String,
    consent: bool,
    issued_at: i64,
}

#[derive(Default)]
struct NextToken {
    claims: Map<String, Value>,
    remove: Vec<String>,
    omit_kid: bool,
}

#[derive(Default)]
struct NextUser {
    email: Option<String>,
    deny: bool,
}

#[derive(Default, Clone, serde::Serialize)]
struct Stats {
    jwks_fetches: u64,
    authorize_requests: u64,
    token_requests: u64,
    refresh_tokens_issued: u64,
    last_authorize: Vec<(String, String)>,
    last_token_redirect_uri: Option<String>,
    last_token_code_verifier: Option<String>,
    refresh_grants: u64,
    last_refresh_token_presented: Option<String>,
    last_id_token: Option<String>,
}

struct Inner {
    config: Config,
    issuer: String,
    base: String,
    keys: Mutex<Vec<SigningKey>>,
    jwks_fail: AtomicBool,
    jwks_max_age: AtomicU64,
    rotate_next_refresh: AtomicBool,
    codes: Mutex<HashMap<String, Grant>>,
    subjects: Mutex<HashMap<String, String>>,
    refresh_tokens: Mutex<HashMap<String, (String, String)>>,
    next_token: Mutex<NextToken>,
    next_user: Mutex<NextUser>,
    stats: Mutex<Stats>,
}

type Shared = Arc<Inner>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The router of a provider whose base URL is `base` (for example
/// `http://127.0.0.1:4444`).
pub fn router(config: Config, base: &str) -> Router {
    let base = base.trim_end_matches('/').to_owned();
    let inner = Arc::new(Inner {
        issuer: config.issuer.clone().unwrap_or_else(|| base.clone()),
        base,
        jwks_max_age: AtomicU64::new(config.jwks_max_age),
        config,
        keys: Mutex::new(vec![SigningKey::generate()]),
        jwks_fail: AtomicBool::new(false),
        rotate_next_refresh: AtomicBool::new(false),
        codes: Mutex::new(HashMap::new()),
        subjects: Mutex::new(HashMap::new()),
        refresh_tokens: Mutex::new(HashMap::new()),
        next_token: Mutex::new(NextToken::default()),
        next_user: Mutex::new(NextUser::default()),
        stats: Mutex::new(Stats::default()),
    });
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/control/rotate-keys", post(rotate_keys))
        .route("/control/jwks", post(control_jwks))
        .route("/control/next-token", post(control_next_token))
        .route("/control/next-user", post(control_next_user))
        .route("/control/stats", get(control_stats))
        .route("/control/next-refresh", post(control_next_refresh))
        .with_state(inner)
}

/// Binds `addr` (loopback only) and serves until the process ends. Returns
/// the bound address once listening.
pub async fn spawn(config: Config, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the test provider listens on loopback only",
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(config, &format!("http://{bound}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

async fn discovery(State(p): State<Shared>) -> Response {
    let b = &p.base;
    axum::Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }))
    .into_response()
}

async fn jwks(State(p): State<Shared>) -> Response {
    lock(&p.stats).jwks_fetches += 1;
    if p.jwks_fail.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "keys unavailable").into_response();
    }
    let keys: Vec<Value> = lock(&p.keys).iter().map(SigningKey::jwk).collect();
    let mut response = axum::Json(json!({ "keys": keys })).into_response();
    let max_age = format!("public, max-age={}", p.jwks_max_age.load(Ordering::SeqCst));
    if let Ok(v) = HeaderValue::from_str(&max_age) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

fn pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut it = pairs.iter().filter(|(k, _)| k == name);
    match (it.next(), it.next()) {
        (Some((_, v)), None) => Some(v.as_str()),
        _ => None,
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn redirect_allowed(p: &Inner, uri: &str) -> bool {
    if !p.config.redirect_uris.is_empty() {
        return p.config.redirect_uris.iter().any(|r| r == uri);
    }
    url::Url::parse(uri).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    })
}

async fn authorize(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = pairs(raw.as_deref().unwrap_or(""));
    {
        let mut stats = lock(&p.stats);
        stats.authorize_requests += 1;
        stats.last_authorize = q.clone();
    }
    let (Some(client_id), Some(redirect_uri)) =
        (single(&q, "client_id"), single(&q, "redirect_uri"))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if client_id != p.config.client_id || !redirect_allowed(&p, redirect_uri) {
        // Never redirect to an unregistered URI.
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    let state = single(&q, "state").unwrap_or("").to_owned();
    let back = |params: &[(&str, &str)]| -> Response {
        let Ok(mut url) = url::Url::parse(redirect_uri) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        };
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in params {
                qp.append_pair(k, v);
            }
            if !state.is_empty() {
                qp.append_pair("state", &state);
            }
        }
        (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
    };
    let valid = single(&q, "response_type") == Some("code")
        && single(&q, "code_challenge_method") == Some("S256")
        && single(&q, "code_challenge").is_some_and(|c| c.len() == 43)
        && single(&q, "scope").is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    if !valid {
        return back(&[("error", "invalid_request")]);
    }

    let next = std::mem::take(&mut *lock(&p.next_user));
    if next.deny {
        return back(&[("error", "access_denied")]);
    }
    let hint = single(&q, "login_hint").map(str::to_owned);
    let email = next
        .email
        .or_else(|| {
            hint.as_ref().and_then(|h| {
                if h.contains('@') {
                    Some(h.clone())
                } else {
                    lock(&p.subjects).get(h).cloned()
                }
            })
        })
        .unwrap_or_else(|| p.config.default_user.clone());
    let subject = subject_for(&email);
    lock(&p.subjects).insert(subject.clone(), email.clone());
    let prompt_consent = single(&q, "prompt").is_some_and(|v| v.split(' ').any(|v| v == "consent"));
    let offline = single(&q, "access_type") == Some("offline");

    let code = random();
    lock(&p.codes).insert(
        code.clone(),
        Grant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: single(&q, "code_challenge").unwrap_or("").to_owned(),
            nonce: single(&q, "nonce").map(str::to_owned),
            email,
            subject,
            consent: prompt_consent && offline,
            issued_at: now(),
        },
    );
    back(&[("code", &code)])
}

/// Client credentials from `Authorization: Basic` or the form.
fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((unescape(id)?, unescape(secret)?));
    }
    Some((
        single(form, "client_id")?.to_owned(),
        single(form, "client_secret")?.to_owned(),
    ))
}

async fn token(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(std::str::from_utf8(&body).unwrap_or(""));
    let verifier = single(&form, "code_verifier").map(str::to_owned);
    {
        let mut stats = lock(&p.stats);
        stats.token_requests += 1;
        stats.last_token_redirect_uri = single(&form, "redirect_uri").map(str::to_owned);
        stats.last_token_code_verifier = verifier.clone();
    }
    let Some((id, secret)) = client_credentials(&headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if id != p.config.client_id || secret != p.config.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }

    match single(&form, "grant_type") {
        Some("authorization_code") => {}
        Some("refresh_token") => return refresh_grant(&p, &form),
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let Some(code) = single(&form, "code") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // Single use: the code is gone whatever happens next.
    let Some(grant) = lock(&p.codes).remove(code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let challenge_ok = verifier
        .as_deref()
        .is_some_and(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == grant.challenge);
    let ok = grant.client_id == id
        && single(&form, "redirect_uri") == Some(grant.redirect_uri.as_str())
        && challenge_ok
        && now() - grant.issued_at <= 60;
    if !ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }

    let id_token = id_token(&p, &grant.subject, &grant.email, grant.nonce.as_deref());
    let mut body = json!({
        "access_token": random(),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "openid email profile",
        "id_token": id_token,
    });
    if grant.consent {
        let refresh = format!("1//{}", random());
        lock(&p.refresh_tokens).insert(refresh.clone(), (grant.subject, grant.email));
        lock(&p.stats).refresh_tokens_issued += 1;
        body["refresh_token"] = Value::String(refresh);
    }
    axum::Json(body).into_response()
}

fn refresh_grant(p: &Inner, form: &[(String, String)]) -> Response {
    let presented = single(form, "refresh_token");
    {
        let mut stats = lock(&p.stats);
        stats.refresh_grants += 1;
        stats.last_refresh_token_presented = presented.map(str::to_owned);
    }
    let known = presented.and_then(|t| lock(&p.refresh_tokens).get(t).cloned());
    let Some((subject, email)) = known else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    // Like Google: a refresh grant returns no new refresh token, unless a
    // test asked for a rotation with `/control/next-refresh`.
    let mut body = json!({
        "access_token": random(),
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token(p, &subject, &email, None),
    });
    if p.rotate_next_refresh.swap(false, Ordering::SeqCst) {
        let refresh = format!("1//{}", random());
        lock(&p.refresh_tokens).insert(refresh.clone(), (subject, email));
        lock(&p.stats).refresh_tokens_issued += 1;
        body["refresh_token"] = Value::String(refresh);
    }
    axum::Json(body).into_response()
}

fn id_token(p: &Inner, subject: &str, email: &str, nonce: Option<&str>) -> String {
    let iat = now();
    let mut claims = json!({
        "iss": p.issuer,
        "aud": p.config.client_id,
        "azp": p.config.client_id,
        "sub": subject,
        "email": email,
        "email_verified": true,
        "name": email.split('@').next().unwrap_or(email),
        "iat": iat,
        "exp": iat + 3600,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::String(nonce.to_owned());
    }
    let next = std::mem::take(&mut *lock(&p.next_token));
    if let Some(map) = claims.as_object_mut() {
        for (k, v) in next.claims {
            map.insert(k, v);
        }
        for k in &next.remove {
            map.remove(k);
        }
    }
    let keys = lock(&p.keys);
    let key = keys.last().expect("at least one key");
    let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
    if next.omit_kid {
        header = json!({"alg": "RS256", "typ": "JWT"});
    }
    let token = key.sign(&header, &claims);
    // Kept so that tests can look for it where it must never appear (logs).
    lock(&p.stats).last_id_token = Some(token.clone());
    token
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RotateKeys {
    retire_old: bool,
}

async fn rotate_keys(State(p): State<Shared>, body: Bytes) -> Response {
    let req: RotateKeys = serde_json::from_slice(&body).unwrap_or_default();
    let key = SigningKey::generate();
    let kid = key.kid.clone();
    let mut keys = lock(&p.keys);
    if req.retire_old {
        keys.clear();
    }
    keys.push(key);
    axum::Json(json!({ "kid": kid })).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JwksControl {
    fail: Option<bool>,
    max_age: Option<u64>,
}

async fn control_jwks(State(p): State<Shared>, body: Bytes) -> Response {
    let req: JwksControl = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(fail) = req.fail {
        p.jwks_fail.store(fail, Ordering::SeqCst);
    }
    if let Some(max_age) = req.max_age {
        p.jwks_max_age.store(max_age, Ordering::SeqCst);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextTokenControl {
    claims: Map<String, Value>,
    remove: Vec<String>,
    omit_kid: bool,
}

async fn control_next_token(State(p): State<Shared>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<NextTokenControl>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *lock(&p.next_token) = NextToken {
        claims: req.claims,
        remove: req.remove,
        omit_kid: req.omit_kid,
    };
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextUserControl {
    email: Option<String>,
    deny: bool,
}

async fn control_next_user(State(p): State<Shared>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<NextUserControl>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *lock(&p.next_user) = NextUser {
        email: req.email,
        deny: req.deny,
    };
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextRefreshControl {
    rotate: bool,
}

async fn control_next_refresh(State(p): State<Shared>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<NextRefreshControl>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    p.rotate_next_refresh.store(req.rotate, Ordering::SeqCst);
    StatusCode::NO_CONTENT.into_response()
}

async fn control_stats(State(p): State<Shared>) -> Response {
    let stats = lock(&p.stats).clone();
    axum::Json(stats).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_client_secret() {
        let config = Config {
            client_secret: "hunter2-client-secret".into(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("test-client"), "{shown}");
    }
}
