//! From configuration to [`Auth`]: reads the key files, checks every value,
//! and decides whether the server may start at all (a non-loopback bind
//! without credentials is refused unless `AUTH=off`). Errors name the
//! setting and never quote a secret.

use super::Auth;
use super::keys::ApiKeys;
use super::token::{MIN_SECRET_BYTES, TokenMinter, TokenRules, TokenVerifier};
use crate::config::{AuthArgs, AuthMode, PublicKeyAlgorithm, TokenArgs};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::net::IpAddr;
use std::path::Path;

fn read_file(path: &Path, setting: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{setting}: cannot read {}: {}", path.display(), e.kind()))
}

/// The token rules of `t` (the leeway is a verification setting).
pub fn token_rules(t: &TokenArgs, leeway_seconds: u64) -> TokenRules {
    TokenRules {
        max_ttl_seconds: t.token_max_ttl_seconds,
        leeway_seconds,
        issuer: t.token_issuer.clone(),
        audience: t.token_audience.clone(),
    }
}

/// The HS256 secrets, signing one first: `TOKEN_SECRET`, or every non-blank
/// line of `TOKEN_SECRET_FILE`. Empty when neither is set.
pub fn hs256_secrets(t: &TokenArgs) -> Result<Vec<Vec<u8>>, String> {
    let (secrets, setting) = match (&t.token_secret, &t.token_secret_file) {
        (Some(_), Some(_)) => {
            return Err("set TOKEN_SECRET or TOKEN_SECRET_FILE, not both".into());
        }
        (Some(s), None) => (vec![s.0.trim().as_bytes().to_vec()], "TOKEN_SECRET"),
        (None, Some(path)) => {
            let text = read_file(path, "TOKEN_SECRET_FILE")?;
            let lines: Vec<Vec<u8>> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect();
            if lines.is_empty() {
                return Err("TOKEN_SECRET_FILE is empty".into());
            }
            (lines, "TOKEN_SECRET_FILE")
        }
        (None, None) => return Ok(Vec::new()),
    };
    if secrets.iter().any(|s| s.len() < MIN_SECRET_BYTES) {
        return Err(format!(
            "{setting}: a token secret must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    Ok(secrets)
}

/// The minter of `t`, or an error when no secret is configured
/// (`gen-token`).
pub fn minter(t: &TokenArgs) -> Result<TokenMinter, String> {
    let secrets = hs256_secrets(t)?;
    let first = secrets
        .first()
        .ok_or("set TOKEN_SECRET or TOKEN_SECRET_FILE to mint tokens")?;
    TokenMinter::new(first, token_rules(t, 0))
}

fn public_key(
    path: &Path,
    alg: Option<PublicKeyAlgorithm>,
) -> Result<(Algorithm, DecodingKey), String> {
    let pem = read_file(path, "TOKEN_PUBLIC_KEY_FILE")?;
    let ec = || DecodingKey::from_ec_pem(pem.as_bytes()).map(|k| (Algorithm::ES256, k));
    let ed = || DecodingKey::from_ed_pem(pem.as_bytes()).map(|k| (Algorithm::EdDSA, k));
    let key = match alg {
        Some(PublicKeyAlgorithm::Es256) => ec().ok(),
        Some(PublicKeyAlgorithm::Eddsa) => ed().ok(),
        None => ec().or_else(|_| ed()).ok(),
    };
    key.ok_or_else(|| {
        format!(
            "TOKEN_PUBLIC_KEY_FILE: {} is not a PEM {} public key",
            path.display(),
            match alg {
                Some(PublicKeyAlgorithm::Es256) => "ES256 (P-256)",
                Some(PublicKeyAlgorithm::Eddsa) => "EdDSA (Ed25519)",
                None => "ES256 (P-256) or EdDSA (Ed25519)",
            }
        )
    })
}

/// Builds the server's [`Auth`] from its settings.
pub fn build(a: &AuthArgs) -> Result<Auth, String> {
    let mut api_keys = match &a.api_keys {
        Some(s) => ApiKeys::parse(s.0.split(','), "API_KEYS")?,
        None => ApiKeys::default(),
    };
    if let Some(path) = &a.api_keys_file {
        let text = read_file(path, "API_KEYS_FILE")?;
        api_keys = api_keys.merge(ApiKeys::parse(text.lines(), "API_KEYS_FILE")?)?;
    }
    let secrets = hs256_secrets(&a.token)?;
    let rules = token_rules(&a.token, a.token_leeway_seconds);
    let mut keys = Vec::new();
    for s in &secrets {
        let k = DecodingKey::from_secret(s)
            .map_err(|_| "TOKEN_SECRET cannot be used as an HS256 key".to_string())?;
        keys.push((Algorithm::HS256, k));
    }
    if let Some(path) = &a.token_public_key_file {
        keys.push(public_key(path, a.token_algorithm)?);
    } else if a.token_algorithm.is_some() {
        return Err("TOKEN_ALGORITHM is set but TOKEN_PUBLIC_KEY_FILE is not".into());
    }
    let minter = match secrets.first() {
        Some(s) => Some(TokenMinter::new(s, rules.clone())?),
        None => None,
    };
    let configured = !api_keys.is_empty() || !keys.is_empty();
    let enabled = match a.auth {
        AuthMode::Off => false,
        AuthMode::Auto => configured,
        AuthMode::On if configured => true,
        AuthMode::On => {
            return Err(
                "AUTH=on but no credential is configured: set API_KEYS, API_KEYS_FILE, TOKEN_SECRET(_FILE) or TOKEN_PUBLIC_KEY_FILE"
                    .into(),
            );
        }
    };
    Ok(Auth {
        enabled,
        api_keys,
        verifier: (!keys.is_empty()).then(|| TokenVerifier::new(keys, rules)),
        minter,
        verified: Default::default(),
    })
}

/// Refuses an open server on an address others can reach, unless `AUTH=off`
/// says it is meant: the one line a misconfigured deployment prints.
pub fn check_exposure(mode: AuthMode, auth: &Auth, bind: IpAddr) -> Result<(), String> {
    if auth.enabled() || mode == AuthMode::Off || bind.is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve on {bind} without credentials: set API_KEYS (or API_KEYS_FILE) and/or TOKEN_SECRET, bind 127.0.0.1, or set AUTH=off to serve openly on purpose"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command, ServeConfig};
    use clap::Parser;

    fn serve(args: &[&str]) -> ServeConfig {
        let mut v = vec!["synckairos", "serve"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Serve(c) => c,
            _ => unreachable!(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn auth_is_on_exactly_when_a_credential_is_configured() {
        assert!(!build(&serve(&[]).auth).unwrap().enabled());
        let keyed = serve(&["--api-keys", "be=0123456789abcdef"]);
        assert!(build(&keyed.auth).unwrap().enabled());
        let tokens = serve(&["--token-secret", SECRET]);
        let auth = build(&tokens.auth).unwrap();
        assert!(auth.enabled() && auth.minter().is_some());
        let off = serve(&["--token-secret", SECRET, "--auth", "off"]);
        assert!(!build(&off.auth).unwrap().enabled());
        assert!(
            build(&serve(&["--auth", "on"]).auth)
                .unwrap_err()
                .contains("AUTH=on")
        );
    }

    #[test]
    fn an_open_server_only_binds_loopback_unless_told() {
        let open = serve(&[]);
        let auth = build(&open.auth).unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let err = check_exposure(AuthMode::Auto, &auth, any).unwrap_err();
        assert!(err.contains("AUTH=off") && err.contains("0.0.0.0"), "{err}");
        assert!(check_exposure(AuthMode::Auto, &auth, "127.0.0.1".parse().unwrap()).is_ok());
        assert!(check_exposure(AuthMode::Auto, &auth, "::1".parse().unwrap()).is_ok());
        assert!(check_exposure(AuthMode::Off, &auth, any).is_ok());
        let keyed = build(&serve(&["--api-keys", "be=0123456789abcdef"]).auth).unwrap();
        assert!(check_exposure(AuthMode::Auto, &keyed, any).is_ok());
    }

    #[test]
    fn secret_errors_name_the_setting_not_the_secret() {
        let err = build(&serve(&["--token-secret", "short-secret-value"]).auth).unwrap_err();
        assert!(
            err.contains("TOKEN_SECRET") && !err.contains("short-secret-value"),
            "{err}"
        );
        let err = build(&serve(&["--api-keys", "a=tiny-secret"]).auth).unwrap_err();
        assert!(
            err.contains("API_KEYS") && !err.contains("tiny-secret"),
            "{err}"
        );
        let missing = serve(&["--token-public-key-file", "/nonexistent/key.pem"]);
        assert!(
            build(&missing.auth)
                .unwrap_err()
                .contains("TOKEN_PUBLIC_KEY_FILE")
        );
    }

    #[test]
    fn a_secret_file_rotation_signs_with_the_first_line() {
        let dir = std::env::temp_dir().join(format!("sk-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        let old = "old-secret-old-secret-old-secret";
        std::fs::write(&file, format!("{SECRET}\n{old}\n")).unwrap();
        let cfg = serve(&["--token-secret-file", file.to_str().unwrap()]);
        let secrets = hs256_secrets(&cfg.auth.token).unwrap();
        assert_eq!(
            secrets,
            vec![SECRET.as_bytes().to_vec(), old.as_bytes().to_vec()]
        );
        let auth = build(&cfg.auth).unwrap();
        let now = super::super::now_seconds();
        let old_minter = TokenMinter::new(old.as_bytes(), TokenRules::default()).unwrap();
        let t = old_minter
            .mint(
                uuid::Uuid::new_v4(),
                super::super::token::Role::Viewer,
                None,
                None,
                now,
            )
            .unwrap();
        assert!(auth.authenticate(Some(&t.token), now).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_forged_one_is_never_remembered() {
        use super::super::token::{Role, TokenError};
        use super::super::{Principal, Unauthorized};
        let auth = build(&serve(&["--token-secret", SECRET]).auth).unwrap();
        let now = super::super::now_seconds();
        let minted = auth
            .minter()
            .unwrap()
            .mint(uuid::Uuid::new_v4(), Role::Viewer, None, Some(60), now)
            .unwrap();
        // Verified, then served from the memo: the same grant both times.
        let first = auth.authenticate(Some(&minted.token), now).unwrap();
        let again = auth.authenticate(Some(&minted.token), now + 1).unwrap();
        assert!(matches!(&first, Principal::Token(t) if t.exp == minted.exp));
        assert_eq!(first, again);
        // Past exp + leeway (5 s by default) the memo refuses it too.
        let late = minted.exp + TokenRules::default().leeway_seconds;
        assert_eq!(
            auth.authenticate(Some(&minted.token), late),
            Err(Unauthorized::Token(TokenError::Expired))
        );
        // A token whose signature is altered is refused every time.
        let (head, sig) = minted.token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{head}.{flipped}{}", &sig[1..]);
        for _ in 0..2 {
            assert_eq!(
                auth.authenticate(Some(&forged), now),
                Err(Unauthorized::Token(TokenError::BadSignature))
            );
        }
    }

    /// Test-only key pairs (generated with openssl for this test).
    const ES256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDZUn9o5HQ4+Awx12
bvPnMgehm29vDznD7VDrrjQFi1ChRANCAAQy08Hr464IxzeDIokF9BmdHaqEjcpY
jKv+6p9s4RCh1Rhptwj3UMdAbmeLO+puk05mLz6nE9ET/klFnKLyXZuo
-----END PRIVATE KEY-----
";
    const ES256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMtPB6+OuCMc3gyKJBfQZnR2qhI3K
WIyr/uqfbOEQodUYabcI91DHQG5nizvqbpNOZi8+pxPRE/5JRZyi8l2bqA==
-----END PUBLIC KEY-----
";
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIzYPk8UstB9Tsp2uo7tQ9dGwjQ4LZdC6DYrZzahsymI
-----END PRIVATE KEY-----
";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEApGNMn6WIxlEO0ZlGt4sKkGhMwEuLPk+VRLWeSQb/QyI=
-----END PUBLIC KEY-----
";

    #[test]
    fn a_backend_public_key_verifies_tokens_it_signed_offline() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let dir = std::env::temp_dir().join(format!("sk-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = super::super::now_seconds();
        let sid = uuid::Uuid::new_v4();
        let claims = serde_json::json!({"sid": sid, "role": "controller", "exp": now + 60});
        let cases = [
            (
                Algorithm::ES256,
                ES256_PUBLIC,
                EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes()).unwrap(),
            ),
            (
                Algorithm::EdDSA,
                ED_PUBLIC,
                EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            ),
        ];
        for (alg, public, private) in cases {
            let file = dir.join(format!("{alg:?}.pem"));
            std::fs::write(&file, public).unwrap();
            let auth =
                build(&serve(&["--token-public-key-file", file.to_str().unwrap()]).auth).unwrap();
            assert!(auth.enabled() && auth.minter().is_none(), "{alg:?}");
            let token = encode(&Header::new(alg), &claims, &private).unwrap();
            let p = auth.authenticate(Some(&token), now).unwrap();
            assert!(
                matches!(p, super::super::Principal::Token(t) if t.sid == sid),
                "{alg:?}"
            );
            // Algorithm confusion: an HS256 token "signed" with the public
            // key as its secret is refused.
            let forged = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(public.as_bytes()).unwrap(),
            )
            .unwrap();
            assert!(auth.authenticate(Some(&forged), now).is_err(), "{alg:?}");
        }
        let wrong = dir.join("wrong.pem");
        std::fs::write(&wrong, ED_PUBLIC).unwrap();
        let es_only = serve(&[
            "--token-public-key-file",
            wrong.to_str().unwrap(),
            "--token-algorithm",
            "es256",
        ]);
        assert!(build(&es_only.auth).unwrap_err().contains("ES256"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
