//! The browser side of the authorization endpoint: a signed session cookie after login, and a
//! double-submit CSRF token for the login and consent forms (RFC 6749 §10.12).

use axum::http::{header, HeaderMap, HeaderValue};
use tessera_core::crypto::ServerKey;
use tessera_core::time::Timestamp;

const SESSION_COOKIE: &str = "tessera_sid";
const CSRF_COOKIE: &str = "tessera_csrf";
/// How long a login lasts in the browser.
pub const SESSION_TTL_SECS: u64 = 2 * 3600;

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The logged-in user id from a valid, unexpired session cookie.
pub fn session_user(headers: &HeaderMap, key: &ServerKey, now: Timestamp) -> Option<String> {
    let value = cookie(headers, SESSION_COOKIE)?;
    let mut parts = value.splitn(3, '.');
    let (user_id, expires, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let tag = hex::decode(tag).ok()?;
    let message = format!("{user_id}.{expires}");
    if !key.verify_mac("session", message.as_bytes(), &tag) {
        return None;
    }
    (now.millis() < expires.parse::<i64>().ok()?).then(|| user_id.to_owned())
}

pub fn session_cookie(user_id: &str, key: &ServerKey, now: Timestamp, secure: bool) -> HeaderValue {
    let expires = now.plus_secs(SESSION_TTL_SECS).millis();
    let message = format!("{user_id}.{expires}");
    let tag = hex::encode(key.mac("session", message.as_bytes()));
    set_cookie(
        SESSION_COOKIE,
        &format!("{message}.{tag}"),
        Some(SESSION_TTL_SECS),
        secure,
    )
}

/// The CSRF pair for a form: the browser's CSRF cookie (a new one when it has none, to be set
/// with the page) and the token the form must echo, a MAC of the cookie.
pub struct Csrf {
    pub token: String,
    pub new_cookie: Option<HeaderValue>,
}

pub fn csrf_for_form(
    headers: &HeaderMap,
    key: &ServerKey,
    fresh: impl FnOnce() -> String,
    secure: bool,
) -> Csrf {
    let (value, new_cookie) = match cookie(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(v) => (v, None),
        None => {
            let v = fresh();
            let c = set_cookie(CSRF_COOKIE, &v, None, secure);
            (v, Some(c))
        }
    };
    Csrf {
        token: hex::encode(key.mac("csrf", value.as_bytes())),
        new_cookie,
    }
}

/// Whether a form's CSRF token matches the browser's CSRF cookie.
pub fn csrf_valid(headers: &HeaderMap, key: &ServerKey, token: Option<&str>) -> bool {
    let (Some(value), Some(token)) = (cookie(headers, CSRF_COOKIE), token) else {
        return false;
    };
    hex::decode(token).is_ok_and(|tag| key.verify_mac("csrf", value.as_bytes(), &tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::time::OsRandom;

    fn with_cookie(c: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
        h.insert(header::COOKIE, pair.parse().unwrap());
        h
    }

    #[test]
    fn session_cookies_verify_and_expire() {
        let key = ServerKey::generate(&OsRandom);
        let c = session_cookie("005abc", &key, Timestamp(0), false);
        let h = with_cookie(&c);
        assert_eq!(
            session_user(&h, &key, Timestamp(1000)).as_deref(),
            Some("005abc")
        );
        assert_eq!(
            session_user(&h, &key, Timestamp(SESSION_TTL_SECS as i64 * 1000)),
            None
        );
        let other = ServerKey::generate(&OsRandom);
        assert_eq!(session_user(&h, &other, Timestamp(1000)), None);
    }

    #[test]
    fn csrf_token_must_match_the_cookie() {
        let key = ServerKey::generate(&OsRandom);
        let csrf = csrf_for_form(&HeaderMap::new(), &key, || "a".repeat(40), false);
        let h = with_cookie(csrf.new_cookie.as_ref().unwrap());
        assert!(csrf_valid(&h, &key, Some(&csrf.token)));
        assert!(!csrf_valid(&h, &key, Some("00")));
        assert!(!csrf_valid(&h, &key, None));
        assert!(!csrf_valid(&HeaderMap::new(), &key, Some(&csrf.token)));
    }
}
