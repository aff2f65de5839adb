//! Request parameters as RFC 6749 §3.1/§3.2 reads them: a parameter sent without a value is
//! treated as omitted, and a parameter must not be sent more than once.
//!
//! Decoding is `application/x-www-form-urlencoded` by the `form_urlencoded` crate, made strict
//! first: the WHATWG parser it implements passes a bad percent-escape through and replaces
//! invalid UTF-8, where an OAuth server must refuse the request (`invalid_request`).

use std::borrow::Cow;

/// Parameters decoded from a query string or a form body, in order. Repeats are kept, and the
/// names sent more than once are found once, at decoding, for the edge to refuse.
#[derive(Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Names sent more than once with a value, in the order their repeat was seen.
    repeated: Vec<String>,
}

/// The text is not valid form encoding: a bad percent-escape, or bytes that are not UTF-8 once
/// decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedForm;

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text strictly.
    pub fn parse(text: &str) -> Result<Self, MalformedForm> {
        check_strict(text)?;
        let pairs = form_urlencoded::parse(text.as_bytes())
            .filter(|(name, value)| !(name.is_empty() && value.is_empty()))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Ok(Self::from_pairs(pairs))
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut seen: Vec<&str> = Vec::new();
        let mut repeated: Vec<String> = Vec::new();
        for (name, value) in &pairs {
            if value.is_empty() {
                continue;
            }
            if seen.contains(&name.as_str()) {
                if !repeated.contains(name) {
                    repeated.push(name.clone());
                }
            } else {
                seen.push(name);
            }
        }
        Self { pairs, repeated }
    }

    /// The value of a parameter; an empty value counts as absent. When the parameter was
    /// repeated, the first value (the edge refuses repeats before anyone reads them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// The first parameter name sent more than once with a value, if any.
    pub fn repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }

    /// Whether this parameter was sent more than once with a value.
    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// Whether the parameter was sent with a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Appends the pairs of `other` (query parameters of a POST after its body parameters);
    /// a name in both counts as repeated.
    pub fn extend(&mut self, other: Params) {
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.extend(other.pairs);
        *self = Self::from_pairs(pairs);
    }
}

/// Names only: values are credentials as often as not (secrets, tokens, codes, passwords).
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Every `%` starts a two-hex-digit escape, and the decoded bytes are UTF-8. Decoding the text
/// whole is enough for the second: the separators are ASCII, which cannot fall inside a valid
/// multi-byte character, so the whole is UTF-8 exactly when every part is.
fn check_strict(text: &str) -> Result<(), MalformedForm> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        {
            return Err(MalformedForm);
        }
    }
    match percent_encoding::percent_decode(bytes).decode_utf8() {
        Ok(_) => Ok(()),
        Err(_) => Err(MalformedForm),
    }
}

/// Strict form-decoding of one component, with `+` as space: the halves of an HTTP Basic
/// credential (RFC 6749 §2.3.1, Appendix B).
pub fn decode_component(text: &str) -> Result<String, MalformedForm> {
    check_strict(text)?;
    let spaced: Cow<'_, str> = if text.contains('+') {
        Cow::Owned(text.replace('+', " "))
    } else {
        Cow::Borrowed(text)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| MalformedForm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse("client_secret=&grant_type=refresh_token").unwrap();
        assert_eq!(p.get("client_secret"), None);
        assert_eq!(p.get("grant_type"), Some("refresh_token"));
    }

    #[test]
    fn repeats_are_found_once_at_decoding() {
        let p = Params::parse("a=1&b=2&a=3&b=4").unwrap();
        assert_eq!(p.repeated(), Some("a"));
        assert!(p.is_repeated("b"));
        assert!(!Params::parse("a=1&a=").unwrap().is_repeated("a"));
        let mut body = Params::parse("token=x").unwrap();
        body.extend(Params::parse("token=y").unwrap());
        assert_eq!(body.repeated(), Some("token"));
    }

    #[test]
    fn bad_escapes_and_invalid_utf8_are_rejected() {
        for bad in ["a=%ZZ", "a=%", "a=%4", "a=%C0%AF", "a=%FF", "%E2%82=x"] {
            assert_eq!(Params::parse(bad).unwrap_err(), MalformedForm, "{bad}");
        }
        assert_eq!(decode_component("%%%%").unwrap_err(), MalformedForm);
    }

    #[test]
    fn plus_is_space_and_escapes_decode() {
        let p = Params::parse("scope=api+web&x=a%2Bb%3D&y=%E2%82%AC").unwrap();
        assert_eq!(p.get("scope"), Some("api web"));
        assert_eq!(p.get("x"), Some("a+b="));
        assert_eq!(p.get("y"), Some("€"));
        assert_eq!(decode_component("p%2Bss+word").unwrap(), "p+ss word");
    }

    #[test]
    fn debug_shows_names_never_values() {
        let p = Params::parse("client_secret=s3cr3t&refresh_token=rt&password=pw").unwrap();
        let shown = format!("{p:?}");
        assert_eq!(shown, r#"["client_secret", "refresh_token", "password"]"#);
    }
}
