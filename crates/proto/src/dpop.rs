//! DPoP (RFC 9449) on the wire: what a proof's maker and its checker must compute alike — the
//! normalised `htu`, the `ath` of an access token and the JWK thumbprint (RFC 7638) a token is
//! bound to. The server's validator (`tessera-core`) and the token manager's proof maker
//! (`tessera-client`) both call these, so that the two ends cannot drift apart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The request header that carries a proof.
pub const DPOP_HEADER: &str = "DPoP";
/// The response header that carries the nonce a proof must name.
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";
/// The `Authorization` scheme of a DPoP-bound access token.
pub const DPOP_SCHEME: &str = "DPoP";
/// A proof's JOSE `typ`.
pub const PROOF_TYP: &str = "dpop+jwt";
/// The longest `jti` a proof may carry, in bytes.
pub const MAX_JTI_BYTES: usize = 512;

/// The `htu` a proof must carry for a request to `uri` (RFC 9449 §4.3 item 9, RFC 3986 §6):
/// scheme and host in lower case, the default port left out, an empty path as `/`, and no query
/// or fragment. `None` when `uri` is not an absolute http(s) URL.
pub fn normalize_htu(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    // `Url` lower-cases the scheme and host, drops the scheme's default port and writes an
    // empty path as "/"; credentials have no place in an `htu`.
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    Some(url.into())
}

/// `ath`: base64url (no padding) of the SHA-256 of the access token's ASCII (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The RFC 7638 thumbprint of a public JWK — base64url of the SHA-256 of its required members in
/// lexicographic order, without whitespace — or `None` when `jwk` is not a public key of a
/// known type (`EC`, `RSA`, `OKP`) with those members as strings.
pub fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    // serde_json's map is ordered by key here (no `preserve_order`), and the members are
    // strings, so this is the canonical form.
    let mut canonical = serde_json::Map::new();
    for &name in members {
        let value = jwk.get(name)?.as_str()?;
        canonical.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
    }
    let text = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_is_normalised_as_rfc_3986_compares() {
        for (given, expected) in [
            (
                "https://Server.Example.com/token",
                "https://server.example.com/token",
            ),
            (
                "HTTPS://server.example.com:443/token",
                "https://server.example.com/token",
            ),
            (
                "http://127.0.0.1:8080/services/data/v62.0?q=1#x",
                "http://127.0.0.1:8080/services/data/v62.0",
            ),
            ("https://server.example.com", "https://server.example.com/"),
        ] {
            assert_eq!(normalize_htu(given).as_deref(), Some(expected), "{given}");
        }
        for refused in ["/token", "ftp://example.com/x", "not a url", "https://"] {
            assert_eq!(normalize_htu(refused), None, "{refused}");
        }
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn thumbprint_matches_rfc_7638_and_ignores_other_members() {
        // RFC 7638 §3.1's example key.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(
            jwk_thumbprint(&serde_json::json!({"kty": "oct", "k": "AAAA"})),
            None
        );
        assert_eq!(
            jwk_thumbprint(&serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA"})),
            None
        );
    }
}
