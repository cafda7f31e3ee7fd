//! Refresh-token parsing accepts only the exact documented shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_auth_core::RefreshToken;
use partner_auth_core::refresh::{REFRESH_PREFIX, REFRESH_TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(token) = RefreshToken::parse(text)
    {
        let s = token.expose_secret();
        assert_eq!(s.len(), REFRESH_TOKEN_LEN);
        assert!(s.starts_with(REFRESH_PREFIX));
    }
});
