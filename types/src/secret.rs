//! The token value format: `<prefix>_<random><checksum>`.
//!
//! * `random` is 22 base62 characters (≈131 bits) drawn from the OS random source;
//! * `checksum` is the CRC32 of `<prefix>_<random>`, as 6 base62 characters.
//!
//! The checksum lets the server reject mistyped or made-up values without a
//! storage lookup, and gives secret scanners a way to confirm a leaked token.
//! Nothing here ever formats a full value into an error message.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Number of random base62 characters in a token.
pub const RANDOM_LEN: usize = 22;
/// Number of base62 characters of the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// The default prefix, `tko`.
pub const DEFAULT_PREFIX: &str = "tko";

/// Why a string is not a well-formed token. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("token does not have the form <prefix>_<random><checksum>")]
    Shape,
    #[error("token prefix is not the one this server issues")]
    Prefix,
    #[error("token checksum does not match")]
    Checksum,
}

/// Whether `prefix` is acceptable as a token prefix: 1–16 lowercase letters or digits, starting with a letter.
pub fn valid_prefix(prefix: &str) -> bool {
    (1..=16).contains(&prefix.len())
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Appends `len` uniformly random base62 characters from the OS random source.
///
/// # Panics
/// If the operating system cannot provide randomness (there is no safe fallback).
pub fn push_random_base62(out: &mut String, len: usize) {
    let mut chars = 0;
    let mut buf = [0u8; 64];
    while chars < len {
        getrandom::fill(&mut buf).expect("the OS random source is unavailable");
        for &b in &buf {
            // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
            if b < 248 && chars < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
                chars += 1;
            }
        }
    }
}

/// Generates a new token value with the given prefix from the OS random source.
///
/// # Panics
/// If the operating system cannot provide randomness (there is no safe fallback).
pub fn generate(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN);
    out.push_str(prefix);
    out.push('_');
    push_random_base62(&mut out, RANDOM_LEN);
    let sum = checksum(&out);
    out.push_str(std::str::from_utf8(&sum).expect("alphabet is ASCII"));
    out
}

/// Checks the shape, prefix and checksum of a token value without any lookup.
///
/// ```
/// use tokenops_types::secret::{check, generate, FormatError};
/// let value = generate("tko");
/// assert!(check(&value, "tko").is_ok());
/// assert_eq!(check("tko_notatoken", "tko"), Err(FormatError::Shape));
/// ```
pub fn check(value: &str, expected_prefix: &str) -> Result<(), FormatError> {
    // This runs before any storage lookup on every presented value, so it
    // works on bytes, decodes the checksum instead of re-encoding it, looks
    // each character up in one table without branching, and allocates nothing.
    let bytes = value.as_bytes();
    let underscore = bytes
        .iter()
        .position(|&b| b == b'_')
        .ok_or(FormatError::Shape)?;
    let rest = &bytes[underscore + 1..];
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(FormatError::Shape);
    }
    let (random, sum) = rest.split_at(RANDOM_LEN);
    let mut invalid = 0u8;
    for &b in random {
        invalid |= BASE62[usize::from(b)];
    }
    let mut claimed: u64 = 0;
    for &b in sum {
        let digit = BASE62[usize::from(b)];
        invalid |= digit;
        claimed = claimed * 62 + u64::from(digit & 0x3f);
    }
    if invalid & NOT_BASE62 != 0 {
        return Err(FormatError::Shape);
    }
    if &bytes[..underscore] != expected_prefix.as_bytes() {
        return Err(FormatError::Prefix);
    }
    if u64::from(crc32fast::hash(&bytes[..bytes.len() - CHECKSUM_LEN])) != claimed {
        return Err(FormatError::Checksum);
    }
    Ok(())
}

/// Marks a byte that is not a base62 character in [`BASE62`].
const NOT_BASE62: u8 = 0x80;

/// Each byte's base62 digit, or [`NOT_BASE62`].
const BASE62: [u8; 256] = {
    let mut table = [NOT_BASE62; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The only form of a value ever shown after creation: `tko_…a1B2` (prefix and
/// the last four characters, which belong to the checksum and carry no entropy
/// of the random part).
pub fn mask(value: &str) -> String {
    let prefix = value.split_once('_').map(|(p, _)| p).unwrap_or("");
    let tail: String = value
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{prefix}_…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_values_have_the_documented_shape() {
        let v = generate("tko");
        assert!(v.starts_with("tko_"));
        assert_eq!(v.len(), 4 + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(check(&v, "tko"), Ok(()));
        assert_ne!(generate("tko"), v, "two values must differ");
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let v = generate("tko");
        let mut bytes = v.clone().into_bytes();
        let i = 6;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_eq!(check(&changed, "tko"), Err(FormatError::Checksum));
    }

    #[test]
    fn wrong_prefix_and_shape_are_told_apart() {
        let v = generate("abc");
        assert_eq!(check(&v, "tko"), Err(FormatError::Prefix));
        assert_eq!(check("tko_short", "tko"), Err(FormatError::Shape));
        assert_eq!(check("no-underscore", "tko"), Err(FormatError::Shape));
        assert_eq!(check(&format!("{v}!"), "abc"), Err(FormatError::Shape));
    }

    #[test]
    fn mask_keeps_only_prefix_and_tail() {
        let v = generate("tko");
        let m = mask(&v);
        assert!(m.starts_with("tko_…"));
        assert!(v.ends_with(&m["tko_…".len()..]));
        assert_eq!(m.chars().count(), "tko_…".chars().count() + 4);
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(valid_prefix("tko"));
        assert!(valid_prefix("acme2"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("Tko"));
        assert!(!valid_prefix("t_k"));
        assert!(!valid_prefix("2abc"));
    }

    proptest! {
        #[test]
        fn check_never_panics(s in "\\PC{0,40}") {
            let _ = check(&s, "tko");
        }

        #[test]
        fn changing_one_character_is_always_caught(pos in 4usize..32, c in proptest::char::any()) {
            let value = generate("tko");
            prop_assume!(value.chars().nth(pos) != Some(c));
            let mut changed: Vec<char> = value.chars().collect();
            changed[pos] = c;
            let changed: String = changed.into_iter().collect();
            prop_assert!(check(&changed, "tko").is_err());
        }
    }
}
