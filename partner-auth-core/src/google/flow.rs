//! Pending sign-ins: what the callback needs to finish a login, kept on the
//! server under a random flow id that the browser holds in a short-lived
//! cookie.
//!
//! A flow is single use: [`FlowStore::take`] removes it, so a replayed
//! callback finds nothing. Stores key flows by the SHA-256 of the flow id, so
//! a dump of a store never yields a usable cookie value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::GoogleError;
use crate::Error;

/// Longest return path accepted, in bytes.
pub const MAX_RETURN_PATH_LEN: usize = 512;

/// Length of a flow id, state or nonce: 32 random bytes in base64url.
pub const RANDOM_TOKEN_LEN: usize = 43;

/// Pending flows a [`MemoryFlowStore`] keeps at most; beyond that new logins
/// are refused until old ones expire.
pub const MEMORY_FLOW_CAPACITY: usize = 10_000;

/// 32 bytes from the operating system's random source, base64url without padding.
pub(crate) fn random_token() -> String {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// Compares two secrets in constant time for equal lengths; unequal lengths
/// are simply unequal (the length of a state is not secret).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The random id of a pending sign-in, held by the browser in an HttpOnly
/// cookie. Redacted in `Debug`.
pub struct FlowId(SecretString);

impl FlowId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(SecretString::from(random_token()))
    }

    /// Accepts a presented cookie value if it has the shape of a flow id.
    pub fn parse(presented: &str) -> Option<Self> {
        let ok = presented.len() == RANDOM_TOKEN_LEN
            && presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(SecretString::from(presented.to_owned())))
    }

    /// The id, for the cookie only.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The digest stores key flows by.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose_secret().as_bytes()).into()
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlowId([redacted])")
    }
}

/// A same-origin relative path to send the browser to after the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath(String);

impl ReturnPath {
    /// Accepts `path` only when it is a same-origin relative path: it starts
    /// with a single `/`, holds no `//`, no backslash, no scheme, no control
    /// or non-ASCII characters, and is at most [`MAX_RETURN_PATH_LEN`] bytes.
    pub fn parse(path: &str) -> Option<Self> {
        let ok = path.len() <= MAX_RETURN_PATH_LEN
            && path.starts_with('/')
            && !path.contains("//")
            && !path.contains('\\')
            && path.bytes().all(|b| b.is_ascii_graphic())
            // A colon before any `?` could read as a scheme to a lenient parser.
            && !path.split(['?', '#']).next().unwrap_or("").contains(':');
        ok.then(|| Self(path.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ReturnPath {
    fn default() -> Self {
        Self("/".into())
    }
}

/// What the callback needs to finish a login. Secret parts are redacted in
/// `Debug` and wiped on drop.
pub struct PendingLogin {
    /// The `state` sent to the provider.
    pub state: SecretString,
    /// The PKCE verifier whose challenge was sent.
    pub pkce_verifier: SecretString,
    /// The `nonce` the ID token must carry.
    pub nonce: SecretString,
    /// Whether the session should be remembered (24 h).
    pub remember_me: bool,
    /// Where to send the browser afterwards.
    pub return_to: ReturnPath,
    /// After this instant the flow is gone.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("remember_me", &self.remember_me)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// Whether `presented` is this flow's state (constant time).
    pub fn state_matches(&self, presented: &str) -> bool {
        secrets_equal(self.state.expose_secret(), presented)
    }
}

/// Keeps pending sign-ins between the redirect to the provider and the
/// callback.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Stores a flow under `id`; `now` lets a bounded store drop expired flows.
    async fn put(&self, id: &FlowId, flow: PendingLogin, now: OffsetDateTime) -> Result<(), Error>;

    /// Removes and returns the flow under `id` if it exists, has not expired
    /// at `now` and passes `keep_unless`; a flow that fails the test stays in
    /// the store untouched, in one step, so that no other request can find it
    /// missing meanwhile. A second successful call for the same id returns
    /// `None`.
    async fn take_if(
        &self,
        id: &FlowId,
        now: OffsetDateTime,
        test: &(dyn for<'a> Fn(&'a PendingLogin) -> bool + Sync),
    ) -> Result<Option<PendingLogin>, Error>;

    /// Removes and returns the flow under `id` if it exists and has not
    /// expired at `now`. A second call for the same id returns `None`.
    async fn take(&self, id: &FlowId, now: OffsetDateTime) -> Result<Option<PendingLogin>, Error> {
        self.take_if(id, now, &|_| true).await
    }
}

/// A [`FlowStore`] in process memory, bounded to [`MEMORY_FLOW_CAPACITY`]
/// flows. Fine for one process; several processes behind a load balancer
/// need a shared store (or sticky sessions).
#[derive(Default)]
pub struct MemoryFlowStore {
    flows: Mutex<HashMap<[u8; 32], PendingLogin>>,
}

impl MemoryFlowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many flows are held (expired ones included until the next insert).
    pub fn len(&self) -> usize {
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn put(&self, id: &FlowId, flow: PendingLogin, now: OffsetDateTime) -> Result<(), Error> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        if flows.len() >= MEMORY_FLOW_CAPACITY {
            flows.retain(|_, f| f.expires_at > now);
        }
        if flows.len() >= MEMORY_FLOW_CAPACITY {
            return Err(GoogleError::TooManyFlows.into());
        }
        flows.insert(id.digest(), flow);
        Ok(())
    }

    async fn take_if(
        &self,
        id: &FlowId,
        now: OffsetDateTime,
        test: &(dyn for<'a> Fn(&'a PendingLogin) -> bool + Sync),
    ) -> Result<Option<PendingLogin>, Error> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        let key = id.digest();
        let Some(flow) = flows.get(&key) else {
            return Ok(None);
        };
        if flow.expires_at <= now {
            flows.remove(&key);
            return Ok(None);
        }
        if !test(flow) {
            return Ok(None);
        }
        Ok(flows.remove(&key))
    }
}
