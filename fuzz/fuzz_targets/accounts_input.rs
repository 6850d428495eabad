//! What callers send the accounts API: organisation and user forms, merge patches, tokens,
//! times, NITs. Never panic; a form that validates clean really has its required fields.
#![no_main]

use imeidb::accounts::forms::{OrgForm, UserForm, check_nit, normalise_id_number};
use imeidb::roles::OrgKind;
use imeidb::accounts::token;
use imeidb::timefmt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = serde_json::from_slice::<OrgForm>(data) {
        if form.validate().0.is_empty() {
            assert!(form.kind.is_some());
            assert!(check_nit(&form.data.nit).is_ok());
            assert!(!normalise_id_number(&form.administrator.id_number).is_empty());
        }
    }
    if let Ok(user) = serde_json::from_slice::<UserForm>(data) {
        for kind in OrgKind::ALL {
            if user.validate(kind).0.is_empty() {
                assert!(user.roles.iter().all(|r| kind.allowed_roles().contains(r)));
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((id, _)) = token::parse(text) {
        assert!(text.contains(&id.to_hex()));
    }
    if let Some(unix) = timefmt::parse(text) {
        let _ = timefmt::rfc3339(unix);
    }
    let _ = check_nit(text);
    let _ = normalise_id_number(text);
});
