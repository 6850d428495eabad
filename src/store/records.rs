//! What each list holds per IMEI, and its compact, versioned binary encoding.
//!
//! A value is one format byte (`1`) followed by fields, each `tag (u8) | length (LEB128) |
//! bytes`. Absent or empty fields are not written, and a decoder skips tags it does not know,
//! so later versions can add fields (owner, history pointers, foreign source) without
//! rewriting millions of stored entries, and an older binary can still read newer values.

use std::fmt;

/// The only value format written so far.
const FORMAT_V1: u8 = 1;

/// Which list an entry belongs to. Used as a metric label, so it is a closed enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum List {
    /// Devices that entered the country legally or were made here (art. 2.2.11.2, 2.2.11.7).
    Positive,
    /// Devices reported stolen or lost, here or abroad (art. 2.2.11.6).
    Negative,
}

impl List {
    /// Both lists, in a fixed order usable as an array index.
    pub const ALL: [List; 2] = [List::Positive, List::Negative];

    /// Index into per-list arrays.
    pub fn index(self) -> usize {
        match self {
            List::Positive => 0,
            List::Negative => 1,
        }
    }

    /// Lower-case name, as used in the CLI, config and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            List::Positive => "positive",
            List::Negative => "negative",
        }
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of the positive list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PositiveRecord {
    /// When it was registered, in seconds since the Unix epoch.
    pub registered_at: u64,
    /// Who registered it (importer, manufacturer or operator), as the registrant names itself.
    pub registrant: String,
    /// The manufacturer (brand) the registrant declared (art. 2.2.11.7 ii).
    pub manufacturer: String,
    /// The model the registrant declared.
    pub model: String,
    /// The registrant's reference: import declaration or production lot.
    pub reference: String,
    /// The owner's identification type (`CC`, `CE`, `PA`, `NIT`, `TI`), once bound.
    pub owner_id_type: String,
    /// The owner's identification number, normalised; empty until an activation binds it.
    /// Personal data: shown only to the regulator and the operator that bound it.
    pub owner_id: String,
    /// The operator organisation that bound the owner (0: none).
    pub owner_org: u64,
    /// When the owner was bound, Unix seconds.
    pub owner_since: u64,
    /// The organisation that registered it over the API (0: a bulk load or older record).
    pub registrant_org: u64,
    /// The upload that registered it, and the line it came from: a later line of the same
    /// upload with the same IMEI is a duplicate within the file, not a re-sent file.
    pub upload: u64,
    /// See `upload`.
    pub upload_line: u64,
}

/// Whether a reported device was stolen or lost (art. 2.2.11.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportKind {
    /// Reported stolen.
    Stolen,
    /// Reported lost.
    Lost,
    /// Loaded from a source that did not say (bulk migration); shown as such, never guessed.
    #[default]
    Unspecified,
}

impl ReportKind {
    fn code(self) -> u8 {
        match self {
            ReportKind::Stolen => 1,
            ReportKind::Lost => 2,
            ReportKind::Unspecified => 0,
        }
    }

    fn from_code(code: u8) -> Option<ReportKind> {
        match code {
            0 => Some(ReportKind::Unspecified),
            1 => Some(ReportKind::Stolen),
            2 => Some(ReportKind::Lost),
            _ => None,
        }
    }

    /// Lower-case name as used in CSV files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Stolen => "stolen",
            ReportKind::Lost => "lost",
            ReportKind::Unspecified => "unspecified",
        }
    }
}

/// Who made a theft/loss report (art. 2.2.11.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReporterKind {
    /// The device's user, through an operator.
    User,
    /// An authority (police, prosecutor, judge), directly or through an operator.
    Authority,
    /// Not recorded (bulk loads, foreign lists).
    #[default]
    Unspecified,
}

impl ReporterKind {
    fn code(self) -> u8 {
        match self {
            ReporterKind::Unspecified => 0,
            ReporterKind::User => 1,
            ReporterKind::Authority => 2,
        }
    }

    fn from_code(code: u8) -> Option<ReporterKind> {
        match code {
            0 => Some(ReporterKind::Unspecified),
            1 => Some(ReporterKind::User),
            2 => Some(ReporterKind::Authority),
            _ => None,
        }
    }

    /// Lower-case name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReporterKind::User => "user",
            ReporterKind::Authority => "authority",
            ReporterKind::Unspecified => "unspecified",
        }
    }
}

/// An entry of the negative list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NegativeRecord {
    /// When it was put on the negative list, in seconds since the Unix epoch.
    pub listed_at: u64,
    /// Stolen or lost.
    pub kind: ReportKind,
    /// Who reported it, as free text (bulk loads).
    pub reporter: String,
    /// The case or report reference.
    pub reference: String,
    /// The organisation that registered the report (0: none, e.g. a bulk load); only it may
    /// exclude the report on recovery (art. 2.2.11.6 par. 2).
    pub org: u64,
    /// The user who registered it (0: none).
    pub user: u64,
    /// Whether the device's user or an authority reported it.
    pub reporter_kind: ReporterKind,
    /// When the theft or loss happened, Unix seconds (0: not given).
    pub occurred_at: u64,
    /// The reporting user's identification number (personal data: shown only to the
    /// regulator and the reporting organisation).
    pub subscriber_id: String,
    /// For entries from a foreign or GSMA list, its source (`GSMA`, `PE-OSIPTEL`); empty for
    /// domestic reports (art. 2.2.11.6 par. 1).
    pub source: String,
}

/// A stored value that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value is corrupt: {0}")]
pub struct DecodeError(&'static str);

/// A value one list stores. Implemented by the two record types; lets the store offer one
/// generic get/insert instead of one per list.
pub trait ListRecord: Sized {
    /// The list this record belongs to.
    const LIST: List;
    /// Appends the encoded value to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Decodes a value written by `encode_into` (of this or a later version).
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are truncated or of an unknown format.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;

    /// The encoded value.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }
}

// Field tags. Never reuse a number: old values on disk still carry it.
const TAG_TIME: u8 = 1;
const TAG_REGISTRANT: u8 = 2;
const TAG_MANUFACTURER: u8 = 3;
const TAG_MODEL: u8 = 4;
const TAG_REFERENCE: u8 = 5;
const TAG_KIND: u8 = 6;
const TAG_REPORTER: u8 = 7;
const TAG_ORG: u8 = 8;
const TAG_USER: u8 = 9;
const TAG_REPORTER_KIND: u8 = 10;
const TAG_OCCURRED: u8 = 11;
const TAG_SUBSCRIBER: u8 = 12;
const TAG_OWNER_ID_TYPE: u8 = 13;
const TAG_OWNER_ID: u8 = 14;
const TAG_OWNER_ORG: u8 = 15;
const TAG_OWNER_SINCE: u8 = 16;
const TAG_REGISTRANT_ORG: u8 = 17;
const TAG_UPLOAD: u8 = 18;
const TAG_UPLOAD_LINE: u8 = 19;
const TAG_SOURCE: u8 = 20;

impl ListRecord for PositiveRecord {
    const LIST: List = List::Positive;

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        put_u64(out, TAG_TIME, self.registered_at);
        put_str(out, TAG_REGISTRANT, &self.registrant);
        put_str(out, TAG_MANUFACTURER, &self.manufacturer);
        put_str(out, TAG_MODEL, &self.model);
        put_str(out, TAG_REFERENCE, &self.reference);
        put_str(out, TAG_OWNER_ID_TYPE, &self.owner_id_type);
        put_str(out, TAG_OWNER_ID, &self.owner_id);
        if self.owner_org != 0 {
            put_u64(out, TAG_OWNER_ORG, self.owner_org);
        }
        if self.owner_since != 0 {
            put_u64(out, TAG_OWNER_SINCE, self.owner_since);
        }
        for (tag, value) in [
            (TAG_REGISTRANT_ORG, self.registrant_org),
            (TAG_UPLOAD, self.upload),
            (TAG_UPLOAD_LINE, self.upload_line),
        ] {
            if value != 0 {
                put_u64(out, tag, value);
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut record = PositiveRecord::default();
        for field in Fields::new(bytes)? {
            let (tag, value) = field?;
            match tag {
                TAG_TIME => record.registered_at = get_u64(value)?,
                TAG_REGISTRANT => record.registrant = get_str(value)?,
                TAG_MANUFACTURER => record.manufacturer = get_str(value)?,
                TAG_MODEL => record.model = get_str(value)?,
                TAG_REFERENCE => record.reference = get_str(value)?,
                TAG_OWNER_ID_TYPE => record.owner_id_type = get_str(value)?,
                TAG_OWNER_ID => record.owner_id = get_str(value)?,
                TAG_OWNER_ORG => record.owner_org = get_u64(value)?,
                TAG_OWNER_SINCE => record.owner_since = get_u64(value)?,
                TAG_REGISTRANT_ORG => record.registrant_org = get_u64(value)?,
                TAG_UPLOAD => record.upload = get_u64(value)?,
                TAG_UPLOAD_LINE => record.upload_line = get_u64(value)?,
                _ => {} // a field from a later version
            }
        }
        Ok(record)
    }
}

impl ListRecord for NegativeRecord {
    const LIST: List = List::Negative;

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        put_u64(out, TAG_TIME, self.listed_at);
        put_field(out, TAG_KIND, &[self.kind.code()]);
        put_str(out, TAG_REPORTER, &self.reporter);
        put_str(out, TAG_REFERENCE, &self.reference);
        if self.org != 0 {
            put_u64(out, TAG_ORG, self.org);
        }
        if self.user != 0 {
            put_u64(out, TAG_USER, self.user);
        }
        if self.reporter_kind != ReporterKind::Unspecified {
            put_field(out, TAG_REPORTER_KIND, &[self.reporter_kind.code()]);
        }
        if self.occurred_at != 0 {
            put_u64(out, TAG_OCCURRED, self.occurred_at);
        }
        put_str(out, TAG_SUBSCRIBER, &self.subscriber_id);
        put_str(out, TAG_SOURCE, &self.source);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut record = NegativeRecord::default();
        for field in Fields::new(bytes)? {
            let (tag, value) = field?;
            match tag {
                TAG_TIME => record.listed_at = get_u64(value)?,
                TAG_KIND => {
                    let code = *value.first().ok_or(DecodeError("empty report kind"))?;
                    record.kind =
                        ReportKind::from_code(code).ok_or(DecodeError("unknown report kind"))?;
                }
                TAG_REPORTER => record.reporter = get_str(value)?,
                TAG_REFERENCE => record.reference = get_str(value)?,
                TAG_ORG => record.org = get_u64(value)?,
                TAG_USER => record.user = get_u64(value)?,
                TAG_REPORTER_KIND => {
                    let code = *value.first().ok_or(DecodeError("empty reporter kind"))?;
                    record.reporter_kind = ReporterKind::from_code(code)
                        .ok_or(DecodeError("unknown reporter kind"))?;
                }
                TAG_OCCURRED => record.occurred_at = get_u64(value)?,
                TAG_SUBSCRIBER => record.subscriber_id = get_str(value)?,
                TAG_SOURCE => record.source = get_str(value)?,
                _ => {}
            }
        }
        Ok(record)
    }
}

/// Appends one field: its tag, its length as a LEB128 varint, its bytes. The head is built
/// on the stack and appended with the value in one reservation (pushing it byte by byte was
/// a twentieth of a registration upload's time).
#[inline]
fn put_field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    let mut head = [0u8; 11];
    head[0] = tag;
    let mut used = 1;
    let mut len = value.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            head[used] = byte;
            used += 1;
            break;
        }
        head[used] = byte | 0x80;
        used += 1;
    }
    out.reserve(used + value.len());
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(value);
}

fn put_str(out: &mut Vec<u8>, tag: u8, value: &str) {
    if !value.is_empty() {
        put_field(out, tag, value.as_bytes());
    }
}

fn put_u64(out: &mut Vec<u8>, tag: u8, value: u64) {
    put_field(out, tag, &value.to_le_bytes());
}

fn get_u64(value: &[u8]) -> Result<u64, DecodeError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| DecodeError("timestamp is not 8 bytes"))?;
    Ok(u64::from_le_bytes(bytes))
}

fn get_str(value: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(value.to_vec()).map_err(|_| DecodeError("text field is not UTF-8"))
}

/// Iterator over the `(tag, bytes)` fields of a value.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => Ok(Fields { rest }),
            Some(_) => Err(DecodeError("unknown value format")),
            None => Err(DecodeError("empty value")),
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u8, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, mut rest) = self.rest.split_first()?;
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let Some((&byte, tail)) = rest.split_first() else {
                self.rest = &[];
                return Some(Err(DecodeError("truncated field length")));
            };
            rest = tail;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                self.rest = &[];
                return Some(Err(DecodeError("field length too large")));
            }
        }
        if rest.len() < len {
            self.rest = &[];
            return Some(Err(DecodeError("truncated field")));
        }
        let (value, tail) = rest.split_at(len);
        self.rest = tail;
        Some(Ok((tag, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positive_round_trips() {
        let r = PositiveRecord {
            registered_at: 1_700_000_000,
            registrant: "Importadora Andina SAS".into(),
            manufacturer: "Acme".into(),
            model: "X1".into(),
            reference: "DI-2026-000123".into(),
            ..Default::default()
        };
        assert_eq!(PositiveRecord::decode(&r.encode()), Ok(r));
        let owned = PositiveRecord {
            owner_id_type: "CC".into(),
            owner_id: "79555123".into(),
            owner_org: 4,
            owner_since: 1_700_000_100,
            registrant_org: 7,
            upload: 99,
            upload_line: 12,
            ..Default::default()
        };
        assert_eq!(PositiveRecord::decode(&owned.encode()), Ok(owned));
    }

    #[test]
    fn negative_round_trips() {
        let r = NegativeRecord {
            listed_at: 42,
            kind: ReportKind::Lost,
            reporter: "Policía".into(),
            reference: "NUNC 110016000050202600001".into(),
            ..Default::default()
        };
        assert_eq!(NegativeRecord::decode(&r.encode()), Ok(r));
        let full = NegativeRecord {
            listed_at: 42,
            kind: ReportKind::Stolen,
            reporter: String::new(),
            reference: "DEN-2026-1".into(),
            org: 3,
            user: 9,
            reporter_kind: ReporterKind::User,
            occurred_at: 41,
            subscriber_id: "79555123".into(),
            source: "GSMA".into(),
        };
        assert_eq!(NegativeRecord::decode(&full.encode()), Ok(full));
    }

    #[test]
    fn empty_fields_are_not_stored() {
        let r = PositiveRecord {
            registered_at: 1,
            ..Default::default()
        };
        // format byte + one 8-byte timestamp field
        assert_eq!(r.encode().len(), 1 + 1 + 1 + 8);
    }

    #[test]
    fn unknown_tags_from_a_later_version_are_skipped() {
        let mut bytes = PositiveRecord {
            registered_at: 7,
            model: "M".into(),
            ..Default::default()
        }
        .encode();
        put_field(&mut bytes, 200, b"future field");
        let decoded = PositiveRecord::decode(&bytes).unwrap();
        assert_eq!(decoded.registered_at, 7);
        assert_eq!(decoded.model, "M");
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        assert!(PositiveRecord::decode(&[]).is_err());
        assert!(PositiveRecord::decode(&[9]).is_err());
        assert!(PositiveRecord::decode(&[1, TAG_MODEL, 5, b'a']).is_err());
        assert!(PositiveRecord::decode(&[1, TAG_TIME, 2, 0, 0]).is_err());
        assert!(NegativeRecord::decode(&[1, TAG_KIND, 1, 9]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = PositiveRecord::decode(&bytes);
            let _ = NegativeRecord::decode(&bytes);
        }

        #[test]
        fn long_fields_round_trip(model in ".{0,400}") {
            let r = PositiveRecord { model, ..Default::default() };
            prop_assert_eq!(PositiveRecord::decode(&r.encode()), Ok(r));
        }
    }
}
