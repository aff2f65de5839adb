//! Token formats and key material: how tokens, ids and secrets are minted, sealed, signed,
//! hashed for storage and checked. Nothing here touches the store.

pub mod access_token;
pub mod crypto;
pub mod hash;
pub mod id_token;
pub mod ids;
pub mod jwt_access_token;
pub mod sealing;
pub mod server_key;
pub mod signing_keys;
