//! API tokens: bearer credentials of one user.
//!
//! A token is `imeidb_` + a 16-hex-digit id + `_` + 64 hex digits of secret (256 random bits
//! from the OS). It is shown once, when it is made; the registry keeps only the id and the
//! SHA-256 of the secret. SHA-256 is enough for a random secret (there is nothing to guess
//! from its hash), and the id lets a request find its token without comparing against every
//! stored hash; the hash is then compared in constant time.

use sha2::{Digest, Sha256};

pub use crate::hex::{from_hex, hex};

const PREFIX: &str = "imeidb_";

/// A token's public identifier (not secret: it appears in listings and the audit trail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub u64);

impl TokenId {
    /// Sixteen lower-case hex digits.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    /// Parses sixteen lower-case hex digits (the one spelling [`TokenId::to_hex`] gives).
    pub fn from_hex(text: &str) -> Option<TokenId> {
        (text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| u64::from_str_radix(text, 16).ok().map(TokenId))
            .flatten()
    }
}

/// A freshly made token: the text to hand over once, and what is stored.
pub struct NewToken {
    /// The bearer text, shown once.
    pub text: String,
    /// Its id.
    pub id: TokenId,
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
}

/// The OS random source failed; no token can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomError;

/// Makes a new token from the OS random source.
///
/// # Errors
/// [`RandomError`] if the OS cannot provide random bytes.
pub fn generate() -> Result<NewToken, RandomError> {
    let mut bytes = [0u8; 40];
    getrandom::getrandom(&mut bytes).map_err(|_| RandomError)?;
    let (id, secret) = bytes.split_at(8);
    let id = TokenId(u64::from_be_bytes(id.try_into().expect("8 bytes")));
    let secret_hex = hex(secret);
    Ok(NewToken {
        text: format!("{PREFIX}{}_{secret_hex}", id.to_hex()),
        id,
        secret_hash: hash_secret(&secret_hex),
    })
}

/// Splits bearer text into its id and the hash of its secret; `None` if it is not shaped
/// like a token.
pub fn parse(text: &str) -> Option<(TokenId, [u8; 32])> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id = TokenId::from_hex(id)?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id, hash_secret(secret)))
}

fn hash_secret(secret_hex: &str) -> [u8; 32] {
    Sha256::digest(secret_hex.as_bytes()).into()
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_parses_to_its_id_and_hash() {
        let token = generate().unwrap();
        assert!(token.text.starts_with("imeidb_"));
        assert_eq!(token.text.len(), 7 + 16 + 1 + 64);
        assert_eq!(parse(&token.text), Some((token.id, token.secret_hash)));
        let other = generate().unwrap();
        assert_ne!(token.id, other.id);
        assert_ne!(token.secret_hash, other.secret_hash);
    }

    #[test]
    fn a_changed_secret_hashes_differently_and_bad_shapes_are_refused() {
        let token = generate().unwrap();
        let mut changed = token.text.clone();
        let last = changed.pop().unwrap();
        changed.push(if last == '0' { '1' } else { '0' });
        let (id, hash) = parse(&changed).unwrap();
        assert_eq!(id, token.id);
        assert!(!constant_time_eq(&hash, &token.secret_hash));
        for bad in [
            "",
            "imeidb_",
            "Bearer x",
            &token.text[..token.text.len() - 1],
            &token.text.replace("imeidb_", "imeidc_"),
            &format!("{}0", token.text),
            &format!("imeidb_0123456789ABCDEF_{}", "ab".repeat(32)),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(bytes));
        assert_eq!(from_hex::<4>("0001abf"), None);
        assert_eq!(from_hex::<2>("zz00"), None);
    }
}
