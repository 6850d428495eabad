//! TS 29.511 N5g-eir_EquipmentIdentityCheck: `GET /n5g-eir-eic/v1/equipment-status`.
//!
//! `pei` is required (`imei-<15>` or `imeisv-<16>`; bare digits are tolerated), `supi`
//! optional (`imsi-<5..15>` drives the roaming exemption; other SUPI types are accepted and
//! exempt nothing), `gpsi` and `supported-features` are accepted and unused. As TS 23.003
//! allows on check occasions, the 15th digit of `imei-` may be a spare `0` instead of the check
//! digit. A MAC or EUI PEI (wireline access) is well formed but never registered here: it
//! gets the registry's answer for equipment on neither list (404 by default).
//!
//! Performance-critical: this is the AMF's path on every registration. The success bodies are
//! static; nothing is allocated unless the request is malformed.

use std::time::Instant;

use super::problem::ParamLocation;
use super::{ApiError, AppState, Head, Reply};
use crate::imei::Imei;
use crate::imsi::Imsi;
use crate::registry::metrics::Unanswered;
use crate::registry::{Answer, EquipmentStatus, Interface};

/// The resource path (API root + `/equipment-status`).
pub const PATH: &str = "/n5g-eir-eic/v1/equipment-status";

/// What the query names, once parsed.
#[derive(Debug)]
pub enum Equipment {
    /// An IMEI or IMEISV PEI.
    Imei(Imei, Option<Imsi>),
    /// A MAC or EUI-64 PEI: valid, but only IMEIs are registered here.
    NotAnImei(Option<Imsi>),
}

/// Handles one equipment-status request.
///
/// # Errors
/// 400 for a missing or malformed parameter (named in `invalidParams`), 404
/// `ERROR_EQUIPMENT_UNKNOWN` for equipment on neither list when so configured.
pub fn equipment_status(state: &AppState, _: &[&str], head: &dyn Head) -> Result<Reply, ApiError> {
    let started = Instant::now();
    let answer = parse_query(head.query()).map(|equipment| match equipment {
        Equipment::Imei(imei, imsi) => {
            state
                .registry
                .check(Interface::N5gEir, imei, imsi.as_ref())
                .answer
        }
        Equipment::NotAnImei(imsi) => {
            state
                .registry
                .check_without_imei(Interface::N5gEir, imsi.as_ref())
                .answer
        }
    });
    let result = match &answer {
        Ok(answer) => Ok(*answer),
        Err(_) => Err(Unanswered::Malformed),
    };
    state
        .registry
        .metrics()
        .observe(Interface::N5gEir, result, Some(started.elapsed()));
    match answer? {
        Answer::Status(status) => Ok(Reply::json(status_body(status))),
        Answer::Unknown => Err(ApiError::EquipmentUnknown),
    }
}

fn status_body(status: EquipmentStatus) -> &'static [u8] {
    match status {
        EquipmentStatus::Whitelisted => br#"{"status":"WHITELISTED"}"#,
        EquipmentStatus::Blacklisted => br#"{"status":"BLACKLISTED"}"#,
        EquipmentStatus::Greylisted => br#"{"status":"GREYLISTED"}"#,
    }
}

/// Parses the query string (untrusted bytes: fuzzed in `fuzz/`).
///
/// # Errors
/// [`ApiError::MissingQueryParam`] without `pei`; [`ApiError::InvalidParams`] naming each
/// malformed or repeated parameter.
pub fn parse_query(query: Option<&str>) -> Result<Equipment, ApiError> {
    let mut pei = None;
    let mut supi = None;
    let mut invalid: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "pei" => &mut pei,
            "supi" => &mut supi,
            _ => continue, // gpsi, supported-features, and unknown parameters are ignored
        };
        if slot.replace(value).is_some() {
            invalid.push((format!("query {key}"), "given more than once".into()));
        }
    }
    let Some(pei) = pei else {
        return Err(ApiError::MissingQueryParam { param: "pei" });
    };
    let imei = if pei.starts_with("mac-") || pei.starts_with("eui-") {
        None
    } else {
        match Imei::parse_network(&pei) {
            Ok(imei) => Some(imei),
            Err(e) => {
                invalid.push(("query pei".into(), e.to_string()));
                None
            }
        }
    };
    let imsi = match supi.as_deref() {
        Some(s) if s.starts_with("imsi-") => match Imsi::parse(s) {
            Ok(imsi) => Some(imsi),
            Err(e) => {
                invalid.push(("query supi".into(), e.to_string()));
                None
            }
        },
        Some("") => {
            invalid.push(("query supi".into(), "is empty".into()));
            None
        }
        _ => None,
    };
    if !invalid.is_empty() {
        return Err(ApiError::InvalidParams {
            location: ParamLocation::Query,
            params: invalid,
        });
    }
    Ok(match imei {
        Some(imei) => Equipment::Imei(imei, imsi),
        None => Equipment::NotAnImei(imsi),
    })
}
