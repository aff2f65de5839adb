//! Identifiers and token values.

use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::time::{Random, Timestamp};

/// The characters of every token we mint: Salesforce's access-token alphabet after the `!`
/// (`[A-Za-z0-9._]`), which also satisfies the sfdx auth-URL regex for refresh tokens and client
/// ids (docs/salesforce-compatibility.md, "Token and id formats").
const TOKEN_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";

/// `bytes` random bytes written in [`TOKEN_ALPHABET`], 6 bits a character.
pub fn random_token(rng: &dyn Random, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rng.fill(&mut raw);
    encode_token(&raw)
}

/// A grant id: the creation time in milliseconds (6 bytes, big-endian) then 12 random bytes,
/// 24 characters in [`TOKEN_ALPHABET`]. Ids made close in time share their first characters, so
/// new grants land next to each other in the primary-key B-tree instead of on a random page
/// each: a bulk load of 10 million grants wrote one page per grant with random ids. The time it
/// reveals is no secret (Salesforce's own ids are sequential), and 96 random bits keep ids
/// unique.
pub(crate) fn time_ordered_id(now: Timestamp, rng: &dyn Random) -> String {
    let mut raw = [0u8; 18];
    raw[..6].copy_from_slice(&now.0.max(0).to_be_bytes()[2..]);
    rng.fill(&mut raw[6..]);
    encode_token(&raw)
}

/// Base64 over [`TOKEN_ALPHABET`], without padding, refusing non-canonical input (trailing bits
/// that are not zero): one byte string has exactly one spelling, so that a token's hash names
/// it alone. Built at compile time, so an alphabet base64 refuses fails the build, not a request.
static TOKEN_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &match Alphabet::new(TOKEN_ALPHABET) {
        Ok(alphabet) => alphabet,
        Err(_) => panic!("the token alphabet must be 64 distinct ASCII characters, without `=`"),
    },
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Bytes written in [`TOKEN_ALPHABET`], 6 bits a character, no padding.
pub fn encode_token(raw: &[u8]) -> String {
    TOKEN_ENGINE.encode(raw)
}

/// The bytes [`encode_token`] wrote, or `None` for anything it could not have written.
pub fn decode_token(text: &str) -> Option<Vec<u8>> {
    TOKEN_ENGINE.decode(text).ok()
}

/// A Salesforce-style 18-character id: a 3-character key prefix, 12 random base-62 characters,
/// and the 3-character case-safe suffix Salesforce computes from the 15-character form.
pub(crate) fn salesforce_id(key_prefix: &str, rng: &dyn Random) -> String {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    debug_assert_eq!(key_prefix.len(), 3);
    let mut raw = [0u8; 12];
    rng.fill(&mut raw);
    let mut id = String::with_capacity(18);
    id.push_str(key_prefix);
    // 248 = 4 × 62: rejection-free mapping would bias; the bias of `% 62` over 256 values is
    // irrelevant for identifiers, which are not secrets.
    // `filter_map` skips nothing: a remainder modulo 62 is an index into the 62 characters.
    id.extend(
        raw.iter()
            .filter_map(|b| BASE62.get(usize::from(*b) % BASE62.len()))
            .map(|&c| char::from(c)),
    );
    id.push_str(&case_safe_suffix(&id));
    id
}

/// The 3-character suffix that makes a 15-character Salesforce id case-insensitive: for each
/// 5-character chunk, a bit per upper-case letter, read as an index into `A-Z0-5`.
pub fn case_safe_suffix(id15: &str) -> String {
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    // `filter_map` skips nothing: 5 bits at most, an index into the 32 characters.
    id15.as_bytes()
        .chunks(5)
        .filter_map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX.get(bits)
        })
        .map(|&c| char::from(c))
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::string_slice,
    reason = "tests cut ASCII tokens at known places"
)]
mod tests {
    use super::*;
    use crate::time::SystemRandom;

    #[test]
    fn tokens_have_256_bits_in_the_safe_alphabet() {
        let t = random_token(&SystemRandom, 32);
        assert_eq!(t.len(), 43);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
    }

    #[test]
    fn token_encoding_round_trips_and_has_one_spelling() {
        for len in 0..40 {
            let raw: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode_token(&encode_token(&raw)), Some(raw));
        }
        // Two bytes take three characters; the last carries two bits that must be zero.
        assert_eq!(encode_token(&[0xff, 0xff]), "__8");
        assert!(decode_token("__9").is_none(), "trailing bits set");
        assert!(decode_token("A").is_none(), "not a whole byte");
        assert!(decode_token("ab-c").is_none(), "outside the alphabet");
    }

    #[test]
    fn grant_ids_share_a_prefix_with_their_neighbours_in_time_and_differ() {
        let at = Timestamp(1_796_000_000_000);
        let a = time_ordered_id(at, &SystemRandom);
        let b = time_ordered_id(Timestamp(at.0 + 1), &SystemRandom);
        let much_later = time_ordered_id(Timestamp(at.0 + 86_400_000 * 365), &SystemRandom);
        assert_eq!(a.len(), 24);
        assert!(
            a.bytes().all(|c| TOKEN_ALPHABET.as_bytes().contains(&c)),
            "{a}"
        );
        assert_eq!(a[..6], b[..6], "a millisecond apart: {a} {b}");
        assert_ne!(a[..6], much_later[..6]);
        assert_ne!(
            a,
            time_ordered_id(at, &SystemRandom),
            "random after the time"
        );
        assert_eq!(&decode_token(&a).unwrap()[..6], &at.0.to_be_bytes()[2..]);
    }

    #[test]
    fn case_safe_suffix_matches_salesforce() {
        // Known pair from Salesforce documentation examples.
        assert_eq!(case_safe_suffix("001A0000006Vm9r"), "IAC");
        assert_eq!(case_safe_suffix("00D000000000062"), "EAA");
    }

    #[test]
    fn salesforce_ids_are_18_characters_with_prefix() {
        let id = salesforce_id("005", &SystemRandom);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("005"));
        assert_eq!(&id[15..], case_safe_suffix(&id[..15]));
    }
}
