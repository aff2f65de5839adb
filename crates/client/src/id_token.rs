//! The OpenID Connect ID token: its signature checked against the issuer's JWKS, its claims
//! against what this client sent and knows (OpenID Connect Core §3.1.3.7, and §12.2 for the ID
//! token a refresh returns).
//!
//! The JWKS is cached in memory and fetched again only when a token names a `kid` the cache
//! does not have (the issuer published a new key) or the cache is past its `max-age`: at most
//! one fetch per token, so a token with a made-up `kid` costs the issuer one request, not a
//! loop.

use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use tessera_proto::{ExposeSecret, IdToken};

use crate::oauth::get_json;

/// How far the issuer's clock may be from this client's estimate of it when `exp` and `iat` are
/// checked. The estimate comes from the `Date` header (one-second resolution) of the last token
/// response, and the token may have been signed by another node of the issuer's cluster, whose
/// clock differs from the one that answered; a minute is what `jsonwebtoken` allows by default.
pub const ID_TOKEN_LEEWAY: Duration = Duration::from_secs(60);

/// How long a JWKS is kept when its response does not say (no `Cache-Control: max-age`).
const DEFAULT_JWKS_LIFETIME: Duration = Duration::from_secs(3600);

/// The claims of a verified ID token that this client keeps and shows. Times are seconds since
/// the epoch, as in the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    /// Who logged in. At Salesforce and Tessera, the identity URL `<issuer>/id/<org>/<user>`.
    pub sub: String,
    /// The clients the token is meant for; a single string on the wire is read as one.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl IdTokenClaims {
    /// The user id: the last segment of a Salesforce-style identity URL (`…/id/<org>/<user>`),
    /// else the whole `sub`.
    pub fn user_id(&self) -> &str {
        match self.sub.rsplit_once("/id/") {
            Some((_, rest)) => rest.rsplit('/').next().unwrap_or(rest),
            None => &self.sub,
        }
    }

    /// The user as a person reads it: `Ada Lovelace <ada@example.com>`, falling back to the
    /// preferred username for the name; without an email, the preferred username alone (see
    /// below); the email alone without either; `None` when the token names no one but `sub`.
    pub fn display_name(&self) -> Option<String> {
        let present = |claim: &Option<String>| claim.clone().filter(|c| !c.is_empty());
        let username = present(&self.preferred_username);
        let name = present(&self.name).or(username.clone());
        match (name, present(&self.email)) {
            (Some(name), Some(email)) if name != email => Some(format!("{name} <{email}>")),
            (Some(name), Some(_)) => Some(name),
            // The username is what the user typed to log in, and tells two people of one name
            // apart where no email does; Tessera's `name` is only the username's local part, so
            // `cli` alone would hide `cli@example.com`.
            (Some(name), None) => Some(username.unwrap_or(name)),
            (None, email) => email,
        }
    }
}

/// Why an ID token was refused. At login this refuses the login; on a refresh the new access
/// and refresh tokens are kept and the previous ID token stays (see [`crate::TokenManager`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is not a compact JWS ({0})")]
    Malformed(String),
    /// `none`, an HMAC algorithm (whose "key" would be the public key anyone can read), or any
    /// other than RS256 and ES256.
    #[error("the ID token is signed with {alg:?}, which is not accepted (RS256 or ES256 only)")]
    Algorithm { alg: String },
    #[error("the ID token's header names no key (kid)")]
    MissingKeyId,
    #[error("the issuer's JWKS ({jwks_uri}) has no key {kid:?}, even fetched again")]
    UnknownKey { kid: String, jwks_uri: String },
    /// The JWK is of another type or algorithm than the token's header says.
    #[error("key {kid:?} is not a {alg} key ({why}): the header's alg does not match the key")]
    KeyMismatch {
        kid: String,
        alg: String,
        why: String,
    },
    #[error("the ID token's signature does not verify with key {kid:?}")]
    Signature { kid: String },
    #[error("the issuer's JWKS cannot be read from {jwks_uri}: {reason}")]
    Jwks { jwks_uri: String, reason: String },
    #[error("the ID token was issued by {found:?}, not by {expected:?} (a mix-up or a forgery)")]
    Issuer { expected: String, found: String },
    #[error("the ID token is meant for {aud:?}, not for the client {client_id:?}")]
    Audience { client_id: String, aud: Vec<String> },
    /// OpenID Connect Core §3.1.3.7: with several audiences, `azp` must name this client; when
    /// present at all, it must.
    #[error("the ID token's authorized party is {azp:?}, not the client {client_id:?}")]
    AuthorizedParty {
        client_id: String,
        azp: Option<String>,
    },
    #[error(
        "the ID token expired at {exp} (issuer's time now about {now}, seconds since the epoch)"
    )]
    Expired { exp: i64, now: i64 },
    #[error("the ID token was issued at {iat}, in the future (issuer's time now about {now})")]
    IssuedInFuture { iat: i64, now: i64 },
    /// The login sent a nonce, and the token carries another one or none: a token from another
    /// login, replayed.
    #[error("the ID token's nonce is {}, not the one this login sent (a replayed token)", if *.present { "another" } else { "missing" })]
    Nonce { present: bool },
    /// OpenID Connect Core §12.2: a refresh's ID token names the same user, client and
    /// authentication as the login's.
    #[error(
        "the refreshed ID token's {claim} differs from the login's (OpenID Connect Core §12.2)"
    )]
    Changed { claim: &'static str },
    #[error("the refreshed ID token was issued at {iat}, before the one it replaces ({previous})")]
    Older { iat: i64, previous: i64 },
}

/// What a token is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce the login sent, if any (a refresh sends none).
    pub nonce: Option<&'a str>,
    /// The login's (or the last refresh's) verified claims, for a refresh's token.
    pub previous: Option<&'a IdTokenClaims>,
    /// The issuer's time now, as this client estimates it (ms since the epoch).
    pub server_now_ms: i64,
}

/// The claims checks, on the claims of a token whose signature verified.
pub(crate) fn check_claims(
    claims: &IdTokenClaims,
    expected: &Expected<'_>,
) -> Result<(), IdTokenError> {
    if claims.iss.trim_end_matches('/') != expected.issuer.trim_end_matches('/') {
        return Err(IdTokenError::Issuer {
            expected: expected.issuer.to_owned(),
            found: claims.iss.clone(),
        });
    }
    if !claims.aud.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::Audience {
            client_id: expected.client_id.to_owned(),
            aud: claims.aud.clone(),
        });
    }
    let azp_required = claims.aud.len() > 1;
    if (azp_required || claims.azp.is_some()) && claims.azp.as_deref() != Some(expected.client_id) {
        return Err(IdTokenError::AuthorizedParty {
            client_id: expected.client_id.to_owned(),
            azp: claims.azp.clone(),
        });
    }
    let now = expected.server_now_ms.div_euclid(1000);
    let leeway = ID_TOKEN_LEEWAY.as_secs() as i64;
    if claims.exp.saturating_add(leeway) <= now {
        return Err(IdTokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iat.saturating_sub(leeway) > now {
        return Err(IdTokenError::IssuedInFuture {
            iat: claims.iat,
            now,
        });
    }
    if let Some(sent) = expected.nonce {
        // Not secret-dependent timing worth hiding: the nonce was in the browser's URL.
        if claims.nonce.as_deref() != Some(sent) {
            return Err(IdTokenError::Nonce {
                present: claims.nonce.is_some(),
            });
        }
    }
    if let Some(previous) = expected.previous {
        check_same_login(claims, previous)?;
    }
    Ok(())
}

/// OpenID Connect Core §12.2: `iss`, `sub`, `aud`, `azp` and (when present) `auth_time` as in
/// the ID token of the login; `iat` not earlier.
fn check_same_login(claims: &IdTokenClaims, previous: &IdTokenClaims) -> Result<(), IdTokenError> {
    let sorted = |aud: &[String]| {
        let mut aud = aud.to_vec();
        aud.sort();
        aud
    };
    let changed = if claims.iss != previous.iss {
        Some("iss")
    } else if claims.sub != previous.sub {
        Some("sub")
    } else if sorted(&claims.aud) != sorted(&previous.aud) {
        Some("aud")
    } else if claims.azp != previous.azp {
        Some("azp")
    } else if claims.auth_time.is_some() && claims.auth_time != previous.auth_time {
        Some("auth_time")
    } else {
        None
    };
    if let Some(claim) = changed {
        return Err(IdTokenError::Changed { claim });
    }
    if claims.iat < previous.iat {
        return Err(IdTokenError::Older {
            iat: claims.iat,
            previous: previous.iat,
        });
    }
    Ok(())
}

/// The header fields this client reads, taken from the token before anything else so that an
/// algorithm `jsonwebtoken` does not know (`none`) is refused by name.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn read_header(token: &str) -> Result<Header, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| IdTokenError::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| IdTokenError::Malformed(format!("the header is not a JOSE header: {e}")))
}

/// The algorithms accepted, by their header name.
fn accepted_algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

/// Why `jwk` cannot verify `alg`, if it cannot: an RS256 token needs an RSA key, an ES256 token
/// a P-256 key, and a key that names its own `alg` must name this one.
fn key_mismatch(jwk: &Jwk, alg: Algorithm) -> Option<String> {
    let key_alg = jwk.common.key_algorithm;
    let wanted = match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    };
    if let Some(key_alg) = key_alg.filter(|k| *k != wanted) {
        return Some(format!("the key is for {key_alg:?}"));
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => None,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            (ec.curve != EllipticCurve::P256).then(|| format!("the key is on {:?}", ec.curve))
        }
        (AlgorithmParameters::RSA(_), _) => Some("the key is RSA".into()),
        (AlgorithmParameters::EllipticCurve(_), _) => Some("the key is EC".into()),
        _ => Some("the key is neither RSA nor EC".into()),
    }
}

/// The signature of `token` checked with `jwk`; its claims, not yet checked.
fn verify_signature(
    token: &str,
    kid: &str,
    alg: Algorithm,
    jwk: &Jwk,
) -> Result<IdTokenClaims, IdTokenError> {
    if let Some(why) = key_mismatch(jwk, alg) {
        return Err(IdTokenError::KeyMismatch {
            kid: kid.to_owned(),
            alg: format!("{alg:?}"),
            why,
        });
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| IdTokenError::KeyMismatch {
        kid: kid.to_owned(),
        alg: format!("{alg:?}"),
        why: format!("unusable key: {e}"),
    })?;
    // The claims are checked by `check_claims`, against the injected clock and with errors
    // that say which claim failed; jsonwebtoken checks the signature and the algorithm only.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<IdTokenClaims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => Err(IdTokenError::Malformed(format!(
                "the claims are not an ID token's: {e}"
            ))),
            _ => Err(IdTokenError::Signature {
                kid: kid.to_owned(),
            }),
        },
    }
}

/// The keys of one JWKS, and until when (local clock, ms) they may be used without asking
/// again.
#[derive(Debug, Clone)]
struct CachedKeys {
    jwks_uri: String,
    keys: Vec<Jwk>,
    fresh_until_ms: i64,
}

impl CachedKeys {
    fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
    }
}

/// The issuer's JWKS, cached in memory (one per token manager).
#[derive(Debug, Default)]
pub(crate) struct JwksCache {
    cached: Mutex<Option<CachedKeys>>,
}

impl JwksCache {
    fn cached(&self) -> std::sync::MutexGuard<'_, Option<CachedKeys>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key `kid` of the JWKS at `jwks_uri`: from the cache when it is fresh and has it,
    /// else from one fetch.
    async fn key(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        kid: &str,
        local_now_ms: i64,
    ) -> Result<Jwk, IdTokenError> {
        let hit = self
            .cached()
            .as_ref()
            .filter(|c| c.jwks_uri == jwks_uri && c.fresh_until_ms > local_now_ms)
            .and_then(|c| c.find(kid).cloned());
        if let Some(jwk) = hit {
            return Ok(jwk);
        }
        tracing::debug!(jwks_uri, kid, "fetching the JWKS");
        let fetched = fetch(http, jwks_uri, local_now_ms).await?;
        let found = fetched.find(kid).cloned();
        *self.cached() = Some(fetched);
        found.ok_or_else(|| IdTokenError::UnknownKey {
            kid: kid.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
        })
    }

    /// `token` verified: algorithm, key, signature, then claims.
    pub(crate) async fn verify(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        token: &IdToken,
        expected: &Expected<'_>,
        local_now_ms: i64,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let token = token.expose_secret();
        let header = read_header(token)?;
        let alg = accepted_algorithm(&header.alg).ok_or(IdTokenError::Algorithm {
            alg: header.alg.clone(),
        })?;
        let kid = header.kid.ok_or(IdTokenError::MissingKeyId)?;
        let jwk = self.key(http, jwks_uri, &kid, local_now_ms).await?;
        let claims = verify_signature(token, &kid, alg, &jwk)?;
        check_claims(&claims, expected)?;
        Ok(claims)
    }
}

/// `max-age` of a `Cache-Control` header, if it has one.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().parse().ok().map(Duration::from_secs))?
    })
}

async fn fetch(
    http: &reqwest::Client,
    jwks_uri: &str,
    local_now_ms: i64,
) -> Result<CachedKeys, IdTokenError> {
    let failed = |reason: String| IdTokenError::Jwks {
        jwks_uri: jwks_uri.to_owned(),
        reason,
    };
    let response = get_json(http, jwks_uri)
        .send()
        .await
        .map_err(|e| failed(format!("no answer: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("it answered {status}")));
    }
    let lifetime = max_age(response.headers()).unwrap_or(DEFAULT_JWKS_LIFETIME);
    let body = response
        .bytes()
        .await
        .map_err(|e| failed(format!("the answer broke off: {e}")))?;
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set =
        serde_json::from_slice(&body).map_err(|e| failed(format!("not a JWK set: {e}")))?;
    // Keys of a type this client does not read (another issuer's encryption key, a new kty)
    // are skipped, not a reason to refuse the whole set.
    let keys = set
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
        .collect();
    Ok(CachedKeys {
        jwks_uri: jwks_uri.to_owned(),
        keys,
        fresh_until_ms: local_now_ms
            .saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_S: i64 = 1_800_000_000;

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://login.example.test".into(),
            sub: "https://login.example.test/id/00D000000000001/005000000000001".into(),
            aud: vec!["3MVG9client".into()],
            azp: None,
            iat: NOW_S,
            exp: NOW_S + 300,
            auth_time: Some(NOW_S - 10),
            nonce: Some("n-0S6_WzA2Mj".into()),
            name: Some("Ada Lovelace".into()),
            given_name: None,
            family_name: None,
            preferred_username: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
        }
    }

    fn expected(nonce: Option<&'static str>) -> Expected<'static> {
        Expected {
            issuer: "https://login.example.test/",
            client_id: "3MVG9client",
            nonce,
            previous: None,
            server_now_ms: NOW_S * 1000,
        }
    }

    #[test]
    fn a_token_for_this_client_from_this_issuer_passes() {
        assert_eq!(
            check_claims(&claims(), &expected(Some("n-0S6_WzA2Mj"))),
            Ok(())
        );
    }

    #[test]
    fn the_issuer_and_the_audience_must_be_this_clients() {
        let other_issuer = IdTokenClaims {
            iss: "https://evil.example.test".into(),
            ..claims()
        };
        assert!(matches!(
            check_claims(&other_issuer, &expected(None)),
            Err(IdTokenError::Issuer { .. })
        ));
        let other_client = IdTokenClaims {
            aud: vec!["someone-else".into()],
            ..claims()
        };
        assert!(matches!(
            check_claims(&other_client, &expected(None)),
            Err(IdTokenError::Audience { .. })
        ));
    }

    #[test]
    fn several_audiences_need_azp_naming_this_client() {
        let several = IdTokenClaims {
            aud: vec!["3MVG9client".into(), "https://api.example.test".into()],
            ..claims()
        };
        assert!(matches!(
            check_claims(&several, &expected(None)),
            Err(IdTokenError::AuthorizedParty { azp: None, .. })
        ));
        let with_azp = IdTokenClaims {
            azp: Some("3MVG9client".into()),
            ..several.clone()
        };
        assert_eq!(check_claims(&with_azp, &expected(None)), Ok(()));
        let other_azp = IdTokenClaims {
            azp: Some("another".into()),
            ..several
        };
        assert!(check_claims(&other_azp, &expected(None)).is_err());
    }

    #[test]
    fn expiry_and_issue_time_allow_a_minute_of_skew_and_no_more() {
        let leeway = ID_TOKEN_LEEWAY.as_secs() as i64;
        let just_expired = IdTokenClaims {
            exp: NOW_S - leeway + 1,
            ..claims()
        };
        assert_eq!(check_claims(&just_expired, &expected(None)), Ok(()));
        let expired = IdTokenClaims {
            exp: NOW_S - leeway,
            ..claims()
        };
        assert!(matches!(
            check_claims(&expired, &expected(None)),
            Err(IdTokenError::Expired { .. })
        ));
        let soon = IdTokenClaims {
            iat: NOW_S + leeway,
            ..claims()
        };
        assert_eq!(check_claims(&soon, &expected(None)), Ok(()));
        let future = IdTokenClaims {
            iat: NOW_S + leeway + 1,
            ..claims()
        };
        assert!(matches!(
            check_claims(&future, &expected(None)),
            Err(IdTokenError::IssuedInFuture { .. })
        ));
    }

    #[test]
    fn a_nonce_sent_must_come_back_unchanged() {
        assert_eq!(
            check_claims(&claims(), &expected(Some("another"))),
            Err(IdTokenError::Nonce { present: true })
        );
        let without = IdTokenClaims {
            nonce: None,
            ..claims()
        };
        assert_eq!(
            check_claims(&without, &expected(Some("n-0S6_WzA2Mj"))),
            Err(IdTokenError::Nonce { present: false })
        );
        // A refresh sends none: a token without one, or with the login's echoed, passes.
        assert_eq!(check_claims(&without, &expected(None)), Ok(()));
    }

    #[test]
    fn a_refreshed_token_names_the_same_login_and_is_not_older() {
        let login = claims();
        let refreshed = IdTokenClaims {
            iat: NOW_S + 60,
            exp: NOW_S + 360,
            nonce: None,
            ..claims()
        };
        let on_refresh = |c: &IdTokenClaims| {
            check_claims(
                c,
                &Expected {
                    previous: Some(&login),
                    server_now_ms: (NOW_S + 60) * 1000,
                    ..expected(None)
                },
            )
        };
        assert_eq!(on_refresh(&refreshed), Ok(()));
        let cases: [(&str, IdTokenClaims); 4] = [
            (
                "sub",
                IdTokenClaims {
                    sub: "https://login.example.test/id/00D000000000001/005000000000002".into(),
                    ..refreshed.clone()
                },
            ),
            (
                "aud",
                IdTokenClaims {
                    aud: vec!["3MVG9client".into(), "extra".into()],
                    azp: Some("3MVG9client".into()),
                    ..refreshed.clone()
                },
            ),
            (
                "azp",
                IdTokenClaims {
                    azp: Some("3MVG9client".into()),
                    ..refreshed.clone()
                },
            ),
            (
                "auth_time",
                IdTokenClaims {
                    auth_time: Some(NOW_S + 50),
                    ..refreshed.clone()
                },
            ),
        ];
        for (claim, changed) in cases {
            assert_eq!(
                on_refresh(&changed),
                Err(IdTokenError::Changed { claim }),
                "{claim}"
            );
        }
        let older = IdTokenClaims {
            iat: NOW_S - 1,
            ..refreshed.clone()
        };
        assert!(matches!(
            on_refresh(&older),
            Err(IdTokenError::Older { .. })
        ));
        // Without auth_time in the refreshed token there is nothing to compare.
        let no_auth_time = IdTokenClaims {
            auth_time: None,
            ..refreshed
        };
        assert_eq!(on_refresh(&no_auth_time), Ok(()));
    }

    #[test]
    fn the_header_is_read_before_any_key_so_none_is_refused_by_name() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let read = read_header(&format!("{header}.{payload}.")).unwrap();
        assert_eq!(read.alg, "none");
        assert!(accepted_algorithm(&read.alg).is_none());
        for alg in ["HS256", "RS512", "PS256", "EdDSA"] {
            assert!(accepted_algorithm(alg).is_none(), "{alg}");
        }
        assert!(matches!(
            read_header("only.two"),
            Err(IdTokenError::Malformed(_))
        ));
    }

    #[test]
    fn the_user_is_named_from_the_standard_claims() {
        let c = claims();
        assert_eq!(c.user_id(), "005000000000001");
        assert_eq!(
            c.display_name().as_deref(),
            Some("Ada Lovelace <ada@example.com>")
        );
        let without_email = IdTokenClaims {
            name: Some("cli".into()),
            preferred_username: Some("cli@example.com".into()),
            email: None,
            ..c.clone()
        };
        assert_eq!(
            without_email.display_name().as_deref(),
            Some("cli@example.com")
        );
        let name_only = IdTokenClaims {
            preferred_username: None,
            ..without_email
        };
        assert_eq!(name_only.display_name().as_deref(), Some("cli"));
        let bare = IdTokenClaims {
            name: None,
            preferred_username: None,
            email: None,
            sub: "opaque-subject".into(),
            ..c
        };
        assert_eq!(bare.user_id(), "opaque-subject");
        assert_eq!(bare.display_name(), None);
    }

    #[test]
    fn a_single_audience_string_reads_as_a_list() {
        let json = serde_json::json!({
            "iss": "i", "sub": "s", "aud": "c", "iat": 1, "exp": 2
        });
        let c: IdTokenClaims = serde_json::from_value(json).unwrap();
        assert_eq!(c.aud, ["c"]);
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=86400".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(86_400)));
        headers.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }
}
