//! The OpenID Connect standard claims of a user (OpenID Connect Core §5.1): what userinfo
//! answers and what an ID token carries for a client that asks for them. One source, so that
//! the two never disagree about a user (docs/openid-connect.md, "Userinfo").

use serde_json::{Map, Value};

use crate::model::User;
use crate::time::format_rfc3339_utc;

/// The time zone of every user, as a tz database name: Tessera stores none, and reports UTC
/// rather than guess one.
pub const ZONEINFO: &str = "GMT";
/// The locale (and language) of every user, written as Salesforce writes it (`en_US`, not
/// BCP 47's `en-US`): Tessera stores none, and these are Salesforce's defaults.
pub const LOCALE: &str = "en_US";

/// A user's identity URL, `<issuer>/id/<org id>/<user id>`: Salesforce's `sub` in userinfo and
/// in ID tokens, and the `id` of a token response.
pub fn identity_url(issuer: &str, org_id: &str, user_id: &str) -> String {
    format!("{issuer}/id/{org_id}/{user_id}")
}

/// The name Tessera shows for a user: it stores no first or last name, so the part of the
/// username before `@` stands for the whole name, the nickname and the family name (Salesforce
/// always has a last name).
pub fn display_name(user: &User) -> &str {
    user.username.split('@').next().unwrap_or(&user.username)
}

/// The standard claims Tessera can state about `user`. A claim it knows nothing of (given name,
/// picture, phone, address) is left out rather than sent as `null` (OpenID Connect Core §5.3.2);
/// userinfo fills Salesforce's keys that are missing here with `null` itself. `updated_at` is
/// Salesforce's RFC 3339 string, not §5.1's number, and is the user's creation time: no
/// change to a user is dated.
pub fn standard_claims(issuer: &str, user: &User) -> Map<String, Value> {
    let name = display_name(user);
    let text = |value: &str| Value::String(value.to_owned());
    let mut claims = Map::new();
    claims.insert(
        "sub".to_owned(),
        text(&identity_url(issuer, &user.org_id, &user.id)),
    );
    claims.insert("preferred_username".to_owned(), text(&user.username));
    claims.insert("nickname".to_owned(), text(name));
    claims.insert("name".to_owned(), text(name));
    claims.insert("family_name".to_owned(), text(name));
    if let Some(email) = &user.email {
        claims.insert("email".to_owned(), text(email));
        // Tessera never sends mail, so no address is known to reach its user.
        claims.insert("email_verified".to_owned(), Value::Bool(false));
    }
    claims.insert("zoneinfo".to_owned(), text(ZONEINFO));
    claims.insert("locale".to_owned(), text(LOCALE));
    claims.insert(
        "updated_at".to_owned(),
        text(&format_rfc3339_utc(user.created_at.millis())),
    );
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn user(email: Option<&str>) -> User {
        User {
            id: "005000000000001AAA".into(),
            org_id: "00D000000000001AAA".into(),
            username: "alice@example.com".into(),
            email: email.map(str::to_owned),
            password_hash: String::new(),
            disabled: false,
            created_at: Timestamp(1_278_448_101_416),
            admin: false,
            session_epoch: 0,
        }
    }

    #[test]
    fn the_standard_claims_name_the_user_by_identity_url_and_username() {
        let claims = standard_claims("https://login.test", &user(Some("alice@example.org")));
        let expected = serde_json::json!({
            "sub": "https://login.test/id/00D000000000001AAA/005000000000001AAA",
            "preferred_username": "alice@example.com",
            "nickname": "alice",
            "name": "alice",
            "family_name": "alice",
            "email": "alice@example.org",
            "email_verified": false,
            "zoneinfo": "GMT",
            "locale": "en_US",
            "updated_at": "2010-07-06T20:28:21Z",
        });
        assert_eq!(Value::Object(claims), expected);
    }

    #[test]
    fn a_user_without_an_email_has_no_email_claims_rather_than_null_ones() {
        let claims = standard_claims("https://login.test", &user(None));
        assert!(!claims.contains_key("email"));
        assert!(!claims.contains_key("email_verified"));
        assert!(claims.values().all(|value| !value.is_null()));
    }
}
