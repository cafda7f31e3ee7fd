//! The AES-256-GCM envelope, format version 1.
//!
//! Every seal draws a fresh 32-byte data key and two fresh 12-byte nonces
//! from the operating system. The secret is sealed under the data key; the
//! data key is sealed ("wrapped") under a key-encryption key (KEK). Both
//! seals carry associated data that binds them to the record: format
//! version, partner, credential kind and credential id, and for the wrap also
//! the KEK id. The payload's associated data leaves out the KEK id on
//! purpose, so that a key rotation rewraps the data key without ever
//! decrypting the payload. `docs/vault-format.md` gives the exact layout and
//! a known-answer vector.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::{CredentialKind, Kek, KekId, MAX_KEK_ID_LEN, VaultError};
use crate::{CredentialId, PartnerId};

/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Longest secret the vault seals, in bytes.
pub const MAX_SECRET_LEN: usize = 64 * 1024;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Data key length (AES-256).
pub const DEK_LEN: usize = 32;
/// Wrapped data key length: ciphertext plus tag.
pub const WRAPPED_DEK_LEN: usize = DEK_LEN + TAG_LEN;
/// Longest envelope this build accepts.
pub const MAX_ENVELOPE_LEN: usize =
    2 + MAX_KEK_ID_LEN + NONCE_LEN + WRAPPED_DEK_LEN + NONCE_LEN + 4 + MAX_SECRET_LEN + TAG_LEN;

/// Associated-data purpose byte of the data-key wrap.
pub const PURPOSE_WRAP: u8 = 0x01;
/// Associated-data purpose byte of the payload seal.
pub const PURPOSE_PAYLOAD: u8 = 0x02;

/// The record an envelope belongs to; all of it goes into the associated
/// data, so an envelope copied to another row, partner or kind does not open.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The owning partner.
    pub partner: &'a PartnerId,
    /// The credential's kind.
    pub kind: CredentialKind,
    /// The credential's id.
    pub credential: CredentialId,
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Every field is far below 64 KiB: ids are bounded by their syntax.
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// The associated data of one seal: `version || purpose`, then each field as
/// a big-endian `u16` length and its bytes: the KEK id (wrap only), the
/// partner id, the kind and the credential id's 16 raw bytes.
pub fn associated_data(
    version: u8,
    purpose: u8,
    kek: Option<&KekId>,
    binding: &Binding<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(version);
    out.push(purpose);
    if let Some(kek) = kek {
        push_field(&mut out, kek.as_str().as_bytes());
    }
    push_field(&mut out, binding.partner.as_str().as_bytes());
    push_field(&mut out, binding.kind.as_str().as_bytes());
    push_field(&mut out, binding.credential.as_uuid().as_bytes());
    out
}

/// An envelope split into its fields, lengths already checked.
#[derive(Debug)]
pub struct EnvelopeView<'a> {
    /// Format version (always [`FORMAT_VERSION`] once parsed).
    pub version: u8,
    /// The KEK that wrapped the data key.
    pub kek_id: KekId,
    /// Nonce of the wrap.
    pub wrap_nonce: &'a [u8],
    /// The wrapped data key with its tag.
    pub wrapped_dek: &'a [u8],
    /// Nonce of the payload seal.
    pub payload_nonce: &'a [u8],
    /// The sealed payload with its tag.
    pub payload: &'a [u8],
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], VaultError> {
        if self.bytes.len() < n {
            return Err(VaultError::Malformed(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
}

/// Splits an envelope into its fields, checking every length before use.
pub fn parse(bytes: &[u8]) -> Result<EnvelopeView<'_>, VaultError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(VaultError::Malformed("envelope too long"));
    }
    let mut r = Reader { bytes };

    let version = r.take(1, "empty envelope")?[0];
    if version != FORMAT_VERSION {
        return Err(VaultError::UnknownVersion(version));
    }
    let id_len = usize::from(r.take(1, "truncated key id")?[0]);
    if id_len == 0 || id_len > MAX_KEK_ID_LEN {
        return Err(VaultError::Malformed("key id length"));
    }
    let id = r.take(id_len, "truncated key id")?;
    let kek_id = std::str::from_utf8(id)
        .ok()
        .and_then(|s| KekId::new(s).ok())
        .ok_or(VaultError::Malformed("key id"))?;
    let wrap_nonce = r.take(NONCE_LEN, "truncated wrap nonce")?;
    let wrapped_dek = r.take(WRAPPED_DEK_LEN, "truncated data key")?;
    let payload_nonce = r.take(NONCE_LEN, "truncated payload nonce")?;
    let len_bytes = r.take(4, "truncated payload length")?;
    let payload_len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let payload_len =
        usize::try_from(payload_len).map_err(|_| VaultError::Malformed("payload length"))?;
    if !(TAG_LEN + 1..=TAG_LEN + MAX_SECRET_LEN).contains(&payload_len) {
        return Err(VaultError::Malformed("payload length"));
    }
    let payload = r.take(payload_len, "truncated payload")?;
    if !r.bytes.is_empty() {
        return Err(VaultError::Malformed("trailing bytes"));
    }

    Ok(EnvelopeView {
        version,
        kek_id,
        wrap_nonce,
        wrapped_dek,
        payload_nonce,
        payload,
    })
}

/// The id of the KEK an envelope names, without opening it.
pub fn kek_id_of(bytes: &[u8]) -> Result<KekId, VaultError> {
    parse(bytes).map(|v| v.kek_id)
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

fn gcm(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Seals `secret` for the record `binding` under `kek`, with a fresh data
/// key and fresh nonces.
pub fn seal(kek: &Kek, binding: &Binding<'_>, secret: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    rand::rngs::OsRng.fill_bytes(dek.as_mut());
    seal_with(kek, binding, secret, &dek, &random_nonce(), &random_nonce())
}

/// Seals with given data key and nonces. Only the known-answer tests call it
/// with fixed values; everything else goes through [`seal`].
pub(crate) fn seal_with(
    kek: &Kek,
    binding: &Binding<'_>,
    secret: &[u8],
    dek: &[u8; DEK_LEN],
    wrap_nonce: &[u8; NONCE_LEN],
    payload_nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, VaultError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(VaultError::SecretLength {
            max: MAX_SECRET_LEN,
        });
    }

    let wrap_ad = associated_data(FORMAT_VERSION, PURPOSE_WRAP, Some(kek.id()), binding);
    let wrapped = gcm(kek.expose_key())
        .encrypt(
            Nonce::from_slice(wrap_nonce),
            Payload {
                msg: dek,
                aad: &wrap_ad,
            },
        )
        .map_err(|_| VaultError::Malformed("wrap failed"))?;
    let payload_ad = associated_data(FORMAT_VERSION, PURPOSE_PAYLOAD, None, binding);
    let payload = gcm(dek)
        .encrypt(
            Nonce::from_slice(payload_nonce),
            Payload {
                msg: secret,
                aad: &payload_ad,
            },
        )
        .map_err(|_| VaultError::Malformed("seal failed"))?;

    Ok(assemble(
        kek.id(),
        wrap_nonce,
        &wrapped,
        payload_nonce,
        &payload,
    ))
}

fn assemble(
    kek: &KekId,
    wrap_nonce: &[u8],
    wrapped: &[u8],
    payload_nonce: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let id = kek.as_str().as_bytes();
    let mut out =
        Vec::with_capacity(2 + id.len() + NONCE_LEN * 2 + WRAPPED_DEK_LEN + 4 + payload.len());
    out.push(FORMAT_VERSION);
    // KekId's syntax bounds it to 32 bytes.
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(wrap_nonce);
    out.extend_from_slice(wrapped);
    out.extend_from_slice(payload_nonce);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn unwrap_dek(
    kek: &Kek,
    view: &EnvelopeView<'_>,
    binding: &Binding<'_>,
) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError> {
    if kek.id() != &view.kek_id {
        return Err(VaultError::UnknownKey);
    }
    let wrap_ad = associated_data(view.version, PURPOSE_WRAP, Some(&view.kek_id), binding);
    let plain = Zeroizing::new(
        gcm(kek.expose_key())
            .decrypt(
                Nonce::from_slice(view.wrap_nonce),
                Payload {
                    msg: view.wrapped_dek,
                    aad: &wrap_ad,
                },
            )
            .map_err(|_| VaultError::Open)?,
    );
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(VaultError::Open);
    }
    dek.copy_from_slice(&plain);
    Ok(dek)
}

/// Opens an envelope with `kek`, which must be the key the envelope names
/// (look it up by [`kek_id_of`]); any other key is refused unopened.
pub fn open(
    kek: &Kek,
    binding: &Binding<'_>,
    bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let view = parse(bytes)?;
    let dek = unwrap_dek(kek, &view, binding)?;
    let payload_ad = associated_data(view.version, PURPOSE_PAYLOAD, None, binding);
    gcm(&dek)
        .decrypt(
            Nonce::from_slice(view.payload_nonce),
            Payload {
                msg: view.payload,
                aad: &payload_ad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Open)
}

/// Moves an envelope from `old` to `new`: unwraps the data key with `old`,
/// wraps it again under `new` with a fresh nonce, and keeps the payload's
/// bytes as they are. The payload is never decrypted.
pub fn rewrap(
    old: &Kek,
    new: &Kek,
    binding: &Binding<'_>,
    bytes: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let view = parse(bytes)?;
    let dek = unwrap_dek(old, &view, binding)?;
    let wrap_nonce = random_nonce();
    let wrap_ad = associated_data(FORMAT_VERSION, PURPOSE_WRAP, Some(new.id()), binding);
    let wrapped = gcm(new.expose_key())
        .encrypt(
            Nonce::from_slice(&wrap_nonce),
            Payload {
                msg: dek.as_ref(),
                aad: &wrap_ad,
            },
        )
        .map_err(|_| VaultError::Malformed("wrap failed"))?;
    Ok(assemble(
        new.id(),
        &wrap_nonce,
        &wrapped,
        view.payload_nonce,
        view.payload,
    ))
}

/// Associated-data purpose byte of a wrapped system key (the audit key).
pub const PURPOSE_SYSTEM_KEY: u8 = 0x03;

fn system_key_ad(kek: &KekId, name: &str) -> Vec<u8> {
    let mut ad = vec![FORMAT_VERSION, PURPOSE_SYSTEM_KEY];
    push_field(&mut ad, kek.as_str().as_bytes());
    push_field(&mut ad, name.as_bytes());
    ad
}

/// Wraps a 32-byte system key (such as the audit-chain key) under `kek`:
/// `version || id length || KEK id || nonce || wrapped key with tag`.
pub fn wrap_system_key(kek: &Kek, name: &str, key: &[u8; DEK_LEN]) -> Result<Vec<u8>, VaultError> {
    let nonce = random_nonce();
    let wrapped = gcm(kek.expose_key())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: &system_key_ad(kek.id(), name),
            },
        )
        .map_err(|_| VaultError::Malformed("wrap failed"))?;
    let id = kek.id().as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + WRAPPED_DEK_LEN);
    out.push(FORMAT_VERSION);
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&wrapped);
    Ok(out)
}

/// The KEK id a wrapped system key names.
pub fn system_key_kek(bytes: &[u8]) -> Result<KekId, VaultError> {
    let mut r = Reader { bytes };
    let version = r.take(1, "empty key blob")?[0];
    if version != FORMAT_VERSION {
        return Err(VaultError::UnknownVersion(version));
    }
    let id_len = usize::from(r.take(1, "truncated key id")?[0]);
    if id_len == 0 || id_len > MAX_KEK_ID_LEN {
        return Err(VaultError::Malformed("key id length"));
    }
    let id = r.take(id_len, "truncated key id")?;
    let kek = std::str::from_utf8(id)
        .ok()
        .and_then(|s| KekId::new(s).ok())
        .ok_or(VaultError::Malformed("key id"))?;
    if r.bytes.len() != NONCE_LEN + WRAPPED_DEK_LEN {
        return Err(VaultError::Malformed("key blob length"));
    }
    Ok(kek)
}

/// Unwraps a system key wrapped by [`wrap_system_key`]; `kek` must be the
/// key the blob names.
pub fn unwrap_system_key(
    kek: &Kek,
    name: &str,
    bytes: &[u8],
) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError> {
    let named = system_key_kek(bytes)?;
    if &named != kek.id() {
        return Err(VaultError::UnknownKey);
    }
    let body = &bytes[2 + named.as_str().len()..];
    let (nonce, wrapped) = body.split_at(NONCE_LEN);
    let plain = Zeroizing::new(
        gcm(kek.expose_key())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: wrapped,
                    aad: &system_key_ad(&named, name),
                },
            )
            .map_err(|_| VaultError::Open)?,
    );
    let mut key = Zeroizing::new([0u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(VaultError::Open);
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

/// The nonces of an envelope (wrap, payload); for tests that check nonce
/// freshness.
pub fn nonces_of(bytes: &[u8]) -> Result<([u8; NONCE_LEN], [u8; NONCE_LEN]), VaultError> {
    let view = parse(bytes)?;
    let mut wrap = [0u8; NONCE_LEN];
    let mut payload = [0u8; NONCE_LEN];
    wrap.copy_from_slice(view.wrap_nonce);
    payload.copy_from_slice(view.payload_nonce);
    Ok((wrap, payload))
}

#[cfg(test)]
mod tests;
