//! Step 1, dereference: resolve what the spec points to before anything is built. Today
//! that is the Secrets with the store passwords and the server's credentials: the user's,
//! or ours, generated here the first time (created once, never rotated behind a running
//! cluster's back). The Redis password is what formation needs to talk to the pods.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use rand::{Rng, RngCore};

use super::{Context, Error, kube_err, publish};
use crate::build::{self, postgres, redis, server};
use crate::crd::{PostgresMode, RedisMode, SyncKairosCluster};
use crate::validate::Checked;

/// What the spec's references resolved to.
#[derive(Debug, Default)]
pub(super) struct Refs {
    /// The managed Redis password (`None` for external Redis, or while a user-named Secret
    /// does not exist yet: the pods wait for it too).
    pub redis_password: Option<String>,
}

/// Resolves (and generates, the first time) the Secrets of the managed stores.
pub(super) async fn secrets(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
) -> Result<Refs, Error> {
    let mut refs = Refs::default();
    if c.spec.redis.mode == RedisMode::Managed {
        let name = build::redis_password_secret(c);
        let generate = c
            .spec
            .redis
            .password_secret
            .is_none()
            .then(|| redis::password_secret(c, &random_password()));
        refs.redis_password = ensure_secret(ctx, skc, c, &name, "password", generate).await?;
    }
    if c.spec.redis.mode == RedisMode::External {
        external_redis(ctx, c).await?;
    }
    if c.spec.postgres.mode == PostgresMode::Managed {
        let name = build::postgres_credentials_secret(c);
        let generate = c
            .spec
            .postgres
            .credentials_secret
            .is_none()
            .then(|| postgres::credentials_secret(c, &random_password()));
        ensure_secret(ctx, skc, c, &name, "password", generate).await?;
    }
    if let Some(name) = build::auth_secret(c) {
        let a = &c.spec.server.auth;
        let generate = a
            .existing_secret
            .is_none()
            .then(|| server::auth_secret_object(c, &random_token(), &random_token()));
        if ensure_secret(ctx, skc, c, &name, &a.api_keys_key, generate)
            .await?
            .is_some()
        {
            // the pod mounts both keys: name a missing one now rather than at pod start
            ensure_secret(ctx, skc, c, &name, &a.token_secret_key, None).await?;
        }
    }
    Ok(refs)
}

/// The keys of an external Redis Secret that give the server an address.
const REDIS_ADDRESS_KEYS: [&str; 2] = ["REDIS_URL", "REDIS_CLUSTER_NODES"];

/// The external Redis Secret must give an address: the server reads both keys as optional,
/// and without either it would start on its single-node memory engine — every pod with
/// sessions of its own. Nothing is applied until the Secret says where Redis is.
async fn external_redis(ctx: &Context, c: &Checked) -> Result<(), Error> {
    let name = c.spec.redis.external_secret.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let secret = api
        .get_opt(&name)
        .await
        .map_err(kube_err("get", "Secret", &name))?;
    let has_address = |s: &Secret| {
        REDIS_ADDRESS_KEYS
            .iter()
            .any(|k| secret_value(s, k).is_some_and(|v| !v.trim().is_empty()))
    };
    match &secret {
        Some(s) if has_address(s) => Ok(()),
        _ => Err(Error::NoRedisAddress {
            secret: name,
            exists: secret.is_some(),
        }),
    }
}

/// 32 random bytes, base64url without padding (43 characters): an API key or token secret.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Ensures a generated Secret exists (created once, never rotated) and returns its key
/// value; `None` for a user-named Secret that does not exist (yet).
async fn ensure_secret(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    name: &str,
    key: &str,
    generate: Option<Secret>,
) -> Result<Option<String>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let existing = api
        .get_opt(name)
        .await
        .map_err(kube_err("get", "Secret", name))?;
    let secret = match (existing, generate) {
        (Some(s), _) => s,
        (None, Some(new)) => {
            let s = api
                .create(&PostParams::default(), &new)
                .await
                .map_err(kube_err("create", "Secret", name))?;
            publish(
                ctx,
                skc,
                EventType::Normal,
                "SecretGenerated",
                format!("generated Secret {name}"),
            )
            .await;
            s
        }
        (None, None) => return Ok(None),
    };
    secret_value(&secret, key)
        .map(Some)
        .ok_or_else(|| Error::SecretKey(name.to_string(), key.to_string()))
}

/// A key of a Secret, from `data` or (as a create returns it on some servers) `stringData`.
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn secret_values_come_from_data_or_string_data() {
        let mut s = Secret::default();
        assert_eq!(secret_value(&s, "password"), None);
        s.string_data = Some(BTreeMap::from([("password".into(), "plain".into())]));
        assert_eq!(secret_value(&s, "password").as_deref(), Some("plain"));
        s.data = Some(BTreeMap::from([(
            "password".into(),
            k8s_openapi::ByteString(b"decoded".to_vec()),
        )]));
        assert_eq!(secret_value(&s, "password").as_deref(), Some("decoded"));
        assert_eq!(secret_value(&s, "username"), None);
    }

    #[test]
    fn generated_tokens_are_32_random_bytes_in_base64url() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (random_password(), random_password());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
