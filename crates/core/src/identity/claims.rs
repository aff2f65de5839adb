//! The OpenID Connect standard claims of a user (OpenID Connect Core §5.1): what userinfo
//! answers and what an ID token carries for a client that asks for them.

use serde_json::{Map, Value};

use crate::model::User;

/// The standard claims Tessera can state about `user`.
pub fn standard_claims(_issuer: &str, user: &User) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert(
        "preferred_username".to_owned(),
        Value::String(user.username.clone()),
    );
    if let Some(email) = &user.email {
        claims.insert("email".to_owned(), Value::String(email.clone()));
        claims.insert("email_verified".to_owned(), Value::Bool(false));
    }
    claims
}
