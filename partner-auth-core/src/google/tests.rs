//! Unit tests of the Google sign-in, named after the cases in
//! `shared/cases/google.md` where one applies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::{AuthMode, Directory, ExternalIdentity, ManualClock, MemoryVault, User, Vault};

const CLIENT_ID: &str = "web-id";
const NONCE: &str = "nonce-0123456789";

struct TestKey {
    kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
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

    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        let input = format!("{head}.{body}");
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// RSA key generation is slow in debug builds; the tests share three keys.
fn keys() -> &'static [TestKey; 3] {
    static KEYS: OnceLock<[TestKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            TestKey::generate("k1"),
            TestKey::generate("k2"),
            TestKey::generate("k3"),
        ]
    })
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A key endpoint in memory: serves a settable key set, counts fetches, can fail.
struct FakeKeys {
    jwks: Mutex<Vec<Value>>,
    max_age: Mutex<Option<Duration>>,
    failing: Mutex<bool>,
    fetches: AtomicUsize,
}

impl FakeKeys {
    fn serving(keys: &[&TestKey]) -> Arc<Self> {
        Arc::new(Self {
            jwks: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            max_age: Mutex::new(Some(Duration::seconds(3600))),
            failing: Mutex::new(false),
            fetches: AtomicUsize::new(0),
        })
    }

    fn serve(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeySource for FakeKeys {
    async fn fetch(&self) -> Result<FetchedKeys, GoogleError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if *self.failing.lock().unwrap() {
            return Err(GoogleError::KeysUnavailable);
        }
        Ok(FetchedKeys {
            body: serde_json::to_vec(&json!({"keys": *self.jwks.lock().unwrap()})).unwrap(),
            max_age: *self.max_age.lock().unwrap(),
        })
    }
}

struct Fixture {
    clock: ManualClock,
    source: Arc<FakeKeys>,
    verifier: IdTokenVerifier,
}

fn fixture_with(issuer: &str, hosted_domains: &[&str]) -> Fixture {
    let clock = ManualClock::new(start());
    let source = FakeKeys::serving(&[&keys()[0]]);
    let cache = Arc::new(JwksCache::new(source.clone(), Arc::new(clock.clone())));
    let rules = IdTokenRules {
        issuer: IssuerRule::for_issuer(issuer),
        client_id: CLIENT_ID.into(),
        leeway: Duration::seconds(60),
        hosted_domains: hosted_domains.iter().map(|s| (*s).to_owned()).collect(),
    };
    Fixture {
        verifier: IdTokenVerifier::new(cache, rules, Arc::new(clock.clone())),
        clock,
        source,
    }
}

fn fixture() -> Fixture {
    fixture_with(GOOGLE_ISSUER, &[])
}

fn claims() -> Value {
    let now = start().unix_timestamp();
    json!({
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "sub": "110169484474386276334",
        "email": "quack@example.com",
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
        "nonce": NONCE,
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

async fn verify(f: &Fixture, claims: &Value) -> Result<VerifiedIdToken, GoogleError> {
    f.verifier.verify(&keys()[0].sign(claims), NONCE).await
}

fn rejection(result: Result<VerifiedIdToken, GoogleError>) -> IdTokenRejection {
    match result {
        Err(GoogleError::IdToken(r)) => r,
        other => panic!("expected an ID-token rejection, got {other:?}"),
    }
}

// ---- G1 issuer ----

#[tokio::test]
async fn google_iss_without_scheme() {
    let f = fixture();

    let bare = verify(&f, &with(claims(), "iss", json!("accounts.google.com"))).await;
    let https = verify(&f, &claims()).await;

    assert_eq!(bare.unwrap().subject, "110169484474386276334");
    assert!(https.is_ok());
}

#[tokio::test]
async fn google_iss_other_forms_refused() {
    let f = fixture();
    for iss in [
        json!("http://accounts.google.com"),
        json!("https://accounts.google.com/"),
        json!("https://accounts.google.com.evil.example"),
        json!("https://evil.example"),
        json!("ACCOUNTS.GOOGLE.COM"),
        json!(""),
        json!(7),
    ] {
        let result = verify(&f, &with(claims(), "iss", iss.clone())).await;
        assert_eq!(rejection(result), IdTokenRejection::Issuer, "{iss}");
    }
    let missing = verify(&f, &without(claims(), "iss")).await;
    assert_eq!(rejection(missing), IdTokenRejection::Issuer);
}

#[tokio::test]
async fn google_iss_other_provider_is_exact() {
    let f = fixture_with("http://127.0.0.1:4444", &[]);

    let exact = verify(&f, &with(claims(), "iss", json!("http://127.0.0.1:4444"))).await;
    let google = verify(&f, &claims()).await;
    let slash = verify(&f, &with(claims(), "iss", json!("http://127.0.0.1:4444/"))).await;

    assert!(exact.is_ok());
    assert_eq!(rejection(google), IdTokenRejection::Issuer);
    assert_eq!(rejection(slash), IdTokenRejection::Issuer);
}

// ---- G2 audience ----

#[tokio::test]
async fn google_aud_string_or_array_with_client_id() {
    let f = fixture();
    for aud in [
        json!("web-id"),
        json!(["web-id"]),
        json!(["other", "web-id"]),
    ] {
        let c = without(with(claims(), "aud", aud.clone()), "azp");
        assert!(verify(&f, &c).await.is_ok(), "{aud}");
    }
}

#[tokio::test]
async fn google_aud_wrong_empty_number_or_missing_refused() {
    let f = fixture();
    for aud in [
        json!(["other"]),
        json!([]),
        json!(42),
        json!("web-id-2"),
        json!("WEB-ID"),
        json!(null),
        json!({"aud": "web-id"}),
    ] {
        let result = verify(&f, &with(claims(), "aud", aud.clone())).await;
        assert_eq!(rejection(result), IdTokenRejection::Audience, "{aud}");
    }
    let missing = verify(&f, &without(claims(), "aud")).await;
    assert_eq!(rejection(missing), IdTokenRejection::Audience);
}

#[tokio::test]
async fn google_azp_must_be_client_id_when_present() {
    let f = fixture();

    let other = verify(&f, &with(claims(), "azp", json!("other"))).await;
    let absent = verify(&f, &without(claims(), "azp")).await;

    assert_eq!(rejection(other), IdTokenRejection::AuthorizedParty);
    assert!(absent.is_ok());
}

// ---- G3 keys ----

#[tokio::test]
async fn google_jwks_rotation_verifies_after_one_refetch() {
    let f = fixture();
    assert!(verify(&f, &claims()).await.is_ok());
    assert_eq!(f.source.fetches(), 1);
    f.source.serve(&[&keys()[0], &keys()[1]]);

    let token = keys()[1].sign(&claims());
    let result = f.verifier.verify(&token, NONCE).await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(f.source.fetches(), 2);
    assert_eq!(f.verifier.keys().cached_kids(), ["k1", "k2"]);
}

#[tokio::test]
async fn google_jwks_unknown_kids_cause_at_most_one_fetch() {
    let f = fixture();
    assert!(verify(&f, &claims()).await.is_ok());
    let before = f.source.fetches();

    for i in 0..100 {
        let header =
            json!({"alg": "RS256", "kid": format!("random-{i}-{}", super::flow::random_token())});
        let token = keys()[0].sign_with_header(&header, &claims());
        let result = f.verifier.verify(&token, NONCE).await;
        assert_eq!(rejection(result), IdTokenRejection::UnknownKey);
        f.clock.advance(Duration::milliseconds(500));
    }

    assert_eq!(f.source.fetches(), before + 1);
}

#[tokio::test]
async fn google_jwks_failure_keeps_last_good_keys() {
    let f = fixture();
    assert!(verify(&f, &claims()).await.is_ok());
    *f.source.failing.lock().unwrap() = true;
    f.clock.advance(Duration::seconds(3601));

    let stale = verify(&f, &with(claims(), "iat", json!(f.clock_now()))).await;
    let unknown = f.verifier.verify(&keys()[1].sign(&claims()), NONCE).await;

    assert!(stale.is_ok(), "{stale:?}");
    assert!(
        f.source.fetches() >= 2,
        "the expired cache was not refetched"
    );
    assert_eq!(rejection(unknown), IdTokenRejection::UnknownKey);
}

impl Fixture {
    fn clock_now(&self) -> i64 {
        use crate::Clock;
        self.clock.now().unix_timestamp()
    }
}

#[tokio::test]
async fn google_jwks_max_age_sets_cache_lifetime() {
    let f = fixture();
    *f.source.max_age.lock().unwrap() = Some(Duration::seconds(300));
    assert!(verify(&f, &claims()).await.is_ok());

    f.clock.advance(Duration::seconds(299));
    let fresh = verify(&f, &claims()).await;
    assert!(fresh.is_ok());
    assert_eq!(f.source.fetches(), 1);

    f.clock.advance(Duration::seconds(2));
    let renewed = verify(&f, &claims()).await;
    assert!(renewed.is_ok());
    assert_eq!(f.source.fetches(), 2);
}

#[test]
fn google_jwks_cache_control_parsing() {
    assert_eq!(
        parse_max_age("public, max-age=19845, must-revalidate, no-transform"),
        Some(Duration::seconds(19845))
    );
    assert_eq!(parse_max_age("MAX-AGE=60"), Some(Duration::seconds(60)));
    assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(parse_max_age("max-age=-5"), None);
    assert_eq!(parse_max_age("max-age=abc"), None);
    assert_eq!(parse_max_age("public"), None);
}

#[tokio::test]
async fn google_token_without_kid_refused() {
    let f = fixture();
    let token = keys()[0].sign_with_header(&json!({"alg": "RS256", "typ": "JWT"}), &claims());

    let result = f.verifier.verify(&token, NONCE).await;

    assert_eq!(rejection(result), IdTokenRejection::MissingKeyId);
    assert_eq!(
        f.source.fetches(),
        0,
        "keys fetched for a token without kid"
    );
}

#[tokio::test]
async fn google_id_token_header_attacks_refused() {
    let f = fixture();
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    let none = format!("{none_header}.{body}.c2ln");
    let hs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
    let hs = format!("{hs_header}.{body}.c2ln");
    let jku = keys()[0].sign_with_header(
        &json!({"alg": "RS256", "kid": "k1", "jku": "https://evil.example/keys"}),
        &claims(),
    );
    let bad_kid = keys()[0].sign_with_header(&json!({"alg": "RS256", "kid": "../k1"}), &claims());

    assert_eq!(
        rejection(f.verifier.verify(&none, NONCE).await),
        IdTokenRejection::Algorithm
    );
    assert_eq!(
        rejection(f.verifier.verify(&hs, NONCE).await),
        IdTokenRejection::Algorithm
    );
    assert_eq!(
        rejection(f.verifier.verify(&jku, NONCE).await),
        IdTokenRejection::ForbiddenHeader
    );
    assert_eq!(
        rejection(f.verifier.verify(&bad_kid, NONCE).await),
        IdTokenRejection::MissingKeyId
    );
    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &"a".repeat(MAX_ID_TOKEN_LEN + 1),
    ] {
        assert_eq!(
            rejection(f.verifier.verify(garbage, NONCE).await),
            IdTokenRejection::Malformed
        );
    }
}

#[tokio::test]
async fn google_id_token_signature_from_other_key_refused() {
    let f = fixture();
    let forged = keys()[2].sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), &claims());

    let result = f.verifier.verify(&forged, NONCE).await;

    assert_eq!(rejection(result), IdTokenRejection::Signature);
}

#[tokio::test]
async fn google_id_token_times_nonce_and_subject() {
    let f = fixture();
    let now = start().unix_timestamp();

    let expired = verify(&f, &with(claims(), "exp", json!(now - 61))).await;
    let within_leeway = verify(&f, &with(claims(), "exp", json!(now - 59))).await;
    let future = verify(&f, &with(claims(), "iat", json!(now + 61))).await;
    let nbf = verify(&f, &with(claims(), "nbf", json!(now + 120))).await;
    let no_exp = verify(&f, &without(claims(), "exp")).await;
    let no_iat = verify(&f, &without(claims(), "iat")).await;
    let nonce = verify(&f, &with(claims(), "nonce", json!("nonce-0123456788"))).await;
    let no_nonce = verify(&f, &without(claims(), "nonce")).await;
    let no_sub = verify(&f, &without(claims(), "sub")).await;
    let empty_sub = verify(&f, &with(claims(), "sub", json!(""))).await;

    assert_eq!(rejection(expired), IdTokenRejection::Expired);
    assert!(within_leeway.is_ok());
    assert_eq!(rejection(future), IdTokenRejection::NotYetValid);
    assert_eq!(rejection(nbf), IdTokenRejection::NotYetValid);
    assert_eq!(rejection(no_exp), IdTokenRejection::Expired);
    assert_eq!(rejection(no_iat), IdTokenRejection::NotYetValid);
    assert_eq!(rejection(nonce), IdTokenRejection::Nonce);
    assert_eq!(rejection(no_nonce), IdTokenRejection::Nonce);
    assert_eq!(rejection(no_sub), IdTokenRejection::Claims);
    assert_eq!(rejection(empty_sub), IdTokenRejection::Claims);
}

#[tokio::test]
async fn google_hosted_domain_allow_list() {
    let f = fixture_with(GOOGLE_ISSUER, &["example.com"]);

    let member = verify(&f, &with(claims(), "hd", json!("example.com"))).await;
    let other = verify(&f, &with(claims(), "hd", json!("example.org"))).await;
    let consumer = verify(&f, &claims()).await;

    assert_eq!(
        member.unwrap().hosted_domain.as_deref(),
        Some("example.com")
    );
    assert_eq!(rejection(other), IdTokenRejection::HostedDomain);
    assert_eq!(rejection(consumer), IdTokenRejection::HostedDomain);
}

// ---- G7 email_verified ----

#[tokio::test]
async fn google_email_verified_variants() {
    let f = fixture();
    let cases = [
        (json!(true), true),
        (json!("true"), true),
        (json!("TRUE"), true),
        (json!(false), false),
        (json!("false"), false),
        (json!("yes"), false),
        (json!("True"), false),
        (json!(1), false),
        (json!(null), false),
        (json!({"v": true}), false),
    ];
    for (value, expected) in cases {
        let verified = verify(&f, &with(claims(), "email_verified", value.clone()))
            .await
            .unwrap_or_else(|e| panic!("{value} aborted parsing: {e}"));
        assert_eq!(verified.email_verified, expected, "{value}");
    }
    let absent = verify(&f, &without(claims(), "email_verified"))
        .await
        .unwrap();
    assert!(!absent.email_verified);
}

#[tokio::test]
async fn google_email_unverified_login_refused_by_policy() {
    let dir = quack_directory();
    let store = MemoryIdentityStore::new();
    let unverified = identity("sub-1", "quack@example.com", false);

    let err = resolve_user(&unverified, &store, &dir, LinkPolicy::default())
        .await
        .unwrap_err();

    assert_eq!(failure_code(&err), "email_not_verified");
    assert!(matches!(err, crate::Error::Google(ref g) if g.is_forbidden()));
}

// ---- G9 identity mapping ----

fn quack_directory() -> Directory {
    Directory::from_json(
        r#"{"partners":[{"id":"p","display_name":"P","persona":"execution","entitlements":{}}],
        "users":[
          {"id":"quack","email":"quack@example.com","display_name":"Quack","partner":"p","grants":[]},
          {"id":"duck","email":"duck@example.com","display_name":"Duck","partner":"p","grants":[]}
        ]}"#,
    )
    .unwrap()
}

fn identity(subject: &str, email: &str, verified: bool) -> ExternalIdentity {
    ExternalIdentity {
        mode: AuthMode::Google,
        issuer: GOOGLE_ISSUER.into(),
        subject: subject.into(),
        email: Some(email.into()),
        email_verified: verified,
        provider_refresh_token: None,
    }
}

#[tokio::test]
async fn google_email_match_ascii_case_only() {
    let dir = quack_directory();
    let store = MemoryIdentityStore::new();
    let policy = LinkPolicy::default();

    let kelvin = resolve_user(
        &identity("s-k", "quac\u{212A}@example.com", true),
        &store,
        &dir,
        policy,
    )
    .await;
    let cyrillic = resolve_user(
        &identity("s-c", "quack@ex\u{0430}mple.com", true),
        &store,
        &dir,
        policy,
    )
    .await;
    let upper = resolve_user(
        &identity("s-1", "Quack@Example.COM", true),
        &store,
        &dir,
        policy,
    )
    .await;

    assert_eq!(failure_code(&kelvin.unwrap_err()), "unknown_user");
    assert_eq!(failure_code(&cyrillic.unwrap_err()), "unknown_user");
    assert_eq!(upper.unwrap().id.as_str(), "quack");
    assert_eq!(
        store
            .find(GOOGLE_ISSUER, "s-1")
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "quack"
    );
}

#[tokio::test]
async fn google_identity_keyed_on_issuer_and_subject() {
    let dir = quack_directory();
    let store = MemoryIdentityStore::new();
    let policy = LinkPolicy::default();
    resolve_user(
        &identity("s-1", "quack@example.com", true),
        &store,
        &dir,
        policy,
    )
    .await
    .unwrap();

    // The linked subject keeps its user even when the provider's e-mail changes.
    let renamed = resolve_user(
        &identity("s-1", "duck@example.com", true),
        &store,
        &dir,
        policy,
    )
    .await;
    // Another subject claiming a linked user's address is refused.
    let squatter = resolve_user(
        &identity("s-2", "quack@example.com", true),
        &store,
        &dir,
        policy,
    )
    .await;
    // The same subject under another issuer is another identity.
    let mut other_issuer = identity("s-1", "nobody@example.com", true);
    other_issuer.issuer = "https://other.example".into();
    let other = resolve_user(&other_issuer, &store, &dir, policy).await;
    let no_match = LinkPolicy {
        match_email: false,
        ..policy
    };
    let not_linked = resolve_user(
        &identity("s-3", "duck@example.com", true),
        &store,
        &dir,
        no_match,
    )
    .await;

    assert_eq!(renamed.unwrap().id.as_str(), "quack");
    assert_eq!(failure_code(&squatter.unwrap_err()), "identity_conflict");
    assert_eq!(failure_code(&other.unwrap_err()), "unknown_user");
    assert_eq!(failure_code(&not_linked.unwrap_err()), "unknown_user");
}

// ---- flow: G4, G5, G6, G8 ----

const REDIRECT: &str = "https://app.example.com/api/login/google/callback";

fn metadata() -> ProviderMetadata {
    // The token endpoint is a closed loopback port: a test that reached it
    // would fail with `provider_unreachable`, not with the error it expects.
    ProviderMetadata {
        issuer: GOOGLE_ISSUER.into(),
        authorization_endpoint: "https://accounts.google.com/o/oauth2/v2/auth".into(),
        token_endpoint: "http://127.0.0.1:9/token".into(),
        jwks_uri: "https://www.googleapis.com/oauth2/v3/certs".into(),
        id_token_signing_alg_values_supported: vec!["RS256".into()],
        code_challenge_methods_supported: vec!["plain".into(), "S256".into()],
    }
}

struct FlowFixture {
    provider: GoogleProvider,
    flows: Arc<MemoryFlowStore>,
    vault: Arc<MemoryVault>,
    clock: ManualClock,
}

fn flow_fixture() -> FlowFixture {
    let clock = ManualClock::new(start());
    let flows = Arc::new(MemoryFlowStore::new());
    let vault = Arc::new(MemoryVault::new());
    let provider = GoogleProvider::builder(CLIENT_ID, SecretString::from("s3cret"), REDIRECT)
        .unwrap()
        .flow_store(flows.clone())
        .vault(vault.clone())
        .clock(Arc::new(clock.clone()))
        .key_source(FakeKeys::serving(&[&keys()[0]]))
        .with_metadata(metadata())
        .unwrap();
    FlowFixture {
        provider,
        flows,
        vault,
        clock,
    }
}

fn query(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs().into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    assert!(found.next().is_none(), "{name} appears twice");
    first
}

#[tokio::test]
async fn google_pkce_authorization_url() {
    let f = flow_fixture();

    let started = f.provider.begin(BeginLogin::default()).await.unwrap();

    let pairs = query(&started.authorization_url);
    assert_eq!(param(&pairs, "response_type"), Some("code"));
    assert_eq!(param(&pairs, "client_id"), Some(CLIENT_ID));
    assert_eq!(param(&pairs, "code_challenge_method"), Some("S256"));
    assert_eq!(param(&pairs, "scope"), Some("openid email profile"));
    assert_eq!(param(&pairs, "access_type"), Some("offline"));
    let challenge = param(&pairs, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43);
    let state = param(&pairs, "state").unwrap();
    let nonce = param(&pairs, "nonce").unwrap();
    assert_eq!(state.len(), RANDOM_TOKEN_LEN);
    assert_eq!(nonce.len(), RANDOM_TOKEN_LEN);
    assert_ne!(state, nonce);

    let flow = f
        .flows
        .take(&started.flow_id, start())
        .await
        .unwrap()
        .unwrap();
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(flow.pkce_verifier.expose_secret()));
    assert_eq!(
        challenge, expected,
        "the stored verifier does not match the challenge"
    );
    assert!(flow.state_matches(state));
    assert_eq!(flow.nonce.expose_secret(), nonce);
}

#[tokio::test]
async fn login_start_debug_reveals_no_state_nonce_or_challenge() {
    let f = flow_fixture();
    let started = f.provider.begin(BeginLogin::default()).await.unwrap();
    let pairs = query(&started.authorization_url);
    let shown = format!("{started:?}");
    for name in ["state", "nonce", "code_challenge"] {
        let value = param(&pairs, name).unwrap();
        assert!(!shown.contains(value), "{name} appears in {shown}");
    }
    let flow_id = started.flow_id.expose_secret().to_owned();
    assert!(!shown.contains(&flow_id), "the flow id appears in {shown}");
    assert!(shown.contains("consent"), "{shown}");
}

#[test]
fn settings_to_check_debug_hides_the_secret() {
    let settings = SettingsToCheck {
        client_id: Some("123456789012-abcdef0123456789.apps.googleusercontent.com"),
        client_secret: Some("GOCSPX-very-secret-value"),
        redirect_url: None,
        issuer: GOOGLE_ISSUER,
    };
    let shown = format!("{settings:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[tokio::test]
async fn google_pkce_verifier_gone_no_exchange() {
    let f = flow_fixture();
    let started = f.provider.begin(BeginLogin::default()).await.unwrap();
    let state = param(&query(&started.authorization_url), "state")
        .unwrap()
        .to_owned();
    f.flows.take(&started.flow_id, start()).await.unwrap();

    let err = f
        .provider
        .complete(&started.flow_id, &state, &SecretString::from("code"))
        .await
        .unwrap_err();

    assert_eq!(failure_code(&err), "login_expired");
}

#[tokio::test]
async fn google_redirect_uri_from_configuration() {
    let f = flow_fixture();

    let started = f.provider.begin(BeginLogin::default()).await.unwrap();

    let pairs = query(&started.authorization_url);
    assert_eq!(param(&pairs, "redirect_uri"), Some(REDIRECT));
    assert_eq!(f.provider.redirect_url().as_str(), REDIRECT);
}

#[tokio::test]
async fn google_state_mismatch_never_reaches_token_endpoint() {
    let f = flow_fixture();
    let code = SecretString::from("code");
    let mut cases = Vec::new();
    for mutate in 0..4 {
        let started = f.provider.begin(BeginLogin::default()).await.unwrap();
        let state = param(&query(&started.authorization_url), "state")
            .unwrap()
            .to_owned();
        let presented = match mutate {
            0 => {
                let mut s = state[..state.len() - 1].to_owned();
                s.push(if state.ends_with('A') { 'B' } else { 'A' });
                s
            }
            1 => String::new(),
            2 => "x".into(),
            _ => "x".repeat(10 * 1024),
        };
        let err = f
            .provider
            .complete(&started.flow_id, &presented, &code)
            .await
            .unwrap_err();
        cases.push(failure_code(&err));
        // The flow is spent: even the right state no longer works.
        let replay = f
            .provider
            .complete(&started.flow_id, &state, &code)
            .await
            .unwrap_err();
        assert_eq!(failure_code(&replay), "login_expired");
    }

    assert_eq!(cases, ["state_mismatch"; 4]);
}

#[tokio::test]
async fn google_state_compare_unequal_lengths() {
    assert!(secrets_equal("abc", "abc"));
    assert!(!secrets_equal("abc", "abd"));
    assert!(!secrets_equal("abc", ""));
    assert!(!secrets_equal("", "abc"));
    assert!(!secrets_equal("a", &"a".repeat(10 * 1024)));
}

#[tokio::test]
async fn google_flow_expires() {
    let f = flow_fixture();
    let started = f.provider.begin(BeginLogin::default()).await.unwrap();
    let state = param(&query(&started.authorization_url), "state")
        .unwrap()
        .to_owned();
    f.clock.advance(DEFAULT_FLOW_TTL + Duration::seconds(1));

    let err = f
        .provider
        .complete(&started.flow_id, &state, &SecretString::from("code"))
        .await
        .unwrap_err();

    assert_eq!(failure_code(&err), "login_expired");
    assert!(f.flows.is_empty());
}

fn quack() -> User {
    quack_directory()
        .user_by_email("quack@example.com")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn google_refresh_token_consent_only_without_held_token() {
    let f = flow_fixture();
    let subject = "110169484474386276334".to_owned();
    let returning = BeginLogin {
        known_subject: Some(subject.clone()),
        ..BeginLogin::default()
    };

    let first = f.provider.begin(BeginLogin::default()).await.unwrap();
    let unknown_token = f.provider.begin(returning.clone()).await.unwrap();
    f.vault
        .keep_provider_token(
            &quack(),
            GOOGLE_ISSUER,
            &subject,
            SecretString::from("1//rt"),
        )
        .await
        .unwrap();
    let held = f.provider.begin(returning).await.unwrap();

    for start in [&first, &unknown_token] {
        let pairs = query(&start.authorization_url);
        assert!(start.consent);
        assert_eq!(param(&pairs, "prompt"), Some("consent"));
        assert_eq!(param(&pairs, "access_type"), Some("offline"));
    }
    let pairs = query(&held.authorization_url);
    assert!(!held.consent);
    assert_eq!(param(&pairs, "prompt"), None);
    assert_eq!(param(&pairs, "access_type"), Some("offline"));
    assert_eq!(param(&pairs, "login_hint"), Some(subject.as_str()));
}

// ---- return path, secrets, configuration ----

#[test]
fn return_path_only_same_origin_relative() {
    for good in ["/", "/workspace", "/a/b?tab=2&x=%2F", "/page#top"] {
        assert!(ReturnPath::parse(good).is_some(), "{good} refused");
    }
    for bad in [
        "",
        "workspace",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/a//b",
        "/java\tscript",
        "/caf\u{e9}",
        "/x:y",
        &format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN)),
    ] {
        assert!(ReturnPath::parse(bad).is_none(), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn google_secrets_never_in_debug_output() {
    let f = flow_fixture();
    let started = f.provider.begin(BeginLogin::default()).await.unwrap();
    let flow = f
        .flows
        .take(&started.flow_id, start())
        .await
        .unwrap()
        .unwrap();
    let proof = crate::LoginProof::AuthorizationCode {
        flow_id: SecretString::from(started.flow_id.expose_secret().to_owned()),
        state: SecretString::from("state-value-123"),
        code: SecretString::from("code-value-456"),
    };

    let text = format!("{:?} {flow:?} {proof:?} {:?}", started.flow_id, f.provider);

    for secret in [
        started.flow_id.expose_secret(),
        flow.state.expose_secret(),
        flow.nonce.expose_secret(),
        flow.pkce_verifier.expose_secret(),
        "state-value-123",
        "code-value-456",
        "s3cret",
    ] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn builder_requires_secret_and_safe_redirect() {
    let ok = GoogleProvider::builder(CLIENT_ID, SecretString::from("s"), REDIRECT);
    assert!(ok.is_ok());
    for (id, secret, redirect) in [
        ("", "s", REDIRECT),
        (CLIENT_ID, " ", REDIRECT),
        (CLIENT_ID, "s", "/api/login/google/callback"),
        (
            CLIENT_ID,
            "s",
            "http://app.example.com/api/login/google/callback",
        ),
        (
            CLIENT_ID,
            "s",
            "https://app.example.com/api/login/google/callback#x",
        ),
    ] {
        assert!(
            GoogleProvider::builder(id, SecretString::from(secret), redirect).is_err(),
            "{id:?} {redirect:?} accepted"
        );
    }
    assert!(
        GoogleProvider::builder(
            CLIENT_ID,
            SecretString::from("s"),
            "http://localhost:8080/api/login/google/callback"
        )
        .is_ok()
    );
}

#[test]
fn discovery_document_must_name_the_configured_issuer() {
    let builder = GoogleProvider::builder(CLIENT_ID, SecretString::from("s"), REDIRECT).unwrap();
    let mut other = metadata();
    other.issuer = "https://evil.example".into();
    let mut no_pkce = metadata();
    no_pkce.code_challenge_methods_supported = vec!["plain".into()];

    assert!(matches!(
        builder.with_metadata(other),
        Err(GoogleError::Discovery(_))
    ));
    let builder = GoogleProvider::builder(CLIENT_ID, SecretString::from("s"), REDIRECT).unwrap();
    assert!(matches!(
        builder.with_metadata(no_pkce),
        Err(GoogleError::Discovery(_))
    ));
}

#[test]
fn check_settings_reports_each_problem() {
    let good = SettingsToCheck {
        client_id: Some("123456789012-abcdef0123456789.apps.googleusercontent.com"),
        client_secret: Some("GOCSPX-secret"),
        redirect_url: Some("https://app.example.com/api/login/google/callback"),
        issuer: GOOGLE_ISSUER,
    };
    assert_eq!(check_settings(&good), []);
    let local = SettingsToCheck {
        redirect_url: Some("http://localhost:8080/api/login/google/callback"),
        ..good.clone()
    };
    assert_eq!(check_settings(&local), []);

    let cases: [(SettingsToCheck<'_>, Setting, &str); 8] = [
        (
            SettingsToCheck {
                client_id: None,
                ..good.clone()
            },
            Setting::ClientId,
            "is not set",
        ),
        (
            SettingsToCheck {
                client_id: Some("web-id"),
                ..good.clone()
            },
            Setting::ClientId,
            "does not look",
        ),
        (
            SettingsToCheck {
                client_secret: None,
                ..good.clone()
            },
            Setting::ClientSecret,
            "is not set",
        ),
        (
            SettingsToCheck {
                redirect_url: Some("/api/login/google/callback"),
                ..good.clone()
            },
            Setting::RedirectUrl,
            "absolute",
        ),
        (
            SettingsToCheck {
                redirect_url: Some("http://app.example.com/api/login/google/callback"),
                ..good.clone()
            },
            Setting::RedirectUrl,
            "https",
        ),
        (
            SettingsToCheck {
                redirect_url: Some("https://app.example.com/api/login/google/callback#f"),
                ..good.clone()
            },
            Setting::RedirectUrl,
            "fragment",
        ),
        (
            SettingsToCheck {
                redirect_url: Some("https://app.example.com/callback"),
                ..good.clone()
            },
            Setting::RedirectUrl,
            "path",
        ),
        (
            SettingsToCheck {
                issuer: "http://idp.example",
                ..good.clone()
            },
            Setting::Issuer,
            "https",
        ),
    ];
    for (settings, setting, text) in cases {
        let problems = check_settings(&settings);
        assert_eq!(problems.len(), 1, "{settings:?}: {problems:?}");
        assert_eq!(problems[0].setting, setting);
        assert!(problems[0].message.contains(text), "{:?}", problems[0]);
    }
    let other_idp = SettingsToCheck {
        client_id: Some("web-id"),
        issuer: "http://127.0.0.1:4444",
        ..good
    };
    assert_eq!(check_settings(&other_idp), []);
}

#[test]
fn google_errors_carry_fixed_texts() {
    // An exhaustive match: a new variant fails to compile until it is listed below.
    fn listed(e: &GoogleError) {
        match e {
            GoogleError::Config(_)
            | GoogleError::Discovery(_)
            | GoogleError::Unreachable { .. }
            | GoogleError::AccessDenied
            | GoogleError::ProviderError
            | GoogleError::InvalidCallback(_)
            | GoogleError::FlowNotFound
            | GoogleError::StateMismatch
            | GoogleError::TooManyFlows
            | GoogleError::CodeRejected
            | GoogleError::TokenEndpoint(_)
            | GoogleError::ProviderTokenRejected
            | GoogleError::IdTokenMissing
            | GoogleError::IdToken(_)
            | GoogleError::KeysUnavailable
            | GoogleError::EmailNotVerified
            | GoogleError::NoMatchingUser
            | GoogleError::IdentityConflict
            | GoogleError::LinkedUserMissing => {}
        }
    }
    let transport = reqwest::Client::new()
        .get("http://[::1")
        .build()
        .expect_err("an unparsable URL");
    let all = vec![
        GoogleError::Config("client id is missing"),
        GoogleError::Discovery("document is not valid"),
        GoogleError::Unreachable {
            what: "token endpoint",
            source: transport,
        },
        GoogleError::AccessDenied,
        GoogleError::ProviderError,
        GoogleError::InvalidCallback("state missing"),
        GoogleError::FlowNotFound,
        GoogleError::StateMismatch,
        GoogleError::TooManyFlows,
        GoogleError::CodeRejected,
        GoogleError::TokenEndpoint("unreadable response"),
        GoogleError::ProviderTokenRejected,
        GoogleError::IdTokenMissing,
        GoogleError::IdToken(IdTokenRejection::Nonce),
        GoogleError::KeysUnavailable,
        GoogleError::EmailNotVerified,
        GoogleError::NoMatchingUser,
        GoogleError::IdentityConflict,
        GoogleError::LinkedUserMissing,
    ];
    let mut seen = std::collections::HashSet::new();
    for e in all {
        listed(&e);
        seen.insert(std::mem::discriminant(&e));
        let code = e.code();
        let text = e.to_string();
        assert!(!text.is_empty());
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );

        let core: crate::Error = e.into();

        let crate::Error::Google(back) = &core else {
            panic!("{code} did not convert to Error::Google");
        };
        assert_eq!(back.code(), code);
        assert_eq!(failure_code(&core), code);
        assert!(core.to_string().contains(&text), "{code}: {core}");
    }
    assert_eq!(seen.len(), 19, "every variant once");
}

// ---- parsers of untrusted input never panic ----

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn return_path_accepts_only_safe_paths(s in "\\PC{0,80}|/[ -~]{0,80}") {
            if let Some(path) = ReturnPath::parse(&s) {
                let p = path.as_str();
                prop_assert!(p.starts_with('/'));
                prop_assert!(!p.contains("//") && !p.contains('\\'));
                prop_assert!(p.bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn secrets_equal_is_string_equality(a in "[a-c]{0,4}", b in "[a-c]{0,4}") {
            prop_assert_eq!(secrets_equal(&a, &b), a == b);
        }

        #[test]
        fn cache_control_parsing_never_panics(s in "\\PC{0,64}") {
            let _ = parse_max_age(&s);
        }

        #[test]
        fn jwks_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_jwks(&bytes);
        }

        #[test]
        fn id_token_garbage_is_refused_without_panic(s in "[A-Za-z0-9_.-]{0,300}") {
            let f = fixture();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let result = runtime.block_on(f.verifier.verify(&s, NONCE));
            prop_assert!(result.is_err());
        }
    }
}

#[tokio::test]
async fn google_provider_as_auth_provider() {
    use crate::{AuthProvider, LoginProof};
    let f = flow_fixture();

    let mock = f
        .provider
        .authenticate(LoginProof::Mock {
            user: "nikhil".into(),
        })
        .await;
    let unknown_flow = f
        .provider
        .authenticate(LoginProof::AuthorizationCode {
            flow_id: SecretString::from("not-a-flow"),
            state: SecretString::from("s"),
            code: SecretString::from("c"),
        })
        .await;

    assert_eq!(f.provider.mode(), AuthMode::Google);
    assert!(matches!(mock, Err(crate::Error::Forbidden { .. })));
    assert_eq!(failure_code(&unknown_flow.unwrap_err()), "login_expired");
}
