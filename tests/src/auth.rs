//! Credentials for auth-on servers ([`ServerBuilder::with_auth`](crate::ServerBuilder::with_auth))
//! and the session tokens tests present: valid ones, and every way one can
//! be wrong (another key, expired, another session).

use serde_json::{Value, json};

/// The API key secret of the key named `backend`.
pub const API_KEY: &str = "test-api-key-0123456789";
/// `API_KEYS` for the server.
pub const API_KEYS: &str = "backend=test-api-key-0123456789";
/// The HS256 token secret (at least 32 bytes).
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef";
/// A secret the server does not know: tokens signed with it are forged.
pub const OTHER_SECRET: &str = "forged-token-secret-0123456789abcd";

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Value, secret: &str) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let key =
        EncodingKey::from_secret(secret.as_bytes()).unwrap_or_else(|e| panic!("HS256 key: {e}"));
    encode(&Header::default(), claims, &key).unwrap_or_else(|e| panic!("signing {claims}: {e}"))
}

/// A token for `sid` with `role` (and `sub`), valid for `ttl_s` seconds
/// from now (negative: already expired), signed with the server's secret.
pub fn token(sid: &str, role: &str, sub: Option<&str>, ttl_s: i64) -> String {
    let now = now_s();
    let mut c = json!({"sid": sid, "role": role, "iat": now, "exp": now + ttl_s});
    if let Some(s) = sub {
        c["sub"] = json!(s);
    }
    sign(&c, TOKEN_SECRET)
}
