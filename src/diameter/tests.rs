//! The Diameter node's rules, without sockets: what each request is answered, by result code
//! and Failed-AVP; and that no request, however mangled, gets an answer a peer could not read.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::codec::{self, Avps, Message, flags};
use super::dict::{self, avp, command};
use super::peers::{Peer, PeerTable};
use super::{Next, Node, Peering, Settings, check_answers};
use crate::imei::Imei;
use crate::metrics::Metrics;
use crate::registry::{Answer, CheckPolicy, EquipmentStatus, Registry};
use crate::store::{NegativeRecord, PositiveRecord, ReportKind, Store, StoreOptions};

const HOME_IMSI: &str = "732101234567890";
const ROAMER_IMSI: &str = "214011234567890";

fn imei(n: u64) -> Imei {
    Imei::from_body(35_290_611_000_000 + n).unwrap()
}

/// A node whose registry holds imei(1) registered, imei(2) stolen, imei(3) both.
fn node_with(not_listed: Answer) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let options = StoreOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &options, &metrics).unwrap();
    let mut policy = CheckPolicy::default();
    policy.not_listed[crate::registry::Interface::S13.index()] = not_listed;
    let registry = Registry::new(Arc::new(store), policy, &metrics);
    let stolen = NegativeRecord {
        kind: ReportKind::Stolen,
        ..Default::default()
    };
    for n in [1, 3] {
        registry
            .list_positive(imei(n), &PositiveRecord::default())
            .unwrap();
    }
    for n in [2, 3] {
        registry.list_negative(imei(n), &stolen).unwrap();
    }
    let settings = Settings {
        origin_host: "eir.test.example".into(),
        origin_realm: "test.example".into(),
        peers: PeerTable::new(vec![Peer {
            origin_host: "mme.test.example".into(),
            realm: "mme.example".into(),
            source: None,
        }]),
        ..Settings::default()
    };
    let node = Node::new(settings, registry, &metrics, Duration::from_secs(1));
    (node, dir)
}

fn node() -> (Node, tempfile::TempDir) {
    node_with(Answer::Unknown)
}

/// A message of `command` whose AVPs `avps` writes.
fn message(bits: u8, command: u32, application: u32, avps: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    let start = codec::begin(&mut out, bits, command, application, 0x1111, 0x2222);
    avps(&mut out);
    codec::finish(&mut out, start);
    out
}

/// What an ECR holds; each field can be left out or replaced.
#[derive(Clone)]
struct Ecr {
    session: Option<&'static [u8]>,
    auth_state: bool,
    origin: bool,
    destination_realm: Option<&'static [u8]>,
    destination_host: Option<&'static [u8]>,
    imei: Option<String>,
    sv: Option<&'static [u8]>,
    meid: Option<&'static [u8]>,
    terminal: bool,
    imsi: Option<&'static [u8]>,
    /// AVPs after the others inside Terminal-Information
    terminal_extra: Vec<(codec::AvpDef, Vec<u8>)>,
    extra: Vec<(codec::AvpDef, Vec<u8>)>,
}

impl Ecr {
    fn of(imei: Imei) -> Ecr {
        Ecr {
            session: Some(b"mme.test.example;1;2"),
            auth_state: true,
            origin: true,
            destination_realm: Some(b"test.example"),
            destination_host: None,
            imei: Some(imei.to_string()),
            sv: Some(b"01"),
            meid: None,
            terminal: true,
            imsi: Some(HOME_IMSI.as_bytes()),
            terminal_extra: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        message(
            flags::REQUEST | flags::PROXIABLE,
            command::ME_IDENTITY_CHECK,
            dict::S13_APPLICATION,
            |out| {
                if let Some(session) = self.session {
                    codec::put(out, avp::SESSION_ID, session);
                }
                if self.auth_state {
                    codec::put_u32(out, avp::AUTH_SESSION_STATE, 1);
                }
                if self.origin {
                    codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
                    codec::put(out, avp::ORIGIN_REALM, b"mme.example");
                }
                if let Some(host) = self.destination_host {
                    codec::put(out, avp::DESTINATION_HOST, host);
                }
                if let Some(realm) = self.destination_realm {
                    codec::put(out, avp::DESTINATION_REALM, realm);
                }
                if self.terminal {
                    let group = codec::begin_group(out, avp::TERMINAL_INFORMATION);
                    if let Some(imei) = &self.imei {
                        codec::put(out, avp::IMEI, imei.as_bytes());
                    }
                    if let Some(meid) = self.meid {
                        codec::put(out, avp::MEID_3GPP2, meid);
                    }
                    if let Some(sv) = self.sv {
                        codec::put(out, avp::SOFTWARE_VERSION, sv);
                    }
                    for (def, data) in &self.terminal_extra {
                        codec::put(out, *def, data);
                    }
                    codec::finish_group(out, group);
                }
                if let Some(imsi) = self.imsi {
                    codec::put(out, avp::USER_NAME, imsi);
                }
                for (def, data) in &self.extra {
                    codec::put(out, *def, data);
                }
            },
        )
    }
}

/// What an answer says.
#[derive(Clone, Debug, PartialEq)]
struct Said {
    error_bit: bool,
    result: Option<u32>,
    experimental: Option<(u32, u32)>,
    status: Option<u32>,
    /// AVP codes on the path inside Failed-AVP.
    failed: Vec<u32>,
    session: Option<Vec<u8>>,
}

fn read_answer(bytes: &[u8]) -> Said {
    let message = Message::new(bytes).unwrap();
    let mut said = Said {
        error_bit: message.header.flags & flags::ERROR != 0,
        result: None,
        experimental: None,
        status: None,
        failed: Vec::new(),
        session: None,
    };
    for a in message.avps().map(Result::unwrap) {
        if a.is(avp::RESULT_CODE) {
            said.result = Some(a.u32().unwrap());
        } else if a.is(avp::EQUIPMENT_STATUS) {
            said.status = Some(a.u32().unwrap());
        } else if a.is(avp::SESSION_ID) {
            said.session = Some(a.data.to_vec());
        } else if a.is(avp::EXPERIMENTAL_RESULT) {
            let inner: Vec<_> = a.group().map(Result::unwrap).collect();
            let vendor = inner.iter().find(|i| i.is(avp::VENDOR_ID)).unwrap();
            let code = inner
                .iter()
                .find(|i| i.is(avp::EXPERIMENTAL_RESULT_CODE))
                .unwrap();
            said.experimental = Some((vendor.u32().unwrap(), code.u32().unwrap()));
        } else if a.is(avp::FAILED_AVP) {
            let mut inside = a.group();
            while let Some(Ok(first)) = inside.next() {
                said.failed.push(first.code);
                if first.is(avp::TERMINAL_INFORMATION) {
                    inside = Avps::new(first.data);
                } else {
                    break;
                }
            }
        }
    }
    said
}

/// The connection of the table's first peer, over loopback.
fn first_peer() -> Peering {
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    Peering {
        peer: 0,
        remote: ip,
        local: ip,
    }
}

fn ask(node: &Node, request: &[u8]) -> Said {
    let mut out = Vec::new();
    node.handle(&mut out, &Message::new(request).unwrap(), &first_peer());
    check_answers(node, request).unwrap();
    let said = read_answer(&out);
    let answer = Message::new(&out).unwrap();
    assert_eq!(
        (answer.header.hop_by_hop, answer.header.end_to_end),
        (0x1111, 0x2222)
    );
    said
}

fn decision(status: u32) -> Said {
    Said {
        error_bit: false,
        result: Some(2001),
        experimental: None,
        status: Some(status),
        failed: Vec::new(),
        session: Some(b"mme.test.example;1;2".to_vec()),
    }
}

#[test]
fn ecr_is_answered_with_the_registrys_decision() {
    let (node, _dir) = node();
    assert_eq!(ask(&node, &Ecr::of(imei(1)).bytes()), decision(0));
    assert_eq!(ask(&node, &Ecr::of(imei(2)).bytes()), decision(1));
    assert_eq!(ask(&node, &Ecr::of(imei(3)).bytes()), decision(1));
    // 14 digits, and a spare 0 instead of the check digit, name the same device
    let digits = imei(2).to_string();
    for text in [&digits[..14], &format!("{}0", &digits[..14])] {
        let ecr = Ecr {
            imei: Some(text.to_owned()),
            ..Ecr::of(imei(2))
        };
        assert_eq!(ask(&node, &ecr.bytes()), decision(1), "{text}");
    }
    // without User-Name (not every MME sends it)
    let anonymous = Ecr {
        imsi: None,
        ..Ecr::of(imei(2))
    };
    assert_eq!(ask(&node, &anonymous.bytes()), decision(1));
    // an inbound roamer is never restricted (art. 2.2.11.1)
    let roamer = Ecr {
        imsi: Some(ROAMER_IMSI.as_bytes()),
        ..Ecr::of(imei(2))
    };
    assert_eq!(ask(&node, &roamer.bytes()), decision(0));
    // on neither list: DIAMETER_ERROR_EQUIPMENT_UNKNOWN, no Equipment-Status
    let unknown = ask(&node, &Ecr::of(imei(4)).bytes());
    assert_eq!(unknown.result, None);
    assert_eq!(unknown.experimental, Some((10415, 5422)));
    assert_eq!(unknown.status, None);
    assert!(!unknown.error_bit);
}

#[test]
fn not_listed_follows_check_s13_not_listed() {
    let (node, _dir) = node_with(Answer::Status(EquipmentStatus::Greylisted));
    assert_eq!(ask(&node, &Ecr::of(imei(4)).bytes()), decision(2));
}

/// Each malformed ECR, its result code and the path of its Failed-AVP.
#[test]
fn malformed_ecrs_are_refused_naming_the_avp() {
    let (node, _dir) = node();
    let base = || Ecr::of(imei(1));
    let unknown_mandatory = codec::AvpDef::vendor(9999, 10415);
    let cases: Vec<(&str, Ecr, u32, Vec<u32>)> = vec![
        (
            "no Session-Id",
            Ecr {
                session: None,
                ..base()
            },
            5005,
            vec![263],
        ),
        (
            "no Auth-Session-State",
            Ecr {
                auth_state: false,
                ..base()
            },
            5005,
            vec![277],
        ),
        (
            "no Origin-Host",
            Ecr {
                origin: false,
                ..base()
            },
            5005,
            vec![264],
        ),
        (
            "no Destination-Realm",
            Ecr {
                destination_realm: None,
                ..base()
            },
            5005,
            vec![283],
        ),
        (
            "no Terminal-Information",
            Ecr {
                terminal: false,
                ..base()
            },
            5005,
            vec![1401],
        ),
        (
            "no IMEI",
            Ecr {
                imei: None,
                ..base()
            },
            5005,
            vec![1401, 1402],
        ),
        (
            "short IMEI",
            Ecr {
                imei: Some("3529061100000".into()),
                ..base()
            },
            5004,
            vec![1401, 1402],
        ),
        (
            "IMEISV length",
            Ecr {
                imei: Some("3529061100000142".into()),
                ..base()
            },
            5004,
            vec![1401, 1402],
        ),
        (
            "letters",
            Ecr {
                imei: Some("35290611000001X".into()),
                ..base()
            },
            5004,
            vec![1401, 1402],
        ),
        (
            "Software-Version",
            Ecr {
                sv: Some(b"1"),
                ..base()
            },
            5004,
            vec![1401, 1403],
        ),
        (
            "MEID only",
            Ecr {
                imei: None,
                meid: Some(b"\xa0\0\0\0\0\0\x01"),
                ..base()
            },
            5001,
            vec![1401, 1471],
        ),
        (
            "User-Name",
            Ecr {
                imsi: Some(b"not-an-imsi"),
                ..base()
            },
            5004,
            vec![1],
        ),
        (
            "unknown mandatory AVP",
            Ecr {
                extra: vec![(unknown_mandatory, b"x".to_vec())],
                ..base()
            },
            5001,
            vec![9999],
        ),
        (
            // the registered IMEI after a stolen one must not decide (nor the reverse)
            "second IMEI in Terminal-Information",
            Ecr {
                terminal_extra: vec![(avp::IMEI, imei(1).to_string().into_bytes())],
                ..Ecr::of(imei(2))
            },
            5009,
            vec![1401, 1402],
        ),
        (
            "second Software-Version",
            Ecr {
                terminal_extra: vec![(avp::SOFTWARE_VERSION, b"02".to_vec())],
                ..base()
            },
            5009,
            vec![1401, 1403],
        ),
        (
            "repeated Terminal-Information",
            Ecr {
                extra: vec![(avp::TERMINAL_INFORMATION, Vec::new())],
                ..base()
            },
            5009,
            vec![1401],
        ),
        (
            "other realm",
            Ecr {
                destination_realm: Some(b"elsewhere"),
                ..base()
            },
            3003,
            vec![],
        ),
        (
            "other host",
            Ecr {
                destination_host: Some(b"hss.test.example"),
                ..base()
            },
            3002,
            vec![],
        ),
    ];
    for (name, ecr, code, failed) in cases {
        let said = ask(&node, &ecr.bytes());
        assert_eq!(said.result, Some(code), "{name}");
        assert_eq!(said.failed, failed, "{name}");
        assert_eq!(said.error_bit, code < 4000, "{name}");
        assert_eq!(said.status, None, "{name}");
    }
    // an unknown AVP without the M bit is ignored
    let optional = Ecr {
        extra: vec![(codec::AvpDef::ietf_optional(9999), b"x".to_vec())],
        ..base()
    };
    assert_eq!(ask(&node, &optional.bytes()), decision(0));
}

#[test]
fn base_protocol_errors_are_named() {
    let (node, _dir) = node();
    let origin = |out: &mut Vec<u8>| {
        codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
        codec::put(out, avp::ORIGIN_REALM, b"mme.example");
    };
    let unknown_command = message(flags::REQUEST, 999, 0, origin);
    assert_eq!(ask(&node, &unknown_command).result, Some(3001));
    let wrong_application = message(flags::REQUEST, 324, 4, origin);
    assert_eq!(ask(&node, &wrong_application).result, Some(3007));
    let error_bit = message(flags::REQUEST | flags::ERROR, 280, 0, origin);
    assert_eq!(ask(&node, &error_bit).result, Some(3008));
    let dwr = message(flags::REQUEST, 280, 0, origin);
    assert_eq!(ask(&node, &dwr).result, Some(2001));
    // a CER on an open connection gets a CEA and changes nothing (RFC 6733 §5.6: R-Open,
    // R-Rcv-CER: R-Snd-CEA), read as strictly as the first; it cannot change the peer
    let again = |bits: u8| {
        message(bits, 257, 0, |out| {
            origin(out);
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, 16777252);
        })
    };
    let mut out = Vec::new();
    let next = node.handle(
        &mut out,
        &Message::new(&again(flags::REQUEST)).unwrap(),
        &first_peer(),
    );
    let said = read_answer(&out);
    assert_eq!(
        (next, said.result, said.error_bit),
        (Next::Serve, Some(2001), false)
    );
    assert_eq!(Message::new(&out).unwrap().header.command, 257);
    let another = Peering {
        peer: 1,
        ..first_peer()
    };
    let mut out = Vec::new();
    let next = node.handle(
        &mut out,
        &Message::new(&again(flags::REQUEST)).unwrap(),
        &another,
    );
    assert_eq!((next, read_answer(&out).result), (Next::Serve, Some(5012)));
    let without_s13 = message(flags::REQUEST, 257, 0, origin);
    assert_eq!(ask(&node, &without_s13).result, Some(5010));
    // a DWR or DPR names its sender; a DPR says why (RFC 6733 §5.4.1, §5.5.1)
    let anonymous = message(flags::REQUEST, 280, 0, |out| {
        codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
    });
    let said = ask(&node, &anonymous);
    assert_eq!((said.result, said.failed), (Some(5005), vec![296]));
    // and only a DWR answered 2001 counts as the peer's watchdog
    let watched =
        |dwr: &[u8]| node.handle(&mut Vec::new(), &Message::new(dwr).unwrap(), &first_peer());
    assert_eq!(watched(&anonymous), Next::Serve);
    assert_eq!(watched(&dwr), Next::WatchdogReceived);
    let causeless = message(flags::REQUEST, 282, 0, origin);
    let said = ask(&node, &causeless);
    assert_eq!((said.result, said.failed), (Some(5005), vec![273]));
    let mut out = Vec::new();
    let dpr = message(flags::REQUEST, 282, 0, |out| {
        origin(out);
        codec::put_u32(out, avp::DISCONNECT_CAUSE, 0);
    });
    let next = node.handle(&mut out, &Message::new(&dpr).unwrap(), &first_peer());
    assert_eq!(
        (next, read_answer(&out).result),
        (Next::Disconnecting, Some(2001))
    );
    // an AVP with a reserved flag bit (3009) or a length past the message (5014)
    let mut bits = Ecr::of(imei(1)).bytes();
    bits[20 + 4] |= 0x01; // the Session-Id's flags
    let said = ask(&node, &bits);
    assert_eq!(
        (said.result, said.error_bit, said.failed.clone()),
        (Some(3009), true, vec![263])
    );
    let mut long = Ecr::of(imei(1)).bytes();
    long[20 + 7] = 0xff; // the Session-Id's length
    let said = ask(&node, &long);
    assert_eq!((said.result, said.failed), (Some(5014), vec![263]));
    // answers to nothing this node asked are not answered
    let mut out = Vec::new();
    let stray = message(0, 324, dict::S13_APPLICATION, origin);
    node.handle(&mut out, &Message::new(&stray).unwrap(), &first_peer());
    assert!(out.is_empty());
}

#[test]
fn the_capabilities_exchange_admits_only_the_peer_table() {
    let (node, _dir) = node();
    let cer = |host: &'static [u8], realm: &'static [u8], application: u32| {
        message(flags::REQUEST, 257, 0, move |out| {
            codec::put(out, avp::ORIGIN_HOST, host);
            codec::put(out, avp::ORIGIN_REALM, realm);
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, application);
        })
    };
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let answer = |request: &[u8]| {
        let mut out = Vec::new();
        let admitted = node.answer_cer(&mut out, &Message::new(request).unwrap(), ip, ip, Some);
        (admitted, read_answer(&out))
    };
    let (admitted, said) = answer(&cer(b"MME.test.example", b"mme.example", 16777252));
    assert_eq!((admitted, said.result), (Ok(0), Some(2001)));
    let (admitted, said) = answer(&cer(b"other.example", b"mme.example", 16777252));
    assert!(admitted.is_err());
    assert_eq!((said.result, said.error_bit), (Some(3010), true));
    // a CER without its sender's identity is malformed: 5005 naming what is missing
    for (avps, missing) in [(&[avp::ORIGIN_REALM][..], 264), (&[avp::ORIGIN_HOST], 296)] {
        let request = message(flags::REQUEST, 257, 0, |out| {
            for def in avps {
                codec::put(out, *def, b"mme.example");
            }
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, 16777252);
        });
        let (admitted, said) = answer(&request);
        assert!(admitted.is_err());
        assert_eq!((said.result, said.failed), (Some(5005), vec![missing]));
    }
    let (admitted, said) = answer(&cer(b"mme.test.example", b"mme.example", 16777251));
    assert!(admitted.is_err());
    assert_eq!((said.result, said.error_bit), (Some(5010), false));
    let (admitted, _) = answer(&cer(
        b"mme.test.example",
        b"mme.example",
        dict::RELAY_APPLICATION,
    ));
    assert!(admitted.is_ok());
    // no place left: 3004, not a success
    let mut out = Vec::new();
    let request = cer(b"mme.test.example", b"mme.example", 16777252);
    let busy = node.answer_cer(&mut out, &Message::new(&request).unwrap(), ip, ip, |_| {
        None::<()>
    });
    assert!(busy.is_err());
    assert_eq!(read_answer(&out).result, Some(3004));
    // a CER is read as strictly as any request
    let strict = |bits: u8, extra: &dyn Fn(&mut Vec<u8>)| {
        let request = message(bits, 257, 0, |out| {
            codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
            codec::put(out, avp::ORIGIN_REALM, b"mme.example");
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, 16777252);
            extra(out);
        });
        answer(&request)
    };
    let (admitted, said) = strict(flags::REQUEST | flags::ERROR, &|_| {});
    assert_eq!((admitted.is_err(), said.result), (true, Some(3008)));
    let (admitted, said) = strict(flags::REQUEST, &|out| {
        codec::put(out, avp::ORIGIN_HOST, b"other.example");
    });
    assert_eq!((admitted.is_err(), said.result), (true, Some(5009)));
    let (admitted, said) = strict(flags::REQUEST, &|out| {
        codec::put(out, codec::AvpDef::vendor(9999, 10415), b"x");
    });
    assert_eq!(
        (admitted.is_err(), said.result, said.failed),
        (true, Some(5001), vec![9999])
    );
}

#[test]
fn a_peer_without_address_is_claimable_off_loopback() {
    let peer = |host: &str, source: Option<&str>| Peer {
        origin_host: host.into(),
        realm: "mme.example".into(),
        source: source.map(|s| super::peers::Cidr::parse(s).unwrap()),
    };
    let mut settings = Settings {
        peers: PeerTable::new(vec![
            peer("pinned.mme.example", Some("10.0.0.0/24")),
            peer("open.mme.example", None),
        ]),
        ..Settings::default()
    };
    let claimable = |settings: &Settings, at: &str| -> Vec<String> {
        settings
            .claimable_peers(at.parse().unwrap())
            .map(|p| p.origin_host.clone())
            .collect()
    };
    assert_eq!(claimable(&settings, "0.0.0.0:3868"), ["open.mme.example"]);
    assert_eq!(claimable(&settings, "[::]:3868"), ["open.mme.example"]);
    assert!(claimable(&settings, "127.0.0.1:3868").is_empty());
    let tls = |peer_ca_file: Option<&str>| super::TlsSettings {
        cert_file: "cert.pem".into(),
        key_file: "key.pem".into(),
        peer_ca_file: peer_ca_file.map(Into::into),
    };
    // a peer certificate says one of the CA's, not which peer: still claimable
    settings.tls = Some(tls(Some("ca.pem")));
    assert_eq!(claimable(&settings, "10.0.0.1:3868"), ["open.mme.example"]);
}

#[test]
fn what_any_request_may_carry_is_accepted() {
    let (node, _dir) = node();
    // RFC 6733 §8.16: Origin-State-Id in any message; some MMEs name the application too
    let ecr = Ecr {
        extra: vec![
            (avp::ORIGIN_STATE_ID, 12345u32.to_be_bytes().to_vec()),
            (avp::AUTH_APPLICATION_ID, 16777252u32.to_be_bytes().to_vec()),
        ],
        ..Ecr::of(imei(2))
    };
    assert_eq!(ask(&node, &ecr.bytes()), decision(1));
    // another application's command: 3007, not 3001
    let ulr = message(flags::REQUEST, 316, 16777251, |out| {
        codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
    });
    assert_eq!(ask(&node, &ulr).result, Some(3007));
}

#[test]
fn a_failed_avp_names_a_missing_enumerated_with_four_zeros() {
    let (node, _dir) = node();
    let no_state = Ecr {
        auth_state: false,
        ..Ecr::of(imei(1))
    };
    let mut out = Vec::new();
    node.handle(
        &mut out,
        &Message::new(&no_state.bytes()).unwrap(),
        &first_peer(),
    );
    let answer = Message::new(&out).unwrap();
    let failed = answer
        .avps()
        .map(Result::unwrap)
        .find(|a| a.is(avp::FAILED_AVP))
        .unwrap();
    let inner = failed.group().next().unwrap().unwrap();
    assert_eq!((inner.code, inner.data), (277, &[0u8, 0, 0, 0][..]));
}

proptest! {
    // PROPTEST_CASES raises it for a longer hunt
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1024)
    ))]

    /// Whatever a peer does to a conversation (bytes changed, cut, inserted), every request
    /// in it gets exactly one answer a peer can read, with its identifiers.
    #[test]
    fn mangled_conversations_get_readable_answers(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        thread_local! {
            static NODE: (Node, tempfile::TempDir) = node();
        }
        let mut bytes = message(flags::REQUEST, 257, 0, |out| {
            codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
            codec::put(out, avp::ORIGIN_REALM, b"mme.example");
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, 16777252);
        });
        for n in 1..4 {
            bytes.extend(Ecr::of(imei(n)).bytes());
        }
        bytes.extend(message(flags::REQUEST, 280, 0, |out| {
            codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
        }));
        for (at, value, how) in edits {
            let at = at % bytes.len();
            match how {
                0 => bytes[at] = value,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, value),
            }
            if bytes.is_empty() {
                break;
            }
        }
        NODE.with(|(node, _)| check_answers(node, &bytes)).map_err(TestCaseError::fail)?;
    }
}

/// Serves one connection of `node` over `ours` while `talking`, the peer's side, runs.
async fn converse<S>(node: &Node, ours: S, talking: impl Future<Output = ()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let ip = std::net::IpAddr::from([192, 0, 2, 1]);
    let silent = node.admission.silent(ip).unwrap();
    let serving = super::connection::serve_on(
        node,
        ours,
        std::net::SocketAddr::new(ip, 3868),
        ip,
        silent,
        stopping,
        super::CER_TIMEOUT,
    );
    tokio::join!(serving, talking);
}

/// The peer's next whole message, read from `peer` into `buf` as needed.
async fn next_message(peer: &mut tokio::io::DuplexStream, buf: &mut Vec<u8>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Ok(Some(length)) = codec::frame(buf, 1 << 20)
            && buf.len() >= length
        {
            return buf.drain(..length).collect();
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut chunk))
            .await
            .expect("the answer was held, not sent")
            .unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The test peer's CER, and that it was admitted.
async fn exchange_capabilities(peer: &mut tokio::io::DuplexStream, buf: &mut Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let cer = message(flags::REQUEST, 257, 0, |out| {
        codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
        codec::put(out, avp::ORIGIN_REALM, b"mme.example");
        codec::put_u32(out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
    });
    peer.write_all(&cer).await.unwrap();
    assert_eq!(
        read_answer(&next_message(peer, buf).await).result,
        Some(2001)
    );
}

/// A stream that sends what it is given only when flushed (or when its buffer fills), as a
/// TLS stream keeps what the socket did not take: every answer still reaches the peer.
#[tokio::test]
async fn answers_reach_a_peer_over_a_stream_that_sends_only_when_flushed() {
    use tokio::io::AsyncWriteExt;
    let (node, _dir) = node();
    let (mut peer, ours) = tokio::io::duplex(1 << 20);
    let held = tokio::io::BufWriter::with_capacity(1 << 16, ours);
    let talking = async {
        let mut buf = Vec::new();
        exchange_capabilities(&mut peer, &mut buf).await;
        peer.write_all(&Ecr::of(imei(2)).bytes()).await.unwrap();
        assert_eq!(
            read_answer(&next_message(&mut peer, &mut buf).await).status,
            Some(1)
        );
        drop(peer);
    };
    converse(&node, held, talking).await;
}

/// The ECRs of one read are answered together, in groups: every request still gets its own
/// answer, in the order asked, whatever comes between them (a watchdog, a malformed ECR, an
/// ECR of another application) and however many there are.
#[tokio::test]
async fn a_reads_ecrs_are_answered_in_order_whatever_comes_between() {
    use tokio::io::AsyncWriteExt;
    let (node, _dir) = node();
    let (mut peer, ours) = tokio::io::duplex(1 << 20);
    // what each request is, and what its answer must say: runs of plain ECRs longer than a
    // group (so that full groups are answered mid-read), broken by other messages
    let few = crate::registry::CHECKS_AT_ONCE as u64;
    let unknown = Said {
        result: None,
        experimental: Some((10415, 5422)),
        status: None,
        ..decision(0)
    };
    let mut asked: Vec<(Vec<u8>, u32, Said)> = Vec::new();
    for n in 0..5 * few + 7 {
        let (request, expected) = match n % (2 * few + 7) {
            k if k == 2 * few + 1 => {
                let dwr = message(flags::REQUEST, command::DEVICE_WATCHDOG, 0, |out| {
                    codec::put(out, avp::ORIGIN_HOST, b"mme.test.example");
                    codec::put(out, avp::ORIGIN_REALM, b"mme.example");
                });
                let mut ok = decision(0);
                (ok.status, ok.session) = (None, None);
                (dwr, ok)
            }
            k if k == 2 * few + 3 => {
                let bad = Ecr {
                    imei: Some("35".into()),
                    ..Ecr::of(imei(1))
                };
                let refused = ask(&node, &bad.bytes());
                assert_eq!(refused.result, Some(5004), "{refused:?}");
                (bad.bytes(), refused)
            }
            k if k == 2 * few + 5 => {
                let mut other = Ecr::of(imei(1)).bytes();
                other[8..12].copy_from_slice(&16_777_251u32.to_be_bytes());
                let refused = ask(&node, &other);
                assert_eq!(refused.result, Some(3007), "{refused:?}");
                (other, refused)
            }
            k => {
                // imei(1) registered, imei(2) and imei(3) blacklisted, imei(4) on neither
                let expected = [decision(0), decision(1), decision(1), unknown.clone()];
                let which = k % 4;
                (
                    Ecr::of(imei(1 + which)).bytes(),
                    expected[which as usize].clone(),
                )
            }
        };
        asked.push((request, n as u32, expected));
    }
    let mut conversation = Vec::new();
    for (request, hop, _) in &mut asked {
        request[12..16].copy_from_slice(&hop.to_be_bytes());
        conversation.extend_from_slice(request);
    }
    let talking = async {
        let mut buf = Vec::new();
        exchange_capabilities(&mut peer, &mut buf).await;
        // one write: the node reads them together
        peer.write_all(&conversation).await.unwrap();
        for (request, hop, expected) in &asked {
            let answer = next_message(&mut peer, &mut buf).await;
            let header = Message::new(&answer).unwrap().header;
            let asked = Message::new(request).unwrap().header;
            assert_eq!((header.hop_by_hop, header.command), (*hop, asked.command));
            assert_eq!(&read_answer(&answer), expected, "request {hop}");
        }
        drop(peer);
    };
    converse(&node, ours, talking).await;
}
