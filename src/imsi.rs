//! The IMSI (TS 23.003 clause 2.2), only as far as the roaming exemption needs it: MCC
//! (3 digits), MNC (2-3) and MSIN, 5 to 15 digits in all. The TS 29.571 SUPI form
//! `imsi-<digits>` is accepted too. Parsing never allocates: it is on the check path.

/// A subscriber identity, kept as its digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Imsi {
    digits: [u8; 15],
    len: u8,
}

/// Mobile Country Code: the first three digits of an IMSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mcc(u16);

/// Why a string is not an IMSI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseImsiError {
    /// Not 5 to 15 characters (after an optional `imsi-`).
    #[error("IMSI has {len} digits; expected 5 to 15")]
    Length {
        /// How many characters were given.
        len: usize,
    },
    /// A character other than an ASCII digit.
    #[error("IMSI has a non-digit character at position {position}")]
    NonDigit {
        /// 1-based position among the digits.
        position: usize,
    },
}

impl Imsi {
    /// Parses `<5..15 digits>` or the SUPI form `imsi-<5..15 digits>`.
    ///
    /// # Errors
    /// [`ParseImsiError`] naming the length or the first non-digit.
    pub fn parse(s: &str) -> Result<Imsi, ParseImsiError> {
        let s = s.strip_prefix("imsi-").unwrap_or(s).as_bytes();
        if let Some(i) = s.iter().position(|b| !b.is_ascii_digit()) {
            return Err(ParseImsiError::NonDigit { position: i + 1 });
        }
        if !(5..=15).contains(&s.len()) {
            return Err(ParseImsiError::Length { len: s.len() });
        }
        let mut digits = [0u8; 15];
        digits[..s.len()].copy_from_slice(s);
        Ok(Imsi {
            digits,
            len: s.len() as u8,
        })
    }

    /// The Mobile Country Code (first three digits).
    pub fn mcc(&self) -> Mcc {
        let d = |i: usize| u16::from(self.digits[i] - b'0');
        Mcc(d(0) * 100 + d(1) * 10 + d(2))
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Mcc {
    /// Parses a three-digit MCC such as `732`.
    ///
    /// # Errors
    /// A message naming the value when it is not exactly three digits.
    pub fn parse(s: &str) -> Result<Mcc, String> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Mcc(s.parse().map_err(|_| format!("MCC {s:?}"))?))
        } else {
            Err(format!("MCC must be three digits, got {s:?}"))
        }
    }
}

impl std::fmt::Display for Mcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

impl std::fmt::Debug for Imsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Personal data: only the MCC goes to debug output.
        write!(f, "Imsi({}…)", self.mcc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_supi_forms() {
        let a = Imsi::parse("732101234567890").unwrap();
        let b = Imsi::parse("imsi-732101234567890").unwrap();
        assert!(a == b);
        assert_eq!(a.mcc(), Mcc::parse("732").unwrap());
        assert_eq!(a.as_str(), "732101234567890");
        assert_eq!(Imsi::parse("00101").unwrap().mcc().to_string(), "001");
    }

    #[test]
    fn rejects_bad_imsis() {
        assert_eq!(Imsi::parse("7321"), Err(ParseImsiError::Length { len: 4 }));
        assert_eq!(
            Imsi::parse("7321012345678901"),
            Err(ParseImsiError::Length { len: 16 })
        );
        assert_eq!(
            Imsi::parse("73210x"),
            Err(ParseImsiError::NonDigit { position: 6 })
        );
        assert!(Imsi::parse("nai-foo@bar").is_err());
    }

    #[test]
    fn mcc_must_be_three_digits() {
        assert!(Mcc::parse("73").is_err());
        assert!(Mcc::parse("7322").is_err());
        assert!(Mcc::parse("7a2").is_err());
    }

    #[test]
    fn debug_hides_the_subscriber() {
        let s = format!("{:?}", Imsi::parse("732101234567890").unwrap());
        assert!(!s.contains("1234567890"));
    }
}
