//! Access-token verification, case by case (cases/tokens.md T1 to T6 and
//! SECURITY.md T5, T6).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::keys::SigningKey;
use crate::{ManualClock, RevokeReason, SessionId};

const START: i64 = 1_900_000_000;

struct Fixture {
    issuer: TokenIssuer,
    clock: ManualClock,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(START).unwrap());
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    Fixture { issuer, clock }
}

fn session() -> Session {
    let now = OffsetDateTime::from_unix_timestamp(START).unwrap();
    Session {
        id: SessionId::random(),
        user_id: UserId::new("nikhil").unwrap(),
        partner_id: PartnerId::new("nikhil").unwrap(),
        roles: vec![RoleGrant::scoped(
            crate::Role::Trader,
            PartnerId::new("nikhil").unwrap(),
        )],
        auth_mode: AuthMode::Mock,
        remember_me: false,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(8),
        refresh_generation: 0,
        rotated_at: now,
        revoked_at: None::<OffsetDateTime>,
        revoke_reason: None::<RevokeReason>,
        impersonator: None,
    }
}

/// Claims of a valid token as JSON, for tests that bend one field.
fn claims_json(f: &Fixture) -> Value {
    serde_json::to_value(f.issuer.issue(&session()).unwrap().claims).unwrap()
}

/// Signs arbitrary claims with the fixture's own primary key.
fn sign(f: &Fixture, header: Header, claims: &Value) -> String {
    let ring = f.issuer.ring().read().unwrap();
    jsonwebtoken::encode(&header, claims, ring.primary().encoding()).unwrap()
}

fn our_header(f: &Fixture) -> Header {
    let ring = f.issuer.ring().read().unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some(ACCESS_TOKEN_TYPE.into());
    h.kid = Some(ring.primary().kid().to_owned());
    h
}

fn rejection(f: &Fixture, token: &str) -> TokenRejection {
    match f.issuer.verify(token) {
        Err(Error::InvalidToken(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn issued_tokens_verify() {
    let f = fixture();
    let token = f.issuer.issue(&session()).unwrap();
    let claims = f.issuer.verify(&token.token).unwrap();
    assert_eq!(claims, token.claims);
    assert_eq!(token.expires_in, 600);
    assert_eq!(claims.amr, vec![AuthMode::Mock]);
}

#[test]
fn absurd_access_token_lifetimes_are_refused() {
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(START).unwrap(),
    ));
    for ttl in [
        Duration::ZERO,
        Duration::days(2),
        Duration::hours(i64::from(u32::MAX)),
    ] {
        let config = TokenConfig {
            ttl,
            ..TokenConfig::default()
        };
        assert!(
            matches!(
                TokenIssuer::new(KeyRing::generate().unwrap(), config, clock.clone()),
                Err(Error::Config(_))
            ),
            "{ttl} accepted"
        );
    }
}

#[test]
fn access_token_debug_hides_the_jwt() {
    let f = fixture();
    let token = f.issuer.issue(&session()).unwrap();
    let shown = format!("{token:?}");
    let signature = token.token.rsplit('.').next().unwrap();
    assert!(!shown.contains(&token.token), "{shown}");
    assert!(!shown.contains(signature), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn tokens_t1_nbf_an_hour_ahead_is_refused() {
    let f = fixture();
    let mut c = claims_json(&f);
    c["nbf"] = json!(START + 3600);
    assert_eq!(
        rejection(&f, &sign(&f, our_header(&f), &c)),
        TokenRejection::NotYetValid
    );
}

#[test]
fn tokens_t1_validation_settings_are_pinned() {
    let f = fixture();
    let required = required_claims(&f.issuer);
    for claim in ["exp", "iat", "nbf", "sub", "iss", "aud"] {
        assert!(required.contains(claim), "{claim} not required");
    }
    let v = f.issuer.validation(Algorithm::ES256);
    assert_eq!(v.algorithms, vec![Algorithm::ES256]);
    assert!(v.validate_aud);
    assert!(v.iss.is_some());
    // Time claims are checked by check_times against the injected clock; the
    // crate's own checks are off so the system clock never decides.
    assert!(!v.validate_exp && !v.validate_nbf);
    let mut c = claims_json(&f);
    c["nbf"] = json!(START + 61);
    assert!(f.issuer.verify(&sign(&f, our_header(&f), &c)).is_err());
}

#[test]
fn tokens_t2_wrongly_typed_or_missing_claims_are_refused() {
    let f = fixture();
    for (claim, value) in [
        ("exp", json!("never")),
        ("exp", json!("1999999999")),
        ("nbf", json!("1999999999")),
        ("iat", json!(true)),
        ("exp", json!(1.9e9)),
    ] {
        let mut c = claims_json(&f);
        c[claim] = value.clone();
        let r = rejection(&f, &sign(&f, our_header(&f), &c));
        assert_eq!(r, TokenRejection::Claims, "{claim}={value}");
    }
    for missing in ["exp", "iat", "sub", "nbf", "sid", "pid"] {
        let mut c = claims_json(&f);
        c.as_object_mut().unwrap().remove(missing);
        let r = rejection(&f, &sign(&f, our_header(&f), &c));
        assert_eq!(r, TokenRejection::Claims, "missing {missing}");
    }
}

#[test]
fn tokens_t3_hs256_keyed_with_the_public_key_is_refused() {
    let f = fixture();
    let (kid, jwk) = {
        let ring = f.issuer.ring().read().unwrap();
        (
            ring.primary().kid().to_owned(),
            ring.primary().public_jwk().to_string(),
        )
    };
    let c = claims_json(&f);
    for secret in [
        jwk.as_bytes(),
        kid.as_bytes(),
        b"-----BEGIN PUBLIC KEY-----".as_slice(),
    ] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(ACCESS_TOKEN_TYPE.into());
        h.kid = Some(kid.clone());
        let token =
            jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(secret).unwrap()).unwrap();
        assert_eq!(rejection(&f, &token), TokenRejection::Algorithm);
    }
}

#[test]
fn tokens_t3_other_algorithm_header_on_our_key_is_refused() {
    let f = fixture();
    let good = sign(&f, our_header(&f), &claims_json(&f));
    let (_, rest) = good.split_once('.').unwrap();
    let mut h: Value = serde_json::to_value(our_header(&f)).unwrap();
    for alg in ["RS256", "ES384", "PS256", "EdDSA"] {
        h["alg"] = json!(alg);
        let token = format!("{}.{rest}", b64(&h));
        assert_eq!(rejection(&f, &token), TokenRejection::Algorithm, "{alg}");
    }
}

#[test]
fn tokens_t4_alg_none_in_any_case_is_refused() {
    let f = fixture();
    let body = b64(&claims_json(&f));
    let kid = f.issuer.ring().read().unwrap().primary().kid().to_owned();
    for alg in [
        json!("none"),
        json!("None"),
        json!("NONE"),
        json!("nOnE"),
        Value::Null,
    ] {
        let mut h = json!({ "typ": "at+jwt", "kid": kid });
        if !alg.is_null() {
            h["alg"] = alg.clone();
        }
        for sig in ["", "AA"] {
            let token = format!("{}.{body}.{sig}", b64(&h));
            let r = f.issuer.verify(&token);
            assert!(r.is_err(), "alg {alg} sig {sig:?} accepted");
        }
        let no_sig = format!("{}.{body}", b64(&h));
        assert!(f.issuer.verify(&no_sig).is_err());
    }
}

#[test]
fn tokens_t5_hostile_sizes_are_refused() {
    let f = fixture();
    let huge_header = format!(
        "{}.e30.AA",
        b64(&json!({ "alg": "ES256", "x": "a".repeat(64 * 1024) }))
    );
    let cases = [
        ".".repeat(1_000_000),
        "a".repeat(100 * 1024),
        "a.b.c.d".to_owned(),
        huge_header,
        String::new(),
        "é.é.é".to_owned(),
        "a.b".to_owned(),
    ];
    for token in &cases {
        assert!(f.issuer.verify(token).is_err());
    }
    assert_eq!(
        rejection(&f, &".".repeat(1_000_000)),
        TokenRejection::Malformed
    );
}

#[test]
fn tokens_t6_clock_skew_within_leeway() {
    let f = fixture();
    let sign_with = |iat: i64, exp: i64| {
        let mut c = claims_json(&f);
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        c["exp"] = json!(exp);
        sign(&f, our_header(&f), &c)
    };
    assert!(f.issuer.verify(&sign_with(START + 1, START + 301)).is_ok());
    assert!(f.issuer.verify(&sign_with(START + 59, START + 359)).is_ok());
    assert_eq!(
        rejection(&f, &sign_with(START + 120, START + 420)),
        TokenRejection::NotYetValid
    );
    assert!(f.issuer.verify(&sign_with(START - 600, START - 30)).is_ok());
    assert_eq!(
        rejection(&f, &sign_with(START - 600, START - 61)),
        TokenRejection::Expired
    );
    assert_eq!(
        rejection(&f, &sign_with(START, START + 86_400)),
        TokenRejection::LifetimeTooLong
    );
    // The injected clock decides, not the system clock.
    let t = f.issuer.issue(&session()).unwrap();
    f.clock.advance(Duration::seconds(600 + 61));
    assert_eq!(rejection(&f, &t.token), TokenRejection::Expired);
}

#[test]
fn tokens_wrong_issuer_audience_and_type_are_refused() {
    let f = fixture();
    let mut c = claims_json(&f);
    c["aud"] = json!("someone-else");
    assert_eq!(
        rejection(&f, &sign(&f, our_header(&f), &c)),
        TokenRejection::Audience
    );
    let mut c = claims_json(&f);
    c["iss"] = json!("https://partner-auth.evil");
    assert_eq!(
        rejection(&f, &sign(&f, our_header(&f), &c)),
        TokenRejection::Audience
    );

    // An ID token (typ JWT) presented as an access token.
    let mut h = our_header(&f);
    h.typ = Some("JWT".into());
    assert_eq!(
        rejection(&f, &sign(&f, h, &claims_json(&f))),
        TokenRejection::Type
    );
}

#[test]
fn tokens_unknown_or_malformed_kid_is_refused() {
    let f = fixture();
    let other = KeyRing::generate().unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some(ACCESS_TOKEN_TYPE.into());
    h.kid = Some(other.primary().kid().to_owned());
    let token = jsonwebtoken::encode(&h, &claims_json(&f), other.primary().encoding()).unwrap();
    assert_eq!(rejection(&f, &token), TokenRejection::UnknownKey);

    for kid in [
        None,
        Some("../../etc/passwd".to_owned()),
        Some("k".repeat(65)),
    ] {
        let mut h = our_header(&f);
        h.kid = kid;
        assert_eq!(
            rejection(&f, &sign(&f, h, &claims_json(&f))),
            TokenRejection::UnknownKey
        );
    }
}

#[test]
fn tokens_key_pointing_headers_are_never_followed() {
    let f = fixture();
    let good = sign(&f, our_header(&f), &claims_json(&f));
    let (_, rest) = good.split_once('.').unwrap();
    for (name, value) in [
        ("jku", json!("http://127.0.0.1:9/jwks")),
        ("x5u", json!("http://127.0.0.1:9/cert")),
        ("x5c", json!(["MIIB"])),
        ("jwk", json!({"kty": "EC"})),
        ("crit", json!(["exp"])),
    ] {
        let mut h = serde_json::to_value(our_header(&f)).unwrap();
        h[name] = value;
        let token = format!("{}.{rest}", b64(&h));
        assert_eq!(
            rejection(&f, &token),
            TokenRejection::ForbiddenHeader,
            "{name}"
        );
    }
}

#[test]
fn tokens_tampered_payload_is_refused() {
    let f = fixture();
    let good = sign(&f, our_header(&f), &claims_json(&f));
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims_json(&f);
    c["roles"] = json!([{ "role": "super_admin" }]);
    let forged = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert_eq!(rejection(&f, &forged), TokenRejection::Signature);
}

#[test]
fn tokens_rotated_keys_keep_verifying_until_removed() {
    let f = fixture();
    let old_token = f.issuer.issue(&session()).unwrap();
    let next = SigningKey::generate_es256().unwrap();
    let next_kid = next.kid().to_owned();
    f.issuer.ring().write().unwrap().add_next(next);
    // Published before it signs.
    let published = f.issuer.jwks().to_string();
    assert!(published.contains(&next_kid));
    f.issuer.promote(&next_kid).unwrap();

    let new_token = f.issuer.issue(&session()).unwrap();
    assert!(f.issuer.verify(&old_token.token).is_ok());
    assert!(f.issuer.verify(&new_token.token).is_ok());
    let old_kid = jsonwebtoken::decode_header(&old_token.token)
        .unwrap()
        .kid
        .unwrap();

    // Published for at least the token lifetime plus leeway after it
    // stopped signing (SECURITY T7).
    let keep = f.issuer.config().ttl + f.issuer.config().leeway;
    f.clock.advance(keep - Duration::seconds(1));
    assert!(f.issuer.remove_retired(&old_kid).is_err());
    assert!(f.issuer.jwks().to_string().contains(&old_kid));
    f.clock.advance(Duration::seconds(1));
    f.issuer.remove_retired(&old_kid).unwrap();
    assert!(!f.issuer.jwks().to_string().contains(&old_kid));
    assert_eq!(rejection(&f, &old_token.token), TokenRejection::UnknownKey);
}

#[test]
fn leeway_above_sixty_seconds_is_refused() {
    let config = TokenConfig {
        leeway: Duration::seconds(61),
        ..TokenConfig::default()
    };
    let clock = Arc::new(ManualClock::new(OffsetDateTime::UNIX_EPOCH));
    assert!(TokenIssuer::new(KeyRing::generate().unwrap(), config, clock).is_err());
}
