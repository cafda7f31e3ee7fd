//! The vault envelope: seal and open of a 256-byte secret (a fresh data key,
//! two AES-256-GCM operations and a key wrap per seal), next to one bare
//! AES-256-GCM encryption and decryption of the same input.
//!
//! `cargo bench -p partner-auth-benches --bench vault`

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm};
use criterion::Criterion;
use partner_auth_core::vault::envelope::{self, Binding};
use partner_auth_core::vault::{CredentialKind, Kek, KekId};
use partner_auth_core::{CredentialId, PartnerId};
use zeroize::Zeroizing;

fn vault(c: &mut Criterion) {
    let secret = [0x5au8; 256];
    let kek = Kek::new(KekId::new("bench").expect("id"), Zeroizing::new([7u8; 32]));
    let partner = PartnerId::new("nikhil").expect("partner");
    let binding = Binding {
        partner: &partner,
        kind: CredentialKind::ApiKey,
        credential: CredentialId::random(),
    };
    let sealed = envelope::seal(&kek, &binding, &secret).expect("seal");

    let mut group = c.benchmark_group("secret_256b");
    group.bench_function("envelope_seal", |b| {
        b.iter(|| envelope::seal(&kek, &binding, black_box(&secret)).expect("seal"));
    });
    group.bench_function("envelope_open", |b| {
        b.iter(|| envelope::open(&kek, &binding, black_box(&sealed)).expect("open"));
    });

    let cipher = Aes256Gcm::new((&[7u8; 32]).into());
    let aad = b"bench associated data";
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let bare = cipher
        .encrypt(&nonce, Payload { msg: &secret, aad })
        .expect("encrypt");
    group.bench_function("bare_aes256gcm_encrypt", |b| {
        b.iter(|| {
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: black_box(&secret),
                        aad,
                    },
                )
                .expect("encrypt")
        });
    });
    group.bench_function("bare_aes256gcm_decrypt", |b| {
        b.iter(|| {
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: black_box(&bare),
                        aad,
                    },
                )
                .expect("decrypt")
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    vault(&mut c);
    c.final_summary();
}
