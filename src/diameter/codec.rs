//! The Diameter wire format (RFC 6733 §3 header, §4 AVPs): framing, reading AVPs in place and
//! writing them, nothing else. No I/O and no protocol decisions: `base.rs` and `s13.rs` decide
//! what a message means; this module only says whether its bytes are well formed and, when
//! they are not, which RFC 6733 result code names the fault.
//!
//! Reading never copies: an [`Avp`] borrows its data from the received buffer. Every length is
//! checked before it is used, so a hostile peer's bytes can make a read fail but never panic or
//! read out of bounds (the `diameter_message` fuzz target and the property tests below hold it
//! to that).

use std::fmt;

/// Bytes of a message header.
pub const HEADER_LEN: usize = 20;

/// The only Diameter version (RFC 6733 §3).
pub const VERSION: u8 = 1;

/// Command flags (RFC 6733 §3).
pub mod flags {
    /// R: a request.
    pub const REQUEST: u8 = 0x80;
    /// P: may be proxied, relayed or redirected.
    pub const PROXIABLE: u8 = 0x40;
    /// E: an answer carrying a protocol error (3xxx).
    pub const ERROR: u8 = 0x20;
    /// T: possibly a retransmission.
    pub const RETRANSMITTED: u8 = 0x10;
}

/// AVP flags (RFC 6733 §4.1).
pub mod avp_flags {
    /// V: a Vendor-ID follows the header.
    pub const VENDOR: u8 = 0x80;
    /// M: the receiver must understand the AVP or refuse the message.
    pub const MANDATORY: u8 = 0x40;
    /// P: end-to-end security, deprecated by RFC 6733 and ignored.
    pub const PROTECTED: u8 = 0x20;
    /// The bits no specification defines: set, they make the AVP invalid (3009).
    pub const RESERVED: u8 = 0x1f;
}

/// RFC 6733 result codes this codec's errors map to.
pub mod result {
    /// DIAMETER_INVALID_HDR_BITS.
    pub const INVALID_HDR_BITS: u32 = 3008;
    /// DIAMETER_INVALID_AVP_BITS.
    pub const INVALID_AVP_BITS: u32 = 3009;
    /// DIAMETER_UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: u32 = 5011;
    /// DIAMETER_INVALID_AVP_LENGTH.
    pub const INVALID_AVP_LENGTH: u32 = 5014;
    /// DIAMETER_INVALID_MESSAGE_LENGTH.
    pub const INVALID_MESSAGE_LENGTH: u32 = 5015;
}

/// A message header, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whole message, header included, in bytes.
    pub length: u32,
    /// Command flags ([`flags`]).
    pub flags: u8,
    /// Command code.
    pub command: u32,
    /// Application-ID.
    pub application: u32,
    /// Hop-by-Hop Identifier: the answer carries the request's.
    pub hop_by_hop: u32,
    /// End-to-End Identifier: the answer carries the request's.
    pub end_to_end: u32,
}

impl Header {
    /// Reads the header at the start of `bytes` without judging it (see [`frame`] for that).
    /// `None` if fewer than [`HEADER_LEN`] bytes.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..HEADER_LEN)?;
        Some(Header {
            length: u24(&b[1..4]),
            flags: b[4],
            command: u24(&b[5..8]),
            application: be32(&b[8..12]),
            hop_by_hop: be32(&b[12..16]),
            end_to_end: be32(&b[16..20]),
        })
    }

    /// The R bit.
    pub fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }
}

/// Why a stream's next message cannot be framed. The stream is lost after any of these: the
/// length it would be framed by is not to be trusted, so the connection answers once and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The version octet is not 1.
    Version(u8),
    /// Message Length is below the header's 20 bytes or not a multiple of 4.
    Length(u32),
    /// Message Length is above what this node accepts.
    TooLong(u32),
}

impl FrameError {
    /// The RFC 6733 result code that names it.
    pub fn result_code(self) -> u32 {
        match self {
            FrameError::Version(_) => result::UNSUPPORTED_VERSION,
            FrameError::Length(_) | FrameError::TooLong(_) => result::INVALID_MESSAGE_LENGTH,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Version(v) => write!(f, "Diameter version {v} is not supported (only 1)"),
            FrameError::Length(n) => write!(
                f,
                "Message Length {n} is below the 20-byte header or not a multiple of 4"
            ),
            FrameError::TooLong(n) => write!(f, "Message Length {n} is above this node's limit"),
        }
    }
}

/// The length of the message at the start of `buf`: `Ok(None)` until four bytes (version and
/// length) have arrived, then `Ok(Some(length))` whether or not the whole message has.
///
/// # Errors
/// [`FrameError`] for a version other than 1, or a length below 20, not a multiple of 4, or
/// above `max_len`.
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    if head[0] != VERSION {
        return Err(FrameError::Version(head[0]));
    }
    let length = u24(&head[1..4]);
    if (length as usize) < HEADER_LEN || length % 4 != 0 {
        return Err(FrameError::Length(length));
    }
    if length as usize > max_len {
        return Err(FrameError::TooLong(length));
    }
    Ok(Some(length as usize))
}

/// One AVP, borrowed from the message it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avp<'a> {
    /// AVP Code.
    pub code: u32,
    /// AVP flags ([`avp_flags`]).
    pub flags: u8,
    /// Vendor-ID; 0 when the V bit is clear (IETF AVPs).
    pub vendor: u32,
    /// The data, without padding.
    pub data: &'a [u8],
    /// Header and data, without padding: what a Failed-AVP repeats.
    pub raw: &'a [u8],
}

impl<'a> Avp<'a> {
    /// The M bit.
    pub fn is_mandatory(&self) -> bool {
        self.flags & avp_flags::MANDATORY != 0
    }

    /// Whether this is the AVP `def` describes (code and vendor; the flags are not compared).
    pub fn is(&self, def: AvpDef) -> bool {
        self.code == def.code && self.vendor == def.vendor
    }

    /// The data as an Unsigned32, Integer32 or Enumerated.
    ///
    /// # Errors
    /// [`AvpError`] of kind [`AvpErrorKind::Length`] unless the data is four bytes.
    pub fn u32(&self) -> Result<u32, AvpError<'a>> {
        match self.data {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(AvpError {
                kind: AvpErrorKind::Length,
                avp: self.raw,
            }),
        }
    }

    /// The AVPs inside a Grouped AVP.
    pub fn group(&self) -> Avps<'a> {
        Avps::new(self.data)
    }

    /// Whether the AVPs inside it, and inside those, can all be read, for the groups
    /// `is_grouped` names (an AVP that is not a group is well formed once read).
    pub fn is_well_formed(&self, is_grouped: impl Fn(&Avp<'_>) -> bool + Copy) -> bool {
        !is_grouped(self) || walk(self.group(), is_grouped, 1).is_ok()
    }

    /// Writes its header alone, with the length of a header: an AVP named, not repeated.
    pub fn put_header(&self, out: &mut Vec<u8>) {
        // the V bit, not the Vendor-ID's value, says whether one follows (it may be 0)
        let vendor = self.flags & avp_flags::VENDOR != 0;
        let header = if vendor { 12 } else { 8 };
        out.extend_from_slice(&self.raw[..4]);
        out.push(self.flags & !avp_flags::RESERVED);
        out.extend_from_slice(&(header as u32).to_be_bytes()[1..]);
        if vendor {
            out.extend_from_slice(&self.vendor.to_be_bytes());
        }
    }
}

/// What is wrong with an AVP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvpErrorKind {
    /// Its length is below its header, runs past what contains it (padding included), or does
    /// not fit its type (5014).
    Length,
    /// A reserved flag bit is set (3009).
    Bits,
}

/// An AVP that cannot be read, and the bytes that name it in a Failed-AVP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvpError<'a> {
    /// What is wrong.
    pub kind: AvpErrorKind,
    /// The offending AVP as far as it could be read: its header at least partly (for a length
    /// error the rest cannot be trusted), the whole AVP for a flag error.
    pub avp: &'a [u8],
}

impl AvpError<'_> {
    /// The RFC 6733 result code that names it.
    pub fn result_code(&self) -> u32 {
        match self.kind {
            AvpErrorKind::Length => result::INVALID_AVP_LENGTH,
            AvpErrorKind::Bits => result::INVALID_AVP_BITS,
        }
    }

    /// Writes the offending AVP as RFC 6733 §7.1.5 asks for a Failed-AVP: for a flag error the
    /// AVP itself, its reserved bits cleared so that the answer is readable (the code names
    /// it, and its header alone if it is one of the groups `is_grouped` names and what it
    /// holds cannot be read); for a length error its header (completed with zeros if it was
    /// cut short, reserved bits cleared) with a payload of `minimum_len(code, vendor)` zeros,
    /// since its own cannot be trusted.
    pub fn put_offender(
        &self,
        out: &mut Vec<u8>,
        is_grouped: impl Fn(&Avp<'_>) -> bool + Copy,
        minimum_len: impl Fn(u32, u32) -> usize,
    ) {
        match self.kind {
            AvpErrorKind::Bits => {
                // a flag error is found only on an AVP whose length was read whole
                let flags = self.avp[4] & !avp_flags::RESERVED;
                let (vendor, header) = if flags & avp_flags::VENDOR != 0 {
                    (be32(&self.avp[8..12]), 12)
                } else {
                    (0, 8)
                };
                let avp = Avp {
                    code: be32(&self.avp[..4]),
                    flags,
                    vendor,
                    data: &self.avp[header..],
                    raw: self.avp,
                };
                if avp.is_well_formed(is_grouped) {
                    let flags_at = out.len() + 4;
                    put_raw(out, self.avp);
                    out[flags_at] = flags;
                } else {
                    avp.put_header(out);
                }
            }
            AvpErrorKind::Length => {
                let mut header = [0u8; 12];
                let n = self.avp.len().min(12);
                header[..n].copy_from_slice(&self.avp[..n]);
                header[4] &= !avp_flags::RESERVED;
                let len = if header[4] & avp_flags::VENDOR != 0 {
                    12
                } else {
                    8
                };
                let vendor = if len == 12 { be32(&header[8..12]) } else { 0 };
                let zeros = minimum_len(be32(&header[..4]), vendor).min(4);
                header[5..8].copy_from_slice(&((len + zeros) as u32).to_be_bytes()[1..]);
                out.extend_from_slice(&header[..len]);
                out.extend_from_slice(&[0; 4][..zeros]);
            }
        }
    }
}

/// The AVPs of a message body or a Grouped AVP's data, in order. Stops at the first error.
#[derive(Clone, Debug)]
pub struct Avps<'a> {
    rest: &'a [u8],
}

impl<'a> Avps<'a> {
    /// The AVPs in `bytes` (a message without its header, or a Grouped AVP's data).
    pub fn new(bytes: &'a [u8]) -> Avps<'a> {
        Avps { rest: bytes }
    }
}

impl<'a> Iterator for Avps<'a> {
    type Item = Result<Avp<'a>, AvpError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest;
        let fail = |kind| {
            Some(Err(AvpError {
                kind,
                avp: bytes.get(..12).unwrap_or(bytes),
            }))
        };
        if bytes.len() < 8 {
            self.rest = &[];
            return fail(AvpErrorKind::Length);
        }
        let code = be32(&bytes[..4]);
        let flags = bytes[4];
        let length = u24(&bytes[5..8]) as usize;
        let (vendor, header) = if flags & avp_flags::VENDOR != 0 {
            match bytes.get(8..12) {
                Some(v) => (be32(v), 12),
                None => {
                    self.rest = &[];
                    return fail(AvpErrorKind::Length);
                }
            }
        } else {
            (0, 8)
        };
        let padded = length.saturating_add(3) & !3;
        if length < header || padded > bytes.len() {
            self.rest = &[];
            return fail(AvpErrorKind::Length);
        }
        self.rest = &bytes[padded..];
        if flags & avp_flags::RESERVED != 0 {
            self.rest = &[];
            return Some(Err(AvpError {
                kind: AvpErrorKind::Bits,
                avp: &bytes[..length],
            }));
        }
        Some(Ok(Avp {
            code,
            flags,
            vendor,
            data: &bytes[header..length],
            raw: &bytes[..length],
        }))
    }
}

/// One whole message, borrowed from the buffer it arrived in.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// Its header.
    pub header: Header,
    /// The AVPs' bytes (everything after the header).
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// The message in `bytes`, which must be exactly one framed message (see [`frame`]).
    /// `None` if shorter than a header.
    pub fn new(bytes: &'a [u8]) -> Option<Message<'a>> {
        Some(Message {
            header: Header::read(bytes)?,
            body: &bytes[HEADER_LEN..],
        })
    }

    /// Its top-level AVPs.
    pub fn avps(&self) -> Avps<'a> {
        Avps::new(self.body)
    }

    /// Whether its header bits contradict each other: an E bit on a request (3008).
    pub fn has_invalid_header_bits(&self) -> bool {
        self.header.is_request() && self.header.flags & flags::ERROR != 0
    }

    /// Reads every AVP, descending into the grouped ones `is_grouped` names, and returns the
    /// first that is malformed. A message that passes may still lack or repeat AVPs: that is
    /// the command's business.
    ///
    /// # Errors
    /// The first [`AvpError`], in message order.
    pub fn validate(
        &self,
        is_grouped: impl Fn(&Avp<'_>) -> bool + Copy,
    ) -> Result<(), AvpError<'a>> {
        walk(self.avps(), is_grouped, 0)
    }
}

/// Reads every AVP of `avps`, descending into the groups `is_grouped` names.
fn walk<'a>(
    avps: Avps<'a>,
    is_grouped: impl Fn(&Avp<'_>) -> bool + Copy,
    depth: u8,
) -> Result<(), AvpError<'a>> {
    for avp in avps {
        let avp = avp?;
        // nesting is bounded by the message size anyway; the depth bound keeps the recursion's
        // stack small whatever a peer sends
        if depth < 8 && is_grouped(&avp) {
            walk(avp.group(), is_grouped, depth + 1)?;
        }
    }
    Ok(())
}

/// An AVP's identity and the flags this node sends it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvpDef {
    /// AVP Code.
    pub code: u32,
    /// Vendor-ID, 0 for IETF AVPs.
    pub vendor: u32,
    /// Whether it is sent with the M bit.
    pub mandatory: bool,
}

impl AvpDef {
    /// An IETF AVP sent with the M bit.
    pub const fn ietf(code: u32) -> AvpDef {
        AvpDef {
            code,
            vendor: 0,
            mandatory: true,
        }
    }

    /// An IETF AVP sent without the M bit.
    pub const fn ietf_optional(code: u32) -> AvpDef {
        AvpDef {
            code,
            vendor: 0,
            mandatory: false,
        }
    }

    /// A vendor's AVP sent with the M and V bits.
    pub const fn vendor(code: u32, vendor: u32) -> AvpDef {
        AvpDef {
            code,
            vendor,
            mandatory: true,
        }
    }

    fn flags(self) -> u8 {
        let mut flags = 0;
        if self.vendor != 0 {
            flags |= avp_flags::VENDOR;
        }
        if self.mandatory {
            flags |= avp_flags::MANDATORY;
        }
        flags
    }

    fn header_len(self) -> usize {
        if self.vendor != 0 { 12 } else { 8 }
    }
}

/// Starts a message in `out` with a zero length; [`finish`] sets it. Returns where it starts.
pub fn begin(
    out: &mut Vec<u8>,
    flags: u8,
    command: u32,
    application: u32,
    hop_by_hop: u32,
    end_to_end: u32,
) -> usize {
    let start = out.len();
    out.push(VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.push(flags);
    out.extend_from_slice(&command.to_be_bytes()[1..]);
    out.extend_from_slice(&application.to_be_bytes());
    out.extend_from_slice(&hop_by_hop.to_be_bytes());
    out.extend_from_slice(&end_to_end.to_be_bytes());
    start
}

/// Sets the length of the message begun at `start`.
pub fn finish(out: &mut [u8], start: usize) {
    let length = (out.len() - start) as u32;
    out[start + 1..start + 4].copy_from_slice(&length.to_be_bytes()[1..]);
}

/// Writes an AVP with `data`, padded to four bytes.
pub fn put(out: &mut Vec<u8>, def: AvpDef, data: &[u8]) {
    let length = def.header_len() + data.len();
    put_header(out, def, length);
    out.extend_from_slice(data);
    pad(out);
}

/// Writes an Unsigned32, Integer32 or Enumerated AVP.
pub fn put_u32(out: &mut Vec<u8>, def: AvpDef, value: u32) {
    put(out, def, &value.to_be_bytes());
}

/// Writes an Address AVP (RFC 6733 §4.3.1: address family, then the address).
pub fn put_address(out: &mut Vec<u8>, def: AvpDef, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut data = [0u8; 6];
            data[..2].copy_from_slice(&1u16.to_be_bytes());
            data[2..].copy_from_slice(&v4.octets());
            put(out, def, &data);
        }
        std::net::IpAddr::V6(v6) => {
            let mut data = [0u8; 18];
            data[..2].copy_from_slice(&2u16.to_be_bytes());
            data[2..].copy_from_slice(&v6.octets());
            put(out, def, &data);
        }
    }
}

/// Starts a Grouped AVP; write its AVPs, then [`finish_group`]. Returns where it starts.
pub fn begin_group(out: &mut Vec<u8>, def: AvpDef) -> usize {
    let start = out.len();
    put_header(out, def, 0);
    start
}

/// Sets the length of the Grouped AVP begun at `start` (its AVPs are already padded).
pub fn finish_group(out: &mut [u8], start: usize) {
    let length = (out.len() - start) as u32;
    out[start + 5..start + 8].copy_from_slice(&length.to_be_bytes()[1..]);
}

/// Copies an AVP received as `raw` (header and data), adding its padding.
pub fn put_raw(out: &mut Vec<u8>, raw: &[u8]) {
    out.extend_from_slice(raw);
    pad(out);
}

fn put_header(out: &mut Vec<u8>, def: AvpDef, length: usize) {
    out.extend_from_slice(&def.code.to_be_bytes());
    out.push(def.flags());
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    if def.vendor != 0 {
        out.extend_from_slice(&def.vendor.to_be_bytes());
    }
}

fn pad(out: &mut Vec<u8>) {
    let padding = (4 - out.len() % 4) % 4;
    out.extend_from_slice(&[0u8; 3][..padding]);
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 65_536;

    /// A tree of AVPs to write and read back.
    #[derive(Clone, Debug, PartialEq)]
    enum Tree {
        Leaf(AvpDef, Vec<u8>),
        Group(AvpDef, Vec<Tree>),
    }

    fn write(out: &mut Vec<u8>, tree: &Tree) {
        match tree {
            Tree::Leaf(def, data) => put(out, *def, data),
            Tree::Group(def, children) => {
                let start = begin_group(out, *def);
                for child in children {
                    write(out, child);
                }
                finish_group(out, start);
            }
        }
    }

    /// Reads back `bytes` as the shape of `expected`.
    fn read(bytes: &[u8], expected: &[Tree]) -> Vec<Tree> {
        Avps::new(bytes)
            .zip(expected)
            .map(|(avp, want)| {
                let avp = avp.expect("well formed");
                let def = AvpDef {
                    code: avp.code,
                    vendor: avp.vendor,
                    mandatory: avp.is_mandatory(),
                };
                match want {
                    Tree::Leaf(..) => Tree::Leaf(def, avp.data.to_vec()),
                    Tree::Group(_, children) => Tree::Group(def, read(avp.data, children)),
                }
            })
            .collect()
    }

    /// Leaves have codes below 5000, groups from 5000: what `is_group` tells apart.
    fn def(codes: std::ops::Range<u32>) -> impl Strategy<Value = AvpDef> {
        (
            codes,
            prop_oneof![Just(0u32), Just(10415u32)],
            any::<bool>(),
        )
            .prop_map(|(code, vendor, mandatory)| AvpDef {
                code,
                vendor,
                mandatory,
            })
    }

    fn is_group(avp: &Avp<'_>) -> bool {
        avp.code >= 5000
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = (def(1..5000), proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(d, data)| Tree::Leaf(d, data));
        leaf.prop_recursive(3, 24, 4, |inner| {
            (def(5000..6000), proptest::collection::vec(inner, 0..4))
                .prop_map(|(d, c)| Tree::Group(d, c))
        })
    }

    fn message(avps: &[Tree]) -> Vec<u8> {
        let mut out = Vec::new();
        let start = begin(
            &mut out,
            flags::REQUEST | flags::PROXIABLE,
            324,
            16777252,
            7,
            9,
        );
        for avp in avps {
            write(&mut out, avp);
        }
        finish(&mut out, start);
        out
    }

    proptest! {
        #[test]
        fn messages_round_trip(avps in proptest::collection::vec(tree(), 0..6)) {
            let bytes = message(&avps);
            prop_assert_eq!(frame(&bytes, MAX), Ok(Some(bytes.len())));
            let m = Message::new(&bytes).unwrap();
            prop_assert_eq!(m.header.command, 324);
            prop_assert_eq!(m.header.application, 16777252);
            prop_assert_eq!((m.header.hop_by_hop, m.header.end_to_end), (7, 9));
            prop_assert!(m.header.is_request());
            prop_assert_eq!(m.avps().count(), avps.len());
            prop_assert_eq!(read(m.body, &avps), avps);
            prop_assert!(m.validate(is_group).is_ok());
        }

        /// Cutting a valid message at every byte, and claiming the cut length in the header,
        /// never reads out of bounds: framing refuses lengths that are not whole words, and the
        /// AVPs that were cut are refused as 5014, never read.
        #[test]
        fn every_truncation_is_refused_cleanly(
            avps in proptest::collection::vec(tree(), 1..5),
        ) {
            let bytes = message(&avps);
            let mut boundaries = vec![HEADER_LEN];
            for avp in &avps {
                let mut one = Vec::new();
                write(&mut one, avp);
                boundaries.push(boundaries.last().unwrap() + one.len());
            }
            for cut in 0..bytes.len() {
                // the stream so far: never a whole message
                prop_assert!(
                    frame(&bytes[..cut], MAX).map(|n| n.is_none_or(|n| n > cut)).unwrap_or(false),
                    "cut at {cut}"
                );
                if cut < HEADER_LEN {
                    continue; // no header to claim the cut length in
                }
                let mut shorter = bytes[..cut].to_vec();
                finish(&mut shorter, 0);
                match frame(&shorter, MAX) {
                    Err(FrameError::Length(n)) => prop_assert!(n % 4 != 0),
                    Ok(Some(n)) => {
                        prop_assert_eq!(n, cut);
                        let walked = Message::new(&shorter).unwrap().validate(is_group);
                        if boundaries.contains(&cut) {
                            prop_assert!(walked.is_ok());
                        } else {
                            prop_assert_eq!(walked.unwrap_err().kind, AvpErrorKind::Length);
                        }
                    }
                    other => prop_assert!(false, "cut at {cut}: unexpected {other:?}"),
                }
            }
        }

        /// Whatever the bytes, reading AVPs ends without panicking and every AVP read lies
        /// inside them.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for avp in Avps::new(&bytes).flatten() {
                prop_assert!(avp.raw.len() <= bytes.len());
                prop_assert!(avp.data.len() <= avp.raw.len());
            }
            let _ = frame(&bytes, MAX);
            if let Some(m) = Message::new(&bytes) {
                let _ = m.validate(|_| true);
            }
        }
    }

    #[test]
    fn framing_names_the_fault() {
        assert_eq!(frame(&[1, 0, 0], MAX), Ok(None));
        assert_eq!(frame(&[2, 0, 0, 20], MAX), Err(FrameError::Version(2)));
        assert_eq!(frame(&[1, 0, 0, 16], MAX), Err(FrameError::Length(16)));
        assert_eq!(frame(&[1, 0, 0, 22], MAX), Err(FrameError::Length(22)));
        assert_eq!(frame(&[1, 1, 0, 4], MAX), Err(FrameError::TooLong(65540)));
        assert_eq!(frame(&[1, 0, 0, 20], MAX), Ok(Some(20)));
        assert_eq!(FrameError::Version(2).result_code(), 5011);
        assert_eq!(FrameError::Length(3).result_code(), 5015);
    }

    #[test]
    fn avp_faults_are_named_and_reported_as_rfc_6733_asks() {
        // length below the header
        let short = [0, 0, 1, 7, 0x40, 0, 0, 4];
        let err = Avps::new(&short).next().unwrap().unwrap_err();
        assert_eq!(err.result_code(), 5014);
        let mut failed = Vec::new();
        err.put_offender(&mut failed, |_| false, |_, _| 0);
        assert_eq!(failed, [0, 0, 1, 7, 0x40, 0, 0, 8]);
        // runs past its container, vendor AVP: the offender keeps its vendor
        let long = [0, 0, 5, 0x7a, 0xc0, 0, 0, 40, 0, 0, 0x28, 0xaf, 1, 2];
        let err = Avps::new(&long).next().unwrap().unwrap_err();
        assert_eq!(err.kind, AvpErrorKind::Length);
        let mut failed = Vec::new();
        err.put_offender(&mut failed, |_| false, |_, _| 0);
        assert_eq!(failed, [0, 0, 5, 0x7a, 0xc0, 0, 0, 12, 0, 0, 0x28, 0xaf]);
        // padding missing at the end
        let unpadded = [0, 0, 1, 7, 0x40, 0, 0, 9, b'x'];
        assert_eq!(
            Avps::new(&unpadded).next().unwrap().unwrap_err().kind,
            AvpErrorKind::Length
        );
        // a reserved flag bit
        let bits = [0, 0, 1, 7, 0x41, 0, 0, 12, 1, 2, 3, 4];
        let err = Avps::new(&bits).next().unwrap().unwrap_err();
        assert_eq!((err.kind, err.result_code()), (AvpErrorKind::Bits, 3009));
        let mut failed = Vec::new();
        err.put_offender(&mut failed, |_| false, |_, _| 0);
        assert_eq!(failed, [0, 0, 1, 7, 0x40, 0, 0, 12, 1, 2, 3, 4]);
        // a Unsigned32 of the wrong size
        let wrong = [0, 0, 1, 12, 0x40, 0, 0, 10, 1, 2, 0, 0];
        let avp = Avps::new(&wrong).next().unwrap().unwrap();
        assert_eq!(avp.u32().unwrap_err().kind, AvpErrorKind::Length);
    }

    /// Found by the fuzzer: a V bit with a Vendor-ID of 0 still has a 12-byte header.
    #[test]
    fn a_header_alone_keeps_its_vendor_id_even_when_zero() {
        let bytes = [
            0, 0, 1, 28, 0xc0, 0, 0, 17, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0,
        ];
        let avp = Avps::new(&bytes).next().unwrap().unwrap();
        let mut out = Vec::new();
        avp.put_header(&mut out);
        assert_eq!(out, [0, 0, 1, 28, 0xc0, 0, 0, 12, 0, 0, 0, 0]);
        assert!(Avps::new(&out).next().unwrap().is_ok());
    }

    #[test]
    fn writes_the_rfc_6733_layout() {
        let mut out = Vec::new();
        let start = begin(&mut out, flags::REQUEST, 257, 0, 0x01020304, 0x05060708);
        put(&mut out, AvpDef::ietf(264), b"mme1");
        put(&mut out, AvpDef::ietf_optional(269), b"x");
        put_u32(&mut out, AvpDef::vendor(1445, 10415), 1);
        put_address(&mut out, AvpDef::ietf(257), "127.0.0.1".parse().unwrap());
        finish(&mut out, start);
        assert_eq!(
            &out[..20],
            [
                1, 0, 0, 76, 0x80, 0, 1, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8
            ]
        );
        assert_eq!(
            &out[20..32],
            [0, 0, 1, 8, 0x40, 0, 0, 12, b'm', b'm', b'e', b'1']
        );
        assert_eq!(&out[32..44], [0, 0, 1, 13, 0, 0, 0, 9, b'x', 0, 0, 0]);
        assert_eq!(
            &out[44..60],
            [0, 0, 5, 0xa5, 0xc0, 0, 0, 16, 0, 0, 0x28, 0xaf, 0, 0, 0, 1]
        );
        assert_eq!(
            &out[60..],
            [0, 0, 1, 1, 0x40, 0, 0, 14, 0, 1, 127, 0, 0, 1, 0, 0]
        );
    }
}
