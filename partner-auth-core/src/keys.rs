//! Signing keys for access tokens and the key ring that holds them.
//!
//! Keys are ES256 (P-256) by default so that other services can verify tokens
//! through the public JWKS without sharing a secret. Each key carries its own
//! `kid` and exactly one algorithm; verification never accepts another.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::Error;

/// Longest accepted `kid`.
pub const MAX_KID_LEN: usize = 64;

/// Whether `kid` has the syntax we issue: 1 to 64 of `A-Z a-z 0-9 - _`.
pub fn kid_is_well_formed(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published in the JWKS but not yet signing, so verifiers learn it first.
    Next,
    /// Signs new tokens.
    Primary,
    /// No longer signs; still published and verifying until tokens it signed expire.
    Retiring,
}

/// One signing key: private half, public half, `kid` and pinned algorithm.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key from the operating system's random source.
    pub fn generate_es256() -> Result<Self, Error> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| Error::SigningKey("key generation failed"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| Error::SigningKey("key export failed"))?;
        Self::from_es256_pkcs8(der.as_ref())
    }

    /// Loads a P-256 private key from PKCS#8 DER.
    pub fn from_es256_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| Error::SigningKey("not a P-256 PKCS#8 key"))?;
        let point = pair.public_key().as_ref();
        // An uncompressed SEC1 point: 0x04, then x and y of 32 bytes each.
        if point.len() != 65 || point[0] != 0x04 {
            return Err(Error::SigningKey("unexpected public key encoding"));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let kid = format!("es256-{}", &hex(&Sha256::digest(point))[..16]);
        let decoding = DecodingKey::from_ec_components(&x, &y)
            .map_err(|_| Error::SigningKey("public key rejected"))?;
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "alg": "ES256", "use": "sig",
        });

        Ok(Self {
            kid,
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der),
            decoding,
            jwk,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The key id carried in the JWT header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs and verifies with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half as a JWK object.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    fn to_pem(&self) -> Zeroizing<String> {
        let body = Zeroizing::new(STANDARD.encode(self.pkcs8.as_slice()));
        let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    fn from_pem(text: &str) -> Result<Self, Error> {
        let body: Zeroizing<String> = Zeroizing::new(
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .collect(),
        );
        let der = Zeroizing::new(
            STANDARD
                .decode(body.as_bytes())
                .map_err(|_| Error::SigningKey("key file is not PEM"))?,
        );
        Self::from_es256_pkcs8(&der)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signing keys: one primary that signs, others that only verify.
///
/// Rotation publishes before it signs and keeps publishing after: a key
/// added with [`add_next`](Self::add_next) is in the JWKS before
/// [`promote`](Self::promote) lets it sign, and a retiring key leaves only
/// through [`remove_retired`](Self::remove_retired), which refuses until it
/// has been retiring for the time its tokens may live.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<(SigningKey, KeyStatus)>,
    /// When each retiring key stopped signing (or, for a key loaded as
    /// retiring, when this process first saw it: the earliest it can know).
    retiring_since: HashMap<String, OffsetDateTime>,
}

impl KeyRing {
    /// A ring whose only key is `primary`.
    pub fn new(primary: SigningKey) -> Self {
        Self {
            keys: vec![(primary, KeyStatus::Primary)],
            retiring_since: HashMap::new(),
        }
    }

    /// A ring with one freshly generated ES256 key; for tests and quick starts.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self::new(SigningKey::generate_es256()?))
    }

    /// Adds a key that verifies and is published but does not sign yet.
    pub fn add_next(&mut self, key: SigningKey) {
        self.keys.push((key, KeyStatus::Next));
    }

    /// Makes `kid` the primary at `now`; the old primary keeps verifying as
    /// `Retiring` from then on.
    pub fn promote(&mut self, kid: &str, now: OffsetDateTime) -> Result<(), Error> {
        if !self.keys.iter().any(|(k, _)| k.kid == kid) {
            return Err(Error::SigningKey("no such kid in the ring"));
        }
        for (key, status) in &mut self.keys {
            if key.kid == kid {
                *status = KeyStatus::Primary;
                self.retiring_since.remove(kid);
            } else if *status == KeyStatus::Primary {
                *status = KeyStatus::Retiring;
                self.retiring_since.insert(key.kid.clone(), now);
            }
        }
        Ok(())
    }

    /// Stamps every retiring key whose retirement time is unknown (loaded
    /// from files) with `now`, so that its removal waits a full `keep`.
    pub fn stamp_retiring(&mut self, now: OffsetDateTime) {
        for (key, status) in &self.keys {
            if *status == KeyStatus::Retiring {
                self.retiring_since.entry(key.kid.clone()).or_insert(now);
            }
        }
    }

    /// Drops a retiring key: it no longer verifies and leaves the JWKS.
    /// Refused until the key has been retiring for `keep` (the longest
    /// access-token lifetime plus the leeway; [`TokenIssuer::remove_retired`]
    /// passes exactly that), so that no token it signed is still valid
    /// anywhere when its public key disappears.
    ///
    /// [`TokenIssuer::remove_retired`]: crate::TokenIssuer::remove_retired
    pub fn remove_retired(
        &mut self,
        kid: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), Error> {
        if !self
            .keys
            .iter()
            .any(|(k, s)| k.kid == kid && *s == KeyStatus::Retiring)
        {
            return Err(Error::SigningKey("only a retiring key can be removed"));
        }
        let since = self.retiring_since.get(kid).copied().unwrap_or(now);
        if now < since + keep {
            return Err(Error::SigningKey(
                "a retiring key stays published until every token it signed has expired",
            ));
        }
        self.keys.retain(|(k, _)| k.kid != kid);
        self.retiring_since.remove(kid);
        Ok(())
    }

    /// The key that signs.
    pub fn primary(&self) -> &SigningKey {
        self.keys
            .iter()
            .find(|(_, s)| *s == KeyStatus::Primary)
            .map(|(k, _)| k)
            .unwrap_or(&self.keys[0].0)
    }

    /// A verifying key by `kid`; only configured keys are ever consulted.
    pub fn verifier(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|(k, _)| k.kid == kid).map(|(k, _)| k)
    }

    /// Status of every key, by `kid`.
    pub fn statuses(&self) -> Vec<(String, KeyStatus)> {
        self.keys.iter().map(|(k, s)| (k.kid.clone(), *s)).collect()
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|(k, _)| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Loads the ring kept in `dir`, creating the directory and a first key
    /// when there is none. Key files are `<kid>.pem` (PKCS#8, mode 0600, the
    /// directory 0700); the file `primary` names the signing key; every other
    /// key file verifies as `Retiring`.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::KeyFile { path, source }
        };
        create_owner_only_dir(dir).map_err(io(dir))?;

        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "pem") {
                let text = Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
                keys.push(SigningKey::from_pem(&text)?);
            }
        }

        let primary_file = dir.join("primary");
        if keys.is_empty() {
            let key = SigningKey::generate_es256()?;
            let path = dir.join(format!("{}.pem", key.kid));
            write_private_file(&path, key.to_pem().as_bytes()).map_err(io(&path))?;
            write_private_file(&primary_file, key.kid.as_bytes()).map_err(io(&primary_file))?;
            tracing::info!(kid = %key.kid, dir = %dir.display(), "created signing key");
            keys.push(key);
        }

        let primary = match fs::read_to_string(&primary_file) {
            Ok(kid) => kid.trim().to_owned(),
            Err(_) => keys[0].kid.clone(),
        };
        if !keys.iter().any(|k| k.kid == primary) {
            return Err(Error::SigningKey(
                "the primary file names no key in the ring",
            ));
        }
        let keys = keys
            .into_iter()
            .map(|k| {
                let status = if k.kid == primary {
                    KeyStatus::Primary
                } else {
                    KeyStatus::Retiring
                };
                (k, status)
            })
            .collect();
        Ok(Self {
            keys,
            retiring_since: HashMap::new(),
        })
    }
}

/// What [`create_private_dir`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirAccess {
    /// The directory did not exist and was created with mode 0700.
    Created,
    /// It existed and only its owner may read it.
    OwnerOnly,
    /// It existed and group or others may read (list) it; the files this
    /// library writes inside are owner-only all the same.
    ReadableByOthers,
}

/// Creates `dir` (and missing parents) with mode 0700 when it does not exist.
///
/// An existing directory keeps its mode: it may be a shared one such as the
/// working directory or `$HOME`, which is not ours to change. One that group
/// or others may write to is refused (`PermissionDenied`), since they could
/// replace the database or the keys inside; one they may only read is
/// reported as [`DirAccess::ReadableByOthers`] for the caller to warn about.
pub fn create_private_dir(dir: &Path) -> std::io::Result<DirAccess> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(std::io::Error::other(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o022 != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is writable by group or others (mode {mode:03o}); \
                             run `chmod go-w` on it or choose another directory",
                            dir.display()
                        ),
                    ));
                }
                if mode & 0o044 != 0 {
                    return Ok(DirAccess::ReadableByOthers);
                }
            }
            Ok(DirAccess::OwnerOnly)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir)?;
            // The umask may have taken bits away from 0700, never added any;
            // set it exactly, on a directory that is ours since a moment ago.
            set_owner_only(dir)?;
            Ok(DirAccess::Created)
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` if needed and makes it owner-only (0700), whatever its mode
/// was: for directories that belong to this library alone, like the signing
/// keys.
fn create_owner_only_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    set_owner_only(dir)
}

fn set_owner_only(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to a new file readable by the owner only.
pub fn write_private_file(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_syntax_is_checked() {
        assert!(kid_is_well_formed("es256-0123abcd"));
        for bad in ["", "../etc/passwd", "a b", &"k".repeat(65), "kid\u{0}"] {
            assert!(!kid_is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn ring_persists_with_owner_only_permissions() {
        let dir = tempdir();
        let first = KeyRing::load_or_create(&dir).unwrap();
        let again = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(first.primary().kid(), again.primary().kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join(format!("{}.pem", first.primary().kid()));
            assert_eq!(
                fs::metadata(file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn promotion_keeps_the_old_key_verifying() {
        let mut ring = KeyRing::generate().unwrap();
        let old = ring.primary().kid().to_owned();
        let next = SigningKey::generate_es256().unwrap();
        let next_kid = next.kid().to_owned();
        ring.add_next(next);
        assert_eq!(ring.primary().kid(), old, "a next key must not sign yet");
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);

        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let keep = Duration::seconds(660);
        ring.promote(&next_kid, t0).unwrap();
        assert_eq!(ring.primary().kid(), next_kid);
        assert!(ring.verifier(&old).is_some());
        assert!(
            ring.remove_retired(&old, t0 + keep - Duration::seconds(1), keep)
                .is_err(),
            "removed while its tokens may still be valid"
        );
        assert!(ring.verifier(&old).is_some());
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
        ring.remove_retired(&old, t0 + keep, keep).unwrap();
        assert!(ring.verifier(&old).is_none());
        assert!(
            ring.remove_retired(&next_kid, t0 + keep * 10, keep)
                .is_err(),
            "the primary can not be removed"
        );
    }

    #[test]
    fn debug_hides_key_material() {
        let key = SigningKey::generate_es256().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("pkcs8") && !shown.contains("PRIVATE"));
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_directory_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = std::env::temp_dir().join(format!("pa-dir-{}", uuid::Uuid::new_v4()));

        let fresh = root.join("a").join("b");
        assert_eq!(create_private_dir(&fresh).unwrap(), DirAccess::Created);
        assert_eq!(mode(&fresh), 0o700);

        let shared = root.join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            create_private_dir(&shared).unwrap(),
            DirAccess::ReadableByOthers
        );
        assert_eq!(mode(&shared), 0o755, "an existing directory was chmodded");

        fs::set_permissions(&shared, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(create_private_dir(&shared).unwrap(), DirAccess::OwnerOnly);

        for writable in [0o770, 0o707, 0o777] {
            fs::set_permissions(&shared, fs::Permissions::from_mode(writable)).unwrap();
            let err = create_private_dir(&shared).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(err.to_string().contains("writable by group or others"));
            assert_eq!(mode(&shared), writable);
        }

        // The signing-key directory is ours alone and is kept at 0700.
        let keys = shared.join("signing-keys");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(&keys).unwrap();
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o755)).unwrap();
        KeyRing::load_or_create(&keys).unwrap();
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&shared), 0o755);
        fs::remove_dir_all(root).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pa-keys-{}", uuid::Uuid::new_v4()));
        dir.join("signing-keys")
    }
}
