//! The provider's signing keys (JWKS), cached.
//!
//! - The cache lifetime comes from the key endpoint's `Cache-Control:
//!   max-age`, clamped to [`MIN_KEY_LIFETIME`]..=[`MAX_KEY_LIFETIME`].
//! - A `kid` the cache does not know triggers one refetch, at most once per
//!   [`UNKNOWN_KID_REFETCH_INTERVAL`], so tokens with made-up key ids can not
//!   make us hammer the provider.
//! - When the endpoint fails, the last good keys stay in use, stale or not.
//! - Only RSA keys for `RS256` signatures are loaded.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::GoogleError;
use super::error::IdTokenRejection;
use crate::{Clock, metrics};

/// Shortest cache lifetime, whatever `max-age` says.
pub const MIN_KEY_LIFETIME: Duration = Duration::seconds(60);
/// Longest cache lifetime, whatever `max-age` says.
pub const MAX_KEY_LIFETIME: Duration = Duration::hours(24);
/// Lifetime when the response carries no `max-age`.
pub const DEFAULT_KEY_LIFETIME: Duration = Duration::minutes(5);
/// At most one refetch for unknown key ids per this interval.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::seconds(60);
/// After a failed fetch of expired keys, wait this long before trying again.
pub const FAILED_FETCH_RETRY: Duration = Duration::seconds(10);
/// Largest key-set document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys read from one document at most.
const MAX_KEYS: usize = 32;
/// Longest key id accepted.
pub const MAX_KID_LEN: usize = 128;

/// Whether `kid` is a key id we are willing to look up.
pub fn kid_is_acceptable(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A key-set document as fetched.
#[derive(Debug, Clone)]
pub struct FetchedKeys {
    /// The JSON body.
    pub body: Vec<u8>,
    /// `max-age` of the response's `Cache-Control`, when it had one.
    pub max_age: Option<Duration>,
}

/// Where keys come from: the provider's `jwks_uri` in production, a fake in
/// tests.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// Fetches the current key set.
    async fn fetch(&self) -> Result<FetchedKeys, GoogleError>;
}

/// Fetches keys over HTTP(S) from a `jwks_uri`.
#[derive(Debug, Clone)]
pub struct HttpKeySource {
    http: reqwest::Client,
    url: url::Url,
}

impl HttpKeySource {
    /// A source for `url`, using `http` (which should not follow redirects).
    pub fn new(http: reqwest::Client, url: url::Url) -> Self {
        Self { http, url }
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<FetchedKeys, GoogleError> {
        let unreachable = |source| GoogleError::Unreachable {
            what: "keys",
            source,
        };
        let response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable)?;
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_max_age);
        let body = read_limited(response, MAX_JWKS_BYTES)
            .await
            .map_err(unreachable)?
            .ok_or(GoogleError::KeysUnavailable)?;
        Ok(FetchedKeys { body, max_age })
    }
}

/// Reads a response body, or `None` when it exceeds `limit` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The `max-age` directive of a `Cache-Control` value. `no-store` and
/// `no-cache` count as zero (and are then clamped to the minimum lifetime).
pub fn parse_max_age(header: &str) -> Option<Duration> {
    let mut found = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            let value = value.trim_matches('"');
            if let Ok(seconds) = value.parse::<u32>() {
                found = Some(Duration::seconds(i64::from(seconds)));
            }
        }
    }
    found
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
}

/// Reads the RS256 signing keys out of a key-set document. Keys of other
/// types, algorithms or uses, and keys without a usable `kid`, are skipped.
pub fn parse_jwks(body: &[u8]) -> Option<HashMap<String, DecodingKey>> {
    let set: JwkSet = serde_json::from_slice(body).ok()?;
    let mut keys = HashMap::new();
    for value in set.keys.into_iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<RsaJwk>(value) else {
            continue;
        };
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            && jwk.usage.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        if !usable || !kid_is_acceptable(&kid) {
            continue;
        }
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            keys.insert(kid, key);
        }
    }
    Some(keys)
}

struct Cached {
    keys: HashMap<String, DecodingKey>,
    expires_at: OffsetDateTime,
}

#[derive(Default)]
struct FetchBook {
    last_unknown_kid_refetch: Option<OffsetDateTime>,
    last_failure: Option<OffsetDateTime>,
}

/// The cache of a provider's signing keys.
pub struct JwksCache {
    source: Arc<dyn KeySource>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Option<Cached>>,
    // Held while fetching, so concurrent misses cause one request, not many.
    book: tokio::sync::Mutex<FetchBook>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

enum Lookup {
    Fresh(DecodingKey),
    FreshMiss,
    Stale,
    Empty,
}

impl JwksCache {
    /// An empty cache over `source`; the first lookup fetches.
    pub fn new(source: Arc<dyn KeySource>, clock: Arc<dyn Clock>) -> Self {
        Self {
            source,
            clock,
            keys: RwLock::new(None),
            book: tokio::sync::Mutex::new(FetchBook::default()),
        }
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let Some(cached) = guard.as_ref() else {
            return Lookup::Empty;
        };
        if self.clock.now() >= cached.expires_at {
            return Lookup::Stale;
        }
        match cached.keys.get(kid) {
            Some(key) => Lookup::Fresh(key.clone()),
            None => Lookup::FreshMiss,
        }
    }

    fn any_key(&self, kid: &str) -> Result<DecodingKey, GoogleError> {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let cached = guard.as_ref().ok_or(GoogleError::KeysUnavailable)?;
        cached
            .keys
            .get(kid)
            .cloned()
            .ok_or(GoogleError::IdToken(IdTokenRejection::UnknownKey))
    }

    /// The key named `kid`, fetching when the cache is empty or expired, and
    /// refetching (throttled) when the cache does not know `kid`.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, GoogleError> {
        if let Lookup::Fresh(key) = self.lookup(kid) {
            return Ok(key);
        }

        let mut book = self.book.lock().await;
        let now = self.clock.now();
        let fetch = match self.lookup(kid) {
            Lookup::Fresh(key) => return Ok(key),
            Lookup::Empty | Lookup::Stale => book
                .last_failure
                .is_none_or(|at| now - at >= FAILED_FETCH_RETRY),
            Lookup::FreshMiss => {
                let due = book
                    .last_unknown_kid_refetch
                    .is_none_or(|at| now - at >= UNKNOWN_KID_REFETCH_INTERVAL);
                if due {
                    book.last_unknown_kid_refetch = Some(now);
                }
                due
            }
        };
        if fetch {
            match self.refresh(now).await {
                Ok(count) => {
                    book.last_failure = None;
                    tracing::debug!(keys = count, "provider signing keys loaded");
                }
                Err(e) => {
                    book.last_failure = Some(now);
                    tracing::warn!(error = %e, "provider signing keys could not be refreshed; keeping the last good keys");
                }
            }
        }
        drop(book);

        self.any_key(kid)
    }

    async fn refresh(&self, now: OffsetDateTime) -> Result<usize, GoogleError> {
        let fetched = match self.source.fetch().await {
            Ok(fetched) => fetched,
            Err(e) => {
                let outcome = match e {
                    GoogleError::Unreachable { .. } => metrics::JwksFetch::Unreachable,
                    _ => metrics::JwksFetch::Invalid,
                };
                metrics::jwks_fetch(outcome);
                return Err(e);
            }
        };
        let keys = parse_jwks(&fetched.body).filter(|keys| !keys.is_empty());
        let Some(keys) = keys else {
            metrics::jwks_fetch(metrics::JwksFetch::Invalid);
            return Err(GoogleError::KeysUnavailable);
        };
        metrics::jwks_fetch(metrics::JwksFetch::Ok);
        let lifetime = fetched
            .max_age
            .unwrap_or(DEFAULT_KEY_LIFETIME)
            .clamp(MIN_KEY_LIFETIME, MAX_KEY_LIFETIME);
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            keys,
            expires_at: now + lifetime,
        });
        Ok(count)
    }

    /// Key ids currently cached (stale or not); for diagnostics and tests.
    pub fn cached_kids(&self) -> Vec<String> {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut kids: Vec<String> = guard
            .as_ref()
            .map(|c| c.keys.keys().cloned().collect())
            .unwrap_or_default();
        kids.sort();
        kids
    }
}
