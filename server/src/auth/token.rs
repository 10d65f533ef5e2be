//! Session tokens: JWTs scoped to one session, for end-user devices.
//! Verified with the server's HS256 secret(s) and/or a backend's public key
//! (ES256 / EdDSA); minted (HS256 only) with the first secret. `exp` is
//! required and bounded by a maximum lifetime; `iss`/`aud` are checked when
//! configured.

use crate::domain::FieldError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Lifetime of a minted token when the request names none.
pub const DEFAULT_MINT_TTL_SECONDS: u64 = 3600;

/// What a session token lets its holder do (API.md's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the session and follows it over WebSocket.
    Viewer,
    /// A viewer that may also switch, only while its own clock runs.
    Participant,
    /// Every command on its session: start, switch, pause, resume, complete, cancel.
    Controller,
}

impl Role {
    /// The wire name (`viewer`, `participant`, `controller`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Participant => "participant",
            Role::Controller => "controller",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Participant, Role::Controller]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// The claims SyncKairos reads from (and writes into) a session token.
/// Other claims are ignored; `iss`/`aud` are written when configured and
/// checked by the JWT library, not read back here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The one session the token is for.
    pub sid: Uuid,
    /// What the holder may do.
    pub role: Role,
    /// The participant id (required for `participant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, Unix seconds (required: a token without it is refused by
    /// the validation, after this default lets the claims parse).
    #[serde(default)]
    pub exp: u64,
    /// Issue time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer, when the server is configured with one.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when the server is configured with one.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token was refused (every case is a 401). The text is safe to send:
/// it names the rule, never the token or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its claims are not SyncKairos claims.
    #[error("malformed token")]
    Malformed,
    /// No configured key verifies the signature (or its `alg` is not accepted).
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// A claim breaks a rule: missing `exp`, wrong `iss`/`aud`, a lifetime
    /// over the maximum, a participant token without `sub`.
    #[error("token refused: {0}")]
    Invalid(&'static str),
}

/// Bounds every token must respect, shared by verification and minting.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Longest lifetime accepted (`exp - iat`, and `exp - now`).
    pub max_ttl_seconds: u64,
    /// Clock skew tolerated on `exp`.
    pub leeway_seconds: u64,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            max_ttl_seconds: 86_400,
            leeway_seconds: 5,
            issuer: None,
            audience: None,
        }
    }
}

/// Participant ids follow the session's rule (API.md `SyncParticipant`).
pub fn valid_participant_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// RFC 7519: expired from the `exp` second on, past the leeway.
fn expired(exp: u64, rules: &TokenRules, now_s: u64) -> bool {
    now_s >= exp.saturating_add(rules.leeway_seconds)
}

/// Checks the claims the JWT library does not: lifetime and `sub`.
fn check_claims(c: &Claims, rules: &TokenRules, now_s: u64) -> Result<(), TokenError> {
    // RFC 7519: expired from the `exp` second on (the library accepts the
    // `exp` second itself, so a WebSocket closed at `exp` could reopen).
    if expired(c.exp, rules, now_s) {
        return Err(TokenError::Expired);
    }
    let max = rules.max_ttl_seconds;
    if c.exp.saturating_sub(now_s) > max + rules.leeway_seconds
        || c.iat.is_some_and(|iat| c.exp.saturating_sub(iat) > max)
    {
        return Err(TokenError::Invalid(
            "lifetime exceeds the server's TOKEN_MAX_TTL_SECONDS",
        ));
    }
    match (&c.role, c.sub.as_deref()) {
        (Role::Participant, None) => Err(TokenError::Invalid("a participant token needs `sub`")),
        (_, Some(sub)) if !valid_participant_id(sub) => {
            Err(TokenError::Invalid("`sub` is not a participant id"))
        }
        _ => Ok(()),
    }
}

/// Verifies session tokens against every configured key.
pub struct TokenVerifier {
    /// `(alg, key)`; several HS256 secrets may be live during a rotation.
    keys: Vec<(Algorithm, DecodingKey)>,
    validation: Validation,
    rules: TokenRules,
}

impl TokenVerifier {
    /// A verifier over `keys` (at least one) with `rules`.
    pub fn new(keys: Vec<(Algorithm, DecodingKey)>, rules: TokenRules) -> TokenVerifier {
        let mut algs: Vec<Algorithm> = keys.iter().map(|(a, _)| *a).collect();
        algs.dedup();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algs;
        validation.leeway = rules.leeway_seconds;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &rules.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &rules.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        TokenVerifier {
            keys,
            validation,
            rules,
        }
    }

    /// The clock skew tolerated on `exp`.
    pub fn leeway_seconds(&self) -> u64 {
        self.rules.leeway_seconds
    }

    /// Whether a token with `exp` has expired at `now_s` (the one rule a
    /// token verified earlier must pass again).
    pub fn expired(&self, exp: u64, now_s: u64) -> bool {
        expired(exp, &self.rules, now_s)
    }

    /// Which algorithms this verifier accepts (for `check-config`).
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .keys
            .iter()
            .map(|(a, _)| match a {
                Algorithm::HS256 => "HS256",
                Algorithm::ES256 => "ES256",
                Algorithm::EdDSA => "EdDSA",
                _ => "other",
            })
            .collect();
        names.dedup();
        names
    }

    /// The token's claims if it is valid at `now_s` (Unix seconds).
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        for (_, key) in self.keys.iter().filter(|(a, _)| *a == header.alg) {
            let err = match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    check_claims(&data.claims, &self.rules, now_s)?;
                    return Ok(data.claims);
                }
                Err(e) => e,
            };
            return Err(match err.kind() {
                // Another secret of a rotation may verify it.
                ErrorKind::InvalidSignature => continue,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::MissingRequiredClaim(c) if c == "exp" => {
                    TokenError::Invalid("`exp` is required")
                }
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidIssuer
                | ErrorKind::InvalidAudience => {
                    TokenError::Invalid("`iss` or `aud` does not match")
                }
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey => TokenError::BadSignature,
                _ => TokenError::Malformed,
            });
        }
        // No key of the token's algorithm, or none verified its signature.
        Err(TokenError::BadSignature)
    }
}

/// A token just minted.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The JWT.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub exp: u64,
}

/// Mints HS256 session tokens with the server's (first) secret.
pub struct TokenMinter {
    key: EncodingKey,
    rules: TokenRules,
}

impl TokenMinter {
    /// A minter signing with `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn new(secret: &[u8], rules: TokenRules) -> Result<TokenMinter, String> {
        let key = EncodingKey::from_secret(secret)
            .map_err(|_| "the token secret cannot be used as an HS256 key".to_string())?;
        Ok(TokenMinter { key, rules })
    }

    /// The longest `ttl_seconds` a request may ask for.
    pub fn max_ttl_seconds(&self) -> u64 {
        self.rules.max_ttl_seconds
    }

    /// Mints a token for `sid` at `now_s`. A bad request names its field:
    /// `participant_id` (required for, and only for, a participant; the
    /// participant-id charset) or `ttl_seconds` (1..=max).
    pub fn mint(
        &self,
        sid: Uuid,
        role: Role,
        participant_id: Option<String>,
        ttl_seconds: Option<u64>,
        now_s: u64,
    ) -> Result<Minted, FieldError> {
        let max = self.rules.max_ttl_seconds;
        let ttl = ttl_seconds.unwrap_or(DEFAULT_MINT_TTL_SECONDS.min(max));
        if !(1..=max).contains(&ttl) {
            return Err(FieldError::new(
                "ttl_seconds",
                format!("must be from 1 to {max} (TOKEN_MAX_TTL_SECONDS)"),
            ));
        }
        match (role, &participant_id) {
            (Role::Participant, None) => {
                return Err(FieldError::new(
                    "participant_id",
                    "is required for a participant token",
                ));
            }
            (_, Some(p)) if !valid_participant_id(p) => {
                return Err(FieldError::new(
                    "participant_id",
                    "must be 1..=128 characters of [A-Za-z0-9._:@-]",
                ));
            }
            _ => {}
        }
        let claims = Claims {
            sid,
            role,
            sub: participant_id,
            exp: now_s + ttl,
            iat: Some(now_s),
            iss: self.rules.issuer.clone(),
            aud: self.rules.audience.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|_| FieldError::new("role", "the token could not be signed"))?;
        Ok(Minted {
            token,
            exp: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(NOW, |d| d.as_secs())
    }

    fn hs(secret: &[u8], rules: TokenRules) -> TokenVerifier {
        TokenVerifier::new(
            vec![(Algorithm::HS256, DecodingKey::from_secret(secret).unwrap())],
            rules,
        )
    }

    fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let minter = TokenMinter::new(SECRET, TokenRules::default()).unwrap();
        let sid = Uuid::new_v4();
        let t = now();
        let m = minter
            .mint(sid, Role::Participant, Some("alice".into()), Some(60), t)
            .unwrap();
        assert_eq!(m.exp, t + 60);
        let c = hs(SECRET, TokenRules::default())
            .verify(&m.token, t)
            .unwrap();
        assert_eq!(
            (c.sid, c.role, c.sub.as_deref()),
            (sid, Role::Participant, Some("alice"))
        );
    }

    #[test]
    fn mint_names_the_bad_field() {
        let minter = TokenMinter::new(SECRET, TokenRules::default()).unwrap();
        let sid = Uuid::new_v4();
        let field = |r: Result<Minted, FieldError>| r.unwrap_err().field;
        assert_eq!(
            field(minter.mint(sid, Role::Participant, None, None, NOW)),
            "participant_id"
        );
        assert_eq!(
            field(minter.mint(sid, Role::Viewer, Some("a b".into()), None, NOW)),
            "participant_id"
        );
        assert_eq!(
            field(minter.mint(sid, Role::Viewer, None, Some(0), NOW)),
            "ttl_seconds"
        );
        assert_eq!(
            field(minter.mint(sid, Role::Viewer, None, Some(86_401), NOW)),
            "ttl_seconds"
        );
    }

    #[test]
    fn each_failure_has_its_reason() {
        let v = hs(SECRET, TokenRules::default());
        let sid = Uuid::new_v4();
        let t = now();
        let ok = serde_json::json!({"sid": sid, "role": "viewer", "exp": t + 60, "iat": t});
        assert!(v.verify(&sign(&ok, SECRET), t).is_ok());
        assert_eq!(v.verify("nope", t).unwrap_err(), TokenError::Malformed);
        assert_eq!(v.verify("a.b.c", t).unwrap_err(), TokenError::Malformed);
        let other = b"another-secret-another-secret-xx";
        assert_eq!(
            v.verify(&sign(&ok, other), t).unwrap_err(),
            TokenError::BadSignature
        );
        let expired = serde_json::json!({"sid": sid, "role": "viewer", "exp": t - 60});
        assert_eq!(
            v.verify(&sign(&expired, SECRET), t).unwrap_err(),
            TokenError::Expired
        );
        let no_exp = serde_json::json!({"sid": sid, "role": "viewer"});
        assert!(matches!(
            v.verify(&sign(&no_exp, SECRET), t),
            Err(TokenError::Invalid(_))
        ));
        let long = serde_json::json!({"sid": sid, "role": "viewer", "exp": t + 90_000});
        assert!(matches!(
            v.verify(&sign(&long, SECRET), t),
            Err(TokenError::Invalid(_))
        ));
        let no_sub = serde_json::json!({"sid": sid, "role": "participant", "exp": t + 60});
        assert!(matches!(
            v.verify(&sign(&no_sub, SECRET), t),
            Err(TokenError::Invalid(_))
        ));
        let bad_role = serde_json::json!({"sid": sid, "role": "admin", "exp": t + 60});
        assert_eq!(
            v.verify(&sign(&bad_role, SECRET), t).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let rules = TokenRules {
            issuer: Some("game-backend".into()),
            audience: Some("synckairos".into()),
            ..TokenRules::default()
        };
        let v = hs(SECRET, rules.clone());
        let t = now();
        let m = TokenMinter::new(SECRET, rules)
            .unwrap()
            .mint(Uuid::new_v4(), Role::Viewer, None, None, t)
            .unwrap();
        assert!(v.verify(&m.token, t).is_ok());
        let bare = TokenMinter::new(SECRET, TokenRules::default())
            .unwrap()
            .mint(Uuid::new_v4(), Role::Viewer, None, None, t)
            .unwrap();
        assert!(matches!(
            v.verify(&bare.token, t),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn any_live_secret_of_a_rotation_verifies() {
        let old = b"old-secret-old-secret-old-secret";
        let v = TokenVerifier::new(
            vec![
                (Algorithm::HS256, DecodingKey::from_secret(SECRET).unwrap()),
                (Algorithm::HS256, DecodingKey::from_secret(old).unwrap()),
            ],
            TokenRules::default(),
        );
        let t = now();
        let c = serde_json::json!({"sid": Uuid::new_v4(), "role": "controller", "exp": t + 60});
        assert!(v.verify(&sign(&c, old), t).is_ok());
        assert!(v.verify(&sign(&c, SECRET), t).is_ok());
    }
}
