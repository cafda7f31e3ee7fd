//! Envelope parsing and opening never panic, and nothing forged opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_auth_core::vault::envelope::{self, Binding};
use partner_auth_core::vault::{CredentialKind, Kek, KekId, parse_key_list};
use partner_auth_core::{CredentialId, PartnerId};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = envelope::parse(data) {
        assert_eq!(view.wrap_nonce.len(), envelope::NONCE_LEN);
        assert_eq!(view.wrapped_dek.len(), envelope::WRAPPED_DEK_LEN);
        assert!(view.payload.len() > envelope::TAG_LEN);
    }
    let kek = Kek::new(
        KekId::new("fuzz").expect("valid id"),
        zeroize::Zeroizing::new([0x42; 32]),
    );
    let partner = PartnerId::new("nikhil").expect("valid partner");
    let binding = Binding {
        partner: &partner,
        kind: CredentialKind::ApiKey,
        credential: CredentialId::from_uuid(uuid::Uuid::nil()),
    };
    assert!(envelope::open(&kek, &binding, data).is_err());
    let _ = envelope::system_key_kek(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_key_list(text);
    }
});
