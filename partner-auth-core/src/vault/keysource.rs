//! Where key-encryption keys come from.
//!
//! A [`KeySource`] hands the vault its key-encryption keys (KEKs), the first
//! one being the primary. Three sources ship here:
//!
//! - [`EnvKeySource`] reads `PARTNER_AUTH_VAULT_KEY`,
//! - [`FileKeySource`] reads a key file with the same syntax,
//! - [`DevKeySource`] creates a key file with mode 0600 on first run, for
//!   development only, and warns loudly every time it is used.
//!
//! ## Key list syntax
//!
//! A comma-separated list of `ID:BASE64` items, for example
//! `k2026b:q83v...=,k2026a:Zm9v...=`. `ID` is 1 to 32 characters of `a-z`,
//! `0-9`, `-` and `_`, starting with a letter or digit; `BASE64` is the
//! standard base64 (with padding) of exactly 32 random bytes. The first item
//! is the primary key (it seals); the others only open. A single key may be
//! given bare, without `ID:`; its id is then `default`. Whitespace around
//! items is ignored, ids must be unique.
//!
//! A cloud KMS fits behind the same trait: its source returns the data it
//! unwrapped at start-up, or a future variant delegates wrapping entirely.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::VaultError;

/// The environment variable [`EnvKeySource::from_env`] reads.
pub const VAULT_KEY_ENV: &str = "PARTNER_AUTH_VAULT_KEY";

/// Length of a key-encryption key, in bytes (AES-256).
pub const KEK_LEN: usize = 32;

/// Longest key id, in bytes.
pub const MAX_KEK_ID_LEN: usize = 32;

/// The id given to a single key written without `ID:`.
pub const DEFAULT_KEK_ID: &str = "default";

/// The name of a key-encryption key, written into every envelope.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KekId(String);

impl KekId {
    /// Parses an id: 1 to 32 bytes of `a-z`, `0-9`, `-`, `_`, starting with
    /// a letter or digit.
    pub fn new(value: impl Into<String>) -> Result<Self, VaultError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= MAX_KEK_ID_LEN
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(value))
        } else {
            Err(VaultError::InvalidKeyId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({:?})", self.0)
    }
}

impl TryFrom<String> for KekId {
    type Error = VaultError;

    fn try_from(value: String) -> Result<Self, VaultError> {
        Self::new(value)
    }
}

impl From<KekId> for String {
    fn from(value: KekId) -> String {
        value.0
    }
}

impl std::str::FromStr for KekId {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        Self::new(s)
    }
}

/// Length of a key check value, in bytes.
pub const KEY_CHECK_LEN: usize = 16;

/// A key check value (see [`Kek::check_value`]).
pub type KeyCheck = [u8; KEY_CHECK_LEN];

/// The domain-separation label of key check values: no other HMAC under a
/// KEK uses it, so a check value says nothing about any other output.
pub const KEY_CHECK_LABEL: &[u8] = b"partner-auth vault key check v1";

/// A key-encryption key: an id and 32 secret bytes, wiped on drop.
///
/// It has no `Debug` that shows the bytes, no equality and no `Clone`: the
/// one accessor, [`Kek::expose_key`], makes every use visible in review.
pub struct Kek {
    id: KekId,
    key: Zeroizing<[u8; KEK_LEN]>,
}

impl Kek {
    /// Wraps key bytes under an id.
    pub fn new(id: KekId, key: Zeroizing<[u8; KEK_LEN]>) -> Self {
        Self { id, key }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate(id: KekId) -> Self {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self { id, key }
    }

    /// Decodes standard base64 of exactly 32 bytes.
    pub fn from_base64(id: KekId, text: &str) -> Result<Self, VaultError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| VaultError::KeyConfig(format!("key {id} is not valid base64")))?,
        );
        if decoded.len() != KEK_LEN {
            return Err(VaultError::KeyConfig(format!(
                "key {id} must decode to {KEK_LEN} bytes"
            )));
        }
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self { id, key })
    }

    /// The key's id.
    pub fn id(&self) -> &KekId {
        &self.id
    }

    /// The raw key bytes; only the envelope code and key derivation use this.
    pub fn expose_key(&self) -> &[u8; KEK_LEN] {
        &self.key
    }

    /// The key's check value: the first 16 bytes of
    /// HMAC-SHA256(key, [`KEY_CHECK_LABEL`]). Stored with the key's id, it
    /// ties the id to these bytes without revealing them.
    pub fn check_value(&self) -> KeyCheck {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC accepts keys of any length");
        mac.update(KEY_CHECK_LABEL);
        let full = mac.finalize().into_bytes();
        let mut check = [0u8; KEY_CHECK_LEN];
        check.copy_from_slice(&full[..KEY_CHECK_LEN]);
        check
    }

    /// Standard base64 of the key, for writing a key file or variable.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.as_ref()))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Parses a key list (see the module docs for the syntax); the first key is
/// the primary.
pub fn parse_key_list(text: &str) -> Result<Vec<Kek>, VaultError> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(VaultError::KeyConfig("no key given".into()));
    }

    let mut keys: Vec<Kek> = Vec::with_capacity(items.len());
    for item in &items {
        let (id, b64) = match item.split_once(':') {
            Some((id, b64)) => (KekId::new(id.trim())?, b64),
            None if items.len() == 1 => (KekId::new(DEFAULT_KEK_ID)?, *item),
            None => {
                return Err(VaultError::KeyConfig(
                    "with several keys every key needs an ID: prefix".into(),
                ));
            }
        };
        if keys.iter().any(|k| k.id == id) {
            return Err(VaultError::KeyConfig(format!("key id {id} listed twice")));
        }
        keys.push(Kek::from_base64(id, b64)?);
    }
    Ok(keys)
}

/// Supplies key-encryption keys, primary first.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// Loads the keys; the first is the primary.
    async fn load(&self) -> Result<Vec<Kek>, VaultError>;

    /// A short description for logs (never key material).
    fn describe(&self) -> String;
}

/// Keys from an environment variable ([`VAULT_KEY_ENV`] by default).
#[derive(Debug, Clone)]
pub struct EnvKeySource {
    var: String,
}

impl EnvKeySource {
    /// Reads [`VAULT_KEY_ENV`].
    pub fn from_env() -> Self {
        Self::named(VAULT_KEY_ENV)
    }

    /// Reads another variable.
    pub fn named(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }

    /// Whether the variable is set at all.
    pub fn is_set(&self) -> bool {
        std::env::var_os(&self.var).is_some()
    }
}

#[async_trait]
impl KeySource for EnvKeySource {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        let value = Zeroizing::new(
            std::env::var(&self.var)
                .map_err(|_| VaultError::KeyConfig(format!("{} is not set", self.var)))?,
        );
        parse_key_list(&value)
    }

    fn describe(&self) -> String {
        format!("environment variable {}", self.var)
    }
}

/// Keys from a file holding a key list; the file must be mode 0600 or
/// stricter.
#[derive(Debug, Clone)]
pub struct FileKeySource {
    path: PathBuf,
}

impl FileKeySource {
    /// Reads `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VaultError + '_ {
    move |source| VaultError::KeyFile {
        path: path.to_owned(),
        source,
    }
}

fn read_key_file(path: &Path) -> Result<Vec<Kek>, VaultError> {
    check_owner_only(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path))?);
    parse_key_list(&text)
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(io_err(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecureKeyFile(path.to_owned()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path) -> Result<(), VaultError> {
    Ok(())
}

#[async_trait]
impl KeySource for FileKeySource {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        read_key_file(&self.path)
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}

/// A development key file, created with a fresh random key on first use.
///
/// Every load logs a warning: a key that sits next to the data it protects
/// protects nothing against whoever can read that disk.
#[derive(Debug, Clone)]
pub struct DevKeySource {
    path: PathBuf,
}

impl DevKeySource {
    /// Uses (and if needed creates) `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl KeySource for DevKeySource {
    async fn load(&self) -> Result<Vec<Kek>, VaultError> {
        let path = &self.path;
        if !path.exists() {
            let kek = Kek::generate(KekId::new("dev")?);
            let line = Zeroizing::new(format!("dev:{}\n", kek.to_base64().as_str()));
            write_owner_only(path, line.as_bytes())?;
            tracing::warn!(
                path = %path.display(),
                "DEVELOPMENT VAULT KEY CREATED: credentials are sealed with a key stored in a \
                 plain file; set PARTNER_AUTH_VAULT_KEY for any real deployment"
            );
        }
        tracing::warn!(
            path = %path.display(),
            "USING A DEVELOPMENT VAULT KEY FILE: not for production"
        );
        read_key_file(path)
    }

    fn describe(&self) -> String {
        format!("development key file {}", self.path.display())
    }
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    use std::io::Write as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(path))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn key_list_first_is_primary_and_ids_are_checked() {
        let keys = parse_key_list(&format!("new:{}, old:{}", b64(1), b64(2))).unwrap();
        assert_eq!(keys[0].id().as_str(), "new");
        assert_eq!(keys[1].expose_key(), &[2u8; 32]);

        let bare = parse_key_list(&b64(3)).unwrap();
        assert_eq!(bare[0].id().as_str(), DEFAULT_KEK_ID);

        for bad in [
            String::new(),
            format!("a:{},a:{}", b64(1), b64(2)),
            format!("{},{}", b64(1), b64(2)),
            format!("Bad:{}", b64(1)),
            "k:c2hvcnQ=".to_owned(),
            "k:!!!".to_owned(),
        ] {
            assert!(parse_key_list(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_debug_and_errors_never_show_key_bytes() {
        let secret = b64(7);
        let keys = parse_key_list(&format!("k1:{secret}")).unwrap();
        let shown = format!("{:?}", keys[0]);
        assert!(!shown.contains(&secret));
        assert!(shown.contains("redacted"));

        let err = parse_key_list(&format!("k1:{}", &secret[..20])).unwrap_err();
        assert!(!err.to_string().contains(&secret[..20]));
    }

    #[tokio::test]
    async fn dev_key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("vault.key");
        let source = DevKeySource::new(&path);

        let first = source.load().await.unwrap();
        let again = source.load().await.unwrap();
        assert_eq!(first[0].expose_key(), again[0].expose_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        std::fs::write(&path, format!("k1:{}", b64(1))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

        let err = FileKeySource::new(&path).load().await.unwrap_err();
        assert!(matches!(err, VaultError::InsecureKeyFile(_)));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(FileKeySource::new(&path).load().await.unwrap().len(), 1);
    }

    #[test]
    fn key_check_value_matches_the_documented_vector() {
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        let kek = Kek::new(KekId::new("k").unwrap(), bytes);
        let hex: String = kek
            .check_value()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "ef8594645f1718fa792348f3b8ed6873");
        let doc = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/vault-format.md"
        ));
        assert!(doc.contains(&format!("`{hex}`")));
    }
}
