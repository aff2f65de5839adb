//! Request parameters as RFC 6749 §3.1/§3.2 reads them: a parameter sent without a value is
//! treated as omitted, and a parameter must not be sent more than once.

/// Parameters decoded from a query string or a form body, in order, repeats kept.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// A parameter was sent more than once; carries its name (a parameter name, not a value, so it
/// may be named in an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedParameter(pub String);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Decodes `application/x-www-form-urlencoded` text. `None` when it is not valid: a bad
    /// percent-escape or bytes that are not UTF-8 once decoded.
    pub fn parse_urlencoded(text: &str) -> Option<Self> {
        let mut pairs = Vec::new();
        for piece in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((decode_component(name)?, decode_component(value)?));
        }
        Some(Self(pairs))
    }

    /// The value of a parameter sent at most once; an empty value counts as absent.
    pub fn single(&self, name: &str) -> Result<Option<&str>, RepeatedParameter> {
        let mut found = None;
        for (key, value) in &self.0 {
            if key == name && !value.is_empty() {
                if found.is_some() {
                    return Err(RepeatedParameter(name.to_owned()));
                }
                found = Some(value.as_str());
            }
        }
        Ok(found)
    }

    /// The first parameter name sent more than once with a value, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(i, (key, value))| {
            let repeated = !value.is_empty()
                && self.0[i + 1..]
                    .iter()
                    .any(|(k, v)| k == key && !v.is_empty());
            repeated.then_some(key.as_str())
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Appends the pairs of `other` (query parameters of a POST after its body parameters).
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }
}

/// Strict percent-decoding of one component, with `+` as space (HTML form encoding).
pub fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse_urlencoded("client_secret=&grant_type=refresh_token").unwrap();
        assert_eq!(p.single("client_secret"), Ok(None));
        assert_eq!(p.single("grant_type"), Ok(Some("refresh_token")));
    }

    #[test]
    fn repeats_are_reported() {
        let p = Params::parse_urlencoded("a=1&b=2&a=3").unwrap();
        assert_eq!(p.single("a"), Err(RepeatedParameter("a".into())));
        assert_eq!(p.first_repeated(), Some("a"));
        assert_eq!(
            Params::parse_urlencoded("a=1&a=").unwrap().first_repeated(),
            None
        );
    }

    #[test]
    fn bad_escapes_and_invalid_utf8_are_rejected() {
        for bad in ["a=%ZZ", "a=%", "a=%4", "a=%C0%AF", "a=%FF"] {
            assert!(Params::parse_urlencoded(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn plus_is_space_and_escapes_decode() {
        let p = Params::parse_urlencoded("scope=api+web&x=a%2Bb%3D").unwrap();
        assert_eq!(p.single("scope"), Ok(Some("api web")));
        assert_eq!(p.single("x"), Ok(Some("a+b=")));
    }
}
