//! `POST /v1/checks` bodies: never panic; a body that parses has at most the batch limit of
//! entries.
#![no_main]

use imeidb::api::checks::parse_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = parse_batch(data, 100) {
        assert!(batch.len() <= 100);
        assert!(batch.invalid() <= batch.len());
    }
});
