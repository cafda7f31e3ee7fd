//! Opaque refresh tokens and their digests.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that marks a partner-auth refresh token (and lets secret scanners find one).
pub const REFRESH_PREFIX: &str = "pa_rt_";

/// Random bytes in a refresh token: 256 bits.
const REFRESH_BYTES: usize = 32;

/// Length of a well-formed refresh token, in bytes.
pub const REFRESH_TOKEN_LEN: usize = REFRESH_PREFIX.len() + 43;

/// A refresh token as handed to a client. Redacted in `Debug`, wiped on drop;
/// read it through [`RefreshToken::expose_secret`] only where it leaves the process.
pub struct RefreshToken(SecretString);

impl RefreshToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; REFRESH_BYTES]);
        OsRng.fill_bytes(bytes.as_mut());
        let text = format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes.as_ref()));
        Self(SecretString::from(text))
    }

    /// Accepts a token presented by a client if it has the right shape; the
    /// store decides whether it is known.
    pub fn parse(presented: &str) -> Option<Self> {
        let body = presented.strip_prefix(REFRESH_PREFIX)?;
        let ok = presented.len() == REFRESH_TOKEN_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(SecretString::from(presented.to_owned())))
    }

    /// The token text, for the response body or cookie only.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The SHA-256 digest under which the token is stored.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.expose_secret().as_bytes()).into())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// SHA-256 of a refresh token: what stores keep and look up by. A 256-bit
/// random token makes a plain hash sufficient; no salt or slow hash is needed.
#[derive(Clone, Copy, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Wraps stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses stored bytes of any length; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for TokenDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_eq!(a.expose_secret().len(), REFRESH_TOKEN_LEN);
        assert!(a.expose_secret().starts_with(REFRESH_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn parse_accepts_only_the_exact_shape() {
        let t = RefreshToken::generate();
        let parsed = RefreshToken::parse(t.expose_secret()).unwrap();
        assert_eq!(parsed.digest(), t.digest());
        for bad in [
            "",
            REFRESH_PREFIX,
            "pa_rt_short",
            &"x".repeat(REFRESH_TOKEN_LEN),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
        let with_dot = format!("{}.", &t.expose_secret()[..REFRESH_TOKEN_LEN - 1]);
        assert!(RefreshToken::parse(&with_dot).is_none());
    }

    #[test]
    fn debug_reveals_nothing() {
        let t = RefreshToken::generate();
        let shown = format!("{t:?} {:?}", t.digest());
        assert!(!shown.contains(&t.expose_secret()[REFRESH_PREFIX.len()..]));
        assert!(shown.contains("redacted"));
    }
}
