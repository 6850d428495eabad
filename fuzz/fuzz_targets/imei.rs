//! IMEI and IMSI parsing: never panics; whatever parses prints back to itself.
#![no_main]

use imeidb::imei::Imei;
use imeidb::imsi::Imsi;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(imei) = Imei::parse(text) {
        assert_eq!(Imei::parse(&imei.to_string()), Ok(imei));
        assert_eq!(Imei::parse_network(text), Ok(imei));
    }
    if let Ok(imei) = Imei::parse_network(text) {
        assert_eq!(Imei::from_key(&imei.key()), Some(imei));
    }
    if let Ok(imsi) = Imsi::parse(text) {
        assert_eq!(Imsi::parse(imsi.as_str()), Ok(imsi));
    }
});
