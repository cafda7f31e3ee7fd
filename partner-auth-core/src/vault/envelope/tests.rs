use std::collections::HashSet;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn seq_bytes<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start + u8::try_from(i).unwrap())
}

fn kat_kek() -> Kek {
    Kek::new(
        KekId::new("kat-1").unwrap(),
        Zeroizing::new(seq_bytes::<32>(0)),
    )
}

fn partner(s: &str) -> PartnerId {
    PartnerId::new(s).unwrap()
}

// The vector printed in docs/vault-format.md; it was computed with an
// independent AES-GCM implementation from the documented layout.
const KAT_PLAINTEXT: &[u8] = b"broker-api-key:5up3r-s3cr3t";
const KAT_CREDENTIAL: &str = "00112233-4455-6677-8899-aabbccddeeff";
const KAT_WRAP_AD: &str =
    "010100056b61742d3100066e696b68696c00076170695f6b6579001000112233445566778899aabbccddeeff";
const KAT_PAYLOAD_AD: &str =
    "010200066e696b68696c00076170695f6b6579001000112233445566778899aabbccddeeff";
const KAT_ENVELOPE: &str = "01056b61742d31404142434445464748494a4bc2988c000219a124e5ed3d1db7493d7449f7606f830039144f7e74deab2ed3e43d2a3507b6e557bf97414e513ff5e947505152535455565758595a5b0000002bd3d2c779545d5a6c446627710870b99aa99c7c4d55854a63d0cfacb345bcd0578bfc3653976a7b1c373555";

fn kat_binding(p: &PartnerId) -> Binding<'_> {
    Binding {
        partner: p,
        kind: CredentialKind::ApiKey,
        credential: CredentialId::from_uuid(Uuid::parse_str(KAT_CREDENTIAL).unwrap()),
    }
}

#[test]
fn known_answer_vector_seals_and_opens() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let binding = kat_binding(&p);

    assert_eq!(
        associated_data(1, PURPOSE_WRAP, Some(kek.id()), &binding),
        unhex(KAT_WRAP_AD)
    );
    assert_eq!(
        associated_data(1, PURPOSE_PAYLOAD, None, &binding),
        unhex(KAT_PAYLOAD_AD)
    );

    let sealed = seal_with(
        &kek,
        &binding,
        KAT_PLAINTEXT,
        &seq_bytes::<32>(0x20),
        &seq_bytes::<12>(0x40),
        &seq_bytes::<12>(0x50),
    )
    .unwrap();
    assert_eq!(sealed, unhex(KAT_ENVELOPE));
    assert_eq!(
        open(&kek, &binding, &unhex(KAT_ENVELOPE))
            .unwrap()
            .as_slice(),
        KAT_PLAINTEXT
    );
}

// The audit-key wrap vector of docs/vault-format.md, computed with an
// independent AES-GCM implementation.
const KAT_AUDIT_KEY_BLOB: &str = "01056b61742d31808182838485868788898a8b00c40c78257787f6f6e27f5b2a1ec44ad72fc78c7ec57b7d5584fab3ca81438b545bb889292ab3523f784f50f0b3d949";

#[test]
fn audit_key_wrap_known_answer_vector() {
    let kek = kat_kek();
    let blob = unhex(KAT_AUDIT_KEY_BLOB);

    assert_eq!(system_key_kek(&blob).unwrap(), *kek.id());
    let key = unwrap_system_key(&kek, "audit-chain", &blob).unwrap();
    assert_eq!(*key, seq_bytes::<32>(0x60));
    assert!(
        matches!(
            unwrap_system_key(&kek, "other-key", &blob),
            Err(VaultError::Open)
        ),
        "the key name is bound into the associated data"
    );
}

#[test]
fn same_plaintext_sealed_twice_differs() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let one = seal(&kek, &b, b"same").unwrap();
    let two = seal(&kek, &b, b"same").unwrap();
    assert_ne!(one, two);
    assert_eq!(open(&kek, &b, &one).unwrap().as_slice(), b"same");
    assert_eq!(open(&kek, &b, &two).unwrap().as_slice(), b"same");
}

#[test]
fn v3_hundred_thousand_seals_repeat_no_nonce() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let mut seen = HashSet::with_capacity(200_000);
    for _ in 0..100_000 {
        let (wrap, payload) = nonces_of(&seal(&kek, &b, b"x").unwrap()).unwrap();
        assert!(seen.insert(wrap), "wrap nonce repeated");
        assert!(seen.insert(payload), "payload nonce repeated");
    }
    assert_eq!(seen.len(), 200_000);
}

#[test]
fn v1_flipped_byte_anywhere_fails_with_a_typed_error() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let good = unhex(KAT_ENVELOPE);
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= bit;
            let err = open(&kek, &b, &bad).unwrap_err();
            let expected = match i {
                0 => matches!(err, VaultError::UnknownVersion(_)),
                1 => matches!(err, VaultError::Malformed(_)),
                2..=6 => matches!(err, VaultError::Malformed(_) | VaultError::UnknownKey),
                _ => matches!(err, VaultError::Open | VaultError::Malformed(_)),
            };
            assert!(expected, "byte {i} bit {bit:#x}: {err:?}");
        }
    }
}

#[test]
fn v1_unknown_version_and_key_id_are_typed_errors() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let mut bad = unhex(KAT_ENVELOPE);
    bad[0] = 2;
    assert!(matches!(
        open(&kek, &b, &bad),
        Err(VaultError::UnknownVersion(2))
    ));

    // Another well-formed id: opening refuses it without trying the key.
    let mut renamed = unhex(KAT_ENVELOPE);
    renamed[6] = b'2';
    assert_eq!(kek_id_of(&renamed).unwrap().as_str(), "kat-2");
    assert!(matches!(
        open(&kek, &b, &renamed),
        Err(VaultError::UnknownKey)
    ));
}

#[test]
fn v2_moved_ciphertext_does_not_open() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let sealed = seal(&kek, &b, b"secret").unwrap();

    let other_row = Binding {
        credential: CredentialId::random(),
        ..b
    };
    let q = partner("raja");
    let other_partner = Binding { partner: &q, ..b };
    let other_kind = Binding {
        kind: CredentialKind::BrokerToken,
        ..b
    };
    for moved in [other_row, other_partner, other_kind] {
        assert!(matches!(open(&kek, &moved, &sealed), Err(VaultError::Open)));
    }

    // A different key under the same id does not open either.
    let impostor = Kek::new(KekId::new("kat-1").unwrap(), Zeroizing::new([9u8; 32]));
    assert!(matches!(
        open(&impostor, &b, &sealed),
        Err(VaultError::Open)
    ));
}

#[test]
fn v5_lengths_are_checked() {
    let kek = kat_kek();
    let p = partner("nikhil");
    let b = kat_binding(&p);
    assert!(matches!(
        seal(&kek, &b, b""),
        Err(VaultError::SecretLength { .. })
    ));
    assert!(matches!(
        seal(&kek, &b, &vec![0u8; MAX_SECRET_LEN + 1]),
        Err(VaultError::SecretLength { .. })
    ));
    let big = seal(&kek, &b, &vec![7u8; MAX_SECRET_LEN]).unwrap();
    assert_eq!(open(&kek, &b, &big).unwrap().len(), MAX_SECRET_LEN);

    let good = unhex(KAT_ENVELOPE);
    for cut in 0..good.len() {
        assert!(parse(&good[..cut]).is_err(), "truncated at {cut} parsed");
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        parse(&long),
        Err(VaultError::Malformed("trailing bytes"))
    ));
    let mut huge_len = good.clone();
    let at = 2 + 5 + NONCE_LEN + WRAPPED_DEK_LEN + NONCE_LEN;
    huge_len[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(parse(&huge_len), Err(VaultError::Malformed(_))));
    assert!(matches!(
        parse(&vec![1u8; MAX_ENVELOPE_LEN + 1]),
        Err(VaultError::Malformed("envelope too long"))
    ));
}

#[test]
fn rewrap_moves_the_data_key_and_keeps_the_payload_bytes() {
    let old = kat_kek();
    let new = Kek::generate(KekId::new("kat-2").unwrap());
    let p = partner("nikhil");
    let b = kat_binding(&p);
    let sealed = seal(&old, &b, b"payload").unwrap();

    let moved = rewrap(&old, &new, &b, &sealed).unwrap();
    assert_eq!(kek_id_of(&moved).unwrap().as_str(), "kat-2");
    let (old_view, new_view) = (parse(&sealed).unwrap(), parse(&moved).unwrap());
    assert_eq!(old_view.payload, new_view.payload);
    assert_eq!(old_view.payload_nonce, new_view.payload_nonce);
    assert_ne!(old_view.wrap_nonce, new_view.wrap_nonce);
    assert_eq!(open(&new, &b, &moved).unwrap().as_slice(), b"payload");
    assert!(matches!(
        open(&old, &b, &moved),
        Err(VaultError::UnknownKey)
    ));
}

proptest! {
    #[test]
    fn v5_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let kek = kat_kek();
        let p = partner("nikhil");
        let b = kat_binding(&p);
        prop_assert!(open(&kek, &b, &bytes).is_err());
    }

    #[test]
    fn v5_mutated_envelopes_never_open(i in 0usize..126, v in any::<u8>()) {
        let kek = kat_kek();
        let p = partner("nikhil");
        let b = kat_binding(&p);
        let mut bytes = unhex(KAT_ENVELOPE);
        prop_assume!(bytes[i] != v);
        bytes[i] = v;
        prop_assert!(open(&kek, &b, &bytes).is_err());
    }
}
