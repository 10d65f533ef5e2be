//! Access control (API.md "Authentication and authorization").
//!
//! - [`keys`]: API keys (`name=secret`), digests compared in constant time.
//! - [`token`]: session JWTs: roles, claims, verification, minting.
//! - [`policy`]: the pure authorization table.
//! - [`setup`]: configuration → [`Auth`] (reads key files; refuses bad ones).
//!
//! The HTTP wiring (middleware, the `Caller` extractor) is `api::auth`.
//!
//! Authentication answers "who is this" once per request ([`Auth::authenticate`],
//! 401 on failure) and leaves a [`Principal`] in the request's extensions
//! (the rate limiter keys on it); each handler then asks [`policy::authorize`]
//! for its own operation and session (403 on refusal).

pub mod keys;
pub mod policy;
pub mod setup;
pub mod token;
pub mod verified;

use keys::ApiKeys;
use std::sync::Arc;
use token::{Role, TokenError, TokenMinter, TokenVerifier};
use uuid::Uuid;
use verified::VerifiedTokens;

/// A verified session token's grant: one session, one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The session it is for.
    pub sid: Uuid,
    /// What it may do there.
    pub role: Role,
    /// The participant it speaks for (always set for a participant).
    pub sub: Option<String>,
    /// Expiry, Unix seconds: a WebSocket opened with it closes then.
    pub exp: u64,
}

/// Who made a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Auth is off: anyone may do anything; recorded as anonymous.
    Anonymous,
    /// A configured API key, by name.
    ApiKey(Arc<str>),
    /// A session token.
    Token(SessionToken),
}

impl Principal {
    /// The actor the audit trail records for this principal.
    pub fn actor(&self) -> crate::domain::Actor {
        use crate::domain::Actor;
        match self {
            Principal::Anonymous => Actor::anonymous(),
            Principal::ApiKey(name) => Actor::api_key(name.to_string()),
            Principal::Token(t) => Actor::token(t.role.as_str(), t.sub.clone()),
        }
    }

    /// When the credential stops being valid (Unix seconds), if ever.
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            Principal::Token(t) => Some(t.exp),
            _ => None,
        }
    }
}

/// Why a request could not be authenticated (401 `UNAUTHORIZED`). The text
/// is safe to send: it never quotes the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No `Authorization: Bearer` (nor `?token=` on the WebSocket).
    #[error("a credential is required: Authorization: Bearer <API key or session token>")]
    Missing,
    /// An `Authorization` header that is not `Bearer <credential>`.
    #[error("the Authorization header must be `Bearer <credential>`")]
    NotBearer,
    /// Not one of the configured API keys.
    #[error("unknown API key")]
    UnknownKey,
    /// A JWT, but this server verifies none.
    #[error("session tokens are not enabled on this server")]
    TokensOff,
    /// A JWT that failed verification.
    #[error("{0}")]
    Token(TokenError),
}

/// The configured credentials, shared by every request.
#[derive(Default)]
pub struct Auth {
    /// Off: every request is [`Principal::Anonymous`].
    enabled: bool,
    api_keys: ApiKeys,
    verifier: Option<TokenVerifier>,
    minter: Option<TokenMinter>,
    /// Tokens verified before: a repeat costs a map lookup and the expiry check.
    verified: VerifiedTokens,
}

/// Masked, like `check-config`: never a secret.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.describe()).finish()
    }
}

impl Auth {
    /// Auth off: open to anyone (loopback development, `AUTH=off`).
    pub fn off() -> Auth {
        Auth::default()
    }

    /// Whether requests must carry a credential.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The clock skew tolerated on a token's `exp`, in ms (0 without tokens).
    pub fn leeway_ms(&self) -> i64 {
        self.verifier
            .as_ref()
            .map_or(0, |v| v.leeway_seconds() as i64 * 1000)
    }

    /// The HS256 minter, when a token secret is configured.
    pub fn minter(&self) -> Option<&TokenMinter> {
        self.minter.as_ref()
    }

    /// Who presented `credential` (the Bearer value), at `now_s`.
    pub fn authenticate(
        &self,
        credential: Option<&str>,
        now_s: u64,
    ) -> Result<Principal, Unauthorized> {
        if !self.enabled {
            return Ok(Principal::Anonymous);
        }
        let credential = credential.ok_or(Unauthorized::Missing)?;
        // A JWT is three base64url parts; an API key is anything else.
        if credential.bytes().filter(|b| *b == b'.').count() == 2 {
            let verifier = self.verifier.as_ref().ok_or(Unauthorized::TokensOff)?;
            if let Some(grant) = self.verified.get(credential) {
                if verifier.expired(grant.exp, now_s) {
                    self.verified.remove(credential);
                    return Err(Unauthorized::Token(TokenError::Expired));
                }
                return Ok(Principal::Token(grant));
            }
            let c = verifier
                .verify(credential, now_s)
                .map_err(Unauthorized::Token)?;
            let grant = SessionToken {
                sid: c.sid,
                role: c.role,
                sub: c.sub,
                exp: c.exp,
            };
            self.verified.insert(credential, &grant);
            return Ok(Principal::Token(grant));
        }
        self.api_keys
            .verify(credential)
            .map(|name| Principal::ApiKey(Arc::from(name)))
            .ok_or(Unauthorized::UnknownKey)
    }

    /// What `check-config` prints: whether auth is on, key names with
    /// fingerprints, token algorithms; never a secret.
    pub fn describe(&self) -> Vec<String> {
        if !self.enabled {
            return vec!["auth: off (anyone who can reach the port has full access)".into()];
        }
        let keys = if self.api_keys.is_empty() {
            "none".to_string()
        } else {
            self.api_keys.masked().join(", ")
        };
        let tokens = self
            .verifier
            .as_ref()
            .map_or("off".to_string(), |v| v.algorithms().join(", "));
        vec![
            "auth: on".into(),
            format!("api keys: {keys}"),
            format!("session tokens: {tokens}"),
            format!(
                "token secret: {}",
                if self.minter.is_some() {
                    "set"
                } else {
                    "not set"
                }
            ),
        ]
    }
}

/// Seconds since the Unix epoch (JWT time).
pub fn now_seconds() -> u64 {
    (crate::clock::now_ms().max(0) / 1000) as u64
}
