//! What browsers (or anyone) post to the web pages: a urlencoded form body, made into the
//! JSON the domain's forms read. Never panic; what it makes is always an object, and a record
//! flattened and read back is the record.
#![no_main]

use imeidb::accounts::forms::OrgForm;
use imeidb::web::form::{Fields, flatten};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = Fields::parse(data);
    let json = fields.to_json(&["csrf"]);
    assert!(json.is_object());
    // whatever the names, the form reads into the domain's form or is refused cleanly
    let _ = serde_json::from_value::<OrgForm>(json.clone());
    let flat = flatten(&json);
    assert!(flat.keys().all(|k| !k.is_empty()));
});
