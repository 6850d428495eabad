//! N5g-eir query strings: never panic, and every error renders as a problem+json response.
#![no_main]

use imeidb::api::eir::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse_query(Some(query)) {
        let response = e.into_response();
        assert!(response.status().is_client_error());
    }
});
