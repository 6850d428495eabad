//! Stored values: decoding arbitrary bytes never panics; what decodes re-encodes to an equal
//! record.
#![no_main]

use imeidb::store::{ListRecord, NegativeRecord, PositiveRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = PositiveRecord::decode(data) {
        assert_eq!(PositiveRecord::decode(&record.encode()), Ok(record));
    }
    if let Ok(record) = NegativeRecord::decode(data) {
        assert_eq!(NegativeRecord::decode(&record.encode()), Ok(record));
    }
});
