//! JWT access tokens (RFC 9068), for the clients that ask for them (`jwt_access_tokens`,
//! Salesforce's "JWT-based access tokens"): a JWS signed with the signing-key set (RS256),
//! header `{typ: "at+jwt", alg, kid}`, carrying RFC 9068's claims and the grant it belongs to.
//!
//! The resource server verifies one against the published keys and, as for an opaque token,
//! asks only the in-memory revocation state whether its grant or the token itself was revoked:
//! its claims carry everything a request needs (the grant, the client, the user and the org),
//! so that no row is read. What the claims are, and why, is in docs/openid-connect.md ("JWT
//! access tokens").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tessera_proto::Scope;

use crate::time::Timestamp;
use crate::tokens::access_token::RANDOM_BYTES;
use crate::tokens::server_key::ServerKey;

/// The JWS `typ` of an access token (RFC 9068 §2.1): what keeps an ID token, signed by the same
/// keys, from being accepted as one.
pub const TYP: &str = "at+jwt";
/// The one algorithm an access token may be signed with.
pub const ALG: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::RS256;
/// The longest JWT access token looked at: ours are under 1 KB (a 2048-bit signature is 342
/// characters of it); anything much longer is refused before any decoding or crypto.
pub const MAX_JWT_LEN: usize = 4096;
/// Bytes of the `jti`: 128 bits, unique per token.
const JTI_BYTES: usize = 16;

/// What a JWT access token says (RFC 9068 §2.2), in the order it is serialised: the order is
/// fixed, so that a rotation's replay, which rebuilds the same claims, signs the same bytes and
/// gets the same token back (RS256 signatures are deterministic).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JwtAccessClaims {
    /// The issuer (this server's public URL).
    pub iss: String,
    /// The user's identity URL, `<issuer>/id/<org id>/<user id>`: the `sub` of this server's
    /// ID tokens, userinfo and introspection, and where the resource server reads the org and
    /// the user from.
    pub sub: String,
    /// The resource server: the instance URL the token response names (Salesforce's JWT access
    /// tokens name the My Domain URL).
    pub aud: String,
    pub client_id: String,
    /// Space-separated, as RFC 9068 §2.2.3 has it.
    pub scope: String,
    /// Derived from the token's random part, so that a replay rebuilds the same one.
    pub jti: String,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
    /// The grant (refresh-token family) the token was issued from: what a revocation of the
    /// grant is known by, in the change feed. A private claim (RFC 7519 §4.3), named for this
    /// server so as not to collide with anyone's.
    pub tessera_grant: String,
    /// The DPoP key the token is bound to (RFC 9449 §6.1), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` (RFC 7800): the thumbprint of the key a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// What a token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct JwtAccessToken<'a> {
    pub issuer: &'a str,
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub client_id: &'a str,
    pub grant_id: &'a str,
    pub scope: &'a Scope,
    pub issued_at: Timestamp,
    pub ttl_secs: u64,
    /// The thumbprint of the DPoP key to bind it to.
    pub dpop_jkt: Option<&'a str>,
}

/// The org and user an identity URL of `issuer` names.
pub fn subject_ids<'a>(issuer: &str, sub: &'a str) -> Option<(&'a str, &'a str)> {
    let ids = sub.strip_prefix(issuer)?.strip_prefix("/id/")?;
    let (org_id, user_id) = ids.split_once('/')?;
    let well_formed = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (well_formed(org_id) && well_formed(user_id)).then_some((org_id, user_id))
}

impl JwtAccessToken<'_> {
    /// The claims, with `random` as the token's random part (drawn for a new token, derived for
    /// a rotation's successor).
    pub fn claims(&self, key: &ServerKey, random: &[u8; RANDOM_BYTES]) -> JwtAccessClaims {
        // A MAC of the random part rather than the part itself: a `jti` is logged by resource
        // servers, and the random part of a successor is derived from a refresh token.
        let jti = key.mac("jwt-access-token-id", random);
        let iat = self.issued_at.seconds();
        JwtAccessClaims {
            iss: self.issuer.to_owned(),
            sub: crate::identity::claims::identity_url(self.issuer, self.org_id, self.user_id),
            aud: self.issuer.to_owned(),
            client_id: self.client_id.to_owned(),
            scope: self.scope.to_string(),
            jti: URL_SAFE_NO_PAD.encode(jti.get(..JTI_BYTES).unwrap_or(&jti)),
            iat,
            exp: iat.saturating_add(i64::try_from(self.ttl_secs).unwrap_or(i64::MAX)),
            tessera_grant: self.grant_id.to_owned(),
            cnf: self.dpop_jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        }
    }
}

/// Bytes whose dots [`looks_like_jws`] counts in one byte: fewer than 256, so the count
/// cannot overflow.
const DOT_COUNT_CHUNK: usize = 128;

/// Whether a presented token is shaped as a compact JWS: three base64url parts, of a length
/// worth decoding. Judged by its bytes only, before anything is decoded; an opaque access token
/// always has a `!`, which base64url never does.
pub fn looks_like_jws(value: &str) -> bool {
    if value.len() > MAX_JWT_LEN {
        return false;
    }
    // Every API call with a JWT goes through here, so both passes are written without an early
    // exit: the compiler turns each into vector instructions, several times faster over a
    // 900-byte token than one branch per byte. The dots are counted in bytes, a chunk at a
    // time (a chunk's count fits in a byte): counted in a `usize` the vectors held two lanes,
    // and that count was most of this function's time.
    let bytes = value.as_bytes();
    let all_allowed = bytes.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.'))
    });
    let dots: usize = bytes
        .chunks(DOT_COUNT_CHUNK)
        .map(|chunk| chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'.')))
        .map(usize::from)
        .sum();
    all_allowed && dots == 2
}

/// The `kid` of a token whose header is an access token's: `typ` at+jwt (or its media-type
/// form, RFC 9068 §2.1) and `alg` RS256. Anything else — `alg: none`, HS256 (the confusion
/// where an RSA public key serves as an HMAC secret), an ID token — is refused here, before a
/// key is looked up.
pub fn access_token_kid(value: &str) -> Option<String> {
    let header = jsonwebtoken::decode_header(value).ok()?;
    let typ = header.typ.as_deref()?;
    let is_access_token =
        typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case("application/at+jwt");
    (is_access_token && header.alg == ALG).then_some(header.kid?)
}

/// The claims of a token, if its signature holds under `key` (RS256 only). Says nothing of
/// issuer, audience, expiry or revocation: the caller judges those, on its own clock.
pub fn verify(value: &str, key: &jsonwebtoken::DecodingKey) -> Option<JwtAccessClaims> {
    let mut validation = jsonwebtoken::Validation::new(ALG);
    // The library would judge these on the system clock; the caller judges them on the
    // injected one.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<JwtAccessClaims>(value, key, &validation)
        .ok()
        .map(|data| data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SigningAlg;
    use crate::time::SystemRandom;
    use crate::tokens::signing_keys::SigningKey;

    fn token(issued_at: Timestamp) -> JwtAccessToken<'static> {
        static SCOPE: std::sync::OnceLock<Scope> = std::sync::OnceLock::new();
        JwtAccessToken {
            issuer: "https://as.test",
            org_id: "00D000000000001AAA",
            user_id: "005000000000001AAA",
            client_id: "3MVGclient",
            grant_id: "grant0000000000000000001",
            scope: SCOPE.get_or_init(|| Scope::parse("api refresh_token").unwrap()),
            issued_at,
            ttl_secs: 7_200,
            dpop_jkt: None,
        }
    }

    #[test]
    fn claims_follow_rfc_9068_and_the_same_random_part_gives_the_same_jti() {
        let key = ServerKey::generate(&SystemRandom);
        let claims = token(Timestamp(1_800_000_000_123)).claims(&key, &[7; RANDOM_BYTES]);
        assert_eq!(claims.iss, "https://as.test");
        assert_eq!(
            claims.sub,
            "https://as.test/id/00D000000000001AAA/005000000000001AAA"
        );
        assert_eq!(claims.aud, "https://as.test");
        assert_eq!(claims.scope, "api refresh_token");
        assert_eq!((claims.iat, claims.exp), (1_800_000_000, 1_800_007_200));
        assert_eq!(claims.jti.len(), 22);
        let again = token(Timestamp(1_800_000_000_999)).claims(&key, &[7; RANDOM_BYTES]);
        assert_eq!(again, claims);
        let other = token(Timestamp(1_800_000_000_123)).claims(&key, &[8; RANDOM_BYTES]);
        assert_ne!(other.jti, claims.jti);
    }

    #[test]
    fn the_subject_names_the_org_and_the_user_of_this_issuer_only() {
        let sub = "https://as.test/id/00D1/0051";
        assert_eq!(subject_ids("https://as.test", sub), Some(("00D1", "0051")));
        for (issuer, sub) in [
            ("https://other.test", sub),
            ("https://as.test", "https://as.test/id/00D1"),
            ("https://as.test", "https://as.test/id/00D1/0051/x"),
            ("https://as.test", "https://as.test/id//0051"),
            ("https://as.test", "https://as.test.evil/id/00D1/0051"),
        ] {
            assert_eq!(subject_ids(issuer, sub), None, "{issuer} {sub}");
        }
    }

    #[test]
    fn only_three_base64url_parts_of_a_bounded_length_look_like_a_jws() {
        assert!(looks_like_jws("eyJh.eyJz.c2ln"));
        for value in [
            "00D1!abc.def.ghi",
            "a.b",
            "a.b.c.d",
            "a.b.c d",
            "a.b.c=",
            &format!("a.b.{}", "c".repeat(MAX_JWT_LEN)),
            // 258 dots: a count kept in one byte would wrap around to 2.
            &".".repeat(258),
        ] {
            assert!(!looks_like_jws(value), "{value}");
        }
        // A dot that ends one counting chunk and a dot in a later chunk are both counted.
        let edge = DOT_COUNT_CHUNK - 1;
        let across = format!(
            "{}.{}.{}",
            "a".repeat(edge),
            "b".repeat(300),
            "c".repeat(400)
        );
        assert!(looks_like_jws(&across));
        let third = format!("{}.{}.{}.d", "a".repeat(edge), "b", "c".repeat(400));
        assert!(!looks_like_jws(&third));
    }

    #[test]
    fn a_token_signed_by_a_key_verifies_under_its_public_half_only() {
        let server_key = ServerKey::generate(&SystemRandom);
        let key = SigningKey::generate(
            &server_key,
            &SystemRandom,
            SigningAlg::Rs256,
            Timestamp(0),
            Timestamp(0),
        )
        .unwrap();
        let other = SigningKey::generate(
            &server_key,
            &SystemRandom,
            SigningAlg::Rs256,
            Timestamp(0),
            Timestamp(0),
        )
        .unwrap();
        let claims = token(Timestamp(1_000)).claims(&server_key, &[1; RANDOM_BYTES]);
        let jws = key
            .open(&server_key)
            .unwrap()
            .sign_jws(TYP, &serde_json::to_vec(&claims).unwrap())
            .unwrap();
        assert!(looks_like_jws(&jws));
        assert_eq!(access_token_kid(&jws), Some(key.kid.clone()));
        let decoding = |k: &SigningKey| {
            let jwk = k.public_jwk(&server_key).unwrap();
            let (n, e) = jwk.rsa_components().unwrap();
            jsonwebtoken::DecodingKey::from_rsa_components(n, e).unwrap()
        };
        assert_eq!(verify(&jws, &decoding(&key)), Some(claims));
        assert_eq!(verify(&jws, &decoding(&other)), None);
        // An ID token (typ JWT) of the same key is no access token.
        let id_token = key.sign_jws(&server_key, &serde_json::json!({})).unwrap();
        assert_eq!(access_token_kid(&id_token), None);
    }
}
