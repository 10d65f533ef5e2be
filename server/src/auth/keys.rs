//! API keys: `name=secret` pairs for trusted backends. Only the SHA-256
//! digest of each secret is kept in memory (a secret may also be configured
//! as `sha256:<64 hex>`, so the server never sees it in clear), and a
//! presented key is hashed and compared with every digest in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest secret accepted in clear: anything shorter is guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// A SHA-256 digest.
type Digest32 = [u8; 32];

/// One configured key: its name (the audit actor) and secret digest.
#[derive(Clone)]
struct ApiKey {
    name: String,
    digest: Digest32,
}

/// The configured API keys. Several may be live at once, which is how a
/// key is rotated: add the new one, move clients, remove the old one.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.masked()).finish()
    }
}

fn sha256(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

fn hex_digest(hex: &str) -> Option<Digest32> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ApiKeys {
    /// Parses `name=secret` entries (`API_KEYS` splits on commas, a key file
    /// on lines; blank entries and `#` comment lines are skipped). `source`
    /// names the setting in errors; an error never quotes a secret.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        source: &str,
    ) -> Result<ApiKeys, String> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for (n, entry) in entries.into_iter().enumerate() {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let at = format!("{source} entry {}", n + 1);
            let (name, secret) = entry
                .split_once('=')
                .ok_or_else(|| format!("{at} is not name=secret"))?;
            let name = name.trim();
            if !valid_name(name) {
                return Err(format!(
                    "{at}: key name must be 1..=64 characters of [A-Za-z0-9._-]"
                ));
            }
            let secret = secret.trim();
            let digest = match secret.strip_prefix("sha256:") {
                Some(hex) => hex_digest(hex).ok_or_else(|| {
                    format!("{at} ({name}): sha256: must be followed by 64 hex digits")
                })?,
                None if secret.len() < MIN_SECRET_LEN => {
                    return Err(format!(
                        "{at} ({name}): secret is shorter than {MIN_SECRET_LEN} characters"
                    ));
                }
                None => sha256(secret.as_bytes()),
            };
            if keys.iter().any(|k| k.name == name) {
                return Err(format!("{at}: key name {name:?} is given twice"));
            }
            keys.push(ApiKey {
                name: name.to_string(),
                digest,
            });
        }
        Ok(ApiKeys { keys })
    }

    /// Adds the keys of `other` (from a second source); names stay unique.
    pub fn merge(mut self, other: ApiKeys) -> Result<ApiKeys, String> {
        for k in other.keys {
            if self.keys.iter().any(|m| m.name == k.name) {
                return Err(format!(
                    "API key name {:?} is configured twice (API_KEYS and API_KEYS_FILE)",
                    k.name
                ));
            }
            self.keys.push(k);
        }
        Ok(self)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key `presented` is, if any. The presented secret is
    /// hashed and every digest compared in constant time, so neither the
    /// secret's bytes nor which prefix matched leak through timing.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let digest = sha256(presented.as_bytes());
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.digest.ct_eq(&digest)) {
                found = Some(k.name.as_str());
            }
        }
        found
    }

    /// Key names with the first 8 hex digits of their digest, for
    /// `check-config` (enough to tell keys apart, useless to an attacker).
    pub fn masked(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| {
                let fp: String = k.digest[..4].iter().map(|b| format!("{b:02x}")).collect();
                format!("{} (sha256:{fp}…)", k.name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-s3cret-s3cret";

    fn hex(d: Digest32) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn clear_and_hashed_secrets_verify_by_name() {
        let hashed = format!("sha256:{}", hex(sha256(b"another-long-secret")));
        let line = format!("backend={SECRET}, ops = {hashed}");
        let keys = ApiKeys::parse(line.split(','), "API_KEYS").unwrap();
        assert_eq!(keys.verify(SECRET), Some("backend"));
        assert_eq!(keys.verify("another-long-secret"), Some("ops"));
        assert_eq!(keys.verify("s3cret-s3cret-s3cre"), None);
        assert_eq!(keys.verify(""), None);
        assert_eq!(keys.verify(&hashed), None, "the digest is not the key");
    }

    #[test]
    fn files_skip_blank_and_comment_lines() {
        let file = format!("# rotated 2026-12\n\nnew={SECRET}\nold={SECRET}x\n");
        let keys = ApiKeys::parse(file.lines(), "API_KEYS_FILE").unwrap();
        assert_eq!(keys.verify(SECRET), Some("new"));
        assert_eq!(keys.verify(&format!("{SECRET}x")), Some("old"));
    }

    #[test]
    fn bad_entries_are_named_without_the_secret() {
        for (entry, want) in [
            ("nosecret", "not name=secret"),
            ("a=short", "shorter than 16"),
            ("a b=0123456789abcdef", "key name"),
            ("a=sha256:12", "64 hex digits"),
        ] {
            let err = ApiKeys::parse([entry], "API_KEYS").unwrap_err();
            assert!(err.contains(want), "{entry}: {err}");
            assert!(err.contains("API_KEYS entry 1"), "{err}");
            assert!(
                !err.contains("short\"") && !err.contains("0123456789abcdef"),
                "{err}"
            );
        }
        let dup = ApiKeys::parse([&*format!("a={SECRET}"), &*format!("a={SECRET}y")], "K");
        assert!(dup.unwrap_err().contains("twice"));
    }

    #[test]
    fn masked_shows_names_and_a_fingerprint_only() {
        let keys = ApiKeys::parse([&*format!("backend={SECRET}")], "API_KEYS").unwrap();
        let shown = keys.masked().join(" ");
        let fp = &hex(sha256(SECRET.as_bytes()))[..8];
        assert_eq!(shown, format!("backend (sha256:{fp}…)"));
        assert!(!format!("{keys:?}").contains(SECRET));
    }
}
