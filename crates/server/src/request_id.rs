//! The id that ties together every log line of one request: the client's `X-Request-Id` when
//! it sent a sane one (a proxy or a caller correlating its own logs with ours), otherwise one
//! we make up. It is echoed on the response, so a caller can quote it when reporting a problem.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The request and response header that carries the id.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen id we adopt; a UUID is 36 characters. A longer one was made up to
/// grow our log lines, and is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id: printable, short, and made only of characters that need no quoting in a log
/// line or a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(String);

impl RequestId {
    /// The client's id if it sent exactly one sane `X-Request-Id`, else a new random one.
    pub(crate) fn of_request(headers: &HeaderMap) -> Self {
        let mut sent = headers.get_all(&REQUEST_ID_HEADER).iter();
        match (sent.next(), sent.next()) {
            (Some(value), None) => value
                .to_str()
                .ok()
                .filter(|id| is_sane(id))
                .map_or_else(Self::generate, |id| Self(id.to_owned())),
            _ => Self::generate(),
        }
    }

    /// 128 random bits in hex: unique without coordination between server nodes.
    fn generate() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a response header value.
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }
}

/// Not empty, not too long, and only letters, digits and `-_.:` (UUIDs, hex, ULIDs, and the
/// dotted ids of tracing systems), so that it cannot forge or break a log line.
fn is_sane(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ids(ids: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for id in ids {
            headers.append(&REQUEST_ID_HEADER, HeaderValue::from_str(id).unwrap());
        }
        headers
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(RequestId::of_request(&with_ids(&[uuid])).as_str(), uuid);
    }

    #[test]
    fn a_missing_odd_or_repeated_id_is_replaced_by_a_random_one() {
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for ids in [
            &[][..],
            &[""],
            &["has space"],
            &["quote\"d"],
            &[long.as_str()],
            &["one", "two"],
        ] {
            let id = RequestId::of_request(&with_ids(ids));
            assert_eq!(id.as_str().len(), 32, "{ids:?}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(
            RequestId::of_request(&HeaderMap::new()),
            RequestId::of_request(&HeaderMap::new())
        );
    }
}
