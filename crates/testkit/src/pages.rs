//! What a client puts on the wire and reads off the server's pages: form bodies, Basic
//! credentials, PKCE pairs, hidden fields and URL parameters.

use base64::Engine;
use sha2::Digest;

/// `application/x-www-form-urlencoded` of `pairs`, in order.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// An `Authorization: Basic` value, each half form-encoded first (RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce(verifier: &str) -> (String, String) {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier.to_owned(), challenge)
}

/// The value of a hidden input in one of the server's pages.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A query parameter (or fragment parameter) of a URL.
pub fn url_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once(['?', '#'])?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorization code a redirect back to the client carries.
pub fn code_in(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"))
}
