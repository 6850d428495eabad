//! The IMEI (3GPP TS 23.003 clause 6.2) and every textual form the interfaces send.
//!
//! An IMEI is TAC (8 digits, the model) + SNR (6 digits, the serial) + CD (1 Luhn check digit).
//! The check digit is a function of the other 14 digits, so the registry keys every device by
//! TAC+SNR alone: [`Imei::key`] is that 14-digit number as a big-endian `u64`, which makes
//! RocksDB's byte order the numeric order and every TAC a contiguous key range.
//!
//! Two parsing modes exist because the law and the networks disagree on the 15th digit:
//! - [`Imei::parse`] is for data that **enters the registry** (registrations, reports, the native
//!   API): a 15-digit IMEI must carry the correct check digit, and an error says so.
//! - [`Imei::parse_network`] is for the **network check interfaces** (N5g-eir, S13): TS 23.003
//!   says the check digit is not transmitted at IMEI check occasions and a 15th digit may be a
//!   spare `0`, so the 15th digit is not verified there.
//!
//! Both accept 14 digits (TAC+SNR), 15 digits, 16-digit IMEISV (TAC+SNR+SVN) and the TS 29.511
//! PEI strings `imei-<15 digits>` and `imeisv-<16 digits>`. Parsing never allocates: it is on
//! the check path.

use std::fmt;

/// Number of digits of TAC+SNR, the part of an IMEI that identifies the device.
const BODY_DIGITS: usize = 14;

/// A device identity: TAC + SNR. The check digit is derived, never stored.
///
/// ```
/// use imeidb::imei::Imei;
/// let imei = Imei::parse("260531793113837").unwrap();
/// assert_eq!(imei.check_digit(), 7);
/// assert_eq!(imei.tac().to_string(), "26053179");
/// assert_eq!(imei.to_string(), "260531793113837");
/// // 14 digits and the PEI form name the same device
/// assert_eq!(Imei::parse("26053179311383").unwrap(), imei);
/// assert_eq!(Imei::parse("imei-260531793113837").unwrap(), imei);
/// // a wrong check digit is refused where data enters the registry...
/// assert!(Imei::parse("260531793113830").is_err());
/// // ...and tolerated on the network check path, where it may be a spare 0
/// assert_eq!(Imei::parse_network("260531793113830").unwrap(), imei);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Imei(u64);

/// Type Allocation Code: the first 8 digits, allocated by the GSMA to one device model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tac(u32);

/// Why a string is not an IMEI. Each variant names what is wrong so an importer's clerk can fix
/// the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseImeiError {
    /// Nothing was given.
    #[error("IMEI is empty")]
    Empty,
    /// A character other than an ASCII digit (1-based position in the digits).
    #[error("IMEI has a non-digit character at position {position}")]
    NonDigit {
        /// 1-based position of the offending character among the digits.
        position: usize,
    },
    /// Not 14, 15 or 16 digits.
    #[error("IMEI has {len} digits; expected 14 (TAC+SNR), 15 (with check digit) or 16 (IMEISV)")]
    Length {
        /// How many characters were given.
        len: usize,
    },
    /// `imei-` must be followed by exactly 15 digits, `imeisv-` by exactly 16 (TS 29.571 Pei).
    #[error("PEI '{prefix}-' must be followed by {expected} digits, found {len}")]
    PeiLength {
        /// `imei` or `imeisv`.
        prefix: &'static str,
        /// Digits the prefix requires.
        expected: usize,
        /// Digits given.
        len: usize,
    },
    /// The 15th digit is not the Luhn check digit of the first 14.
    #[error("IMEI check digit is {found}, but the first 14 digits require {expected}")]
    CheckDigit {
        /// The Luhn digit computed over TAC+SNR.
        expected: u8,
        /// The digit that was given.
        found: u8,
    },
}

/// What the 15th digit is allowed to be.
#[derive(Clone, Copy)]
enum CheckDigitRule {
    /// Registry input: must be the Luhn check digit.
    Verify,
    /// Network check input: the check digit or a spare `0` (TS 23.003), not verified.
    Tolerate,
}

impl Imei {
    /// Largest TAC+SNR value (14 nines).
    const MAX_BODY: u64 = 99_999_999_999_999;

    /// Parses an IMEI where data enters the registry: a 15-digit IMEI must carry the right
    /// check digit.
    ///
    /// # Errors
    /// [`ParseImeiError`] naming what is wrong: emptiness, a non-digit and its position, the
    /// length, or the wrong check digit and the right one.
    pub fn parse(s: &str) -> Result<Imei, ParseImeiError> {
        Self::parse_bytes(s.as_bytes(), CheckDigitRule::Verify)
    }

    /// Parses an IMEI received on a network check interface (N5g-eir, S13): the 15th digit may
    /// be the check digit or a spare digit and is not verified (TS 23.003 clause 6.2.1).
    ///
    /// # Errors
    /// As [`Imei::parse`], except that the check digit is never wrong here.
    pub fn parse_network(s: &str) -> Result<Imei, ParseImeiError> {
        Self::parse_bytes(s.as_bytes(), CheckDigitRule::Tolerate)
    }

    fn parse_bytes(s: &[u8], rule: CheckDigitRule) -> Result<Imei, ParseImeiError> {
        if let Some(rest) = s.strip_prefix(b"imeisv-") {
            if rest.len() != 16 {
                return Err(ParseImeiError::PeiLength {
                    prefix: "imeisv",
                    expected: 16,
                    len: rest.len(),
                });
            }
            return Self::parse_digits(rest, rule);
        }
        if let Some(rest) = s.strip_prefix(b"imei-") {
            if rest.len() != 15 {
                return Err(ParseImeiError::PeiLength {
                    prefix: "imei",
                    expected: 15,
                    len: rest.len(),
                });
            }
            return Self::parse_digits(rest, rule);
        }
        Self::parse_digits(s, rule)
    }

    /// Performance-critical (every check and every upload line): the digits are checked and
    /// converted eight at a time, in two words that cover all 14-16 bytes between them.
    fn parse_digits(s: &[u8], rule: CheckDigitRule) -> Result<Imei, ParseImeiError> {
        if s.is_empty() {
            return Err(ParseImeiError::Empty);
        }
        let well_formed = (14..=16).contains(&s.len())
            && all_digits(word(&s[..8]))
            && all_digits(word(&s[s.len() - 8..]));
        if !well_formed {
            return Err(match s.iter().position(|b| !b.is_ascii_digit()) {
                Some(i) => ParseImeiError::NonDigit { position: i + 1 },
                None => ParseImeiError::Length { len: s.len() },
            });
        }
        // digits 1-8, then 7-14 of which the last six are the serial
        let body = u64::from(eight_digits(word(&s[..8]))) * 1_000_000
            + u64::from(eight_digits(word(&s[6..14])) % 1_000_000);
        if s.len() == 15 {
            if let CheckDigitRule::Verify = rule {
                let found = s[14] - b'0';
                let sum = s[..BODY_DIGITS]
                    .chunks_exact(2)
                    .map(|pair| {
                        let p = usize::from(pair[0] - b'0') * 10 + usize::from(pair[1] - b'0');
                        u32::from(DIGIT_PAIRS[p].1)
                    })
                    .sum();
                let expected = check_digit_of(sum);
                if found != expected {
                    return Err(ParseImeiError::CheckDigit { expected, found });
                }
            }
        }
        Ok(Imei(body))
    }

    /// The IMEI whose TAC+SNR is the 14-digit number `body`, or `None` if it has more digits.
    pub fn from_body(body: u64) -> Option<Imei> {
        (body <= Self::MAX_BODY).then_some(Imei(body))
    }

    /// TAC+SNR as a 14-digit number.
    pub fn body(self) -> u64 {
        self.0
    }

    /// The store key: TAC+SNR as a big-endian `u64`, so byte order is numeric order.
    pub fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The IMEI stored under `key`, or `None` if the bytes are not a key this module made.
    pub fn from_key(key: &[u8]) -> Option<Imei> {
        let bytes: [u8; 8] = key.try_into().ok()?;
        Self::from_body(u64::from_be_bytes(bytes))
    }

    /// Type Allocation Code: the first 8 digits.
    pub fn tac(self) -> Tac {
        // 14-digit body / 10^6 leaves 8 digits, which fit a u32.
        Tac((self.0 / 1_000_000) as u32)
    }

    /// Serial number: digits 9 to 14.
    pub fn snr(self) -> u32 {
        (self.0 % 1_000_000) as u32
    }

    /// The Luhn check digit of TAC+SNR (TS 23.003 annex B).
    pub fn check_digit(self) -> u8 {
        self.to_digits()[14] - b'0'
    }

    /// The canonical 15-digit text, without allocating.
    ///
    /// Two digits at a time from the right (`DIGIT_PAIRS`): seven divisions instead of the
    /// fourteen of digit by digit, and fourteen more for the check digit (every answer of a
    /// batch writes one).
    pub fn to_digits(self) -> [u8; 15] {
        let mut out = [b'0'; 15];
        let mut rest = self.0;
        let mut sum = 0;
        for k in (0..BODY_DIGITS / 2).rev() {
            let (digits, share) = DIGIT_PAIRS[(rest % 100) as usize];
            rest /= 100;
            out[2 * k..2 * k + 2].copy_from_slice(&digits);
            sum += u32::from(share);
        }
        out[14] = b'0' + check_digit_of(sum);
        out
    }

    /// A wrapper that prints only the TAC, for logs: an IMEI is personal data.
    pub fn redacted(self) -> Redacted {
        Redacted(self)
    }
}

/// Eight bytes as a little-endian word: the first byte is the lowest.
#[inline]
fn word(eight: &[u8]) -> u64 {
    u64::from_le_bytes(eight[..8].try_into().expect("eight bytes"))
}

const BYTES: u64 = 0x0101_0101_0101_0101;

/// Whether every byte of `w` is an ASCII digit: its high nibble is 3, and adding 6 to it does
/// not carry into the high nibble (no byte can carry into the next once its high nibble is 3).
#[inline]
fn all_digits(w: u64) -> bool {
    w & (0xF0 * BYTES) == 0x30 * BYTES
        && w.wrapping_add(0x06 * BYTES) & (0xF0 * BYTES) == 0x30 * BYTES
}

/// The number written by the eight ASCII digits of `w` (see [`all_digits`]), the first byte
/// the most significant: pairs, then groups of four, then all eight, each step one multiply.
#[inline]
fn eight_digits(w: u64) -> u32 {
    let digits = w - 0x30 * BYTES; // every byte 0..=9: no borrow
    let pairs = digits * 10 + (digits >> 8); // even bytes: 0..=99
    let fours = (pairs & 0x00FF_00FF_00FF_00FF) * 100 + ((pairs >> 16) & 0x00FF_00FF_00FF_00FF);
    let eight = (fours & 0x0000_FFFF_0000_FFFF) * 10_000 + ((fours >> 32) & 0x0000_FFFF);
    eight as u32 // < 10^8
}

/// The check digit that completes a Luhn sum.
fn check_digit_of(sum: u32) -> u8 {
    ((10 - sum % 10) % 10) as u8
}

/// Every two-digit number `p` as a pair of body digits counted from the right (D2 D1, D4 D3,
/// and so on: the right one of each pair is doubled by Luhn): its ASCII digits, and its share
/// of the Luhn sum, D2 plus the digit sum of 2 x D1.
const DIGIT_PAIRS: [([u8; 2], u8); 100] = {
    let mut pairs = [([0; 2], 0); 100];
    let mut p = 0;
    while p < 100 {
        let (left, right) = ((p / 10) as u8, (p % 10) as u8);
        let doubled = 2 * right;
        pairs[p] = (
            [b'0' + left, b'0' + right],
            left + doubled / 10 + doubled % 10,
        );
        p += 1;
    }
    pairs
};

impl fmt::Display for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.to_digits();
        // The digits are ASCII by construction.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Imei({self})")
    }
}

impl fmt::Display for Tac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

impl Tac {
    /// The TAC as a number (up to 8 digits).
    pub fn value(self) -> u32 {
        self.0
    }
}

/// An IMEI shown as its TAC followed by `*`s: safe for logs.
pub struct Redacted(Imei);

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*******", self.0.tac())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Luhn as TS 23.003 annex B words it, digit by digit, for the fast code to agree with:
    /// the 14 body digits from D1 (the rightmost) to D14, every second one doubled starting
    /// with D1, the digits of the products and the undoubled digits added,
    /// CD = (10 - sum mod 10) mod 10.
    fn luhn_reference(body: u64) -> u8 {
        let sum: u32 = (0..BODY_DIGITS as u32)
            .map(|i| {
                let d = (body / 10u64.pow(i) % 10) as u32;
                if i % 2 == 0 {
                    (d * 2) / 10 + (d * 2) % 10
                } else {
                    d
                }
            })
            .sum();
        ((10 - sum % 10) % 10) as u8
    }

    /// Parsing as it reads in words, one byte at a time: which error, or the body.
    fn parse_reference(s: &[u8], rule: CheckDigitRule) -> Result<u64, ParseImeiError> {
        if s.is_empty() {
            return Err(ParseImeiError::Empty);
        }
        if let Some(i) = s.iter().position(|b| !b.is_ascii_digit()) {
            return Err(ParseImeiError::NonDigit { position: i + 1 });
        }
        if !(14..=16).contains(&s.len()) {
            return Err(ParseImeiError::Length { len: s.len() });
        }
        let body = s[..14].iter().fold(0, |n, b| n * 10 + u64::from(b - b'0'));
        if s.len() == 15 && matches!(rule, CheckDigitRule::Verify) {
            let (expected, found) = (luhn_reference(body), s[14] - b'0');
            if expected != found {
                return Err(ParseImeiError::CheckDigit { expected, found });
            }
        }
        Ok(body)
    }

    #[test]
    fn ts_23003_test_vector() {
        let imei = Imei::parse("26053179311383").unwrap();
        assert_eq!(imei.check_digit(), 7);
        assert_eq!(imei.to_string(), "260531793113837");
        assert_eq!(imei.tac(), Tac(26053179));
        assert_eq!(imei.snr(), 311383);
    }

    #[test]
    fn every_form_maps_to_one_key() {
        let forms = [
            "26053179311383",
            "260531793113837",
            "2605317931138301",
            "imei-260531793113837",
            "imeisv-2605317931138399",
        ];
        let key = Imei::parse("260531793113837").unwrap().key();
        for form in forms {
            assert_eq!(Imei::parse(form).unwrap().key(), key, "{form}");
            assert_eq!(Imei::parse_network(form).unwrap().key(), key, "{form}");
        }
    }

    #[test]
    fn registry_rejects_a_wrong_check_digit_and_names_both_digits() {
        assert_eq!(
            Imei::parse("260531793113831"),
            Err(ParseImeiError::CheckDigit {
                expected: 7,
                found: 1
            })
        );
        assert!(Imei::parse("imei-260531793113830").is_err());
    }

    #[test]
    fn network_accepts_a_spare_zero_or_any_fifteenth_digit() {
        let imei = Imei::parse("260531793113837").unwrap();
        assert_eq!(Imei::parse_network("260531793113830"), Ok(imei));
        assert_eq!(Imei::parse_network("imei-260531793113830"), Ok(imei));
    }

    #[test]
    fn malformed_inputs_say_what_is_wrong() {
        assert_eq!(Imei::parse(""), Err(ParseImeiError::Empty));
        assert_eq!(
            Imei::parse("2605317931138a7"),
            Err(ParseImeiError::NonDigit { position: 14 })
        );
        assert_eq!(
            Imei::parse("2605317931"),
            Err(ParseImeiError::Length { len: 10 })
        );
        assert_eq!(
            Imei::parse("26053179311383712"),
            Err(ParseImeiError::Length { len: 17 })
        );
        assert_eq!(
            Imei::parse("imei-26053179311383"),
            Err(ParseImeiError::PeiLength {
                prefix: "imei",
                expected: 15,
                len: 14
            })
        );
        assert_eq!(
            Imei::parse("imeisv-260531793113837"),
            Err(ParseImeiError::PeiLength {
                prefix: "imeisv",
                expected: 16,
                len: 15
            })
        );
        assert_eq!(
            Imei::parse(" 260531793113837"),
            Err(ParseImeiError::NonDigit { position: 1 })
        );
        assert!(Imei::parse("imsi-260531793113837").is_err());
    }

    #[test]
    fn key_order_is_numeric_order_and_round_trips() {
        let a = Imei::parse("01000000000000").unwrap();
        let b = Imei::parse("10000000000000").unwrap();
        assert!(a.key() < b.key());
        assert_eq!(Imei::from_key(&a.key()), Some(a));
        assert_eq!(Imei::from_key(&[0u8; 3]), None);
        assert_eq!(Imei::from_key(&u64::MAX.to_be_bytes()), None);
    }

    #[test]
    fn redacted_shows_only_the_tac() {
        let imei = Imei::parse("260531793113837").unwrap();
        let shown = imei.redacted().to_string();
        assert!(shown.starts_with("26053179"));
        assert!(!shown.contains("311383"));
    }

    proptest! {
        #[test]
        fn fifteen_digit_text_round_trips(body in 0u64..=Imei::MAX_BODY) {
            let imei = Imei::from_body(body).unwrap();
            let text = imei.to_string();
            prop_assert_eq!(text.len(), 15);
            prop_assert_eq!(Imei::parse(&text), Ok(imei));
            prop_assert_eq!(Imei::parse(&text[..14]), Ok(imei));
            let pei = format!("imei-{text}");
            prop_assert_eq!(Imei::parse(&pei), Ok(imei));
        }

        #[test]
        fn luhn_catches_every_single_digit_change(
            body in 0u64..=Imei::MAX_BODY,
            position in 0usize..15,
            delta in 1u8..10,
        ) {
            let mut digits = Imei::from_body(body).unwrap().to_digits();
            digits[position] = b'0' + (digits[position] - b'0' + delta) % 10;
            let changed = std::str::from_utf8(&digits).unwrap();
            prop_assert!(
                matches!(Imei::parse(changed), Err(ParseImeiError::CheckDigit { .. })),
                "{} was accepted", changed
            );
        }

        #[test]
        fn check_digit_is_luhn_digit_by_digit(body in 0u64..=Imei::MAX_BODY) {
            prop_assert_eq!(Imei::from_body(body).unwrap().check_digit(), luhn_reference(body));
        }

        /// Mostly digits, now and then any byte (the bytes next to '0' and '9' included), at
        /// the lengths the fast path reads and around them.
        #[test]
        fn parsing_agrees_with_byte_by_byte_reading(
            s in proptest::collection::vec(
                prop_oneof![8 => b'0'..=b'9', 1 => b'/'..=b':', 1 => any::<u8>()],
                0..=18,
            ),
            verify in any::<bool>(),
        ) {
            let rule = if verify { CheckDigitRule::Verify } else { CheckDigitRule::Tolerate };
            prop_assert_eq!(
                Imei::parse_digits(&s, rule).map(Imei::body),
                parse_reference(&s, rule)
            );
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".{0,40}") {
            let _ = Imei::parse(&s);
            let _ = Imei::parse_network(&s);
        }
    }
}
