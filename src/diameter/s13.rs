//! ME-Identity-Check (TS 29.272 §5.2.5.1, §7.2.19-20): the MME asks whether a terminal may
//! attach; the answer is the registry's decision ([`Registry::check`], the same rule as every
//! other interface, with the roaming exemption of art. 2.2.11.1 driven by User-Name).
//!
//! Performance-critical: every 4G attach. The ECR is read in one pass over its AVPs without
//! copying; the ECRs of one read are looked up together; the ECA is the request's Session-Id
//! followed by bytes encoded once per answer kind at start-up. Nothing is allocated unless the
//! request is refused.
//!
//! [`Registry::check`]: crate::registry::Registry::check

use std::time::Instant;

use smallvec::SmallVec;

use super::Node;
use super::base::{Failed, Offender};
use super::codec::{self, Avp, Message};
use super::dict::{self, avp, result};
use crate::imei::Imei;
use crate::imsi::Imsi;
use crate::registry::metrics::Unanswered;
use crate::registry::{Answer, CHECKS_AT_ONCE, EquipmentStatus, Interface};

/// An ECR that cannot be answered with a decision: the error answer's parts.
struct Refusal<'a> {
    code: u32,
    why: &'static str,
    failed: Option<Failed<'a>>,
}

impl<'a> Refusal<'a> {
    fn new(code: u32, why: &'static str, failed: Failed<'a>) -> Refusal<'a> {
        Refusal {
            code,
            why,
            failed: Some(failed),
        }
    }
}

/// What an ECR asks, once read.
struct Request<'a> {
    session_id: &'a [u8],
    imei: Imei,
    imsi: Option<Imsi>,
    proxied: bool,
}

/// The ECA's bytes after the Session-Id, for each answer, encoded once.
pub(super) struct Answers {
    /// By [`answer_index`].
    bodies: [Vec<u8>; 4],
}

impl Answers {
    pub(super) fn new(origin: &[u8]) -> Answers {
        let body = |answer: Answer| {
            let mut out = Vec::new();
            let group = codec::begin_group(&mut out, avp::VENDOR_SPECIFIC_APPLICATION_ID);
            codec::put_u32(&mut out, avp::VENDOR_ID, dict::VENDOR_3GPP);
            codec::put_u32(&mut out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
            codec::finish_group(&mut out, group);
            match answer {
                Answer::Status(_) => codec::put_u32(&mut out, avp::RESULT_CODE, result::SUCCESS),
                Answer::Unknown => {
                    let group = codec::begin_group(&mut out, avp::EXPERIMENTAL_RESULT);
                    codec::put_u32(&mut out, avp::VENDOR_ID, dict::VENDOR_3GPP);
                    codec::put_u32(
                        &mut out,
                        avp::EXPERIMENTAL_RESULT_CODE,
                        result::EQUIPMENT_UNKNOWN,
                    );
                    codec::finish_group(&mut out, group);
                }
            }
            codec::put_u32(&mut out, avp::AUTH_SESSION_STATE, dict::NO_STATE_MAINTAINED);
            out.extend_from_slice(origin);
            if let Answer::Status(status) = answer {
                codec::put_u32(&mut out, avp::EQUIPMENT_STATUS, equipment_status(status));
            }
            out
        };
        Answers {
            bodies: [
                body(Answer::Status(EquipmentStatus::Whitelisted)),
                body(Answer::Status(EquipmentStatus::Blacklisted)),
                body(Answer::Status(EquipmentStatus::Greylisted)),
                body(Answer::Unknown),
            ],
        }
    }

    fn body(&self, answer: Answer) -> &[u8] {
        &self.bodies[answer_index(answer)]
    }
}

fn answer_index(answer: Answer) -> usize {
    match answer {
        Answer::Status(EquipmentStatus::Whitelisted) => 0,
        Answer::Status(EquipmentStatus::Blacklisted) => 1,
        Answer::Status(EquipmentStatus::Greylisted) => 2,
        Answer::Unknown => 3,
    }
}

/// Equipment-Status (TS 29.272 §7.3.51): WHITELISTED (0), BLACKLISTED (1), GREYLISTED (2).
pub fn equipment_status(status: EquipmentStatus) -> u32 {
    match status {
        EquipmentStatus::Whitelisted => 0,
        EquipmentStatus::Blacklisted => 1,
        EquipmentStatus::Greylisted => 2,
    }
}

impl Node {
    /// Answers ECRs of application S13 into `out`, in order, and counts them: those of one
    /// read of a connection, in groups of at most [`CHECKS_AT_ONCE`] (more are answered all
    /// the same).
    ///
    /// Why together: most of a check's time is waiting for memory (the filter's block, the
    /// index's bucket and members). Looked up together ([`Registry::check_each`]), the checks
    /// of a read wait at once instead of one after another. Each check's latency is counted
    /// from the group's start to its own answer, so it includes the lookups of the checks
    /// beside it: the time it actually waited.
    ///
    /// [`Registry::check_each`]: crate::registry::Registry::check_each
    pub(super) fn answer_ecrs(&self, out: &mut Vec<u8>, messages: &[Message<'_>]) {
        for messages in messages.chunks(CHECKS_AT_ONCE) {
            let started = Instant::now();
            let read: SmallVec<[Result<Request<'_>, Refusal<'_>>; CHECKS_AT_ONCE]> =
                messages.iter().map(|m| self.read_ecr(m)).collect();
            let checks: SmallVec<[(Imei, Option<Imsi>); CHECKS_AT_ONCE]> = (read.iter())
                .filter_map(|r| r.as_ref().ok().map(|r| (r.imei, r.imsi)))
                .collect();
            let mut answers: SmallVec<[Answer; CHECKS_AT_ONCE]> = SmallVec::new();
            if !checks.is_empty() {
                self.registry
                    .check_each(Interface::S13, &checks, |i, decision| {
                        debug_assert_eq!(i, answers.len(), "decisions come in order");
                        answers.push(decision.answer);
                    });
            }
            let mut answers = answers.into_iter();
            for (message, read) in messages.iter().zip(read) {
                let result = match read {
                    Ok(request) => {
                        let answer = answers.next().expect("a decision for every request read");
                        self.encode_eca(out, message, &request, answer);
                        Ok(answer)
                    }
                    Err(refusal) => {
                        self.refuse(out, message, refusal.code, refusal.why, refusal.failed);
                        Err(Unanswered::Malformed)
                    }
                };
                let elapsed = Some(started.elapsed());
                self.registry
                    .metrics()
                    .observe(Interface::S13, result, elapsed);
            }
        }
    }

    /// Writes the ECA of `answer` to the ECR `message`, read as `request`.
    fn encode_eca(
        &self,
        out: &mut Vec<u8>,
        message: &Message<'_>,
        request: &Request<'_>,
        answer: Answer,
    ) {
        let start = self.begin_answer(out, &message.header, false);
        codec::put(out, avp::SESSION_ID, request.session_id);
        out.extend_from_slice(self.answers.body(answer));
        if request.proxied {
            for proxy in message.avps().map_while(Result::ok) {
                if proxy.is(avp::PROXY_INFO) {
                    super::base::put_echo(out, &proxy);
                }
            }
        }
        codec::finish(out, start);
    }

    /// Reads an ECR: the AVPs its grammar requires, once each; the Terminal-Information; the
    /// optional User-Name. Any other AVP with the M bit is refused (5001); without it, ignored.
    fn read_ecr<'a>(&self, message: &Message<'a>) -> Result<Request<'a>, Refusal<'a>> {
        // bits of the AVPs seen, to refuse repeats and name what is missing
        const SESSION: u8 = 1;
        const AUTH_STATE: u8 = 2;
        const ORIGIN_HOST: u8 = 4;
        const ORIGIN_REALM: u8 = 8;
        const DESTINATION_REALM: u8 = 16;
        const DESTINATION_HOST: u8 = 32;
        const TERMINAL: u8 = 64;
        const USER_NAME: u8 = 128;
        let mut seen = 0u8;
        let mut session_id: &[u8] = &[];
        let mut terminal = None;
        let mut user_name = None;
        let mut proxied = false;
        for a in message.avps() {
            let a = a.map_err(|e| {
                Refusal::new(
                    e.result_code(),
                    "malformed AVP",
                    Failed::top(Offender::Malformed(e)),
                )
            })?;
            let bit = if a.is(avp::SESSION_ID) {
                session_id = a.data;
                SESSION
            } else if a.is(avp::TERMINAL_INFORMATION) {
                terminal = Some(a);
                TERMINAL
            } else if a.is(avp::USER_NAME) {
                user_name = Some(a);
                USER_NAME
            } else if a.is(avp::ORIGIN_HOST) {
                ORIGIN_HOST
            } else if a.is(avp::ORIGIN_REALM) {
                ORIGIN_REALM
            } else if a.is(avp::AUTH_SESSION_STATE) {
                AUTH_STATE
            } else if a.is(avp::DESTINATION_REALM) {
                if !a
                    .data
                    .eq_ignore_ascii_case(self.settings.origin_realm.as_bytes())
                {
                    return Err(Refusal {
                        code: result::REALM_NOT_SERVED,
                        why: "Destination-Realm is not this EIR's realm",
                        failed: None,
                    });
                }
                DESTINATION_REALM
            } else if a.is(avp::DESTINATION_HOST) {
                if !a
                    .data
                    .eq_ignore_ascii_case(self.settings.origin_host.as_bytes())
                {
                    return Err(Refusal {
                        code: result::UNABLE_TO_DELIVER,
                        why: "Destination-Host is not this EIR",
                        failed: None,
                    });
                }
                DESTINATION_HOST
            } else if a.is(avp::PROXY_INFO) {
                proxied = true;
                0
            } else if a.is(avp::VENDOR_SPECIFIC_APPLICATION_ID)
                || a.is(avp::ROUTE_RECORD)
                || a.is(avp::DRMP)
                // RFC 6733 §8.16: any message may carry it; some stacks name the application
                || a.is(avp::ORIGIN_STATE_ID)
                || a.is(avp::AUTH_APPLICATION_ID)
                || !a.is_mandatory()
            {
                0
            } else {
                return Err(Refusal::new(
                    result::AVP_UNSUPPORTED,
                    "an AVP with the M bit that ME-Identity-Check-Request does not define",
                    Failed::top(Offender::Avp(a)),
                ));
            };
            if seen & bit != 0 {
                return Err(Refusal::new(
                    result::AVP_OCCURS_TOO_MANY_TIMES,
                    "an AVP that may occur once occurs again",
                    Failed::top(Offender::Avp(a)),
                ));
            }
            seen |= bit;
        }
        for (bit, def) in [
            (SESSION, avp::SESSION_ID),
            (AUTH_STATE, avp::AUTH_SESSION_STATE),
            (ORIGIN_HOST, avp::ORIGIN_HOST),
            (ORIGIN_REALM, avp::ORIGIN_REALM),
            (DESTINATION_REALM, avp::DESTINATION_REALM),
            (TERMINAL, avp::TERMINAL_INFORMATION),
        ] {
            if seen & bit == 0 {
                return Err(Refusal::new(
                    result::MISSING_AVP,
                    "a required AVP is missing",
                    Failed::top(Offender::Missing(def)),
                ));
            }
        }
        let imei = read_terminal(terminal.expect("seen"))?;
        let imsi = match user_name {
            None => None,
            Some(a) => Some(
                std::str::from_utf8(a.data)
                    .ok()
                    .and_then(|s| Imsi::parse(s).ok())
                    .ok_or_else(|| {
                        Refusal::new(
                            result::INVALID_AVP_VALUE,
                            "User-Name is not an IMSI (5 to 15 digits)",
                            Failed::top(Offender::Avp(a)),
                        )
                    })?,
            ),
        };
        Ok(Request {
            session_id,
            imei,
            imsi,
            proxied,
        })
    }
}

/// The IMEI of a Terminal-Information: 14 digits, or 15 with a check or spare digit (TS 29.272
/// §7.3.4, TS 23.003 §6.2.1), and a Software-Version of 2 digits if there is one.
fn read_terminal<'a>(terminal: Avp<'a>) -> Result<Imei, Refusal<'a>> {
    let inside = |offender| Failed::inside(avp::TERMINAL_INFORMATION, offender);
    let mut imei = None;
    let mut meid = None;
    let mut software = None;
    for a in terminal.group() {
        let a = a.map_err(|e| {
            Refusal::new(
                e.result_code(),
                "malformed AVP in Terminal-Information",
                inside(Offender::Malformed(e)),
            )
        })?;
        // each of the three at most once (TS 29.272 §7.3.3): with two IMEIs, a tap or DRA
        // reading the first would name another device than the one decided on
        let slot = if a.is(avp::IMEI) {
            &mut imei
        } else if a.is(avp::MEID_3GPP2) {
            &mut meid
        } else if a.is(avp::SOFTWARE_VERSION) {
            if !(a.data.len() == 2 && a.data.iter().all(u8::is_ascii_digit)) {
                return Err(Refusal::new(
                    result::INVALID_AVP_VALUE,
                    "Software-Version must be 2 digits",
                    inside(Offender::Avp(a)),
                ));
            }
            &mut software
        } else if a.is_mandatory() {
            return Err(Refusal::new(
                result::AVP_UNSUPPORTED,
                "an AVP with the M bit that Terminal-Information does not define",
                inside(Offender::Avp(a)),
            ));
        } else {
            continue;
        };
        if slot.replace(a).is_some() {
            return Err(Refusal::new(
                result::AVP_OCCURS_TOO_MANY_TIMES,
                "an AVP that may occur once in Terminal-Information occurs again",
                inside(Offender::Avp(a)),
            ));
        }
    }
    match (imei, meid) {
        (Some(a), _) => std::str::from_utf8(a.data)
            .ok()
            .filter(|s| s.len() <= 15)
            .and_then(|s| Imei::parse_network(s).ok())
            .ok_or_else(|| {
                Refusal::new(
                    result::INVALID_AVP_VALUE,
                    "IMEI must be 14 or 15 digits",
                    inside(Offender::Avp(a)),
                )
            }),
        (None, Some(a)) => Err(Refusal::new(
            result::AVP_UNSUPPORTED,
            "3GPP2-MEID is not supported: this EIR registers IMEIs only",
            inside(Offender::Avp(a)),
        )),
        (None, None) => Err(Refusal::new(
            result::MISSING_AVP,
            "Terminal-Information has no IMEI",
            inside(Offender::Missing(avp::IMEI)),
        )),
    }
}
