//! The part of the Diameter dictionary imeidb speaks: the base protocol's commands and AVPs
//! (RFC 6733), S13's (3GPP TS 29.272 §5.2.5, §7.2.19-20, §7.3) and the result codes this node
//! answers with. Names are the specifications'.

use super::codec::{Avp, AvpDef};

/// 3GPP's IANA enterprise number.
pub const VENDOR_3GPP: u32 = 10415;

/// The S13/S13' application (TS 29.272 §7.1.8).
pub const S13_APPLICATION: u32 = 16777252;

/// The Diameter common messages application of CER, DWR and DPR.
pub const BASE_APPLICATION: u32 = 0;

/// The relay application: a CER advertising it supports every application.
pub const RELAY_APPLICATION: u32 = 0xffff_ffff;

/// Command codes.
pub mod command {
    /// Capabilities-Exchange-Request/Answer.
    pub const CAPABILITIES_EXCHANGE: u32 = 257;
    /// Device-Watchdog-Request/Answer.
    pub const DEVICE_WATCHDOG: u32 = 280;
    /// Disconnect-Peer-Request/Answer.
    pub const DISCONNECT_PEER: u32 = 282;
    /// ME-Identity-Check-Request/Answer (S13).
    pub const ME_IDENTITY_CHECK: u32 = 324;
}

/// AVPs, as this node sends them (M bit where the specification says "must").
pub mod avp {
    use super::{AvpDef, VENDOR_3GPP};

    /// User-Name: the IMSI in an ECR.
    pub const USER_NAME: AvpDef = AvpDef::ietf(1);
    /// Proxy-State, inside Proxy-Info.
    pub const PROXY_STATE: AvpDef = AvpDef::ietf(33);
    /// Host-IP-Address.
    pub const HOST_IP_ADDRESS: AvpDef = AvpDef::ietf(257);
    /// Auth-Application-Id.
    pub const AUTH_APPLICATION_ID: AvpDef = AvpDef::ietf(258);
    /// Acct-Application-Id.
    pub const ACCT_APPLICATION_ID: AvpDef = AvpDef::ietf(259);
    /// Vendor-Specific-Application-Id (grouped).
    pub const VENDOR_SPECIFIC_APPLICATION_ID: AvpDef = AvpDef::ietf(260);
    /// Session-Id.
    pub const SESSION_ID: AvpDef = AvpDef::ietf(263);
    /// Origin-Host.
    pub const ORIGIN_HOST: AvpDef = AvpDef::ietf(264);
    /// Supported-Vendor-Id.
    pub const SUPPORTED_VENDOR_ID: AvpDef = AvpDef::ietf(265);
    /// Vendor-Id.
    pub const VENDOR_ID: AvpDef = AvpDef::ietf(266);
    /// Firmware-Revision (never with the M bit).
    pub const FIRMWARE_REVISION: AvpDef = AvpDef::ietf_optional(267);
    /// Result-Code.
    pub const RESULT_CODE: AvpDef = AvpDef::ietf(268);
    /// Product-Name (never with the M bit).
    pub const PRODUCT_NAME: AvpDef = AvpDef::ietf_optional(269);
    /// Disconnect-Cause.
    pub const DISCONNECT_CAUSE: AvpDef = AvpDef::ietf(273);
    /// Auth-Session-State.
    pub const AUTH_SESSION_STATE: AvpDef = AvpDef::ietf(277);
    /// Origin-State-Id.
    pub const ORIGIN_STATE_ID: AvpDef = AvpDef::ietf(278);
    /// Failed-AVP (grouped).
    pub const FAILED_AVP: AvpDef = AvpDef::ietf(279);
    /// Proxy-Host, inside Proxy-Info.
    pub const PROXY_HOST: AvpDef = AvpDef::ietf(280);
    /// Error-Message (never with the M bit).
    pub const ERROR_MESSAGE: AvpDef = AvpDef::ietf_optional(281);
    /// Route-Record.
    pub const ROUTE_RECORD: AvpDef = AvpDef::ietf(282);
    /// Destination-Realm.
    pub const DESTINATION_REALM: AvpDef = AvpDef::ietf(283);
    /// Proxy-Info (grouped).
    pub const PROXY_INFO: AvpDef = AvpDef::ietf(284);
    /// Destination-Host.
    pub const DESTINATION_HOST: AvpDef = AvpDef::ietf(293);
    /// Error-Reporting-Host (never with the M bit).
    pub const ERROR_REPORTING_HOST: AvpDef = AvpDef::ietf_optional(294);
    /// Origin-Realm.
    pub const ORIGIN_REALM: AvpDef = AvpDef::ietf(296);
    /// Experimental-Result (grouped).
    pub const EXPERIMENTAL_RESULT: AvpDef = AvpDef::ietf(297);
    /// Experimental-Result-Code.
    pub const EXPERIMENTAL_RESULT_CODE: AvpDef = AvpDef::ietf(298);
    /// Inband-Security-Id.
    pub const INBAND_SECURITY_ID: AvpDef = AvpDef::ietf(299);
    /// DRMP (RFC 7944; never with the M bit).
    pub const DRMP: AvpDef = AvpDef::ietf_optional(301);
    /// Terminal-Information (grouped, TS 29.272 §7.3.3).
    pub const TERMINAL_INFORMATION: AvpDef = AvpDef::vendor(1401, VENDOR_3GPP);
    /// IMEI (TS 29.272 §7.3.4).
    pub const IMEI: AvpDef = AvpDef::vendor(1402, VENDOR_3GPP);
    /// Software-Version (TS 29.272 §7.3.5).
    pub const SOFTWARE_VERSION: AvpDef = AvpDef::vendor(1403, VENDOR_3GPP);
    /// Equipment-Status (TS 29.272 §7.3.51).
    pub const EQUIPMENT_STATUS: AvpDef = AvpDef::vendor(1445, VENDOR_3GPP);
    /// 3GPP2-MEID (TS 29.272 §7.3.6).
    pub const MEID_3GPP2: AvpDef = AvpDef::vendor(1471, VENDOR_3GPP);

    /// The grouped AVPs among these: what a message's validation descends into.
    pub const GROUPED: [AvpDef; 5] = [
        VENDOR_SPECIFIC_APPLICATION_ID,
        FAILED_AVP,
        PROXY_INFO,
        EXPERIMENTAL_RESULT,
        TERMINAL_INFORMATION,
    ];
}

/// Result codes this node answers with (RFC 6733 §7.1, TS 29.272 §7.4).
pub mod result {
    pub use super::super::codec::result::*;

    /// DIAMETER_SUCCESS.
    pub const SUCCESS: u32 = 2001;
    /// DIAMETER_COMMAND_UNSUPPORTED.
    pub const COMMAND_UNSUPPORTED: u32 = 3001;
    /// DIAMETER_UNABLE_TO_DELIVER: a Destination-Host that is not this node.
    pub const UNABLE_TO_DELIVER: u32 = 3002;
    /// DIAMETER_REALM_NOT_SERVED: a Destination-Realm that is not this node's.
    pub const REALM_NOT_SERVED: u32 = 3003;
    /// DIAMETER_TOO_BUSY.
    pub const TOO_BUSY: u32 = 3004;
    /// DIAMETER_APPLICATION_UNSUPPORTED.
    pub const APPLICATION_UNSUPPORTED: u32 = 3007;
    /// DIAMETER_UNKNOWN_PEER.
    pub const UNKNOWN_PEER: u32 = 3010;
    /// DIAMETER_AVP_UNSUPPORTED.
    pub const AVP_UNSUPPORTED: u32 = 5001;
    /// DIAMETER_INVALID_AVP_VALUE.
    pub const INVALID_AVP_VALUE: u32 = 5004;
    /// DIAMETER_MISSING_AVP.
    pub const MISSING_AVP: u32 = 5005;
    /// DIAMETER_AVP_OCCURS_TOO_MANY_TIMES.
    pub const AVP_OCCURS_TOO_MANY_TIMES: u32 = 5009;
    /// DIAMETER_NO_COMMON_APPLICATION.
    pub const NO_COMMON_APPLICATION: u32 = 5010;
    /// DIAMETER_UNABLE_TO_COMPLY.
    pub const UNABLE_TO_COMPLY: u32 = 5012;
    /// DIAMETER_ERROR_EQUIPMENT_UNKNOWN (TS 29.272 §7.4.3.1, an Experimental-Result of vendor
    /// 3GPP).
    pub const EQUIPMENT_UNKNOWN: u32 = 5422;

    /// Protocol errors (3xxx) are answered with the E bit set (RFC 6733 §7.1.3).
    pub fn is_protocol_error(code: u32) -> bool {
        (3000..4000).contains(&code)
    }
}

/// Whether `a` is one of the grouped AVPs spoken here (whose data is itself AVPs).
pub fn is_grouped(a: &Avp<'_>) -> bool {
    avp::GROUPED.iter().any(|def| a.is(*def))
}

/// The least data an AVP of this code may hold: 4 bytes for the Unsigned32 and Enumerated
/// AVPs spoken here, none for the others. A Failed-AVP naming a missing or mis-sized AVP
/// carries that many zeros (RFC 6733 §7.5), so that a strict peer can read it.
pub fn minimum_len(code: u32, vendor: u32) -> usize {
    const FOUR_BYTES: [AvpDef; 13] = [
        avp::AUTH_APPLICATION_ID,
        avp::ACCT_APPLICATION_ID,
        avp::SUPPORTED_VENDOR_ID,
        avp::VENDOR_ID,
        avp::FIRMWARE_REVISION,
        avp::RESULT_CODE,
        avp::DISCONNECT_CAUSE,
        avp::AUTH_SESSION_STATE,
        avp::ORIGIN_STATE_ID,
        avp::EXPERIMENTAL_RESULT_CODE,
        avp::INBAND_SECURITY_ID,
        avp::DRMP,
        avp::EQUIPMENT_STATUS,
    ];
    if FOUR_BYTES
        .iter()
        .any(|d| d.code == code && d.vendor == vendor)
    {
        4
    } else {
        0
    }
}

/// Disconnect-Cause values (RFC 6733 §5.4.3).
pub mod disconnect_cause {
    /// The node is restarting or shutting down.
    pub const REBOOTING: u32 = 0;
}

/// Auth-Session-State NO_STATE_MAINTAINED: S13 keeps no session.
pub const NO_STATE_MAINTAINED: u32 = 1;
