//! Access-token verification never panics and never accepts a token that was
//! not signed by the ring's key.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use partner_auth_core::{KeyRing, ManualClock, TokenConfig, TokenIssuer};

fn issuer() -> &'static TokenIssuer {
    static ISSUER: OnceLock<TokenIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let clock = ManualClock::new(time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
        TokenIssuer::new(KeyRing::generate().unwrap(), TokenConfig::default(), Arc::new(clock)).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A fresh key the input can not know: nothing may verify.
        assert!(issuer().verify(text).is_err());
    }
});
