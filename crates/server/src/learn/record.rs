//! One HTTP exchange of the playground's client with this server, sent through the server's own
//! router in process and written down both ways — with every secret cut to its last characters,
//! so that what the page shows (and keeps) is never a usable token.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use tessera_client::DpopKey;
use tessera_proto::dpop::{DPOP_HEADER, DPOP_SCHEME};
use tower::ServiceExt;

use crate::AppState;

/// Characters of a secret the page shows: enough to tell two tokens apart, far too few to use.
const SHOWN_TAIL: usize = 6;

/// Form fields and JSON members whose values are secrets.
const SECRET_FIELDS: [&str; 7] = [
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "client_secret",
    "code_verifier",
    "token",
];

/// Response headers worth showing.
const SHOWN_RESPONSE_HEADERS: [&str; 5] = [
    "content-type",
    "cache-control",
    "location",
    "www-authenticate",
    "dpop-nonce",
];

/// Characters of a DPoP proof the page shows: its header's start, enough to see it is one.
const SHOWN_PROOF_HEAD: usize = 24;

/// A DPoP proof as the page shows it: not a secret (it is good for one request only), but long;
/// its start, and the key it proves by its thumbprint, shortened.
pub(crate) fn shown_proof(proof: &str, key: &DpopKey) -> String {
    let head: String = proof.chars().take(SHOWN_PROOF_HEAD).collect();
    format!("{head}…(proof for key {})", shorten(&key.thumbprint()))
}

/// A secret as the page shows it: `…` and its last characters.
pub(crate) fn shorten(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(SHOWN_TAIL)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// One request and its answer, as the page shows them.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// `POST /services/oauth2/token`
    pub request_line: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status: StatusCode,
    pub response_headers: Vec<(String, String)>,
    /// Pretty JSON, or text, secrets shortened.
    pub response_body: Option<String>,
    /// The claims of an ID token in the answer, decoded (not verified: for reading).
    pub id_token_claims: Option<String>,
}

/// What a sent request gave back: the record, and the answer's JSON with its secrets whole,
/// for the playground's client to keep.
#[derive(Debug)]
pub(crate) struct Sent {
    pub exchange: Exchange,
    pub json: Option<Value>,
}

/// A form body with its secret fields' values shortened, still in form encoding.
fn shown_form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if SECRET_FIELDS.contains(name) {
            form.append_pair(name, &shorten(value));
        } else {
            form.append_pair(name, value);
        }
    }
    // The shortened values' ellipsis is easier to read unescaped.
    form.finish().replace("%E2%80%A6", "…")
}

/// A URL's query with its secret parameters shortened.
pub(crate) fn shown_query(query: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    shown_form(&borrowed)
}

/// JSON with its secret members' values shortened, pretty-printed.
fn shown_json(value: &Value) -> String {
    let mut shown = value.clone();
    if let Some(object) = shown.as_object_mut() {
        for (name, member) in object.iter_mut() {
            if let (true, Some(text)) = (SECRET_FIELDS.contains(&name.as_str()), member.as_str()) {
                *member = Value::String(shorten(text));
            }
        }
    }
    serde_json::to_string_pretty(&shown).unwrap_or_default()
}

/// The payload of a JWT, pretty-printed, without checking anything: the page shows what a
/// client would read after verifying it.
fn jwt_claims(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::to_string_pretty(&claims).ok()
}

/// What a request is: its method and path, an access token, a form, and the DPoP key whose
/// proof it carries (then the access token goes with the `DPoP` scheme, as RFC 9449 §7.1 says).
pub(crate) struct Outgoing<'a> {
    pub method: Method,
    pub path: String,
    pub bearer: Option<&'a str>,
    pub form: Option<Vec<(&'a str, &'a str)>>,
    pub dpop: Option<&'a DpopKey>,
}

/// A fresh proof of `key` for `outgoing`, at the URL this server's proofs must name (the
/// issuer and the path), with the access token's hash when it carries one.
fn proof_for(state: &AppState, outgoing: &Outgoing<'_>, key: &DpopKey) -> Option<String> {
    let url = format!("{}{}", state.authority.config().issuer, outgoing.path);
    let now_secs = state
        .authority
        .operator()
        .playground_now()
        .millis()
        .div_euclid(1000);
    key.proof(
        outgoing.method.as_str(),
        &url,
        outgoing.bearer,
        None,
        now_secs,
    )
    .ok()
}

/// Sends `outgoing` through the application's own router, as from `peer` (the learner's
/// address, so that the throttles count the learner's mistakes against the learner alone), and
/// records both sides.
pub(crate) async fn send(state: &AppState, peer: Option<IpAddr>, outgoing: Outgoing<'_>) -> Sent {
    let mut builder = Request::builder()
        .method(outgoing.method.clone())
        .uri(&outgoing.path);
    let mut request_headers = Vec::new();
    let mut request_body = None;
    let proof = outgoing
        .dpop
        .and_then(|key| Some((proof_for(state, &outgoing, key)?, key)));
    if let Some(token) = outgoing.bearer {
        let scheme = if proof.is_some() {
            DPOP_SCHEME
        } else {
            "Bearer"
        };
        builder = builder.header(header::AUTHORIZATION, format!("{scheme} {token}"));
        request_headers.push((
            "Authorization".to_owned(),
            format!("{scheme} {}", shorten(token)),
        ));
    }
    if let Some((proof, key)) = &proof {
        builder = builder.header(DPOP_HEADER, proof.as_str());
        request_headers.push(("DPoP".to_owned(), shown_proof(proof, key)));
    }
    let body = match &outgoing.form {
        Some(pairs) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                form.append_pair(name, value);
            }
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            request_headers.insert(
                0,
                (
                    "Content-Type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                ),
            );
            request_body = Some(shown_form(pairs));
            Body::from(form.finish())
        }
        None => Body::empty(),
    };
    if let Some(address) = peer {
        builder = builder.extension(ConnectInfo(SocketAddr::new(address, 0)));
    }
    let request_line = format!("{} {}", outgoing.method, outgoing.path);
    let answer = match builder.body(body) {
        Ok(request) => crate::app(state.clone()).oneshot(request).await.ok(),
        Err(_) => None,
    };
    let Some(response) = answer else {
        return Sent {
            exchange: Exchange {
                request_line,
                request_headers,
                request_body,
                status: StatusCode::INTERNAL_SERVER_ERROR,
                response_headers: Vec::new(),
                response_body: None,
                id_token_claims: None,
            },
            json: None,
        };
    };
    let status = response.status();
    let response_headers = shown_headers(response.headers());
    let bytes = axum::body::to_bytes(response.into_body(), crate::MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let response_body = match &json {
        Some(value) => Some(shown_json(value)),
        None if bytes.is_empty() => None,
        None => Some(String::from_utf8_lossy(&bytes).into_owned()),
    };
    let id_token_claims = json
        .as_ref()
        .and_then(|v| v["id_token"].as_str())
        .and_then(jwt_claims);
    Sent {
        exchange: Exchange {
            request_line,
            request_headers,
            request_body,
            status,
            response_headers,
            response_body,
            id_token_claims,
        },
        json,
    }
}

fn shown_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    SHOWN_RESPONSE_HEADERS
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_by_its_last_characters_only() {
        assert_eq!(shorten("5Aep861abcdefa1b2c3"), "…a1b2c3");
        assert_eq!(shorten("abc"), "…abc");
    }

    #[test]
    fn secret_fields_of_a_form_and_of_json_are_shortened_and_the_others_kept() {
        let form = shown_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "5Aep861SECRETSECRETzz9999"),
            ("client_id", "3MVGplayground"),
        ]);
        assert_eq!(
            form,
            "grant_type=refresh_token&refresh_token=…zz9999&client_id=3MVGplayground"
        );
        let json = shown_json(&serde_json::json!({
            "access_token": "00Dxx!SECRETSECRET123456",
            "token_type": "Bearer"
        }));
        assert!(json.contains("…123456"), "{json}");
        assert!(!json.contains("SECRET"), "{json}");
        assert!(json.contains("Bearer"), "{json}");
    }

    #[test]
    fn a_dpop_proof_is_shown_by_its_start_and_its_keys_thumbprint() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "POST",
                "https://example.test/token",
                None,
                None,
                1_800_000_000,
            )
            .unwrap();
        let shown = shown_proof(&proof, &key);
        let head: String = proof.chars().take(SHOWN_PROOF_HEAD).collect();
        assert!(shown.starts_with(&head), "{shown}");
        assert!(shown.ends_with(&format!("(proof for key {})", shorten(&key.thumbprint()))));
        assert!(shown.len() < proof.len() / 2, "{shown}");
    }

    #[test]
    fn an_id_tokens_claims_are_decoded_for_reading() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"005x","aud":"3MVG"}"#);
        let claims = jwt_claims(&format!("e30.{payload}.sig")).unwrap();
        assert!(claims.contains("\"sub\": \"005x\""), "{claims}");
    }
}
