//! The base protocol's messages (RFC 6733 §5): the capabilities exchange that admits a peer,
//! watchdogs, disconnection, and the answers that refuse a request.

use std::net::IpAddr;

use super::Node;
use super::codec::{self, Avp, AvpDef, AvpError, FrameError, Header, Message, flags};
use super::dict::{self, avp, command, result};

/// The AVP a Failed-AVP names.
#[derive(Clone, Copy, Debug)]
pub(super) enum Offender<'a> {
    /// An AVP as received.
    Avp(Avp<'a>),
    /// An AVP that could not be read.
    Malformed(AvpError<'a>),
    /// An AVP that should have been there.
    Missing(AvpDef),
}

/// What a Failed-AVP holds: the offender, inside the grouped AVP it belongs to, if any.
#[derive(Clone, Copy, Debug)]
pub(super) struct Failed<'a> {
    pub group: Option<AvpDef>,
    pub offender: Offender<'a>,
}

impl<'a> Failed<'a> {
    pub fn top(offender: Offender<'a>) -> Failed<'a> {
        Failed {
            group: None,
            offender,
        }
    }

    pub fn inside(group: AvpDef, offender: Offender<'a>) -> Failed<'a> {
        Failed {
            group: Some(group),
            offender,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        let failed = codec::begin_group(out, avp::FAILED_AVP);
        let group = self.group.map(|g| codec::begin_group(out, g));
        match self.offender {
            Offender::Avp(a) => put_echo(out, &a),
            Offender::Malformed(error) => {
                error.put_offender(out, dict::is_grouped, dict::minimum_len);
            }
            Offender::Missing(def) => {
                codec::put(out, def, &[0; 4][..dict::minimum_len(def.code, def.vendor)]);
            }
        }
        if let Some(group) = group {
            codec::finish_group(out, group);
        }
        codec::finish_group(out, failed);
    }
}

/// Who is on an admitted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peering {
    /// The peer its CER named: its index in the peer table.
    pub peer: usize,
    /// The peer's address.
    pub remote: IpAddr,
    /// This node's address on the connection (the CEA's Host-IP-Address).
    pub local: IpAddr,
}

/// How a connection goes on after a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep serving.
    Serve,
    /// The peer answered this node's DWR.
    WatchdogAnswered,
    /// The peer sent a DWR (answered).
    WatchdogReceived,
    /// The peer asked to disconnect (DPA written): wait for it to close.
    Disconnecting,
    /// The peer answered this node's DPR: close.
    Close,
}

impl Node {
    /// Starts an answer to `request` (same command, application and identifiers; the P bit
    /// kept; the E bit for a protocol error).
    pub(super) fn begin_answer(&self, out: &mut Vec<u8>, request: &Header, error: bool) -> usize {
        let mut bits = request.flags & flags::PROXIABLE;
        if error {
            bits |= flags::ERROR;
        }
        codec::begin(
            out,
            bits,
            request.command,
            request.application,
            request.hop_by_hop,
            request.end_to_end,
        )
    }

    /// Answers `request` with the error `code`, what is wrong in words, and the AVP at fault.
    /// The answer carries the request's Session-Id and Proxy-Infos, as every answer must.
    pub(super) fn refuse(
        &self,
        out: &mut Vec<u8>,
        request: &Message<'_>,
        code: u32,
        why: &str,
        failed: Option<Failed<'_>>,
    ) {
        self.stats.error(code);
        let protocol_error = result::is_protocol_error(code);
        let start = self.begin_answer(out, &request.header, protocol_error);
        let readable = || request.avps().map_while(Result::ok);
        if let Some(session) = readable().find(|a| a.is(avp::SESSION_ID)) {
            codec::put_raw(out, session.raw);
        }
        codec::put_u32(out, avp::RESULT_CODE, code);
        if request.header.command == command::ME_IDENTITY_CHECK && !protocol_error {
            // the ECA's grammar requires it (TS 29.272 §7.2.20)
            codec::put_u32(out, avp::AUTH_SESSION_STATE, dict::NO_STATE_MAINTAINED);
        }
        out.extend_from_slice(&self.origin);
        if !why.is_empty() {
            codec::put(out, avp::ERROR_MESSAGE, why.as_bytes());
        }
        if let Some(failed) = failed {
            failed.put(out);
        }
        for proxy in readable().filter(|a| a.is(avp::PROXY_INFO)) {
            put_echo(out, &proxy);
        }
        codec::finish(out, start);
    }

    /// Answers a CER. When it names a peer of the table that serves S13, `place(peer index)`
    /// is asked for the connection's place; with one, CEA 2001 is written and the place
    /// returned. Otherwise the refusal's CEA is written and the connection must close.
    ///
    /// # Errors
    /// Why the peer is refused: a malformed CER, an unknown peer, no common application, or
    /// no place left (CEA 3004).
    pub fn answer_cer<'m, P>(
        &self,
        out: &mut Vec<u8>,
        request: &Message<'m>,
        remote: IpAddr,
        local: IpAddr,
        place: impl FnOnce(usize) -> Option<P>,
    ) -> Result<P, super::metrics::Refusal> {
        use super::metrics::Refusal;
        let refuse = |out: &mut Vec<u8>, code, why: &str, failed| {
            self.cea(out, request, local, code, why, failed);
            Err(Refusal::NoCapabilitiesExchange)
        };
        let missing = |out: &mut Vec<u8>, def| {
            let failed = Some(Failed::top(Offender::Missing(def)));
            refuse(
                out,
                result::MISSING_AVP,
                "a required AVP is missing",
                failed,
            )
        };
        if request.has_invalid_header_bits() {
            return refuse(
                out,
                result::INVALID_HDR_BITS,
                "a request must not have the E bit",
                None,
            );
        }
        let mut origin_host: Option<&'m [u8]> = None;
        let mut origin_realm: Option<&'m [u8]> = None;
        let mut s13 = false;
        for a in request.avps() {
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    let failed = Some(Failed::top(Offender::Malformed(e)));
                    return refuse(out, e.result_code(), "malformed AVP", failed);
                }
            };
            let once = |seen: &mut Option<&'m [u8]>| seen.replace(a.data).is_none();
            let fine = if a.is(avp::ORIGIN_HOST) {
                once(&mut origin_host)
            } else if a.is(avp::ORIGIN_REALM) {
                once(&mut origin_realm)
            } else if a.is(avp::AUTH_APPLICATION_ID) {
                s13 |= serves_s13(&a);
                true
            } else if a.is(avp::VENDOR_SPECIFIC_APPLICATION_ID) {
                s13 |= a
                    .group()
                    .map_while(Result::ok)
                    .any(|inner| inner.is(avp::AUTH_APPLICATION_ID) && serves_s13(&inner));
                true
            } else if a.is_mandatory() && !CER_AVPS.iter().any(|d| a.is(*d)) {
                let failed = Some(Failed::top(Offender::Avp(a)));
                return refuse(
                    out,
                    result::AVP_UNSUPPORTED,
                    "an AVP with the M bit that Capabilities-Exchange-Request does not define",
                    failed,
                );
            } else {
                true
            };
            if !fine {
                let failed = Some(Failed::top(Offender::Avp(a)));
                return refuse(
                    out,
                    result::AVP_OCCURS_TOO_MANY_TIMES,
                    "Origin-Host and Origin-Realm occur once",
                    failed,
                );
            }
        }
        // a CER that names no peer is malformed, not a stranger's (RFC 6733 §5.3, §7.1.5)
        let (host, realm) = match (origin_host, origin_realm) {
            (Some(host), Some(realm)) => (host, realm),
            (None, _) => return missing(out, avp::ORIGIN_HOST),
            (Some(_), None) => return missing(out, avp::ORIGIN_REALM),
        };
        let Some(peer) = self.settings.peers.find(host, realm, remote) else {
            let why = format!(
                "Origin-Host {:?} of realm {:?} is not in this EIR's peer table",
                String::from_utf8_lossy(&host[..host.len().min(255)]),
                String::from_utf8_lossy(&realm[..realm.len().min(255)]),
            );
            self.cea(out, request, local, result::UNKNOWN_PEER, &why, None);
            return Err(Refusal::UnknownPeer);
        };
        if !s13 {
            self.cea(
                out,
                request,
                local,
                result::NO_COMMON_APPLICATION,
                "this EIR serves S13 (Auth-Application-Id 16777252, vendor 10415) only",
                None,
            );
            return Err(Refusal::NoCommonApplication);
        }
        let Some(place) = place(peer) else {
            self.cea(
                out,
                request,
                local,
                result::TOO_BUSY,
                "this peer, or this EIR, has all the connections it may have",
                None,
            );
            return Err(Refusal::TooBusy);
        };
        self.cea(out, request, local, result::SUCCESS, "", None);
        Ok(place)
    }

    /// Answers a CER on an open connection with a CEA, as RFC 6733 §5.6's state table says
    /// (R-Open, R-Rcv-CER: R-Snd-CEA, R-Open): read as strictly as the first, and never
    /// making the connection another peer's. The connection stays open whatever it answers:
    /// its peer was admitted already.
    fn answer_cer_again(&self, out: &mut Vec<u8>, request: &Message<'_>, peering: &Peering) {
        let start = out.len();
        let named = self.answer_cer(out, request, peering.remote, peering.local, Some);
        if named.is_ok_and(|peer| peer != peering.peer) {
            out.truncate(start);
            self.cea(
                out,
                request,
                peering.local,
                result::UNABLE_TO_COMPLY,
                "this connection is another Origin-Host's: a CER does not change its peer",
                None,
            );
        }
    }

    /// A CEA with `code`: this node's identity and its one application.
    pub(super) fn cea(
        &self,
        out: &mut Vec<u8>,
        request: &Message<'_>,
        local: IpAddr,
        code: u32,
        why: &str,
        failed: Option<Failed<'_>>,
    ) {
        if code != result::SUCCESS {
            self.stats.error(code);
        }
        let start = self.begin_answer(out, &request.header, result::is_protocol_error(code));
        codec::put_u32(out, avp::RESULT_CODE, code);
        out.extend_from_slice(&self.origin);
        // on a dual-stack listener an IPv4 peer sees this node by its IPv4 address
        let local = match local {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(local, IpAddr::V4),
            v4 => v4,
        };
        codec::put_address(out, avp::HOST_IP_ADDRESS, local);
        codec::put_u32(out, avp::VENDOR_ID, 0);
        codec::put(
            out,
            avp::PRODUCT_NAME,
            self.settings.product_name.as_bytes(),
        );
        codec::put_u32(out, avp::ORIGIN_STATE_ID, self.state_id);
        codec::put_u32(out, avp::SUPPORTED_VENDOR_ID, dict::VENDOR_3GPP);
        self.put_application(out);
        codec::put_u32(out, avp::FIRMWARE_REVISION, 1);
        if !why.is_empty() {
            codec::put(out, avp::ERROR_MESSAGE, why.as_bytes());
        }
        if let Some(failed) = failed {
            failed.put(out);
        }
        codec::finish(out, start);
    }

    /// Vendor-Specific-Application-Id {Vendor-Id 10415, Auth-Application-Id 16777252}.
    pub(super) fn put_application(&self, out: &mut Vec<u8>) {
        let group = codec::begin_group(out, avp::VENDOR_SPECIFIC_APPLICATION_ID);
        codec::put_u32(out, avp::VENDOR_ID, dict::VENDOR_3GPP);
        codec::put_u32(out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
        codec::finish_group(out, group);
    }

    /// Answers a message whose length cannot be trusted, if its header arrived whole (the
    /// stream cannot be read past it: the connection closes after this answer).
    pub fn refuse_unframed(&self, out: &mut Vec<u8>, rest: &[u8], error: FrameError) {
        let Some(header) = Header::read(rest) else {
            return;
        };
        if !header.is_request() {
            return;
        }
        let message = Message { header, body: &[] };
        self.refuse(out, &message, error.result_code(), &error.to_string(), None);
    }

    /// Whether [`Node::handle`] would answer `message` with a decision: a request without the
    /// E bit for ME-Identity-Check of application S13. A connection gathers those of one read
    /// and answers them together (`Node::answer_ecrs`).
    pub fn is_identity_check(message: &Message<'_>) -> bool {
        let header = message.header;
        header.is_request()
            && !message.has_invalid_header_bits()
            && header.command == command::ME_IDENTITY_CHECK
            && header.application == dict::S13_APPLICATION
    }

    /// Handles one message on a connection whose capabilities were exchanged with
    /// `peering`, writing its answer (if it is a request) to `out`.
    pub fn handle(&self, out: &mut Vec<u8>, message: &Message<'_>, peering: &Peering) -> Next {
        let header = message.header;
        if !header.is_request() {
            return match header.command {
                command::DEVICE_WATCHDOG => Next::WatchdogAnswered,
                command::DISCONNECT_PEER => Next::Close,
                // an answer to nothing this node asked: dropped, as RFC 6733 §6.2.1 says
                _ => Next::Serve,
            };
        }
        if message.has_invalid_header_bits() {
            self.refuse(
                out,
                message,
                result::INVALID_HDR_BITS,
                "a request must not have the E bit",
                None,
            );
            return Next::Serve;
        }
        match (header.command, header.application) {
            (command::ME_IDENTITY_CHECK, dict::S13_APPLICATION) => {
                self.answer_ecrs(out, &[*message]);
                Next::Serve
            }
            (command::ME_IDENTITY_CHECK, _) => {
                self.refuse(
                    out,
                    message,
                    result::APPLICATION_UNSUPPORTED,
                    "ME-Identity-Check is served for application 16777252 (S13) only",
                    None,
                );
                Next::Serve
            }
            (command::DEVICE_WATCHDOG, _) => {
                // only a DWR that is answered 2001 counts as the peer's watchdog
                if self.check_base(out, message, &[avp::ORIGIN_STATE_ID], &[]) {
                    self.base_answer(out, &header);
                    return Next::WatchdogReceived;
                }
                Next::Serve
            }
            (command::DISCONNECT_PEER, _) => {
                if self.check_base(out, message, &[], &[avp::DISCONNECT_CAUSE]) {
                    self.base_answer(out, &header);
                    return Next::Disconnecting;
                }
                Next::Serve
            }
            (command::CAPABILITIES_EXCHANGE, _) => {
                self.answer_cer_again(out, message, peering);
                Next::Serve
            }
            (_, dict::BASE_APPLICATION | dict::S13_APPLICATION) => {
                self.refuse(
                    out,
                    message,
                    result::COMMAND_UNSUPPORTED,
                    "this EIR serves CER, DWR, DPR and S13's ECR only",
                    None,
                );
                Next::Serve
            }
            _ => {
                self.refuse(
                    out,
                    message,
                    result::APPLICATION_UNSUPPORTED,
                    "this EIR serves S13 (application 16777252) only",
                    None,
                );
                Next::Serve
            }
        }
    }

    /// Checks a DWR's or DPR's AVPs: well formed, none it does not know with the M bit, and
    /// Origin-Host, Origin-Realm and its `required` ones there (RFC 6733 §5.4.1, §5.5.1).
    /// Refuses the request and returns false otherwise.
    fn check_base(
        &self,
        out: &mut Vec<u8>,
        message: &Message<'_>,
        optional: &[AvpDef],
        required: &[AvpDef],
    ) -> bool {
        let base = [avp::ORIGIN_HOST, avp::ORIGIN_REALM];
        let required = || base.iter().chain(required);
        // bit i: the i-th required AVP was seen
        let mut seen = 0u32;
        for a in message.avps() {
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    let code = e.result_code();
                    self.refuse(
                        out,
                        message,
                        code,
                        "malformed AVP",
                        Some(Failed::top(Offender::Malformed(e))),
                    );
                    return false;
                }
            };
            if let Some(i) = required().position(|d| a.is(*d)) {
                seen |= 1 << i;
            } else if a.is_mandatory() && !optional.iter().any(|d| a.is(*d)) {
                self.refuse(
                    out,
                    message,
                    result::AVP_UNSUPPORTED,
                    "an AVP with the M bit this command does not define",
                    Some(Failed::top(Offender::Avp(a))),
                );
                return false;
            }
        }
        let absent = required().enumerate().find(|(i, _)| seen & (1 << i) == 0);
        if let Some((_, def)) = absent {
            self.refuse(
                out,
                message,
                result::MISSING_AVP,
                "a required AVP is missing",
                Some(Failed::top(Offender::Missing(*def))),
            );
            return false;
        }
        true
    }

    /// A DWA or DPA: success, this node's identity.
    fn base_answer(&self, out: &mut Vec<u8>, request: &Header) {
        let start = self.begin_answer(out, request, false);
        codec::put_u32(out, avp::RESULT_CODE, result::SUCCESS);
        out.extend_from_slice(&self.origin);
        codec::put_u32(out, avp::ORIGIN_STATE_ID, self.state_id);
        codec::finish(out, start);
    }

    /// A DWR of this node's own.
    pub(super) fn watchdog_request(&self, out: &mut Vec<u8>) {
        let start = codec::begin(
            out,
            flags::REQUEST,
            command::DEVICE_WATCHDOG,
            dict::BASE_APPLICATION,
            self.next_id(),
            self.next_id(),
        );
        out.extend_from_slice(&self.origin);
        codec::put_u32(out, avp::ORIGIN_STATE_ID, self.state_id);
        codec::finish(out, start);
    }

    /// A DPR of this node's own: it is shutting down.
    pub(super) fn disconnect_request(&self, out: &mut Vec<u8>) {
        let start = codec::begin(
            out,
            flags::REQUEST,
            command::DISCONNECT_PEER,
            dict::BASE_APPLICATION,
            self.next_id(),
            self.next_id(),
        );
        out.extend_from_slice(&self.origin);
        codec::put_u32(
            out,
            avp::DISCONNECT_CAUSE,
            dict::disconnect_cause::REBOOTING,
        );
        codec::finish(out, start);
    }
}

/// Copies a received AVP into an answer: as it came when it is well formed down to the AVPs
/// its groups hold, else its header alone (RFC 6733 §7.5 allows a Failed-AVP that only names
/// the AVP), so that no answer repeats bytes a peer could not read.
pub(super) fn put_echo(out: &mut Vec<u8>, a: &Avp<'_>) {
    if a.is_well_formed(dict::is_grouped) {
        codec::put_raw(out, a.raw);
    } else {
        a.put_header(out);
    }
}

/// The AVPs a CER may carry with the M bit (RFC 6733 §5.3.1).
const CER_AVPS: [AvpDef; 10] = [
    avp::HOST_IP_ADDRESS,
    avp::VENDOR_ID,
    avp::ORIGIN_STATE_ID,
    avp::SUPPORTED_VENDOR_ID,
    avp::AUTH_APPLICATION_ID,
    avp::INBAND_SECURITY_ID,
    avp::ACCT_APPLICATION_ID,
    avp::VENDOR_SPECIFIC_APPLICATION_ID,
    avp::FIRMWARE_REVISION,
    avp::PRODUCT_NAME,
];

fn serves_s13(a: &Avp<'_>) -> bool {
    matches!(a.u32(), Ok(dict::S13_APPLICATION | dict::RELAY_APPLICATION))
}
