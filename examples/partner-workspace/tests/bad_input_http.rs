//! Bad input gets a 4xx JSON error and the server stays up.

mod support;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Server, client, files_below, status_json};

async fn assert_json_error(res: reqwest::Response, status: u16) -> Value {
    let (got, body) = status_json(res).await;
    assert_eq!(got, status, "{body}");
    assert!(body["error"].is_string(), "not a JSON error: {body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

/// The server's own signing key, read from its data directory.
fn server_key(state: &Path) -> (String, EncodingKey) {
    let pem = files_below(&state.join("signing-keys"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "pem"))
        .expect("key file");
    let kid = pem.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(pem).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    (kid, EncodingKey::from_ec_der(&der))
}

fn header(kid: &str) -> Header {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.to_owned());
    h
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn bad_login_bodies_get_json_errors() {
    let server = Server::start();
    let url = server.url("/api/login/mock");

    let res = client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"user\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(assert_json_error(res, 400).await["error"], "invalid_json");

    let res = client()
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"user":"nikhil"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json_error(res, 415).await["error"],
        "unsupported_media_type"
    );

    let res = client()
        .post(&url)
        .json(&json!({ "user": "nobody" }))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_json_error(res, 401).await["error"], "unknown_user");

    let res = client()
        .post(&url)
        .json(&json!({ "user": 42 }))
        .send()
        .await
        .unwrap();
    assert_json_error(res, 400).await;

    let res = client()
        .post(&url)
        .json(&json!({ "user": "nikhil", "padding": "x".repeat(200 * 1024) }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json_error(res, 413).await["error"],
        "payload_too_large"
    );

    let res = client().get(&url).send().await.unwrap();
    assert_json_error(res, 405).await;
    let res = client()
        .get(server.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_json_error(res, 404).await;

    server.assert_healthy().await;
}

#[tokio::test]
async fn tokens_t5_hostile_bearers_get_a_json_401() {
    let server = Server::start();
    let dots = ".".repeat(1_000_000);
    let letters = "a".repeat(100 * 1024);
    let big_header = format!(
        "{}.e30.AA",
        b64(&json!({ "alg": "ES256", "x": "y".repeat(64 * 1024) }))
    );
    for credential in [dots.as_str(), &letters, "a.b.c.d", &big_header, "none"] {
        let res = client()
            .get(server.url("/api/session"))
            .header("authorization", format!("Bearer {credential}"))
            .send()
            .await
            .unwrap();
        let www = res.headers().get("www-authenticate").cloned();
        assert_json_error(res, 401).await;
        assert!(www.is_some());
    }
    for raw in [
        b"Bearer \xff\xfe\xfd".as_slice(),
        b"Bearer ",
        b"Basic Zm9vOmJhcg==",
    ] {
        let res = client()
            .get(server.url("/api/session"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(raw).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_json_error(res, 401).await;
    }
    let login = server.login("nikhil", false).await;
    let res = client()
        .get(server.url("/api/session"))
        .header("authorization", format!("Bearer {}", login.access))
        .header("authorization", format!("Bearer {}", login.access))
        .send()
        .await
        .unwrap();
    assert_json_error(res, 401).await;
    let res = client()
        .get(server.url("/api/session"))
        .header("authorization", format!("bEaReR {}", login.access))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the scheme word is case-insensitive");
    server.assert_healthy().await;
}

#[tokio::test]
async fn tokens_t3_t4_forged_tampered_and_expired_are_refused_over_http() {
    let server = Server::start();
    let login = server.login("raja", false).await;
    let (kid, key) = server_key(&server.state_dir());
    let claims: Value = {
        let payload = login.access.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let now = claims["iat"].as_i64().unwrap();

    // alg none, with and without a signature segment.
    let body = b64(&claims);
    for alg in ["none", "NONE", "nOnE"] {
        let head = b64(&json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
        for token in [format!("{head}.{body}."), format!("{head}.{body}")] {
            assert_eq!(server.get("/api/session", &token).await.0, 401, "{alg}");
        }
    }

    // Tampered payload: raja becomes super_admin.
    let mut forged = claims.clone();
    forged["roles"] = json!([{ "role": "super_admin" }]);
    let parts: Vec<&str> = login.access.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    let (status, body) = server.get("/api/session", &tampered).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Signed by a key the server does not know, with its kid or another.
    let stranger = EncodingKey::from_ec_der(&stranger_p256_der());
    for k in [kid.as_str(), "es256-0000000000000000"] {
        let token = jsonwebtoken::encode(&header(k), &claims, &stranger).unwrap();
        assert_eq!(server.get("/api/session", &token).await.0, 401);
    }

    // Expired beyond the leeway, signed with the server's own key.
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 700);
    expired["nbf"] = json!(now - 700);
    expired["exp"] = json!(now - 100);
    let token = jsonwebtoken::encode(&header(&kid), &expired, &key).unwrap();
    let (status, body) = server.get("/api/session", &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // The same key and claims, unexpired, do verify: the forgery tests above
    // fail for the reason they name.
    let token = jsonwebtoken::encode(&header(&kid), &claims, &key).unwrap();
    assert_eq!(server.get("/api/session", &token).await.0, 200);

    // HS256 keyed with the published public key.
    let jwks: Value = client()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.clone());
    let secret = EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&h, &claims, &secret).unwrap();
    assert_eq!(server.get("/api/session", &token).await.0, 401);

    server.assert_healthy().await;
}

#[tokio::test]
async fn unknown_and_malformed_refresh_tokens_get_401() {
    let server = Server::start();
    let fake = format!("pa_rt_{}", "A".repeat(43));
    for token in [fake.as_str(), "garbage", "", &"x".repeat(10_000)] {
        let (status, body) = server.refresh(token).await;
        assert_eq!(status, 401, "{token:.20}: {body}");
        assert!(body["error"].is_string());
    }
    let res = client()
        .post(server.url("/api/token/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_json_error(res, 401).await["error"],
        "missing_refresh_token"
    );
    server.assert_healthy().await;
}

/// A P-256 key the server has never seen, as PKCS#8 DER.
fn stranger_p256_der() -> Vec<u8> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    pair.to_pkcs8v1().unwrap().as_ref().to_vec()
}
