//! Seed files of partners and users: parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_auth_core::Directory;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Directory::from_json(text);
    }
});
