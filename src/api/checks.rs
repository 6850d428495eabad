//! The native check API: `GET /v1/imeis/{imei}/status[?imsi=...]` and the batch
//! `POST /v1/checks`.
//!
//! Both take registry input: a 15-digit IMEI must carry its check digit (14 digits, IMEISV
//! and `imei-`/`imeisv-` forms are accepted too). Both answer, per IMEI, the canonical IMEI,
//! its TAC, list membership, the decision and its reason:
//!
//! ```json
//! {"imei":"260531793113837","tac":"26053179","status":"WHITELISTED","reason":"REGISTERED",
//!  "positiveList":true,"negativeList":false}
//! ```
//!
//! A batch body is `{"imeis":["...", ...]}` or `{"checks":[{"imei":"...","imsi":"..."}, ...]}`
//! with up to `check.max_batch` entries. The answer is `{"results":[...]}`, one entry per
//! input in order; a malformed entry gets `{"error":{"param":"/imeis/3","reason":"..."}}` and
//! does not fail the others.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use hyper::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::problem::ParamLocation;
use super::routes::Call;
use super::{ApiError, AppState, Head, HttpResponse, Reply, json_response, read_body};
use crate::imei::Imei;
use crate::imsi::Imsi;
use crate::registry::metrics::Unanswered;
use crate::registry::{Answer, Decision, Interface};

/// Path of the batch check.
pub const BATCH_PATH: &str = "/v1/checks";

/// `GET /v1/imeis/{imei}/status`.
///
/// # Errors
/// 400 naming `{imei}` or `query imsi` when malformed.
pub fn single(state: &AppState, params: &[&str], head: &dyn Head) -> Result<Reply, ApiError> {
    let started = Instant::now();
    let imei = params.first().copied().unwrap_or("");
    let outcome = parse_single(imei, head.query()).map(|(imei, imsi)| {
        let decision = state.registry.check(Interface::Native, imei, imsi.as_ref());
        (imei, decision)
    });
    let result = match &outcome {
        Ok((_, decision)) => Ok(decision.answer),
        Err(_) => Err(Unanswered::Malformed),
    };
    let response = outcome.map(|(imei, decision)| {
        let mut out = Vec::with_capacity(160);
        write_decision(&mut out, imei, &decision);
        Reply::json(out)
    });
    state
        .registry
        .metrics()
        .observe(Interface::Native, result, Some(started.elapsed()));
    response
}

fn parse_single(imei: &str, query: Option<&str>) -> Result<(Imei, Option<Imsi>), ApiError> {
    let mut invalid = Vec::new();
    let imei = Imei::parse(imei)
        .map_err(|e| invalid.push(("{imei}".to_owned(), e.to_string())))
        .ok();
    let mut imsi = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "imsi" {
            match Imsi::parse(&value) {
                Ok(parsed) => imsi = Some(parsed),
                Err(e) => invalid.push(("query imsi".to_owned(), e.to_string())),
            }
        }
    }
    match imei {
        Some(imei) if invalid.is_empty() => Ok((imei, imsi)),
        _ => Err(ApiError::InvalidParams {
            location: if invalid.iter().any(|(p, _)| p == "{imei}") {
                ParamLocation::Path
            } else {
                ParamLocation::Query
            },
            params: invalid,
        }),
    }
}

/// Appends the JSON object of one decision.
fn write_decision(out: &mut Vec<u8>, imei: Imei, decision: &Decision) {
    // `{"imei":"<15 digits>","tac":"<8 digits>` put together on the stack and copied once:
    // a batch writes one per entry
    const HEAD: &[u8; 41] = b"{\"imei\":\"...............\",\"tac\":\"........";
    let digits = imei.to_digits();
    let mut head = *HEAD;
    head[9..24].copy_from_slice(&digits);
    head[33..41].copy_from_slice(&digits[..8]);
    out.extend_from_slice(&head);
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(decision.answer.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(decision.reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"positiveList\":");
    out.extend_from_slice(bool_text(decision.listing.positive));
    out.extend_from_slice(b",\"negativeList\":");
    out.extend_from_slice(bool_text(decision.listing.negative));
    out.push(b'}');
}

fn bool_text(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

/// A JSON value that should be a string: kept as text, or as the name of what it was
/// instead, so one wrong entry does not fail the whole batch.
enum Loose<'a> {
    Text(Cow<'a, str>),
    NotText(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Loose::NotText("a number"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Loose::NotText("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose::NotText("a number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose::NotText("a boolean"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose::NotText("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::NotText("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::NotText("an object"))
            }
        }
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    #[serde(borrow, default)]
    imeis: Option<Vec<Loose<'a>>>,
    #[serde(borrow, default)]
    checks: Option<Vec<CheckItem<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckItem<'a> {
    #[serde(borrow)]
    imei: Loose<'a>,
    #[serde(borrow, default)]
    imsi: Option<Loose<'a>>,
}

/// One batch entry after validation: the check to run, or why it cannot run.
enum Entry {
    Valid(usize),
    Invalid { param: String, reason: String },
}

/// `POST /v1/checks`.
///
/// # Errors
/// 413 past the body or batch limit, 415 for a non-JSON body, 400 for a body that is not the
/// shape above (malformed entries are per-entry errors instead).
pub async fn batch(call: Call) -> Result<HttpResponse, ApiError> {
    let (state, request) = (&call.state, call.request);
    let started = Instant::now();
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the batch as application/json",
        });
    }
    let body = read_body(state, request).await?;
    let ParsedBatch { entries, checks } = parse_batch(&body, state.max_batch)?;
    let total = entries.len() as u64;

    // Milliseconds of work for a large batch: off the async workers, so single checks on
    // the same workers are not held behind it.
    let registry = state.registry.clone();
    let (checks, decisions) = tokio::task::spawn_blocking(move || {
        let decisions = registry.check_many(Interface::Native, &checks);
        (checks, decisions)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "batch check task failed");
        state
            .registry
            .metrics()
            .observe_batch(&[(Err(Unanswered::Failed), total)], started.elapsed());
        ApiError::Internal
    })?;

    let mut out = Vec::with_capacity(16 + entries.len() * 150);
    out.extend_from_slice(b"{\"results\":[");
    let mut counts: Vec<(Result<Answer, Unanswered>, u64)> = Vec::with_capacity(5);
    let mut count =
        |result: Result<Answer, Unanswered>| match counts.iter_mut().find(|(r, _)| *r == result) {
            Some((_, n)) => *n += 1,
            None => counts.push((result, 1)),
        };
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match entry {
            Entry::Valid(k) => {
                write_decision(&mut out, checks[*k].0, &decisions[*k]);
                count(Ok(decisions[*k].answer));
            }
            Entry::Invalid { param, reason } => {
                out.extend_from_slice(b"{\"error\":{\"param\":");
                // serde_json escapes whatever the reason quotes back from the input
                let _ = serde_json::to_writer(&mut out, param);
                out.extend_from_slice(b",\"reason\":");
                let _ = serde_json::to_writer(&mut out, reason);
                out.extend_from_slice(b"}}");
                count(Err(Unanswered::Malformed));
            }
        }
    }
    out.extend_from_slice(b"]}");
    state
        .registry
        .metrics()
        .observe_batch(&counts, started.elapsed());
    Ok(json_response(out))
}

/// A batch body after validation: one entry per input, and the checks to run.
pub struct ParsedBatch {
    entries: Vec<Entry>,
    checks: Vec<(Imei, Option<Imsi>)>,
}

impl ParsedBatch {
    /// How many entries the body had.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the body had no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries were malformed.
    pub fn invalid(&self) -> usize {
        self.entries.len() - self.checks.len()
    }
}

/// Parses and validates a batch body (untrusted bytes: fuzzed in `fuzz/`). Malformed entries
/// become per-entry errors; only a body that is not the expected JSON shape, or too many
/// entries, fails as a whole.
///
/// # Errors
/// [`ApiError::MalformedBody`] or [`ApiError::PayloadTooLarge`].
pub fn parse_batch(body: &[u8], max_batch: usize) -> Result<ParsedBatch, ApiError> {
    let parsed: BatchRequest<'_> = match plain_imeis(body) {
        Some(imeis) => BatchRequest {
            imeis: Some(imeis),
            checks: None,
        },
        None => serde_json::from_slice(body).map_err(|e| ApiError::MalformedBody {
            detail: format!("{e}"),
        })?,
    };
    let (list, items) = match (parsed.imeis, parsed.checks) {
        (Some(imeis), None) => (
            "imeis",
            imeis
                .into_iter()
                .map(|imei| (imei, None))
                .collect::<Vec<_>>(),
        ),
        (None, Some(checks)) => (
            "checks",
            checks.into_iter().map(|c| (c.imei, c.imsi)).collect(),
        ),
        _ => {
            return Err(ApiError::MalformedBody {
                detail: "give exactly one of \"imeis\" (strings) or \"checks\" (objects)".into(),
            });
        }
    };
    if items.len() > max_batch {
        return Err(ApiError::PayloadTooLarge {
            detail: format!("at most {} IMEIs per batch, got {}", max_batch, items.len()),
        });
    }

    let mut checks = Vec::with_capacity(items.len());
    let entries: Vec<Entry> = items
        .iter()
        .enumerate()
        .map(|(i, (imei, imsi))| {
            let field = |name: &str| {
                if list == "imeis" {
                    format!("/imeis/{i}")
                } else {
                    format!("/checks/{i}/{name}")
                }
            };
            let imei = match imei {
                Loose::Text(text) => Imei::parse(text).map_err(|e| e.to_string()),
                Loose::NotText(what) => Err(format!("must be a string, got {what}")),
            };
            let imei = match imei {
                Ok(imei) => imei,
                Err(reason) => {
                    return Entry::Invalid {
                        param: field("imei"),
                        reason,
                    };
                }
            };
            let imsi = match imsi {
                None => None,
                Some(Loose::Text(text)) => match Imsi::parse(text) {
                    Ok(imsi) => Some(imsi),
                    Err(e) => {
                        return Entry::Invalid {
                            param: field("imsi"),
                            reason: e.to_string(),
                        };
                    }
                },
                Some(Loose::NotText(what)) => {
                    return Entry::Invalid {
                        param: field("imsi"),
                        reason: format!("must be a string, got {what}"),
                    };
                }
            };
            checks.push((imei, imsi));
            Entry::Valid(checks.len() - 1)
        })
        .collect();
    Ok(ParsedBatch { entries, checks })
}

/// The common body `{"imeis":["...", ...]}` whose strings are plain printable ASCII (no
/// escape), read without serde's generic walk (a `Loose` visitor per entry, and a scan of
/// every string for escapes). Anything else, valid or not, is `None` and goes to serde, so
/// this path only ever agrees with it (property-tested below, fuzzed through `parse_batch`).
fn plain_imeis(body: &[u8]) -> Option<Vec<Loose<'_>>> {
    let skip_ws = |at: &mut usize| {
        while body
            .get(*at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *at += 1;
        }
    };
    let expect = |at: &mut usize, token: &[u8]| -> Option<()> {
        skip_ws(at);
        body.get(*at..)?
            .starts_with(token)
            .then(|| *at += token.len())
    };
    let mut at = 0;
    expect(&mut at, b"{")?;
    expect(&mut at, b"\"imeis\"")?;
    expect(&mut at, b":")?;
    expect(&mut at, b"[")?;
    let mut imeis = Vec::with_capacity(body.len() / 19);
    skip_ws(&mut at);
    if body.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            expect(&mut at, b"\"")?;
            let start = at;
            let len = body[start..].iter().position(|&b| b == b'"')?;
            let text = &body[start..start + len];
            if !text
                .iter()
                .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
            {
                return None;
            }
            // printable ASCII is UTF-8
            imeis.push(Loose::Text(Cow::Borrowed(std::str::from_utf8(text).ok()?)));
            at = start + len + 1;
            skip_ws(&mut at);
            match body.get(at)? {
                b',' => at += 1,
                b']' => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    expect(&mut at, b"}")?;
    skip_ws(&mut at);
    (at == body.len()).then_some(imeis)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn texts(imeis: &[Loose<'_>]) -> Vec<String> {
        imeis
            .iter()
            .map(|l| match l {
                Loose::Text(t) => format!("text {t}"),
                Loose::NotText(what) => format!("not {what}"),
            })
            .collect()
    }

    /// What serde makes of a body, in the terms `plain_imeis` answers.
    fn by_serde(body: &[u8]) -> Option<Vec<String>> {
        let parsed: BatchRequest<'_> = serde_json::from_slice(body).ok()?;
        match parsed {
            BatchRequest {
                imeis: Some(imeis),
                checks: None,
            } => Some(texts(&imeis)),
            _ => None,
        }
    }

    #[test]
    fn plain_bodies_skip_serde_and_others_do_not() {
        let plain = br#" { "imeis" : [ "260531793113837" ,"x y",""] } "#;
        assert_eq!(
            texts(&plain_imeis(plain).unwrap()),
            ["text 260531793113837", "text x y", "text "]
        );
        assert_eq!(plain_imeis(br#"{"imeis":[]}"#).map(|v| v.len()), Some(0));
        for other in [
            &br#"{"imeis":["1\u0032"]}"#[..],      // escape
            br#"{"imeis":[1]}"#,                   // not a string
            br#"{"imeis":["1"],"checks":[]}"#,     // another key
            br#"{"imeis":["1"]}x"#,                // trailing bytes
            br#"{"imeis":["1",]}"#,                // trailing comma
            br#"{"imeis":["1"]"#,                  // unfinished
            "{\"imeis\":[\"\u{e9}\"]}".as_bytes(), // not ASCII
            b"{\"imeis\":[\"\t\"]}",               // control character
        ] {
            assert!(
                plain_imeis(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    proptest! {
        /// Whenever the plain path reads a body, serde reads the same entries from it.
        #[test]
        fn plain_path_agrees_with_serde(
            parts in proptest::collection::vec(prop_oneof![
                Just("{".to_owned()), Just("}".to_owned()), Just("[".to_owned()),
                Just("]".to_owned()), Just(",".to_owned()), Just(":".to_owned()),
                Just("\"imeis\"".to_owned()), Just("\"checks\"".to_owned()),
                Just(" ".to_owned()), Just("\n".to_owned()), Just("\\".to_owned()),
                Just("1".to_owned()), Just("\u{e9}".to_owned()),
                "\"[0-9a-z \\\\\"]{0,16}\"",
            ], 0..24),
            digits in proptest::collection::vec("[0-9]{14,16}", 0..20),
        ) {
            let body = parts.concat();
            if let Some(plain) = plain_imeis(body.as_bytes()) {
                prop_assert_eq!(Some(texts(&plain)), by_serde(body.as_bytes()));
            }
            // and the bodies clients send are always taken by it
            let list: Vec<String> = digits.iter().map(|d| format!("\"{d}\"")).collect();
            let sent = format!("{{\"imeis\":[{}]}}", list.join(","));
            let plain = plain_imeis(sent.as_bytes());
            prop_assert!(plain.is_some());
            prop_assert_eq!(plain.map(|p| texts(&p)), by_serde(sent.as_bytes()));
        }
    }

    #[test]
    fn single_check_errors_name_the_parameter() {
        let Err(ApiError::InvalidParams { location, params }) =
            parse_single("260531793113830", Some("imsi=12"))
        else {
            panic!("expected invalid params");
        };
        assert_eq!(location, ParamLocation::Path);
        assert_eq!(params[0].0, "{imei}");
        assert!(params[0].1.contains("check digit"));
        assert_eq!(params[1].0, "query imsi");
    }

    #[test]
    fn loose_values_keep_text_and_name_the_rest() {
        let parsed: BatchRequest<'_> =
            serde_json::from_str(r#"{"imeis":["1",2,null,{"a":[1]},["x"],true]}"#).unwrap();
        let kinds: Vec<&str> = parsed
            .imeis
            .unwrap()
            .iter()
            .map(|l| match l {
                Loose::Text(_) => "text",
                Loose::NotText(what) => what,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "text",
                "a number",
                "null",
                "an object",
                "an array",
                "a boolean"
            ]
        );
    }
}
