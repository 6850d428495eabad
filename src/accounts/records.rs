//! How account records are stored and changed: their keys in the store's directory, their
//! encoding (a version byte, then JSON), and JSON merge patches (RFC 7396) read back into a
//! record.

use super::*;

/// Encoding version of stored account records (their first byte); JSON follows.
const RECORD_VERSION: u8 = 1;
/// The key of the next id to hand out (organisations and users share the sequence).
pub(super) const NEXT_ID_KEY: &[u8] = b"next_id";

pub(super) fn org_key(id: u64) -> Vec<u8> {
    format!("org/{id:016x}").into_bytes()
}

pub(super) fn user_key(id: u64) -> Vec<u8> {
    format!("user/{id:016x}").into_bytes()
}

pub(super) fn token_key(id: TokenId) -> Vec<u8> {
    format!("token/{}", id.to_hex()).into_bytes()
}

pub(super) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(&mut bytes, record).expect("a record always serialises");
    bytes
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, AccountsError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|_| AccountsError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
            })
        }
        _ => Err(AccountsError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
        }),
    }
}

/// Applies a JSON merge patch (RFC 7396) to `current` and reads the result back; a result of
/// the wrong shape is a field error naming what serde found wrong.
pub(super) fn apply_patch<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &serde_json::Value,
) -> Result<T, AccountsError> {
    if !patch.is_object() {
        return Err(AccountsError::Invalid(FieldErrors(vec![(
            "body".into(),
            "must be a JSON object of the fields to change".into(),
        )])));
    }
    let mut value = serde_json::to_value(current).expect("a record always serialises");
    merge(&mut value, patch);
    serde_json::from_value(value)
        .map_err(|e| AccountsError::Invalid(FieldErrors(vec![("body".into(), e.to_string())])))
}

pub(super) fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(
                        target.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}
